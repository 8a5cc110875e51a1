//! `custody verify`: check the whole store. The chain is recomputed from the stored bytes
//! (stored hashes are never trusted), the items index is rebuilt from the events and compared,
//! every object is re-hashed against the digests its event recorded, and missing objects,
//! unexpected files and orphans are listed separately. docs/verify.md says what a pass does
//! not prove.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use anyhow::Result;
use serde_json::json;

use super::{Ctx, Report, byte_progress, human_size};
use crate::cli::VerifyArgs;
use crate::digest::{self, Algorithm};
use crate::error::Exit;
use crate::ledger::chain::ChainVerifier;
use crate::ledger::{FileRef, Head, ItemRow, item_rows};
use crate::store::{self, Store};

/// One problem found, with what it concerns: the same record for a store (kinds schema, ledger,
/// index, missing, modified, orphan, unexpected) and a bundle.
pub use crate::bundle::check::Finding as Problem;

/// End the report: `ok` when nothing was found, else every problem and the first one named.
fn verdict(text: &mut String, problems: &[Problem], ok: &str) -> Exit {
    if problems.is_empty() {
        text.push_str(ok);
        return Exit::Success;
    }
    text.push_str(&format!("FAILED: {} problem{} found\n", problems.len(), if problems.len() == 1 { "" } else { "s" }));
    for p in problems {
        text.push_str(&format!("  {:<10} {}\n", p.kind, p.message));
    }
    text.push_str(&format!("First problem: {}", problems[0].message));
    Exit::Mismatch
}

/// What the ledger says an object must be.
struct Expected {
    blake3: String,
    size: u64,
    items: Vec<String>,
    seq: u64,
}

