//! `custody clip --mode smart`: exactly the frames asked, the whole groups of pictures between
//! the ends copied bit for bit, only the partial groups at the ends re-encoded, and a frame map
//! that says which frames are which.
//!
//! Oracles are independent of custody: the frame-index band read from ffmpeg's decode of the
//! clip, ffmpeg's `framemd5` of the clip against the source's, ffprobe's per-packet SHA-256,
//! its frame counts and durations, and ffmpeg's own error report while decoding.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use custody::media::synth::Fixture;
use serde_json::{Value, json};

use crate::formats::{Video, ffmpeg, fixture, mpeg2_ts, out_file, text, words};
use crate::support::{Store, decode_errors, ffprobe_json, tool};

/// The H.264 fixture (75 frames, 25 fps, its AAC audio) re-encoded as a phone or DVR writes it:
/// closed groups of 25 frames that start with IDR pictures, two B-frames between references.
fn idr_mp4(store: &Store) -> Video {
    let (src, info) = fixture(store, Fixture::H264Mp4);
    let out = store.work().join("cam_idr.mp4");
    let mut args = vec!["-i", text(&src)];
    args.extend(words("-fps_mode passthrough -c:v libx264 -preset veryfast -crf 28 -g 25 -bf 2"));
    args.extend(words("-x264-params scenecut=0:b-adapt=0:open-gop=0 -c:a copy"));
    ffmpeg(store, &args, &out);
    let item = store.ingest_media(&out);
    Video { item, width: info.width as usize, height: info.height as usize, frames: 75 }
}

/// `custody --json clip ITEM --from A --to B --mode smart --out DIR`, expecting success.
#[track_caller]
fn smart(store: &Store, item: &str, from: &str, to: &str) -> (Value, PathBuf) {
    let dir = store.work().join("smart");
    let json = store
        .cmd(&["--json", "clip", item, "--from", from, "--to", to, "--mode", "smart", "--out"])
        .arg(&dir)
        .run()
        .status(0)
        .json();
    (json.clone(), out_file(&dir, &json))
}

/// The MD5 of every decoded video frame, in order (ffmpeg's framemd5).
fn frame_md5s(path: &Path) -> Vec<String> {
    let args = ["-nostdin", "-v", "error", "-i", text(path), "-map", "0:v", "-f", "framemd5", "-"].map(OsStr::new);
    let out = tool("ffmpeg", &args, path.parent().expect("a directory"));
    out.status(0)
        .stdout()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit(',').next().unwrap().trim().to_owned())
        .collect()
}

