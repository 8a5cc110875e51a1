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

// ---------------------------------------------------------------------------------------------
// Issue 15, item 5: copy clips keep the source's container family where it holds the streams.

/// `custody --json clip ITEM --from A --to B [MODE…] --out DIR`: the JSON and the clip.
#[track_caller]
fn clip(store: &Store, item: &str, from: &str, to: &str, more: &[&str]) -> (Value, PathBuf) {
    let dir = store.work().join("clips");
    let mut args = vec!["--json", "clip", item, "--from", from, "--to", to];
    args.extend_from_slice(more);
    args.push("--out");
    let json = store.cmd(&args).arg(&dir).run().status(0).json();
    let file = out_file(&dir, &json);
    (json, file)
}

/// The container's `major_brand` and each stream's codec, as ffprobe reads them.
fn brand_and_codecs(path: &Path) -> (String, Vec<String>) {
    let json = ffprobe_json(path, &["-show_format", "-show_streams"]);
    let brand = json["format"]["tags"]["major_brand"].as_str().unwrap_or_default().trim().to_owned();
    let codecs =
        json["streams"].as_array().unwrap().iter().map(|s| s["codec_name"].as_str().unwrap().to_owned()).collect();
    (brand, codecs)
}

/// A dash camera's MOV: H.264 with 16-bit PCM audio.
fn dash_mov(store: &Store, extra: &str) -> PathBuf {
    let out = store.work().join("dash.mov");
    ffmpeg(
        store,
        &words(&format!(
            "-f lavfi -i testsrc2=size=320x240:rate=30 -f lavfi -i sine=frequency=440 {extra} -t 4 -c:v libx264 \
             -g 30 -bf 0 -c:a pcm_s16le"
        )),
        &out,
    );
    out
}

#[test]
fn copy_and_smart_clips_of_a_mov_with_pcm_audio_stay_mov_and_keep_the_pcm() {
    let store = Store::new();
    let mov = dash_mov(&store, "");
    let item = store.ingest_media(&mov);
    let (json, file) = clip(&store, &item.id, "1", "3", &[]);
    assert!(file.extension().is_some_and(|e| e == "mov"), "{json:#}");
    assert_eq!(brand_and_codecs(&file), ("qt".to_owned(), vec!["h264".to_owned(), "pcm_s16le".to_owned()]));
    assert_eq!(json["streams"][1]["codec"], "pcm_s16le", "{json:#}");
    let (json, file) = clip(&store, &item.id, "frame:35", "frame:70", &["--mode", "smart"]);
    assert!(file.extension().is_some_and(|e| e == "mov"), "{json:#}");
    assert_eq!(brand_and_codecs(&file).1, ["h264", "pcm_s16le"], "{json:#}");
    assert_eq!(picture_md5s(&file).len(), 36, "the smart clip's pictures");
}

#[test]
fn a_copy_clip_of_a_3gp_with_amr_audio_stays_3gp() {
    let store = Store::new();
    let video = store.work().join("phone.h264");
    ffmpeg(&store, &words("-f lavfi -i testsrc2=size=176x144:rate=15 -t 3 -c:v libx264 -g 15 -bf 0 -f h264"), &video);
    let amr = crate::support::write(&store.work().join("voice.amr"), crate::formats::amr_nb_frames(150));
    let phone = store.work().join("phone.3gp");
    ffmpeg(&store, &["-i", video.to_str().unwrap(), "-i", amr.to_str().unwrap(), "-c", "copy"], &phone);
    assert_eq!(brand_and_codecs(&phone).1, ["h264", "amr_nb"], "precondition");
    let item = store.ingest_media(&phone);
    let (json, file) = clip(&store, &item.id, "1", "2", &[]);
    assert!(file.extension().is_some_and(|e| e == "3gp"), "{json:#}");
    let (brand, codecs) = brand_and_codecs(&file);
    assert!(brand.starts_with("3g"), "a 3GPP brand, not {brand}");
    assert_eq!(codecs, ["h264", "amr_nb"]);
}

