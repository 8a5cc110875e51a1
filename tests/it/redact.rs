//! `custody redact`: a new H.264 + AAC copy in which the regions asked for are hidden, frame for
//! frame (read back from the frame-index band every fixture frame carries), the rest of the
//! picture and the sound are the source's, the audio ranges asked for are silent or a 1 kHz
//! bleep, and no tag, chapter, subtitle or extra stream of the source survives. Oracles: the
//! ffmpeg CLI's own decode of the source and of the output (raw 4:2:0 planes, f32/s16 samples,
//! framemd5) and ffprobe; the checks are on pixels, samples, frame counts, durations and tags.
//! Bad requests exit 2 and record nothing.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};

use custody::media::synth::{Fixture, FixtureInfo, read_frame_index};
use serde_json::Value;

use crate::support::{Ingested, Output, Store, ffmpeg_read, ffprobe_json, media, sha256sum, tool};

// ---------------------------------------------------------------------------------------------
// Running the command.

/// A successful `custody --json redact ITEM ARGS…`.
struct Redacted {
    out: Output,
    json: Value,
    /// The redacted output as stored (its object file).
    file: PathBuf,
}

/// `custody --json redact ITEM ARGS…`, expecting exit 0 and an output item whose object exists
/// and has the SHA-256 the JSON names.
#[track_caller]
fn redact(store: &Store, item: &str, args: &[&str]) -> Redacted {
    let out = store.cmd(&["--json", "redact", item]).args(args).run();
    let json = out.status(0).json();
    let sha = json["sha256"].as_str().unwrap_or_else(|| panic!("no sha256 in {json:#}")).to_owned();
    let file = store.object_path(&sha);
    assert!(file.is_file(), "the redacted output {} is not in the store: {json:#}", file.display());
    assert_eq!(sha256sum(&file), sha, "the stored object does not have the SHA-256 the JSON states");
    Redacted { out, json, file }
}

/// The last path component of an item name (`24-1234/9/x.mp4` → `x.mp4`).
fn base_name(name: &Value) -> String {
    name.as_str().unwrap_or_else(|| panic!("not a name: {name}")).rsplit('/').next().unwrap().to_owned()
}

/// The `head` of a JSON report as `SEQ:HASH`: written either so, or as `{"seq": N, "hash": H}`
/// like every other command's JSON.
fn head_of(json: &Value) -> String {
    let head = &json["head"];
    match head.as_str() {
        Some(text) => text.to_owned(),
        None => format!("{}:{}", head["seq"], head["hash"].as_str().unwrap_or_else(|| panic!("no head in {json:#}"))),
    }
}

/// Every ledger event, read through `custody --json log`.
fn events(store: &Store) -> Vec<Value> {
    let log = store.cmd(&["--json", "log"]).run().status(0).json();
    log["events"].as_array().unwrap_or_else(|| panic!("no events in {log:#}")).clone()
}

/// Write a YAML spec into the work directory.
fn spec_file(store: &Store, name: &str, yaml: &str) -> String {
    store.file(&format!("specs/{name}"), yaml).to_str().expect("utf-8 path").to_owned()
}

/// An ffmpeg CLI command line that builds a test source: `words` are split on whitespace,
/// `arg` is taken as one argument (paths, values with spaces).
struct Ffmpeg(Vec<OsString>);

impl Ffmpeg {
    fn new(words: &str) -> Ffmpeg {
        Ffmpeg(["-nostdin", "-v", "error", "-y"].iter().map(OsString::from).collect()).words(words)
    }

    fn words(mut self, words: &str) -> Ffmpeg {
        self.0.extend(words.split_whitespace().map(OsString::from));
        self
    }

    fn arg(mut self, arg: impl AsRef<OsStr>) -> Ffmpeg {
        self.0.push(arg.as_ref().to_owned());
        self
    }

    /// Run it in the work directory, expecting success.
    #[track_caller]
    fn run(self, store: &Store) {
        let args: Vec<&OsStr> = self.0.iter().map(OsString::as_os_str).collect();
        tool("ffmpeg", &args, store.work()).status(0);
    }
}

// ---------------------------------------------------------------------------------------------
// Pictures: the ffmpeg CLI's decode as raw yuv420p planes, and geometry.

/// One decoded picture, 8-bit 4:2:0 planes (even width and height).
struct Picture {
    w: usize,
    h: usize,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

impl Picture {
    fn luma(&self, x: i64, y: i64) -> u8 {
        self.y[y as usize * self.w + x as usize]
    }

    /// The frame index its band shows.
    fn index(&self) -> Option<u32> {
        read_frame_index(&self.y, self.w, self.w, self.h)
    }
}

/// Every frame of the first video stream of `path`, decoded by the ffmpeg CLI (no frame-rate
/// conversion), optionally through `filter` (e.g. a scale to the display size), as yuv420p.
#[track_caller]
fn decode_pictures(path: &Path, w: usize, h: usize, filter: Option<&str>) -> Vec<Picture> {
    let mut args = vec!["-map", "0:v:0", "-fps_mode", "passthrough"];
    if let Some(f) = filter {
        args.extend(["-vf", f]);
    }
    args.extend(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"]);
    let raw = ffmpeg_read(path, &args);
    let (luma, chroma) = (w * h, (w / 2) * (h / 2));
    let size = luma + 2 * chroma;
    assert_eq!(raw.len() % size, 0, "{}: decoded output is not whole {w}x{h} frames", path.display());
    raw.chunks_exact(size)
        .map(|f| Picture {
            w,
            h,
            y: f[..luma].to_vec(),
            u: f[luma..luma + chroma].to_vec(),
            v: f[luma + chroma..].to_vec(),
        })
        .collect()
}

/// A rectangle in picture pixels: columns x..x+w, rows y..y+h.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rect {
    x: i64,
    y: i64,
    w: i64,
    h: i64,
}

impl Rect {
    const fn new(x: i64, y: i64, w: i64, h: i64) -> Rect {
        Rect { x, y, w, h }
    }

    /// The rectangle shrunk by `n` pixels on every side.
    fn inset(self, n: i64) -> Rect {
        Rect { x: self.x + n, y: self.y + n, w: self.w - 2 * n, h: self.h - 2 * n }
    }

    /// The rectangle grown by `n` pixels on every side.
    fn grow(self, n: i64) -> Rect {
        self.inset(-n)
    }

    fn contains(self, x: i64, y: i64) -> bool {
        x >= self.x && x < self.x + self.w && y >= self.y && y < self.y + self.h
    }

    /// `X,Y,W,H` as `--box` takes it.
    fn arg(self) -> String {
        format!("{},{},{},{}", self.x, self.y, self.w, self.h)
    }

    /// `[X, Y, W, H]` as a YAML spec takes it.
    fn yaml(self) -> String {
        format!("[{}, {}, {}, {}]", self.x, self.y, self.w, self.h)
    }
}

/// How black an area is: the largest and the mean luma, and the largest distance of any chroma
/// sample from neutral (128), over the pixels where `inside` holds (chroma samples count when
/// all four luma pixels they cover are inside).
#[derive(Debug)]
struct Darkness {
    max_luma: u8,
    mean_luma: f64,
    max_chroma_dev: u8,
    pixels: usize,
}

fn darkness(p: &Picture, inside: impl Fn(i64, i64) -> bool) -> Darkness {
    let (mut max_luma, mut sum, mut pixels) = (0u8, 0u64, 0usize);
    for y in 0..p.h as i64 {
        for x in 0..p.w as i64 {
            if inside(x, y) {
                let l = p.luma(x, y);
                max_luma = max_luma.max(l);
                sum += u64::from(l);
                pixels += 1;
            }
        }
    }
    let mut max_chroma_dev = 0u8;
    let cw = p.w / 2;
    for cy in 0..(p.h / 2) as i64 {
        for cx in 0..cw as i64 {
            let (x, y) = (2 * cx, 2 * cy);
            if inside(x, y) && inside(x + 1, y) && inside(x, y + 1) && inside(x + 1, y + 1) {
                let i = cy as usize * cw + cx as usize;
                max_chroma_dev = max_chroma_dev.max(p.u[i].abs_diff(128)).max(p.v[i].abs_diff(128));
            }
        }
    }
    Darkness { max_luma, mean_luma: sum as f64 / pixels.max(1) as f64, max_chroma_dev, pixels }
}

/// Assert that the pixels of `p` where `inside` holds are painted black (Y=16, neutral
/// chroma), allowing for the codec: luma at most 24 and on average at most 20, chroma within
/// 12 of neutral. `chroma_inside` selects the (further inset) area whose chroma is checked.
#[track_caller]
fn assert_black(p: &Picture, inside: impl Fn(i64, i64) -> bool, chroma_inside: impl Fn(i64, i64) -> bool, what: &str) {
    let d = darkness(p, inside);
    assert!(d.pixels > 0, "{what}: no pixels to check");
    assert!(d.max_luma <= 24 && d.mean_luma <= 20.0, "{what}: not black inside the redacted area: {d:?}");
    let c = darkness(p, chroma_inside);
    assert!(c.max_chroma_dev <= 12, "{what}: colour of the source shows through the redacted area: {c:?}");
}

/// Luma PSNR (dB) of `b` against `a` over the pixels where `keep` holds.
fn psnr_where(a: &Picture, b: &Picture, keep: impl Fn(i64, i64) -> bool) -> f64 {
    assert_eq!((a.w, a.h), (b.w, b.h), "pictures of different sizes");
    let (mut se, mut n) = (0f64, 0usize);
    for y in 0..a.h as i64 {
        for x in 0..a.w as i64 {
            if keep(x, y) {
                let d = f64::from(a.luma(x, y)) - f64::from(b.luma(x, y));
                se += d * d;
                n += 1;
            }
        }
    }
    assert!(n > 0, "no pixels to compare");
    let mse = se / n as f64;
    if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0f64 * 255.0 / mse).log10() }
}

/// Assert the pixels of `o` where `keep` holds are the source's: none turned black where the
/// source is not dark (which would mean the redaction leaked outside its region or time), and a
/// luma PSNR of at least 35 dB against `s`.
#[track_caller]
fn assert_source_like(s: &Picture, o: &Picture, keep: impl Fn(i64, i64) -> bool, what: &str) {
    let (mut leaked, mut first, mut x0, mut y0, mut x1, mut y1) = (0usize, None, i64::MAX, i64::MAX, 0i64, 0i64);
    for y in 0..s.h as i64 {
        for x in 0..s.w as i64 {
            if keep(x, y) && s.luma(x, y) >= 60 && o.luma(x, y) <= 24 {
                leaked += 1;
                first.get_or_insert((x, y));
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            }
        }
    }
    assert!(
        leaked == 0,
        "{what}: {leaked} pixels that are not dark in the source are black in the output (first at {first:?}, \
         within x {x0}..={x1}, y {y0}..={y1}): the redaction leaks where it was not asked for"
    );
    let db = psnr_where(s, o, keep);
    assert!(db >= 35.0, "{what}: PSNR {db:.2} dB against the source, below 35 dB");
}

