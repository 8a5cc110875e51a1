//! `custody transfer`: record a hand-off of items. Custody is about who held the evidence,
//! not only what was done to it.

use anyhow::Result;
use serde_json::{Map, json};

use super::{Ctx, Report, head_line};
use crate::cli::TransferArgs;
use crate::error;
use crate::item;
use crate::ledger::{Draft, FileRef};

pub fn run(args: TransferArgs, ctx: &Ctx) -> Result<Report> {
    if args.to.trim().is_empty() || args.reason.trim().is_empty() {
        return Err(error::input("--to and --reason must not be empty: say who receives the items and why"));
    }
    let store = ctx.store()?;
    let mut ledger = store.open_ledger()?;
    let mut rows = match &args.case {
        Some(case) => {
            let rows = ledger.items_in_case(case)?;
            if rows.is_empty() {
                return Err(error::input(format!("case {case} has no items in this store; nothing was recorded")));
            }
            rows
        }
        None => Vec::new(),
    };
    for spec in &args.items {
        for row in item::resolve_many(&ledger, spec)? {
            if !rows.iter().any(|r: &crate::ledger::ItemRow| r.id == row.id) {
                rows.push(row);
            }
        }
    }
    let mut inputs = Vec::new();
    let mut holders = Vec::new();
    for row in &rows {
        let facts = super::show::item_facts(&ledger, row)?;
        let mut extra = Map::new();
        extra.insert("from".into(), json!(facts.holder));
        holders.push(facts.holder.clone());
        inputs.push(FileRef {
            item: Some(row.id.clone()),
            name: Some(row.name.clone()),
            sha256: facts.file.sha256.clone(),
            blake3: facts.file.blake3.clone(),
            size: facts.file.size,
            facts: extra,
        });
    }
    holders.dedup();
    let from = holders.join(", ");
    let cases: Vec<&str> = rows.iter().map(|r| r.case.as_str()).collect();
    let one_case = cases.iter().all(|c| *c == cases[0]).then(|| cases[0].to_owned());
    let one_exhibit =
        rows.iter().all(|r| r.case == rows[0].case && r.exhibit == rows[0].exhibit).then(|| rows[0].exhibit.clone());
    let mut params = Map::new();
    params.insert("from".into(), json!(from));
    params.insert("to".into(), json!(args.to));
    params.insert("reason".into(), json!(args.reason));
    let actor = ctx.actor();
    let staging = store.stage()?;
    let (head, _) = store.commit(&mut ledger, &actor, staging, |_| {
        Ok(Draft {
            action: "transfer".into(),
            case: one_case.clone(),
            exhibit: one_exhibit.clone(),
            inputs,
            params,
            note: args.note.clone(),
            ..Draft::default()
        })
    })?;
    let mut text = format!(
        "Recorded the transfer of {} item{} from {from} to {}: {}\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        args.to,
        args.reason
    );
    for r in &rows {
        text.push_str(&format!("  {:<5} {}:{}/{}\n", r.id, r.case, r.exhibit, r.name));
    }
    text.push_str(&head_line(&head));
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let json = json!({"schema_version": 1, "command": "transfer", "items": ids, "from": from, "to": args.to, "reason": args.reason, "head": head});
    Ok(Report::ok(text, json))
}