pub fn run(args: VerifyArgs, ctx: &Ctx) -> Result<Report> {
    if let Some(bundle) = &args.bundle {
        return verify_bundle(bundle, &args);
    }
    let store = ctx.store()?;
    // Read-only: verify works on an archived copy on read-only or write-once media.
    let (ledger, schema_problems) = store.read_ledger_unchecked()?;
    let read_only = store.read_only();
    let mut problems: Vec<Problem> = schema_problems
        .iter()
        .map(|p| Problem {
            kind: "schema",
            subject: "ledger.db".into(),
            message: format!("the ledger's schema was altered: {p}"),
        })
        .collect();
    // Finish or undo what killed commands left behind, before looking (never on a ledger
    // whose schema was tampered with: nothing is written into a store under suspicion; nor on
    // a store this process cannot write, which is checked as it stands).
    let recovery = if problems.is_empty() && read_only.is_none() { Some(store.recover(&ledger)?) } else { None };

    let mut chain = ChainVerifier::new(args.against.clone());
    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
    let mut index: Vec<ItemRow> = Vec::new();
    let mut bindings: Vec<Binding> = Vec::new();
    let read = ledger.for_each_row(|row| {
        if let Some(ev) = chain.check(&row) {
            if ev.action == "push" {
                bindings.push(Binding::of(&ev));
            }
            for out in &ev.outputs {
                let e = expected.entry(out.sha256.clone()).or_insert_with(|| Expected {
                    blake3: out.blake3.clone(),
                    size: out.size,
                    items: Vec::new(),
                    seq: ev.seq,
                });
                if let Some(id) = &out.item {
                    e.items.push(id.clone());
                }
            }
            index.extend(item_rows(&ev));
        }
        Ok(())
    });
    if let Err(e) = read {
        problems.push(Problem {
            kind: "ledger",
            subject: "ledger.db".into(),
            message: format!("the events cannot be read: {e:#}"),
        });
    }
    let head = chain.finish();
    for p in &chain.problems {
        problems.push(Problem { kind: "ledger", subject: event_subject(p), message: p.to_string() });
    }
    match ledger.items() {
        Ok(mut actual) => {
            actual.sort_by(|a, b| a.id.cmp(&b.id));
            index.sort_by(|a, b| a.id.cmp(&b.id));
            if actual != index {
                let a: BTreeSet<_> = actual.iter().map(|r| format!("{r:?}")).collect();
                let b: BTreeSet<_> = index.iter().map(|r| format!("{r:?}")).collect();
                let first = a.symmetric_difference(&b).next().cloned().unwrap_or_default();
                problems.push(Problem {
                    kind: "index",
                    subject: "items".into(),
                    message: format!("the items index does not match the events (first difference: {first})"),
                });
            }
        }
        Err(e) => problems.push(Problem {
            kind: "index",
            subject: "items".into(),
            message: format!("the items index cannot be read: {e:#}"),
        }),
    }

    let pushed = check_pushed(&ledger, &bindings, &mut problems);

    // Objects on disk.
    let (present, unexpected) = scan_objects(&store)?;
    for u in unexpected {
        problems.push(Problem {
            kind: "unexpected",
            subject: u.clone(),
            message: format!("{u} is not an object custody wrote"),
        });
    }
    // Objects are re-hashed in SHA-256 order, so a check that stops can go on `--from` where it
    // stopped.
    let from = args.from.as_deref().unwrap_or("");
    let to_check = |sha: &str| sha >= from || sha.starts_with(from);
    let total: u64 = expected.iter().filter(|(s, _)| present.contains(*s) && to_check(s)).map(|(_, e)| e.size).sum();
    let bar = byte_progress(total, "verifying");
    let mut checked = 0u64;
    let mut skipped = 0u64;
    let mut bytes = 0u64;
    for (sha, exp) in &expected {
        let who = describe(exp);
        if !present.contains(sha) {
            problems.push(Problem {
                kind: "missing",
                subject: sha.clone(),
                message: format!("object {sha} ({who}) is missing from the store"),
            });
            continue;
        }
        if !to_check(sha) {
            skipped += 1;
            continue;
        }
        let opened = match store.bucket() {
            Some(_) => store.open_object(sha).map_err(|e| format!("{e:#}")),
            None => fs::File::open(store.object_path(sha))
                .map(|f| Box::new(f) as Box<dyn crate::outboard::ReadSeek + Send>)
                .map_err(|e| e.to_string()),
        };
        let result = opened.and_then(|mut f| {
            digest::digest_stream(&mut f, &[Algorithm::Sha256, Algorithm::Blake3], |c| {
                bar.inc(c.len() as u64);
                Ok(())
            })
            .map_err(|e| e.to_string())
        });
        if let (Err(e), Some(bucket)) = (&result, store.bucket()) {
            // The bucket could not be read (the server gone, the network down, a refusal):
            // nothing is known about this object, and the check stops here, saying where to go
            // on from.
            bar.finish_and_clear();
            return Err(crate::error::environment(format!(
                "verify stopped at object {sha} ({who}): it cannot be read from {} ({e}). {checked} object(s) were \
                 re-hashed before it. Nothing was recorded. When the bucket answers again, go on with \
                 `custody verify --from {sha}`",
                bucket.url()
            )));
        }
        checked += 1;
        match result {
            Err(e) => problems.push(Problem {
                kind: "modified",
                subject: sha.clone(),
                message: format!("object {sha} ({who}) cannot be read: {e}"),
            }),
            Ok(d) => {
                bytes += d.size;
                if !digest::hex_eq(d.sha256(), sha) || !digest::hex_eq(d.blake3(), &exp.blake3) || d.size != exp.size {
                    problems.push(Problem {
                        kind: "modified",
                        subject: sha.clone(),
                        message: format!(
                            "object {sha} ({who}) was modified: it now has SHA-256 {}, {} bytes (recorded {} bytes)",
                            d.sha256(),
                            d.size,
                            exp.size
                        ),
                    });
                }
            }
        }
    }
    bar.finish_and_clear();
    // In a bucket, objects go up before their event is appended: one no event records is the
    // upload of a command that failed or was killed before it recorded anything (running it
    // again records the same object). It is not evidence of anything, retention keeps it, and
    // it is listed, not failed.
    let mut unrecorded = Vec::new();
    for sha in present.iter().filter(|s| !expected.contains_key(*s)) {
        // An object committed after the chain was read is not an orphan.
        if ledger.references(sha).unwrap_or(false) {
            continue;
        }
        if store.bucket().is_some() {
            unrecorded.push(sha.clone());
            continue;
        }
        problems.push(Problem {
            kind: "orphan",
            subject: sha.clone(),
            message: format!("object {sha} is in the store but no event records it"),
        });
    }

    let mut text = format!("Verified store {}{}\n", store.root().display(), store.ledger_location().after_store());
    match &head {
        Some(h) => text.push_str(&format!("  ledger   {} events recomputed; head {h}\n", chain.count)),
        None => text.push_str("  ledger   no events\n"),
    }
    for p in &pushed {
        text.push_str(&format!(
            "  pushed   field chain {}: {} events recomputed, bound by {} push event(s); head {}\n",
            &p.chain[..12.min(p.chain.len())],
            p.events,
            p.pushes,
            p.head.as_ref().map_or("none".into(), |h| h.to_string())
        ));
    }
    text.push_str(&format!("  objects  {checked} re-hashed ({}), {} recorded\n", human_size(bytes), expected.len()));
    if let Some(f) = &args.from {
        text.push_str(&format!(
            "  from     {f}: the {skipped} object(s) before it in SHA-256 order were not re-hashed by this run\n"
        ));
    }
    if !unrecorded.is_empty() {
        text.push_str(&format!(
            "  bucket   {} object(s) no event records, uploaded by commands that failed before recording (kept by \
             retention; not evidence): {}\n",
            unrecorded.len(),
            unrecorded.join(", ")
        ));
    }
    if let Some(a) = &args.against {
        text.push_str(&format!("  against  {a}\n"));
    }
    if let Some(r) = &recovery
        && (r.directories > 0 || !r.completed.is_empty())
    {
        text.push_str(&format!(
            "  recovery finished {} object(s) of committed events and removed {} leftover file(s) of interrupted commands\n",
            r.completed.len(),
            r.discarded
        ));
    }
    let leftovers = if read_only.is_some() { leftover_staging(&store) } else { 0 };
    if let Some(why) = &read_only {
        text.push_str(&format!("  store    read-only ({why}): checked as it stands, nothing changed\n"));
        if leftovers > 0 {
            text.push_str(&format!(
                "  tmp/     {leftovers} staging director{} of interrupted commands left as found (recovery needs a writable store)\n",
                if leftovers == 1 { "y" } else { "ies" }
            ));
        }
    }
    let ok = if args.from.is_some() {
        "OK: the ledger chain is intact and every object re-hashed from --from on matches its digests."
    } else {
        "OK: the ledger chain is intact and every recorded object matches its digests."
    };
    let exit = verdict(&mut text, &problems, ok);
    let json = json!({
        "schema_version": 1, "command": "verify", "store": crate::fsutil::path_text(store.root()), "ok": problems.is_empty(),
        "events": chain.count, "head": head, "against": args.against, "objects_checked": checked,
        "bytes_checked": bytes, "problems": problems, "recovery": recovery, "read_only": read_only.is_some(),
        "unrecorded": unrecorded, "pushed": pushed, "from": args.from, "objects_skipped": skipped,
    });
    Ok(Report { text, json, exit, raw: None })
}

