//! `custody media`: the contents of a court medium (a USB drive, a folder to burn) written into a
//! directory under a profile. With custody files it is the bag `custody package` makes plus
//! `index.html` and `SHA256SUMS.txt`, which `sha256sum -c`, bagit.py and `custody verify DIR`
//! accept; every file is the store's bytes and the one `media` event lists each file written and
//! the read-back. A preflight lists every problem at once (unplayable video, names FAT32 forbids,
//! executables, files over the profile's limit) and writes and records nothing; so does a
//! profile file with an unknown key or a bad value, and an output directory that is not empty.
//! An exhibit whose streams play once in MP4 (raw H.264) gets a recorded lossless playback copy,
//! after the preflight. `d-oregon` takes only the exhibits and the PDF/A report. Section 6 holds
//! what the interface promises beyond those: an output path that is a file is an input error, no
//! file on a medium is over the profile's limit, and a run that fails records nothing.
//!
//! Oracles: sha256sum, python3 (html.parser), pdfinfo, and bagit.py under target/oracles/bin
//! (bins/setup installs them). A missing oracle fails the test (it does not skip it).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use custody::media::synth::Fixture;
use serde_json::Value;

use crate::support::{
    Output, Store, assert_plays, cmd, files_under, flip_byte, media, run_oracle, sha256sum, shown, system_oracle,
    venv_oracle, write,
};

// ---------------------------------------------------------------------------------------------
// Oracles.

/// index.html read by Python's html.parser: every `<video>` / `<audio>` with the sources it
/// plays (its `src` and those of its `<source>` children, percent-decoded, without a leading
/// `./`), and the text a reader sees (outside scripts and styles, joined with nothing between).
const HTML_PY: &str = r#"
import json, sys
from html.parser import HTMLParser
from urllib.parse import unquote

def norm(src):
    src = unquote(src)
    while src.startswith("./"):
        src = src[2:]
    return src

class P(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.media, self.open, self.text, self.skip = [], [], [], 0
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("video", "audio"):
            self.media.append({"tag": tag, "src": [norm(a["src"])] if a.get("src") else []})
            self.open.append(len(self.media) - 1)
        elif tag == "source" and self.open and a.get("src"):
            self.media[self.open[-1]]["src"].append(norm(a["src"]))
        elif tag in ("script", "style"):
            self.skip += 1
    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag in ("video", "audio"):
            self.open.pop()
    def handle_endtag(self, tag):
        if tag in ("video", "audio") and self.open:
            self.open.pop()
        elif tag in ("script", "style") and self.skip:
            self.skip -= 1
    def handle_data(self, data):
        if not self.skip:
            self.text.append(data)

p = P()
p.feed(open(sys.argv[1], encoding="utf-8").read())
p.close()
print(json.dumps({"media": p.media, "text": "".join(p.text)}))
"#;

/// What a reader of index.html sees, and the media elements it holds.
struct Html {
    /// (tag, sources) of every `<video>` and `<audio>`.
    media: Vec<(String, Vec<String>)>,
    text: String,
}

#[track_caller]
fn read_html(path: &Path) -> Html {
    let out = run_oracle(
        &system_oracle("python3"),
        &[OsStr::new("-c"), OsStr::new(HTML_PY), path.as_os_str()],
        Path::new("."),
    );
    out.status(0);
    let json: Value = serde_json::from_str(&out.stdout()).expect("the parser's JSON");
    let media = json["media"]
        .as_array()
        .expect("media")
        .iter()
        .map(|m| {
            let srcs =
                m["src"].as_array().expect("src").iter().map(|s| s.as_str().expect("a src").to_owned()).collect();
            (m["tag"].as_str().expect("tag").to_owned(), srcs)
        })
        .collect();
    Html { media, text: json["text"].as_str().expect("text").to_owned() }
}

// ---------------------------------------------------------------------------------------------
// Running custody media, and reading what it wrote.

/// `custody --json media ARGS… --out DIR` (any exit code).
fn run_media(store: &Store, args: &[&str], out: &Path) -> Output {
    store.cmd(&["--json", "media"]).args(args).arg("--out").arg(out).run()
}

/// Every file under `dir`, relative to it (with `/`), with its SHA-256 (by sha256sum) and size.
pub(crate) fn medium_files(dir: &Path) -> BTreeMap<String, (String, u64)> {
    files_under(dir)
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(dir).expect("under dir").to_string_lossy().into_owned();
            let size = fs::metadata(p).expect("size").len();
            (rel, (sha256sum(p), size))
        })
        .collect()
}

/// A `files` array (the event's or the `--json` output's) as path → (sha256, size).
#[track_caller]
pub(crate) fn listed_files(files: &Value) -> BTreeMap<String, (String, u64)> {
    let list = files.as_array().unwrap_or_else(|| panic!("files is not an array: {files:#}"));
    let map: BTreeMap<String, (String, u64)> = list
        .iter()
        .map(|f| {
            let path = f["path"].as_str().unwrap_or_else(|| panic!("no path in {f:#}")).to_owned();
            let sha = f["sha256"].as_str().unwrap_or_else(|| panic!("no sha256 in {f:#}")).to_owned();
            let size = f["size"].as_u64().unwrap_or_else(|| panic!("no size in {f:#}"));
            (path, (sha, size))
        })
        .collect();
    assert_eq!(map.len(), list.len(), "a path is listed twice: {files:#}");
    map
}

/// The newest event, which must be a `media` one.
#[track_caller]
pub(crate) fn media_event(store: &Store) -> Value {
    let last = store.event_bodies().pop().expect("the ledger has events");
    assert_eq!(last["action"], "media", "the newest event is not a media event: {last:#}");
    last
}

