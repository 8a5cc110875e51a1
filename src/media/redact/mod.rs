//! Redaction: re-encode an item with regions hidden and audio ranges muted or bleeped, carrying
//! none of its metadata, then check the result (frame count, duration, metadata) instead of
//! assuming it; and the reviewer's contact sheet.

pub mod exemptions;
pub mod fill;
pub mod spec;

use std::path::Path;

use anyhow::Result;
use ffmpeg::{format, frame};
use ffmpeg_next as ffmpeg;
use serde::Serialize;

use super::exact::{AudioCodec, Edits, ExactReport, Job, Quality};
use super::index::FrameIndex;
use super::probe::open_input;
use super::still::{self, Picture, Render};
use super::time::format_us;
use crate::error;
use fill::{Mask, Plane};
use spec::{Fill, Geometry, Plan};

/// One piece of metadata: a tag, or a stream, in a scope (`container`, `stream 1 subtitle`,
/// `chapter 0`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Entry {
    pub scope: String,
    pub key: String,
    pub value: String,
}

/// Every tag, stream and chapter of a file, as FFmpeg reads them.
pub fn inventory(path: &Path) -> Result<Vec<Entry>> {
    super::init();
    let input = open_input(path).map_err(|e| error::input(format!("FFmpeg cannot open {}: {e}", path.display())))?;
    let mut out = Vec::new();
    let entry = |scope: &str, key: &str, value: &str| Entry {
        scope: scope.to_owned(),
        key: key.to_owned(),
        value: value.to_owned(),
    };
    for (k, v) in super::ffi::tags(&input.metadata()) {
        out.push(entry("container", &k, &v));
    }
    for s in input.streams() {
        let params = s.parameters();
        let kind = super::probe::kind_name(params.medium());
        let scope = format!("stream {} {kind}", s.index());
        let mut what = params.id().name().to_owned();
        if s.disposition().contains(format::stream::Disposition::ATTACHED_PIC) {
            what.push_str(" (cover art)");
        }
        out.push(entry(&scope, "stream", &what));
        for (k, v) in super::ffi::tags(&s.metadata()) {
            out.push(entry(&scope, &k, &v));
        }
    }
    for (i, c) in input.chapters().enumerate() {
        let scope = format!("chapter {i}");
        out.push(entry(&scope, "chapter", &format!("{}..{}", c.start(), c.end())));
        for (k, v) in super::ffi::tags(&c.metadata()) {
            out.push(entry(&scope, &k, &v));
        }
    }
    Ok(out)
}

/// Tags the MP4 muxer writes of its own accord: structure, not anything of the source.
const MUXER_TAGS: [&str; 5] = ["major_brand", "minor_version", "compatible_brands", "handler_name", "vendor_id"];

/// What a redaction did, checked.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub encoding: ExactReport,
    pub frames_source: usize,
    pub frames_output: usize,
    pub duration_source_us: i64,
    pub duration_output_us: i64,
    /// Frames in which at least one pixel was hidden; samples muted or bleeped.
    pub frames_redacted: u64,
    /// Frames each region was painted in, in the plan's order.
    pub region_frames: Vec<u64>,
    pub samples_redacted: u64,
    pub before: Vec<Entry>,
    pub after: Vec<Entry>,
    pub removed: Vec<Entry>,
}

