//! `custody still`: the PNG holds exactly the frame asked for (read back from the frame-index
//! band every fixture frame carries), the same pixels ffmpeg decodes, its provenance, a caption
//! only below the picture, the display aspect ratio and rotation; bad requests record nothing.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Cursor;
use std::path::Path;

use custody::media::synth::{Fixture, read_frame_index};
use serde_json::Value;

use crate::support::{Ingested, Store, ffmpeg_read, ffprobe_json, sha256sum, tool};

/// A decoded PNG: 8-bit RGB pixels and its text chunks.
struct Png {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
    text: BTreeMap<String, String>,
}

impl Png {
    /// Read and decode a PNG file, with its tEXt/zTXt/iTXt chunks.
    #[track_caller]
    fn read(path: &Path) -> Png {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut reader = png::Decoder::new(Cursor::new(bytes)).read_info().expect("a PNG header");
        let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
        let frame = reader.next_frame(&mut buf).expect("PNG image data");
        assert_eq!((frame.color_type, frame.bit_depth), (png::ColorType::Rgb, png::BitDepth::Eight), "not 8-bit RGB");
        buf.truncate(frame.buffer_size());
        let _ = reader.finish(); // text chunks after the image data, if any
        let info = reader.info();
        let mut text = BTreeMap::new();
        for t in &info.uncompressed_latin1_text {
            text.insert(t.keyword.clone(), t.text.clone());
        }
        for t in &info.compressed_latin1_text {
            text.insert(t.keyword.clone(), t.get_text().expect("zTXt"));
        }
        for t in &info.utf8_text {
            text.insert(t.keyword.clone(), t.get_text().expect("iTXt"));
        }
        Png { width: frame.width as usize, height: frame.height as usize, rgb: buf, text }
    }

    /// Luma of every pixel (0.299 R + 0.587 G + 0.114 B), one byte per pixel.
    fn luma(&self) -> Vec<u8> {
        self.rgb
            .chunks_exact(3)
            .map(|p| (0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])).round() as u8)
            .collect()
    }

    /// The frame index its band shows, reading a picture `height` rows tall from the top.
    fn frame_index(&self, height: usize) -> Option<u32> {
        read_frame_index(&self.luma(), self.width, self.width, height)
    }
}

/// `custody --json still ITEM --at P… EXTRA…`, expecting success; returns each still's JSON
/// entry with its PNG, read from the store object the JSON names.
#[track_caller]
fn stills(store: &Store, item: &str, at: &[&str], extra: &[&str]) -> Vec<(Value, Png)> {
    let mut cmd = store.cmd(&["--json", "still", item]);
    for p in at {
        cmd = cmd.args(&["--at", p]);
    }
    let json = cmd.args(extra).run().status(0).json();
    let items = json["items"].as_array().unwrap_or_else(|| panic!("no items in {json:#}")).clone();
    assert_eq!(items.len(), at.len(), "one still per --at: {json:#}");
    items
        .into_iter()
        .map(|item| {
            let sha = item["sha256"].as_str().expect("sha256").to_owned();
            let png = Png::read(&store.object_path(&sha));
            (item, png)
        })
        .collect()
}

/// Assert that the stills at `frame:N` for each N show index N.
#[track_caller]
fn assert_frames_show_their_index(store: &Store, item: &Ingested, frames: &[u32]) {
    let info = item.info();
    let at: Vec<String> = frames.iter().map(|n| format!("frame:{n}")).collect();
    let at: Vec<&str> = at.iter().map(String::as_str).collect();
    for ((json, png), &n) in stills(store, &item.id, &at, &[]).iter().zip(frames) {
        assert_eq!((png.width, png.height), (info.width as usize, info.height as usize), "still size");
        assert_eq!(png.frame_index(png.height), Some(n), "the still asked at frame:{n} shows another frame: {json:#}");
        assert_eq!(json["facts"]["frame"], n, "{json:#}");
    }
}

/// Picture types (I/P/B) of the video frames in presentation order, as ffprobe decodes them.
fn picture_types(path: &Path) -> Vec<String> {
    let frames = ffprobe_json(path, &["-select_streams", "v:0", "-show_entries", "frame=pict_type"]);
    frames["frames"].as_array().expect("frames").iter().map(|f| f["pict_type"].as_str().unwrap_or("?").into()).collect()
}