/// ffprobe's SHA-256 of every video packet's data, in decode order.
fn packet_hashes(path: &Path) -> Vec<String> {
    let p = ffprobe_json(
        path,
        &["-select_streams", "v:0", "-show_data_hash", "sha256", "-show_entries", "packet=data_hash"],
    );
    p["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .map(|p| p["data_hash"].as_str().expect("hash").to_owned())
        .collect()
}

fn stream_duration(path: &Path, kind: &str) -> f64 {
    let p = ffprobe_json(path, &["-select_streams", kind, "-show_entries", "stream=duration"]);
    p["streams"][0]["duration"].as_str().expect("duration").parse().expect("a number")
}

#[test]
fn a_smart_clip_holds_exactly_the_frames_asked_and_copies_the_whole_groups_bit_for_bit() {
    let store = Store::new();
    let video = idr_mp4(&store);
    let (json, file) = smart(&store, &video.item.id, "frame:10", "frame:60");

    // The frame map: the partial groups at either end re-encoded, the whole group copied.
    assert_eq!(
        json["frame_map"],
        json!([{"first": 10, "last": 24, "how": "re-encoded"}, {"first": 25, "last": 49, "how": "copied"},
               {"first": 50, "last": 60, "how": "re-encoded"}]),
        "{json:#}"
    );
    assert_eq!((json["frames_copied"].as_u64(), json["frames_re_encoded"].as_u64()), (Some(25), Some(26)));

    // Exactly frames 10..60, each where it belongs, and nothing a decoder complains about.
    let want: Vec<Option<u32>> = (10..=60).map(Some).collect();
    assert_eq!(video.indices(&file), want, "the pictures of the smart clip");
    assert_eq!(decode_errors(&file), Vec::<String>::new(), "ffmpeg reports decode errors");

    // The copied frames decode to exactly the source's pixels, from exactly its packets.
    let (src_md5, out_md5) = (frame_md5s(&video.item.path), frame_md5s(&file));
    assert_eq!(out_md5.len(), 51);
    assert_eq!(out_md5[15..40], src_md5[25..50], "copied frames differ from the source's");
    let (src_pkts, out_pkts) = (packet_hashes(&video.item.path), packet_hashes(&file));
    assert_eq!(out_pkts.len(), 51);
    assert_eq!(out_pkts[15..40], src_pkts[25..50], "copied packets are not the source's, bit for bit");
    // The re-encoded ones are not copies (and are recorded as such).
    assert_ne!(out_md5[..15], src_md5[10..25]);

    // The audio, copied, covers the same span to within one AAC frame (1024 samples at 48 kHz).
    let (v, a) = (stream_duration(&file, "v:0"), stream_duration(&file, "a:0"));
    assert!((v - 51.0 / 25.0).abs() < 1e-6, "video lasts {v} s");
    assert!((a - v).abs() <= 1024.0 / 48_000.0, "audio {a} s against video {v} s");

    // The ledger holds the same frame map, `show` tells it, and the clip verifies.
    store
        .cmd(&["show", json["item"].as_str().unwrap()])
        .run()
        .status(0)
        .stdout_has("Clip      smart: frames 10..60")
        .stdout_has("frames 25..49 copied bit for bit")
        .stdout_has("frames 50..60 re-encoded");
    let show = store.cmd(&["--json", "show", json["item"].as_str().unwrap()]).run().status(0).json();
    let facts = show.to_string();
    assert!(facts.contains("\"frame_map\"") && facts.contains("re-encoded"), "show lacks the frame map: {show:#}");
    store.verify_ok();
}

#[test]
fn a_smart_clip_from_a_keyframe_to_the_end_of_a_group_is_copied_whole_and_says_so() {
    let store = Store::new();
    let video = idr_mp4(&store);
    let (json, file) = smart(&store, &video.item.id, "frame:25", "00:00:02.000");
    assert_eq!(json["frame_map"], json!([{"first": 25, "last": 49, "how": "copied"}]), "{json:#}");
    assert_eq!(json["encoder"], Value::Null);
    assert_eq!(frame_md5s(&file), frame_md5s(&video.item.path)[25..50]);
    // The copied packets' hash is the one a copy clip of the same frames records.
    let copy =
        store.cmd(&["--json", "clip", &video.item.id, "--from", "frame:25", "--to", "frame:49"]).run().status(0).json();
    let streams = copy["streams"].as_array().expect("streams");
    let video_stream = streams.iter().find(|s| s["kind"] == "video").expect("a video stream");
    assert_eq!(json["copied_packets_sha256"], video_stream["packets_sha256"], "{json:#} against {copy:#}");
}

#[test]
fn without_an_idr_picture_in_the_range_every_frame_is_re_encoded_and_the_map_says_so() {
    // Open groups (x264's open-gop): the keyframes after the first are recovery points, not IDR
    // pictures, so a copy may not start there; the clip is re-encoded throughout, and still exact.
    let store = Store::new();
    let (src, info) = fixture(&store, Fixture::H264Mp4);
    let open = store.work().join("cam_open_gop.mp4");
    let mut args = vec!["-i", text(&src)];
    args.extend(words("-fps_mode passthrough -c:v libx264 -preset veryfast -crf 28 -g 25 -bf 2"));
    args.extend(words("-x264-params scenecut=0:b-adapt=0:open-gop=1 -c:a copy"));
    ffmpeg(&store, &args, &open);
    let item = store.ingest_media(&open);
    let (json, file) = smart(&store, &item.id, "frame:10", "frame:60");
    assert_eq!(json["frame_map"], json!([{"first": 10, "last": 60, "how": "re-encoded"}]), "{json:#}");
    let want: Vec<Option<u32>> = (10..=60).map(Some).collect();
    let got = crate::support::decoded_frame_indices(&file, info.width as usize, info.height as usize);
    assert_eq!(got, want);
}

#[test]
fn a_smart_clip_of_intra_only_mjpeg_copies_exactly_the_frames_asked_in_its_own_container() {
    let store = Store::new();
    let (src, info) = fixture(&store, Fixture::MjpegAvi);
    let item = store.ingest_media(&src);
    let (json, file) = smart(&store, &item.id, "frame:5", "frame:20");
    assert_eq!(json["frame_map"], json!([{"first": 5, "last": 20, "how": "copied"}]), "{json:#}");
    assert!(file.extension().is_some_and(|e| e == "avi"), "{}", file.display());
    let want: Vec<Option<u32>> = (5..=20).map(Some).collect();
    assert_eq!(crate::support::decoded_frame_indices(&file, info.width as usize, info.height as usize), want);
}

#[test]
fn smart_mode_refuses_what_it_cannot_splice_with_exit_2_and_records_nothing() {
    let store = Store::new();
    // MPEG-2 with a partial group to re-encode: only H.264 is spliced.
    let ts = mpeg2_ts(&store, "dvr_ch03.ts", &[]);
    let (wav, _) = fixture(&store, Fixture::Wav);
    let audio = store.ingest_media(&wav);
    let (raw, _) = fixture(&store, Fixture::RawH264);
    let raw = store.ingest_media(&raw);
    let before = store.snapshot();
    let run = |item: &str, from: &str, to: &str| {
        store.cmd(&["clip", item, "--from", from, "--to", to, "--mode", "smart"]).run()
    };
    run(&ts.item.id, "frame:3", "frame:20").status(2).stderr_has("only for H.264").stderr_has("--mode exact");
    run(&audio.id, "0.5", "1.5").status(2).stderr_has("audio-only").stderr_has("copy mode");
    run(&raw.id, "frame:3", "frame:20").status(2).stderr_has("custody rewrap");
    store.assert_unchanged(&before);
    let _ = ts.frames;
}

#[test]
fn a_lossless_smart_clip_decodes_to_the_source_pixels_in_every_frame() {
    // With --lossless the re-encoded runs are x264 at qp 0: every frame of the clip, copied or
    // re-encoded, decodes to exactly the source's pixels.
    let store = Store::new();
    let video = idr_mp4(&store);
    let dir = store.work().join("lossless");
    let args = ["--json", "clip", &video.item.id, "--from", "frame:10", "--to", "frame:60", "--mode", "smart"];
    let json = store.cmd(&args).args(&["--lossless", "--out"]).arg(&dir).run().status(0).json();
    assert_eq!(json["frames_re_encoded"], 26, "{json:#}");
    let file = out_file(&dir, &json);
    assert_eq!(frame_md5s(&file), frame_md5s(&video.item.path)[10..61]);
}

#[test]
fn a_smart_clip_of_an_h264_transport_stream_carries_its_parameter_sets_in_the_stream() {
    // A DVR's MPEG-TS export: Annex B H.264 whose IDR pictures carry their SPS and PPS. The clip
    // stays a transport stream; the re-encoded runs carry theirs (under their own IDs) too.
    let store = Store::new();
    let video = idr_mp4(&store);
    let ts = store.work().join("dvr_ch02.ts");
    ffmpeg(&store, &["-i", text(&video.item.path), "-c", "copy", "-f", "mpegts"], &ts);
    let item = store.ingest_media(&ts);
    let (json, file) = smart(&store, &item.id, "frame:10", "frame:60");
    assert_eq!(
        json["frame_map"],
        json!([{"first": 10, "last": 24, "how": "re-encoded"}, {"first": 25, "last": 49, "how": "copied"},
               {"first": 50, "last": 60, "how": "re-encoded"}]),
        "{json:#}"
    );
    assert!(file.extension().is_some_and(|e| e == "ts"), "{}", file.display());
    let want: Vec<Option<u32>> = (10..=60).map(Some).collect();
    assert_eq!(video.indices(&file), want, "the pictures of the smart clip");
    assert_eq!(decode_errors(&file), Vec::<String>::new(), "ffmpeg reports decode errors");
    assert_eq!(frame_md5s(&file)[15..40], frame_md5s(&ts)[25..50], "copied frames differ from the source's");
}
