//! `custody media`: the contents of a court medium (a USB drive, or a folder to burn), checked
//! against the court's profile before anything is written, read back after, and recorded as one
//! `media` event naming every file written and the read-back's result.

use std::fs;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use super::{Ctx, Report, head_to_keep, human_size};
use crate::bundle::medium::{self, IndexEntry, Profile};
use crate::bundle::package::{self, Include, Request};
use crate::bundle::pdf::Pdfa;
use crate::cli::MediaArgs;
use crate::error;
use crate::item;
use crate::ledger::{Draft, FileRef};

/// The files this command created on the medium, removed again unless the command succeeds.
struct Written {
    dir: PathBuf,
    created_dir: bool,
    paths: Vec<PathBuf>,
    done: bool,
}

impl Drop for Written {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        for p in self.paths.iter().rev() {
            if p.is_dir() {
                let _ = fs::remove_dir(p);
            } else {
                let _ = fs::remove_file(p);
            }
        }
        if self.created_dir {
            let _ = fs::remove_dir(&self.dir);
        }
    }
}

impl Written {
    /// Writes `data` to `rel` under the medium, creating its folders, and syncs it.
    fn file(&mut self, rel: &str, data: &[u8]) -> Result<()> {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            let mut missing = Vec::new();
            let mut at = parent;
            while !at.exists() {
                missing.push(at.to_owned());
                match at.parent() {
                    Some(p) => at = p,
                    None => break,
                }
            }
            fs::create_dir_all(parent).map_err(|e| crate::store::env_io(e, parent, "cannot create"))?;
            self.paths.extend(missing.into_iter().rev());
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| crate::store::env_io(e, &path, "cannot create"))?;
        self.paths.push(path.clone());
        f.write_all(data).and_then(|_| f.sync_all()).map_err(|e| crate::store::env_io(e, &path, "cannot write"))?;
        Ok(())
    }
}

/// The items `id` was made from, nearest first.
fn ancestors(ledger: &crate::ledger::Ledger, id: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = item::resolve(ledger, id).ok().and_then(|r| r.parent);
    while let Some(p) = cur {
        if out.contains(&p) {
            break;
        }
        cur = item::resolve(ledger, &p).ok().and_then(|r| r.parent);
        out.push(p);
    }
    out
}