/// Item IDs an event lists as inputs.
fn input_items(event: &Value) -> BTreeSet<String> {
    event["inputs"].as_array().into_iter().flatten().filter_map(|i| i["item"].as_str().map(str::to_owned)).collect()
}

/// A directory that, after a refused run, must not exist or must be empty.
#[track_caller]
fn assert_nothing_written(dir: &Path) {
    if dir.exists() {
        let left: Vec<PathBuf> = fs::read_dir(dir).expect("read dir").map(|e| e.expect("entry").path()).collect();
        assert!(left.is_empty(), "a refused medium left files in {}: {left:?}", dir.display());
    }
}

/// Whether `line` holds `id` as a whole word (so `i1` is not found in `i12`).
fn names_id(line: &str, id: &str) -> bool {
    line.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| w == id)
}

/// Assert the refusal names a problem: a line of stderr (with the line after it, for a message
/// that runs on) names the item `id`, the file `name` and says `what`.
#[track_caller]
fn assert_problem(out: &Output, id: &str, name: &str, what: &str) {
    let err = out.stderr();
    let lines: Vec<&str> = err.lines().collect();
    let found = lines.iter().enumerate().filter(|(_, l)| l.contains(name)).any(|(n, l)| {
        let block = format!("{l}\n{}", lines.get(n + 1).unwrap_or(&""));
        block.contains(what) && (names_id(l, id) || names_id(&block, id))
    });
    assert!(found, "no problem naming item {id}, file {name:?} and saying {what:?}\n{}", shown(out));
}

/// The `HASH  PATH` lines of a `sha256sum` list, as path → hash.
#[track_caller]
fn sums(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(|l| {
            let (hash, rest) = l.split_once(' ').unwrap_or_else(|| panic!("not `HASH  PATH`: {l:?}"));
            let path = rest.strip_prefix(' ').or_else(|| rest.strip_prefix('*')).unwrap_or_else(|| panic!("{l:?}"));
            assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()), "not a SHA-256: {l:?}");
            (path.to_owned(), hash.to_owned())
        })
        .collect()
}

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

/// A custom profile file, one key a line, in the documented order (line 1 `name`, line 6
/// `max_file_size`, line 7 `filesystem`), then `extra` lines.
fn profile_yaml(max_file_size: &str, filesystem: &str, extra: &str) -> String {
    format!(
        "name: my-court\n\
         description: County court, USB drives only\n\
         exhibit_formats: [mp4, wav]\n\
         native_originals: true\n\
         custody_files: true\n\
         max_file_size: {max_file_size}\n\
         filesystem: {filesystem}\n\
         {extra}"
    )
}

// ---------------------------------------------------------------------------------------------
// 1. A court medium, checked by every checker; tampering with it is caught.

