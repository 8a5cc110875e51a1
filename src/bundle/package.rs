//! Writing a court bundle: a BagIt bag (RFC 8493) inside one ZIP file, holding the evidence, the
//! custody ledger excerpt that concerns it, a human-readable report and the means to check all
//! of it without custody.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use super::pdf::{Paper, Pdfa};
use super::report;
use super::zip::ZipWriter;
use crate::digest;
use crate::error;
use crate::ledger::{Event, Head, ItemRow, Ledger, Row, canonical, parse_body, private};
use crate::mapped::Mapped;
use crate::store::{Store, env_io};

/// The bundled checker: Python standard library only.
pub const VERIFY_SCRIPT: &str = include_str!("../../docs/verify_bundle.py");

/// Which items go in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Include {
    /// Items as they were taken into custody.
    Originals,
    /// Items made from them (clips, stills, redacted copies, playback copies).
    Derived,
    All,
}

/// What the bundle is for.
pub struct Request<'a> {
    pub rows: Vec<ItemRow>,
    pub include: Include,
    pub recipient: Option<&'a str>,
    pub purpose: Option<&'a str>,
    /// The court medium the bundle is written to (`custody media`): its label and formats.
    pub medium: Option<&'a str>,
    /// Whether the evidence's bytes go into the ZIP. A medium copies each object itself (and
    /// reads it back against its recorded SHA-256): its ZIP holds only the bag's other files,
    /// and the manifests and report name the evidence as ever.
    pub evidence: bool,
    pub examiner: &'a str,
    pub out: &'a Path,
    /// A release (public records) bundle: only the events that made the included files are in
    /// full; their sources' events, which describe the unredacted originals, are withheld as
    /// hashes.
    pub release: bool,
    /// The report's page size; None: the agency's (`init --paper`), else letter.
    pub paper: Option<Paper>,
    /// The report's PDF/A level.
    pub pdfa: Pdfa,
}

/// One evidence file in the bundle.
#[derive(Clone, Debug, Serialize)]
pub struct Packed {
    pub path: String,
    pub item: String,
    pub case: String,
    pub exhibit: String,
    pub name: String,
    pub parent: Option<String>,
    pub sha256: String,
    pub sha512: String,
    pub blake3: String,
    pub size: u64,
    /// The event that created the item.
    pub event: u64,
}

/// What was written.
pub struct Written {
    pub path: PathBuf,
    pub bag: String,
    pub files: Vec<Packed>,
    pub events_full: usize,
    pub events_total: u64,
    pub head: Head,
    pub digests: digest::Digests,
    /// The report's page size.
    pub paper: Paper,
}

/// Make a bag path component readable and safe: no control characters, no separators.
fn safe(component: &str) -> String {
    let s: String = component.chars().map(|c| if c.is_control() || c == '\\' { '_' } else { c }).collect();
    match s.as_str() {
        "" | "." | ".." => "_".to_owned(),
        _ => s,
    }
}

/// BagIt manifest paths percent-encode CR, LF and `%` (RFC 8493 §2.1.3).
pub fn encode_path(p: &str) -> String {
    p.replace('%', "%25").replace('\n', "%0A").replace('\r', "%0D")
}

pub fn decode_path(p: &str) -> String {
    p.replace("%0A", "\n").replace("%0a", "\n").replace("%0D", "\r").replace("%0d", "\r").replace("%25", "%")
}

