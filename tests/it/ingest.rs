//! `custody ingest`: verified write-once copies, digests that match the standard tools,
//! sources left untouched, and refusals that record nothing.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use custody::media::synth::Fixture;
use serde_json::Value;

use crate::support::{Store, b3sum, digest_with, media, mode, sha256sum, tool, write};

/// A DVR-style USB export: raw H.264 from channel 1, a WAV and a vendor blob FFmpeg cannot open.
fn dvr_export(store: &Store) -> PathBuf {
    let dir = store.work().join("export");
    media(Fixture::RawH264, &dir.join("dvr_ch01.h264"));
    media(Fixture::Wav, &dir.join("overhear.wav"));
    media(Fixture::Proprietary, &dir.join("vendor_blob.bin"));
    dir
}

/// `ingest --json` items keyed by name.
fn items_by_name(json: &Value) -> BTreeMap<String, Value> {
    json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| (i["name"].as_str().unwrap().to_owned(), i.clone()))
        .collect()
}

#[test]
fn ingest_of_a_dvr_folder_stores_read_only_copies_whose_digests_match_sha256sum_and_b3sum() {
    let store = Store::new();
    let dir = dvr_export(&store);
    let out = store
        .cmd(&["--json", "ingest", "--case", "24-1234", "--item", "3", "--source", "DVR ch1 USB export"])
        .arg(&dir)
        .run();
    let items = items_by_name(&out.status(0).json());
    let names: Vec<&str> = items.keys().map(String::as_str).collect();
    assert_eq!(names, ["export/dvr_ch01.h264", "export/overhear.wav", "export/vendor_blob.bin"]);
    for (name, item) in &items {
        let source = store.work().join(name);
        let sha = sha256sum(&source);
        assert_eq!(item["sha256"], sha, "{name}: SHA-256");
        assert_eq!(item["blake3"], b3sum(&source), "{name}: BLAKE3");
        assert_eq!(item["size"], fs::metadata(&source).unwrap().len(), "{name}: size");
        let object = store.object_path(&sha);
        assert!(object.is_file(), "{name}: no object at {}", object.display());
        if store.local_objects() {
            // (A bucket's objects are kept by its Object Lock retention: bucket.rs.)
            assert_eq!(mode(&object), 0o444, "{name}: object is not read-only");
        }
        assert!(
            fs::read(&object).unwrap() == fs::read(&source).unwrap(),
            "{name}: object bytes differ from the source"
        );
    }
    assert_eq!(store.object_files().len(), 3);
    assert_eq!(store.tmp_entries(), Vec::<PathBuf>::new(), "staging left behind");
    store.verify_ok();
}

#[test]
fn ingest_keeps_a_proprietary_blob_and_marks_it_not_decodable() {
    let store = Store::new();
    let dir = dvr_export(&store);
    let out = store.cmd(&["--json", "ingest", "--case", "24-1234", "--item", "3"]).arg(&dir).run();
    let items = items_by_name(&out.status(0).json());
    let blob = &items["export/vendor_blob.bin"];
    assert_eq!(blob["decodable"], false, "{blob:#}");
    assert!(blob["media"]["reason"].as_str().is_some_and(|r| !r.is_empty()), "no reason recorded: {blob:#}");
    assert!(store.object_path(blob["sha256"].as_str().unwrap()).is_file(), "the blob was not stored");
    // The real media next to it are decodable.
    assert_eq!(items["export/dvr_ch01.h264"]["decodable"], true);
    assert_eq!(items["export/overhear.wav"]["decodable"], true);
    // People are told too, by ingest's report and by show.
    store.cmd(&["show", "24-1234:3/export/vendor_blob.bin"]).run().status(0).stdout_has("not decodable by FFmpeg");
}

