//! The enhancement steps: each a named, documented mapping onto FFmpeg filters (or, for frame
//! averaging, onto custody's own exact mean), with its parameters, their ranges and defaults,
//! the algorithm in a paragraph and its reference, and where it belongs in the order examiners
//! teach.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Video or audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Medium {
    Video,
    Audio,
}

impl Medium {
    pub fn name(self) -> &'static str {
        match self {
            Medium::Video => "video",
            Medium::Audio => "audio",
        }
    }
}

/// A parameter's type, range and default (`None`: required).
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Float {
        min: f64,
        max: f64,
        default: Option<f64>,
    },
    Int {
        min: i64,
        max: i64,
        default: Option<i64>,
    },
    /// An odd whole number (filter kernel sizes).
    Odd {
        min: i64,
        max: i64,
        default: Option<i64>,
    },
    Choice {
        values: &'static [&'static str],
        default: Option<&'static str>,
    },
    /// A ratio `N:D` or a decimal.
    Ratio {
        default: Option<f64>,
    },
}

#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

/// A parameter's value, checked.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Number(f64),
    Text(String),
}

impl Value {
    pub fn num(&self) -> f64 {
        match self {
            Value::Number(n) => *n,
            Value::Text(_) => f64::NAN,
        }
    }
    pub fn text(&self) -> &str {
        match self {
            Value::Text(t) => t,
            Value::Number(_) => "",
        }
    }
    /// As the ledger records it: whole numbers as integers, others as decimal text (the ledger's
    /// canonical encoding has no floating point, whose text differs between encoders).
    pub fn json(&self) -> serde_json::Value {
        match self {
            Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => serde_json::json!(*n as i64),
            Value::Number(n) => serde_json::json!(f(*n)),
            Value::Text(t) => serde_json::json!(t),
        }
    }

    /// As people read it.
    pub fn shown(&self) -> String {
        match self {
            Value::Number(n) => f(*n),
            Value::Text(t) => t.clone(),
        }
    }
}

/// A step's parameters, every one present (defaults filled in).
pub type Values = BTreeMap<&'static str, Value>;

/// What a step becomes in the pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A chain of FFmpeg filters, in FFmpeg's filter-graph syntax.
    Filters(String),
    /// custody's frame averaging: each frame the exact mean of the last `n` (fewer at the start).
    Average(u32),
}

/// What a builder knows of the stream it works on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context {
    pub sample_rate: u32,
    pub channels: u32,
}

/// Where a step belongs in the order examiners teach: defects are corrected in the reverse of
/// the order they arose in.
#[derive(Clone, Copy, Debug)]
pub struct Stage {
    pub rank: u8,
    pub name: &'static str,
}

pub struct Step {
    pub name: &'static str,
    pub medium: Medium,
    pub stage: Option<Stage>,
    pub params: &'static [Param],
    /// One line: what it does.
    pub summary: &'static str,
    /// A paragraph: how, for a report a court reads.
    pub algorithm: &'static str,
    pub reference: &'static str,
    /// The step runs a learned model (none does yet; the record says so for each step).
    pub learned: bool,
    build: fn(&Values, &Context) -> Result<Op, String>,
}

impl Step {
    pub fn build(&self, values: &Values, ctx: &Context) -> Result<Op, String> {
        (self.build)(values, ctx)
    }

    pub fn param(&self, name: &str) -> Option<&'static Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The parameter names, for messages.
    pub fn param_names(&self) -> String {
        if self.params.is_empty() {
            "none".to_owned()
        } else {
            self.params.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
        }
    }
}

const ACQUISITION: Stage = Stage { rank: 1, name: "acquisition errors (range, aspect ratio)" };
const ENCODING: Stage = Stage { rank: 2, name: "encoding artefacts (interlacing)" };
const SENSOR: Stage = Stage { rank: 3, name: "sensor noise and contrast" };
const SHARPEN: Stage = Stage { rank: 4, name: "sensor noise and contrast (sharpening after the rest)" };
const LENS: Stage = Stage { rank: 5, name: "lens and viewpoint" };
const SCENE: Stage = Stage { rank: 6, name: "scene (camera motion, integration over time, framing)" };
const REPAIR: Stage = Stage { rank: 1, name: "repair (clicks, clipping)" };
const EQ: Stage = Stage { rank: 2, name: "filtering and equalisation" };
const NOISE: Stage = Stage { rank: 3, name: "broadband noise reduction" };
const LEVEL: Stage = Stage { rank: 4, name: "normalisation (last)" };

/// A filter that converts what it must to 8-bit planar YUV (or grey), and passes those through.
pub const PLANAR_8BIT: &str = "format=pix_fmts=yuv420p|yuv422p|yuv444p|yuv440p|yuv411p|yuv410p|gray";

const INTERPOLATION: &[&str] = &["nearest", "bilinear", "bicubic", "lanczos"];

const fn float(name: &'static str, min: f64, max: f64, default: Option<f64>, help: &'static str) -> Param {
    Param { name, kind: Kind::Float { min, max, default }, help }
}
const fn int(name: &'static str, min: i64, max: i64, default: Option<i64>, help: &'static str) -> Param {
    Param { name, kind: Kind::Int { min, max, default }, help }
}
const fn choice(
    name: &'static str,
    values: &'static [&'static str],
    default: Option<&'static str>,
    help: &'static str,
) -> Param {
    Param { name, kind: Kind::Choice { values, default }, help }
}