/// Write the bundle for `req` at `req.out` (through a temporary name, renamed at the end).
pub fn write(store: &Store, ledger: &Ledger, req: &Request) -> Result<Written> {
    let head = ledger.head()?.ok_or_else(|| error::input("the ledger is empty: nothing to package"))?;
    // The items, their ancestors, and every event that names any of them.
    let all_items = ledger.items()?;
    let by_id: BTreeMap<&str, &ItemRow> = all_items.iter().map(|r| (r.id.as_str(), r)).collect();
    let chosen: Vec<&ItemRow> = req
        .rows
        .iter()
        .filter(|r| match req.include {
            Include::All => true,
            Include::Originals => r.parent.is_none(),
            Include::Derived => r.parent.is_some(),
        })
        .collect();
    if chosen.is_empty() {
        return Err(error::input(format!(
            "no item to package: --include {} leaves none of the {} item(s) asked",
            match req.include {
                Include::All => "all",
                Include::Originals => "originals",
                Include::Derived => "derived",
            },
            req.rows.len()
        )));
    }
    let mut concerned: BTreeSet<String> = BTreeSet::new();
    for r in &chosen {
        let mut cur = Some(r.id.as_str());
        while let Some(id) = cur {
            if !concerned.insert(id.to_owned()) || req.release {
                break;
            }
            cur = by_id.get(id).and_then(|r| r.parent.as_deref());
        }
    }
    let mut lines: Vec<String> = Vec::new();
    let mut events: Vec<(Event, String)> = Vec::new();
    let mut agency = None;
    let mut agency_paper = None;
    ledger.for_each_row(|row| {
        let ev = parse_body(&row)?;
        if ev.seq == 1 {
            agency = super::case::recorded_agency(&[(ev.clone(), row.hash.clone())]);
            agency_paper = ev.params.get("paper").and_then(|v| v.as_str()).and_then(Paper::parse);
        }
        let names = |refs: &[crate::ledger::FileRef]| {
            refs.iter().any(|f| f.item.as_deref().is_some_and(|i| concerned.contains(i)))
        };
        let wanted = if req.release { names(&ev.outputs) } else { names(&ev.inputs) || names(&ev.outputs) };
        if req.release {
            unredacted_pictures(&ev, &concerned)?;
        }
        let (line, kept) = excerpt_line(&row, ev, wanted, req.release, &concerned)?;
        lines.push(line);
        events.extend(kept);
        Ok(())
    })?;
    let ledger_jsonl = lines.join("\n") + "\n";
    let pushed = pushed_excerpts(ledger, &events, &concerned, req.release)?;

    let stem = req.out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "bundle".into());
    let bag = safe(&stem);
    let now = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC);
    let dir = req.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let stem_name = req.out.file_name().unwrap_or_default().to_string_lossy().into_owned();
    remove_dead_partials(dir, &stem_name);
    let partial = dir.join(format!(".{stem_name}.partial-{}", std::process::id()));
    let file = OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .mode(0o644)
        .open(&partial)
        .map_err(|e| env_io(e, &partial, "cannot create"))?;
    let guard = RemoveOnDrop(Some(partial.clone()));
    let mut zip = ZipWriter::new(file, now.datetime());
    let io = |e: std::io::Error| env_io(e, req.out, "cannot write the bundle");

    // Payload: the evidence, read once each (CRC-32, BLAKE3 to re-check it against the ledger,
    // SHA-512 for the manifest unless ingest recorded it).
    let mut files: Vec<Packed> = Vec::new();
    let mut used: BTreeSet<String> = BTreeSet::new();
    for r in &chosen {
        let (created, file_ref) = ledger.item_origin(r)?;
        let mut rel = format!(
            "data/evidence/{}/{}/{}",
            safe(&r.case),
            safe(&r.exhibit),
            r.name.split('/').map(safe).collect::<Vec<_>>().join("/")
        );
        if !used.insert(rel.clone()) {
            rel = format!("{rel}.{}", r.id);
            used.insert(rel.clone());
        }
        let object = store.object_path(&r.sha256);
        // An object kept in a bucket is fetched whole first: a bundle copies every byte anyway.
        let opened = match store.bucket() {
            Some(_) => store.object_file(&r.sha256).map_err(|e| format!("{e:#}")),
            None => File::open(&object).map_err(|e| e.to_string()),
        };
        let f = opened.map_err(|e| {
            error::mismatch(format!(
                "item {}: its object {} cannot be read ({e}); run `custody verify`",
                r.id,
                object.display()
            ))
        })?;
        let size = f.metadata().map_err(io)?.len();
        // A page the disk cannot deliver reads as zeros and is reported below.
        let map = if size > 0 { Some(Mapped::open(&f).map_err(io)?) } else { None };
        let data: &[u8] = map.as_deref().unwrap_or(&[]);
        // SHA-512 (for the manifest) and BLAKE3 (the re-check against the ledger) run on their
        // own threads while this one takes the CRC-32 and copies the bytes in. A SHA-512 taken
        // at ingest (`--also sha512`) is used as it stands: the BLAKE3 re-check proves these
        // are the bytes it was taken of.
        let recorded512 = file_ref
            .facts
            .get("sha512")
            .and_then(|v| v.as_str())
            .filter(|h| h.len() == 128 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase);
        let name = format!("{bag}/{rel}");
        let (sha512, blake3, added) = std::thread::scope(|s| {
            let h512 = recorded512.is_none().then(|| s.spawn(|| hex::encode(openssl::sha::sha512(data))));
            let b3 = s.spawn(|| blake3::hash(data).to_hex().to_string());
            let added = if req.evidence { zip.add(&name, crc32fast::hash(data), data) } else { Ok(()) };
            let sha512 = match h512 {
                Some(h) => h.join().expect("SHA-512 thread"),
                None => recorded512.clone().unwrap_or_default(),
            };
            (sha512, b3.join().expect("BLAKE3 thread"), added)
        });
        if let Some(at) = map.as_ref().and_then(Mapped::lost) {
            return Err(error::environment(format!(
                "item {}: its object {} cannot be read at byte offset {at}; nothing was packaged. \
                 Check the store's disk and run `custody verify`",
                r.id,
                object.display()
            )));
        }
        added.map_err(io)?;
        if !digest::hex_eq(&blake3, &file_ref.blake3) || size != file_ref.size {
            return Err(error::mismatch(format!(
                "item {} no longer matches the digests recorded for it: the object was altered. Nothing was packaged; run `custody verify`",
                r.id
            )));
        }
        let sha256 = file_ref.sha256.clone();
        files.push(Packed {
            path: rel,
            item: r.id.clone(),
            case: r.case.clone(),
            exhibit: r.exhibit.clone(),
            name: r.name.clone(),
            parent: r.parent.clone(),
            sha256,
            sha512,
            blake3: file_ref.blake3.clone(),
            size,
            event: created.seq,
        });
    }

    // The rest of the payload: custody records and the report.
    let items_jsonl: String =
        files.iter().map(|f| serde_json::to_string(f).expect("serializable") + "\n").collect::<String>();
    let case_graph = super::case::case_graph(&events, agency.as_deref());
    let case_json = serde_json::to_string_pretty(&case_graph)? + "\n";
    let ctx = report::Context {
        bag: &bag,
        files: &files,
        events: &events,
        head: &head,
        total_events: head.seq,
        agency: agency.as_deref(),
        examiner: req.examiner,
        recipient: req.recipient,
        purpose: req.purpose,
        medium: req.medium,
        created: &now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        store,
    };
    let html = report::html(&ctx)?;
    let paper = req.paper.or(agency_paper).unwrap_or(Paper::Letter);
    let pdf = report::pdf(
        &ctx,
        paper,
        req.pdfa,
        &now.timestamp(),
        &[
            ("ledger.jsonl", "the ledger excerpt of this bundle (data/custody/ledger.jsonl)", ledger_jsonl.as_bytes()),
            ("items.jsonl", "the files of this bundle (data/custody/items.jsonl)", items_jsonl.as_bytes()),
        ],
    )
    .map_err(|e| error::environment(format!("the bundle's report: {e:#}. Nothing was packaged")))?;
    let mut extra: Vec<(String, Vec<u8>)> = vec![
        ("data/custody/ledger.jsonl".into(), ledger_jsonl.into_bytes()),
        ("data/custody/items.jsonl".into(), items_jsonl.into_bytes()),
        ("data/custody/case.jsonld".into(), case_json.into_bytes()),
        ("data/report/report.html".into(), html.into_bytes()),
        ("data/report/report.pdf".into(), pdf),
    ];
    // The field chains pushed items came from, each ending at the head a push event binds.
    for (chain, text) in pushed {
        extra.push((format!("data/custody/pushed/{chain}.jsonl"), text.into_bytes()));
    }
    for (rel, data) in &extra {
        zip.add_bytes(&format!("{bag}/{rel}"), data).map_err(io)?;
    }
    let mut manifest256 = String::new();
    let mut manifest512 = String::new();
    for f in &files {
        manifest256.push_str(&format!("{}  {}\n", f.sha256, encode_path(&f.path)));
        manifest512.push_str(&format!("{}  {}\n", f.sha512, encode_path(&f.path)));
    }
    for (rel, data) in &extra {
        manifest256.push_str(&format!("{}  {rel}\n", hex::encode(digest::sha256(data))));
        manifest512.push_str(&format!("{}  {rel}\n", hex::encode(ring::digest::digest(&ring::digest::SHA512, data))));
    }
    let octets: u64 =
        files.iter().map(|f| f.size).sum::<u64>() + extra.iter().map(|(_, d)| d.len() as u64).sum::<u64>();
    let count = files.len() + extra.len();
    let mut info = String::new();
    if let Some(a) = &agency {
        info.push_str(&format!("Source-Organization: {a}\n"));
    }
    if req.examiner != private::SHOWN {
        info.push_str(&format!("Contact-Name: {}\n", req.examiner));
    }
    let cases: BTreeSet<&str> = files.iter().map(|f| f.case.as_str()).collect();
    for c in &cases {
        info.push_str(&format!("External-Identifier: {c}\n"));
    }
    info.push_str(&format!("Bagging-Date: {}\n", now.strftime("%Y-%m-%d")));
    info.push_str(&format!("Payload-Oxum: {octets}.{count}\n"));
    info.push_str(&format!("Bag-Size: {}\n", crate::cmd::human_size(octets)));
    info.push_str(&format!("Custody-Ledger-Head: {head}\n"));
    info.push_str(if req.release {
        "Custody-Excerpt: release (the events that made these files, their host names, OS users and paths withheld as commitments; the events of their sources are withheld, as hashes)\n"
    } else {
        "Custody-Excerpt: full (every event of these files and of the files they were made from)\n"
    });
    if let Some(r) = req.recipient {
        info.push_str(&format!("Custody-Recipient: {}\n", one_line(r)));
    }
    if let Some(p) = req.purpose {
        info.push_str(&format!("Custody-Purpose: {}\n", one_line(p)));
    }
    if let Some(m) = req.medium {
        info.push_str(&format!("Custody-Medium: {}\n", one_line(m)));
    }
    info.push_str(&format!("Bag-Software-Agent: custody {}\n", env!("CARGO_PKG_VERSION")));
    let field_chains = extra.iter().any(|(rel, _)| rel.starts_with(super::check::PUSHED_DIR));
    let readme = readme(&bag, &head, &files, req.release, field_chains);
    let mut tags: Vec<(String, Vec<u8>)> = vec![
        ("bagit.txt".into(), b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n".to_vec()),
        ("bag-info.txt".into(), info.into_bytes()),
        ("manifest-sha256.txt".into(), manifest256.into_bytes()),
        ("manifest-sha512.txt".into(), manifest512.into_bytes()),
        ("README.txt".into(), readme.into_bytes()),
        ("verify_custody.py".into(), VERIFY_SCRIPT.as_bytes().to_vec()),
    ];
    let mut tagmanifest = String::new();
    for (rel, data) in &tags {
        tagmanifest.push_str(&format!("{}  {rel}\n", hex::encode(digest::sha256(data))));
    }
    tags.push(("tagmanifest-sha256.txt".into(), tagmanifest.into_bytes()));
    for (rel, data) in &tags {
        zip.add_bytes(&format!("{bag}/{rel}"), data).map_err(io)?;
    }
    let finished = zip.finish().map_err(io)?;
    let digests = digest::Digests {
        size: finished.size,
        sha256: Some(finished.sha256),
        blake3: Some(finished.blake3),
        ..Default::default()
    };
    drop(finished.file);
    crate::fsutil::rename_noreplace(&partial, req.out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            error::input(format!("{} already exists; choose another --out or remove it", req.out.display()))
        } else {
            env_io(e, req.out, "cannot create")
        }
    })?;
    guard.disarm();
    let _ = crate::fsutil::fsync_dir(dir);
    extra.clear();
    Ok(Written {
        path: req.out.to_owned(),
        bag,
        files,
        events_full: events.len(),
        events_total: head.seq,
        head,
        digests,
        paper,
    })
}

