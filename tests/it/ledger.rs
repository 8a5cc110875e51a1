//! The ledger as users and outside checkers see it: an export that a short standard-library
//! script re-verifies, concurrent writers that queue rather than fork the chain, hand-offs,
//! and the ways of naming an item.

use std::fs;
use std::path::Path;

use crate::support::{COMMITTED_PY, Output, Store, sha256sum, tool};

/// An independent checker of `custody export` output, as docs/ledger.md describes the format:
/// python3 standard library only.
/// (`committed` is support::COMMITTED_PY, prepended.)
const VERIFY_PY: &str = r#"
import hashlib, json, sys

PREFIX = b"custody-ledger-event-v1\0"
prev, seq = "0" * 64, 0
with open(sys.argv[1], encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
        record = json.loads(line)
        event = record["event"]
        body = canonical(committed(event))
        digest = hashlib.sha256(PREFIX + body.encode("utf-8")).hexdigest()
        if digest != record["hash"]:
            sys.exit(f"line {n}: event {event.get('seq')} does not match its hash")
        if event["seq"] != seq + 1:
            sys.exit(f"line {n}: event {event['seq']} follows event {seq}")
        if event["prev"] != prev:
            sys.exit(f"line {n}: event {event['seq']} does not link to the one before")
        prev, seq = digest, event["seq"]
print(f"OK {seq}:{prev}")
"#;

fn python_verify(dir: &Path, export: &Path) -> Output {
    let script = crate::support::write(&dir.join("verify_ledger.py"), format!("{COMMITTED_PY}{VERIFY_PY}"));
    tool("python3", &[script.as_os_str(), export.as_os_str()], dir)
}

#[test]
fn export_reverifies_with_a_short_standard_library_python_script() {
    let store = Store::new();
    // Text that canonical encoding must treat exactly as Python's json does: non-ASCII,
    // quotes, backslashes, control characters.
    let file = store.file("export/Zeugé 証拠.txt", "evidence\n");
    store
        .cmd(&["ingest", "--case", "24-1234", "--item", "3"])
        .args(&["--source", "DVR \"ch3\" C:\\export", "--note", "tab\there, bell\u{7} and emoji 😀, line\nbreak"])
        .arg(&file)
        .run()
        .status(0);
    store.cmd(&["transfer", "i1", "--to", "Det. Ærø", "--reason", "review — urgent"]).run().status(0);
    let head = store.head();

    let export = store.work().join("ledger.jsonl");
    store.cmd(&["export", "--out"]).arg(&export).run().status(0).stdout_has("Exported 3 events");
    assert_eq!(fs::read_to_string(&export).unwrap().lines().count(), 3);
    // Standard output carries the same lines.
    let stdout = store.cmd(&["export"]).run();
    stdout.status(0).stdout_is(fs::read(&export).unwrap());

    python_verify(store.work(), &export).status(0).stdout_is(format!("OK {head}\n"));

    // The script is not a rubber stamp: an edited export fails it.
    let text = fs::read_to_string(&export).unwrap();
    let edited = text.replacen("Det. Ærø", "Det. Smith", 1);
    assert_ne!(edited, text);
    let tampered = crate::support::write(&store.work().join("tampered.jsonl"), edited);
    python_verify(store.work(), &tampered).status(1).stderr_has("event 3 does not match its hash");
    // So does an edit of a member a release withholds (the source path is hashed as a
    // commitment, not left out of the hash).
    let source = file.display().to_string();
    assert!(text.contains(&format!("\"source_path\":\"{source}\"")), "the export holds the source path in full");
    let edited = text.replacen(&format!("\"source_path\":\"{source}\""), "\"source_path\":\"/elsewhere\"", 1);
    let tampered = crate::support::write(&store.work().join("tampered-private.jsonl"), edited);
    python_verify(store.work(), &tampered).status(1).stderr_has("event 2 does not match its hash");
}

#[test]
fn the_documented_verify_ledger_script_checks_an_export_and_a_written_down_head() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/verify_ledger.py");
    let store = Store::new();
    store.ingest_text("24-1234", "3", "ch01.h264", "video\n");
    let head = store.head();
    let export = store.work().join("ledger.jsonl");
    store.cmd(&["export", "--out"]).arg(&export).run().status(0);
    let run = |args: &[&std::ffi::OsStr]| {
        let mut all = vec![script.as_os_str(), export.as_os_str()];
        all.extend_from_slice(args);
        tool("python3", &all, store.work())
    };
    run(&[]).status(0).stdout_has(&head);
    run(&[head.as_ref()]).status(0);
    // A head from a longer ledger (this one was cut short since) fails.
    let later = format!("3:{}", "ab".repeat(32));
    run(&[later.as_ref()]).status(1).stderr_has("FAILED");
    // So does an export edited after the fact.
    let text = fs::read_to_string(&export).unwrap().replacen("ch01.h264", "ch02.h264", 1);
    fs::write(&export, text).unwrap();
    run(&[]).status(1).stderr_has("FAILED");
}

