//! An agency store whose objects are in an S3-compatible bucket: a real SeaweedFS server
//! started by the harness (`s3.rs`), the ledger in the harness's PostgreSQL (`postgres.rs`).
//! The AWS CLI, as the bucket's administrator, is the independent oracle of what is stored.

use std::path::{Path, PathBuf};

use custody::media::synth::Fixture;
use serde_json::Value;
use tempfile::TempDir;

use crate::postgres::{self, Database};
use crate::s3::{self, Bucket, Identity};
use crate::support::{Cmd, cmd, media, sha256sum, write};

/// An agency store: ledger in PostgreSQL, objects in a bucket of its own under `store/`.
pub struct Agency {
    _dir: TempDir,
    pub root: PathBuf,
    pub work: PathBuf,
    pub db: Database,
    pub bucket: Bucket,
}

impl Agency {
    fn on(server: &s3::Server) -> Agency {
        let db = postgres::cluster().database();
        let bucket = server.bucket();
        let dir = tempfile::tempdir().expect("temp dir");
        let (root, work) = (dir.path().join("store"), dir.path().join("work"));
        std::fs::create_dir(&work).expect("work dir");
        let agency = Agency { _dir: dir, root, work, db, bucket };
        cmd(&["init"])
            .arg(&agency.root)
            .args(&["--ledger", &agency.db.url(&agency.db.owner), "--objects", &agency.bucket.url("store")])
            .envs(agency.bucket.env_workstation())
            .run()
            .status(0)
            .stdout_has("objects in s3://");
        agency
    }

    pub fn new() -> Agency {
        Agency::on(s3::server())
    }

    /// `custody --store STORE ARGS…` with the workstation's credentials.
    pub fn cmd(&self, args: &[&str]) -> Cmd {
        cmd(&[]).arg("--store").arg(&self.root).args(args).current_dir(&self.work).envs(self.bucket.env_workstation())
    }

    pub fn key(&self, sha: &str) -> String {
        format!("store/objects/{}/{}", &sha[..2], &sha[2..])
    }

    pub fn rows(&self) -> Vec<(i64, String, String)> {
        self.db.rows()
    }

    fn no_staging_left(&self) -> bool {
        std::fs::read_dir(self.root.join("tmp")).unwrap().next().is_none()
    }

    /// The last event's outputs, as recorded.
    fn last_outputs(&self) -> Vec<Value> {
        let (_, _, body) = self.rows().pop().expect("an event");
        let event: Value = serde_json::from_str(&body).expect("event JSON");
        event["outputs"].as_array().expect("outputs").clone()
    }
}

/// A file of `len` pseudo-random bytes (no two runs' files are alike).
fn random_file(path: &Path, len: usize) -> PathBuf {
    let mut x: u64 = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect();
    write(path, bytes)
}