/// One line of a ledger excerpt, and the event as the bundle shows it when it is carried: in
/// full, or in a release its committed form (host, OS user and paths replaced by their
/// commitments); else, as a stub of its number and hash, which keeps the chain checkable.
fn excerpt_line(
    row: &Row,
    ev: Event,
    wanted: bool,
    release: bool,
    concerned: &BTreeSet<String>,
) -> Result<(String, Option<(Event, String)>)> {
    if release && (ev.seq == 1 || wanted) && ev.private.is_some() {
        let committed = private::committed(serde_json::from_str(&row.body)?)
            .map_err(|e| error::mismatch(format!("ledger event {}: {e}; run `custody verify`", ev.seq)))?;
        let bytes = canonical::encode(&committed)?;
        let shown = serde_json::from_value(private::shown(&committed))?;
        Ok((format!("{{\"event\":{bytes},\"hash\":\"{}\"}}", row.hash), Some((shown, row.hash.clone()))))
    } else if release && wanted {
        Err(unreleasable(&ev, concerned))
    } else if wanted || (ev.seq == 1 && !release) {
        Ok((format!("{{\"event\":{},\"hash\":\"{}\"}}", row.body, row.hash), Some((ev, row.hash.clone()))))
    } else {
        // Withheld (it concerns other evidence, or it is a format-1 first event, which holds
        // the store's path), but its hash keeps the chain checkable.
        Ok((format!("{{\"omitted\":{{\"seq\":{},\"hash\":\"{}\"}}}}", row.seq, row.hash), None))
    }
}