#[test]
fn a_court_medium_is_the_bag_plus_index_and_sums_that_every_checker_accepts_and_tampering_is_named() {
    let store = Store::new();
    // A DVR export: raw H.264 (no court PC plays it) and a WAV, exhibit 24-1234:3.
    let export = store.work().join("export");
    media(Fixture::RawH264, &export.join("dvr_ch01.h264"));
    media(Fixture::Wav, &export.join("overhear.wav"));
    let ingest =
        store.cmd(&["--json", "ingest", "--case", "24-1234", "--item", "3"]).arg(&export).run().status(0).json();
    let mut items: BTreeMap<String, (String, String)> = BTreeMap::new(); // name → (id, sha256)
    for i in ingest["items"].as_array().expect("items") {
        let name = i["name"].as_str().expect("name").to_owned();
        items.insert(name, (i["id"].as_str().expect("id").to_owned(), i["sha256"].as_str().expect("sha").to_owned()));
    }
    let raw = items["export/dvr_ch01.h264"].0.clone();
    let wav_name = "export/overhear.wav";
    // Its playback copy.
    let copy = store.cmd(&["--json", "rewrap", &raw]).run().status(0).json();
    let mp4_name = copy["name"].as_str().expect("name").to_owned();
    assert!(mp4_name.ends_with(".mp4"), "precondition: the playback copy is an MP4: {copy:#}");
    items.insert(
        mp4_name.clone(),
        (copy["item"].as_str().expect("item").to_owned(), copy["sha256"].as_str().expect("sha256").to_owned()),
    );
    let evidence = |name: &str| format!("data/evidence/24-1234/3/{name}");

    let dir = store.work().join("usb");
    let events_before = store.event_count();
    let out = run_media(&store, &["--case", "24-1234", "--profile", "court"], &dir);
    let json = out.status(0).json();
    assert_eq!(store.event_count(), events_before + 1, "media must record exactly one event");

    // Exactly the bag, its evidence, index.html and SHA256SUMS.txt.
    let on_disk = medium_files(&dir);
    let mut want: BTreeSet<String> = BAG_FILES.iter().map(|s| s.to_string()).collect();
    want.extend(items.keys().map(|n| evidence(n)));
    want.insert("index.html".into());
    want.insert("SHA256SUMS.txt".into());
    assert_eq!(on_disk.keys().cloned().collect::<BTreeSet<_>>(), want, "the medium's files\n{json:#}");

    // Each evidence file is the store's object, byte for byte.
    for (name, (_, sha)) in &items {
        let path = dir.join(evidence(name));
        assert!(
            fs::read(&path).expect("evidence") == store.object_bytes(sha),
            "{} differs from the object",
            path.display()
        );
        assert_eq!(on_disk[&evidence(name)].0, *sha, "{name}");
    }

    // SHA256SUMS.txt lists every other file, and sha256sum -c agrees.
    let listed = sums(&fs::read_to_string(dir.join("SHA256SUMS.txt")).expect("SHA256SUMS.txt"));
    let others: BTreeMap<String, String> =
        on_disk.iter().filter(|(p, _)| *p != "SHA256SUMS.txt").map(|(p, (sha, _))| (p.clone(), sha.clone())).collect();
    assert_eq!(listed, others, "SHA256SUMS.txt must list every other file on the medium with its SHA-256");
    run_oracle(&system_oracle("sha256sum"), &["-c", "--strict", "SHA256SUMS.txt"], &dir).status(0);

    // The bag validates; custody verifies it with no store around.
    let bagit = run_oracle(&venv_oracle("bagit.py"), &[OsStr::new("--validate"), dir.as_os_str()], &dir);
    bagit.status(0);
    assert!(bagit.stderr().contains("is valid"), "bagit.py did not say valid\n{}", shown(&bagit));
    cmd(&["verify"]).arg(&dir).run().status(0);

    // The event: the items in, every file written, the read-back.
    let event = media_event(&store);
    let ids: BTreeSet<String> = items.values().map(|(id, _)| id.clone()).collect();
    assert_eq!(input_items(&event), ids, "the event's inputs are the items: {event:#}");
    let params = &event["params"];
    assert_eq!(params["profile"]["name"], "court", "{event:#}");
    let profile_sha = params["profile"]["sha256"].as_str().unwrap_or_default();
    assert!(profile_sha.len() == 64 && profile_sha.bytes().all(|b| b.is_ascii_hexdigit()), "{event:#}");
    assert_eq!(params["label"], "Case 24-1234, disc 1 of 1", "the default label: {event:#}");
    assert_eq!(listed_files(&params["files"]), on_disk, "the event's files vs the files on the medium");
    let bytes: u64 = on_disk.values().map(|(_, size)| size).sum();
    assert_eq!(params["read_back"]["result"], "matched", "{event:#}");
    assert_eq!(params["read_back"]["files"], on_disk.len() as u64, "{event:#}");
    assert_eq!(params["read_back"]["bytes"], bytes, "{event:#}");

    // What --json printed says the same.
    assert_eq!(json["command"], "media", "{json:#}");
    assert_eq!(json["profile"], "court", "{json:#}");
    assert_eq!(json["out"].as_str().map(PathBuf::from), Some(dir.clone()), "{json:#}");
    assert_eq!(json["label"], "Case 24-1234, disc 1 of 1", "{json:#}");
    assert_eq!(listed_files(&json["files"]), on_disk, "--json files vs the files on the medium");
    assert_eq!(json["read_back"], params["read_back"], "{json:#}");
    assert_eq!(
        format!("{}:{}", json["head"]["seq"], json["head"]["hash"].as_str().unwrap_or_default()),
        store.head(),
        "{json:#}"
    );

    // index.html: every exhibit file by name and SHA-256; the MP4 copy in a <video>, the WAV in
    // an <audio>, each by its path on the medium.
    let html = read_html(&dir.join("index.html"));
    for (name, (_, sha)) in &items {
        let base = name.rsplit('/').next().expect("a name");
        assert!(html.text.contains(base), "index.html does not show {base}:\n{}", html.text);
        assert!(html.text.contains(sha.as_str()), "index.html does not show {base}'s SHA-256 {sha}:\n{}", html.text);
    }
    let plays = |tag: &str, path: &str| html.media.iter().any(|(t, srcs)| t == tag && srcs.iter().any(|s| s == path));
    assert!(plays("video", &evidence(&mp4_name)), "no <video> plays {}: {:?}", evidence(&mp4_name), html.media);
    assert!(plays("audio", &evidence(wav_name)), "no <audio> plays {}: {:?}", evidence(wav_name), html.media);
    for (tag, srcs) in &html.media {
        for s in srcs {
            assert!(dir.join(s).is_file(), "<{tag}> plays {s}, which is not on the medium");
        }
    }
    store.verify_ok();

    // One byte of the WAV flipped on the medium: custody verify, and sha256sum -c, name it.
    let wav = evidence(wav_name);
    flip_byte(&dir.join(&wav));
    let text = cmd(&["verify"]).arg(&dir).run();
    text.status(1);
    assert!(
        format!("{}{}", text.stdout(), text.stderr()).contains(&wav),
        "verify does not name {wav}\n{}",
        shown(&text)
    );
    let j = cmd(&["--json", "verify"]).arg(&dir).run().status(1).json();
    let subjects: Vec<&str> =
        j["problems"].as_array().into_iter().flatten().filter_map(|p| p["subject"].as_str()).collect();
    assert!(subjects.contains(&wav.as_str()), "verify --json does not name {wav}: {j:#}");
    let sha = run_oracle(&system_oracle("sha256sum"), &["-c", "SHA256SUMS.txt"], &dir);
    assert_ne!(sha.code, Some(0), "sha256sum -c accepted a changed file\n{}", shown(&sha));
    assert!(sha.stdout().contains(&format!("{wav}: FAILED")), "sha256sum -c does not fail {wav}\n{}", shown(&sha));
}

// ---------------------------------------------------------------------------------------------
// 2. The preflight lists every problem at once, and writes and records nothing; an exhibit whose
//    streams play once in MP4 gets its playback copy made, after the preflight.

