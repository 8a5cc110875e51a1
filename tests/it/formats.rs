//! The formats where media bugs live, end to end through still, clip (copy and exact) and
//! rewrap: interlaced MPEG-2 in MPEG-TS, HEVC (B-frames, open GOPs) in Matroska, a rotated
//! variable-frame-rate phone MP4, and audio-only WAV, MP3, M4A and AMR.
//!
//! Provenance: every video file is a generated fixture (`custody::media::synth`, each frame
//! painted with its index) re-encoded or re-muxed here with the ffmpeg CLI, keeping every frame
//! (`-fps_mode passthrough`), so the frame-index band tells which frame a still or a clip holds.
//! Oracles are independent of custody: ffmpeg/ffprobe decodes, the band read from the pixels,
//! decoded PCM samples.

use std::ffi::OsStr;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use custody::media::synth::{self, Fixture, FixtureInfo, read_frame_index};
use serde_json::Value;

use crate::support::{Ingested, Store, decode_errors, decoded_frame_indices, ffmpeg_stdout, ffprobe_json, tool};

// ---------------------------------------------------------------------------------------------
// Making the media.

/// Run `ffmpeg -nostdin -v error -y ARGS… OUT` in the work directory; panics unless it succeeds.
#[track_caller]
pub(crate) fn ffmpeg(store: &Store, args: &[&str], out: &Path) {
    let mut all: Vec<&OsStr> = ["-nostdin", "-v", "error", "-y"].map(OsStr::new).to_vec();
    all.extend(args.iter().map(OsStr::new));
    all.push(out.as_os_str());
    tool("ffmpeg", &all, store.work()).status(0);
}

/// Whether this FFmpeg build has the encoder `name` (e.g. libx265).
pub(crate) fn has_encoder(name: &str) -> bool {
    let out = Command::new("ffmpeg").args(["-hide_banner", "-encoders"]).output().expect("running ffmpeg");
    String::from_utf8_lossy(&out.stdout).lines().any(|l| l.split_whitespace().nth(1) == Some(name))
}

/// Generate fixture `kind` into `work/fixtures/`.
pub(crate) fn fixture(store: &Store, kind: Fixture) -> (PathBuf, FixtureInfo) {
    let path = store.work().join("fixtures").join(kind.file_name());
    std::fs::create_dir_all(path.parent().expect("parent")).expect("fixtures dir");
    let info = synth::generate(kind, &path).unwrap_or_else(|e| panic!("generating {kind:?}: {e:#}"));
    (path, info)
}

/// A command line's words (no quoting: for fixed options only, never paths).
pub(crate) fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

pub(crate) fn text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

/// A video taken into custody, with its coded size (to read the band) and frame count.
pub(crate) struct Video {
    pub(crate) item: Ingested,
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) frames: usize,
}

impl Video {
    pub(crate) fn indices(&self, path: &Path) -> Vec<Option<u32>> {
        decoded_frame_indices(path, self.width, self.height)
    }
}

/// A DVR-style NTSC transport stream: the MJPEG fixture's 30 frames (704x480), re-timed to
/// 29.97 fps, re-encoded as interlaced MPEG-2 (top field first, interlaced DCT and motion
/// estimation; a keyframe every 12 frames, no B-frames by default), with 1 s of MP2 audio.
/// `extra` adds encoder options (e.g. B-frames).
pub(crate) fn mpeg2_ts(store: &Store, name: &str, extra: &[&str]) -> Video {
    let (src, info) = fixture(store, Fixture::MjpegAvi);
    let out = store.work().join(name);
    let mut args = vec!["-r", "30000/1001", "-i", text(&src)];
    args.extend(words("-f lavfi -i sine=frequency=1000:sample_rate=48000:duration=1 -map 0:v -map 1:a"));
    args.extend(words("-fps_mode passthrough -c:v mpeg2video -flags +ilme+ildct -top 1 -b:v 4M"));
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-c:a", "mp2"]);
    ffmpeg(store, &args, &out);
    let item = store.ingest_media(&out);
    Video { item, width: info.width as usize, height: info.height as usize, frames: info.video_frames as usize }
}

/// The H.264 fixture's first 2 s (50 frames, 640x360, 25 fps, with its AAC audio) re-encoded
/// with libx265 at its defaults (B-frames, open GOPs: leading pictures decode after their
/// keyframe), a keyframe every 25 frames, in Matroska. `None` (with a note) without libx265.
fn hevc_mkv(store: &Store) -> Option<Video> {
    if !has_encoder("libx265") {
        eprintln!("SKIPPED: this FFmpeg has no libx265 encoder, so no HEVC test file can be made");
        return None;
    }
    let (src, info) = fixture(store, Fixture::H264Mp4);
    let out = store.work().join("cam_hevc.mkv");
    let mut args = vec!["-i", text(&src)];
    args.extend(words("-t 2 -fps_mode passthrough -c:v libx265 -x265-params keyint=25:min-keyint=25:log-level=error"));
    args.extend(words("-c:a copy"));
    ffmpeg(store, &args, &out);
    let types = picture_types(&out);
    assert_eq!(types.len(), 50, "precondition: 50 frames");
    assert!(types.iter().any(|t| t == "B"), "precondition: B-frames: {types:?}");
    let item = store.ingest_media(&out);
    Some(Video { item, width: info.width as usize, height: info.height as usize, frames: 50 })
}