/// Frame `n` of `path` decoded by the ffmpeg CLI (autorotation on, as players do) as RGB24,
/// converted as custody converts: bicubic, accurate rounding, full chroma interpolation. (With
/// swscale's default fast chroma upsampling the same frame scores only ~31 dB on testsrc2's
/// sharp colour edges, while a neighbouring frame scores ~17 dB with either.)
/// `size` scales the picture to that size on the way.
fn ffmpeg_rgb_frame(path: &Path, n: u32, size: Option<(u32, u32)>) -> Vec<u8> {
    let size = size.map_or(String::new(), |(w, h)| format!("w={w}:h={h}:"));
    let filters = format!("select=eq(n\\,{n}),scale={size}flags=bicubic+accurate_rnd+full_chroma_int,format=rgb24");
    ffmpeg_read(
        path,
        &[
            "-map",
            "0:v:0",
            "-vf",
            &filters,
            "-fps_mode",
            "passthrough",
            "-frames:v",
            "1",
            "-pix_fmt",
            "rgb24",
            "-f",
            "rawvideo",
            "-",
        ],
    )
}

/// Peak signal-to-noise ratio between two 8-bit buffers of the same length, in dB.
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "buffers of different sizes");
    let se: f64 = a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum();
    let mse = se / a.len() as f64;
    if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0f64 * 255.0 / mse).log10() }
}

/// A position in seconds with microseconds, as custody reads it (`1.216667`), rounded up so it
/// falls inside (never before) the instant `num/den` s.
fn seconds_ceil(num: i64, den: i64) -> String {
    let us = (num * 1_000_000 + den - 1) / den;
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

#[test]
fn stills_at_frame_n_of_the_h264_mp4_show_frame_n_including_the_first_the_last_and_b_frames() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let types = picture_types(&item.path);
    let last = item.info().video_frames - 1;
    assert_eq!(types.len(), last as usize + 1);
    // Two B-frames in the middle of GOPs: decoded after the frames they sit between.
    let b: Vec<u32> =
        [13usize, 38].iter().map(|&from| (from..types.len()).find(|&n| types[n] == "B").unwrap() as u32).collect();
    assert!(b.iter().all(|&n| types[n as usize] == "B"), "{types:?}");
    assert_frames_show_their_index(&store, &item, &[0, 1, b[0], 25, b[1], 37, last]);
}

#[test]
fn stills_at_frame_n_of_the_raw_h264_dvr_stream_show_frame_n() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::RawH264);
    let last = item.info().video_frames - 1;
    assert_frames_show_their_index(&store, &item, &[0, 7, 15, 22, last]);
}

#[test]
fn stills_at_frame_n_of_the_mjpeg_avi_show_frame_n() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::MjpegAvi);
    let last = item.info().video_frames - 1;
    assert_frames_show_their_index(&store, &item, &[0, 13, last]);
}

#[test]
fn stills_at_frame_n_of_the_variable_frame_rate_mp4_show_frame_n() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::VfrMp4);
    let last = item.info().video_frames - 1;
    // 10..20 are the longer 1/20 s frames, 30 the 100 ms hiccup.
    assert_frames_show_their_index(&store, &item, &[0, 12, 30, 31, last]);
}

#[test]
fn a_still_at_a_time_shows_the_frame_on_screen_at_that_time() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    // 25 fps: frame n is on screen from n/25 s to (n+1)/25 s. One frame per position (see
    // two_positions_on_the_same_frame_in_one_command_each_get_a_still).
    let cases = [("00:00:01.500", 37), ("00:00:01.200", 30), ("0", 0), ("0.079999", 1), ("2.999", 74)];
    let at: Vec<&str> = cases.iter().map(|c| c.0).collect();
    for ((json, png), (pos, n)) in stills(&store, &item.id, &at, &[]).iter().zip(&cases) {
        assert_eq!(png.frame_index(png.height), Some(*n), "--at {pos} should show frame {n}: {json:#}");
    }
}

#[test]
fn a_still_at_a_time_inside_a_long_frame_of_the_vfr_file_shows_that_frame() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::VfrMp4);
    let info = item.info();
    let (start, dur) = (info.frame_times[30], info.frame_durations[30]);
    assert_eq!(dur.0 * 10, dur.1, "frame 30 of the VFR fixture lasts 100 ms");
    assert_eq!(start.1, dur.1);
    let (t, d, den) = (start.0, dur.0, start.1);
    let cases = [
        (seconds_ceil(t, den), 30),              // its start
        (seconds_ceil(t + d / 2, den), 30),      // its middle
        (seconds_ceil(t + d * 9 / 10, den), 30), // 90 ms in: three frames later at 30 fps
        (seconds_ceil(t + d, den), 31),          // the next frame's start
        (seconds_ceil(info.frame_times[12].0 + info.frame_durations[12].0 / 2, den), 12),
    ];
    // One command per position: several fall on the same frame.
    for (pos, n) in &cases {
        let (json, png) = stills(&store, &item.id, &[pos], &[]).remove(0);
        assert_eq!(png.frame_index(png.height), Some(*n), "--at {pos} should show frame {n}: {json:#}");
    }
}

