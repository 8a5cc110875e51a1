//! Wall-clock positions: the DVR's time zone recorded at ingest, times written with `Z`, an
//! offset or a zone converted through it (daylight-saving changes included) or refused when it
//! is unknown, recording starts per file and from DVR file names, and the clock flags' words.
//!
//! The recordings are the generated H.264 MP4 (25 fps, 3 s, 75 frames): frame N is on screen
//! from N × 40 ms, so the frame a wall-clock time must give is plain arithmetic on the start.

use std::path::PathBuf;

use custody::media::synth::{self, Fixture};
use serde_json::Value;

use crate::support::*;

/// The generated H.264 MP4 at `work/REL`.
fn video(store: &Store, rel: &str) -> PathBuf {
    let path = store.work().join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("media dir");
    synth::generate(Fixture::H264Mp4, &path).expect("generating the H.264 MP4");
    path
}

/// Ingest `path` as 24-1234:ITEM with the clock flags `clock`; returns the ingest JSON.
#[track_caller]
fn ingest(store: &Store, item: &str, path: &PathBuf, clock: &[&str]) -> Value {
    store.cmd(&["--json", "ingest", "--case", "24-1234", "--item", item]).args(clock).arg(path).run().status(0).json()
}

/// `still ITEM --at POS`: the still's facts.
#[track_caller]
fn still_at(store: &Store, item: &str, pos: &str) -> Value {
    let json = store.cmd(&["--json", "still", item, "--at", pos]).run().status(0).json();
    json["items"][0]["facts"].clone()
}

/// `still ITEM --at POS` must exit 2 saying `why`, recording nothing.
#[track_caller]
fn refused(store: &Store, item: &str, pos: &str, why: &str) -> Output {
    let before = store.snapshot();
    let out = store.cmd(&["still", item, "--at", pos]).run().status(2).stderr_has(why).clone();
    store.assert_unchanged(&before);
    out
}

#[test]
fn wall_clock_times_with_z_an_offset_or_a_zone_are_converted_through_the_dvr_time_zone() {
    let store = Store::new();
    let path = video(&store, "cam.mp4");
    // The DVR runs 1 s ahead: its 14:00:00 at the first frame was 13:59:59 CDT (UTC-05:00).
    let clock = ["--clock-offset", "+00:00:01", "--timezone", "America/Chicago"];
    let json = ingest(&store, "1", &path, &[&clock[..], &["--recording-start", "2024-05-01T14:00:00"]].concat());
    assert_eq!(json["timezone"], "America/Chicago");
    let id = json["items"][0]["id"].as_str().expect("id").to_owned();
    for (pos, frame) in [
        ("2024-05-01T14:00:00", 25),                // the DVR's local clock, corrected: 1 s in
        ("2024-05-01T19:00:01Z", 50),               // 14:00:01 CDT
        ("2024-05-02T00:00:00.500+05:00", 37),      // 19:00:00.5 UTC = 14:00:00.5 CDT
        ("2024-05-01T12:00:00-07:00", 25),          // 19:00 UTC: not 12:00, before the recording
        ("2024-05-01T21:00:01[Europe/Berlin]", 50), // CEST, UTC+02:00
        ("2024-05-01T14:00:01-05:00[America/Chicago]", 50),
    ] {
        let facts = still_at(&store, &id, pos);
        assert_eq!(facts["frame"], frame, "--at {pos}: {facts:#}");
        assert_eq!(facts["asked"], pos, "the event keeps the position as it was typed");
    }
    // The still says its corrected time on the DVR's clock, with its offset.
    let facts = still_at(&store, &id, "frame:25");
    assert_eq!(facts["wall_clock"], "2024-05-01T14:00:00.000-05:00");
    // An offset the named zone did not have then is refused, not guessed.
    refused(&store, &id, "2024-05-01T14:00:01-06:00[America/Chicago]", "not UTC-06:00");
    store.cmd(&["show", &id]).run().status(0).stdout_has("America/Chicago").stdout_has("2024-05-01T13:59:59.000-05:00");
}

