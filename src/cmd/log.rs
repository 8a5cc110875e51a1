//! `custody log`: the custody history, all of it or one item's or one case's.

use anyhow::Result;
use serde_json::json;

use super::{Ctx, Report};
use crate::cli::LogArgs;
use crate::item;
use crate::ledger::Event;

pub fn run(args: LogArgs, ctx: &Ctx) -> Result<Report> {
    let store = ctx.store()?;
    let ledger = store.read_ledger()?;
    let events = ledger.events()?;
    let (title, chosen): (String, Vec<&Event>) = if let Some(spec) = &args.item {
        let row = item::resolve(&ledger, spec)?;
        let names = |refs: &[crate::ledger::FileRef]| refs.iter().any(|r| r.item.as_deref() == Some(row.id.as_str()));
        (
            format!("Custody history of {} ({}:{}/{})", row.id, row.case, row.exhibit, row.name),
            events.iter().filter(|e| names(&e.inputs) || names(&e.outputs)).collect(),
        )
    } else if let Some(case) = &args.case {
        (
            format!("Custody history of case {case}"),
            events.iter().filter(|e| e.case.as_deref() == Some(case.as_str())).collect(),
        )
    } else {
        (
            format!("Custody ledger of {}{}", store.root().display(), store.ledger_location().after_store()),
            events.iter().collect(),
        )
    };
    let mut text = format!("{title}: {} event{}\n", chosen.len(), if chosen.len() == 1 { "" } else { "s" });
    for e in &chosen {
        text.push_str(&event_block(e));
    }
    if let Some(head) = ledger.head()? {
        text.push_str(&format!("ledger head: {head}"));
    }
    let json = json!({"schema_version": 1, "command": "log", "events": chosen, "head": ledger.head()?});
    Ok(Report::ok(text, json))
}

/// One line per event: sequence, time, action, who, what.
pub fn event_line(e: &Event) -> String {
    let what = match (&e.case, &e.exhibit) {
        (Some(c), Some(x)) => format!(" {c}:{x}"),
        (Some(c), None) => format!(" case {c}"),
        _ => String::new(),
    };
    format!("#{:<4} {}  {:<9}{}  by {}", e.seq, e.time, e.action, what, e.examiner)
}

fn event_block(e: &Event) -> String {
    let login = e.db_user.as_deref().map(|u| format!(", database role {u}")).unwrap_or_default();
    let mut s = format!("{}  ({}@{}{login})\n", event_line(e), e.os_user, e.host);
    for i in &e.inputs {
        s.push_str(&format!(
            "        in   {} {}  sha256 {}\n",
            i.item.as_deref().unwrap_or("-"),
            i.name.as_deref().unwrap_or(""),
            i.sha256
        ));
    }
    for o in &e.outputs {
        s.push_str(&format!(
            "        out  {} {}  sha256 {}\n",
            o.item.as_deref().unwrap_or("-"),
            o.name.as_deref().unwrap_or(""),
            o.sha256
        ));
    }
    if e.action == "transfer" {
        let get = |k: &str| e.params.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
        s.push_str(&format!("        from {} to {}: {}\n", get("from"), get("to"), get("reason")));
    }
    if let Some(n) = &e.note {
        s.push_str(&format!("        note {n}\n"));
    }
    s
}