#[test]
fn a_copy_clip_of_h264_with_mp3_in_avi_stays_avi() {
    let store = Store::new();
    let avi = store.work().join("ch02.avi");
    ffmpeg(
        &store,
        &words(
            "-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine -t 6 -c:v libx264 -c:a libmp3lame -ar 22050 -ac 1",
        ),
        &avi,
    );
    let item = store.ingest_media(&avi);
    let (json, file) = clip(&store, &item.id, "2", "4", &[]);
    assert!(file.extension().is_some_and(|e| e == "avi"), "{json:#}");
    assert_eq!(brand_and_codecs(&file).1, ["h264", "mp3"]);
}

#[test]
fn a_file_whose_brand_says_mp4_but_holds_pcm_and_timed_text_is_copied_into_mov() {
    // Cameras write PCM into files branded `isom`, which FFmpeg's MP4 muxer refuses to write;
    // with timed text beside it, Matroska refuses too. MOV holds all three.
    let store = Store::new();
    let srt =
        crate::support::write(&store.work().join("gps.srt"), "1\n00:00:00,000 --> 00:00:03,000\nN 41.88 W 87.63\n\n");
    let mov = dash_mov(&store, "");
    let with_text = store.work().join("dash_text.mov");
    ffmpeg(
        &store,
        &["-i", mov.to_str().unwrap(), "-i", srt.to_str().unwrap(), "-c", "copy", "-c:s", "mov_text"],
        &with_text,
    );
    let mut bytes = std::fs::read(&with_text).unwrap();
    let ftyp = bytes.windows(8).position(|w| w == b"ftypqt  ").expect("a QuickTime ftyp");
    bytes[ftyp + 4..ftyp + 8].copy_from_slice(b"isom");
    let isom = crate::support::write(&store.work().join("cam0001.mp4"), &bytes);
    assert_eq!(
        brand_and_codecs(&isom),
        ("isom".to_owned(), vec!["h264".into(), "pcm_s16le".into(), "mov_text".into()])
    );
    let item = store.ingest_media(&isom);
    let (json, file) = clip(&store, &item.id, "1", "2", &[]);
    assert!(file.extension().is_some_and(|e| e == "mov"), "{json:#}");
    let (json, file) = rewrap(&store, &item.id);
    assert!(file.extension().is_some_and(|e| e == "mov"), "{json:#}");

    // Where no container holds them, the error names each refusal by stream, and no file.
    let index = custody::media::index::FrameIndex::build(&isom).expect("an index");
    let all = custody::media::remux::Selection::all();
    let scratch = store.work().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let err = custody::media::remux::copy_into_first(
        &isom,
        &[("mp4", "mp4"), ("matroska", "mkv")],
        |ext| scratch.join(format!("attempt.{ext}")),
        &index,
        &all,
        "",
    )
    .err()
    .expect("neither holds them");
    let message = format!("{err:#}");
    assert!(message.contains("MP4 cannot hold stream 1 (pcm_s16le audio)"), "{message}");
    assert!(message.contains("Matroska cannot hold stream 2 (mov_text subtitle)"), "{message}");
    assert!(!message.contains(scratch.to_str().unwrap()), "no scratch path: {message}");
    assert_eq!(custody::error::exit_for(&err), custody::error::Exit::Input);
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0, "the attempts are removed");
}

// ---------------------------------------------------------------------------------------------
// Issue 15, item 4: audio clips are the length asked, or say they are not.

/// `FILE` decoded by ffmpeg to raw samples of `format` (s16le, f32le).
fn decoded(path: &Path, format: &str) -> Vec<u8> {
    ffmpeg_read(path, &["-map", "0:a:0", "-f", format, "-"])
}

/// A tone of `seconds` at `rate` Hz in `channels` channels, encoded with `codec` into `name`.
fn tone(store: &Store, name: &str, rate: u32, channels: u32, codec: &str) -> PathBuf {
    let out = store.work().join(name);
    let src = format!("-f lavfi -i sine=frequency=440:sample_rate={rate}:duration=30 -ac {channels} -c:a {codec}");
    ffmpeg(store, &words(&src), &out);
    out
}