/// The excerpt of every field chain a carried `push` event binds: the field events of the
/// field items the bundle holds (their acquisition, byte for byte as the field store recorded
/// it) in full, the others as stubs, up to the newest head a carried push event names.
fn pushed_excerpts(
    ledger: &Ledger,
    events: &[(Event, String)],
    concerned: &BTreeSet<String>,
    release: bool,
) -> Result<Vec<(String, String)>> {
    // Per chain: the newest head bound, and the field items the bundle's items came from.
    let mut chains: BTreeMap<String, (u64, BTreeSet<String>)> = BTreeMap::new();
    for (ev, _) in events.iter().filter(|(e, _)| e.action == "push") {
        let Some(chain) = ev.params.get("chain").and_then(|v| v.as_str()) else { continue };
        let head: Option<Head> = ev.params.get("head").and_then(|v| v.as_str()).and_then(|h| h.parse().ok());
        let entry = chains.entry(chain.to_owned()).or_default();
        entry.0 = entry.0.max(head.map_or(0, |h| h.seq));
        for out in ev.outputs.iter().filter(|o| o.item.as_deref().is_some_and(|i| concerned.contains(i))) {
            if let Some(field_item) = out.facts.get("pushed").and_then(|p| p.get("item")).and_then(|i| i.as_str()) {
                entry.1.insert(field_item.to_owned());
            }
        }
    }
    let mut out = Vec::new();
    for (chain, (head, field_items)) in chains {
        let mut lines = Vec::new();
        ledger.for_each_pushed_row(&chain, None, |row| {
            if row.seq as u64 > head {
                return Ok(());
            }
            let ev = parse_body(&row)?;
            let names = |refs: &[crate::ledger::FileRef]| {
                refs.iter().any(|f| f.item.as_deref().is_some_and(|i| field_items.contains(i)))
            };
            let wanted = if release { names(&ev.outputs) } else { names(&ev.inputs) || names(&ev.outputs) };
            lines.push(excerpt_line(&row, ev, wanted, release, &field_items)?.0);
            Ok(())
        })?;
        out.push((chain, lines.join("\n") + "\n"));
    }
    Ok(out)
}