/// The variable-frame-rate phone fixture (480x270, 60 frames, AAC) re-muxed with a
/// quarter-turn display matrix, as phones record portrait video.
fn rotated_phone(store: &Store) -> (Video, FixtureInfo) {
    let (src, info) = fixture(store, Fixture::VfrMp4);
    let out = store.work().join("phone_portrait.mp4");
    ffmpeg(store, &["-i", text(&src), "-c", "copy", "-metadata:s:v:0", "rotate=90"], &out);
    assert_eq!(rotation(&out).map(i64::abs), Some(90), "precondition: a quarter-turn display matrix");
    let item = store.ingest_media(&out);
    let video = Video { item, width: info.width as usize, height: info.height as usize, frames: 60 };
    (video, info)
}

/// The audio-only evidence kinds.
#[derive(Clone, Copy, Debug)]
enum Audio {
    /// PCM s16le 48 kHz mono (fixture).
    Wav,
    /// libmp3lame 44.1 kHz mono (fixture).
    Mp3,
    /// AAC-LC 44.1 kHz mono in an MP4 container named .m4a (ffmpeg's aac encoder).
    M4a,
    /// AMR-NB 12.2 kbit/s, 8 kHz mono, in the .amr storage format.
    Amr,
}

/// Make 3 s of `kind` in the work directory.
fn audio(store: &Store, kind: Audio) -> PathBuf {
    match kind {
        Audio::Wav => fixture(store, Fixture::Wav).0,
        Audio::Mp3 => fixture(store, Fixture::Mp3).0,
        Audio::M4a => {
            let out = store.work().join("interview.m4a");
            ffmpeg(
                store,
                &words("-f lavfi -i sine=frequency=440:sample_rate=44100:duration=3 -c:a aac -b:a 64k"),
                &out,
            );
            out
        }
        Audio::Amr => {
            let out = store.work().join("voicemail.amr");
            if has_encoder("libopencore_amrnb") {
                let sine = "-f lavfi -i sine=frequency=440:sample_rate=8000:duration=3";
                ffmpeg(store, &words(&format!("{sine} -ac 1 -c:a libopencore_amrnb -b:a 12.2k")), &out);
            } else {
                eprintln!("note: this FFmpeg has no libopencore_amrnb encoder; writing the AMR-NB frames directly");
                std::fs::write(&out, amr_nb_frames(150)).expect("writing the AMR file");
            }
            out
        }
    }
}