#[test]
fn the_preflight_lists_an_unplayable_video_forbidden_names_and_an_executable_at_once_and_writes_nothing() {
    let store = Store::new();
    let export = store.work().join("export");
    // A raw H.264 stream with no copy: custody can make a playback copy of it (section 2b), but
    // not before the preflight has passed, so not here.
    media(Fixture::RawH264, &export.join("dvr_ch01.h264"));
    // MPEG-2 in MPEG-TS: plays in no browser, and a stream copy into MP4 would not either; its
    // copy is re-encoded after the preflight (section 2c), so it is no problem here.
    crate::formats::ffmpeg(
        &store,
        &crate::formats::words("-f lavfi -i testsrc2=size=320x240:rate=25 -t 1 -c:v mpeg2video -f mpegts"),
        &export.join("cam02.ts"),
    );
    let wav = media(Fixture::Wav, &export.join("14:03 call.wav"));
    // The same recording, one sample changed (a distinct object), under a name Windows reserves.
    let mut con = fs::read(&wav).expect("wav");
    *con.last_mut().expect("samples") ^= 0x01;
    write(&export.join("CON.wav"), con);
    write(&export.join("run.sh"), "#!/bin/sh\necho hello\n");
    let ingest =
        store.cmd(&["--json", "ingest", "--case", "24-1234", "--item", "3"]).arg(&export).run().status(0).json();
    let id = |name: &str| -> String {
        let items = ingest["items"].as_array().expect("items");
        let item = items.iter().find(|i| i["name"] == format!("export/{name}"));
        item.unwrap_or_else(|| panic!("no item named export/{name}: {ingest:#}"))["id"].as_str().expect("id").to_owned()
    };

    let dir = store.work().join("usb");
    let before = store.snapshot();
    let out = run_media(&store, &["--case", "24-1234", "--profile", "court"], &dir);
    out.status(2);
    assert!(!out.stderr().contains("cam02.ts"), "a video custody can re-encode is no problem\n{}", shown(&out));
    assert_problem(&out, &id("14:03 call.wav"), "14:03 call.wav", "not allowed on fat32");
    assert_problem(&out, &id("CON.wav"), "CON.wav", "not allowed on fat32");
    assert_problem(&out, &id("run.sh"), "run.sh", "executable");
    assert_nothing_written(&dir);
    // Nothing recorded: no media event, and no playback copy of the raw stream either.
    store.assert_unchanged(&before);

    // With a 100 kB limit and --no-split (and no native originals, which would travel whole), a
    // file over the limit joins the list: every problem named at once, nothing written.
    let small = write(
        &store.work().join("small.yaml"),
        profile_yaml("100000", "fat32", "").replace("native_originals: true", "native_originals: false"),
    );
    let all = run_media(&store, &["--case", "24-1234", "--profile", small.to_str().unwrap(), "--no-split"], &dir);
    all.status(2);
    assert_problem(&all, &id("CON.wav"), "CON.wav", "over the profile's limit");
    assert_problem(&all, &id("CON.wav"), "CON.wav", "not allowed on fat32");
    assert_problem(&all, &id("14:03 call.wav"), "14:03 call.wav", "not allowed on fat32");
    assert_problem(&all, &id("run.sh"), "run.sh", "executable");
    assert_nothing_written(&dir);
    store.assert_unchanged(&before);

    // The same refusal when the output directory already exists, empty: it is left empty.
    fs::create_dir(&dir).expect("mkdir");
    let again = run_media(&store, &["--case", "24-1234", "--profile", "court"], &dir);
    again.status(2);
    assert_problem(&again, &id("run.sh"), "run.sh", "executable");
    assert_nothing_written(&dir);
    store.assert_unchanged(&before);
}

#[test]
fn a_raw_h264_exhibit_with_no_copy_gets_a_recorded_lossless_mp4_playback_copy_on_the_medium() {
    let store = Store::new();
    let raw = store.ingest_fixture(Fixture::RawH264);
    let raw_sha = sha256sum(&raw.path);
    let dir = store.work().join("usb");
    let events_before = store.event_count();
    let json = run_media(&store, &[&raw.id, "--profile", "court"], &dir).status(0).json();

    // Two events: the copy's rewrap (a derived item of the raw stream), then the medium.
    let bodies = store.event_bodies();
    assert_eq!(bodies.len() as i64, events_before + 2, "a rewrap event and a media event");
    let rewrap = &bodies[bodies.len() - 2];
    assert_eq!(rewrap["action"], "rewrap", "{rewrap:#}");
    assert_eq!(input_items(rewrap), BTreeSet::from([raw.id.clone()]), "{rewrap:#}");
    let made = &rewrap["outputs"][0];
    let copy_id = made["item"].as_str().unwrap_or_else(|| panic!("no copy in {rewrap:#}")).to_owned();
    let copy_sha = made["sha256"].as_str().expect("sha256").to_owned();
    let copy_name = made["name"].as_str().expect("name").to_owned();
    assert!(copy_name.ends_with(".mp4"), "{rewrap:#}");
    let event = media_event(&store);
    assert_eq!(
        event["params"]["playback_copies"],
        serde_json::json!([{"item": copy_id, "of": raw.id, "made": true, "re_encoded": false}]),
        "the media event names the copy it made: {event:#}"
    );
    assert_eq!(input_items(&event), BTreeSet::from([raw.id.clone(), copy_id.clone()]), "{event:#}");

    // Both travel, as the store holds them; the copy is H.264 in MP4 (ffprobe), and plays in
    // index.html.
    let original = "data/evidence/24-1234/9/dvr_ch01.h264".to_owned();
    let copy = format!("data/evidence/24-1234/9/{copy_name}");
    assert!(fs::read(dir.join(&original)).expect("original") == store.object_bytes(&raw_sha), "{original}");
    assert!(fs::read(dir.join(&copy)).expect("copy") == store.object_bytes(&copy_sha), "{copy}");
    let probe = crate::support::ffprobe_json(&dir.join(&copy), &["-show_format", "-show_streams"]);
    assert!(probe["format"]["format_name"].as_str().unwrap_or_default().contains("mp4"), "{probe:#}");
    let codecs: Vec<&str> =
        probe["streams"].as_array().expect("streams").iter().filter_map(|s| s["codec_name"].as_str()).collect();
    assert_eq!(codecs, ["h264"], "{probe:#}");
    let html = read_html(&dir.join("index.html"));
    assert!(
        html.media.iter().any(|(t, srcs)| t == "video" && srcs.contains(&copy)),
        "no <video> plays {copy}: {:?}",
        html.media
    );
    // The original's own entry, which no browser plays, points at its copy.
    let page = fs::read_to_string(dir.join("index.html")).expect("index.html");
    let start = page.find("dvr_ch01.h264</h2>").expect("the original's entry");
    let entry = &page[start..start + page[start..].find("</section>").expect("its end")];
    assert!(entry.contains(&format!("href=\"{copy}\"")), "the original's entry does not point at {copy}:\n{entry}");
    let on_disk = medium_files(&dir);
    assert_eq!(listed_files(&event["params"]["files"]), on_disk, "the event's files vs the files on the medium");
    assert_eq!(listed_files(&json["files"]), on_disk, "--json files vs the files on the medium");
    run_oracle(&system_oracle("sha256sum"), &["-c", "--strict", "SHA256SUMS.txt"], &dir).status(0);
    cmd(&["verify"]).arg(&dir).run().status(0);
    store.verify_ok();
}