#[test]
fn a_copy_clip_of_pcm_audio_holds_exactly_the_samples_asked() {
    let store = Store::new();
    for (name, rate, channels) in [("interview.wav", 48_000, 1), ("overhear.wav", 44_100, 2)] {
        let wav = tone(&store, name, rate, channels, "pcm_s16le");
        let item = store.ingest_media(&wav);
        let (json, file) = clip(&store, &item.id, "10", "20.5", &[]);
        assert_eq!(json["exact"], true, "{json:#}");
        assert_eq!(json["requested"]["from_time"], "00:00:10.000", "{json:#}");
        assert_eq!(json["produced"]["to_time"], "00:00:20.500", "{json:#}");
        let frame = 2 * channels as usize;
        let (a, b) = (10 * rate as usize, 205 * rate as usize / 10);
        let want = &decoded(&wav, "s16le")[a * frame..b * frame];
        let got = decoded(&file, "s16le");
        assert_eq!(got.len() / frame, b - a, "samples in the clip of {name}");
        assert!(got == want, "the clip of {name} holds other samples than the source's {a}..{b}");
    }
}

#[test]
fn a_copy_clip_of_compressed_audio_says_it_is_not_exact_and_exact_mode_gives_the_samples_asked() {
    let store = Store::new();
    let mp3 = tone(&store, "voicemail.mp3", 48_000, 1, "libmp3lame");
    let item = store.ingest_media(&mp3);
    let dir = store.work().join("clips");
    let out = store.cmd(&["--json", "clip", &item.id, "--from", "10", "--to", "20", "--out"]).arg(&dir).run();
    let json = out.status(0).json();
    assert_eq!(json["exact"], false, "whole MP3 frames cannot hold exactly 10 s: {json:#}");
    assert_eq!(
        (json["requested"]["from_time"].as_str(), json["requested"]["to_time"].as_str()),
        (Some("00:00:10.000"), Some("00:00:20.000"))
    );
    assert_ne!(json["produced"]["from_time"], "00:00:10.000", "{json:#}");
    out.stderr_has("warning: clip").stderr_has("--mode exact");

    let (json, file) = clip(&store, &item.id, "10", "20", &["--mode", "exact"]);
    assert_eq!(json["exact"], true, "{json:#}");
    assert_eq!(json["decoded"], true, "{json:#}");
    assert_eq!(json["produced"]["samples"], 480_000, "{json:#}");
    let (brand, codecs) = brand_and_codecs(&file);
    assert_eq!((brand.as_str(), codecs), ("", vec!["pcm_f32le".to_owned()]), "decoded samples as float PCM in WAV");
    // The samples a player decodes from the start of the file, 10 s to 20 s.
    let whole = decoded(&mp3, "f32le");
    assert!(decoded(&file, "f32le") == whole[480_000 * 4..960_000 * 4], "the exact clip's samples vs ffmpeg's decode");
    let text = store.cmd(&["clip", &item.id, "--from", "10", "--to", "20", "--mode", "exact"]).run().status(0).stdout();
    assert!(
        text.contains("decoded: the samples FFmpeg's mp3 decoder produced"),
        "the report says it is decoded:\n{text}"
    );
}

#[test]
fn an_exact_clip_of_aac_audio_holds_the_samples_asked() {
    let store = Store::new();
    let m4a = tone(&store, "interview.m4a", 48_000, 1, "aac");
    let item = store.ingest_media(&m4a);
    let (json, file) = clip(&store, &item.id, "00:00:10", "00:00:20", &["--mode", "exact"]);
    assert_eq!(json["produced"]["samples"], 480_000, "{json:#}");
    // Decoding starts a second before the span, as `ffmpeg -ss` does; AAC's decoder then gives
    // the same samples as a decode from the start to within a few parts in 100,000.
    let whole = decoded(&m4a, "f32le");
    let got = decoded(&file, "f32le");
    let sample = |b: &[u8], i: usize| f32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
    let worst = (0..480_000).map(|i| (sample(&got, i) - sample(&whole, 480_000 + i)).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-4, "largest difference from a decode from the start: {worst}");
}