/// Mean absolute difference between horizontally adjacent luma pixels inside `r`: how much
/// fine detail the area holds.
fn detail(p: &Picture, r: Rect) -> f64 {
    let (mut sum, mut n) = (0u64, 0u64);
    for y in r.y..r.y + r.h {
        for x in r.x..r.x + r.w - 1 {
            sum += u64::from(p.luma(x, y).abs_diff(p.luma(x + 1, y)));
            n += 1;
        }
    }
    sum as f64 / n as f64
}

/// Assert output frame `i` is source frame `i` for every frame, by the index band.
#[track_caller]
fn assert_same_frames(out: &[Picture], want: usize) {
    assert_eq!(out.len(), want, "the redacted output decodes to {} frames, the source to {want}", out.len());
    let shown: Vec<Option<u32>> = out.iter().map(Picture::index).collect();
    let expected: Vec<Option<u32>> = (0..want as u32).map(Some).collect();
    assert_eq!(shown, expected, "frame i of the output must be frame i of the source (index bands)");
}

/// Frames of the first video stream counted by decoding (ffprobe -count_frames).
fn counted_frames(path: &Path) -> u64 {
    let p = ffprobe_json(path, &["-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames"]);
    p["streams"][0]["nb_read_frames"].as_str().expect("nb_read_frames").parse().expect("a count")
}

/// ffprobe's duration (s) of the first stream of `kind` ("v:0", "a:0").
fn stream_duration(path: &Path, stream: &str) -> f64 {
    let p = ffprobe_json(path, &["-select_streams", stream, "-show_entries", "stream=duration"]);
    p["streams"][0]["duration"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no duration: {p:#}"))
}

/// Every stream's codec_type and codec_name, as ffprobe sees them.
fn stream_kinds(path: &Path) -> Vec<(String, String)> {
    let p = ffprobe_json(path, &["-show_entries", "stream=codec_type,codec_name"]);
    p["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| {
            (s["codec_type"].as_str().unwrap_or("?").to_owned(), s["codec_name"].as_str().unwrap_or("?").to_owned())
        })
        .collect()
}

/// The top-level MP4 boxes of a file, in order.
fn top_level_boxes(path: &Path) -> Vec<String> {
    let b = fs::read(path).expect("read mp4");
    let (mut i, mut out) = (0usize, Vec::new());
    while i + 8 <= b.len() {
        let size = u32::from_be_bytes(b[i..i + 4].try_into().unwrap()) as u64;
        out.push(String::from_utf8_lossy(&b[i + 4..i + 8]).into_owned());
        let size = match size {
            0 => (b.len() - i) as u64,
            1 if i + 16 <= b.len() => u64::from_be_bytes(b[i + 8..i + 16].try_into().unwrap()),
            s => s,
        };
        if size < 8 {
            break;
        }
        i += size as usize;
    }
    out
}

/// Whether frame `n` of a fixture (display interval [t, t+d)) overlaps [from_us, to_us].
fn covered(info: &FixtureInfo, n: usize, from_us: i64, to_us: i64) -> bool {
    let ((t, den), (d, dden)) = (info.frame_times[n], info.frame_durations[n]);
    assert_eq!(den, dden, "frame times and durations over the same denominator");
    let (start, end) = (i128::from(t) * 1_000_000, i128::from(t + d) * 1_000_000);
    let den = i128::from(den);
    start <= i128::from(to_us) * den && end > i128::from(from_us) * den
}

/// Start of frame `n` of a fixture, in seconds.
fn frame_start(info: &FixtureInfo, n: usize) -> f64 {
    let (t, den) = info.frame_times[n];
    t as f64 / den as f64
}

/// The H264Mp4 fixture's size, frame count and frame duration.
const W: usize = 640;
const H: usize = 360;
const FRAMES: usize = 75;
const FRAME_S: f64 = 0.04;

/// The checks every redacted H264Mp4 output must pass: H.264 + AAC in a faststart MP4, the
/// same size, frame count and duration as the source, and the JSON's own account of them.
#[track_caller]
fn assert_redacted_copy_of_h264_fixture(store: &Store, item: &Ingested, r: &Redacted) {
    let json = &r.json;
    assert_eq!(json["schema_version"], 1, "{json:#}");
    assert_eq!(json["command"], "redact", "{json:#}");
    assert_eq!(json["parent"], item.id.as_str(), "{json:#}");
    assert!(json["item"].is_string() && json["item"] != item.id.as_str(), "a new item: {json:#}");
    assert_eq!(base_name(&json["name"]), "h264_bframes_redacted.mp4", "{json:#}");
    assert_eq!(json["size"], fs::metadata(&r.file).unwrap().len(), "{json:#}");
    assert_eq!(json["frames"]["source"], FRAMES, "{json:#}");
    assert_eq!(json["frames"]["output"], FRAMES, "{json:#}");
    let (src_us, out_us) = (json["duration_us"]["source"].as_i64(), json["duration_us"]["output"].as_i64());
    let (src_us, out_us) = (src_us.expect("duration_us.source"), out_us.expect("duration_us.output"));
    assert!((src_us - 3_000_000).abs() <= 40_000, "source duration {src_us} µs: {json:#}");
    assert!((out_us - src_us).abs() <= 40_000, "output duration {out_us} µs vs source {src_us} µs: {json:#}");
    assert_eq!(head_of(json), store.head(), "the ledger head in the JSON: {json:#}");

    assert_eq!(
        stream_kinds(&r.file),
        vec![("video".to_owned(), "h264".to_owned()), ("audio".to_owned(), "aac".to_owned())],
        "one H.264 video and one AAC audio stream"
    );
    let probe = ffprobe_json(&r.file, &["-select_streams", "v:0", "-show_entries", "stream=width,height"]);
    assert_eq!((probe["streams"][0]["width"].as_u64(), probe["streams"][0]["height"].as_u64()), (Some(640), Some(360)));
    assert_eq!(counted_frames(&r.file), FRAMES as u64, "frames decoded from the output");
    let (src, out) = (stream_duration(&item.path, "v:0"), stream_duration(&r.file, "v:0"));
    assert!((src - out).abs() <= FRAME_S + 1e-6, "video duration {out} s vs source {src} s");
    let boxes = top_level_boxes(&r.file);
    let (moov, mdat) = (boxes.iter().position(|b| b == "moov"), boxes.iter().position(|b| b == "mdat"));
    assert!(moov.is_some() && mdat.is_some() && moov < mdat, "not faststart (moov before mdat): {boxes:?}");
}

// ---------------------------------------------------------------------------------------------
// 1. A solid box for the whole duration.

#[test]
fn a_solid_box_is_black_in_every_frame_and_the_rest_of_the_picture_is_the_sources() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let region = Rect::new(100, 60, 200, 120);
    let events_before = store.event_count();
    let out_dir = store.work().join("release");
    let r = redact(
        &store,
        &item.id,
        &[
            "--box",
            &region.arg(),
            "--reason",
            "B6",
            "--note",
            "face of a bystander",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    r.out.stderr_lacks("can be reversed");
    assert_redacted_copy_of_h264_fixture(&store, &item, &r);

    // --out: a copy of exactly the stored bytes.
    let copy = out_dir.join(base_name(&r.json["name"]));
    assert!(fs::read(&copy).expect("--out copy") == fs::read(&r.file).unwrap(), "--out copy differs from the object");
    // The spec travels with the video it made.
    let spec_copy = out_dir.join(base_name(&r.json["spec"]["name"]));
    let spec_object = store.object_path(r.json["spec"]["sha256"].as_str().expect("spec.sha256"));
    assert!(
        fs::read(&spec_copy).ok() == Some(fs::read(&spec_object).unwrap()),
        "--out holds no copy of the spec {} beside the video",
        spec_copy.display()
    );

    // One ledger event, `redact`, from the source to the output and the spec.
    assert_eq!(store.event_count(), events_before + 1, "exactly one event");
    let all = events(&store);
    let ev = all.last().unwrap();
    assert_eq!(ev["action"], "redact", "{ev:#}");
    assert_eq!(ev["note"], "face of a bystander", "{ev:#}");
    assert_eq!(ev["inputs"][0]["item"], item.id.as_str(), "{ev:#}");
    let outputs: Vec<(Value, String)> =
        ev["outputs"].as_array().expect("outputs").iter().map(|o| (o["item"].clone(), base_name(&o["name"]))).collect();
    assert!(outputs.contains(&(r.json["item"].clone(), "h264_bframes_redacted.mp4".into())), "{ev:#}");
    assert!(outputs.contains(&(r.json["spec"]["item"].clone(), "h264_bframes_redaction_spec.json".into())), "{ev:#}");

    let src = decode_pictures(&item.path, W, H, None);
    let out = decode_pictures(&r.file, W, H, None);
    assert_same_frames(&out, FRAMES);
    let (inner, chroma, border) = (region.inset(2), region.inset(6), region.grow(4));
    for (i, (s, o)) in src.iter().zip(&out).enumerate() {
        assert_black(o, |x, y| inner.contains(x, y), |x, y| chroma.contains(x, y), &format!("frame {i}"));
        assert_source_like(s, o, |x, y| !border.contains(x, y), &format!("frame {i}, outside the box"));
    }
    store.verify_ok();
}

// ---------------------------------------------------------------------------------------------
// 2. A box for part of the time.

#[test]
fn a_timed_box_hides_exactly_the_frames_on_screen_during_its_range() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let info = item.info();
    let region = Rect::new(360, 120, 200, 160);
    let r = redact(&store, &item.id, &["--box", &format!("{}@1.0-2.0", region.arg()), "--reason", "B6"]);
    assert_redacted_copy_of_h264_fixture(&store, &item, &r);

    let hidden: Vec<usize> = (0..FRAMES).filter(|&n| covered(info, n, 1_000_000, 2_000_000)).collect();
    // Frame 24 ends at 1.0 s (not shown at 1.0); frame 50 starts at 2.0 s (shown at 2.0).
    assert_eq!(hidden, (25..=50).collect::<Vec<_>>(), "precondition: the frames on screen during [1.0, 2.0]");

    let src = decode_pictures(&item.path, W, H, None);
    let out = decode_pictures(&r.file, W, H, None);
    assert_same_frames(&out, FRAMES);
    let (inner, chroma, border) = (region.inset(2), region.inset(6), region.grow(4));
    for (i, (s, o)) in src.iter().zip(&out).enumerate() {
        if hidden.contains(&i) {
            assert_black(o, |x, y| inner.contains(x, y), |x, y| chroma.contains(x, y), &format!("frame {i} (hidden)"));
        } else {
            let what = format!("frame {i} (not on screen during 1.0-2.0), inside the box");
            assert_source_like(s, o, |x, y| region.inset(3).contains(x, y), &what);
        }
        assert_source_like(s, o, |x, y| !border.contains(x, y), &format!("frame {i}, outside the box"));
    }
    store.verify_ok();
}

// ---------------------------------------------------------------------------------------------
// 3. A moving region.

#[test]
fn a_tracked_region_follows_the_linear_path_between_its_keys_frame_by_frame() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let info = item.info();
    let (t0, b0, t1, b1) = (0.2, Rect::new(40, 60, 80, 80), 2.2, Rect::new(500, 260, 80, 80));
    let spec = spec_file(
        &store,
        "track.yaml",
        &format!(
            "fill: solid\nregions:\n  - track:\n      - {{at: {t0}, box: {}}}\n      - {{at: {t1}, box: {}}}\n    reason: plate\n",
            b0.yaml(),
            b1.yaml()
        ),
    );
    let r = redact(&store, &item.id, &["--spec", &spec]);
    assert_redacted_copy_of_h264_fixture(&store, &item, &r);

    // The box of frame n: the keys interpolated linearly at the frame's time.
    let at = |t: f64| {
        let k = ((t - t0) / (t1 - t0)).clamp(0.0, 1.0);
        let lerp = |a: i64, b: i64| (a as f64 + (b - a) as f64 * k).round() as i64;
        Rect::new(lerp(b0.x, b1.x), lerp(b0.y, b1.y), lerp(b0.w, b1.w), lerp(b0.h, b1.h))
    };
    let active: Vec<usize> = (0..FRAMES).filter(|&n| covered(info, n, 200_000, 2_200_000)).collect();
    assert_eq!(active, (5..=55).collect::<Vec<_>>(), "precondition: frames on screen from the first key to the last");

    let src = decode_pictures(&item.path, W, H, None);
    let out = decode_pictures(&r.file, W, H, None);
    assert_same_frames(&out, FRAMES);
    for (i, (s, o)) in src.iter().zip(&out).enumerate() {
        let t = frame_start(info, i);
        if active.contains(&i) {
            let b = at(t);
            // 4 pixels in: one for rounding the interpolated box, three for the codec's bleed
            // at an edge that moves 9 pixels a frame.
            let (inner, chroma, border) = (b.inset(4), b.inset(6), b.grow(4));
            assert_black(
                o,
                |x, y| inner.contains(x, y),
                |x, y| chroma.contains(x, y),
                &format!("frame {i}: box {b:?}"),
            );
            assert_source_like(s, o, |x, y| !border.contains(x, y), &format!("frame {i}, outside the box {b:?}"));
        } else {
            assert_source_like(s, o, |_, _| true, &format!("frame {i} (before the first key or after the last)"));
        }
    }
    store.verify_ok();
}