// ---------------------------------------------------------------------------------------------
// 3. An agency's own profile: its size limit, and a file that is not a profile.

#[test]
fn a_profile_files_size_limit_refuses_a_larger_file_by_name_and_a_bad_profile_is_named_by_file_line_and_key() {
    let store = Store::new();
    let export = store.work().join("export");
    media(Fixture::Wav, &export.join("overhear.wav"));
    write(&export.join("note.txt"), "Taken from the DVR at 14:10 by Examiner Tess.\n");
    let ingest =
        store.cmd(&["--json", "ingest", "--case", "24-1234", "--item", "3"]).arg(&export).run().status(0).json();
    let items = ingest["items"].as_array().expect("items");
    let wav = items.iter().find(|i| i["name"] == "export/overhear.wav").expect("the WAV item");
    let wav_id = wav["id"].as_str().expect("id").to_owned();
    assert!(wav["size"].as_u64().expect("size") > 10_000, "precondition: the WAV is over 10000 bytes: {wav:#}");
    let note_id =
        items.iter().find(|i| i["name"] == "export/note.txt").expect("the note")["id"].as_str().unwrap().to_owned();

    let dir = store.work().join("usb");
    let before = store.snapshot();

    // max_file_size 10000 and --no-split: the WAV is named as over the limit, the short note is
    // not. (The profile takes no native originals: a native original travels whole.)
    let small = write(
        &store.work().join("profiles/small.yaml"),
        profile_yaml("10000", "fat32", "").replace("native_originals: true", "native_originals: false"),
    );
    let out = run_media(&store, &[&wav_id, &note_id, "--profile", small.to_str().unwrap(), "--no-split"], &dir);
    out.status(2);
    assert_problem(&out, &wav_id, "overhear.wav", "over the profile's limit");
    out.stderr_has("without --no-split it is split at keyframes");
    let note_flagged = out.stderr().lines().any(|l| l.contains("note.txt") && l.contains("over the profile's limit"));
    assert!(!note_flagged, "a 47-byte file is not over a 10000-byte limit\n{}", shown(&out));
    assert_nothing_written(&dir);
    store.assert_unchanged(&before);

    // An unknown key (line 8), a bad value (line 7, line 6): each named by file, line and key.
    for (file, yaml, line, key) in [
        ("unknown-key.yaml", profile_yaml("100000", "fat32", "burn_speed: 8x\n"), 8, "burn_speed"),
        ("bad-filesystem.yaml", profile_yaml("100000", "ntfs", ""), 7, "filesystem"),
        ("bad-size.yaml", profile_yaml("a lot", "fat32", ""), 6, "max_file_size"),
    ] {
        let path = write(&store.work().join("profiles").join(file), yaml);
        let out = run_media(&store, &[&wav_id, "--profile", path.to_str().unwrap()], &dir);
        out.status(2);
        out.stderr_has(file).stderr_has(key);
        let err = out.stderr();
        assert!(
            err.contains(&format!("line {line}")) || err.contains(&format!("{file}:{line}")),
            "the error does not give line {line} of {file}\n{}",
            shown(&out)
        );
        assert_nothing_written(&dir);
        store.assert_unchanged(&before);
    }
}

// ---------------------------------------------------------------------------------------------
// 4. d-oregon: only the exhibits and the PDF/A report.

