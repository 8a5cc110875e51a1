//! `custody ingest`: take files into custody as verified, write-once copies.
//!
//! The source is opened read-only (without touching its access time where the kernel allows),
//! read exactly once while both digests are computed and the copy is written, and checked
//! before and after for any change. The copy is read back and verified before anything is
//! recorded. Files FFmpeg cannot open are evidence all the same: they are stored and marked
//! not decodable with FFmpeg's reason.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::{Map, Value, json};

use super::{Ctx, Report, byte_progress, head_line, human_size};
use crate::cli::IngestArgs;
use crate::error;
use crate::fsutil::{self, path_text};
use crate::item::validate_id;
use crate::ledger::{Draft, FileRef};
use crate::media::probe::{self, MediaFacts};
use crate::media::time::{ClockOffset, format_civil, parse_civil};

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
    let recording_start = args.recording_start.as_deref().map(|t| parse_civil("--recording-start", t)).transpose()?;

    let found = walk(&args.paths)?;
    let files: Vec<&Found> = found.iter().filter(|f| matches!(f, Found::File { .. })).collect();
    if files.is_empty() {
        let given = args.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        return Err(error::input(format!(
            "{given}: no files to ingest (only directories, links or special files); nothing was recorded"
        )));
    }
    let mut names = BTreeSet::new();
    for f in &found {
        let name = match f {
            Found::File { name, .. } | Found::Symlink { name, .. } | Found::Skipped { name, .. } => name,
        };
        if !names.insert(name.clone()) {
            return Err(error::input(format!(
                "two of the paths given would both be named {name:?} in exhibit {}:{}; ingest them as separate items",
                args.case, args.item
            )));
        }
    }

    let store = ctx.store()?;
    let mut ledger = store.open_ledger()?;
    let actor = ctx.actor();
    let total: u64 = files.iter().map(|f| if let Found::File { size, .. } = f { *size } else { 0 }).sum();
    let bar = byte_progress(total, "ingesting");
    let mut staging = store.stage()?;

    // Copy, digest and verify every file; hard links are read once.
    struct Copied {
        name: String,
        source: PathBuf,
        digests: crate::digest::Digests,
        existed: bool,
        media: MediaFacts,
        mtime: String,
        hardlink_of: Option<String>,
        utf8: bool,
    }
    let mut copied: Vec<Copied> = Vec::new();
    let mut by_inode: HashMap<(u64, u64), usize> = HashMap::new();
    for f in &files {
        let Found::File { path, name, dev, ino, .. } = f else { continue };
        let label = path.display().to_string();
        if let Some(&first) = by_inode.get(&(*dev, *ino)) {
            let c = &copied[first];
            let dup = Copied {
                name: name.clone(),
                source: path.clone(),
                digests: c.digests.clone(),
                existed: c.existed,
                media: c.media.clone(),
                mtime: c.mtime.clone(),
                hardlink_of: Some(c.name.clone()),
                utf8: fsutil::path_is_utf8(path),
            };
            copied.push(dup);
            continue;
        }
        let mut file = fsutil::open_source(path).map_err(|e| source_error(path, &e))?;
        let before = file.metadata().map_err(|e| source_error(path, &e))?;
        // The copy itself is made by the kernel from the same file (see Staging::write_from).
        let in_kernel = file.try_clone().map_err(|e| source_error(path, &e))?;
        let staged = {
            let mut reader = Progress { inner: &mut file, bar: &bar };
            staging.write_from(&store, &mut reader, &label, &args.also, Some(&in_kernel))?
        };
        let after = file.metadata().map_err(|e| source_error(path, &e))?;
        let now = fs::symlink_metadata(path).map_err(|e| source_error(path, &e))?;
        if changed(&before, &after) || now.ino() != before.ino() || now.dev() != before.dev() {
            return Err(error::input(format!(
                "{label} changed while it was being copied (size, modification time or identity); nothing was recorded. \
                 Make sure nothing writes to the source (mount it read-only) and run the command again"
            )));
        }
        if staged.digests.size != before.len() {
            return Err(error::input(format!(
                "{label}: read {} bytes but the file is {} bytes long; nothing was recorded. Check the source media",
                staged.digests.size,
                before.len()
            )));
        }
        let media = probe::probe(&staged.location, args.deep);
        by_inode.insert((*dev, *ino), copied.len());
        copied.push(Copied {
            name: name.clone(),
            source: path.clone(),
            digests: staged.digests.clone(),
            existed: staged.existed,
            media,
            mtime: mtime_text(&before),
            hardlink_of: None,
            utf8: fsutil::path_is_utf8(path),
        });
    }
    bar.finish_and_clear();

    let mut params = Map::new();
    params.insert("paths".into(), json!(args.paths.iter().map(|p| path_text(&absolute(p))).collect::<Vec<_>>()));
    params.insert("source".into(), json!(args.source));
    params.insert("clock".into(), serde_json::to_value(&clock)?);
    params.insert("recording_start".into(), json!(recording_start.map(format_civil)));
    params.insert("deep".into(), json!(args.deep));
    params.insert("also".into(), json!(args.also.iter().map(|a| a.name()).collect::<Vec<_>>()));
    let links: Vec<Value> = found
        .iter()
        .filter_map(|f| match f {
            Found::Symlink { name, target, .. } => Some(json!({"name": name, "target": target})),
            _ => None,
        })
        .collect();
    let skipped: Vec<Value> = found
        .iter()
        .filter_map(|f| match f {
            Found::Skipped { name, kind, .. } => Some(json!({"name": name, "kind": kind})),
            _ => None,
        })
        .collect();
    params.insert("symlinks".into(), json!(links));
    params.insert("skipped".into(), json!(skipped));

    let case = args.case.clone();
    let exhibit = args.item.clone();
    let (head, event) = store.commit(&mut ledger, &actor, staging, |txn| {
        let mut outputs = Vec::new();
        for c in &copied {
            if let Some(existing) = txn.item_named(&case, &exhibit, &c.name)? {
                return Err(error::input(format!(
                    "exhibit {case}:{exhibit} already holds a file named {:?} (item {existing}); nothing was recorded. \
                     Use another --item for a new acquisition",
                    c.name
                )));
            }
            let mut facts = Map::new();
            facts.insert("source_path".into(), json!(path_text(&absolute(&c.source))));
            if !c.utf8 {
                facts.insert("source_path_hex".into(), json!(hex::encode(c.source.as_os_str().as_encoded_bytes())));
            }
            facts.insert("source_mtime".into(), json!(c.mtime));
            facts.insert("acquisition".into(), json!(if c.existed { "existing object" } else { "new object" }));
            if let Some(first) = &c.hardlink_of {
                facts.insert("hardlink_of".into(), json!(first));
            }
            for algo in &args.also {
                if let Some(hex) = c.digests.get(*algo) {
                    facts.insert(algo.name().into(), json!(hex));
                }
            }
            facts.insert("media".into(), serde_json::to_value(&c.media)?);
            outputs.push(FileRef {
                item: Some(txn.new_item_id()),
                name: Some(c.name.clone()),
                sha256: c.digests.sha256().to_owned(),
                blake3: c.digests.blake3().to_owned(),
                size: c.digests.size,
                facts,
            });
        }
        Ok(Draft {
            action: "ingest".into(),
            case: Some(case.clone()),
            exhibit: Some(exhibit.clone()),
            inputs: Vec::new(),
            outputs,
            params,
            note: args.note.clone(),
        })
    })?;

    // The report.
    let bytes: u64 = copied.iter().filter(|c| c.hardlink_of.is_none()).map(|c| c.digests.size).sum();
    let mut text = format!(
        "Ingested {} file{} ({}) into exhibit {}:{}; every copy verified by reading it back.\n",
        copied.len(),
        if copied.len() == 1 { "" } else { "s" },
        human_size(bytes),
        args.case,
        args.item
    );
    let mut items_json = Vec::new();
    for (out, c) in event.outputs.iter().zip(&copied) {
        let id = out.item.clone().unwrap_or_default();
        let mut line = format!(
            "  {id:<5} {}  sha256 {}  {}\n        {}",
            c.name,
            c.digests.sha256(),
            human_size(c.digests.size),
            c.media.summary()
        );
        if c.existed {
            line.push_str(
                "\n        (these exact bytes were already in the store: recorded as a new acquisition, stored once)",
            );
        }
        if let Some(first) = &c.hardlink_of {
            line.push_str(&format!("\n        (hard link to {first}: one object, two names)"));
        }
        if !c.media.decodable {
            line.push_str(
                "\n        kept as evidence exactly as it is (proprietary video may need the vendor's player)",
            );
        }
        text.push_str(&line);
        text.push('\n');
        items_json.push(json!({
            "id": id, "name": c.name, "sha256": c.digests.sha256(), "blake3": c.digests.blake3(),
            "size": c.digests.size, "existing_object": c.existed, "hardlink_of": c.hardlink_of,
            "decodable": c.media.decodable, "media": c.media,
        }));
    }
    for f in &found {
        match f {
            Found::Symlink { name, target, .. } => {
                text.push_str(&format!("  link  {name} -> {target} (recorded, not followed)\n"))
            }
            Found::Skipped { path, kind, .. } => {
                eprintln!("warning: skipped {} ({kind}): not a regular file", path.display());
                text.push_str(&format!("  skip  {} ({kind})\n", path.display()));
            }
            Found::File { .. } => {}
        }
    }
    if let Some(c) = &clock {
        text.push_str(&format!("DVR clock: {} {}\n", c.offset, c.describe()));
    }
    text.push_str(&head_line(&head));
    let json = json!({
        "schema_version": 1, "command": "ingest", "case": args.case, "exhibit": args.item,
        "items": items_json, "symlinks": links, "skipped": skipped, "clock": clock, "head": head,
    });
    Ok(Report::ok(text, json))
}

