//! `custody verify BUNDLE.zip | DIR | IMAGE.iso`: check a bundle without any store (a disc image
//! is read where each file lies on it). The archive's structure
//! first (a crafted archive is refused before anything in it is used), then the bag: the file
//! set against the manifests (missing and unexpected files apart), every payload and tag file
//! digest, the Payload-Oxum, the chain of the included ledger events up to the stated head, and
//! each evidence file against the event that recorded it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::package::decode_path;
use super::zip::{self, Entry};
use crate::error;
use crate::ledger::event::{Event, event_hash};
use crate::ledger::{canonical, private};
use crate::mapped::Mapped;

/// One problem found in a bundle.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// missing, unexpected, modified, manifest, oxum, ledger, item or structure.
    pub kind: &'static str,
    pub subject: String,
    pub message: String,
}

/// What a bundle check found.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub bag: String,
    pub files: usize,
    pub bytes: u64,
    pub events: usize,
    pub head: Option<String>,
    pub problems: Vec<Finding>,
}

/// The list of every file a court medium holds (`custody media`).
const SUMS: &str = "SHA256SUMS.txt";

/// Where the bag's files are.
enum Bag<'a> {
    Zip {
        zip: &'a [u8],
        entries: BTreeMap<String, Entry>,
    },
    Dir {
        root: PathBuf,
        files: BTreeSet<String>,
    },
    /// A disc image (or a disc), mapped: each file read where its extents lie.
    Iso {
        image: &'a [u8],
        files: BTreeMap<String, super::iso::OnDisc>,
    },
}

impl Bag<'_> {
    fn files(&self) -> BTreeSet<String> {
        match self {
            Bag::Zip { entries, .. } => entries.keys().cloned().collect(),
            Bag::Dir { files, .. } => files.clone(),
            Bag::Iso { files, .. } => files.keys().cloned().collect(),
        }
    }

    fn has(&self, rel: &str) -> bool {
        match self {
            Bag::Zip { entries, .. } => entries.contains_key(rel),
            Bag::Dir { files, .. } => files.contains(rel),
            Bag::Iso { files, .. } => files.contains_key(rel),
        }
    }

    /// Run `f` over the file's bytes (mapped, never copied when stored).
    fn with<T>(&self, rel: &str, f: impl FnOnce(&[u8]) -> T) -> Result<T, String> {
        match self {
            Bag::Zip { zip, entries } => {
                let e = entries.get(rel).ok_or_else(|| format!("{rel} is missing"))?;
                let data = zip::entry_bytes(zip, e)?;
                Ok(f(&data))
            }
            Bag::Dir { root, .. } => {
                let path = root.join(rel);
                let file = std::fs::File::open(&path).map_err(|e| format!("{rel}: {e}"))?;
                let len = file.metadata().map_err(|e| format!("{rel}: {e}"))?.len();
                if len == 0 {
                    return Ok(f(&[]));
                }
                let map = Mapped::open(&file).map_err(|e| format!("{rel}: {e}"))?;
                let result = f(&map);
                // A page that could not be read (the file shrank, the medium failed) voids it.
                map.check().map_err(|e| format!("{rel} cannot be read: {e}"))?;
                Ok(result)
            }
            Bag::Iso { image, files } => {
                let on = files.get(rel).ok_or_else(|| format!("{rel} is missing"))?;
                let slice = |&(at, len): &(u64, u64)| {
                    image
                        .get(at as usize..(at + len) as usize)
                        .ok_or_else(|| format!("{rel} lies past the end of the image (cut short?)"))
                };
                match on.extents.as_slice() {
                    [] => Ok(f(&[])),
                    [one] => Ok(f(slice(one)?)),
                    many => {
                        let mut data = Vec::with_capacity(on.size as usize);
                        for x in many {
                            data.extend_from_slice(slice(x)?);
                        }
                        Ok(f(&data))
                    }
                }
            }
        }
    }

    fn text(&self, rel: &str) -> Result<String, String> {
        self.with(rel, |b| String::from_utf8_lossy(b).into_owned())
    }

    /// The CRC-32 check of zip entries (dirs have none).
    fn crc_ok(&self, rel: &str, data: &[u8]) -> bool {
        match self {
            Bag::Zip { entries, .. } => entries.get(rel).is_none_or(|e| zip::crc_ok(data, e)),
            Bag::Dir { .. } | Bag::Iso { .. } => true,
        }
    }
}