#[test]
fn a_d_oregon_medium_holds_only_the_mp4_exhibit_and_the_pdfa_report_and_the_event_lists_exactly_those() {
    let store = Store::new();
    let mp4 = store.ingest_fixture(Fixture::H264Mp4);
    let sha = sha256sum(&mp4.path);

    let dir = store.work().join("oregon");
    let events_before = store.event_count();
    let json = run_media(&store, &[&mp4.id, "--profile", "d-oregon"], &dir).status(0).json();
    assert_eq!(store.event_count(), events_before + 1, "media must record exactly one event");

    let exhibit = "data/evidence/24-1234/9/h264_bframes.mp4".to_owned();
    let on_disk = medium_files(&dir);
    let want: BTreeSet<String> = [exhibit.clone(), "data/report/report.pdf".to_owned()].into_iter().collect();
    assert_eq!(
        on_disk.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "d-oregon takes the exhibit and the report alone"
    );
    assert!(
        fs::read(dir.join(&exhibit)).expect("exhibit") == store.object_bytes(&sha),
        "the exhibit is not the object"
    );

    // The report is a PDF that declares PDF/A.
    let pdf = dir.join("data/report/report.pdf");
    assert!(fs::read(&pdf).expect("report").starts_with(b"%PDF-"), "report.pdf is not a PDF");
    let meta = run_oracle(&system_oracle("pdfinfo"), &[OsStr::new("-meta"), pdf.as_os_str()], &dir);
    assert!(meta.status(0).stdout().contains("pdfaid"), "report.pdf declares no PDF/A part\n{}", shown(&meta));

    let event = media_event(&store);
    assert_eq!(input_items(&event), BTreeSet::from([mp4.id.clone()]), "{event:#}");
    assert_eq!(event["params"]["profile"]["name"], "d-oregon", "{event:#}");
    assert_eq!(listed_files(&event["params"]["files"]), on_disk, "the event lists exactly the files written");
    assert_eq!(event["params"]["read_back"]["result"], "matched", "{event:#}");
    assert_eq!(event["params"]["read_back"]["files"], 2, "{event:#}");
    assert_eq!(json["profile"], "d-oregon", "{json:#}");
    assert_eq!(json["label"], "Case 24-1234, disc 1 of 1", "the label names the items' case: {json:#}");
    assert_eq!(listed_files(&json["files"]), on_disk, "{json:#}");
    store.verify_ok();
}

// ---------------------------------------------------------------------------------------------
// 5. The output directory must not exist or be empty.

#[test]
fn an_output_directory_with_files_in_it_is_refused_untouched_and_an_empty_one_is_used() {
    let store = Store::new();
    let statement =
        store.ingest_text("24-77", "1", "statement.txt", "Statement of the witness, read back and signed.\n");
    let id = statement["id"].as_str().expect("id").to_owned();
    let dir = store.work().join("burn");
    write(&dir.join("keep.txt"), "someone else's file\n");
    let before = store.snapshot();

    let args = ["--profile", "court", "--label", "Case 24-77, disc 1 of 2", "--recipient", "Clerk of Court"];
    let out = run_media(&store, &[&[id.as_str()][..], &args].concat(), &dir);
    out.status(2).stderr_has(dir.to_str().unwrap());
    let left: Vec<PathBuf> = files_under(&dir);
    assert_eq!(left, vec![dir.join("keep.txt")], "a refused medium wrote into {}", dir.display());
    assert_eq!(fs::read_to_string(dir.join("keep.txt")).unwrap(), "someone else's file\n");
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "a refused medium made a folder in {}", dir.display());
    store.assert_unchanged(&before);

    // Emptied, the same directory takes the medium.
    fs::remove_file(dir.join("keep.txt")).expect("rm");
    let json = run_media(&store, &[&[id.as_str()][..], &args].concat(), &dir).status(0).json();
    assert_eq!(json["label"], "Case 24-77, disc 1 of 2", "{json:#}");
    assert_eq!(media_event(&store)["params"]["label"], "Case 24-77, disc 1 of 2");
    assert!(dir.join("data/evidence/24-77/1/statement.txt").is_file(), "{json:#}");
    let info = fs::read_to_string(dir.join("bag-info.txt")).expect("bag-info.txt");
    assert!(info.lines().any(|l| l == "Custody-Recipient: Clerk of Court"), "bag-info.txt:\n{info}");
    cmd(&["verify"]).arg(&dir).run().status(0);
}

// ---------------------------------------------------------------------------------------------
// 6. Beyond the brief's five: what the interface promises that the first five do not reach.

#[test]
fn an_output_path_that_is_a_file_is_refused_as_an_input_error_and_left_alone() {
    let store = Store::new();
    let statement =
        store.ingest_text("24-77", "1", "statement.txt", "Statement of the witness, read back and signed.\n");
    let id = statement["id"].as_str().expect("id").to_owned();
    let file = write(&store.work().join("usb"), "not a folder\n");
    let before = store.snapshot();
    let out = run_media(&store, &[&id, "--profile", "court"], &file);
    // A file where the medium should go is the user's mistake (exit 2), not the environment's.
    out.status(2).stderr_has(file.to_str().unwrap());
    assert_eq!(fs::read_to_string(&file).unwrap(), "not a folder\n", "the file was changed");
    store.assert_unchanged(&before);
}