/// Collect what is under the given paths, without following symlinks.
fn walk(paths: &[PathBuf]) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    for path in paths {
        let meta = fs::symlink_metadata(path).map_err(|e| source_error(path, &e))?;
        if meta.is_dir() {
            let base = absolute(path);
            let top = base.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("root"));
            walk_dir(path, &top, &mut found)?;
        } else {
            let name = path.file_name().map(PathBuf::from).unwrap_or_else(|| path.clone());
            classify(path, &name, &meta, &mut found)?;
        }
    }
    Ok(found)
}

fn walk_dir(dir: &Path, rel: &Path, found: &mut Vec<Found>) -> Result<()> {
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
            walk_dir(&path, &name, found)?;
        } else {
            classify(&path, &name, &meta, found)?;
        }
    }
    Ok(())
}

fn classify(path: &Path, name: &Path, meta: &fs::Metadata, found: &mut Vec<Found>) -> Result<()> {
    let name_text = path_text(name);
    let ft = meta.file_type();
    if ft.is_file() {
        found.push(Found::File {
            path: path.to_owned(),
            name: name_text,
            size: meta.len(),
            dev: meta.dev(),
            ino: meta.ino(),
        });
    } else if ft.is_symlink() {
        let target = fs::read_link(path).map_err(|e| source_error(path, &e))?;
        found.push(Found::Symlink { name: name_text, target: path_text(&target) });
    } else {
        let kind = if ft.is_fifo() {
            "FIFO"
        } else if ft.is_socket() {
            "socket"
        } else if ft.is_block_device() {
            "block device"
        } else if ft.is_char_device() {
            "character device"
        } else {
            "special file"
        };
        found.push(Found::Skipped { path: path.to_owned(), name: name_text, kind });
    }
    Ok(())
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

/// Counts bytes into the progress bar as they are read.
struct Progress<'a, R> {
    inner: &'a mut R,
    bar: &'a indicatif::ProgressBar,
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}
