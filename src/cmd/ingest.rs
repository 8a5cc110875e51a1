//! `custody ingest`: take files into custody as verified, write-once copies.
//!
//! The source is opened read-only (without touching its access time where the kernel allows),
//! read exactly once while both digests are computed and the copy is written, and checked
//! before and after for any change. The copy is read back and verified before anything is
//! recorded. Files FFmpeg cannot open are evidence all the same: they are stored and marked
//! not decodable with FFmpeg's reason.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::BufRead;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use jiff::civil::DateTime;
use serde_json::{Map, Value, json};

use super::{Ctx, Report, byte_progress, head_line, human_size};
use crate::cli::IngestArgs;
use crate::error;
use crate::fsutil::{self, path_text};
use crate::item::validate_id;
use crate::ledger::{Draft, FileRef};
use crate::media::probe;
use crate::media::time::{ClockOffset, Zone, format_civil, parse_civil, start_in_name};

/// One thing found under the paths given.
enum Found {
    File { path: PathBuf, name: String, size: u64, dev: u64, ino: u64 },
    Symlink { name: String, target: String },
    Skipped { path: PathBuf, name: String, kind: &'static str },
}

pub fn run(args: IngestArgs, ctx: &Ctx) -> Result<Report> {
    // Everything the user typed is checked before anything is opened or written.
    validate_id("case number", &args.case)?;
    validate_id("item number", &args.item)?;
    let clock = match (&args.dvr_time, &args.actual_time, &args.clock_offset) {
        (Some(d), Some(a), None) => Some(ClockOffset::from_observation(d, a, args.time_reference.clone())?),
        (None, None, Some(o)) => Some(ClockOffset::from_offset(o, args.time_reference.clone())?),
        (None, None, None) if args.time_reference.is_some() => {
            return Err(error::input("--time-reference needs --dvr-time and --actual-time, or --clock-offset"));
        }
        _ => None,
    };
    let zone = args.timezone.as_deref().map(|z| Zone::parse(z).map_err(|e| e.context("--timezone"))).transpose()?;
    let mut starts = Starts::parse(&args.recording_start)?;
    if let Some(t) = starts.all {
        check_start(t, clock.as_ref(), zone.as_ref(), "--recording-start")?;
    }
    for given in &starts.files {
        check_start(given.start, clock.as_ref(), zone.as_ref(), &format!("--recording-start {}", given.text))?;
    }
    let recording_start = starts.all;

    // A first walk checks the tree and sizes the progress bar; the second, below, ingests.
    // Neither keeps the list of paths, so memory does not grow with the number of files.
    // Names can only clash between paths given whose last components are equal (a file is
    // named by its file name, a directory's files by the directory's name and their path in
    // it): only their names are collected to look for a clash.
    let tops: Vec<PathBuf> = args.paths.iter().map(|p| top_name(p)).collect();
    let mut names = BTreeSet::new();
    let (mut file_count, mut total) = (0u64, 0u64);
    for (i, path) in args.paths.iter().enumerate() {
        let shared = tops.iter().enumerate().any(|(j, t)| j != i && *t == tops[i]);
        walk(path, &mut |f| {
            if let Found::File { size, path, name, .. } = &f {
                file_count += 1;
                total += size;
                starts.count_matches(name, path);
            }
            let name = match f {
                Found::File { name, .. } | Found::Symlink { name, .. } | Found::Skipped { name, .. } => name,
            };
            if shared && !names.insert(name.clone()) {
                return Err(error::input(format!(
                    "two of the paths given would both be named {name:?} in exhibit {}:{}; ingest them as separate items",
                    args.case, args.item
                )));
            }
            Ok(())
        })?;
    }
    drop(names);
    starts.check_matches()?;
    if file_count == 0 {
        let given = args.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        return Err(error::input(format!(
            "{given}: no files to ingest (only directories, links or special files); nothing was recorded"
        )));
    }

    let store = ctx.store()?;
    let mut ledger = store.open_ledger()?;
    let actor = ctx.actor();
    let bar = byte_progress(total, "ingesting");
    let mut staging = store.stage()?;

    // Copy, digest and verify every file; hard links are read once. Each file's ledger entry
    // (its item ID still to be given) and report line go to a spool file in the staging
    // directory as soon as the file is verified, so memory stays the same however many files
    // there are; the events are written from the spool at commit.
    let spool_path = staging.scratch("jsonl");
    let mut spool = std::io::BufWriter::new(
        fs::File::create_new(&spool_path)
            .map_err(|e| error::environment(format!("cannot create {}: {e}", spool_path.display())))?,
    );
    let spool_error = |e: std::io::Error| error::environment(format!("cannot write {}: {e}", spool_path.display()));
    let mut tally = Tally::default();
    // Files with more than one link, by inode: a later name is the same object.
    let mut linked: HashMap<(u64, u64), Spooled> = HashMap::new();
    let (mut links, mut skipped): (Vec<Value>, Vec<(PathBuf, &'static str)>) = (Vec::new(), Vec::new());
    let mut skipped_names: Vec<Value> = Vec::new();
    // Media files that share the one --recording-start, and those whose names hold no start.
    let (mut shared_start, mut unnamed): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    let mut ingest_one = |f: Found| -> Result<()> {
        let (path, name, dev, ino) = match f {
            Found::File { path, name, dev, ino, .. } => (path, name, dev, ino),
            Found::Symlink { name, target } => {
                links.push(json!({"name": name, "target": target}));
                return Ok(());
            }
            Found::Skipped { path, name, kind } => {
                skipped_names.push(json!({"name": name, "kind": kind}));
                skipped.push((path, kind));
                return Ok(());
            }
        };
        let (path, dev, ino) = (&path, &dev, &ino);
        let label = path.display().to_string();
        if let Some(first) = linked.get(&(*dev, *ino)) {
            let first_name = first.entry.name.clone().unwrap_or_default();
            let mut entry = first.entry.clone();
            entry.name = Some(name.clone());
            source_facts(&mut entry.facts, path, None);
            entry.facts.insert("hardlink_of".into(), json!(first_name));
            start_facts(&mut entry.facts, starts.for_file(&name, path, first.decodable));
            let dup = Spooled { entry, hardlink_of: Some(first_name), ..first.clone() };
            tally.add(&dup);
            spool_line(&mut spool, &dup).map_err(spool_error)?;
            return Ok(());
        }
        let file = fsutil::open_source(path).map_err(|e| source_error(path, &e))?;
        let before = file.metadata().map_err(|e| source_error(path, &e))?;
        let was_changed = || {
            let after = file.metadata().map_err(|e| source_error(path, &e))?;
            let now = fs::symlink_metadata(path).map_err(|e| source_error(path, &e))?;
            Ok::<_, anyhow::Error>(changed(&before, &after) || now.ino() != before.ino() || now.dev() != before.dev())
        };
        let changed_error = || {
            error::input(format!(
                "{label} changed while it was being copied (size, modification time or identity); nothing was recorded. \
                 Make sure nothing writes to the source (mount it read-only) and run the command again"
            ))
        };
        let staged = match staging.copy_file(&store, &file, &label, &args.also, &|n| bar.inc(n)) {
            Ok(staged) => staged,
            // A source cut short or rewritten under the copy fails the copy in several ways (a
            // read error, a short kernel copy, a read-back mismatch): say what happened.
            Err(_) if was_changed()? => return Err(changed_error()),
            Err(e) => return Err(e),
        };
        if was_changed()? {
            return Err(changed_error());
        }
        if staged.digests.size != before.len() {
            return Err(error::input(format!(
                "{label}: read {} bytes but the file is {} bytes long; nothing was recorded. Check the source media",
                staged.digests.size,
                before.len()
            )));
        }
        // FFmpeg reads the verified copy; its messages name the file as the user gave it.
        crate::media::log::name(&staged.location, &crate::item::shown(&label));
        let media = probe::probe(&staged.location, args.deep);
        let mut facts = Map::new();
        source_facts(&mut facts, path, Some(json!(mtime_text(&before))));
        facts.insert("acquisition".into(), json!(if staged.existed { "existing object" } else { "new object" }));
        for algo in &args.also {
            if let Some(hex) = staged.digests.get(*algo) {
                facts.insert(algo.name().into(), json!(hex));
            }
        }
        facts.insert("media".into(), serde_json::to_value(&media)?);
        let start = starts.for_file(&name, path, media.decodable);
        if let Some(s) = &start {
            check_start(s.start, clock.as_ref(), zone.as_ref(), &format!("{label}: its recording start {}", s.said()))?;
        }
        if media.decodable {
            match &start {
                None if starts.from_name => unnamed.push(name.clone()),
                None if starts.all.is_some() => shared_start.push(name.clone()),
                _ => {}
            }
        }
        start_facts(&mut facts, start);
        let spooled = Spooled {
            entry: FileRef {
                item: None,
                name: Some(name.clone()),
                sha256: staged.digests.sha256().to_owned(),
                blake3: staged.digests.blake3().to_owned(),
                size: staged.digests.size,
                facts,
            },
            existed: staged.existed,
            hardlink_of: None,
            summary: media.summary(),
            decodable: media.decodable,
            kind_note: (!media.decodable).then(|| undecodable_note(path)),
        };
        tally.add(&spooled);
        spool_line(&mut spool, &spooled).map_err(spool_error)?;
        if before.nlink() > 1 {
            linked.insert((*dev, *ino), spooled);
        }
        Ok(())
    };
    for path in &args.paths {
        walk(path, &mut ingest_one)?;
    }
    bar.finish_and_clear();
    if tally.files == 0 {
        return Err(error::input(format!(
            "the files under {} went away while they were being ingested; nothing was recorded",
            args.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )));
    }
    drop(linked);
    spool.into_inner().map_err(|e| spool_error(e.into_error()))?;

    let mut params = Map::new();
    params.insert("paths".into(), json!(args.paths.iter().map(|p| path_text(&absolute(p))).collect::<Vec<_>>()));
    params.insert("source".into(), json!(args.source));
    params.insert("clock".into(), serde_json::to_value(&clock)?);
    params.insert("recording_start".into(), json!(recording_start.map(format_civil)));
    let per_file: Vec<&String> =
        args.recording_start.iter().filter(|v| v.contains('=') || v.trim() == FROM_NAME).collect();
    if !per_file.is_empty() {
        params.insert("recording_start_per_file".into(), json!(per_file));
    }
    if let Some(z) = &zone {
        params.insert("timezone".into(), json!(z.name));
    }
    params.insert("deep".into(), json!(args.deep));
    params.insert("also".into(), json!(args.also.iter().map(|a| a.name()).collect::<Vec<_>>()));
    params.insert("symlinks".into(), json!(links));
    params.insert("skipped".into(), json!(skipped_names));

    // One event per FILES_PER_EVENT files, all in one transaction: every file is recorded, or
    // none is. The spool is read twice: for the events, then (after the commit) for the report.
    let spool_read_error = |e: std::io::Error| error::environment(format!("cannot read {}: {e}", spool_path.display()));
    let open_spool = || fs::File::open(&spool_path).map(std::io::BufReader::new).map_err(spool_read_error);
    // A name the exhibit already holds is refused before anything is stored: a bucket's objects
    // go up before the event (and stay, under retention). The transaction checks again.
    let held: std::collections::HashMap<String, String> =
        ledger.items_in_exhibit(&args.case, &args.item)?.into_iter().map(|r| (r.name, r.id)).collect();
    for line in open_spool()?.lines() {
        let entry = serde_json::from_str::<Spooled>(&line.map_err(spool_read_error)?)?.entry;
        let name = entry.name.as_deref().unwrap_or_default();
        if let Some(existing) = held.get(name) {
            return Err(error::input(format!(
                "exhibit {}:{} already holds a file named {name:?} (item {existing}); nothing was recorded. \
                 Use another --item for a new acquisition",
                args.case, args.item
            )));
        }
    }
    let mut entries = open_spool()?.lines();
    let report_spool = open_spool()?;
    let parts = tally.files.div_ceil(FILES_PER_EVENT);
    let (case, exhibit) = (&args.case, &args.item);
    let mut ids: Vec<String> = Vec::with_capacity(tally.files);
    let mut part = 0;
    let (head, _) = store.commit_each(&mut ledger, &actor, staging, |txn| {
        let mut outputs = Vec::new();
        while outputs.len() < FILES_PER_EVENT {
            let Some(line) = entries.next() else { break };
            let line = line.map_err(spool_read_error)?;
            let mut entry = serde_json::from_str::<Spooled>(&line)?.entry;
            let name = entry.name.as_deref().unwrap_or_default();
            if let Some(existing) = txn.item_named(case, exhibit, name)? {
                return Err(error::input(format!(
                    "exhibit {case}:{exhibit} already holds a file named {name:?} (item {existing}); nothing was recorded. \
                     Use another --item for a new acquisition"
                )));
            }
            let id = txn.new_item_id();
            ids.push(id.clone());
            entry.item = Some(id);
            outputs.push(entry);
        }
        if outputs.is_empty() {
            return Ok(None);
        }
        part += 1;
        let mut params = params.clone();
        if parts > 1 {
            params.insert("part".into(), json!([part, parts]));
        }
        Ok(Some(Draft {
            action: "ingest".into(),
            case: Some(case.clone()),
            exhibit: Some(exhibit.clone()),
            inputs: Vec::new(),
            outputs,
            params,
            note: args.note.clone(),
        }))
    })?;

    // The report: every file when there are few, a summary when there are many.
    let mut text = format!(
        "Ingested {} file{} ({}) into exhibit {}:{}; every copy verified by reading it back.\n",
        tally.files,
        if tally.files == 1 { "" } else { "s" },
        human_size(tally.bytes),
        args.case,
        args.item
    );
    let mut items_json = Vec::new();
    let listed = if tally.files <= LIST_ALL { tally.files } else { LIST_FIRST };
    for (n, line) in report_spool.lines().enumerate() {
        if n >= listed && !ctx.json {
            break;
        }
        let line = line.map_err(spool_read_error)?;
        let c: Spooled = serde_json::from_str(&line)?;
        let out = &c.entry;
        let id = ids.get(n).cloned().unwrap_or_default();
        let name = out.name.as_deref().unwrap_or_default();
        if n < listed {
            text.push_str(&format!(
                "  {id:<5} {}  sha256 {}  {}\n        {}",
                crate::item::shown(name),
                out.sha256,
                human_size(out.size),
                c.summary
            ));
            if c.existed {
                text.push_str(
                    "\n        (these exact bytes were already in the store: recorded as a new acquisition, stored once)",
                );
            }
            if let Some(first) = &c.hardlink_of {
                text.push_str(&format!("\n        (hard link to {first}: one object, two names)"));
            }
            if !c.decodable {
                text.push_str(&format!(
                    "\n        kept as evidence exactly as it is{}",
                    c.kind_note.as_deref().unwrap_or("")
                ));
            }
            if let Some(start) = out.facts.get("recording_start").and_then(Value::as_str) {
                let from = match out.facts.get("recording_start_in_name").and_then(Value::as_str) {
                    Some(part) => format!("read from its name ({part})"),
                    None => "given for this file".to_owned(),
                };
                text.push_str(&format!("\n        recording start {start} on the DVR clock, {from}"));
            }
            text.push('\n');
        }
        if ctx.json {
            let (start, from) = match out.facts.get("recording_start") {
                Some(s) => (Some(s.clone()), out.facts.get("recording_start_from").cloned()),
                None => (
                    recording_start.map(|t| json!(format_civil(t))),
                    recording_start.map(|_| json!("--recording-start")),
                ),
            };
            items_json.push(json!({
                "id": id, "name": name, "sha256": out.sha256, "blake3": out.blake3,
                "size": out.size, "existing_object": c.existed, "hardlink_of": c.hardlink_of,
                "decodable": c.decodable, "media": out.facts.get("media"),
                "recording_start": start, "recording_start_from": from,
                "recording_start_in_name": out.facts.get("recording_start_in_name"),
            }));
        }
    }
    if listed < tally.files {
        text.push_str(&format!(
            "  … and {} more files, items {} to {}: `custody log --case {}` lists every file, --json prints them all\n",
            tally.files - listed,
            ids.get(listed).map(String::as_str).unwrap_or_default(),
            ids.last().map(String::as_str).unwrap_or_default(),
            args.case
        ));
        text.push_str(&format!(
            "  in all: {} new object{}, {} already in the store, {} hard link{}; {} not decodable by FFmpeg \
             (kept as evidence exactly as {})\n",
            tally.new_objects,
            if tally.new_objects == 1 { "" } else { "s" },
            tally.existing,
            tally.hardlinks,
            if tally.hardlinks == 1 { "" } else { "s" },
            tally.undecodable,
            if tally.undecodable == 1 { "it is" } else { "they are" },
        ));
    }
    if parts > 1 {
        text.push_str(&format!(
            "Recorded as {parts} consecutive ingest events of up to {FILES_PER_EVENT} files each, in one transaction.\n"
        ));
    }
    for link in &links {
        text.push_str(&format!(
            "  link  {} -> {} (recorded, not followed)\n",
            link["name"].as_str().unwrap_or_default(),
            link["target"].as_str().unwrap_or_default()
        ));
    }
    for (path, kind) in &skipped {
        let shown = crate::item::shown(&path.to_string_lossy()).into_owned();
        eprintln!("warning: skipped {shown} ({kind}): not a regular file");
        text.push_str(&format!("  skip  {shown} ({kind})\n"));
    }
    if let Some(c) = &clock {
        let described = c.describe();
        let side = described.trim_start_matches("DVR clock ");
        let line = match side.split_once(" (reference: ") {
            Some((side, reference)) => format!("{side}, offset {} (reference: {reference}", c.offset),
            None => format!("{side}, offset {}", c.offset),
        };
        text.push_str(&format!("DVR clock: {line}\n"));
    }
    if let Some(z) = &zone {
        text.push_str(&format!("DVR time zone: {}\n", z.name));
    }
    if let Some(t) = recording_start {
        let corrected = crate::media::index::Timeline {
            recording_start: Some(t),
            clock: clock.clone(),
            timezone: zone.as_ref().map(|z| z.name.clone()),
            first_frame_us: 0,
        }
        .wall_at(0);
        text.push_str(&format!(
            "Recording start: {} on the DVR clock{}\n",
            format_civil(t),
            corrected.map(|c| format!(", {c} corrected")).unwrap_or_default()
        ));
    }
    if shared_start.len() > 1 {
        let warning = format!(
            "--recording-start {} applies to all {} media files of this ingest ({}); if they did not all start then, \
             give each its own (--recording-start FILE=TIME) or read them from their names (--recording-start from-name)",
            format_civil(recording_start.expect("a start shared")),
            shared_start.len(),
            some_names(&shared_start)
        );
        eprintln!("warning: {warning}");
        text.push_str(&format!("warning: {warning}\n"));
    }
    if !unnamed.is_empty() {
        let warning = format!(
            "no recording start in the name of {} media file{} ({}): none is recorded for {}; \
             give it with --recording-start FILE=TIME",
            unnamed.len(),
            if unnamed.len() == 1 { "" } else { "s" },
            some_names(&unnamed),
            if unnamed.len() == 1 { "it" } else { "them" }
        );
        eprintln!("warning: {warning}");
        text.push_str(&format!("warning: {warning}\n"));
    }
    text.push_str(&head_line(&head));
    let json = json!({
        "schema_version": 1, "command": "ingest", "case": args.case, "exhibit": args.item,
        "items": items_json, "symlinks": links, "skipped": skipped_names, "clock": clock,
        "timezone": zone.as_ref().map(|z| z.name.clone()), "recording_start": recording_start.map(format_civil),
        "head": head,
    });
    Ok(Report::ok(text, json))
}

/// `--recording-start from-name`.
const FROM_NAME: &str = "from-name";

/// The recording starts an ingest was given (`--recording-start`).
#[derive(Default)]
struct Starts {
    /// `T`: every file's (recorded in the event's parameters, as before per-file starts).
    all: Option<DateTime>,
    /// `from-name`: each media file's, read from its name (recorded with the file).
    from_name: bool,
    /// `FILE=T`: one file's each (recorded with the file).
    files: Vec<GivenStart>,
}

struct GivenStart {
    file: String,
    start: DateTime,
    /// `FILE=T` as typed.
    text: String,
    /// The names of the files it names (the first walk fills them in).
    matched: Vec<String>,
}

/// Where one file's own recording start came from.
struct FileStart {
    start: DateTime,
    /// The part of the file's name it was read from (`from-name`); None when given.
    in_name: Option<String>,
}

impl FileStart {
    fn said(&self) -> String {
        match &self.in_name {
            Some(part) => format!("{} (read from {part:?} in its name)", format_civil(self.start)),
            None => format_civil(self.start),
        }
    }
}

impl Starts {
    fn parse(values: &[String]) -> Result<Starts> {
        let mut starts = Starts::default();
        for v in values {
            if v.trim() == FROM_NAME {
                starts.from_name = true;
            } else if let Some((file, t)) = v.rsplit_once('=') {
                if file.is_empty() {
                    return Err(error::input(format!(
                        "--recording-start {v:?}: name the file before the =, FILE=TIME"
                    )));
                }
                let start = parse_civil(&format!("--recording-start {file}="), t)?;
                starts.files.push(GivenStart { file: file.to_owned(), start, text: v.clone(), matched: Vec::new() });
            } else if starts.all.is_some() {
                return Err(error::input(
                    "--recording-start TIME is given twice: give it once for every file, or FILE=TIME for each file",
                ));
            } else {
                starts.all = Some(parse_civil("--recording-start", v)?);
            }
        }
        if starts.from_name && starts.all.is_some() {
            return Err(error::input(
                "--recording-start from-name and a start for every file exclude each other: \
                 give FILE=TIME for the files whose names hold no start",
            ));
        }
        Ok(starts)
    }

    /// First walk: note which files each `FILE=T` names.
    fn count_matches(&mut self, name: &str, path: &Path) {
        for given in &mut self.files {
            if names_file(&given.file, name, path) {
                given.matched.push(name.to_owned());
            }
        }
    }

    /// Every `FILE=T` must name exactly one file of the ingest.
    fn check_matches(&self) -> Result<()> {
        for given in &self.files {
            match given.matched.len() {
                1 => {}
                0 => {
                    return Err(error::input(format!(
                        "--recording-start {}: no file of this ingest is named {:?}; name it as the ingest report lists \
                         it (DIR/CH01/a.avi), by its path, or by its file name",
                        given.text, given.file
                    )));
                }
                _ => {
                    return Err(error::input(format!(
                        "--recording-start {}: {:?} names {} files ({}); write more of its path",
                        given.text,
                        given.file,
                        given.matched.len(),
                        some_names(&given.matched)
                    )));
                }
            }
        }
        Ok(())
    }

    /// The file's own start: given for it, else read from its name (media files, with
    /// `from-name`). None: the event's start for every file applies, if any.
    fn for_file(&self, name: &str, path: &Path, media: bool) -> Option<FileStart> {
        if let Some(given) = self.files.iter().find(|g| names_file(&g.file, name, path)) {
            return Some(FileStart { start: given.start, in_name: None });
        }
        if self.from_name && media {
            let file_name = name.rsplit('/').next().unwrap_or(name);
            return start_in_name(file_name).map(|(start, part)| FileStart { start, in_name: Some(part) });
        }
        None
    }
}

/// True when `file` (from `--recording-start FILE=T`) names the file `name` (its name in the
/// exhibit) found at `path`: the whole name or its last components, or its path.
fn names_file(file: &str, name: &str, path: &Path) -> bool {
    name == file
        || name.strip_suffix(file).is_some_and(|head| head.ends_with('/'))
        || absolute(Path::new(file)) == absolute(path)
}

/// A file's own recording start, in its facts.
fn start_facts(facts: &mut Map<String, Value>, start: Option<FileStart>) {
    for key in ["recording_start", "recording_start_from", "recording_start_in_name"] {
        facts.remove(key);
    }
    if let Some(s) = start {
        facts.insert("recording_start".into(), json!(format_civil(s.start)));
        let from = if s.in_name.is_some() { "file name" } else { "--recording-start FILE=TIME" };
        facts.insert("recording_start_from".into(), json!(from));
        if let Some(part) = s.in_name {
            facts.insert("recording_start_in_name".into(), json!(part));
        }
    }
}

/// With a named zone, the corrected start must be a time the zone's clocks showed once.
fn check_start(start: DateTime, clock: Option<&ClockOffset>, zone: Option<&Zone>, what: &str) -> Result<()> {
    let (Some(clock), Some(zone)) = (clock, zone) else { return Ok(()) };
    let corrected = clock.correct(start);
    zone.instant(corrected).map(drop).map_err(|a| {
        error::input(format!(
            "{what}: corrected, {}; give --timezone as the fixed UTC offset the DVR's clock kept then",
            a.describe(corrected, zone)
        ))
    })
}

/// The first few of `names`, for a message.
fn some_names(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = names.iter().take(SHOWN).map(|n| crate::item::shown(n)).collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(", … {} more", names.len() - SHOWN));
    }
    text
}

/// Files recorded per ingest event. A larger ingest is recorded as consecutive events in one
/// transaction, so no event (and no ledger row) grows without bound.
pub const FILES_PER_EVENT: usize = 1000;
/// Up to this many files, the report lists every one; beyond it, the first [`LIST_FIRST`].
const LIST_ALL: usize = 100;
const LIST_FIRST: usize = 10;

/// One verified file waiting for its event: its ledger entry and what the report says of it.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Spooled {
    entry: FileRef,
    existed: bool,
    hardlink_of: Option<String>,
    summary: String,
    /// What a file FFmpeg cannot read seems to be, for the report.
    #[serde(default)]
    kind_note: Option<String>,
    decodable: bool,
}

