//! `custody media`: the contents of a court medium (a USB drive, or a folder to burn), checked
//! against the court's profile before anything is written, read back after, and recorded as one
//! `media` event naming every file written and the read-back's result.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::json;

use super::{Ctx, Report, head_to_keep, human_size};
use crate::bundle::iso;
use crate::bundle::medium::{self, IndexEntry, Profile};
use crate::bundle::package::{self, Include, Request};
use crate::bundle::pdf::Pdfa;
use crate::cli::MediaArgs;
use crate::error;
use crate::item;
use crate::ledger::{Draft, FileRef};
use crate::media::index::FrameIndex;

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
        let mut f = self.create(rel)?;
        let path = self.dir.join(rel);
        f.write_all(data).and_then(|_| f.sync_all()).map_err(|e| crate::store::env_io(e, &path, "cannot write"))?;
        Ok(())
    }

    /// Copies the whole of `from` to `rel` under the medium, creating its folders, and syncs it.
    fn copy(&mut self, rel: &str, mut from: fs::File) -> Result<()> {
        let mut f = self.create(rel)?;
        let path = self.dir.join(rel);
        std::io::copy(&mut from, &mut f)
            .and_then(|_| f.sync_all())
            .map_err(|e| crate::store::env_io(e, &path, "cannot write"))?;
        Ok(())
    }

    /// Creates `rel` under the medium (new), and the folders it needs, remembering each.
    fn create(&mut self, rel: &str) -> Result<fs::File> {
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
        let f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| crate::store::env_io(e, &path, "cannot create"))?;
        self.paths.push(path.clone());
        Ok(f)
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

/// Where the medium goes.
enum Target {
    /// A mounted USB drive or a folder, written file by file.
    Folder(PathBuf),
    /// A new disc image.
    Image(PathBuf),
    /// A disc burnt in a drive (or libburn's `stdio:` pseudo-drive), from an image kept at
    /// `keep` or made in scratch space.
    Burn { drive: String, keep: Option<PathBuf> },
}

impl Target {
    fn of(args: &MediaArgs) -> Result<Target> {
        let image = |p: &PathBuf| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("iso"));
        if let (Some(out), None, Some(disc)) = (&args.out, &args.burn, args.disc)
            && !image(out)
        {
            return Err(error::input(format!(
                "--disc {} is for disc images: --out {} is a drive or folder; name an IMAGE.iso, or leave --disc out",
                disc.name(),
                out.display()
            )));
        }
        Ok(match (&args.out, &args.burn) {
            (Some(out), None) if image(out) => Target::Image(out.clone()),
            (Some(out), None) => Target::Folder(out.clone()),
            (out, Some(drive)) => {
                if let Some(out) = out.as_ref().filter(|o| !image(o)) {
                    return Err(error::input(format!(
                        "--burn writes a disc from an image: --out {} must name a new IMAGE.iso to keep, or be left \
                         out. Nothing was written",
                        out.display()
                    )));
                }
                Target::Burn { drive: drive.clone(), keep: out.clone() }
            }
            (None, None) => unreachable!("clap requires --out or --burn"),
        })
    }

    /// Refuse a target that cannot take a new medium, before anything is made or recorded.
    fn check(&self) -> Result<()> {
        let new_image = |p: &Path| -> Result<()> {
            if p.exists() {
                return Err(error::input(format!(
                    "{} exists: a disc image is never written over; name a new file. Nothing was written",
                    p.display()
                )));
            }
            let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if !parent.is_dir() {
                return Err(error::input(format!(
                    "{} does not exist: the image {} goes into an existing folder. Nothing was written",
                    parent.display(),
                    p.display()
                )));
            }
            Ok(())
        };
        match self {
            Target::Folder(out) => match fs::read_dir(out) {
                Ok(mut entries) => {
                    if entries.next().is_some() {
                        return Err(error::input(format!(
                            "{} is not empty: a medium is written to an empty drive or folder. Nothing was written",
                            out.display()
                        )));
                    }
                    Ok(())
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(_) if out.exists() && !out.is_dir() => Err(error::input(format!(
                    "{} is a file, not a drive or folder: give the folder a USB drive is mounted at, a new folder, \
                     or a new IMAGE.iso. Nothing was written",
                    out.display()
                ))),
                Err(e) => Err(crate::store::env_io(e, out, "cannot read")),
            },
            Target::Image(p) => new_image(p),
            Target::Burn { drive, keep } => {
                if let Some(k) = keep {
                    new_image(k)?;
                }
                burner()?;
                let dev = iso::device_path(drive);
                if !drive.starts_with("stdio:") && !dev.exists() {
                    return Err(error::input(format!(
                        "there is no drive {drive}: give the optical drive's device (as `xorriso -devices` lists \
                         it, e.g. /dev/sr0), or stdio:FILE for a file. Nothing was written"
                    )));
                }
                Ok(())
            }
        }
    }
}

/// The burner custody runs: xorriso, from the PATH.
fn burner() -> Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("xorriso"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            error::environment(
                "xorriso, the disc burner custody runs, is not installed: install it (Debian: apt install xorriso) \
                 and run the command again. Nothing was written",
            )
        })
}

