//! Field stores pushed into the agency store: a technician's laptop store (SQLite, objects on
//! its disk) brought into the agency's (PostgreSQL ledger, objects in a SeaweedFS bucket). The
//! field chain is kept verbatim, bound by `push` events; psql and the AWS CLI are the oracles.

use std::path::{Path, PathBuf};

use custody::media::synth::Fixture;
use serde_json::Value;

use crate::bucket::Agency;
use crate::support::{Cmd, cmd, media, sha256sum, write};

/// A field store beside the agency's work directory.
fn field_store(agency: &Agency, name: &str) -> PathBuf {
    let dir = agency.work.join(name);
    cmd(&["init"]).arg(&dir).run().status(0);
    dir
}

/// `custody --store FIELD ARGS…` (the field store needs no credentials; a push does).
fn in_field(agency: &Agency, field: &Path, args: &[&str]) -> Cmd {
    cmd(&["--store"]).arg(field).args(args).current_dir(&agency.work).envs(agency.bucket.env_workstation())
}

fn push(agency: &Agency, field: &Path) -> Cmd {
    in_field(agency, field, &["push", "--to"]).arg(&agency.root)
}

/// The field ledger's rows `(seq, hash, body)`, read from its SQLite file.
fn field_rows(field: &Path) -> Vec<(i64, String, String)> {
    let db = rusqlite::Connection::open(field.join("ledger.db")).unwrap();
    let mut stmt = db.prepare("SELECT seq, hash, body FROM events ORDER BY seq").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().collect::<Result<_, _>>().unwrap()
}

/// The rows kept of pushed chain `chain`, read with psql.
fn kept_rows(agency: &Agency, chain: &str) -> Vec<(i64, String, String)> {
    agency
        .db
        .admin(&format!(
            "SELECT json_build_array(seq, hash, body)::text FROM custody.pushed WHERE chain = '{chain}' ORDER BY seq"
        ))
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v[0].as_i64().unwrap(), v[1].as_str().unwrap().to_owned(), v[2].as_str().unwrap().to_owned())
        })
        .collect()
}

fn last_event(agency: &Agency) -> Value {
    serde_json::from_str(&agency.rows().pop().unwrap().2).unwrap()
}