#[test]

fn two_positions_on_the_same_frame_in_one_command_each_get_a_still() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    // 1.2 s and 1.239999 s are both frame 30 at 25 fps; so is frame:30.
    let at = ["00:00:01.200", "1.239999", "frame:30"];
    for ((json, png), pos) in stills(&store, &item.id, &at, &[]).iter().zip(at) {
        assert_eq!(png.frame_index(png.height), Some(30), "--at {pos}: {json:#}");
    }
    store.verify_ok();
}

/// The still of frame `n` against ffmpeg's own decode of it, both as RGB24.
fn assert_pixels_match_ffmpeg(kind: Fixture, n: u32) {
    let store = Store::new();
    let item = store.ingest_fixture(kind);
    let frame = format!("frame:{n}");
    let (json, png) = stills(&store, &item.id, &[&frame], &[]).remove(0);
    let want = ffmpeg_rgb_frame(&item.path, n, None);
    assert_eq!(png.rgb.len(), want.len(), "still is {}x{}: {json:#}", png.width, png.height);
    let db = psnr(&png.rgb, &want);
    assert!(db >= 35.0, "{kind:?} frame {n}: PSNR {db:.2} dB against ffmpeg's decode is below 35 dB");
}

#[test]
fn a_still_of_the_h264_mp4_has_the_pixels_ffmpeg_decodes_for_that_frame() {
    assert_pixels_match_ffmpeg(Fixture::H264Mp4, 38);
}

#[test]
fn a_still_of_the_mjpeg_avi_has_the_pixels_ffmpeg_decodes_for_that_frame() {
    assert_pixels_match_ffmpeg(Fixture::MjpegAvi, 13);
}

#[test]
fn png_text_chunks_hold_the_source_sha256_frame_index_pts_and_media_time() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let out_dir = store.work().join("exhibits");
    let out = store.cmd(&["--json", "still", &item.id, "--at", "frame:37", "--out"]).arg(&out_dir).run();
    let json = out.status(0).json();
    let entry = &json["items"][0];
    let name = entry["name"].as_str().expect("name").rsplit('/').next().unwrap().to_owned();
    let copied = out_dir.join(&name);
    assert_eq!(sha256sum(&copied), entry["sha256"], "--out copy differs from the recorded still");
    let png = Png::read(&copied);

    assert_eq!(png.text.get("Source-SHA256"), Some(&sha256sum(&item.path)), "{:#?}", png.text);
    assert_eq!(png.text.get("Frame-Index").map(String::as_str), Some("37"), "{:#?}", png.text);
    // pts and time base as ffprobe reads them from the source.
    let probe = ffprobe_json(&item.path, &["-select_streams", "v:0", "-show_entries", "stream=time_base:frame=pts"]);
    let pts = probe["frames"][37]["pts"].as_i64().expect("pts of frame 37");
    let tb = probe["streams"][0]["time_base"].as_str().expect("time base");
    let pts_text = png.text.get("PTS").unwrap_or_else(|| panic!("no PTS chunk: {:#?}", png.text));
    assert_eq!(pts_text.split_whitespace().next(), Some(pts.to_string().as_str()), "PTS chunk {pts_text:?}");
    assert!(pts_text.contains(tb), "PTS chunk {pts_text:?} lacks the time base {tb}");
    // 37 / 25 s from the first frame.
    assert_eq!(png.text.get("Media-Time").map(String::as_str), Some("00:00:01.480"), "{:#?}", png.text);
}