/// Pictures made for the people deciding a redaction show what it hides: a face review sheet
/// (`custody detect`) and a redaction preview hold the unredacted pixels. A release refuses them.
fn unredacted_pictures(ev: &Event, concerned: &BTreeSet<String>) -> Result<()> {
    for o in &ev.outputs {
        let Some(item) = o.item.as_deref().filter(|i| concerned.contains(*i)) else { continue };
        let kind = o.facts.get("kind").and_then(|k| k.as_str()).unwrap_or_default();
        if kind == "face review sheet" || kind == "redaction preview" {
            return Err(error::input(format!(
                "a release cannot include {item} ({}): it is a {kind}, which shows the unredacted pictures the \
                 redaction hides. Leave it out of the release (package it without --release for the people who \
                 decide the redaction). Nothing was written",
                o.name.as_deref().unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// Why a release cannot include what a format-1 event made: that event was hashed with its
/// host, OS user and paths in it, so no verifiable excerpt can leave them out.
fn unreleasable(ev: &Event, concerned: &BTreeSet<String>) -> anyhow::Error {
    let items: Vec<&str> =
        ev.outputs.iter().filter_map(|o| o.item.as_deref()).filter(|i| concerned.contains(*i)).collect();
    error::input(format!(
        "a release cannot include {}: event {} ({}) that made {} was recorded by an earlier custody \
         (ledger format {}), which hashed its host name, OS user and paths with the rest of the event, so \
         a verifiable release would have to disclose them. Make the file again (its new event withholds \
         them), or package it without --release for a recipient who may see them. Nothing was written",
        items.join(", "),
        ev.seq,
        ev.action,
        if items.len() == 1 { "it" } else { "them" },
        ev.v
    ))
}

/// Remove what a killed `package` of the same bundle left: `.NAME.partial-PID` files whose
/// process is gone.
fn remove_dead_partials(dir: &Path, name: &str) {
    let prefix = format!(".{name}.partial-");
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = file.strip_prefix(&prefix).and_then(|p| p.parse::<i32>().ok()) else { continue };
        // SAFETY: kill with signal 0 only asks whether the process exists; nothing is sent.
        let alive =
            unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let _ = fs::remove_file(e.path());
        }
    }
}

fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// The plain-language README: what is in the bundle and how to check it with standard tools.
fn readme(bag: &str, head: &Head, files: &[Packed], release: bool, field_chains: bool) -> String {
    let pushed = if field_chains {
        "data/custody/pushed/       the field stores' own records of files pushed from them (their\n\
         \x20                          acquisition events, byte for byte), one chain a file\n"
    } else {
        ""
    };
    let mut s = format!(
        "CUSTODY BUNDLE {bag}\n\
         =====================\n\n\
         This archive is a BagIt bag (RFC 8493). It holds evidence files and the record of\n\
         their custody, and it can be checked without the program that made it.\n\n\
         Contents\n\
         --------\n\
         data/evidence/...          the evidence files, by case, item (exhibit) and name\n\
         data/custody/ledger.jsonl  the custody ledger events that concern these files and their\n\
                                    sources (other events appear only as their hashes)\n\
         data/custody/items.jsonl   which evidence file is which item, with its digests\n\
         {pushed}\
         data/custody/case.jsonld   the same custody graph in CASE/UCO JSON-LD\n\
         data/report/report.pdf     the custody and processing report (also report.html)\n\
         manifest-sha256.txt        SHA-256 of every file under data/ (also manifest-sha512.txt)\n\
         tagmanifest-sha256.txt     SHA-256 of the files at the top of the bag\n\
         verify_custody.py          a checker of the ledger excerpt (Python 3, standard library)\n\n\
         The custody ledger head when this bundle was made: {head}\n\
         Compare it with the head the agency wrote down or reported.\n\n\
         How to check it\n\
         ---------------\n\
         1. Unzip the archive and enter the bag:\n\
         \x20     unzip BUNDLE.zip && cd {bag}\n\
         2. Check every file against the manifests:\n\
         \x20     sha256sum -c manifest-sha256.txt && sha256sum -c tagmanifest-sha256.txt\n\
         \x20     sha512sum -c manifest-sha512.txt\n\
         \x20  or validate the whole bag with the Library of Congress tool (pip install bagit):\n\
         \x20     bagit.py --validate .\n\
         3. Check the custody record: every event is re-hashed, the events are chained to each\n\
         \x20  other and to the head above, and every evidence file matches the event that made it:\n\
         \x20     python3 verify_custody.py .\n\
         4. Or, with custody: custody verify BUNDLE.zip\n\n\
         A pass shows the files are the ones the ledger recorded and the record was not edited\n\
         after the head above was written. It does not show the head itself is genuine: compare\n\
         it with an independent copy.\n\n"
    );
    if release {
        s.push_str(
            "This is a public release. The events that made these files are shown with the agency's\n\
             host names, operating-system accounts and paths withheld: each stands as\n\
             {\"withheld_sha256\": ...}, a salted commitment, which the checks above hash as it\n\
             stands. The withheld values cannot be read from it, and nothing else in the events\n\
             can have been changed or hidden. The events of the files they were made from appear\n\
             only as their hashes.\n\n",
        );
    }
    s.push_str("Evidence files\n--------------\n");
    for f in files {
        s.push_str(&format!("{}  {}  ({} {}:{}/{})\n", f.sha256, f.path, f.item, f.case, f.exhibit, f.name));
    }
    s
}

/// The bundle as recorded in the package event.
pub fn event_params(w: &Written, req: &Request) -> serde_json::Map<String, serde_json::Value> {
    let mut p = serde_json::Map::new();
    p.insert(
        "bundle".into(),
        json!({"name": w.path.file_name().map(|n| n.to_string_lossy().into_owned()), "sha256": w.digests.sha256(),
               "blake3": w.digests.blake3(), "size": w.digests.size, "bag": w.bag}),
    );
    p.insert("include".into(), json!(req.include));
    p.insert("release".into(), json!(req.release));
    p.insert("recipient".into(), json!(req.recipient));
    p.insert("purpose".into(), json!(req.purpose));
    p.insert("report".into(), json!({"pdfa": req.pdfa.name(), "paper": w.paper.name()}));
    p.insert("ledger_head".into(), json!(w.head.to_string()));
    p.insert("events_included".into(), json!(w.events_full));
    p
}
