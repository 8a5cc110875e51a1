//! The redaction spec: every decision of a redaction (regions, audio ranges, fill, kept tags),
//! as written by the user (command-line flags or a YAML file), checked against the item, and
//! stored as its own object so a reviewer can read it and the same redaction can be rendered
//! again: the stored spec is itself a valid `--spec` file.

use std::fmt;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::error;
use crate::media::index::{FrameIndex, Timeline};
use crate::media::time::{Position, format_us};

/// How a region is hidden.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Fill {
    /// Solid black: nothing of the area survives.
    #[default]
    Solid,
    /// Coarse blocks of the area's mean colour.
    Pixelate,
    /// A heavy blur.
    Blur,
}

impl Fill {
    pub fn name(self) -> &'static str {
        match self {
            Fill::Solid => "solid",
            Fill::Pixelate => "pixelate",
            Fill::Blur => "blur",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    #[default]
    Rect,
    Ellipse,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioAction {
    Mute,
    Bleep,
}

/// A position as written in a spec: a string (`00:01:02.5`, `frame:12`) or a number of seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Pos(pub String);

impl<'de> Deserialize<'de> for Pos {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Pos, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Int(i64),
            Float(f64),
        }
        Ok(Pos(match Raw::deserialize(d)? {
            Raw::Text(s) => s,
            Raw::Int(i) => i.to_string(),
            Raw::Float(f) => f.to_string(),
        }))
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One key of a moving region: the box at a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    pub at: Pos,
    #[serde(rename = "box")]
    pub bbox: [i64; 4],
}

/// One region: a fixed box (over a time range, or the whole recording) or a moving track.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    #[serde(rename = "box", default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<[i64; 4]>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track: Vec<Key>,
    #[serde(default)]
    pub shape: Shape,
    /// Hide everything except this area.
    #[serde(default)]
    pub inverse: bool,
    /// The first time covered; `start` for the first frame. Default: the first key of a track,
    /// the first frame for a box.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Pos>,
    /// The last time covered; `end` for the last frame (`until: end` reads the same). Default:
    /// the last key of a track, the last frame for a box.
    #[serde(default, alias = "until", skip_serializing_if = "Option::is_none")]
    pub to: Option<Pos>,
    /// A name for the reviewer (a track's subject: `witness-face`), shown in the preview, the
    /// report and the warnings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set on a track `custody detect` drafted: the machine's evidence for it and the person's
    /// decision. A region without it was drawn by a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected: Option<Detected>,
}

/// What a person decided about a track the machine found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// No one has decided yet: `custody redact` refuses the spec.
    Pending,
    /// Redacted.
    Accepted,
    /// Left visible; kept in the spec and the record.
    Rejected,
}

impl Decision {
    pub fn name(self) -> &'static str {
        match self {
            Decision::Pending => "pending",
            Decision::Accepted => "accepted",
            Decision::Rejected => "rejected",
        }
    }
}

/// A track drafted by `custody detect`. Confidences are decimal strings (`"0.912"`): the
/// ledger's canonical encoding holds no floating-point numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detected {
    /// The track's number in the draft (1, 2, …, in the order faces first appear).
    pub track: u32,
    pub decision: Decision,
    /// The frames the detector found it in (between them the box is interpolated), and the
    /// first and last of them.
    pub detections: usize,
    pub first_frame: usize,
    pub last_frame: usize,
    /// The detector's confidence over those detections.
    pub confidence_mean: String,
    pub confidence_min: String,
    pub confidence_max: String,
    /// Never found at or above the threshold: shown to the reviewer first.
    #[serde(default)]
    pub low_confidence: bool,
    /// Who decided, and how (`named` on the command line, `accept-all-above 0.8`, `accept-all`,
    /// or `edited` in the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub how: Option<String>,
}

impl Detected {
    /// The track's best confidence as a number.
    pub fn best(&self) -> f64 {
        self.confidence_max.parse().unwrap_or(0.0)
    }
}

/// How a draft was made: by which detector, on which item, with which settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detection {
    pub item: String,
    pub sha256: String,
    pub model: String,
    pub model_sha256: String,
    pub backend: String,
    pub threshold: String,
    pub floor: String,
    /// Every how many frames the detector ran.
    pub every: usize,
    /// The size of picture the detector saw (the displayed picture, scaled down).
    pub scaled_to: String,
    /// How much each found box was grown about its centre.
    pub margin: String,
    pub first_frame: usize,
    pub last_frame: usize,
}