fn spool_line(spool: &mut impl std::io::Write, s: &Spooled) -> std::io::Result<()> {
    serde_json::to_writer(&mut *spool, s)?;
    spool.write_all(b"\n")
}

/// Counts for the report.
#[derive(Default)]
struct Tally {
    files: usize,
    bytes: u64,
    new_objects: usize,
    existing: usize,
    hardlinks: usize,
    undecodable: usize,
}

impl Tally {
    fn add(&mut self, s: &Spooled) {
        self.files += 1;
        if s.hardlink_of.is_some() {
            self.hardlinks += 1;
        } else {
            self.bytes += s.entry.size;
            if s.existed {
                self.existing += 1;
            } else {
                self.new_objects += 1;
            }
        }
        if !s.decodable {
            self.undecodable += 1;
        }
    }
}

/// Where a file came from: its absolute path (and its bytes in hex when the name is not UTF-8)
/// and its modification time.
fn source_facts(facts: &mut Map<String, Value>, path: &Path, mtime: Option<Value>) {
    facts.insert("source_path".into(), json!(path_text(&absolute(path))));
    if fsutil::path_is_utf8(path) {
        facts.remove("source_path_hex");
    } else {
        facts.insert("source_path_hex".into(), json!(hex::encode(path.as_os_str().as_encoded_bytes())));
    }
    if let Some(m) = mtime {
        facts.insert("source_mtime".into(), m);
    }
}