#[test]
fn objects_go_to_the_bucket_write_once_under_retention_and_the_event_says_where_and_how_they_were_proven() {
    let agency = Agency::new();
    let video = media(Fixture::H264Mp4, &agency.work.join("cam1.mp4"));
    // Larger than one PUT: it goes up in parts.
    let big = random_file(&agency.work.join("dvr-export.bin"), 40 << 20);
    agency.cmd(&["ingest", "--case", "26-0100", "--item", "1"]).arg(&video).arg(&big).run().status(0);

    let outputs = agency.last_outputs();
    for (out, file) in outputs.iter().zip([&video, &big]) {
        let sha = sha256sum(file);
        assert_eq!(out["sha256"], sha.as_str());
        // The administrator's view of the key: the same bytes, under COMPLIANCE retention.
        let key = agency.key(&sha);
        assert!(agency.bucket.get(&key) == std::fs::read(file).unwrap(), "{key} holds other bytes");
        let head = agency.bucket.head(&key);
        assert_eq!(head["ObjectLockMode"], "COMPLIANCE", "{head}");
        let stored = &out["stored"];
        assert_eq!(stored["url"], format!("s3://{}/{key}", agency.bucket.name).as_str(), "{stored}");
        assert_eq!(stored["version"], head["VersionId"], "{stored}");
        assert_eq!(stored["created"], true);
        assert_eq!(stored["retention"]["mode"], "COMPLIANCE");
        assert!(stored["proof"].as_str().is_some_and(|p| p.contains("read back whole")), "{stored}");
        // Its BLAKE3 tree travels with it.
        let outboard = format!("store/outboards/{}/{}", &sha[..2], &sha[2..]);
        assert!(agency.bucket.keys().iter().any(|(k, _)| *k == outboard), "no outboard for {key}");
    }
    // Nothing is kept in the workstation's own directory.
    assert!(crate::support::files_under(&agency.root.join("objects")).is_empty());

    // A still and a clip read the video through ranged reads; their outputs go up the same way.
    let still_dir = agency.work.join("stills");
    let out = agency.cmd(&["--json", "still", "26-0100:1/cam1.mp4", "--at", "1.5", "--out"]).arg(&still_dir).run();
    let still = &out.status(0).json()["items"][0];
    let sha = still["sha256"].as_str().expect("still sha256");
    let png = crate::support::files_under(&still_dir).pop().expect("a PNG copied out");
    assert_eq!(sha256sum(&png), sha);
    assert!(agency.bucket.get(&agency.key(sha)) == std::fs::read(&png).unwrap());
    assert_eq!(agency.last_outputs()[0]["stored"]["retention"]["mode"], "COMPLIANCE");
    agency.cmd(&["clip", "26-0100:1/cam1.mp4", "--from", "1", "--to", "2.5"]).run().status(0);
    agency.cmd(&["verify"]).run().status(0).stdout_has("OK").stdout_has("4 re-hashed");
    assert!(agency.no_staging_left());
    // The bundle's report says where each file is stored, under what retention, and how proven.
    let zip = agency.work.join("court.zip");
    agency.cmd(&["package", "--case", "26-0100", "--out"]).arg(&zip).run().status(0);
    let unzipped = agency.work.join("court");
    crate::support::tool("unzip", &["-q".as_ref(), zip.as_os_str(), "-d".as_ref(), unzipped.as_os_str()], &agency.work)
        .status(0);
    let pdf =
        crate::support::files_under(&unzipped).into_iter().find(|p| p.extension().is_some_and(|e| e == "pdf")).unwrap();
    let text = crate::support::tool("pdftotext", &[pdf.as_os_str(), "-".as_ref()], &agency.work).status(0).stdout();
    let retained = format!("s3://{}/{}", agency.bucket.name, agency.key(&sha256sum(&video)));
    // (The report wraps a long key across lines.)
    let flat: String = text.split_whitespace().collect();
    assert!(text.contains("Stored") && flat.contains(&retained) && text.contains("COMPLIANCE"), "{text}");

    // A second store on the same prefix finds the bytes already stored (If-None-Match: *
    // refuses the second write), proves them, and records that it did not create them.
    let db2 = postgres::cluster().database();
    let root2 = agency.work.join("second-workstation");
    cmd(&["init"])
        .arg(&root2)
        .args(&["--ledger", &db2.url(&db2.owner), "--objects", &agency.bucket.url("store")])
        .envs(agency.bucket.env_workstation())
        .run()
        .status(0);
    let before = agency.bucket.versions().len();
    cmd(&["--store"])
        .arg(&root2)
        .args(&["ingest", "--case", "26-0101", "--item", "1"])
        .arg(&big)
        .envs(agency.bucket.env_workstation())
        .run()
        .status(0);
    let (_, _, body) = db2.rows().pop().unwrap();
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["outputs"][0]["stored"]["created"], false, "{body}");
    assert_eq!(agency.bucket.versions().len(), before, "a second version was written");
}

#[test]
fn an_object_replaced_in_the_bucket_is_caught_by_verify_and_by_a_still_which_records_nothing() {
    let agency = Agency::new();
    let video = media(Fixture::H264Mp4, &agency.work.join("cam.mp4"));
    agency.cmd(&["ingest", "--case", "26-0200", "--item", "1"]).arg(&video).run().status(0);
    let sha = sha256sum(&video);
    // The administrator writes a new version over the key (retention keeps the old one, but
    // the key now reads as other bytes).
    let mut forged = std::fs::read(&video).unwrap();
    let middle = forged.len() / 2;
    forged[middle] ^= 0x20;
    let forged_path = write(&agency.work.join("forged.mp4"), &forged);
    agency
        .bucket
        .s3api(Identity::Admin, "put-object", &["--key", &agency.key(&sha), "--body", forged_path.to_str().unwrap()])
        .status(0);
    let before = agency.rows();
    let out = agency.cmd(&["verify"]).run();
    out.status(1).stdout_has(&format!("object {sha}")).stdout_has("was modified");
    // A still reads through the checked reader: the altered group stops it, unless the frame
    // it needs lies elsewhere; --verify-whole re-hashes everything and always catches it.
    agency
        .cmd(&["still", "26-0200:1/cam.mp4", "--at", "1", "--verify-whole", "--out"])
        .arg(agency.work.join("stills"))
        .run()
        .status(1)
        .stderr_has("no longer matches the digests recorded")
        .stderr_has("Nothing was");
    assert_eq!(agency.rows(), before, "an event was recorded from altered bytes");
    assert!(agency.no_staging_left());
}