/// One audio range to mute or bleep.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioSpec {
    pub action: AudioAction,
    pub from: Pos,
    pub to: Pos,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The item a stored spec was made for (informational when read back).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecSource {
    pub item: String,
    pub sha256: String,
    /// `WxH`: the size of the picture the coordinates refer to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
}

/// A whole redaction spec: the YAML file format, and the stored object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill: Option<Fill>,
    /// The reason given to every region and range that has none of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub regions: Vec<RegionSpec>,
    #[serde(default)]
    pub audio: Vec<AudioSpec>,
    #[serde(default)]
    pub keep_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SpecSource>,
    /// Set on a draft from `custody detect` (and kept through review): how its tracks were found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<Detection>,
}

impl Spec {
    /// Read a YAML (or JSON) spec file; errors name the file, line and column.
    pub fn read(path: &Path) -> Result<Spec> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| error::input(format!("cannot read the redaction spec {}: {e}", path.display())))?;
        Spec::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, name: &str) -> Result<Spec> {
        serde_yaml_ng::from_str::<Spec>(text).map_err(|e| {
            let at = e.location().map(|l| format!(" at line {} column {}", l.line(), l.column())).unwrap_or_default();
            // serde_yaml_ng repeats the location at the end of its message.
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
            error::input(format!("redaction spec {name}{at}: {msg}"))
        })
    }

    /// Refuse a spec with a track no one has decided (exit 2, naming each): no machine-only
    /// release.
    pub fn require_decisions(&self) -> Result<()> {
        let pending: Vec<String> = self
            .regions
            .iter()
            .filter_map(|r| r.detected.as_ref().filter(|d| d.decision == Decision::Pending))
            .map(|d| {
                format!(
                    "track {} ({}frames {}-{}, confidence up to {})",
                    d.track,
                    if d.low_confidence { "low-confidence, " } else { "" },
                    d.first_frame,
                    d.last_frame,
                    d.confidence_max
                )
            })
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        Err(error::input(format!(
            "the redaction spec has {} track{} the detector found that no one has decided: {}. A person decides \
             every track: `custody review SPEC --accept N,… --reject N,… --reason CODE` (or set decision: \
             accepted/rejected in the spec). Nothing was recorded",
            pending.len(),
            if pending.len() == 1 { "" } else { "s" },
            pending.join("; ")
        )))
    }

    /// The spec as rendered: without the tracks a reviewer rejected (they stay in the stored
    /// spec, with their decision).
    pub fn without_rejected(&self) -> Spec {
        let mut spec = self.clone();
        spec.regions.retain(|r| r.detected.as_ref().is_none_or(|d| d.decision != Decision::Rejected));
        spec
    }

    /// Give every region and range without a reason the spec's reason, then `fallback`
    /// (`--reason`); fail naming the first one left without. A rejected track needs none: it
    /// is not redacted.
    pub fn settle_reasons(&mut self, fallback: Option<&str>) -> Result<()> {
        let default = self.reason.clone().or_else(|| fallback.map(str::to_owned));
        let regions = self
            .regions
            .iter_mut()
            .enumerate()
            .filter(|(_, r)| r.detected.as_ref().is_none_or(|d| d.decision != Decision::Rejected))
            .map(|(i, r)| (format!("region {}", i + 1), &mut r.reason));
        let ranges = self.audio.iter_mut().enumerate().map(|(i, a)| (format!("audio range {}", i + 1), &mut a.reason));
        for (what, reason) in regions.chain(ranges) {
            if reason.as_deref().is_none_or(|s| s.trim().is_empty()) {
                *reason = Some(default.clone().ok_or_else(|| {
                    error::input(format!(
                        "{what} has no reason: every redaction needs a reason or exemption code (--reason CODE, or reason: in the spec)"
                    ))
                })?);
            }
        }
        self.reason = default;
        Ok(())
    }
}

