//! Verified reads: a derived command reads its parent only through checks against the BLAKE3
//! recorded at ingest, a chunk group at a time, and records what it checked.

use std::fs;
use std::path::{Path, PathBuf};

use custody::media::index::FrameIndex;
use custody::media::synth::Fixture;
use custody::outboard::Object;
use serde_json::Value;

use crate::support::*;

const GROUP: u64 = 32 * 1024;

/// A 40 s 640x360 H.264 MP4, keyframe every 25 frames (1 s), noisy enough to be a few MiB.
fn recording(dir: &Path) -> PathBuf {
    let path = dir.join("pole-cam.mp4");
    fs::create_dir_all(dir).unwrap();
    let input = "testsrc2=size=640x360:rate=25,noise=alls=12:allf=t";
    let args = ["-f", "lavfi", "-i", input, "-t", "40", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25"];
    make(&[&args[..], &["-pix_fmt", "yuv420p"]].concat(), &path);
    path
}

/// `ffmpeg -v error -nostdin ARGS -y OUT`, which must succeed.
fn make(args: &[&str], out: &Path) {
    let os: Vec<&std::ffi::OsStr> = ["-v", "error", "-nostdin"]
        .iter()
        .chain(args)
        .chain(&["-y"])
        .map(std::ffi::OsStr::new)
        .chain([out.as_os_str()])
        .collect();
    tool("ffmpeg", &os, out.parent().expect("a directory")).status(0);
}

/// A store holding [`recording`], its item, SHA-256 and size.
fn ingested() -> (Store, Ingested, String, u64) {
    let store = Store::new();
    let src = recording(&store.work().join("media"));
    let video = store.ingest_media(&src);
    let sha = sha256sum(&src);
    let size = fs::metadata(&src).unwrap().len();
    (store, video, sha, size)
}

/// A byte of the second half of the object no range of `read` covers.
fn unread_byte(read: &[(u64, u64)], size: u64) -> u64 {
    (size / 2..size).rev().find(|x| read.iter().all(|(a, b)| x < a || x >= b)).expect("a byte not read")
}

/// Put `bytes` where the (read-only) file `path` was.
fn replace(path: &Path, bytes: impl AsRef<[u8]>) {
    let _ = fs::remove_file(path);
    fs::write(path, bytes).unwrap();
}

fn outboard_path(store: &Store, sha256: &str) -> PathBuf {
    store.path().join("outboards").join(&sha256[..2]).join(&sha256[2..])
}

/// The outboard size of an object of `size` bytes: one 64-byte pair per parent node, one fewer
/// than its 32 KiB groups.
fn outboard_size(size: u64) -> u64 {
    size.div_ceil(GROUP).max(1).saturating_sub(1) * 64
}

/// The event of the still a `--json still` printed.
fn still_event(store: &Store, item: &str, json: &Value) -> Value {
    let seq = json["head"]["seq"].as_u64().expect("head seq");
    let log = store.cmd(&["--json", "log", item]).run().status(0).json();
    log["events"].as_array().unwrap().iter().find(|e| e["seq"] == seq).cloned().expect("the still's event")
}

fn ranges(event: &Value) -> Vec<(u64, u64)> {
    event["params"]["verified"]["ranges"]
        .as_array()
        .unwrap_or_else(|| panic!("no verified ranges in {event:#}"))
        .iter()
        .map(|r| (r[0].as_u64().unwrap(), r[1].as_u64().unwrap()))
        .collect()
}

fn set_byte(store: &Store, sha: &str, at: u64, flip: u8) {
    store.alter_object(sha, |bytes| bytes[at as usize] ^= flip);
}

/// Byte positions of the video keyframes, in decode order (ffprobe as the oracle).
fn keyframe_positions(path: &Path) -> Vec<u64> {
    let json = ffprobe_json(path, &["-select_streams", "v:0", "-show_entries", "packet=pos,flags"]);
    json["packets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["flags"].as_str().is_some_and(|f| f.starts_with('K')))
        .map(|p| p["pos"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn a_still_checks_only_what_it_reads_a_byte_altered_there_stops_it_and_one_altered_elsewhere_is_verifys_to_find() {
    let (store, video, sha, size) = ingested();
    let src = video.path.clone();
    // Ingest kept the object's BLAKE3 tree beside it.
    let outboard = outboard_path(&store, &sha);
    assert_eq!(fs::metadata(&outboard).map(|m| m.len()).ok(), Some(outboard_size(size)), "the outboard of {sha}");

    // The first still indexes the frames (one demux of the whole file, every byte checked; the
    // index is then cached), the second reads what its frame needs.
    let first = store.cmd(&["--json", "still", &video.id, "--at", "frame:500"]).run().status(0).json();
    let png = first["items"][0]["sha256"].as_str().unwrap().to_owned();
    let event = still_event(&store, &video.id, &first);
    let verified = &event["params"]["verified"];
    assert_eq!(verified["mode"], "read-ranges", "{verified:#}");
    assert_eq!(verified["of"].as_u64(), Some(size), "{verified:#}");
    let json = store.cmd(&["--json", "still", &video.id, "--at", "frame:500"]).run().status(0).json();
    let read = ranges(&still_event(&store, &video.id, &json));
    let checked: u64 = read.iter().map(|(a, b)| b - a).sum();
    assert!(checked < size / 4, "a still with its index cached checked {checked} of {size} bytes: {read:?}");
    assert!(read.iter().all(|(a, b)| a % GROUP == 0 && (b % GROUP == 0 || *b == size)), "{read:?}");

    // A byte no still reads: the still is the same, and says what it checked.
    let outside = unread_byte(&read, size);
    set_byte(&store, &sha, outside, 0x10);
    let json = store.cmd(&["--json", "still", &video.id, "--at", "frame:500"]).run().status(0).json();
    assert_eq!(json["items"][0]["sha256"], png.as_str(), "the same picture");
    let read = ranges(&still_event(&store, &video.id, &json));
    assert!(read.iter().all(|(a, b)| outside < *a || outside >= *b), "{outside} is not among {read:?}");
    // verify re-hashes the whole object and finds it.
    store.cmd(&["verify"]).run().status(1).stdout_has(&sha);
    set_byte(&store, &sha, outside, 0x10);

    // A byte of the keyframe the still decodes from, with the cached frame index gone: exit 1
    // naming the item and the bytes, nothing recorded, nothing left, no index cached.
    let key = keyframe_positions(&src)[20] + 8;
    let cached = store.path().join("cache").join("frames").join(&sha);
    fs::remove_file(&cached).expect("a cached frame index");
    set_byte(&store, &sha, key, 0x01);
    let before = store.snapshot();
    let start = key / GROUP * GROUP;
    let out = store.cmd(&["still", &video.id, "--at", "frame:500"]).run();
    // Said once, without FFmpeg's complaints about the bytes it was refused.
    out.status(1).stderr_has(&video.id).stderr_has(&format!("bytes {start}..{}", (start + GROUP).min(size)));
    out.stderr_lacks("FFmpeg");
    store.assert_unchanged(&before);
    assert!(!cached.exists(), "a frame index was cached from bytes that failed their check");
    // The same with a copy clip, which reads that keyframe too.
    store.cmd(&["clip", &video.id, "--from", "00:00:20", "--to", "00:00:22"]).run().status(1).stderr_has(&video.id);
    store.assert_unchanged(&before);

    // Restored, everything reads again.
    set_byte(&store, &sha, key, 0x01);
    let json = store.cmd(&["--json", "still", &video.id, "--at", "frame:500"]).run().status(0).json();
    assert_eq!(json["items"][0]["sha256"], png.as_str());

    // A byte in the middle of the frames a copy clip copies (its frame index cached by now):
    // refused, said once, without FFmpeg's complaints about the packet it did not get whole.
    let keys = keyframe_positions(&src);
    let inside = (keys[20] + keys[21]) / 2;
    set_byte(&store, &sha, inside, 0x01);
    let before = store.snapshot();
    store
        .cmd(&["clip", &video.id, "--from", "00:00:20", "--to", "00:00:22"])
        .run()
        .status(1)
        .stderr_has(&format!("bytes {}..", inside / GROUP * GROUP))
        .stderr_lacks("FFmpeg");
    store.assert_unchanged(&before);
    set_byte(&store, &sha, inside, 0x01);
    store.verify_ok();
}

#[test]
fn a_missing_short_or_forged_outboard_is_rebuilt_from_the_object_and_the_still_is_the_same() {
    let (store, video, sha, _) = ingested();
    let outboard = outboard_path(&store, &sha);
    let genuine = fs::read(&outboard).unwrap();
    let still = |what: &str| {
        let json = store.cmd(&["--json", "still", &video.id, "--at", "frame:730"]).run().status(0).json();
        assert_eq!(fs::read(&outboard).ok().as_ref(), Some(&genuine), "the outboard after {what}");
        json["items"][0]["sha256"].as_str().unwrap().to_owned()
    };
    let png = still("a first still");

    // Deleted (as for an object stored before custody kept trees): rebuilt, same picture.
    fs::remove_file(&outboard).unwrap();
    assert_eq!(still("deleting it"), png);
    // Cut short.
    replace(&outboard, &genuine[..genuine.len() - 64]);
    assert_eq!(still("truncating it"), png);
    // One node changed: the root's pair, last in post order, is on every read's path.
    let mut forged = genuine.clone();
    let at = forged.len() - 3;
    forged[at] ^= 0x80;
    replace(&outboard, &forged);
    assert_eq!(still("changing a node"), png);
    // Every node replaced by zeros.
    replace(&outboard, vec![0u8; genuine.len()]);
    assert_eq!(still("zeroing it"), png);
    store.verify_ok();
}

#[test]
fn verify_whole_re_hashes_the_whole_object_and_says_so() {
    let (store, video, sha, size) = ingested();
    let json = store.cmd(&["--json", "still", &video.id, "--at", "frame:100", "--verify-whole"]).run().status(0).json();
    let verified = &still_event(&store, &video.id, &json)["params"]["verified"];
    assert_eq!((verified["mode"].as_str(), verified["bytes"].as_u64()), (Some("whole"), Some(size)), "{verified:#}");
    // A byte the still does not read: only the whole re-hash finds it.
    let json = store.cmd(&["--json", "still", &video.id, "--at", "frame:100"]).run().status(0).json();
    let read = ranges(&still_event(&store, &video.id, &json));
    let outside = unread_byte(&read, size);
    set_byte(&store, &sha, outside, 0x04);
    store.cmd(&["still", &video.id, "--at", "frame:100"]).run().status(0);
    let before = store.snapshot();
    store.cmd(&["still", &video.id, "--at", "frame:100", "--verify-whole"]).run().status(1).stderr_has(&video.id);
    store
        .cmd(&["clip", &video.id, "--from", "frame:0", "--to", "frame:30", "--verify-whole"])
        .run()
        .status(1)
        .stderr_has(&video.id);
    store.assert_unchanged(&before);
}

#[test]
fn the_frame_index_read_from_mp4_and_mov_sample_tables_is_the_one_reading_every_packet_gives() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![
        media(Fixture::H264Mp4, &dir.path().join("bframes.mp4")),
        media(Fixture::VfrMp4, &dir.path().join("vfr.mp4")),
        recording(&dir.path().join("gop")),
    ];
    // MOV with PCM, intra refresh, HEVC with B-frames, an edit list that starts a second in,
    // and an MP4 cut short (its last samples lie past the end).
    let more: [(&str, &[&str]); 4] = [
        ("pcm.mov", &["-c:v", "libx264", "-bf", "2", "-c:a", "pcm_s16le"]),
        // Periodic intra refresh: keyframes are recovery points, found in the bytes.
        ("refresh.mp4", &["-c:v", "libx264", "-x264-params", "intra-refresh=1:keyint=30", "-c:a", "aac"]),
        ("hevc.mp4", &["-c:v", "libx265", "-x265-params", "log-level=error", "-c:a", "aac"]),
        ("cut.mp4", &["-c:v", "libx264", "-c:a", "aac", "-ss", "1.3"]),
    ];
    for (name, codec) in more {
        let out = dir.path().join(name);
        let inputs =
            ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-f", "lavfi", "-i", "sine=sample_rate=48000"];
        make(&[&inputs[..], &["-t", "4"], codec].concat(), &out);
        files.push(out);
    }
    // Header first (faststart), then cut: its last samples lie past the end.
    let fast = dir.path().join("fast.mp4");
    let copied = files[2].to_str().expect("a UTF-8 path");
    make(&["-i", copied, "-c", "copy", "-movflags", "+faststart"], &fast);
    let whole = fs::read(&fast).unwrap();
    let short = dir.path().join("short.mp4");
    fs::write(&short, &whole[..whole.len() * 9 / 10]).unwrap();
    files.push(short);
    for file in &files {
        let bytes = fs::read(file).unwrap();
        let object = Object::register(
            file,
            dir.path().join("outboard"),
            bytes.len() as u64,
            &b3sum(file),
            file.display().to_string(),
        );
        let tables = FrameIndex::build_with(file, true).unwrap();
        // The tables' way reads a fraction of the file (its header, the few packets FFmpeg
        // probes, the keyframes' first group: 40 s at 25 fps is 40 keyframes).
        if file.ends_with("gop/pole-cam.mp4") {
            let read = object.summary()["bytes"].as_u64().unwrap();
            assert!(read < bytes.len() as u64 / 2, "read {read} of {} bytes", bytes.len());
        }
        let every = FrameIndex::build_with(file, false).unwrap();
        assert!(tables.len() > 10, "{}", file.display());
        assert_eq!(tables, every, "{}", file.display());
        fs::remove_file(dir.path().join("outboard")).ok();
    }
}
