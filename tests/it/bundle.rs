//! `custody package` and `custody verify BUNDLE`: the court bundle is a BagIt bag in one ZIP of
//! stored entries, which the Library of Congress validator (bagit.py), `sha256sum -c`, its own
//! `verify_custody.py`, case_validate (CASE/UCO), qpdf and pdftotext accept; tampering with any
//! part of it is caught by each checker that can see it, and named; crafted archives (path
//! traversal, absolute names, symlinks, duplicates, overlaps, ZIP bombs, truncation) are refused
//! with exit 2 before anything is written; bad requests record nothing and leave no file.
//!
//! Oracles: bins/setup installs bagit.py and case_validate under target/oracles/bin, and qpdf,
//! pdftotext, unzip, zip, sha256sum, sha512sum, python3 system-wide. A missing oracle fails the
//! test (it does not skip it).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use custody::media::synth::Fixture;
use serde_json::{Value, json};

use crate::support::{
    EXAMINER, Output, Store, b3sum, cmd, digest_with, files_under, flip_byte, run_oracle, sha256sum, shown,
    system_oracle, venv_oracle,
};

// ---------------------------------------------------------------------------------------------
// Oracles.

/// Everything a run printed, for searching and for failure messages.
fn all_text(out: &Output) -> String {
    format!("{}\n{}", out.stdout(), out.stderr())
}

/// Assert the oracle rejected what it was given.
#[track_caller]
fn assert_rejects(out: &Output, what: &str) {
    assert!(out.code.is_some() && out.code != Some(0), "{what} should have failed\n{}", shown(out));
}

/// `python3 -c SCRIPT ARGS…` in `dir`.
#[track_caller]
fn python<S: AsRef<OsStr>>(script: &str, args: &[S], dir: &Path) -> Output {
    let mut all: Vec<OsString> = vec!["-c".into(), script.into()];
    all.extend(args.iter().map(|a| a.as_ref().to_owned()));
    run_oracle(&system_oracle("python3"), &all, dir)
}

// ---------------------------------------------------------------------------------------------
// Building stores and bundles.

/// A case with an H.264 MP4 and a WAV taken into custody, a still and a clip made from the video
/// (case 24-1234, exhibit 9).
struct MediaCase {
    store: Store,
    video: String,
    audio: String,
    still: String,
    clip: String,
}

fn media_case() -> MediaCase {
    let store = Store::new();
    let video = store.ingest_fixture(Fixture::H264Mp4).id;
    let audio = store.ingest_fixture(Fixture::Wav).id;
    let still = store.cmd(&["--json", "still", &video, "--at", "frame:10"]).run().status(0).json();
    let still = still["items"][0]["id"].as_str().unwrap_or_else(|| panic!("no still id: {still:#}")).to_owned();
    let clip = store.cmd(&["--json", "clip", &video, "--from", "frame:0", "--to", "frame:30"]).run().status(0).json();
    let clip = clip["item"].as_str().unwrap_or_else(|| panic!("no clip id: {clip:#}")).to_owned();
    MediaCase { store, video, audio, still, clip }
}

/// A small case of two text items (case 24-77), for tests about the archive, not the media.
fn text_case() -> Store {
    let store = Store::new();
    store.ingest_text("24-77", "1", "statement.txt", "Statement of the witness, read back and signed.\n");
    store.ingest_text("24-77", "2", "dvr-export.log", "export 2024-05-01 14:03:10 channel 2\n");
    store
}

/// A bundle `custody package` wrote.
struct Packaged {
    zip: PathBuf,
    json: Value,
    /// The store's head just before packaging (the head the bundle must state).
    head_before: String,
    /// Events in the store just before packaging.
    events_before: i64,
}

impl Packaged {
    fn bag(&self) -> String {
        self.json["bag"].as_str().unwrap_or_else(|| panic!("no bag in {:#}", self.json)).to_owned()
    }

    fn files(&self) -> Vec<Value> {
        self.json["files"].as_array().unwrap_or_else(|| panic!("no files in {:#}", self.json)).clone()
    }

    /// The item IDs packaged.
    fn items(&self) -> BTreeSet<String> {
        self.files().iter().map(|f| f["item"].as_str().expect("item").to_owned()).collect()
    }
}

/// `custody --json package ARGS… --out work/NAME`, expecting success.
#[track_caller]
fn package(store: &Store, name: &str, args: &[&str]) -> Packaged {
    let zip = store.work().join(name);
    let head_before = store.head();
    let events_before = store.event_count();
    let json = store.cmd(&["--json", "package"]).args(args).arg("--out").arg(&zip).run().status(0).json();
    assert!(zip.is_file(), "package reported success but wrote no {}: {json:#}", zip.display());
    assert_eq!(store.event_count(), events_before + 1, "package must record exactly one event");
    Packaged { zip, json, head_before, events_before }
}

/// Unzip `zip` with Info-ZIP into `into` (which must be empty); returns the one top folder.
#[track_caller]
pub fn unzip(zip: &Path, into: &Path) -> PathBuf {
    fs::create_dir_all(into).expect("unzip target");
    run_oracle(&system_oracle("unzip"), &[OsStr::new("-q"), zip.as_os_str(), OsStr::new("-d"), into.as_os_str()], into)
        .status(0);
    let top: Vec<PathBuf> = fs::read_dir(into).expect("read unzipped").map(|e| e.expect("entry").path()).collect();
    assert_eq!(top.len(), 1, "the bundle must hold exactly one top folder, it holds {top:?}");
    let stem = zip.file_stem().expect("a stem");
    assert_eq!(top[0].file_name(), Some(stem), "the top folder must be named after the zip's stem");
    top[0].clone()
}

/// Copy a directory tree; the copies are made writable (unzip keeps the bundle's read-only modes).
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create copy dir");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), &dest).expect("copy file");
            fs::set_permissions(&dest, fs::Permissions::from_mode(0o644)).expect("chmod copy");
        }
    }
}

/// Every file of a bag, relative to it, sorted.
fn bag_files(bag: &Path) -> BTreeSet<String> {
    files_under(bag).iter().map(|p| p.strip_prefix(bag).unwrap().to_string_lossy().into_owned()).collect()
}

/// The `Key: value` lines of bag-info.txt (a key may repeat).
fn bag_info(bag: &Path) -> Vec<(String, String)> {
    fs::read_to_string(bag.join("bag-info.txt"))
        .expect("bag-info.txt")
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap_or_else(|| panic!("bag-info.txt line {l:?} is not `Key: value`"));
            (k.to_owned(), v.trim().to_owned())
        })
        .collect()
}

fn info_values(info: &[(String, String)], key: &str) -> Vec<String> {
    info.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
}

/// `custody verify PATH` with no store anywhere (CUSTODY_STORE unset, an empty working dir).
fn verify_bundle(path: &Path, extra: &[&str]) -> Output {
    cmd(&["verify"]).args(extra).arg(path).run()
}

/// `custody --json verify PATH`, expecting exit 1: the (kind, subject) of every problem, and the
/// text report of the same check.
#[track_caller]
fn bundle_problems(path: &Path) -> (BTreeSet<(String, String)>, String) {
    let text = verify_bundle(path, &[]).status(1).stdout();
    let json = cmd(&["--json", "verify"]).arg(path).run().status(1).json();
    assert_eq!(json["ok"], false, "{json:#}");
    let problems = json["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems in {json:#}"))
        .iter()
        .map(|p| (p["kind"].as_str().unwrap_or("?").to_owned(), p["subject"].as_str().unwrap_or("?").to_owned()))
        .collect();
    (problems, text)
}

