//! The exact frame at a position, decoded and turned into an upright RGB picture at its display
//! aspect ratio, ready for a lossless PNG.
//!
//! Exactness: the frame is found by its presentation timestamp from the frame index. Decoding
//! starts at the keyframe before it (seeking), and if the seek lands past the frame (some
//! containers seek imprecisely), decoding restarts from the beginning, so the frame delivered is
//! always the one asked for. Streams without timestamps (raw H.264/HEVC) are sought by the byte
//! position of the IDR picture before the frame and decoded from there; when the packet found
//! there is not that picture, they are decoded from the start. Their packets are given the
//! frame index's timestamps on the way into the decoder, so the frame delivered is recognised
//! by its timestamp there too, never by counting pictures: a damaged packet that decodes to
//! nothing would shift the count onto the next frame. A frame that does not decode is an
//! error, never replaced by a neighbour.

use std::path::Path;

use anyhow::Result;
use ffmpeg_next as ffmpeg;

use super::ffi;
use super::index::FrameIndex;
use super::probe::open_input;
use crate::error;
use crate::fonts;

/// An upright RGB picture and the facts of the frame it came from.
pub struct Picture {
    pub rgb: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub coded_width: u32,
    pub coded_height: u32,
    /// Sample aspect ratio of the frame (`1:1` for square pixels).
    pub sar: (i32, i32),
    pub sar_applied: bool,
    /// Clockwise rotation applied from the stream's display matrix.
    pub rotation: i32,
    /// Flipped left to right after the rotation, as the display matrix says.
    pub mirrored: bool,
    pub interlaced: bool,
    pub deinterlaced: bool,
    pub pixel_format: String,
}

impl Picture {
    /// A black picture of `width` × `height` (a sheet to draw on).
    pub fn blank(width: u32, height: u32) -> Picture {
        Picture {
            rgb: vec![0; width as usize * height as usize * 3],
            width,
            height,
            coded_width: width,
            coded_height: height,
            sar: (1, 1),
            sar_applied: false,
            rotation: 0,
            mirrored: false,
            interlaced: false,
            deinterlaced: false,
            pixel_format: String::new(),
        }
    }

    /// Stack `below` under this picture (padded with black on the right if it is narrower;
    /// cut if wider).
    pub fn append(&mut self, below: &Picture) {
        let w = self.width as usize;
        let bw = below.width as usize;
        for row in 0..below.height as usize {
            let line = &below.rgb[row * bw * 3..(row + 1) * bw * 3];
            let take = bw.min(w);
            self.rgb.extend_from_slice(&line[..take * 3]);
            self.rgb.extend(std::iter::repeat_n(0u8, (w - take) * 3));
        }
        self.height += below.height;
    }
}

/// Decode frame `n` (presentation order) of the indexed stream, with the orientation its
/// stream states (read from the same opening of the file: a day's MP4 header is megabytes).
pub fn decode_frame(path: &Path, index: &FrameIndex, n: usize) -> Result<(ffmpeg::frame::Video, ffi::Orientation)> {
    super::init();
    let target = index.frames[n].pts;
    if !index.derived_timestamps {
        let key = index.frames[index.keyframe_before(n)].pts;
        if let Some(frame) = decode_until(path, index, Start::Keyframe(key), |_, pts| pts == Some(target), target)? {
            return Ok(frame);
        }
        // The seek landed too late, or timestamps did not match: decode from the start.
        if let Some(frame) = decode_until(path, index, Start::Beginning, |_, pts| pts == Some(target), target)? {
            return Ok(frame);
        }
        return Err(undecodable(path, index, n));
    }
    // Pictures carry the index's timestamps (see raw_timestamps), else they are counted.
    let hit = |count: usize, pts: Option<i64>| pts.map_or(count == n, |p| p == target);
    // In a raw stream, frames are numbered in decode order; an IDR picture is shown before
    // everything decoded after it and after everything decoded before it, so decoding may start
    // at the last one before the frame, sought by its byte position: a still near the end of a
    // day's raw recording reads one group of pictures, not the day.
    if let Some(k) = (1..=n).rev().find(|&i| index.frames[i].idr && index.frames[i].pos >= 0)
        && let Some(frame) = decode_until(path, index, Start::Idr(k), hit, target)?
    {
        return Ok(frame);
    }
    decode_until(path, index, Start::Beginning, hit, target)?.ok_or_else(|| undecodable(path, index, n))
}