#[test]
fn an_object_hidden_by_a_delete_marker_is_reported_missing() {
    let agency = Agency::new();
    let file = write(&agency.work.join("note.txt"), "interview notes");
    agency.cmd(&["ingest", "--case", "26-0300", "--item", "1"]).arg(&file).run().status(0);
    let key = agency.key(&sha256sum(&file));
    // The workstation's right to write lets it add a delete marker; retention keeps the bytes.
    agency.bucket.s3api(Identity::Workstation, "delete-object", &["--key", &key]).status(0);
    agency.cmd(&["verify"]).run().status(1).stdout_has("is missing from the store");
}

#[test]
fn wrong_credentials_exit_2_without_printing_the_secret_and_a_refusal_exits_3_recording_nothing() {
    let agency = Agency::new();
    let file = write(&agency.work.join("scene.txt"), "scene");
    let before = agency.rows();
    let secret = "not-the-workstation-secret-7f3a";
    let out = agency
        .cmd(&["ingest", "--case", "26-0400", "--item", "1"])
        .arg(&file)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .run();
    out.status(2).stderr_has("refused the credentials").stderr_has("AWS_SECRET_ACCESS_KEY");
    assert!(!out.stderr().contains(secret) && !out.stdout().contains(secret), "the secret was printed");
    // The read-only identity may look but not store: 403, the environment's refusal.
    let (key, reader_secret) = Identity::Reader.keys();
    let out = agency
        .cmd(&["ingest", "--case", "26-0400", "--item", "1"])
        .arg(&file)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", reader_secret)
        .run();
    out.status(3).stderr_has("AccessDenied").stderr_has("nothing was recorded");
    assert!(!out.stderr().contains(reader_secret));
    assert_eq!(agency.rows(), before);
    assert!(agency.no_staging_left());
    assert!(agency.bucket.keys().iter().all(|(k, _)| !k.contains("/objects/")), "an object was stored");
    agency.cmd(&["ingest", "--case", "26-0400", "--item", "1"]).arg(&file).run().status(0);
}

