//! `custody show`: one item's facts, hashes, lineage, holder and history.

use anyhow::Result;
use serde_json::json;

use super::{Ctx, Report, human_size};
use crate::item;
use crate::ledger::{Event, FileRef, ItemRow, Ledger};
use crate::media::probe::MediaFacts;
use crate::media::time::ClockOffset;

/// Everything the ledger says about one item.
pub struct ItemFacts {
    pub row: ItemRow,
    /// The item as its creating event recorded it.
    pub file: FileRef,
    pub created: Event,
    /// Who holds it now: the last transfer's recipient, else who took it into custody.
    pub holder: String,
    pub clock: Option<ClockOffset>,
    pub media: Option<MediaFacts>,
    /// Every event that names the item, oldest first.
    pub history: Vec<Event>,
    /// For an item pushed from a field store: the field events that name it there (its
    /// acquisition, stills, hand-offs at the scene), oldest first, numbered in the field chain.
    pub field_history: Vec<Event>,
    pub children: Vec<ItemRow>,
}

pub fn item_facts(ledger: &Ledger, row: &ItemRow) -> Result<ItemFacts> {
    // For an item pushed from a field store: its acquisition there.
    let (created, file) = ledger.acquisition(row)?;
    let clock = created
        .params
        .get("clock")
        .and_then(|c| serde_json::from_value::<Option<ClockOffset>>(c.clone()).ok())
        .flatten();
    let media = file.facts.get("media").and_then(|m| serde_json::from_value(m.clone()).ok());
    let names = |refs: &[FileRef]| refs.iter().any(|r| r.item.as_deref() == Some(row.id.as_str()));
    let history: Vec<Event> = ledger.events()?.into_iter().filter(|e| names(&e.inputs) || names(&e.outputs)).collect();
    let field_history = field_history(ledger, row)?;
    // The last hand-off: here, else at the scene before the push.
    let holder = history
        .iter()
        .rev()
        .chain(field_history.iter().rev())
        .find(|e| e.action == "transfer")
        .and_then(|e| e.params.get("to").and_then(|v| v.as_str()).map(str::to_owned))
        .unwrap_or_else(|| created.examiner.clone());
    let children = ledger.items()?.into_iter().filter(|i| i.parent.as_deref() == Some(row.id.as_str())).collect();
    Ok(ItemFacts { row: row.clone(), file, created, holder, clock, media, history, field_history, children })
}

/// The field events that name an item a push brought (none for any other item).
fn field_history(ledger: &Ledger, row: &ItemRow) -> Result<Vec<Event>> {
    let (recorded, as_recorded) = ledger.item_origin(row)?;
    let origin = as_recorded.facts.get("pushed");
    let text = |k: &str| origin.and_then(|o| o.get(k)).and_then(|v| v.as_str()).map(str::to_owned);
    let (true, Some(chain), Some(item)) = (recorded.action == "push", text("chain"), text("item")) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    ledger.for_each_pushed_row(&chain, None, |r| {
        let ev = crate::ledger::parse_body(&r)?;
        let names = |refs: &[FileRef]| refs.iter().any(|f| f.item.as_deref() == Some(item.as_str()));
        if names(&ev.inputs) || names(&ev.outputs) {
            out.push(ev);
        }
        Ok(())
    })?;
    Ok(out)
}

