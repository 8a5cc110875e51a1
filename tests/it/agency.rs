//! The agency store: the ledger in a real PostgreSQL server (started by the harness, see
//! `postgres.rs`), the same events byte for byte as SQLite holds, append-only by triggers and
//! by privileges, workstations recording at once under their own roles.

use std::path::PathBuf;

use custody::media::synth::Fixture;
use tempfile::TempDir;

use crate::postgres::{self, Database, PASSWORD};
use crate::support::{Cmd, cmd, event_hash, media};

/// An agency store: its directory (shared by the workstations) and its database.
struct Agency {
    _dir: TempDir,
    root: PathBuf,
    work: PathBuf,
    db: Database,
}

impl Agency {
    fn new() -> Agency {
        Agency::on(postgres::cluster())
    }

    fn on(cluster: &'static postgres::Cluster) -> Agency {
        let db = cluster.database();
        let dir = tempfile::tempdir().expect("temp dir");
        let (root, work) = (dir.path().join("store"), dir.path().join("work"));
        std::fs::create_dir(&work).expect("work dir");
        cmd(&["init"])
            .arg(&root)
            .args(&["--ledger", &db.url(&db.owner), "--agency", "Test PD"])
            .env("PGPASSWORD", PASSWORD)
            .run()
            .status(0)
            .stdout_has("Created the agency ledger");
        Agency { _dir: dir, root, work, db }
    }

    /// `custody --store STORE ARGS…` as the database role `role`.
    fn cmd_as(&self, role: &str, args: &[&str]) -> Cmd {
        cmd(&[])
            .arg("--store")
            .arg(&self.root)
            .args(args)
            .current_dir(&self.work)
            .env("PGPASSWORD", PASSWORD)
            .env("CUSTODY_LEDGER", self.db.url(role))
    }

    /// As the owner (the role that made the ledger).
    fn cmd(&self, args: &[&str]) -> Cmd {
        self.cmd_as(&self.db.owner.clone(), args)
    }

    fn rows(&self) -> Vec<(i64, String, String)> {
        self.db.rows()
    }
}

#[test]
fn an_agency_store_keeps_its_events_in_postgresql_hashed_and_chained_as_in_sqlite() {
    let agency = Agency::new();
    // The descriptor names the ledger, never a password.
    let descriptor = std::fs::read_to_string(agency.root.join("store.json")).unwrap();
    assert!(descriptor.contains(&agency.db.name) && !descriptor.contains(PASSWORD), "{descriptor}");
    let video = media(Fixture::H264Mp4, &agency.work.join("cam1.mp4"));
    let tech = agency.db.role("tech", Some("custody_recorder"));
    agency.cmd_as(&tech, &["ingest", "--case", "24-0001", "--item", "1"]).arg(&video).run().status(0);
    agency.cmd_as(&tech, &["still", "24-0001:1/cam1.mp4", "--at", "00:00:01"]).run().status(0);
    agency.cmd(&["verify"]).run().status(0).stdout_has("OK");
    let log = agency.cmd_as(&tech, &["log"]).run().status(0).stdout();
    assert!(log.contains("ingest") && log.contains("still"), "{log}");
    // Each event names the login that appended it, beside the examiner it declared.
    assert!(log.contains(&format!("database role {tech}")), "{log}");
    agency.cmd_as(&tech, &["show", "24-0001:1/cam1.mp4"]).run().status(0).stdout_has(&format!("database role {tech}"));
    // The rows, read with psql: contiguous, each hash the independent hash of its body, each
    // body's prev the hash before.
    let rows = agency.rows();
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3]);
    let mut prev = "0".repeat(64);
    for (seq, hash, body) in &rows {
        assert_eq!(&event_hash(body), hash, "event {seq}");
        let parsed: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(parsed["prev"], prev.as_str(), "event {seq}");
        prev = hash.clone();
    }
    let users: Vec<String> = rows
        .iter()
        .map(|(_, _, b)| serde_json::from_str::<serde_json::Value>(b).unwrap()["db_user"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(users, [agency.db.owner.clone(), tech.clone(), tech.clone()]);
    // The standalone verifiers: the exported ledger with Python's standard library alone, and a
    // bundle made from the agency store with its own script and with custody, no store around.
    let exported = agency.work.join("ledger.jsonl");
    agency.cmd(&["export", "--out"]).arg(&exported).run().status(0);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/verify_ledger.py");
    let out = std::process::Command::new("python3").arg(script).arg(&exported).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK: 3 events"), "{out:?}");
    let zip = agency.work.join("bundle.zip");
    agency.cmd_as(&tech, &["package", "--case", "24-0001", "--out"]).arg(&zip).run().status(0);
    cmd(&["verify"]).arg(&zip).run().status(0).stdout_has("OK");
    // A public release withholds the ledger's address and logins (host, port, database, roles).
    let release = agency.work.join("release.zip");
    agency.cmd_as(&tech, &["package", "--case", "24-0001", "--release", "--out"]).arg(&release).run().status(0);
    let unzipped = agency.work.join("release");
    std::process::Command::new("unzip").arg("-q").arg(&release).arg("-d").arg(&unzipped).status().unwrap();
    for file in crate::support::files_under(&unzipped) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        for secret in [&agency.db.name, &tech, &agency.db.owner] {
            assert!(!text.contains(secret.as_str()), "{} names {secret}", file.display());
        }
    }
    cmd(&["verify"]).arg(&release).run().status(0).stdout_has("OK");
    let items = agency.db.admin("SELECT string_agg(id || ' ' || name, ', ' ORDER BY seq, pos) FROM custody.items");
    assert!(items.starts_with("i1 cam1.mp4, i2 "), "{items}");
}