/// `X,Y,W,H[@FROM-TO]` from the command line.
pub fn parse_box_flag(text: &str, shape: Shape) -> Result<RegionSpec> {
    let flag = if shape == Shape::Ellipse { "--ellipse" } else { "--box" };
    let (geom, range) = match text.split_once('@') {
        Some((g, r)) => (g, Some(r)),
        None => (text, None),
    };
    let nums: Vec<i64> = geom
        .split(',')
        .map(|n| n.trim().parse::<i64>())
        .collect::<Result<_, _>>()
        .map_err(|_| error::input(format!("{flag} {text:?}: give X,Y,W,H in whole pixels, optionally @FROM-TO")))?;
    let bbox: [i64; 4] =
        nums.try_into().map_err(|_| error::input(format!("{flag} {text:?}: give exactly four numbers X,Y,W,H")))?;
    let (from, to) = match range {
        Some(r) => {
            let (a, b) = split_range(r).map_err(|e| error::input(format!("{flag} {text:?}: {e}")))?;
            (Some(a), Some(b))
        }
        None => (None, None),
    };
    Ok(RegionSpec { bbox: Some(bbox), shape, from, to, ..RegionSpec::default() })
}

/// `FROM-TO` from the command line (`--mute`, `--bleep`).
pub fn parse_range_flag(text: &str, action: AudioAction) -> Result<AudioSpec> {
    let flag = if action == AudioAction::Mute { "--mute" } else { "--bleep" };
    let (from, to) = split_range(text).map_err(|e| error::input(format!("{flag} {text:?}: {e}")))?;
    Ok(AudioSpec { action, from, to, reason: None })
}

/// `start` and `end`: the first frame (or sample) and the last, whatever the recording's length.
const START: &str = "start";
const END: &str = "end";

/// A position, or one of the words `start` and `end`.
fn is_position(text: &str) -> bool {
    let t = text.trim();
    t == START || t == END || t.parse::<Position>().is_ok()
}

/// Split `FROM-TO` at the one dash where both sides are positions (wall-clock times hold
/// dashes of their own).
fn split_range(text: &str) -> Result<(Pos, Pos), String> {
    let splits: Vec<(Pos, Pos)> = text
        .match_indices('-')
        .filter_map(|(i, _)| {
            let (a, b) = (&text[..i], &text[i + 1..]);
            (is_position(a) && is_position(b)).then(|| (Pos(a.trim().to_owned()), Pos(b.trim().to_owned())))
        })
        .collect();
    match splits.len() {
        1 => Ok(splits.into_iter().next().expect("one")),
        0 => Err("give a range FROM-TO of two positions (HH:MM:SS.mmm, seconds, frame:N, or start and end)".to_owned()),
        _ => Err("the range is ambiguous; write its positions as HH:MM:SS.mmm".to_owned()),
    }
}

/// The picture the coordinates refer to: as `custody still` shows it (sample aspect ratio
/// applied, rotation applied), and the coded picture the pixels are changed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub coded: (u32, u32),
    /// The width after applying the sample aspect ratio, before rotation.
    pub scaled_width: u32,
    /// Clockwise degrees: 0, 90, 180 or 270.
    pub rotation: i32,
    /// Shown flipped left to right after the rotation.
    pub mirrored: bool,
}

impl Geometry {
    pub fn new(coded: (u32, u32), sar: (i32, i32), orientation: crate::media::ffi::Orientation) -> Geometry {
        let rotation = orientation.rotation;
        // The same rounding as the still: an even width.
        let scaled_width = crate::media::still::shown_width(coded.0, sar);
        Geometry { coded, scaled_width, rotation, mirrored: orientation.mirrored }
    }

    /// The displayed picture's size.
    pub fn display(&self) -> (u32, u32) {
        let (sw, h) = (self.scaled_width, self.coded.1);
        if self.rotation == 90 || self.rotation == 270 { (h, sw) } else { (sw, h) }
    }