// ---------------------------------------------------------------------------------------------
// 4. Ellipses and inverse regions.

#[test]
fn an_ellipse_hides_its_inside_and_leaves_the_corners_of_its_bounding_box() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let bounds = Rect::new(200, 100, 240, 160);
    let r = redact(&store, &item.id, &["--ellipse", &bounds.arg(), "--reason", "face"]);
    assert_redacted_copy_of_h264_fixture(&store, &item, &r);

    let (cx, cy) = (bounds.x as f64 + bounds.w as f64 / 2.0, bounds.y as f64 + bounds.h as f64 / 2.0);
    let (a, b) = (bounds.w as f64 / 2.0, bounds.h as f64 / 2.0);
    // Squared normalised radius of a pixel's centre: ≤ 1 inside the ellipse.
    let r2 = |x: i64, y: i64| ((x as f64 + 0.5 - cx) / a).powi(2) + ((y as f64 + 0.5 - cy) / b).powi(2);
    let corners = |x: i64, y: i64| bounds.contains(x, y) && r2(x, y) >= 1.3;
    let border = bounds.grow(4);

    let src = decode_pictures(&item.path, W, H, None);
    let out = decode_pictures(&r.file, W, H, None);
    assert_same_frames(&out, FRAMES);
    for (i, (s, o)) in src.iter().zip(&out).enumerate() {
        assert_black(o, |x, y| r2(x, y) <= 0.8, |x, y| r2(x, y) <= 0.7, &format!("frame {i}: inside the ellipse"));
        assert_source_like(s, o, corners, &format!("frame {i}, corners of the ellipse's box (outside the ellipse)"));
        assert_source_like(s, o, |x, y| !border.contains(x, y), &format!("frame {i}, outside the ellipse's box"));
    }
    store.verify_ok();
}

#[test]
fn an_inverse_region_hides_everything_except_its_area() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let keep = Rect::new(200, 100, 240, 160);
    let spec = spec_file(
        &store,
        "inverse.yaml",
        &format!("regions:\n  - box: {}\n    shape: rect\n    inverse: true\n    reason: B6\n", keep.yaml()),
    );
    let r = redact(&store, &item.id, &["--spec", &spec]);
    assert_redacted_copy_of_h264_fixture(&store, &item, &r);

    let src = decode_pictures(&item.path, W, H, None);
    let out = decode_pictures(&r.file, W, H, None);
    assert_eq!(out.len(), FRAMES, "frames decoded");
    let (outside, chroma_outside, inner) = (keep.grow(2), keep.grow(6), keep.inset(4));
    for (i, (s, o)) in src.iter().zip(&out).enumerate() {
        // The band is outside the kept area: it is hidden too.
        assert_black(
            o,
            |x, y| !outside.contains(x, y),
            |x, y| !chroma_outside.contains(x, y),
            &format!("frame {i}: outside the kept area"),
        );
        assert_source_like(s, o, |x, y| inner.contains(x, y), &format!("frame {i}, inside the kept area"));
    }
    store.verify_ok();
}

// ---------------------------------------------------------------------------------------------
// 5. Pixelate and blur.

/// The H264Mp4 fixture with a patch of fine, high-contrast random detail (2-pixel cells) at
/// `patch`, re-encoded at high quality, audio copied: something pixelate and blur must destroy.
fn detailed_source(store: &Store, patch: Rect) -> PathBuf {
    let base = media(Fixture::H264Mp4, &store.work().join("media/base.mp4"));
    let out = store.work().join("media/detailed.mp4");
    let cell = "floor(X/2)";
    let row = "floor(Y/2)";
    let noise = format!(
        "color=c=gray:s={}x{}:r=25:d=3,format=yuv420p,\
         geq=lum='if(gt(mod({cell}*{cell}*13+{row}*{row}*7+{cell}*{row}*5+{cell}*3\\,23)\\,11)\\,235\\,16)':cb=128:cr=128",
        patch.w, patch.h
    );
    let overlay = format!("[0:v][1:v]overlay={}:{}:shortest=1", patch.x, patch.y);
    Ffmpeg::new("-i")
        .arg(&base)
        .words("-f lavfi -i")
        .arg(&noise)
        .arg("-filter_complex")
        .arg(&overlay)
        .words("-c:v libx264 -preset veryfast -crf 16 -c:a copy")
        .arg(&out)
        .run(store);
    out
}

fn assert_detail_destroyed(fill: &str) {
    let store = Store::new();
    let patch = Rect::new(240, 140, 160, 96);
    let path = detailed_source(&store, patch);
    let item = store.ingest_media(&path);
    let out = store.cmd(&["--json", "redact", &item.id, "--box", &patch.arg(), "--fill", fill, "--reason", "B6"]).run();
    out.status(0).stderr_has("can be reversed");
    let json = out.json();
    let file = store.object_path(json["sha256"].as_str().expect("sha256"));
    assert_eq!(counted_frames(&file), FRAMES as u64);

    let src = decode_pictures(&path, W, H, None);
    let red = decode_pictures(&file, W, H, None);
    assert_same_frames(&red, FRAMES);
    let (inner, border) = (patch.inset(4), patch.grow(4));
    for (i, (s, o)) in src.iter().zip(&red).enumerate() {
        let db = psnr_where(s, o, |x, y| inner.contains(x, y));
        assert!(db < 22.0, "{fill}, frame {i}: the region still matches the source ({db:.2} dB ≥ 22 dB)");
        let (before, after) = (detail(s, inner), detail(o, inner));
        assert!(before > 40.0, "precondition: the patch is detailed (mean |Δx| {before:.1})");
        assert!(
            after <= 0.2 * before,
            "{fill}, frame {i}: fine detail survives (mean |Δx| {after:.1} against the source's {before:.1})"
        );
        assert_source_like(s, o, |x, y| !border.contains(x, y), &format!("{fill}, frame {i}, outside the region"));
    }
    store.verify_ok();
}

#[test]
fn pixelate_destroys_the_detail_of_the_region_and_warns_that_it_can_be_reversed() {
    assert_detail_destroyed("pixelate");
}

#[test]
fn blur_destroys_the_detail_of_the_region_and_warns_that_it_can_be_reversed() {
    assert_detail_destroyed("blur");
}

// ---------------------------------------------------------------------------------------------
// 6. Audio: mute and bleep.

/// Decoded audio: interleaved f32 samples at the rate asked for.
struct Sound {
    rate: usize,
    channels: usize,
    samples: Vec<f32>,
}

impl Sound {
    /// The first audio stream of `path` decoded by the ffmpeg CLI to f32 at `rate` Hz.
    fn decode(path: &Path, rate: u32) -> Sound {
        let p = ffprobe_json(path, &["-select_streams", "a:0", "-show_entries", "stream=channels"]);
        let channels = p["streams"][0]["channels"].as_u64().unwrap_or_else(|| panic!("no audio in {p:#}")) as usize;
        let rate_arg = rate.to_string();
        let raw = ffmpeg_read(path, &["-map", "0:a:0", "-ar", &rate_arg, "-f", "f32le", "-acodec", "pcm_f32le", "-"]);
        let samples = raw.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        Sound { rate: rate as usize, channels, samples }
    }

    /// Samples per channel.
    fn len(&self) -> usize {
        self.samples.len() / self.channels
    }