#[test]
fn a_video_clip_reports_the_positions_typed_as_asked() {
    let store = Store::new();
    let raw = static_dvr(&store);
    let item = store.ingest_media(&raw);
    let out = store.cmd(&["clip", &item.id, "--from", "00:00:01.000", "--to", "00:00:03.000"]).run();
    let text = out.status(0).stdout();
    let asked = text.lines().find(|l| l.trim_start().starts_with("asked")).unwrap_or_default();
    assert!(asked.contains("00:00:01.000 to 00:00:03.000"), "the asked line holds what was typed: {text}");
}

// ---------------------------------------------------------------------------------------------
// Issue 15, item 8: a still near the end of a raw stream reads one group of pictures.

#[test]
fn a_still_of_a_raw_stream_decodes_from_the_idr_picture_before_it_not_from_the_start() {
    use custody::media::synth::{Fixture, read_frame_index};
    let store = Store::new();
    let raw = crate::support::media(Fixture::RawH264, &store.work().join("dvr_ch01.h264"));
    let index = custody::media::index::FrameIndex::build(&raw).expect("an index");
    assert!(index.derived_timestamps, "precondition: a raw stream without timestamps");
    let idr = &index.frames[15];
    assert!(idr.idr && idr.pos > 0, "precondition: an IDR picture at frame 15, at a known byte: {:?}", idr.pos);
    // Everything before that picture is zeroed: a decode from the start would count the
    // frames after it from 0 and never reach frame 22. Sought by its byte position, the decoder
    // starts there and counts from 15.
    let mut bytes = std::fs::read(&raw).unwrap();
    bytes[..idr.pos as usize].fill(0);
    let damaged = crate::support::write(&store.work().join("damaged.h264"), &bytes);
    let (frame, _) = custody::media::still::decode_frame(&damaged, &index, 22).expect("frame 22");
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    assert_eq!(read_frame_index(frame.data(0), frame.stride(0), w, h), Some(22), "the picture decoded is frame 22");

    // Through the command, every still of the second group of pictures shows its own frame.
    let item = store.ingest_media(&raw);
    for n in [15u32, 16, 29] {
        let dir = store.work().join(format!("stills{n}"));
        let json = store
            .cmd(&["--json", "still", &item.id, "--at", &format!("frame:{n}"), "--out"])
            .arg(&dir)
            .run()
            .status(0)
            .json();
        let png = dir.join(json["items"][0]["name"].as_str().expect("a name"));
        let grey = ffmpeg_read(&png, &["-f", "rawvideo", "-pix_fmt", "gray", "-"]);
        assert_eq!(read_frame_index(&grey, w, w, h), Some(n), "the still at frame:{n}: {json:#}");
    }
}

// ---------------------------------------------------------------------------------------------
// Issue 15, group 2: a still says how it was turned; clips keep the recording's tags.

/// The file's `tkhd` matrix set to a left-right flip (a = -1, tx = width), as a mirroring
/// camera writes it.
fn mirrored_copy(src: &Path, width: i32, dst: &Path) -> PathBuf {
    let mut bytes = std::fs::read(src).unwrap();
    let tkhd = bytes.windows(4).position(|w| w == b"tkhd").expect("a tkhd box");
    // version+flags, four 32-bit fields (version 0), 8 reserved, layer..volume+reserved = 8.
    let matrix = tkhd + 4 + 4 + 20 + 8 + 8;
    assert_eq!(bytes[matrix..matrix + 4], 0x10000i32.to_be_bytes(), "precondition: an identity matrix");
    bytes[matrix..matrix + 4].copy_from_slice(&(-0x10000i32).to_be_bytes());
    bytes[matrix + 24..matrix + 28].copy_from_slice(&(width << 16).to_be_bytes());
    crate::support::write(dst, &bytes)
}

