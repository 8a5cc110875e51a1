//! Damaged and unusual files (issue 15, group 2): a truncated MP4, a raw stream whose timing
//! information changes, a fragmented MP4 that states its duration as unknown, a raw stream with
//! damaged slices, an MP4 that states no timescale. Each gives what FFmpeg gives, or says
//! exactly why not.
//!
//! Provenance: every file is the synthetic H.264 fixture (each frame painted with its index) or
//! a stream generated here with the ffmpeg CLI, then cut, zeroed or patched here byte by byte as
//! a failing card, a damaged transfer or another muxer would leave it. Oracles: ffmpeg's
//! `framemd5` of the decoded pictures (one decoding thread, every frame passed through, times in
//! the stream's own time base), ffprobe's facts, and the frame-index band read from the pixels.

use std::ffi::OsStr;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use custody::media::synth::{Fixture, read_frame_index};
use serde_json::Value;

use crate::formats::{ffmpeg, fixture, text, words};
use crate::support::{Store, decode_errors, decoded_frame_indices, ffmpeg_stdout, ffprobe_json, tool};

// ---------------------------------------------------------------------------------------------
// Oracles.

/// One `framemd5` line: (pts, md5).
type Line = (String, String);

fn framemd5_lines(text: &str) -> Vec<Line> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            assert_eq!(f.len(), 6, "a framemd5 line: {l:?}");
            (f[2].to_owned(), f[5].to_owned())
        })
        .collect()
}

/// ffmpeg's list of every decoded picture of the first video stream, as docs/hash.md says to
/// make it: one decoding thread, every frame passed through, times in the stream's time base.
fn ffmpeg_frames(path: &Path) -> Vec<Line> {
    let args = words("-nostdin -v error -threads 1 -copyts -i");
    let tail = words("-map 0:v:0 -fps_mode passthrough -enc_time_base -1 -f framemd5 -");
    let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    all.push(path.as_os_str());
    all.extend(tail.iter().map(OsStr::new));
    // A file with no decodable frame makes ffmpeg fail after printing none.
    framemd5_lines(&tool("ffmpeg", &all, Path::new(".")).stdout())
}

/// ffmpeg's default `framemd5` (`ffmpeg -i FILE -map 0:v:0 -f framemd5 -`): its frame count.
fn ffmpeg_default_frame_count(path: &Path) -> usize {
    let args = [OsStr::new("-v"), OsStr::new("error"), OsStr::new("-i"), path.as_os_str()];
    let tail = words("-map 0:v:0 -f framemd5 -");
    let mut all = args.to_vec();
    all.extend(tail.iter().map(OsStr::new));
    framemd5_lines(&String::from_utf8(ffmpeg_stdout(&all)).expect("text")).len()
}

/// `custody hash --frames TARGET`, as (pts, md5) lines.
fn custody_frames(store: &Store, target: &str) -> Vec<Line> {
    framemd5_lines(&store.cmd(&["hash", "--frames", target]).run().status(0).stdout())
}

/// The frame index band of the still a `still --json` item names.
fn still_band(store: &Store, item: &Value) -> Option<u32> {
    let sha = item["sha256"].as_str().expect("sha256");
    let bytes = std::fs::read(store.object_path(sha)).expect("the still");
    let mut reader = png::Decoder::new(Cursor::new(bytes)).read_info().expect("a PNG");
    let mut rgb = vec![0; reader.output_buffer_size().expect("a sane size")];
    let frame = reader.next_frame(&mut rgb).expect("PNG data");
    let luma: Vec<u8> = rgb[..frame.buffer_size()]
        .chunks_exact(3)
        .map(|p| (0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])).round() as u8)
        .collect();
    let (w, h) = (frame.width as usize, frame.height as usize);
    read_frame_index(&luma, w, w, h)
}

/// `custody --json ingest FILE` into its own exhibit; returns the item's JSON.
fn ingest(store: &Store, path: &Path, item: &str) -> Value {
    let out = store.cmd(&["--json", "ingest", "--case", "24-7", "--item", item]).arg(path).run().status(0).json();
    out["items"][0].clone()
}