    /// The interleaved samples with time in [from, to) seconds.
    fn span(&self, from: f64, to: f64) -> &[f32] {
        let i = |t: f64| ((t * self.rate as f64).round() as usize).min(self.len()) * self.channels;
        &self.samples[i(from)..i(to)]
    }

    /// Channel 0 of the samples with time in [from, to).
    fn mono(&self, from: f64, to: f64) -> Vec<f32> {
        self.span(from, to).iter().step_by(self.channels).copied().collect()
    }
}

fn rms_dbfs(x: &[f32]) -> f64 {
    let ms = x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64;
    10.0 * ms.max(1e-30).log10()
}

/// Signal-to-noise ratio (dB) of `test` against `reference`.
fn snr_db(reference: &[f32], test: &[f32]) -> f64 {
    assert_eq!(reference.len(), test.len(), "spans of different lengths");
    let signal: f64 = reference.iter().map(|&v| f64::from(v).powi(2)).sum();
    let noise: f64 = reference.iter().zip(test).map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2)).sum();
    10.0 * (signal / noise.max(1e-30)).log10()
}

/// Where the output's sound sits against the source's: the shift (in samples per channel,
/// within ±`max` samples) that best matches `out` to `expected` over the spans `windows`
/// (seconds), which should hold an edge of a muted range so a periodic tone cannot alias.
/// 0 when the output is in sync.
fn best_shift(expected: &Sound, out: &Sound, windows: &[(f64, f64)], max: i64) -> i64 {
    let (a, b) = (&expected.samples, &out.samples);
    let c = expected.channels;
    let error = |shift: i64| -> f64 {
        let mut e = 0.0;
        for &(from, to) in windows {
            let (i0, i1) = ((from * expected.rate as f64) as i64, (to * expected.rate as f64) as i64);
            for i in (i0..i1).step_by(2) {
                let j = i + shift;
                let x = f64::from(a[i as usize * c]);
                let y = if j >= 0 && (j as usize) < out.len() { f64::from(b[j as usize * c]) } else { 0.0 };
                e += (x - y).powi(2);
            }
        }
        e
    };
    (-max..=max).min_by(|&x, &y| error(x).total_cmp(&error(y))).unwrap()
}

/// `sound` with the samples in [from, to) set to zero, as a mute should leave them.
fn muted(sound: &Sound, from: f64, to: f64) -> Sound {
    let mut samples = sound.samples.clone();
    let i = |t: f64| ((t * sound.rate as f64).round() as usize).min(sound.len()) * sound.channels;
    samples[i(from)..i(to)].fill(0.0);
    Sound { rate: sound.rate, channels: sound.channels, samples }
}

/// Assert the output's sound outside a range muted at [from, to) is the source's, in sync: SNR
/// at least 20 dB over `spans` (seconds); on failure, say by how much the sound is shifted.
#[track_caller]
fn assert_rest_in_sync(src: &Sound, out: &Sound, (from, to): (f64, f64), spans: &[(f64, f64)]) {
    for &(a, b) in spans {
        let snr = snr_db(src.span(a, b), out.span(a, b));
        if snr < 20.0 {
            let edges = [(from - 0.05, from + 0.05), (to - 0.05, to + 0.05)];
            let shift = best_shift(&muted(src, from, to), out, &edges, 2400);
            panic!(
                "{a}-{b} s: SNR {snr:.1} dB against the source's decode, below 20 dB; the output's sound is best \
                 matched {shift} samples (at {} Hz) from where the source has it",
                src.rate
            );
        }
    }
}

/// The share (0..1) of the energy of `x` at `freq` Hz (Goertzel).
fn tone_share(x: &[f32], rate: usize, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate as f64;
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s = f64::from(v) + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    let energy: f64 = x.iter().map(|&v| f64::from(v).powi(2)).sum();
    2.0 * power / (x.len() as f64 * energy.max(1e-30))
}

/// Sign changes per second.
fn zero_crossing_rate(x: &[f32], rate: usize) -> f64 {
    let signs: Vec<bool> = x.iter().filter(|&&v| v != 0.0).map(|&v| v > 0.0).collect();
    let changes = signs.windows(2).filter(|w| w[0] != w[1]).count();
    changes as f64 * rate as f64 / x.len() as f64
}

/// Assert a 1 kHz bleep fills [from, to) of channel 0 (edges of `margin` s left out), with no
/// trace of the source's `source_hz` tone.
#[track_caller]
fn assert_bleep(sound: &Sound, from: f64, to: f64, margin: f64, source_hz: f64, what: &str) {
    let x = sound.mono(from + margin, to - margin);
    let share = tone_share(&x, sound.rate, 1000.0);
    assert!(share >= 0.9, "{what}: only {:.0} % of the energy in the bleep range is at 1 kHz", share * 100.0);
    let zcr = zero_crossing_rate(&x, sound.rate);
    assert!(
        (zcr - 2000.0).abs() <= 60.0,
        "{what}: {zcr:.0} zero crossings/s in the bleep range, a 1 kHz tone has 2000"
    );
    let level = rms_dbfs(&x);
    assert!(level >= -30.0, "{what}: the bleep is too quiet to hear ({level:.1} dBFS)");
    let left = tone_share(&x, sound.rate, source_hz);
    assert!(
        left <= 0.01,
        "{what}: the source's {source_hz} Hz tone is still in the bleep range ({:.1} %)",
        left * 100.0
    );
}

/// The s16 samples of the first audio stream of a PCM file, decoded by the ffmpeg CLI.
fn pcm_s16(path: &Path) -> Vec<i16> {
    let raw = ffmpeg_read(path, &["-map", "0:a:0", "-f", "s16le", "-acodec", "pcm_s16le", "-"]);
    raw.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

#[test]
fn mute_and_bleep_on_a_wav_change_exactly_those_samples_and_keep_the_rest_bit_for_bit() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::Wav);
    // 0.52 s and 1.27 s are not zero crossings of the 440 Hz tone, so an edge sample off by one
    // shows; 0.52 s is sample 24960, 1.27 s sample 60960; 2.0-2.5 s are samples 96000..120000.
    let json = store
        .cmd(&["--json", "redact", &item.id, "--mute", "0.52-1.27", "--bleep", "2.0-2.5", "--reason", "name"])
        .run()
        .status(0)
        .json();
    assert_eq!(base_name(&json["name"]), "overhear_redacted.wav", "{json:#}");
    assert_eq!(json["parent"], item.id.as_str(), "{json:#}");
    let file = store.object_path(json["sha256"].as_str().expect("sha256"));
    let probe = ffprobe_json(&file, &["-show_entries", "stream=codec_type,codec_name,sample_rate,channels"]);
    let streams = probe["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 1, "one audio stream: {probe:#}");
    assert_eq!(streams[0]["codec_name"], "pcm_s16le", "still PCM: {probe:#}");
    assert_eq!((streams[0]["sample_rate"].as_str(), streams[0]["channels"].as_u64()), (Some("48000"), Some(1)));

    let src = pcm_s16(&item.path);
    let out = pcm_s16(&file);
    assert_eq!(out.len(), src.len(), "the same number of samples");
    let (mute, bleep) = (24_960..60_960, 96_000..120_000);
    assert!(src[mute.start - 1] != 0 && src[mute.end] != 0, "precondition: the edges of the mute are not silent");
    for (i, (&s, &o)) in src.iter().zip(&out).enumerate() {
        if mute.contains(&i) {
            assert_eq!(o, 0, "sample {i} is in the muted range 0.52-1.27 but not silent");
        } else if !bleep.contains(&i) {
            assert_eq!(o, s, "sample {i} is outside every range but differs from the source");
        }
    }
    let sound = Sound::decode(&file, 48_000);
    assert_bleep(&sound, 2.0, 2.5, 0.0, 440.0, "WAV");
    store.verify_ok();
}

#[test]
fn mute_and_bleep_on_the_mp4_silence_and_replace_the_range_and_keep_the_rest_in_sync() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let r =
        redact(&store, &item.id, &["--mute", "00:00:00.500-00:00:01.250", "--bleep", "2.0-2.5", "--reason", "name"]);
    assert_redacted_copy_of_h264_fixture(&store, &item, &r);
    let src = Sound::decode(&item.path, 48_000);
    let out = Sound::decode(&r.file, 48_000);
    assert_eq!(out.channels, src.channels, "channels");
    assert!(out.len().abs_diff(src.len()) <= 1024, "{} samples against the source's {}", out.len(), src.len());

    // Muted: every sample of both channels, leaving 5 ms at each edge to the AAC codec.
    let level = rms_dbfs(out.span(0.505, 1.245));
    assert!(level <= -60.0, "the muted range 0.5-1.25 s is at {level:.1} dBFS, not silent");
    assert_bleep(&out, 2.0, 2.5, 0.005, 440.0, "MP4");
    // Elsewhere the source's sound, in sync (no shift, e.g. by the AAC encoder delay).
    assert_rest_in_sync(&src, &out, (0.5, 1.25), &[(0.05, 0.45), (1.30, 1.95), (2.55, 2.95)]);
    // The picture is untouched: no region was asked for.
    let pics = decode_pictures(&item.path, W, H, None);
    let red = decode_pictures(&r.file, W, H, None);
    assert_same_frames(&red, FRAMES);
    for (i, (s, o)) in pics.iter().zip(&red).enumerate() {
        assert_source_like(s, o, |_, _| true, &format!("frame {i} (only audio was redacted)"));
    }
    store.verify_ok();
}

#[test]
fn a_muted_mp3_becomes_an_m4a_with_the_range_silent_and_the_rest_in_sync() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::Mp3);
    let json =
        store.cmd(&["--json", "redact", &item.id, "--mute", "0.5-1.25", "--reason", "name"]).run().status(0).json();
    assert_eq!(base_name(&json["name"]), "overhear_redacted.m4a", "{json:#}");
    let file = store.object_path(json["sha256"].as_str().expect("sha256"));
    assert_eq!(stream_kinds(&file), vec![("audio".to_owned(), "aac".to_owned())], "one AAC stream, no video");
    let src = Sound::decode(&item.path, 44_100);
    let out = Sound::decode(&file, 44_100);
    let (s, o) = (stream_duration(&item.path, "a:0"), stream_duration(&file, "a:0"));
    assert!((s - o).abs() <= 0.05, "duration {o} s against the source's {s} s");
    let level = rms_dbfs(out.span(0.505, 1.245));
    assert!(level <= -60.0, "the muted range is at {level:.1} dBFS, not silent");
    assert_rest_in_sync(&src, &out, (0.5, 1.25), &[(0.1, 0.45), (1.3, 2.9)]);
    store.verify_ok();
}