#[test]
fn tags_that_are_not_utf8_are_recorded_with_replacement_characters() {
    // Seen in the torture run: random bytes FFmpeg took for LRC lyrics, whose tags were
    // invalid UTF-8, made ingest write a spool it could not read back (exit 3).
    let store = Store::new();
    let lyrics =
        write(&store.work().join("overhear.lrc"), b"[ar:\xff\xfe\xc3]\n[ti:x\x80y]\n[00:01.00]one\n[00:02.00]two\n");
    let out = store.cmd(&["--json", "ingest", "--case", "24-1234", "--item", "7"]).arg(&lyrics).run();
    let json = out.status(0).json();
    let tags = &json["items"][0]["media"]["tags"];
    assert_eq!(tags, &serde_json::json!([["artist", "\u{fffd}\u{fffd}\u{fffd}"], ["title", "x\u{fffd}y"]]), "{json:#}");
    store.cmd(&["show", "24-1234:7/overhear.lrc"]).run().status(0).stdout_has("x\u{fffd}y");
    assert_eq!(store.tmp_entries(), Vec::<PathBuf>::new(), "staging left behind");
    store.verify_ok();
}

#[test]
fn ingest_leaves_the_source_files_unchanged_bytes_mtime_and_atime() {
    let store = Store::new();
    let dir = dvr_export(&store);
    let files = crate::support::files_under(&dir);
    let bytes: Vec<Vec<u8>> = files.iter().map(|f| fs::read(f).unwrap()).collect();
    let atime_moves = reads_move_atime(&store);
    for f in &files {
        set_old_times(f);
    }

    store.cmd(&["ingest", "--case", "24-1234", "--item", "3"]).arg(&dir).run().status(0);

    // Times first: reading the bytes back would move atime ourselves.
    for f in &files {
        assert_old_times(f, atime_moves);
    }
    for (f, before) in files.iter().zip(&bytes) {
        assert!(&fs::read(f).unwrap() == before, "{}: bytes changed", f.display());
    }
}

/// Old, distinct times: a plain read moves an atime older than the mtime (relatime).
const OLD_ATIME: i64 = 1_500_000_000;
const OLD_MTIME: i64 = 1_600_000_000;

fn set_old_times(p: &Path) {
    let f = fs::File::options().write(true).open(p).unwrap();
    let at = |s: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(s as u64);
    f.set_times(fs::FileTimes::new().set_accessed(at(OLD_ATIME)).set_modified(at(OLD_MTIME))).unwrap();
}

/// Precondition of the atime checks: on this filesystem a plain read does move atime.
fn reads_move_atime(store: &Store) -> bool {
    let control = write(&store.work().join("control.bin"), b"control");
    set_old_times(&control);
    let _ = fs::read(&control).unwrap();
    fs::metadata(&control).unwrap().atime() != OLD_ATIME
}

#[track_caller]
fn assert_old_times(f: &Path, atime_moves: bool) {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let m = fs::metadata(f).unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (OLD_MTIME, 0), "{}: mtime changed", f.display());
    if atime_moves && m.uid() == euid {
        assert_eq!(
            (m.atime(), m.atime_nsec()),
            (OLD_ATIME, 0),
            "{}: atime changed (read without O_NOATIME)",
            f.display()
        );
    } else {
        eprintln!("atime not checked: reads do not move atime here, or we do not own {}", f.display());
    }
}

#[test]
fn ingest_takes_an_empty_file_as_evidence() {
    let store = Store::new();
    let empty = store.file("card/EMPTY.DAT", b"");
    let out = store.cmd(&["--json", "ingest", "--case", "24-9", "--item", "1"]).arg(&empty).run();
    let item = out.status(0).json()["items"][0].clone();
    assert_eq!(item["size"], 0);
    assert_eq!(item["sha256"], sha256sum(&empty));
    assert_eq!(item["blake3"], b3sum(&empty));
    let object = store.object_path(&sha256sum(&empty));
    assert_eq!(fs::metadata(&object).expect("object of the empty file").len(), 0);
    store.verify_ok();
}