/// Decode frames `first..=last` (presentation order) of the indexed stream in one pass, and
/// hand `take` each frame `n` that `wanted(n)` accepts, with the stream's orientation. Frames
/// are known as `custody still` knows them: by the index's timestamps, or counted where the
/// stream has none that survive decoding. Returns how many frames were handed over; a frame
/// the decoder gives no picture for (damage) is skipped, never replaced by another.
pub fn each_frame(
    path: &Path,
    index: &FrameIndex,
    (first, last): (usize, usize),
    wanted: impl Fn(usize) -> bool,
    mut take: impl FnMut(usize, &ffmpeg::frame::Video, ffi::Orientation) -> Result<()>,
) -> Result<usize> {
    super::init();
    let mut input =
        open_input(path).map_err(|e| error::input(format!("FFmpeg cannot open {}: {e}", path.display())))?;
    let stream = input.stream(index.stream).expect("indexed stream exists");
    let orientation = ffi::display_orientation(&stream);
    let raw = raw_timestamps(index, &stream);
    let ctx = ffmpeg::codec::context::Context::from_parameters(stream.parameters())?;
    let mut decoder = ctx.decoder().video().map_err(|e| {
        error::environment(format!("no decoder for the video of {} in this FFmpeg build: {e}", path.display()))
    })?;
    index.seek_before(&mut input, first);
    let numbers: std::collections::HashMap<i64, usize> = (first..=last).map(|n| (index.frames[n].pts, n)).collect();
    let counted = index.derived_timestamps && raw.is_none();
    let (mut sent, mut decoded, mut given) = (0usize, 0usize, 0usize);
    let mut frame = ffmpeg::frame::Video::empty();
    let mut packet = ffmpeg::Packet::empty();
    let mut eof = false;
    while !eof {
        if !super::probe::next_packet(&mut input, &mut packet, path)? {
            eof = true;
            decoder.send_eof()?;
        } else if packet.stream() != index.stream {
            continue;
        } else {
            if let Some(pts) = &raw {
                packet.set_pts(pts.get(sent).copied());
                sent += 1;
            }
            // A damaged packet is skipped; the frames around it still decode.
            let _ = decoder.send_packet(&packet);
        }
        while decoder.receive_frame(&mut frame).is_ok() {
            let n = if counted {
                decoded += 1;
                (first..=last).contains(&(decoded - 1)).then_some(decoded - 1)
            } else {
                frame.timestamp().or(frame.pts()).and_then(|p| numbers.get(&p).copied())
            };
            let Some(n) = n else { continue };
            if wanted(n) {
                take(n, &frame, orientation)?;
                given += 1;
            }
            if n == last {
                return Ok(given);
            }
        }
    }
    Ok(given)
}

/// Frame `n` is listed in the file but FFmpeg's decoder gives no picture for it (a damaged
/// packet): no other frame stands in for it.
fn undecodable(path: &Path, index: &FrameIndex, n: usize) -> anyhow::Error {
    error::input(format!(
        "{}: frame {n} ({}) does not decode: its data is damaged, and FFmpeg's decoder gives no picture for it. \
         Nothing was recorded; `custody hash --frames` lists the frames that decode",
        path.display(),
        super::time::format_us(index.time_us(n))
    ))
}

