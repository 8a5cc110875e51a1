//! Defects found in use on camera files (issue 15, item 1): the playback copy, `hash --frames`
//! and the packet proof of copy clips read each stream's framing from the stream (an `avcC` or
//! `hvcC` means length prefixes, none means Annex B start codes; AAC without a configuration
//! means ADTS headers), never from a packet's first bytes.
//!
//! Provenance: `fixtures/media/rtspserver_gop1.h264` is a real raw H.264 stream (see
//! fixtures/media/PROVENANCE.md); everything else is generated here with the ffmpeg CLI. Oracles:
//! ffmpeg's own `framemd5` of the decoded pictures, its decoded audio samples, and its own MP4
//! muxer (`ffmpeg -c copy`).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::formats::{ffmpeg, out_file, words};
use crate::support::{Store, ffmpeg_read, ffprobe_json, sha256sum};

/// The static, noisy, low-bitrate grey scene of a DVR at night, as a raw H.264 stream: most of
/// its P-frames are one NAL unit of 256..511 bytes, so in MP4 their length prefix reads
/// `00 00 01 xx`, like an Annex B start code.
fn static_dvr(store: &Store) -> PathBuf {
    let out = store.work().join("static_dvr.h264");
    ffmpeg(
        store,
        &words(
            "-f lavfi -i testsrc2=size=640x480:rate=25,hue=s=0,noise=alls=6:allf=t -t 8 -c:v libx264 \
             -preset veryfast -g 50 -bf 0 -crf 40 -f h264",
        ),
        &out,
    );
    out
}

/// The real raw stream of fixtures/media, checked against the digest it was committed with.
fn real_raw_stream() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/media/rtspserver_gop1.h264");
    assert_eq!(
        sha256sum(&path),
        "2df995b2f3cfd77a39516391aec2928d6175f5f25531ff9b3dc7519bcb7be51e",
        "the fixture changed"
    );
    path
}

/// Packets of `path`'s first video stream whose data begins `00 00 01`, by number.
fn packets_starting_like_a_start_code(path: &Path) -> Vec<usize> {
    let json = ffprobe_json(path, &["-select_streams", "v:0", "-show_packets", "-show_data"]);
    let packets = json["packets"].as_array().expect("packets");
    (0..packets.len())
        .filter(|&n| packets[n]["data"].as_str().is_some_and(|d| d.trim_start().starts_with("00000000: 0000 01")))
        .collect()
}

/// ffmpeg's MD5 of every decoded picture of the first video stream, in order.
fn picture_md5s(path: &Path) -> Vec<String> {
    let out = ffmpeg_read(path, &["-map", "0:v:0", "-fps_mode", "passthrough", "-f", "framemd5", "-"]);
    String::from_utf8(out)
        .expect("framemd5 is text")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit(',').next().expect("an md5").trim().to_owned())
        .collect()
}

/// The first audio stream decoded by ffmpeg to 16-bit PCM.
fn samples(path: &Path) -> Vec<u8> {
    ffmpeg_read(path, &["-map", "0:a:0", "-f", "s16le", "-"])
}

/// `custody --json rewrap ITEM --out DIR`: the JSON and the copy.
#[track_caller]
fn rewrap(store: &Store, item: &str) -> (Value, PathBuf) {
    let dir = store.work().join("playback");
    let json = store.cmd(&["--json", "rewrap", item, "--out"]).arg(&dir).run().status(0).json();
    let file = out_file(&dir, &json);
    (json, file)
}