#[test]
fn a_caption_is_a_banner_below_the_picture_never_drawn_over_it() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let (w, h) = (item.info().width as usize, item.info().height as usize);
    let (_, plain) = stills(&store, &item.id, &["frame:37"], &[]).remove(0);
    let (json, captioned) = stills(&store, &item.id, &["frame:37"], &["--caption"]).remove(0);
    assert_eq!((plain.width, plain.height), (w, h));
    // A frame narrower than 640 pixels gets a 640-pixel banner (readable), the picture at the
    // top left of a canvas that wide, its pixels unchanged.
    let cw = w.max(640);
    assert_eq!(captioned.width, cw, "{json:#}");
    assert!(captioned.height > h, "no banner added: {}x{}", captioned.width, captioned.height);
    for y in 0..h {
        let (row, plain_row) = (&captioned.rgb[y * cw * 3..][..cw * 3], &plain.rgb[y * w * 3..][..w * 3]);
        assert!(row[..w * 3] == *plain_row, "the caption changed the picture's pixels on row {y}");
        assert!(row[w * 3..].iter().all(|&v| v == 0), "the canvas beside the picture is not black on row {y}");
    }
    // The banner holds text: some bright pixels on it.
    assert!(captioned.rgb[cw * h * 3..].iter().any(|&v| v > 200), "the banner is empty");
    assert_eq!(read_frame_index(&captioned.luma(), cw, w, h), Some(37));
}

#[test]
fn a_still_of_non_square_pixels_has_the_display_aspect_ratio_unless_no_sar() {
    let store = Store::new();
    let src = store.work().join("sar.mp4");
    let made = tool(
        "ffmpeg",
        &[
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=704x480:rate=15",
            "-t",
            "1",
            "-vf",
            "setsar=10/11",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ]
        .map(OsStr::new)
        .into_iter()
        .chain([src.as_os_str()])
        .collect::<Vec<_>>(),
        store.work(),
    );
    made.status(0);
    let probe = ffprobe_json(&src, &["-show_streams", "-select_streams", "v:0"]);
    assert_eq!(probe["streams"][0]["sample_aspect_ratio"], "10:11", "precondition: a 10:11 SAR file");
    let item = store.ingest_media(&src);

    let (json, display) = stills(&store, &item.id, &["frame:3"], &[]).remove(0);
    assert_eq!((display.width, display.height), (640, 480), "704x480 at SAR 10:11 shows as 640x480: {json:#}");
    let (json, coded) = stills(&store, &item.id, &["frame:3"], &["--no-sar"]).remove(0);
    assert_eq!((coded.width, coded.height), (704, 480), "--no-sar keeps the coded size: {json:#}");
    // The same picture as ffmpeg's decode scaled to each size.
    for (png, size) in [(&display, (640, 480)), (&coded, (704, 480))] {
        let db = psnr(&png.rgb, &ffmpeg_rgb_frame(&src, 3, Some(size)));
        assert!(db >= 35.0, "{size:?}: PSNR {db:.2} dB against ffmpeg's decode scaled to that size");
    }
}

#[test]
fn a_still_of_a_rotated_phone_video_is_upright_as_a_player_shows_it() {
    let store = Store::new();
    let plain = store.work().join("plain.mp4");
    let rotated = store.work().join("rot.mp4");
    let run = |args: &[&str], out: &Path| {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).chain([out.as_os_str()]).collect();
        tool("ffmpeg", &args, store.work()).status(0);
    };
    run(
        &[
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=10",
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ],
        &plain,
    );
    let plain_arg = plain.to_str().expect("utf-8 path");
    run(&["-nostdin", "-v", "error", "-i", plain_arg, "-c", "copy", "-metadata:s:v:0", "rotate=90"], &rotated);
    let probe = ffprobe_json(&rotated, &["-show_streams", "-select_streams", "v:0"]);
    let stream = &probe["streams"][0];
    let rotation = stream["side_data_list"]
        .as_array()
        .and_then(|l| l.iter().find_map(|s| s["rotation"].as_i64()))
        .unwrap_or_else(|| panic!("precondition: ffprobe shows no rotation side data: {stream:#}"));
    assert_eq!(rotation.abs(), 90, "precondition: a quarter-turn display matrix");
    assert_eq!((stream["width"].as_u64(), stream["height"].as_u64()), (Some(320), Some(240)));
    let item = store.ingest_media(&rotated);

    let (json, png) = stills(&store, &item.id, &["frame:4"], &[]).remove(0);
    assert_eq!((png.width, png.height), (240, 320), "width and height swapped for a quarter turn: {json:#}");
    // ffmpeg rotates as players do (autorotate): the same picture, the same way up.
    let want = ffmpeg_rgb_frame(&rotated, 4, None);
    let db = psnr(&png.rgb, &want);
    assert!(db >= 35.0, "PSNR {db:.2} dB against ffmpeg's autorotated frame: the still is not upright");
}