#[test]
fn a_recording_across_the_spring_forward_change_counts_the_hour_the_clocks_skipped() {
    let store = Store::new();
    let path = video(&store, "cam.mp4");
    // America/Chicago went from 01:59:59 CST to 03:00:00 CDT on 2024-03-10: the recording
    // starts one second before, so its frame 25 was shown at 03:00:00 CDT.
    let flags = ["--clock-offset", "0", "--timezone", "America/Chicago", "--recording-start", "2024-03-10T01:59:59"];
    let id = ingest(&store, "1", &path, &flags)["items"][0]["id"].as_str().expect("id").to_owned();
    for (pos, frame) in [
        ("2024-03-10T03:00:00", 25),
        ("2024-03-10T03:00:01.500", 62),
        ("2024-03-10T08:00:00Z", 25),
        ("2024-03-10T01:59:59.500", 12),
    ] {
        assert_eq!(still_at(&store, &id, pos)["frame"], frame, "--at {pos}");
    }
    assert_eq!(still_at(&store, &id, "frame:50")["wall_clock"], "2024-03-10T03:00:01.000-05:00");
    assert_eq!(still_at(&store, &id, "frame:0")["wall_clock"], "2024-03-10T01:59:59.000-06:00");
    refused(&store, &id, "2024-03-10T02:30:00", "never showed on a clock in America/Chicago");
    // A clip takes the same positions.
    let clip = store
        .cmd(&["--json", "clip", &id, "--from", "2024-03-10T03:00:00", "--to", "2024-03-10T08:00:01Z"])
        .run()
        .status(0)
        .json();
    let asked = &clip["requested"];
    assert_eq!((asked["first_frame"].as_u64(), asked["last_frame"].as_u64()), (Some(25), Some(49)), "{clip:#}");
    assert_eq!(asked["to"], "2024-03-10T08:00:01Z", "the position as typed: {clip:#}");
}

