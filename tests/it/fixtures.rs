//! Oracle checks of the synthetic fixtures: the `ffprobe`/`ffmpeg` command-line tools (used
//! only by tests) independently confirm that each file holds what `FixtureInfo` says it holds,
//! and that every decoded video frame carries its own index in the frame-index band.

use std::path::{Path, PathBuf};
use std::process::Command;

use custody::media::synth::{self, Fixture, FixtureInfo};
use serde_json::Value;
use tempfile::TempDir;

/// Generate `kind` into a fresh temporary directory (kept alive by the returned `TempDir`).
fn make(kind: Fixture) -> (TempDir, PathBuf, FixtureInfo) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(kind.file_name());
    let info = synth::generate(kind, &path).unwrap_or_else(|e| panic!("generating {kind:?} failed: {e:#}"));
    assert_eq!(info.kind, kind);
    assert!(path.is_file(), "{kind:?}: no file at {}", path.display());
    let len = std::fs::metadata(&path).expect("metadata").len();
    assert_eq!(info.file_size, len, "{kind:?}: file_size");
    assert!(len < 512 * 1024, "{kind:?}: {len} bytes is not small");
    (dir, path, info)
}

/// Run ffprobe with JSON output; panics unless it succeeds.
fn ffprobe_json(path: &Path, args: &[&str]) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(path)
        .output()
        .expect("running ffprobe (is it installed?)");
    assert!(
        out.status.success(),
        "ffprobe {args:?} {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

/// Streams and format, with frames counted by decoding (`-count_frames`).
fn probe(path: &Path) -> Value {
    ffprobe_json(path, &["-count_frames", "-show_streams", "-show_format"])
}

fn streams_of<'a>(probe: &'a Value, codec_type: &str) -> Vec<&'a Value> {
    probe["streams"].as_array().expect("streams array").iter().filter(|s| s["codec_type"] == codec_type).collect()
}

fn only_stream<'a>(probe: &'a Value, codec_type: &str) -> &'a Value {
    let streams = streams_of(probe, codec_type);
    assert_eq!(streams.len(), 1, "expected one {codec_type} stream: {probe:#}");
    streams[0]
}

/// A field ffprobe prints as a number or as a numeric string.
fn num(v: &Value, key: &str) -> f64 {
    match &v[key] {
        Value::Number(n) => n.as_f64().expect("f64"),
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("{key}={s:?} is not a number")),
        other => panic!("{key} missing or odd: {other} in {v:#}"),
    }
}

/// `"a/b"` as (a, b).
fn ratio(v: &Value, key: &str) -> (i64, i64) {
    let s = v[key].as_str().unwrap_or_else(|| panic!("{key} missing"));
    let (a, b) = s.split_once('/').expect("a/b");
    (a.parse().expect("numerator"), b.parse().expect("denominator"))
}

/// Assert the single video stream's codec, size and decoded frame count match `info`.
fn assert_video_matches(probe: &Value, info: &FixtureInfo) -> Value {
    let v = only_stream(probe, "video");
    assert_eq!(Some(v["codec_name"].as_str().unwrap_or("")), info.video_codec);
    assert_eq!(num(v, "width") as u32, info.width, "width");
    assert_eq!(num(v, "height") as u32, info.height, "height");
    assert_eq!(num(v, "nb_read_frames") as u32, info.video_frames, "ffprobe -count_frames");
    v.clone()
}

/// Assert the single audio stream's codec, rate, channels and duration match `info`.
fn assert_audio_matches(probe: &Value, info: &FixtureInfo, tolerance_s: f64) {
    let a = only_stream(probe, "audio");
    assert_eq!(Some(a["codec_name"].as_str().unwrap_or("")), info.audio_codec);
    assert_eq!(num(a, "sample_rate") as u32, info.audio_sample_rate);
    assert_eq!(num(a, "channels") as u32, info.audio_channels);
    let duration = if a["duration"].is_string() { num(a, "duration") } else { num(&probe["format"], "duration") };
    assert!(
        (duration - info.audio_seconds()).abs() <= tolerance_s,
        "audio lasts {duration} s, expected {} s",
        info.audio_seconds()
    );
}

