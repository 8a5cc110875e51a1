//! `custody clip` (stream copy): the clip decodes cleanly, holds the frames it says it holds
//! (read back from the frame-index band), its packets are the source's bit for bit, audio stays
//! in sync, raw DVR streams get real timestamps; bad requests record nothing.

use std::path::{Path, PathBuf};

use custody::media::synth::Fixture;
use serde_json::Value;

use crate::support::{Ingested, Output, Store, decode_errors, decoded_frame_indices, ffmpeg_read, ffprobe_json};

/// A clip made by `custody --json clip ITEM --from A --to B --out DIR`.
struct Clip {
    out: Output,
    json: Value,
    /// The copy written by `--out`.
    file: PathBuf,
}

impl Clip {
    /// The produced range (first, last), both included.
    fn produced(&self) -> (u64, u64) {
        let p = &self.json["produced"];
        (p["first_frame"].as_u64().expect("first_frame"), p["last_frame"].as_u64().expect("last_frame"))
    }

    fn requested(&self) -> (u64, u64) {
        let p = &self.json["requested"];
        (p["first_frame"].as_u64().expect("first_frame"), p["last_frame"].as_u64().expect("last_frame"))
    }
}

#[track_caller]
fn clip(store: &Store, item: &str, from: &str, to: &str) -> Clip {
    let dir = store.work().join("clips");
    let out = store.cmd(&["--json", "clip", item, "--from", from, "--to", to, "--out"]).arg(&dir).run();
    let json = out.status(0).json();
    let name = json["name"].as_str().unwrap_or_else(|| panic!("no name: {json:#}")).rsplit('/').next().unwrap();
    let file = dir.join(name);
    assert!(file.is_file(), "--out did not write {}", file.display());
    let sha = json["sha256"].as_str().expect("sha256");
    assert!(std::fs::read(&file).unwrap() == std::fs::read(store.object_path(sha)).unwrap(), "--out copy differs");
    Clip { out, json, file }
}

/// Frames of the first video stream counted by decoding (ffprobe -count_frames).
fn decoded_frame_count(path: &Path) -> u64 {
    let p = ffprobe_json(path, &["-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames"]);
    p["streams"][0]["nb_read_frames"].as_str().expect("nb_read_frames").parse().expect("a count")
}

/// Key-frame flags of the video frames in presentation order.
fn key_frames(path: &Path) -> Vec<bool> {
    let p = ffprobe_json(path, &["-select_streams", "v:0", "-show_entries", "frame=key_frame"]);
    p["frames"].as_array().expect("frames").iter().map(|f| f["key_frame"] == 1).collect()
}

/// One packet as `framemd5` lists it: (pts, md5), in decode order, and the time base.
fn packet_md5s(path: &Path, map: &str) -> (Vec<(i64, String)>, (i64, i64)) {
    let out = ffmpeg_read(path, &["-map", map, "-c", "copy", "-f", "framemd5", "-"]);
    let text = String::from_utf8(out).expect("utf-8");
    let mut tb = None;
    let mut packets = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#tb 0: ") {
            let (n, d) = rest.trim().split_once('/').expect("a/b");
            tb = Some((n.parse().unwrap(), d.parse().unwrap()));
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            packets.push((f[2].parse().expect("pts"), f[5].to_owned()));
        }
    }
    (packets, tb.expect("a #tb line"))
}

/// Packets of one stream: (pts_time, duration_time) in file order, as ffprobe reads them.
fn packet_times(path: &Path, stream: &str) -> Vec<(f64, f64)> {
    let p = ffprobe_json(path, &["-select_streams", stream, "-show_entries", "packet=pts_time,duration_time"]);
    let num = |v: &Value| v.as_str().and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN);
    p["packets"].as_array().expect("packets").iter().map(|k| (num(&k["pts_time"]), num(&k["duration_time"]))).collect()
}

/// The frame indices a clip's pictures carry, decoded by ffmpeg.
fn clip_indices(clip: &Clip, item: &Ingested) -> Vec<Option<u32>> {
    decoded_frame_indices(&clip.file, item.info().width as usize, item.info().height as usize)
}