/// Render the redacted copy of `src` into `dst` (`container`: mp4 or wav) and check it.
pub fn render(
    src: &Path,
    dst: &Path,
    index: &FrameIndex,
    plan: &Plan,
    geometry: Option<Geometry>,
    container: &'static str,
    audio: AudioCodec,
) -> Result<Outcome> {
    let before = inventory(src)?;
    let tags: Vec<(String, String)> = before
        .iter()
        .filter(|e| e.scope == "container" && plan.keep_tags.iter().any(|k| k == &e.key))
        .map(|e| (e.key.clone(), e.value.clone()))
        .collect();
    let job = Job {
        index,
        first: 0,
        last: index.len() - 1,
        // Visually lossless: outside the regions the copy must look like the source.
        quality: Quality { crf: 16, lossless: false, in_order: true },
        container,
        audio,
        tags,
        span_us: None,
    };
    let mut redactor =
        Redactor { plan, geometry, index, frames: 0, samples: 0, region_frames: vec![0; plan.regions.len()] };
    let encoding = super::exact::encode(src, dst, &job, &mut redactor)?;
    let (frames_redacted, samples_redacted, region_frames) =
        (redactor.frames, redactor.samples, redactor.region_frames);

    // Verified, not assumed: read the copy back.
    let after = inventory(dst)?;
    let unexpected: Vec<&Entry> = after
        .iter()
        .filter(|e| match (e.scope.as_str(), e.key.as_str()) {
            (_, "stream") => false,
            ("container", k) => !MUXER_TAGS.contains(&k) && !plan.keep_tags.iter().any(|t| t == k),
            // The MP4 muxer marks every track's language "undetermined" unless told one.
            (s, "language") => !s.starts_with("stream ") || e.value != "und",
            (s, k) => !s.starts_with("stream ") || !MUXER_TAGS.contains(&k),
        })
        .collect();
    let streams: Vec<&Entry> = after.iter().filter(|e| e.key == "stream").collect();
    let wanted_streams = usize::from(!index.audio) + usize::from(encoding.audio_sample_rate > 0);
    if !unexpected.is_empty() || streams.len() != wanted_streams {
        let list: Vec<String> = unexpected.iter().map(|e| format!("{} {}={}", e.scope, e.key, e.value)).collect();
        return Err(error::mismatch(format!(
            "the redacted copy still carries metadata it must not ({}; {} streams where {wanted_streams} were written); nothing was recorded",
            list.join(", "),
            streams.len()
        )));
    }
    let out_index = FrameIndex::build(dst)?;
    let (frames_source, frames_output) = (index.len(), out_index.len());
    // Audio alone plays from the stream's start time: priming samples before it are dropped.
    let priming = encoding.audio_priming_us;
    let (duration_source_us, duration_output_us) = (index.duration_us() - priming, out_index.duration_us());
    let tolerance = if index.audio {
        // Audio packets are reframed: the end may differ by less than one packet.
        index.frame_len_us(index.len() - 1).max(out_index.frame_len_us(out_index.len() - 1))
    } else {
        1_000
    };
    if (!index.audio && frames_output != frames_source) || (duration_output_us - duration_source_us).abs() > tolerance {
        return Err(error::mismatch(format!(
            "the redacted copy does not match the source: {frames_output} frames lasting {} instead of {frames_source} lasting {}; nothing was recorded",
            format_us(duration_output_us),
            format_us(duration_source_us)
        )));
    }
    // The streams carried over (re-encoded): the indexed one and the audio stream.
    let kept: Vec<String> =
        [Some(index.stream), encoding.audio_stream].into_iter().flatten().map(|i| format!("stream {i} ")).collect();
    let removed: Vec<Entry> = before
        .iter()
        .filter(|e| {
            if e.key == "stream" {
                !kept.iter().any(|k| e.scope.starts_with(k.as_str()))
            } else {
                !after.iter().any(|a| a.key == e.key && a.value == e.value)
            }
        })
        .cloned()
        .collect();
    Ok(Outcome {
        encoding,
        frames_source,
        frames_output,
        duration_source_us,
        duration_output_us,
        frames_redacted,
        samples_redacted,
        region_frames,
        before,
        after,
        removed,
    })
}

/// Applies the plan to every picture and sound on its way to the encoder.
struct Redactor<'a> {
    plan: &'a Plan,
    geometry: Option<Geometry>,
    index: &'a FrameIndex,
    frames: u64,
    samples: u64,
    region_frames: Vec<u64>,
}

impl Redactor<'_> {
    /// The covered pixels of frame `n` shown at `t`, and the largest region's size; counts the
    /// frame for each region that covers it.
    fn mask(&mut self, n: usize, t: i64) -> Option<(Mask, usize)> {
        let geometry = self.geometry?;
        let len = self.index.frame_len_us(n);
        let active: Vec<_> = self.plan.regions.iter().enumerate().filter(|(_, r)| r.covers(t, len)).collect();
        if active.is_empty() {
            return None;
        }
        for (i, _) in &active {
            self.region_frames[*i] += 1;
        }
        let active: Vec<_> = active.into_iter().map(|(_, r)| r).collect();
        let (w, h) = (geometry.coded.0 as usize, geometry.coded.1 as usize);
        let mut mask = Mask::new(w, h);
        let mut keep: Option<Mask> = None;
        let mut size = 0;
        for r in &active {
            let rect = geometry.to_coded(r.box_at(t));
            if r.inverse {
                keep.get_or_insert_with(|| Mask::new(w, h)).paint(rect, r.shape, 1);
                size = size.max(w.max(h));
            } else {
                mask.paint(rect, r.shape, 1);
                size = size.max(((rect.x1 - rect.x0).max(rect.y1 - rect.y0)) as usize);
            }
        }
        if let Some(keep) = keep {
            mask.cover_outside(&keep);
        }
        Some((mask, size))
    }
}