pub fn run(args: MediaArgs, ctx: &Ctx) -> Result<Report> {
    let (profile, profile_sha) = Profile::load(&args.profile)?;
    let out = &args.out;
    match fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(error::input(format!(
                    "{} is not empty: a medium is written to an empty drive or folder. Nothing was written",
                    out.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) if out.exists() && !out.is_dir() => {
            return Err(error::input(format!(
                "{} is a file, not a drive or folder: give the folder a USB drive is mounted at, or a new folder. \
                 Nothing was written",
                out.display()
            )));
        }
        Err(e) => return Err(crate::store::env_io(e, out, "cannot read")),
    }
    let store = ctx.store()?;
    let mut ledger = store.open_ledger()?;
    let mut rows = super::package::selected(&ledger, args.case.as_deref(), &args.items)?;

    // Preflight: every problem at once, before anything is written.
    let mut facts: Vec<super::show::ItemFacts> =
        rows.iter().map(|r| super::show::item_facts(&ledger, r)).collect::<Result<_>>()?;
    // Derived items (playback copies, clips) carry no probe of their own: probe them now.
    for f in facts.iter_mut().filter(|f| f.media.is_none()) {
        f.media = crate::derive::Source::open(&store, &ledger, &f.row.id)?.media;
    }
    let plays: Vec<bool> = facts.iter().map(|f| medium::plays_natively(&f.row.name, f.media.as_ref())).collect();
    let mut problems = Vec::new();
    let mut to_copy: Vec<String> = Vec::new();
    let mut reuse: Vec<(String, String)> = Vec::new();
    for (i, f) in facts.iter().enumerate() {
        let r = &f.row;
        let who = format!("{} {}", r.id, r.name);
        let original = r.parent.is_none();
        if !(profile.takes(&r.name) || (original && profile.native_originals)) {
            problems.push(format!(
                "{who}: .{} is not a format profile {} takes ({}); leave it out, or select a copy in a format it takes",
                medium::extension(&r.name),
                profile.name,
                if profile.exhibit_formats.is_empty() { "none".to_owned() } else { profile.exhibit_formats.join(", ") }
            ));
        }
        if f.file.size > profile.max_file_size {
            problems.push(format!(
                "{who}: {} bytes is over the profile's limit of {} bytes a file",
                f.file.size, profile.max_file_size
            ));
        }
        for part in [r.case.as_str(), r.exhibit.as_str()].into_iter().chain(r.name.split('/')) {
            if let Some(why) = medium::bad_name(part, profile.filesystem) {
                problems.push(format!(
                    "{who}: the name {part:?} is not allowed on {} ({why}); the medium cannot hold it",
                    profile.filesystem.name()
                ));
            }
        }
        let mut head = [0u8; 4];
        let n = store.open_object(&f.file.sha256).and_then(|mut o| Ok(std::io::Read::read(&mut o, &mut head)?))?;
        if medium::is_executable(&r.name, &head[..n]) {
            problems.push(format!("{who}: an executable or script; courts take no programs on media"));
        }
        if medium::is_audio_video(&r.name, f.media.as_ref()) && !plays[i] {
            let copy = facts.iter().enumerate().any(|(j, g)| plays[j] && ancestors(&ledger, &g.row.id).contains(&r.id));
            // A playable copy made earlier (by hand, or by an earlier medium) is used again.
            let mut earlier = None;
            if !copy {
                for child in &f.children {
                    let media = crate::derive::Source::open(&store, &ledger, &child.id)?.media;
                    if medium::plays_natively(&child.name, media.as_ref()) {
                        earlier = Some(child.id.clone());
                        break;
                    }
                }
            }
            if let Some(id) = earlier {
                reuse.push((r.id.clone(), id));
            } else if !copy && f.media.as_ref().is_some_and(medium::rewraps_to_playable) {
                // Its streams play once in MP4: a lossless playback copy is made (and recorded)
                // once the rest of the medium is known to pass.
                to_copy.push(r.id.clone());
            } else if !copy {
                let codecs: Vec<String> = f
                    .media
                    .as_ref()
                    .map(|m| {
                        m.streams
                            .iter()
                            .filter(|s| s.kind == "video" || s.kind == "audio")
                            .map(|s| s.codec.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                problems.push(format!(
                    "{who}: plays on no court PC ({}, {}), and its streams need re-encoding to play: make a playback copy \
                     (`custody clip {} --mode exact --from frame:0 --to END`) and include it",
                    f.media.as_ref().and_then(|m| m.container_long.clone()).unwrap_or_else(|| "unknown format".into()),
                    if codecs.is_empty() { "no streams".to_owned() } else { codecs.join(", ") },
                    r.id
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(error::input(format!(
            "this medium breaks profile {} ({}) in {} way(s); nothing was written:\n  {}",
            profile.name,
            profile.description,
            problems.len(),
            problems.join("\n  ")
        )));
    }

    // The drive or folder must be there to write to before anything is recorded (a drive that
    // went away fails here, not after a playback copy was made).
    let mut written = Written { dir: out.clone(), created_dir: !out.exists(), paths: Vec::new(), done: false };
    if written.created_dir {
        fs::create_dir_all(out).map_err(|e| crate::store::env_io(e, out, "cannot create"))?;
    }
    crate::fsutil::writable(out).map_err(|e| crate::store::env_io(e, out, "cannot write to"))?;

    // Playback copies made earlier join the medium; the others are made now, each a lossless
    // rewrap into MP4, recorded as a derived item (as `custody rewrap` would), so that a retry
    // after a failed write uses them again.
    for (_, id) in &reuse {
        if !rows.iter().any(|r| &r.id == id) {
            let row = item::resolve(&ledger, id)?;
            let mut f = super::show::item_facts(&ledger, &row)?;
            if f.media.is_none() {
                f.media = crate::derive::Source::open(&store, &ledger, &row.id)?.media;
            }
            rows.push(row);
            facts.push(f);
        }
    }
    let mut copies: Vec<(String, String)> = Vec::new();
    for id in &to_copy {
        let made = super::rewrap::run(
            crate::cli::RewrapArgs {
                item: id.clone(),
                out: None,
                verify_whole: false,
                note: Some(format!("playback copy for a court medium (profile {})", profile.name)),
            },
            ctx,
        )?;
        let copy_id = made.json["item"].as_str().unwrap_or_default().to_owned();
        let row = item::resolve(&ledger, &copy_id)?;
        let mut f = super::show::item_facts(&ledger, &row)?;
        if f.media.is_none() {
            f.media = crate::derive::Source::open(&store, &ledger, &row.id)?.media;
        }
        if !medium::plays_natively(&row.name, f.media.as_ref()) {
            return Err(error::input(format!(
                "{id}: its playback copy {copy_id} {} (recorded as a derived item) still plays on no court PC; make \
                 one with `custody clip {id} --mode exact` and select it. Nothing was written to {}",
                row.name,
                out.display()
            )));
        }
        copies.push((id.clone(), copy_id));
        rows.push(row);
        facts.push(f);
    }

    // The bundle, made once into the store's scratch space, is the source of every file.
    let scratch = tempfile::Builder::new()
        .prefix(".media-")
        .tempdir_in(store.root().join("tmp"))
        .map_err(|e| crate::store::env_io(e, &store.root().join("tmp"), "cannot create a scratch folder in"))?;
    let zip_path = scratch.path().join("medium.zip");
    let actor = ctx.actor();
    let req = Request {
        rows: rows.clone(),
        include: Include::All,
        recipient: args.recipient.as_deref(),
        purpose: args.purpose.as_deref(),
        examiner: &actor.examiner,
        out: &zip_path,
        release: false,
        paper: None,
        pdfa: Pdfa::A2b,
    };
    let bundle = package::write(&store, &ledger, &req)?;
    let zip_file = fs::File::open(&zip_path).map_err(|e| crate::store::env_io(e, &zip_path, "cannot open"))?;
    let map = crate::mapped::Mapped::open(&zip_file).map_err(|e| crate::store::env_io(e, &zip_path, "cannot map"))?;
    let entries = crate::bundle::zip::read_entries(&map)
        .map_err(|e| error::environment(format!("{}: {}", zip_path.display(), e.0)))?;
    let cases: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.case.as_str()).collect();
    let case_text = cases.iter().copied().collect::<Vec<_>>().join(", ");
    let label = args.label.clone().unwrap_or_else(|| format!("Case {case_text}, disc 1 of 1"));

    // Every file the medium would hold (the report, the copies and the custody records too)
    // within the profile's limit, before anything is written.
    let prefix = format!("{}/", bundle.bag);
    let wanted =
        |rel: &str| profile.custody_files || rel.starts_with("data/evidence/") || rel == "data/report/report.pdf";
    let over: Vec<String> = entries
        .iter()
        .filter(|e| !e.is_dir && e.size > profile.max_file_size)
        .filter_map(|e| {
            e.name.strip_prefix(&prefix).filter(|rel| wanted(rel)).map(|rel| format!("{rel}: {} bytes", e.size))
        })
        .collect();
    if !over.is_empty() {
        let made = if copies.is_empty() {
            String::new()
        } else {
            format!(
                " (the playback copies {} are recorded and will be used again)",
                copies.iter().map(|c| c.1.as_str()).collect::<Vec<_>>().join(", ")
            )
        };
        return Err(error::input(format!(
            "these files of the medium are over the profile's limit of {} bytes a file; nothing was written{made}:\n  {}",
            profile.max_file_size,
            over.join("\n  ")
        )));
    }
    let mut files: Vec<(String, String, u64)> = Vec::new();
    for e in entries.iter().filter(|e| !e.is_dir) {
        let Some(rel) = e.name.strip_prefix(&prefix) else { continue };
        if !wanted(rel) {
            continue;
        }
        let data = crate::bundle::zip::entry_bytes(&map, e).map_err(error::environment)?;
        written.file(rel, &data)?;
        files.push((rel.to_owned(), hex::encode(crate::digest::sha256(&data)), data.len() as u64));
    }
    if profile.custody_files {
        let mut index = Vec::new();
        // Each selected file's chain, to point an original that does not play at its copy.
        let chains: Vec<(String, Vec<String>)> =
            bundle.files.iter().map(|f| (f.item.clone(), ancestors(&ledger, &f.item))).collect();
        let facts_of = |id: &str| facts.iter().find(|x| x.row.id == id).and_then(|x| x.media.as_ref());
        for f in &bundle.files {
            let facts = facts.iter().find(|x| x.row.id == f.item);
            let media = facts.and_then(|x| x.media.as_ref());
            let origin = facts
                .map(|x| {
                    format!(
                        "Recorded by {} at {} ({}, event {})",
                        x.created.examiner, x.created.time, x.created.action, x.created.seq
                    )
                })
                .unwrap_or_default();
            let mut chain: Vec<String> = ancestors(&ledger, &f.item).into_iter().rev().collect();
            chain.push(f.item.clone());
            index.push(IndexEntry {
                item: &f.item,
                exhibit: format!("{}:{}", f.case, f.exhibit),
                name: &f.name,
                path: &f.path,
                sha256: &f.sha256,
                size: f.size,
                origin,
                lineage: chain.join(" → "),
                playable: medium::plays_natively(&f.name, media),
                audio_only: media.is_some_and(|m| !m.streams.iter().any(|s| s.kind == "video")),
                picture: matches!(medium::extension(&f.name).as_str(), "png" | "jpg" | "jpeg"),
                played_by: bundle
                    .files
                    .iter()
                    .filter(|g| chains.iter().any(|(id, up)| *id == g.item && up.contains(&f.item)))
                    .find(|g| medium::plays_natively(&g.name, facts_of(&g.item)))
                    .map(|g| (g.item.clone(), g.path.clone())),
            });
        }
        let html = medium::index_html(&label, &case_text, &bundle.head.to_string(), &index);
        written.file("index.html", html.as_bytes())?;
        files.push(("index.html".into(), hex::encode(crate::digest::sha256(html.as_bytes())), html.len() as u64));
        let sums: String = files.iter().map(|(rel, sha, _)| format!("{sha}  {rel}\n")).collect();
        written.file("SHA256SUMS.txt", sums.as_bytes())?;
        files.push(("SHA256SUMS.txt".into(), hex::encode(crate::digest::sha256(sums.as_bytes())), sums.len() as u64));
    }
    for p in written.paths.iter().filter(|p| p.is_dir()).chain(std::iter::once(out)) {
        crate::fsutil::fsync_dir(p).map_err(|e| crate::store::env_io(e, p, "cannot sync"))?;
    }
    drop(map);
    drop(scratch);

    // Read every file back from the medium.
    let bad = medium::read_back(out, &files);
    if !bad.is_empty() {
        return Err(error::mismatch(format!(
            "the medium at {} did not read back as written, so it is not recorded and what was written is removed:\n  {}",
            out.display(),
            bad.join("\n  ")
        )));
    }
    let bytes: u64 = files.iter().map(|f| f.2).sum();

    let inputs: Vec<FileRef> = facts
        .iter()
        .map(|f| FileRef {
            item: Some(f.row.id.clone()),
            name: Some(f.row.name.clone()),
            sha256: f.file.sha256.clone(),
            blake3: f.file.blake3.clone(),
            size: f.file.size,
            facts: serde_json::Map::new(),
        })
        .collect();
    let file_list: Vec<serde_json::Value> =
        files.iter().map(|(p, s, n)| json!({"path": p, "sha256": s, "size": n})).collect();
    let mut params = serde_json::Map::new();
    params.insert(
        "profile".into(),
        json!({"name": profile.name, "sha256": profile_sha, "description": profile.description}),
    );
    params.insert("label".into(), json!(label));
    params.insert("medium".into(), json!({"kind": "folder", "path": crate::fsutil::path_text(out)}));
    params.insert("recipient".into(), json!(args.recipient));
    params.insert("purpose".into(), json!(args.purpose));
    params.insert("ledger_head".into(), json!(bundle.head.to_string()));
    params.insert(
        "playback_copies".into(),
        json!(
            copies
                .iter()
                .map(|(of, copy)| json!({"item": copy, "of": of, "made": true}))
                .chain(reuse.iter().map(|(of, copy)| json!({"item": copy, "of": of, "made": false})))
                .collect::<Vec<_>>()
        ),
    );
    params.insert("files".into(), json!(file_list));
    params.insert("read_back".into(), json!({"files": files.len(), "bytes": bytes, "result": "matched"}));
    let one_case = (cases.len() == 1).then(|| case_text.clone());
    let staging = store.stage()?;
    let (head, _) = store.commit(&mut ledger, &actor, staging, |_| {
        Ok(Draft {
            action: "media".into(),
            case: one_case.clone(),
            inputs,
            params,
            note: args.note.clone(),
            ..Draft::default()
        })
    })?;
    written.done = true;

    let mut text = format!(
        "Wrote the medium \"{label}\" to {} for profile {} ({}): {} file(s), {}; every file read back and matched\n",
        out.display(),
        profile.name,
        profile.description,
        files.len(),
        human_size(bytes)
    );
    for (of, copy) in &copies {
        text.push_str(&format!("  made the playback copy {copy} of {of} (a lossless rewrap into MP4, recorded)\n"));
    }
    for (of, copy) in &reuse {
        text.push_str(&format!("  used the playback copy {copy} of {of}, made earlier\n"));
    }
    for f in bundle.files.iter() {
        text.push_str(&format!("  {:<5} {}  sha256 {}\n", f.item, f.path, f.sha256));
    }
    if profile.custody_files {
        text.push_str(&format!(
            "  open {} in a browser; check it with: custody verify {}\n",
            out.join("index.html").display(),
            out.display()
        ));
    }
    text.push_str(&head_to_keep(&head));
    let json = json!({"schema_version": 1, "command": "media", "profile": profile.name, "out": crate::fsutil::path_text(out),
        "label": label, "files": file_list, "read_back": {"files": files.len(), "bytes": bytes, "result": "matched"},
        "ledger_head": bundle.head, "head": head});
    Ok(Report::ok(text, json))
}
