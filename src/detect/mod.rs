//! Face detection for assisted redaction, behind one small trait ([`Detector`]) so that a second
//! backend (onnxruntime, a GPU build) can be added without touching the rest. The one backend
//! now is CenterFace (MIT) run in pure Rust by tract ([`centerface`]).
//!
//! A detector's model is evidence of how a redaction was drafted: custody runs only a model file
//! whose SHA-256 it knows, and every event that used one records its identity ([`Model`]).

pub mod centerface;
pub mod sheet;
pub mod track;

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

/// One frame as the detectors take it: 8-bit BGR, `stride` bytes from one row to the next.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub bgr: &'a [u8],
    pub width: usize,
    pub height: usize,
    pub stride: usize,
}

/// A face found in a frame: its box in the frame's pixels (left, top, right, bottom) and the
/// detector's confidence (0–1).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Detection {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
    pub score: f32,
}

impl Detection {
    pub fn width(&self) -> f32 {
        self.x2 - self.x1
    }

    pub fn height(&self) -> f32 {
        self.y2 - self.y1
    }

    /// Intersection over union with `other` (0 when they do not overlap).
    pub fn iou(&self, other: &Detection) -> f32 {
        let w = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let h = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        let inter = w * h;
        let union = self.width() * self.height() + other.width() * other.height() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }
}

/// What an event records of the detector that drafted a redaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Model {
    /// The model's name and where it came from.
    pub name: &'static str,
    /// The SHA-256 of the model file that ran.
    pub sha256: &'static str,
    /// The inference engine and its version.
    pub backend: String,
}

/// A face detector.
pub trait Detector {
    /// Every face found in `frame` with a confidence of at least `floor`, strongest first.
    fn detect(&mut self, frame: &Frame<'_>, floor: f32) -> Result<Vec<Detection>>;
    /// The model and engine that ran.
    fn model(&self) -> &Model;
}

/// Where custody reads models from: `CUSTODY_MODELS`, else `$XDG_DATA_HOME/custody/models`, else
/// `~/.local/share/custody/models` (where `bins/setup` installs them).
pub fn models_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("CUSTODY_MODELS") {
        return dir;
    }
    let data = var("XDG_DATA_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| var("HOME").map(|h| h.join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("/usr/local/share"));
    data.join("custody/models")
}

/// Keep the strongest of boxes that overlap by `iou` or more (greedy non-maximum suppression,
/// as CenterFace's reference implementation does). `found` comes back strongest first.
pub fn suppress(mut found: Vec<Detection>, iou: f32) -> Vec<Detection> {
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::with_capacity(found.len());
    for d in found {
        if kept.iter().all(|k| k.iou(&d) < iou) {
            kept.push(d);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x1: f32, y1: f32, x2: f32, y2: f32, score: f32) -> Detection {
        Detection { x1, y1, x2, y2, score }
    }

    #[test]
    fn overlap_is_measured_as_intersection_over_union() {
        assert_eq!(d(0.0, 0.0, 10.0, 10.0, 1.0).iou(&d(0.0, 0.0, 10.0, 10.0, 1.0)), 1.0);
        assert_eq!(d(0.0, 0.0, 10.0, 10.0, 1.0).iou(&d(20.0, 20.0, 30.0, 30.0, 1.0)), 0.0);
        // Half of each: 50 / 150.
        let iou = d(0.0, 0.0, 10.0, 10.0, 1.0).iou(&d(5.0, 0.0, 15.0, 10.0, 1.0));
        assert!((iou - 1.0 / 3.0).abs() < 1e-6, "{iou}");
    }

    #[test]
    fn suppression_keeps_the_strongest_of_overlapping_boxes_and_every_separate_one() {
        let kept = suppress(
            vec![d(0.0, 0.0, 10.0, 10.0, 0.6), d(1.0, 1.0, 11.0, 11.0, 0.9), d(50.0, 50.0, 60.0, 60.0, 0.4)],
            0.3,
        );
        assert_eq!(kept, vec![d(1.0, 1.0, 11.0, 11.0, 0.9), d(50.0, 50.0, 60.0, 60.0, 0.4)]);
    }
}