/// `custody --json hash --frames FILE`: each stream's packet hash.
fn packet_hashes(store: &Store, path: &Path) -> Vec<String> {
    let json = store.cmd(&["--json", "hash", "--frames"]).arg(path).run().status(0).json();
    json["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .map(|p| p["packets_sha256"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_playback_copy_of_a_static_low_bitrate_dvr_stream_is_faithful() {
    let store = Store::new();
    let raw = static_dvr(&store);
    let item = store.ingest_media(&raw);
    let (json, copy) = rewrap(&store, &item.id);
    assert!(
        packets_starting_like_a_start_code(&copy).len() > 10,
        "precondition: the MP4 holds packets whose length prefix reads 00 00 01"
    );
    assert_eq!(picture_md5s(&copy), picture_md5s(&raw), "the copy's pictures vs the source's");
    assert_eq!(json["streams"][0]["packets"], 200, "{json:#}");
    assert!(json["streams"][0]["compared"].as_str().unwrap().contains("NAL units"), "{json:#}");
}

#[test]
fn a_playback_copy_of_a_real_ip_camera_stream_is_faithful() {
    let store = Store::new();
    let raw = real_raw_stream();
    let item = store.ingest_media(&raw);
    let (_, copy) = rewrap(&store, &item.id);
    assert!(
        packets_starting_like_a_start_code(&copy).contains(&30),
        "precondition: packet 30 of the MP4 reads 00 00 01 at its start"
    );
    let source = picture_md5s(&raw);
    assert_eq!(source.len(), 36, "precondition: 36 pictures");
    assert_eq!(picture_md5s(&copy), source, "the copy's pictures vs the source's");
}

#[test]
fn packet_hashes_agree_between_a_raw_stream_and_ffmpegs_own_mp4_of_it() {
    let store = Store::new();
    let raw = static_dvr(&store);
    let mp4 = store.work().join("by_ffmpeg.mp4");
    ffmpeg(&store, &["-i", raw.to_str().unwrap(), "-c", "copy"], &mp4);
    assert!(!packets_starting_like_a_start_code(&mp4).is_empty(), "precondition");
    assert_eq!(
        packet_hashes(&store, &mp4),
        packet_hashes(&store, &raw),
        "hash --frames of ffmpeg's MP4 vs the raw stream"
    );
}

#[test]
fn a_copy_clips_packet_proof_matches_the_packets_of_the_clip_it_made() {
    let store = Store::new();
    let raw = static_dvr(&store);
    let item = store.ingest_media(&raw);
    let dir = store.work().join("clips");
    let json = store
        .cmd(&["--json", "clip", &item.id, "--from", "frame:50", "--to", "frame:99", "--out"])
        .arg(&dir)
        .run()
        .status(0)
        .json();
    let clip = out_file(&dir, &json);
    assert!(!packets_starting_like_a_start_code(&clip).is_empty(), "precondition: {json:#}");
    let recorded = json["streams"][0]["packets_sha256"].as_str().expect("a packet hash").to_owned();
    assert_eq!(packet_hashes(&store, &clip), [recorded], "the clip's packets vs the hash its event records");
}

#[test]
fn a_playback_copy_of_a_transport_stream_with_aac_compares_audio_without_adts_headers() {
    let store = Store::new();
    let ts = store.work().join("dvr_aac.ts");
    ffmpeg(
        &store,
        &words("-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=440 -t 4 -c:v libx264 -c:a aac"),
        &ts,
    );
    let item = store.ingest_media(&ts);
    let (json, copy) = rewrap(&store, &item.id);
    let audio = &json["streams"][1];
    assert_eq!(audio["codec"], "aac", "{json:#}");
    assert_eq!(audio["compared"], "AAC frames without their ADTS headers", "{json:#}");
    assert_eq!(audio["packets_sha256"], audio["copy_packets_sha256"], "{json:#}");
    assert_eq!(samples(&copy), samples(&ts), "the copy's decoded audio vs the source's");
    assert_eq!(picture_md5s(&copy), picture_md5s(&ts), "the copy's pictures vs the source's");
    let text = store.cmd(&["rewrap", &item.id]).run().status(0).stdout();
    assert!(text.contains("without their ADTS headers"), "the report says how audio was compared:\n{text}");
}

#[test]
fn playback_copies_of_h264_in_avi_and_hevc_in_mpeg_ts_are_faithful() {
    let store = Store::new();
    let avi = store.work().join("ch03.avi");
    ffmpeg(
        &store,
        &words("-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine -t 4 -c:v libx264 -c:a libmp3lame"),
        &avi,
    );
    let mut files = vec![avi];
    if crate::formats::has_encoder("libx265") {
        let ts = store.work().join("hevc.ts");
        ffmpeg(
            &store,
            &words("-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine -t 4 -c:v libx265 -c:a aac"),
            &ts,
        );
        files.push(ts);
    }
    for source in files {
        let item = store.ingest_media(&source);
        let (json, copy) = rewrap(&store, &item.id);
        assert_eq!(picture_md5s(&copy), picture_md5s(&source), "pictures of {}: {json:#}", source.display());
        assert_eq!(samples(&copy), samples(&source), "audio of {}", source.display());
    }
}

#[test]
fn where_two_streams_part_is_named_by_packet_and_nal_unit() {
    let store = Store::new();
    let a = static_dvr(&store);
    let b = store.work().join("other.h264");
    ffmpeg(
        &store,
        &words(
            "-f lavfi -i testsrc2=size=640x480:rate=25,hue=s=0,noise=alls=6:allf=t -t 8 -c:v libx264 \
             -preset veryfast -g 50 -bf 0 -crf 38 -f h264",
        ),
        &b,
    );
    let c = store.work().join("shorter.mp4");
    ffmpeg(&store, &["-i", a.to_str().unwrap(), "-c", "copy", "-frames:v", "150"], &c);
    // The same scene at another quality: they part in the slices of packet 0.
    let how = custody::media::remux::first_difference(&a, 0, &b, 0).expect("both readable");
    assert!(how.starts_with("packet 0") && how.contains("NAL unit"), "{how}");
    // The same packets, framed differently, until the copy ends.
    let how = custody::media::remux::first_difference(&a, 0, &c, 0).expect("both readable");
    assert!(how.contains("the copy ends after 150 packets"), "{how}");
}