/// What one `push` event says of the field chain it binds.
struct Binding {
    seq: u64,
    chain: String,
    head: Option<Head>,
    after: Option<Head>,
    /// Each agency output: the field event it came from, and the file as the push recorded it.
    files: Vec<(u64, FileRef)>,
}

impl Binding {
    fn of(ev: &crate::ledger::Event) -> Binding {
        let text = |k: &str| ev.params.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let files =
            ev.outputs.iter().filter_map(|o| Some((o.facts.get("pushed")?.get("seq")?.as_u64()?, o.clone()))).collect();
        Binding {
            seq: ev.seq,
            chain: text("chain").unwrap_or_default(),
            head: text("head").and_then(|h| h.parse().ok()),
            after: text("after").and_then(|h| h.parse().ok()),
            files,
        }
    }
}

/// What `verify` reports of one pushed chain.
#[derive(serde::Serialize)]
struct Pushed {
    chain: String,
    events: u64,
    pushes: usize,
    head: Option<Head>,
}

/// Every field chain kept in the ledger: recomputed from its stored bytes as the agency's own
/// chain is, each push event's head found in it with the same hash, the pushes following one
/// another, no kept row that no push binds, and every object a push brought recorded by the
/// field event it names.
fn check_pushed(ledger: &crate::ledger::Ledger, bindings: &[Binding], problems: &mut Vec<Problem>) -> Vec<Pushed> {
    let mut chains: BTreeSet<String> = bindings.iter().map(|b| b.chain.clone()).collect();
    match ledger.pushed_chains() {
        Ok(c) => chains.extend(c),
        Err(e) => problems.push(Problem {
            kind: "pushed",
            subject: "pushed".into(),
            message: format!("the pushed chains cannot be read: {e:#}"),
        }),
    }
    let mut out = Vec::new();
    for id in chains {
        let short = id.get(..12).unwrap_or(&id).to_owned();
        let mut problem = |subject: String, message: String| {
            problems.push(Problem { kind: "pushed", subject, message: format!("field chain {short}: {message}") })
        };
        let mine: Vec<&Binding> = bindings.iter().filter(|b| b.chain == id).collect();
        // The hashes and outputs of the field events the pushes name.
        let named: BTreeSet<u64> = mine
            .iter()
            .flat_map(|b| b.head.iter().map(|h| h.seq).chain(b.after.iter().map(|h| h.seq)))
            .chain(mine.iter().flat_map(|b| b.files.iter().map(|(s, _)| *s)))
            .collect();
        let mut hashes: BTreeMap<u64, String> = BTreeMap::new();
        let mut outputs: BTreeMap<u64, Vec<FileRef>> = BTreeMap::new();
        let mut verifier = ChainVerifier::new(None);
        let read = ledger.for_each_pushed_row(&id, None, |row| {
            let ev = verifier.check(&row);
            if named.contains(&(row.seq as u64)) {
                hashes.insert(row.seq as u64, row.hash.clone());
                if let Some(ev) = ev {
                    outputs.insert(row.seq as u64, ev.outputs);
                }
            }
            Ok(())
        });
        if let Err(e) = read {
            problem("pushed".into(), format!("its events cannot be read: {e:#}"));
        }
        let head = verifier.finish();
        for p in &verifier.problems {
            problem(format!("chain {short} {}", event_subject(p)), format!("{p} (kept as pushed)"));
        }
        let mut prev: Option<&Head> = None;
        for b in &mine {
            let Some(h) = &b.head else {
                problem(format!("event {}", b.seq), format!("push event {} names no field head", b.seq));
                continue;
            };
            match hashes.get(&h.seq) {
                None => problem(
                    format!("event {}", b.seq),
                    format!(
                        "push event {} binds field event {}, which is not kept: pushed events were removed",
                        b.seq, h.seq
                    ),
                ),
                Some(found) if *found != h.hash => problem(
                    format!("event {}", b.seq),
                    format!(
                        "push event {} binds field event {} with hash {}, but the kept event has {}: the pushed chain was edited",
                        b.seq, h.seq, h.hash, found
                    ),
                ),
                Some(_) => {}
            }
            if b.after.as_ref() != prev {
                problem(
                    format!("event {}", b.seq),
                    format!(
                        "push event {} does not follow the push before it (it says it continues from {})",
                        b.seq,
                        b.after.as_ref().map_or("the start".into(), |a| a.to_string())
                    ),
                );
            }
            prev = Some(h);
            for (seq, file) in &b.files {
                let recorded = outputs.get(seq).is_some_and(|outs| {
                    outs.iter().any(|o| {
                        o.sha256 == file.sha256
                            && o.blake3 == file.blake3
                            && o.size == file.size
                            && o.item.as_deref()
                                == file.facts.get("pushed").and_then(|p| p.get("item")).and_then(|i| i.as_str())
                    })
                });
                if !recorded {
                    problem(
                        format!("event {}", b.seq),
                        format!(
                            "push event {} records object {} as brought by field event {seq}, which does not record it",
                            b.seq, file.sha256
                        ),
                    );
                }
            }
        }
        match (&head, prev) {
            (Some(last), Some(bound)) if last.seq > bound.seq => problem(
                "pushed".into(),
                format!("field events {}..{} are kept, but no push event binds them", bound.seq + 1, last.seq),
            ),
            (Some(last), None) => {
                problem("pushed".into(), format!("field events 1..{} are kept, but no push event binds them", last.seq))
            }
            _ => {}
        }
        out.push(Pushed { chain: id.clone(), events: verifier.count, pushes: mine.len(), head });
    }
    out
}