/// The frame index's timestamps by decode position, for a stream without timestamps of its
/// own (raw H.264/HEVC) whose pictures are shown in the order they are decoded: given to its
/// packets on the way into the decoder, they come out on the pictures they hold, so a picture
/// is known by its timestamp. `None` for streams with timestamps, and for raw streams that
/// reorder pictures (B-frames), whose index numbers frames in decode order while they are
/// shown in another: their pictures are counted as they come out, as before.
pub(crate) fn raw_timestamps(index: &FrameIndex, stream: &ffmpeg::format::stream::Stream<'_>) -> Option<Vec<i64>> {
    (index.derived_timestamps && ffi::video_delay(&stream.parameters()) == 0).then(|| {
        let mut pts = vec![i64::MIN; index.len()];
        for f in &index.frames {
            pts[f.decode_index] = f.pts;
        }
        pts
    })
}

/// The most pictures an H.264/HEVC decoder holds back for reordering: a decode that has gone
/// this many packets past the one asked for without producing it will not.
const REORDER_LIMIT: usize = 16;

/// Where decoding starts.
#[derive(Clone, Copy)]
enum Start {
    /// At the file's first packet.
    Beginning,
    /// At the keyframe with this pts, sought by timestamp.
    Keyframe(i64),
    /// At frame `k` of a raw stream (an IDR picture), sought by the byte position the index
    /// recorded for it; the packet found there must be that picture.
    Idr(usize),
}

/// Decode the indexed stream from `start` until `hit` accepts a frame (given the count of
/// pictures output, counted from the first frame decoded, and the picture's timestamp).
/// Returns `None` once decoding runs past `past` (a pts) without a hit, when a seek fails or
/// lands elsewhere, or at the end of the stream.
fn decode_until(
    path: &Path,
    index: &FrameIndex,
    start: Start,
    hit: impl Fn(usize, Option<i64>) -> bool,
    past: i64,
) -> Result<Option<(ffmpeg::frame::Video, ffi::Orientation)>> {
    let mut input =
        open_input(path).map_err(|e| error::input(format!("FFmpeg cannot open {}: {e}", path.display())))?;
    let stream = input.stream(index.stream).expect("indexed stream exists");
    let ctx = ffmpeg::codec::context::Context::from_parameters(stream.parameters())?;
    let mut decoder = ctx.decoder().video().map_err(|e| {
        error::environment(format!("no decoder for the video of {} in this FFmpeg build: {e}", path.display()))
    })?;
    let raw = raw_timestamps(index, &stream);
    let orientation = ffi::display_orientation(&stream);
    let sought = match start {
        Start::Beginning => Ok(()),
        Start::Keyframe(ts) => ffi::seek_stream_backward(&mut input, index.stream, ts),
        Start::Idr(k) => ffi::seek_byte(&mut input, index.frames[k].pos),
    };
    if sought.is_err() {
        return Ok(None);
    }
    let first = if let Start::Idr(k) = start { k } else { 0 };
    // The decode position of the next packet, and the pictures output so far.
    let (mut next, mut count) = (first, first);
    let mut frame = ffmpeg::frame::Video::empty();
    let mut packet = ffmpeg::Packet::empty();
    let mut eof = false;
    loop {
        if !eof {
            if !super::probe::next_packet(&mut input, &mut packet, path)? {
                eof = true;
                decoder.send_eof()?;
            } else if packet.stream() != index.stream {
                continue;
            } else {
                if let Start::Idr(k) = start
                    && next == k
                    && (packet.position() as i64 != index.frames[k].pos || !packet.is_key())
                {
                    return Ok(None);
                }
                if let Some(pts) = &raw {
                    // Past the frame asked for by more than a decoder holds back: not coming.
                    if pts.get(next.saturating_sub(REORDER_LIMIT)).is_some_and(|&p| p > past) {
                        return Ok(None);
                    }
                    packet.set_pts(pts.get(next).copied());
                }
                next += 1;
                // A damaged packet is skipped; the frames around it still decode.
                let _ = decoder.send_packet(&packet);
            }
        }
        loop {
            match decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    let pts = frame.timestamp().or(frame.pts());
                    if hit(count, pts) {
                        return Ok(Some((frame, orientation)));
                    }
                    if matches!(start, Start::Keyframe(_)) && pts.is_some_and(|p| p > past) {
                        return Ok(None);
                    }
                    count += 1;
                }
                Err(ffmpeg::Error::Other { errno }) if errno == libc::EAGAIN => break,
                Err(_) if eof => return Ok(None),
                Err(_) => break,
            }
        }
    }
}