/// Presentation timestamps (in the stream time base; `None` where the file has none, as in a
/// raw elementary stream) and picture types of the video frames, and the stream time base.
fn video_frames(path: &Path) -> (Vec<Option<i64>>, Vec<String>, (i64, i64)) {
    let stream = ffprobe_json(path, &["-select_streams", "v:0", "-show_entries", "stream=time_base"]);
    let tb = ratio(&stream["streams"][0], "time_base");
    let frames =
        ffprobe_json(path, &["-select_streams", "v:0", "-show_entries", "frame=pts,best_effort_timestamp,pict_type"]);
    let frames = frames["frames"].as_array().expect("frames array");
    let pts = frames.iter().map(|f| f["pts"].as_i64().or_else(|| f["best_effort_timestamp"].as_i64())).collect();
    let types = frames.iter().map(|f| f["pict_type"].as_str().unwrap_or("?").to_owned()).collect();
    (pts, types, tb)
}

/// Assert ffprobe's frame times equal `info.frame_times` exactly (as rationals).
fn assert_frame_times(path: &Path, info: &FixtureInfo) -> Vec<i64> {
    let (pts, _, (tb_num, tb_den)) = video_frames(path);
    let pts: Vec<i64> =
        pts.into_iter().enumerate().map(|(i, p)| p.unwrap_or_else(|| panic!("frame {i} has no timestamp"))).collect();
    assert_eq!(pts.len(), info.frame_times.len(), "frame count");
    for (i, (&p, &(num, den))) in pts.iter().zip(&info.frame_times).enumerate() {
        // p * tb_num / tb_den == num / den
        assert_eq!(
            i128::from(p) * i128::from(tb_num) * i128::from(den),
            i128::from(num) * i128::from(tb_den),
            "frame {i}: pts {p} x {tb_num}/{tb_den} s != {num}/{den} s"
        );
    }
    pts
}

/// Decode with the ffmpeg CLI to 8-bit grey (every frame, no frame-rate conversion) and read
/// the band of each frame.
fn decoded_indices(path: &Path, info: &FixtureInfo) -> Vec<Option<u32>> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .expect("running ffmpeg (is it installed?)");
    assert!(
        out.status.success(),
        "ffmpeg decode of {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let (w, h) = (info.width as usize, info.height as usize);
    let frame_len = w * h;
    assert_eq!(out.stdout.len() % frame_len, 0, "decoded output is not a whole number of {w}x{h} frames");
    out.stdout.chunks_exact(frame_len).map(|frame| synth::read_frame_index(frame, w, w, h)).collect()
}

fn assert_band_indices(kind: Fixture) {
    let (_dir, path, info) = make(kind);
    let got = decoded_indices(&path, &info);
    let want: Vec<Option<u32>> = (0..info.video_frames).map(Some).collect();
    assert_eq!(got, want, "{kind:?}: frame indices read back from decoded frames");
}

#[test]
fn fixtures_h264_mp4_has_bframes_audio_and_regular_timing() {
    let (_dir, path, info) = make(Fixture::H264Mp4);
    assert_eq!((info.width, info.height, info.video_frames), (640, 360, 75));
    let p = probe(&path);
    assert!(p["format"]["format_name"].as_str().unwrap_or("").contains("mp4"));
    let v = assert_video_matches(&p, &info);
    assert!(num(&v, "has_b_frames") > 0.0, "no B-frame reordering: {v:#}");
    assert_audio_matches(&p, &info, 0.05);
    assert_eq!(info.audio_samples, 3 * 48_000);

    let (_, types, _) = video_frames(&path);
    let b = types.iter().filter(|t| *t == "B").count();
    let i = types.iter().filter(|t| *t == "I").count();
    assert!(b > 0, "no B pictures decoded: {types:?}");
    assert!(i >= 3, "expected a keyframe every 25 frames: {types:?}");
    let pts = assert_frame_times(&path, &info);
    let deltas: Vec<i64> = pts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(deltas.windows(2).all(|d| d[0] == d[1]), "CFR expected");
}

#[test]
fn fixtures_raw_h264_is_an_annex_b_elementary_stream() {
    let (_dir, path, info) = make(Fixture::RawH264);
    assert_eq!((info.width, info.height, info.video_frames), (704, 480, 30));
    let bytes = std::fs::read(&path).expect("read");
    assert!(bytes.starts_with(&[0, 0, 0, 1]) || bytes.starts_with(&[0, 0, 1]), "no Annex-B start code at the start");
    let p = probe(&path);
    assert_eq!(p["format"]["format_name"], "h264");
    assert_eq!(p["streams"].as_array().map(Vec::len), Some(1));
    let v = assert_video_matches(&p, &info);
    assert_eq!(num(&v, "has_b_frames"), 0.0, "DVR stream has no B-frames");
    let (_, types, _) = video_frames(&path);
    assert!(types.iter().all(|t| t != "B"), "{types:?}");
    assert_eq!(types.iter().filter(|t| *t == "I").count(), 2, "{types:?}");
}