/// Burn `image` to `drive` with xorriso (its cdrecord emulation, disc-at-once).
fn burn(image: &Path, drive: &str) -> Result<()> {
    let out = std::process::Command::new(burner()?)
        .args(["-as", "cdrecord", "-v", &format!("dev={drive}"), "-dao"])
        .arg(image)
        .output()
        .map_err(|e| error::environment(format!("cannot run xorriso: {e}")))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).rev().take(6).collect();
        return Err(error::environment(format!(
            "xorriso could not burn the disc in {drive} ({}); nothing is recorded. What it said last:\n  {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n  ")
        )));
    }
    Ok(())
}

/// Where each part of a recording of `size` bytes starts (frame numbers, the first 0) so that
/// no part holds more than `budget` bytes: cut at IDR keyframes (video) or between packets
/// (audio), measured by where each frame lies in the file (else by time). None when one
/// group of pictures alone is over the budget.
fn cut_points(index: &FrameIndex, size: u64, budget: u64) -> Option<Vec<usize>> {
    let n = index.len();
    let span = (index.time_us(n - 1) + index.frame_len_us(n - 1)).max(1) as u64;
    let at = |i: usize| -> u64 {
        match index.frames[i].pos {
            _ if i == 0 => 0,
            p if p >= 0 => p as u64,
            _ => (size as u128 * index.time_us(i).max(0) as u128 / span as u128) as u64,
        }
    };
    let mut starts = vec![0usize];
    let mut fits: Option<usize> = None;
    for c in (1..n).filter(|&i| index.audio || index.frames[i].idr) {
        let s = *starts.last().expect("one start");
        if at(c).saturating_sub(at(s)) <= budget {
            fits = Some(c);
            continue;
        }
        let p = fits.filter(|&p| p > s)?;
        starts.push(p);
        if at(c).saturating_sub(at(p)) > budget {
            return None;
        }
        fits = Some(c);
    }
    let s = *starts.last().expect("one start");
    if size.saturating_sub(at(s)) > budget {
        let p = fits.filter(|&p| p > s)?;
        starts.push(p);
        if size.saturating_sub(at(p)) > budget {
            return None;
        }
    }
    Some(starts)
}

/// The playback copy of item `id` in parts of at most `limit` bytes each, cut at keyframes by
/// stream copy into MP4 (`custody clip --mode copy`, each part recorded as a clip named
/// `NAME_partKofN`); a complete set made earlier is used again. Returns the parts' item IDs and
/// whether they were made now.
fn split(
    store: &crate::store::Store,
    ledger: &crate::ledger::Ledger,
    ctx: &Ctx,
    id: &str,
    limit: u64,
    profile: &str,
) -> Result<(Vec<String>, bool)> {
    let row = item::resolve(ledger, id)?;
    let facts = super::show::item_facts(ledger, &row)?;
    // Parts made earlier (a medium that failed its read-back, or an earlier medium).
    let mut earlier: BTreeMap<usize, (usize, String, u64)> = BTreeMap::new();
    for c in &facts.children {
        if let Some((k, n)) = medium::part_of(&c.name) {
            let size = ledger.acquisition(c).map(|(_, f)| f.size).unwrap_or(u64::MAX);
            earlier.entry(k).or_insert((n, c.id.clone(), size));
        }
    }
    if let Some((_, (n, _, _))) = earlier.iter().next() {
        let n = *n;
        if (1..=n).all(|k| earlier.get(&k).is_some_and(|(m, _, size)| *m == n && *size <= limit)) {
            return Ok(((1..=n).map(|k| earlier[&k].1.clone()).collect(), false));
        }
    }
    let source = crate::derive::Source::open(store, ledger, id)?;
    let index = source.frame_index(ledger)?;
    let stem = source.stem().to_owned();
    // MP4 keeps a table of every frame (a few bytes each) and a raw stream's start codes
    // become lengths: 1/32 of the limit leaves room for both.
    let budget = limit - limit / 32;
    let starts = cut_points(&index, facts.file.size, budget).ok_or_else(|| {
        error::input(format!(
            "{id} {}: one stretch between its keyframes is over the profile's limit of {limit} bytes, so it cannot \
             be split under it; leave it out, or make a smaller copy (`custody clip {id} --mode exact`)",
            row.name
        ))
    })?;
    let n = starts.len();
    let last = index.len() - 1;
    let mut parts = Vec::new();
    for (k, &first) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(last, |next| next - 1);
        let (from, to) = if index.audio {
            let t = |i: usize| crate::media::time::Position::Time(index.time_us(i));
            (
                t(first),
                starts.get(k + 1).map_or(
                    crate::media::time::Position::Time(index.time_us(last) + index.frame_len_us(last)),
                    |&next| t(next),
                ),
            )
        } else {
            (crate::media::time::Position::Frame(first as u64), crate::media::time::Position::Frame(end as u64))
        };
        let made = super::clip::run(
            crate::cli::ClipArgs {
                item: id.to_owned(),
                from,
                to,
                mode: crate::cli::ClipMode::Copy,
                crf: 18,
                lossless: false,
                out: None,
                verify_whole: false,
                note: Some(format!(
                    "part {} of {n} of the playback copy of {id}, for a court medium (profile {profile}: at most {limit} bytes a file)",
                    k + 1
                )),
                stem: Some(format!("{stem}_part{}of{n}", k + 1)),
            },
            ctx,
        )?;
        let part = made.json["item"].as_str().unwrap_or_default().to_owned();
        let size = made.json["size"].as_u64().unwrap_or(u64::MAX);
        if size > limit {
            return Err(error::input(format!(
                "{id} {}: part {} of {n} ({part}, recorded) came out at {size} bytes, over the profile's limit of {limit}; \
                 nothing was written",
                row.name,
                k + 1
            )));
        }
        parts.push(part);
    }
    Ok((parts, true))
}

