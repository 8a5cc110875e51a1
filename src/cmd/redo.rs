//! `custody redo EVENT`: re-run a recorded derivation (enhance, clip, still, redact, rewrap)
//! from its original with the recorded parameters, through the same code the command runs,
//! and compare what it makes with what was recorded: "reproduced bit for bit", or the first
//! frame that differs. Nothing is recorded.
//!
//! The chain is recomputed first, and the event re-run is the one read in that pass: an event
//! whose recorded parameters were altered after the fact breaks the chain and is refused
//! there, before anything runs. `redo` only ever trusts parameters the chain vouches for.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::ValueEnum as _;
use serde_json::{Map, Value, json};

use super::{Ctx, Report};
use crate::cli::{ClipArgs, ClipMode, EnhanceArgs, RedactArgs, RedoArgs, RewrapArgs, StillArgs};
use crate::derive::Rehearsed;
use crate::error::{self, Exit};
use crate::ledger::Event;
use crate::ledger::chain::ChainVerifier;
use crate::media::time::Position;

/// The actions `redo` can re-run.
const REDOABLE: [&str; 5] = ["enhance", "clip", "still", "redact", "rewrap"];

pub fn run(args: RedoArgs, ctx: &Ctx) -> Result<Report> {
    let store = ctx.store()?;
    let ledger = store.open_ledger()?;
    let seq = match args.event.parse::<u64>() {
        Ok(seq) => seq,
        // An item: the event that made it.
        Err(_) => {
            let row = crate::item::resolve(&ledger, &args.event)?;
            ledger.item_origin(&row)?.0.seq
        }
    };
    // The whole chain, recomputed from the stored bytes; the event comes from that pass.
    let mut chain = ChainVerifier::new(None);
    let mut event: Option<Event> = None;
    ledger.for_each_row(|row| {
        if let Some(ev) = chain.check(&row)
            && ev.seq == seq
        {
            event = Some(ev);
        }
        Ok(())
    })?;
    chain.finish();
    if let Some(p) = chain.problems.first() {
        return Err(error::mismatch(format!(
            "the ledger chain does not verify ({p}{}): the recorded parameters of event {} cannot be trusted, \
             so nothing was re-run. Run `custody verify`",
            match chain.problems.len() {
                1 => String::new(),
                2 => ", and 1 more problem".to_owned(),
                n => format!(", and {} more problems", n - 1),
            },
            seq
        )));
    }
    let Some(event) = event else {
        return Err(error::input(format!(
            "there is no event {} in this store's ledger (`custody log` lists them)",
            seq
        )));
    };
    if !REDOABLE.contains(&event.action.as_str()) {
        return Err(error::input(format!(
            "event {} is a {} event; redo re-runs derivations: {}",
            event.seq,
            event.action,
            REDOABLE.join(", ")
        )));
    }
    let parent = event
        .inputs
        .first()
        .and_then(|i| i.item.clone())
        .ok_or_else(|| error::input(format!("event {} names no input item", event.seq)))?;
    let scratch =
        tempfile::tempdir().map_err(|e| error::environment(format!("cannot create a scratch directory: {e}")))?;
    let command = command_for(&event, &parent, scratch.path())?;

    let rehearse = Ctx {
        store: Some(store.root().to_owned()),
        examiner: ctx.examiner.clone(),
        json: true,
        lock_timeout: ctx.lock_timeout,
        job: None,
        agency: ctx.agency.clone(),
        rehearse: true,
    };
    let remade = match super::run(command, &rehearse) {
        Ok(_) => {
            return Err(anyhow::anyhow!(
                "redo of event {}: the command recorded nothing and returned no outputs",
                event.seq
            ));
        }
        Err(e) => match e.downcast::<Rehearsed>() {
            Ok(r) => r,
            Err(e) => return Err(error::about(e, &format!("the re-run of event {}", event.seq))),
        },
    };

    let mut lines = Vec::new();
    let mut outputs = Vec::new();
    let mut all_same = remade.outputs.len() == event.outputs.len();
    if !all_same {
        lines.push(format!(
            "  the re-run made {} output(s); the event recorded {}",
            remade.outputs.len(),
            event.outputs.len()
        ));
    }
    for (i, recorded) in event.outputs.iter().enumerate() {
        let name = recorded.name.clone().unwrap_or_default();
        let Some((_, sha, facts)) = remade.outputs.get(i) else { continue };
        let same = *sha == recorded.sha256;
        all_same &= same;
        let mut first_difference = Value::Null;
        if same {
            lines.push(format!("  {name}  reproduced bit for bit (sha256 {})", recorded.sha256));
        } else {
            let diff = first_difference_of(&store, &remade, recorded, sha, facts);
            lines.push(format!(
                "  {name}  DIFFERS: recorded sha256 {}, re-made {sha}\n    {}",
                recorded.sha256,
                diff.as_ref().map_or_else(
                    || "no frame-by-frame comparison is possible for this file".to_owned(),
                    |d| d.0.clone()
                )
            ));
            first_difference = diff.map_or(Value::Null, |d| d.1);
        }
        if let Some(dir) = &args.out {
            let from = remade.staging.staged_path(sha);
            let from = if from.is_file() { from } else { store.object_path(sha) };
            let to = dir.join(name.rsplit('/').next().unwrap_or("output"));
            std::fs::create_dir_all(dir).and_then(|_| std::fs::copy(&from, &to)).map_err(|e| {
                error::environment(format!("cannot copy the re-made {name} into {}: {e}", dir.display()))
            })?;
        }
        outputs.push(json!({"name": name, "recorded_sha256": recorded.sha256, "sha256": sha, "identical": same,
            "first_difference": first_difference}));
    }
    let now = crate::media::library_versions();
    let changed: Vec<String> = now
        .iter()
        .filter_map(|(k, v)| match event.tools.get(k) {
            Some(was) if was != v => Some(format!("{k} {was} then, {v} now")),
            _ => None,
        })
        .collect();
    let mut text = format!(
        "Event {} ({} of {}), re-run from the original with the recorded parameters; nothing was recorded:\n{}\n",
        event.seq,
        event.action,
        parent,
        lines.join("\n")
    );
    if !changed.is_empty() {
        text.push_str(&format!("  note: the FFmpeg libraries changed since: {}\n", changed.join(", ")));
    }
    text.push_str(if all_same {
        "Reproduced bit for bit.\n"
    } else {
        "NOT reproduced: the result differs from the recorded one.\n"
    });
    let json = json!({"schema_version": 1, "command": "redo", "event": event.seq, "action": event.action,
        "parent": parent, "reproduced": all_same, "outputs": outputs, "libraries_changed": changed});
    let mut report = Report::ok(text, json);
    if !all_same {
        report.exit = Exit::Mismatch;
    }
    Ok(report)
}

