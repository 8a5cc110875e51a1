//! `custody hash`: multi-digest hashing in one read per file, sum lists that `sha256sum -c`
//! and `b3sum -c` accept, and `--check` of such lists.
//!
//! Security-relevant: `--check` treats the list as untrusted input. Every line must parse
//! (a malformed line is a failure, never skipped), digests are compared in constant time,
//! and a listed file that is missing is a failure, never a skip.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::{Map, Value, json};

use super::{Ctx, Report, byte_progress, head_line};
use crate::cli::HashArgs;
use crate::digest::{self, Algorithm, Digests};
use crate::error::{self, Exit};
use crate::fsutil::path_text;
use crate::item::validate_id;
use crate::ledger::{Draft, FileRef};
use crate::store::env_io;

pub fn run(args: HashArgs, ctx: &Ctx) -> Result<Report> {
    if let Some(list) = &args.check {
        return check(list, &args.algos);
    }
    if args.frames {
        return frames(&args, ctx);
    }
    let mut algos: Vec<Algorithm> =
        if args.algos.is_empty() { vec![Algorithm::Sha256, Algorithm::Blake3] } else { args.algos.clone() };
    if args.record {
        validate_id("case number", args.case.as_deref().unwrap_or_default())?;
        algos.extend([Algorithm::Sha256, Algorithm::Blake3]);
    }
    let mut seen = Vec::new();
    algos.retain(|a| {
        if seen.contains(a) {
            false
        } else {
            seen.push(*a);
            true
        }
    });
    let shown: Vec<Algorithm> =
        if args.algos.is_empty() { vec![Algorithm::Sha256, Algorithm::Blake3] } else { seen.clone() };
    // With --record the store must exist before any work is done.
    let store = if args.record { Some(ctx.store()?) } else { None };
    let mut ledger = store.as_ref().map(|s| s.open_ledger()).transpose()?;

    let (files, skipped) = collect(&args.paths)?;
    for s in &skipped {
        let why = if s.target.is_some() {
            "a symbolic link is not followed (ingest records it as a link)"
        } else {
            "not a regular file"
        };
        eprintln!("custody: skipped {}: {why}", s.describe());
    }
    let total = files.iter().map(|(_, size)| size).sum();
    let bar = byte_progress(total, "hashing");
    let mut results: Vec<(PathBuf, Digests)> = Vec::new();
    for (path, _) in &files {
        let mut f = crate::fsutil::open_source(path).map_err(|e| read_error(path, &e))?;
        let d = digest::digest_file(&mut f, &algos, &|n| bar.inc(n), false)
            .map_err(|e| error::environment(format!("{}: {e}", path.display())))?;
        results.push((path.clone(), d));
    }
    bar.finish_and_clear();

    let mut raw = Vec::new();
    for (path, d) in &results {
        for &algo in &shown {
            raw.extend(sum_line(algo, d.get(algo).unwrap_or_default(), path, shown.len() > 1));
        }
    }
    if let Some(dir) = &args.sums {
        fs::create_dir_all(dir).map_err(|e| env_io(e, dir, "cannot create"))?;
        for &algo in &shown {
            let mut list = Vec::new();
            for (path, d) in &results {
                list.extend(sum_line(algo, d.get(algo).unwrap_or_default(), path, false));
            }
            let target = dir.join(algo.sums_file());
            fs::write(&target, list).map_err(|e| env_io(e, &target, "cannot write"))?;
        }
    }
    let files_json: Vec<Value> = results
        .iter()
        .map(|(p, d)| {
            let mut m = serde_json::to_value(d).expect("digests serialize");
            m["path"] = json!(path_text(p));
            m
        })
        .collect();
    let skipped_json: Vec<Value> = skipped
        .iter()
        .map(|s| json!({"path": path_text(&s.path), "kind": s.kind, "target": s.target.as_deref().map(path_text)}))
        .collect();
    let mut json = json!({"schema_version": 1, "command": "hash", "files": files_json, "skipped": skipped_json});
    if let (Some(store), Some(ledger)) = (&store, ledger.as_mut()) {
        let actor = ctx.actor();
        let inputs: Vec<FileRef> = results
            .iter()
            .map(|(p, d)| {
                let mut facts = Map::new();
                for algo in [Algorithm::Md5, Algorithm::Sha1, Algorithm::Sha512] {
                    if let Some(h) = d.get(algo) {
                        facts.insert(algo.name().into(), json!(h));
                    }
                }
                let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
                FileRef {
                    item: None,
                    name: Some(path_text(&abs)),
                    sha256: d.sha256().into(),
                    blake3: d.blake3().into(),
                    size: d.size,
                    facts,
                }
            })
            .collect();
        let mut params = Map::new();
        params.insert("algorithms".into(), json!(algos.iter().map(|a| a.name()).collect::<Vec<_>>()));
        let staging = store.stage()?;
        let (head, _) = store.commit(ledger, &actor, staging, |_| {
            Ok(Draft {
                action: "hash".into(),
                case: args.case.clone(),
                inputs,
                params,
                note: args.note.clone(),
                ..Draft::default()
            })
        })?;
        let line = format!(
            "recorded the digests of {} file{} in the ledger\n{}\n",
            results.len(),
            if results.len() == 1 { "" } else { "s" },
            head_line(&head)
        );
        eprint!("{line}");
        json["head"] = json!(head);
    }
    Ok(Report { text: String::new(), json, exit: Exit::Success, raw: Some(raw) })
}