/// The name a path given on the command line contributes: a file's file name, a directory's
/// name (its files are named by it and their path within it).
fn top_name(path: &Path) -> PathBuf {
    let base = absolute(path);
    base.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("root"))
}

/// Visit what is under a path given, in name order, without following symlinks.
fn walk(path: &Path, visit: &mut dyn FnMut(Found) -> Result<()>) -> Result<()> {
    let meta = fs::symlink_metadata(path).map_err(|e| source_error(path, &e))?;
    if meta.is_dir() {
        walk_dir(path, &top_name(path), visit)
    } else {
        let name = path.file_name().map(PathBuf::from).unwrap_or_else(|| path.to_owned());
        classify(path, &name, &meta, visit)
    }
}

fn walk_dir(dir: &Path, rel: &Path, visit: &mut dyn FnMut(Found) -> Result<()>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| source_error(dir, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| source_error(dir, &e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = rel.join(entry.file_name());
        let meta = fs::symlink_metadata(&path).map_err(|e| source_error(&path, &e))?;
        if meta.is_dir() {
            walk_dir(&path, &name, visit)?;
        } else {
            classify(&path, &name, &meta, visit)?;
        }
    }
    Ok(())
}

fn classify(path: &Path, name: &Path, meta: &fs::Metadata, visit: &mut dyn FnMut(Found) -> Result<()>) -> Result<()> {
    let name_text = path_text(name);
    let ft = meta.file_type();
    if ft.is_file() {
        visit(Found::File {
            path: path.to_owned(),
            name: name_text,
            size: meta.len(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    } else if ft.is_symlink() {
        let target = fs::read_link(path).map_err(|e| source_error(path, &e))?;
        visit(Found::Symlink { name: name_text, target: path_text(&target) })
    } else {
        visit(Found::Skipped { path: path.to_owned(), name: name_text, kind: fsutil::special_kind(&ft) })
    }
}

fn changed(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    a.len() != b.len()
        || a.mtime() != b.mtime()
        || a.mtime_nsec() != b.mtime_nsec()
        || a.ctime() != b.ctime()
        || a.ctime_nsec() != b.ctime_nsec()
}

fn mtime_text(meta: &fs::Metadata) -> String {
    jiff::Timestamp::new(meta.mtime(), meta.mtime_nsec() as i32)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

fn source_error(path: &Path, e: &std::io::Error) -> anyhow::Error {
    let what = match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_owned(),
        std::io::ErrorKind::PermissionDenied => "cannot be read (permission denied)".to_owned(),
        _ => format!("cannot be read ({e})"),
    };
    if e.raw_os_error() == Some(libc::EIO) {
        return error::environment(format!("{} {what}; nothing was recorded. Check the source media", path.display()));
    }
    error::input(format!("{} {what}; nothing was recorded", path.display()))
}

/// What a file FFmpeg cannot read seems to be, in a few words for the report: text is not
/// "proprietary video", and a vendor's container may need the vendor's player.
fn undecodable_note(path: &Path) -> String {
    let mut head = [0u8; 4096];
    // Opened as the copy was: a source's access time must not change.
    let n = crate::fsutil::open_source(path).and_then(|mut f| std::io::Read::read(&mut f, &mut head)).unwrap_or(0);
    let head = &head[..n];
    let text = n > 0
        && std::str::from_utf8(head).map_or_else(|e| e.valid_up_to() + 4 >= n, |_| true)
        && head.iter().all(|&b| b >= 0x20 || matches!(b, b'\n' | b'\r' | b'\t' | 0x0c));
    if n == 0 {
        " (an empty file)".to_owned()
    } else if text {
        " (a text file: FFmpeg reads media only)".to_owned()
    } else {
        " (not a format FFmpeg knows: proprietary video may need the vendor's player)".to_owned()
    }
}