#[test]
fn a_copy_clip_of_the_h264_mp4_with_b_frames_starts_at_a_keyframe_says_so_and_holds_the_frames_it_states() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let clip = clip(&store, &item.id, "frame:30", "frame:60");
    let (first, last) = clip.produced();
    assert_eq!(clip.requested(), (30, 60));
    // Starts at the last keyframe at or before frame 30, and holds all of 30..=60.
    let keys = key_frames(&item.path);
    let key = (0..=30).rev().find(|&n| keys[n]).expect("a keyframe");
    assert_eq!(first, key as u64, "the clip should start at keyframe {key}: {:#}", clip.json);
    assert!(last >= 60, "frame 60 is missing: {:#}", clip.json);
    assert_eq!(clip.json["exact"], false);
    clip.out.stderr_has("warning").stderr_has(&format!("frames {first}..{last}")).stderr_has("frames 30..60");

    // Decodes cleanly. Cutting at this non-IDR keyframe makes FFmpeg's h264 decoder log
    // "mmco: unref short failure" for references from before the cut, as it does for
    // `ffmpeg -ss 1 -c copy`; the pictures are unaffected (checked below), so it is allowed.
    let errors: Vec<String> =
        decode_errors(&clip.file).into_iter().filter(|l| !l.contains("mmco: unref short failure")).collect();
    assert_eq!(errors, Vec::<String>::new(), "ffmpeg reports errors decoding the clip");
    assert_eq!(decoded_frame_count(&clip.file), last - first + 1, "ffprobe's frame count vs produced {first}..{last}");
    let want: Vec<Option<u32>> = (first as u32..=last as u32).map(Some).collect();
    assert_eq!(clip_indices(&clip, &item), want, "the clip's pictures, in order");
}

#[test]
fn a_copy_clips_video_packets_are_the_sources_bit_for_bit() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let clip = clip(&store, &item.id, "frame:30", "frame:60");
    let (first, last) = clip.produced();
    let (clip_packets, _) = packet_md5s(&clip.file, "0:v");
    let (src_packets, src_tb) = packet_md5s(&item.path, "0:v");
    assert_eq!(clip_packets.len() as u64, last - first + 1, "one packet per frame");
    // The source's packets in decode order, from the keyframe's packet on.
    let probe = ffprobe_json(&item.path, &["-select_streams", "v:0", "-show_entries", "stream=time_base:frame=pts"]);
    let key_pts = probe["frames"][first as usize]["pts"].as_i64().expect("pts");
    assert_eq!(probe["streams"][0]["time_base"], format!("{}/{}", src_tb.0, src_tb.1));
    let start = src_packets.iter().position(|p| p.0 == key_pts).expect("the keyframe's packet");
    let want: Vec<&str> = src_packets[start..start + clip_packets.len()].iter().map(|p| p.1.as_str()).collect();
    let got: Vec<&str> = clip_packets.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(got, want, "per-packet MD5s of the clip vs the source from its packet {start}");
}

#[test]
fn a_copy_clips_audio_stays_in_sync_with_its_video() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let clip = clip(&store, &item.id, "frame:30", "frame:60");
    let (first, _) = clip.produced();
    let aac_frame = 1024.0 / 48_000.0;

    let video_start = packet_times(&clip.file, "v:0").iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let audio = packet_times(&clip.file, "a:0");
    assert!(!audio.is_empty(), "the clip has no audio");
    let audio_start = audio[0].0;
    assert!(
        (audio_start - video_start).abs() <= aac_frame,
        "audio starts at {audio_start} s, video at {video_start} s: more than one AAC frame apart"
    );

    // The same sound at the same picture: the clip's first audio packet is a source packet
    // (found by its MD5s) that sat as far from the clip's first frame as it does in the clip.
    let (clip_md5, _) = packet_md5s(&clip.file, "0:a");
    let (src_md5, _) = packet_md5s(&item.path, "0:a");
    let head: Vec<&String> = clip_md5.iter().take(4).map(|p| &p.1).collect();
    let at = (0..src_md5.len() - head.len())
        .find(|&i| src_md5[i..i + head.len()].iter().map(|p| &p.1).eq(head.iter().copied()))
        .expect("the clip's audio packets in the source");
    let src_audio = packet_times(&item.path, "a:0");
    let (num, den) = item.info().frame_times[first as usize];
    let src_frame_time = num as f64 / den as f64;
    let in_source = src_audio[at].0 - src_frame_time;
    let in_clip = audio_start - video_start;
    // MP4 edit lists count in the movie time scale (1/1000 s): allow one millisecond.
    assert!(
        (in_source - in_clip).abs() <= 0.001 + 1e-9,
        "audio packet {at} starts {in_source} s after frame {first} in the source but {in_clip} s in the clip"
    );
}

