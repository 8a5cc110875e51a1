//! `clip --mode exact`: exactly the frames asked, re-encoded, with the audio cut to match.
//! Oracles: the frame-index band read from ffmpeg's decode, and ffprobe's durations.

use custody::media::synth::Fixture;
use serde_json::Value;

use crate::support::{Store, decoded_frame_indices, ffprobe_json};

fn exact(store: &Store, item: &str, from: &str, to: &str, extra: &[&str]) -> (Value, std::path::PathBuf) {
    let dir = store.work().join("exact");
    let mut args = vec!["--json", "clip", item, "--from", from, "--to", to, "--mode", "exact"];
    args.extend_from_slice(extra);
    args.push("--out");
    let json = store.cmd(&args).arg(&dir).run().status(0).json();
    let name = json["name"].as_str().expect("name").rsplit('/').next().unwrap().to_owned();
    (json, dir.join(name))
}

fn seconds(v: &Value) -> f64 {
    v.as_str().expect("a duration").parse().expect("seconds")
}

#[test]
fn an_exact_clip_from_frame_n_to_frame_m_holds_exactly_frames_n_to_m() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let (json, file) = exact(&store, &item.id, "frame:30", "frame:60", &[]);
    assert_eq!(json["exact"], true);
    assert_eq!(json["produced"]["first_frame"], 30);
    assert_eq!(json["produced"]["last_frame"], 60);
    let got = decoded_frame_indices(&file, item.info().width as usize, item.info().height as usize);
    let want: Vec<Option<u32>> = (30..=60).map(Some).collect();
    assert_eq!(got, want, "the clip's frames, by the index painted into each");
}

#[test]
fn an_exact_clip_keeps_the_audio_in_sync_and_the_same_length_as_the_video() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let (_, file) = exact(&store, &item.id, "00:00:00.500", "00:00:02.000", &[]);
    let probe = ffprobe_json(&file, &["-show_entries", "stream=codec_type,duration,start_time"]);
    let streams = probe["streams"].as_array().expect("streams");
    let video = streams.iter().find(|s| s["codec_type"] == "video").expect("video");
    let audio = streams.iter().find(|s| s["codec_type"] == "audio").expect("audio");
    // The frame on screen at 0.5 s is frame 12 (0.48 s); 2.0 s is frame 50's start, so the clip
    // ends with frame 49: 38 frames, 1.52 s.
    assert!((seconds(&video["duration"]) - 1.52).abs() < 0.001, "video {video:#}");
    let one_aac_frame = 1024.0 / 48000.0;
    assert!((seconds(&audio["duration"]) - 1.52).abs() <= one_aac_frame, "audio {audio:#}");
    assert!((seconds(&audio["start_time"]) - seconds(&video["start_time"])).abs() <= one_aac_frame, "start {probe:#}");
}

#[test]
fn a_lossless_exact_clip_decodes_to_the_sources_pixels() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let (json, file) = exact(&store, &item.id, "frame:10", "frame:14", &["--lossless"]);
    assert!(json["encoding"]["encoder"].as_str().unwrap().contains("lossless"), "{json:#}");
    let frames = |path: &std::path::Path, select: &str| {
        crate::support::ffmpeg_read(path, &["-vf", select, "-vsync", "0", "-pix_fmt", "yuv420p", "-f", "rawvideo", "-"])
    };
    let source = frames(&item.path, "select=between(n\\,10\\,14)");
    let clip = frames(&file, "null");
    assert_eq!(clip.len(), source.len(), "five frames each");
    assert!(clip == source, "a lossless clip must decode to exactly the source's pixels");
}

#[test]
fn crf_on_an_exact_audio_clip_and_on_a_copy_clip_are_refused() {
    let store = Store::new();
    let wav = store.ingest_fixture(Fixture::Wav);
    let before = store.snapshot();
    store
        .cmd(&["clip", &wav.id, "--from", "1", "--to", "2", "--mode", "exact", "--crf", "10"])
        .run()
        .status(2)
        .stderr_has("decoded samples");
    let video = store.ingest_fixture(Fixture::H264Mp4);
    let before_video = store.snapshot();
    store
        .cmd(&["clip", &video.id, "--from", "1", "--to", "2", "--crf", "10"])
        .run()
        .status(2)
        .stderr_has("--mode exact");
    store.assert_unchanged(&before_video);
    let _ = before;
}