/// Check the bundle at `path`: a ZIP file or an unzipped bag folder.
pub fn check(path: &Path) -> Result<Outcome> {
    let meta =
        std::fs::symlink_metadata(path).map_err(|e| error::input(format!("cannot read {}: {e}", path.display())))?;
    if meta.is_dir() {
        let (root, files) = scan_dir(path)?;
        let bag = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        return check_bag(&Bag::Dir { root, files }, bag);
    }
    let file = std::fs::File::open(path).map_err(|e| error::input(format!("cannot read {}: {e}", path.display())))?;
    if meta.len() == 0 {
        return Err(error::input(format!("{} is empty: not a bundle", path.display())));
    }
    let map = Mapped::open(&file).map_err(|e| error::input(format!("cannot read {}: {e}", path.display())))?;
    let outcome = if super::iso::is_image(path) { check_iso(&map, path) } else { check_zip(&map, path) };
    // A page that could not be read (the file shrank, the medium failed) voids the check.
    map.check().map_err(|e| {
        error::environment(format!(
            "cannot read {}: {e}; check the medium it is on and run the check again",
            path.display()
        ))
    })?;
    outcome
}

/// Check a bundle ZIP held in `map` (`path` names it in messages). Nothing is written anywhere.
pub fn check_zip(map: &[u8], path: &Path) -> Result<Outcome> {
    let refuse = |why: String| error::input(format!("{} is refused: {why}; nothing was extracted", path.display()));
    let entries = zip::read_entries(map).map_err(|r| refuse(r.0))?;
    // One top folder holds the whole bag.
    let top = entries.first().and_then(|e| e.name.split('/').next()).unwrap_or_default().to_owned();
    let mut files = BTreeMap::new();
    for e in entries {
        let Some(rel) = e.name.strip_prefix(&format!("{top}/")).map(str::to_owned) else {
            return Err(refuse(format!("{} lies outside the bag's top folder {top}/", e.name)));
        };
        if !e.is_dir && !rel.is_empty() {
            files.insert(rel, e);
        }
    }
    // Sizes: what the archive declares must fit what the bag declares, before anything is
    // inflated (a ZIP bomb declares little and inflates much, or declares much).
    let oxum = files
        .get("bag-info.txt")
        .filter(|e| e.size <= 1 << 20)
        .and_then(|e| zip::entry_bytes(map, e).ok())
        .and_then(|b| parse_info(&String::from_utf8_lossy(&b)).get("Payload-Oxum").cloned())
        .and_then(|o| o.split_once('.').and_then(|(a, _)| a.parse::<u64>().ok()));
    // Stored entries hold their bytes in the archive itself; only deflated ones can expand.
    let declared: u64 =
        files.iter().filter(|(r, e)| r.starts_with("data/") && e.method == 8).map(|(_, e)| e.size).sum();
    if let Some(octets) = oxum
        && declared > octets
    {
        return Err(refuse(format!(
            "its compressed entries declare {declared} bytes of payload, more than the {octets} its bag-info.txt states"
        )));
    }
    for e in files.values() {
        if e.method == 8 && e.size > 1024 * e.compressed.max(1) {
            return Err(refuse(format!("{} would inflate {}-fold (a ZIP bomb)", e.name, e.size / e.compressed.max(1))));
        }
        if !e.name.starts_with(&format!("{top}/data/")) && e.size > 64 << 20 {
            return Err(refuse(format!("the tag file {} declares {} bytes", e.name, e.size)));
        }
    }
    check_bag(&Bag::Zip { zip: map, entries: files }, top)
}

/// Check a disc image held in `map`: the bag at the disc's root, every file read from its extents.
fn check_iso(map: &[u8], path: &Path) -> Result<Outcome> {
    let listing = super::iso::list(path)?;
    let bag = if listing.volume.is_empty() {
        path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    } else {
        listing.volume.clone()
    };
    let mut outcome = check_bag(&Bag::Iso { image: map, files: listing.files }, bag)?;
    for (rel, why) in listing.disagreements {
        add(&mut outcome.problems, "modified", if rel.is_empty() { "(disc)" } else { &rel }, why);
    }
    Ok(outcome)
}

