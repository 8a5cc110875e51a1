//! `custody enhance`: each step corrects the defect it is for, measured on generated media with a
//! known defect (interlacing, crushed blacks, a colour cast, blur, noise, shake, keystone, mains
//! hum, out-of-band tones, low level) against the clean original or the physics of the defect;
//! pixel-moving steps (rotate, flip, crop, reverse) and frame averaging are checked exactly; a
//! lossless output's frame MD5s are ffmpeg's `framemd5`; a span holds exactly its frames; bad
//! recipes exit 2 at their line and column and record nothing; steps out of the usual order run
//! with a warning. Oracles: the ffmpeg CLI's own decode (raw planes, f64 samples, framemd5),
//! its `idet` and `ebur128` filters, ffprobe, sha256sum; the arithmetic is done here.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use custody::media::synth::Fixture;
use serde_json::Value;

use crate::support::{Output, Store, ffmpeg_read, ffprobe_json, sha256sum, tool};

/// A measured number, on stderr (shown with `--no-capture`, and for a failing test).
macro_rules! measured {
    ($($t:tt)*) => { eprintln!("measured: {}", format_args!($($t)*)) };
}

// ---------------------------------------------------------------------------------------------
// Making test media with the ffmpeg CLI.

/// `ffmpeg -nostdin -v error -y ARGS… work/NAME`, expecting success; returns the file.
#[track_caller]
fn make(store: &Store, name: &str, args: &[&str]) -> PathBuf {
    let out = store.work().join(name);
    let mut all: Vec<&OsStr> = ["-nostdin", "-v", "error", "-y"].iter().map(OsStr::new).collect();
    all.extend(args.iter().map(OsStr::new));
    all.push(out.as_os_str());
    tool("ffmpeg", &all, store.work()).status(0);
    out
}

/// A lossless (FFV1, 4:2:0, Matroska) video from a lavfi source graph and a filter chain.
#[track_caller]
fn lossless_video(store: &Store, name: &str, source: &str, filters: &str) -> PathBuf {
    let vf = if filters.is_empty() { "format=yuv420p".to_owned() } else { format!("{filters},format=yuv420p") };
    make(store, name, &["-f", "lavfi", "-i", source, "-vf", &vf, "-c:v", "ffv1", "-level", "3"])
}

/// The same as [`lossless_video`] from an existing file instead of a lavfi source.
#[track_caller]
fn lossless_from(store: &Store, name: &str, input: &Path, filters: &str) -> PathBuf {
    let vf = format!("{filters},format=yuv420p");
    make(store, name, &["-i", input.to_str().expect("utf-8 path"), "-vf", &vf, "-c:v", "ffv1", "-level", "3"])
}

/// A 16-bit PCM WAV (48 kHz) from an `aevalsrc` expression (`|` between channels).
#[track_caller]
fn wav(store: &Store, name: &str, exprs: &str, seconds: f64, layout: &str) -> PathBuf {
    let src = format!("aevalsrc={exprs}:s=48000:d={seconds}:c={layout}");
    make(store, name, &["-f", "lavfi", "-i", &src, "-c:a", "pcm_s16le"])
}

/// A smooth, mid-grey picture (no values near 0 or 255, so added noise never clips), still.
const SMOOTH: &str = "geq=lum='128+50*sin(X/13)*cos(Y/17)':cb=128:cr=128";

/// Write a recipe into `work/recipes/NAME`; returns the relative path given on the command
/// line (the working directory is the work directory), as errors should name it.
fn recipe(store: &Store, name: &str, yaml: &str) -> String {
    store.file(&format!("recipes/{name}"), yaml);
    format!("recipes/{name}")
}

// ---------------------------------------------------------------------------------------------
// Running the command.

/// A successful `custody --json enhance ITEM ARGS… --out DIR`.
struct Enhanced {
    out: Output,
    json: Value,
    /// The copy `--out` wrote of the output item.
    file: PathBuf,
}

impl Enhanced {
    /// The entry of `streams` of this kind (`video`, `audio`).
    #[track_caller]
    fn stream(&self, kind: &str) -> &Value {
        let streams = self.json["streams"].as_array().unwrap_or_else(|| panic!("no streams in {:#}", self.json));
        streams.iter().find(|s| s["kind"] == kind).unwrap_or_else(|| panic!("no {kind} stream in {:#}", self.json))
    }

    /// Warnings the JSON lists.
    fn warnings(&self) -> Vec<String> {
        self.json["warnings"]
            .as_array()
            .unwrap_or_else(|| panic!("no warnings array in {:#}", self.json))
            .iter()
            .map(|w| w.as_str().map_or_else(|| w.to_string(), str::to_owned))
            .collect()
    }
}

/// `custody --json enhance ITEM ARGS… --out DIR` (a fresh DIR each call), expecting exit 0, an
/// output item in the store with the SHA-256 the JSON states, and its copy in DIR.
#[track_caller]
fn enhance(store: &Store, item: &str, args: &[&str]) -> Enhanced {
    let dir = (1..).map(|n| store.work().join(format!("enhanced-{n}"))).find(|d| !d.exists()).unwrap();
    let out = store.cmd(&["--json", "enhance", item]).args(args).arg("--out").arg(&dir).run();
    let json = out.status(0).json();
    assert_eq!(json["command"], "enhance", "{json:#}");
    assert_eq!(json["parent"], item, "{json:#}");
    let sha = json["sha256"].as_str().unwrap_or_else(|| panic!("no sha256 in {json:#}")).to_owned();
    let object = store.object_path(&sha);
    assert!(object.is_file(), "the output {} is not in the store: {json:#}", object.display());
    assert_eq!(sha256sum(&object), sha, "the stored object does not have the SHA-256 the JSON states");
    let file = dir.join(base_name(&json["name"]));
    assert!(file.is_file(), "--out {} holds no {}: {json:#}", dir.display(), file.display());
    assert_eq!(sha256sum(&file), sha, "the --out copy is not the stored output");
    Enhanced { out, json, file }
}

/// `custody enhance ITEM ARGS…` that must be refused: exit 2, nothing recorded or left behind.
#[track_caller]
fn refused(store: &Store, item: &str, args: &[&str]) -> Output {
    let before = store.snapshot();
    let out = store.cmd(&["enhance", item]).args(args).run();
    out.status(2);
    store.assert_unchanged(&before);
    out
}

/// The last path component of an item name (`24-1234/9/x.mkv` → `x.mkv`).
#[track_caller]
fn base_name(name: &Value) -> String {
    name.as_str().unwrap_or_else(|| panic!("not a name: {name}")).rsplit('/').next().unwrap().to_owned()
}

/// Ingest a file (case 24-1234, item 9); returns its item ID.
#[track_caller]
fn ingest(store: &Store, path: &Path) -> String {
    store.ingest_media(path).id
}

/// The newest ledger event, read straight from the database.
fn last_event(store: &Store) -> Value {
    store.event_bodies().pop().expect("the ledger has events")
}

// ---------------------------------------------------------------------------------------------
// Pictures: the ffmpeg CLI's decode as raw yuv420p planes.

/// Every frame of a file's first video stream, decoded by the ffmpeg CLI as 8-bit 4:2:0 planes
/// (no frame-rate conversion).
struct Video {
    w: usize,
    h: usize,
    frames: Vec<Vec<u8>>,
}