#[test]
fn the_s3_server_killed_mid_upload_exits_3_records_nothing_and_the_retry_succeeds() {
    let server = s3::private();
    let agency = Agency::on(&server);
    let big = random_file(&agency.work.join("pole-cam.bin"), 160 << 20);
    let before = agency.rows();
    let running = agency.cmd(&["ingest", "--case", "26-0500", "--item", "1"]).arg(&big).spawn();
    // Kill the server once the copy is staged (named by its SHA-256): the upload comes next.
    let sha = sha256sum(&big);
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(60) {
        if crate::support::files_under(&agency.root.join("tmp")).iter().any(|p| p.ends_with(&sha)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    server.kill();
    let out = running.wait();
    out.status(3).stderr_has("nothing was recorded");
    assert_eq!(agency.rows(), before, "an event landed although the upload failed");
    assert!(agency.no_staging_left());
    server.start_again();
    agency.cmd(&["ingest", "--case", "26-0500", "--item", "1"]).arg(&big).run().status(0);
    agency.cmd(&["verify"]).run().status(0).stdout_has("OK");
}

#[test]
fn a_workstation_joins_with_its_own_role_and_records_into_the_same_ledger_and_bucket() {
    let agency = Agency::new();
    let tech = agency.db.role("tech", Some("custody_recorder"));
    let ws2 = agency.work.join("ws2");
    let out =
        cmd(&["init"]).arg(&ws2).args(&["--join", &agency.db.url(&tech)]).envs(agency.bucket.env_workstation()).run();
    out.status(0).stdout_has("Joined the agency store");
    let descriptor: Value = serde_json::from_slice(&std::fs::read(ws2.join("store.json")).unwrap()).unwrap();
    assert_eq!(descriptor["objects"], agency.bucket.url("store").as_str());
    assert!(!descriptor.to_string().contains("secret"), "{descriptor}");
    let (_, _, body) = agency.rows().pop().unwrap();
    let join: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((join["action"].as_str(), join["db_user"].as_str()), (Some("join"), Some(tech.as_str())), "{body}");

    // What the joined workstation ingests, the first one sees and verifies.
    let file = write(&agency.work.join("bodycam.txt"), "bodycam export");
    cmd(&["--store"])
        .arg(&ws2)
        .args(&["ingest", "--case", "26-0600", "--item", "1"])
        .arg(&file)
        .envs(agency.bucket.env_workstation())
        .run()
        .status(0);
    assert!(agency.bucket.get(&agency.key(&sha256sum(&file))) == std::fs::read(&file).unwrap());
    agency.cmd(&["show", "26-0600:1/bodycam.txt"]).run().status(0).stdout_has(&tech);
    agency.cmd(&["verify"]).run().status(0).stdout_has("OK");

    // A workstation whose config file names its login joins with `--join` alone, and records
    // as that login without CUSTODY_LEDGER.
    let config = write(&agency.work.join("ws4.yaml"), format!("ledger: {}\n", agency.db.url(&tech)));
    let ws4 = agency.work.join("ws4");
    cmd(&["init"])
        .arg(&ws4)
        .arg("--join")
        .env("CUSTODY_CONFIG", &config)
        .envs(agency.bucket.env_workstation())
        .run()
        .status(0);
    let note = write(&agency.work.join("note4.txt"), "ws4 note");
    cmd(&["--store"])
        .arg(&ws4)
        .args(&["ingest", "--case", "26-0600", "--item", "2"])
        .arg(&note)
        .env("CUSTODY_CONFIG", &config)
        .envs(agency.bucket.env_workstation())
        .run()
        .status(0);
    let (_, _, body) = agency.rows().pop().unwrap();
    let ingest: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ingest["db_user"].as_str(), Some(tech.as_str()), "{body}");
    // `--join` alone with no login anywhere says where to give one.
    cmd(&["init"])
        .arg(agency.work.join("ws5"))
        .arg("--join")
        .envs(agency.bucket.env_workstation())
        .run()
        .status(2)
        .stderr_has("CUSTODY_LEDGER");

    // A password in the URL is refused, and nothing is made.
    let ws3 = agency.work.join("ws3");
    let with_password = agency.db.url(&tech).replace(&format!("{tech}@"), &format!("{tech}:not-written-down@"));
    cmd(&["init"]).arg(&ws3).args(&["--join", &with_password]).envs(agency.bucket.env_workstation()).run().status(2);
    assert!(!ws3.exists());
}

/// Wait until the staged copy of `sha` is in the store's staging (the upload comes next).
fn wait_staged(agency: &Agency, sha: &str) {
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(60) {
        if crate::support::files_under(&agency.root.join("tmp")).iter().any(|p| p.ends_with(sha)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("the copy of {sha} was never staged");
}

#[test]
fn a_workstation_killed_during_its_upload_or_its_commit_records_nothing_and_the_retry_records_the_object() {
    let agency = Agency::new();
    let before = agency.rows();
    // Killed during the upload.
    let big = random_file(&agency.work.join("upload.bin"), 96 << 20);
    let sha = sha256sum(&big);
    let running = agency.cmd(&["ingest", "--case", "26-0700", "--item", "1"]).arg(&big).spawn();
    wait_staged(&agency, &sha);
    std::thread::sleep(std::time::Duration::from_millis(150));
    running.kill();
    assert_eq!(agency.rows(), before, "a killed upload left an event");
    // Killed during the commit: the object is up, the append waits for the ledger.
    let small = write(&agency.work.join("commit.txt"), "statement");
    let holder = std::process::Command::new("psql")
        .args(["-X", "-q", "-d", &agency.db.url(&agency.db.owner), "-c"])
        .arg(format!("SELECT pg_advisory_lock({}); SELECT pg_sleep(120)", 0x4355_5354_4c45_4447_i64))
        .env("PGPASSWORD", postgres::PASSWORD)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start psql");
    while agency.db.advisory_locks(true) == 0 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let running = agency.cmd(&["ingest", "--case", "26-0700", "--item", "2"]).arg(&small).spawn();
    while agency.db.advisory_locks(false) == 0 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    running.kill();
    agency.db.end_advisory_lock_holders();
    let mut holder = holder;
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(agency.rows(), before, "a killed commit left an event");
    let small_key = agency.key(&sha256sum(&small));
    assert!(agency.bucket.keys().iter().any(|(k, _)| *k == small_key), "the upload finished before the commit");
    // verify lists the upload no event records, without failing (retention keeps it).
    let out = agency.cmd(&["--json", "verify"]).run();
    let report = out.status(0).json();
    assert!(report["unrecorded"].as_array().unwrap().iter().any(|s| s == sha256sum(&small).as_str()), "{report}");
    // Running the commands again records both, the objects already there proven and taken.
    agency.cmd(&["ingest", "--case", "26-0700", "--item", "2"]).arg(&small).run().status(0);
    assert_eq!(agency.last_outputs()[0]["stored"]["created"], false);
    agency.cmd(&["ingest", "--case", "26-0700", "--item", "1"]).arg(&big).run().status(0);
    let report = agency.cmd(&["--json", "verify"]).run().status(0).json();
    assert_eq!(report["unrecorded"], serde_json::json!([]), "{report}");
    assert!(agency.no_staging_left());
}

#[test]
fn a_verify_that_cannot_read_the_bucket_stops_exit_3_saying_where_to_go_on_from_and_from_goes_on_there() {
    let agency = Agency::new();
    let mut shas = Vec::new();
    for n in 0..3 {
        let file = write(&agency.work.join(format!("f{n}.txt")), format!("file {n} of the verify test"));
        agency.cmd(&["ingest", "--case", "26-0800", "--item", "1"]).arg(&file).run().status(0);
        shas.push(sha256sum(&file));
    }
    shas.sort();
    // Credentials that may list the bucket but read nothing in it: the check stops at the first
    // object, names it, and says how to go on.
    let out = agency.cmd(&["verify"]).envs(agency.bucket.env(Identity::Lister)).run();
    out.status(3)
        .stderr_has(&format!("verify stopped at object {}", shas[0]))
        .stderr_has(&format!("custody verify --from {}", shas[0]));
    assert!(!out.stderr().contains(crate::s3::LISTER_SECRET));
    // Going on from the second object re-hashes the two from it on, and says so.
    let out = agency.cmd(&["verify", "--from", &shas[1][..10]]).run();
    out.status(0).stdout_has("objects  2 re-hashed").stdout_has(&format!(
        "from     {}: the 1 object(s) before it in SHA-256 order were not re-hashed",
        &shas[1][..10]
    ));
    let json = agency.cmd(&["--json", "verify", "--from", &shas[1]]).run().json();
    assert_eq!((json["objects_checked"].as_u64(), json["objects_skipped"].as_u64()), (Some(2), Some(1)), "{json}");
    agency.cmd(&["verify", "--from", "xyz"]).run().status(2).stderr_has("not a SHA-256");
}

#[test]
fn a_full_object_store_exits_3_records_nothing_and_the_retry_succeeds_once_it_has_room() {
    let server = s3::private_cramped();
    let agency = Agency::on(&server);
    // The first object fills the server's one volume.
    let first = random_file(&agency.work.join("first.bin"), 3 << 20);
    agency.cmd(&["ingest", "--case", "26-0900", "--item", "1"]).arg(&first).run().status(0);
    let rows = agency.rows();
    let second = write(&agency.work.join("second.txt"), "the file that finds the store full");
    let out = agency.cmd(&["ingest", "--case", "26-0900", "--item", "2"]).arg(&second).run();
    out.status(3).stderr_has("InternalError").stderr_has("nothing was recorded").stderr_has("out of space");
    assert!(server.log().contains("no free volumes left"), "not the full store this test is about");
    assert_eq!(agency.rows(), rows);
    assert!(agency.no_staging_left());
    // Once the store has room, the same command records the file.
    server.give_room();
    agency.cmd(&["ingest", "--case", "26-0900", "--item", "2"]).arg(&second).run().status(0);
    assert_eq!(agency.bucket.get(&agency.key(&sha256sum(&second))), std::fs::read(&second).unwrap());
    agency.cmd(&["verify"]).run().status(0).stdout_has("OK");
}