/// A playback copy of item `id` re-encoded to H.264 (CRF 18, visually lossless) and AAC in MP4,
/// or to PCM WAV for sound alone: `custody clip --mode exact` of every frame, named
/// `NAME_EXT_playback` (`cam01_avi_playback.mp4`).
fn encoded_copy(
    store: &crate::store::Store,
    ledger: &crate::ledger::Ledger,
    ctx: &Ctx,
    id: &str,
    profile: &str,
) -> Result<Report> {
    use crate::media::time::Position;
    let source = crate::derive::Source::open(store, ledger, id)?;
    let index = source.frame_index(ledger)?;
    let last = index.len() - 1;
    let (from, to) = if index.audio {
        (Position::Time(0), Position::Time(index.time_us(last) + index.frame_len_us(last)))
    } else {
        (Position::Frame(0), Position::Frame(last as u64))
    };
    super::clip::run(
        crate::cli::ClipArgs {
            item: id.to_owned(),
            from,
            to,
            mode: crate::cli::ClipMode::Exact,
            crf: 18,
            lossless: false,
            out: None,
            verify_whole: false,
            note: Some(format!(
                "playback copy for a court medium (profile {profile}), re-encoded: its codecs play in no browser"
            )),
            // The original's format in the name: a DVR's .avi and .h264 of one channel share a stem.
            stem: Some(format!("{}_{}_playback", source.stem(), medium::extension(&source.row.name))),
        },
        ctx,
    )
}

/// What one medium of a set holds and how it was written and read back.
struct Laid {
    label: String,
    /// (path, SHA-256, size) of every file on it.
    files: Vec<(String, String, u64)>,
    bundle: package::Written,
    medium: serde_json::Map<String, serde_json::Value>,
    where_to: String,
}

/// What every medium of a set shares.
struct Job<'a> {
    store: &'a crate::store::Store,
    ledger: &'a crate::ledger::Ledger,
    actor: &'a crate::ledger::Actor,
    args: &'a MediaArgs,
    profile: &'a Profile,
    facts: &'a [super::show::ItemFacts],
    copies: &'a [(String, String, bool)],
    filesystems: &'a [medium::Filesystem],
}