/// The command the event recorded, rebuilt from its parameters.
fn command_for(event: &Event, parent: &str, scratch: &Path) -> Result<crate::cli::Command> {
    use crate::cli::Command;
    let p = &event.params;
    let text = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_owned);
    let flag = |k: &str| p.get(k).and_then(Value::as_bool).unwrap_or(false);
    let position = |k: &str| -> Result<Option<Position>> {
        text(k)
            .map(|s| {
                s.parse::<Position>().map_err(|e| {
                    error::input(format!("event {}: its recorded {k} {s:?} does not read: {e}", event.seq))
                })
            })
            .transpose()
    };
    let missing = |k: &str| error::input(format!("event {} records no {k}; it cannot be re-run", event.seq));
    Ok(match event.action.as_str() {
        "enhance" => Command::Enhance(EnhanceArgs {
            item: Some(parent.to_owned()),
            recipe: None,
            steps: Vec::new(),
            from: position("from")?,
            to: position("to")?,
            deliver: text("deliver")
                .and_then(|d| crate::media::enhance::Deliver::from_str(&d, true).ok())
                .unwrap_or(crate::media::enhance::Deliver::Lossless),
            list: false,
            preview: false,
            at: Vec::new(),
            out: None,
            verify_whole: false,
            note: None,
            threads: p.get("threads").and_then(Value::as_u64).map(|t| t as usize),
            recorded_recipe: Some(super::enhance::recorded(p).ok_or_else(|| missing("recipe"))?),
        }),
        "clip" => Command::Clip(ClipArgs {
            item: parent.to_owned(),
            from: position("from")?.ok_or_else(|| missing("from"))?,
            to: position("to")?.ok_or_else(|| missing("to"))?,
            mode: text("mode").and_then(|m| ClipMode::from_str(&m, true).ok()).ok_or_else(|| missing("mode"))?,
            crf: p.get("crf").and_then(Value::as_u64).unwrap_or(18) as u8,
            lossless: flag("lossless"),
            out: None,
            verify_whole: false,
            note: None,
            stem: None,
        }),
        "still" => Command::Still(StillArgs {
            item: parent.to_owned(),
            at: p
                .get("at")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).filter_map(|s| s.parse().ok()).collect())
                .unwrap_or_default(),
            every: position("every")?,
            caption: flag("caption"),
            no_sar: flag("no_sar"),
            deinterlace: flag("deinterlace"),
            out: None,
            verify_whole: false,
            note: None,
        }),
        "rewrap" => Command::Rewrap(RewrapArgs { item: parent.to_owned(), out: None, verify_whole: false, note: None }),
        "redact" => {
            // The decisions as recorded (JSON is YAML), read back as the spec they were.
            let spec = p.get("spec").ok_or_else(|| missing("spec"))?;
            let path: PathBuf = scratch.join("spec.yaml");
            std::fs::write(&path, serde_json::to_vec_pretty(spec)?)
                .map_err(|e| error::environment(format!("cannot write {}: {e}", path.display())))?;
            Command::Redact(RedactArgs {
                item: parent.to_owned(),
                boxes: Vec::new(),
                ellipses: Vec::new(),
                mute: Vec::new(),
                bleep: Vec::new(),
                spec: Some(path),
                fill: None,
                reason: None,
                codes: None,
                keep_tags: Vec::new(),
                preview: flag("preview"),
                strict: false,
                out: None,
                verify_whole: false,
                note: None,
            })
        }
        other => return Err(error::input(format!("event {}: redo cannot re-run {other}", event.seq))),
    })
}