fn scan_dir(path: &Path) -> Result<(PathBuf, BTreeSet<String>)> {
    let root = path.to_owned();
    let mut files = BTreeSet::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| error::input(format!("cannot read {}: {e}", dir.display())))?;
        for entry in rd {
            let entry = entry.map_err(|e| error::input(format!("cannot read {}: {e}", dir.display())))?;
            let p = entry.path();
            let ft = entry.file_type().map_err(|e| error::input(format!("cannot read {}: {e}", p.display())))?;
            let rel = p.strip_prefix(&root).expect("under root").to_string_lossy().into_owned();
            if ft.is_symlink() {
                return Err(error::input(format!("{} is refused: {rel} is a symbolic link", path.display())));
            } else if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                files.insert(rel);
            } else {
                return Err(error::input(format!("{} is refused: {rel} is not a regular file", path.display())));
            }
        }
    }
    Ok((root, files))
}

fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect()
}

/// `HASH  PATH` lines; `None` for a line that is not one.
fn parse_manifest(text: &str) -> Vec<Option<(String, String)>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (hash, path) = l.split_once([' ', '\t'])?;
            let path = path.trim_start_matches([' ', '\t', '*']);
            (!hash.is_empty() && !path.is_empty()).then(|| (hash.to_ascii_lowercase(), decode_path(path)))
        })
        .collect()
}

fn add(problems: &mut Vec<Finding>, kind: &'static str, subject: &str, message: String) {
    problems.push(Finding { kind, subject: subject.to_owned(), message });
}