impl Video {
    #[track_caller]
    fn decode(path: &Path) -> Video {
        let (w, h) = video_size(path);
        let raw = ffmpeg_read(
            path,
            &["-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
        );
        let size = w * h + 2 * (w / 2) * (h / 2);
        assert_eq!(raw.len() % size, 0, "{}: not whole {w}x{h} frames", path.display());
        Video { w, h, frames: raw.chunks_exact(size).map(<[u8]>::to_vec).collect() }
    }

    fn y(&self, k: usize) -> &[u8] {
        &self.frames[k][..self.w * self.h]
    }

    fn u(&self, k: usize) -> &[u8] {
        let (l, c) = (self.w * self.h, (self.w / 2) * (self.h / 2));
        &self.frames[k][l..l + c]
    }

    fn v(&self, k: usize) -> &[u8] {
        let (l, c) = (self.w * self.h, (self.w / 2) * (self.h / 2));
        &self.frames[k][l + c..]
    }

    fn len(&self) -> usize {
        self.frames.len()
    }

    /// Every luma sample of every frame.
    fn all_luma(&self) -> Vec<u8> {
        (0..self.len()).flat_map(|k| self.y(k).to_vec()).collect()
    }
}

/// Width and height of the first video stream, by ffprobe.
#[track_caller]
fn video_size(path: &Path) -> (usize, usize) {
    let s = &ffprobe_json(path, &["-select_streams", "v:0", "-show_entries", "stream=width,height"])["streams"][0];
    (s["width"].as_u64().expect("width") as usize, s["height"].as_u64().expect("height") as usize)
}

/// Codec names of the streams of a file, in order, by ffprobe.
fn codecs(path: &Path) -> Vec<String> {
    let probe = ffprobe_json(path, &["-show_entries", "stream=codec_name"]);
    probe["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap_or("?").into())
        .collect()
}

/// Mean and standard deviation of 8-bit samples.
fn mean_sd(v: &[u8]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = v.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Root-mean-square difference between two equally long planes, leaving a `margin` of rows and
/// columns of a `w`-wide plane out (where filters fill edges).
fn rms_diff(a: &[u8], b: &[u8], w: usize, margin: usize) -> f64 {
    assert_eq!(a.len(), b.len(), "planes of different sizes");
    let h = a.len() / w;
    let (mut se, mut n) = (0.0, 0.0);
    for y in margin..h - margin {
        for x in margin..w - margin {
            let d = f64::from(a[y * w + x]) - f64::from(b[y * w + x]);
            se += d * d;
            n += 1.0;
        }
    }
    (se / n).sqrt()
}

/// Peak signal-to-noise ratio of `a` against the reference `b` over their luma, in dB.
fn psnr(a: &[u8], b: &[u8], w: usize, margin: usize) -> f64 {
    20.0 * (255.0 / rms_diff(a, b, w, margin)).log10()
}

/// Mean luma PSNR of every frame of `test` against the same frame of `clean`.
#[track_caller]
fn video_psnr(test: &Video, clean: &Video, margin: usize) -> f64 {
    assert_eq!((test.w, test.h, test.len()), (clean.w, clean.h, clean.len()), "different videos");
    (0..test.len()).map(|k| psnr(test.y(k), clean.y(k), test.w, margin)).sum::<f64>() / test.len() as f64
}

/// Edge energy: the mean absolute difference between horizontally and vertically neighbouring
/// luma samples.
fn edge_energy(y: &[u8], w: usize) -> f64 {
    let h = y.len() / w;
    let mut sum = 0.0;
    for r in 0..h - 1 {
        for c in 0..w - 1 {
            let p = f64::from(y[r * w + c]);
            sum += (f64::from(y[r * w + c + 1]) - p).abs() + (f64::from(y[(r + 1) * w + c]) - p).abs();
        }
    }
    sum / ((w - 1) * (h - 1)) as f64
}

/// The whole-picture displacement from frame `a` to frame `b` (columns, rows), as the shift
/// that best matches their column and row mean profiles, searched within ±`range` pixels.
fn displacement(a: &[u8], b: &[u8], w: usize, range: usize) -> (i64, i64) {
    let h = a.len() / w;
    let profiles = |f: &[u8]| {
        let mut cols = vec![0.0; w];
        let mut rows = vec![0.0; h];
        for r in 0..h {
            for c in 0..w {
                let v = f64::from(f[r * w + c]);
                cols[c] += v / h as f64;
                rows[r] += v / w as f64;
            }
        }
        (cols, rows)
    };
    let best = |p: &[f64], q: &[f64]| {
        let n = p.len();
        let r = range as i64;
        (-r..=r)
            .map(|s| {
                let sad: f64 = (range..n - range).map(|i| (p[i] - q[(i as i64 + s) as usize]).abs()).sum();
                (sad, s)
            })
            .min_by(|x, y| x.0.total_cmp(&y.0))
            .unwrap()
            .1
    };
    let ((ca, ra), (cb, rb)) = (profiles(a), profiles(b));
    (best(&ca, &cb), best(&ra, &rb))
}

/// Mean frame-to-frame shake: |dx| + |dy| between consecutive frames, in pixels.
fn mean_shake(v: &Video) -> f64 {
    let total: i64 = (1..v.len())
        .map(|k| {
            let (dx, dy) = displacement(v.y(k - 1), v.y(k), v.w, 16);
            dx.abs() + dy.abs()
        })
        .sum();
    total as f64 / (v.len() - 1) as f64
}

/// Means of the R, G and B channels over every frame, decoded by the ffmpeg CLI as RGB24.
#[track_caller]
fn rgb_means(path: &Path) -> [f64; 3] {
    let raw = ffmpeg_read(path, &["-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
    let mut sums = [0.0; 3];
    for px in raw.chunks_exact(3) {
        for (sum, &v) in sums.iter_mut().zip(px) {
            *sum += f64::from(v);
        }
    }
    let n = (raw.len() / 3) as f64;
    sums.map(|s| s / n)
}

/// The MD5 column of `ffmpeg -i PATH -map MAP [-pix_fmt P] -f framemd5 -`, one per frame.
#[track_caller]
fn framemd5(path: &Path, map: &str, pix_fmt: Option<&str>) -> Vec<String> {
    let mut args = vec!["-map", map];
    if let Some(p) = pix_fmt {
        args.extend(["-pix_fmt", p]);
    }
    args.extend(["-f", "framemd5", "-"]);
    let text = String::from_utf8(ffmpeg_read(path, &args)).expect("framemd5 is text");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.rsplit(',').next().unwrap().trim().to_owned())
        .collect()
}

/// `idet`'s single-frame verdict over every frame: (interlaced TFF + BFF, progressive). (Its
/// multi-frame verdict carries the last decision over undetermined frames, and calls every
/// frame of a field-rate deinterlace interlaced, as it does for the ffmpeg CLI's own yadif.)
#[track_caller]
fn idet(path: &Path) -> (u64, u64) {
    let out = tool(
        "ffmpeg",
        &["-nostdin", "-nostats", "-i", path.to_str().unwrap(), "-map", "0:v:0", "-vf", "idet", "-f", "null", "-"]
            .map(OsStr::new),
        Path::new("."),
    );
    out.status(0);
    let text = out.stderr();
    let line = text.lines().find(|l| l.contains("Single frame detection:")).expect("idet's summary");
    let count = |label: &str| -> u64 {
        let rest = &line[line.find(label).unwrap_or_else(|| panic!("{label} in {line}")) + label.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    (count("TFF:") + count("BFF:"), count("Progressive:"))
}

/// A number written as a JSON number or as a decimal string (the ledger encodes no
/// floating-point numbers, so fractions are recorded as strings).
fn number(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// The string values of a JSON value, recursively, and its keys (to look for a name in a
/// structure whose shape the test does not fix).
fn all_text(v: &Value) -> String {
    match v {
        Value::Object(m) => m.iter().map(|(k, v)| format!("{k} {} ", all_text(v))).collect(),
        Value::Array(a) => a.iter().map(all_text).collect(),
        Value::String(s) => format!("{s} "),
        other => format!("{other} "),
    }
}

// ---------------------------------------------------------------------------------------------
// Sound: the ffmpeg CLI's decode as f64 samples, and tone levels by least squares.

/// Every sample of the first audio stream, one vector per channel, with its rate.
struct Pcm {
    rate: usize,
    channels: Vec<Vec<f64>>,
}

impl Pcm {
    #[track_caller]
    fn decode(path: &Path) -> Pcm {
        let s = &ffprobe_json(path, &["-select_streams", "a:0", "-show_entries", "stream=sample_rate,channels"])["streams"]
            [0];
        let rate: usize = s["sample_rate"].as_str().expect("sample_rate").parse().expect("a rate");
        let n = s["channels"].as_u64().expect("channels") as usize;
        let raw = ffmpeg_read(path, &["-map", "0:a:0", "-c:a", "pcm_f64le", "-f", "f64le", "-"]);
        let samples: Vec<f64> =
            raw.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
        let channels = (0..n).map(|c| samples.iter().skip(c).step_by(n).copied().collect()).collect();
        Pcm { rate, channels }
    }

    /// The first (or only) channel.
    fn mono(&self) -> &[f64] {
        &self.channels[0]
    }

    /// One second of channel `c` from 1 s on: after filters have settled, an integer number of
    /// cycles of every whole-hertz tone.
    fn window(&self, c: usize) -> &[f64] {
        let x = &self.channels[c];
        assert!(x.len() >= 2 * self.rate, "less than 2 s of sound ({} samples at {} Hz)", x.len(), self.rate);
        &x[self.rate..2 * self.rate]
    }
}

/// Least-squares fit of a sine of `freq` Hz to `x` (starting at sample `start` of a `rate` Hz
/// signal): its cosine and sine amplitudes.
fn fit(x: &[f64], rate: usize, start: usize, freq: f64) -> (f64, f64) {
    let w = 2.0 * std::f64::consts::PI * freq / rate as f64;
    let (mut c, mut s) = (0.0, 0.0);
    for (i, v) in x.iter().enumerate() {
        let ph = w * (start + i) as f64;
        c += v * ph.cos();
        s += v * ph.sin();
    }
    let n = x.len() as f64;
    (2.0 * c / n, 2.0 * s / n)
}

/// Level of the `freq` Hz tone in one second of channel `c` (see [`Pcm::window`]), in dB
/// relative to a full-scale sine's amplitude.
fn tone_db(pcm: &Pcm, c: usize, freq: f64) -> f64 {
    let (a, b) = fit(pcm.window(c), pcm.rate, pcm.rate, freq);
    20.0 * a.hypot(b).log10()
}

/// Signal-to-noise ratio of the `freq` Hz tone in one second of the first channel: the fitted
/// sine's power over the power of everything else, in dB.
fn tone_snr(pcm: &Pcm, freq: f64) -> f64 {
    let x = pcm.window(0);
    let (a, b) = fit(x, pcm.rate, pcm.rate, freq);
    let w = 2.0 * std::f64::consts::PI * freq / pcm.rate as f64;
    let residual: f64 = x
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let ph = w * (pcm.rate + i) as f64;
            (v - a * ph.cos() - b * ph.sin()).powi(2)
        })
        .sum::<f64>()
        / x.len() as f64;
    10.0 * ((a * a + b * b) / 2.0 / residual).log10()
}

/// Root-mean-square level of samples.
fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt()
}

/// Integrated loudness (LUFS) by ffmpeg's EBU R 128 meter (`ebur128`'s summary).
#[track_caller]
fn integrated_loudness(path: &Path) -> f64 {
    let out = tool(
        "ffmpeg",
        &["-nostdin", "-nostats", "-i", path.to_str().unwrap(), "-map", "0:a:0", "-af", "ebur128", "-f", "null", "-"]
            .map(OsStr::new),
        Path::new("."),
    );
    out.status(0);
    let text = out.stderr();
    let summary = &text[text.rfind("Summary:").expect("ebur128's summary")..];
    let line = summary.lines().find(|l| l.trim_start().starts_with("I:")).expect("the integrated loudness");
    line.trim_start()["I:".len()..].trim().trim_end_matches("LUFS").trim().parse().expect("a loudness")
}

// ---------------------------------------------------------------------------------------------
// Video defects, each corrected by its step and measured.

/// 50 fields a second of moving test pattern woven into 25 interlaced frames (top field first).
fn interlaced(store: &Store) -> PathBuf {
    make(
        store,
        "interlaced.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x240:r=50:d=2",
            "-vf",
            "tinterlace=mode=interleave_top,setfield=tff,format=yuv420p",
            "-c:v",
            "ffv1",
            "-field_order",
            "tt",
        ],
    )
}

#[test]
fn deinterlace_removes_the_combing_of_interlaced_video_frame_for_frame() {
    let store = Store::new();
    let src = interlaced(&store);
    let (combed_before, _) = idet(&src);
    assert!(combed_before >= 45, "the source should be combed: idet finds {combed_before} of 50 frames interlaced");
    let item = ingest(&store, &src);

    let e = enhance(&store, &item, &["--step", "deinterlace"]);
    let (combed, progressive) = idet(&e.file);
    assert!(
        combed <= 5 && progressive >= 40,
        "after deinterlacing idet still finds {combed} of 50 frames interlaced ({progressive} progressive)"
    );
    measured!("deinterlace: idet single-frame interlaced {combed_before}/50 → {combed}/50, progressive {progressive}");
    let out = Video::decode(&e.file);
    assert_eq!((out.w, out.h, out.len()), (320, 240, 50), "one frame per frame at rate=frame");
    assert_eq!(e.stream("video")["frames"], 50, "{:#}", e.json);
}

#[test]
fn deinterlace_with_yadif_at_field_rate_makes_one_progressive_frame_per_field() {
    let store = Store::new();
    let item = ingest(&store, &interlaced(&store));
    let e = enhance(&store, &item, &["--step", "deinterlace:method=yadif,rate=field"]);
    let out = Video::decode(&e.file);
    assert_eq!(out.len(), 100, "rate=field doubles the frames: 50 frames of 2 fields");
    assert_eq!(e.stream("video")["frames"], 100, "{:#}", e.json);
    let (combed, _) = idet(&e.file);
    measured!("yadif rate=field: {} frames, idet single-frame interlaced {combed}/100", out.len());
    assert!(combed <= 10, "idet finds {combed} of 100 frames interlaced after yadif");
}

#[test]
fn levels_stretch_crushed_blacks_over_the_whole_video_range() {
    let store = Store::new();
    // Dark and dull: luma squeezed to 40 % above black (testsrc2's 29..235 → 21..93), chroma too.
    let src = lossless_video(
        &store,
        "dark.mkv",
        "testsrc2=s=320x240:r=25:d=1",
        "lutyuv=y='16+(val-16)*0.4':u='128+(val-128)*0.4':v='128+(val-128)*0.4'",
    );
    let before = Video::decode(&src);
    let luma_before = before.all_luma();
    let (_, sd_before) = mean_sd(&luma_before);
    let (black, white) = (*luma_before.iter().min().unwrap(), *luma_before.iter().max().unwrap());
    assert!(white <= 100, "the source should be dark: luma {black}..{white}");
    let item = ingest(&store, &src);

    // The examiner reads the darkest and brightest code values off the picture.
    let e = enhance(&store, &item, &["--step", &format!("levels:black={black},white={white}")]);
    let after = Video::decode(&e.file);
    assert_eq!(after.len(), before.len());
    let luma = after.all_luma();
    let (_, sd) = mean_sd(&luma);
    let (lo, hi) = (*luma.iter().min().unwrap(), *luma.iter().max().unwrap());
    let gain = 219.0 / f64::from(white - black);
    measured!("levels {black}..{white}: luma sd {sd_before:.1} → {sd:.1} (×{:.2}), span {lo}..{hi}", sd / sd_before);
    assert!(lo.abs_diff(16) <= 1 && hi.abs_diff(235) <= 1, "luma {black}..{white} became {lo}..{hi}, not 16..235");
    assert!((sd / sd_before / gain - 1.0).abs() < 0.03, "luma spread ×{:.3}, expected ×{gain:.3}", sd / sd_before);
    // Pixel for pixel, the documented mapping: 16 + (Y − black) × 219 / (white − black).
    let mut err = 0.0;
    for (&b, &a) in luma_before.iter().zip(&luma) {
        let want = 16.0 + f64::from(b - black) * gain;
        err += (f64::from(a) - want).abs();
    }
    let err = err / luma.len() as f64;
    measured!("levels: mean |error| from the mapping {err:.2}");
    assert!(err < 1.0, "output luma is {err:.2} code values from the levels mapping on average");
}

#[test]
fn contrast_scales_the_luma_spread_and_saturation_zero_leaves_grey() {
    let store = Store::new();
    let src = lossless_video(&store, "flat.mkv", "testsrc2=s=320x240:r=25:d=0.4", "eq=contrast=0.5");
    let before = Video::decode(&src);
    let (mean_before, sd_before) = mean_sd(&before.all_luma());
    let item = ingest(&store, &src);

    let e = enhance(&store, &item, &["--step", "contrast:contrast=1.8,saturation=0"]);
    let after = Video::decode(&e.file);
    let (_, sd) = mean_sd(&after.all_luma());
    let ratio = sd / sd_before;
    measured!("contrast=1.8: luma sd ×{ratio:.3}");
    assert!((ratio - 1.8).abs() < 0.2, "contrast=1.8 scaled the luma spread ×{ratio:.3} ({sd_before:.1} → {sd:.1})");
    for k in 0..after.len() {
        let chroma: Vec<u8> = after.u(k).iter().chain(after.v(k)).copied().collect();
        let (lo, hi) = (chroma.iter().min().unwrap(), chroma.iter().max().unwrap());
        assert!(*lo >= 126 && *hi <= 130, "saturation=0 left chroma {lo}..{hi} in frame {k} (grey is 128)");
    }

    let e = enhance(&store, &item, &["--step", "contrast:brightness=0.1"]);
    let (mean, sd) = mean_sd(&Video::decode(&e.file).all_luma());
    measured!("brightness=0.1: mean luma {mean_before:.1} → {mean:.1}, sd ×{:.3}", sd / sd_before);
    assert!(
        mean - mean_before > 15.0 && mean - mean_before < 35.0,
        "brightness=0.1 moved mean luma {mean_before:.1} → {mean:.1}"
    );
    assert!((sd / sd_before - 1.0).abs() < 0.05, "brightness alone changed the spread ({sd_before:.1} → {sd:.1})");
}

#[test]
fn white_balance_gains_remove_a_colour_cast() {
    let store = Store::new();
    // A grey scene under a warm light: red × 1.3, blue × 0.7 against green.
    let src = lossless_video(
        &store,
        "cast.mkv",
        "testsrc2=s=320x240:r=25:d=0.4",
        "hue=s=0,format=rgb24,lutrgb=r='val*0.65':g='val*0.5':b='val*0.35'",
    );
    let [r, g, b] = rgb_means(&src);
    let spread = |[r, g, b]: [f64; 3]| r.max(g).max(b) / r.min(g).min(b);
    assert!(spread([r, g, b]) > 1.7, "the cast: R {r:.1} G {g:.1} B {b:.1}");
    let item = ingest(&store, &src);

    let e = enhance(&store, &item, &["--step", &format!("white_balance:red={:.4},blue={:.4}", 0.5 / 0.65, 0.5 / 0.35)]);
    let after = rgb_means(&e.file);
    measured!("white balance: RGB means {r:.1}/{g:.1}/{b:.1} → {:.1}/{:.1}/{:.1}", after[0], after[1], after[2]);
    assert!(
        spread(after) < 1.05,
        "after white balance R {:.1} G {:.1} B {:.1} (before R {r:.1} G {g:.1} B {b:.1})",
        after[0],
        after[1],
        after[2]
    );
    assert!((after[1] - g).abs() < 2.0, "green (gain 1) moved: {g:.1} → {:.1}", after[1]);
}

#[test]
fn sharpen_restores_edge_contrast_of_a_blurred_picture_and_a_negative_amount_softens() {
    let store = Store::new();
    let sharp = lossless_video(&store, "sharp.mkv", "testsrc2=s=320x240:r=25:d=0.2", "");
    let blurred = lossless_from(&store, "blurred.mkv", &sharp, "gblur=sigma=1.5");
    let (clean, soft) = (Video::decode(&sharp), Video::decode(&blurred));
    let item = ingest(&store, &blurred);

    let e = enhance(&store, &item, &["--step", "sharpen:amount=1.5,size=5"]);
    let out = Video::decode(&e.file);
    let (before, after) = (edge_energy(soft.y(0), 320), edge_energy(out.y(0), 320));
    measured!("sharpen 1.5: edge energy {before:.2} → {after:.2}");
    assert!(after / before > 1.15, "edge energy ×{:.3} ({before:.2} → {after:.2})", after / before);
    let (p_soft, p_out) = (video_psnr(&soft, &clean, 8), video_psnr(&out, &clean, 8));
    measured!("sharpen 1.5: PSNR vs sharp {p_soft:.2} → {p_out:.2} dB");
    assert!(p_out - p_soft > 2.0, "PSNR against the sharp original {p_soft:.2} → {p_out:.2} dB");

    let e = enhance(&store, &item, &["--step", "sharpen:amount=-1"]);
    let softer = edge_energy(Video::decode(&e.file).y(0), 320);
    measured!("sharpen -1: edge energy {before:.2} → {softer:.2}");
    assert!(softer < before * 0.95, "amount=-1 should soften: edge energy {before:.2} → {softer:.2}");
}

/// A still smooth picture (`clean.mkv`) and the same with temporal noise of strength `noise`
/// (`noisy.mkv`), `seconds` long, both lossless.
fn clean_and_noisy(store: &Store, noise: u32, seconds: f64) -> (PathBuf, PathBuf) {
    let clean = lossless_video(store, "clean.mkv", &format!("color=c=gray:s=320x240:r=25:d={seconds}"), SMOOTH);
    let noisy = lossless_from(store, "noisy.mkv", &clean, &format!("noise=alls={noise}:allf=t"));
    (clean, noisy)
}

#[test]
fn denoise_hqdn3d_raises_the_psnr_against_the_clean_picture_and_strength_raises_it_more() {
    let store = Store::new();
    let (clean, noisy) = clean_and_noisy(&store, 6, 1.0);
    let (clean, noisy_v) = (Video::decode(&clean), Video::decode(&noisy));
    let item = ingest(&store, &noisy);
    let p_noisy = video_psnr(&noisy_v, &clean, 0);

    let e = enhance(&store, &item, &["--step", "denoise"]);
    let p_default = video_psnr(&Video::decode(&e.file), &clean, 0);
    assert!(p_default - p_noisy > 2.0, "hqdn3d (default strength): PSNR {p_noisy:.2} → {p_default:.2} dB");

    let e = enhance(&store, &item, &["--step", "denoise:method=hqdn3d,strength=8"]);
    let p_strong = video_psnr(&Video::decode(&e.file), &clean, 0);
    measured!("hqdn3d: PSNR noisy {p_noisy:.2}, default {p_default:.2}, strength 8 {p_strong:.2} dB");
    assert!(p_strong - p_default > 0.5, "strength 8: PSNR {p_strong:.2} dB, default {p_default:.2} dB");
}

#[test]
fn denoise_nlmeans_raises_the_psnr_against_the_clean_picture() {
    let store = Store::new();
    let (clean, noisy) = clean_and_noisy(&store, 6, 0.4);
    let (clean, noisy_v) = (Video::decode(&clean), Video::decode(&noisy));
    let item = ingest(&store, &noisy);
    let p_noisy = video_psnr(&noisy_v, &clean, 0);
    let e = enhance(&store, &item, &["--step", "denoise:method=nlmeans"]);
    let p = video_psnr(&Video::decode(&e.file), &clean, 0);
    measured!("nlmeans: PSNR {p_noisy:.2} → {p:.2} dB");
    assert!(p - p_noisy > 4.0, "nlmeans (default strength): PSNR {p_noisy:.2} → {p:.2} dB");
}

#[test]
fn stabilise_takes_out_most_of_the_shake_of_a_jittering_camera() {
    let store = Store::new();
    let scene = make(&store, "scene.png", &["-f", "lavfi", "-i", "mandelbrot=s=400x300", "-frames:v", "1"]);
    // A hand-held camera: the 320x240 view jumps by up to ±6 px sideways and ±5 px up and down.
    let src = make(
        &store,
        "shaky.mkv",
        &[
            "-loop",
            "1",
            "-framerate",
            "25",
            "-i",
            scene.to_str().unwrap(),
            "-t",
            "2",
            "-vf",
            "crop=320:240:x='40+6*sin(n*2.1)':y='30+5*sin(n*1.3+1)',format=yuv420p",
            "-c:v",
            "ffv1",
        ],
    );
    let shaky = mean_shake(&Video::decode(&src));
    assert!(shaky > 6.0, "the source should shake: {shaky:.2} px per frame");
    let item = ingest(&store, &src);

    let e = enhance(&store, &item, &["--step", "stabilise"]);
    let out = Video::decode(&e.file);
    assert_eq!(out.len(), 50);
    let steady = mean_shake(&out);
    measured!("stabilise: shake {shaky:.2} → {steady:.2} px per frame");
    assert!(steady < 0.3 * shaky, "frame-to-frame shake {shaky:.2} → {steady:.2} px");
}

#[test]
fn perspective_straightens_a_keystoned_quad() {
    let store = Store::new();
    let flat = lossless_video(&store, "flat.mkv", "mandelbrot=s=320x240:r=25", "trim=end_frame=3");
    // The flat picture projected onto the quad (40,30) (300,10) (10,230) (310,200).
    let quad = "x0=40:y0=30:x1=300:y1=10:x2=10:y2=230:x3=310:y3=200";
    let warped = lossless_from(&store, "warped.mkv", &flat, &format!("perspective={quad}:sense=destination"));
    let (flat_v, warped_v) = (Video::decode(&flat), Video::decode(&warped));
    let item = ingest(&store, &warped);

    let e = enhance(&store, &item, &["--step", "perspective:x0=40,y0=30,x1=300,y1=10,x2=10,y2=230,x3=310,y3=200"]);
    let out = Video::decode(&e.file);
    let (before, after) = (video_psnr(&warped_v, &flat_v, 24), video_psnr(&out, &flat_v, 24));
    measured!("perspective: PSNR {before:.2} → {after:.2} dB");
    assert!(after > 26.0 && after - before > 10.0, "PSNR against the flat picture {before:.2} → {after:.2} dB");
}

#[test]
fn range_full_to_limited_maps_0_255_onto_16_235() {
    let store = Store::new();
    let src =
        lossless_video(&store, "full.mkv", "color=c=gray:s=320x240:r=25:d=0.2", "geq=lum='X*255/319':cb=128:cr=128");
    let before = Video::decode(&src).all_luma();
    assert_eq!((before.iter().min(), before.iter().max()), (Some(&0), Some(&255)), "a full-range ramp");
    let item = ingest(&store, &src);
    let e = enhance(&store, &item, &["--step", "range:input=full"]);
    let after = Video::decode(&e.file).all_luma();
    let (lo, hi) = (*after.iter().min().unwrap(), *after.iter().max().unwrap());
    measured!("range full→limited: 0..255 → {lo}..{hi}");
    assert!((15..=17).contains(&lo) && (234..=236).contains(&hi), "full range became {lo}..{hi}, not 16..235");
}

#[test]
fn aspect_resamples_non_square_pixels_to_the_display_shape() {
    let store = Store::new();
    let src = lossless_video(&store, "anamorphic.mkv", "testsrc2=s=320x240:r=25:d=0.2", "");
    let item = ingest(&store, &src);
    let e = enhance(&store, &item, &["--step", "aspect:sar=2:1"]);
    let s =
        &ffprobe_json(&e.file, &["-select_streams", "v:0", "-show_entries", "stream=width,height,sample_aspect_ratio"])
            ["streams"][0];
    let (w, h) = (s["width"].as_f64().unwrap(), s["height"].as_f64().unwrap());
    // Pixels twice as wide as tall: the picture is 640 × 240 on screen, i.e. 8:3.
    measured!("aspect 2:1: {w}x{h}, sar {}", s["sample_aspect_ratio"]);
    assert!((w / h - 8.0 / 3.0).abs() < 0.02, "output {w}x{h} is not 8:3 in square pixels: {s:#}");
    let sar = s["sample_aspect_ratio"].as_str().unwrap_or("1:1");
    assert!(sar == "1:1" || sar == "0:1", "the resampled pixels should be square: {s:#}");
}

#[test]
fn crop_keeps_exactly_the_region_and_zoom_scales_it() {
    let store = Store::new();
    let src = lossless_video(&store, "wide.mkv", "testsrc2=s=320x240:r=25:d=0.2", "");
    let before = Video::decode(&src);
    let item = ingest(&store, &src);

    let e = enhance(&store, &item, &["--step", "crop:x=40,y=20,w=160,h=120"]);
    let out = Video::decode(&e.file);
    assert_eq!((out.w, out.h, out.len()), (160, 120, before.len()));
    for k in 0..out.len() {
        let want: Vec<u8> = (20..140).flat_map(|r| before.y(k)[r * 320 + 40..r * 320 + 200].to_vec()).collect();
        assert!(out.y(k) == want.as_slice(), "frame {k}: the crop's luma is not the source's region");
    }

    let e = enhance(&store, &item, &["--step", "crop:x=40,y=20,w=160,h=120,zoom=2"]);
    assert_eq!(video_size(&e.file), (320, 240), "zoom=2 doubles the cropped region");
}

/// `pick(x, y)` of each output pixel: where it comes from in a `w`×`h` source plane.
fn moved(src: &[u8], w: usize, h: usize, out_w: usize, pick: impl Fn(usize, usize) -> (usize, usize)) -> Vec<u8> {
    let out_h = w * h / out_w;
    let mut out = Vec::with_capacity(w * h);
    for y in 0..out_h {
        for x in 0..out_w {
            let (sx, sy) = pick(x, y);
            out.push(src[sy * w + sx]);
        }
    }
    out
}

#[test]
fn rotate_and_flip_move_every_pixel_where_they_should() {
    let store = Store::new();
    let src = lossless_video(&store, "upright.mkv", "testsrc2=s=320x240:r=25:d=0.2", "");
    let before = Video::decode(&src);
    let item = ingest(&store, &src);
    let (w, h) = (320, 240);
    type Pick = fn(usize, usize) -> (usize, usize);
    let cases: [(&str, (usize, usize), Pick); 5] = [
        // Clockwise: the output's top row is the source's left column, read bottom to top.
        ("rotate:degrees=90", (240, 320), |x, y| (y, 239 - x)),
        ("rotate:degrees=180", (320, 240), |x, y| (319 - x, 239 - y)),
        ("rotate:degrees=270", (240, 320), |x, y| (319 - y, x)),
        ("flip:direction=horizontal", (320, 240), |x, y| (319 - x, y)),
        ("flip:direction=vertical", (320, 240), |x, y| (x, 239 - y)),
    ];
    for (step, size, pick) in cases {
        let e = enhance(&store, &item, &["--step", step]);
        let out = Video::decode(&e.file);
        assert_eq!((out.w, out.h), size, "{step}");
        assert_eq!(out.len(), before.len(), "{step}");
        for k in 0..out.len() {
            let want = moved(before.y(k), w, h, size.0, pick);
            assert!(out.y(k) == want.as_slice(), "{step}: frame {k}'s luma is not the source's, moved");
        }
    }
}

#[test]
fn reverse_plays_the_same_frames_backwards() {
    let store = Store::new();
    let src = lossless_video(&store, "forwards.mkv", "testsrc2=s=320x240:r=25:d=1", "");
    let mut want = framemd5(&src, "0:v", Some("yuv420p"));
    assert_eq!(want.len(), 25);
    want.reverse();
    let item = ingest(&store, &src);
    let e = enhance(&store, &item, &["--step", "reverse"]);
    assert_eq!(framemd5(&e.file, "0:v", Some("yuv420p")), want, "the output is not the source's frames reversed");
}

// ---------------------------------------------------------------------------------------------
// Frame averaging.

/// Average `n` frames of a still picture under independent temporal noise: the noise's standard
/// deviation falls by √n, and every output frame is the mean of the last n (fewer at the start).
fn average_cuts_noise_by_root_n(n: usize) {
    let store = Store::new();
    let (clean, noisy) = clean_and_noisy(&store, 20, 2.0);
    let clean = Video::decode(&clean);
    let input = Video::decode(&noisy);
    assert_eq!(input.len(), 50);
    let item = ingest(&store, &noisy);
    let e = enhance(&store, &item, &["--step", &format!("average:frames={n}")]);
    let out = Video::decode(&e.file);
    assert_eq!(out.len(), input.len(), "one output frame per input frame");
    assert_eq!(e.stream("video")["frames"], 50, "{:#}", e.json);

    // Noise: the difference from the clean picture, once n frames are available.
    let noise = |v: &Video| {
        let sd: f64 = (n - 1..v.len()).map(|k| rms_diff(v.y(k), clean.y(0), v.w, 0)).sum();
        sd / (v.len() - n + 1) as f64
    };
    let (before, after) = (noise(&input), noise(&out));
    let (ratio, want) = (after / before, 1.0 / (n as f64).sqrt());
    measured!("average {n}: noise {before:.2} → {after:.2} (×{ratio:.3}, 1/√n = {want:.3})");
    assert!(
        (ratio / want - 1.0).abs() <= 0.15,
        "averaging {n} frames took the noise from {before:.2} to {after:.2}: ×{ratio:.3}, expected ×{want:.3} ± 15 %"
    );

    // Exactly the mean of the last n input frames (of the k + 1 there are, for the first ones).
    for k in 0..out.len() {
        let first = (k + 1).saturating_sub(n);
        let count = (k + 1 - first) as f64;
        let worst = (0..input.w * input.h)
            .map(|i| {
                let mean = (first..=k).map(|j| f64::from(input.y(j)[i])).sum::<f64>() / count;
                (f64::from(out.y(k)[i]) - mean).abs()
            })
            .fold(0.0, f64::max);
        assert!(worst < 1.0, "frame {k}: a pixel is {worst:.2} from the mean of input frames {first}..={k}");
    }
}

#[test]
fn averaging_4_frames_halves_the_noise_and_each_frame_is_the_exact_mean() {
    average_cuts_noise_by_root_n(4);
}

#[test]
fn averaging_9_frames_cuts_the_noise_to_a_third_and_each_frame_is_the_exact_mean() {
    average_cuts_noise_by_root_n(9);
}

// ---------------------------------------------------------------------------------------------
// Audio defects.

#[test]
fn notch_removes_60_hz_hum_and_its_harmonics_and_keeps_a_1_khz_tone() {
    let store = Store::new();
    let src = wav(
        &store,
        "hum.wav",
        "0.2*sin(2*PI*60*t)+0.1*sin(2*PI*120*t)+0.05*sin(2*PI*180*t)+0.2*sin(2*PI*1000*t)",
        3.0,
        "mono",
    );
    let before = Pcm::decode(&src);
    let item = ingest(&store, &src);
    let e = enhance(&store, &item, &["--step", "notch"]);
    assert!(base_name(&e.json["name"]).ends_with("_enhanced.flac"), "{:#}", e.json);
    let after = Pcm::decode(&e.file);
    for f in [60.0, 120.0, 180.0] {
        let (b, a) = (tone_db(&before, 0, f), tone_db(&after, 0, f));
        measured!("notch: {f} Hz {b:.1} → {a:.1} dB");
        assert!(b - a >= 20.0, "{f} Hz hum only fell {:.1} dB ({b:.1} → {a:.1} dB)", b - a);
    }
    let (b, a) = (tone_db(&before, 0, 1000.0), tone_db(&after, 0, 1000.0));
    measured!("notch: 1 kHz {b:.2} → {a:.2} dB");
    assert!((b - a).abs() <= 1.0, "the 1 kHz tone moved {:.2} dB ({b:.2} → {a:.2} dB)", a - b);
}

/// Tones of these frequencies, 0.2 each, 3 s, filtered by `step`: the level change of each (dB).
fn tone_changes(step: &str, freqs: &[f64]) -> Vec<(f64, f64)> {
    let store = Store::new();
    let expr: Vec<String> = freqs.iter().map(|f| format!("0.2*sin(2*PI*{f}*t)")).collect();
    let src = wav(&store, "tones.wav", &expr.join("+"), 3.0, "mono");
    let before = Pcm::decode(&src);
    let item = ingest(&store, &src);
    let after = Pcm::decode(&enhance(&store, &item, &["--step", step]).file);
    measured!(
        "{step}: {:?}",
        freqs.iter().map(|&f| (f, tone_db(&after, 0, f) - tone_db(&before, 0, f))).collect::<Vec<_>>()
    );
    freqs.iter().map(|&f| (f, tone_db(&after, 0, f) - tone_db(&before, 0, f))).collect()
}

#[test]
fn highpass_removes_a_rumble_below_its_frequency_and_keeps_speech() {
    let changes = tone_changes("highpass:frequency=300,order=4", &[60.0, 1000.0]);
    assert!(changes[0].1 <= -30.0, "60 Hz through a 4th-order 300 Hz high-pass: {changes:?}");
    assert!(changes[1].1.abs() <= 1.0, "1 kHz should pass: {changes:?}");
}

#[test]
fn lowpass_removes_a_whine_above_its_frequency_and_keeps_speech() {
    let changes = tone_changes("lowpass:order=4", &[500.0, 14000.0]);
    assert!(changes[0].1.abs() <= 1.0, "500 Hz should pass a 3400 Hz low-pass: {changes:?}");
    assert!(changes[1].1 <= -30.0, "14 kHz through a 4th-order 3400 Hz low-pass: {changes:?}");
}

#[test]
fn bandpass_keeps_the_speech_band_only() {
    let changes = tone_changes("bandpass", &[50.0, 1000.0, 14000.0]);
    assert!(changes[0].1 <= -20.0, "50 Hz through the 300..3400 Hz band-pass: {changes:?}");
    assert!(changes[1].1.abs() <= 1.5, "1 kHz is in the band: {changes:?}");
    assert!(changes[2].1 <= -20.0, "14 kHz through the 300..3400 Hz band-pass: {changes:?}");
}

#[test]
fn fft_denoise_raises_the_snr_of_a_tone_in_white_noise() {
    let store = Store::new();
    let src = wav(&store, "hiss.wav", "0.3*sin(2*PI*440*t)+0.003*(2*random(0)-1)", 3.0, "mono");
    let before = Pcm::decode(&src);
    let item = ingest(&store, &src);
    let after = Pcm::decode(&enhance(&store, &item, &["--step", "fft_denoise"]).file);
    let (b, a) = (tone_snr(&before, 440.0), tone_snr(&after, 440.0));
    measured!("fft_denoise: SNR {b:.1} → {a:.1} dB");
    assert!(a - b >= 5.0, "SNR of the 440 Hz tone {b:.1} → {a:.1} dB");
    let (lb, la) = (tone_db(&before, 0, 440.0), tone_db(&after, 0, 440.0));
    assert!((la - lb).abs() <= 0.5, "the tone itself moved {:.2} dB", la - lb);
}

#[test]
fn amplify_by_6_db_doubles_the_rms_and_minus_6_db_halves_it() {
    let store = Store::new();
    let src = wav(&store, "quiet.wav", "0.1*sin(2*PI*440*t)+0.05*sin(2*PI*1234*t)", 2.0, "mono");
    let before = rms(Pcm::decode(&src).mono());
    let item = ingest(&store, &src);
    for (gain, want) in [("6", 10f64.powf(6.0 / 20.0)), ("-6", 10f64.powf(-6.0 / 20.0))] {
        let after = rms(Pcm::decode(&enhance(&store, &item, &["--step", &format!("amplify:gain={gain}")]).file).mono());
        let ratio = after / before;
        measured!("amplify {gain} dB: RMS ×{ratio:.4}");
        assert!((ratio / want - 1.0).abs() < 0.01, "gain {gain} dB: RMS ×{ratio:.4}, expected ×{want:.4}");
    }
}

/// A faint voice-like sound, 4 s: a 1 kHz tone swelling at 0.7 Hz over a 300 Hz one, about
/// −39 LUFS.
const FAINT: &str = "0.02*sin(2*PI*1000*t)*(0.6+0.4*sin(2*PI*0.7*t))+0.01*sin(2*PI*300*t)";

#[test]
fn loudness_brings_the_integrated_loudness_to_its_target() {
    let store = Store::new();
    // FLAC: its one channel is known to be mono.
    let src = make(&store, "faint.flac", &["-f", "lavfi", "-i", &format!("aevalsrc={FAINT}:s=48000:d=4:c=mono")]);
    let before = integrated_loudness(&src);
    assert!(before < -35.0, "the source is faint: {before} LUFS");
    let item = ingest(&store, &src);
    for (step, target) in [("loudness", -23.0), ("loudness:target=-16", -16.0)] {
        let after = integrated_loudness(&enhance(&store, &item, &["--step", step]).file);
        measured!("{step}: {before} → {after} LUFS");
        assert!((after - target).abs() <= 1.0, "{step}: integrated loudness {before} → {after} LUFS");
    }
}

#[test]
fn loudness_works_on_a_mono_wav_that_names_no_channel_layout() {
    // A plain PCM WAV (WAVEFORMATEX, no channel mask), as the ffmpeg CLI and many recorders
    // write it: FFmpeg reads its layout as unknown.
    let store = Store::new();
    let src = wav(&store, "faint.wav", FAINT, 4.0, "mono");
    let layout = &ffprobe_json(&src, &["-show_entries", "stream=channel_layout"])["streams"][0]["channel_layout"];
    assert!(layout.is_null() || layout == "unknown", "the WAV should name no layout: {layout}");
    let item = ingest(&store, &src);
    let after = integrated_loudness(&enhance(&store, &item, &["--step", "loudness"]).file);
    assert!((after + 23.0).abs() <= 1.0, "integrated loudness {after} LUFS, target −23");
}

#[test]
fn channels_keeps_one_channel_or_mixes_all_to_mono() {
    let store = Store::new();
    let src = wav(&store, "stereo.wav", "0.3*sin(2*PI*440*t)|0.3*sin(2*PI*1000*t)", 3.0, "stereo");
    let before = Pcm::decode(&src);
    assert_eq!(before.channels.len(), 2);
    let item = ingest(&store, &src);

    let right = Pcm::decode(&enhance(&store, &item, &["--step", "channels:channel=1"]).file);
    assert_eq!(right.channels.len(), 1, "one channel kept");
    let (kept, gone) = (tone_db(&right, 0, 1000.0), tone_db(&right, 0, 440.0));
    measured!("channels 1: 1 kHz {kept:.2} dB, 440 Hz {gone:.1} dB");
    assert!((kept - tone_db(&before, 1, 1000.0)).abs() < 0.1, "channel 1's 1 kHz tone: {kept:.2} dB");
    assert!(gone < -80.0, "channel 0's 440 Hz tone leaked into channel 1's: {gone:.1} dB");

    let mix = Pcm::decode(&enhance(&store, &item, &["--step", "channels"]).file);
    assert_eq!(mix.channels.len(), 1, "mixed to mono");
    let (a, b) = (tone_db(&mix, 0, 440.0), tone_db(&mix, 0, 1000.0));
    measured!("channels mix: 440 Hz {a:.2} dB, 1 kHz {b:.2} dB");
    assert!(
        (a - b).abs() < 0.5 && a > -20.0,
        "both channels mixed with equal weight: 440 Hz {a:.2} dB, 1 kHz {b:.2} dB"
    );
}

// ---------------------------------------------------------------------------------------------
// Every step, in the order examiners teach.

#[test]
fn every_video_step_runs_in_the_taught_order_without_a_warning_and_records_its_defaults() {
    let store = Store::new();
    let src = lossless_video(&store, "all.mkv", "testsrc2=s=320x240:r=25:d=0.4", "");
    let item = ingest(&store, &src);
    let file = recipe(
        &store,
        "all-video.yaml",
        "recipe: every video step\n\
         steps:\n\
         \x20 - range: {input: limited}\n\
         \x20 - aspect: {sar: \"1:1\"}\n\
         \x20 - deinterlace\n\
         \x20 - denoise\n\
         \x20 - levels\n\
         \x20 - contrast\n\
         \x20 - white_balance\n\
         \x20 - sharpen\n\
         \x20 - perspective: {x0: 0, y0: 0, x1: 319, y1: 0, x2: 0, y2: 239, x3: 319, y3: 239}\n\
         \x20 - stabilise\n\
         \x20 - average\n\
         \x20 - crop: {x: 80, y: 60, w: 160, h: 120}\n\
         \x20 - rotate: {degrees: 90}\n\
         \x20 - flip: {direction: horizontal}\n\
         \x20 - reverse\n",
    );
    let e = enhance(&store, &item, &["--recipe", &file]);
    e.out.stderr_lacks("warning");
    assert_eq!(e.warnings(), Vec::<String>::new());
    assert_eq!(video_size(&e.file), (120, 160), "cropped to 160x120, then turned a quarter");
    assert_eq!(Video::decode(&e.file).len(), 10);

    let steps = e.json["steps"].as_array().unwrap_or_else(|| panic!("no steps in {:#}", e.json));
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap_or("?")).collect();
    assert_eq!(
        names,
        [
            "range",
            "aspect",
            "deinterlace",
            "denoise",
            "levels",
            "contrast",
            "white_balance",
            "sharpen",
            "perspective",
            "stabilise",
            "average",
            "crop",
            "rotate",
            "flip",
            "reverse"
        ]
    );
    let param = |step: &str, p: &str| steps.iter().find(|s| s["name"] == step).unwrap()["params"][p].clone();
    let numbers = [
        ("levels", "black", 16.0),
        ("levels", "white", 235.0),
        ("levels", "gamma", 1.0),
        ("contrast", "contrast", 1.0),
        ("contrast", "brightness", 0.0),
        ("contrast", "saturation", 1.0),
        ("white_balance", "red", 1.0),
        ("sharpen", "amount", 1.0),
        ("sharpen", "size", 5.0),
        ("average", "frames", 5.0),
        ("stabilise", "range", 16.0),
        ("crop", "zoom", 1.0),
    ];
    for (step, p, want) in numbers {
        assert_eq!(number(&param(step, p)), Some(want), "{step}.{p}: {:#}", e.json["steps"]);
    }
    let choices = [
        ("deinterlace", "method", "bwdif"),
        ("deinterlace", "parity", "auto"),
        ("deinterlace", "rate", "frame"),
        ("denoise", "method", "hqdn3d"),
        ("range", "output", "limited"),
        ("crop", "interpolation", "lanczos"),
        ("perspective", "interpolation", "cubic"),
    ];
    for (step, p, want) in choices {
        assert_eq!(param(step, p), want, "{step}.{p}: {:#}", e.json["steps"]);
    }
    // The strength used, though its default depends on the method (4 for hqdn3d): what was done
    // must be readable from the record without knowing this version's defaults.
    assert_eq!(number(&param("denoise", "strength")), Some(4.0), "denoise.strength: {:#}", e.json["steps"]);
}

#[test]
fn every_audio_step_runs_in_the_taught_order_without_a_warning_and_records_its_defaults() {
    let store = Store::new();
    let src = wav(&store, "all.wav", "0.1*sin(2*PI*440*t)+0.01*(2*random(0)-1)", 2.0, "mono");
    let item = ingest(&store, &src);
    let file = recipe(
        &store,
        "all-audio.yaml",
        "steps:\n  - channels\n  - declick\n  - declip\n  - highpass\n  - lowpass\n  - bandpass\n  - notch\n\
         \x20 - fft_denoise\n  - nlm_denoise\n  - normalize\n  - loudness\n  - amplify: {gain: -1}\n",
    );
    let e = enhance(&store, &item, &["--recipe", &file]);
    e.out.stderr_lacks("warning");
    assert_eq!(e.warnings(), Vec::<String>::new());
    assert!(base_name(&e.json["name"]).ends_with("_enhanced.flac"), "{:#}", e.json);
    assert_eq!(codecs(&e.file), ["flac"]);

    let steps = e.json["steps"].as_array().unwrap_or_else(|| panic!("no steps in {:#}", e.json));
    let param = |step: &str, p: &str| number(&steps.iter().find(|s| s["name"] == step).unwrap()["params"][p]);
    let numbers = [
        ("highpass", "frequency", 100.0),
        ("highpass", "order", 2.0),
        ("lowpass", "frequency", 3400.0),
        ("lowpass", "order", 2.0),
        ("bandpass", "low", 300.0),
        ("bandpass", "high", 3400.0),
        ("bandpass", "order", 4.0),
        ("notch", "frequency", 60.0),
        ("notch", "harmonics", 5.0),
        ("notch", "q", 30.0),
        ("fft_denoise", "reduction", 12.0),
        ("fft_denoise", "floor", -50.0),
        ("nlm_denoise", "patch", 2.0),
        ("nlm_denoise", "research", 6.0),
        ("loudness", "target", -23.0),
        ("loudness", "true_peak", -2.0),
        ("loudness", "range", 7.0),
        ("amplify", "gain", -1.0),
    ];
    for (step, p, want) in numbers {
        assert_eq!(param(step, p), Some(want), "{step}.{p}: {:#}", e.json["steps"]);
    }
    assert_eq!(param("nlm_denoise", "strength").map(|s| (s * 1e6).round()), Some(10.0), "{:#}", e.json["steps"]);
}

// ---------------------------------------------------------------------------------------------
// The record: frame MD5s, spans, streams, the ledger event.

#[test]
fn a_lossless_outputs_frame_md5s_are_ffmpegs_framemd5_and_the_event_records_recipe_and_graph() {
    let store = Store::new();
    let src = interlaced(&store);
    let item = ingest(&store, &src);
    let text = "recipe: interlaced night plate\n\
                steps:\n\
                \x20 - deinterlace: {method: bwdif}\n\
                \x20 - denoise: {method: hqdn3d, strength: 3}\n\
                \x20 - sharpen: {amount: 0.8}\n";
    let file = recipe(&store, "plate.yaml", text);
    let events_before = store.event_count();
    let e = enhance(&store, &item, &["--recipe", &file, "--note", "plate of the grey van"]);

    // The JSON.
    assert_eq!(base_name(&e.json["name"]), "interlaced_enhanced.mkv", "{:#}", e.json);
    assert_eq!(codecs(&e.file), ["ffv1"], "FFV1 in Matroska, no audio in, none out");
    let item_out = e.json["item"].as_str().unwrap_or_else(|| panic!("no item in {:#}", e.json)).to_owned();
    assert_ne!(item_out, item);
    let names: Vec<&Value> = e.json["steps"].as_array().expect("steps").iter().map(|s| &s["name"]).collect();
    assert_eq!(names, ["deinterlace", "denoise", "sharpen"]);
    let video = e.stream("video");
    let md5s: Vec<String> =
        video["frame_md5"].as_array().expect("frame_md5").iter().map(|m| m.as_str().unwrap().to_owned()).collect();
    let oracle = framemd5(&e.file, "0:v", None);
    assert_eq!(oracle.len(), 50, "50 frames in, 50 out");
    assert_eq!(video["frames"], 50);
    assert_eq!(md5s, oracle, "frame_md5 is not ffmpeg's framemd5 of the output");

    // One event, recording everything needed to redo it.
    assert_eq!(store.event_count(), events_before + 1, "exactly one event");
    let head = &e.json["head"];
    assert_eq!(format!("{}:{}", head["seq"], head["hash"].as_str().unwrap_or("?")), store.head(), "{:#}", e.json);
    let ev = last_event(&store);
    assert_eq!(ev["action"], "enhance", "{ev:#}");
    assert_eq!(ev["note"], "plate of the grey van", "{ev:#}");
    assert_eq!(ev["inputs"][0]["item"], item.as_str(), "{ev:#}");
    assert_eq!(ev["outputs"][0]["item"], item_out.as_str(), "{ev:#}");
    assert_eq!(ev["outputs"][0]["sha256"], e.json["sha256"], "{ev:#}");
    let params = &ev["params"];
    assert_eq!(params["recipe"], text, "the recipe verbatim: {params:#}");
    let recorded_steps: Vec<(&Value, &Value)> =
        params["steps"].as_array().expect("params.steps").iter().map(|s| (&s["name"], &s["params"])).collect();
    let json_steps: Vec<(&Value, &Value)> =
        e.json["steps"].as_array().unwrap().iter().map(|s| (&s["name"], &s["params"])).collect();
    assert_eq!(recorded_steps, json_steps, "the steps with every parameter: {params:#}");
    // Named `graph` or `graphs`: the filter graph of each medium, as FFmpeg expanded it.
    let graph = all_text(&params["graph"]) + &all_text(&params["graphs"]);
    assert!(graph.contains("bwdif") && graph.contains("hqdn3d"), "the filter graph: {params:#}");
    assert!(all_text(params).contains("libavfilter"), "the FFmpeg library versions: {params:#}");
    let facts = &ev["outputs"][0]["facts"];
    let facts = if facts.is_null() { &ev["outputs"][0] } else { facts };
    let recorded = facts["streams"]
        .as_array()
        .unwrap_or_else(|| panic!("no facts.streams in {ev:#}"))
        .iter()
        .find(|s| s["kind"] == "video")
        .expect("the video stream's facts");
    assert_eq!(recorded["frame_md5"], video["frame_md5"], "the ledger's frame MD5s");
    store.verify_ok();
}

#[test]
fn a_span_from_frame_10_to_frame_29_holds_exactly_those_20_frames() {
    let store = Store::new();
    let fixture = store.ingest_fixture(Fixture::H264Mp4);
    // Two horizontal flips: every pixel back where it was, so the frames can be compared.
    let e = enhance(
        &store,
        &fixture.id,
        &[
            "--step",
            "flip:direction=horizontal",
            "--step",
            "flip:direction=horizontal",
            "--from",
            "frame:10",
            "--to",
            "frame:29",
        ],
    );
    let info = fixture.info();
    let got = crate::support::decoded_frame_indices(&e.file, info.width as usize, info.height as usize);
    let want: Vec<Option<u32>> = (10..=29).map(Some).collect();
    assert_eq!(got, want, "the output's frames, by the index painted into each");
    assert_eq!(e.stream("video")["frames"], 20, "{:#}", e.json);
    let source = framemd5(&fixture.path, "0:v", Some("yuv420p"));
    assert_eq!(framemd5(&e.file, "0:v", Some("yuv420p")), source[10..30], "the frames are the source's, decoded");
    // The fixture's AAC sound is cut to the same 0.8 s (to within one AAC frame).
    assert_eq!(codecs(&e.file), ["ffv1", "flac"]);
    let sound = Pcm::decode(&e.file);
    let seconds = sound.mono().len() as f64 / sound.rate as f64;
    assert!((seconds - 0.8).abs() <= 1024.0 / 48000.0, "20 frames at 25 fps are 0.8 s; the sound is {seconds} s");
}

#[test]
fn a_video_item_with_sound_gets_both_enhanced_as_ffv1_and_flac() {
    let store = Store::new();
    let src = make(
        &store,
        "av.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x240:r=25:d=2",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=1000:sample_rate=48000:duration=2",
            "-vf",
            "format=yuv420p",
            "-af",
            "volume=0.5",
            "-c:v",
            "ffv1",
            "-c:a",
            "pcm_s16le",
        ],
    );
    let before = Pcm::decode(&src);
    let item = ingest(&store, &src);
    let e = enhance(&store, &item, &["--step", "sharpen", "--step", "amplify:gain=6"]);
    assert_eq!(base_name(&e.json["name"]), "av_enhanced.mkv", "{:#}", e.json);
    assert_eq!(codecs(&e.file), ["ffv1", "flac"]);
    let kinds: Vec<&Value> = e.json["streams"].as_array().expect("streams").iter().map(|s| &s["kind"]).collect();
    assert_eq!(kinds, ["video", "audio"], "{:#}", e.json);
    assert_eq!(e.stream("video")["frames"], 50);
    assert!(e.stream("audio")["frames"].as_u64().is_some_and(|n| n > 0), "{:#}", e.json);
    assert_eq!(e.stream("video")["frame_md5"].as_array().map(Vec::len), Some(50), "{:#}", e.json);
    assert_eq!(
        e.stream("video")["frame_md5"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect::<Vec<_>>(),
        framemd5(&e.file, "0:v", None)
    );
    let after = Pcm::decode(&e.file);
    let ratio = tone_db(&after, 0, 1000.0) - tone_db(&before, 0, 1000.0);
    measured!("A/V amplify: {ratio:.3} dB, samples {} → {}", before.mono().len(), after.mono().len());
    assert!((ratio - 6.0).abs() < 0.1, "the sound was amplified by {ratio:.2} dB, not 6");
    let (n_before, n_after) = (before.mono().len(), after.mono().len());
    assert!(n_before.abs_diff(n_after) <= 1024, "{n_before} samples in, {n_after} out");
}

#[test]
fn an_audio_only_item_gets_a_flac_with_one_audio_stream() {
    let store = Store::new();
    let src = wav(&store, "interview.wav", "0.2*sin(2*PI*700*t)", 2.0, "mono");
    let item = ingest(&store, &src);
    let e = enhance(&store, &item, &["--step", "highpass"]);
    assert_eq!(base_name(&e.json["name"]), "interview_enhanced.flac", "{:#}", e.json);
    assert_eq!(codecs(&e.file), ["flac"]);
    let kinds: Vec<&Value> = e.json["streams"].as_array().expect("streams").iter().map(|s| &s["kind"]).collect();
    assert_eq!(kinds, ["audio"], "{:#}", e.json);
    assert_eq!(Pcm::decode(&e.file).mono().len(), 96_000, "every sample of the 2 s at 48 kHz");
}

#[test]
fn deliver_mp4_makes_h264_and_aac_in_an_mp4_that_plays_every_frame() {
    let store = Store::new();
    let av = make(
        &store,
        "scene.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x240:r=25:d=1",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=1",
            "-vf",
            "format=yuv420p",
            "-c:v",
            "ffv1",
            "-c:a",
            "pcm_s16le",
        ],
    );
    let item = ingest(&store, &av);
    let e = enhance(&store, &item, &["--step", "sharpen", "--deliver", "mp4"]);
    assert_eq!(base_name(&e.json["name"]), "scene_enhanced.mp4", "{:#}", e.json);
    assert_eq!(codecs(&e.file), ["h264", "aac"]);
    let packets = ffprobe_json(&e.file, &["-select_streams", "v:0", "-show_entries", "stream=nb_frames"]);
    let decoded = Video::decode(&e.file).len();
    assert_eq!(decoded, 25, "the MP4 plays {decoded} of the 25 frames it holds: {packets:#}");
    assert_eq!(e.stream("video")["frames"], 25, "{:#}", e.json);
}

#[test]
fn deliver_mp4_of_an_audio_item_makes_aac_in_m4a() {
    let store = Store::new();
    let sound = wav(&store, "call.wav", "0.2*sin(2*PI*700*t)", 1.0, "mono");
    let item = ingest(&store, &sound);
    let e = enhance(&store, &item, &["--step", "lowpass", "--deliver", "mp4"]);
    assert_eq!(base_name(&e.json["name"]), "call_enhanced.m4a", "{:#}", e.json);
    assert_eq!(codecs(&e.file), ["aac"]);
}

// ---------------------------------------------------------------------------------------------
// Bad recipes and flags: exit 2 at the place, nothing recorded.

/// A small video item to refuse recipes against.
fn small_item(store: &Store) -> String {
    ingest(store, &lossless_video(store, "small.mkv", "testsrc2=s=320x240:r=25:d=0.2", ""))
}

#[test]
fn a_recipe_naming_an_unknown_step_is_refused_at_its_line_and_column() {
    let store = Store::new();
    let item = small_item(&store);
    let file = recipe(
        &store,
        "typo.yaml",
        "recipe: night plate\nsteps:\n  - levels: {black: 20}\n  - sharpn: {amount: 1.5}\n",
    );
    let out = refused(&store, &item, &["--recipe", &file]);
    out.stderr_has("recipes/typo.yaml:4:5").stderr_has("sharpn");
    // A bare step name, too.
    let file = recipe(&store, "bare.yaml", "steps:\n  - sharpen\n  - dehaze\n");
    refused(&store, &item, &["--recipe", &file]).stderr_has("recipes/bare.yaml:3:5").stderr_has("dehaze");
}

#[test]
fn a_recipe_with_an_unknown_parameter_is_refused_at_its_line_and_column() {
    let store = Store::new();
    let item = small_item(&store);
    let file = recipe(&store, "param.yaml", "steps:\n  - levels:\n      black: 20\n      whitepoint: 120\n");
    refused(&store, &item, &["--recipe", &file])
        .stderr_has("recipes/param.yaml:4:7")
        .stderr_has("whitepoint")
        .stderr_has("levels");
}

#[test]
fn a_recipe_with_a_value_out_of_range_or_not_a_number_is_refused_at_the_value() {
    let store = Store::new();
    let item = small_item(&store);
    let cases = [
        ("black.yaml", "steps:\n  - levels:\n      black: 300\n", "recipes/black.yaml:3:14", "black"),
        (
            "size.yaml",
            "steps:\n  - deinterlace\n  - sharpen:\n      amount: 1.5\n      size: 4\n",
            "recipes/size.yaml:5:13",
            "size",
        ),
        ("gamma.yaml", "steps:\n  - levels:\n      gamma: bright\n", "recipes/gamma.yaml:3:14", "gamma"),
        ("method.yaml", "steps:\n  - deinterlace: {method: blend}\n", "recipes/method.yaml:2:27", "method"),
        ("notch.yaml", "steps:\n  - notch: {harmonics: 25}\n", "recipes/notch.yaml:2:24", "harmonics"),
    ];
    for (name, yaml, at, param) in cases {
        let file = recipe(&store, name, yaml);
        refused(&store, &item, &["--recipe", &file]).stderr_has(at).stderr_has(param);
    }
}

#[test]
fn a_recipe_missing_a_required_parameter_is_refused() {
    let store = Store::new();
    let item = small_item(&store);
    let file = recipe(&store, "crop.yaml", "steps:\n  - crop: {x: 10, y: 10, w: 100}\n");
    // The step that lacks it is the place (the parameter itself is nowhere to point at).
    refused(&store, &item, &["--recipe", &file]).stderr_has("recipes/crop.yaml:2:").stderr_has("crop");
}

#[test]
fn a_bad_step_flag_is_refused_naming_the_flag() {
    let store = Store::new();
    let item = small_item(&store);
    for (flag, names) in [
        ("sharpen:amont=1", "amont"),
        ("sharpen:size=4", "size"),
        ("levels:black=300", "black"),
        ("rotate:degrees=45", "degrees"),
        ("dehaze", "dehaze"),
        ("crop:x=0,y=0", "crop"),
    ] {
        refused(&store, &item, &["--step", "contrast", "--step", flag]).stderr_has(flag).stderr_has(names);
    }
}

// ---------------------------------------------------------------------------------------------
// Steps out of the order examiners teach: they run, with a warning.

/// The `warning:` lines of stderr.
fn warning_lines(out: &Output) -> Vec<String> {
    out.stderr().lines().filter(|l| l.starts_with("warning:")).map(str::to_owned).collect()
}

#[test]
fn sharpening_before_deinterlacing_runs_with_a_warning_about_the_order() {
    let store = Store::new();
    let item = ingest(&store, &interlaced(&store));
    let file = recipe(&store, "backwards.yaml", "steps:\n  - sharpen\n  - deinterlace\n");
    let e = enhance(&store, &item, &["--recipe", &file]);
    let lines = warning_lines(&e.out);
    assert!(
        lines.iter().any(|l| l.contains("sharpen") && l.contains("deinterlace") && l.contains("order")),
        "no warning line naming both steps and the order\n{}",
        e.out.stderr()
    );
    let warnings = e.warnings();
    assert!(
        warnings.iter().any(|w| w.contains("sharpen") && w.contains("deinterlace")),
        "the JSON's warnings: {warnings:?}"
    );
    assert_eq!(Video::decode(&e.file).len(), 50, "it still ran");
}

#[test]
fn normalising_before_notching_runs_with_a_warning_and_the_right_order_has_none() {
    let store = Store::new();
    let src = wav(&store, "hum.wav", "0.2*sin(2*PI*60*t)+0.1*sin(2*PI*1000*t)", 3.0, "mono");
    let item = ingest(&store, &src);
    let e = enhance(&store, &item, &["--step", "loudness", "--step", "notch"]);
    assert!(
        warning_lines(&e.out).iter().any(|l| l.contains("loudness") && l.contains("notch") && l.contains("order")),
        "no warning line naming both steps and the order\n{}",
        e.out.stderr()
    );
    let e = enhance(&store, &item, &["--step", "notch", "--step", "loudness", "--step", "channels"]);
    e.out.stderr_lacks("warning");
    assert_eq!(e.warnings(), Vec::<String>::new());
}

#[test]
fn the_enhanced_store_still_verifies_and_the_output_names_its_parent() {
    let store = Store::new();
    let item = small_item(&store);
    let e = enhance(&store, &item, &["--step", "contrast:contrast=1.2"]);
    let show = store.cmd(&["--json", "show", e.json["item"].as_str().unwrap()]).run().status(0).json();
    assert!(all_text(&show).contains(&item), "show of the output does not name its parent {item}: {show:#}");
    store.verify_ok();
}

// ---------------------------------------------------------------------------------------------
// Before and after: the sheet recorded with every enhancement, and `--preview`.

/// Width and height of a PNG, from its header.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

#[test]
fn every_enhancement_records_a_before_and_after_sheet_of_the_middle_frame_beside_its_output() {
    let store = Store::new();
    // 40 frames of 480x360; crop + zoom makes the after picture 200x100.
    let src = lossless_video(&store, "scene.mkv", "testsrc2=s=480x360:r=25:d=1.6", "");
    let item = ingest(&store, &src);
    let e = enhance(&store, &item, &["--step", "crop:x=10,y=20,w=100,h=50,zoom=2"]);
    let ev = last_event(&store);
    let outputs = ev["outputs"].as_array().expect("outputs");
    assert_eq!(outputs.len(), 2, "{ev:#}");
    let sheet = &outputs[1];
    assert!(sheet["name"].as_str().unwrap().ends_with("_enhanced_before_after.png"), "{sheet:#}");
    assert_eq!(sheet["before_after"], true, "{sheet:#}");
    assert_eq!(sheet["frame"], 19, "the middle of frames 0..=39: {sheet:#}");
    assert_eq!(sheet["parent"], item.as_str(), "{sheet:#}");
    let png = std::fs::read(store.object_path(sheet["sha256"].as_str().unwrap())).expect("the sheet");
    let (w, h) = png_size(&png);
    // before (480) + gap (8) + after (200), over a caption banner.
    assert_eq!(w, 480 + 8 + 200, "sheet {w}x{h}");
    assert!(h > 360, "no caption banner under the pictures: {w}x{h}");
    // The enhanced output itself is still the first output, and the JSON names it.
    assert_eq!(e.json["sha256"], outputs[0]["sha256"]);
}

#[test]
fn an_audio_items_sheet_is_its_spectrogram_before_and_after() {
    let store = Store::new();
    let src = wav(&store, "tone.wav", "0.3*sin(2*PI*1000*t)+0.3*sin(2*PI*60*t)", 1.0, "mono");
    let item = ingest(&store, &src);
    enhance(&store, &item, &["--step", "notch"]);
    let ev = last_event(&store);
    let sheet = &ev["outputs"][1];
    assert_eq!(sheet["before_after"], true, "{ev:#}");
    assert!(sheet["frame"].is_null(), "{sheet:#}");
    let png = std::fs::read(store.object_path(sheet["sha256"].as_str().unwrap())).expect("the sheet");
    let (w, h) = png_size(&png);
    assert!(w >= 1024 && h > 2 * 320, "two spectrograms one above the other: {w}x{h}");
}

#[test]
fn preview_writes_sheets_of_the_frames_asked_and_records_nothing() {
    let store = Store::new();
    let src = lossless_video(&store, "scene.mkv", "testsrc2=s=320x240:r=25:d=2", "");
    let item = ingest(&store, &src);
    let before = store.snapshot();
    let dir = store.work().join("preview");
    let out = store
        .cmd(&["--json", "enhance", &item, "--step", "levels:white=150", "--preview", "--at", "frame:5", "--at", "1.5"])
        .arg("--out")
        .arg(&dir)
        .run();
    let json = out.status(0).json();
    assert_eq!(json["preview"], true, "{json:#}");
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["scene_preview_frame000005.png", "scene_preview_frame000037.png"]);
    for n in &names {
        let (w, _) = png_size(&std::fs::read(dir.join(n)).unwrap());
        assert_eq!(w, 320 + 8 + 320, "{n}");
    }
    store.assert_unchanged(&before);
    // --preview needs somewhere to write.
    store.cmd(&["enhance", &item, "--step", "sharpen", "--preview"]).run().status(2);
    store.assert_unchanged(&before);
}