#[test]
fn a_field_store_is_pushed_kept_verbatim_grows_and_is_pushed_again_with_only_what_is_new() {
    let agency = Agency::new();
    let field = field_store(&agency, "laptop");
    let video = media(Fixture::H264Mp4, &agency.work.join("cam1.mp4"));
    in_field(&agency, &field, &["ingest", "--case", "26-0700", "--item", "1", "--clock-offset", "0"])
        .args(&["--recording-start", "2026-03-01T10:00:00"])
        .arg(&video)
        .run()
        .status(0);
    in_field(&agency, &field, &["still", "26-0700:1/cam1.mp4", "--at", "00:00:01"]).run().status(0);
    in_field(&agency, &field, &["transfer", "i1", "--to", "Det. R. Alvarez", "--reason", "review"]).run().status(0);
    let chain = field_rows(&field)[0].1.clone();

    let out = push(&agency, &field).run();
    out.status(0).stdout_has("events   1..4 of the field chain (4 new)").stdout_has("(field item i1)");
    // Kept verbatim: the same rows, byte for byte, as the field's SQLite file holds.
    assert_eq!(kept_rows(&agency, &chain), field_rows(&field));
    let first = last_event(&agency);
    assert_eq!(first["action"], "push");
    assert_eq!(first["params"]["chain"], chain.as_str());
    let field_head = field_rows(&field).last().map(|(s, h, _)| format!("{s}:{h}")).unwrap();
    assert_eq!(first["params"]["head"], field_head.as_str());
    assert!(first["params"].get("after").is_none(), "{first}");
    // The video and the still are agency items now, in the bucket, made from one another.
    let outputs = first["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 2, "{first}");
    let video_item = outputs[0]["item"].as_str().unwrap().to_owned();
    assert_eq!(outputs[0]["pushed"]["item"], "i1");
    assert_eq!(outputs[1]["parent"], video_item.as_str());
    assert_eq!(agency.bucket.get(&agency.key(&sha256sum(&video))), std::fs::read(&video).unwrap());
    let url = outputs[0]["stored"]["url"].as_str().unwrap();
    assert!(url.ends_with(&agency.key(&sha256sum(&video))) && url.starts_with("s3://"), "{first}");
    // The agency item shows its acquisition in the field (its media facts among them) and the push.
    let shown = agency.cmd(&["show", "26-0700:1/cam1.mp4"]).run();
    shown.status(0).stdout_has(&video_item).stdout_has("event 2 of the field store").stdout_has("Media     MP4");
    shown.stdout_has(&format!("Pushed    from field chain {} (its item i1) by event", &chain[..12]));
    // Its history starts at the scene: the field ingest, still and hand-off, then the push; the
    // holder is whom the field handed it to.
    shown.stdout_has("field #2").stdout_has("ingest").stdout_has("Held by   Det. R. Alvarez");
    let json = agency.cmd(&["--json", "show", &video_item]).run().json();
    assert_eq!(json["field_history"], serde_json::json!([2, 3, 4]), "{json}");
    // The agency works on what the field brought: a still of the pushed video, asked for by the
    // wall-clock time the field's ingest recorded the DVR clock for.
    agency.cmd(&["still", &video_item, "--at", "2026-03-01T10:00:02"]).run().status(0);

    // Nothing new: nothing is recorded.
    let before = agency.rows().len();
    push(&agency, &field).run().status(0).stdout_has("Nothing to push");
    assert_eq!(agency.rows().len(), before);
    let mut checks = crate::json::Checks::new();
    let nothing = in_field(&agency, &field, &["--json", "push", "--to"]).arg(&agency.root).run();
    assert_eq!(checks.doc("push", "push, nothing new", &nothing, 0)["pushed_events"], 0);

    // The field store grows: a second push sends only what is new, continuing the first.
    let notes = write(&agency.work.join("notes.txt"), "scene notes, second visit");
    in_field(&agency, &field, &["ingest", "--case", "26-0700", "--item", "2"]).arg(&notes).run().status(0);
    in_field(&agency, &field, &["still", "i1", "--at", "00:00:02.5"]).run().status(0);
    let out = in_field(&agency, &field, &["--json", "push", "--to"]).arg(&agency.root).run();
    let doc = checks.doc("push", "push, two new events", &out, 0);
    assert_eq!((doc["pushed_events"].as_u64(), doc["head"]["seq"].as_u64()), (Some(2), Some(6)), "{doc}");
    checks.validate();
    assert_eq!(kept_rows(&agency, &chain), field_rows(&field));
    let second = last_event(&agency);
    assert_eq!(second["params"]["after"], field_head.as_str());
    assert_eq!(second["params"]["events"], 2);
    let outputs = second["outputs"].as_array().unwrap();
    // The new still names as its parent the agency item the first push made of field item i1.
    assert_eq!(outputs[1]["parent"], video_item.as_str(), "{second}");

    let out = agency.cmd(&["verify"]).run();
    out.status(0)
        .stdout_has(&format!("pushed   field chain {}: 6 events recomputed, bound by 2 push event(s)", &chain[..12]));
    let json = agency.cmd(&["--json", "verify"]).run().json();
    assert_eq!(json["pushed"][0]["chain"], chain.as_str());
    // A bundle of the case made from the agency store carries the field's own records of the
    // pushed files, byte for byte, and both checkers follow them to the heads the pushes bind.
    let zip = agency.work.join("case.zip");
    agency.cmd(&["package", "--case", "26-0700", "--out"]).arg(&zip).run().status(0);
    agency.cmd(&["verify"]).arg(&zip).run().status(0).stdout_has("OK");
    let bag = crate::bundle::unzip(&zip, &agency.work.join("unzipped"));
    let carried = std::fs::read_to_string(bag.join(format!("data/custody/pushed/{chain}.jsonl"))).unwrap();
    // The report's lineage of the still made in the field goes back to the video it was made from.
    let html = std::fs::read_to_string(bag.join("data/report/report.html")).unwrap();
    assert!(
        html.contains(&format!("{video_item} cam1.mp4 (event 2 push) → ")),
        "the field still's lineage lost its parent"
    );
    let rows = field_rows(&field);
    for (seq, hash, body) in &rows {
        // The acquisition (ingest) events of the pushed files are there whole; the rest as stubs.
        let whole = format!("{{\"event\":{body},\"hash\":\"{hash}\"}}");
        let stub = format!("{{\"omitted\":{{\"seq\":{seq},\"hash\":\"{hash}\"}}}}");
        assert!(carried.lines().any(|l| l == whole || l == stub), "field event {seq} is not carried:\n{carried}");
        if body.contains("\"action\":\"ingest\"") {
            assert!(carried.lines().any(|l| l == whole), "the field ingest {seq} is not carried whole:\n{carried}");
        }
    }
    // A public release of a pushed still: the field event that made it is carried in its
    // committed form (host, OS user and paths withheld), and both checkers pass it.
    let release = agency.work.join("release.zip");
    let still_item = first["outputs"][1]["item"].as_str().unwrap().to_owned();
    agency.cmd(&["package", &still_item, "--release", "--out"]).arg(&release).run().status(0);
    agency.cmd(&["verify"]).arg(&release).run().status(0).stdout_has("OK");
    let released = crate::bundle::unzip(&release, &agency.work.join("released"));
    let carried_release = std::fs::read_to_string(released.join(format!("data/custody/pushed/{chain}.jsonl"))).unwrap();
    assert!(
        carried_release.contains("withheld_sha256") && !carried_release.contains("\"os_user\":\"root\""),
        "{carried_release}"
    );
    let python = |dir: &Path| crate::support::tool("python3", &["verify_custody.py".as_ref(), ".".as_ref()], dir);
    python(&released).status(0);
    let out = python(&bag);
    out.status(0).stdout_has("field event(s) of 1 pushed chain(s)");
    // A field event edited in the bag: both checkers name the file and the event.
    let edited = carried.replacen("26-0700", "26-0799", 1);
    let file = bag.join(format!("data/custody/pushed/{chain}.jsonl"));
    let mut perms = std::fs::metadata(&file).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(&file, perms).unwrap();
    std::fs::write(&file, edited).unwrap();
    python(&bag)
        .status(1)
        .stdout_has(&format!("data/custody/pushed/{chain}.jsonl line 2: event 2 does not match its hash"));
    agency
        .cmd(&["verify"])
        .arg(&bag)
        .run()
        .status(1)
        .stdout_has(&format!("pushed/{chain}.jsonl line 2: event 2 does not match its hash"));

    // The field store itself was only read.
    in_field(&agency, &field, &["verify"]).run().status(0);
    assert_eq!(field_rows(&field).len(), 6);
}

#[test]
fn a_field_chain_that_forks_or_lost_pushed_events_is_refused_and_an_edited_kept_chain_fails_verify() {
    let agency = Agency::new();
    let field = field_store(&agency, "laptop");
    let a = write(&agency.work.join("a.txt"), "first file");
    in_field(&agency, &field, &["ingest", "--case", "26-0701", "--item", "1"]).arg(&a).run().status(0);
    // A copy of the laptop's store as it stands now (an old backup, say).
    let backup = agency.work.join("backup");
    std::fs::create_dir(&backup).unwrap();
    crate::support::tool("cp", &["-a".as_ref(), field.as_os_str(), backup.as_os_str()], &agency.work).status(0);
    let backup = backup.join("laptop");
    let b = write(&agency.work.join("b.txt"), "second file");
    in_field(&agency, &field, &["ingest", "--case", "26-0701", "--item", "2"]).arg(&b).run().status(0);
    push(&agency, &field).run().status(0);
    let chain = field_rows(&field)[0].1.clone();
    let rows = agency.rows().len();

    // The backup lacks event 3, which was pushed: refused, named, nothing recorded.
    push(&agency, &backup).run().status(1).stderr_has("ends at event 2").stderr_has("pushed up to event 3");
    // The backup grows another way: its event 3 is not the one pushed.
    let c = write(&agency.work.join("c.txt"), "a different second file");
    in_field(&agency, &backup, &["ingest", "--case", "26-0701", "--item", "3"]).arg(&c).run().status(0);
    push(&agency, &backup).run().status(1).stderr_has("forks from what was pushed before").stderr_has("its event 3");
    assert_eq!(agency.rows().len(), rows);
    assert_eq!(kept_rows(&agency, &chain), field_rows(&field));
    let keys = agency.bucket.keys_under("store/");
    assert!(!keys.iter().any(|(k, _)| *k == agency.key(&sha256sum(&c))), "the fork's object was uploaded");
    agency.cmd(&["verify"]).run().status(0);

    // The kept field chain edited by the database owner, triggers disabled: verify names it.
    agency.db.edit_as_owner("pushed", 3, "26-0701", "26-0799");
    let out = agency.cmd(&["verify"]).run();
    out.status(1).stdout_has(&format!("field chain {}: event 3: its content does not match its hash", &chain[..12]));
    // A push into a store whose ledger is its own file is refused before anything is read.
    let other = field_store(&agency, "other");
    in_field(&agency, &field, &["push", "--to"]).arg(&other).run().status(2).stderr_has("PostgreSQL");
}