    /// A displayed rectangle `[x0, x1) × [y0, y1)` (fractional) in coded pixels, grown
    /// outwards to whole pixels so nothing of the asked area is missed.
    pub fn to_coded(&self, r: RectF) -> Rect {
        let (sw, h) = (self.scaled_width as f64, self.coded.1 as f64);
        // Undo the mirror: it is applied last, across the displayed width.
        let r = if self.mirrored {
            let dw = self.display().0 as f64;
            RectF { x0: dw - r.x1, x1: dw - r.x0, ..r }
        } else {
            r
        };
        // Undo the rotation: back to the upright-before-rotation picture.
        let (x0, x1, y0, y1) = match self.rotation {
            90 => (r.y0, r.y1, h - r.x1, h - r.x0),
            180 => (sw - r.x1, sw - r.x0, h - r.y1, h - r.y0),
            270 => (sw - r.y1, sw - r.y0, r.x0, r.x1),
            _ => (r.x0, r.x1, r.y0, r.y1),
        };
        // Undo the aspect-ratio scaling.
        let k = self.coded.0 as f64 / sw;
        let clamp = |v: f64, max: u32| (v.max(0.0) as u32).min(max);
        Rect {
            x0: clamp((x0 * k).floor(), self.coded.0),
            x1: clamp((x1 * k).ceil(), self.coded.0),
            y0: clamp(y0.floor(), self.coded.1),
            y1: clamp(y1.ceil(), self.coded.1),
        }
    }
}

/// A rectangle in displayed pixels, fractional (interpolated tracks).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RectF {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

/// A rectangle in coded pixels, `[x0, x1) × [y0, y1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

/// A region resolved against the item: times in microseconds from the first frame.
#[derive(Clone, Debug)]
pub struct Region {
    pub name: Option<String>,
    /// Given as a track (keys), not a fixed box.
    pub moving: bool,
    /// A track the detector found: it starts and ends where the face came and went, so
    /// reaching one end of the recording and not the other is no sign of a mistake.
    pub detected: bool,
    pub shape: Shape,
    pub inverse: bool,
    pub reason: String,
    pub from_us: i64,
    /// Inclusive: a frame shown at `to_us` is covered.
    pub to_us: i64,
    /// Boxes at times; one key for a fixed box.
    pub keys: Vec<(i64, [i64; 4])>,
}

impl Region {
    /// Whether a frame shown over `[t, t + len)` is covered.
    pub fn covers(&self, t: i64, len: i64) -> bool {
        t <= self.to_us && t + len.max(1) > self.from_us
    }

    /// The box (displayed pixels) at time `t`: linear between keys, held before the first and
    /// after the last.
    pub fn box_at(&self, t: i64) -> RectF {
        let k = &self.keys;
        let rect = |b: [f64; 4]| RectF { x0: b[0], y0: b[1], x1: b[0] + b[2], y1: b[1] + b[3] };
        let f = |b: [i64; 4]| b.map(|v| v as f64);
        if t <= k[0].0 || k.len() == 1 {
            return rect(f(k[0].1));
        }
        for w in k.windows(2) {
            let ((ta, a), (tb, b)) = (w[0], w[1]);
            if t <= tb {
                let s = (t - ta) as f64 / (tb - ta).max(1) as f64;
                let (a, b) = (f(a), f(b));
                return rect([0, 1, 2, 3].map(|i| a[i] + (b[i] - a[i]) * s));
            }
        }
        rect(f(k[k.len() - 1].1))
    }
}

impl Region {
    /// How the region is named to people: `region 2`, `region 2 (witness-face)`.
    pub fn label(&self, number: usize) -> String {
        match &self.name {
            Some(n) => format!("region {number} ({n})"),
            None => format!("region {number}"),
        }
    }

    /// What it is: `track`, `box`, `ellipse`, `ellipse track`.
    pub fn kind(&self) -> &'static str {
        match (self.moving, self.shape) {
            (true, Shape::Rect) => "track",
            (true, Shape::Ellipse) => "ellipse track",
            (false, Shape::Rect) => "box",
            (false, Shape::Ellipse) => "ellipse",
        }
    }
}

/// Which frames of the item a region covers. Covered frames are consecutive: a region covers
/// a span of time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// 1-based, in the order of the spec.
    pub region: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Frames covered, of all the item's frames.
    pub frames: usize,
    pub of: usize,
    /// The first and the last frame covered (none when it covers no frame).
    pub first: Option<usize>,
    pub last: Option<usize>,
    /// Set when the region reaches one end of the recording and not the other, or covers no
    /// frame: the frames it leaves out are likely meant to be hidden too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// The frames every region covers, with a warning for each region that starts at the first