fn n(v: &Values, k: &str) -> f64 {
    v.get(k).map_or(f64::NAN, Value::num)
}
fn t<'a>(v: &'a Values, k: &str) -> &'a str {
    v.get(k).map_or("", Value::text)
}
fn has(v: &Values, k: &str) -> bool {
    v.contains_key(k)
}
/// A number as FFmpeg reads it, without float noise.
fn f(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".to_owned() } else { s.to_owned() }
}
fn sws(interpolation: &str) -> &'static str {
    match interpolation {
        "nearest" => "neighbor",
        "bilinear" => "bilinear",
        "bicubic" => "bicubic",
        _ => "lanczos",
    }
}

pub static STEPS: &[Step] = &[
    // ---------------------------------------------------------------- video
    Step {
        name: "range",
        medium: Medium::Video,
        stage: Some(ACQUISITION),
        params: &[
            choice("input", &["full", "limited"], None, "the range the source's pixels really use"),
            choice("output", &["limited", "full"], Some("limited"), "the range to convert them to"),
        ],
        summary: "colour-range override: treat the pixels as full or limited range and convert",
        algorithm: "Many DVRs store full-range luma (0–255) while labelling, or being read as, limited range \
            (16–235), which crushes shadows and clips highlights on playback. The step declares the range the \
            pixels really use and converts them linearly to the output range with FFmpeg's swscale \
            (Y' = 16 + 219·Y/255 for full to limited; chroma likewise about 128).",
        reference: "ITU-R BT.601-7 and BT.709-6 (quantisation ranges); FFmpeg swscale.",
        learned: false,
        build: |v, _| Ok(Op::Filters(format!("scale=in_range={}:out_range={}", t(v, "input"), t(v, "output")))),
    },
    Step {
        name: "aspect",
        medium: Medium::Video,
        stage: Some(ACQUISITION),
        params: &[
            Param {
                name: "sar",
                kind: Kind::Ratio { default: None },
                help: "the true pixel aspect ratio (N:D or decimal)",
            },
            choice("interpolation", INTERPOLATION, Some("lanczos"), "how new pixels are computed"),
        ],
        summary: "aspect correction: resample to square pixels from a stated pixel aspect ratio",
        algorithm: "DVRs record 704 or 720 pixels across a 4:3 picture, so each pixel is wider or narrower \
            than it is tall; measurements and faces are distorted until the picture is resampled. The step \
            scales the width by the stated sample aspect ratio (height unchanged, width rounded to an even \
            number) with the stated interpolation kernel, and marks the pixels square.",
        reference: "ITU-R BT.601-7 (sampling of 4:3 pictures); SMPTE RP 187; Duchon (1979) for Lanczos filtering.",
        learned: false,
        build: |v, _| {
            Ok(Op::Filters(format!(
                "scale=w='trunc(iw*{}/2+0.5)*2':h=ih:flags={}+accurate_rnd+full_chroma_int,setsar=1",
                f(n(v, "sar")),
                sws(t(v, "interpolation"))
            )))
        },
    },
    Step {
        name: "deinterlace",
        medium: Medium::Video,
        stage: Some(ENCODING),
        params: &[
            choice(
                "method",
                &["bwdif", "yadif", "fields"],
                Some("bwdif"),
                "bwdif or yadif interpolate; fields keeps each field as a frame",
            ),
            choice("parity", &["auto", "tff", "bff"], Some("auto"), "which field comes first"),
            choice("rate", &["frame", "field"], Some("frame"), "one frame per frame, or one per field (motion kept)"),
        ],
        summary: "deinterlace: remove the combing of interlaced video, or separate its fields",
        algorithm: "An interlaced frame holds two fields captured 1/50 or 1/60 s apart; moving edges comb. \
            bwdif (Bob Weaver Deinterlacing Filter) rebuilds each missing line from the field's own lines \
            with a cubic kernel and from the neighbouring fields where the picture is still (motion \
            adaptive); yadif (Yet Another Deinterlacing Filter) does the same with a spatial edge-directed \
            check and a temporal predictor. `fields` interpolates nothing: it separates each frame into its \
            two fields as half-height frames, so every captured moment can be counted.",
        reference: "bwdif: Thomas Mundt (FFmpeg), after W3FDIF by Martin Weston (BBC R&D, 2006); yadif: Michael \
            Niedermayer (FFmpeg/MPlayer); field separation: FFmpeg separatefields.",
        learned: false,
        build: |v, _| {
            let parity = t(v, "parity");
            Ok(Op::Filters(match t(v, "method") {
                "fields" => match parity {
                    "auto" => "separatefields".to_owned(),
                    p => format!("setfield={p},separatefields"),
                },
                m => format!(
                    "{m}=mode={}:parity={parity}:deint=all",
                    if t(v, "rate") == "field" { "send_field" } else { "send_frame" }
                ),
            }))
        },
    },
    Step {
        name: "denoise",
        medium: Medium::Video,
        stage: Some(SENSOR),
        params: &[
            choice("method", &["hqdn3d", "nlmeans"], Some("hqdn3d"), "the denoiser"),
            float("strength", 0.0, 30.0, None, "spatial strength (hqdn3d default 4; nlmeans default 3)"),
            float("temporal", 0.0, 30.0, None, "hqdn3d only: temporal strength (default 1.5 × strength)"),
            Param {
                name: "patch",
                kind: Kind::Odd { min: 1, max: 99, default: None },
                help: "nlmeans only: patch size in pixels (default 7)",
            },
            Param {
                name: "research",
                kind: Kind::Odd { min: 1, max: 99, default: None },
                help: "nlmeans only: search window in pixels (default 15)",
            },
        ],
        summary: "denoise: reduce sensor noise spatially and over time",
        algorithm: "hqdn3d is a separable low-pass filter whose weight falls with the difference between \
            neighbouring pixels (so edges are kept) applied across space and, recursively, across time. \
            nlmeans replaces each pixel with a weighted mean of pixels whose surrounding patches look alike \
            anywhere in a search window, with weights exp(−d²/h²) of the patch distance d: repeated texture \
            averages its noise away while edges, which have no similar patches across them, stay sharp.",
        reference: "hqdn3d: Daniel Moreno (MPlayer); non-local means: A. Buades, B. Coll, J.-M. Morel, \
            \"A non-local algorithm for image denoising\", CVPR 2005.",
        learned: false,
        build: |v, _| {
            let m = t(v, "method");
            let only = |k: &str, method: &str| {
                if has(v, k) && m != method { Err(format!("{k} applies to method {method}, not {m}")) } else { Ok(()) }
            };
            only("temporal", "hqdn3d")?;
            only("patch", "nlmeans")?;
            only("research", "nlmeans")?;
            Ok(Op::Filters(if m == "nlmeans" {
                let s = if has(v, "strength") { n(v, "strength").max(1.0) } else { 3.0 };
                let p = if has(v, "patch") { n(v, "patch") } else { 7.0 };
                let r = if has(v, "research") { n(v, "research") } else { 15.0 };
                format!("nlmeans=s={}:p={}:r={}", f(s), f(p), f(r))
            } else {
                let s = if has(v, "strength") { n(v, "strength") } else { 4.0 };
                let tm = if has(v, "temporal") { n(v, "temporal") } else { 1.5 * s };
                format!(
                    "hqdn3d=luma_spatial={}:chroma_spatial={}:luma_tmp={}:chroma_tmp={}",
                    f(s),
                    f(s * 0.75),
                    f(tm),
                    f(tm * 0.75)
                )
            }))
        },
    },
    Step {
        name: "levels",
        medium: Medium::Video,
        stage: Some(SENSOR),
        params: &[
            int("black", 0, 254, Some(16), "input black point (8-bit code value)"),
            int("white", 1, 255, Some(235), "input white point (8-bit code value)"),
            float("gamma", 0.1, 10.0, Some(1.0), "gamma (above 1 lifts the shadows)"),
        ],
        summary: "levels and gamma: stretch the luma between a black and a white point",
        algorithm: "A dark DVR picture uses a narrow band of the available code values. The step maps 8-bit \
            luma linearly from [black, white] to the limited range 16–235 (values outside are clipped), then \
            applies the power 1/gamma, through a look-up table on the luma plane only, so colour is not \
            shifted; the result is marked limited range.",
        reference: "Gonzalez & Woods, Digital Image Processing (4th ed., 2018), §3.2 intensity transformations; \
            FFmpeg lutyuv.",
        learned: false,
        build: |v, _| {
            let (b, w, g) = (n(v, "black"), n(v, "white"), n(v, "gamma"));
            if w <= b {
                return Err(format!("white ({w}) must be above black ({b})"));
            }
            // On 8-bit pictures (DVRs record nothing deeper), code values as written; the result
            // is limited range and marked so.
            Ok(Op::Filters(format!(
                "{PLANAR_8BIT},lutyuv=y='clip(16+219*pow(clip((val-{b})/({}),0,1),{}),0,255)',setparams=range=limited",
                f(w - b),
                f(1.0 / g)
            )))
        },
    },
    Step {
        name: "contrast",
        medium: Medium::Video,
        stage: Some(SENSOR),
        params: &[
            float("contrast", 0.0, 4.0, Some(1.0), "contrast factor"),
            float("brightness", -1.0, 1.0, Some(0.0), "brightness offset"),
            float("saturation", 0.0, 3.0, Some(1.0), "colour saturation factor"),
        ],
        summary: "contrast, brightness and saturation",
        algorithm: "Luma is scaled about mid-grey by the contrast factor and offset by the brightness; chroma \
            is scaled about neutral by the saturation factor (FFmpeg eq).",
        reference: "Gonzalez & Woods, Digital Image Processing (4th ed., 2018), §3.2; FFmpeg eq.",
        learned: false,
        build: |v, _| {
            Ok(Op::Filters(format!(
                "eq=contrast={}:brightness={}:saturation={}",
                f(n(v, "contrast")),
                f(n(v, "brightness")),
                f(n(v, "saturation"))
            )))
        },
    },
    Step {
        name: "white_balance",
        medium: Medium::Video,
        stage: Some(SENSOR),
        params: &[
            float("red", 0.0, 4.0, Some(1.0), "gain of the red channel"),
            float("green", 0.0, 4.0, Some(1.0), "gain of the green channel"),
            float("blue", 0.0, 4.0, Some(1.0), "gain of the blue channel"),
        ],
        summary: "white balance: per-channel gains that remove a colour cast",
        algorithm: "A colour cast from the light source or the camera's balance is removed by multiplying \
            each of R, G and B by a gain (a von Kries-style diagonal correction), chosen so that a surface \
            known to be neutral becomes grey.",
        reference: "J. von Kries (1902), chromatic adaptation; G. Buchsbaum, \"A spatial processor model for \
            object colour perception\", J. Franklin Inst. 1980; FFmpeg colorchannelmixer.",
        learned: false,
        build: |v, _| {
            Ok(Op::Filters(format!(
                "colorchannelmixer=rr={}:gg={}:bb={}",
                f(n(v, "red")),
                f(n(v, "green")),
                f(n(v, "blue"))
            )))
        },
    },
    Step {
        name: "sharpen",
        medium: Medium::Video,
        stage: Some(SHARPEN),
        params: &[
            float("amount", -2.0, 5.0, Some(1.0), "how much of the detail is added (negative blurs)"),
            Param {
                name: "size",
                kind: Kind::Odd { min: 3, max: 23, default: Some(5) },
                help: "the blur kernel, in pixels (odd)",
            },
        ],
        summary: "sharpen by unsharp masking",
        algorithm: "Unsharp masking subtracts a blurred copy of the picture from the picture to isolate its \
            fine detail, then adds that detail back scaled by the amount: edges gain contrast, noise too, \
            which is why sharpening comes after denoising. Applied to luma only.",
        reference: "Unsharp masking: Gonzalez & Woods, Digital Image Processing (4th ed., 2018), §3.6; FFmpeg unsharp.",
        learned: false,
        build: |v, _| {
            let s = n(v, "size");
            Ok(Op::Filters(format!("unsharp=lx={s}:ly={s}:la={}:cx=3:cy=3:ca=0", f(n(v, "amount")))))
        },
    },
    Step {
        name: "perspective",
        medium: Medium::Video,
        stage: Some(LENS),
        params: &[
            float("x0", -100000.0, 100000.0, None, "top-left corner x"),
            float("y0", -100000.0, 100000.0, None, "top-left corner y"),
            float("x1", -100000.0, 100000.0, None, "top-right corner x"),
            float("y1", -100000.0, 100000.0, None, "top-right corner y"),
            float("x2", -100000.0, 100000.0, None, "bottom-left corner x"),
            float("y2", -100000.0, 100000.0, None, "bottom-left corner y"),
            float("x3", -100000.0, 100000.0, None, "bottom-right corner x"),
            float("y3", -100000.0, 100000.0, None, "bottom-right corner y"),
            choice("interpolation", &["linear", "cubic"], Some("cubic"), "how new pixels are computed"),
        ],
        summary: "perspective correction: map a quadrilateral (a plate, a sign) onto the whole frame",
        algorithm: "A plane seen at an angle is a quadrilateral in the picture. The projective transform \
            (homography) that takes its four corners to the frame's corners is computed, and each output \
            pixel is sampled from the source at the transformed position with linear or cubic interpolation.",
        reference: "R. Hartley & A. Zisserman, Multiple View Geometry in Computer Vision (2nd ed., 2004), §2.3; \
            FFmpeg perspective.",
        learned: false,
        build: |v, _| {
            let mut s = String::from("perspective=");
            for k in ["x0", "y0", "x1", "y1", "x2", "y2", "x3", "y3"] {
                let _ = write!(s, "{k}={}:", f(n(v, k)));
            }
            let _ = write!(s, "interpolation={}:sense=source", t(v, "interpolation"));
            Ok(Op::Filters(s))
        },
    },
    Step {
        name: "stabilise",
        medium: Medium::Video,
        stage: Some(SCENE),
        params: &[int("range", 1, 64, Some(16), "the largest shift searched, in pixels")],
        summary: "stabilisation: remove camera shake",
        algorithm: "Each frame's global motion relative to the previous one is estimated by block matching \
            (exhaustive search within the range) and the picture is shifted and rotated back; the edges \
            uncovered are filled by mirroring. Only global translation and rotation are corrected.",
        reference: "FFmpeg deshake (after the MPlayer/Avidemux deshake filters); block matching: J. R. Jain & \
            A. K. Jain, IEEE Trans. Comm. 1981.",
        learned: false,
        build: |v, _| {
            let r = n(v, "range");
            Ok(Op::Filters(format!("deshake=rx={r}:ry={r}:edge=mirror")))
        },
    },
    Step {
        name: "average",
        medium: Medium::Video,
        stage: Some(SCENE),
        params: &[int("frames", 2, 128, Some(5), "how many frames each output frame averages")],
        summary: "frame averaging: each frame the mean of the last N (of fewer at the start)",
        algorithm: "For a still scene or a registered (stabilised) plate, noise differs from frame to frame \
            while the subject does not: the mean of N frames keeps the subject and divides the standard \
            deviation of independent noise by √N. Output frame i is the exact mean, rounded to the nearest \
            code value, of input frames max(0, i−N+1) … i; the first N−1 frames average the fewer frames \
            there are, so no frame is invented.",
        reference: "Frame averaging / temporal integration as defined by dVeloper (frame averaging filter); \
            Gonzalez & Woods, Digital Image Processing (4th ed., 2018), §2.6 image averaging.",
        learned: false,
        build: |v, _| Ok(Op::Average(n(v, "frames") as u32)),
    },
    Step {
        name: "crop",
        medium: Medium::Video,
        stage: Some(SCENE),
        params: &[
            int("x", 0, 100000, None, "left edge, pixels"),
            int("y", 0, 100000, None, "top edge, pixels"),
            int("w", 2, 100000, None, "width, pixels"),
            int("h", 2, 100000, None, "height, pixels"),
            float("zoom", 0.1, 16.0, Some(1.0), "enlargement after cropping"),
            choice("interpolation", INTERPOLATION, Some("lanczos"), "how new pixels are computed when zooming"),
        ],
        summary: "crop and zoom, with a stated interpolation",
        algorithm: "The rectangle is cut out unchanged; with a zoom other than 1 it is resampled to \
            zoom × its size (even dimensions) with the stated kernel: nearest neighbour (each pixel repeated, \
            nothing computed), bilinear, bicubic or Lanczos-3. Enlarging adds no detail that was not recorded.",
        reference: "R. Keys, \"Cubic convolution interpolation for digital image processing\", IEEE Trans. ASSP \
            1981; C. Duchon, \"Lanczos filtering in one and two dimensions\", J. Appl. Meteor. 1979.",
        learned: false,
        build: |v, _| {
            let (x, y, w, h, z) = (n(v, "x"), n(v, "y"), n(v, "w"), n(v, "h"), n(v, "zoom"));
            let mut s = format!("crop=w={w}:h={h}:x={x}:y={y}:exact=1");
            if z != 1.0 {
                let (zw, zh) = ((w * z / 2.0).round() * 2.0, (h * z / 2.0).round() * 2.0);
                let _ = write!(
                    s,
                    ",scale=w={}:h={}:flags={}+accurate_rnd+full_chroma_int",
                    zw.max(2.0),
                    zh.max(2.0),
                    sws(t(v, "interpolation"))
                );
            }
            Ok(Op::Filters(s))
        },
    },
    Step {
        name: "rotate",
        medium: Medium::Video,
        stage: None,
        params: &[choice("degrees", &["90", "180", "270"], None, "clockwise")],
        summary: "rotate by a quarter turn (pixels moved, none computed)",
        algorithm: "The pixels are transposed and mirrored: a lossless rearrangement.",
        reference: "FFmpeg transpose, hflip, vflip.",
        learned: false,
        build: |v, _| {
            Ok(Op::Filters(
                match t(v, "degrees") {
                    "90" => "transpose=dir=clock",
                    "180" => "hflip,vflip",
                    _ => "transpose=dir=cclock",
                }
                .to_owned(),
            ))
        },
    },
    Step {
        name: "flip",
        medium: Medium::Video,
        stage: None,
        params: &[choice("direction", &["horizontal", "vertical"], None, "mirror left-right or top-bottom")],
        summary: "mirror the picture (a camera or mirror that recorded it reversed)",
        algorithm: "The pixels are mirrored: a lossless rearrangement.",
        reference: "FFmpeg hflip, vflip.",
        learned: false,
        build: |v, _| Ok(Op::Filters(if t(v, "direction") == "horizontal" { "hflip" } else { "vflip" }.to_owned())),
    },
    Step {
        name: "reverse",
        medium: Medium::Video,
        stage: None,
        params: &[],
        summary: "play the span backwards (needs --from/--to on long items: every frame is held in memory)",
        algorithm: "The frames are output in reverse order with their timestamps kept increasing.",
        reference: "FFmpeg reverse.",
        learned: false,
        build: |_, _| Ok(Op::Filters("reverse".to_owned())),
    },
    // ---------------------------------------------------------------- audio
    Step {
        name: "declick",
        medium: Medium::Audio,
        stage: Some(REPAIR),
        params: &[
            float("window", 10.0, 100.0, Some(55.0), "analysis window, ms"),
            float("threshold", 1.0, 100.0, Some(2.0), "detection threshold (lower finds more)"),
        ],
        summary: "de-click: find impulsive noise and replace it",
        algorithm: "An autoregressive model of the signal predicts each sample; samples whose prediction \
            error exceeds the threshold are marked as clicks and re-estimated from the model (least-squares \
            autoregressive interpolation).",
        reference: "S. J. Godsill & P. J. W. Rayner, Digital Audio Restoration (Springer, 1998), ch. 5; FFmpeg adeclick.",
        learned: false,
        build: |v, _| {
            Ok(Op::Filters(format!("adeclick=window={}:threshold={}", f(n(v, "window")), f(n(v, "threshold")))))
        },
    },
    Step {
        name: "declip",
        medium: Medium::Audio,
        stage: Some(REPAIR),
        params: &[
            float("window", 10.0, 100.0, Some(55.0), "analysis window, ms"),
            float("threshold", 1.0, 100.0, Some(10.0), "detection threshold"),
        ],
        summary: "de-clip: rebuild the peaks of clipped audio",
        algorithm: "Runs of samples at the clipping level are marked as missing and re-estimated from an \
            autoregressive model of the surrounding signal.",
        reference: "S. J. Godsill & P. J. W. Rayner, Digital Audio Restoration (Springer, 1998); FFmpeg adeclip.",
        learned: false,
        build: |v, _| {
            Ok(Op::Filters(format!("adeclip=window={}:threshold={}", f(n(v, "window")), f(n(v, "threshold")))))
        },
    },
    Step {
        name: "highpass",
        medium: Medium::Audio,
        stage: Some(EQ),
        params: &[
            float("frequency", 1.0, 96000.0, Some(100.0), "the −3 dB point, Hz"),
            choice("order", &["2", "4", "6", "8"], Some("2"), "filter order (12 dB per octave for each 2)"),
        ],
        summary: "high-pass: remove rumble and hum below a frequency",
        algorithm: "Second-order Butterworth sections (biquads, maximally flat in the pass band) cascaded to \
            the stated order; each section falls 12 dB per octave below the cut-off.",
        reference: "S. Butterworth, \"On the theory of filter amplifiers\", 1930; R. Bristow-Johnson, Audio EQ \
            Cookbook; FFmpeg highpass.",
        learned: false,
        build: |v, _| Ok(Op::Filters(cascade("highpass", n(v, "frequency"), t(v, "order")))),
    },
    Step {
        name: "lowpass",
        medium: Medium::Audio,
        stage: Some(EQ),
        params: &[
            float("frequency", 1.0, 96000.0, Some(3400.0), "the −3 dB point, Hz"),
            choice("order", &["2", "4", "6", "8"], Some("2"), "filter order (12 dB per octave for each 2)"),
        ],
        summary: "low-pass: remove hiss above a frequency",
        algorithm: "Second-order Butterworth sections cascaded to the stated order; each falls 12 dB per \
            octave above the cut-off.",
        reference: "S. Butterworth, 1930; R. Bristow-Johnson, Audio EQ Cookbook; FFmpeg lowpass.",
        learned: false,
        build: |v, _| Ok(Op::Filters(cascade("lowpass", n(v, "frequency"), t(v, "order")))),
    },
    Step {
        name: "bandpass",
        medium: Medium::Audio,
        stage: Some(EQ),
        params: &[
            float("low", 1.0, 96000.0, Some(300.0), "lower −3 dB point, Hz"),
            float("high", 1.0, 96000.0, Some(3400.0), "upper −3 dB point, Hz"),
            choice("order", &["2", "4", "6", "8"], Some("4"), "order of each side"),
        ],
        summary: "band-pass: keep the speech band (300–3400 Hz by default)",
        algorithm: "A Butterworth high-pass at the low edge followed by a Butterworth low-pass at the high \
            edge, each of the stated order: the telephone speech band carries intelligibility while hum, \
            rumble and hiss lie outside it.",
        reference: "ITU-T G.712 (the 300–3400 Hz voice band); S. Butterworth, 1930; FFmpeg highpass/lowpass.",
        learned: false,
        build: |v, _| {
            let (lo, hi) = (n(v, "low"), n(v, "high"));
            if hi <= lo {
                return Err(format!("high ({hi} Hz) must be above low ({lo} Hz)"));
            }
            Ok(Op::Filters(format!(
                "{},{}",
                cascade("highpass", lo, t(v, "order")),
                cascade("lowpass", hi, t(v, "order"))
            )))
        },
    },
    Step {
        name: "notch",
        medium: Medium::Audio,
        stage: Some(EQ),
        params: &[
            float("frequency", 10.0, 1000.0, Some(60.0), "the mains frequency, Hz (50 or 60)"),
            int("harmonics", 1, 20, Some(5), "how many multiples of it to remove (1 = the fundamental only)"),
            float("q", 1.0, 200.0, Some(30.0), "quality factor: higher is narrower"),
        ],
        summary: "notch out mains hum (50/60 Hz) and its harmonics",
        algorithm: "A two-pole band-reject (notch) filter at the mains frequency and at each harmonic up to \
            the count, each as narrow as its quality factor Q (bandwidth = frequency / Q), so speech between \
            the harmonics is kept. Harmonics at or above half the sample rate are skipped.",
        reference: "R. Bristow-Johnson, Audio EQ Cookbook (notch biquad); FFmpeg bandreject.",
        learned: false,
        build: |v, c| {
            let (base, q) = (n(v, "frequency"), n(v, "q"));
            let nyquist = if c.sample_rate > 0 { f64::from(c.sample_rate) / 2.0 } else { f64::INFINITY };
            let chain: Vec<String> = (1..=n(v, "harmonics") as u32)
                .map(|k| base * f64::from(k))
                .filter(|&hz| hz < nyquist * 0.95)
                .map(|hz| format!("bandreject=f={}:width_type=q:w={}", f(hz), f(q)))
                .collect();
            if chain.is_empty() {
                return Err(format!("{base} Hz is above what a {} Hz recording holds", c.sample_rate));
            }
            Ok(Op::Filters(chain.join(",")))
        },
    },
    Step {
        name: "fft_denoise",
        medium: Medium::Audio,
        stage: Some(NOISE),
        params: &[
            float("reduction", 0.01, 97.0, Some(12.0), "noise reduction, dB"),
            float("floor", -80.0, -20.0, Some(-50.0), "noise floor, dB"),
            choice("track", &["no", "yes"], Some("no"), "follow a changing noise floor"),
        ],
        summary: "FFT denoise: reduce broadband noise (hiss, fan, road noise) by spectral subtraction",
        algorithm: "The signal is analysed in overlapping FFT frames; a noise profile per frequency band is \
            estimated from the noise floor, and each band is attenuated by a gain that falls as its level \
            nears the noise (a Wiener-like suppression rule), by up to the stated reduction.",
        reference: "S. F. Boll, \"Suppression of acoustic noise in speech using spectral subtraction\", IEEE Trans. \
            ASSP 1979; Y. Ephraim & D. Malah, IEEE Trans. ASSP 1984; FFmpeg afftdn.",
        learned: false,
        build: |v, _| {
            Ok(Op::Filters(format!(
                "afftdn=nr={}:nf={}:tn={}",
                f(n(v, "reduction")),
                f(n(v, "floor")),
                if t(v, "track") == "yes" { 1 } else { 0 }
            )))
        },
    },
    Step {
        name: "nlm_denoise",
        medium: Medium::Audio,
        stage: Some(NOISE),
        params: &[
            float("strength", 0.00001, 10000.0, Some(0.00001), "denoising strength"),
            float("patch", 1.0, 100.0, Some(2.0), "patch duration, ms"),
            float("research", 2.0, 300.0, Some(6.0), "research window, ms"),
        ],
        summary: "non-local-means denoise of audio",
        algorithm: "Each sample is replaced by a weighted mean of samples whose surrounding patches are \
            similar within the research window, as non-local means does for pictures.",
        reference: "A. Buades, B. Coll, J.-M. Morel, CVPR 2005 (non-local means); FFmpeg anlmdn.",
        learned: false,
        build: |v, _| {
            Ok(Op::Filters(format!(
                "anlmdn=s={}:p={}:r={}",
                f(n(v, "strength")),
                f(n(v, "patch") / 1000.0),
                f(n(v, "research") / 1000.0)
            )))
        },
    },
    Step {
        name: "normalize",
        medium: Medium::Audio,
        stage: Some(LEVEL),
        params: &[
            int("frame", 10, 8000, Some(500), "analysis frame, ms"),
            Param {
                name: "window",
                kind: Kind::Odd { min: 3, max: 301, default: Some(31) },
                help: "Gaussian smoothing, frames (odd)",
            },
            float("peak", 0.0, 1.0, Some(0.95), "target peak"),
            float("max_gain", 1.0, 100.0, Some(10.0), "largest gain"),
        ],
        summary: "dynamic normalisation: bring quiet and loud passages to a similar level",
        algorithm: "The gain of each analysis frame is the one that brings its peak to the target, limited \
            to the largest gain; the gains are smoothed with a Gaussian window over neighbouring frames so \
            they change gradually, and applied.",
        reference: "L. Müller, Dynamic Audio Normalizer (2015); FFmpeg dynaudnorm.",
        learned: false,
        build: |v, _| {
            Ok(Op::Filters(format!(
                "dynaudnorm=f={}:g={}:p={}:m={}",
                n(v, "frame"),
                n(v, "window"),
                f(n(v, "peak")),
                f(n(v, "max_gain"))
            )))
        },
    },
    Step {
        name: "loudness",
        medium: Medium::Audio,
        stage: Some(LEVEL),
        params: &[
            float("target", -70.0, -5.0, Some(-23.0), "integrated loudness, LUFS"),
            float("true_peak", -9.0, 0.0, Some(-2.0), "highest true peak, dBTP"),
            float("range", 1.0, 50.0, Some(7.0), "loudness range, LU"),
        ],
        summary: "EBU R128 loudness normalisation",
        algorithm: "Loudness is measured with the K-weighted, gated measure of ITU-R BS.1770 and the gain is \
            adjusted to reach the target integrated loudness within the loudness range, with a true-peak \
            limiter; the result is resampled back to the source's sample rate.",
        reference: "EBU R 128 (2020); ITU-R BS.1770-4; FFmpeg loudnorm.",
        learned: false,
        build: |v, c| {
            let mut s =
                format!("loudnorm=I={}:TP={}:LRA={}", f(n(v, "target")), f(n(v, "true_peak")), f(n(v, "range")));
            if c.sample_rate > 0 {
                let _ = write!(s, ",aresample={}", c.sample_rate);
            }
            Ok(Op::Filters(s))
        },
    },
    Step {
        name: "amplify",
        medium: Medium::Audio,
        stage: Some(LEVEL),
        params: &[float("gain", -60.0, 60.0, None, "gain, dB")],
        summary: "amplify by a fixed gain",
        algorithm: "Every sample is multiplied by 10^(gain/20), in double precision; samples beyond full \
            scale clip when the result is stored.",
        reference: "FFmpeg volume.",
        learned: false,
        build: |v, _| Ok(Op::Filters(format!("volume=volume={}dB:precision=double", f(n(v, "gain"))))),
    },
    Step {
        name: "channels",
        medium: Medium::Audio,
        stage: None,
        params: &[int("channel", 0, 63, None, "keep this channel (0 is the first); without it, mix all to mono")],
        summary: "select one channel, or mix all channels to mono",
        algorithm: "One channel is kept as recorded, or all channels are averaged with equal weights.",
        reference: "FFmpeg pan.",
        learned: false,
        build: |v, c| {
            if has(v, "channel") {
                let ch = n(v, "channel") as u32;
                if c.channels > 0 && ch >= c.channels {
                    return Err(format!(
                        "channel {ch} does not exist: the audio has {} channel(s), 0 to {}",
                        c.channels,
                        c.channels - 1
                    ));
                }
                Ok(Op::Filters(format!("pan=mono|c0=c{ch}")))
            } else {
                let k = c.channels.max(1);
                let w = f(1.0 / f64::from(k));
                let sum: Vec<String> = (0..k).map(|i| format!("{w}*c{i}")).collect();
                Ok(Op::Filters(format!("pan=mono|c0={}", sum.join("+"))))
            }
        },
    },
];