/// Options for turning a frame into a picture.
#[derive(Clone, Copy, Debug, Default)]
pub struct Render {
    /// Keep the coded size instead of applying the sample aspect ratio.
    pub no_sar: bool,
    pub deinterlace: bool,
}

/// The width a picture `w` pixels wide is shown at with sample aspect ratio `sar` (rounded to
/// an even width; `w` for square or unknown pixels): the still's, the redaction's and the
/// detector's one rule.
pub fn shown_width(w: u32, sar: (i32, i32)) -> u32 {
    if sar.0 > 0 && sar.1 > 0 && sar.0 != sar.1 {
        (((w as i64 * sar.0 as i64) + sar.1 as i64 / 2) / sar.1 as i64).max(2) as u32 & !1
    } else {
        w
    }
}

/// Turn a decoded frame into an upright RGB picture at its display size.
pub fn render(frame: &ffmpeg::frame::Video, orientation: ffi::Orientation, opts: Render) -> Result<Picture> {
    let (w, h) = (frame.width(), frame.height());
    let ar = frame.aspect_ratio();
    let sar = if ar.numerator() > 0 && ar.denominator() > 0 { (ar.numerator(), ar.denominator()) } else { (1, 1) };
    let sar_applied = !opts.no_sar && sar.0 != sar.1;
    let out_w = if sar_applied { shown_width(w, sar) } else { w };
    let mut scaler = ffmpeg::software::scaling::Context::get(
        frame.format(),
        w,
        h,
        ffmpeg::format::Pixel::RGB24,
        out_w,
        h,
        ffmpeg::software::scaling::Flags::BICUBIC
            | ffmpeg::software::scaling::Flags::ACCURATE_RND
            | ffmpeg::software::scaling::Flags::FULL_CHR_H_INT,
    )?;
    let mut rgb = ffmpeg::frame::Video::empty();
    scaler.run(frame, &mut rgb)?;
    let stride = rgb.stride(0);
    let mut pixels = Vec::with_capacity(out_w as usize * h as usize * 3);
    for row in 0..h as usize {
        pixels.extend_from_slice(&rgb.data(0)[row * stride..row * stride + out_w as usize * 3]);
    }
    let interlaced = frame.is_interlaced();
    let deinterlaced = opts.deinterlace && interlaced;
    if deinterlaced {
        line_double_first_field(&mut pixels, out_w as usize, h as usize, frame.is_top_first());
    }
    let (mut pixels, fw, fh) = rotate(pixels, out_w, h, orientation.rotation);
    if orientation.mirrored {
        mirror(&mut pixels, fw as usize);
    }
    Ok(Picture {
        rgb: pixels,
        width: fw,
        height: fh,
        coded_width: w,
        coded_height: h,
        sar,
        sar_applied,
        rotation: orientation.rotation,
        mirrored: orientation.mirrored,
        interlaced,
        deinterlaced,
        pixel_format: frame.format().descriptor().map(|d| d.name().to_owned()).unwrap_or_default(),
    })
}

/// The pixels a detector sees, their width and height, and the displayed picture's size.
pub type DetectorView = (Vec<u8>, u32, u32, (u32, u32));