#[test]
fn a_time_the_clocks_showed_twice_in_the_autumn_needs_its_offset() {
    let store = Store::new();
    let path = video(&store, "cam.mp4");
    // 2024-11-03 in Chicago: 01:00 to 02:00 happened at UTC-05:00, then again at UTC-06:00.
    let flags = ["--clock-offset", "0", "--timezone", "America/Chicago", "--recording-start", "2024-11-03T00:59:59"];
    let id = ingest(&store, "1", &path, &flags)["items"][0]["id"].as_str().expect("id").to_owned();
    let said = refused(&store, &id, "2024-11-03T01:00:01", "happened twice in America/Chicago").stderr();
    assert!(said.contains("2024-11-03T01:00:01-05:00") && said.contains("-06:00"), "the message offers both: {said}");
    assert_eq!(still_at(&store, &id, "2024-11-03T01:00:01-05:00")["frame"], 50);
    // The second 01:00:01 is an hour later: past the end, said on the corrected clock.
    refused(&store, &id, "2024-11-03T01:00:01-06:00", "2024-11-03T01:00:01-06:00 is after the end of the recording");

    // A recording whose corrected start is itself in the fold cannot be placed in the named
    // zone: ingest says so and takes the DVR's fixed offset instead.
    let other = video(&store, "other.mp4");
    let before = store.snapshot();
    store
        .cmd(&["ingest", "--case", "24-1234", "--item", "2", "--clock-offset", "0", "--timezone", "America/Chicago"])
        .args(&["--recording-start", "2024-11-03T01:30:00"])
        .arg(&other)
        .run()
        .status(2)
        .stderr_has("happened twice")
        .stderr_has("--timezone");
    store.assert_unchanged(&before);
    let flags = ["--clock-offset", "0", "--timezone", "-05:00", "--recording-start", "2024-11-03T01:30:00"];
    let id = ingest(&store, "2", &other, &flags)["items"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(still_at(&store, &id, "2024-11-03T06:30:01Z")["frame"], 25);
}

#[test]
fn a_time_with_a_zone_is_refused_when_the_dvr_zone_is_unknown() {
    let store = Store::new();
    let path = video(&store, "cam.mp4");
    let flags = ["--clock-offset", "0", "--recording-start", "2024-05-01T14:00:00"];
    let id = ingest(&store, "1", &path, &flags)["items"][0]["id"].as_str().expect("id").to_owned();
    // Without a zone the time is the DVR's local clock, as always.
    assert_eq!(still_at(&store, &id, "2024-05-01T14:00:01")["frame"], 25);
    for pos in ["2024-05-01T14:00:01+05:00", "2024-05-01T14:00:01-07:00", "2024-05-01T14:00:01Z"] {
        refused(&store, &id, pos, "the DVR's time zone was not recorded");
        let before = store.snapshot();
        store
            .cmd(&["clip", &id, "--from", pos, "--to", "2024-05-01T14:00:02"])
            .run()
            .status(2)
            .stderr_has("the DVR's time zone was not recorded");
        store.assert_unchanged(&before);
    }
}

#[test]
fn a_wall_clock_time_outside_the_recording_is_told_as_typed_against_the_corrected_span() {
    let store = Store::new();
    let path = video(&store, "cam.mp4");
    // The DVR runs 2 s behind: its 14:00:00 was 14:00:02.
    let flags = ["--clock-offset", "-00:00:02", "--recording-start", "2024-05-01T14:00:00"];
    let id = ingest(&store, "1", &path, &flags)["items"][0]["id"].as_str().expect("id").to_owned();
    let span = "runs from 2024-05-01T14:00:02.000 to 2024-05-01T14:00:05.000 on the corrected DVR clock";
    refused(&store, &id, "2024-05-01T14:00:09", "2024-05-01T14:00:09 is after the end of the recording")
        .stderr_has(span);
    refused(&store, &id, "2024-05-01T14:00:05", "is after the end").stderr_has(span);
    refused(&store, &id, "2024-05-01T14:00:01", "2024-05-01T14:00:01 is before the recording").stderr_has(span);
    assert_eq!(still_at(&store, &id, "2024-05-01T14:00:04.999")["frame"], 74);
}

#[test]
fn a_clock_offset_of_0_is_accepted_and_a_dvr_time_without_a_date_says_what_form_is_wanted() {
    let store = Store::new();
    let file = store.file("cam.avi", b"pretend video");
    let before = store.snapshot();
    let said = store
        .cmd(&[
            "ingest",
            "--case",
            "24-1",
            "--item",
            "1",
            "--dvr-time",
            "16:03:10",
            "--actual-time",
            "2024-05-01T16:05:27",
        ])
        .arg(&file)
        .run()
        .status(2)
        .stderr_has("--dvr-time \"16:03:10\": it has no date")
        .stderr_has("YYYY-MM-DDTHH:MM:SS")
        .stderr();
    assert!(!said.contains("parse"), "a parser's words instead of the form wanted: {said}");
    store.assert_unchanged(&before);
    let json = store
        .cmd(&["--json", "ingest", "--case", "24-1", "--item", "1", "--clock-offset", "0"])
        .arg(&file)
        .run()
        .status(0)
        .json();
    assert_eq!(json["clock"]["offset_ms"], 0);
    assert_eq!(json["clock"]["offset"], "+00:00:00.000");
}

#[test]
fn one_recording_start_for_several_media_files_is_warned_about() {
    let store = Store::new();
    let dvr = store.work().join("DVR");
    video(&store, "DVR/ch01.mp4");
    synth::generate(Fixture::Wav, &dvr.join("ch01.wav")).expect("wav");
    store.file("DVR/export.txt", "exported by the DVR\n");
    let out = store
        .cmd(&[
            "ingest",
            "--case",
            "24-1",
            "--item",
            "1",
            "--clock-offset",
            "0",
            "--recording-start",
            "2024-05-01T14:00:00",
        ])
        .arg(&dvr)
        .run()
        .status(0)
        .stderr_has("--recording-start 2024-05-01T14:00:00.000 applies to all 2 media files")
        .stderr_has("DVR/ch01.mp4, DVR/ch01.wav")
        .clone();
    out.stdout_has("warning: --recording-start").stdout_has("Recording start: 2024-05-01T14:00:00.000");
    // One media file (and a text file): nothing to warn about.
    let single = store.work().join("single");
    video(&store, "single/cam.mp4");
    store.file("single/notes.txt", "notes\n");
    store
        .cmd(&[
            "ingest",
            "--case",
            "24-1",
            "--item",
            "2",
            "--clock-offset",
            "0",
            "--recording-start",
            "2024-05-01T14:00:00",
        ])
        .arg(&single)
        .run()
        .status(0)
        .stderr_lacks("warning");
}

#[test]
fn recording_starts_given_per_file_or_read_from_dvr_names_put_each_file_on_its_own_clock() {
    let store = Store::new();
    let dvr = store.work().join("DVR");
    for rel in ["DVR/ch01_20240501_140000.mp4", "DVR/CH02/20240501140500.mp4", "DVR/CH03/2024-05-01_14-10-00.mp4"] {
        video(&store, rel);
    }
    video(&store, "DVR/CH04/cam.mp4");
    video(&store, "DVR/CH05/clip.mp4");
    let out = store
        .cmd(&["ingest", "--case", "24-1", "--item", "1", "--clock-offset", "0", "--recording-start", "from-name"])
        .args(&["--recording-start", "CH04/cam.mp4=2024-05-01T15:00:00"])
        .arg(&dvr)
        .run()
        .status(0)
        .clone();
    out.stdout_has("recording start 2024-05-01T14:00:00.000 on the DVR clock, read from its name (20240501_140000)")
        .stdout_has("recording start 2024-05-01T14:05:00.000 on the DVR clock, read from its name (20240501140500)")
        .stdout_has(
            "recording start 2024-05-01T14:10:00.000 on the DVR clock, read from its name (2024-05-01_14-10-00)",
        )
        .stdout_has("recording start 2024-05-01T15:00:00.000 on the DVR clock, given for this file")
        .stderr_has("no recording start in the name of 1 media file (DVR/CH05/clip.mp4)");
    // The ledger records each start with the file, and where it came from.
    let log = store.cmd(&["--json", "log", "--case", "24-1"]).run().status(0).json();
    let outputs = log["events"].as_array().expect("events").last().expect("the ingest")["outputs"].clone();
    let facts = |name: &str| {
        outputs
            .as_array()
            .expect("outputs")
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("{name}"))
            .clone()
    };
    let first = facts("DVR/ch01_20240501_140000.mp4");
    assert_eq!(first["recording_start"], "2024-05-01T14:00:00.000");
    assert_eq!(first["recording_start_from"], "file name");
    assert_eq!(first["recording_start_in_name"], "20240501_140000");
    assert_eq!(facts("DVR/CH04/cam.mp4")["recording_start_from"], "--recording-start FILE=TIME");
    assert_eq!(facts("DVR/CH05/clip.mp4").get("recording_start"), None);
    // Each file's wall-clock positions count from its own start.
    for (item, pos) in [
        ("24-1:1/DVR/ch01_20240501_140000.mp4", "2024-05-01T14:00:01"),
        ("24-1:1/DVR/CH02/20240501140500.mp4", "2024-05-01T14:05:01"),
        ("24-1:1/DVR/CH03/2024-05-01_14-10-00.mp4", "2024-05-01T14:10:01"),
        ("24-1:1/DVR/CH04/cam.mp4", "2024-05-01T15:00:01"),
    ] {
        assert_eq!(still_at(&store, item, pos)["frame"], 25, "{item} --at {pos}");
    }
    store
        .cmd(&["show", "24-1:1/DVR/CH02/20240501140500.mp4"])
        .run()
        .status(0)
        .stdout_has("Rec start 2024-05-01T14:05:00.000 (DVR time), read from its name (20240501140500)");

    // A FILE that names no file, or more than one, is refused before anything is copied.
    for (arg, why) in
        [("nope.mp4=2024-05-01T15:00:00", "no file of this ingest"), ("mp4=2024-05-01T15:00:00", "no file")]
    {
        let before = store.snapshot();
        store
            .cmd(&["ingest", "--case", "24-1", "--item", "2", "--recording-start", arg])
            .arg(&dvr)
            .run()
            .status(2)
            .stderr_has(why);
        store.assert_unchanged(&before);
    }
    video(&store, "twice/a/cam.mp4");
    video(&store, "twice/b/cam.mp4");
    let before = store.snapshot();
    store
        .cmd(&["ingest", "--case", "24-1", "--item", "3", "--recording-start", "cam.mp4=2024-05-01T15:00:00"])
        .arg(store.work().join("twice"))
        .run()
        .status(2)
        .stderr_has("names 2 files (twice/a/cam.mp4, twice/b/cam.mp4)");
    store.assert_unchanged(&before);
}