#[test]
fn reingesting_the_same_bytes_under_another_item_is_a_new_acquisition_stored_once() {
    let store = Store::new();
    let first = store.file("a/clip.bin", b"the same bytes twice");
    let second = store.file("b/copy-of-clip.bin", b"the same bytes twice");
    let one = store.cmd(&["--json", "ingest", "--case", "24-7", "--item", "1"]).arg(&first).run().status(0).json();
    let two = store.cmd(&["ingest", "--case", "24-7", "--item", "2"]).arg(&second).run();
    two.status(0).stdout_has("already in the store").stdout_has("i2");
    let sha = sha256sum(&first);
    assert_eq!(one["items"][0]["sha256"], sha);
    assert_eq!(one["items"][0]["existing_object"], false);
    assert_eq!(store.object_shas(), vec![sha.clone()], "the bytes must be stored once");
    let log = store.cmd(&["--json", "log", "--case", "24-7"]).run().status(0).json();
    let events = log["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "two acquisitions recorded");
    assert_eq!(events[1]["outputs"][0]["sha256"], sha);
    assert_eq!(events[1]["outputs"][0]["item"], "i2");
    assert_eq!(events[1]["outputs"][0]["acquisition"], "existing object");
    store.verify_ok();
}

#[test]
fn reingesting_bytes_whose_stored_object_is_damaged_exits_3_and_records_nothing() {
    let store = Store::new();
    let first = store.file("a/clip.bin", b"bytes taken into custody");
    store.cmd(&["ingest", "--case", "24-7", "--item", "1"]).arg(&first).run().status(0);
    // The object is damaged behind the tool's back; its name still says the old SHA-256.
    let object = store.object_path(&sha256sum(&first));
    store.flip_object_byte(&sha256sum(&first));
    let before = store.snapshot();
    let second = store.file("b/clip-again.bin", b"bytes taken into custody");
    let out = store.cmd(&["ingest", "--case", "24-7", "--item", "2"]).arg(&second).run();
    out.status(3).stderr_has("the stored object is damaged").stderr_has("custody verify");
    // Named where it is: its file, or its key in the bucket.
    match &store.bucket {
        None => out.stderr_has(&object.display().to_string()),
        Some(_) => out.stderr_has(&format!("/objects/{}/{}", &sha256sum(&first)[..2], &sha256sum(&first)[2..])),
    };
    store.assert_unchanged(&before);
}

#[test]
fn the_same_name_twice_in_one_exhibit_exits_2_and_records_nothing() {
    let store = Store::new();
    store.ingest_text("24-5", "1", "cam.bin", "first acquisition");
    let before = store.snapshot();
    // Different bytes under the same name in the same exhibit.
    let again = store.file("later/cam.bin", b"different bytes, same name");
    store
        .cmd(&["ingest", "--case", "24-5", "--item", "1"])
        .arg(&again)
        .run()
        .status(2)
        .stderr_has("already holds a file named \"cam.bin\"")
        .stderr_has("i1");
    store.assert_unchanged(&before);
    assert!(!store.object_path(&sha256sum(&again)).exists());
}

#[test]
fn two_paths_with_the_same_name_in_one_command_exit_2_and_record_nothing() {
    let store = Store::new();
    let a = store.file("a/ch01.h264", b"one");
    let b = store.file("b/ch01.h264", b"two");
    let before = store.snapshot();
    store.cmd(&["ingest", "--case", "24-5", "--item", "2"]).arg(&a).arg(&b).run().status(2).stderr_has("ch01.h264");
    store.assert_unchanged(&before);
}

#[test]
fn a_missing_path_exits_2_naming_it_and_records_nothing() {
    let store = Store::new();
    let present = store.file("present.bin", b"here");
    let missing = store.work().join("no-such-file.bin");
    let before = store.snapshot();
    store
        .cmd(&["ingest", "--case", "24-5", "--item", "1"])
        .arg(&present)
        .arg(&missing)
        .run()
        .status(2)
        .stderr_has(&missing.display().to_string())
        .stderr_has("does not exist");
    store.assert_unchanged(&before);
}

#[test]
fn a_directory_without_files_exits_2() {
    let store = Store::new();
    let empty = store.work().join("empty-export");
    fs::create_dir_all(empty.join("sub")).unwrap();
    let before = store.snapshot();
    store
        .cmd(&["ingest", "--case", "24-5", "--item", "1"])
        .arg(&empty)
        .run()
        .status(2)
        .stderr_has("no files to ingest");
    store.assert_unchanged(&before);
}

#[test]
fn a_case_or_item_with_a_slash_or_line_break_exits_2() {
    let store = Store::new();
    let file = store.file("f.bin", b"x");
    let before = store.snapshot();
    for (case, item, why) in [
        ("24/1234", "3", "contains '/'"),
        ("24-1234", "3/4", "contains '/'"),
        ("24\n1234", "3", "line break"),
        ("24-1234", "3\n", "line break"),
        ("24-1234", "", "is empty"),
        ("24:1234", "3", "contains ':'"),
        ("24-1234", "3\t4", "control character"),
    ] {
        store.cmd(&["ingest", "--case", case, "--item", item]).arg(&file).run().status(2).stderr_has(why);
    }
    store.assert_unchanged(&before);
}

#[test]
fn a_symlink_is_recorded_and_not_followed() {
    let store = Store::new();
    let outside = store.file("outside/secret.txt", b"not part of the export");
    let dir = store.work().join("export");
    write(&dir.join("ch01.bin"), b"channel one");
    std::os::unix::fs::symlink(&outside, dir.join("link-to-outside")).unwrap();
    let out = store.cmd(&["--json", "ingest", "--case", "24-6", "--item", "1"]).arg(&dir).run();
    let json = out.status(0).json();
    let names: Vec<&str> = json["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["export/ch01.bin"]);
    let links = json["symlinks"].as_array().unwrap();
    assert_eq!(links.len(), 1, "{json:#}");
    assert_eq!(links[0]["name"], "export/link-to-outside");
    assert_eq!(links[0]["target"], outside.display().to_string());
    assert!(!store.object_path(&sha256sum(&outside)).exists(), "the link's target was ingested");
    assert_eq!(store.object_files().len(), 1);
}

#[test]
fn a_fifo_is_skipped_with_a_warning() {
    let store = Store::new();
    let dir = store.work().join("export");
    write(&dir.join("ch01.bin"), b"channel one");
    let fifo = dir.join("pipe");
    tool("mkfifo", &[fifo.as_os_str()], store.work()).status(0);
    // If custody opened the FIFO it would block forever: the builder's timeout catches that.
    let out = store.cmd(&["--json", "ingest", "--case", "24-6", "--item", "2"]).arg(&dir).run();
    out.status(0).stderr_has("warning").stderr_has("pipe").stderr_has("FIFO");
    let json = out.json();
    assert_eq!(json["items"].as_array().unwrap().len(), 1);
    assert_eq!(json["skipped"][0]["name"], "export/pipe");
    assert_eq!(json["skipped"][0]["kind"], "FIFO");
}

#[test]
fn hard_links_become_one_object_with_two_names() {
    let store = Store::new();
    let dir = store.work().join("export");
    let a = write(&dir.join("a.bin"), b"linked twice");
    fs::hard_link(&a, dir.join("b.bin")).unwrap();
    let json = store.cmd(&["--json", "ingest", "--case", "24-8", "--item", "1"]).arg(&dir).run().status(0).json();
    let items = items_by_name(&json);
    let sha = sha256sum(&a);
    assert_eq!(items["export/a.bin"]["sha256"], sha);
    assert_eq!(items["export/b.bin"]["sha256"], sha);
    assert_eq!(items["export/b.bin"]["hardlink_of"], "export/a.bin");
    assert_ne!(items["export/a.bin"]["id"], items["export/b.bin"]["id"]);
    assert_eq!(store.object_shas(), vec![sha.clone()]);
    store.verify_ok();
}

#[test]
fn dvr_and_actual_time_record_the_clock_offset_as_dvr_minus_actual() {
    let store = Store::new();
    let file = store.file("cam.avi", b"pretend video");
    // The DVR showed 14:03:10 when the phone showed 14:05:27.250: the DVR is 2 min 17.25 s behind.
    let json = store
        .cmd(&["--json", "ingest", "--case", "24-1", "--item", "4"])
        .args(&["--dvr-time", "2024-05-01T14:03:10", "--actual-time", "2024-05-01T14:05:27.250"])
        .args(&["--time-reference", "officer's phone (network time)"])
        .arg(&file)
        .run()
        .status(0)
        .json();
    assert_eq!(json["clock"]["offset_ms"], -137_250);
    let show = store.cmd(&["--json", "show", "i1"]).run().status(0).json();
    assert_eq!(show["clock"]["offset_ms"], -137_250);
    assert_eq!(show["clock"]["reference"], "officer's phone (network time)");
    store.cmd(&["show", "i1"]).run().status(0).stdout_has("-00:02:17.250").stdout_has("behind");

    // And a DVR that runs ahead gives a positive offset.
    let file2 = store.file("cam2.avi", b"pretend video 2");
    let json = store
        .cmd(&["--json", "ingest", "--case", "24-1", "--item", "5"])
        .args(&["--dvr-time", "2024-05-01 10:00:30", "--actual-time", "2024-05-01T10:00:00"])
        .arg(&file2)
        .run()
        .status(0)
        .json();
    assert_eq!(json["clock"]["offset_ms"], 30_000);
}

#[test]
fn a_malformed_clock_offset_exits_2() {
    let store = Store::new();
    let file = store.file("cam.avi", b"pretend video");
    let before = store.snapshot();
    for bad in ["00:02:17", "+1:2", "+00:61:00", "+00:00:60", "two minutes", "+00:02:17.1234", ""] {
        store
            .cmd(&["ingest", "--case", "24-1", "--item", "4", "--clock-offset", bad])
            .arg(&file)
            .run()
            .status(2)
            .stderr_has("--clock-offset");
    }
    store.assert_unchanged(&before);
    // A good one works.
    let json = store
        .cmd(&["--json", "ingest", "--case", "24-1", "--item", "4", "--clock-offset", "-00:00:42"])
        .arg(&file)
        .run()
        .status(0)
        .json();
    assert_eq!(json["clock"]["offset_ms"], -42_000);
}

#[test]
fn also_md5_sha1_records_digests_matching_md5sum_and_sha1sum() {
    let store = Store::new();
    let file = store.file("dvr.bin", b"a DVR that lists MD5 and SHA-1 in its export log\n");
    store.cmd(&["ingest", "--case", "24-2", "--item", "1", "--also", "md5,sha1"]).arg(&file).run().status(0);
    let md5 = digest_with("md5sum", &file);
    let sha1 = digest_with("sha1sum", &file);
    let log = store.cmd(&["--json", "log", "i1"]).run().status(0).json();
    let recorded = &log["events"][0]["outputs"][0];
    assert_eq!(recorded["md5"], md5);
    assert_eq!(recorded["sha1"], sha1);
    store.cmd(&["show", "i1"]).run().status(0).stdout_has(&md5).stdout_has(&sha1);
}

/// Every changing command ends with the new head: `init` (and `package`) in full, with the
/// advice to keep it outside the store; the others short, `ledger head 2:6779aed9…` (it was a
/// 200-character line after every command); `--json` and `custody log` give it whole.
#[test]
fn every_changing_command_prints_the_new_ledger_head() {
    let store = Store::new();
    let recomputed = || {
        let verified = store.cmd(&["--json", "verify"]).run().status(0).json();
        format!("{}:{}", verified["head"]["seq"], verified["head"]["hash"].as_str().unwrap())
    };
    let init = &store.init;
    assert_eq!(init.head(), recomputed(), "the printed head is not the ledger's head");
    init.stdout_has("custody verify --against");
    let check_short = |out: &crate::support::Output, seq: u64| {
        let full = recomputed();
        let short = out.short_head();
        assert!(short.starts_with(&format!("{seq}:")) && full.starts_with(&short), "{short} is not the head {full}");
        let text = format!("{}{}", out.stdout(), out.stderr());
        let line = text.lines().find(|l| l.starts_with("ledger head")).unwrap();
        assert!(line.chars().count() <= 30, "a long head line: {line:?}");
        assert!(!text.contains("--against"), "the --against advice after every command:\n{text}");
    };
    let file = store.file("f.bin", b"evidence");
    check_short(store.cmd(&["ingest", "--case", "24-3", "--item", "1"]).arg(&file).run().status(0), 2);
    check_short(store.cmd(&["transfer", "i1", "--to", "Det. Ruiz", "--reason", "review"]).run().status(0), 3);
    // hash --record keeps stdout a pure checksum list: its head goes to stderr.
    let hashed = store.cmd(&["hash", "--record", "--case", "24-3"]).arg(&file).run();
    hashed.status(0);
    assert!(hashed.stderr().contains("ledger head 4:"), "no head on stderr: {}", hashed.stderr());
    check_short(&hashed, 4);
    // Whole in --json and at the end of `custody log`.
    let json =
        store.cmd(&["--json", "transfer", "i1", "--to", "Property", "--reason", "storage"]).run().status(0).json();
    let full = recomputed();
    assert_eq!(format!("{}:{}", json["head"]["seq"], json["head"]["hash"].as_str().unwrap()), full);
    assert_eq!(store.cmd(&["log"]).run().status(0).head(), full);
}

#[test]
fn deep_check_finds_no_errors_in_a_valid_file_and_errors_in_a_corrupted_one() {
    let store = Store::new();
    let good = media(Fixture::H264Mp4, &store.work().join("good/h264_bframes.mp4"));
    // Flip every 97th byte of the middle tenth of the file (inside mdat: the index in moov
    // stays intact, so the file still opens but its frames do not decode cleanly).
    let mut bytes = fs::read(&good).unwrap();
    let n = bytes.len();
    for i in (n * 45 / 100..n * 55 / 100).step_by(97) {
        bytes[i] ^= 0xff;
    }
    let bad = write(&store.work().join("bad/h264_bframes.mp4"), &bytes);
    // Oracle: the ffmpeg CLI agrees the first is clean and the second is not.
    let decode = |p: &Path| {
        tool(
            "ffmpeg",
            &[
                OsStr::new("-nostdin"),
                OsStr::new("-v"),
                OsStr::new("error"),
                OsStr::new("-i"),
                p.as_os_str(),
                OsStr::new("-f"),
                OsStr::new("null"),
                OsStr::new("-"),
            ],
            store.work(),
        )
    };
    assert!(decode(&good).stderr.is_empty(), "ffmpeg reports errors in the good file");
    assert!(!decode(&bad).stderr.is_empty(), "ffmpeg reports no errors in the corrupted file");

    let deep = |p: &Path, item: &str| -> Value {
        let json =
            store.cmd(&["--json", "ingest", "--case", "24-4", "--item", item, "--deep"]).arg(p).run().status(0).json();
        json["items"][0]["media"]["deep"].clone()
    };
    let clean = deep(&good, "1");
    assert_eq!(clean["errors"], 0, "{clean:#}");
    assert!(clean["frames"].as_u64().unwrap() >= 75, "{clean:#}");
    let broken = deep(&bad, "2");
    assert!(broken["errors"].as_u64().unwrap() > 0, "no decode errors recorded: {broken:#}");
    assert!(!broken["error_positions"].as_array().unwrap().is_empty(), "{broken:#}");
}

/// An ingest of more files than one event holds is recorded as consecutive events, written in
/// one transaction: every file is recorded, in order, with contiguous item IDs; the report
/// summarises instead of printing a thousand lines; and a refusal found in the last part
/// records none of the earlier parts either.
#[test]
fn an_ingest_of_many_files_is_recorded_in_parts_all_or_nothing() {
    const FILES: usize = custody::cmd::ingest::FILES_PER_EVENT + 5;
    let store = Store::new();
    if !store.sqlite_ledger() {
        return; // tampers with or reads ledger.db itself: the agency ledger's own tests are in agency.rs
    }
    let dir = store.work().join("phone");
    // The last file, by name, is ingested first, so the big ingest collides on it at the end.
    let last = write(&dir.join(format!("f{:05}.txt", FILES - 1)), b"the last file\n");
    store.cmd(&["ingest", "--case", "24-77", "--item", "1"]).arg(&dir).run().status(0);
    fs::remove_file(&last).unwrap();
    for i in 0..FILES {
        write(&dir.join(format!("f{i:05}.txt")), format!("file {i}\n"));
    }

    let before = store.snapshot();
    let out = store.cmd(&["ingest", "--case", "24-77", "--item", "1"]).arg(&dir).run();
    out.status(2).stderr_has(&format!("already holds a file named \"phone/f{:05}.txt\"", FILES - 1));
    out.stderr_has("nothing was recorded");
    store.assert_unchanged(&before);

    let out = store.cmd(&["ingest", "--case", "24-77", "--item", "2"]).arg(&dir).run();
    out.status(0)
        .stdout_has(&format!("Ingested {FILES} files"))
        .stdout_has(&format!("… and {} more files, items i12 to i{}", FILES - 10, FILES + 1))
        .stdout_has(&format!("in all: {FILES} new objects, 0 already in the store, 0 hard links"))
        .stdout_has("Recorded as 2 consecutive ingest events of up to 1000 files each, in one transaction");
    assert!(out.stdout().lines().count() < 40, "the report lists every file:\n{}", out.stdout());
    assert_eq!(store.event_count(), 4, "init, the first ingest and two parts");

    // The two events: parts 1 and 2 of 2, the files in order, item IDs contiguous.
    let conn = store.sqlite();
    let mut stmt = conn.prepare("SELECT body FROM events ORDER BY seq DESC LIMIT 2").unwrap();
    let mut events: Vec<Value> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|b| serde_json::from_str(&b.unwrap()).unwrap())
        .collect();
    events.reverse();
    let mut n = 0;
    for (part, event) in events.iter().enumerate() {
        assert_eq!(event["action"], "ingest");
        assert_eq!(event["params"]["part"], serde_json::json!([part + 1, 2]));
        for out in event["outputs"].as_array().unwrap() {
            assert_eq!(out["name"], format!("phone/f{n:05}.txt"));
            assert_eq!(out["item"], format!("i{}", n + 2));
            assert_eq!(out["sha256"], sha256sum(&dir.join(format!("f{n:05}.txt"))));
            n += 1;
        }
    }
    assert_eq!(n, FILES);
    store.verify_ok();

    // Scripts still get every file.
    let dir2 = store.work().join("again");
    fs::rename(&dir, &dir2).unwrap();
    let out = store.cmd(&["--json", "ingest", "--case", "24-77", "--item", "3"]).arg(&dir2).run();
    let items = out.status(0).json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), FILES);
    assert!(items.iter().all(|i| i["existing_object"] == true), "the same bytes again are existing objects");
    assert_eq!(items[FILES - 1]["name"], format!("again/f{:05}.txt", FILES - 1));
}