/// Lay out one medium holding `rows` (the bag, index.html, SHA256SUMS.txt) in `out` (the drive
/// or folder, or a staging folder for a disc), check it against the profile, write it to
/// `target`, and read it back.
#[allow(clippy::too_many_arguments)]
fn lay_out(
    job: &Job,
    rows: Vec<crate::ledger::ItemRow>,
    target: &Target,
    label: &str,
    scratch: &Path,
    out: &Path,
    written: &mut Written,
    image_files: &mut Written,
) -> Result<Laid> {
    let Job { store, ledger, actor, args, profile, facts, copies, filesystems } = *job;
    let label = label.to_owned();
    let zip_path = scratch.join("medium.zip");
    // What the medium is called and which formats it holds (what a clerk writes on the disc).
    let mut formats: Vec<String> = rows.iter().map(|r| medium::extension(&r.name).to_ascii_uppercase()).collect();
    formats.push("PDF".into());
    if profile.custody_files {
        formats.push("HTML".into());
    }
    formats.retain(|f| !f.is_empty());
    formats.sort();
    formats.dedup();
    let medium_text = format!("{label} (formats: {})", formats.join(", "));
    let req = Request {
        medium: Some(&medium_text),
        evidence: false,
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
    let bundle = package::write(store, ledger, &req)?;
    let zip_file = fs::File::open(&zip_path).map_err(|e| crate::store::env_io(e, &zip_path, "cannot open"))?;
    let map = crate::mapped::Mapped::open(&zip_file).map_err(|e| crate::store::env_io(e, &zip_path, "cannot map"))?;
    let entries = crate::bundle::zip::read_entries(&map)
        .map_err(|e| error::environment(format!("{}: {}", zip_path.display(), e.0)))?;
    let cases: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.case.as_str()).collect();
    let case_text = cases.iter().copied().collect::<Vec<_>>().join(", ");

    // Every file the medium would hold (the report, the copies and the custody records too)
    // within the profile's limit, before anything is written.
    let prefix = format!("{}/", bundle.bag);
    let wanted =
        |rel: &str| profile.custody_files || rel.starts_with("data/evidence/") || rel == "data/report/report.pdf";
    // Native originals travel whole where the profile takes them (their size was checked
    // against the filesystem's limit in the preflight).
    let natives: std::collections::BTreeSet<String> = bundle
        .files
        .iter()
        .filter(|f| profile.native_originals && rows.iter().any(|r| r.id == f.item && r.parent.is_none()))
        .map(|f| f.path.clone())
        .collect();
    // Every file of the medium: the evidence (from the store), then the bag's other files (from
    // the ZIP), each with its size.
    let on_medium: Vec<(&str, u64)> = bundle
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.size))
        .chain(
            entries
                .iter()
                .filter(|e| !e.is_dir)
                .filter_map(|e| e.name.strip_prefix(&prefix).filter(|rel| wanted(rel)).map(|rel| (rel, e.size))),
        )
        .collect();
    let mut over: Vec<String> = on_medium
        .iter()
        .filter(|(rel, size)| *size > profile.max_file_size && !natives.contains(*rel))
        .map(|(rel, size)| format!("{rel}: {size} bytes"))
        .collect();
    // Every path on the medium (the copies' and parts' names too) within its names' rules.
    for (rel, _) in &on_medium {
        for part in rel.split('/') {
            if let Some((fs, why)) =
                filesystems.iter().find_map(|fs| medium::bad_name(part, *fs).map(|why| (fs.name(), why)))
            {
                over.push(format!("{rel}: the name {part:?} is not allowed on {fs} ({why})"));
                break;
            }
        }
    }
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
            "these files of the medium are over the profile's limit of {} bytes a file, or named as it cannot hold; \
             nothing was written{made}:\n  {}",
            profile.max_file_size,
            over.join("\n  ")
        )));
    }
    let mut files: Vec<(String, String, u64)> = Vec::new();
    // Each evidence file comes from the store's object: a disc image takes it straight from the
    // object's file where the store keeps its objects on this machine; a drive or folder gets a
    // copy. Its recorded SHA-256 is what the read-back holds the medium's bytes to.
    let mut from_store: BTreeMap<String, PathBuf> = BTreeMap::new();
    for f in &bundle.files {
        files.push((f.path.clone(), f.sha256.clone(), f.size));
        if !matches!(target, Target::Folder(_)) && store.remote(&f.sha256).is_none() {
            from_store.insert(f.path.clone(), store.object_path(&f.sha256));
            continue;
        }
        let object = store.object_file(&f.sha256)?;
        written.copy(&f.path, object)?;
    }
    for e in entries.iter().filter(|e| !e.is_dir) {
        let Some(rel) = e.name.strip_prefix(&prefix) else { continue };
        if !wanted(rel) || bundle.files.iter().any(|f| f.path == rel) {
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
            bundle.files.iter().map(|f| (f.item.clone(), ancestors(ledger, &f.item))).collect();
        let facts_of = |id: &str| facts.iter().find(|x| x.row.id == id).and_then(|x| x.media.as_ref());
        let created_of = |id: &str| facts.iter().find(|x| x.row.id == id).map(|x| &x.created);
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
            let mut chain: Vec<String> = ancestors(ledger, &f.item).into_iter().rev().collect();
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
                played_by: {
                    // Its playable copy, or every part of one split under the limit, in order.
                    let mut playable: Vec<&package::Packed> = bundle
                        .files
                        .iter()
                        .filter(|g| chains.iter().any(|(id, up)| *id == g.item && up.contains(&f.item)))
                        .filter(|g| medium::plays_natively(&g.name, facts_of(&g.item)))
                        .collect();
                    playable.sort_by_key(|g| medium::part_of(&g.name).map(|(k, _)| k));
                    match playable.iter().position(|g| medium::part_of(&g.name).is_none()) {
                        Some(whole) => vec![(playable[whole].item.clone(), playable[whole].path.clone())],
                        None => playable.iter().map(|g| (g.item.clone(), g.path.clone())).collect(),
                    }
                },
                // A copy is re-encoded unless its event copied the streams (a rewrap, a copy clip).
                re_encoded: bundle.files.iter().any(|g| {
                    chains.iter().any(|(id, up)| *id == g.item && up.contains(&f.item))
                        && created_of(&g.item)
                            .is_some_and(|c| c.action == "clip" && c.params.get("mode").is_some_and(|m| m != "copy"))
                        && medium::plays_natively(&g.name, facts_of(&g.item))
                }),
            });
        }
        let html = medium::index_html(&label, &case_text, &formats, &bundle.head.to_string(), &index);
        written.file("index.html", html.as_bytes())?;
        files.push(("index.html".into(), hex::encode(crate::digest::sha256(html.as_bytes())), html.len() as u64));
        let sums: String = files.iter().map(|(rel, sha, _)| format!("{sha}  {rel}\n")).collect();
        written.file("SHA256SUMS.txt", sums.as_bytes())?;
        files.push(("SHA256SUMS.txt".into(), hex::encode(crate::digest::sha256(sums.as_bytes())), sums.len() as u64));
    }
    for p in written.paths.iter().map(PathBuf::as_path).filter(|p| p.is_dir()).chain(std::iter::once(out)) {
        crate::fsutil::fsync_dir(p).map_err(|e| crate::store::env_io(e, p, "cannot sync"))?;
    }
    drop(map);
    let _ = fs::remove_file(&zip_path);

    // Read every file back from the medium: the folder, or the image, or the burnt disc.
    let mut disc = serde_json::Map::new();
    let where_to = match target {
        Target::Folder(_) => {
            let bad = medium::read_back(out, &files);
            refuse_read_back(out, &bad)?;
            disc.insert("kind".into(), json!("folder"));
            disc.insert("path".into(), json!(crate::fsutil::path_text(out)));
            out.display().to_string()
        }
        Target::Image(_) | Target::Burn { .. } => {
            let volume = iso::volume_id(&label);
            let (image, fin) = match target {
                Target::Image(p) | Target::Burn { keep: Some(p), .. } => {
                    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    (p.with_file_name(format!(".{name}.partial")), Some(p.clone()))
                }
                _ => (scratch.join(format!("{}.iso", volume)), None),
            };
            image_files.paths.push(image.clone());
            let staged: Vec<(String, PathBuf)> = files
                .iter()
                .map(|(rel, _, _)| (rel.clone(), from_store.get(rel).cloned().unwrap_or_else(|| out.join(rel))))
                .collect();
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let size = iso::write(&staged, &image, &volume, now as i64)?;
            let (bad, image_sha) = iso::read_back_whole(&image, &files, size)?;
            refuse_read_back(&image, &bad)?;
            disc.insert("volume".into(), json!(volume));
            disc.insert("image_size".into(), json!(size));
            disc.insert("image_sha256".into(), json!(image_sha));
            if let Target::Burn { drive, .. } = target {
                burn(&image, drive)?;
                let dev = iso::device_path(drive);
                let (bad, burnt) = iso::read_back_whole(&dev, &files, size)?;
                refuse_read_back(&dev, &bad)?;
                if burnt != image_sha {
                    return Err(error::mismatch(format!(
                        "the disc in {drive} holds every file as written, but not the image as written (its first {size} \
                         bytes have SHA-256 {burnt}, the image {image_sha}); it is not recorded: burn a new disc"
                    )));
                }
                disc.insert("kind".into(), json!("disc"));
                disc.insert("drive".into(), json!(drive));
            } else {
                disc.insert("kind".into(), json!("image"));
            }
            match fin {
                Some(fin) => {
                    // Never over a file that appeared there meanwhile.
                    if !crate::fsutil::rename_noreplace(&image, &fin)
                        .map_err(|e| crate::store::env_io(e, &fin, "cannot create"))?
                    {
                        return Err(error::input(format!(
                            "{} appeared while the image was made: a disc image is never written over; name a new \
                             file. Nothing was recorded",
                            fin.display()
                        )));
                    }
                    image_files.paths.retain(|p| *p != image);
                    image_files.paths.push(fin.clone());
                    let parent = fin.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
                    crate::fsutil::fsync_dir(parent).map_err(|e| crate::store::env_io(e, parent, "cannot sync"))?;
                    disc.insert("path".into(), json!(crate::fsutil::path_text(&fin)));
                    match target {
                        Target::Burn { drive, .. } => format!("{drive} (image kept at {})", fin.display()),
                        _ => fin.display().to_string(),
                    }
                }
                None => match target {
                    Target::Burn { drive, .. } => drive.clone(),
                    _ => unreachable!("an image target keeps its image"),
                },
            }
        }
    };
    disc.insert("formats".into(), json!(formats));
    Ok(Laid { label, files, bundle, medium: disc, where_to })
}