fn check_bag(bag: &Bag, name: String) -> Result<Outcome> {
    let mut problems = Vec::new();
    let present = bag.files();
    if !bag.text("bagit.txt").map(|t| t.contains("BagIt-Version:")).unwrap_or(false) {
        add(
            &mut problems,
            "structure",
            "bagit.txt",
            "bagit.txt is missing or does not declare a BagIt version: not a bag".into(),
        );
    }
    let info = bag.text("bag-info.txt").map(|t| parse_info(&t)).unwrap_or_default();
    let head = info.get("Custody-Ledger-Head").cloned();

    // Tag files.
    match bag.text("tagmanifest-sha256.txt") {
        Ok(t) => {
            for line in parse_manifest(&t) {
                let Some((want, rel)) = line else {
                    add(
                        &mut problems,
                        "manifest",
                        "tagmanifest-sha256.txt",
                        "holds a line that is not HASH  PATH".into(),
                    );
                    continue;
                };
                match bag.with(&rel, |b| hex::encode(crate::digest::sha256(b))) {
                    Ok(got) if got == want => {}
                    Ok(_) => add(
                        &mut problems,
                        "modified",
                        &rel,
                        format!("{rel} does not match its SHA-256 in tagmanifest-sha256.txt"),
                    ),
                    Err(_) => add(
                        &mut problems,
                        "missing",
                        &rel,
                        format!("{rel} is listed in tagmanifest-sha256.txt but missing"),
                    ),
                }
            }
        }
        Err(_) => add(&mut problems, "missing", "tagmanifest-sha256.txt", "tagmanifest-sha256.txt is missing".into()),
    }

    // A court medium's own list (SHA256SUMS.txt, for `sha256sum -c`): the files it adds to the
    // bag (index.html) match it, and nothing else was put beside the bag.
    if let Ok(t) = bag.text(SUMS) {
        let tags: BTreeSet<String> = bag
            .text("tagmanifest-sha256.txt")
            .map(|t| parse_manifest(&t).into_iter().flatten().map(|(_, p)| p).collect())
            .unwrap_or_default();
        let mut summed = BTreeSet::new();
        for line in parse_manifest(&t) {
            let Some((want, rel)) = line else {
                add(&mut problems, "manifest", SUMS, format!("{SUMS} holds a line that is not HASH  PATH"));
                continue;
            };
            summed.insert(rel.clone());
            if rel.starts_with("data/") || tags.contains(&rel) {
                continue; // checked against the bag's own manifests below
            }
            match bag.with(&rel, |b| hex::encode(crate::digest::sha256(b))) {
                Ok(got) if got == want => {}
                Ok(_) => add(&mut problems, "modified", &rel, format!("{rel} does not match its SHA-256 in {SUMS}")),
                Err(_) => add(&mut problems, "missing", &rel, format!("{rel} is listed in {SUMS} but missing")),
            }
        }
        for p in present.iter().filter(|p| !p.starts_with("data/") && !tags.contains(*p) && !summed.contains(*p)) {
            if !["bagit.txt", "tagmanifest-sha256.txt", SUMS].contains(&p.as_str()) {
                add(&mut problems, "unexpected", p, format!("{p} is on the medium but in none of its lists (added?)"));
            }
        }
    }

    // Payload: the file set against each manifest, then every digest of the SHA-256 manifest.
    let payload: BTreeSet<String> = present.iter().filter(|p| p.starts_with("data/")).cloned().collect();
    let mut manifests: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    for m in ["manifest-sha256.txt", "manifest-sha512.txt"] {
        let Ok(t) = bag.text(m) else {
            add(&mut problems, "missing", m, format!("{m} is missing"));
            continue;
        };
        let mut entries = BTreeMap::new();
        for line in parse_manifest(&t) {
            match line {
                Some((h, p)) if p.starts_with("data/") && !p.split('/').any(|c| c == "..") => {
                    entries.insert(p, h);
                }
                Some((_, p)) => {
                    add(&mut problems, "manifest", m, format!("{m} lists {p}, which is not a payload file under data/"))
                }
                None => add(&mut problems, "manifest", m, format!("{m} holds a line that is not HASH  PATH")),
            }
        }
        manifests.insert(m, entries);
    }
    let listed: BTreeSet<String> = manifests.values().flat_map(|e| e.keys().cloned()).collect();
    for p in listed.difference(&payload) {
        add(&mut problems, "missing", p, format!("{p} is listed in the manifest but missing from the bundle"));
    }
    for p in payload.difference(&listed) {
        add(&mut problems, "unexpected", p, format!("{p} is in the bundle but in no manifest (added?)"));
    }
    for (m, entries) in &manifests {
        for p in listed.iter().filter(|p| !entries.contains_key(*p) && payload.contains(*p)) {
            add(&mut problems, "manifest", p, format!("{p} is missing from {m}"));
        }
    }
    let sha256 = manifests.get("manifest-sha256.txt").cloned().unwrap_or_default();
    let mut bytes = 0u64;
    let mut verified: BTreeMap<String, String> = BTreeMap::new();
    for (rel, want) in &sha256 {
        if !bag.has(rel) {
            continue;
        }
        let result = bag.with(rel, |b| {
            let (got, crc) = std::thread::scope(|s| {
                let crc = s.spawn(|| bag.crc_ok(rel, b));
                let got = hex::encode(crate::digest::sha256(b));
                (got, crc.join().expect("crc thread"))
            });
            (got, crc, b.len() as u64)
        });
        match result {
            Ok((got, crc, n)) => {
                bytes += n;
                if &got != want {
                    add(
                        &mut problems,
                        "modified",
                        rel,
                        format!("{rel} does not match its SHA-256 in manifest-sha256.txt (it was changed)"),
                    );
                } else if !crc {
                    add(&mut problems, "modified", rel, format!("{rel} fails the archive's own CRC-32 check"));
                } else {
                    verified.insert(rel.clone(), got);
                }
            }
            Err(e) => add(&mut problems, "modified", rel, e),
        }
    }
    if let Some(oxum) = info.get("Payload-Oxum") {
        let actual = format!("{bytes}.{}", sha256.keys().filter(|p| bag.has(p)).count());
        if oxum != &actual && problems.iter().all(|p| p.kind != "missing" && p.kind != "unexpected") {
            add(&mut problems, "oxum", "bag-info.txt", format!("Payload-Oxum says {oxum}, the payload is {actual}"));
        }
    }

    // The ledger excerpt and the items it vouches for.
    let events = match bag.text("data/custody/ledger.jsonl") {
        Ok(t) => ledger_excerpt(&t, head.as_deref(), &mut problems),
        Err(_) => {
            add(&mut problems, "missing", "data/custody/ledger.jsonl", "data/custody/ledger.jsonl is missing".into());
            BTreeMap::new()
        }
    };
    let pushed_events = pushed_chains(bag, &present, &events, &mut problems);
    let mut files = 0;
    match bag.text("data/custody/items.jsonl") {
        Ok(t) => {
            for line in t.lines().filter(|l| !l.trim().is_empty()) {
                let item: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                let path = item.get("path").and_then(|p| p.as_str()).unwrap_or_default();
                let id = item.get("item").and_then(|p| p.as_str()).unwrap_or_default();
                let sha = item.get("sha256").and_then(|p| p.as_str()).unwrap_or_default();
                let seq = item.get("event").and_then(|p| p.as_u64()).unwrap_or(0);
                files += 1;
                let recorded = events
                    .get(&seq)
                    .and_then(|e| e.outputs.iter().find(|o| o.item.as_deref() == Some(id)))
                    .map(|o| o.sha256.clone());
                if recorded.as_deref() != Some(sha) {
                    add(
                        &mut problems,
                        "item",
                        path,
                        format!("{path}: event {seq} does not record item {id} with SHA-256 {sha}"),
                    );
                }
                if let Some(got) = verified.get(path)
                    && got != sha
                {
                    add(
                        &mut problems,
                        "item",
                        path,
                        format!("{path}: its SHA-256 differs from the one the ledger recorded for {id}"),
                    );
                }
            }
        }
        Err(_) => {
            add(&mut problems, "missing", "data/custody/items.jsonl", "data/custody/items.jsonl is missing".into())
        }
    }
    Ok(Outcome { bag: name, files, bytes, events: events.len() + pushed_events, head, problems })
}

