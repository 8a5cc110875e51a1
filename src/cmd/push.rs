//! `custody push --to AGENCY`: bring a field store (a laptop's, made at a scene without a
//! network) into the agency store, keeping its chain verifiable byte for byte.
//!
//! The field chain is re-verified whole first. Its new events are kept verbatim in the agency
//! ledger (`pushed`, under the chain's ID: the hash of the field store's first event), and one
//! `push` event in the agency chain binds them: it records the field head they end at, the head
//! the previous push ended at, and every object they brought as an agency item (each naming
//! the field event and item it came from). The objects go up through the agency store's own
//! staging, so each is re-hashed on the way and proven where it lands. A second push sends only
//! what is new; a field chain that no longer holds what was pushed before (rewritten, forked,
//! cut short) is refused and named. Nothing is written to the field store.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;

use anyhow::Result;
use serde_json::{Map, Value, json};

use super::{Ctx, Report, byte_progress, head_line, human_size};
use crate::cli::PushArgs;
use crate::error;
use crate::ledger::chain::ChainVerifier;
use crate::ledger::{Draft, FileRef, Head, Row, parse_body};
use crate::store::Store;

/// One object the new field events brought, as the push event records it.
struct Brought {
    /// The field item, when the output is one.
    field_item: Option<String>,
    field_seq: u64,
    file: FileRef,
    case: String,
    exhibit: String,
    /// The field item it was made from, if any.
    parent: Option<String>,
}