#[test]
fn a_copy_clip_of_a_raw_h264_dvr_stream_is_an_mp4_with_regular_timestamps() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::RawH264);
    let clip = clip(&store, &item.id, "frame:17", "frame:25");
    let (first, last) = clip.produced();
    assert_eq!((first, last), (15, 25), "keyframes every 15 frames: {:#}", clip.json);
    let format = ffprobe_json(&clip.file, &["-show_format"]);
    assert!(format["format"]["format_name"].as_str().unwrap_or("").contains("mp4"), "{format:#}");

    let probe = ffprobe_json(&clip.file, &["-select_streams", "v:0", "-show_entries", "stream=time_base:frame=pts"]);
    let (num, den) = {
        let tb = probe["streams"][0]["time_base"].as_str().expect("time base");
        let (n, d) = tb.split_once('/').expect("a/b");
        (n.parse::<i64>().unwrap(), d.parse::<i64>().unwrap())
    };
    let pts: Vec<i64> = probe["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| f["pts"].as_i64().unwrap_or_else(|| panic!("a frame without pts: {f}")))
        .collect();
    assert_eq!(pts.len() as u64, last - first + 1, "frame count");
    assert_eq!(pts[0], 0, "the clip starts at zero");
    for (i, w) in pts.windows(2).enumerate() {
        // (w1 - w0) * num / den == 1/15 s
        assert_eq!((w[1] - w[0]) * num * 15, den, "frames {i} and {}: pts {} -> {} at {num}/{den}", i + 1, w[0], w[1]);
    }
    assert_eq!(decoded_frame_count(&clip.file), last - first + 1);
    let want: Vec<Option<u32>> = (first as u32..=last as u32).map(Some).collect();
    assert_eq!(clip_indices(&clip, &item), want, "the clip's pictures, in order");
}

#[test]
fn a_copy_clip_of_the_mjpeg_avi_is_exact_and_does_not_warn() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::MjpegAvi);
    let clip = clip(&store, &item.id, "frame:5", "frame:20");
    assert_eq!(clip.produced(), (5, 20), "every MJPEG frame is a keyframe: {:#}", clip.json);
    assert_eq!(clip.requested(), (5, 20));
    assert_eq!(clip.json["exact"], true);
    clip.out.stderr_lacks("warning");
    assert_eq!(decoded_frame_count(&clip.file), 16);
    let want: Vec<Option<u32>> = (5..=20).map(Some).collect();
    assert_eq!(clip_indices(&clip, &item), want);
}

#[test]

fn a_copy_clip_of_the_mjpeg_avi_keeps_the_sources_frame_timing() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::MjpegAvi);
    let clip = clip(&store, &item.id, "frame:5", "frame:20");
    let probe = ffprobe_json(&clip.file, &["-select_streams", "v:0", "-show_entries", "stream=time_base:frame=pts"]);
    let tb = probe["streams"][0]["time_base"].as_str().expect("time base");
    let (num, den) = tb.split_once('/').map(|(n, d)| (n.parse::<i64>().unwrap(), d.parse::<i64>().unwrap())).unwrap();
    let pts: Vec<i64> =
        probe["frames"].as_array().expect("frames").iter().map(|f| f["pts"].as_i64().expect("pts")).collect();
    // Frame i of the clip is on screen from i/15 s, as frame 5+i was 1/15 s apart in the source.
    let want: Vec<String> = (0..16).map(|i| format!("{i}/15 s")).collect();
    let got: Vec<String> = pts
        .iter()
        .map(
            |&p| if (p * num * 15) % den == 0 { format!("{}/15 s", p * num * 15 / den) } else { format!("{p} x {tb}") },
        )
        .collect();
    assert_eq!(got, want, "frame times of the clip");
}