/// Folders of the same name given together are taken in side by side when their files differ
/// in name, and refused, recording nothing, when two files would share a name (two files of
/// the same name: `two_paths_with_the_same_name_in_one_command_exit_2_and_record_nothing`).
#[test]
fn folders_of_one_name_are_taken_together_unless_two_files_would_share_a_name() {
    let store = Store::new();
    store.file("day1/export/ch01.dav", b"day one");
    store.file("day2/export/ch02.dav", b"day two");
    let clash = store.file("day3/export/ch01.dav", b"day three");
    let out = store
        .cmd(&["--json", "ingest", "--case", "24-5", "--item", "2"])
        .arg(store.work().join("day1/export"))
        .arg(store.work().join("day2/export"))
        .run();
    let names: Vec<String> = items_by_name(&out.status(0).json()).into_keys().collect();
    assert_eq!(names, ["export/ch01.dav", "export/ch02.dav"]);
    let before = store.snapshot();
    store
        .cmd(&["ingest", "--case", "24-5", "--item", "3"])
        .arg(store.work().join("day1/export"))
        .arg(clash.parent().unwrap())
        .run()
        .status(2)
        .stderr_has("would both be named \"export/ch01.dav\"");
    store.assert_unchanged(&before);
}

/// `len` bytes no two runs of which repeat nearby (xorshift), written to `path`.
fn noise(path: &Path, len: usize) -> PathBuf {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    write(path, bytes)
}