#[test]
fn the_recording_role_may_only_insert_and_the_auditor_only_read() {
    let agency = Agency::new();
    agency
        .cmd(&["ingest", "--case", "24-0002", "--item", "1"])
        .arg(crate::support::write(&agency.work.join("note.txt"), "x"))
        .run()
        .status(0);
    let tech = agency.db.role("tech", Some("custody_recorder"));
    let auditor = agency.db.role("auditor", Some("custody_auditor"));
    for sql in [
        "UPDATE custody.events SET body = body || ' ' WHERE seq = 1",
        "DELETE FROM custody.events WHERE seq = 2",
        "TRUNCATE custody.items",
        "UPDATE custody.pushed SET body = ''",
        "DELETE FROM custody.pushed",
        "TRUNCATE custody.pushed",
        "ALTER TABLE custody.pushed DISABLE TRIGGER pushed_append_only",
        "ALTER TABLE custody.events DISABLE TRIGGER events_append_only",
        "DROP TRIGGER events_append_only ON custody.events",
        "CREATE TABLE custody.extra (x int)",
    ] {
        for role in [&tech, &auditor] {
            let out = agency.db.psql(role, sql);
            assert_ne!(out.code, Some(0), "{role} may run {sql}");
            assert!(
                out.stderr().contains("permission denied") || out.stderr().contains("must be owner"),
                "{}",
                out.stderr()
            );
        }
    }
    let insert = "INSERT INTO custody.items (id, seq, pos, sha256, case_id, exhibit, name) VALUES ('x', 1, 9, 'x', 'x', 'x', 'x')";
    assert!(agency.db.psql(&auditor, insert).stderr().contains("permission denied"));
    let keep = "INSERT INTO custody.pushed (chain, seq, hash, body) VALUES ('x', 1, 'x', 'x')";
    assert!(agency.db.psql(&auditor, keep).stderr().contains("permission denied"));
    // A recorder inserting by hand can neither fork the chain nor record under another login.
    let rows = agency.rows();
    let (head_seq, head_hash) = (rows.last().unwrap().0, rows.last().unwrap().1.clone());
    let forged = |seq: i64, prev: &str, user: &str| {
        format!(
            "INSERT INTO custody.events (seq, hash, body) VALUES ({seq}, '{}', '{{\"seq\":{seq},\"prev\":\"{prev}\",\"db_user\":\"{user}\"}}')",
            "ab".repeat(32)
        )
    };
    let owner = agency.db.owner.clone();
    for (sql, refusal) in [
        (forged(head_seq + 1, &head_hash, &owner), format!("names database role {owner}, but {tech} is appending it")),
        (forged(head_seq + 2, &head_hash, &tech), format!("event {} does not follow event {head_seq}", head_seq + 2)),
        (forged(head_seq + 1, &"0".repeat(64), &tech), format!("event {} does not link to the head", head_seq + 1)),
    ] {
        let out = agency.db.psql(&tech, &sql);
        assert!(out.stderr().contains(&refusal), "{sql}: {}", out.stderr());
    }
    assert_eq!(agency.rows(), rows);
    // Even the owner is stopped by the triggers.
    for sql in [
        "UPDATE custody.events SET body = '' WHERE seq = 1",
        "DELETE FROM custody.items",
        "TRUNCATE custody.events",
        "TRUNCATE custody.pushed",
    ] {
        let out = agency.db.psql(&agency.db.owner, sql);
        assert!(out.stderr().contains("the custody ledger is append-only"), "{sql}: {}", out.stderr());
    }
    // The auditor reads and verifies, and is refused a record: exit 2, nothing recorded.
    agency.cmd_as(&auditor, &["verify"]).run().status(0).stdout_has("OK");
    let before = agency.rows().len();
    let refused = agency
        .cmd_as(&auditor, &["ingest", "--case", "24-0002", "--item", "2"])
        .arg(crate::support::write(&agency.work.join("other.txt"), "y"))
        .run();
    refused.status(2).stderr_has("may not append to the ledger").stderr_has("nothing was recorded");
    assert_eq!(agency.rows().len(), before);
    assert!(std::fs::read_dir(agency.root.join("tmp")).unwrap().next().is_none(), "staging left behind");
}

