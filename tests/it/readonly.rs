//! A store on read-only media (an archived copy on a read-only mount or a WORM disc, or one an
//! auditor may not write): every command that only reads works on it as it stands, and every
//! command that would record refuses before doing anything, exit 3, naming the store.

use std::fs;
use std::path::Path;

use custody::media::synth::Fixture;

use crate::support::{ReadOnly, Store, cmd};

/// Remove the ledger's `-wal` and `-shm` (as a writer's close does; the test's own read-only
/// SQLite connections leave them), or make sure they exist (as a copy taken with them has).
fn wal_files(store: &Store, present: bool) {
    if !store.sqlite_ledger() {
        return; // an agency store has no ledger file
    }
    let wal = store.path().join("ledger.db-wal");
    let shm = store.path().join("ledger.db-shm");
    if present {
        store.event_count(); // a read-only connection creates both and leaves them
        assert!(wal.exists() && shm.exists(), "no -wal/-shm after a read-only connection");
    } else {
        if let Ok(m) = fs::metadata(&wal) {
            assert_eq!(m.len(), 0, "the -wal holds frames: removing it would lose events");
        }
        let _ = fs::remove_file(&wal);
        let _ = fs::remove_file(&shm);
    }
}

#[test]
fn a_read_only_store_is_verified_logged_shown_and_exported_and_refuses_to_record() {
    let store = Store::new();
    if !store.sqlite_ledger() {
        return; // tampers with or reads ledger.db itself: the agency ledger's own tests are in agency.rs
    }
    store.ingest_text("24-7", "1", "note.txt", "seized phone's lock screen note\n");
    let wav = store.ingest_fixture(Fixture::Wav);
    let new_file = store.file("later/extra.txt", "found later\n");
    // What the commands print on the writable store: the read-only runs must print the same.
    let reads: [&[&str]; 4] =
        [&["export"], &["--json", "log"], &["--json", "show", "i1"], &["export", "--format", "sha256sum"]];
    let expected: Vec<Vec<u8>> = reads.iter().map(|args| store.cmd(args).run().status(0).stdout.clone()).collect();
    let root = store.path().display().to_string();
    for how in [ReadOnly::Mount, ReadOnly::Permissions] {
        for wal_present in [false, true] {
            let case = format!("{how:?}, -wal/-shm present: {wal_present}");
            let before = store.snapshot();
            wal_files(&store, wal_present);
            let guard = (how == ReadOnly::Permissions).then(|| store.remove_write_permission());

            let verified = store.read_only_cmd(how, &["verify"]).run();
            verified.status(0).stdout_has("OK: the ledger chain is intact").stdout_has("read-only");
            let json = store.read_only_cmd(how, &["--json", "verify"]).run().status(0).json();
            assert_eq!(
                (json["ok"].as_bool(), json["read_only"].as_bool()),
                (Some(true), Some(true)),
                "{case}: {json:#}"
            );
            assert_eq!(json["events"], 3, "{case}: {json:#}");
            for (args, want) in reads.iter().zip(&expected) {
                let out = store.read_only_cmd(how, args).run();
                out.status(0);
                assert!(
                    out.stdout == *want,
                    "{case}: custody {args:?} printed something else on the read-only store:\n{}",
                    out.stdout()
                );
            }
            store.read_only_cmd(how, &["log", "i1"]).run().status(0).stdout_has("note.txt");

            let refused = format!("the store at {root} is read-only");
            store
                .read_only_cmd(how, &["ingest", "--case", "24-7", "--item", "2"])
                .arg(&new_file)
                .run()
                .status(3)
                .stderr_has(&refused)
                .stderr_has("nothing was recorded");
            store
                .read_only_cmd(how, &["clip", &wav.id, "--from", "1", "--to", "2"])
                .run()
                .status(3)
                .stderr_has(&refused);
            store
                .read_only_cmd(how, &["transfer", "i1", "--to", "Property room", "--reason", "storage"])
                .run()
                .status(3)
                .stderr_has(&refused);
            drop(guard);
            store.assert_unchanged(&before);
        }
    }
    store.verify_ok();
}

/// A store copied while a command was recording has its newest events in `ledger.db-wal`.
/// Without `ledger.db-shm` SQLite cannot read that log on read-only media; opening the file
/// `immutable` would silently show the ledger without them. It is refused instead, saying why.
#[test]
fn a_copy_whose_write_ahead_log_cannot_be_read_is_refused_not_read_without_its_newest_events() {
    let store = Store::new();
    if !store.sqlite_ledger() {
        return; // tampers with or reads ledger.db itself: the agency ledger's own tests are in agency.rs
    }
    store.ingest_text("24-7", "1", "first.txt", "first\n");
    // An open connection keeps the last writer from checkpointing and removing the -wal.
    let holder = store.sqlite();
    let _: i64 = holder.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
    store.ingest_text("24-7", "2", "second.txt", "second\n");
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("store-copy");
    copy_tree(store.path(), &copy, &|name| name != "ledger.db-shm");
    drop(holder);
    assert!(fs::metadata(copy.join("ledger.db-wal")).unwrap().len() > 0, "the copy's -wal holds no events");
    // The copy's ledger.db alone lacks the newest event: reading it immutable would be stale.
    let file_only = rusqlite::Connection::open_with_flags(
        format!("file:{}?immutable=1", copy.join("ledger.db").display()),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )
    .unwrap();
    let in_file: i64 = file_only.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
    assert_eq!(in_file, 2, "the newest event is expected in the -wal only");
    drop(file_only);

    let on_copy = |args: &[&str]| cmd(&["--store"]).arg(&copy).args(args);
    on_copy(&["log"])
        .read_only(&copy, ReadOnly::Mount)
        .run()
        .status(3)
        .stderr_has("ledger.db-wal")
        .stderr_has("Copy the whole store to writable storage");
    // On writable storage the same copy reads whole.
    let log = on_copy(&["--json", "log"]).run().status(0).json();
    assert_eq!(log["events"].as_array().unwrap().len(), 3, "{log:#}");
}

/// Copy a directory tree, leaving out the names `keep` refuses.
fn copy_tree(from: &Path, to: &Path, keep: &dyn Fn(&str) -> bool) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !keep(&name) {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(&name), keep);
        } else {
            fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}