/// An AMR-NB file in the RFC 4867 storage format ("#!AMR\n", then frames), written directly
/// for FFmpeg builds without an AMR encoder: `count` 20 ms frames of mode 7 (12.2 kbit/s: a
/// header byte 0x3C, FT=7 Q=1, and 31 payload bytes). The payload is deterministic
/// pseudo-random speech parameters; every bit pattern is a valid frame, which FFmpeg's amrnb
/// decoder turns into (noisy) sound without errors.
pub(crate) fn amr_nb_frames(count: usize) -> Vec<u8> {
    let mut out = b"#!AMR\n".to_vec();
    let mut state = 0x2545_f491_u32;
    for _ in 0..count {
        let mut frame = [0x3C; 32];
        for byte in &mut frame[1..] {
            // xorshift32
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *byte = (state >> 24) as u8;
        }
        out.extend_from_slice(&frame);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Running custody.

/// `custody --json clip ITEM --from A --to B [--mode exact] --out DIR`, expecting success;
/// returns its JSON and the copy `--out` wrote.
#[track_caller]
fn clip(store: &Store, item: &str, from: &str, to: &str, exact: bool) -> (Value, PathBuf) {
    let dir = store.work().join(if exact { "exact" } else { "clips" });
    let mut args = vec!["--json", "clip", item, "--from", from, "--to", to];
    if exact {
        args.extend_from_slice(&["--mode", "exact"]);
    }
    args.push("--out");
    let json = store.cmd(&args).arg(&dir).run().status(0).json();
    (json.clone(), out_file(&dir, &json))
}

/// `custody --json rewrap ITEM --out DIR`, expecting success.
#[track_caller]
fn rewrap(store: &Store, item: &str) -> (Value, PathBuf) {
    let dir = store.work().join("playback");
    let json = store.cmd(&["--json", "rewrap", item, "--out"]).arg(&dir).run().status(0).json();
    (json.clone(), out_file(&dir, &json))
}

#[track_caller]
pub(crate) fn out_file(dir: &Path, json: &Value) -> PathBuf {
    let name = json["name"].as_str().unwrap_or_else(|| panic!("no name: {json:#}"));
    let file = dir.join(name.rsplit('/').next().expect("a name"));
    assert!(file.is_file(), "--out did not write {}: {json:#}", file.display());
    file
}

/// The produced range (first, last) of a clip's JSON.
fn produced(json: &Value) -> (usize, usize) {
    let p = &json["produced"];
    (p["first_frame"].as_u64().expect("first_frame") as usize, p["last_frame"].as_u64().expect("last_frame") as usize)
}

/// The MD5 of every decoded frame, in order, as `custody hash --frames FILE` lists them.
#[track_caller]
fn frame_md5s(store: &Store, path: &Path) -> Vec<String> {
    let json = store.cmd(&["--json", "hash", "--frames"]).arg(path).run().status(0).json();
    let frames = json["frames"].as_array().unwrap_or_else(|| panic!("no frames: {json:#}"));
    frames.iter().map(|f| f["md5"].as_str().expect("md5").to_owned()).collect()
}

/// A still made by `custody --json still ITEM --at frame:N`: its JSON entry and picture.
struct Still {
    json: Value,
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Still {
    /// Luma (0.299 R + 0.587 G + 0.114 B) of every pixel.
    fn luma(&self) -> Vec<u8> {
        let y = |p: &[u8]| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
        self.rgb.chunks_exact(3).map(|p| y(p).round() as u8).collect()
    }

    /// The index in the band, after turning the picture back by the rotation custody applied.
    fn frame_index(&self) -> Option<u32> {
        let turned = self.json["facts"]["rotation"].as_i64().expect("rotation fact");
        let (luma, w, h) = rotate_cw(&self.luma(), self.width, self.height, (360 - turned) % 360);
        read_frame_index(&luma, w, w, h)
    }
}

#[track_caller]
fn stills(store: &Store, item: &str, frames: &[usize]) -> Vec<Still> {
    let mut cmd = store.cmd(&["--json", "still", item]);
    for n in frames {
        cmd = cmd.args(&["--at", &format!("frame:{n}")]);
    }
    let json = cmd.run().status(0).json();
    let items = json["items"].as_array().unwrap_or_else(|| panic!("no items: {json:#}"));
    assert_eq!(items.len(), frames.len(), "one still per --at: {json:#}");
    items
        .iter()
        .map(|entry| {
            let bytes = std::fs::read(store.object_path(entry["sha256"].as_str().expect("sha256"))).expect("PNG");
            let mut reader = png::Decoder::new(Cursor::new(bytes)).read_info().expect("a PNG header");
            let mut rgb = vec![0; reader.output_buffer_size().expect("a sane size")];
            let frame = reader.next_frame(&mut rgb).expect("PNG image data");
            assert_eq!(frame.color_type, png::ColorType::Rgb, "not RGB");
            rgb.truncate(frame.buffer_size());
            Still { json: entry.clone(), width: frame.width as usize, height: frame.height as usize, rgb }
        })
        .collect()
}

/// Rotate a one-byte-per-pixel picture clockwise by a multiple of 90 degrees.
fn rotate_cw(px: &[u8], w: usize, h: usize, degrees: i64) -> (Vec<u8>, usize, usize) {
    match degrees {
        90 => ((0..w).flat_map(|y| (0..h).map(move |x| px[(h - 1 - x) * w + y])).collect(), h, w),
        180 => (px.iter().rev().copied().collect(), w, h),
        270 => ((0..w).flat_map(|y| (0..h).map(move |x| px[x * w + (w - 1 - y)])).collect(), h, w),
        _ => (px.to_vec(), w, h),
    }
}

// ---------------------------------------------------------------------------------------------
// Oracles: ffprobe and ffmpeg.

fn picture_types(path: &Path) -> Vec<String> {
    let p = ffprobe_json(path, &["-select_streams", "v:0", "-show_entries", "frame=pict_type"]);
    p["frames"].as_array().expect("frames").iter().map(|f| f["pict_type"].as_str().unwrap_or("?").to_owned()).collect()
}

/// Key-frame flags of the decoded video frames, in presentation order.
fn key_frames(path: &Path) -> Vec<bool> {
    let p = ffprobe_json(path, &["-select_streams", "v:0", "-show_entries", "frame=key_frame"]);
    p["frames"].as_array().expect("frames").iter().map(|f| f["key_frame"] == 1).collect()
}

/// The container as ffprobe names it.
fn format_name(path: &Path) -> String {
    ffprobe_json(path, &["-show_format"])["format"]["format_name"].as_str().expect("format_name").to_owned()
}

/// The first video stream's entries (codec_name, width, field_order, …) and side data.
fn video_stream(path: &Path) -> Value {
    ffprobe_json(path, &["-select_streams", "v:0", "-show_streams"])["streams"][0].clone()
}

/// The rotation of the first video stream's display matrix, as ffprobe shows it.
fn rotation(path: &Path) -> Option<i64> {
    let stream = video_stream(path);
    stream["side_data_list"].as_array().and_then(|l| l.iter().find_map(|s| s["rotation"].as_i64()))
}

/// Width and height a player shows: the coded size, swapped for a quarter-turn rotation.
fn displayed_size(path: &Path) -> (u64, u64) {
    let s = video_stream(path);
    let (w, h) = (s["width"].as_u64().expect("width"), s["height"].as_u64().expect("height"));
    if rotation(path).is_some_and(|r| r.abs() % 180 == 90) { (h, w) } else { (w, h) }
}

/// Presentation times of the video frames as (pts, time base num, time base den).
fn frame_pts(path: &Path) -> (Vec<i64>, i64, i64) {
    let p = ffprobe_json(
        path,
        &["-select_streams", "v:0", "-show_entries", "stream=time_base:frame=best_effort_timestamp"],
    );
    let tb = p["streams"][0]["time_base"].as_str().expect("time_base");
    let (n, d) = tb.split_once('/').expect("a/b");
    let pts = p["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| f["best_effort_timestamp"].as_i64().unwrap_or_else(|| panic!("a frame without a time: {f}")))
        .collect();
    (pts, n.parse().expect("num"), d.parse().expect("den"))
}

/// Assert that the clip's frames are shown at the source frames' times, counted from
/// `first`: frame i of the clip at `frame_times[first + i] - frame_times[first]`.
#[track_caller]
fn assert_frame_times(clip: &Path, info: &FixtureInfo, first: usize) {
    let (pts, num, den) = frame_pts(clip);
    let t = &info.frame_times;
    assert!(t.iter().all(|f| f.1 == t[first].1), "fixture times share one denominator");
    let got: Vec<String> = pts.iter().map(|p| format!("{} us", (p - pts[0]) * num * 1_000_000 / den)).collect();
    let want: Vec<String> =
        (0..pts.len()).map(|i| format!("{} us", (t[first + i].0 - t[first].0) * 1_000_000 / t[first].1)).collect();
    assert_eq!(got, want, "frame times of {} from source frame {first}", clip.display());
}

/// Frame `n` of `path` decoded by the ffmpeg CLI (autorotation on, as players do) as RGB24,
/// converted as custody converts (bicubic, accurate rounding, full chroma interpolation).
fn ffmpeg_rgb_frame(path: &Path, n: usize) -> Vec<u8> {
    let filters = format!("select=eq(n\\,{n}),scale=flags=bicubic+accurate_rnd+full_chroma_int,format=rgb24");
    let args = ["-v", "error", "-i", text(path), "-map", "0:v:0", "-vf", &filters, "-fps_mode", "passthrough"];
    let more = ["-frames:v", "1", "-pix_fmt", "rgb24", "-f", "rawvideo", "-"];
    ffmpeg_stdout(&args.iter().chain(&more).map(OsStr::new).collect::<Vec<_>>())
}

/// The frame index of every coded picture of `path` (decoded without autorotation), for a
/// video made from `source` whose coded size is `width` x `height`. A copy holds the source's
/// pictures as they are; a re-encode may instead have turned them upright, as a player shows
/// the source: those are turned back before the band is read.
#[track_caller]
fn coded_indices(path: &Path, source: &Path, width: usize, height: usize) -> Vec<Option<u32>> {
    let args = ["-v", "error", "-noautorotate", "-i", text(path), "-map", "0:v:0", "-fps_mode", "passthrough"];
    let more = ["-f", "rawvideo", "-pix_fmt", "gray", "-"];
    let raw = ffmpeg_stdout(&args.iter().chain(&more).map(OsStr::new).collect::<Vec<_>>());
    let s = video_stream(path);
    let coded = (s["width"].as_u64().expect("width") as usize, s["height"].as_u64().expect("height") as usize);
    // ffprobe's rotation is counter-clockwise: a picture turned upright is turned back by it.
    let back = if coded == (width, height) {
        0
    } else {
        assert_eq!(coded, (height, width), "{} is neither the source's size nor turned", path.display());
        (rotation(source).expect("the source's rotation") + 360) % 360
    };
    raw.chunks_exact(coded.0 * coded.1)
        .map(|f| {
            let (luma, w, h) = rotate_cw(f, coded.0, coded.1, back);
            read_frame_index(&luma, w, w, h)
        })
        .collect()
}

/// Peak signal-to-noise ratio of two 8-bit buffers of the same length, in dB.
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "buffers of different sizes");
    let se: f64 = a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum();
    let mse = se / a.len() as f64;
    if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0f64 * 255.0 / mse).log10() }
}