/// Check the field chains a bundle carries (`data/custody/pushed/CHAIN.jsonl`, see
/// docs/agency.md): each an excerpt as the ledger's is, ending at the newest head a carried
/// `push` event binds, and recording each field item a push brought with the SHA-256 the push
/// recorded. A carried push event whose chain is not in the bundle is a problem too. Returns
/// how many field events were checked.
fn pushed_chains(
    bag: &Bag,
    present: &BTreeSet<String>,
    events: &BTreeMap<u64, Event>,
    problems: &mut Vec<Finding>,
) -> usize {
    let pushes: Vec<&Event> = events.values().filter(|e| e.action == "push").collect();
    let chain_of = |e: &Event| e.params.get("chain").and_then(|c| c.as_str()).unwrap_or_default().to_owned();
    let mut checked = 0;
    let mut seen = BTreeSet::new();
    for rel in present.iter().filter(|r| r.starts_with(PUSHED_DIR) && r.ends_with(".jsonl")) {
        let chain = rel[PUSHED_DIR.len()..rel.len() - ".jsonl".len()].to_owned();
        seen.insert(chain.clone());
        let mine: Vec<&&Event> = pushes.iter().filter(|e| chain_of(e) == chain).collect();
        let head = mine
            .iter()
            .filter_map(|e| {
                e.params.get("head").and_then(|h| h.as_str()).and_then(|h| h.parse::<crate::ledger::Head>().ok())
            })
            .max_by_key(|h| h.seq);
        let Some(head) = head else {
            add(problems, "ledger", rel, format!("{rel}: no push event in the ledger excerpt binds this field chain"));
            continue;
        };
        let Ok(text) = bag.text(rel) else { continue };
        let field = ledger_excerpt_in(rel, &text, Some(&head.to_string()), problems);
        checked += field.len();
        for push in &mine {
            for out in &push.outputs {
                let origin = out.facts.get("pushed");
                let (Some(seq), Some(item)) = (
                    origin.and_then(|p| p.get("seq")).and_then(|s| s.as_u64()),
                    origin.and_then(|p| p.get("item")).and_then(|i| i.as_str()),
                ) else {
                    continue;
                };
                if let Some(ev) = field.get(&seq)
                    && !ev.outputs.iter().any(|o| o.item.as_deref() == Some(item) && o.sha256 == out.sha256)
                {
                    add(
                        problems,
                        "ledger",
                        rel,
                        format!(
                            "{rel}: field event {seq} does not record field item {item} with the SHA-256 push event {} \
                             recorded for it",
                            push.seq
                        ),
                    );
                }
            }
        }
    }
    for push in pushes {
        let chain = chain_of(push);
        if !seen.contains(&chain) && push.outputs.iter().any(|o| o.item.is_some()) {
            add(
                problems,
                "missing",
                &format!("{PUSHED_DIR}{chain}.jsonl"),
                format!("event {} binds field chain {chain}, which the bundle does not carry", push.seq),
            );
        }
    }
    checked
}