// ---------------------------------------------------------------------------------------------
// 7. Metadata.

/// The distinctive values planted in the hostile sources: none may reach a redacted copy.
const HOSTILE: &[&str] = &[
    "40.7128",
    "AcmeCam",
    "BX-900",
    "2024-03-05",
    "Incident 24-1234 Officer Smith",
    "Suspect resisted",
    "OfficerSmithCam",
    "RadioChannel7",
    "Jane Doe",
    "555-0100",
    "Arrest of suspect",
    "Transport to station",
];

/// Write the subtitle and chapter files the hostile sources are built from.
fn hostile_inputs(store: &Store) -> (PathBuf, PathBuf, PathBuf) {
    let base = media(Fixture::H264Mp4, &store.work().join("media/base.mp4"));
    let srt = store.file("media/subs.srt", "1\n00:00:00,500 --> 00:00:02,000\nWitness Jane Doe 555-0100\n\n");
    let chapters = store.file(
        "media/chapters.txt",
        ";FFMETADATA1\ncomment=Suspect resisted\n\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1500\n\
         title=Arrest of suspect\n\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=1500\nEND=3000\ntitle=Transport to station\n",
    );
    (base, srt, chapters)
}

/// The common part of the hostile sources: the fixture's video and audio, a second (small)
/// video stream, the subtitles as a third input, the chapters and a comment from an
/// ffmetadata file; everything copied except the second video.
fn hostile_build(base: &Path, srt: &Path, chapters: &Path) -> Ffmpeg {
    Ffmpeg::new("-i")
        .arg(base)
        .words("-f lavfi -i testsrc=size=160x90:rate=25:duration=3 -i")
        .arg(srt)
        .words("-f ffmetadata -i")
        .arg(chapters)
        .words("-map 0:v -map 0:a -map 1:v -map 2:s -map_metadata 3 -map_chapters 3")
        .words("-c copy -c:v:1 libx264 -preset ultrafast")
}

/// Tag keys a redacted MP4 may carry: those the MP4 muxer writes itself.
fn muxer_tag_allowed(key: &str, value: &str) -> bool {
    matches!(key, "major_brand" | "minor_version" | "compatible_brands" | "handler_name" | "vendor_id")
        || (key == "language" && value == "und")
}

/// Assert the redacted `file` holds one video and one audio stream, no chapters, only tags the
/// muxer writes (plus `kept`), and no hostile value anywhere, in ffprobe's view or in its bytes.
#[track_caller]
fn assert_no_source_metadata(file: &Path, kept: &[(&str, &str)]) {
    let probe = ffprobe_json(file, &["-show_streams", "-show_format", "-show_chapters"]);
    let streams = probe["streams"].as_array().expect("streams");
    let kinds: Vec<&str> = streams.iter().map(|s| s["codec_type"].as_str().unwrap_or("?")).collect();
    assert_eq!(kinds, ["video", "audio"], "exactly one video and one audio stream: {probe:#}");
    assert!(
        streams.iter().all(|s| s["disposition"]["attached_pic"] != 1),
        "cover art / attached picture kept: {probe:#}"
    );
    assert_eq!(streams[0]["width"], 640, "the main picture, not the second video: {probe:#}");
    assert_eq!(probe["chapters"].as_array().map_or(0, Vec::len), 0, "chapters kept: {probe:#}");
    let mut scopes: Vec<(String, &Value)> = vec![("container".into(), &probe["format"]["tags"])];
    for (i, s) in streams.iter().enumerate() {
        scopes.push((format!("stream {i}"), &s["tags"]));
    }
    for (scope, tags) in scopes {
        for (key, value) in tags.as_object().into_iter().flatten() {
            let value = value.as_str().unwrap_or_default();
            let is_kept = scope == "container" && kept.contains(&(key.as_str(), value));
            assert!(
                is_kept || muxer_tag_allowed(key, value),
                "{scope} tag {key}={value:?} survived redaction: {probe:#}"
            );
        }
    }
    let text = probe.to_string();
    let bytes = fs::read(file).expect("read output");
    for bad in HOSTILE {
        if kept.iter().any(|(_, v)| v.contains(bad)) {
            continue;
        }
        assert!(!text.contains(bad), "{bad:?} is still in the output's metadata: {probe:#}");
        let found = bytes.windows(bad.len()).any(|w| w == bad.as_bytes());
        assert!(!found, "{bad:?} is still somewhere in the output's bytes");
    }
}

/// The `{scope, key, value}` entries of a `metadata` list in the JSON.
fn entries(list: &Value) -> Vec<(String, String, String)> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list of metadata entries: {list}"))
        .iter()
        .map(|e| {
            let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            (text(&e["scope"]), text(&e["key"]), text(&e["value"]))
        })
        .collect()
}

#[test]
fn a_redacted_copy_of_a_hostile_mp4_has_no_tags_chapters_subtitles_or_extra_streams_and_says_what_it_removed() {
    let store = Store::new();
    let (base, srt, chapters) = hostile_inputs(&store);
    let hostile = store.work().join("media/hostile.mp4");
    let title = "Incident 24-1234 Officer Smith";
    hostile_build(&base, &srt, &chapters)
        .words("-c:s mov_text -movflags use_metadata_tags")
        .words("-metadata location=+40.7128-074.0060/ -metadata make=AcmeCam -metadata model=BX-900")
        .words("-metadata creation_time=2024-03-05T14:22:31Z")
        .arg("-metadata")
        .arg(format!("title={title}"))
        .words("-metadata:s:v:0 handler_name=OfficerSmithCam -metadata:s:a:0 language=eng")
        .arg(&hostile)
        .run(&store);
    // Precondition: the source really carries all of it.
    let probe = ffprobe_json(&hostile, &["-show_streams", "-show_format", "-show_chapters"]);
    let tags = &probe["format"]["tags"];
    for key in ["location", "make", "model", "creation_time", "title", "comment"] {
        assert!(tags[key].is_string(), "precondition: the hostile source has a {key} tag: {probe:#}");
    }
    let kinds: Vec<&str> =
        probe["streams"].as_array().unwrap().iter().map(|s| s["codec_type"].as_str().unwrap()).collect();
    assert!(kinds.starts_with(&["video", "audio", "video", "subtitle"]), "precondition: {kinds:?}");
    assert_eq!(probe["chapters"].as_array().map(Vec::len), Some(2), "precondition: two chapters");
    let item = store.ingest_media(&hostile);

    let region = Rect::new(100, 60, 200, 120);
    let r = redact(&store, &item.id, &["--box", &region.arg(), "--reason", "face"]);
    assert_eq!(base_name(&r.json["name"]), "hostile_redacted.mp4", "{:#}", r.json);
    assert_no_source_metadata(&r.file, &[]);
    assert_eq!(counted_frames(&r.file), FRAMES as u64);
    let out = decode_pictures(&r.file, W, H, None);
    assert_same_frames(&out, FRAMES);
    let inner = region.inset(2);
    assert_black(&out[40], |x, y| inner.contains(x, y), |x, y| region.inset(6).contains(x, y), "frame 40");

    // The JSON's account: what the source had, what is left, what was removed.
    let meta = &r.json["metadata"];
    let before = entries(&meta["before"]);
    let after = entries(&meta["after"]);
    let removed = entries(&meta["removed"]);
    for (key, value) in [
        ("location", "+40.7128-074.0060/"),
        ("make", "AcmeCam"),
        ("model", "BX-900"),
        ("title", title),
        ("comment", "Suspect resisted"),
    ] {
        let listed = before.iter().any(|(s, k, v)| s == "container" && k == key && v == value);
        assert!(listed, "metadata.before lacks container {key}={value:?}: {meta:#}");
    }
    assert!(
        before.iter().any(|(s, k, v)| s == "container" && k == "creation_time" && v.starts_with("2024-03-05T14:22:31")),
        "metadata.before lacks the creation_time: {meta:#}"
    );
    assert!(
        before.iter().any(|(s, _, _)| s.contains("subtitle")),
        "metadata.before lacks the subtitle stream: {meta:#}"
    );
    assert!(
        before.iter().any(|(s, _, v)| s.starts_with("chapter") && v == "Arrest of suspect"),
        "metadata.before lacks the chapter titles: {meta:#}"
    );
    assert!(
        removed.iter().any(|(s, k, _)| k == "stream" && s.contains("subtitle")),
        "metadata.removed lacks the subtitle stream: {meta:#}"
    );
    assert!(
        removed.iter().any(|(s, k, _)| k == "stream" && s.contains("video")),
        "metadata.removed lacks the second video stream: {meta:#}"
    );
    // After: the two streams kept (listed with key "stream") and the muxer's own tags.
    let kept_streams: Vec<&str> = after.iter().filter(|(_, k, _)| k == "stream").map(|(s, _, _)| s.as_str()).collect();
    assert!(
        kept_streams.len() == 2 && kept_streams[0].ends_with("video") && kept_streams[1].ends_with("audio"),
        "metadata.after must list one video and one audio stream: {meta:#}"
    );
    for (scope, key, value) in &after {
        assert!(
            !scope.contains("subtitle") && !scope.starts_with("chapter"),
            "metadata.after: {scope} {key}: {meta:#}"
        );
        let allowed = muxer_tag_allowed(key, value) || key == "stream";
        assert!(allowed, "metadata.after lists {scope} {key}={value:?}: {meta:#}");
        assert!(!HOSTILE.iter().any(|h| value.contains(h)), "metadata.after lists {key}={value:?}: {meta:#}");
    }

    // --keep-tag title: that one tag, and nothing else, comes along.
    let kept = redact(&store, &item.id, &["--box", &region.arg(), "--reason", "face", "--keep-tag", "title"]);
    let probe = ffprobe_json(&kept.file, &["-show_format"]);
    assert_eq!(probe["format"]["tags"]["title"], title, "--keep-tag title: {probe:#}");
    assert_no_source_metadata(&kept.file, &[("title", title)]);
    let after = entries(&kept.json["metadata"]["after"]);
    assert!(after.iter().any(|(s, k, v)| s == "container" && k == "title" && v == title), "{:#}", kept.json);
    store.verify_ok();
}

