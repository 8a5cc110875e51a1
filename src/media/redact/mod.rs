//! Redaction: re-encode an item with regions hidden and audio ranges muted or bleeped, carrying
//! none of its metadata, then check the result (frame count, duration, metadata) instead of
//! assuming it; and the reviewer's contact sheet.

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
    for (k, v) in input.metadata().iter() {
        out.push(entry("container", k, v));
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
        for (k, v) in s.metadata().iter() {
            out.push(entry(&scope, k, v));
        }
    }
    for (i, c) in input.chapters().enumerate() {
        let scope = format!("chapter {i}");
        out.push(entry(&scope, "chapter", &format!("{}..{}", c.start(), c.end())));
        for (k, v) in c.metadata().iter() {
            out.push(entry(&scope, k, v));
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
    let mut redactor = Redactor { plan, geometry, index, frames: 0, samples: 0 };
    let encoding = super::exact::encode(src, dst, &job, &mut redactor)?;
    let (frames_redacted, samples_redacted) = (redactor.frames, redactor.samples);

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
}

impl Redactor<'_> {
    /// The covered pixels of frame `n` shown at `t`, and the largest region's size.
    fn mask(&self, n: usize, t: i64) -> Option<(Mask, usize)> {
        let geometry = self.geometry?;
        let len = self.index.frame_len_us(n);
        let active: Vec<_> = self.plan.regions.iter().filter(|r| r.covers(t, len)).collect();
        if active.is_empty() {
            return None;
        }
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

/// The reviewer's contact sheet: for each region, the source frame at its start (and at each
/// key of a moving track) with the region outlined, captioned; audio ranges listed at the end.
pub fn preview(src: &Path, index: &FrameIndex, plan: &Plan, rotation: i32, header: &[String]) -> Result<Picture> {
    let mut tiles: Vec<Picture> = Vec::new();
    for (i, r) in plan.regions.iter().enumerate() {
        let mut times: Vec<i64> = if r.keys.len() > 1 { r.keys.iter().map(|k| k.0).collect() } else { vec![r.from_us] };
        times.truncate(6);
        for t in times {
            let n = index.frames.partition_point(|f| index.to_us(f.pts - index.frames[0].pts) <= t).saturating_sub(1);
            let frame = still::decode_frame(src, index, n)?;
            let mut pic = still::render(&frame, rotation, Render::default())?;
            let b = r.box_at(index.time_us(n).max(r.from_us));
            outline(&mut pic, b, r.shape == spec::Shape::Ellipse);
            let lines = vec![format!(
                "REGION {} {}{} REASON {}  {} TO {}  FRAME {n} AT {}",
                i + 1,
                if r.shape == spec::Shape::Ellipse { "ELLIPSE" } else { "BOX" },
                if r.inverse { " (INVERSE: ALL ELSE HIDDEN)" } else { "" },
                r.reason,
                format_us(r.from_us),
                format_us(r.to_us),
                format_us(index.time_us(n))
            )];
            still::add_caption(&mut pic, &lines);
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
    let mut summary = Picture {
        rgb: Vec::new(),
        width,
        height: 0,
        coded_width: width,
        coded_height: 0,
        sar: (1, 1),
        sar_applied: false,
        rotation: 0,
        interlaced: false,
        deinterlaced: false,
        pixel_format: String::new(),
    };
    still::add_caption(&mut summary, &lines);
    let mut sheet = summary;
    for t in tiles {
        // Tiles narrower than the sheet are padded on the right with black.
        for row in 0..t.height as usize {
            sheet.rgb.extend_from_slice(&t.rgb[row * t.width as usize * 3..(row + 1) * t.width as usize * 3]);
            sheet.rgb.extend(std::iter::repeat_n(0u8, (width - t.width) as usize * 3));
        }
        sheet.height += t.height;
    }
    Ok(sheet)
}

/// Draw a region's outline, 3 pixels wide (red, white, red: visible on any colour), on an
/// upright picture.
fn outline(pic: &mut Picture, b: spec::RectF, ellipse: bool) {
    let (w, h) = (pic.width as i64, pic.height as i64);
    let mut put = |x: i64, y: i64, d: i64| {
        if (0..w).contains(&x) && (0..h).contains(&y) {
            let o = ((y * w + x) * 3) as usize;
            pic.rgb[o..o + 3].copy_from_slice(if d == 1 { &[255, 255, 255] } else { &[255, 0, 0] });
        }
    };
    let (x0, y0, x1, y1) = (b.x0 as i64, b.y0 as i64, b.x1.ceil() as i64 - 1, b.y1.ceil() as i64 - 1);
    if ellipse {
        let (cx, cy, rx, ry) = ((b.x0 + b.x1) / 2.0, (b.y0 + b.y1) / 2.0, (b.x1 - b.x0) / 2.0, (b.y1 - b.y0) / 2.0);
        let steps = ((rx + ry) * 8.0).max(64.0) as usize;
        for i in 0..steps {
            let a = i as f64 / steps as f64 * std::f64::consts::TAU;
            for d in 0..3 {
                let (px, py) = (cx + (rx - d as f64) * a.cos(), cy + (ry - d as f64) * a.sin());
                put(px as i64, py as i64, d);
            }
        }
    } else {
        for d in 0..3 {
            for x in x0..=x1 {
                put(x, y0 + d, d);
                put(x, y1 - d, d);
            }
            for y in y0..=y1 {
                put(x0 + d, y, d);
                put(x1 - d, y, d);
            }
        }
    }
}

/// Whether `fill` can be undone by a determined reader (the command warns).
pub fn reversible(fill: Fill) -> bool {
    fill != Fill::Solid
}