/// A medium that did not read back as written is reported, never recorded.
fn refuse_read_back(medium: &Path, bad: &[String]) -> Result<()> {
    if bad.is_empty() {
        return Ok(());
    }
    Err(error::mismatch(format!(
        "the medium at {} did not read back as written, so it is not recorded and what was written is removed:\n  {}",
        medium.display(),
        bad.join("\n  ")
    )))
}

pub fn run(args: MediaArgs, ctx: &Ctx) -> Result<Report> {
    let (profile, profile_sha) = Profile::load(&args.profile)?;
    let target = Target::of(&args)?;
    target.check()?;
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
    // A disc's names are Joliet's (what Windows reads) too, whatever the profile's filesystem.
    let mut filesystems = vec![profile.filesystem];
    if !matches!(target, Target::Folder(_)) && profile.filesystem != medium::Filesystem::Iso9660 {
        filesystems.push(medium::Filesystem::Iso9660);
    }
    // Playback copies to make: (item, whether its streams must be re-encoded).
    let mut to_copy: Vec<(String, bool)> = Vec::new();
    let mut reuse: Vec<(String, String)> = Vec::new();
    // Items whose playback copy is made in parts: (item, whether the parts replace it).
    let mut to_split: Vec<(String, bool)> = Vec::new();
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
        // A native original travels whole where the profile takes natives (only the medium's
        // filesystem limits it); any other file over the limit is split, or refused.
        let av = medium::is_audio_video(&r.name, f.media.as_ref());
        if f.file.size > profile.filesystem.largest_file() {
            problems.push(format!(
                "{who}: {} bytes is more than {} holds in one file ({} bytes); it cannot travel on this medium",
                f.file.size,
                profile.filesystem.name(),
                profile.filesystem.largest_file()
            ));
        } else if f.file.size > profile.max_file_size && !(original && profile.native_originals) {
            if av && plays[i] && !args.no_split {
                to_split.push((r.id.clone(), true));
            } else {
                problems.push(format!(
                    "{who}: {} bytes is over the profile's limit of {} bytes a file{}",
                    f.file.size,
                    profile.max_file_size,
                    if av && plays[i] {
                        "; without --no-split it is split at keyframes into parts under the limit"
                    } else {
                        ""
                    }
                ));
            }
        }
        for part in [r.case.as_str(), r.exhibit.as_str()].into_iter().chain(r.name.split('/')) {
            for fs in filesystems.iter().copied() {
                if let Some(why) = medium::bad_name(part, fs) {
                    problems.push(format!(
                        "{who}: the name {part:?} is not allowed on {} ({why}); the medium cannot hold it",
                        fs.name()
                    ));
                    break;
                }
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
                for child in f.children.iter().filter(|c| medium::part_of(&c.name).is_none()) {
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
                // once the rest of the medium is known to pass; in parts, cut at keyframes,
                // when one copy would be over the profile's limit.
                if f.file.size <= profile.max_file_size {
                    to_copy.push((r.id.clone(), false));
                } else if !args.no_split {
                    to_split.push((r.id.clone(), false));
                } else {
                    problems.push(format!(
                        "{who}: its playback copy would be about {} bytes, over the profile's limit of {} bytes a file; \
                         without --no-split it is made in parts cut at keyframes",
                        f.file.size, profile.max_file_size
                    ));
                }
            } else if !copy && f.media.as_ref().is_some_and(|m| m.decodable) {
                // Its codecs play in no browser (MJPEG, MPEG-2, HEVC, PCM in AVI…): a copy
                // re-encoded to H.264/AAC in MP4, recorded as an exact clip of every frame.
                to_copy.push((r.id.clone(), true));
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
                    "{who}: plays on no court PC ({}, {}), and custody cannot decode it to make a playback copy; convert \
                     it with the maker's player and ingest the copy, or leave it out (item {})",
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
    let mut written = Written { dir: PathBuf::new(), created_dir: false, paths: Vec::new(), done: false };
    if let Target::Folder(out) = &target {
        written = Written { dir: out.clone(), created_dir: !out.exists(), paths: Vec::new(), done: false };
        if written.created_dir {
            fs::create_dir_all(out).map_err(|e| crate::store::env_io(e, out, "cannot create"))?;
        }
        crate::fsutil::writable(out).map_err(|e| crate::store::env_io(e, out, "cannot write to"))?;
    }
    // The image's folder too (the image is written beside its final name, then renamed).
    let mut image_files = Written { dir: PathBuf::new(), created_dir: false, paths: Vec::new(), done: false };
    if let Target::Image(p) | Target::Burn { keep: Some(p), .. } = &target {
        let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        crate::fsutil::writable(parent).map_err(|e| crate::store::env_io(e, parent, "cannot write to"))?;
    }

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
    // (original, copy, re-encoded)
    let mut copies: Vec<(String, String, bool)> = Vec::new();
    for (id, encode) in &to_copy {
        let made = if *encode {
            encoded_copy(&store, &ledger, ctx, id, &profile.name)?
        } else {
            super::rewrap::run(
                crate::cli::RewrapArgs {
                    item: id.clone(),
                    out: None,
                    verify_whole: false,
                    note: Some(format!("playback copy for a court medium (profile {})", profile.name)),
                },
                ctx,
            )?
        };
        let copy_id = made.json["item"].as_str().unwrap_or_default().to_owned();
        let row = item::resolve(&ledger, &copy_id)?;
        let mut f = super::show::item_facts(&ledger, &row)?;
        if f.media.is_none() {
            f.media = crate::derive::Source::open(&store, &ledger, &row.id)?.media;
        }
        if !medium::plays_natively(&row.name, f.media.as_ref()) {
            return Err(error::input(format!(
                "{id}: its playback copy {copy_id} {} (recorded as a derived item) still plays on no court PC; make \
                 one with `custody clip {id} --mode exact` and select it. Nothing was written",
                row.name,
            )));
        }
        // A copy that came out over the limit (MP4 is larger than the raw stream it holds) is
        // split too; the whole copy stays recorded but does not travel.
        if f.file.size > profile.max_file_size && !args.no_split {
            to_split.push((copy_id.clone(), true));
        }
        copies.push((id.clone(), copy_id, *encode));
        rows.push(row);
        facts.push(f);
    }

    // Recordings over the limit: their parts (made now, or made by an earlier medium).
    let mut parts_made: Vec<(String, Vec<String>, bool)> = Vec::new();
    for (id, replace) in &to_split {
        let (ids, made) = split(&store, &ledger, ctx, id, profile.max_file_size, &profile.name)?;
        if *replace {
            facts.retain(|f| &f.row.id != id);
            rows.retain(|r| &r.id != id);
        }
        for part in &ids {
            let row = item::resolve(&ledger, part)?;
            let mut f = super::show::item_facts(&ledger, &row)?;
            if f.media.is_none() {
                f.media = crate::derive::Source::open(&store, &ledger, &row.id)?.media;
            }
            rows.push(row);
            facts.push(f);
        }
        parts_made.push((id.clone(), ids, made));
    }

    // The bundle, made once into the store's scratch space, is the source of every file; a
    // disc's files are laid out there too, then written as one image.
    let scratch = tempfile::Builder::new()
        .prefix(".media-")
        .tempdir_in(store.root().join("tmp"))
        .map_err(|e| crate::store::env_io(e, &store.root().join("tmp"), "cannot create a scratch folder in"))?;
    let actor = ctx.actor();
    let cases: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.case.as_str()).collect();
    let case_text = cases.iter().copied().collect::<Vec<_>>().join(", ");
    let job = Job {
        store: &store,
        ledger: &ledger,
        actor: &actor,
        args: &args,
        profile: &profile,
        facts: &facts,
        copies: &copies,
        filesystems: &filesystems,
    };
    // The custody records, report and filesystem of each disc take room the plan can only
    // estimate: a disc that comes out larger than the disc holds has the whole set planned
    // again with no disc holding more exhibits than fitted on that one, and the images made
    // so far are removed.
    let mut laid: Vec<Laid> = Vec::new();
    let mut cap = u64::MAX;
    let mut m = 1;
    for attempt in 1.. {
        let sets = plan_discs(&rows, &facts, args.disc, cap)?;
        m = sets.len();
        if m > 1 && matches!(target, Target::Burn { .. }) {
            return Err(error::input(format!(
                "the medium needs {m} {} discs: write the set as images (--out NAME.iso --disc {}), burn each, and check \
                 each burnt disc with `custody verify` (nothing was written{})",
                args.disc.map_or("", |d| d.name()),
                args.disc.map_or("", |d| d.name()),
                if copies.is_empty() { "" } else { "; the playback copies made are recorded and will be used again" }
            )));
        }
        let mut over = None;
        for (k, rows_k) in sets.into_iter().enumerate() {
            let label_k = match (&args.label, m) {
                (Some(l), 1) => l.clone(),
                (Some(l), _) => format!("{l}, disc {} of {m}", k + 1),
                (None, _) => format!("Case {case_text}, disc {} of {m}", k + 1),
            };
            let target_k = match &target {
                Target::Image(p) if m > 1 => Target::Image(numbered(p, k + 1, m)),
                Target::Image(p) => Target::Image(p.clone()),
                Target::Folder(p) => Target::Folder(p.clone()),
                Target::Burn { drive, keep } => Target::Burn { drive: drive.clone(), keep: keep.clone() },
            };
            if let Target::Image(p) = &target_k
                && m > 1
            {
                Target::Image(p.clone()).check()?;
            }
            let out = match &target_k {
                Target::Folder(out) => out.clone(),
                _ => {
                    let staging = scratch.path().join(format!("try{attempt}-disc{}", k + 1));
                    fs::create_dir(&staging).map_err(|e| crate::store::env_io(e, &staging, "cannot create"))?;
                    written.dir = staging.clone();
                    staging
                }
            };
            let content: u64 =
                rows_k.iter().map(|r| facts.iter().find(|f| f.row.id == r.id).map_or(0, |f| f.file.size)).sum();
            let one = lay_out(&job, rows_k, &target_k, &label_k, scratch.path(), &out, &mut written, &mut image_files)?;
            if let (Some(disc), Some(size)) = (args.disc, one.medium.get("image_size").and_then(|s| s.as_u64()))
                && size > disc.bytes()
            {
                over = Some((one.label.clone(), size, content.saturating_sub(size - disc.bytes())));
                break;
            }
            laid.push(one);
        }
        let Some((label_k, size, fits)) = over else { break };
        for p in image_files.paths.drain(..) {
            let _ = fs::remove_file(p);
        }
        laid.clear();
        cap = cap.min(fits);
        if attempt == 4 {
            let disc = args.disc.expect("a disc size");
            return Err(error::input(format!(
                "{label_k} would be {size} bytes, more than a {} disc holds ({} bytes), however the exhibits are \
                 spread: nothing was written; choose a larger disc",
                disc.name(),
                disc.bytes()
            )));
        }
    }

    let all_files: Vec<(usize, &(String, String, u64))> =
        laid.iter().enumerate().flat_map(|(k, l)| l.files.iter().map(move |f| (k + 1, f))).collect();
    let bytes: u64 = all_files.iter().map(|(_, f)| f.2).sum();
    let head_then = laid[0].bundle.head.to_string();
    let label = match (&args.label, m) {
        (_, 1) => laid[0].label.clone(),
        (Some(l), _) => l.clone(),
        (None, _) => format!("Case {case_text}, {m} discs"),
    };
    let medium_json = if m == 1 {
        serde_json::Value::Object(laid[0].medium.clone())
    } else {
        json!({"kind": "image", "discs": laid.iter().enumerate().map(|(k, l)| {
            let mut d = l.medium.clone();
            d.insert("disc".into(), json!(k + 1));
            d.insert("of".into(), json!(m));
            d.insert("label".into(), json!(l.label));
            d.insert("files".into(), json!(l.files.len()));
            d.insert("bytes".into(), json!(l.files.iter().map(|f| f.2).sum::<u64>()));
            serde_json::Value::Object(d)
        }).collect::<Vec<_>>()})
    };
    let where_to = laid.iter().map(|l| l.where_to.as_str()).collect::<Vec<_>>().join(", ");

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
    let file_list: Vec<serde_json::Value> = all_files
        .iter()
        .map(|(k, (p, s, n))| {
            if m == 1 {
                json!({"path": p, "sha256": s, "size": n})
            } else {
                json!({"disc": k, "path": p, "sha256": s, "size": n})
            }
        })
        .collect();
    let mut params = serde_json::Map::new();
    params.insert(
        "profile".into(),
        json!({"name": profile.name, "sha256": profile_sha, "description": profile.description}),
    );
    params.insert("label".into(), json!(label));
    params.insert("medium".into(), medium_json.clone());
    params.insert("recipient".into(), json!(args.recipient));
    params.insert("purpose".into(), json!(args.purpose));
    params.insert("ledger_head".into(), json!(head_then));
    params.insert(
        "playback_copies".into(),
        json!(
            copies
                .iter()
                .map(|(of, copy, encoded)| json!({"item": copy, "of": of, "made": true, "re_encoded": encoded}))
                .chain(reuse.iter().map(|(of, copy)| json!({"item": copy, "of": of, "made": false})))
                .chain(parts_made.iter().flat_map(|(of, parts, made)| {
                    let n = parts.len();
                    parts
                        .iter()
                        .enumerate()
                        .map(move |(k, p)| json!({"item": p, "of": of, "made": made, "part": k + 1, "parts": n}))
                }))
                .collect::<Vec<_>>()
        ),
    );
    params.insert("files".into(), json!(file_list));
    let read_back = json!({"files": all_files.len(), "bytes": bytes, "result": "matched"});
    params.insert("read_back".into(), read_back.clone());
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
    image_files.done = true;

    let mut text = if m == 1 {
        format!(
            "Wrote the medium \"{label}\" to {where_to} for profile {} ({}): {} file(s), {}; every file read back and \
             matched\n",
            profile.name,
            profile.description,
            all_files.len(),
            human_size(bytes)
        )
    } else {
        format!(
            "Wrote the medium \"{label}\" as {m} {} discs for profile {} ({}): {} file(s), {}; every file of every disc \
             read back and matched\n",
            args.disc.map_or("", |d| d.name()),
            profile.name,
            profile.description,
            all_files.len(),
            human_size(bytes)
        )
    };
    for (of, copy, encoded) in &copies {
        text.push_str(&format!(
            "  made the playback copy {copy} of {of} ({}, recorded)\n",
            if *encoded {
                "re-encoded to H.264 in MP4: its codecs play in no browser"
            } else {
                "a lossless rewrap into MP4"
            }
        ));
    }
    for (of, copy) in &reuse {
        text.push_str(&format!("  used the playback copy {copy} of {of}, made earlier\n"));
    }
    for (of, parts, made) in &parts_made {
        text.push_str(&format!(
            "  {} the playback copy of {of} in {} parts cut at keyframes, each at most {} bytes: {}\n",
            if *made { "made" } else { "used" },
            parts.len(),
            profile.max_file_size,
            parts.join(", ")
        ));
    }
    for l in &laid {
        if m > 1 {
            text.push_str(&format!("  {}: {}\n", l.label, l.where_to));
        }
        let indent = if m > 1 { "    " } else { "  " };
        for f in l.bundle.files.iter() {
            text.push_str(&format!("{indent}{:<5} {}  sha256 {}\n", f.item, f.path, f.sha256));
        }
        if let Some(sha) = l.medium.get("image_sha256").and_then(|v| v.as_str()) {
            text.push_str(&format!(
                "{indent}disc image: volume {}, {} bytes, sha256 {sha}{}\n",
                l.medium["volume"].as_str().unwrap_or_default(),
                l.medium["image_size"],
                if matches!(target, Target::Burn { .. }) { " (the disc read back the same)" } else { "" }
            ));
        }
        match (&target, profile.custody_files) {
            (Target::Folder(out), true) => text.push_str(&format!(
                "{indent}open {} in a browser; check it with: custody verify {}\n",
                out.join("index.html").display(),
                out.display()
            )),
            (Target::Image(_) | Target::Burn { keep: Some(_), .. }, true) => {
                if let Some(p) = l.medium.get("path").and_then(|p| p.as_str()) {
                    text.push_str(&format!("{indent}check it with: custody verify {p}\n"))
                }
            }
            _ => {}
        }
    }
    text.push_str(&head_to_keep(&head));
    let json = json!({"schema_version": 1, "command": "media", "profile": profile.name, "out": where_to, "medium": medium_json,
        "label": label, "files": file_list, "read_back": read_back, "ledger_head": laid[0].bundle.head, "head": head});
    Ok(Report::ok(text, json))
}

/// `NAME_disc2of3.iso` for disc 2 of a set of 3 written to NAME.iso.
fn numbered(image: &Path, k: usize, m: usize) -> PathBuf {
    let stem = image.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = image.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_else(|| "iso".into());
    image.with_file_name(format!("{stem}_disc{k}of{m}.{ext}"))
}

/// Which items go on which disc, when `disc` says how much one holds: the exhibits in order,
/// each exhibit's files together on one disc where they fit on one, else item by item. Room is
/// kept on each disc for the report, the custody records and the filesystem (1/50, and 1/8 up
/// to 64 MiB); no disc holds more than `cap` bytes of exhibits.
fn plan_discs(
    rows: &[crate::ledger::ItemRow],
    facts: &[super::show::ItemFacts],
    disc: Option<crate::cli::DiscSize>,
    cap: u64,
) -> Result<Vec<Vec<crate::ledger::ItemRow>>> {
    let Some(disc) = disc else { return Ok(vec![rows.to_vec()]) };
    let room = (disc.bytes() - disc.bytes() / 50 - (disc.bytes() / 8).min(64 << 20)).min(cap);
    let size = |r: &crate::ledger::ItemRow| facts.iter().find(|f| f.row.id == r.id).map_or(0, |f| f.file.size);
    let mut groups: Vec<(String, Vec<&crate::ledger::ItemRow>)> = Vec::new();
    for r in rows {
        let key = format!("{}:{}", r.case, r.exhibit);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    let mut discs: Vec<(u64, Vec<crate::ledger::ItemRow>)> = vec![(0, Vec::new())];
    for (exhibit, group) in groups {
        let total: u64 = group.iter().map(|r| size(r)).sum();
        let whole = total <= room;
        if whole && discs.last().is_some_and(|(used, _)| used + total > room) {
            discs.push((0, Vec::new()));
        }
        for r in group {
            let n = size(r);
            if n > room {
                return Err(error::input(format!(
                    "{} {} ({exhibit}) is {n} bytes: more than a {} disc holds beside the custody records ({room} bytes); \
                     choose a larger disc, or a drive",
                    r.id,
                    r.name,
                    disc.name()
                )));
            }
            if discs.last().is_some_and(|(used, _)| used + n > room) {
                discs.push((0, Vec::new()));
            }
            let last = discs.last_mut().expect("a disc");
            last.0 += n;
            last.1.push(r.clone());
        }
    }
    Ok(discs.into_iter().map(|(_, r)| r).filter(|r| !r.is_empty()).collect())
}