#[test]
fn concurrent_ingests_queue_into_one_unbroken_chain() {
    let store = Store::new();
    const WRITERS: usize = 4;
    const EACH: usize = 10;
    let outputs: Vec<Output> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = &store;
                scope.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            let file = store.file(&format!("w{w}/f{i}.txt"), format!("writer {w} file {i}\n"));
                            store
                                .cmd(&["ingest", "--case", &format!("W{w}"), "--item", &i.to_string()])
                                .arg(&file)
                                .run()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("writer thread")).collect()
    });
    for out in &outputs {
        out.status(0).stderr_lacks("database is locked");
    }
    let log = store.cmd(&["--json", "log"]).run().status(0).json();
    let seqs: Vec<u64> = log["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=(1 + WRITERS * EACH) as u64).collect::<Vec<_>>(), "sequence numbers are not contiguous");
    assert_eq!(store.object_files().len(), WRITERS * EACH);
    // Every printed head is a distinct event of the one chain.
    let mut heads: Vec<String> = outputs.iter().map(Output::short_head).collect();
    heads.sort();
    heads.dedup();
    assert_eq!(heads.len(), WRITERS * EACH);
    store.verify_ok().stdout_has("41 events recomputed");
}

#[test]
fn transfer_records_from_to_and_reason_and_show_reports_the_new_holder() {
    let store = Store::new();
    store.ingest_text("24-1234", "3", "ch01.h264", "video\n");
    store
        .cmd(&["transfer", "i1", "--to", "Det. R. Alvarez", "--reason", "review for charging decision"])
        .run()
        .status(0)
        .stdout_has("from Examiner Tess to Det. R. Alvarez");
    let log = store.cmd(&["--json", "log", "i1"]).run().status(0).json();
    let ev = &log["events"][1];
    assert_eq!(ev["action"], "transfer");
    assert_eq!(ev["params"]["from"], crate::support::EXAMINER);
    assert_eq!(ev["params"]["to"], "Det. R. Alvarez");
    assert_eq!(ev["params"]["reason"], "review for charging decision");
    assert_eq!(ev["inputs"][0]["item"], "i1");
    let show = store.cmd(&["--json", "show", "i1"]).run().status(0).json();
    assert_eq!(show["holder"], "Det. R. Alvarez");
    store.cmd(&["show", "i1"]).run().status(0).stdout_has("Held by   Det. R. Alvarez");
    // A second hand-off starts from the new holder.
    store
        .cmd(&["transfer", "i1", "--to", "Property room", "--reason", "storage"])
        .run()
        .status(0)
        .stdout_has("from Det. R. Alvarez to Property room");
}

/// `transfer --case C` hands over every item of the case, originals and derived, in one event;
/// another case's items stay with their holder.
#[test]
fn transfer_of_a_case_hands_over_every_item_of_it_in_one_event() {
    let store = Store::new();
    store.ingest_text("24-1234", "1", "statement.txt", "one\n");
    let dir = store.work().join("usb");
    crate::support::write(&dir.join("ch01.h264"), "channel one\n");
    crate::support::write(&dir.join("ch02.h264"), "channel two\n");
    store.cmd(&["ingest", "--case", "24-1234", "--item", "2"]).arg(&dir).run().status(0);
    store.ingest_text("24-9999", "1", "other.txt", "another case\n");
    let events = store.event_count();
    let out = store.cmd(&["--json", "transfer", "--case", "24-1234", "--to", "County DA", "--reason", "trial"]).run();
    let json = out.status(0).json();
    assert_eq!(json["items"], serde_json::json!(["i1", "i2", "i3"]), "{json:#}");
    assert_eq!(store.event_count(), events + 1, "one event for the whole hand-off");
    let holder = |id: &str| store.cmd(&["--json", "show", id]).run().status(0).json()["holder"].clone();
    for id in ["i1", "i2", "i3"] {
        assert_eq!(holder(id), "County DA", "{id}");
    }
    assert_eq!(holder("i4"), crate::support::EXAMINER, "the other case's item moved");
    let log = store.cmd(&["--json", "log"]).run().status(0).json();
    assert_eq!(log["events"].as_array().unwrap().last().unwrap()["case"], "24-1234");
    // A case with no items, and --case with items as well, are refused.
    store.cmd(&["transfer", "--case", "24-0000", "--to", "X", "--reason", "Y"]).run().status(2).stderr_has("24-0000");
    store.cmd(&["transfer", "i1", "--case", "24-1234", "--to", "X", "--reason", "Y"]).run().status(2);
    assert_eq!(store.event_count(), events + 1);
}