/// The RGB pixels of a picture file, as ffmpeg decodes them (a PNG, or frame 0 of a video).
fn rgb(path: &Path) -> Vec<u8> {
    ffmpeg_read(path, &["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
}

#[test]
fn a_still_of_a_mirrored_recording_is_mirrored_as_a_player_shows_it_and_says_so() {
    let store = Store::new();
    let plain = store.work().join("plain.mp4");
    ffmpeg(&store, &words("-f lavfi -i testsrc2=size=320x240:rate=25 -t 1 -c:v libx264"), &plain);
    let mirrored = mirrored_copy(&plain, 320, &store.work().join("mirrored.mp4"));
    let still = |path: &Path, dir: &str| {
        let item = store.ingest_media(path);
        let dir = store.work().join(dir);
        let out = store.cmd(&["--json", "still", &item.id, "--at", "frame:0", "--out"]).arg(&dir).run();
        let json = out.status(0).json();
        (json["items"][0].clone(), rgb(&dir.join(json["items"][0]["name"].as_str().unwrap())))
    };
    let (plain_json, plain_rgb) = still(&plain, "plain");
    let (json, pixels) = still(&mirrored, "mirrored");
    assert_eq!(
        (json["facts"]["mirrored"].as_bool(), json["facts"]["rotation"].as_i64()),
        (Some(true), Some(0)),
        "{json:#}"
    );
    assert_eq!(plain_json["facts"]["mirrored"], false);
    let flipped: Vec<u8> =
        plain_rgb.chunks_exact(320 * 3).flat_map(|row| row.chunks_exact(3).rev().flatten().copied()).collect();
    assert!(pixels == flipped, "the mirrored still is the plain still flipped left to right");
    // ffmpeg's own player path (auto-rotation) shows it the same way.
    let by_ffmpeg = rgb(&mirrored);
    let diff = |a: &[u8], b: &[u8]| a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as u64).sum::<u64>() / a.len() as u64;
    assert!(diff(&by_ffmpeg, &pixels) < diff(&by_ffmpeg, &plain_rgb) / 4, "ffmpeg shows it mirrored too");
    let item = json["facts"]["parent"].as_str().expect("the still's parent").to_owned();
    let text = store.cmd(&["still", &item, "--at", "frame:3"]).run().status(0).stdout();
    assert!(text.contains("mirrored left to right"), "the report says it:\n{text}");
}

#[test]
fn a_deinterlaced_still_has_a_name_of_its_own() {
    let store = Store::new();
    let ts = crate::formats::mpeg2_ts(&store, "dvr_ch02.ts", &[]);
    let as_coded = store.cmd(&["--json", "still", &ts.item.id, "--at", "frame:7"]).run().status(0).json();
    let out = store.cmd(&["--json", "still", &ts.item.id, "--at", "frame:7", "--deinterlace"]).run();
    let json = out.status(0).json();
    let name = json["items"][0]["name"].as_str().unwrap();
    assert!(name.ends_with("_frame000007_deinterlaced.png"), "{json:#}");
    assert_ne!(as_coded["items"][0]["name"], json["items"][0]["name"]);
    let text = store.cmd(&["still", &ts.item.id, "--at", "frame:8", "--deinterlace"]).run().status(0).stdout();
    assert!(text.contains("deinterlaced"), "{text}");
}

#[test]
fn clips_keep_the_recordings_creation_time_and_location() {
    let store = Store::new();
    let phone = store.work().join("IMG_0042.mp4");
    ffmpeg(
        &store,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine",
            "-t",
            "4",
            "-c:v",
            "libx264",
            "-g",
            "25",
            "-bf",
            "0",
            "-c:a",
            "aac",
            "-metadata",
            "creation_time=2024-05-01T14:00:00Z",
            "-metadata",
            "location=+41.8800-087.6300/",
            "-metadata",
            "com.apple.quicktime.make=Apple",
            "-movflags",
            "use_metadata_tags",
        ],
        &phone,
    );
    let item = store.ingest_media(&phone);
    for mode in ["copy", "exact", "smart"] {
        let (_, file) = clip(&store, &item.id, "frame:30", "frame:70", &["--mode", mode]);
        let tags = &ffprobe_json(&file, &["-show_format"])["format"]["tags"];
        assert_eq!(tags["creation_time"].as_str().map(|t| &t[..19]), Some("2024-05-01T14:00:00"), "{mode}: {tags:#}");
        assert_eq!(tags["location"], "+41.8800-087.6300/", "{mode}: {tags:#}");
        assert_eq!(tags["com.apple.quicktime.make"], "Apple", "{mode}: {tags:#}");
    }
    // A release copy still keeps none of them.
    let dir = store.work().join("release");
    let json = store
        .cmd(&["--json", "redact", &item.id, "--box", "0,0,10,10@0-end", "--reason", "privacy", "--out"])
        .arg(&dir)
        .run()
        .status(0)
        .json();
    let redacted = out_file(&dir, &json);
    let tags = &ffprobe_json(&redacted, &["-show_format"])["format"]["tags"];
    assert!(tags.get("location").is_none() && tags.get("creation_time").is_none(), "{tags:#}");
}