#[test]
fn fixtures_mjpeg_avi_holds_mjpeg_and_mulaw() {
    let (_dir, path, info) = make(Fixture::MjpegAvi);
    assert_eq!((info.width, info.height, info.video_frames), (704, 480, 30));
    let p = probe(&path);
    assert_eq!(p["format"]["format_name"], "avi");
    assert_video_matches(&p, &info);
    assert_eq!(info.audio_codec, Some("pcm_mulaw"));
    assert_audio_matches(&p, &info, 0.05);
    assert_frame_times(&path, &info);
}

#[test]
fn fixtures_vfr_mp4_has_irregular_timestamps() {
    let (_dir, path, info) = make(Fixture::VfrMp4);
    assert!(info.variable_frame_rate);
    let p = probe(&path);
    let v = assert_video_matches(&p, &info);
    assert_eq!(v["time_base"], "1/90000");
    assert_audio_matches(&p, &info, 0.05);
    let pts = assert_frame_times(&path, &info);
    let mut deltas: Vec<i64> = pts.windows(2).map(|w| w[1] - w[0]).collect();
    deltas.sort_unstable();
    deltas.dedup();
    assert!(deltas.len() >= 3, "frame durations do not vary enough: {deltas:?}");
    assert!(deltas.contains(&9000), "no 100 ms gap: {deltas:?}");
}

#[test]
fn fixtures_wav_is_three_seconds_of_pcm() {
    let (_dir, path, info) = make(Fixture::Wav);
    let p = probe(&path);
    assert_eq!(p["format"]["format_name"], "wav");
    assert!(streams_of(&p, "video").is_empty());
    assert_eq!(info.audio_codec, Some("pcm_s16le"));
    assert_audio_matches(&p, &info, 0.01);
    assert_eq!((info.audio_sample_rate, info.audio_samples), (48_000, 144_000));
}

#[test]
fn fixtures_mp3_is_three_seconds_of_mp3() {
    let (_dir, path, info) = make(Fixture::Mp3);
    let p = probe(&path);
    assert_eq!(p["format"]["format_name"], "mp3");
    assert!(streams_of(&p, "video").is_empty());
    assert_eq!(info.audio_codec, Some("mp3"));
    // MP3 frames are 1152 samples and the encoder adds delay: allow a little slack.
    assert_audio_matches(&p, &info, 0.1);
    assert_eq!(info.audio_sample_rate, 44_100);
}

#[test]
fn fixtures_proprietary_blob_is_opaque_to_ffmpeg() {
    let (_dir, path, info) = make(Fixture::Proprietary);
    assert_eq!(info.container, None);
    let bytes = std::fs::read(&path).expect("read");
    assert_eq!(bytes.len(), synth::PROPRIETARY_LEN);
    assert!(bytes.starts_with(synth::PROPRIETARY_MAGIC));
    assert_eq!(bytes, synth::proprietary_blob(), "blob must be deterministic");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_format", "-show_streams"])
        .arg(&path)
        .output()
        .expect("running ffprobe");
    assert!(!out.status.success(), "ffprobe opened the proprietary blob: {}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn fixtures_h264_mp4_frames_carry_their_index() {
    assert_band_indices(Fixture::H264Mp4);
}

#[test]
fn fixtures_raw_h264_frames_carry_their_index() {
    assert_band_indices(Fixture::RawH264);
}

#[test]
fn fixtures_mjpeg_avi_frames_carry_their_index() {
    assert_band_indices(Fixture::MjpegAvi);
}

#[test]
fn fixtures_vfr_mp4_frames_carry_their_index() {
    assert_band_indices(Fixture::VfrMp4);
}

#[test]
fn fixtures_generate_all_writes_every_kind_reproducibly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("nested").join("evidence");
    let written = synth::generate_all(&out).expect("generate_all");
    let kinds: Vec<Fixture> = written.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, Fixture::ALL.to_vec());
    for (kind, path) in &written {
        assert_eq!(path, &out.join(kind.file_name()));
        assert!(std::fs::metadata(path).expect("metadata").len() > 0);
    }
    // Same inputs, same bytes: fixtures are deterministic (bit-exact muxing, fixed seeds).
    let again = dir.path().join("again");
    synth::generate_all(&again).expect("generate_all again");
    for kind in Fixture::ALL {
        let a = std::fs::read(out.join(kind.file_name())).expect("read");
        let b = std::fs::read(again.join(kind.file_name())).expect("read");
        assert!(a == b, "{kind:?} differs between runs");
    }
}
