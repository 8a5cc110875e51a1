//! The review sheet: one picture a reviewer can decide every track from without scrubbing the
//! video. At the top, the draft's facts and a timeline strip with one bar per track across the
//! recording; then a row per track (low-confidence tracks first): crops of its first, middle
//! and last detection, the box outlined, with its number, frames, times and confidence.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;

use super::track::KeyBox;
use crate::media::index::FrameIndex;
use crate::media::still::{self, Picture, Render};
use crate::media::time::format_us;

/// A crop's side, in pixels.
const TILE: u32 = 200;
const GAP: u32 = 8;
/// The sheet's width: three crops and the gaps around them.
const WIDTH: u32 = 3 * TILE + 4 * GAP;
/// Rows beyond this are left off the sheet (the spec lists every track).
pub const MAX_ROWS: usize = 200;

const RED: [u8; 3] = [255, 40, 40];
const AMBER: [u8; 3] = [255, 176, 0];
const GREEN: [u8; 3] = [40, 200, 90];

/// What the sheet shows of one track.
pub struct Row {
    pub track: u32,
    pub low_confidence: bool,
    pub decision: String,
    pub first_frame: usize,
    pub last_frame: usize,
    pub detections: usize,
    pub confidence: (String, String, String),
    /// The boxes found (displayed pixels, before the margin) at the frames found in.
    pub found: Vec<(usize, KeyBox)>,
}

/// Draw the sheet for the rows in the order given (the caller puts low-confidence first).
pub fn draw(src: &Path, index: &FrameIndex, header: &[String], rows: &[Row]) -> Result<Picture> {
    let mut sheet = Picture::blank(WIDTH, 0);
    let mut lines = header.to_vec();
    if rows.len() > MAX_ROWS {
        lines.push(format!("{} TRACKS: THE FIRST {MAX_ROWS} ARE SHOWN; THE SPEC LISTS EVERY ONE", rows.len()));
    }
    lines.push("TIMELINE: ONE BAR PER TRACK (AMBER: LOW CONFIDENCE)".to_owned());
    still::add_caption(&mut sheet, &lines, 0)?;
    sheet.append(&timeline(index, rows));
    let mut pictures: HashMap<usize, Picture> = HashMap::new();
    for row in rows.iter().take(MAX_ROWS) {
        let picks = {
            let f = &row.found;
            let mut p = vec![f[0], f[f.len() / 2], f[f.len() - 1]];
            p.dedup_by_key(|k| k.0);
            p
        };
        let mut strip = Picture::blank(WIDTH, TILE + 2 * GAP);
        for (i, (n, bbox)) in picks.iter().enumerate() {
            if !pictures.contains_key(n) {
                let (frame, orientation) = still::decode_frame(src, index, *n)?;
                pictures.insert(*n, still::render(&frame, orientation, Render::default())?);
            }
            let tile = crop(&pictures[n], *bbox, if row.low_confidence { AMBER } else { RED });
            let x0 = GAP + i as u32 * (TILE + GAP);
            paste(&mut strip, &tile, x0, GAP);
        }
        // Only a few frames are needed at once: rows come in no frame order.
        if pictures.len() > 64 {
            pictures.clear();
        }
        let (mean, min, max) = &row.confidence;
        let label = format!(
            "TRACK {}{}  {}",
            row.track,
            if row.low_confidence { "  LOW CONFIDENCE" } else { "" },
            row.decision.to_uppercase()
        );
        let span = format!(
            "FRAMES {}-{}  {} TO {}  FOUND IN {} FRAME{}",
            row.first_frame,
            row.last_frame,
            format_us(index.time_us(row.first_frame)),
            format_us(index.time_us(row.last_frame)),
            row.detections,
            if row.detections == 1 { "" } else { "S" }
        );
        let frames = format!(
            "CONFIDENCE MEAN {mean} MIN {min} MAX {max}  CROPS: FRAMES {}",
            picks.iter().map(|p| p.0.to_string()).collect::<Vec<_>>().join(", ")
        );
        still::add_caption(&mut strip, &[label, span, frames], 0)?;
        sheet.append(&strip);
    }
    Ok(sheet)
}