impl Edits for Redactor<'_> {
    fn video(&mut self, frame: &mut frame::Video, n: usize, t_us: i64) -> Result<()> {
        let Some((mask, size)) = self.mask(n, t_us) else { return Ok(()) };
        if mask.is_empty() {
            return Ok(());
        }
        // Never paint into the decoder's reference pictures: later frames are predicted from them.
        super::ffi::make_writable(frame)?;
        let fmt = frame.format();
        let desc = fmt.descriptor().ok_or_else(|| error::environment("a picture format without a descriptor"))?;
        let full_range = matches!(fmt, format::Pixel::YUVJ420P | format::Pixel::YUVJ422P | format::Pixel::YUVJ444P);
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        for p in 0..3 {
            let (sx, sy) = if p == 0 { (0, 0) } else { (desc.log2_chroma_w() as u32, desc.log2_chroma_h() as u32) };
            let stride = frame.stride(p);
            let mut plane = Plane {
                data: frame.data_mut(p),
                stride,
                w: w.div_ceil(1 << sx),
                h: h.div_ceil(1 << sy),
                shift_x: sx,
                shift_y: sy,
            };
            let neutral = match (p, full_range) {
                (0, true) => 0,
                (0, false) => 16,
                _ => 128,
            };
            fill::fill_plane(&mut plane, &mask, self.plan.fill, neutral, size);
        }
        self.frames += 1;
        Ok(())
    }

    fn audio(&mut self, frame: &mut frame::Audio, first_sample: i64, rate: u32) -> Result<()> {
        if self.plan.audio.is_empty() {
            return Ok(());
        }
        let count = frame.samples();
        let channels = frame.channels() as usize;
        let planar = frame.is_planar();
        let planar_f32 = planar && matches!(frame.format(), format::Sample::F32(_));
        if planar && !planar_f32 {
            return Err(error::environment("unexpected planar audio format while redacting"));
        }
        let n_planes = if planar { channels } else { 1 };
        // Each plane is a separate buffer; take them one by one.
        let mut owned: Vec<Vec<u8>> = (0..n_planes).map(|p| frame.data(p).to_vec()).collect();
        let to_sample = |us: i64| -> i64 { ((us as i128 * rate as i128) / 1_000_000) as i64 };
        let to_sample_up = |us: i64| -> i64 { ((us as i128 * rate as i128 + 999_999) / 1_000_000) as i64 };
        let mut touched = 0;
        for r in &self.plan.audio {
            let mut planes: Vec<&mut [u8]> = owned.iter_mut().map(|v| v.as_mut_slice()).collect();
            touched += fill::audio_range(
                &mut planes,
                planar_f32,
                channels,
                first_sample,
                count,
                to_sample(r.from_us),
                to_sample_up(r.to_us),
                r.action,
                rate,
            );
        }
        if touched > 0 {
            for (p, bytes) in owned.iter().enumerate() {
                frame.data_mut(p)[..bytes.len()].copy_from_slice(bytes);
            }
            self.samples += touched;
        }
        Ok(())
    }
}

/// The most tiles a region gets on the contact sheet.
const TILES_PER_REGION: usize = 8;