/// Every event in the store: seq → (hash, verbatim body), read straight from the database.
fn stored_events(store: &Store) -> BTreeMap<u64, (String, String)> {
    store.rows().into_iter().map(|(seq, hash, body)| (seq as u64, (hash, body))).collect()
}

/// Item IDs an event names in its inputs or outputs.
fn named_items(body: &Value) -> BTreeSet<String> {
    ["inputs", "outputs"]
        .iter()
        .flat_map(|k| body[k].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f["item"].as_str().map(str::to_owned))
        .collect()
}

fn hex_digest(alg: &'static ring::digest::Algorithm, data: &[u8]) -> String {
    hex::encode(ring::digest::digest(alg, data))
}

/// Rewrite the digests of both payload manifests and then of the tag manifest, as a forger who
/// edited files would: the bag is consistent again and only custody's own records can tell.
fn rehash_manifests(bag: &Path) {
    let rewrite = |manifest: &str, alg: &'static ring::digest::Algorithm| {
        let path = bag.join(manifest);
        let text = fs::read_to_string(&path).expect("manifest");
        let new: String = text
            .lines()
            .map(|l| {
                let (_, rel) = l.split_once("  ").expect("HASH  PATH");
                let data = fs::read(bag.join(rel)).expect("manifest file");
                format!("{}  {rel}\n", hex_digest(alg, &data))
            })
            .collect();
        fs::write(&path, new).expect("rewrite manifest");
    };
    rewrite("manifest-sha256.txt", &ring::digest::SHA256);
    rewrite("manifest-sha512.txt", &ring::digest::SHA512);
    rewrite("tagmanifest-sha256.txt", &ring::digest::SHA256);
}

/// `zip -q -0 -r BAG.zip BAG` in the bag's parent (stored entries, directory entries included).
#[track_caller]
fn rezip(bag: &Path) -> PathBuf {
    let parent = bag.parent().expect("parent");
    let name = bag.file_name().expect("name");
    let zip = parent.join(format!("{}.zip", name.to_string_lossy()));
    run_oracle(
        &system_oracle("zip"),
        &[OsStr::new("-q"), OsStr::new("-0"), OsStr::new("-r"), zip.as_os_str(), name],
        parent,
    )
    .status(0);
    zip
}

/// Each validator's verdict on an unzipped bag.
struct Verdicts {
    bagit: Output,
    sha256sum: Output,
    script: Output,
}

#[track_caller]
fn oracle_verdicts(bag: &Path) -> Verdicts {
    let bagit = run_oracle(&venv_oracle("bagit.py"), &[OsStr::new("--validate"), bag.as_os_str()], bag);
    let sha256sum = run_oracle(&system_oracle("sha256sum"), &["-c", "manifest-sha256.txt"], bag);
    let script = run_oracle(&system_oracle("python3"), &["verify_custody.py"], bag);
    Verdicts { bagit, sha256sum, script }
}

// ---------------------------------------------------------------------------------------------
// 1. A whole case, checked by every validator.

#[test]
fn a_case_bundle_passes_bagit_sha256sum_its_own_script_and_custody_verify_without_a_store() {
    let case = media_case();
    let store = &case.store;
    let day_before = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    let p = package(
        store,
        "court-24-1234.zip",
        &["--case", "24-1234", "--recipient", "ADA J. Moreno, County Prosecutor", "--purpose", "discovery"],
    );
    let day_after = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    let json = &p.json;
    assert_eq!(json["command"], "package", "{json:#}");
    assert_eq!(p.bag(), "court-24-1234", "the bag is named after the zip's stem");
    assert_eq!(
        format!("{}:{}", json["ledger_head"]["seq"], json["ledger_head"]["hash"].as_str().unwrap_or_default()),
        p.head_before,
        "the bundle states the head it was made at"
    );
    let want: BTreeSet<String> = [&case.video, &case.audio, &case.still, &case.clip].into_iter().cloned().collect();
    assert_eq!(p.items(), want, "--case packages every item of the case: {json:#}");

    let tmp = tempfile::tempdir().expect("temp dir");
    let bag = unzip(&p.zip, &tmp.path().join("unzipped"));

    // Exactly the documented layout.
    let mut expected: BTreeSet<String> = [
        "bagit.txt",
        "bag-info.txt",
        "manifest-sha256.txt",
        "manifest-sha512.txt",
        "tagmanifest-sha256.txt",
        "README.txt",
        "verify_custody.py",
        "data/custody/ledger.jsonl",
        "data/custody/items.jsonl",
        "data/custody/case.jsonld",
        "data/report/report.pdf",
        "data/report/report.html",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    for f in p.files() {
        let path = f["path"].as_str().expect("path").to_owned();
        assert!(path.starts_with("data/evidence/24-1234/9/"), "evidence goes under data/evidence/CASE/EXHIBIT: {f:#}");
        // The evidence in the bag is the store's object, byte for byte.
        let sha = f["sha256"].as_str().expect("sha256");
        let unzipped = fs::read(bag.join(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            unzipped == fs::read(store.object_path(sha)).expect("object"),
            "{path} differs from the store's object"
        );
        assert_eq!(sha256sum(&bag.join(&path)), sha, "{path}");
        assert_eq!(f["size"], unzipped.len() as u64, "{f:#}");
        expected.insert(path);
    }
    assert_eq!(bag_files(&bag), expected, "the bag's files");

    // bag-info.txt.
    let info = bag_info(&bag);
    assert_eq!(info_values(&info, "Source-Organization"), ["Test PD"], "{info:?}");
    assert_eq!(info_values(&info, "Contact-Name"), [EXAMINER], "{info:?}");
    assert_eq!(info_values(&info, "External-Identifier"), ["24-1234"], "{info:?}");
    let date = info_values(&info, "Bagging-Date");
    assert!(
        date.len() == 1 && (date[0] == day_before || date[0] == day_after),
        "Bagging-Date {date:?}, today {day_after}"
    );
    let payload: Vec<PathBuf> = files_under(&bag.join("data"));
    let octets: u64 = payload.iter().map(|f| fs::metadata(f).expect("size").len()).sum();
    assert_eq!(info_values(&info, "Payload-Oxum"), [format!("{octets}.{}", payload.len())], "{info:?}");
    assert_eq!(info_values(&info, "Bag-Size").len(), 1, "{info:?}");
    assert_eq!(info_values(&info, "Custody-Ledger-Head"), std::slice::from_ref(&p.head_before), "{info:?}");
    assert_eq!(info_values(&info, "Custody-Recipient"), ["ADA J. Moreno, County Prosecutor"], "{info:?}");
    assert_eq!(info_values(&info, "Custody-Purpose"), ["discovery"], "{info:?}");

    // The independent checkers.
    let v = oracle_verdicts(&bag);
    v.bagit.status(0);
    assert!(v.bagit.stderr().contains("is valid"), "bagit.py did not say valid\n{}", shown(&v.bagit));
    v.sha256sum.status(0);
    run_oracle(&system_oracle("sha256sum"), &["-c", "tagmanifest-sha256.txt"], &bag).status(0);
    run_oracle(&system_oracle("sha512sum"), &["-c", "manifest-sha512.txt"], &bag).status(0);
    v.script.status(0).stdout_has("OK");
    // The script also works from elsewhere, given the folder.
    run_oracle(&system_oracle("python3"), &[bag.join("verify_custody.py").as_os_str(), bag.as_os_str()], tmp.path())
        .status(0);

    // custody itself, with no store around: the zip and the unzipped folder.
    for target in [&p.zip, &bag] {
        verify_bundle(target, &[]).status(0).stdout_has("OK");
        let j = cmd(&["--json", "verify"]).arg(target).run().status(0).json();
        assert_eq!(j["ok"], true, "{j:#}");
        assert_eq!(j["files"], 4, "{j:#}");
        assert_eq!(
            format!("{}:{}", j["head"]["seq"], j["head"]["hash"].as_str().unwrap_or_default()),
            p.head_before,
            "{j:#}"
        );
        assert_eq!(j["problems"], json!([]), "{j:#}");
    }
    store.verify_ok();
}

// ---------------------------------------------------------------------------------------------
// 2. Tampering.

#[derive(Clone, Copy, Debug)]
enum Tamper {
    FlipEvidenceByte,
    /// Bytes appended to an evidence file (the payload grows past Payload-Oxum).
    AppendToEvidence,
    DeleteEvidence,
    AddUnderData,
    EditLedgerLine,
    /// The ledger edit, with every manifest rewritten to match (a consistent bag).
    EditLedgerAndManifests,
    /// An evidence byte flipped, with every manifest rewritten to match.
    FlipEvidenceAndManifests,
}

/// Change the examiner's name in the ledger excerpt's line of the event that ingested the video;
/// returns that event's seq.
fn edit_ledger(bag: &Path, video: &str) -> u64 {
    let path = bag.join("data/custody/ledger.jsonl");
    let text = fs::read_to_string(&path).expect("ledger.jsonl");
    let mut seq = None;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("a JSON line");
            let ev = &v["event"];
            if seq.is_none() && ev["action"] == "ingest" && named_items(ev).contains(video) {
                seq = ev["seq"].as_u64();
                let from = format!("\"examiner\":\"{EXAMINER}\"");
                assert!(line.contains(&from), "no {from} in {line}");
                line.replacen(&from, "\"examiner\":\"Examiner Bess\"", 1)
            } else {
                line.to_owned()
            }
        })
        .collect();
    fs::write(&path, lines.join("\n") + "\n").expect("write ledger.jsonl");
    seq.expect("the video's ingest event is in the excerpt in full")
}