/// The first audio stream decoded by ffmpeg as mono 16-bit samples, and its sample rate.
fn pcm(path: &Path) -> (Vec<i16>, u32) {
    let args =
        ["-v", "error", "-i", text(path), "-map", "0:a:0", "-ac", "1", "-f", "s16le", "-acodec", "pcm_s16le", "-"];
    let raw = ffmpeg_stdout(&args.map(OsStr::new));
    let p = ffprobe_json(path, &["-select_streams", "a:0", "-show_entries", "stream=sample_rate"]);
    let rate = p["streams"][0]["sample_rate"].as_str().expect("sample_rate").parse().expect("a rate");
    (raw.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect(), rate)
}

/// Seconds one audio packet of `path` lasts (its second packet: the first may be priming).
fn packet_seconds(path: &Path) -> f64 {
    let p = ffprobe_json(path, &["-select_streams", "a:0", "-show_entries", "packet=duration_time"]);
    let packets = p["packets"].as_array().expect("packets");
    packets[1]["duration_time"].as_str().expect("duration_time").parse().expect("seconds")
}

/// `HH:MM:SS.mmm` in seconds.
fn seconds(hms: &Value) -> f64 {
    let s = hms.as_str().unwrap_or_else(|| panic!("not a time: {hms}"));
    s.split(':').fold(0.0, |acc, part| acc * 60.0 + part.parse::<f64>().expect("a number"))
}