pub fn run(args: crate::cli::ShowArgs, ctx: &Ctx) -> Result<Report> {
    let store = ctx.store()?;
    let ledger = store.read_ledger()?;
    let row = item::resolve(&ledger, &args.item)?;
    let f = item_facts(&ledger, &row)?;
    let mut t = format!("Item {}  {}:{}/{}\n", row.id, row.case, row.exhibit, row.name);
    t.push_str(&format!(
        "  SHA-256   {}\n  BLAKE3    {}\n  Size      {} ({} bytes)\n",
        f.file.sha256,
        f.file.blake3,
        human_size(f.file.size),
        f.file.size
    ));
    for algo in ["md5", "sha1"] {
        if let Some(v) = f.file.facts.get(algo).and_then(|v| v.as_str()) {
            t.push_str(&format!("  {:<9} {v}\n", algo.to_uppercase()));
        }
    }
    let login = f.created.db_user.as_deref().map(|u| format!(", database role {u}")).unwrap_or_default();
    let (recorded, as_recorded) = ledger.item_origin(&row)?;
    let pushed = (recorded.action == "push").then(|| as_recorded.facts.get("pushed").cloned()).flatten();
    t.push_str(&format!(
        "  Acquired  {} by {} ({}@{}{login}), event {}{}\n",
        f.created.time,
        f.created.examiner,
        f.created.os_user,
        f.created.host,
        f.created.seq,
        if pushed.is_some() { " of the field store" } else { "" }
    ));
    if let Some(p) = &pushed {
        let chain = p.get("chain").and_then(|v| v.as_str()).unwrap_or_default();
        t.push_str(&format!(
            "  Pushed    from field chain {} (its item {}) by event {}, {} by {}\n",
            &chain[..chain.len().min(12)],
            p.get("item").and_then(|v| v.as_str()).unwrap_or("-"),
            recorded.seq,
            recorded.time,
            recorded.examiner
        ));
    }
    if let Some(src) = f.created.params.get("source").and_then(|v| v.as_str()) {
        t.push_str(&format!("  Source    {src}\n"));
    }
    if let Some(p) = f.file.facts.get("source_path").and_then(|v| v.as_str()) {
        t.push_str(&format!("  From      {p}\n"));
    }
    match &f.clock {
        Some(c) => t.push_str(&format!("  DVR clock {} — {}\n", c.offset, c.describe())),
        None => t.push_str("  DVR clock not recorded\n"),
    }
    let timezone = f.created.params.get("timezone").and_then(|v| v.as_str());
    if let Some(z) = timezone {
        t.push_str(&format!("  Time zone {z} (the DVR's clock)\n"));
    }
    // A start given or read for the file itself, else the event's for every file.
    let own = f.file.facts.get("recording_start").and_then(|v| v.as_str());
    if let Some(start) = own.or_else(|| f.created.params.get("recording_start").and_then(|v| v.as_str())) {
        t.push_str(&format!("  Rec start {start} (DVR time)"));
        if let Some(part) = f.file.facts.get("recording_start_in_name").and_then(|v| v.as_str()) {
            t.push_str(&format!(", read from its name ({part})"));
        }
        let timeline = crate::media::index::Timeline {
            recording_start: crate::media::time::parse_civil("recording start", start).ok(),
            clock: f.clock.clone(),
            timezone: timezone.map(str::to_owned),
            first_frame_us: 0,
        };
        if let Some(corrected) = timeline.wall_at(0) {
            t.push_str(&format!(", {corrected} corrected"));
        }
        t.push('\n');
    }
    if let Some(m) = &f.media {
        t.push_str(&format!("  Media     {}\n", m.summary()));
        for [k, v] in &m.tags {
            t.push_str(&format!("            tag {k} = {v}\n"));
        }
    }
    match &row.parent {
        Some(p) => t.push_str(&format!("  Parent    {p}\n")),
        None => t.push_str("  Parent    none (original)\n"),
    }
    if f.created.action == "clip" {
        t.push_str(&clip_lines(&f.file.facts));
    }
    if !f.children.is_empty() {
        let kids: Vec<String> = f.children.iter().map(|c| format!("{} ({})", c.id, c.name)).collect();
        t.push_str(&format!("  Derived   {}\n", kids.join(", ")));
    }
    t.push_str(&format!("  Held by   {}\n  History\n", f.holder));
    for e in &f.field_history {
        t.push_str(&format!("    field {}\n", super::log::event_line(e)));
    }
    for e in &f.history {
        t.push_str(&format!("    {}\n", super::log::event_line(e)));
    }
    let json = json!({
        "schema_version": 1, "command": "show", "item": row, "file": f.file,
        "acquired": {"time": f.created.time, "examiner": f.created.examiner, "event": f.created.seq},
        "clock": f.clock, "holder": f.holder,
        "history": f.history.iter().map(|e| e.seq).collect::<Vec<_>>(),
        "field_history": f.field_history.iter().map(|e| e.seq).collect::<Vec<_>>(),
        "derived": f.children.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
    });
    Ok(Report::ok(t, json))
}

/// What a clip holds, from the facts its event recorded: the mode, the frames, and for a smart
/// clip which of them were copied and which re-encoded.
fn clip_lines(facts: &serde_json::Map<String, serde_json::Value>) -> String {
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).unwrap_or("?").to_owned();
    let number = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_u64()).map_or("?".to_owned(), |n| n.to_string());
    let p = facts.get("produced");
    let mut t = format!(
        "  Clip      {}: frames {}..{} ({} to {})\n",
        text(facts.get("mode")),
        number(p.and_then(|p| p.get("first_frame"))),
        number(p.and_then(|p| p.get("last_frame"))),
        text(p.and_then(|p| p.get("first_time"))),
        text(p.and_then(|p| p.get("last_time")))
    );
    for seg in facts.get("frame_map").and_then(|m| m.as_array()).into_iter().flatten() {
        let how = match text(seg.get("how")).as_str() {
            "copied" => "copied bit for bit".to_owned(),
            other => other.to_owned(),
        };
        t.push_str(&format!("            frames {}..{} {how}\n", number(seg.get("first")), number(seg.get("last"))));
    }
    let left = facts.get("left_out").and_then(|l| l.as_array()).map_or(&[][..], Vec::as_slice);
    t.push_str(&super::clip::left_out_line(left, "            "));
    t
}
