//! `custody media --out IMAGE.iso` and `--burn DRIVE`: a court medium as an ISO 9660 disc image
//! with Joliet names (what a court's Windows PC reads) and Rock Ridge names (Linux, macOS), or
//! burnt with xorriso to a drive (here libburn's `stdio:FILE` pseudo-drive). The image holds the
//! files the folder medium holds, under both trees, each byte for byte as the one `media` event
//! lists it; `custody verify IMAGE` (or the burnt disc) checks it where its files lie, names a
//! file whose bytes were changed on it, and flags a file put beside the bag. An image that exists,
//! a burn with --out naming a folder, and a drive that is not there are refused (exit 2) with
//! nothing written or recorded.
//!
//! Oracles: xorriso (its own ISO reader, libisofs: the Rock Ridge, Joliet and plain ISO 9660
//! trees, `report_lba`, extraction, and `-as mkisofs` to make control images), isoinfo
//! (genisoimage: the volume descriptor and a second Joliet reader), sha256sum, and bagit.py under
//! target/oracles/bin. bins/setup installs them; a missing oracle fails the test (never skips it).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use custody::media::synth::Fixture;
use serde_json::{Value, json};

use crate::media::{listed_files, media_event, medium_files};
use crate::support::{
    Output, Store, assert_plays, cmd, digest_bytes_with, files_under, media, run_oracle, shown, system_oracle,
    venv_oracle, write,
};

// ---------------------------------------------------------------------------------------------
// Oracles.

/// `xorriso -local_charset UTF-8 ARGS…` (file names in UTF-8 whatever the locale), which must
/// succeed.
#[track_caller]
fn xorriso<S: AsRef<OsStr>>(args: &[S]) -> Output {
    let mut all: Vec<OsString> = vec!["-local_charset".into(), "UTF-8".into()];
    all.extend(args.iter().map(|a| a.as_ref().to_owned()));
    let out = run_oracle(&system_oracle("xorriso"), &all, Path::new("/"));
    assert_eq!(out.code, Some(0), "xorriso failed\n{}", shown(&out));
    out
}

/// The files (not folders) of the image's tree as xorriso loads it with `-read_fs MODE`: `any`
/// (Rock Ridge, which Linux and macOS read), `norock` (Joliet, which Windows reads), `ecma119`
/// (the plain ISO 9660 names). Paths relative to the root, with `/`.
#[track_caller]
fn tree(image: &Path, read_fs: &str) -> BTreeSet<String> {
    let out = xorriso(&[
        OsStr::new("-read_fs"),
        OsStr::new(read_fs),
        OsStr::new("-indev"),
        image.as_os_str(),
        OsStr::new("-find"),
        OsStr::new("/"),
        OsStr::new("-type"),
        OsStr::new("f"),
    ]);
    out.stdout()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let p = l.strip_prefix("'/").and_then(|p| p.strip_suffix('\''));
            let p = p.unwrap_or_else(|| panic!("not a quoted path from xorriso -find: {l:?}\n{}", shown(&out)));
            assert!(!p.contains('\''), "a quote inside a path (shell-quoted by xorriso): {l:?}");
            p.to_owned()
        })
        .collect()
}

/// The files (not folders) of the image's Joliet tree as isoinfo (genisoimage) reads it, names
/// converted to ISO 8859-1 (isoinfo writes `_` for a character that charset lacks).
#[track_caller]
fn isoinfo_joliet(image: &Path) -> BTreeSet<String> {
    let out = run_oracle(
        &system_oracle("isoinfo"),
        &[
            OsStr::new("-J"),
            OsStr::new("-j"),
            OsStr::new("iso8859-1"),
            OsStr::new("-f"),
            OsStr::new("-i"),
            image.as_os_str(),
        ],
        Path::new("/"),
    );
    assert_eq!(out.code, Some(0), "isoinfo failed\n{}", shown(&out));
    let text: String = out.stdout.iter().map(|&b| b as char).collect(); // ISO 8859-1
    let all: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let dirs: BTreeSet<&str> =
        all.iter().filter(|l| all.iter().any(|o| o.starts_with(&format!("{l}/")))).copied().collect();
    all.iter()
        .filter(|l| !dirs.contains(*l))
        .map(|l| l.strip_prefix('/').unwrap_or_else(|| panic!("not an absolute path from isoinfo: {l:?}")).to_owned())
        .collect()
}

/// What `isoinfo -d` (genisoimage) says of the image's primary volume descriptor: its lines.
#[track_caller]
fn isoinfo_d(image: &Path) -> Vec<String> {
    let d =
        run_oracle(&system_oracle("isoinfo"), &[OsStr::new("-d"), OsStr::new("-i"), image.as_os_str()], Path::new("/"));
    assert_eq!(d.code, Some(0), "isoinfo -d failed\n{}", shown(&d));
    d.stdout().lines().map(str::to_owned).collect()
}

/// A path as isoinfo -j iso8859-1 shows it: characters outside ISO 8859-1 as `_`.
fn latin1_view(path: &str) -> String {
    path.chars().map(|c| if (c as u32) < 0x100 { c } else { '_' }).collect()
}

/// Where xorriso says the data of the file at `path` (relative to the root) lies on the image:
/// (first block, size in bytes). One extent: the files here are far smaller than 4 GiB.
#[track_caller]
fn report_lba(image: &Path, path: &str) -> (u64, u64) {
    let out = xorriso(&[
        OsStr::new("-indev"),
        image.as_os_str(),
        OsStr::new("-find"),
        OsStr::new(&format!("/{path}")),
        OsStr::new("-exec"),
        OsStr::new("report_lba"),
    ]);
    let rows: Vec<(u64, u64)> = out
        .stdout()
        .lines()
        .filter_map(|l| l.strip_prefix("File data lba:"))
        .map(|l| {
            let f: Vec<&str> = l.splitn(5, ',').map(str::trim).collect();
            assert_eq!(f.len(), 5, "a report_lba row of 5 fields: {l:?}");
            assert_eq!(f[4], format!("'/{path}'"), "report_lba reported another file");
            (f[1].parse().expect("a start block"), f[3].parse().expect("a size"))
        })
        .collect();
    assert_eq!(rows.len(), 1, "one extent for /{path}\n{}", shown(&out));
    rows[0]
}

/// Extract the image's whole (Rock Ridge) tree into `dir` with xorriso's osirrox.
#[track_caller]
fn extract(image: &Path, dir: &Path) {
    xorriso(&[
        OsStr::new("-osirrox"),
        OsStr::new("on"),
        OsStr::new("-indev"),
        image.as_os_str(),
        OsStr::new("-extract"),
        OsStr::new("/"),
        dir.as_os_str(),
    ]);
}

/// The SHA-256 sha256sum prints for `bytes`.
#[track_caller]
fn sha256(bytes: &[u8]) -> String {
    system_oracle("sha256sum");
    digest_bytes_with("sha256sum", bytes)
}