#[test]
fn items_are_named_by_short_id_case_item_path_and_sha256_prefix() {
    let store = Store::new();
    let single = store.ingest_text("24-1234", "1", "statement.wav", "one file\n");
    let dir = store.work().join("usb");
    crate::support::write(&dir.join("ch01.h264"), "channel one\n");
    crate::support::write(&dir.join("ch02.h264"), "channel two\n");
    store.cmd(&["ingest", "--case", "24-1234", "--item", "2"]).arg(&dir).run().status(0);
    let ch02 = sha256sum(&dir.join("ch02.h264"));
    let id_of = |spec: &str| -> String {
        let json = store.cmd(&["--json", "show", spec]).run().status(0).json();
        json["item"]["id"].as_str().unwrap().to_owned()
    };
    assert_eq!(id_of("i2"), "i2");
    assert_eq!(id_of("24-1234:1"), "i1");
    assert_eq!(single["id"], "i1");
    assert_eq!(id_of("24-1234:2/usb/ch02.h264"), "i3");
    assert_eq!(id_of(&ch02[..8]), "i3");
    assert_eq!(id_of(&ch02), "i3");
    // What show reports is the file named.
    let json = store.cmd(&["--json", "show", "24-1234:2/usb/ch01.h264"]).run().status(0).json();
    assert_eq!(json["file"]["sha256"], sha256sum(&dir.join("ch01.h264")));
    // Unknown names are input errors.
    store.cmd(&["show", "i99"]).run().status(2).stderr_has("no item i99");
    store.cmd(&["show", "24-1234:2/usb/ch09.h264"]).run().status(2).stderr_has("ch09.h264");
    store.cmd(&["show", "0000000000"]).run().status(2).stderr_has("0000000000");
}

#[test]
fn an_ambiguous_case_item_exits_2_listing_the_choices() {
    let store = Store::new();
    let dir = store.work().join("usb");
    crate::support::write(&dir.join("ch01.h264"), "channel one\n");
    crate::support::write(&dir.join("ch02.h264"), "channel two\n");
    store.cmd(&["ingest", "--case", "24-1234", "--item", "2"]).arg(&dir).run().status(0);
    store
        .cmd(&["show", "24-1234:2"])
        .run()
        .status(2)
        .stderr_has("holds 2 original files")
        .stderr_has("i1 (24-1234:2/usb/ch01.h264)")
        .stderr_has("i2 (24-1234:2/usb/ch02.h264)")
        .stdout_is("");
}

/// `CASE:ITEM` names the exhibit's original even after a still is made of it: the still lives in
/// the same exhibit but is derived, so the name stays unambiguous. Two originals still are.
#[test]
fn case_item_names_the_original_after_a_still_is_made_of_it() {
    let store = Store::new();
    let path = store.work().join("cam.mp4");
    custody::media::synth::generate(custody::media::synth::Fixture::H264Mp4, &path).expect("fixture");
    let ingested = store.cmd(&["--json", "ingest", "--case", "24-1", "--item", "1"]).arg(&path).run().status(0).json();
    let original = ingested["items"][0]["id"].as_str().expect("item id").to_owned();
    let still = store.cmd(&["--json", "still", "24-1:1", "--at", "frame:3"]).run().status(0).json();
    let still_id = still["items"][0]["id"].as_str().expect("still id").to_owned();
    assert_ne!(still_id, original);
    let shown = store.cmd(&["--json", "show", "24-1:1"]).run().status(0).json();
    assert_eq!(shown["item"]["id"], original.as_str(), "{shown:#}");
    assert_eq!(shown["file"]["sha256"], sha256sum(&path), "the original's bytes, not the still's");
    // A still made through the name again is made of the original.
    let again = store.cmd(&["--json", "still", "24-1:1", "--at", "frame:4"]).run().status(0).json();
    assert_eq!(again["parent"], original.as_str(), "{again:#}");
    // A second original in the exhibit makes the bare name ambiguous, listing originals only.
    let file = store.file("second.txt", "another file of the same exhibit\n");
    store.cmd(&["ingest", "--case", "24-1", "--item", "1"]).arg(&file).run().status(0);
    store
        .cmd(&["show", "24-1:1"])
        .run()
        .status(2)
        .stderr_has("holds 2 original files")
        .stderr_has(&format!("{original} (24-1:1/cam.mp4)"))
        .stderr_lacks(&format!("{still_id} ("));
}