/// Staging directories interrupted commands left in `tmp/`.
fn leftover_staging(store: &Store) -> usize {
    fs::read_dir(store.root().join(store::TMP_DIR)).map_or(0, |d| d.flatten().count())
}

fn describe(e: &Expected) -> String {
    if e.items.is_empty() {
        format!("recorded by event {}", e.seq)
    } else {
        format!("item {}, event {}", e.items.join(", "), e.seq)
    }
}

fn event_subject(p: &crate::ledger::chain::ChainError) -> String {
    let s = p.to_string();
    s.split(':').next().unwrap_or("ledger").to_owned()
}

/// The objects present (by SHA-256) and every file or directory under `objects/` or at the
/// store's top level that custody did not write.
fn scan_objects(store: &Store) -> Result<(BTreeSet<String>, Vec<String>)> {
    let mut present = BTreeSet::new();
    let mut unexpected = Vec::new();
    let known = [
        store::LEDGER_FILE,
        store::DESCRIPTOR,
        "ledger.db-wal",
        "ledger.db-shm",
        "ledger.db-journal",
        store::OBJECTS_DIR,
        store::TMP_DIR,
        store::LOCK_FILE,
        crate::media::index::cache::DIR,
        crate::outboard::DIR,
    ];
    for entry in fs::read_dir(store.root())? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !known.contains(&name.as_str()) {
            unexpected.push(name);
        }
    }
    if let Some(bucket) = store.bucket() {
        // The bucket's `objects/` below the store's prefix.
        let (found, other) = bucket.list(store::OBJECTS_DIR)?;
        for (sha, key) in found {
            if store::is_sha256(&sha) {
                present.insert(sha);
            } else {
                unexpected.push(bucket.shown(&key));
            }
        }
        unexpected.extend(other.iter().map(|k| bucket.shown(k)));
        return Ok((present, unexpected));
    }
    let objects = store.objects_dir();
    for entry in fs::read_dir(&objects)? {
        let entry = entry?;
        let fan = entry.file_name().to_string_lossy().into_owned();
        let rel = Path::new(store::OBJECTS_DIR).join(&fan);
        let fan_ok = fan.len() == 2 && fan.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !entry.file_type()?.is_dir() || !fan_ok {
            unexpected.push(rel.display().to_string());
            continue;
        }
        for obj in fs::read_dir(entry.path())? {
            let obj = obj?;
            let name = obj.file_name().to_string_lossy().into_owned();
            let sha = format!("{fan}{name}");
            if obj.file_type()?.is_file() && store::is_sha256(&sha) {
                present.insert(sha);
            } else {
                unexpected.push(rel.join(&name).display().to_string());
            }
        }
    }
    Ok((present, unexpected))
}