#[test]
fn an_event_edited_by_the_database_owner_fails_verify_naming_it_and_an_altered_schema_is_refused() {
    let agency = Agency::new();
    agency
        .cmd(&["ingest", "--case", "24-0003", "--item", "1"])
        .arg(crate::support::write(&agency.work.join("a.txt"), "a"))
        .run()
        .status(0);
    // The owner disables the trigger, edits event 2 and enables it again.
    agency.db.edit_as_owner("events", 2, "24-0003", "24-0004");
    agency.cmd(&["verify"]).run().status(1).stdout_has("event 2");
    // A trigger left disabled: every command refuses the ledger, verify names it.
    agency.db.psql(&agency.db.owner, "ALTER TABLE custody.items DISABLE TRIGGER items_append_only").status(0);
    agency.cmd(&["log"]).run().status(1).stderr_has("trigger items_append_only is disabled");
    agency.cmd(&["verify"]).run().status(1).stdout_has("items_append_only");
}

#[test]
fn wrong_credentials_exit_2_and_a_server_that_does_not_answer_exits_3_without_printing_a_secret() {
    let agency = Agency::new();
    let secret = "not-the-password-4711";
    let out = agency.cmd(&["log"]).env("PGPASSWORD", secret).run();
    out.status(2).stderr_has("cannot log in to the ledger").stderr_has("PGPASSWORD");
    assert!(!out.stderr().contains(secret) && !out.stdout().contains(secret));
    // A URL with the password in it is not written down at init.
    let db = postgres::cluster().database();
    let dir = tempfile::tempdir().unwrap();
    let with_password = db.url(&db.owner).replace(&format!("{}@", db.owner), &format!("{}:{secret}@", db.owner));
    let out = cmd(&["init"]).arg(dir.path().join("s")).args(&["--ledger", &with_password]).run();
    out.status(2).stderr_has("never writes one down");
    assert!(!out.stderr().contains(secret));
    assert!(!dir.path().join("s").exists(), "a refused init left its directory");
    // A role that cannot log in: exit 2, and the directory init made is gone again.
    let out = cmd(&["init"])
        .arg(dir.path().join("t"))
        .args(&["--ledger", &db.url(&db.owner)])
        .env("PGPASSWORD", secret)
        .run();
    out.status(2).stderr_has("cannot log in");
    assert!(!dir.path().join("t").exists(), "a failed init left its directory");
    // Nobody listening: exit 3, saying what to check.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = agency.cmd(&["log"]).env("CUSTODY_LEDGER", format!("postgres://x@127.0.0.1:{port}/none")).run();
    out.status(3).stderr_has("cannot connect to the ledger").stderr_has("up and reachable");
}