// ---------------------------------------------------------------------------------------------
// Interlaced MPEG-2 in MPEG-TS.

#[test]
fn an_interlaced_mpeg2_transport_stream_is_probed_as_interlaced_top_field_first() {
    let store = Store::new();
    let ts = mpeg2_ts(&store, "dvr_ch02.ts", &[]);
    let show = store.cmd(&["--json", "show", &ts.item.id]).run().status(0).json();
    let media = &show["file"]["media"];
    assert_eq!(media["container"], "mpegts", "{media:#}");
    let video = media["streams"].as_array().expect("streams").iter().find(|s| s["kind"] == "video").expect("video");
    assert_eq!(video["codec"], "mpeg2video", "{video:#}");
    assert_eq!(video["field_order"], "tt", "ffprobe says {}", video_stream(&ts.item.path)["field_order"]);
    store.cmd(&["show", &ts.item.id]).run().status(0).stdout_has("interlaced (tt)");
}

#[test]
fn stills_at_frame_n_of_the_interlaced_mpeg2_ts_show_frame_n_and_say_they_are_interlaced() {
    let store = Store::new();
    let ts = mpeg2_ts(&store, "dvr_ch02.ts", &[]);
    let frames = [0, 7, 12, 13, 29];
    for (still, n) in stills(&store, &ts.item.id, &frames).iter().zip(frames) {
        assert_eq!((still.width, still.height), (ts.width, ts.height), "{:#}", still.json);
        assert_eq!(still.frame_index(), Some(n as u32), "the still at frame:{n} shows another frame: {:#}", still.json);
        assert_eq!(still.json["facts"]["interlaced"], true, "{:#}", still.json);
        assert_eq!(still.json["facts"]["deinterlaced"], false, "{:#}", still.json);
    }
}

#[test]
fn a_copy_clip_of_the_interlaced_mpeg2_ts_starts_at_a_keyframe_decodes_cleanly_and_holds_the_frames_it_states() {
    let store = Store::new();
    let ts = mpeg2_ts(&store, "dvr_ch02.ts", &[]);
    let (json, file) = clip(&store, &ts.item.id, "frame:15", "frame:25", false);
    let (first, last) = produced(&json);
    let keys = key_frames(&ts.item.path);
    let key = (0..=15).rev().find(|&n| keys[n]).expect("a keyframe");
    assert_eq!((first, last), (key, 25), "from the keyframe at or before frame 15 to frame 25: {json:#}");
    assert!(format_name(&file).contains("mpegts"), "a transport stream clip stays one: {}", file.display());
    assert_eq!(decode_errors(&file), Vec::<String>::new(), "ffmpeg reports errors decoding the clip");
    let want: Vec<Option<u32>> = (first as u32..=last as u32).map(Some).collect();
    assert_eq!(ts.indices(&file), want, "the clip's pictures, in order");
    assert_eq!(video_stream(&file)["field_order"], "tt", "the clip is still interlaced, top field first");
}

#[test]

fn an_exact_clip_of_the_interlaced_mpeg2_ts_holds_exactly_frames_n_to_m() {
    let store = Store::new();
    let ts = mpeg2_ts(&store, "dvr_ch02.ts", &[]);
    for (from, to) in [(15, 25), (0, 10)] {
        let (json, file) = clip(&store, &ts.item.id, &format!("frame:{from}"), &format!("frame:{to}"), true);
        assert_eq!(produced(&json), (from, to), "{json:#}");
        let want: Vec<Option<u32>> = (from as u32..=to as u32).map(Some).collect();
        assert_eq!(ts.indices(&file), want, "the exact clip's pictures");
    }
}

#[test]
fn a_playback_copy_of_the_interlaced_mpeg2_ts_decodes_to_the_sources_frames() {
    let store = Store::new();
    let ts = mpeg2_ts(&store, "dvr_ch02.ts", &[]);
    let (json, file) = rewrap(&store, &ts.item.id);
    let format = format_name(&file);
    assert!(format.contains("mp4") || format.contains("matroska"), "an MP4 or MKV, not {format}: {json:#}");
    let source = frame_md5s(&store, &ts.item.path);
    assert_eq!(source.len(), ts.frames, "precondition: every source frame decodes");
    assert_eq!(frame_md5s(&store, &file), source, "decoded frame MD5s of the copy vs the source, in order");
    assert_eq!(video_stream(&file)["field_order"], "tt", "the copy is still interlaced, top field first");
}