/// A decoded frame as a face detector sees it: the displayed picture (sample aspect ratio and
/// rotation applied, as `render` makes it), scaled down so its longer side is at most
/// `max_side` (0: not scaled), as 8-bit BGR rows. Returns the pixels, their width and height,
/// and the displayed picture's size, which boxes found in the pixels are scaled back to.
pub fn detector_view(
    frame: &ffmpeg::frame::Video,
    orientation: ffi::Orientation,
    max_side: u32,
) -> Result<DetectorView> {
    let (w, h) = (frame.width(), frame.height());
    let ar = frame.aspect_ratio();
    let sar = if ar.numerator() > 0 && ar.denominator() > 0 { (ar.numerator(), ar.denominator()) } else { (1, 1) };
    let shown_w = shown_width(w, sar);
    let longer = shown_w.max(h);
    let k = if max_side > 0 && longer > max_side { max_side as f64 / longer as f64 } else { 1.0 };
    let (out_w, out_h) = (((shown_w as f64 * k).round() as u32).max(1), ((h as f64 * k).round() as u32).max(1));
    let mut scaler = ffmpeg::software::scaling::Context::get(
        frame.format(),
        w,
        h,
        ffmpeg::format::Pixel::BGR24,
        out_w,
        out_h,
        ffmpeg::software::scaling::Flags::BILINEAR,
    )?;
    let mut bgr = ffmpeg::frame::Video::empty();
    scaler.run(frame, &mut bgr)?;
    let stride = bgr.stride(0);
    let mut pixels = Vec::with_capacity(out_w as usize * out_h as usize * 3);
    for row in 0..out_h as usize {
        pixels.extend_from_slice(&bgr.data(0)[row * stride..row * stride + out_w as usize * 3]);
    }
    let (mut pixels, fw, fh) = rotate(pixels, out_w, out_h, orientation.rotation);
    if orientation.mirrored {
        mirror(&mut pixels, fw as usize);
    }
    let shown = if orientation.rotation == 90 || orientation.rotation == 270 { (h, shown_w) } else { (shown_w, h) };
    Ok((pixels, fw, fh, shown))
}

/// Deinterlace by keeping the first field and interpolating the lines of the second.
fn line_double_first_field(px: &mut [u8], w: usize, h: usize, top_first: bool) {
    let row = w * 3;
    let start = if top_first { 1 } else { 0 };
    for y in (start..h).step_by(2) {
        let above = if y > 0 { y - 1 } else { y + 1 };
        let below = if y + 1 < h { y + 1 } else { above };
        for x in 0..row {
            let v = (px[above * row + x] as u16 + px[below * row + x] as u16).div_ceil(2);
            px[y * row + x] = v as u8;
        }
    }
}

/// Flip an RGB picture `w` pixels wide left to right, in place.
fn mirror(px: &mut [u8], w: usize) {
    for row in px.chunks_exact_mut(w * 3) {
        for x in 0..w / 2 {
            let (a, b) = (x * 3, (w - 1 - x) * 3);
            for c in 0..3 {
                row.swap(a + c, b + c);
            }
        }
    }
}

/// Rotate an RGB picture clockwise by 0, 90, 180 or 270 degrees.
fn rotate(px: Vec<u8>, w: u32, h: u32, degrees: i32) -> (Vec<u8>, u32, u32) {
    let (w, h) = (w as usize, h as usize);
    let get = |x: usize, y: usize| &px[(y * w + x) * 3..(y * w + x) * 3 + 3];
    match degrees {
        90 | 270 => {
            let mut out = Vec::with_capacity(px.len());
            for ny in 0..w {
                for nx in 0..h {
                    // 90° clockwise: new (nx, ny) comes from old (ny, h-1-nx); 270°: (w-1-ny, nx).
                    let p = if degrees == 90 { get(ny, h - 1 - nx) } else { get(w - 1 - ny, nx) };
                    out.extend_from_slice(p);
                }
            }
            (out, h as u32, w as u32)
        }
        180 => {
            let mut out = Vec::with_capacity(px.len());
            for i in (0..w * h).rev() {
                out.extend_from_slice(&px[i * 3..i * 3 + 3]);
            }
            (out, w as u32, h as u32)
        }
        _ => (px, w as u32, h as u32),
    }
}