#[track_caller]
fn sha256_file(path: &Path) -> String {
    sha256(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Flip the lowest bit of the byte at `at` in the file, in place; returns the byte it held.
fn flip_at(path: &Path, at: u64) -> u8 {
    let f = fs::OpenOptions::new().read(true).write(true).open(path).expect("open to flip a byte");
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).expect("read the byte");
    f.write_all_at(&[b[0] ^ 0x01], at).expect("write the byte");
    b[0]
}

// ---------------------------------------------------------------------------------------------
// Running custody, and reading what it recorded.

/// The volume id of the default label "Case 24-1234, disc 1 of 1", as d-characters.
const VOLUME: &str = "CASE_24_1234_DISC_1_OF_1";

/// An exhibit with a name outside ASCII (a letter outside ISO 8859-1, too).
const WAV_NAME: &str = "Nguyễn cam 1.wav";

/// The tag files of every bag `custody package` writes.
const BAG_FILES: [&str; 12] = [
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
];

fn evidence(name: &str) -> String {
    format!("data/evidence/24-1234/3/{name}")
}

/// `custody --json media --case 24-1234 --profile court ARGS…` (any exit code).
fn run_media<S: AsRef<OsStr>>(store: &Store, args: &[S]) -> Output {
    store.cmd(&["--json", "media", "--case", "24-1234", "--profile", "court"]).args(args).run()
}

/// Take `files` into custody as exhibit 24-1234:3; returns name → (item id, SHA-256).
#[track_caller]
fn ingest(store: &Store, files: &[&Path]) -> BTreeMap<String, (String, String)> {
    let mut c = store.cmd(&["--json", "ingest", "--case", "24-1234", "--item", "3"]);
    for f in files {
        c = c.arg(f);
    }
    let out = c.run().status(0).json();
    let items: BTreeMap<String, (String, String)> = out["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            let name = i["name"].as_str().expect("name").to_owned();
            (name, (i["id"].as_str().expect("id").to_owned(), i["sha256"].as_str().expect("sha256").to_owned()))
        })
        .collect();
    let want: BTreeSet<String> =
        files.iter().map(|f| f.file_name().expect("a name").to_string_lossy().into_owned()).collect();
    assert_eq!(items.keys().cloned().collect::<BTreeSet<_>>(), want, "precondition: the items' names\n{out:#}");
    items
}