#[test]
fn a_source_large_enough_to_be_read_mapped_is_copied_and_hashed_exactly() {
    // Past 16 MiB a source is read through a memory map instead of plain reads; the size
    // is neither a multiple of a page nor of the 1 MiB stretches the copy works in.
    let store = Store::new();
    let source = noise(&store.work().join("bodycam/axon_0042.mp4"), (24 << 20) + 12_345);
    let atime_moves = reads_move_atime(&store);
    set_old_times(&source);
    let out = store.cmd(&["--json", "ingest", "--case", "24-9", "--item", "2"]).arg(&source).run();
    let item = &out.status(0).json()["items"][0];
    assert_old_times(&source, atime_moves);
    let sha = sha256sum(&source);
    assert_eq!(item["sha256"], sha);
    assert_eq!(item["blake3"], b3sum(&source));
    assert_eq!(item["size"], (24 << 20) + 12_345);
    assert!(fs::read(store.object_path(&sha)).unwrap() == fs::read(&source).unwrap(), "object bytes differ");
    store.verify_ok();
}

#[test]
fn a_source_cut_short_during_the_copy_exits_2_records_nothing_and_leaves_nothing_behind() {
    // Large enough to be read through a memory map, where reading past the new end raises
    // SIGBUS, which would otherwise kill the process and leave its staging files behind.
    let store = Store::new();
    let source = noise(&store.work().join("dvr_ch03.dav"), 256 << 20);
    let before = store.snapshot();
    let mut running = store.cmd(&["ingest", "--case", "24-9", "--item", "3"]).arg(&source).spawn();
    // Cut the source short once the copy is under way: its partial file in the store's
    // staging area has passed 8 MiB (the copy reads at most 64 MiB ahead of what it wrote).
    let started = std::time::Instant::now();
    let copying = || {
        // Read tolerantly: the command creates and renames these files as this looks.
        let dirs = fs::read_dir(store.path().join("tmp")).into_iter().flatten().flatten();
        dirs.flat_map(|d| fs::read_dir(d.path()).into_iter().flatten().flatten()).any(|f| {
            f.file_name().to_string_lossy().starts_with("partial-") && f.metadata().is_ok_and(|m| m.len() >= 8 << 20)
        })
    };
    while !copying() {
        assert!(!running.exited(), "the ingest ended before the copy could be cut short");
        assert!(started.elapsed() < Duration::from_secs(60), "the copy never started");
        std::thread::sleep(Duration::from_millis(1));
    }
    fs::OpenOptions::new().write(true).open(&source).unwrap().set_len(1 << 20).unwrap();
    running
        .wait()
        .status(2)
        .stderr_has("dvr_ch03.dav changed while it was being copied")
        .stderr_has("nothing was recorded");
    store.assert_unchanged(&before);
}