#[test]

fn a_copy_clip_of_open_gop_mpeg2_with_b_frames_holds_the_frames_it_states() {
    let store = Store::new();
    let ts = mpeg2_ts(&store, "dvr_ch03.ts", &["-bf", "2"]);
    assert!(picture_types(&ts.item.path).iter().any(|t| t == "B"), "precondition: B-frames");
    let (json, file) = clip(&store, &ts.item.id, "frame:15", "frame:20", false);
    let (first, last) = produced(&json);
    assert!(first <= 15 && last >= 20, "the frames asked are in the clip: {json:#}");
    let want: Vec<Option<u32>> = (first as u32..=last as u32).map(Some).collect();
    assert_eq!(ts.indices(&file), want, "the clip's pictures vs produced {first}..{last}");
}

// ---------------------------------------------------------------------------------------------
// HEVC in Matroska.

#[test]
fn stills_at_frame_n_of_the_hevc_mkv_show_frame_n_including_leading_pictures_of_an_open_gop() {
    let store = Store::new();
    let Some(hevc) = hevc_mkv(&store) else { return };
    // 21..24 are shown before the keyframe at 25 but decoded after it.
    let frames = [0, 3, 22, 24, 25, 33, 49];
    for (still, n) in stills(&store, &hevc.item.id, &frames).iter().zip(frames) {
        assert_eq!((still.width, still.height), (hevc.width, hevc.height), "{:#}", still.json);
        assert_eq!(still.frame_index(), Some(n as u32), "the still at frame:{n} shows another frame: {:#}", still.json);
    }
}

#[test]
fn a_copy_clip_of_the_hevc_mkv_within_its_first_gop_holds_the_frames_it_states() {
    let store = Store::new();
    let Some(hevc) = hevc_mkv(&store) else { return };
    let (json, file) = clip(&store, &hevc.item.id, "frame:5", "frame:15", false);
    let (first, last) = produced(&json);
    assert!(first <= 5 && last >= 15, "the frames asked are in the clip: {json:#}");
    assert!(format_name(&file).contains("matroska"), "a Matroska clip stays one");
    assert_eq!(decode_errors(&file), Vec::<String>::new(), "ffmpeg reports errors decoding the clip");
    let want: Vec<Option<u32>> = (first as u32..=last as u32).map(Some).collect();
    assert_eq!(hevc.indices(&file), want, "the clip's pictures vs produced {first}..{last}");
}

#[test]

fn a_copy_clip_of_the_hevc_mkv_after_an_open_gop_keyframe_holds_the_frames_it_states() {
    let store = Store::new();
    let Some(hevc) = hevc_mkv(&store) else { return };
    let (json, file) = clip(&store, &hevc.item.id, "frame:30", "frame:40", false);
    let (first, last) = produced(&json);
    assert!(first <= 30 && last >= 40, "the frames asked are in the clip: {json:#}");
    assert_eq!(decode_errors(&file), Vec::<String>::new(), "ffmpeg reports errors decoding the clip");
    let want: Vec<Option<u32>> = (first as u32..=last as u32).map(Some).collect();
    assert_eq!(hevc.indices(&file), want, "the clip's pictures vs produced {first}..{last}");
}

#[test]
fn an_exact_clip_of_the_hevc_mkv_holds_exactly_frames_n_to_m() {
    let store = Store::new();
    let Some(hevc) = hevc_mkv(&store) else { return };
    // From a leading picture of the second GOP, across its keyframe.
    let (json, file) = clip(&store, &hevc.item.id, "frame:22", "frame:40", true);
    assert_eq!(produced(&json), (22, 40), "{json:#}");
    let want: Vec<Option<u32>> = (22..=40).map(Some).collect();
    assert_eq!(hevc.indices(&file), want, "the exact clip's pictures");
}

#[test]
fn a_playback_copy_of_the_hevc_mkv_decodes_to_the_sources_frames() {
    let store = Store::new();
    let Some(hevc) = hevc_mkv(&store) else { return };
    let (json, file) = rewrap(&store, &hevc.item.id);
    let format = format_name(&file);
    assert!(format.contains("mp4") || format.contains("matroska"), "an MP4 or MKV, not {format}: {json:#}");
    let source = frame_md5s(&store, &hevc.item.path);
    assert_eq!(source.len(), hevc.frames, "precondition: every source frame decodes");
    assert_eq!(frame_md5s(&store, &file), source, "decoded frame MD5s of the copy vs the source, in order");
}

// ---------------------------------------------------------------------------------------------
// A rotated, variable-frame-rate phone video.