#[test]
fn the_report_of_a_bundle_lists_each_step_with_its_method_and_reference_and_the_recipe_verbatim() {
    let store = Store::new();
    let src = lossless_video(&store, "plate.mkv", "testsrc2=s=320x240:r=25:d=1", "eq=brightness=-0.3");
    let item = ingest(&store, &src);
    let yaml =
        "recipe: plate for the report\nsteps:\n  - denoise: {method: nlmeans, strength: 2}\n  - levels: {white: 160}\n";
    let path = recipe(&store, "plate.yaml", yaml);
    let e = enhance(&store, &item, &["--recipe", &path]);
    let enhanced = e.json["item"].as_str().unwrap().to_owned();
    let zip = store.work().join("court.zip");
    store.cmd(&["package", &enhanced, "--recipient", "ADA J. Moreno"]).arg("--out").arg(&zip).run().status(0);
    let bag = crate::bundle::unzip(&zip, &store.work().join("court"));
    let report = bag.join("data/report");
    let text = tool("pdftotext", &["report.pdf".as_ref(), "-".as_ref()], &report).status(0).stdout();
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "Processing",
        "1. denoise",
        "2. levels",
        "method=nlmeans",
        "white=160",
        "Buades", // the non-local means reference
        "Gonzalez & Woods",
        "recipe: plate for the report",
        "custody redo",
        "nlmeans=s=2",
    ] {
        assert!(flat.contains(needle), "the PDF report lacks {needle:?}:\n{text}");
    }
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(html.contains("<h4>Processing</h4>") && html.contains("A. Buades, B. Coll"), "{html}");
    assert!(
        html.contains("<pre>recipe: plate for the report\nsteps:\n  - denoise: {method: nlmeans, strength: 2}"),
        "{html}"
    );
}