/// The reviewer's contact sheet and its captions. For each region, the source frame at the
/// first frame it covers, outlined where it is painted in that frame; for a track, also at each
/// key and at the last frame it covers (at most [`TILES_PER_REGION`], evenly spread), with its
/// whole interpolated path drawn on each. Outlines and the path are drawn in proportion to the
/// picture, so they show at 1080p and above as at 360p. The summary at the top lists the fill,
/// the audio ranges and every coverage warning.
pub fn preview(
    src: &Path,
    index: &FrameIndex,
    plan: &Plan,
    coverage: &[spec::Coverage],
    orientation: super::ffi::Orientation,
    header: &[String],
) -> Result<(Picture, Vec<String>)> {
    let mut tiles: Vec<Picture> = Vec::new();
    let mut captions: Vec<String> = Vec::new();
    // The frame on screen at `t`.
    let frame_at =
        |t: i64| index.frames.partition_point(|f| index.to_us(f.pts - index.frames[0].pts) <= t).saturating_sub(1);
    for (i, (r, c)) in plan.regions.iter().zip(coverage).enumerate() {
        let (first, last) =
            (c.first.unwrap_or_else(|| frame_at(r.from_us)), c.last.unwrap_or_else(|| frame_at(r.from_us)));
        let mut frames = vec![first];
        if r.moving {
            frames.extend(r.keys.iter().map(|k| frame_at(k.0).clamp(first, last)));
            frames.push(last);
        }
        frames.dedup();
        let frames = spread(frames, TILES_PER_REGION);
        let keys = r.keys.iter().map(|k| frame_at(k.0)).collect::<Vec<_>>();
        for n in frames {
            let (frame, _) = still::decode_frame(src, index, n)?;
            let mut pic = still::render(&frame, orientation, Render::default())?;
            let stroke = stroke_width(&pic);
            if r.moving {
                draw_path(&mut pic, r, stroke);
            }
            // Where the redaction paints it in this frame.
            let b = r.box_at(index.time_us(n));
            outline(&mut pic, b, r.shape == spec::Shape::Ellipse, stroke);
            let what = match (&r.name, r.moving) {
                (Some(name), true) => format!("TRACK {name} ({} KEYS)", r.keys.len()),
                (None, true) => format!("TRACK ({} KEYS)", r.keys.len()),
                (Some(name), false) => format!("{} {name}", r.kind().to_uppercase()),
                (None, false) => r.kind().to_uppercase(),
            };
            let key = keys.iter().position(|&k| k == n).map(|k| format!(" KEY {}", k + 1)).unwrap_or_default();
            let line = format!(
                "REGION {} {what}{} REASON {}  {} TO {}  FRAMES {} ({} OF {})  THIS FRAME {n} AT {}{key}",
                i + 1,
                if r.inverse { " (INVERSE: ALL ELSE HIDDEN)" } else { "" },
                r.reason,
                format_us(r.from_us),
                format_us(r.to_us),
                match (c.first, c.last) {
                    (Some(a), Some(b)) => format!("{a}-{b}"),
                    _ => "NONE".to_owned(),
                },
                c.frames,
                c.of,
                format_us(index.time_us(n))
            );
            still::add_caption(&mut pic, std::slice::from_ref(&line), 0)?;
            captions.push(line);
            tiles.push(pic);
        }
    }
    let width = tiles.iter().map(|t| t.width).max().unwrap_or(640);
    let mut lines: Vec<String> = header.to_vec();
    lines.push(format!("FILL {}", plan.fill.name().to_uppercase()));
    for (i, a) in plan.audio.iter().enumerate() {
        lines.push(format!(
            "AUDIO {} {:?} {} TO {} REASON {}",
            i + 1,
            a.action,
            format_us(a.from_us),
            format_us(a.to_us),
            a.reason
        ));
    }
    for w in coverage.iter().filter_map(|c| c.warning.as_ref()) {
        lines.push(format!("WARNING: {w}"));
    }
    let mut sheet = Picture::blank(width, 0);
    still::add_caption(&mut sheet, &lines, 0)?;
    for t in &tiles {
        sheet.append(t);
    }
    lines.extend(captions);
    Ok((sheet, lines))
}

/// At most `max` of `items`, evenly spread, the first and the last kept.
fn spread(items: Vec<usize>, max: usize) -> Vec<usize> {
    if items.len() <= max || max < 2 {
        return items;
    }
    let last = items.len() - 1;
    let mut out: Vec<usize> = (0..max).map(|i| items[(i * last + (max - 1) / 2) / (max - 1)]).collect();
    out.dedup();
    out
}

/// The width of a region's outline: 3 pixels at 360p, in proportion above (9 at 1080p).
fn stroke_width(pic: &Picture) -> i64 {
    ((pic.width.min(pic.height) as f64 / 120.0).round() as i64).max(3)
}

/// Set one pixel of an upright picture, when it is inside.
fn put(pic: &mut Picture, x: i64, y: i64, rgb: [u8; 3]) {
    let (w, h) = (pic.width as i64, pic.height as i64);
    if (0..w).contains(&x) && (0..h).contains(&y) {
        let o = ((y * w + x) * 3) as usize;
        pic.rgb[o..o + 3].copy_from_slice(&rgb);
    }
}