#[test]
fn tampering_with_a_bag_is_caught_by_bagit_sha256sum_verify_custody_and_custody_verify_and_named() {
    let case = media_case();
    let p = package(&case.store, "tamper.zip", &["--case", "24-1234"]);
    let tmp = tempfile::tempdir().expect("temp dir");
    let good = unzip(&p.zip, &tmp.path().join("good"));
    let path_of = |item: &str| -> String {
        let f = p.files().into_iter().find(|f| f["item"] == item).unwrap_or_else(|| panic!("{item} not packaged"));
        f["path"].as_str().expect("path").to_owned()
    };
    let video = path_of(&case.video);
    let audio = path_of(&case.audio);
    let planted = "data/evidence/24-1234/9/planted.mp4".to_owned();
    let ledger = "data/custody/ledger.jsonl".to_owned();
    let mut failed = Vec::new();

    for (n, tamper) in [
        Tamper::FlipEvidenceByte,
        Tamper::AppendToEvidence,
        Tamper::DeleteEvidence,
        Tamper::AddUnderData,
        Tamper::EditLedgerLine,
        Tamper::EditLedgerAndManifests,
        Tamper::FlipEvidenceAndManifests,
    ]
    .into_iter()
    .enumerate()
    {
        // Every kind of tampering is checked even when one fails; the failures are listed at the end.
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let bag = tmp.path().join(format!("copy{n}")).join(p.bag());
            copy_dir(&good, &bag);
            // What custody must report, as (kind, subject); what the reports must name (the file,
            // or for verify_custody.py, which reads the ledger line by line, the edited event).
            let (want, named, script_names): (Vec<(&str, String)>, String, String) = match tamper {
                Tamper::FlipEvidenceByte => {
                    flip_byte(&bag.join(&video));
                    (vec![("modified", video.clone())], video.clone(), video.clone())
                }
                Tamper::AppendToEvidence => {
                    let mut bytes = fs::read(bag.join(&video)).expect("read");
                    bytes.extend_from_slice(b"appended");
                    fs::write(bag.join(&video), bytes).expect("append");
                    (vec![("modified", video.clone())], video.clone(), video.clone())
                }
                Tamper::DeleteEvidence => {
                    fs::remove_file(bag.join(&audio)).expect("delete");
                    (vec![("missing", audio.clone())], audio.clone(), audio.clone())
                }
                Tamper::AddUnderData => {
                    fs::write(bag.join(&planted), b"not evidence").expect("plant");
                    (vec![("unexpected", planted.clone())], planted.clone(), String::new())
                }
                Tamper::EditLedgerLine => {
                    let seq = edit_ledger(&bag, &case.video);
                    let event = format!("event {seq}");
                    (vec![("modified", ledger.clone()), ("ledger", event.clone())], ledger.clone(), event)
                }
                Tamper::EditLedgerAndManifests => {
                    let seq = edit_ledger(&bag, &case.video);
                    rehash_manifests(&bag);
                    let event = format!("event {seq}");
                    (vec![("ledger", event.clone())], event.clone(), event)
                }
                Tamper::FlipEvidenceAndManifests => {
                    flip_byte(&bag.join(&video));
                    rehash_manifests(&bag);
                    (vec![("item", video.clone())], video.clone(), video.clone())
                }
            };
            let ctx = format!("{tamper:?}");

            // The standard tools.
            let v = oracle_verdicts(&bag);
            match tamper {
                Tamper::EditLedgerAndManifests | Tamper::FlipEvidenceAndManifests => {
                    // The bag is consistent again: the manifests cannot tell; only the ledger can.
                    v.bagit.status(0);
                    v.sha256sum.status(0);
                }
                _ => {
                    assert_rejects(&v.bagit, &format!("bagit.py --validate after {ctx}"));
                    // bagit.py checks Payload-Oxum first: for a file deleted, added or grown it names
                    // the totals, not the file; for a same-size change it names the file.
                    if matches!(tamper, Tamper::FlipEvidenceByte | Tamper::EditLedgerLine) {
                        assert!(
                            all_text(&v.bagit).contains(&named),
                            "bagit.py does not name {named}\n{}",
                            shown(&v.bagit)
                        );
                    }
                    if matches!(tamper, Tamper::AddUnderData) {
                        // sha256sum -c only reads the files the manifest lists: an added file is
                        // beyond what it can see (bagit.py and custody catch it).
                        v.sha256sum.status(0);
                    } else {
                        assert_rejects(&v.sha256sum, &format!("sha256sum -c after {ctx}"));
                        assert!(
                            v.sha256sum.stdout().contains(&format!("{named}: FAILED")),
                            "sha256sum -c does not fail {named}\n{}",
                            shown(&v.sha256sum)
                        );
                    }
                }
            }
            // The bundled script checks the ledger excerpt and the evidence against it (not the
            // manifests, so not an added file).
            match tamper {
                Tamper::AddUnderData => {
                    v.script.status(0);
                }
                _ => {
                    assert_rejects(&v.script, &format!("verify_custody.py after {ctx}"));
                    assert!(
                        v.script.stdout().contains(&script_names),
                        "verify_custody.py does not name {script_names}\n{}",
                        shown(&v.script)
                    );
                }
            }

            // custody, on the folder and on the folder zipped again.
            let zip = rezip(&bag);
            for target in [&bag, &zip] {
                let (problems, text) = bundle_problems(target);
                for (kind, subject) in &want {
                    assert!(
                        problems.contains(&(kind.to_string(), subject.clone())),
                        "{ctx}: custody verify {} does not report {kind} {subject}: {problems:?}\n{text}",
                        target.display()
                    );
                }
                assert!(text.contains(&named), "{ctx}: the report does not name {named}:\n{text}");
            }
        }));
        if checked.is_err() {
            failed.push(tamper);
        }
    }
    assert!(failed.is_empty(), "tampering not caught as it should be (see the panics above): {failed:?}");
}