pub fn run(args: PushArgs, ctx: &Ctx) -> Result<Report> {
    let field = ctx.store()?;
    let agency = Store::at(&args.to, ctx.lock_timeout)?;
    if agency.root() == field.root() {
        return Err(error::input(format!(
            "--to {} is the store being pushed; name the agency store (made with `custody init --join`)",
            args.to.display()
        )));
    }
    let source = field.read_ledger()?;
    let mut ledger = agency.open_ledger()?;
    if !ledger.holds_pushed_chains() {
        return Err(error::input(format!(
            "{} keeps its ledger in a file of its own; a field store is pushed into an agency store, whose ledger \
             is in PostgreSQL (`custody init --join postgres://…`). Nothing was pushed",
            agency.root().display()
        )));
    }
    let field_name = field.root().display().to_string();

    // The whole field chain, recomputed from its stored bytes: nothing edited goes further.
    let mut chain = ChainVerifier::new(None);
    let mut rows: Vec<Row> = Vec::new();
    source.for_each_row(|row| {
        chain.check(&row);
        rows.push(row);
        Ok(())
    })?;
    let field_head = chain.finish();
    if let Some(p) = chain.problems.first() {
        return Err(error::mismatch(format!(
            "the field store {field_name} fails its own chain check ({p}); nothing was pushed. \
             Run `custody verify` there"
        )));
    }
    let Some(field_head) = field_head else {
        return Err(error::input(format!("the field store {field_name} has no events: nothing to push")));
    };
    let id = rows[0].hash.clone();
    let short = &id[..12];

    // What was pushed before must still be there, unchanged.
    let before = ledger.pushed_head(&id)?;
    if let Some(b) = &before {
        match (b.seq as usize).checked_sub(1).and_then(|i| rows.get(i)) {
            None => {
                return Err(error::mismatch(format!(
                    "the field store {field_name} ends at event {}, but its chain {short} was pushed up to event {} \
                     ({b}): events pushed before are gone from it. Nothing was pushed; the agency keeps what was pushed",
                    field_head.seq, b.seq
                )));
            }
            Some(r) if r.hash != b.hash => {
                return Err(error::mismatch(format!(
                    "the field store {field_name} forks from what was pushed before: its event {} has hash {}, but \
                     chain {short} was pushed with {} there. Nothing was pushed; the agency keeps what was pushed",
                    b.seq, r.hash, b.hash
                )));
            }
            Some(_) => {}
        }
        if b.seq == field_head.seq {
            let text = format!(
                "Nothing to push: the agency store {} already holds field chain {short} up to its head {field_head}\n",
                agency.root().display()
            );
            let json = json!({"schema_version": 1, "command": "push", "chain": id, "pushed_events": 0,
                "head": field_head, "after": before, "items": [], "recorded": null, "event": null});
            return Ok(Report::ok(text, json));
        }
    }
    let new_rows: Vec<Row> = rows.split_off(before.as_ref().map_or(0, |b| b.seq as usize));
    drop(rows);

    // The objects the new events brought, and the agency items earlier pushes made.
    let field_items: HashMap<String, crate::ledger::ItemRow> =
        source.items()?.into_iter().map(|r| (r.id.clone(), r)).collect();
    let mut mapped: HashMap<String, String> = HashMap::new();
    for (ev, _) in ledger.push_events(&id)? {
        for out in &ev.outputs {
            if let (Some(agency_item), Some(field_item)) =
                (&out.item, out.facts.get("pushed").and_then(|p| p.get("item")).and_then(Value::as_str))
            {
                mapped.insert(field_item.to_owned(), agency_item.clone());
            }
        }
    }
    let mut brought: Vec<Brought> = Vec::new();
    for row in &new_rows {
        let ev = parse_body(row)?;
        for out in ev.outputs {
            let (case, exhibit, parent) = match out.item.as_ref().and_then(|i| field_items.get(i)) {
                Some(r) => (r.case.clone(), r.exhibit.clone(), r.parent.clone()),
                None => (String::new(), String::new(), None),
            };
            brought.push(Brought { field_item: out.item.clone(), field_seq: ev.seq, file: out, case, exhibit, parent });
        }
    }
    // Names the agency already uses, refused before anything is uploaded.
    for b in &brought {
        if let (Some(item), Some(name)) = (&b.field_item, &b.file.name)
            && let Some(existing) = ledger.items_in_exhibit(&b.case, &b.exhibit)?.into_iter().find(|r| &r.name == name)
        {
            return Err(error::input(format!(
                "field item {item} ({}:{}/{name}) cannot be pushed: the agency store already has {} under that name. \
                 Nothing was pushed. Ingest the field copy under another exhibit number, or ask who recorded {} there",
                b.case, b.exhibit, existing.id, existing.id
            )));
        }
    }

    // Every object, re-hashed on its way into the agency store and checked against the event
    // that recorded it in the field.
    let total: u64 = brought.iter().map(|b| b.file.size).sum();
    let bar = byte_progress(total, "pushing");
    let mut staging = agency.stage()?;
    let mut created: BTreeMap<String, bool> = BTreeMap::new();
    for b in &brought {
        let sha = &b.file.sha256;
        if created.contains_key(sha) {
            continue;
        }
        let what = match &b.field_item {
            Some(i) => format!("field item {i} (event {})", b.field_seq),
            None => format!("the output of field event {}", b.field_seq),
        };
        let path = field.object_path(sha);
        let file = File::open(&path).map_err(|e| {
            error::mismatch(format!(
                "{what}: its object {} cannot be read in the field store ({e}); nothing was pushed. \
                 Run `custody verify` there",
                path.display()
            ))
        })?;
        let staged = staging.copy_file(&agency, &file, &format!("{what}, {}", path.display()), &[], &|n| bar.inc(n))?;
        let d = &staged.digests;
        if !crate::digest::hex_eq(d.sha256(), sha)
            || !crate::digest::hex_eq(d.blake3(), &b.file.blake3)
            || d.size != b.file.size
        {
            return Err(error::mismatch(format!(
                "{what}: its object {} no longer matches the event that recorded it (now SHA-256 {}, {} bytes); \
                 nothing was pushed. Run `custody verify` there",
                path.display(),
                d.sha256(),
                d.size
            )));
        }
        created.insert(sha.clone(), !staged.existed);
    }
    bar.finish_and_clear();

    let after = before.as_ref().map(Head::to_string);
    let actor = ctx.actor();
    let mut assigned: Vec<(String, String)> = Vec::new();
    let (head, event) = agency.commit(&mut ledger, &actor, staging, |txn| {
        // Another push of the same field store may have landed meanwhile.
        if txn.pushed_head(&id)? != before {
            return Err(error::environment(format!(
                "another push of field chain {short} was recorded while this one ran; nothing was recorded. \
                 Run the push again: it sends what is still new"
            )));
        }
        for row in &new_rows {
            txn.insert_pushed(&id, row)?;
        }
        let mut outputs = Vec::new();
        for b in &brought {
            let mut file = b.file.clone();
            // What the field recorded of the file is in the pushed event; the agency's record
            // says where it came from and where it now is.
            let mut facts = Map::new();
            let mut origin = Map::new();
            origin.insert("chain".into(), json!(id));
            origin.insert("seq".into(), json!(b.field_seq));
            if let Some(field_item) = &b.field_item {
                origin.insert("item".into(), json!(field_item));
                let item = txn.new_item_id();
                assigned.push((field_item.clone(), item.clone()));
                mapped.insert(field_item.clone(), item.clone());
                facts.insert("case".into(), json!(b.case));
                facts.insert("exhibit".into(), json!(b.exhibit));
                if let Some(p) = &b.parent {
                    let parent = mapped.get(p).cloned().ok_or_else(|| {
                        error::mismatch(format!(
                            "field item {field_item} was made from field item {p}, which no push brought; nothing \
                             was recorded. Run `custody verify` on the field store"
                        ))
                    })?;
                    facts.insert("parent".into(), json!(parent));
                }
                file.item = Some(item);
            } else {
                file.item = None;
            }
            facts.insert("pushed".into(), Value::Object(origin));
            file.facts = facts;
            outputs.push(file);
        }
        let mut params = Map::new();
        params.insert("chain".into(), json!(id));
        params.insert("head".into(), json!(field_head.to_string()));
        if let Some(a) = &after {
            params.insert("after".into(), json!(a));
        }
        params.insert("events".into(), json!(new_rows.len()));
        Ok(Draft { action: "push".into(), outputs, params, note: args.note.clone(), ..Draft::default() })
    })?;

    let first = new_rows.first().map_or(0, |r| r.seq);
    let mut text = format!(
        "Pushed field store {field_name} (chain {short}) into {}{}:\n  events   {first}..{} of the field chain ({} new), \
         kept verbatim\n",
        agency.root().display(),
        agency.ledger_location().after_store(),
        field_head.seq,
        new_rows.len()
    );
    let new_objects = created.values().filter(|c| **c).count();
    text.push_str(&format!(
        "  objects  {} ({}), {new_objects} new to the agency store, each re-hashed and proven\n",
        created.len(),
        human_size(total)
    ));
    for out in event.outputs.iter().filter(|o| o.item.is_some()) {
        let origin = out.facts.get("pushed").and_then(|p| p.get("item")).and_then(Value::as_str).unwrap_or("-");
        let case = out.facts.get("case").and_then(Value::as_str).unwrap_or_default();
        let exhibit = out.facts.get("exhibit").and_then(Value::as_str).unwrap_or_default();
        text.push_str(&format!(
            "  {:<6} {case}:{exhibit}/{}  (field item {origin})\n",
            out.item.as_deref().unwrap_or_default(),
            out.name.as_deref().unwrap_or_default()
        ));
    }
    text.push_str(&head_line(&head));
    let items: Vec<Value> = assigned.iter().map(|(f, a)| json!({"field_item": f, "item": a})).collect();
    let json = json!({"schema_version": 1, "command": "push", "chain": id, "pushed_events": new_rows.len(),
        "head": field_head, "after": before, "items": items, "recorded": {"seq": head.seq, "hash": head.hash},
        "event": event});
    Ok(Report::ok(text, json))
}