/// The text report of `custody show ITEM`.
fn shown(store: &Store, id: &str) -> String {
    store.cmd(&["show", id]).run().status(0).stdout()
}

// ---------------------------------------------------------------------------------------------
// Making damaged files.

/// The synthetic H.264 fixture (75 frames with B-frames, AAC audio) with its index first
/// (faststart) or last, as ffmpeg writes it.
fn h264_mp4(store: &Store, faststart: bool) -> PathBuf {
    let (src, _) = fixture(store, Fixture::H264Mp4);
    let out = store.work().join(if faststart { "moov_first.mp4" } else { "moov_last.mp4" });
    let mut args = vec!["-i", text(&src), "-map", "0", "-c", "copy"];
    if faststart {
        args.extend(["-movflags", "+faststart"]);
    }
    ffmpeg(store, &args, &out);
    out
}

/// A copy of `path` holding only its first `len` bytes, as a recording cut off or an
/// interrupted copy leaves it.
fn cut(path: &Path, len: usize, name: &str) -> PathBuf {
    let bytes = std::fs::read(path).expect("read");
    let out = path.with_file_name(name);
    std::fs::write(&out, &bytes[..len]).expect("write");
    out
}

/// The offset of the first `kind` box (its size field) in an ISO file.
fn box_at(bytes: &[u8], kind: &[u8; 4]) -> usize {
    bytes.windows(4).position(|w| w == kind).unwrap_or_else(|| panic!("no {:?} box", String::from_utf8_lossy(kind))) - 4
}

/// The offset of the timescale field of the `mvhd` or `mdhd` box at `at` (version 0 or 1).
fn timescale_field(bytes: &[u8], at: usize) -> usize {
    at + 12 + if bytes[at + 8] == 1 { 16 } else { 8 }
}