/// Where a bundle carries the field chains its pushed items came from.
pub const PUSHED_DIR: &str = "data/custody/pushed/";

/// Check a bundle's ledger excerpt (`data/custody/ledger.jsonl`): every line an event whose
/// canonical form has the hash beside it, or an omitted event's stub; numbered without gaps;
/// each linked to the one before; ending at `head`. Problems are added to `problems`; the
/// events read are returned by number.
pub fn ledger_excerpt(t: &str, head: Option<&str>, problems: &mut Vec<Finding>) -> BTreeMap<u64, Event> {
    ledger_excerpt_in("data/custody/ledger.jsonl", t, head, problems)
}

/// [`ledger_excerpt`] of the excerpt in bag file `file`.
fn ledger_excerpt_in(file: &str, t: &str, head: Option<&str>, problems: &mut Vec<Finding>) -> BTreeMap<u64, Event> {
    let mut events: BTreeMap<u64, Event> = BTreeMap::new();
    let (mut prev, mut seq) = (crate::ledger::event::GENESIS_PREV.to_owned(), 0u64);
    for (n, line) in t.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                add(problems, "ledger", file, format!("{file} line {n} is not JSON: {e}"));
                continue;
            }
        };
        if let Some(stub) = v.get("omitted") {
            let s = stub.get("seq").and_then(|s| s.as_u64()).unwrap_or(0);
            if s != seq + 1 {
                add(
                    problems,
                    "ledger",
                    &format!("event {s}"),
                    format!("{file} line {n}: event {s} follows event {seq}"),
                );
            }
            prev = stub.get("hash").and_then(|h| h.as_str()).unwrap_or_default().to_owned();
            seq = s;
            continue;
        }
        let (Some(body), Some(hash)) = (v.get("event"), v.get("hash").and_then(|h| h.as_str())) else {
            add(problems, "ledger", file, format!("{file} line {n} is neither an event nor an omitted one"));
            continue;
        };
        // An event in full, or (in a release) its committed form, whose withheld members read
        // as "(withheld)" once checked.
        let ev: Event = match serde_json::from_value(private::shown(body)) {
            Ok(e) => e,
            Err(e) => {
                add(problems, "ledger", file, format!("{file} line {n}: not an event: {e}"));
                continue;
            }
        };
        let subject = format!("event {}", ev.seq);
        match private::committed(body.clone()) {
            Ok(committed) => match canonical::encode(&committed) {
                Ok(bytes) if event_hash(&bytes) == hash => {}
                _ => add(
                    problems,
                    "ledger",
                    &subject,
                    format!("{file} line {n}: {subject} does not match its hash: it was edited"),
                ),
            },
            Err(e) => add(problems, "ledger", &subject, format!("{file} line {n}: {subject}: {e}")),
        }
        if ev.seq != seq + 1 {
            add(
                problems,
                "ledger",
                &subject,
                format!("{file} line {n}: {subject} follows event {seq}: events missing or reordered"),
            );
        }
        if ev.prev != prev {
            add(
                problems,
                "ledger",
                &subject,
                format!("{file} line {n}: {subject} does not link to the event before it"),
            );
        }
        prev = hash.to_owned();
        seq = ev.seq;
        events.insert(ev.seq, ev);
    }
    let end = format!("{seq}:{prev}");
    if head != Some(end.as_str()) {
        add(
            problems,
            "ledger",
            if file == "data/custody/ledger.jsonl" { "bag-info.txt" } else { file },
            format!(
                "the ledger excerpt {file} ends at {end}, not at the head {} ({})",
                if file == "data/custody/ledger.jsonl" { "bag-info.txt states" } else { "its push event binds" },
                head.unwrap_or("none")
            ),
        );
    }
    events
}