#[test]
fn stills_of_the_rotated_vfr_phone_video_are_upright_and_show_frame_n() {
    let store = Store::new();
    let (phone, _) = rotated_phone(&store);
    // 10..19 last 1/20 s, 30 lasts 100 ms.
    let frames = [0, 12, 30, 31, 59];
    for (still, n) in stills(&store, &phone.item.id, &frames).iter().zip(frames) {
        assert_eq!((still.width, still.height), (phone.height, phone.width), "a quarter turn: {:#}", still.json);
        assert_eq!(still.frame_index(), Some(n as u32), "the still at frame:{n}, turned back: {:#}", still.json);
        // The same picture, the same way up, as ffmpeg shows it (autorotate, as players do).
        let db = psnr(&still.rgb, &ffmpeg_rgb_frame(&phone.item.path, n));
        assert!(db >= 35.0, "frame {n}: PSNR {db:.2} dB against ffmpeg's upright frame: {:#}", still.json);
    }
}

#[test]
fn a_copy_clip_of_the_vfr_phone_video_holds_the_frames_it_states_at_their_own_times() {
    let store = Store::new();
    let (phone, info) = rotated_phone(&store);
    let (json, file) = clip(&store, &phone.item.id, "frame:35", "frame:45", false);
    let (first, last) = produced(&json);
    assert!(first <= 35 && last >= 45, "the frames asked are in the clip: {json:#}");
    assert_eq!(decode_errors(&file), Vec::<String>::new(), "ffmpeg reports errors decoding the clip");
    let want: Vec<Option<u32>> = (first as u32..=last as u32).map(Some).collect();
    let got = coded_indices(&file, &phone.item.path, phone.width, phone.height);
    assert_eq!(got, want, "the clip's pictures vs produced {first}..{last}");
    assert_frame_times(&file, &info, first);
}

#[test]

fn a_copy_clip_of_the_rotated_phone_video_keeps_its_rotation() {
    let store = Store::new();
    let (phone, _) = rotated_phone(&store);
    let (_, file) = clip(&store, &phone.item.id, "frame:35", "frame:45", false);
    assert_eq!(rotation(&file), rotation(&phone.item.path), "the clip's display matrix vs the source's");
    assert_eq!(displayed_size(&file), (270, 480), "the clip plays upright");
}

#[test]
fn an_exact_clip_of_the_vfr_phone_video_holds_exactly_frames_n_to_m_at_their_own_times() {
    let store = Store::new();
    let (phone, info) = rotated_phone(&store);
    // Across the 100 ms frame (30) and a change of rate (at 40).
    let (json, file) = clip(&store, &phone.item.id, "frame:28", "frame:45", true);
    assert_eq!(produced(&json), (28, 45), "{json:#}");
    let want: Vec<Option<u32>> = (28..=45).map(Some).collect();
    assert_eq!(coded_indices(&file, &phone.item.path, phone.width, phone.height), want, "the exact clip's pictures");
    assert_frame_times(&file, &info, 28);
}

#[test]

fn an_exact_clip_of_the_rotated_phone_video_plays_upright() {
    let store = Store::new();
    let (phone, _) = rotated_phone(&store);
    let (_, file) = clip(&store, &phone.item.id, "frame:28", "frame:45", true);
    assert_eq!(displayed_size(&file), (270, 480), "shown as the source is shown: portrait");
    let db = psnr(&ffmpeg_rgb_frame(&file, 0), &ffmpeg_rgb_frame(&phone.item.path, 28));
    assert!(
        db >= 30.0,
        "PSNR {db:.2} dB of the clip's first frame against the source's frame 28, both as players show them"
    );
}

#[test]

fn a_playback_copy_of_the_rotated_vfr_phone_video_has_its_frames_and_rotation() {
    let store = Store::new();
    let (phone, _) = rotated_phone(&store);
    let (_, file) = rewrap(&store, &phone.item.id);
    let source = frame_md5s(&store, &phone.item.path);
    assert_eq!(source.len(), phone.frames, "precondition: every source frame decodes");
    assert_eq!(frame_md5s(&store, &file), source, "decoded frame MD5s of the copy vs the source, in order");
    assert_eq!(rotation(&file), rotation(&phone.item.path), "the copy's display matrix vs the source's");
}

// ---------------------------------------------------------------------------------------------
// Audio-only evidence.

/// A copy clip of `kind` from 1 s to 2 s: the same container, about a second long (each end
/// within one packet of the time asked, where a stream copy must cut), decoding cleanly.
fn assert_copy_clip_of_one_second(kind: Audio) {
    let store = Store::new();
    let src = audio(&store, kind);
    let item = store.ingest_media(&src);
    let (json, file) = clip(&store, &item.id, "1", "2", false);
    assert_eq!(format_name(&file), format_name(&src), "{kind:?}: the clip's container: {json:#}");
    assert_eq!(decode_errors(&file), Vec::<String>::new(), "{kind:?}: ffmpeg reports errors decoding the clip");
    let packet = packet_seconds(&src);
    let (samples, rate) = pcm(&file);
    let decoded = samples.len() as f64 / f64::from(rate);
    assert!((decoded - 1.0).abs() <= packet, "{kind:?}: the clip decodes to {decoded} s; one packet is {packet} s");
    // What custody says it holds: from the packet on at 1 s, for about a second.
    let id = json["item"].as_str().expect("item");
    let facts = &store.cmd(&["--json", "show", id]).run().status(0).json()["file"]["produced"];
    let (start, length) = (seconds(&facts["first_time"]), seconds(&facts["duration"]));
    assert!(start <= 1.0 && 1.0 < start + packet + 1e-9, "{kind:?}: starts at {start} s: {facts:#}");
    assert!((length - decoded).abs() <= packet, "{kind:?}: says {length} s, decodes to {decoded} s: {facts:#}");
}