#[test]
fn a_redacted_copy_of_a_hostile_mkv_has_no_attachments_cover_art_subtitles_chapters_or_tags() {
    let store = Store::new();
    let (base, srt, chapters) = hostile_inputs(&store);
    let cover = store.work().join("media/cover.jpg");
    Ffmpeg::new("-f lavfi -i color=c=red:s=64x64 -frames:v 1").arg(&cover).run(&store);
    let hostile = store.work().join("media/hostile.mkv");
    hostile_build(&base, &srt, &chapters)
        .words("-c:s srt -attach")
        .arg(&cover)
        .words("-metadata:s:t mimetype=image/jpeg")
        .words("-metadata location=+40.7128-074.0060/ -metadata make=AcmeCam -metadata model=BX-900")
        .words("-metadata creation_time=2024-03-05T14:22:31Z")
        .arg("-metadata")
        .arg("title=Incident 24-1234 Officer Smith")
        .words("-metadata:s:v:0 title=OfficerSmithCam -metadata:s:a:0 title=RadioChannel7 -metadata:s:a:0 language=eng")
        .arg(&hostile)
        .run(&store);
    let probe = ffprobe_json(&hostile, &["-show_streams", "-show_chapters"]);
    let n = probe["streams"].as_array().map_or(0, Vec::len);
    assert_eq!(n, 5, "precondition: video, audio, second video, subtitles, attachment: {probe:#}");
    let item = store.ingest_media(&hostile);

    let r = redact(&store, &item.id, &["--box", "100,60,200,120", "--reason", "face"]);
    assert_eq!(base_name(&r.json["name"]), "hostile_redacted.mp4", "{:#}", r.json);
    assert_no_source_metadata(&r.file, &[]);
    let out = decode_pictures(&r.file, W, H, None);
    assert_same_frames(&out, FRAMES);
    let removed = entries(&r.json["metadata"]["removed"]);
    assert!(removed.iter().filter(|(_, k, _)| k == "stream").count() >= 3, "{:#}", r.json["metadata"]);
    store.verify_ok();
}

// ---------------------------------------------------------------------------------------------
// 8. The stored spec, and the same redaction from a YAML spec.

/// Whether `v` holds, anywhere, the array `[x, y, w, h]` or an object with those four values.
fn holds_box(v: &Value, r: Rect) -> bool {
    let want = [r.x, r.y, r.w, r.h];
    match v {
        Value::Array(a) => {
            a.iter().map(Value::as_i64).collect::<Vec<_>>() == want.map(Some) || a.iter().any(|e| holds_box(e, r))
        }
        Value::Object(o) => {
            let get = |keys: &[&str]| keys.iter().find_map(|k| o.get(*k).and_then(Value::as_i64));
            let fields = [get(&["x"]), get(&["y"]), get(&["w", "width"]), get(&["h", "height"])];
            fields == want.map(Some) || o.values().any(|e| holds_box(e, r))
        }
        _ => false,
    }
}

fn holds_string(v: &Value, s: &str) -> bool {
    match v {
        Value::String(t) => t == s,
        Value::Array(a) => a.iter().any(|e| holds_string(e, s)),
        Value::Object(o) => o.iter().any(|(k, e)| k == s || holds_string(e, s)),
        _ => false,
    }
}

/// The decoded-frame MD5s of one stream (`framemd5`), in order.
fn decoded_md5s(path: &Path, map: &str) -> Vec<String> {
    let text = String::from_utf8(ffmpeg_read(path, &["-map", map, "-f", "framemd5", "-"])).expect("utf-8");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.rsplit(',').next().unwrap().trim().to_owned())
        .collect()
}

#[test]
fn the_spec_is_stored_as_json_and_the_same_spec_in_yaml_gives_the_same_frames() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let (boxed, oval) = (Rect::new(100, 60, 200, 120), Rect::new(360, 160, 160, 120));
    let cli = redact(
        &store,
        &item.id,
        &[
            "--box",
            &format!("{}@1.0-2.0", boxed.arg()),
            "--ellipse",
            &oval.arg(),
            "--mute",
            "0.5-1.25",
            "--reason",
            "B6",
        ],
    );
    assert_redacted_copy_of_h264_fixture(&store, &item, &cli);

    // The spec item: canonical JSON holding the regions, the reason and the audio range.
    let spec = &cli.json["spec"];
    let sha = spec["sha256"].as_str().unwrap_or_else(|| panic!("no spec.sha256: {:#}", cli.json));
    let object = store.object_path(sha);
    assert_eq!(sha256sum(&object), sha, "the spec object's digest");
    let stored: Value =
        serde_json::from_slice(&fs::read(&object).expect("spec object")).expect("the spec item is JSON");
    assert!(holds_box(&stored, boxed), "the stored spec lacks the box {boxed:?}: {stored:#}");
    assert!(holds_box(&stored, oval), "the stored spec lacks the ellipse's box {oval:?}: {stored:#}");
    assert!(holds_string(&stored, "ellipse"), "the stored spec does not say which region is an ellipse: {stored:#}");
    assert!(holds_string(&stored, "B6"), "the stored spec lacks the reason: {stored:#}");
    assert!(holds_string(&stored, "mute"), "the stored spec lacks the muted range: {stored:#}");

    let yaml = spec_file(
        &store,
        "same.yaml",
        &format!(
            "fill: solid\nreason: B6\nregions:\n  - box: {}\n    from: \"1.0\"\n    to: 2.0\n  - box: {}\n    shape: ellipse\n\
             audio:\n  - {{action: mute, from: 0.5, to: 1.25}}\n",
            boxed.yaml(),
            oval.yaml()
        ),
    );
    let from_yaml = redact(&store, &item.id, &["--spec", &yaml]);
    let (a, b) = (decoded_md5s(&cli.file, "0:v:0"), decoded_md5s(&from_yaml.file, "0:v:0"));
    assert_eq!(a.len(), FRAMES, "framemd5 lines");
    assert!(a == b, "the YAML spec rendered different frames than the same redaction on the command line");
    let (a, b) = (decoded_md5s(&cli.file, "0:a:0"), decoded_md5s(&from_yaml.file, "0:a:0"));
    assert!(a == b, "the YAML spec rendered different audio than the same redaction on the command line");
    store.verify_ok();
}

// ---------------------------------------------------------------------------------------------
// 9. Preview.

#[test]
fn preview_stores_a_contact_sheet_png_and_no_redacted_copy() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let events_before = store.event_count();
    let out = store
        .cmd(&[
            "--json",
            "redact",
            &item.id,
            "--preview",
            "--box",
            "100,60,200,120@1.0-2.0",
            "--ellipse",
            "360,160,160,120",
            "--reason",
            "B6",
        ])
        .run();
    let json = out.status(0).json();
    let preview = &json["preview"];
    let sha = preview["sha256"].as_str().unwrap_or_else(|| panic!("no preview.sha256: {json:#}"));
    assert!(preview["item"].is_string(), "{json:#}");
    let png_path = store.object_path(sha);
    assert_eq!(sha256sum(&png_path), sha);
    let bytes = fs::read(&png_path).expect("preview object");
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().expect("the preview is a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
    let frame = reader.next_frame(&mut buf).expect("PNG image data");
    assert!(
        frame.width as usize >= W && frame.height as usize >= H,
        "a {}x{} contact sheet",
        frame.width,
        frame.height
    );
    buf.truncate(frame.buffer_size());
    let mut colours: Vec<&[u8]> = buf.chunks(frame.color_type.samples()).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 16, "the contact sheet is (nearly) blank: {} colours", colours.len());

    assert_eq!(store.event_count(), events_before + 1, "one event for the preview");
    let all = events(&store);
    let ev = all.last().unwrap();
    let names: Vec<String> = ev["outputs"].as_array().expect("outputs").iter().map(|o| base_name(&o["name"])).collect();
    assert!(names.contains(&"h264_bframes_redaction_preview.png".to_owned()), "{ev:#}");
    assert!(!names.iter().any(|n| n.ends_with(".mp4")), "a preview must not store a redacted copy: {names:?}");
    let ids: Vec<&Value> = ev["outputs"].as_array().unwrap().iter().map(|o| &o["item"]).collect();
    assert!(ids.contains(&&preview["item"]), "{ev:#}");
    store.verify_ok();
}

// ---------------------------------------------------------------------------------------------
// Non-square pixels: coordinates are those of the picture as displayed.

#[test]
fn box_coordinates_on_a_non_square_pixel_video_are_display_pixels() {
    let store = Store::new();
    let src = store.work().join("sar.mp4");
    Ffmpeg::new("-f lavfi -i testsrc2=size=704x480:rate=15 -t 2 -vf setsar=10/11")
        .words("-c:v libx264 -preset veryfast -pix_fmt yuv420p")
        .arg(&src)
        .run(&store);
    let item = store.ingest_media(&src);
    // 704x480 at 10:11 shows as 640x480: a box reaching x=660 is outside the picture.
    let before = store.snapshot();
    let out = store.cmd(&["redact", &item.id, "--box", "600,0,60,60", "--reason", "face"]).run();
    out.status(2).stderr_has("640x480");
    store.assert_unchanged(&before);

    let region = Rect::new(320, 200, 160, 120);
    let r = redact(&store, &item.id, &["--box", &region.arg(), "--reason", "face"]);
    let probe =
        ffprobe_json(&r.file, &["-select_streams", "v:0", "-show_entries", "stream=width,height,sample_aspect_ratio"]);
    let s = &probe["streams"][0];
    let (w, h) = (s["width"].as_f64().unwrap(), s["height"].as_f64().unwrap());
    let sar = s["sample_aspect_ratio"].as_str().unwrap_or("1:1");
    let (n, d) = sar.split_once(':').map(|(n, d)| (n.parse::<f64>().unwrap(), d.parse::<f64>().unwrap())).unwrap();
    let n = if n == 0.0 { 1.0 } else { n };
    assert!(((w * n / d) - 640.0).abs() <= 1.0 && h == 480.0, "displayed size {}x{h}: {probe:#}", w * n / d);
    assert_eq!(counted_frames(&r.file), 30);

    // Both decoded and scaled to the display size the same way.
    let show = Some("scale=640:480:flags=bicubic,setsar=1");
    let src_pics = decode_pictures(&src, 640, 480, show);
    let out_pics = decode_pictures(&r.file, 640, 480, show);
    assert_eq!(out_pics.len(), src_pics.len(), "frames");
    let (inner, chroma, border) = (region.inset(4), region.inset(8), region.grow(6));
    for (i, (s, o)) in src_pics.iter().zip(&out_pics).enumerate() {
        assert_black(o, |x, y| inner.contains(x, y), |x, y| chroma.contains(x, y), &format!("frame {i}"));
        assert_source_like(
            s,
            o,
            |x, y| !border.contains(x, y),
            &format!("frame {i}, outside the box (display pixels)"),
        );
    }
    store.verify_ok();
}

// ---------------------------------------------------------------------------------------------
// 10. Bad requests: exit 2, a clear message, nothing recorded, nothing left behind.