#[test]
fn lossless_h264_keeps_every_enhanced_frame_exactly_as_ffv1_does() {
    let store = Store::new();
    let src = lossless_video(&store, "scene.mkv", "testsrc2=s=320x240:r=25:d=1", "");
    let item = ingest(&store, &src);
    let ffv1 = enhance(&store, &item, &["--step", "levels:white=180", "--step", "sharpen"]);
    let h264 =
        enhance(&store, &item, &["--step", "levels:white=180", "--step", "sharpen", "--deliver", "h264-lossless"]);
    assert_eq!(codecs(&h264.file), ["h264"], "{:#}", h264.json);
    let md5s = |e: &Enhanced| -> Vec<String> {
        e.stream("video")["frame_md5"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_owned()).collect()
    };
    // The same pictures went into both encoders, and both give them back exactly.
    assert_eq!(md5s(&h264), md5s(&ffv1));
    assert_eq!(framemd5(&h264.file, "0:v", None), md5s(&h264), "x264 QP 0 did not decode to the frames it was given");
    assert_eq!(framemd5(&ffv1.file, "0:v", None), md5s(&ffv1));
}

#[test]
fn a_phones_rotation_goes_along_into_an_mp4_and_a_matroska_copy_says_it_cannot_keep_it() {
    let store = Store::new();
    let plain = make(&store, "plain.mp4", &["-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=1", "-c:v", "libx264"]);
    let rotated =
        make(&store, "phone.mp4", &["-i", plain.to_str().unwrap(), "-c", "copy", "-metadata:s:v:0", "rotate=90"]);
    let rotation = |path: &Path| {
        let probe = ffprobe_json(path, &["-show_streams", "-select_streams", "v:0"]);
        probe["streams"][0]["side_data_list"].as_array().and_then(|l| l.iter().find_map(|s| s["rotation"].as_i64()))
    };
    let source = rotation(&rotated);
    assert!(source.is_some_and(|r| r != 0), "the fixture has no rotation");
    let item = ingest(&store, &rotated);
    let mp4 = enhance(&store, &item, &["--step", "sharpen", "--deliver", "mp4"]);
    assert_eq!(rotation(&mp4.file), source, "the MP4 copy lost the rotation players apply");
    let mkv = enhance(&store, &item, &["--step", "sharpen"]);
    assert!(mkv.out.stderr().contains("cannot say so"), "{}", mkv.out.stderr());
    // Turning the pixels is the examiner's choice of orientation: no warning, no matrix.
    let turned = enhance(&store, &item, &["--step", "sharpen", "--step", "rotate:degrees=90", "--deliver", "mp4"]);
    assert_eq!(rotation(&turned.file), None);
    assert!(!turned.out.stderr().contains("cannot say so"));
}

#[test]
fn averaging_pictures_a_vertical_flip_stored_bottom_up_works_and_hashes_as_framemd5_does() {
    // vflip hands on pictures with a negative line size: both the average and the frame hashes
    // must read them row by row where they are.
    let store = Store::new();
    let src = lossless_video(&store, "scene.mkv", "testsrc2=s=320x240:r=25:d=0.6", "");
    let item = ingest(&store, &src);
    let e = enhance(&store, &item, &["--step", "flip:direction=vertical", "--step", "average:frames=3"]);
    let md5s: Vec<String> =
        e.stream("video")["frame_md5"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_owned()).collect();
    assert_eq!(md5s.len(), 15);
    assert_eq!(framemd5(&e.file, "0:v", None), md5s);
    let flipped = enhance(&store, &item, &["--step", "flip:direction=vertical"]);
    let first: Vec<String> = flipped.stream("video")["frame_md5"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    // The first frame averages itself alone: the flipped first frame, exactly.
    assert_eq!(md5s[0], first[0]);
    assert_eq!(framemd5(&flipped.file, "0:v", None), first);
}