// ---------------------------------------------------------------------------------------------
// Issue 15, group 3: the ingest summary speaks as users do.

#[test]
fn the_ingest_summary_names_containers_channels_raw_streams_and_text_as_users_know_them() {
    let store = Store::new();
    let dir = store.work().join("usb");
    std::fs::create_dir_all(&dir).unwrap();
    let mov = dash_mov(&store, "");
    std::fs::copy(&mov, dir.join("dash.mov")).unwrap();
    std::fs::copy(real_raw_stream(), dir.join("cam01.h264")).unwrap();
    ffmpeg(&store, &words("-f lavfi -i sine=sample_rate=8000:duration=2 -ac 1 -c:a pcm_s16le"), &dir.join("call.wav"));
    crate::support::write(&dir.join("notes.txt"), "Officer's notes: camera 3 clock is 42 s slow.\n");
    std::fs::copy(&mov, dir.join("odd\u{1b}[31mname.mov")).unwrap();
    let out = store
        .cmd(&[
            "ingest",
            "--case",
            "24-77",
            "--item",
            "1",
            "--dvr-time",
            "2024-05-01T14:00:00",
            "--actual-time",
            "2024-05-01T14:00:42",
        ])
        .arg(&dir)
        .run();
    let text = out.status(0).stdout();
    let after = |name: &str| {
        let at = text.lines().position(|l| l.contains(name)).unwrap_or_else(|| panic!("{name} not listed:\n{text}"));
        text.lines().nth(at + 1).unwrap_or_default().trim().to_owned()
    };
    assert!(after("dash.mov").starts_with("MOV, h264 320x240 30 fps, pcm_s16le 44100 Hz mono"), "{text}");
    assert_eq!(after("cam01.h264"), "raw H.264, h264 960x408 30 fps, 36 frames, 00:00:01.200", "{text}");
    assert_eq!(after("call.wav"), "WAV, pcm_s16le 8000 Hz 1 channel, 00:00:02.000", "{text}");
    assert!(text.contains("kept as evidence exactly as it is (a text file: FFmpeg reads media only)"), "{text}");
    assert!(!text.contains("proprietary video"), "{text}");
    assert!(text.contains("odd\\x1b[31mname.mov") && !text.contains('\u{1b}'), "control characters escaped:\n{text}");
    assert!(text.contains("DVR clock: runs 00:00:42.000 behind, offset -00:00:42.000"), "{text}");
    assert!(!text.contains("mov,mp4") && !text.contains(" 0 Hz"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Issue 15, group 3: FFmpeg's own messages arrive as custody's warnings, naming the item.

#[test]
fn ffmpegs_messages_about_a_damaged_stream_are_warnings_naming_the_item() {
    let store = Store::new();
    let mut bytes = std::fs::read(static_dvr(&store)).unwrap();
    // Damage slices of the middle pictures, as a failing DVR disk does.
    for i in (5_000..bytes.len() - 100).step_by(797) {
        bytes[i] = 0;
    }
    let damaged = crate::support::write(&store.work().join("ch07_damaged.h264"), &bytes);
    let item = store.ingest_media(&damaged);
    let out = store.cmd(&["still", &item.id, "--at", "frame:60"]).run();
    let stderr = out.status(0).stderr();
    let label = format!("warning: FFmpeg, reading {} (24-1234:9/ch07_damaged.h264): h264: ", item.id);
    assert!(stderr.lines().any(|l| l.starts_with(&label)), "the decoder's complaints, naming the item:\n{stderr}");
    assert!(!stderr.contains("[h264 @") && !stderr.contains("objects/"), "nothing raw, no object path:\n{stderr}");
}

#[test]
fn custodys_own_conversions_raise_no_ffmpeg_warnings() {
    // An MJPEG DVR file (full-range pictures, 8 kHz mu-law audio): the exact clip converts the
    // pictures and encodes 8 kHz AAC; neither is a problem of the recording.
    let store = Store::new();
    let item = store.ingest_fixture(custody::media::synth::Fixture::MjpegAvi);
    let out = store.cmd(&["clip", &item.id, "--from", "frame:3", "--to", "frame:20", "--mode", "exact"]).run();
    out.status(0).stderr_lacks("FFmpeg");
    store.cmd(&["still", &item.id, "--at", "frame:5"]).run().status(0).stderr_lacks("FFmpeg");
}

#[test]
fn an_exact_clip_of_a_raw_stream_with_a_packet_that_gives_no_picture_never_takes_the_next_picture_for_it() {
    use custody::media::synth::{Fixture, read_frame_index};
    let store = Store::new();
    let raw = store.work().join("ch02.h264");
    let info = custody::media::synth::generate(Fixture::RawH264, &raw).expect("the raw fixture");
    // Frame 6's slice data zeroed after its first byte: the parser still sees its packet, the
    // decoder gives no picture for it.
    let packets = ffprobe_json(&raw, &["-show_packets", "-show_entries", "packet=pos,size"]);
    let p = &packets["packets"][6];
    let (pos, size) =
        (p["pos"].as_str().unwrap().parse::<usize>().unwrap(), p["size"].as_str().unwrap().parse::<usize>().unwrap());
    let mut bytes = std::fs::read(&raw).unwrap();
    let slice = pos + bytes[pos..pos + size].windows(3).rposition(|w| w == [0, 0, 1]).expect("a start code");
    bytes[slice + 5..pos + size].fill(0);
    let damaged = crate::support::write(&store.work().join("ch02_damaged.h264"), &bytes);
    let md5s = picture_md5s(&damaged);
    assert_eq!(md5s.len(), 29, "precondition: ffmpeg decodes every frame but one");
    let item = store.ingest_media(&damaged);
    let before = store.snapshot();
    store
        .cmd(&["clip", &item.id, "--from", "frame:3", "--to", "frame:12", "--mode", "exact"])
        .run()
        .status(2)
        .stderr_has("decoded 9 of the 10 frames asked");
    store.assert_unchanged(&before);
    // After the damage, every frame is its own picture.
    let (_, file) = clip(&store, &item.id, "frame:8", "frame:12", &["--mode", "exact"]);
    let (w, h) = (info.width as usize, info.height as usize);
    let grey = ffmpeg_read(&file, &["-f", "rawvideo", "-pix_fmt", "gray", "-"]);
    let bands: Vec<Option<u32>> = grey.chunks_exact(w * h).map(|f| read_frame_index(f, w, w, h)).collect();
    assert_eq!(bands, (8..=12).map(Some).collect::<Vec<_>>());
}