/// frame and stops before the last, or starts after the first and runs to the last: a track
/// whose last key sits a frame before the end leaves that frame exposed, and nothing else would
/// say so. The same test as the redaction itself (`Region::covers`), so the counts are those
/// of the frames painted.
pub fn coverage(plan: &Plan, index: &FrameIndex) -> Vec<Coverage> {
    let of = index.len();
    plan.regions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let covered: Vec<usize> = (0..of).filter(|&n| r.covers(index.time_us(n), index.frame_len_us(n))).collect();
            let (first, last) = (covered.first().copied(), covered.last().copied());
            let label = r.label(i + 1);
            let frames_text = |a: usize, b: usize| {
                let n = b - a + 1;
                let which = if a == b { format!("frame {a}") } else { format!("frames {a}-{b}") };
                let to = if b + 1 < of { index.time_us(b + 1) } else { index.duration_us() };
                format!(
                    "{n} frame{} ({which}, on screen {} to {})",
                    if n == 1 { "" } else { "s" },
                    format_us(index.time_us(a)),
                    format_us(to)
                )
            };
            let warning = match (first, last) {
                (None, _) | (_, None) => Some(format!(
                    "{label} covers no frame: nothing of it is hidden ({} to {} falls between frames)",
                    format_us(r.from_us),
                    format_us(r.to_us)
                )),
                (Some(0), Some(b)) if b + 1 < of && !r.detected => Some(format!(
                    "{label} starts at the first frame but stops at {}, before the last: its last {} NOT redacted; \
                     if it should run to the end, give it `until: end` in the spec (on the command line, @FROM-end)",
                    format_us(r.to_us),
                    frames_text(b + 1, of - 1) + if of - 1 - b == 1 { " is" } else { " are" }
                )),
                (Some(a), Some(b)) if a > 0 && b + 1 == of && !r.detected => Some(format!(
                    "{label} runs to the last frame but starts at {}, after the first: the first {} NOT redacted; \
                     if it should start at the beginning, give it `from: start` in the spec (on the command line, @start-TO)",
                    format_us(r.from_us),
                    frames_text(0, a - 1) + if a == 1 { " is" } else { " are" }
                )),
                _ => None,
            };
            Coverage { region: i + 1, name: r.name.clone(), frames: covered.len(), of, first, last, warning }
        })
        .collect()
}

/// An audio range resolved: samples with time in `[from_us, to_us)`.
#[derive(Clone, Debug)]
pub struct AudioRange {
    pub action: AudioAction,
    pub from_us: i64,
    pub to_us: i64,
    pub reason: String,
}

/// Every decision, resolved and checked against the item.
#[derive(Clone, Debug)]
pub struct Plan {
    pub fill: Fill,
    pub regions: Vec<Region>,
    pub audio: Vec<AudioRange>,
    pub keep_tags: Vec<String>,
}

/// What the item offers: its frame index, timeline, picture (None for audio alone), audio.
pub struct Subject<'a> {
    pub index: &'a FrameIndex,
    pub timeline: &'a Timeline,
    pub geometry: Option<Geometry>,
    pub has_audio: bool,
}