#[test]
fn a_clip_keeps_the_wall_clock_of_its_own_first_frame_not_the_recording_start() {
    let store = Store::new();
    let path = video(&store, "cam.mp4");
    let flags = ["--clock-offset", "0", "--timezone", "-05:00", "--recording-start", "2024-05-01T14:00:00"];
    let id = ingest(&store, "1", &path, &flags)["items"][0]["id"].as_str().expect("id").to_owned();
    // Frames 25..62 of the original: the clip's frame 0 was on screen at 14:00:01.
    let clip = store.cmd(&["--json", "clip", &id, "--from", "frame:25", "--to", "frame:62", "--mode", "exact"]).run();
    let clip = clip.status(0).json()["item"].as_str().expect("clip item").to_owned();
    assert_eq!(still_at(&store, &clip, "frame:0")["wall_clock"], "2024-05-01T14:00:01.000-05:00");
    assert_eq!(still_at(&store, &clip, "2024-05-01T14:00:01.500")["frame"], 12);
    assert_eq!(still_at(&store, &clip, "2024-05-01T19:00:02Z")["frame"], 25);
    refused(&store, &clip, "2024-05-01T14:00:00.500", "is before the recording")
        .stderr_has("runs from 2024-05-01T14:00:01.000-05:00 to 2024-05-01T14:00:02.520-05:00");
    // And a clip of the clip counts both starts.
    let inner =
        store.cmd(&["--json", "clip", &clip, "--from", "frame:10", "--to", "frame:20", "--mode", "exact"]).run();
    let inner = inner.status(0).json()["item"].as_str().expect("clip item").to_owned();
    assert_eq!(still_at(&store, &inner, "frame:0")["wall_clock"], "2024-05-01T14:00:01.400-05:00");
}