/// Where a re-made output first differs from the recorded one, frame by frame: `(text, json)`.
fn first_difference_of(
    store: &crate::store::Store,
    remade: &Rehearsed,
    recorded: &crate::ledger::FileRef,
    sha: &str,
    facts: &Map<String, Value>,
) -> Option<(String, Value)> {
    // Enhanced copies carry every frame's hash in their record: compare the lists.
    let lists = |f: &Map<String, Value>| -> Option<Vec<(String, Vec<String>)>> {
        f.get("streams")?
            .as_array()?
            .iter()
            .map(|s| {
                let kind = s.get("kind")?.as_str()?.to_owned();
                let md5 =
                    s.get("frame_md5")?.as_array()?.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
                Some((kind, md5))
            })
            .collect()
    };
    if let (Some(was), Some(now)) = (lists(&recorded.facts), lists(facts)) {
        for ((kind, a), (_, b)) in was.iter().zip(&now) {
            if let Some(i) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
                return Some((
                    format!(
                        "{kind}: frames 0–{} identical; frame {i} differs (of {} recorded, {} re-made)",
                        i.saturating_sub(1),
                        a.len(),
                        b.len()
                    ),
                    json!({"stream": kind, "frame": i}),
                ));
            }
        }
        return Some((
            "every frame is identical: the difference is in the container".to_owned(),
            json!({"container": true}),
        ));
    }
    // Other outputs: decode both and compare their frames.
    let new = remade.staging.staged_path(sha);
    let old = store.object_file(&recorded.sha256).ok()?;
    let old_path = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&old)));
    let (_, a) = crate::media::frames::frame_hashes(&old_path).ok()?;
    let (_, b) = crate::media::frames::frame_hashes(&new).ok()?;
    let i = (0..a.len().max(b.len())).find(|&i| a.get(i).map(|f| &f.md5) != b.get(i).map(|f| &f.md5));
    Some(match i {
        Some(i) => (
            format!(
                "frames 0–{} identical; frame {i} differs (of {} recorded, {} re-made)",
                i.saturating_sub(1),
                a.len(),
                b.len()
            ),
            json!({"frame": i}),
        ),
        None => (
            "every frame is identical: the difference is in the container or the audio".to_owned(),
            json!({"container": true}),
        ),
    })
}