/// Check every decision against the item and resolve its positions.
pub fn resolve(spec: &Spec, subject: &Subject) -> Result<Plan> {
    let index = subject.index;
    let total = index.duration_us();
    let at = |p: &Pos, what: &str| -> Result<i64> {
        match p.0.trim() {
            START => return Ok(0),
            END => return Ok(total),
            _ => {}
        }
        let pos: Position = p.0.parse().map_err(|e| error::input(format!("{what}: {e} (or start, end)")))?;
        let us = match pos {
            Position::Frame(n) => {
                if index.audio {
                    return Err(error::input(format!("{what}: frame:N needs video; this item is audio-only")));
                }
                if n as usize >= index.len() {
                    return Err(error::input(format!(
                        "{what}: frame:{n} is past the end; the video has {} frames",
                        index.len()
                    )));
                }
                index.time_us(n as usize)
            }
            Position::Time(us) => us,
            Position::WallClock(dt) => {
                index.wall_to_media_us(&dt, subject.timeline).map_err(|e| error::input(format!("{what}: {e}")))?
            }
        };
        if us < 0 || us > total {
            return Err(error::input(format!(
                "{what}: {} is past the end of the recording, which runs from 00:00:00.000 to {}",
                format_us(us),
                format_us(total)
            )));
        }
        Ok(us)
    };
    let check_range = |from: i64, to: i64, what: &str| -> Result<()> {
        if to <= from {
            return Err(error::input(format!(
                "{what}: the end {} is not after the start {}",
                format_us(to),
                format_us(from)
            )));
        }
        Ok(())
    };

    let mut regions = Vec::new();
    if !spec.regions.is_empty() && subject.geometry.is_none() {
        return Err(error::input(
            "this item has no video: regions (--box, --ellipse, regions:) cannot apply; use --mute or --bleep",
        ));
    }
    for (i, r) in spec.regions.iter().enumerate() {
        let what = format!("region {}", i + 1);
        let geometry = subject.geometry.expect("checked");
        let (dw, dh) = geometry.display();
        let check_box = |b: &[i64; 4], what: &str| -> Result<()> {
            let [x, y, w, h] = *b;
            if w <= 0 || h <= 0 {
                return Err(error::input(format!(
                    "{what}: the box {x},{y},{w},{h} has no area (width and height must be > 0)"
                )));
            }
            if x < 0 || y < 0 || x + w > dw as i64 || y + h > dh as i64 {
                return Err(error::input(format!(
                    "{what}: the box {x},{y},{w},{h} is outside the {dw}x{dh} picture (coordinates are pixels of the picture as displayed, as `custody still` shows it)"
                )));
            }
            Ok(())
        };
        let keys: Vec<(i64, [i64; 4])> = match (&r.bbox, r.track.is_empty()) {
            (Some(b), true) => {
                check_box(b, &what)?;
                vec![(0, *b)]
            }
            (None, false) => {
                let mut keys = Vec::new();
                for (k, key) in r.track.iter().enumerate() {
                    let kwhat = format!("{what}, key {}", k + 1);
                    check_box(&key.bbox, &kwhat)?;
                    let t = at(&key.at, &kwhat)?;
                    if let Some((prev, _)) = keys.last()
                        && t <= *prev
                    {
                        return Err(error::input(format!("{kwhat}: the keys of a track must be in time order")));
                    }
                    keys.push((t, key.bbox));
                }
                keys
            }
            (Some(_), false) => {
                return Err(error::input(format!("{what}: give either box or track, not both")));
            }
            (None, true) => return Err(error::input(format!("{what}: give a box or a track"))),
        };
        // Either end not given: a track's key at that end, a box's end of the recording.
        let moving = !r.track.is_empty();
        let from_us = match &r.from {
            Some(a) => at(a, &format!("{what}, from"))?,
            None if moving => keys[0].0,
            None => 0,
        };
        let to_us = match &r.to {
            Some(b) => at(b, &format!("{what}, to"))?,
            None if moving => keys[keys.len() - 1].0,
            None => total,
        };
        if r.from.is_some() || r.to.is_some() {
            check_range(from_us, to_us, &what)?;
        }
        regions.push(Region {
            name: r.name.clone().filter(|n| !n.trim().is_empty()),
            moving,
            detected: r.detected.is_some(),
            shape: r.shape,
            inverse: r.inverse,
            reason: r.reason.clone().unwrap_or_default(),
            from_us,
            to_us,
            keys,
        });
    }
    let mut audio = Vec::new();
    if !spec.audio.is_empty() && !subject.has_audio {
        return Err(error::input("this item has no audio: --mute and --bleep cannot apply"));
    }
    for (i, a) in spec.audio.iter().enumerate() {
        let what = format!("audio range {}", i + 1);
        let (from, to) = (at(&a.from, &what)?, at(&a.to, &what)?);
        check_range(from, to, &what)?;
        audio.push(AudioRange {
            action: a.action,
            from_us: from,
            to_us: to,
            reason: a.reason.clone().unwrap_or_default(),
        });
    }
    Ok(Plan { fill: spec.fill.unwrap_or_default(), regions, audio, keep_tags: spec.keep_tags.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_at_the_dash_between_positions() {
        let (a, b) = split_range("00:00:01.5-00:00:03").unwrap();
        assert_eq!((a.0.as_str(), b.0.as_str()), ("00:00:01.5", "00:00:03"));
        let (a, b) = split_range("2024-05-01T14:03:10-2024-05-01T14:03:20").unwrap();
        assert_eq!((a.0.as_str(), b.0.as_str()), ("2024-05-01T14:03:10", "2024-05-01T14:03:20"));
        assert!(split_range("frame:3-frame:9").is_ok());
        assert!(split_range("3").is_err());
        let (a, b) = split_range("00:00:05-end").unwrap();
        assert_eq!((a.0.as_str(), b.0.as_str()), ("00:00:05", "end"));
        let (a, b) = split_range("start-2024-05-01T14:03:20").unwrap();
        assert_eq!((a.0.as_str(), b.0.as_str()), ("start", "2024-05-01T14:03:20"));
        assert!(split_range("begin-end").is_err());
    }

    #[test]
    fn until_reads_as_to_and_a_region_takes_a_name() {
        let s = Spec::parse("regions:\n  - track: [{at: 0, box: [0, 0, 2, 2]}]\n    name: face\n    until: end\n", "s")
            .unwrap();
        assert_eq!(
            (s.regions[0].to.as_ref().map(|p| p.0.as_str()), s.regions[0].name.as_deref()),
            (Some("end"), Some("face"))
        );
        let e =
            Spec::parse("regions:\n  - box: [0, 0, 2, 2]\n    to: 3\n    until: end\n", "s").unwrap_err().to_string();
        assert!(e.contains("duplicate"), "{e}");
    }

    #[test]
    fn yaml_errors_carry_line_and_column_and_unknown_keys_are_named() {
        let e = Spec::parse("regions:\n  - box: [1, 2, 3]\n", "s.yaml").unwrap_err().to_string();
        assert!(e.contains("s.yaml at line 2 column"), "{e}");
        let e = Spec::parse("regions:\n  - bx: [1, 2, 3, 4]\n", "s.yaml").unwrap_err().to_string();
        assert!(e.contains("bx"), "{e}");
    }

    #[test]
    fn rotated_and_anamorphic_boxes_map_onto_the_coded_picture() {
        // 704x480 with 10:11 pixels shows as 640x480.
        use crate::media::ffi::Orientation;
        let g = Geometry::new((704, 480), (10, 11), Orientation::default());
        assert_eq!(g.display(), (640, 480));
        assert_eq!(
            g.to_coded(RectF { x0: 320.0, y0: 0.0, x1: 640.0, y1: 10.0 }),
            Rect { x0: 352, y0: 0, x1: 704, y1: 10 }
        );
        // 1920x1080 coded, rotated 90° clockwise: shown 1080 wide, 1920 high. The displayed
        // top-left corner is the coded bottom-left.
        let g = Geometry::new((1920, 1080), (1, 1), Orientation { rotation: 90, mirrored: false });
        assert_eq!(g.display(), (1080, 1920));
        assert_eq!(
            g.to_coded(RectF { x0: 0.0, y0: 0.0, x1: 10.0, y1: 20.0 }),
            Rect { x0: 0, y0: 1070, x1: 20, y1: 1080 }
        );
        // Mirrored as well (a transpose): the displayed top-left corner is the coded top-left.
        let g = Geometry::new((1920, 1080), (1, 1), Orientation { rotation: 90, mirrored: true });
        assert_eq!(g.to_coded(RectF { x0: 0.0, y0: 0.0, x1: 10.0, y1: 20.0 }), Rect { x0: 0, y0: 0, x1: 20, y1: 10 });
        // Mirrored alone: the displayed left edge is the coded right edge.
        let g = Geometry::new((640, 480), (1, 1), Orientation { rotation: 0, mirrored: true });
        assert_eq!(
            g.to_coded(RectF { x0: 0.0, y0: 0.0, x1: 10.0, y1: 20.0 }),
            Rect { x0: 630, y0: 0, x1: 640, y1: 20 }
        );
    }

    #[test]
    fn tracks_interpolate_between_keys_and_hold_at_the_ends() {
        let r = Region {
            name: None,
            moving: true,
            detected: false,
            shape: Shape::Rect,
            inverse: false,
            reason: "x".into(),
            from_us: 0,
            to_us: 2_000_000,
            keys: vec![(0, [0, 0, 10, 10]), (2_000_000, [100, 50, 10, 10])],
        };
        assert_eq!(r.box_at(1_000_000), RectF { x0: 50.0, y0: 25.0, x1: 60.0, y1: 35.0 });
        assert_eq!(r.box_at(5_000_000).x0, 100.0);
        assert!(r.covers(1_990_000, 40_000) && !r.covers(2_000_001, 40_000));
    }
}