/// `custody redact ITEM ARGS… --out DIR` must exit 2, change nothing in the store and write
/// nothing to DIR; returns its stderr.
#[track_caller]
fn refused(store: &Store, item: &str, args: &[&str]) -> String {
    let before = store.snapshot();
    let dir = store.work().join("refused-out");
    let out = store.cmd(&["redact", item]).args(args).arg("--out").arg(&dir).run();
    out.status(2);
    store.assert_unchanged(&before);
    let left = fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "files left in --out after a refusal: {}", out.stderr());
    out.stderr()
}

/// What a refusal of a range ending at 3.5 s, past the end of a 3 s item, may say.
const PAST_END_35: &[&str] =
    &["3.5", "03.500", "past the end", "beyond the end", "after the end", "outside the recording", "longer than"];

/// Assert `stderr` contains one of `any`.
#[track_caller]
fn says(stderr: &str, any: &[&str], case: &str) {
    assert!(any.iter().any(|w| stderr.contains(w)), "{case}: the message says none of {any:?}:\n{stderr}");
}

/// Whether `text` has `line N column M` in it.
fn has_line_column(text: &str) -> bool {
    text.match_indices("line ").any(|(i, _)| {
        let rest = &text[i + 5..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && {
            let rest = &rest[digits..];
            rest.starts_with(" column ") && rest[8..].bytes().next().is_some_and(|b| b.is_ascii_digit())
        }
    })
}

#[test]
fn bad_regions_and_ranges_on_a_video_exit_2_and_record_nothing() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let id = item.id.as_str();

    let err = refused(&store, id, &["--box", "600,300,100,100", "--reason", "face"]);
    let flat = err.replace(' ', "");
    assert!(flat.contains("600,300,100,100") && err.contains("640x360"), "box outside the frame:\n{err}");
    let err = refused(&store, id, &["--ellipse", "500,100,200,100@1.0-2.0", "--reason", "face"]);
    assert!(err.replace(' ', "").contains("500,100,200,100") && err.contains("640x360"), "ellipse outside:\n{err}");

    let err = refused(&store, id, &["--box", "100,60,200,120@1.0-3.5", "--reason", "face"]);
    says(&err, PAST_END_35, "box range past the end");
    let err = refused(&store, id, &["--mute", "2.5-4.0", "--reason", "name"]);
    says(
        &err,
        &["4.0", "04.000", "past the end", "beyond the end", "after the end", "outside the recording", "longer than"],
        "mute past the end",
    );
    let err = refused(&store, id, &["--box", "100,60,200,120@frame:10-frame:80", "--reason", "face"]);
    says(&err, &["frame:80", "80", "past the end"], "frame past the end");

    let err = refused(&store, id, &["--box", "100,60,200,120@2.0-1.0", "--reason", "face"]);
    says(&err, &["before", "after", "reversed", "backwards"], "box TO before FROM");
    let err = refused(&store, id, &["--mute", "1.25-0.5", "--reason", "name"]);
    says(&err, &["before", "after", "reversed", "backwards"], "mute TO before FROM");

    let err = refused(&store, id, &["--box", "100,60,200,120"]);
    says(&err, &["reason"], "box without a reason");
    let err = refused(&store, id, &["--bleep", "0.5-1.0"]);
    says(&err, &["reason"], "bleep without a reason");

    refused(&store, id, &["--box", "100,60,200", "--reason", "face"]);
    refused(&store, id, &["--box", "100,60,200,120", "--fill", "sparkle", "--reason", "face"]);

    // Nothing was ever recorded beyond the ingest.
    assert_eq!(events(&store).iter().filter(|e| e["action"] == "redact").count(), 0);
    store.verify_ok();
}

#[test]
fn bad_spec_files_exit_2_naming_the_file_the_line_or_the_key_and_record_nothing() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let id = item.id.as_str();

    let missing = store.work().join("specs/missing.yaml");
    let err = refused(&store, id, &["--spec", missing.to_str().unwrap()]);
    says(&err, &["missing.yaml"], "non-existent spec file");

    let bad = spec_file(&store, "bad.yaml", "reason: B6\nregions:\n  - box: [100, 60, 200, 120\n    reason: face\n");
    let err = refused(&store, id, &["--spec", &bad]);
    assert!(err.contains("bad.yaml") && has_line_column(&err), "malformed YAML: name the file and line/column:\n{err}");

    let unknown =
        spec_file(&store, "colour.yaml", "reason: B6\nregions:\n  - box: [100, 60, 200, 120]\n    colour: red\n");
    let err = refused(&store, id, &["--spec", &unknown]);
    says(&err, &["colour"], "unknown key in a region");
    let top = spec_file(&store, "blurr.yaml", "blurr: 3\nregions:\n  - box: [100, 60, 200, 120]\n    reason: face\n");
    let err = refused(&store, id, &["--spec", &top]);
    says(&err, &["blurr"], "unknown top-level key");

    let no_reason = spec_file(&store, "noreason.yaml", "regions:\n  - box: [100, 60, 200, 120]\n");
    let err = refused(&store, id, &["--spec", &no_reason]);
    says(&err, &["reason"], "a spec region without a reason");

    let outside = spec_file(&store, "outside.yaml", "reason: B6\nregions:\n  - box: [600, 300, 100, 100]\n");
    let err = refused(&store, id, &["--spec", &outside]);
    says(&err, &["640x360"], "a spec box outside the frame");

    let reversed = spec_file(
        &store,
        "reversed.yaml",
        "reason: B6\nregions:\n  - box: [100, 60, 200, 120]\n    from: 2.0\n    to: 1.0\n",
    );
    let err = refused(&store, id, &["--spec", &reversed]);
    says(&err, &["before", "after", "reversed", "backwards"], "a spec range with TO before FROM");
    store.verify_ok();
}

#[test]
fn boxes_on_audio_only_items_and_mutes_on_silent_video_exit_2_and_record_nothing() {
    let store = Store::new();
    let wav = store.ingest_fixture(Fixture::Wav);
    let err = refused(&store, &wav.id, &["--box", "10,10,20,20", "--reason", "face"]);
    says(&err, &["audio-only", "audio only", "no video"], "--box on a WAV");
    let err = refused(&store, &wav.id, &["--mute", "2.5-3.5", "--reason", "name"]);
    says(&err, PAST_END_35, "mute past the end of a WAV");

    let dvr = store.ingest_fixture(Fixture::RawH264);
    let err = refused(&store, &dvr.id, &["--mute", "0.5-1.0", "--reason", "name"]);
    says(&err, &["no audio", "without audio", "has no audio"], "--mute on a video without sound");
    let err = refused(&store, &dvr.id, &["--bleep", "0.5-1.0", "--reason", "name"]);
    says(&err, &["no audio", "without audio", "has no audio"], "--bleep on a video without sound");
    store.verify_ok();
}

// ---------------------------------------------------------------------------------------------
// Coverage: a region that reaches one end of the recording but not the other (issue 15: a
// tracked face left exposed on the last frame of a records-request clip, silently).

/// The records-request clip: 241 frames at 29.97 fps (30000/1001), all white, 320x240; the
/// last frame is on screen from 8.008 s to 8.041 s.
const CLIP_FRAMES: usize = 241;

fn white_clip(store: &Store) -> Ingested {
    let path = store.work().join("media/request_clip.mp4");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    Ffmpeg::new("-f lavfi -i color=c=white:s=320x240:r=30000/1001")
        .words(&format!("-frames:v {CLIP_FRAMES} -c:v libx264 -preset veryfast -pix_fmt yuv420p"))
        .arg(&path)
        .run(store);
    store.ingest_media(&path)
}

/// The face's box at the clip's last key (and held after it).
const FACE: Rect = Rect::new(200, 150, 60, 60);

/// A track from the top-left corner to [`FACE`], its last key at 00:00:08.000, `extra` lines
/// added to the region (`until: end`).
fn face_track(store: &Store, name: &str, extra: &str) -> String {
    spec_file(
        store,
        name,
        &format!(
            "reason: B6\nregions:\n  - name: witness-face\n    track:\n      - {{at: 0, box: [0, 0, 60, 60]}}\n      - {{at: \"00:00:08.000\", box: {}}}\n{extra}",
            FACE.yaml()
        ),
    )
}

/// Whether the face's box is painted black in `p`.
fn face_hidden(p: &Picture) -> bool {
    let d = darkness(p, |x, y| FACE.inset(3).contains(x, y));
    d.max_luma <= 24
}

#[test]
fn a_track_ending_a_frame_before_the_clip_ends_is_warned_about_counted_and_recorded() {
    let store = Store::new();
    let item = white_clip(&store);
    let spec = face_track(&store, "last-key-at-8.yaml", "");

    // Text: the count per region, and a loud warning naming the frame left out.
    let out = store.cmd(&["redact", &item.id, "--spec", &spec]).run();
    out.status(0)
        .stdout_has("region 1 (witness-face): track (2 keys) 00:00:00.000 to 00:00:08.000, reason B6: 240 of 241 frames (frames 0-239)")
        .stdout_has("WARNING: region 1 (witness-face) starts at the first frame but stops at 00:00:08.000")
        .stdout_has("frame 240, on screen 00:00:08.008 to 00:00:08.041) is NOT redacted")
        .stderr_has("warning: region 1 (witness-face)")
        .stderr_has("until: end");

    // The premise: the last frame shows the face.
    let json = store.cmd(&["--json", "redact", &item.id, "--spec", &spec]).run().status(0).json();
    let file = store.object_path(json["sha256"].as_str().unwrap());
    let pics = decode_pictures(&file, 320, 240, None);
    assert_eq!(pics.len(), CLIP_FRAMES);
    assert!(face_hidden(&pics[239]), "frame 239 is covered by the track");
    assert!(!face_hidden(&pics[240]), "precondition: the last frame is left uncovered by the track");

    // --json: per region N of M, and the warning.
    let r = &json["regions"][0];
    assert_eq!(
        (r["region"].as_u64(), r["frames"].as_u64(), r["of"].as_u64()),
        (Some(1), Some(240), Some(241)),
        "{json:#}"
    );
    assert_eq!(
        (r["first"].as_u64(), r["last"].as_u64(), r["name"].as_str()),
        (Some(0), Some(239), Some("witness-face"))
    );
    assert!(r["warning"].as_str().is_some_and(|w| w.contains("NOT redacted")), "{json:#}");
    assert_eq!(json["warnings"].as_array().map(Vec::len), Some(1), "{json:#}");
    // The ledger event's facts, so a bundle's report can state it.
    let ev = events(&store).into_iter().last().unwrap();
    let facts = &ev["outputs"][0]["regions"][0];
    assert_eq!((facts["frames"].as_u64(), facts["of"].as_u64()), (Some(240), Some(241)), "{ev:#}");
    assert!(facts["warning"].as_str().is_some_and(|w| w.contains("frame 240")), "{ev:#}");

    // --strict refuses: exit 2, nothing recorded, nothing left.
    let err = refused(&store, &item.id, &["--spec", &spec, "--strict"]);
    says(&err, &["--strict"], "strict refusal");
    says(&err, &["until: end"], "strict refusal says what to write");
    store.verify_ok();
}

