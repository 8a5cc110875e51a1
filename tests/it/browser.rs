//! index.html of a court medium as a court user sees it: the page opened from the medium's folder
//! (`file://`, no network) in headless Chromium. Every exhibit of the case is listed in the text
//! the page shows, with its SHA-256; every `<video>` and `<audio>` loads its metadata without an
//! error, with the duration ffprobe reads from the same file; the lossless MP4 playback copy of
//! the raw `.h264` (which no browser plays) plays in a `<video>`, the WAV in an `<audio>`. A
//! second test shows the oracle fails: an MP4 cut inside its index is reported by Chromium, and
//! only that element changes.
//!
//! Oracles: Chromium (Debian's /usr/bin/chromium), driven over the DevTools protocol by
//! tests/it/browser.py under Debian's /usr/bin/python3 with python3-websocket; ffprobe for the
//! durations; sha256sum for the hashes. A missing oracle fails the test (it does not skip it).
//! The page is checked at metadata: a file whose index is whole but whose frames are damaged
//! still shows its full duration (Chromium reports that only when it plays).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use custody::media::synth::Fixture;
use serde_json::Value;

use crate::support::{Store, ffprobe_json, files_under, media, sha256sum, tool};

// ---------------------------------------------------------------------------------------------
// The oracle: headless Chromium over the DevTools protocol.

/// Debian's Chromium (bins/setup installs it).
const CHROMIUM: &str = "/usr/bin/chromium";

/// The interpreter Debian's python3-websocket is installed for. Not the `python3` first on PATH:
/// another Python there (pyenv, a venv) does not see Debian's packages.
const PYTHON: &str = "/usr/bin/python3";

/// Opens a page in headless Chromium and prints, as JSON, its visible text and every media
/// element's source, duration and error once each has settled (see its header).
const BROWSER_PY: &str = include_str!("browser.py");

/// Longest the script may take for Chromium to start, load the page and settle every element.
const BROWSER_SECONDS: &str = "60";

/// The oracles this module needs, or a failure that says how to get them.
#[track_caller]
fn assert_oracles() {
    assert!(Path::new(CHROMIUM).is_file(), "the oracle {CHROMIUM} (headless Chromium) is missing: run bins/setup");
    let import = std::process::Command::new(PYTHON).args(["-c", "import websocket"]).output();
    assert!(
        import.is_ok_and(|o| o.status.success()),
        "the oracle's Python module `websocket` (python3-websocket) is missing for {PYTHON}: run bins/setup"
    );
}

/// A `<video>` or `<audio>` element once it has settled.
#[derive(Debug)]
pub(crate) struct Element {
    pub(crate) tag: String,
    /// The file it resolved its source to (absolute), if any.
    pub(crate) src: Option<PathBuf>,
    /// Seconds; `None` while unknown (NaN).
    duration: Option<f64>,
    /// HTMLMediaElement.readyState (1: HAVE_METADATA).
    ready: u64,
    /// MediaError code and message (4: MEDIA_ERR_SRC_NOT_SUPPORTED).
    error: Option<(u64, String)>,
}

/// What Chromium shows of a page.
pub(crate) struct Page {
    /// document.body.innerText: the text a reader sees.
    pub(crate) text: String,
    pub(crate) media: Vec<Element>,
}

/// A path as a `file://` URL (bytes outside the unreserved set and `/` percent-encoded).
fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for &b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// Open `page` (a file) in headless Chromium and read what it shows.
#[track_caller]
pub(crate) fn open_in_chromium(page: &Path) -> Page {
    assert_oracles();
    let url = file_url(page);
    let args = ["-c", BROWSER_PY, CHROMIUM, &url, BROWSER_SECONDS].map(OsStr::new);
    let out = tool(PYTHON, &args, Path::new("."));
    assert_eq!(out.code, Some(0), "browser.py failed on {url}\n--- stderr ---\n{}", out.stderr());
    let json: Value = serde_json::from_str(&out.stdout()).expect("browser.py's JSON");
    let media = json["media"]
        .as_array()
        .expect("media")
        .iter()
        .map(|m| Element {
            tag: m["tag"].as_str().expect("tag").to_owned(),
            src: m["src"].as_str().map(PathBuf::from),
            duration: m["duration"].as_f64(),
            ready: m["ready"].as_u64().expect("ready"),
            error: (!m["error"].is_null()).then(|| {
                (
                    m["error"]["code"].as_u64().expect("code"),
                    m["error"]["message"].as_str().unwrap_or_default().to_owned(),
                )
            }),
        })
        .collect();
    Page { text: json["text"].as_str().expect("text").to_owned(), media }
}

