//! `custody transfer`: record a hand-off of an item.

use anyhow::Result;
use serde_json::{Map, json};

use super::{Ctx, Report, head_line};
use crate::cli::TransferArgs;
use crate::error;
use crate::item;
use crate::ledger::{Draft, FileRef};

pub fn run(args: TransferArgs, ctx: &Ctx) -> Result<Report> {
    if args.to.trim().is_empty() || args.reason.trim().is_empty() {
        return Err(error::input("--to and --reason must not be empty: say who receives the item and why"));
    }
    let store = ctx.store()?;
    let mut ledger = store.open_ledger()?;
    let row = item::resolve(&ledger, &args.item)?;
    let facts = super::show::item_facts(&ledger, &row)?;
    let from = facts.holder.clone();
    let actor = ctx.actor();
    let input = FileRef {
        item: Some(row.id.clone()),
        name: Some(row.name.clone()),
        sha256: facts.file.sha256.clone(),
        blake3: facts.file.blake3.clone(),
        size: facts.file.size,
        facts: Map::new(),
    };
    let mut params = Map::new();
    params.insert("from".into(), json!(from));
    params.insert("to".into(), json!(args.to));
    params.insert("reason".into(), json!(args.reason));
    let staging = store.stage()?;
    let (head, _) = store.commit(&mut ledger, &actor, staging, |_| {
        Ok(Draft {
            action: "transfer".into(),
            case: Some(row.case.clone()),
            exhibit: Some(row.exhibit.clone()),
            inputs: vec![input],
            params,
            note: args.note.clone(),
            ..Draft::default()
        })
    })?;
    let text = format!(
        "Recorded transfer of {} ({}:{}/{}) from {} to {}: {}\n{}",
        row.id,
        row.case,
        row.exhibit,
        row.name,
        from,
        args.to,
        args.reason,
        head_line(&head)
    );
    let json = json!({"schema_version": 1, "command": "transfer", "item": row.id, "from": from, "to": args.to, "reason": args.reason, "head": head});
    Ok(Report::ok(text, json))
}