#[test]
fn no_file_on_a_medium_is_over_the_profiles_limit_custody_files_and_playback_copies_included() {
    // Either the preflight refuses (exit 2, naming the file, nothing recorded) or nothing on the
    // medium is over the limit. Each case is checked; what went wrong is listed at the end.
    fn check(store: &Store, item: &str, limit: u64, named: &str) -> Option<String> {
        let yaml = format!(
            "name: small-files\nexhibit_formats: [txt, mp4]\nnative_originals: true\ncustody_files: true\n\
             max_file_size: {limit}\nfilesystem: fat32\n"
        );
        let profile = write(&store.work().join(format!("small-{limit}.yaml")), yaml);
        let dir = store.work().join(format!("usb-{limit}"));
        let before = store.snapshot();
        let out = run_media(store, &[item, "--profile", profile.to_str().unwrap()], &dir);
        if out.code == Some(0) {
            let over: Vec<(String, u64)> = medium_files(&dir)
                .into_iter()
                .filter(|(_, (_, size))| *size > limit)
                .map(|(p, (_, s))| (p, s))
                .collect();
            return (!over.is_empty())
                .then(|| format!("custody wrote files over the profile's {limit}-byte limit: {over:?}"));
        }
        let err = out.stderr();
        if out.code != Some(2) || !err.contains("over the profile's limit") || !err.contains(named) {
            return Some(format!("not refused as over the limit, naming {named}:\n{}", shown(&out)));
        }
        if dir.exists() && fs::read_dir(&dir).expect("read dir").next().is_some() {
            return Some(format!("a refused medium left files in {}", dir.display()));
        }
        // A playback copy made before the limit could be known stays, recorded as the derived
        // item it is (the message says so, and a retry uses it again); nothing else may change.
        if err.contains("are recorded and will be used again") {
            return None;
        }
        (store.snapshot() != before).then(|| format!("a refused medium changed the store\n{}", shown(&out)))
    }

    let mut failed = Vec::new();
    // The items are under the limit; the report the medium carries is not (a PDF/A report is
    // tens of kilobytes).
    let store = Store::new();
    let statement =
        store.ingest_text("24-77", "1", "statement.txt", "Statement of the witness, read back and signed.\n");
    failed.extend(check(&store, statement["id"].as_str().expect("id"), 20_000, "report.pdf"));

    // A raw stream under the limit whose MP4 playback copy (which custody makes) is over it.
    let raw = store.ingest_fixture(Fixture::RawH264);
    let raw_size = fs::metadata(&raw.path).expect("size").len();
    let probe = Store::new();
    let probe_raw = probe.ingest_media(&raw.path);
    let copy = probe.cmd(&["--json", "rewrap", &probe_raw.id]).run().status(0).json();
    let copy_size = probe.object_bytes(copy["sha256"].as_str().expect("sha256")).len() as u64;
    assert!(
        copy_size > raw_size,
        "precondition: the MP4 copy ({copy_size}) is larger than the raw stream ({raw_size})"
    );
    failed.extend(check(&store, &raw.id, raw_size + (copy_size - raw_size) / 2, "dvr_ch01"));
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

#[test]
fn a_media_run_that_fails_after_the_preflight_records_nothing_not_even_a_playback_copy() {
    // The medium cannot be created (its folder's parent is a dangling link, as a drive that went
    // away): nothing may be recorded, and no playback copy left in the store.
    let store = Store::new();
    let raw = store.ingest_fixture(Fixture::RawH264);
    let gone = store.work().join("gone");
    std::os::unix::fs::symlink(store.work().join("no-such-drive"), &gone).expect("symlink");
    let before = store.snapshot();
    let out = run_media(&store, &[&raw.id, "--profile", "court"], &gone.join("usb"));
    assert!(out.code.is_some_and(|c| c != 0), "custody media cannot succeed here\n{}", shown(&out));
    store.assert_unchanged(&before);
}

// ---------------------------------------------------------------------------------------------
// 7. A recording whose playback copy would be over the limit: split at keyframes into parts.

/// A DVR-like raw H.264 stream (no B-frames, a keyframe a second) of `seconds` at about
/// 2 Mbit/s, made by ffmpeg (the oracle's own encoder) at `path`.
fn raw_dvr_stream(path: &Path, seconds: u32) -> PathBuf {
    let dir = path.parent().expect("a parent");
    fs::create_dir_all(dir).expect("mkdir");
    let secs = seconds.to_string();
    let args = [
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=25",
        "-t",
        &secs,
        "-c:v",
        "libx264",
        "-bf",
        "0",
        "-g",
        "25",
        "-b:v",
        "2M",
        "-f",
        "h264",
    ];
    let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    all.push(path.as_os_str());
    run_oracle(&system_oracle("ffmpeg"), &all, dir).status(0);
    path.to_owned()
}

/// Each decoded frame's MD5 (ffmpeg's framemd5), in order: what a player shows, frame by frame.
fn frame_md5s(path: &Path) -> Vec<String> {
    let out = run_oracle(
        &system_oracle("ffmpeg"),
        &[
            OsStr::new("-v"),
            OsStr::new("error"),
            OsStr::new("-i"),
            path.as_os_str(),
            OsStr::new("-map"),
            OsStr::new("0:v"),
            OsStr::new("-f"),
            OsStr::new("framemd5"),
            OsStr::new("-"),
        ],
        Path::new("."),
    );
    out.status(0);
    out.stdout()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit(',').next().unwrap_or("").trim().to_owned())
        .collect()
}

