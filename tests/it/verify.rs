//! `custody verify` against each class of tampering: the ledger edited, rows deleted,
//! reordered, forged or truncated, the chain rewritten, the schema altered, objects modified,
//! deleted or added. Tampering is done the way an attacker would: with SQLite and chmod.

use std::fs;

use rusqlite::{Connection, params};

use crate::support::{EXAMINER, Store, digest_bytes_with, event_hash, write};

/// A store with three events: init (1) and two ingests (2, 3).
fn store_with_items() -> (Store, String, String) {
    let store = Store::new();
    let a = store.ingest_text("24-1", "1", "a.txt", "first exhibit\n");
    let b = store.ingest_text("24-1", "2", "b.txt", "second exhibit\n");
    (store, a["sha256"].as_str().unwrap().to_owned(), b["sha256"].as_str().unwrap().to_owned())
}

/// custody's own definition of a schema object, so a recreated trigger passes the schema check
/// and only the chain check can catch what was done while it was gone.
fn schema_sql(name: &str) -> &'static str {
    custody::ledger::schema::STATEMENTS
        .iter()
        .find(|(_, n, _)| *n == name)
        .map(|(_, _, sql)| *sql)
        .expect("known schema object")
}

/// Run `f` with the named triggers dropped, then put them back exactly as they were.
pub(crate) fn without_triggers(conn: &Connection, names: &[&str], f: impl FnOnce(&Connection)) {
    for name in names {
        conn.execute_batch(&format!("DROP TRIGGER {name}")).unwrap();
    }
    f(conn);
    for name in names {
        conn.execute_batch(schema_sql(name)).unwrap();
    }
}

fn body(conn: &Connection, seq: i64) -> String {
    conn.query_row("SELECT body FROM events WHERE seq = ?1", [seq], |r| r.get(0)).unwrap()
}

/// Change the examiner of a body, keeping it canonical (same key order, no new escapes).
fn forge_examiner(body: &str) -> String {
    let from = format!("\"examiner\":\"{EXAMINER}\"");
    assert!(body.contains(&from), "body lacks {from}: {body}");
    body.replace(&from, "\"examiner\":\"Mallory\"")
}

#[test]
fn verify_passes_on_a_fresh_store_with_items() {
    let (store, a, b) = store_with_items();
    let out = store.cmd(&["--json", "verify"]).run();
    let json = out.status(0).json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["events"], 3);
    assert_eq!(json["objects_checked"], 2);
    assert_eq!(json["problems"].as_array().unwrap().len(), 0);
    assert_eq!(format!("{}:{}", json["head"]["seq"], json["head"]["hash"].as_str().unwrap()), store.head());
    assert!(store.object_path(&a).is_file() && store.object_path(&b).is_file());
    store.verify_ok().stdout_has("3 events recomputed").stdout_has("2 re-hashed");
}