#[test]
fn until_end_and_from_start_cover_the_first_and_last_frames_and_silence_the_warning() {
    let store = Store::new();
    let item = white_clip(&store);
    let spec = face_track(&store, "until-end.yaml", "    until: end\n");
    let out = store.cmd(&["--json", "redact", &item.id, "--spec", &spec, "--strict"]).run();
    out.status(0).stderr_lacks("warning");
    let json = out.json();
    assert_eq!((json["regions"][0]["frames"].as_u64(), json["regions"][0]["last"].as_u64()), (Some(241), Some(240)));
    assert_eq!(json["warnings"].as_array().map(Vec::len), Some(0), "{json:#}");
    let file = store.object_path(json["sha256"].as_str().unwrap());
    let pics = decode_pictures(&file, 320, 240, None);
    assert_eq!(pics.len(), CLIP_FRAMES);
    let last = &pics[CLIP_FRAMES - 1];
    assert_black(last, |x, y| FACE.inset(2).contains(x, y), |x, y| FACE.inset(6).contains(x, y), "the last frame");
    // The stored spec says `end`, so rendering it again keeps meaning "to the end".
    let stored = fs::read_to_string(store.object_path(json["spec"]["sha256"].as_str().unwrap())).unwrap();
    assert!(stored.contains("\"to\":\"end\""), "{stored}");

    // The reverse: a track whose first key comes after the first frame is warned about, and
    // `from: start` covers frame 0.
    let late = |name: &str, extra: &str| {
        spec_file(
            &store,
            name,
            &format!(
                "reason: B6\nregions:\n  - track:\n      - {{at: 1, box: {}}}\n      - {{at: 2, box: {}}}\n    until: end\n{extra}",
                FACE.yaml(),
                FACE.yaml()
            ),
        )
    };
    let out = store.cmd(&["redact", &item.id, "--spec", &late("late.yaml", "")]).run();
    out.status(0).stderr_has("region 1 runs to the last frame but starts at 00:00:01.000").stderr_has("from: start");
    let json = store
        .cmd(&["--json", "redact", &item.id, "--spec", &late("start.yaml", "    from: start\n")])
        .run()
        .status(0)
        .json();
    assert_eq!(json["regions"][0]["frames"], 241, "{json:#}");
    let file = store.object_path(json["sha256"].as_str().unwrap());
    let first = &decode_pictures(&file, 320, 240, None)[0];
    assert_black(first, |x, y| FACE.inset(2).contains(x, y), |x, y| FACE.inset(6).contains(x, y), "the first frame");

    // The command-line form: @FROM-end and @start-TO.
    let out =
        store.cmd(&["--json", "redact", &item.id, "--box", &format!("{}@0-8", FACE.arg()), "--reason", "B6"]).run();
    out.status(0).stderr_has("NOT redacted");
    assert_eq!(out.json()["regions"][0]["frames"], 240);
    let out =
        store.cmd(&["--json", "redact", &item.id, "--box", &format!("{}@0-end", FACE.arg()), "--reason", "B6"]).run();
    out.status(0).stderr_lacks("warning");
    let json = out.json();
    assert_eq!(json["regions"][0]["frames"], 241, "{json:#}");
    let file = store.object_path(json["sha256"].as_str().unwrap());
    assert!(face_hidden(&decode_pictures(&file, 320, 240, None)[CLIP_FRAMES - 1]), "@0-end: the last frame");
    let out =
        store.cmd(&["--json", "redact", &item.id, "--box", &format!("{}@start-4", FACE.arg()), "--reason", "B6"]).run();
    assert_eq!(out.status(0).json()["regions"][0]["first"], 0);
    store.verify_ok();
}

#[test]
fn a_release_bundles_report_states_each_regions_frames_and_the_warning() {
    let store = Store::new();
    let item = white_clip(&store);
    let spec = face_track(&store, "last-key-at-8.yaml", "");
    let json = store.cmd(&["--json", "redact", &item.id, "--spec", &spec]).run().status(0).json();
    let copy = json["item"].as_str().unwrap();
    let zip = store.work().join("release.zip");
    store.cmd(&["package", copy, "--release", "--out"]).arg(&zip).run().status(0);
    let into = store.work().join("unzipped");
    fs::create_dir_all(&into).unwrap();
    tool("unzip", &[OsStr::new("-q"), zip.as_os_str(), OsStr::new("-d"), into.as_os_str()], store.work()).status(0);
    let report = into.join("release/data/report");
    let html = fs::read_to_string(report.join("report.html")).expect("report.html");
    assert!(html.contains("240 of 241 frames"), "report.html lacks the region's count:\n{html}");
    assert!(html.contains("WARNING") && html.contains("frame 240"), "report.html lacks the warning:\n{html}");
    let text = tool("pdftotext", &[OsStr::new("report.pdf"), OsStr::new("-")], &report).status(0).stdout();
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("240 of 241 frames"), "report.pdf lacks the region's count:\n{text}");
    assert!(flat.contains("WARNING"), "report.pdf lacks the warning:\n{text}");
}

// ---------------------------------------------------------------------------------------------
// The preview at 1080p: outlines in proportion to the picture, a track drawn as a track.

/// A contact sheet read back: its RGB pixels, width, and iTXt chunks.
struct Sheet {
    rgb: Vec<u8>,
    width: usize,
    height: usize,
    text: Vec<(String, String)>,
}

impl Sheet {
    fn read(path: &Path) -> Sheet {
        let bytes = fs::read(path).expect("preview object");
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().expect("the preview is a PNG");
        let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
        let frame = reader.next_frame(&mut buf).expect("PNG image data");
        assert_eq!(frame.color_type, png::ColorType::Rgb, "an RGB sheet");
        buf.truncate(frame.buffer_size());
        let text =
            reader.info().utf8_text.iter().map(|t| (t.keyword.clone(), t.get_text().unwrap_or_default())).collect();
        Sheet { rgb: buf, width: frame.width as usize, height: frame.height as usize, text }
    }

    fn at(&self, x: usize, y: usize) -> [u8; 3] {
        let o = (y * self.width + x) * 3;
        [self.rgb[o], self.rgb[o + 1], self.rgb[o + 2]]
    }

    /// The rows where a tile (a frame of the uniform grey source) starts, by its right edge.
    fn tile_tops(&self) -> Vec<usize> {
        let grey = |p: [u8; 3]| p.iter().all(|&c| (100..=160).contains(&c)) && p[0].abs_diff(p[2]) <= 6;
        let x = self.width - 4;
        (0..self.height).filter(|&y| grey(self.at(x, y)) && (y == 0 || !grey(self.at(x, y - 1)))).collect()
    }

    fn description(&self) -> String {
        self.text.iter().find(|(k, _)| k == "Description").map(|(_, v)| v.clone()).unwrap_or_default()
    }
}

/// A 1920x1080 uniform grey source, 1 s at 25 fps.
fn grey_1080p(store: &Store) -> Ingested {
    let path = store.work().join("media/grey1080.mp4");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    Ffmpeg::new(
        "-f lavfi -i color=c=gray:s=1920x1080:r=25 -frames:v 25 -c:v libx264 -preset ultrafast -pix_fmt yuv420p",
    )
    .arg(&path)
    .run(store);
    store.ingest_media(&path)
}

fn preview_sheet(store: &Store, item: &str, args: &[&str]) -> Sheet {
    let json = store.cmd(&["--json", "redact", item, "--preview"]).args(args).run().status(0).json();
    Sheet::read(&store.object_path(json["preview"]["sha256"].as_str().expect("preview.sha256")))
}

#[test]
fn preview_outlines_at_1080p_are_drawn_in_proportion_to_the_picture() {
    let store = Store::new();
    let item = grey_1080p(&store);
    let sheet = preview_sheet(&store, &item.id, &["--box", "400,300,400,300", "--reason", "B6"]);
    let tops = sheet.tile_tops();
    assert_eq!(tops.len(), 1, "one tile for one fixed box: tiles start at rows {tops:?}");
    // Across the box's left edge, halfway down: the outline's red and white pixels.
    let y = tops[0] + 450;
    let marked = |x: usize| matches!(sheet.at(x, y), [255, 0, 0] | [255, 255, 255]);
    let width = (380..460).filter(|&x| marked(x)).count();
    assert!(!marked(399) && marked(400), "the outline starts at the box's edge, x=400");
    assert!(
        (8..=12).contains(&width),
        "the outline is {width} px wide on a 1080p frame: it must scale with the picture (about 9 px at 1080p, 3 at 360p)"
    );
    assert!(sheet.description().contains("REGION 1 BOX"), "{}", sheet.description());
}

#[test]
fn preview_draws_a_tracks_interpolated_path_and_labels_it_a_track_by_name() {
    let store = Store::new();
    let item = grey_1080p(&store);
    let spec = spec_file(
        &store,
        "track1080.yaml",
        "reason: B6\nregions:\n  - name: witness-face\n    track:\n      - {at: 0, box: [100, 100, 200, 200]}\n      \
         - {at: 0.8, box: [1500, 700, 200, 200]}\n",
    );
    let sheet = preview_sheet(&store, &item.id, &["--spec", &spec]);
    let tops = sheet.tile_tops();
    assert_eq!(tops.len(), 2, "a tile at each key: tiles start at rows {tops:?}");
    // The centre moves in a straight line from (200, 200) to (1600, 800); on every tile, the
    // points between the keys are drawn (yellow), where the source is grey.
    for &top in &tops {
        for s in [0.25, 0.5, 0.75] {
            let (x, y) = (200.0 + 1400.0 * s, 200.0 + 600.0 * s);
            let p = sheet.at(x as usize, top + y as usize);
            assert_eq!(p, [255, 255, 0], "tile at row {top}: the path is not drawn at ({x}, {y}), {s} of the way");
        }
    }
    let text = sheet.description();
    assert!(text.contains("REGION 1 TRACK witness-face (2 KEYS)"), "the track is labelled a track, by name:\n{text}");
    assert!(!text.contains("BOX"), "a moving track labelled as a box:\n{text}");
}
