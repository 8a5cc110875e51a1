//! `custody review`: a person decides the tracks of a drafted redaction spec. Each track named
//! is accepted (it will be redacted, for the reason given) or rejected (left visible); the
//! blanket forms (`--accept-all`, `--accept-all-above C`) are allowed and recorded as such.
//! The reviewed spec is a new item made from the draft, so the ledger holds the spec before
//! and after and every decision with its reviewer; `custody redact --spec` carries it out.

use std::collections::BTreeSet;
use std::io::Cursor;

use anyhow::Result;
use serde_json::{Map, json};

use super::{Ctx, Report, head_line};
use crate::cli::ReviewArgs;
use crate::derive::{self, Output, Source};
use crate::error;
use crate::media::redact::spec::{Decision, Spec};

pub fn run(args: ReviewArgs, ctx: &Ctx) -> Result<Report> {
    if args.accept_all && args.accept_all_above.is_some() {
        return Err(error::input("give --accept-all or --accept-all-above, not both"));
    }
    if ctx.examiner.is_none() {
        return Err(error::input(
            "name the reviewer: --examiner NAME (or CUSTODY_EXAMINER). Every decision is recorded with the name of \
             the person who made it",
        ));
    }
    if let Some(c) = args.accept_all_above
        && !(0.0..=1.0).contains(&c)
    {
        return Err(error::input(format!("--accept-all-above {c}: give a confidence between 0 and 1")));
    }
    let accept = numbers(&args.accept, "--accept")?;
    let reject = numbers(&args.reject, "--reject")?;
    if let Some(both) = accept.intersection(&reject).next() {
        return Err(error::input(format!("track {both} is both accepted and rejected: decide it once")));
    }
    if accept.is_empty() && reject.is_empty() && !args.accept_all && args.accept_all_above.is_none() {
        return Err(error::input(
            "say what you decide: --accept N,… and/or --reject N,… (or --accept-all, --accept-all-above C)",
        ));
    }
    let store = ctx.store()?;
    let mut ledger = store.open_ledger()?;
    let source = Source::open(&store, &ledger, &args.spec)?;
    let spec_file = [".yaml", ".yml", ".json"].iter().any(|e| source.row.name.ends_with(e));
    if !spec_file || source.file.size > 64 << 20 {
        return Err(error::input(format!(
            "item {} ({}) is not a redaction spec: give the draft `custody detect` recorded (NAME_faces_draft.yaml) \
             or a reviewed spec",
            source.row.id, source.row.name
        )));
    }
    let bytes = source.read_all()?;
    let not_a_draft = || {
        error::input(format!(
            "item {} ({}) is not a spec drafted by `custody detect`: it has no tracks to decide",
            source.row.id, source.row.name
        ))
    };
    let text = String::from_utf8(bytes).map_err(|_| not_a_draft())?;
    let mut spec = Spec::parse(&text, &format!("item {}", source.row.id)).map_err(|_| not_a_draft())?;
    let tracks: BTreeSet<u32> = spec.regions.iter().filter_map(|r| r.detected.as_ref().map(|d| d.track)).collect();
    if spec.detection.is_none() {
        return Err(not_a_draft());
    }
    if tracks.is_empty() {
        return Err(error::input(format!(
            "item {} is a draft in which the detector found no face: there is no track to decide. Watch the video \
             for what it missed, and redact with your own regions (`custody redact ITEM --box …`) if any",
            source.row.id
        )));
    }
    let unknown: Vec<String> = accept.union(&reject).filter(|n| !tracks.contains(n)).map(u32::to_string).collect();
    if !unknown.is_empty() {
        return Err(error::input(format!(
            "item {} has no track {}: its tracks are {}",
            source.row.id,
            unknown.join(", "),
            tracks.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        )));
    }

    let examiner = ctx.actor().examiner;
    let above = args.accept_all_above.map(|c| format!("accept-all-above {c}"));
    let mut decisions = Vec::new();
    for region in &mut spec.regions {
        let Some(d) = region.detected.as_mut() else { continue };
        let (decision, how) = if accept.contains(&d.track) {
            (Decision::Accepted, "named".to_owned())
        } else if reject.contains(&d.track) {
            (Decision::Rejected, "named".to_owned())
        } else if d.decision == Decision::Pending && args.accept_all {
            (Decision::Accepted, "accept-all".to_owned())
        } else if d.decision == Decision::Pending
            && let Some(c) = args.accept_all_above
            && d.best() >= c - 1e-9
        {
            (Decision::Accepted, above.clone().expect("given"))
        } else {
            continue;
        };
        if decision == Decision::Accepted {
            match &args.reason {
                Some(r) if !r.trim().is_empty() => region.reason = Some(r.trim().to_owned()),
                _ if region.reason.is_some() || spec.reason.is_some() => {}
                _ => {
                    return Err(error::input(format!(
                        "track {} is accepted without a reason: give the reason or exemption code with --reason CODE; \
                         nothing was recorded",
                        d.track
                    )));
                }
            }
        }
        let was = d.decision;
        d.decision = decision;
        d.reviewer = Some(examiner.clone());
        d.how = Some(how.clone());
        decisions.push(json!({"track": d.track, "decision": decision.name(), "was": was.name(), "how": how,
            "reviewer": examiner, "reason": if decision == Decision::Accepted { region.reason.clone() } else { None }}));
    }
    if decisions.is_empty() {
        return Err(error::input(match args.accept_all_above {
            Some(c) => {
                format!("nothing to decide in item {}: no pending track has a confidence of {c} or more", source.row.id)
            }
            None => format!("nothing to decide in item {}: no track is pending", source.row.id),
        }));
    }
    let count = |which: Decision| {
        spec.regions.iter().filter(|r| r.detected.as_ref().is_some_and(|d| d.decision == which)).count()
    };
    let (accepted, rejected, pending) =
        (count(Decision::Accepted), count(Decision::Rejected), count(Decision::Pending));
    let yaml = format!(
        "# Redaction spec reviewed with `custody review` ({accepted} accepted, {rejected} rejected, {pending} pending).\n\
         # Accepted tracks are redacted, rejected ones left visible; `custody redact` refuses a pending one.\n{}",
        serde_yaml_ng::to_string(&spec)?
    );
    let base = source.stem().trim_end_matches("_faces_draft").trim_end_matches("_faces_reviewed").to_owned();
    let name = format!("{base}_faces_reviewed.yaml");
    let mut staging = store.stage()?;
    let digests = staging.write_from(&store, &mut Cursor::new(yaml.as_bytes()), &name, &[])?.digests.clone();
    let mut facts = Map::new();
    facts.insert("kind".into(), json!("reviewed redaction spec"));
    facts.insert("accepted".into(), json!(accepted));
    facts.insert("rejected".into(), json!(rejected));
    facts.insert("pending".into(), json!(pending));
    let mut params = Map::new();
    params.insert("decisions".into(), json!(decisions));
    params.insert("reviewer".into(), json!(examiner));
    if let Some(how) = &above {
        params.insert("blanket".into(), json!(how));
    } else if args.accept_all {
        params.insert("blanket".into(), json!("accept-all"));
    }
    let outputs = vec![Output { name, digests, facts }];
    let (head, event) = derive::commit(
        &store,
        &mut ledger,
        &ctx.actor(),
        staging,
        &source,
        "review",
        outputs,
        params,
        args.note.clone(),
    )?;
    let out = &event.outputs[0];
    let id = out.item.clone().unwrap_or_default();

    let mut text = format!(
        "Reviewed {} as {examiner}: {} decision{}\n",
        source.label(),
        decisions.len(),
        if decisions.len() == 1 { "" } else { "s" }
    );
    for d in &decisions {
        text.push_str(&format!(
            "  track {:<3} {}{}{}\n",
            d["track"],
            d["decision"].as_str().unwrap_or_default(),
            if d["was"] != "pending" {
                format!(" (was {})", d["was"].as_str().unwrap_or_default())
            } else {
                String::new()
            },
            match (d["how"].as_str(), d["reason"].as_str()) {
                (Some("named"), Some(r)) => format!(", reason {r}"),
                (Some(how), Some(r)) => format!(", reason {r} ({how})"),
                (Some("named"), None) => String::new(),
                (Some(how), None) => format!(" ({how})"),
                _ => String::new(),
            }
        ));
    }
    text.push_str(&format!("  now {accepted} accepted, {rejected} rejected, {pending} pending\n"));
    text.push_str(&format!("  {id:<5}{}  sha256 {}\n", out.name.as_deref().unwrap_or_default(), out.sha256));
    text.push_str(&super::copy_out_line(&store, out, args.out.as_deref(), "  ")?);
    let video = spec.detection.as_ref().map(|d| d.item.clone()).unwrap_or_default();
    if pending > 0 {
        text.push_str(&format!("{pending} track(s) still pending: custody review {id} --accept … --reject …\n"));
    } else {
        text.push_str(&format!("Every track is decided: custody redact {video} --spec {id}\n"));
    }
    text.push_str(&head_line(&head));
    let json = json!({"schema_version": 1, "command": "review", "parent": source.row.id, "video": video,
        "item": id, "name": out.name, "sha256": out.sha256, "decisions": decisions,
        "accepted": accepted, "rejected": rejected, "pending": pending, "head": head});
    Ok(Report::ok(text, json))
}

/// Track numbers as typed: `1`, `1-4`, each value of a comma list.
fn numbers(values: &[String], flag: &str) -> Result<BTreeSet<u32>> {
    let mut set = BTreeSet::new();
    for v in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        let bad = || error::input(format!("{flag} {v:?}: give track numbers such as 1,2,5 or 1-4"));
        match v.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
                if b < a {
                    return Err(bad());
                }
                set.extend(a..=b);
            }
            None => {
                set.insert(v.parse().map_err(|_| bad())?);
            }
        }
    }
    Ok(set)
}
