//! `custody batch JOB.yaml [--dry-run]`: run a whole request. The job is checked as a whole
//! first (every problem at once, with line and column; nothing written). Steps then run in
//! order; a step whose identical output is already recorded (same job step, same inputs by
//! SHA-256, same parameters) is skipped, so an interrupted job resumes where it stopped.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use anyhow::Result;
use serde_json::{Value, json};

use super::{Ctx, Report, head_line};
use crate::cli::{BatchArgs, ClipArgs, ClipMode, PackageArgs, RedactArgs, StillArgs};
use crate::error;
use crate::job::{self, Action, Ref, Step};
use crate::ledger::Ledger;

/// What became of a step.
#[derive(Clone, Debug, serde::Serialize)]
struct Outcome {
    step: String,
    action: &'static str,
    /// done (ran now), skipped (already recorded), planned (dry run), failed, not run.
    status: &'static str,
    outputs: Vec<String>,
    event: Option<u64>,
    message: Option<String>,
    /// A redaction's frame counts: overall and per region ("240 of 241 frames redacted; ...").
    summary: Option<String>,
    /// A redaction's coverage warnings (a region reaching one end of the recording only).
    warnings: Vec<String>,
}

pub fn run(args: BatchArgs, ctx: &Ctx) -> Result<Report> {
    let store = ctx.store()?;
    // A dry run writes nothing: it works on a read-only store too.
    let open = || if args.dry_run { store.read_ledger() } else { store.open_ledger() };
    let ledger = open()?;
    let job = match job::load(&args.job, &ledger)? {
        Ok(j) => j,
        Err(problems) => {
            let list: Vec<String> = problems
                .iter()
                .map(|p| format!("{}:{}:{}: {}", args.job.display(), p.line, p.column, p.message))
                .collect();
            return Err(error::input(format!(
                "the job has {} problem{}; nothing was run:\n{}",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" },
                list.join("\n")
            )));
        }
    };
    drop(ledger);

    let bar = (std::io::stderr().is_terminal() && !ctx.json && !args.dry_run).then(|| {
        let b = indicatif::ProgressBar::new(job.steps.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b.set_prefix(format!("job {}", job.name));
        b
    });
    let mut made: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    let mut estimate_us: i64 = 0;
    let mut done = job::DoneSteps::default();
    for step in &job.steps {
        if let Some(b) = &bar {
            b.set_message(format!("{} ({})", step.id, step.action.name()));
        }
        if failure.is_some() {
            outcomes.push(outcome(step, "not run", Vec::new(), None, None));
            continue;
        }
        let ledger = open()?;
        let inputs = match inputs_of(step, &made) {
            Some(i) => i,
            None => {
                // A dry run cannot know what an earlier, not yet run step will make.
                outcomes.push(outcome(step, "planned", Vec::new(), None, Some("after the steps it depends on".into())));
                continue;
            }
        };
        let shas = inputs
            .iter()
            .map(|id| ledger.item(id).map(|r| r.map(|r| r.sha256).unwrap_or_default()))
            .collect::<Result<Vec<_>>>()?;
        let key = job::step_key(&job, step, &shas);
        if let Some((seq, outs)) = done.find(&ledger, &key)? {
            made.insert(step.id.clone(), outs.clone());
            let mut o = outcome(step, "skipped", outs, Some(seq), Some(format!("already recorded in event {seq}")));
            if let Action::Redact { strict, .. } = &step.action {
                let facts =
                    ledger.event(seq)?.and_then(|ev| ev.outputs.first().map(|o| Value::Object(o.facts.clone())));
                if let Some(facts) = facts {
                    (o.summary, o.warnings) =
                        redaction_summary(&facts, &facts["frames"]["source"], &facts["frames_redacted"]);
                }
                if *strict && !o.warnings.is_empty() {
                    failure = Some(error::input(format!(
                        "step {} is strict, and its redaction, recorded in event {seq} before, leaves frames uncovered: {}; \
                         fix its regions (until: end, from: start) and run the job again",
                        step.id,
                        o.warnings.join("; ")
                    )));
                    o.status = "failed";
                    o.message = Some(format!("recorded in event {seq}, which leaves frames uncovered; strict"));
                }
            }
            outcomes.push(o);
            if let Some(b) = &bar {
                b.inc(1);
            }
            continue;
        }
        if let Action::Package { out, .. } = &step.action
            && out.exists()
        {
            failure = Some(error::input(format!(
                "step {} would write {}, which exists and no event of this job made it; move it away and run the job again",
                step.id,
                out.display()
            )));
            outcomes.push(outcome(step, "failed", Vec::new(), None, Some("the output file exists".into())));
            continue;
        }
        if args.dry_run {
            estimate_us += estimate(&ledger, step, &inputs);
            outcomes.push(outcome(step, "planned", Vec::new(), None, None));
            made.insert(step.id.clone(), Vec::new());
            continue;
        }
        drop(ledger);
        let step_ctx = Ctx {
            store: Some(store.root().to_owned()),
            examiner: ctx.examiner.clone(),
            json: true,
            lock_timeout: ctx.lock_timeout,
            job: Some(json!({"name": job.name, "file_sha256": job.sha256, "step": step.id, "key": key})),
            agency: ctx.agency.clone(),
            rehearse: false,
        };
        // The step's own progress bars show while it runs; the overall bar returns after it.
        let ran = match &bar {
            Some(b) => b.suspend(|| run_step(step, &inputs, &step_ctx)),
            None => run_step(step, &inputs, &step_ctx),
        };
        match ran {
            Ok(report) => {
                let outs = outputs_of(&report.json);
                let seq = report.json.get("head").and_then(|h| h.get("seq")).and_then(Value::as_u64);
                made.insert(step.id.clone(), outs.clone());
                let mut o = outcome(step, "done", outs, seq, None);
                if let Action::Redact { .. } = &step.action {
                    let j = &report.json;
                    (o.summary, o.warnings) = redaction_summary(j, &j["frames"]["source"], &j["frames"]["redacted"]);
                }
                outcomes.push(o);
            }
            Err(e) => {
                outcomes.push(outcome(step, "failed", Vec::new(), None, Some(format!("{e:#}"))));
                failure = Some(e);
            }
        }
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }

    let mut text = format!(
        "{} job {:?} ({}, {} step{})\n",
        if args.dry_run { "Plan of" } else { "Ran" },
        job.name,
        args.job.display(),
        job.steps.len(),
        if job.steps.len() == 1 { "" } else { "s" }
    );
    for o in &outcomes {
        text.push_str(&format!("  {:<9} {:<8} {}", o.status, o.action, o.step));
        if !o.outputs.is_empty() {
            text.push_str(&format!(" -> {}", o.outputs.join(", ")));
        }
        if let Some(m) = &o.message {
            text.push_str(&format!("  ({m})"));
        }
        text.push('\n');
        if let Some(s) = &o.summary {
            text.push_str(&format!("{:21}{s}\n", ""));
        }
        for w in &o.warnings {
            text.push_str(&format!("{:21}WARNING: {w}\n", ""));
        }
    }
    if args.dry_run {
        text.push_str(&format!(
            "  work: about {:.1} s ({:.2} minutes) of media to decode and re-encode, for the steps that can be sized now; nothing was written\n",
            estimate_us as f64 / 1e6,
            estimate_us as f64 / 60e6
        ));
    }
    let ledger = store.read_ledger()?;
    let head = ledger.head()?;
    if let Some(e) = failure {
        let done: Vec<&str> =
            outcomes.iter().filter(|o| o.status == "done" || o.status == "skipped").map(|o| o.step.as_str()).collect();
        return Err(error::with_exit(
            e,
            format!(
                "{text}The job stopped. Done: {}. Run it again to resume: finished steps are skipped.",
                if done.is_empty() { "none".to_owned() } else { done.join(", ") }
            ),
        ));
    }
    if let Some(h) = &head
        && !args.dry_run
    {
        text.push_str(&head_line(h));
    }
    let json = json!({"schema_version": 1, "command": "batch", "job": job.name, "file": crate::fsutil::path_text(&args.job), "dry_run": args.dry_run,
        "steps": outcomes, "estimate_media_us": estimate_us, "head": head});
    Ok(Report::ok(text, json))
}

fn outcome(
    step: &Step,
    status: &'static str,
    outputs: Vec<String>,
    event: Option<u64>,
    message: Option<String>,
) -> Outcome {
    Outcome {
        step: step.id.clone(),
        action: step.action.name(),
        status,
        outputs,
        event,
        message,
        summary: None,
        warnings: Vec::new(),
    }
}

/// A redaction step's line of frame counts and its warnings, from the redact command's JSON
/// or the facts its event recorded (`regions`: the coverage of each region; the source's frame
/// count and the frames redacted given apart, as the two hold them in different places).
/// Nothing for an event recorded before regions were counted.
fn redaction_summary(doc: &Value, frames_source: &Value, frames_redacted: &Value) -> (Option<String>, Vec<String>) {
    let Some(regions) = doc.get("regions").and_then(Value::as_array) else { return (None, Vec::new()) };
    let mut parts = Vec::new();
    if !regions.is_empty() {
        parts.push(format!("{frames_redacted} of {frames_source} frames redacted"));
    }
    for r in regions {
        let name = r.get("name").and_then(Value::as_str).map(|n| format!(" ({n})")).unwrap_or_default();
        parts.push(format!("region {}{name}: {} of {} frames", r["region"], r["frames"], r["of"]));
    }
    match doc.get("samples_redacted").and_then(Value::as_u64) {
        Some(n) if n > 0 => parts.push(format!("{n} audio samples muted or bleeped")),
        _ => {}
    }
    let warnings = regions.iter().filter_map(|r| r.get("warning").and_then(Value::as_str).map(str::to_owned)).collect();
    ((!parts.is_empty()).then(|| parts.join("; ")), warnings)
}

/// The item IDs a step reads; `None` when an earlier step has not made them yet (dry run).
fn inputs_of(step: &Step, made: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    let mut ids = Vec::new();
    let single = !matches!(step.action, Action::Package { .. });
    for r in step.action.inputs() {
        match r {
            Ref::Item(id) => ids.push(id.clone()),
            Ref::Step(s) => {
                let outs = made.get(s)?;
                if outs.is_empty() {
                    return None;
                }
                // A clip, still or redaction works on the step's main output (a redaction's
                // first output is the redacted copy; its spec follows); a package takes all.
                if single {
                    ids.push(outs[0].clone());
                } else {
                    ids.extend(outs.iter().cloned());
                }
            }
        }
    }
    Some(ids)
}

fn run_step(step: &Step, inputs: &[String], ctx: &Ctx) -> Result<Report> {
    let item = || inputs.first().cloned().unwrap_or_default();
    match &step.action {
        Action::Clip { from, to, mode, crf, lossless, .. } => super::clip::run(
            ClipArgs {
                item: item(),
                from: from.parse().map_err(|e| error::input(format!("{e}")))?,
                to: to.parse().map_err(|e| error::input(format!("{e}")))?,
                mode: match mode.as_str() {
                    "exact" => ClipMode::Exact,
                    "smart" => ClipMode::Smart,
                    _ => ClipMode::Copy,
                },
                crf: *crf,
                lossless: *lossless,
                out: None,
                verify_whole: false,
                note: step.note.clone(),
                stem: None,
            },
            ctx,
        ),
        Action::Still { at, caption, deinterlace, .. } => super::still::run(
            StillArgs {
                item: item(),
                at: at.iter().map(|a| a.parse().map_err(|e| error::input(format!("{e}")))).collect::<Result<_>>()?,
                every: None,
                caption: *caption,
                no_sar: false,
                deinterlace: *deinterlace,
                out: None,
                verify_whole: false,
                note: step.note.clone(),
            },
            ctx,
        ),
        Action::Redact { spec, boxes, mute, fill, reason, strict, .. } => super::redact::run(
            RedactArgs {
                item: item(),
                boxes: boxes.clone(),
                ellipses: Vec::new(),
                mute: mute.clone(),
                bleep: Vec::new(),
                spec: spec.clone(),
                fill: fill.as_deref().map(|f| match f {
                    "pixelate" => crate::media::redact::spec::Fill::Pixelate,
                    "blur" => crate::media::redact::spec::Fill::Blur,
                    _ => crate::media::redact::spec::Fill::Solid,
                }),
                reason: reason.clone(),
                codes: None,
                keep_tags: Vec::new(),
                preview: false,
                strict: *strict,
                out: None,
                verify_whole: false,
                note: step.note.clone(),
            },
            ctx,
        ),
        Action::Package { out, recipient, purpose, include, release, .. } => super::package::run(
            PackageArgs {
                items: inputs.to_vec(),
                case: None,
                out: out.clone(),
                include: match include.as_str() {
                    "originals" => crate::bundle::package::Include::Originals,
                    "derived" => crate::bundle::package::Include::Derived,
                    _ => crate::bundle::package::Include::All,
                },
                recipient: recipient.clone(),
                purpose: purpose.clone(),
                release: *release,
                paper: None,
                pdfa: crate::bundle::pdf::Pdfa::A2b,
                note: step.note.clone(),
            },
            ctx,
        ),
    }
}

/// The item IDs a command's JSON names as made.
fn outputs_of(json: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    if let Some(i) = json.get("item").and_then(Value::as_str) {
        ids.push(i.to_owned());
    }
    for made in ["spec", "exemption_log", "object_report"] {
        if let Some(i) = json.get(made).and_then(|s| s.get("item")).and_then(Value::as_str) {
            ids.push(i.to_owned());
        }
    }
    if let Some(items) = json.get("items").and_then(Value::as_array) {
        ids.extend(items.iter().filter_map(|i| i.get("id").and_then(Value::as_str).map(str::to_owned)));
    }
    ids
}

/// Microseconds of media a step decodes and re-encodes (a stream copy and a still cost ~0).
fn estimate(ledger: &Ledger, step: &Step, inputs: &[String]) -> i64 {
    let duration_of = |id: &str| -> i64 {
        ledger
            .item(id)
            .ok()
            .flatten()
            .and_then(|row| ledger.item_origin(&row).ok())
            .and_then(|(_, f)| f.facts.get("media").and_then(|m| m.get("duration_us")).and_then(Value::as_i64))
            .unwrap_or(0)
    };
    match &step.action {
        Action::Clip { from, to, mode, .. } if mode == "exact" || mode == "smart" => {
            match (from.parse::<crate::media::time::Position>(), to.parse::<crate::media::time::Position>()) {
                (Ok(crate::media::time::Position::Time(a)), Ok(crate::media::time::Position::Time(b))) => {
                    (b - a).max(0)
                }
                _ => inputs.first().map(|i| duration_of(i)).unwrap_or(0),
            }
        }
        Action::Redact { .. } => inputs.first().map(|i| duration_of(i)).unwrap_or(0),
        _ => 0,
    }
}