/// ffprobe's duration of a file, and how far a player's may be from it: 0.1 s, or one frame of
/// its video when that is longer.
#[track_caller]
fn probed_duration(path: &Path) -> (f64, f64) {
    let probe = ffprobe_json(path, &["-show_format", "-show_streams"]);
    let seconds = probe["format"]["duration"].as_str().and_then(|d| d.parse::<f64>().ok());
    let seconds = seconds.unwrap_or_else(|| panic!("ffprobe gives no duration for {}: {probe:#}", path.display()));
    let frame = probe["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["codec_type"] == "video")
        .filter_map(|s| s["avg_frame_rate"].as_str()?.split_once('/'))
        .filter_map(|(n, d)| Some(d.parse::<f64>().ok()? / n.parse::<f64>().ok()?))
        .find(|f| f.is_finite());
    (seconds, frame.unwrap_or(0.0).max(0.1))
}

/// Why `element` does not play `path` as ffprobe reads it: not loaded, an error, or another
/// duration.
pub(crate) fn fault(element: &Element, path: &Path) -> Option<String> {
    if let Some((code, message)) = &element.error {
        return Some(format!("Chromium cannot play it: MediaError {code} {message:?}"));
    }
    if element.ready < 1 {
        return Some(format!("no metadata loaded (readyState {})", element.ready));
    }
    let (want, within) = probed_duration(path);
    match element.duration {
        Some(d) if (d - want).abs() <= within => None,
        Some(d) => Some(format!("duration {d} s, ffprobe reads {want} s (within {within} s)")),
        None => Some(format!("no duration, ffprobe reads {want} s")),
    }
}

// ---------------------------------------------------------------------------------------------
// The medium: a DVR export on a court medium.

/// One exhibit file of the case.
struct Exhibit {
    id: String,
    /// Its name in the case (`export/dvr_ch01.h264`).
    name: String,
}

impl Exhibit {
    /// Its item and name as an event or `ingest --json` lists them.
    #[track_caller]
    fn of(json: &Value) -> Exhibit {
        let field = |key: &str| json[key].as_str().unwrap_or_else(|| panic!("no {key} in {json:#}")).to_owned();
        Exhibit { id: field("item"), name: field("name") }
    }

    /// Where it is on the medium.
    fn path(&self) -> String {
        evidence(&self.name)
    }
}

/// Where exhibit 24-1234:3's file `name` is on the medium.
fn evidence(name: &str) -> String {
    format!("data/evidence/24-1234/3/{name}")
}

/// A court medium written by `custody media --case 24-1234 --profile court`.
struct Medium {
    /// Holds the temp dir the store and the medium live in.
    _store: Store,
    /// The medium's folder (canonical).
    dir: PathBuf,
    /// Every exhibit of the case: the files ingested and what media made of them.
    exhibits: Vec<Exhibit>,
    /// On the medium: the raw H.264's MP4 playback copy, the WAV.
    copy: String,
    wav: String,
}

/// A DVR export, exhibit 24-1234:3, as tests/it/media.rs builds it: raw H.264 (no browser plays
/// it; media makes its lossless MP4 playback copy), MJPEG in AVI, and a WAV; on a court medium.
fn court_medium() -> Medium {
    let store = Store::new();
    let export = store.work().join("export");
    media(Fixture::RawH264, &export.join("dvr_ch01.h264"));
    media(Fixture::MjpegAvi, &export.join("cam_704x480.avi"));
    media(Fixture::Wav, &export.join("overhear.wav"));
    let ingest =
        store.cmd(&["--json", "ingest", "--case", "24-1234", "--item", "3"]).arg(&export).run().status(0).json();
    let mut exhibits: Vec<Exhibit> = ingest["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| Exhibit {
            id: i["id"].as_str().expect("id").to_owned(),
            name: i["name"].as_str().expect("name").to_owned(),
        })
        .collect();
    assert_eq!(exhibits.len(), 3, "precondition: three files ingested: {ingest:#}");
    let raw = exhibits.iter().find(|e| e.name == "export/dvr_ch01.h264").expect("the raw H.264").id.clone();

    let dir = store.work().join("usb");
    let events_before = store.event_count() as usize;
    store.cmd(&["--json", "media", "--case", "24-1234", "--profile", "court", "--out"]).arg(&dir).run().status(0);
    // The items media made before its own event (the playback copy, by a rewrap of the raw
    // H.264) are exhibits of the case too.
    let bodies = store.event_bodies();
    let (made, media_event) = bodies[events_before..].split_at(bodies.len() - events_before - 1);
    assert_eq!(media_event[0]["action"], "media", "{:#}", media_event[0]);
    let rewrap = made.iter().find(|b| b["action"] == "rewrap" && b["inputs"][0]["item"] == raw.as_str());
    let rewrap = rewrap.unwrap_or_else(|| panic!("precondition: media made a playback copy of {raw}: {made:#?}"));
    let copy = Exhibit::of(&rewrap["outputs"][0]).path();
    assert!(copy.ends_with(".mp4"), "precondition: the playback copy is an MP4: {rewrap:#}");
    exhibits.extend(made.iter().flat_map(|b| b["outputs"].as_array().into_iter().flatten()).map(Exhibit::of));
    Medium {
        dir: dir.canonicalize().expect("the medium"),
        _store: store,
        exhibits,
        copy,
        wav: evidence("export/overhear.wav"),
    }
}

