//! `custody package`: a court-ready bundle of items, recorded as an event (recipient, purpose,
//! the bundle's hash).

use anyhow::Result;
use serde_json::json;

use super::{Ctx, Report, head_to_keep, human_size};
use crate::bundle::package::{self, Request};
use crate::cli::PackageArgs;
use crate::error;
use crate::item;
use crate::ledger::{Draft, ItemRow};

/// The items a `--case` or a list of item names selects, each once, in the order named.
pub fn selected(ledger: &crate::ledger::Ledger, case: Option<&str>, items: &[String]) -> Result<Vec<ItemRow>> {
    if let Some(case) = case {
        let rows = ledger.items_in_case(case)?;
        if rows.is_empty() {
            return Err(error::input(format!("case {case} has no items in this store")));
        }
        return Ok(rows);
    }
    let mut rows: Vec<ItemRow> = Vec::new();
    for spec in items {
        for row in item::resolve_many(ledger, spec)? {
            if !rows.iter().any(|r| r.id == row.id) {
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

pub fn run(args: PackageArgs, ctx: &Ctx) -> Result<Report> {
    if args.out.exists() {
        return Err(error::input(format!("{} already exists; choose another --out or remove it", args.out.display())));
    }
    let store = ctx.store()?;
    let mut ledger = store.open_ledger()?;
    let rows = selected(&ledger, args.case.as_deref(), &args.items)?;
    let actor = ctx.actor();
    let req = Request {
        medium: None,
        evidence: true,
        rows,
        include: args.include,
        recipient: args.recipient.as_deref(),
        purpose: args.purpose.as_deref(),
        // A release names the examiner only when one was given: the default is the OS account.
        examiner: if args.release && actor.examiner == actor.os_user {
            crate::ledger::private::SHOWN
        } else {
            &actor.examiner
        },
        out: &args.out,
        release: args.release,
        paper: args.paper,
        pdfa: args.pdfa,
    };
    let written = package::write(&store, &ledger, &req)?;
    let params = package::event_params(&written, &req);
    let cases: std::collections::BTreeSet<&str> = written.files.iter().map(|f| f.case.as_str()).collect();
    let one_case = (cases.len() == 1).then(|| cases.iter().next().map(|c| c.to_string())).flatten();
    let inputs = written
        .files
        .iter()
        .map(|f| crate::ledger::FileRef {
            item: Some(f.item.clone()),
            name: Some(f.name.clone()),
            sha256: f.sha256.clone(),
            blake3: f.blake3.clone(),
            size: f.size,
            facts: serde_json::Map::from_iter([
                ("path".to_owned(), json!(f.path)),
                ("sha512".to_owned(), json!(f.sha512)),
            ]),
        })
        .collect();
    let staging = store.stage()?;
    let committed = store.commit(&mut ledger, &actor, staging, |_| {
        Ok(Draft {
            action: "package".into(),
            case: one_case.clone(),
            inputs,
            params,
            note: args.note.clone(),
            ..Draft::default()
        })
    });
    let (head, _) = match committed {
        Ok(c) => c,
        Err(e) => {
            // Nothing recorded: leave nothing behind.
            let _ = std::fs::remove_file(&written.path);
            return Err(e);
        }
    };
    let mut text = format!(
        "Packaged {} file(s) into {} (bag {}), {}\n",
        written.files.len(),
        written.path.display(),
        written.bag,
        human_size(written.digests.size)
    );
    for f in &written.files {
        text.push_str(&format!("  {:<5} {}  sha256 {}\n", f.item, f.path, f.sha256));
    }
    text.push_str(&format!(
        "  ledger excerpt: {} of {} events (the others as hashes), head {}\n  bundle sha256 {}\n",
        written.events_full,
        written.events_total,
        written.head,
        written.digests.sha256()
    ));
    text.push_str(&format!(
        "  check it anywhere: custody verify {} --against {}\n  (the bundle states the head before this package event)\n",
        written.path.display(),
        written.head
    ));
    text.push_str(&head_to_keep(&head));
    let json = json!({"schema_version": 1, "command": "package", "out": crate::fsutil::path_text(&written.path), "bag": written.bag,
        "sha256": written.digests.sha256(), "blake3": written.digests.blake3(), "size": written.digests.size,
        "files": written.files, "ledger_head": written.head, "events_included": written.events_full,
        "head": head});
    Ok(Report::ok(text, json))
}