// ---------------------------------------------------------------------------------------------
// 3. CASE/UCO.

#[test]
fn the_bundles_case_graph_and_the_case_export_conform_to_case_uco() {
    let case = media_case();
    let p = package(&case.store, "case.zip", &["--case", "24-1234"]);
    let tmp = tempfile::tempdir().expect("temp dir");
    let bag = unzip(&p.zip, &tmp.path().join("u"));
    let validate = venv_oracle("case_validate");
    run_oracle(&validate, &["data/custody/case.jsonld"], &bag).status(0).stdout_has("Conforms: True");

    let export = case.store.work().join("x.jsonld");
    case.store.cmd(&["export", "--format", "case", "--out"]).arg(&export).run().status(0);
    let out = run_oracle(&validate, &[export.as_os_str()], case.store.work());
    out.status(0).stdout_has("Conforms: True");
    // The export is the whole ledger: every item's SHA-256 is in it.
    let text = fs::read_to_string(&export).expect("export");
    for sha in p.files().iter().map(|f| f["sha256"].as_str().expect("sha256").to_owned()) {
        assert!(text.contains(&sha), "the CASE export lacks {sha}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. The report.

#[test]
fn the_report_pdf_passes_qpdf_and_its_text_holds_every_packaged_items_sha256() {
    let case = media_case();
    let p = package(&case.store, "report.zip", &["--case", "24-1234"]);
    let tmp = tempfile::tempdir().expect("temp dir");
    let bag = unzip(&p.zip, &tmp.path().join("u"));
    let report = bag.join("data/report");
    run_oracle(&system_oracle("qpdf"), &["--check", "report.pdf"], &report).status(0);
    let text = run_oracle(&system_oracle("pdftotext"), &["report.pdf", "-"], &report).status(0).stdout();
    // A 64-hex digest may be broken across lines by the layout: search the text with all
    // whitespace removed (each digest must still appear as one unbroken run of its 64 digits).
    let joined: String = text.split_whitespace().collect();
    let html = fs::read_to_string(report.join("report.html")).expect("report.html");
    let head_hash = p.head_before.split_once(':').expect("SEQ:HASH").1.to_owned();
    for f in p.files() {
        let sha = f["sha256"].as_str().expect("sha256");
        assert!(joined.contains(sha), "the PDF text lacks {} ({sha}):\n{text}", f["path"]);
        assert!(html.contains(sha), "report.html lacks {} ({sha})", f["path"]);
    }
    assert!(joined.contains(&head_hash), "the PDF does not state the ledger head {}:\n{text}", p.head_before);
    assert!(html.contains(&head_hash), "report.html does not state the ledger head {}", p.head_before);
    // The still and the clip say what of their parent was checked before use.
    let checked = html.matches("checked against the parent&#39;s recorded BLAKE3").count()
        + html.matches("checked against the parent's recorded BLAKE3").count();
    assert_eq!(checked, 2, "report.html does not say what the still and the clip verified:\n{html}");
}

// ---------------------------------------------------------------------------------------------
// 5. The ZIP file itself.

const ZIP_LISTING: &str = r#"
import json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    print(json.dumps({"crc_failure": z.testzip(), "entries": [
        {"name": i.filename, "method": i.compress_type, "size": i.file_size, "csize": i.compress_size,
         "offset": i.header_offset} for i in z.infolist()]}))
"#;

#[test]
fn a_sha512_taken_at_ingest_is_the_one_the_bundle_manifest_lists_and_sha512sum_accepts() {
    let store = Store::new();
    let body = "Recorded interview, channel 2.\n".repeat(5000);
    let path = store.file("src/interview.txt", &body);
    let ingested = store
        .cmd(&["--json", "ingest", "--case", "24-88", "--item", "1", "--also", "sha512"])
        .arg(&path)
        .run()
        .status(0)
        .json();
    let want = digest_with("sha512sum", &path);
    // The ledger holds the SHA-512 sha512sum computes.
    let event = stored_events(&store);
    let (_, last_body) = event.values().last().expect("an event");
    assert!(last_body.contains(&want), "the ingest event does not hold the SHA-512 {want}: {last_body}\n{ingested:#}");
    let p = package(&store, "sha512.zip", &["--case", "24-88"]);
    let tmp = tempfile::tempdir().unwrap();
    let bag = unzip(&p.zip, tmp.path());
    let manifest = fs::read_to_string(bag.join("manifest-sha512.txt")).expect("manifest-sha512.txt");
    let line = manifest
        .lines()
        .find(|l| l.ends_with("interview.txt"))
        .unwrap_or_else(|| panic!("no line for interview.txt in manifest-sha512.txt:\n{manifest}"));
    assert!(line.starts_with(&format!("{want}  ")), "manifest line {line:?}, sha512sum says {want}");
    run_oracle(&system_oracle("sha512sum"), &["-c", "manifest-sha512.txt"], &bag).status(0);
    verify_bundle(&p.zip, &[]).status(0);
}

#[test]
fn the_zip_stores_media_unchanged_and_its_sha256_is_the_one_the_package_event_recorded() {
    let case = media_case();
    let store = &case.store;
    let p =
        package(store, "stored.zip", &["--case", "24-1234", "--recipient", "Defense counsel", "--purpose", "review"]);
    let zip_bytes = fs::read(&p.zip).expect("zip");

    // Python's zipfile as the reader: every entry stored, every CRC right, one top folder.
    let listing: Value =
        serde_json::from_str(&python(ZIP_LISTING, &[&p.zip], store.work()).status(0).stdout()).expect("listing JSON");
    assert_eq!(listing["crc_failure"], Value::Null, "zipfile.testzip() found a bad entry");
    let entries = listing["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 12 + 4, "12 bag files and 4 evidence files: {listing:#}");
    let bag = p.bag();
    for e in entries {
        assert_eq!(e["method"], 0, "entry {} is compressed, not stored", e["name"]);
        assert_eq!(e["size"], e["csize"], "{e}");
        assert!(e["name"].as_str().unwrap().starts_with(&format!("{bag}/")), "{} is outside the top folder", e["name"]);
    }
    // The media bytes inside the archive, read at the entry's data offset, are the store's objects.
    for f in p.files() {
        let name = format!("{bag}/{}", f["path"].as_str().unwrap());
        let e = entries.iter().find(|e| e["name"] == name.as_str()).unwrap_or_else(|| panic!("no entry {name}"));
        let at = e["offset"].as_u64().unwrap() as usize;
        assert_eq!(&zip_bytes[at..at + 4], b"PK\x03\x04", "no local header for {name}");
        let name_len = u16::from_le_bytes([zip_bytes[at + 26], zip_bytes[at + 27]]) as usize;
        let extra_len = u16::from_le_bytes([zip_bytes[at + 28], zip_bytes[at + 29]]) as usize;
        let data = at + 30 + name_len + extra_len;
        let size = e["size"].as_u64().unwrap() as usize;
        let object = fs::read(store.object_path(f["sha256"].as_str().unwrap())).expect("object");
        assert!(zip_bytes[data..data + size] == object[..], "{name}: the bytes in the zip are not the store's object");
    }

    // The bundle's digests: the file, the JSON, the package event (read through log and export).
    let sha = sha256sum(&p.zip);
    assert_eq!(p.json["sha256"], sha.as_str(), "{:#}", p.json);
    assert_eq!(p.json["blake3"], b3sum(&p.zip).as_str(), "{:#}", p.json);
    assert_eq!(p.json["size"], zip_bytes.len() as u64, "{:#}", p.json);
    let log = store.cmd(&["--json", "log"]).run().status(0).json();
    let event = log["events"].as_array().expect("events").last().expect("an event").clone();
    assert_eq!(event["action"], "package", "{event:#}");
    assert_eq!(event["params"]["bundle"]["sha256"], sha.as_str(), "{event:#}");
    assert_eq!(event["params"]["recipient"], "Defense counsel", "{event:#}");
    assert_eq!(event["params"]["purpose"], "review", "{event:#}");
    let inputs: BTreeSet<(String, String)> = event["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|i| (i["item"].as_str().unwrap_or("").to_owned(), i["sha256"].as_str().unwrap_or("").to_owned()))
        .collect();
    let packed: BTreeSet<(String, String)> = p
        .files()
        .iter()
        .map(|f| (f["item"].as_str().unwrap().to_owned(), f["sha256"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(inputs, packed, "the package event's inputs are the packaged items");
    let export = store.cmd(&["export"]).run().status(0).stdout();
    let last: Value = serde_json::from_str(export.lines().last().expect("a line")).expect("JSON line");
    assert_eq!(last["event"]["params"]["bundle"]["sha256"], sha.as_str(), "{last:#}");
    assert_eq!(last["hash"], store.head().split_once(':').unwrap().1, "{last:#}");
    store.verify_ok();
}

// ---------------------------------------------------------------------------------------------
// 6. Crafted archives.

/// Writes hostile variants of a good bundle: `python3 -c CRAFT GOOD OUTDIR ABSNAME`. Each
/// archive is written byte by byte (local headers, central directory, end record), so nothing
/// "fixes" what is crafted; `plain` is the good bundle rewritten the same way, as a control.
const CRAFT: &str = r#"
import struct, sys, zlib, zipfile, os
good, outdir, absname = sys.argv[1], sys.argv[2], sys.argv[3]
src = zipfile.ZipFile(good)
entries = [(i.filename, src.read(i.filename)) for i in src.infolist()]
bag = entries[0][0].split('/')[0]

def local_bytes(nb, comp, method, crc, size):
    return struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0x800, method, 0, 0x5821, crc, len(comp), size, len(nb), 0) + nb + comp

class Writer:
    def __init__(self):
        self.buf = bytearray()
        self.cd = []
    def local(self, name, data, method=0, comp=None, size=None, crc=None):
        nb = name.encode()
        comp = data if comp is None else comp
        size = len(data) if size is None else size
        crc = zlib.crc32(data) if crc is None else crc
        off = len(self.buf)
        self.buf += local_bytes(nb, comp, method, crc, size)
        return dict(name=nb, off=off, crc=crc, csize=len(comp), size=size, method=method)
    def central(self, e, name=None, mode=0o100644):
        nb = e['name'] if name is None else name.encode()
        self.cd.append(struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, (3 << 8) | 20, 20, 0x800, e['method'], 0, 0x5821,
                                   e['crc'], e['csize'], e['size'], len(nb), 0, 0, 0, 0, mode << 16, e['off']) + nb)
    def add(self, name, data, mode=0o100644, **kw):
        e = self.local(name, data, **kw)
        self.central(e, mode=mode)
        return e
    def save(self, name):
        cd = b''.join(self.cd)
        start = len(self.buf)
        end = struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, len(self.cd), len(self.cd), len(cd), start, 0)
        with open(os.path.join(outdir, name + '.zip'), 'wb') as f:
            f.write(bytes(self.buf) + cd + end)

def with_all(skip=None):
    w = Writer()
    for name, data in entries:
        if name != skip:
            w.add(name, data)
    return w

# 200 MiB of zeros, raw deflate, and its CRC.
BOMB = 200 << 20
z = zlib.compressobj(9, zlib.DEFLATED, -15)
chunk = bytes(1 << 20)
parts, crc = [], 0
for _ in range(BOMB >> 20):
    parts.append(z.compress(chunk))
    crc = zlib.crc32(chunk, crc)
parts.append(z.flush())
bomb = b''.join(parts)

evidence = next(n for n, _ in entries if '/data/evidence/' in n)

with_all().save('plain')

w = with_all(); w.add('../escaped-by-traversal.txt', b'written outside\n'); w.save('traversal')
w = with_all(); w.add(absname, b'written at an absolute path\n'); w.save('absolute')
w = with_all(); w.add(bag + '/notes.txt', b'/etc/passwd', mode=0o120777); w.save('symlink')
w = with_all(); w.add(bag + '/bag-info.txt', b'Payload-Oxum: 1.1\n'); w.save('duplicate')

# Two central directory entries pointing at the one local header of bag-info.txt.
w = Writer()
for name, data in entries:
    e = w.add(name, data)
    if name == bag + '/bag-info.txt':
        info = e
w.central(info, name=bag + '/bag-info-copy.txt')
w.save('same-local-header')

# An entry whose data holds another entry, local header and all (both names match their headers).
w = with_all()
inner_name = (bag + '/inner.txt').encode()
inner = local_bytes(inner_name, b'inner\n', 0, zlib.crc32(b'inner\n'), 6)
outer = w.add(bag + '/outer.txt', inner)
w.central(dict(name=inner_name, off=outer['off'] + 30 + len(outer['name']), crc=zlib.crc32(b'inner\n'), csize=6, size=6, method=0))
w.save('nested-overlap')

# An evidence file replaced by 200 MiB of zeros that deflate to ~200 KiB, declared honestly:
# the bag-info Payload-Oxum stays small.
w = Writer()
for name, data in entries:
    if name == evidence:
        w.add(name, b'', method=8, comp=bomb, size=BOMB, crc=crc)
    else:
        w.add(name, data)
w.save('bomb-in-payload')

# README.txt (a tag file, not counted by Payload-Oxum) as the same bomb.
w = Writer()
for name, data in entries:
    if name == bag + '/README.txt':
        w.add(name, b'', method=8, comp=bomb, size=BOMB, crc=crc)
    else:
        w.add(name, data)
w.save('bomb-in-tag-file')

# The same bomb in place of the evidence, lying: it declares the evidence's own size and CRC.
w = Writer()
for name, data in entries:
    if name == evidence:
        w.add(name, data, method=8, comp=bomb)
    else:
        w.add(name, data)
w.save('bomb-lying-about-its-size')

with open(good, 'rb') as f:
    whole = f.read()
with open(os.path.join(outdir, 'truncated.zip'), 'wb') as f:
    f.write(whole[:-100])
"#;

/// Every path under `dir` (files, directories, links), with the size of each file: what a
/// command that must write nothing must leave as it found it.
fn listing(dir: &Path) -> BTreeMap<PathBuf, Option<u64>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = e.expect("entry").path();
            let meta = fs::symlink_metadata(&path).expect("metadata");
            if meta.is_dir() {
                stack.push(path.clone());
                out.insert(path, None);
            } else {
                out.insert(path, Some(meta.len()));
            }
        }
    }
    out
}

#[test]
fn crafted_archives_are_refused_with_exit_2_naming_the_problem_and_nothing_is_written() {
    let store = text_case();
    let p = package(&store, "good.zip", &["--case", "24-77"]);
    let root = tempfile::tempdir().expect("temp dir");
    let root = root.path().canonicalize().expect("canonical");
    let crafted = root.join("crafted");
    let run = root.join("run");
    let tmpdir = root.join("tmp");
    for d in [&crafted, &run, &tmpdir] {
        fs::create_dir(d).expect("mkdir");
    }
    // An absolute entry name that would land inside `root` if anything extracted it.
    let absolute = root.join("escaped-absolute.txt");
    python(CRAFT, &[p.zip.as_os_str(), crafted.as_os_str(), absolute.as_os_str()], &root).status(0);

    // The control: the same writer, nothing hostile, is a good bundle.
    verify_bundle(&crafted.join("plain.zip"), &[]).status(0).stdout_has("OK");

    let cases: &[(&str, &[&str])] = &[
        ("traversal", &["escaped-by-traversal.txt", "..|traversal"]),
        ("absolute", &["escaped-absolute.txt", "absolute"]),
        ("symlink", &["notes.txt", "symbolic link|symlink"]),
        ("duplicate", &["bag-info.txt", "two entries|duplicate"]),
        ("same-local-header", &["bag-info", "overlap|local header"]),
        ("nested-overlap", &["overlap"]),
        ("bomb-in-payload", &["Payload-Oxum|bag-info.txt states|bomb"]),
        ("bomb-in-tag-file", &["README.txt", "bomb|declares"]),
        ("truncated", &["truncated"]),
    ];
    for (name, words) in cases {
        let zip = crafted.join(format!("{name}.zip"));
        assert!(zip.is_file(), "the crafting script wrote no {}", zip.display());
        let before = listing(&root);
        let out = cmd(&["verify"]).arg(&zip).current_dir(&run).env("TMPDIR", &tmpdir).run();
        out.status(2).stderr_has("refused");
        let stderr = out.stderr();
        for w in *words {
            assert!(w.split('|').any(|alt| stderr.contains(alt)), "{name}: the refusal does not say {w:?}:\n{stderr}");
        }
        assert_eq!(listing(&root), before, "{name}: custody verify wrote something");
        assert!(!absolute.exists() && !root.join("escaped-by-traversal.txt").exists(), "{name}: a file escaped");
    }

    // The bomb that lies about its size: custody never inflates beyond the declared size, so
    // the entry cannot be read as declared. Either refused (2) or failed naming the entry (1).
    let zip = crafted.join("bomb-lying-about-its-size.zip");
    let before = listing(&root);
    let out = cmd(&["verify"]).arg(&zip).current_dir(&run).env("TMPDIR", &tmpdir).run();
    assert!(matches!(out.code, Some(1 | 2)), "the lying bomb was not rejected\n{}", shown(&out));
    let evidence = p.files()[0]["path"].as_str().unwrap().to_owned();
    let said = all_text(&out);
    assert!(said.contains(&evidence) || said.contains("bomb"), "the lying bomb's entry is not named:\n{said}");
    assert_eq!(listing(&root), before, "custody verify wrote something for the lying bomb");
}

// ---------------------------------------------------------------------------------------------
// 7. Which items, and the ledger excerpt.

#[test]
fn include_selects_originals_or_derived_and_one_derived_item_carries_its_ancestors_events_in_full() {
    let case = media_case();
    let store = &case.store;
    let originals = package(store, "originals.zip", &["--case", "24-1234", "--include", "originals"]);
    assert_eq!(originals.items(), BTreeSet::from([case.video.clone(), case.audio.clone()]), "{:#}", originals.json);
    assert!(originals.files().iter().all(|f| f["parent"].is_null()), "{:#}", originals.json);
    let derived = package(store, "derived.zip", &["--case", "24-1234", "--include", "derived"]);
    assert_eq!(derived.items(), BTreeSet::from([case.still.clone(), case.clip.clone()]), "{:#}", derived.json);
    assert!(derived.files().iter().all(|f| f["parent"] == case.video.as_str()), "{:#}", derived.json);

    // One derived item: the still.
    let one = package(store, "still.zip", &[&case.still]);
    assert_eq!(one.items(), BTreeSet::from([case.still.clone()]), "{:#}", one.json);
    let tmp = tempfile::tempdir().expect("temp dir");
    let bag = unzip(&one.zip, &tmp.path().join("u"));
    let excerpt = fs::read_to_string(bag.join("data/custody/ledger.jsonl")).expect("ledger.jsonl");
    let stored = stored_events(store);
    let lines: Vec<&str> = excerpt.lines().collect();
    assert_eq!(lines.len() as i64, one.events_before, "one line per event up to the head the bundle states");

    // Events concerning the still or its source (the video) are there in full; the rest only as
    // their seq and hash.
    let concerned = BTreeSet::from([case.still.clone(), case.video.clone()]);
    let mut full = BTreeSet::new();
    let mut omitted = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        let seq = i as u64 + 1;
        let (hash, body) = &stored[&seq];
        let parsed: Value = serde_json::from_str(body).expect("stored body");
        if seq == 1 || !named_items(&parsed).is_disjoint(&concerned) {
            assert_eq!(
                *line,
                format!("{{\"event\":{body},\"hash\":\"{hash}\"}}"),
                "event {seq} must be there verbatim"
            );
            full.insert((parsed["action"].as_str().unwrap().to_owned(), named_items(&parsed)));
        } else {
            let v: Value = serde_json::from_str(line).expect("a JSON line");
            assert_eq!(v, json!({"omitted": {"seq": seq, "hash": hash}}), "event {seq} concerns other evidence");
            omitted.insert((parsed["action"].as_str().unwrap().to_owned(), named_items(&parsed)));
        }
    }
    let full_lines = lines.iter().filter(|l| l.starts_with("{\"event\":")).count();
    assert_eq!(one.json["events_included"], full_lines, "{:#}", one.json);
    assert!(full.contains(&("ingest".into(), BTreeSet::from([case.video.clone()]))), "the source's ingest: {full:?}");
    assert!(
        full.contains(&("still".into(), BTreeSet::from([case.video.clone(), case.still.clone()]))),
        "the still's own event: {full:?}"
    );
    assert!(
        omitted.contains(&("ingest".into(), BTreeSet::from([case.audio.clone()]))),
        "the WAV's ingest: {omitted:?}"
    );
    let items = fs::read_to_string(bag.join("data/custody/items.jsonl")).expect("items.jsonl");
    assert_eq!(items.lines().count(), 1, "{items}");

    verify_bundle(&one.zip, &[]).status(0).stdout_has("OK");
    verify_bundle(&bag, &[]).status(0);
    run_oracle(&system_oracle("python3"), &["verify_custody.py"], &bag).status(0);
    run_oracle(&venv_oracle("bagit.py"), &[OsStr::new("--validate"), bag.as_os_str()], &bag).status(0);
}

// ---------------------------------------------------------------------------------------------
// 8. Bad requests.

#[test]
fn bad_requests_exit_2_and_an_altered_object_exits_1_and_all_record_nothing_and_leave_no_file() {
    let store = text_case();
    if !store.sqlite_ledger() {
        return; // tampers with or reads ledger.db itself: the agency ledger's own tests are in agency.rs
    }
    let out_dir = store.work().join("out");
    fs::create_dir(&out_dir).expect("out dir");

    // --out exists.
    let existing = crate::support::write(&out_dir.join("exists.zip"), b"someone else's file");
    let before = store.snapshot();
    store.cmd(&["package", "--case", "24-77", "--out"]).arg(&existing).run().status(2).stderr_has("exists");
    assert_eq!(fs::read(&existing).unwrap(), b"someone else's file", "--out was overwritten");
    store.assert_unchanged(&before);

    // Unknown item, unknown case, an --include that leaves nothing.
    let new = out_dir.join("new.zip");
    store.cmd(&["package", "i99", "--out"]).arg(&new).run().status(2).stderr_has("i99");
    store.cmd(&["package", "--case", "no-such-case", "--out"]).arg(&new).run().status(2).stderr_has("no-such-case");
    store.cmd(&["package", "--case", "24-77", "--include", "derived", "--out"]).arg(&new).run().status(2);
    store.assert_unchanged(&before);
    assert_eq!(
        listing(&out_dir).into_keys().collect::<Vec<_>>(),
        vec![existing.clone()],
        "a failed package left a file"
    );

    // An object altered behind custody's back.
    let sha: String = store
        .sqlite()
        .query_row("SELECT sha256 FROM items WHERE id = 'i1'", [], |r| r.get(0))
        .expect("item i1 in the items table");
    let object = store.object_path(&sha);
    flip_byte(&object);
    let out = store.cmd(&["package", "--case", "24-77", "--out"]).arg(&new).run();
    out.status(1).stderr_has("i1");
    assert!(!new.exists(), "a bundle was written from an altered object");
    assert_eq!(
        listing(&out_dir).into_keys().collect::<Vec<_>>(),
        vec![existing],
        "package left a partial or temporary file next to --out"
    );
    store.assert_unchanged(&before);
}

// ---------------------------------------------------------------------------------------------
// 9. The head written down.

#[test]
fn verify_against_a_head_other_than_the_bundles_fails() {
    let store = text_case();
    let p = package(&store, "against.zip", &["--case", "24-77"]);
    let head = p.head_before.clone();
    verify_bundle(&p.zip, &["--against", &head]).status(0);
    let (seq, hash) = head.split_once(':').unwrap();
    let flipped = format!("{seq}:{}{}", if hash.starts_with('0') { '1' } else { '0' }, &hash[1..]);
    let later = store.head();
    for wrong in [flipped, later] {
        verify_bundle(&p.zip, &["--against", &wrong]).status(1).stdout_has(&wrong);
        let j = cmd(&["--json", "verify", "--against", &wrong]).arg(&p.zip).run().status(1).json();
        assert_eq!(j["ok"], false, "{j:#}");
    }
}

/// A release bundle of a redacted copy carries the redaction's event in full and the events of
/// its source only as hashes, so nothing the redaction removed travels in its ledger excerpt;
/// the redaction event itself holds the source's tag values only as SHA-256.
#[test]
fn a_release_bundle_withholds_the_events_of_the_unredacted_source() {
    let store = Store::new();
    let src = store.ingest_fixture(Fixture::H264Mp4);
    let redacted =
        store.cmd(&["--json", "redact", &src.id, "--box", "0,0,64,64", "--reason", "B6"]).run().status(0).json();
    let copy = redacted["item"].as_str().expect("item").to_owned();
    // The event keeps the source's tags by hash only (the command's own output shows them).
    let events = stored_events(&store);
    let (_, body) = events.values().find(|(_, b)| b.contains("\"action\":\"redact\"")).expect("a redact event").clone();
    let ev: Value = serde_json::from_str(&body).unwrap();
    let before = ev["outputs"][0]["metadata"]["before"].as_array().expect("before");
    let tags: Vec<&Value> = before.iter().filter(|e| e["key"] != "stream" && e["key"] != "chapter").collect();
    assert!(!tags.is_empty(), "the fixture carries stream tags: {before:?}");
    assert!(tags.iter().all(|e| e["value"].as_str().unwrap().starts_with("sha256:")), "{tags:?}");

    let p = package(&store, "release.zip", &[&copy, "--release"]);
    let dir = store.work().join("release-unzipped");
    let bag = unzip(&p.zip, &dir);
    let ledger = fs::read_to_string(bag.join("data/custody/ledger.jsonl")).unwrap();
    let full: Vec<Value> = ledger
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("event").is_some())
        .collect();
    let actions: Vec<&str> = full.iter().map(|v| v["event"]["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["init", "redact"], "only the store's first event and the one that made the copy");
    assert!(!ledger.contains(&src.path.display().to_string()), "the source's path must not travel");
    let info = bag_info(&bag);
    assert!(info_values(&info, "Custody-Excerpt")[0].starts_with("release"), "{info:?}");
    verify_bundle(&p.zip, &[]).status(0);
    // Without --release the source's ingest is there in full.
    let q = package(&store, "court.zip", &[&copy]);
    let court = unzip(&q.zip, &store.work().join("court-unzipped"));
    assert!(fs::read_to_string(court.join("data/custody/ledger.jsonl")).unwrap().contains("\"action\":\"ingest\""));
}

// ---------------------------------------------------------------------------------------------
// 10. What a release discloses.

/// The strings a release must not contain: paths (searched in every file's bytes, and in the
/// PDF's text) and names (searched as whole words in every text, the PDF's included).
struct Secrets {
    paths: Vec<String>,
    words: Vec<String>,
}

impl Secrets {
    /// Every place in the unzipped `bag` where one of the secrets shows.
    fn found_in(&self, bag: &Path) -> Vec<String> {
        let mut found = Vec::new();
        for file in files_under(bag) {
            let rel = file.strip_prefix(bag).unwrap().to_string_lossy().into_owned();
            let bytes = fs::read(&file).expect("bag file");
            let mut texts = vec![String::from_utf8_lossy(&bytes).into_owned()];
            if rel.ends_with(".pdf") {
                let text = run_oracle(&system_oracle("pdftotext"), &[file.as_os_str(), OsStr::new("-")], bag)
                    .status(0)
                    .stdout();
                texts.push(text.split_whitespace().collect());
                texts.push(text);
                // Its document information and XMP metadata, as readers show them.
                for args in [&["-meta"][..], &[][..]] {
                    let mut a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
                    a.push(file.as_os_str());
                    texts.push(run_oracle(&system_oracle("pdfinfo"), &a, bag).status(0).stdout());
                }
            }
            for path in &self.paths {
                if texts.iter().any(|t| t.contains(path.as_str())) {
                    found.push(format!("{rel}: {path}"));
                }
            }
            if rel.starts_with("data/evidence/") {
                continue; // media bytes: only the paths are searched
            }
            // A PDF's raw bytes are compressed streams and font programs: two random letters in
            // them are no word. Its words are searched in its text and metadata (above).
            let skip = usize::from(rel.ends_with(".pdf"));
            for text in &texts[skip..] {
                // Thumbnails are base64 in the HTML: their letters are no words.
                let text = strip_data_uris(text);
                let words: BTreeSet<&str> =
                    text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_')).collect();
                for word in &self.words {
                    if words.contains(word.as_str()) {
                        found.push(format!("{rel}: the word {word:?}"));
                    }
                }
            }
        }
        found.sort();
        found.dedup();
        found
    }
}

fn strip_data_uris(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("data:image/") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        rest = &tail[tail.find('"').unwrap_or(tail.len())..];
    }
    out.push_str(rest);
    out
}

/// A release bundle discloses no path on the agency's machines (the store's, the source
/// folder's, a `--out` folder's, the temp dirs'), no host name and no OS account: not in the
/// ledger excerpt, items.jsonl, bag-info.txt, README.txt, the HTML or PDF report or the CASE/UCO
/// graph. It still verifies with `custody verify` and its own standard-library script, because
/// the withheld members are hashed as commitments; a changed commitment is caught. A court
/// bundle of the same files still carries everything.
#[test]
fn a_release_bundle_discloses_no_path_host_or_account_and_still_verifies() {
    let store = Store::new();
    let host = fs::read_to_string("/proc/sys/kernel/hostname").expect("host name").trim().to_owned();
    let user = custody::fsutil::os_user();
    let source_dir = store.work().join("Source-Folder-Qz81");
    fs::create_dir(&source_dir).expect("source dir");
    custody::media::synth::generate(Fixture::H264Mp4, &source_dir.join("cam.mp4")).expect("fixture");
    // One file: its folder is then no part of its name in the exhibit (a folder ingest names
    // each file by its path from the folder given, the folder's own name first).
    store.cmd(&["ingest", "--case", "24-1", "--item", "1"]).arg(source_dir.join("cam.mp4")).run().status(0);
    // The redaction, the still and the package run without --examiner: the examiner recorded is
    // then the OS account, which a release must not show either.
    let as_os_user = |args: &[&str]| store.cmd(args).env_remove("CUSTODY_EXAMINER");
    let redacted =
        as_os_user(&["--json", "redact", "i1", "--box", "0,0,64,64", "--reason", "B6"]).run().status(0).json();
    let copy = redacted["item"].as_str().expect("redacted item").to_owned();
    let out_dir = store.work().join("Out-Folder-Wk52");
    fs::create_dir(&out_dir).expect("out dir");
    let still =
        as_os_user(&["--json", "still", &copy, "--at", "frame:5", "--out"]).arg(&out_dir).run().status(0).json();
    let still = still["items"][0]["id"].as_str().expect("still item").to_owned();
    let zip = store.work().join("release.zip");
    as_os_user(&["package", &copy, &still, "--release", "--recipient", "records request 2024-119", "--out"])
        .arg(&zip)
        .run()
        .status(0);

    let tmp = tempfile::tempdir().expect("temp dir");
    let bag = unzip(&zip, &tmp.path().join("u"));
    let temp_root = store.path().parent().expect("the store's temp dir").file_name().unwrap().to_string_lossy();
    let secrets = Secrets {
        paths: vec![
            store.path().display().to_string(),
            store.work().display().to_string(),
            source_dir.display().to_string(),
            "Source-Folder-Qz81".into(),
            "Out-Folder-Wk52".into(),
            temp_root.into_owned(),
        ],
        words: vec![host.split('.').next().unwrap().to_owned(), user.clone()],
    };
    assert_eq!(secrets.found_in(&bag), Vec::<String>::new(), "the release discloses these");
    // The search can find them: the same files of a court bundle are full of them.
    let court = package(&store, "court.zip", &[&copy, &still]);
    let court_bag = unzip(&court.zip, &tmp.path().join("c"));
    let in_court = secrets.found_in(&court_bag).join("\n");
    for needle in [
        format!("data/custody/ledger.jsonl: {}", store.path().display()),
        format!("data/custody/ledger.jsonl: {}", source_dir.display()),
        format!("data/report/report.pdf: the word {host:?}"),
        format!("data/report/report.html: the word {user:?}"),
        format!("data/custody/case.jsonld: the word {host:?}"),
    ] {
        assert!(in_court.contains(&needle), "a court bundle carries everything; missing {needle}:\n{in_court}");
    }

    // What the release says instead: each withheld member as a commitment; no Contact-Name.
    let info = bag_info(&bag);
    assert_eq!(info_values(&info, "Contact-Name"), Vec::<String>::new(), "{info:?}");
    let ledger = fs::read_to_string(bag.join("data/custody/ledger.jsonl")).expect("ledger");
    let full: Vec<Value> =
        ledger.lines().filter_map(|l| serde_json::from_str::<Value>(l).unwrap().get("event").cloned()).collect();
    let actions: Vec<&str> = full.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["init", "redact", "still"]);
    for ev in &full {
        assert!(ev.get("private").is_none(), "no salt travels: {ev}");
        for member in ["host", "os_user"] {
            assert!(ev[member]["withheld_sha256"].is_string(), "{member} withheld: {ev}");
        }
    }
    assert!(full[0]["params"]["store"]["withheld_sha256"].is_string());
    assert!(full[1]["examiner"]["withheld_sha256"].is_string(), "the OS account as examiner is withheld");

    // It verifies: custody, its own script, bagit, and the CASE graph conforms.
    verify_bundle(&zip, &[]).status(0).stdout_has("OK");
    run_oracle(&system_oracle("python3"), &["verify_custody.py"], &bag).status(0).stdout_has("OK");
    run_oracle(&venv_oracle("bagit.py"), &[OsStr::new("--validate"), bag.as_os_str()], &bag).status(0);
    run_oracle(&venv_oracle("case_validate"), &["data/custody/case.jsonld"], &bag)
        .status(0)
        .stdout_has("Conforms: True");

    // A changed commitment (the manifests redone, as a forger would) no longer hashes to the chain.
    let forged = tmp.path().join("forged").join(bag.file_name().unwrap());
    copy_dir(&bag, &forged);
    let path = forged.join("data/custody/ledger.jsonl");
    let commitment = full[1]["host"]["withheld_sha256"].as_str().unwrap();
    let flipped = format!("{}{}", if commitment.starts_with('0') { '1' } else { '0' }, &commitment[1..]);
    fs::write(&path, ledger.replacen(commitment, &flipped, 1)).expect("edit the ledger");
    rehash_manifests(&forged);
    let seq = full[1]["seq"].as_u64().unwrap();
    run_oracle(&system_oracle("python3"), &["verify_custody.py"], &forged)
        .status(1)
        .stdout_has(&format!("event {seq} does not match its hash"));
    let (problems, text) = bundle_problems(&forged);
    assert!(problems.contains(&("ledger".to_owned(), format!("event {seq}"))), "{problems:?}\n{text}");
}

/// Events recorded before custody withheld anything (ledger format 1) keep verifying, in the
/// store, in an export and in bundles; but a release cannot include a file such an event made
/// (its host and account are inside its hash): exit 2, naming the event, nothing written.
#[test]
fn a_format_1_event_still_verifies_but_a_release_of_what_it_made_is_refused() {
    let store = Store::new();
    if !store.sqlite_ledger() {
        return; // tampers with or reads ledger.db itself: the agency ledger's own tests are in agency.rs
    }
    let src = store.ingest_fixture(Fixture::H264Mp4);
    let still = store.cmd(&["--json", "still", &src.id, "--at", "frame:2"]).run().status(0).json();
    let still = still["items"][0]["id"].as_str().expect("still item").to_owned();
    // Record the still's event (the last) again as an earlier custody did: no `private`, v 1.
    let seq = store.event_count();
    let conn = store.sqlite();
    let body: String = conn.query_row("SELECT body FROM events WHERE seq = ?1", [seq], |r| r.get(0)).unwrap();
    let start = body.find(",\"private\":{").expect("a format-2 event");
    let end = start + body[start..].find("\"salt\":\"").unwrap() + "\"salt\":\"".len() + 32 + "\"}".len();
    let old = format!("{}{}", &body[..start], &body[end..]).replacen("\"v\":2}", "\"v\":1}", 1);
    assert!(old.ends_with("\"v\":1}") && !old.contains("private"), "{old}");
    crate::verify::without_triggers(&conn, &["events_no_update"], |c| {
        c.execute(
            "UPDATE events SET body = ?1, hash = ?2 WHERE seq = ?3",
            rusqlite::params![old, crate::support::event_hash(&old), seq],
        )
        .unwrap();
    });
    drop(conn);
    store.verify_ok();
    let export = store.work().join("ledger.jsonl");
    store.cmd(&["export", "--out"]).arg(&export).run().status(0);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/verify_ledger.py");
    run_oracle(&system_oracle("python3"), &[script.as_os_str(), export.as_os_str()], store.work())
        .status(0)
        .stdout_has("OK");

    let before = store.snapshot();
    let zip = store.work().join("release.zip");
    store
        .cmd(&["package", &still, "--release", "--out"])
        .arg(&zip)
        .run()
        .status(2)
        .stderr_has(&format!("event {seq} (still)"))
        .stderr_has("ledger format 1");
    store.assert_unchanged(&before);
    assert!(!zip.exists());
    assert!(fs::read_dir(store.work()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains("partial")));
    // A bundle that may disclose them is made and verifies, the format-1 event in full.
    let p = package(&store, "court.zip", &[&still]);
    verify_bundle(&p.zip, &[]).status(0);
    let bag = unzip(&p.zip, &store.work().join("court-unzipped"));
    run_oracle(&system_oracle("python3"), &["verify_custody.py"], &bag).status(0);
}