/// Decode the first audio stream with ffmpeg as 16-bit PCM samples.
fn pcm_s16(path: &Path) -> Vec<i16> {
    let raw = ffmpeg_read(path, &["-map", "0:a:0", "-f", "s16le", "-acodec", "pcm_s16le", "-"]);
    raw.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

#[test]
fn a_copy_clip_of_a_wav_holds_exactly_the_seconds_asked() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::Wav);
    let clip = clip(&store, &item.id, "1", "2");
    let format = ffprobe_json(&clip.file, &["-show_format"]);
    assert_eq!(format["format"]["format_name"], "wav", "{format:#}");
    let rate = item.info().audio_sample_rate as usize;

    // The clip's samples are the source's, from 1 s to 2 s exactly: PCM packets are split.
    let source = pcm_s16(&item.path);
    let samples = pcm_s16(&clip.file);
    assert_eq!(samples.len(), rate, "one second of samples");
    assert!(source[rate..2 * rate] == samples[..], "the clip's samples differ from the source's 1 s..2 s");
}

/// `custody clip ITEM ARGS…` must exit 2, saying `why`, and change nothing.
#[track_caller]
fn assert_refused(store: &Store, item: &str, args: &[&str], why: &str) {
    let before = store.snapshot();
    store.cmd(&["clip", item]).args(args).run().status(2).stderr_has(why);
    store.assert_unchanged(&before);
}

#[test]
fn a_frame_position_on_an_audio_only_item_exits_2_recording_nothing() {
    let store = Store::new();
    let wav = store.ingest_fixture(Fixture::Wav);
    assert_refused(&store, &wav.id, &["--from", "frame:3", "--to", "2"], "audio-only");
}

#[test]
fn a_backwards_empty_or_out_of_range_clip_or_one_of_an_undecodable_blob_exits_2_recording_nothing() {
    let store = Store::new();
    let video = store.ingest_fixture(Fixture::H264Mp4);
    let blob = store.ingest_fixture(Fixture::Proprietary);
    let id = video.id.as_str();
    assert_refused(&store, id, &["--from", "2", "--to", "1"], "not after --from");
    assert_refused(&store, id, &["--from", "frame:40", "--to", "frame:20"], "before --from");
    assert_refused(&store, id, &["--from", "1", "--to", "1"], "not after --from");
    assert_refused(&store, id, &["--from", "frame:10", "--to", "frame:75"], "past the end");
    assert_refused(&store, id, &["--from", "frame:75", "--to", "frame:80"], "past the end");
    assert_refused(&store, id, &["--from", "1", "--to", "00:00:04"], "outside the recording");
    assert_refused(&store, id, &["--from", "00:00:03.000", "--to", "00:00:03.500"], "outside the recording");
    assert_refused(&store, &blob.id, &["--from", "0", "--to", "1"], "FFmpeg cannot read it");
}

#[test]
fn every_derived_command_refuses_an_item_whose_object_was_altered_exit_1_recording_nothing() {
    let store = Store::new();
    let video = store.ingest_fixture(Fixture::H264Mp4);
    let id = video.id.as_str();
    let cached_index = store.path().join("cache").join("frames").join(crate::support::sha256sum(&video.path));
    store.flip_object_byte(&crate::support::sha256sum(&video.path));
    let before = store.snapshot();
    let attempts: [&[&str]; 6] = [
        &["clip", id, "--from", "frame:10", "--to", "frame:40"],
        &["clip", id, "--from", "frame:10", "--to", "frame:40", "--mode", "exact"],
        &["clip", id, "--from", "frame:10", "--to", "frame:40", "--mode", "smart"],
        &["still", id, "--at", "frame:20"],
        &["rewrap", id],
        &["hash", "--frames", id],
    ];
    for args in attempts {
        store.cmd(args).run().status(1).stderr_has(id).stderr_has("altered").stderr_has("custody verify");
        store.assert_unchanged(&before);
        // The frame index read from the altered bytes must not outlive the refusal: it could
        // misplace frames once the object is restored from a backup.
        assert!(!cached_index.exists(), "{args:?} left a frame index of the altered object in the cache");
    }
}