/// `custody still ITEM ARGS…` must exit 2, saying `why`, and change nothing.
#[track_caller]
fn assert_refused(store: &Store, item: &str, args: &[&str], why: &str) {
    let before = store.snapshot();
    store.cmd(&["still", item]).args(args).run().status(2).stderr_has(why);
    store.assert_unchanged(&before);
}

#[test]
fn a_still_of_audio_a_position_past_the_end_an_undecodable_blob_or_a_malformed_position_exits_2_recording_nothing() {
    let store = Store::new();
    let video = store.ingest_fixture(Fixture::H264Mp4);
    let wav = store.ingest_fixture(Fixture::Wav);
    let blob = store.ingest_fixture(Fixture::Proprietary);
    let frames = video.info().video_frames.to_string();
    assert_refused(&store, &wav.id, &["--at", "1"], "audio-only");
    assert_refused(&store, &video.id, &["--at", &format!("frame:{frames}")], "past the end");
    assert_refused(&store, &video.id, &["--at", "00:00:03.000"], "outside the recording");
    assert_refused(&store, &video.id, &["--at", "00:00:10"], "outside the recording");
    // One bad position among good ones: nothing at all is exported.
    assert_refused(&store, &video.id, &["--at", "frame:1", "--at", "frame:999"], "past the end");
    assert_refused(&store, &blob.id, &["--at", "0"], "FFmpeg cannot read it");
    assert_refused(&store, &video.id, &["--at", "1:99"], "not a position");
}

/// Swap the timestamps of index entries `a` and `b` of a cached frame index and seal the file
/// again with its BLAKE3, as someone with write access to the store could.
fn craft_cached_index(path: &Path, a: usize, b: usize) {
    const HEADER: usize = 22 + 4 + 64 + 8 + 1 + 1 + 8 + 8; // magic, FFmpeg, SHA-256, stream, flags, time base, count
    const ENTRY: usize = 33; // pts, duration, decode position, byte position, flags
    let mut bytes = std::fs::read(path).expect("a cached frame index");
    assert!(bytes.starts_with(b"custody frame index 4\n"), "cache format changed: update this test");
    let body = bytes.len() - 32;
    let (pa, pb) = (HEADER + a * ENTRY, HEADER + b * ENTRY);
    let pts_a: [u8; 8] = bytes[pa..pa + 8].try_into().unwrap();
    let pts_b: [u8; 8] = bytes[pb..pb + 8].try_into().unwrap();
    bytes[pa..pa + 8].copy_from_slice(&pts_b);
    bytes[pb..pb + 8].copy_from_slice(&pts_a);
    let seal = *blake3::hash(&bytes[..body]).as_bytes();
    bytes[body..].copy_from_slice(&seal);
    std::fs::write(path, bytes).expect("write the crafted index");
}

#[test]
fn a_frame_index_cache_no_event_recorded_is_rebuilt_not_trusted() {
    let store = Store::new();
    let video = store.ingest_fixture(Fixture::H264Mp4);
    let cached = store.path().join("cache").join("frames").join(sha256sum(&video.path));
    let first = store.cmd(&["--json", "still", &video.id, "--at", "frame:20"]).run().status(0).json();
    let recorded = |json: &Value| {
        let seq = json["head"]["seq"].as_u64().expect("head seq");
        let log = store.cmd(&["--json", "log", &video.id]).run().status(0).json();
        let event = log["events"].as_array().expect("events").iter().find(|e| e["seq"] == seq).cloned();
        event.unwrap_or_else(|| panic!("event {seq} not in the item's log: {log:#}"))["params"]["frame_index"].clone()
    };
    let digest = recorded(&first);
    assert_eq!(digest.as_str().map(str::len), Some(64), "the still's event records its frame index: {digest}");
    let genuine = std::fs::read(&cached).expect("the still cached its frame index");

    // A sound-looking cache that sends frame 20 to frame 25's picture.
    craft_cached_index(&cached, 20, 25);
    let (json, png) = stills(&store, &video.id, &["frame:20"], &[]).remove(0);
    assert_eq!(png.frame_index(png.height), Some(20), "a crafted frame index was trusted: {json:#}");
    assert_eq!(std::fs::read(&cached).expect("cache"), genuine, "the crafted cache was not rebuilt");
    let again = store.cmd(&["--json", "log", &video.id]).run().status(0).json();
    let digests: Vec<&Value> =
        again["events"].as_array().unwrap().iter().map(|e| &e["params"]["frame_index"]).collect();
    assert!(
        digests.iter().filter(|d| **d == &digest).count() >= 2,
        "the rebuilt index is the one recorded: {digests:?}"
    );
    store.verify_ok();
}