#[test]
fn a_recording_over_the_limit_travels_as_recorded_parts_cut_at_keyframes_that_play_and_hold_every_frame() {
    let store = Store::new();
    let raw_path = raw_dvr_stream(&store.work().join("export/ch02.h264"), 12);
    let raw = store.ingest_media(&raw_path);
    let raw_size = fs::metadata(&raw_path).expect("size").len();
    let limit = 1_200_000u64;
    assert!(raw_size > 2 * limit, "precondition: the stream ({raw_size} bytes) needs at least three parts");
    let profile = write(&store.work().join("county.yaml"), profile_yaml(&limit.to_string(), "fat32", ""));

    // --no-split: refused, naming the item, nothing written or recorded.
    let dir = store.work().join("usb");
    let before = store.snapshot();
    let out = run_media(&store, &[&raw.id, "--profile", profile.to_str().unwrap(), "--no-split"], &dir);
    out.status(2);
    assert_problem(&out, &raw.id, "ch02.h264", "over the profile's limit");
    assert_nothing_written(&dir);
    store.assert_unchanged(&before);

    // Split: the native original travels whole, its playback copy in parts, each a clip.
    let events_before = store.event_count();
    run_media(&store, &[&raw.id, "--profile", profile.to_str().unwrap()], &dir).status(0);
    let bodies = store.event_bodies();
    let clips: Vec<&Value> = bodies[events_before as usize..].iter().filter(|e| e["action"] == "clip").collect();
    let n = clips.len();
    assert!(n >= 3, "the copy is made in at least three parts: {n} clip events");
    let event = media_event(&store);
    let files = medium_files(&dir);
    assert_eq!(files["data/evidence/24-1234/9/ch02.h264"].0, sha256sum(&raw_path), "the original, unaltered");
    let mut shown_frames = Vec::new();
    for (k, clip) in clips.iter().enumerate() {
        assert_eq!(input_items(clip), BTreeSet::from([raw.id.clone()]), "each part is cut from the original: {clip:#}");
        let note = clip["note"].as_str().unwrap_or_default();
        assert!(note.contains(&format!("part {} of {n}", k + 1)), "the clip's note says which part: {clip:#}");
        let name = clip["outputs"][0]["name"].as_str().expect("name");
        assert_eq!(name, format!("ch02_part{}of{n}.mp4", k + 1), "{clip:#}");
        let rel = format!("data/evidence/24-1234/9/{name}");
        let (sha, size) = files.get(&rel).unwrap_or_else(|| panic!("{rel} is not on the medium: {files:#?}"));
        assert_eq!(sha, clip["outputs"][0]["sha256"].as_str().unwrap(), "{rel}");
        assert!(*size <= limit, "{rel} is {size} bytes, over the {limit}-byte limit");
        // Each part plays on its own: ffmpeg decodes it without an error.
        let path = dir.join(&rel);
        assert_plays(&path);
        shown_frames.extend(frame_md5s(&path));
        let part = event["params"]["playback_copies"]
            .as_array()
            .expect("playback_copies")
            .iter()
            .find(|p| p["item"] == clip["outputs"][0]["item"])
            .unwrap_or_else(|| panic!("the media event does not list part {}: {event:#}", k + 1));
        assert_eq!(
            (part["of"].clone(), part["part"].clone(), part["parts"].clone(), part["made"].clone()),
            (Value::from(raw.id.clone()), Value::from(k + 1), Value::from(n), Value::Bool(true)),
            "{part:#}"
        );
    }
    // Together the parts show every frame of the original, in order, and nothing else.
    assert_eq!(shown_frames, frame_md5s(&raw_path), "the parts do not hold exactly the original's frames");

    // index.html plays every part, in order, under the original's entry.
    let html = read_html(&dir.join("index.html"));
    let videos: Vec<String> = html.media.iter().filter(|(t, _)| t == "video").flat_map(|(_, s)| s.clone()).collect();
    for k in 1..=n {
        let rel = format!("data/evidence/24-1234/9/ch02_part{k}of{n}.mp4");
        assert!(videos.contains(&rel), "index.html does not play {rel}: {videos:?}");
        assert!(html.text.contains(&format!("part {k} of {n}")), "index.html does not say part {k} of {n}");
    }
    store.verify_ok();

    // A second medium uses the same parts again: one event, no new clips.
    let again = store.work().join("usb2");
    let count = store.event_count();
    run_media(&store, &[&raw.id, "--profile", profile.to_str().unwrap()], &again).status(0);
    assert_eq!(store.event_count(), count + 1, "the parts are used again, not made again");
    let reused = media_event(&store);
    assert!(
        reused["params"]["playback_copies"].as_array().expect("copies").iter().all(|p| p["made"] == false),
        "{reused:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2c. A video whose codec plays in no browser: a re-encoded playback copy, every frame.

#[test]
fn an_mjpeg_avi_gets_a_recorded_re_encoded_h264_copy_of_every_frame_that_index_html_plays_instead() {
    let store = Store::new();
    let avi = store.ingest_fixture(Fixture::MjpegAvi);
    let dir = store.work().join("usb");
    let events_before = store.event_count();
    run_media(&store, &[&avi.id, "--profile", "court"], &dir).status(0);
    let bodies = store.event_bodies();
    assert_eq!(bodies.len() as i64, events_before + 2, "a clip event (the copy) and a media event");
    let clip = &bodies[bodies.len() - 2];
    assert_eq!((clip["action"].as_str(), clip["params"]["mode"].as_str()), (Some("clip"), Some("exact")), "{clip:#}");
    assert_eq!(input_items(clip), BTreeSet::from([avi.id.clone()]), "{clip:#}");
    let name = clip["outputs"][0]["name"].as_str().expect("name");
    assert_eq!(name, "cam_704x480_avi_playback.mp4");
    let copy = dir.join("data/evidence/24-1234/9").join(name);
    // ffprobe, the oracle: H.264 in MP4, and as many frames as the AVI (every frame, none lost).
    let probe = |p: &Path| {
        crate::support::ffprobe_json(
            p,
            &["-count_frames", "-select_streams", "v:0", "-show_entries", "stream=codec_name,nb_read_frames"],
        )
    };
    let (c, a) = (probe(&copy), probe(&avi.path));
    assert_eq!(c["streams"][0]["codec_name"], "h264", "{c:#}");
    assert_eq!(c["streams"][0]["nb_read_frames"], a["streams"][0]["nb_read_frames"], "copy {c:#} vs AVI {a:#}");
    assert_eq!(sha256sum(&dir.join("data/evidence/24-1234/9/cam_704x480.avi")), sha256sum(&avi.path), "the original");
    // index.html plays the copy, and offers the AVI (which no browser plays) as a file only.
    let html = read_html(&dir.join("index.html"));
    let sources: Vec<&String> = html.media.iter().flat_map(|(_, s)| s).collect();
    assert!(sources.iter().any(|s| s.ends_with(name)), "index.html does not play the copy: {sources:?}");
    assert!(!sources.iter().any(|s| s.ends_with(".avi")), "index.html offers the AVI as video: {sources:?}");
    assert!(
        html.text.contains(&format!("play its copy {}", clip["outputs"][0]["item"].as_str().unwrap()))
            && html.text.contains("re-encoded to H.264")
            && !html.text.contains("copied unchanged"),
        "index.html must say the AVI's copy was re-encoded, not copied: {}",
        html.text
    );
    store.verify_ok();
}