/// `custody verify TARGET` (no store) with the exit code `code`; for 1, the subjects of the
/// problems `--json` lists, each with its kind, and the text output names each subject.
#[track_caller]
fn verify(target: &Path, code: i32) -> BTreeMap<String, String> {
    let text = cmd(&["verify"]).arg(target).run();
    text.status(code);
    let j = cmd(&["--json", "verify"]).arg(target).run().status(code).json();
    if code == 0 {
        text.stdout_has("OK");
        assert_eq!(j["ok"], true, "{j:#}");
    }
    let problems: BTreeMap<String, String> = j["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["subject"].as_str().expect("subject").to_owned(), p["kind"].as_str().expect("kind").to_owned()))
        .collect();
    let said = format!("{}{}", text.stdout(), text.stderr());
    for subject in problems.keys() {
        assert!(said.contains(subject.as_str()), "verify does not name {subject}\n{}", shown(&text));
    }
    problems
}

/// The `HASH  PATH` lines of a `sha256sum` list, as path → hash.
#[track_caller]
fn sums(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(|l| {
            let (hash, path) = l.split_once("  ").unwrap_or_else(|| panic!("not `HASH  PATH`: {l:?}"));
            (path.to_owned(), hash.to_owned())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. A court disc image: the medium's files under both trees, checked by every checker.

#[test]
fn a_court_disc_image_holds_every_file_of_the_medium_under_rock_ridge_and_joliet_names_and_every_checker_accepts_it() {
    let store = Store::new();
    // A DVR's raw H.264 (no court PC plays it: custody makes the MP4 copy), a camera's MJPEG AVI,
    // and a recording named in Vietnamese.
    let export = store.work().join("export");
    let raw = media(Fixture::RawH264, &export.join("dvr_ch01.h264"));
    let avi = media(Fixture::MjpegAvi, &export.join("cam_704x480.avi"));
    let wav = media(Fixture::Wav, &export.join(WAV_NAME));
    let mut items = ingest(&store, &[&raw, &avi, &wav]);
    let raw_id = items["dvr_ch01.h264"].0.clone();

    let image = store.work().join("24-1234.iso");
    let events_before = store.event_count();
    let json = run_media(&store, &[OsStr::new("--out"), image.as_os_str()]).status(0).json();

    // Three events: the raw stream's playback copy (a lossless rewrap), the AVI's (re-encoded:
    // no browser plays MJPEG in AVI; an exact clip of every frame), then the medium.
    let bodies = store.event_bodies();
    assert_eq!(bodies.len() as i64, events_before + 3, "a rewrap, a clip (the playback copies) and a media event");
    let new = &bodies[events_before as usize..];
    let rewrap = new.iter().find(|e| e["action"] == "rewrap").unwrap_or_else(|| panic!("no rewrap: {new:#?}"));
    let clip = new.iter().find(|e| e["action"] == "clip").unwrap_or_else(|| panic!("no clip: {new:#?}"));
    let avi_id = items["cam_704x480.avi"].0.clone();
    assert_eq!(clip["inputs"][0]["item"], avi_id.as_str(), "{clip:#}");
    assert_eq!(clip["params"]["mode"], "exact", "the AVI's copy is re-encoded: {clip:#}");
    let avi_copy = &clip["outputs"][0];
    assert_eq!(avi_copy["name"], "cam_704x480_avi_playback.mp4", "{clip:#}");
    let avi_copy_id = avi_copy["item"].as_str().expect("item").to_owned();
    items.insert(
        "cam_704x480_avi_playback.mp4".into(),
        (avi_copy_id.clone(), avi_copy["sha256"].as_str().expect("sha256").to_owned()),
    );
    assert_eq!(rewrap["inputs"][0]["item"], raw_id.as_str(), "{rewrap:#}");
    let made = &rewrap["outputs"][0];
    let copy_name = made["name"].as_str().expect("name").to_owned();
    assert!(copy_name.ends_with(".mp4"), "the playback copy is an MP4: {rewrap:#}");
    let copy_id = made["item"].as_str().expect("item").to_owned();
    items.insert(copy_name, (copy_id.clone(), made["sha256"].as_str().expect("sha256").to_owned()));
    let event = media_event(&store);
    let params = &event["params"];
    let mut copies: Vec<Value> = params["playback_copies"].as_array().expect("playback_copies").clone();
    copies.sort_by_key(|c| c["of"].as_str().map(str::to_owned));
    let mut want_copies = vec![
        json!({"item": copy_id, "of": raw_id, "made": true, "re_encoded": false}),
        json!({"item": avi_copy_id, "of": avi_id, "made": true, "re_encoded": true}),
    ];
    want_copies.sort_by_key(|c| c["of"].as_str().map(str::to_owned));
    assert_eq!(copies, want_copies, "{event:#}");

    // The event lists exactly the folder medium's files: the bag, the four exhibit files,
    // index.html and SHA256SUMS.txt; each exhibit with the SHA-256 its item was recorded with.
    let files = listed_files(&params["files"]);
    let paths: BTreeSet<String> = files.keys().cloned().collect();
    let mut want: BTreeSet<String> = BAG_FILES.iter().map(|s| s.to_string()).collect();
    want.extend(items.keys().map(|n| evidence(n)));
    want.insert("index.html".into());
    want.insert("SHA256SUMS.txt".into());
    assert_eq!(paths, want, "the event's files\n{event:#}");
    for (name, (_, sha)) in &items {
        assert_eq!(files[&evidence(name)].0, *sha, "{name} on the medium is not the item's object");
    }
    let bytes: u64 = files.values().map(|(_, size)| size).sum();
    assert_eq!(
        params["read_back"],
        json!({"files": files.len(), "bytes": bytes, "result": "matched"}),
        "the read-back: {event:#}"
    );

    // The medium: an image whose size and SHA-256 (sha256sum) the event states, named by its
    // volume id; --json says the same.
    let image_bytes = fs::read(&image).expect("the image");
    let medium = &params["medium"];
    assert_eq!(
        *medium,
        json!({
            "kind": "image",
            "formats": ["AVI", "H264", "HTML", "MP4", "PDF", "WAV"],
            "path": image.to_str().unwrap(),
            "volume": VOLUME,
            "image_size": image_bytes.len(),
            "image_sha256": sha256(&image_bytes),
        }),
        "the event's medium vs the image on disk"
    );
    assert_eq!(json["command"], "media", "{json:#}");
    assert_eq!(json["out"], image.to_str().unwrap(), "{json:#}");
    assert_eq!(json["medium"], *medium, "{json:#}");
    assert_eq!(listed_files(&json["files"]), files, "--json files vs the event's");
    assert_eq!(json["read_back"], params["read_back"], "{json:#}");
    // Nothing else was written beside it (no partial image), nothing left in the store's tmp/.
    let beside: BTreeSet<String> =
        fs::read_dir(store.work()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(beside, BTreeSet::from(["export".to_owned(), "24-1234.iso".to_owned()]), "the working folder");
    assert_eq!(store.tmp_entries(), Vec::<PathBuf>::new(), "leftovers in the store's tmp/");

    // The volume descriptor (isoinfo): the volume id, Joliet and Rock Ridge.
    let d = isoinfo_d(&image);
    for line in [format!("Volume id: {VOLUME}"), "Joliet with UCS level 3 found".into(), "Rock Ridge signatures".into()]
    {
        assert!(d.iter().any(|l| l.starts_with(&line)), "isoinfo -d lacks {line:?}: {d:#?}");
    }

    // Both trees hold exactly the event's files, under their full names, the Vietnamese one
    // included: Rock Ridge (Linux, macOS) and Joliet (Windows), by xorriso, and Joliet again by
    // isoinfo (which shows a letter outside ISO 8859-1 as `_`). The plain ISO 9660 tree has only
    // 8.3 names, so the first two listings did read the trees they name.
    assert_eq!(tree(&image, "any"), paths, "the Rock Ridge tree (xorriso) vs the event's files");
    assert_eq!(tree(&image, "norock"), paths, "the Joliet tree (xorriso -read_fs norock) vs the event's files");
    let latin1: BTreeSet<String> = paths.iter().map(|p| latin1_view(p)).collect();
    assert!(latin1.contains(&evidence("Nguy_n cam 1.wav")), "precondition: the name has a letter outside Latin-1");
    assert_eq!(isoinfo_joliet(&image), latin1, "the Joliet tree (isoinfo -J) vs the event's files");
    let plain = tree(&image, "ecma119");
    assert_eq!(plain.len(), paths.len(), "the plain ISO 9660 tree holds as many files: {plain:?}");
    assert!(plain.is_disjoint(&paths), "the plain ISO 9660 tree has other (8.3) names: {plain:?}");

    // Extracted (xorriso's osirrox), every file is what the event lists (sha256sum), each exhibit
    // the store's object; sha256sum -c and bagit.py accept the folder.
    let dir = store.work().join("extracted");
    extract(&image, &dir);
    assert_eq!(medium_files(&dir), files, "the files extracted from the image (sha256sum) vs the event's");
    for (name, (_, sha)) in &items {
        let got = fs::read(dir.join(evidence(name))).expect("exhibit");
        assert!(got == store.object_bytes(sha), "{name} extracted from the image is not the store's object");
    }
    let listed = sums(&fs::read_to_string(dir.join("SHA256SUMS.txt")).expect("SHA256SUMS.txt"));
    let others: BTreeSet<String> = paths.iter().filter(|p| *p != "SHA256SUMS.txt").cloned().collect();
    assert_eq!(listed.keys().cloned().collect::<BTreeSet<_>>(), others, "SHA256SUMS.txt lists every other file");
    run_oracle(&system_oracle("sha256sum"), &["-c", "--strict", "SHA256SUMS.txt"], &dir).status(0);
    let bagit = run_oracle(&venv_oracle("bagit.py"), &[OsStr::new("--validate"), dir.as_os_str()], &dir);
    bagit.status(0);
    assert!(bagit.stderr().contains("is valid"), "bagit.py did not say valid\n{}", shown(&bagit));

    // custody verify accepts the image itself, with no store around; the store verifies.
    let problems = verify(&image, 0);
    assert!(problems.is_empty(), "{problems:?}");
    let j = cmd(&["--json", "verify"]).arg(&image).run().status(0).json();
    assert_eq!(j["bag"], VOLUME, "{j:#}");
    assert_eq!(j["files"], items.len(), "the payload's exhibit files: {j:#}");
    store.verify_ok();
}

// ---------------------------------------------------------------------------------------------
// 2. Tampering with an image, and with a medium folder, is named.

#[test]
fn a_byte_flipped_in_one_files_data_on_the_image_is_named_by_verify_and_a_file_put_beside_the_bag_is_flagged() {
    let store = Store::new();
    let export = store.work().join("export");
    let wav = media(Fixture::Wav, &export.join("overhear.wav"));
    let avi = media(Fixture::MjpegAvi, &export.join("cam_704x480.avi"));
    let items = ingest(&store, &[&wav, &avi]);
    let image = store.work().join("disc.iso");
    run_media(&store, &[OsStr::new("--out"), image.as_os_str()]).status(0);
    let event = media_event(&store);
    let files = listed_files(&event["params"]["files"]);
    let paths: BTreeSet<String> = files.keys().cloned().collect();
    let image_sha = event["params"]["medium"]["image_sha256"].as_str().expect("image_sha256").to_owned();
    let intact = store.work().join("intact.iso");
    fs::copy(&image, &intact).expect("copy the image");

    // Where the WAV's data lies on the image, by xorriso: the bytes there are the store's object
    // (so report_lba pointed at the right bytes).
    let wav_rel = evidence("overhear.wav");
    let (sha, size) = files[&wav_rel].clone();
    assert_eq!(sha, items["overhear.wav"].1, "precondition: the WAV on the medium is the item's object");
    let (lba, len) = report_lba(&image, &wav_rel);
    assert_eq!(len, size, "report_lba's size of {wav_rel}");
    let start = lba * 2048;
    let on_image = fs::read(&image).expect("image");
    assert!(
        on_image[start as usize..(start + size) as usize] == store.object_bytes(&sha)[..],
        "the bytes at block {lba} are not {wav_rel}"
    );
    assert_ne!(
        on_image[start as usize..(start + size) as usize],
        on_image[start as usize + 2048..(start + size) as usize + 2048],
        "precondition: the bytes one block later differ (the check above could fail)"
    );

    // One bit flipped in the middle of the WAV's data.
    flip_at(&image, start + size / 2);
    assert_ne!(sha256_file(&image), image_sha, "the image's SHA-256 must change");
    // The tree is the same, but what xorriso extracts of the WAV is no longer what was written.
    assert_eq!(tree(&image, "any"), paths, "a flipped data byte leaves the tree alone");
    let dir = store.work().join("flipped");
    extract(&image, &dir);
    let got = medium_files(&dir);
    assert_ne!(got[&wav_rel], files[&wav_rel], "xorriso extracts the flipped WAV with another SHA-256");
    let others_same = got.iter().filter(|(p, _)| **p != wav_rel).all(|(p, v)| files[p] == *v);
    assert!(others_same, "every other file extracts as written");
    // sha256sum -c and bagit.py, which accept an intact medium (test 1), reject it.
    let sums = run_oracle(&system_oracle("sha256sum"), &["-c", "SHA256SUMS.txt"], &dir);
    assert!(
        sums.code != Some(0) && sums.stdout().contains(&format!("{wav_rel}: FAILED")),
        "sha256sum -c does not fail the flipped WAV\n{}",
        shown(&sums)
    );
    let bagit = run_oracle(&venv_oracle("bagit.py"), &[OsStr::new("--validate"), dir.as_os_str()], &dir);
    assert!(bagit.code != Some(0), "bagit.py accepted the flipped WAV\n{}", shown(&bagit));
    // custody verify names the WAV, and only it; the intact copy passes.
    let problems = verify(&image, 1);
    assert_eq!(problems, BTreeMap::from([(wav_rel.clone(), "modified".to_owned())]), "verify of the flipped image");
    assert!(verify(&intact, 0).is_empty());
    assert_eq!(sha256_file(&intact), image_sha, "the intact copy is the image as written");

    // index.html is outside the bag: SHA256SUMS.txt is what names it when it was changed.
    let html = store.work().join("html.iso");
    fs::copy(&intact, &html).expect("copy the image");
    let (lba, len) = report_lba(&html, "index.html");
    assert_eq!(len, files["index.html"].1, "report_lba's size of index.html");
    let first = fs::read(store.work().join("flipped/index.html")).expect("index.html");
    let at = lba * 2048;
    assert_eq!(
        fs::read(&html).expect("image")[at as usize..(at + len) as usize],
        first[..],
        "index.html at block {lba}"
    );
    flip_at(&html, at + len / 2);
    let problems = verify(&html, 1);
    let want = BTreeMap::from([("index.html".to_owned(), "modified".to_owned())]);
    assert_eq!(problems, want, "verify of the image with index.html changed");

    // A file put beside the bag on a medium folder (the intact image extracted) is flagged.
    let folder = store.work().join("medium");
    extract(&intact, &folder);
    assert!(verify(&folder, 0).is_empty(), "the extracted medium verifies before anything is added");
    write(&folder.join("autorun.inf"), "[autorun]\nopen=player.exe\n");
    let problems = verify(&folder, 1);
    assert_eq!(problems, BTreeMap::from([("autorun.inf".to_owned(), "unexpected".to_owned())]), "verify DIR");
    // And on an image made again from that folder (xorriso -as mkisofs): the Rock Ridge listing
    // shows the file no event lists, and custody verify flags it.
    let remade = store.work().join("remade.iso");
    xorriso(&[
        OsStr::new("-as"),
        OsStr::new("mkisofs"),
        OsStr::new("-R"),
        OsStr::new("-J"),
        OsStr::new("-V"),
        OsStr::new(VOLUME),
        OsStr::new("-o"),
        remade.as_os_str(),
        folder.as_os_str(),
    ]);
    let listed = tree(&remade, "any");
    assert_eq!(listed.difference(&paths).collect::<Vec<_>>(), ["autorun.inf"], "the remade image's extra file");
    assert!(paths.is_subset(&listed), "the remade image holds every file of the medium");
    let problems = verify(&remade, 1);
    assert_eq!(problems, BTreeMap::from([("autorun.inf".to_owned(), "unexpected".to_owned())]), "verify IMAGE");
}

// ---------------------------------------------------------------------------------------------
// 3. Burning to libburn's stdio pseudo-drive.

#[test]
fn a_disc_burnt_to_the_stdio_pseudo_drive_holds_the_kept_image_and_reads_back_and_a_flip_on_it_is_named() {
    let store = Store::new();
    let export = store.work().join("export");
    let wav = media(Fixture::Wav, &export.join("overhear.wav"));
    let avi = media(Fixture::MjpegAvi, &export.join("cam_704x480.avi"));
    let items = ingest(&store, &[&wav, &avi]);
    let drives = store.work().join("drives");
    fs::create_dir(&drives).expect("mkdir");
    let disc = drives.join("disc.img");
    let drive = format!("stdio:{}", disc.display());
    let kept = store.work().join("kept.iso");

    let events_before = store.event_count();
    let json = run_media(&store, &[OsStr::new("--burn"), OsStr::new(&drive), OsStr::new("--out"), kept.as_os_str()])
        .status(0)
        .json();
    assert_eq!(store.event_count(), events_before + 2, "the AVI's re-encoded playback copy (a clip) and the medium");
    let event = media_event(&store);
    let params = &event["params"];
    let files = listed_files(&params["files"]);
    let paths: BTreeSet<String> = files.keys().cloned().collect();
    let medium = &params["medium"];
    let size = medium["image_size"].as_u64().unwrap_or_else(|| panic!("no image_size: {event:#}"));
    let image_sha = medium["image_sha256"].as_str().unwrap_or_else(|| panic!("no image_sha256: {event:#}")).to_owned();
    assert_eq!(
        *medium,
        json!({
            "kind": "disc",
            "formats": ["AVI", "HTML", "MP4", "PDF", "WAV"],
            "drive": drive,
            "path": kept.to_str().unwrap(),
            "volume": VOLUME,
            "image_size": size,
            "image_sha256": image_sha,
        }),
        "the event's medium"
    );
    assert_eq!(json["medium"], *medium, "{json:#}");
    assert_eq!(params["read_back"]["result"], "matched", "{event:#}");
    assert_eq!(params["read_back"]["files"], files.len(), "{event:#}");

    // The kept image is the image burnt: its SHA-256 (sha256sum) is the event's, and so is that
    // of the disc's first image_size bytes (the pseudo-drive holds padding after them).
    let kept_bytes = fs::read(&kept).expect("the kept image");
    assert_eq!(kept_bytes.len() as u64, size, "the kept image's size");
    assert_eq!(sha256(&kept_bytes), image_sha, "sha256sum of the kept image");
    let disc_bytes = fs::read(&disc).expect("the burnt disc");
    assert!(disc_bytes.len() as u64 >= size, "the disc ({} bytes) holds the image ({size})", disc_bytes.len());
    assert_eq!(sha256(&disc_bytes[..size as usize]), image_sha, "sha256sum of the disc's first {size} bytes");
    assert_ne!(
        sha256(&disc_bytes[..size as usize - 1]),
        image_sha,
        "a byte fewer has another SHA-256 (the check above could fail)"
    );

    // The disc's trees (xorriso) hold the event's files; custody verify accepts it and the image.
    assert_eq!(tree(&disc, "any"), paths, "the disc's Rock Ridge tree vs the event's files");
    assert_eq!(tree(&disc, "norock"), paths, "the disc's Joliet tree vs the event's files");
    let mut want: BTreeSet<String> = BAG_FILES.iter().map(|s| s.to_string()).collect();
    want.extend(items.keys().map(|n| evidence(n)));
    want.extend(["index.html".to_owned(), "SHA256SUMS.txt".to_owned(), evidence("cam_704x480_avi_playback.mp4")]);
    assert_eq!(paths, want, "the event's files");
    assert!(verify(&disc, 0).is_empty());
    assert!(verify(&kept, 0).is_empty());

    // One bit flipped inside the WAV on the disc (found by report_lba, checked to be the WAV):
    // verify of the disc names it; the kept image still passes.
    let wav_rel = evidence("overhear.wav");
    let (lba, len) = report_lba(&disc, &wav_rel);
    let (sha, wav_size) = files[&wav_rel].clone();
    assert_eq!(len, wav_size, "report_lba's size of {wav_rel}");
    let start = (lba * 2048) as usize;
    assert!(disc_bytes[start..start + len as usize] == store.object_bytes(&sha)[..], "block {lba} is not the WAV");
    flip_at(&disc, lba * 2048 + len / 2);
    let problems = verify(&disc, 1);
    assert_eq!(problems, BTreeMap::from([(wav_rel, "modified".to_owned())]), "verify of the flipped disc");
    assert!(verify(&kept, 0).is_empty(), "the kept image is untouched");

    // A burn without --out keeps no image: the working folder gets only the disc, the store's
    // tmp/ nothing, and the store holds no image anywhere.
    let before: BTreeSet<PathBuf> = files_under(store.work()).into_iter().collect();
    let disc2 = drives.join("disc2.img");
    let drive2 = format!("stdio:{}", disc2.display());
    run_media(&store, &["--burn", &drive2]).status(0);
    let event = media_event(&store);
    let medium = &event["params"]["medium"];
    assert_eq!(medium["kind"], "disc", "{event:#}");
    assert_eq!(medium["drive"], drive2.as_str(), "{event:#}");
    assert!(medium.get("path").is_none(), "no image kept, so no path: {event:#}");
    let after: BTreeSet<PathBuf> = files_under(store.work()).into_iter().collect();
    assert_eq!(after.difference(&before).collect::<Vec<_>>(), [&disc2], "what the burn left in the working folder");
    assert!(before.is_subset(&after), "the burn removed a file");
    assert_eq!(store.tmp_entries(), Vec::<PathBuf>::new(), "leftovers in the store's tmp/");
    let images: Vec<PathBuf> = files_under(store.path())
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".iso") || name.ends_with(".partial")
        })
        .collect();
    assert_eq!(images, Vec::<PathBuf>::new(), "an image left in the store");
    let size2 = medium["image_size"].as_u64().expect("image_size") as usize;
    assert_eq!(sha256(&fs::read(&disc2).expect("disc2")[..size2]), medium["image_sha256"].as_str().unwrap());
    assert!(verify(&disc2, 0).is_empty());
    store.verify_ok();
}

// ---------------------------------------------------------------------------------------------
// 4. Refusals: nothing written, nothing recorded.

#[test]
fn an_existing_image_a_burn_with_a_folder_out_and_a_missing_drive_are_refused_with_nothing_written_or_recorded() {
    let store = Store::new();
    // A raw H.264 stream: a run that got past its checks would make (and record) its playback
    // copy, so a refusal that came too late would show in the store.
    let export = store.work().join("export");
    let raw = media(Fixture::RawH264, &export.join("dvr_ch01.h264"));
    let wav = media(Fixture::Wav, &export.join("overhear.wav"));
    ingest(&store, &[&raw, &wav]);
    let earlier = b"an earlier disc image, never to be written over\n";
    let existing = write(&store.work().join("24-1234.iso"), earlier);
    let drives = store.work().join("drives");
    fs::create_dir(&drives).expect("mkdir");
    let disc = drives.join("disc.img");
    let drive = format!("stdio:{}", disc.display());
    let folder = store.work().join("usb");
    let new_iso = store.work().join("new.iso");

    let before = store.snapshot();
    let log = store.cmd(&["--json", "log"]).run().status(0).stdout();
    let files_before = files_under(store.work());
    let unchanged = |what: &str| {
        store.assert_unchanged(&before);
        assert_eq!(store.cmd(&["--json", "log"]).run().status(0).stdout(), log, "the log changed: {what}");
        assert_eq!(files_under(store.work()), files_before, "files written or removed: {what}");
        assert_eq!(fs::read(&existing).expect("the existing image"), earlier, "the existing image changed: {what}");
        assert!(!folder.exists() && !disc.exists() && !new_iso.exists(), "{what} made its output");
    };

    let cases: [(&str, Vec<OsString>, [&str; 2]); 4] = [
        ("an existing image", vec!["--out".into(), existing.clone().into()], [existing.to_str().unwrap(), "exists"]),
        (
            "a burn with --out naming a folder",
            vec!["--burn".into(), drive.clone().into(), "--out".into(), folder.clone().into()],
            [folder.to_str().unwrap(), "IMAGE.iso"],
        ),
        (
            "a burn to a missing drive",
            vec!["--burn".into(), "/dev/nonexistent-drive".into()],
            ["there is no drive", "/dev/nonexistent-drive"],
        ),
        (
            "a burn to a missing drive, keeping the image",
            vec!["--burn".into(), "/dev/nonexistent-drive".into(), "--out".into(), new_iso.clone().into()],
            ["there is no drive", "/dev/nonexistent-drive"],
        ),
    ];
    for (what, args, said) in &cases {
        let out = run_media(&store, args);
        assert_eq!(out.code, Some(2), "{what}: an input error\n{}", shown(&out));
        for s in said {
            assert!(out.stderr().contains(s), "{what}: the message lacks {s:?}\n{}", shown(&out));
        }
        // --json prints the error, not a result.
        let j = out.json();
        assert_eq!(j["exit_code"], 2, "{what}: {j:#}");
        assert!(j.get("command").is_none() && j.get("medium").is_none(), "{what}: a refusal prints no result: {j:#}");
        assert!(j["error"].as_str().is_some_and(|e| e.contains(said[0])), "{what}: {j:#}");
        unchanged(what);
    }
    assert!(!Path::new("/dev/nonexistent-drive").exists(), "a refused burn made /dev/nonexistent-drive");

    // The same store, drive and image name accepted: the checks above see a run that writes.
    run_media(&store, &[OsStr::new("--burn"), OsStr::new(&drive), OsStr::new("--out"), new_iso.as_os_str()]).status(0);
    assert_ne!(store.snapshot(), before, "a burn records its playback copy and the medium");
    assert_ne!(store.cmd(&["--json", "log"]).run().status(0).stdout(), log);
    assert!(disc.is_file() && new_iso.is_file(), "the burn wrote the disc and kept the image");
    assert_eq!(media_event(&store)["params"]["medium"]["kind"], "disc");
}

// ---------------------------------------------------------------------------------------------
// 5. The oracles themselves: each listing reads the tree it names.

#[test]
fn the_listing_oracles_read_the_tree_they_name_rock_ridge_joliet_or_plain_iso_9660() {
    // A control image made by xorriso itself, where the three trees name one file differently:
    // Rock Ridge keeps its 90 characters, Joliet cuts it to about 64, ISO 9660 makes it 8.3.
    let tmp = tempfile::tempdir().expect("temp dir");
    let name = format!("Nguyễn {}.wav", "b".repeat(79));
    assert_eq!(name.chars().count(), 90);
    write(&tmp.path().join("folder").join(&name), "RIFF");
    let image = tmp.path().join("control.iso");
    xorriso(&[
        OsStr::new("-as"),
        OsStr::new("mkisofs"),
        OsStr::new("-R"),
        OsStr::new("-J"),
        OsStr::new("-V"),
        OsStr::new("CONTROL_VOLUME"),
        OsStr::new("-o"),
        image.as_os_str(),
        tmp.path().join("folder").as_os_str(),
    ]);
    let d = isoinfo_d(&image);
    assert!(d.iter().any(|l| l == "Volume id: CONTROL_VOLUME"), "isoinfo -d reads the volume id: {d:#?}");
    assert!(!d.iter().any(|l| l.contains(VOLUME)), "{d:#?}");
    assert_eq!(tree(&image, "any"), BTreeSet::from([name.clone()]), "Rock Ridge");
    // `-rockridge off` only stops xorriso *writing* Rock Ridge: it still loads the Rock Ridge
    // tree, which is why the Joliet listing takes `-read_fs norock`.
    let rr_off = xorriso(&[
        OsStr::new("-rockridge"),
        OsStr::new("off"),
        OsStr::new("-indev"),
        image.as_os_str(),
        OsStr::new("-find"),
        OsStr::new("/"),
        OsStr::new("-type"),
        OsStr::new("f"),
    ]);
    assert_eq!(rr_off.stdout().trim(), format!("'/{name}'"), "xorriso -rockridge off -find");
    // Joliet: the name cut to about 64 characters (as libisofs cuts it), its extension kept.
    let joliet: Vec<String> = tree(&image, "norock").into_iter().collect();
    assert_eq!(joliet.len(), 1, "Joliet (xorriso): {joliet:?}");
    let cut = &joliet[0];
    assert!(
        cut.starts_with("Nguyễn bbb") && cut.ends_with("b.wav") && (60..=66).contains(&cut.chars().count()),
        "Joliet (xorriso) does not hold the cut name: {cut:?}"
    );
    assert_eq!(isoinfo_joliet(&image), BTreeSet::from([latin1_view(cut)]), "Joliet (isoinfo)");
    assert_eq!(tree(&image, "ecma119"), BTreeSet::from(["NGUY_N_B.WAV".to_owned()]), "ISO 9660");
}

/// Point the Joliet directory record of `name` (the tree Windows reads) at `lba`, leaving the
/// Rock Ridge tree as it is: the record is found by its UCS-2 name, which only Joliet stores.
fn repoint_joliet(image: &Path, name: &str, lba: u32) {
    let mut bytes = fs::read(image).expect("read the image");
    let ucs2: Vec<u8> = name.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
    let at = bytes.windows(ucs2.len()).position(|w| w == ucs2.as_slice()).expect("the Joliet name on the image");
    // A directory record: length (0), extended attribute length (1), extent LBA both-endian
    // (2..10), … name length (32), name (33…).
    let record = at - 33;
    assert_eq!(bytes[record + 32] as usize, ucs2.len(), "precondition: a directory record holds the name");
    bytes[record + 2..record + 6].copy_from_slice(&lba.to_le_bytes());
    bytes[record + 6..record + 10].copy_from_slice(&lba.to_be_bytes());
    fs::write(image, bytes).expect("write the image");
}

#[test]
fn a_disc_whose_joliet_tree_points_a_file_at_other_bytes_is_refused_by_verify_though_rock_ridge_reads_true() {
    let store = Store::new();
    let export = store.work().join("export");
    let wav = media(Fixture::Wav, &export.join("overhear.wav"));
    let avi = media(Fixture::MjpegAvi, &export.join("cam_704x480.avi"));
    ingest(&store, &[&wav, &avi]);
    let image = store.work().join("disc.iso");
    run_media(&store, &[OsStr::new("--out"), image.as_os_str()]).status(0);
    let wav_rel = evidence("overhear.wav");
    let (avi_lba, _) = report_lba(&image, &evidence("cam_704x480.avi"));
    repoint_joliet(&image, "overhear.wav", avi_lba as u32);

    // The oracles see what a Windows PC would: the Joliet tree's WAV is other bytes, the Rock
    // Ridge tree's is still the WAV.
    let ext = store.work().join("joliet");
    xorriso(&[
        OsStr::new("-read_fs"),
        OsStr::new("norock"),
        OsStr::new("-osirrox"),
        OsStr::new("on"),
        OsStr::new("-indev"),
        image.as_os_str(),
        OsStr::new("-extract"),
        OsStr::new("/"),
        ext.as_os_str(),
    ])
    .status(0);
    assert_ne!(sha256_file(&ext.join(&wav_rel)), sha256_file(&wav), "precondition: Joliet reads other bytes");
    let rr = store.work().join("rockridge");
    extract(&image, &rr);
    assert_eq!(sha256_file(&rr.join(&wav_rel)), sha256_file(&wav), "precondition: Rock Ridge reads the WAV");

    let problems = verify(&image, 1);
    assert_eq!(problems.get(&wav_rel).map(String::as_str), Some("modified"), "{problems:#?}");
}

#[test]
fn names_joliet_cannot_hold_are_refused_before_an_image_is_made_and_each_is_named() {
    let store = Store::new();
    let export = store.work().join("export");
    let long = "Interview of the complainant at the Northside precinct, recorded by Det. Ruiz.wav";
    let emoji = "call \u{1F4DE}.wav";
    let wav_long = media(Fixture::Wav, &export.join(long));
    let wav_emoji = media(Fixture::Wav, &export.join(emoji));
    let items = ingest(&store, &[&wav_long, &wav_emoji]);
    let image = store.work().join("disc.iso");
    let before = store.snapshot();
    let out = run_media(&store, &[OsStr::new("--out"), image.as_os_str()]);
    out.status(2);
    for (name, why) in [(long, "characters (at most 64)"), (emoji, "Joliet names cannot hold")] {
        let id = &items[name].0;
        let err = out.stderr();
        assert!(
            err.lines().any(|l| l.contains(id.as_str()) && l.contains(name) && l.contains(why)),
            "the refusal does not name {id} {name} ({why})\n{}",
            shown(&out)
        );
    }
    assert!(!image.exists(), "a refused image was written");
    store.assert_unchanged(&before);
    // The same case on a USB drive (FAT32 takes both names) is written.
    let usb = store.work().join("usb");
    run_media(&store, &[OsStr::new("--out"), usb.as_os_str()]).status(0);
    assert!(usb.join(evidence(emoji)).is_file() && usb.join(evidence(long)).is_file());
}

// ---------------------------------------------------------------------------------------------
// The acceptance case: a court image of a DVR export with a 1.2 GB recording.

/// A raw H.264 stream of about 1.3 GB (36 s of 1280×720 noise, lossless, a keyframe a second,
/// no B-frames) at `path`: ffmpeg encodes 4 s once, and the stream repeats it nine times (each
/// repeat starts with its own parameter sets and IDR picture, so the whole is one valid stream).
fn big_raw_stream(path: &Path) -> u64 {
    let dir = path.parent().expect("a parent");
    fs::create_dir_all(dir).expect("mkdir");
    let chunk = dir.join("chunk.h264");
    let args = [
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "nullsrc=s=1280x720:r=25,geq=random(1)*255:128:128",
        "-t",
        "4",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-qp",
        "0",
        "-bf",
        "0",
        "-g",
        "25",
        "-f",
        "h264",
    ];
    let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    all.push(chunk.as_os_str());
    run_oracle(&system_oracle("ffmpeg"), &all, dir).status(0);
    let bytes = fs::read(&chunk).expect("the chunk");
    let mut out = fs::File::create(path).expect("create the stream");
    for _ in 0..9 {
        std::io::Write::write_all(&mut out, &bytes).expect("write the stream");
    }
    fs::remove_file(&chunk).expect("rm chunk");
    9 * bytes.len() as u64
}

#[test]
fn a_court_image_of_a_case_with_a_1_2_gb_recording_splits_it_under_the_limit_and_every_part_plays_in_chromium() {
    // The second test pass (PostgreSQL + S3) runs the store-independent tests again against an
    // agency store: this one is about the disc, and its 1.3 GB upload would add minutes and
    // gigabytes to that pass without testing anything the first pass does not.
    if crate::support::bucket_objects() {
        eprintln!("the 1.2 GB court image is tested in the first pass (local store) only");
        return;
    }
    let store = Store::new();
    let export = store.work().join("export");
    let raw = media(Fixture::RawH264, &export.join("dvr_ch01.h264"));
    let avi = media(Fixture::MjpegAvi, &export.join("cam_704x480.avi"));
    let wav = media(Fixture::Wav, &export.join("overhear.wav"));
    let big = export.join("ch04_36s.h264");
    let big_size = big_raw_stream(&big);
    assert!(big_size >= 1_200_000_000, "precondition: a 1.2 GB recording ({big_size} bytes)");
    let big_sha = sha256_file(&big);
    let items = ingest(&store, &[&raw, &avi, &wav, &big]);
    fs::remove_file(&big).expect("the store holds it now");

    let image = store.work().join("24-1234.iso");
    run_media(&store, &[OsStr::new("--out"), image.as_os_str()]).status(0);
    let event = media_event(&store);
    let files = listed_files(&event["params"]["files"]);
    let paths: BTreeSet<String> = files.keys().cloned().collect();
    let limit = 500_000_000u64;

    // xorriso lists exactly the event's files, in both trees.
    assert_eq!(tree(&image, "any"), paths, "the Rock Ridge tree vs the event's files");
    assert_eq!(tree(&image, "norock"), paths, "the Joliet tree vs the event's files");
    // The recording travels whole (a native original), its copy in parts under the limit.
    assert_eq!(files[&evidence("ch04_36s.h264")].0, big_sha, "the 1.2 GB original, unaltered");
    let parts: Vec<&String> = paths.iter().filter(|p| p.contains("ch04_36s_part")).collect();
    assert_eq!(parts.len(), 3, "1.3 GB in parts of at most 500 MB: {parts:?}");

    // Extracted by xorriso, every file matches the manifest (sha256sum -c) and the event.
    let dir = store.work().join("extracted");
    extract(&image, &dir);
    fs::remove_file(&image).expect("room for the extracted files");
    let check = run_oracle(&system_oracle("sha256sum"), &["-c", "--strict", "--quiet", "SHA256SUMS.txt"], &dir);
    check.status(0);
    for (rel, (sha, size)) in &files {
        assert_eq!(fs::metadata(dir.join(rel)).expect(rel).len(), *size, "{rel}");
        if rel.starts_with("data/") {
            continue; // in SHA256SUMS.txt, checked above
        }
        assert_eq!(&sha256_file(&dir.join(rel)), sha, "{rel}");
    }
    let mut frames = 0u64;
    for rel in &parts {
        let (_, size) = &files[*rel];
        assert!(*size <= limit, "{rel}: {size} bytes, over the court profile's {limit}");
        let path = dir.join(rel);
        assert_plays(&path);
        let probe = crate::support::ffprobe_json(
            &path,
            &["-count_packets", "-select_streams", "v:0", "-show_entries", "stream=nb_read_packets"],
        );
        frames += probe["streams"][0]["nb_read_packets"].as_str().and_then(|n| n.parse().ok()).unwrap_or(0);
    }
    assert_eq!(frames, 900, "the parts hold the recording's 900 frames");

    // index.html in headless Chromium: every exhibit listed, every video and audio loads with
    // ffprobe's duration.
    let page = crate::browser::open_in_chromium(&dir.join("index.html"));
    for (name, (id, _)) in &items {
        assert!(page.text.contains(id.as_str()) && page.text.contains(name.as_str()), "index.html lacks {id} {name}");
    }
    let mut played = BTreeSet::new();
    let mut faults = Vec::new();
    for element in &page.media {
        let src = element.src.clone().unwrap_or_else(|| panic!("an element without a source: {element:?}"));
        let rel = src.strip_prefix(&dir).expect("a file on the medium").to_string_lossy().into_owned();
        if let Some(why) = crate::browser::fault(element, &src) {
            faults.push(format!("<{}> {rel}: {why}", element.tag));
        }
        played.insert(rel);
    }
    assert!(faults.is_empty(), "{}", faults.join("\n"));
    for rel in parts.iter().map(|p| p.as_str()).chain([evidence("overhear.wav").as_str()]) {
        assert!(played.contains(rel), "index.html does not play {rel}: {played:?}");
    }
    assert!(played.iter().any(|p| p.ends_with("dvr_ch01_playback.mp4")), "{played:?}");
    assert!(played.iter().any(|p| p.ends_with("cam_704x480_avi_playback.mp4")), "{played:?}");
}

// ---------------------------------------------------------------------------------------------
// A set of discs: a medium larger than one disc, split by exhibit, "disc n of m".

#[test]
fn a_medium_larger_than_one_disc_is_a_set_split_by_exhibit_each_disc_labelled_and_checked_on_its_own() {
    let store = Store::new();
    let export = store.work().join("export");
    // Four exhibits, a recording each: 6 s of stereo 16-bit 44.1 kHz sound (1.06 MB), a tone
    // of its own (ffmpeg makes them).
    let mut ids = BTreeMap::new();
    for (k, exhibit) in ["3", "4", "5", "6"].into_iter().enumerate() {
        let path = export.join(format!("ex{exhibit}/call{exhibit}.wav"));
        fs::create_dir_all(path.parent().unwrap()).expect("mkdir");
        let tone = format!("sine=frequency={}:duration=6", 300 + 100 * k);
        let args = ["-v", "error", "-f", "lavfi", "-i", &tone, "-ac", "2", "-ar", "44100", "-c:a", "pcm_s16le"];
        let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        all.push(path.as_os_str());
        run_oracle(&system_oracle("ffmpeg"), &all, &export).status(0);
        let out =
            store.cmd(&["--json", "ingest", "--case", "24-1234", "--item", exhibit]).arg(&path).run().status(0).json();
        ids.insert(exhibit.to_owned(), out["items"][0]["id"].as_str().expect("id").to_owned());
    }
    // A 4 MB "disc": three recordings and the custody records fit on one, four do not.
    let disc_bytes = 4_000_000u64;
    let before = store.snapshot();

    // Refused: a set cannot be burnt in one run, and --disc is for images.
    let drive = format!("stdio:{}", store.work().join("drive.img").display());
    let out = run_media(&store, &["--disc", "4000000", "--burn", &drive]);
    out.status(2).stderr_has("needs 2");
    assert!(!store.work().join("drive.img").exists(), "a refused burn wrote the drive");
    let usb = store.work().join("usb");
    run_media(&store, &[OsStr::new("--disc"), OsStr::new("dvd"), OsStr::new("--out"), usb.as_os_str()])
        .status(2)
        .stderr_has("--disc dvd is for disc images");
    assert!(!usb.exists());
    // The burn refusal came after the plan: the store is as it was (no copies to make here).
    store.assert_unchanged(&before);

    let image = store.work().join("set.iso");
    let json =
        run_media(&store, &[OsStr::new("--disc"), OsStr::new("4000000"), OsStr::new("--out"), image.as_os_str()])
            .status(0)
            .json();
    assert!(!image.exists(), "a set writes numbered images, not {}", image.display());
    let event = media_event(&store);
    let discs = event["params"]["medium"]["discs"].as_array().unwrap_or_else(|| panic!("no discs: {event:#}")).clone();
    assert_eq!(discs.len(), 2, "{event:#}");
    assert_eq!(json["medium"], event["params"]["medium"], "--json and the event agree");
    let files = event["params"]["files"].as_array().expect("files");
    let mut seen_exhibits = BTreeSet::new();
    for (k, disc) in discs.iter().enumerate() {
        let n = k + 1;
        let path = store.work().join(format!("set_disc{n}of2.iso"));
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let volume = format!("CASE_24_1234_DISC_{n}_OF_2");
        assert_eq!(disc["path"], path.to_str().unwrap(), "{disc:#}");
        assert_eq!(disc["label"], format!("Case 24-1234, disc {n} of 2"), "{disc:#}");
        assert_eq!(disc["volume"], volume.as_str(), "{disc:#}");
        assert_eq!((disc["disc"].as_u64(), disc["of"].as_u64()), (Some(n as u64), Some(2)), "{disc:#}");
        assert_eq!(disc["image_size"].as_u64(), Some(bytes.len() as u64), "{disc:#}");
        assert!((bytes.len() as u64) <= disc_bytes, "disc {n} is {} bytes, more than the disc holds", bytes.len());
        assert_eq!(disc["image_sha256"], sha256(&bytes).as_str(), "{disc:#}");
        assert!(isoinfo_d(&path).iter().any(|l| l == &format!("Volume id: {volume}")), "isoinfo -d of disc {n}");
        // xorriso lists exactly the files the event gives this disc.
        let mine: BTreeSet<String> = files
            .iter()
            .filter(|f| f["disc"].as_u64() == Some(n as u64))
            .map(|f| f["path"].as_str().expect("path").to_owned())
            .collect();
        assert_eq!(tree(&path, "any"), mine, "disc {n}: xorriso vs the event");
        assert_eq!(tree(&path, "norock"), mine, "disc {n}'s Joliet tree vs the event");
        // Each disc is a whole bag of its own exhibits, checked on its own.
        assert!(verify(&path, 0).is_empty(), "disc {n} verifies on its own");
        let on_disc: BTreeSet<String> = mine
            .iter()
            .filter_map(|p| p.strip_prefix("data/evidence/24-1234/"))
            .map(|p| p.split('/').next().expect("exhibit").to_owned())
            .collect();
        assert!(!on_disc.is_empty(), "disc {n} holds no exhibit");
        for ex in &on_disc {
            assert!(seen_exhibits.insert(ex.clone()), "exhibit {ex} is on two discs");
        }
        let dir = store.work().join(format!("disc{n}"));
        extract(&path, &dir);
        let html = fs::read_to_string(dir.join("index.html")).expect("index.html");
        assert!(html.contains(&format!("disc {n} of 2")), "disc {n}'s index.html does not say which disc it is");
        // So does its report (pdftotext, the oracle), with the formats the disc holds.
        let report = run_oracle(
            &system_oracle("pdftotext"),
            &[dir.join("data/report/report.pdf").as_os_str(), OsStr::new("-")],
            Path::new("."),
        );
        report.status(0);
        let text = report.stdout().split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            text.contains(&format!("Case 24-1234, disc {n} of 2 (formats: HTML, PDF, WAV)")),
            "disc {n}'s report does not name its medium\n{text}"
        );
    }
    assert_eq!(seen_exhibits, ["3", "4", "5", "6"].into_iter().map(str::to_owned).collect(), "every exhibit travels");
    store.verify_ok();
}