/// One bar per track across the recording's frames.
fn timeline(index: &FrameIndex, rows: &[Row]) -> Picture {
    let bar = 4u32;
    let shown = rows.len().min(MAX_ROWS) as u32;
    let mut strip = Picture::blank(WIDTH, GAP * 2 + shown * (bar + 2));
    let total = index.len().max(1) as f64;
    let usable = (WIDTH - 2 * GAP) as f64;
    for (i, row) in rows.iter().take(MAX_ROWS).enumerate() {
        let x0 = GAP + (row.first_frame as f64 / total * usable) as u32;
        let x1 = (GAP + ((row.last_frame + 1) as f64 / total * usable).ceil() as u32).max(x0 + 2);
        let y0 = GAP + i as u32 * (bar + 2);
        let colour = if row.low_confidence { AMBER } else { GREEN };
        fill(&mut strip, (x0, y0, x1.min(WIDTH - GAP), y0 + bar), colour);
    }
    strip
}

/// The area around `bbox` (twice its size, at least 48 px), fitted into a TILE × TILE square,
/// with the box outlined.
fn crop(pic: &Picture, bbox: KeyBox, colour: [u8; 3]) -> Picture {
    let [bx, by, bw, bh] = bbox.map(|v| v as f64);
    let side = (bw.max(bh) * 2.0).max(48.0);
    let (cx, cy) = (bx + bw / 2.0, by + bh / 2.0);
    let (sx0, sy0) = (cx - side / 2.0, cy - side / 2.0);
    let k = side / TILE as f64;
    let mut tile = Picture::blank(TILE, TILE);
    for ty in 0..TILE {
        for tx in 0..TILE {
            let (x, y) = ((sx0 + (tx as f64 + 0.5) * k).floor(), (sy0 + (ty as f64 + 0.5) * k).floor());
            if x >= 0.0 && y >= 0.0 && (x as u32) < pic.width && (y as u32) < pic.height {
                let from = (y as usize * pic.width as usize + x as usize) * 3;
                let to = (ty as usize * TILE as usize + tx as usize) * 3;
                tile.rgb[to..to + 3].copy_from_slice(&pic.rgb[from..from + 3]);
            }
        }
    }
    // The box in the tile's pixels, outlined 2 px wide.
    let t = |v: f64, o: f64| ((v - o) / k).round().clamp(0.0, TILE as f64 - 1.0) as u32;
    let (x0, y0, x1, y1) = (t(bx, sx0), t(by, sy0), t(bx + bw, sx0), t(by + bh, sy0));
    for (a, b, c, d) in [
        (x0, y0, x1 + 1, y0 + 2),
        (x0, y1.saturating_sub(1), x1 + 1, y1 + 1),
        (x0, y0, x0 + 2, y1 + 1),
        (x1.saturating_sub(1), y0, x1 + 1, y1 + 1),
    ] {
        fill(&mut tile, (a, b, c.min(TILE), d.min(TILE)), colour);
    }
    tile
}

fn fill(pic: &mut Picture, (x0, y0, x1, y1): (u32, u32, u32, u32), rgb: [u8; 3]) {
    for y in y0..y1.min(pic.height) {
        for x in x0..x1.min(pic.width) {
            let i = (y as usize * pic.width as usize + x as usize) * 3;
            pic.rgb[i..i + 3].copy_from_slice(&rgb);
        }
    }
}

fn paste(onto: &mut Picture, tile: &Picture, x0: u32, y0: u32) {
    for y in 0..tile.height {
        let from = (y * tile.width * 3) as usize;
        let to = (((y0 + y) * onto.width + x0) * 3) as usize;
        onto.rgb[to..to + (tile.width * 3) as usize].copy_from_slice(&tile.rgb[from..from + (tile.width * 3) as usize]);
    }
}