const RED: [u8; 3] = [255, 0, 0];
const WHITE: [u8; 3] = [255, 255, 255];
const YELLOW: [u8; 3] = [255, 255, 0];
const BLACK: [u8; 3] = [0, 0, 0];

/// Draw a region's outline, `stroke` pixels wide inwards from its edge (red, white, red in
/// thirds: visible on any colour), on an upright picture.
fn outline(pic: &mut Picture, b: spec::RectF, ellipse: bool, stroke: i64) {
    let band = (stroke / 3).max(1);
    let colour = |d: i64| if d >= band && d < stroke - band { WHITE } else { RED };
    draw_rect(pic, b, ellipse, stroke, colour);
}

/// Draw the edge of a rectangle (or its inscribed ellipse), `stroke` pixels wide inwards, the
/// colour of each ring `d` pixels in given by `colour`.
fn draw_rect(pic: &mut Picture, b: spec::RectF, ellipse: bool, stroke: i64, colour: impl Fn(i64) -> [u8; 3]) {
    let (x0, y0, x1, y1) = (b.x0 as i64, b.y0 as i64, b.x1.ceil() as i64 - 1, b.y1.ceil() as i64 - 1);
    if ellipse {
        let (cx, cy, rx, ry) = ((b.x0 + b.x1) / 2.0, (b.y0 + b.y1) / 2.0, (b.x1 - b.x0) / 2.0, (b.y1 - b.y0) / 2.0);
        let steps = ((rx + ry) * 8.0).max(64.0) as usize;
        for i in 0..steps {
            let a = i as f64 / steps as f64 * std::f64::consts::TAU;
            for d in 0..stroke {
                let (px, py) = (cx + (rx - d as f64) * a.cos(), cy + (ry - d as f64) * a.sin());
                put(pic, px as i64, py as i64, colour(d));
            }
        }
    } else {
        for d in 0..stroke {
            let c = colour(d);
            for x in x0 + d..=x1 - d {
                put(pic, x, y0 + d, c);
                put(pic, x, y1 - d, c);
            }
            for y in y0 + d..=y1 - d {
                put(pic, x0 + d, y, c);
                put(pic, x1 - d, y, c);
            }
        }
    }
}

/// Draw a track's path: the line its centre follows from the first frame it covers to the last
/// (straight between keys, as the boxes are interpolated), yellow on a black edge, with the box
/// at each key outlined thinly in yellow.
fn draw_path(pic: &mut Picture, r: &spec::Region, stroke: i64) {
    let centre = |b: spec::RectF| ((b.x0 + b.x1) / 2.0, (b.y0 + b.y1) / 2.0);
    let mut points = vec![centre(r.box_at(r.from_us))];
    points.extend(r.keys.iter().filter(|k| k.0 > r.from_us && k.0 < r.to_us).map(|k| centre(r.box_at(k.0))));
    points.push(centre(r.box_at(r.to_us)));
    let width = (stroke / 2).max(2);
    for (w, c) in [(width + 2, BLACK), (width, YELLOW)] {
        for p in points.windows(2) {
            line(pic, p[0], p[1], w, c);
        }
    }
    let thin = (stroke / 3).max(1);
    for k in r.keys.iter().filter(|k| k.0 >= r.from_us && k.0 <= r.to_us) {
        draw_rect(pic, r.box_at(k.0), r.shape == spec::Shape::Ellipse, thin, |_| YELLOW);
    }
}

/// A straight line `width` pixels wide.
fn line(pic: &mut Picture, (ax, ay): (f64, f64), (bx, by): (f64, f64), width: i64, rgb: [u8; 3]) {
    let steps = ((bx - ax).abs().max((by - ay).abs()) * 2.0).ceil().max(1.0) as usize;
    let half = width / 2;
    for i in 0..=steps {
        let s = i as f64 / steps as f64;
        let (x, y) = ((ax + (bx - ax) * s) as i64, (ay + (by - ay) * s) as i64);
        for dy in -half..width - half {
            for dx in -half..width - half {
                put(pic, x + dx, y + dy, rgb);
            }
        }
    }
}

/// Whether `fill` can be undone by a determined reader (the command warns).
pub fn reversible(fill: Fill) -> bool {
    fill != Fill::Solid
}