/// `custody verify BUNDLE`: a bundle on its own, no store needed.
fn verify_bundle(path: &Path, args: &VerifyArgs) -> Result<Report> {
    let outcome = crate::bundle::check::check(path)?;
    let mut problems = outcome.problems.clone();
    if let Some(a) = &args.against
        && outcome.head.as_deref() != Some(a.to_string().as_str())
    {
        problems.push(Problem {
            kind: "ledger",
            subject: "bag-info.txt".into(),
            message: format!(
                "the bundle was made at ledger head {}, not at the head written down ({a})",
                outcome.head.as_deref().unwrap_or("none")
            ),
        });
    }
    let mut text = format!("Verified bundle {} (bag {})\n", path.display(), outcome.bag);
    text.push_str(&format!(
        "  payload  {} file(s), {} checked against manifest-sha256.txt\n",
        outcome.files,
        human_size(outcome.bytes)
    ));
    text.push_str(&format!(
        "  ledger   {} event(s) re-hashed and chained to head {}\n",
        outcome.events,
        outcome.head.as_deref().unwrap_or("(none stated)")
    ));
    let exit = verdict(
        &mut text,
        &problems,
        "OK: every file matches the manifests and the events that recorded it; the ledger excerpt is intact.",
    );
    let json = json!({"schema_version": 1, "command": "verify", "bundle": crate::fsutil::path_text(path), "bag": outcome.bag, "ok": problems.is_empty(),
        "files": outcome.files, "bytes_checked": outcome.bytes, "events": outcome.events,
        "head": outcome.head.as_deref().and_then(|h| h.parse::<crate::ledger::Head>().ok()),
        "against": args.against, "problems": problems});
    Ok(Report { text, json, exit, raw: None })
}