fn cascade(filter: &str, hz: f64, order: &str) -> String {
    let sections = order.parse::<usize>().unwrap_or(2) / 2;
    vec![format!("{filter}=f={}:poles=2", f(hz)); sections.max(1)].join(",")
}

/// The step named `name` (`stabilize` is accepted for `stabilise`).
pub fn find(name: &str) -> Option<&'static Step> {
    let name = if name == "stabilize" { "stabilise" } else { name };
    STEPS.iter().find(|s| s.name == name)
}

/// Check a parameter's value as written.
pub fn parse_value(p: &Param, text: &str) -> Result<Value, String> {
    let text = text.trim();
    let number = |min: f64, max: f64, whole: bool, odd: bool| -> Result<Value, String> {
        let v: f64 = text.parse().map_err(|_| format!("{} must be a number, not {text:?}", p.name))?;
        if !v.is_finite() {
            return Err(format!("{} must be a finite number", p.name));
        }
        if whole && v.fract() != 0.0 {
            return Err(format!("{} must be a whole number, not {text}", p.name));
        }
        if odd && (v as i64) % 2 == 0 {
            return Err(format!("{} must be odd, not {text}", p.name));
        }
        if v < min || v > max {
            return Err(format!("{} = {text} is out of range: {} to {}", p.name, f(min), f(max)));
        }
        Ok(Value::Number(v))
    };
    match p.kind {
        Kind::Float { min, max, .. } => number(min, max, false, false),
        Kind::Int { min, max, .. } => number(min as f64, max as f64, true, false),
        Kind::Odd { min, max, .. } => number(min as f64, max as f64, true, true),
        Kind::Choice { values, .. } => {
            if values.contains(&text) {
                Ok(Value::Text(text.to_owned()))
            } else {
                Err(format!("{} must be one of {}, not {text:?}", p.name, values.join(", ")))
            }
        }
        Kind::Ratio { .. } => {
            let v = match text.split_once([':', '/']) {
                Some((a, b)) => match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
                    (Ok(a), Ok(b)) if b != 0.0 => a / b,
                    _ => f64::NAN,
                },
                None => text.parse().unwrap_or(f64::NAN),
            };
            if !(0.1..=10.0).contains(&v) {
                return Err(format!("{} must be a ratio N:D or a decimal between 0.1 and 10, not {text:?}", p.name));
            }
            Ok(Value::Number(v))
        }
    }
}