/// The key of the advisory lock every append holds (src/ledger/pg.rs, "CUSTODYLEDG").
const APPEND_LOCK: i64 = 0x4355_5354_4c45_4447;

/// Another session holding the append lock (as a slow workstation's append would), until killed.
fn hold_append_lock(agency: &Agency) -> std::process::Child {
    let child = std::process::Command::new("psql")
        .args(["-X", "-q", "-d", &agency.db.url(&agency.db.owner), "-c"])
        .arg(format!("SELECT pg_advisory_lock({APPEND_LOCK}); SELECT pg_sleep(120)"))
        .env("PGPASSWORD", PASSWORD)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start psql");
    wait_for(agency, "granted");
    child
}

/// Wait until an advisory lock is held (`granted`) or waited for (`waiting`) in the database.
fn wait_for(agency: &Agency, state: &str) {
    let granted = state == "granted";
    for _ in 0..600 {
        if agency.db.advisory_locks(granted) != 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("no advisory lock {state} after 30 s");
}

/// End the session holding the append lock (killing psql alone would leave its server process
/// sleeping with the lock held).
fn release(agency: &Agency, mut holder: std::process::Child) {
    agency.db.end_advisory_lock_holders();
    let _ = holder.kill();
    let _ = holder.wait();
}

fn no_staging_left(agency: &Agency) -> bool {
    std::fs::read_dir(agency.root.join("tmp")).unwrap().next().is_none()
}

#[test]
fn an_append_waiting_for_the_ledger_longer_than_the_lock_timeout_exits_3_and_records_nothing() {
    let agency = Agency::new();
    let file = crate::support::write(&agency.work.join("late.txt"), "late");
    let holder = hold_append_lock(&agency);
    let before = agency.rows();
    let out =
        agency.cmd(&["ingest", "--case", "24-0010", "--item", "1"]).arg(&file).env("CUSTODY_LOCK_TIMEOUT", "2").run();
    release(&agency, holder);
    out.status(3).stderr_has("stayed locked by other appends for more than 2 s").stderr_has("nothing was recorded");
    assert_eq!(agency.rows(), before);
    assert!(no_staging_left(&agency), "staging left behind");
    agency.cmd(&["ingest", "--case", "24-0010", "--item", "1"]).arg(&file).run().status(0);
}

#[test]
fn a_server_restarted_while_an_append_waits_exits_3_records_nothing_and_the_retry_succeeds() {
    let private = postgres::private();
    let agency = Agency::on(private.cluster);
    let file = crate::support::write(&agency.work.join("scene.txt"), "scene");
    let sha = crate::support::sha256sum(&file);
    let mut holder = hold_append_lock(&agency);
    let before = agency.rows();
    let running = agency.cmd(&["ingest", "--case", "24-0011", "--item", "1"]).arg(&file).spawn();
    wait_for(&agency, "waiting");
    private.cluster.restart();
    let out = running.wait();
    let _ = holder.kill();
    let _ = holder.wait();
    out.status(3).stderr_has("nothing was recorded").stderr_has("run the command again");
    assert_eq!(agency.rows(), before, "an event landed although the append failed");
    assert!(no_staging_left(&agency), "staging left behind");
    assert!(!agency.root.join("objects").join(&sha[..2]).join(&sha[2..]).exists(), "an unrecorded object was stored");
    agency.cmd(&["ingest", "--case", "24-0011", "--item", "1"]).arg(&file).run().status(0);
    agency.cmd(&["verify"]).run().status(0).stdout_has("OK");
}

#[test]
fn a_workstation_killed_while_its_append_waits_records_nothing_and_the_next_command_cleans_up() {
    let agency = Agency::new();
    let file = crate::support::write(&agency.work.join("cam.txt"), "cam");
    let holder = hold_append_lock(&agency);
    let before = agency.rows();
    let running = agency.cmd(&["ingest", "--case", "24-0012", "--item", "1"]).arg(&file).spawn();
    wait_for(&agency, "waiting");
    running.kill();
    release(&agency, holder);
    assert_eq!(agency.rows(), before, "a killed append left an event");
    // verify clears what the killed command staged, and finds everything in order.
    agency.cmd(&["verify"]).run().status(0).stdout_has("OK");
    assert!(no_staging_left(&agency), "staging left behind");
    agency.cmd(&["ingest", "--case", "24-0012", "--item", "1"]).arg(&file).run().status(0);
    assert_eq!(agency.rows().len(), before.len() + 1);
}

#[test]
fn tls_is_used_when_the_server_offers_it_and_verify_full_checks_the_certificate_as_libpq_does() {
    let (private, cert) = postgres::private_tls();
    let agency = Agency::on(private.cluster);
    let owner = agency.db.owner.clone();
    // The default (prefer) and require: encrypted, the self-signed certificate not checked.
    let base = agency.db.url(&owner);
    for url in [base.clone(), format!("{base}?sslmode=require")] {
        agency.cmd(&["log"]).env("CUSTODY_LEDGER", &url).run().status(0);
    }
    let authorized = |log: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("user={owner}")) && l.contains("authorized"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let lines = authorized(&private.cluster.log());
    assert!(!lines.is_empty() && lines.iter().all(|l| l.contains("SSL enabled")), "{lines:#?}");
    // verify-full against the server's own certificate: connects.
    let pinned = format!("{base}?sslmode=verify-full&sslrootcert={}", cert.display());
    agency.cmd(&["log"]).env("CUSTODY_LEDGER", &pinned).run().status(0);
    // verify-full against the system's authorities, which never signed it: refused, exit 3.
    let system = format!("{base}?sslmode=verify-full&sslrootcert=system");
    agency
        .cmd(&["log"])
        .env("CUSTODY_LEDGER", &system)
        .run()
        .status(3)
        .stderr_has("certificate does not check out")
        .stderr_has("sslrootcert");
    // disable: in the clear.
    let before = authorized(&private.cluster.log()).len();
    agency.cmd(&["log"]).env("CUSTODY_LEDGER", format!("{base}?sslmode=disable")).run().status(0);
    let after = authorized(&private.cluster.log());
    assert!(after.len() > before && !after.last().unwrap().contains("SSL enabled"), "{after:#?}");
}

#[test]
fn eight_workstations_recording_at_once_keep_one_contiguous_chain() {
    let agency = Agency::new();
    let per = 12;
    let roles: Vec<String> = (0..8).map(|i| agency.db.role(&format!("ws{i}"), Some("custody_recorder"))).collect();
    let running: Vec<_> = roles
        .iter()
        .enumerate()
        .map(|(w, role)| {
            let files: Vec<PathBuf> = (0..per)
                .map(|n| crate::support::write(&agency.work.join(format!("ws{w}/f{n}.txt")), format!("{w}/{n}")))
                .collect();
            let script = files
                .iter()
                .enumerate()
                .map(|(n, f)| {
                    format!(
                        "\"$CUSTODY\" --store '{}' ingest --case 24-0008 --item ws{w}-{n} '{}' >/dev/null || exit $?",
                        agency.root.display(),
                        f.display()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            std::process::Command::new("sh")
                .args(["-c", &script])
                .env("CUSTODY", env!("CARGO_BIN_EXE_custody"))
                .env("PGPASSWORD", PASSWORD)
                .env("CUSTODY_LEDGER", agency.db.url(role))
                .env("CUSTODY_EXAMINER", format!("Examiner {w}"))
                .env("CUSTODY_CONFIG", "/nonexistent/custody-test-config.yaml")
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start a workstation")
        })
        .collect();
    for child in running {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "a workstation failed: {stderr}");
        assert!(!stderr.contains("locked"), "{stderr}");
    }
    let rows = agency.rows();
    assert_eq!(rows.len(), 1 + 8 * per);
    assert!(rows.iter().enumerate().all(|(i, r)| r.0 == i as i64 + 1), "the sequence has gaps");
    agency.cmd(&["verify"]).run().status(0).stdout_has("OK");
}