#[test]
fn a_copy_clip_from_1_s_to_2_s_of_a_wav_lasts_about_a_second_and_decodes_cleanly() {
    assert_copy_clip_of_one_second(Audio::Wav);
}

#[test]
fn a_copy_clip_from_1_s_to_2_s_of_an_mp3_lasts_about_a_second_and_decodes_cleanly() {
    assert_copy_clip_of_one_second(Audio::Mp3);
}

#[test]
fn a_copy_clip_from_1_s_to_2_s_of_an_m4a_lasts_about_a_second_and_decodes_cleanly() {
    assert_copy_clip_of_one_second(Audio::M4a);
}

#[test]
fn a_copy_clip_from_1_s_to_2_s_of_an_amr_lasts_about_a_second_and_decodes_cleanly() {
    assert_copy_clip_of_one_second(Audio::Amr);
}

#[test]
fn a_still_of_wav_mp3_m4a_or_amr_audio_exits_2_recording_nothing_and_an_exact_clip_holds_one_second() {
    let store = Store::new();
    for kind in [Audio::Wav, Audio::Mp3, Audio::M4a, Audio::Amr] {
        let item = store.ingest_media(&audio(&store, kind));
        let before = store.snapshot();
        store.cmd(&["still", &item.id, "--at", "1"]).run().status(2).stderr_has("audio-only");
        store.assert_unchanged(&before);
        let json = store
            .cmd(&["--json", "clip", &item.id, "--from", "1", "--to", "2", "--mode", "exact"])
            .run()
            .status(0)
            .json();
        let rate = json["produced"]["sample_rate"].as_u64().unwrap_or_else(|| panic!("{kind:?}: {json:#}"));
        assert_eq!(json["produced"]["samples"].as_u64(), Some(rate), "{kind:?}: one second of samples: {json:#}");
        assert_eq!(json["exact"], true, "{kind:?}: {json:#}");
    }
}

/// A playback copy of `kind` plays the source's samples: decoded, the copy holds exactly the
/// source's samples, after at most `lead` extra samples at the start.
fn assert_playback_copy_plays_the_same_samples(kind: Audio, lead: usize) {
    let store = Store::new();
    let src = audio(&store, kind);
    let item = store.ingest_media(&src);
    let (json, file) = rewrap(&store, &item.id);
    assert_eq!(decode_errors(&file), Vec::<String>::new(), "{kind:?}: ffmpeg reports errors decoding the copy");
    let (source, rate) = pcm(&src);
    let (copy, copy_rate) = pcm(&file);
    assert_eq!(copy_rate, rate, "{kind:?}: sample rate: {json:#}");
    let at = (0..=lead.min(copy.len().saturating_sub(source.len())))
        .find(|&i| copy[i..].starts_with(&source))
        .unwrap_or_else(|| {
            let same = source.iter().zip(&copy).take_while(|(a, b)| a == b).count();
            panic!(
                "{kind:?}: the copy ({} samples) does not play the source's {} samples within {lead} of its start; \
                 the first {same} samples agree: {json:#}",
                copy.len(),
                source.len()
            )
        });
    let padding = copy.len() - at - source.len();
    assert!(padding <= 2 * lead, "{kind:?}: the copy plays {padding} samples more after the source's end");
}

#[test]
fn a_playback_copy_of_a_wav_plays_the_sources_samples() {
    assert_playback_copy_plays_the_same_samples(Audio::Wav, 0);
}

/// The LAME header's gapless information (encoder delay and padding) does not survive a stream
/// copy into MP4 (nor `ffmpeg -c copy`), so the copy plays the encoder's priming samples that
/// the MP3 file told decoders to skip: 1105 here, less than one 1152-sample frame.
#[test]
fn a_playback_copy_of_an_mp3_plays_the_sources_samples_after_the_encoders_priming() {
    assert_playback_copy_plays_the_same_samples(Audio::Mp3, 1152);
}

#[test]

fn a_playback_copy_of_an_m4a_plays_the_sources_samples() {
    assert_playback_copy_plays_the_same_samples(Audio::M4a, 0);
}

#[test]
fn a_playback_copy_of_an_amr_plays_the_sources_samples() {
    assert_playback_copy_plays_the_same_samples(Audio::Amr, 0);
}