#[test]
fn update_and_delete_on_the_ledger_are_aborted_by_its_triggers() {
    let (store, _, _) = store_with_items();
    if !store.sqlite_ledger() {
        return; // tampers with or reads ledger.db itself: the agency ledger's own tests are in agency.rs
    }
    let head = store.head();
    let conn = store.sqlite();
    for sql in [
        "UPDATE events SET body = body || ' ' WHERE seq = 2",
        "DELETE FROM events WHERE seq = 3",
        "UPDATE items SET name = 'renamed' WHERE id = 'i1'",
        "DELETE FROM items WHERE id = 'i2'",
    ] {
        let err = conn.execute(sql, []).expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    drop(conn);
    assert_eq!(store.head(), head);
    assert_eq!(store.event_count(), 3);
    store.verify_ok();
}

#[test]
fn an_edited_event_body_fails_verify_naming_the_event() {
    let (store, _, _) = store_with_items();
    if !store.sqlite_ledger() {
        return; // tampers with or reads ledger.db itself: the agency ledger's own tests are in agency.rs
    }
    let conn = store.sqlite();
    without_triggers(&conn, &["events_no_update"], |c| {
        let forged = forge_examiner(&body(c, 2));
        c.execute("UPDATE events SET body = ?1 WHERE seq = 2", [forged]).unwrap();
    });
    drop(conn);
    let out = store.cmd(&["verify"]).run();
    out.status(1).stdout_has("event 2: its content does not match its hash").stdout_lacks("schema");
}

#[test]
fn a_deleted_event_fails_verify_naming_the_gap() {
    let (store, _, _) = store_with_items();
    if !store.sqlite_ledger() {
        return; // tampers with or reads ledger.db itself: the agency ledger's own tests are in agency.rs
    }
    let conn = store.sqlite();
    without_triggers(&conn, &["events_no_delete"], |c| {
        c.execute("DELETE FROM events WHERE seq = 2", []).unwrap();
    });
    drop(conn);
    store.cmd(&["verify"]).run().status(1).stdout_has("event 2 is missing").stdout_lacks("schema");
}

#[test]
fn reordered_events_fail_verify() {
    let (store, _, _) = store_with_items();
    if !store.sqlite_ledger() {
        return; // tampers with or reads ledger.db itself: the agency ledger's own tests are in agency.rs
    }
    let conn = store.sqlite();
    without_triggers(&conn, &["events_no_update"], |c| {
        c.execute_batch(
            "UPDATE events SET seq = -1 WHERE seq = 2; UPDATE events SET seq = 2 WHERE seq = 3; UPDATE events SET seq = 3 WHERE seq = -1;",
        )
        .unwrap();
    });
    drop(conn);
    store
        .cmd(&["verify"])
        .run()
        .status(1)
        .stdout_has("event 2: its body says it is event 3")
        .stdout_has("reordered")
        .stdout_lacks("schema");
}

#[test]
fn a_forged_event_inserted_in_the_middle_fails_verify() {
    let (store, _, _) = store_with_items();
    if !store.sqlite_ledger() {
        return; // tampers with or reads ledger.db itself: the agency ledger's own tests are in agency.rs
    }
    let conn = store.sqlite();
    without_triggers(&conn, &["events_no_update"], |c| {
        // Make room at 3, then insert a well-formed event 3 that links to event 2.
        c.execute("UPDATE events SET seq = 4 WHERE seq = 3", []).unwrap();
        let forged = forge_examiner(&body(c, 2)).replacen("\"seq\":2", "\"seq\":3", 1);
        let hash2: String = c.query_row("SELECT hash FROM events WHERE seq = 2", [], |r| r.get(0)).unwrap();
        let prev1: String = c.query_row("SELECT hash FROM events WHERE seq = 1", [], |r| r.get(0)).unwrap();
        let forged = forged.replacen(&format!("\"prev\":\"{prev1}\""), &format!("\"prev\":\"{hash2}\""), 1);
        c.execute("INSERT INTO events (seq, hash, body) VALUES (3, ?1, ?2)", params![event_hash(&forged), forged])
            .unwrap();
    });
    drop(conn);
    store
        .cmd(&["verify"])
        .run()
        .status(1)
        .stdout_has("event 4: it does not link to event 3")
        .stdout_lacks("event 3: its content does not match")
        .stdout_lacks("schema");
}

#[test]
fn a_truncated_tail_is_caught_against_a_head_written_down_before() {
    let store = Store::new();
    if !store.sqlite_ledger() {
        return; // tampers with or reads ledger.db itself: the agency ledger's own tests are in agency.rs
    }
    store.ingest_text("24-1", "1", "a.txt", "kept\n");
    let path = store.file("last/b.txt", b"removed later\n");
    store.cmd(&["ingest", "--case", "24-1", "--item", "2"]).arg(&path).run().status(0);
    let last = store.head();
    let sha = crate::support::sha256sum(&path);
    // A careful attacker removes the last event, its index rows and its object.
    let conn = store.sqlite();
    without_triggers(&conn, &["events_no_delete", "items_no_delete"], |c| {
        c.execute("DELETE FROM items WHERE seq = 3", []).unwrap();
        c.execute("DELETE FROM events WHERE seq = 3", []).unwrap();
    });
    drop(conn);
    fs::remove_file(store.object_path(&sha)).unwrap();
    // What verify alone cannot see (docs/verify.md): the store is consistent again.
    store.verify_ok();
    // A head written down earlier catches it.
    store
        .cmd(&["verify", "--against", &last])
        .run()
        .status(1)
        .stdout_has("the ledger ends at event 2, but event 3 was written down as a head")
        .stdout_has("truncated");
}

#[test]
fn a_consistently_rewritten_chain_passes_verify_but_not_against_the_old_head() {
    let (store, _, _) = store_with_items();
    if !store.sqlite_ledger() {
        return; // tampers with or reads ledger.db itself: the agency ledger's own tests are in agency.rs
    }
    let first = store.init.head();
    let old_head = store.head();
    let conn = store.sqlite();
    without_triggers(&conn, &["events_no_update"], |c| {
        // Rewrite event 2 and re-chain everything after it with the documented scheme.
        let mut prev: String = c.query_row("SELECT hash FROM events WHERE seq = 1", [], |r| r.get(0)).unwrap();
        for seq in 2..=3 {
            let old = body(c, seq);
            let old_prev = old.split("\"prev\":\"").nth(1).unwrap()[..64].to_owned();
            let mut new = old.replacen(&format!("\"prev\":\"{old_prev}\""), &format!("\"prev\":\"{prev}\""), 1);
            if seq == 2 {
                new = forge_examiner(&new);
            }
            let hash = event_hash(&new);
            c.execute("UPDATE events SET body = ?1, hash = ?2 WHERE seq = ?3", params![new, hash, seq]).unwrap();
            prev = hash;
        }
    });
    drop(conn);
    assert_ne!(store.head(), old_head);
    let log = store.cmd(&["--json", "log"]).run().status(0).json();
    assert_eq!(log["events"][1]["examiner"], "Mallory", "the rewrite did not take");
    // The documented limit: a consistent rewrite passes a plain verify…
    store.verify_ok();
    // …an older head that the rewrite did not touch still matches…
    store.cmd(&["verify", "--against", &first]).run().status(0);
    // …but the head written down before the rewrite does not.
    store
        .cmd(&["verify", "--against", &old_head])
        .run()
        .status(1)
        .stdout_has("event 3 has hash")
        .stdout_has("rewritten");
}

#[test]
fn dropped_triggers_fail_verify_and_make_other_commands_refuse_the_ledger() {
    let (store, _, _) = store_with_items();
    if !store.sqlite_ledger() {
        return; // tampers with or reads ledger.db itself: the agency ledger's own tests are in agency.rs
    }
    store.sqlite().execute_batch("DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete;").unwrap();
    store
        .cmd(&["verify"])
        .run()
        .status(1)
        .stdout_has("schema")
        .stdout_has("events_no_update is missing")
        .stdout_has("events_no_delete is missing");
    store.cmd(&["log"]).run().status(1).stderr_has("altered outside custody").stdout_is("");
    let before = store.event_count();
    let file = store.file("new.txt", b"not into a suspect store\n");
    store
        .cmd(&["ingest", "--case", "24-1", "--item", "9"])
        .arg(&file)
        .run()
        .status(1)
        .stderr_has("altered outside custody");
    assert_eq!(store.event_count(), before);
}

#[test]
fn a_forged_row_in_the_items_index_fails_verify() {
    let (store, a, _) = store_with_items();
    if !store.sqlite_ledger() {
        return; // tampers with or reads ledger.db itself: the agency ledger's own tests are in agency.rs
    }
    // Inserting needs no trigger dropped: the index is append-only, not insert-proof.
    store
        .sqlite()
        .execute(
            "INSERT INTO items (id, seq, sha256, case_id, exhibit, name, parent) VALUES ('i9', 2, ?1, '24-1', '9', 'planted.txt', NULL)",
            [&a],
        )
        .unwrap();
    store
        .cmd(&["verify"])
        .run()
        .status(1)
        .stdout_has("the items index does not match the events")
        .stdout_has("planted.txt");
}

#[test]
fn a_modified_object_fails_verify_naming_it() {
    let (store, a, _) = store_with_items();
    store.alter_object(&a, |bytes| bytes[0] ^= 0x01);
    store.cmd(&["verify"]).run().status(1).stdout_has(&format!("object {a} (item i1, event 2) was modified"));
}

#[test]
fn a_deleted_object_fails_verify_as_missing() {
    let (store, _, b) = store_with_items();
    store.remove_object(&b);
    store.cmd(&["verify"]).run().status(1).stdout_has(&format!("object {b} (item i2, event 3) is missing"));
}

#[test]
fn an_unexpected_file_under_objects_fails_verify() {
    let (store, a, _) = store_with_items();
    if !store.local_objects() {
        return; // plants a file in objects/; a bucket's own keys are bucket.rs's
    }
    let extra = store.path().join("objects").join(&a[..2]).join("notes.txt");
    write(&extra, b"planted\n");
    store
        .cmd(&["verify"])
        .run()
        .status(1)
        .stdout_has(&format!("objects/{}/notes.txt is not an object custody wrote", &a[..2]));
}

#[test]
fn an_object_no_event_records_fails_verify_as_an_orphan() {
    let (store, _, _) = store_with_items();
    if !store.local_objects() {
        return; // in a bucket, an unrecorded object is listed without failing (bucket.rs)
    }
    let planted = b"planted evidence\n";
    let sha = digest_bytes_with("sha256sum", planted);
    write(&store.object_path(&sha), planted);
    store.cmd(&["verify"]).run().status(1).stdout_has(&format!("object {sha} is in the store but no event records it"));
}