/// The files to hash, in order, with their sizes.
type Files = Vec<(PathBuf, u64)>;

/// What a directory walk passed over: a symbolic link (with its target) or a special file.
struct Skipped {
    path: PathBuf,
    kind: &'static str,
    target: Option<PathBuf>,
}

/// The files under `paths`, in order, with sizes, and what was skipped. Directories are walked
/// (sorted). Symbolic links are listed and never followed, named or found in a directory, as
/// ingest records them without following: a link to a file elsewhere would otherwise be hashed
/// as part of the directory, and the list would not match what ingest takes. A path that does
/// not exist is an input error, and so is one that leaves nothing to hash.
fn collect(paths: &[PathBuf]) -> Result<(Files, Vec<Skipped>)> {
    let (mut out, mut skipped) = (Vec::new(), Vec::new());
    for p in paths {
        let meta = fs::symlink_metadata(p).map_err(|e| read_error(p, &e))?;
        if meta.is_dir() {
            walk(p, &mut out, &mut skipped)?;
        } else if meta.is_file() {
            out.push((p.clone(), meta.len()));
        } else {
            skip(p.clone(), &meta.file_type(), &mut skipped)?;
        }
    }
    if out.is_empty() && !skipped.is_empty() {
        return Err(error::input(format!(
            "nothing to hash: {} (symbolic links are not followed, as ingest does not follow them; name the file itself)",
            skipped.iter().map(Skipped::describe).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok((out, skipped))
}

impl Skipped {
    /// `PATH -> TARGET` for a link, `PATH (FIFO)` for a special file.
    fn describe(&self) -> String {
        match &self.target {
            Some(t) => format!("{} -> {}", self.path.display(), t.display()),
            None => format!("{} ({})", self.path.display(), self.kind),
        }
    }
}

/// List a link (with its target) or a special file as skipped.
fn skip(path: PathBuf, ft: &fs::FileType, skipped: &mut Vec<Skipped>) -> Result<()> {
    if ft.is_symlink() {
        let target = fs::read_link(&path).map_err(|e| read_error(&path, &e))?;
        skipped.push(Skipped { path, kind: "symlink", target: Some(target) });
    } else {
        skipped.push(Skipped { path, kind: crate::fsutil::special_kind(ft), target: None });
    }
    Ok(())
}

fn walk(dir: &Path, out: &mut Files, skipped: &mut Vec<Skipped>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| read_error(dir, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read_error(dir, &e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let ft = e.file_type().map_err(|er| read_error(&path, &er))?;
        if ft.is_dir() {
            walk(&path, out, skipped)?;
        } else if ft.is_file() {
            out.push((path, e.metadata().map_err(|er| read_error(dir, &er))?.len()));
        } else {
            skip(path, &ft, skipped)?;
        }
    }
    Ok(())
}

fn read_error(path: &Path, e: &std::io::Error) -> anyhow::Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => error::input(format!("{} does not exist", path.display())),
        std::io::ErrorKind::PermissionDenied => {
            error::input(format!("{} cannot be read (permission denied)", path.display()))
        }
        _ => error::environment(format!("{} cannot be read: {e}", path.display())),
    }
}

/// One checksum line, as coreutils and b3sum write it: a name holding a backslash or a line
/// break is escaped and the line starts with a backslash.
pub fn sum_line(algo: Algorithm, hex: &str, path: &Path, tagged: bool) -> Vec<u8> {
    let name = path.as_os_str().as_bytes();
    let needs_escape = name.iter().any(|&b| b == b'\\' || b == b'\n' || b == b'\r');
    let mut escaped = Vec::with_capacity(name.len());
    for &b in name {
        match b {
            b'\\' if needs_escape => escaped.extend_from_slice(b"\\\\"),
            b'\n' => escaped.extend_from_slice(b"\\n"),
            b'\r' => escaped.extend_from_slice(b"\\r"),
            _ => escaped.push(b),
        }
    }
    let mut line = Vec::new();
    if needs_escape {
        line.push(b'\\');
    }
    if tagged {
        line.extend_from_slice(format!("{} (", algo.tag()).as_bytes());
        line.extend_from_slice(&escaped);
        line.extend_from_slice(format!(") = {hex}\n").as_bytes());
    } else {
        line.extend_from_slice(hex.as_bytes());
        line.extend_from_slice(b"  ");
        line.extend_from_slice(&escaped);
        line.push(b'\n');
    }
    line
}

/// One parsed line of a checksum list.
#[derive(Debug, PartialEq, Eq)]
pub struct Expected {
    pub algo: Algorithm,
    pub hex: String,
    pub name: Vec<u8>,
}

/// Parse one line of a checksum list (GNU `hex  name`, `hex *name`, or tagged `ALGO (name) = hex`).
pub fn parse_line(line: &[u8], default64: Algorithm) -> Option<Expected> {
    let (escaped, line) = match line.strip_prefix(b"\\") {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let text_end = line.iter().position(|&b| b == b' ')?;
    let first = std::str::from_utf8(&line[..text_end]).ok()?;
    // Tagged: ALGO (name) = hex
    if let Some(algo) = Algorithm::from_tag(first)
        && line.get(text_end + 1) == Some(&b'(')
    {
        let rest = &line[text_end + 2..];
        let sep = rest.windows(4).rposition(|w| w == b") = ")?;
        let hex = std::str::from_utf8(&rest[sep + 4..]).ok()?;
        if hex.len() != algo.hex_len() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let name = if escaped { unescape(&rest[..sep])? } else { rest[..sep].to_vec() };
        return Some(Expected { algo, hex: hex.to_ascii_lowercase(), name });
    }
    // GNU: hex, space, then ' ' (text) or '*' (binary), then the name.
    if !first.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let algo = match first.len() {
        128 => Algorithm::Sha512,
        64 => default64,
        40 => Algorithm::Sha1,
        32 => Algorithm::Md5,
        _ => return None,
    };
    let mode = *line.get(text_end + 1)?;
    if mode != b' ' && mode != b'*' {
        return None;
    }
    let raw = &line[text_end + 2..];
    if raw.is_empty() {
        return None;
    }
    let name = if escaped { unescape(raw)? } else { raw.to_vec() };
    Some(Expected { algo, hex: first.to_ascii_lowercase(), name })
}

fn unescape(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.iter();
    while let Some(&b) = it.next() {
        if b == b'\\' {
            match it.next()? {
                b'\\' => out.push(b'\\'),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                _ => return None,
            }
        } else {
            out.push(b);
        }
    }
    Some(out)
}

/// `--check LIST`.
fn check(list: &Path, algos: &[Algorithm]) -> Result<Report> {
    let data = fs::read(list).map_err(|e| read_error(list, &e))?;
    let default64 = if algos == [Algorithm::Blake3] { Algorithm::Blake3 } else { Algorithm::Sha256 };
    let mut wanted: BTreeMap<Vec<u8>, Vec<(usize, Algorithm, String)>> = BTreeMap::new();
    let mut order: Vec<Vec<u8>> = Vec::new();
    let mut malformed = Vec::new();
    for (i, raw) in data.split(|&b| b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        match parse_line(line, default64) {
            Some(e) => {
                if !wanted.contains_key(&e.name) {
                    order.push(e.name.clone());
                }
                wanted.entry(e.name).or_default().push((i + 1, e.algo, e.hex));
            }
            None => malformed.push(i + 1),
        }
    }
    let mut out = Vec::new();
    let mut results = Vec::new();
    let (mut failed, mut missing, mut ok) = (0usize, 0usize, 0usize);
    for name in &order {
        let path = PathBuf::from(std::ffi::OsString::from_vec(name.clone()));
        let expected = &wanted[name];
        let mut needed: Vec<Algorithm> = expected.iter().map(|(_, a, _)| *a).collect();
        needed.sort();
        needed.dedup();
        let shown = String::from_utf8_lossy(name).into_owned();
        let digests = crate::fsutil::open_source(&path)
            .map_err(|e| e.to_string())
            .and_then(|mut f| digest::digest_stream(&mut f, &needed, |_| Ok(())).map_err(|e| e.to_string()));
        match digests {
            Err(why) => {
                missing += 1;
                out.extend(format!("{shown}: FAILED open or read ({why})\n").into_bytes());
                results.push(json!({"path": shown, "status": "missing", "reason": why}));
            }
            Ok(d) => {
                for (line, algo, hex) in expected {
                    let good = digest::hex_eq(d.get(*algo).unwrap_or_default(), hex);
                    if good {
                        ok += 1;
                    } else {
                        failed += 1;
                    }
                    let status = if good { "OK" } else { "FAILED" };
                    let tag = if expected.len() > 1 { format!(" [{}]", algo.tag()) } else { String::new() };
                    out.extend(format!("{shown}{tag}: {status}\n").into_bytes());
                    results.push(
                        json!({"path": shown, "algorithm": algo.name(), "line": line, "status": status.to_lowercase(),
                        "expected": hex, "actual": d.get(*algo)}),
                    );
                }
            }
        }
    }
    for line in &malformed {
        eprintln!("custody: {}: line {line} is not a checksum line", list.display());
    }
    if failed > 0 {
        eprintln!("custody: WARNING: {failed} computed checksum{} did NOT match", if failed == 1 { "" } else { "s" });
    }
    if missing > 0 {
        eprintln!("custody: WARNING: {missing} listed file{} could not be read", if missing == 1 { "" } else { "s" });
    }
    let mut exit = if failed + missing + malformed.len() > 0 { Exit::Mismatch } else { Exit::Success };
    if order.is_empty() && malformed.is_empty() {
        eprintln!("custody: {}: no checksum lines found", list.display());
        exit = Exit::Mismatch;
    }
    let json = json!({"schema_version": 1, "command": "hash-check", "list": path_text(list), "ok": ok, "failed": failed,
        "missing": missing, "malformed_lines": malformed, "results": results});
    Ok(Report { text: String::new(), json, exit, raw: Some(out) })
}

/// `--frames FILE|ITEM`: decoded-frame MD5s (framemd5 format) and per-stream packet hashes.
fn frames(args: &HashArgs, ctx: &Ctx) -> Result<Report> {
    let [target] = args.paths.as_slice() else {
        return Err(error::input("--frames takes exactly one FILE or ITEM"));
    };
    let (path, label, source) = if target.exists() {
        (target.clone(), path_text(target), None)
    } else {
        let store = ctx.store()?;
        let ledger = store.read_ledger()?;
        let source =
            crate::derive::Source::open(&store, &ledger, &target.to_string_lossy())?.verify_whole(args.verify_whole);
        source.require_decodable("frame hashes")?;
        (source.path.clone(), source.label(), Some(source))
    };
    let hashed = crate::media::frames::frame_hashes(&path)
        .and_then(|frames| Ok((frames, crate::media::remux::stream_hashes(&path)?)));
    // An item's object was read only through checks against its recorded BLAKE3: a mismatch
    // is the answer, whatever FFmpeg made of the bytes it was refused.
    if let Some(source) = &source {
        source.confirm()?;
    }
    let ((headers, hashes), packets) = hashed?;
    let mut text = crate::media::frames::render(&headers, &hashes);
    let mut extra = String::new();
    for p in &packets {
        extra.push_str(&format!(
            "#packets_sha256 {}: {} ({} {} packets, {} bytes)\n",
            p.input_index, p.packets_sha256, p.codec, p.packets, p.bytes
        ));
    }
    // The packet hashes go with the header lines, before the column titles.
    if let Some(at) = text.find("#stream#") {
        text.insert_str(at, &extra);
    }
    let json = json!({"schema_version": 1, "command": "hash-frames", "source": label, "streams": headers, "frames": hashes, "packets": packets});
    Ok(Report { text: String::new(), json, exit: Exit::Success, raw: Some(text.into_bytes()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_names_round_trip() {
        let path = PathBuf::from("odd\\name\nwith break");
        let line = sum_line(Algorithm::Sha256, &"a".repeat(64), &path, false);
        assert!(line.starts_with(b"\\"));
        let parsed = parse_line(line.strip_suffix(b"\n").unwrap(), Algorithm::Sha256).unwrap();
        assert_eq!(parsed.name, path.as_os_str().as_bytes());
        let tagged = sum_line(Algorithm::Blake3, &"b".repeat(64), &path, true);
        let parsed = parse_line(tagged.strip_suffix(b"\n").unwrap(), Algorithm::Sha256).unwrap();
        assert_eq!(parsed.algo, Algorithm::Blake3);
        assert_eq!(parsed.name, path.as_os_str().as_bytes());
    }

    #[test]
    fn malformed_lines_are_refused() {
        for bad in [&b"xyz  file"[..], b"abcd  file", b"SHA256 (f) = 12", &[b'a'; 64][..]] {
            assert_eq!(parse_line(bad, Algorithm::Sha256), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