/// The default of a parameter, if it has one.
pub fn default_of(p: &Param) -> Option<Value> {
    match p.kind {
        Kind::Float { default, .. } => default.map(Value::Number),
        Kind::Int { default, .. } | Kind::Odd { default, .. } => default.map(|d| Value::Number(d as f64)),
        Kind::Choice { default, .. } => default.map(|d| Value::Text(d.to_owned())),
        Kind::Ratio { default } => default.map(Value::Number),
    }
}

/// Parameters a step leaves to the method chosen: no default filled in.
fn method_dependent(step: &str, param: &str) -> bool {
    step == "denoise" && matches!(param, "strength" | "temporal" | "patch" | "research")
}

/// Fill in defaults; name a required parameter that is missing.
pub fn complete(step: &Step, mut given: Values) -> Result<Values, String> {
    if step.name == "denoise" {
        // The defaults depend on the method chosen, and are recorded like every other.
        let nlmeans = given.get("method").is_some_and(|m| m.text() == "nlmeans");
        let strength = given.get("strength").map_or(if nlmeans { 3.0 } else { 4.0 }, Value::num);
        given.entry("strength").or_insert(Value::Number(strength));
        if nlmeans {
            given.entry("patch").or_insert(Value::Number(7.0));
            given.entry("research").or_insert(Value::Number(15.0));
        } else if !given.contains_key("patch") && !given.contains_key("research") {
            given.entry("temporal").or_insert(Value::Number(1.5 * strength));
        }
    }
    for p in step.params {
        if given.contains_key(p.name) || method_dependent(step.name, p.name) {
            continue;
        }
        match default_of(p) {
            Some(d) => {
                given.insert(p.name, d);
            }
            None if step.name == "channels" => {}
            None => return Err(format!("{} needs {} ({})", step.name, p.name, p.help)),
        }
    }
    Ok(given)
}