/// The narrowest caption banner: a tiny frame's caption is still readable. A picture narrower
/// than this is set at the top left of a black canvas this wide, its pixels unchanged.
pub const MIN_BANNER: u32 = 640;

static CAPTION_FACES: [std::sync::OnceLock<Result<ab_glyph::FontRef<'static>, String>>; fonts::COUNT] =
    [const { std::sync::OnceLock::new() }; fonts::COUNT];

fn caption_face(i: usize) -> Result<&'static ab_glyph::FontRef<'static>> {
    let loaded = CAPTION_FACES[i].get_or_init(|| {
        let (data, index) = fonts::data(i).map_err(|e| format!("{e:#}"))?;
        ab_glyph::FontRef::try_from_slice_and_index(data, index).map_err(|_| format!("{:#}", fonts::unusable(i)))
    });
    loaded.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
}

/// One piece of caption text in one font, and its width in pixels.
struct Piece {
    font: usize,
    glyphs: Vec<ab_glyph::GlyphId>,
    width: f32,
}

/// `text` set in the caption's face at `px` pixels: each character in the first font that has
/// it; a replacement mark for one that none has.
fn caption_pieces(text: &str, px: f32) -> Result<Vec<Piece>> {
    use ab_glyph::{Font as _, ScaleFont as _};
    let family = fonts::Family::Sans;
    let split = fonts::split(text, family, &mut |i, c| Ok(caption_face(i)?.glyph_id(c).0 != 0))?;
    let mut out = Vec::new();
    for (font, piece) in split {
        let (font, shown) = match font {
            Some(f) => (f, piece),
            None => (family.replacement(), "\u{FFFD}".repeat(piece.chars().count())),
        };
        let scaled = caption_face(font)?.as_scaled(px);
        let glyphs: Vec<ab_glyph::GlyphId> = shown.chars().map(|c| scaled.glyph_id(c)).collect();
        let mut width = 0.0;
        for (k, g) in glyphs.iter().enumerate() {
            if k > 0 {
                width += scaled.kern(glyphs[k - 1], *g);
            }
            width += scaled.h_advance(*g);
        }
        out.push(Piece { font, glyphs, width });
    }
    Ok(out)
}

fn caption_width(text: &str, px: f32) -> Result<f32> {
    Ok(caption_pieces(text, px)?.iter().map(|p| p.width).sum())
}

/// The caption's lines wrapped to `max` pixels at field boundaries (fields are separated by
/// two spaces), then at spaces inside a field: never inside a hash, a number or a time.
fn wrap_caption(lines: &[String], px: f32, max: f32) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for line in lines {
        let mut cur = String::new();
        for field in line.split("  ").filter(|f| !f.trim().is_empty()) {
            let field = field.trim();
            let joined = if cur.is_empty() { field.to_owned() } else { format!("{cur}  {field}") };
            if caption_width(&joined, px)? <= max {
                cur = joined;
                continue;
            }
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            if caption_width(field, px)? <= max {
                cur = field.to_owned();
                continue;
            }
            // A field wider than the banner: its words, as many to a line as fit.
            for word in field.split(' ') {
                let joined = if cur.is_empty() { word.to_owned() } else { format!("{cur} {word}") };
                if cur.is_empty() || caption_width(&joined, px)? <= max {
                    cur = joined;
                } else {
                    out.push(std::mem::replace(&mut cur, word.to_owned()));
                }
            }
        }
        out.push(cur);
    }
    Ok(out)
}