#[test]
fn a_clip_names_and_records_the_sources_streams_it_does_not_hold() {
    let store = Store::new();
    let dir = store.work().join("subtitled");
    crate::support::media(Fixture::H264Mp4, &dir.join("plain.mp4"));
    std::fs::write(dir.join("subs.srt"), "1\n00:00:00,000 --> 00:00:02,500\nSUSPECT ENTERS\n").unwrap();
    let args = ["-v", "error", "-i", "plain.mp4", "-i", "subs.srt", "-map", "0", "-map", "1", "-c", "copy", "-c:s"];
    let args: Vec<&std::ffi::OsStr> =
        args.iter().chain(&["mov_text", "-y", "subtitled.mp4"]).map(std::ffi::OsStr::new).collect();
    crate::support::tool("ffmpeg", &args, &dir).status(0);
    let video = store.ingest_media(&dir.join("subtitled.mp4"));
    let probe = ffprobe_json(&dir.join("subtitled.mp4"), &["-show_entries", "stream=index,codec_type"]);
    let subtitle = probe["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .find(|s| s["codec_type"] == "subtitle")
        .and_then(|s| s["index"].as_u64())
        .expect("the fixture has a subtitle stream");

    // A copy clip copies subtitles along with video and audio: nothing left out. The cue on
    // screen when the clip starts (0 s to 2.5 s in the source; the clip starts at a keyframe
    // after 0 s) is carried, trimmed to the clip.
    let copy = store.cmd(&["--json", "clip", &video.id, "--from", "frame:30", "--to", "frame:60"]).run();
    copy.status(0).stdout_lacks("not in the clip");
    let json = copy.json();
    assert_eq!(json["left_out"], serde_json::json!([]), "{json:#}");
    let first = json["produced"]["first_frame"].as_u64().expect("first frame");
    assert!(first > 0 && first <= 30, "the clip must start after the cue does: {json:#}");
    let clip = store.object_path(json["sha256"].as_str().expect("sha256"));
    let srt = String::from_utf8(ffmpeg_read(&clip, &["-map", "0:s", "-f", "srt", "-"])).expect("UTF-8 subtitles");
    assert!(srt.contains("SUSPECT ENTERS"), "the cue on screen was not carried into the copy clip:\n{srt}");
    assert!(srt.contains("00:00:00,000 --> "), "the carried cue does not start with the clip:\n{srt}");
    assert!(!srt.contains("--> 00:00:02,500"), "the carried cue keeps its source end time:\n{srt}");

    // Frame-exact clips carry video and audio only, and say so.
    for mode in ["exact", "smart"] {
        let out = store.cmd(&["clip", &video.id, "--from", "frame:10", "--to", "frame:40", "--mode", mode]).run();
        out.status(0).stdout_has(&format!("not in the clip: stream {subtitle} subtitle (mov_text)"));
        let json = store
            .cmd(&["--json", "clip", &video.id, "--from", "frame:11", "--to", "frame:41", "--mode", mode])
            .run()
            .status(0)
            .json();
        assert_eq!(
            json["left_out"],
            serde_json::json!([{"stream": subtitle, "kind": "subtitle", "codec": "mov_text"}])
        );
        let log = store.cmd(&["--json", "log", &video.id]).run().status(0).json();
        let seq = &json["head"]["seq"];
        let recorded = log["events"].as_array().unwrap().iter().find(|e| &e["seq"] == seq).cloned();
        let recorded = recorded.unwrap_or_else(|| panic!("event {seq} not in the item's log: {log:#}"));
        assert_eq!(recorded["outputs"][0]["left_out"], json["left_out"], "{mode}: the event records it");
        let clip = json["item"].as_str().expect("the clip's item");
        store.cmd(&["show", clip]).run().status(0).stdout_has(&format!("not in the clip: stream {subtitle} subtitle"));
    }
}
