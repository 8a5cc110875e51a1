//! `custody redo EVENT`: a recorded derivation re-run from its original with the recorded
//! parameters is compared with what was recorded, bit for bit; nothing is recorded; an event
//! whose parameters were altered after the fact is caught by the chain before anything runs.
//! Oracles: sha256sum of the recorded objects, the store's event count and its tmp/.

use custody::media::synth::Fixture;
use serde_json::Value;

use crate::support::{Store, sha256sum};

/// `custody --json redo SEQ`, expecting `code`.
#[track_caller]
fn redo(store: &Store, seq: u64, code: i32) -> (Value, String) {
    let out = store.cmd(&["--json", "redo", &seq.to_string()]).run();
    out.status(code);
    (if code == 0 { out.json() } else { Value::Null }, out.stderr())
}

/// The event number a command's JSON names in its head.
fn seq_of(json: &Value) -> u64 {
    json["head"]["seq"].as_u64().unwrap_or_else(|| panic!("no head.seq in {json:#}"))
}

#[test]
fn redo_reproduces_an_enhancement_a_clip_a_still_and_a_redaction_bit_for_bit() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let id = item.id.as_str();
    let runs: Vec<(&str, Vec<&str>)> = vec![
        (
            "enhance",
            vec![
                "enhance",
                id,
                "--step",
                "levels:white=200",
                "--step",
                "denoise",
                "--from",
                "frame:5",
                "--to",
                "frame:30",
            ],
        ),
        ("enhance", vec!["enhance", id, "--step", "average:frames=3", "--step", "notch", "--deliver", "mp4"]),
        ("clip", vec!["clip", id, "--from", "frame:10", "--to", "frame:40", "--mode", "exact"]),
        ("clip", vec!["clip", id, "--from", "00:00:01", "--to", "00:00:02"]),
        ("still", vec!["still", id, "--at", "frame:17", "--caption"]),
        (
            "redact",
            vec!["redact", id, "--box", "20,20,80,60@frame:3-frame:30", "--reason", "plate", "--mute", "0.5-0.9"],
        ),
        ("rewrap", vec!["rewrap", id]),
    ];
    for (action, args) in runs {
        let mut full = vec!["--json"];
        full.extend(args.iter().copied());
        let made = store.cmd(&full).run().status(0).json();
        let seq = seq_of(&made);
        let events = store.event_count();
        let (json, _) = redo(&store, seq, 0);
        assert_eq!(json["reproduced"], true, "{action}: {json:#}");
        assert_eq!(json["action"], action, "{json:#}");
        let outputs = json["outputs"].as_array().expect("outputs");
        assert!(!outputs.is_empty(), "{json:#}");
        for o in outputs {
            assert_eq!(o["identical"], true, "{action}: {o:#}");
            assert_eq!(o["sha256"], o["recorded_sha256"], "{o:#}");
            // The recorded object is what the event says (an independent hash of the file).
            if store.local_objects() {
                let sha = o["recorded_sha256"].as_str().unwrap();
                assert_eq!(sha256sum(&store.object_path(sha)), sha);
            }
        }
        assert_eq!(store.event_count(), events, "{action}: redo recorded something");
        assert!(store.tmp_entries().is_empty(), "{action}: redo left {:?}", store.tmp_entries());
    }
}

#[test]
fn redo_prints_what_it_reproduced_and_refuses_events_it_cannot_rerun() {
    let store = Store::new();
    let item = store.ingest_fixture(Fixture::Wav);
    let made = store.cmd(&["--json", "enhance", &item.id, "--step", "highpass:frequency=200"]).run().status(0).json();
    let seq = seq_of(&made);
    let out = store.cmd(&["redo", &seq.to_string()]).run();
    out.status(0).stdout_has("reproduced bit for bit").stdout_has("Reproduced bit for bit.");
    // An ingest is not a derivation: nothing to re-run.
    store.cmd(&["redo", "2"]).run().status(2).stderr_has("redo re-runs derivations");
    store.cmd(&["redo", "999"]).run().status(2).stderr_has("no event 999");
}

#[test]
fn a_recipe_altered_in_a_crafted_event_is_caught_by_the_chain_before_redo_runs_it() {
    let store = Store::new();
    if !store.sqlite_ledger() {
        // The crafted edit below is made on the SQLite file; PostgreSQL's own refusal of edits
        // is proved in postgres.rs.
        return;
    }
    let item = store.ingest_fixture(Fixture::H264Mp4);
    let made = store
        .cmd(&["--json", "enhance", &item.id, "--step", "levels:white=200", "--to", "frame:9", "--from", "frame:0"])
        .run()
        .status(0)
        .json();
    let seq = seq_of(&made);
    // Someone with write access to the file edits the recorded recipe, putting the append-only
    // trigger back exactly as it was so the schema check sees nothing.
    let db = store.sqlite();
    let trigger: String = db
        .query_row("SELECT sql FROM sqlite_master WHERE name = 'events_no_update'", [], |r| r.get(0))
        .expect("the trigger");
    db.execute_batch("DROP TRIGGER events_no_update").unwrap();
    let changed = db
        .execute("UPDATE events SET body = replace(body, 'white=200', 'white=120') WHERE seq = ?1", [seq as i64])
        .unwrap();
    assert_eq!(changed, 1);
    db.execute_batch(&trigger).unwrap();
    drop(db);
    let events = store.event_count();
    let (_, stderr) = redo(&store, seq, 1);
    assert!(stderr.contains("chain") && stderr.contains(&format!("event {seq}")), "{stderr}");
    assert!(stderr.contains("nothing was re-run"), "{stderr}");
    assert_eq!(store.event_count(), events);
    assert!(store.tmp_entries().is_empty());
}