/// Add a caption banner below the picture (never over it): white text on black, set in the
/// fonts of [`fonts`] so any name prints, wrapped between fields. The banner is at least
/// `min_width` pixels wide (a still's: [`MIN_BANNER`]; a sheet's strips keep their width).
pub fn add_caption(pic: &mut Picture, lines: &[String], min_width: u32) -> Result<()> {
    use ab_glyph::{Font as _, ScaleFont as _};
    let w = pic.width.max(min_width).max(1) as usize;
    if w > pic.width as usize {
        let (old, pw) = (std::mem::take(&mut pic.rgb), pic.width as usize * 3);
        pic.rgb = Vec::with_capacity(w * 3 * pic.height as usize);
        for row in old.chunks(pw.max(1)) {
            pic.rgb.extend_from_slice(row);
            pic.rgb.resize(pic.rgb.len() + (w * 3 - pw), 0);
        }
        pic.width = w as u32;
    }
    let px = (w as f32 / 44.0).clamp(14.0, 36.0);
    let pad = (px * 0.6).round() as usize;
    let wrapped = wrap_caption(lines, px, (w - 2 * pad) as f32)?;
    let primary = caption_face(fonts::NOTO)?.as_scaled(px);
    let line_h = (primary.height() + primary.line_gap()).ceil() as usize;
    let banner_h = pad * 2 + line_h * wrapped.len();
    let mut banner = vec![0u8; w * banner_h * 3];
    for (li, line) in wrapped.iter().enumerate() {
        let baseline = (pad + li * line_h) as f32 + primary.ascent();
        let mut x = pad as f32;
        for piece in caption_pieces(line, px)? {
            let font = caption_face(piece.font)?;
            let scaled = font.as_scaled(px);
            for (k, g) in piece.glyphs.iter().enumerate() {
                if k > 0 {
                    x += scaled.kern(piece.glyphs[k - 1], *g);
                }
                let glyph = g.with_scale_and_position(px, ab_glyph::point(x, baseline));
                if let Some(outline) = font.outline_glyph(glyph) {
                    let b = outline.px_bounds();
                    outline.draw(|gx, gy, coverage| {
                        let (x, y) = (b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64);
                        if x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < banner_h {
                            let o = (y as usize * w + x as usize) * 3;
                            let v = (coverage.clamp(0.0, 1.0) * 255.0).round() as u8;
                            for c in &mut banner[o..o + 3] {
                                *c = (*c).max(v);
                            }
                        }
                    });
                }
                x += scaled.h_advance(*g);
            }
        }
    }
    pic.rgb.extend_from_slice(&banner);
    pic.height += banner_h as u32;
    Ok(())
}

/// Encode an RGB picture as PNG (lossless) with text chunks of provenance.
pub fn encode_png(pic: &Picture, text: &[(&str, String)]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, pic.width, pic.height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        // Lossless whatever the level; fdeflate's fast mode is several times quicker than the
        // default for a few percent more bytes.
        enc.set_compression(png::Compression::Fast);
        for (k, v) in text {
            enc.add_itxt_chunk((*k).to_owned(), v.clone())?;
        }
        let mut writer = enc.write_header()?;
        writer.write_image_data(&pic.rgb)?;
        writer.finish()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_moves_the_top_left_pixel_where_a_player_would() {
        // 2×1 picture: red, green.
        let px = vec![255, 0, 0, 0, 255, 0];
        let (r90, w, h) = rotate(px.clone(), 2, 1, 90);
        assert_eq!((w, h), (1, 2));
        assert_eq!(&r90[..3], &[255, 0, 0], "90° cw: the left pixel ends on top");
        let (r270, _, _) = rotate(px.clone(), 2, 1, 270);
        assert_eq!(&r270[..3], &[0, 255, 0], "270° cw: the right pixel ends on top");
        let (r180, _, _) = rotate(px, 2, 1, 180);
        assert_eq!(&r180[..3], &[0, 255, 0]);
    }
}