/// The packets of the first video stream: (byte position, size).
fn video_packets(path: &Path) -> Vec<(usize, usize)> {
    let json = ffprobe_json(path, &["-select_streams", "v:0", "-show_entries", "packet=pos,size"]);
    json["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .map(|p| {
            let n = |k: &str| p[k].as_str().and_then(|s| s.parse().ok()).expect("pos and size");
            (n("pos"), n("size"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. A truncated MP4.

#[test]
fn a_truncated_mp4_gives_the_frames_ffmpeg_decodes_and_says_it_is_truncated() {
    let store = Store::new();
    let whole = h264_mp4(&store, true);
    let size = std::fs::metadata(&whole).expect("size").len() as usize;
    let listed = ffprobe_json(&whole, &["-select_streams", "v:0", "-show_entries", "stream=nb_frames"])["streams"][0]
        ["nb_frames"]
        .as_str()
        .expect("nb_frames")
        .parse::<u64>()
        .expect("a count");
    for (n, fraction) in [(1, 0.3), (2, 0.55), (3, 0.9)] {
        let path = cut(&whole, (size as f64 * fraction) as usize, &format!("cut{n}.mp4"));
        let ffmpeg_lines = ffmpeg_frames(&path);
        let decoded = ffmpeg_lines.len();
        assert!(decoded > 0 && (decoded as u64) < listed, "ffmpeg decodes {decoded} of {listed} frames");

        // Ingest says how much of the video the file holds.
        let item = ingest(&store, &path, &n.to_string());
        let id = item["id"].as_str().expect("id");
        let video = &item["media"]["streams"][0];
        assert_eq!(video["truncated"], serde_json::json!({"listed": listed, "in_file": decoded}), "{item:#}");
        let summary = format!("the file holds {decoded} of the {listed} video frames the container lists");
        assert!(shown(&store, id).contains(&summary), "show lacks {summary:?}");

        // hash --frames lists what ffmpeg decodes, line for line.
        assert_eq!(custody_frames(&store, id), ffmpeg_lines, "{}", path.display());

        // Every frame that exists gives its own still; the one the file ends in does not exist.
        let bands = decoded_frame_indices(&path, 640, 360);
        let at: Vec<String> = (0..decoded).map(|f| format!("frame:{f}")).collect();
        let mut cmd = store.cmd(&["--json", "still", id]);
        for p in &at {
            cmd = cmd.args(&["--at", p]);
        }
        let stills = cmd.run().status(0).json();
        let shown_bands: Vec<Option<u32>> =
            stills["items"].as_array().expect("stills").iter().map(|s| still_band(&store, s)).collect();
        assert_eq!(shown_bands, bands, "stills of {}", path.display());
        let before = store.snapshot();
        store
            .cmd(&["still", id, "--at", &format!("frame:{decoded}")])
            .run()
            .status(2)
            .stderr_has(&format!("the video has {decoded} frames"));
        store.assert_unchanged(&before);

        // A copy clip of everything there is holds those frames.
        let clip = store
            .cmd(&["--json", "clip", id, "--from", "frame:0", "--to", &format!("frame:{}", decoded - 1)])
            .run()
            .status(0)
            .json();
        let clip_path = store.object_path(clip["sha256"].as_str().expect("sha256"));
        assert_eq!(decoded_frame_indices(&clip_path, 640, 360), bands, "the clip of {}", path.display());
    }
}

#[test]
fn an_mp4_cut_before_its_first_whole_frame_or_before_its_index_is_refused_as_ffmpeg_refuses_it() {
    let store = Store::new();
    // Index first, cut inside the first frame: the container lists every frame, none is whole.
    let whole = h264_mp4(&store, true);
    let (pos, size) = video_packets(&whole)[0];
    let path = cut(&whole, pos + size / 2, "first_frame_cut.mp4");
    assert_eq!(ffmpeg_frames(&path).len(), 0, "ffmpeg decodes nothing");
    let item = ingest(&store, &path, "1");
    let id = item["id"].as_str().expect("id");
    assert_eq!(item["media"]["streams"][0]["truncated"]["in_file"], 0, "{item:#}");
    let before = store.snapshot();
    store.cmd(&["still", id, "--at", "frame:0"]).run().status(2).stderr_has(
        "is truncated: its container lists 75 video frames, and the file ends before the first of them is whole",
    );
    store.assert_unchanged(&before);

    // Index last, cut anywhere in the media: there is no index, FFmpeg cannot open it at all, and
    // it is kept as evidence exactly as it is.
    let whole = h264_mp4(&store, false);
    let size = std::fs::metadata(&whole).expect("size").len() as usize;
    let path = cut(&whole, size / 2, "index_lost.mp4");
    let args = [OsStr::new("-v"), OsStr::new("error"), OsStr::new("-i"), path.as_os_str(), OsStr::new("-f")];
    let ffmpeg_run = tool("ffmpeg", &[&args[..], &[OsStr::new("null"), OsStr::new("-")]].concat(), store.work());
    assert_ne!(ffmpeg_run.code, Some(0), "ffmpeg opens a file without its index");
    let item = ingest(&store, &path, "2");
    assert_eq!(item["decodable"], false, "{item:#}");
}

// ---------------------------------------------------------------------------------------------
// 2. The frame rate of a raw stream whose timing information changes.

/// A raw H.264 stream at 20 fps, 10 s, an IDR picture and parameter sets every second, whose
/// first three seconds carry a sequence parameter set stating 13.75 fps (a damaged or
/// misconfigured camera's): the timing fields rewritten by `h264_metadata`, the rest as encoded.
fn raw_stream_with_damaged_timing(store: &Store) -> PathBuf {
    let good = store.work().join("good.h264");
    ffmpeg(store, &words("-f lavfi -i testsrc2=size=320x240:rate=20 -t 10 -c:v libx264 -g 20 -bf 0 -f h264"), &good);
    let bad = store.work().join("bad.h264");
    ffmpeg(store, &["-i", text(&good), "-c", "copy", "-bsf:v", "h264_metadata=tick_rate=55/2", "-f", "h264"], &bad);
    let sps = |bytes: &[u8]| -> Vec<usize> {
        bytes.windows(5).enumerate().filter(|(_, w)| *w == [0, 0, 0, 1, 0x67]).map(|(i, _)| i).collect()
    };
    let (good, bad) = (std::fs::read(&good).expect("good"), std::fs::read(&bad).expect("bad"));
    let (g, b) = (sps(&good), sps(&bad));
    assert_eq!((g.len(), b.len()), (10, 10), "one SPS per second");
    let out = store.work().join("timing_changes.h264");
    std::fs::write(&out, [&bad[..b[3]], &good[g[3]..]].concat()).expect("write");
    out
}

#[test]
fn a_raw_stream_whose_timing_changes_shows_the_rate_its_timeline_uses_and_ffprobes_average_beside_it() {
    let store = Store::new();
    let path = raw_stream_with_damaged_timing(&store);
    let stream = &ffprobe_json(&path, &["-show_entries", "stream=r_frame_rate,avg_frame_rate"])["streams"][0];
    assert_eq!((stream["r_frame_rate"].as_str(), stream["avg_frame_rate"].as_str()), (Some("20/1"), Some("59/4")));
    let item = ingest(&store, &path, "1");
    let id = item["id"].as_str().expect("id");
    let facts = &item["media"]["streams"][0];
    assert_eq!((facts["frame_rate"].as_str(), facts["avg_frame_rate"].as_str()), (Some("20/1"), Some("59/4")));
    let report = shown(&store, id);
    assert!(
        report.contains(
            "h264 320x240 20 fps (ffprobe's average frame rate: 14.75, from the first frames; the stream's own timing changes)"
        ),
        "{report}"
    );
    // The timeline: each frame after the durations of those before it, as ffprobe gives them
    // (13.75 fps for three seconds, then 20), as ffmpeg places them.
    let packets = ffprobe_json(&path, &["-show_entries", "packet=duration"]);
    let durations: Vec<i64> = packets["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .map(|p| p["duration"].as_i64().expect("a duration"))
        .collect();
    assert_eq!((durations.len(), durations[0], durations[199]), (200, 87272, 60000));
    let lines = ffmpeg_frames(&path);
    assert_eq!(lines.len(), 200);
    let stills = store.cmd(&["--json", "still", id, "--at", "frame:41", "--at", "frame:160"]).run().status(0).json();
    for (still, n) in stills["items"].as_array().expect("stills").iter().zip([41usize, 160]) {
        let pts: i64 = durations[..n].iter().sum();
        assert_eq!(still["facts"]["pts"], pts, "frame {n}: {still:#}");
        // ffmpeg adds the durations up in whole microseconds: within half of one a frame.
        let theirs: i64 = lines[n].0.parse().expect("pts");
        assert!((theirs - pts).abs() <= n as i64 * 6 / 10 + 1, "frame {n}: ffmpeg {theirs}, custody {pts}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. A fragmented MP4 that states its duration as unknown.

#[test]
fn a_fragmented_mp4_stating_an_unknown_duration_lasts_what_its_packets_span() {
    let store = Store::new();
    for (n, flags) in [(1, "frag_keyframe+empty_moov"), (2, "frag_keyframe+empty_moov+default_base_moof")] {
        let made = store.work().join(format!("frag{n}.mp4"));
        ffmpeg(
            &store,
            &[
                &words("-f lavfi -i testsrc2=size=320x240:rate=30000/1001 -t 1 -c:v libx264 -g 30 -movflags")[..],
                &[flags],
            ]
            .concat(),
            &made,
        );
        let probed = |p: &Path| ffprobe_json(p, &["-show_entries", "format=duration"])["format"]["duration"].clone();
        assert_eq!(probed(&made), "1.001000", "ffmpeg's own fragmented file");
        // Muxers that write the header before they know the length state the duration as
        // "unknown", all ones (ISO/IEC 14496-12), in the movie and the media header.
        let mut bytes = std::fs::read(&made).expect("read");
        for kind in [b"mvhd", b"mdhd"] {
            let at = box_at(&bytes, kind);
            let field = timescale_field(&bytes, at) + 4;
            bytes[field..field + 4].copy_from_slice(&[0xff; 4]);
        }
        let path = store.work().join(format!("frag{n}_unknown.mp4"));
        std::fs::write(&path, &bytes).expect("write");
        // FFmpeg reads all ones as a number: 2^32 - 1 ticks of 1/30000 s.
        assert_eq!(probed(&path), "143165.576500");

        let item = ingest(&store, &path, &n.to_string());
        assert_eq!(item["media"]["duration_us"], 1_001_000, "{item:#}");
        assert_eq!(item["media"]["duration_measured"], true);
        let report = shown(&store, item["id"].as_str().expect("id"));
        assert!(
            report.contains("00:00:01.001, measured from the packets: the container states its duration as unknown"),
            "{report}"
        );
        assert!(!report.contains("39:46"), "{report}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. hash --frames and stills on damaged streams.

/// A raw H.264 stream (20 fps, B-frames) with 400 bytes zeroed in the middle of every fifth
/// slice from the 6th on, as a failing card leaves one.
fn raw_stream_with_damaged_slices(store: &Store) -> PathBuf {
    let good = store.work().join("slices.h264");
    ffmpeg(store, &words("-f lavfi -i testsrc2=size=320x240:rate=20 -t 5 -c:v libx264 -g 40 -bf 3 -f h264"), &good);
    let mut bytes = std::fs::read(&good).expect("read");
    let starts: Vec<usize> =
        bytes.windows(4).enumerate().filter(|(_, w)| w[..3] == [0, 0, 1]).map(|(i, _)| i).collect();
    let slices: Vec<(usize, usize)> =
        starts.windows(2).map(|w| (w[0], w[1])).filter(|&(s, _)| matches!(bytes[s + 3] & 0x1f, 1 | 5)).collect();
    for &(start, end) in slices.iter().skip(5).step_by(5) {
        let mid = start + (end - start) / 2;
        let to = (mid + 400).min(end);
        bytes[mid..to].fill(0);
    }
    let out = store.work().join("damaged_slices.h264");
    std::fs::write(&out, bytes).expect("write");
    out
}

#[test]
fn hash_frames_of_a_raw_stream_with_damaged_slices_lists_what_ffmpeg_decodes_line_for_line() {
    let store = Store::new();
    let path = raw_stream_with_damaged_slices(&store);
    let lines = ffmpeg_frames(&path);
    assert!(lines.iter().all(|(pts, _)| pts != "NOPTS"), "ffmpeg times every frame");
    assert_eq!(custody_frames(&store, text(&path)), lines, "a file");
    let item = ingest(&store, &path, "1");
    let id = item["id"].as_str().expect("id");
    assert_eq!(custody_frames(&store, id), lines, "an item");
    // The pictures decoded with errors concealed are flagged in --json.
    let json = store.cmd(&["--json", "hash", "--frames", id]).run().status(0).json();
    let corrupt = json["frames"].as_array().expect("frames").iter().filter(|f| f["corrupt"] == true).count();
    assert!(corrupt > 0 && !decode_errors(&path).is_empty(), "{corrupt} frames flagged");
}

#[test]
fn hash_frames_lists_every_decoded_frame_where_ffmpegs_default_command_drops_those_whose_time_goes_back() {
    let store = Store::new();
    let ts = store.work().join("camera.ts");
    ffmpeg(&store, &words("-f lavfi -i testsrc2=size=320x240:rate=20 -t 5 -c:v libx264 -g 40 -bf 2 -f mpegts"), &ts);
    // One PES header's timestamp damaged: PTS and DTS far in the future, then back to normal.
    let mut bytes = std::fs::read(&ts).expect("read");
    let pes: Vec<usize> = (0..bytes.len() / 188)
        .map(|p| p * 188)
        .filter(|&p| bytes[p + 1] & 0x40 != 0)
        .filter_map(|p| {
            let off = p + 4 + if bytes[p + 3] & 0x20 != 0 { 1 + bytes[p + 4] as usize } else { 0 };
            (bytes[off..off + 4] == [0, 0, 1, 0xe0]).then_some(off)
        })
        .collect();
    let pts = pes[10] + 9;
    bytes[pts + 1] ^= 0x40;
    let path = store.work().join("damaged_pts.ts");
    std::fs::write(&path, bytes).expect("write");

    let lines = ffmpeg_frames(&path);
    assert_eq!(lines.len(), 100, "every frame decodes");
    assert!(ffmpeg_default_frame_count(&path) < 100, "ffmpeg's default command drops frames here");
    let ours = custody_frames(&store, text(&path));
    let md5s = |l: &[Line]| l.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>();
    // ffmpeg's command line rewrites the timestamps that go back; the pictures are the same.
    assert_eq!(md5s(&ours), md5s(&lines));
}

#[test]
fn a_still_of_a_frame_whose_packet_does_not_decode_is_refused_never_replaced_by_the_next_frame() {
    let store = Store::new();
    let whole = h264_mp4(&store, true);
    // Zero the whole packet of a frame (a B-frame, by decode position 6).
    let mut bytes = std::fs::read(&whole).expect("read");
    let (pos, size) = video_packets(&whole)[6];
    bytes[pos..pos + size].fill(0);
    let path = store.work().join("zeroed_frame.mp4");
    std::fs::write(&path, bytes).expect("write");
    // ffmpeg decodes every frame but that one (frames are 512 ticks apart, from 0).
    let lines = ffmpeg_frames(&path);
    let times: Vec<i64> = lines.iter().map(|(pts, _)| pts.parse().expect("pts")).collect();
    assert_eq!(times.len(), 74, "{times:?}");
    let missing = (0..75i64).find(|n| !times.contains(&(n * 512))).expect("one frame does not decode");
    let bands = decoded_frame_indices(&path, 640, 360);

    let item = ingest(&store, &path, "1");
    let id = item["id"].as_str().expect("id");
    let before = store.snapshot();
    store
        .cmd(&["still", id, "--at", &format!("frame:{missing}")])
        .run()
        .status(2)
        .stderr_has(&format!("frame {missing} ("))
        .stderr_has("does not decode");
    store.assert_unchanged(&before);
    // The next frame is that frame, as ffmpeg decodes it (its picture may borrow from others).
    let next = missing + 1;
    let stills = store.cmd(&["--json", "still", id, "--at", &format!("frame:{next}")]).run().status(0).json();
    let at = times.iter().position(|&t| t == next * 512).expect("decoded");
    assert_eq!(stills["items"][0]["facts"]["pts"], next * 512);
    assert_eq!(still_band(&store, &stills["items"][0]), bands[at]);
}

// ---------------------------------------------------------------------------------------------
// 5. An MP4 that states no timescale.

#[test]
fn an_mp4_stating_no_timescale_has_its_frames_hashed_as_ffmpeg_decodes_them_and_no_times_placed_on_them() {
    let store = Store::new();
    let made = store.work().join("made.mp4");
    ffmpeg(
        &store,
        &words("-f lavfi -i testsrc2=size=320x240:rate=25 -t 1 -c:v libx264 -g 25 -bf 0 -use_editlist 0"),
        &made,
    );
    let mut bytes = std::fs::read(&made).expect("read");
    let field = timescale_field(&bytes, box_at(&bytes, b"mdhd"));
    assert_eq!(bytes[field..field + 4], 12800u32.to_be_bytes(), "the media timescale");
    bytes[field..field + 4].fill(0);
    let path = store.work().join("no_timescale.mp4");
    std::fs::write(&path, &bytes).expect("write");
    // FFmpeg decodes every frame and counts each tick as a second: frames 512 s apart.
    let lines = ffmpeg_frames(&path);
    assert_eq!(lines.len(), 25);
    assert_eq!((lines[1].0.as_str(), lines[24].0.as_str()), ("512", "12288"));

    let item = ingest(&store, &path, "1");
    let id = item["id"].as_str().expect("id");
    assert_eq!(item["media"]["streams"][0]["timescale_missing"], true, "{item:#}");
    let report = shown(&store, id);
    assert!(
        report.contains("h264 320x240 (no timescale: the container states 0, so its times are unknown)"),
        "{report}"
    );
    assert_eq!(custody_frames(&store, id), lines, "hash --frames");
    let before = store.snapshot();
    for args in
        [&["still", id, "--at", "frame:3"][..], &["clip", id, "--from", "frame:0", "--to", "frame:9"], &["rewrap", id]]
    {
        store.cmd(args).run().status(2).stderr_has("the container states no timescale for its video");
    }
    store.assert_unchanged(&before);
}