/// The page's elements by the file each plays, relative to the medium (with `/`).
#[track_caller]
fn by_file<'a>(page: &'a Page, dir: &Path) -> Vec<(String, &'a Element)> {
    page.media
        .iter()
        .map(|e| {
            let src = e.src.as_ref().unwrap_or_else(|| panic!("a <{}> with no source: {e:?}", e.tag));
            let rel = src
                .strip_prefix(dir)
                .unwrap_or_else(|_| panic!("<{}> plays {}, not on the medium", e.tag, src.display()));
            (rel.to_string_lossy().into_owned(), e)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. What a court user sees.

#[test]
fn chromium_lists_every_exhibit_of_a_court_medium_and_each_video_and_audio_it_offers_loads_with_ffprobes_duration() {
    let medium = court_medium();
    let page = open_in_chromium(&medium.dir.join("index.html"));
    let mut problems = Vec::new();

    // Every exhibit listed as the page heads it (`i1 — 24-1234:3/export/…`), with its SHA-256.
    for e in &medium.exhibits {
        let heading = format!("{} — 24-1234:3/{}", e.id, e.name);
        if !page.text.lines().any(|l| l.trim() == heading) {
            problems.push(format!("the page does not show the exhibit {heading:?}"));
        }
        let sha = sha256sum(&medium.dir.join(e.path()));
        if !page.text.contains(&sha) {
            problems.push(format!("the page does not show {}'s SHA-256 {sha}", e.name));
        }
    }

    // The medium holds every exhibit, and no other evidence.
    let evidence: BTreeSet<String> = files_under(&medium.dir.join("data/evidence"))
        .iter()
        .map(|p| p.strip_prefix(&medium.dir).expect("on the medium").to_string_lossy().into_owned())
        .collect();
    let exhibits: BTreeSet<String> = medium.exhibits.iter().map(Exhibit::path).collect();
    assert_eq!(evidence, exhibits, "the evidence on the medium");

    // It plays what every browser plays: the raw original's MP4 copy in a <video>, the WAV in an
    // <audio> (docs/media.md), a file in one element at most. Every element it offers, whatever
    // its file, loads its metadata without an error, with ffprobe's duration.
    let elements = by_file(&page, &medium.dir);
    let tags: Vec<(&str, &str)> = elements.iter().map(|(f, e)| (f.as_str(), e.tag.as_str())).collect();
    for (file, tag) in [(&medium.copy, "video"), (&medium.wav, "audio")] {
        if !tags.contains(&(file.as_str(), tag)) {
            problems.push(format!("no <{tag}> plays {file}"));
        }
    }
    let files: BTreeSet<&str> = tags.iter().map(|(f, _)| *f).collect();
    assert_eq!(files.len(), tags.len(), "a file played by two elements: {tags:?}");
    for (file, element) in &elements {
        if let Some(why) = fault(element, &medium.dir.join(file)) {
            problems.push(format!("<{}> {file}: {why}", element.tag));
        }
    }
    assert!(
        problems.is_empty(),
        "what Chromium shows of index.html:\n  {}\n--- page text ---\n{}",
        problems.join("\n  "),
        page.text
    );
}

// ---------------------------------------------------------------------------------------------
// 2. The oracle fails on a damaged file.

/// Offset and length of the first top-level MP4 box of type `kind`.
fn mp4_box(bytes: &[u8], kind: &[u8; 4]) -> Option<(usize, usize)> {
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().ok()?) as usize;
        let size = match size {
            0 => bytes.len() - at,
            1 => u64::from_be_bytes(bytes.get(at + 8..at + 16)?.try_into().ok()?) as usize,
            n => n,
        };
        if &bytes[at + 4..at + 8] == kind {
            return Some((at, size));
        }
        at = at.checked_add(size).filter(|_| size >= 8)?;
    }
    None
}

#[test]
fn a_playback_copy_cut_inside_its_index_fails_in_chromium_and_every_other_element_shows_what_it_did() {
    let medium = court_medium();
    let index = medium.dir.join("index.html");
    let before = open_in_chromium(&index);
    let before = by_file(&before, &medium.dir);
    let mp4 = medium.dir.join(&medium.copy);
    let copy_before = before.iter().find(|(f, _)| *f == medium.copy).map(|(_, e)| e);
    let copy_before =
        copy_before.unwrap_or_else(|| panic!("precondition: an element plays {}: {before:?}", medium.copy));
    assert_eq!(fault(copy_before, &mp4), None, "precondition: the intact copy loads with ffprobe's duration");
    let (duration, within) = probed_duration(&mp4);

    // Cut the copy halfway through its moov box, the index Chromium reads the duration from.
    // (Cut after it, the first 1 KiB say, its metadata is whole: Chromium shows the full
    // duration and reports the missing frames only on playing them.)
    let bytes = fs::read(&mp4).expect("the copy");
    let (at, len) =
        mp4_box(&bytes, b"moov").unwrap_or_else(|| panic!("precondition: {} has a moov box", mp4.display()));
    fs::set_permissions(&mp4, fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::OpenOptions::new()
        .write(true)
        .open(&mp4)
        .expect("open the copy")
        .set_len((at + len / 2) as u64)
        .expect("truncate");

    let after = open_in_chromium(&index);
    let after = by_file(&after, &medium.dir);
    let copy =
        after.iter().find(|(f, _)| *f == medium.copy).map(|(_, e)| e).expect("the copy's element is still there");
    let failed = copy.error.is_some() || copy.ready < 1 || copy.duration.is_none_or(|d| (d - duration).abs() > within);
    assert!(failed, "Chromium shows the cut copy as whole ({duration} s): {copy:?}");

    // Every other element shows what it did before; the WAV still loads.
    let others = |v: &[(String, &Element)]| -> Vec<String> {
        v.iter()
            .filter(|(f, _)| *f != medium.copy)
            .map(|(f, e)| format!("{f} {} {:?} {:?}", e.tag, e.duration, e.error))
            .collect()
    };
    assert_eq!(others(&after), others(&before), "the elements other than the cut copy changed");
    let wav = after.iter().find(|(f, _)| *f == medium.wav).map(|(_, e)| e).expect("the WAV's element");
    assert_eq!(fault(wav, &medium.dir.join(&medium.wav)), None, "the WAV beside the cut copy");
}
