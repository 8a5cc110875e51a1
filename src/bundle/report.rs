//! The custody and processing report of a bundle, in HTML and PDF: each item with its hashes and
//! acquisition facts, every event with its parameters and tools, the lineage from each original
//! to each derived file, stills as thumbnails, face review sheets whole, each exemption log as a
//! table, and how to verify it all.

use std::fmt::Write as _;

use anyhow::Result;

use super::package::Packed;
use super::pdf::{Cell, Column, Paper, Pdf, Pdfa, Style, cell, code_spans};
use crate::ledger::{Event, Head};
use crate::store::Store;

/// Everything the report shows.
pub struct Context<'a> {
    pub bag: &'a str,
    pub files: &'a [Packed],
    pub events: &'a [(Event, String)],
    pub head: &'a Head,
    pub total_events: u64,
    pub agency: Option<&'a str>,
    pub examiner: &'a str,
    pub recipient: Option<&'a str>,
    pub purpose: Option<&'a str>,
    /// The court medium the bundle is on: its label and formats.
    pub medium: Option<&'a str>,
    pub created: &'a str,
    pub store: &'a Store,
}

/// A small picture of a still, when the file is a PNG custody made.
struct Thumb {
    rgb: Vec<u8>,
    width: u32,
    height: u32,
    png: Vec<u8>,
}

fn thumbnail(ctx: &Context, f: &Packed) -> Option<Thumb> {
    if !f.name.to_ascii_lowercase().ends_with(".png") {
        return None;
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut ctx.store.open_object(&f.sha256).ok()?, &mut bytes).ok()?;
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().ok()?;
    let mut buf = vec![0; reader.output_buffer_size()?];
    let info = reader.next_frame(&mut buf).ok()?;
    if info.bit_depth != png::BitDepth::Eight {
        return None;
    }
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        _ => return None,
    };
    let (w, h) = (info.width as usize, info.height as usize);
    // A face review sheet is read, not glanced at: it keeps its width.
    let tw = w.min(if kind(ctx, f).as_deref() == Some("face review sheet") { 640 } else { 240 });
    let th = (h * tw / w.max(1)).max(1);
    let mut rgb = Vec::with_capacity(tw * th * 3);
    for y in 0..th {
        for x in 0..tw {
            let (sx, sy) = (x * w / tw, y * h / th);
            let o = (sy * w + sx) * channels;
            rgb.extend_from_slice(&buf[o..o + 3]);
        }
    }
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, tw as u32, th as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().ok()?;
        wr.write_image_data(&rgb).ok()?;
    }
    Some(Thumb { rgb, width: tw as u32, height: th as u32, png: png_bytes })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if c.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    out
}

/// What both reports show of one evidence file: where it is, its digests, its acquisition,
/// its redaction counts and its lineage.
fn file_facts(ctx: &Context, f: &Packed) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = vec![
        ("File in bundle".into(), f.path.clone()),
        ("Size".into(), format!("{} bytes", f.size)),
        ("SHA-256".into(), f.sha256.clone()),
        ("SHA-512".into(), f.sha512.clone()),
        ("BLAKE3".into(), f.blake3.clone()),
    ];
    rows.extend(acquisition(ctx, f));
    rows.extend(redaction(ctx, f));
    rows.push(("Lineage".into(), lineage(ctx, f).join(" → ")));
    rows
}

/// The acquisition facts of an item, from the event that created it.
fn acquisition(ctx: &Context, f: &Packed) -> Vec<(String, String)> {
    let mut facts = Vec::new();
    let Some((ev, _)) = ctx.events.iter().find(|(e, _)| e.seq == f.event) else { return facts };
    facts.push((
        "Recorded".into(),
        format!("event {} ({}) at {} by {} on {}", ev.seq, ev.action, ev.time, ev.examiner, ev.host),
    ));
    if let Some(s) = ev.params.get("source").and_then(|v| v.as_str()) {
        facts.push(("Source".into(), s.to_owned()));
    }
    if let Some(v) = ev.params.get("verified").filter(|v| v.is_object()) {
        facts.push(("Parent verified".into(), verified(v)));
    }
    if let Some(c) = ev.params.get("clock").filter(|c| !c.is_null()) {
        let offset = c.get("offset").and_then(|v| v.as_str()).unwrap_or("?");
        let reference = c.get("reference").and_then(|v| v.as_str()).unwrap_or("not stated");
        facts.push(("DVR clock offset".into(), format!("{offset} (reference: {reference})")));
    }
    if let Some(out) = ev.outputs.iter().find(|o| o.item.as_deref() == Some(f.item.as_str())) {
        if let Some(m) = out.facts.get("media").filter(|m| !m.is_null()) {
            let container = m.get("container").and_then(|v| v.as_str()).unwrap_or("?");
            let duration = m.get("duration").and_then(|v| v.as_str()).unwrap_or("");
            facts.push(("Media".into(), format!("{container} {duration}").trim().to_owned()));
        }
        if let Some(src) = out.facts.get("source_path").and_then(|v| v.as_str()) {
            facts.push(("Copied from".into(), src.to_owned()));
        }
        // An agency store's bucket: where the object is, under what retention, and how the copy
        // there was proven (a release withholds it: then it is a string, and not shown).
        if let Some(st) = out.facts.get("stored").filter(|v| v.is_object()) {
            let text = |k: &str| st.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_owned();
            let mut line = format!("{} (version {})", text("url"), text("version"));
            if let Some(r) = st.get("retention").filter(|r| r.is_object()) {
                let (mode, until) = (r.get("mode").and_then(|v| v.as_str()), r.get("until").and_then(|v| v.as_str()));
                line.push_str(&format!(", retention {} until {}", mode.unwrap_or("?"), until.unwrap_or("?")));
            }
            if st.get("created").and_then(|v| v.as_bool()) == Some(false) {
                line.push_str(", already there with these bytes");
            }
            line.push_str(&format!("; {}", text("proof")));
            facts.push(("Stored".into(), line));
        }
    }
    facts
}

/// What a derived file's event says was verified of its parent (`params.verified`), in words.
fn verified(v: &serde_json::Value) -> String {
    let n = |key: &str| v.get(key).and_then(|x| x.as_u64()).unwrap_or(0);
    if v.get("mode").and_then(|m| m.as_str()) == Some("whole") {
        return format!("the whole parent ({} bytes) re-read and matched to its recorded digests", n("bytes"));
    }
    if n("bytes") == n("of") {
        // A raw stream, or a file read whole to index it: nothing was left unread.
        return format!(
            "all {} bytes of the parent, read in {} groups of {} KiB, each checked against the parent's recorded \
             BLAKE3 before use",
            n("of"),
            n("groups"),
            n("group_bytes") / 1024
        );
    }
    format!(
        "the {} bytes of the {}-byte parent that were read, in {} groups of {} KiB, each checked against the \
         parent's recorded BLAKE3 before use (the rest was not read; `custody verify` checks whole objects)",
        n("bytes"),
        n("of"),
        n("groups"),
        n("group_bytes") / 1024
    )
}

/// What the event that made the file says it is (`kind` in its facts: `exemption log`, …).
fn kind(ctx: &Context, f: &Packed) -> Option<String> {
    let (ev, _) = ctx.events.iter().find(|(e, _)| e.seq == f.event)?;
    let out = ev.outputs.iter().find(|o| o.item.as_deref() == Some(f.item.as_str()))?;
    out.facts.get("kind").and_then(|k| k.as_str()).map(str::to_owned)
}

/// How an enhanced copy was made, for the court: each step with its parameters, the method in a
/// paragraph and its reference, the recipe verbatim, the filter graph FFmpeg ran and its
/// versions, and the before-and-after sheet.
struct Processing {
    seq: u64,
    /// (step, parameters, method, reference)
    steps: Vec<[String; 4]>,
    recipe: String,
    recipe_sha256: String,
    chains: Vec<String>,
    libraries: String,
    warnings: Vec<String>,
    sheet: Option<String>,
}

fn processing(ctx: &Context, f: &Packed) -> Option<Processing> {
    let (ev, _) = ctx.events.iter().find(|(e, _)| e.seq == f.event && e.action == "enhance")?;
    let out = ev.outputs.iter().find(|o| o.item.as_deref() == Some(f.item.as_str()))?;
    if out.facts.get("enhanced").and_then(|v| v.as_bool()) != Some(true) {
        return None;
    }
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
    let steps = ev.params.get("steps")?.as_array()?;
    let steps = steps
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let name = st.get("name").and_then(|n| n.as_str()).unwrap_or("?");
            let params = st
                .get("params")
                .and_then(|p| p.as_object())
                .map(|m| m.iter().map(|(k, v)| format!("{k}={}", text(v))).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            let (method, reference) = crate::media::enhance::steps::find(name).map_or_else(
                || ("(a step this version of custody does not describe)".to_owned(), String::new()),
                |d| {
                    let learned = if d.learned { " Uses a learned model." } else { "" };
                    (format!("{}{learned}", squeeze(d.algorithm)), squeeze(d.reference))
                },
            );
            [format!("{}. {name}", i + 1), params, method, reference]
        })
        .collect();
    let chains = ev
        .params
        .get("graphs")
        .and_then(|g| g.as_array())
        .map(|gs| {
            gs.iter()
                .filter_map(|g| Some(format!("{}: {}", g.get("medium")?.as_str()?, g.get("chain")?.as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    let libraries = ev
        .tools
        .iter()
        .filter(|(k, _)| k.starts_with("lib"))
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sheet =
        ev.outputs.iter().find(|o| o.facts.get("before_after").and_then(|v| v.as_bool()) == Some(true)).map(|o| {
            let id = o.item.as_deref().unwrap_or("-");
            let packed = ctx.files.iter().find(|p| Some(p.item.as_str()) == o.item.as_deref());
            match packed {
                Some(p) => format!("{id} {} (in this bundle: {})", o.name.as_deref().unwrap_or(""), p.path),
                None => format!("{id} {} (in the store, not in this bundle)", o.name.as_deref().unwrap_or("")),
            }
        });
    Some(Processing {
        seq: ev.seq,
        steps,
        recipe: ev.params.get("recipe").and_then(|r| r.as_str()).unwrap_or_default().to_owned(),
        recipe_sha256: ev.params.get("recipe_sha256").and_then(|r| r.as_str()).unwrap_or_default().to_owned(),
        chains,
        libraries,
        warnings: ev
            .params
            .get("order_warnings")
            .and_then(|w| w.as_array())
            .map(|a| a.iter().filter_map(|w| w.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
        sheet,
    })
}

/// Source text folded onto one line.
fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

const PROCESSING_INTRO: &str = "Processed from its parent by these steps, in this order (custody enhance). Each \
    step is an FFmpeg filter (frame averaging is custody's own exact mean); the original was not altered. The result \
    can be reproduced from the original with the recorded steps: `custody redo";

/// The columns of an exemption log the report shows, by header name, and their titles.
const LOG_COLUMNS: [(&str, &str); 8] = [
    ("row", "Row"),
    ("medium", "Medium"),
    ("withheld", "Withheld"),
    ("from", "From"),
    ("to", "To"),
    ("reason", "Reason"),
    ("basis", "Basis"),
    ("decided_by", "Decided by"),
];

/// A packaged exemption log's rows (the report's columns only), and the two SHA-256 every row
/// binds it to; None for any other file, or a log that cannot be read.
fn exemption_rows(ctx: &Context, f: &Packed) -> Option<(Vec<Vec<String>>, String, String)> {
    if kind(ctx, f).as_deref() != Some("exemption log") {
        return None;
    }
    let mut reader = csv::Reader::from_reader(ctx.store.open_object(&f.sha256).ok()?);
    let header = reader.headers().ok()?.clone();
    let at = |name: &str| header.iter().position(|h| h == name);
    let (input, output) = (at("input_sha256")?, at("output_sha256")?);
    let mut rows = Vec::new();
    let mut hashes = (String::new(), String::new());
    for record in reader.records() {
        let record = record.ok()?;
        hashes = (record.get(input)?.to_owned(), record.get(output)?.to_owned());
        rows.push(
            LOG_COLUMNS.iter().map(|(c, _)| at(c).and_then(|i| record.get(i)).unwrap_or("").to_owned()).collect(),
        );
    }
    Some((rows, hashes.0, hashes.1))
}

/// The coverage a redacted copy's event recorded for each region (`regions` in its facts).
fn regions(ctx: &Context, f: &Packed) -> Vec<serde_json::Value> {
    let Some((ev, _)) = ctx.events.iter().find(|(e, _)| e.seq == f.event) else { return Vec::new() };
    let out = ev.outputs.iter().find(|o| o.item.as_deref() == Some(f.item.as_str()));
    out.and_then(|o| o.facts.get("regions")).and_then(|r| r.as_array()).cloned().unwrap_or_default()
}

/// A redacted copy's frame counts per region ("N of M frames") and its warnings, as rows.
fn redaction(ctx: &Context, f: &Packed) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for r in regions(ctx, f) {
        let name = r.get("name").and_then(|n| n.as_str()).map(|n| format!(" ({n})")).unwrap_or_default();
        let span = match (r["first"].as_u64(), r["last"].as_u64()) {
            (Some(a), Some(b)) => format!(", frames {a}-{b}"),
            _ => String::new(),
        };
        rows.push((
            format!("Redaction region {}{name}", r["region"]),
            format!("{} of {} frames{span}", r["frames"], r["of"]),
        ));
        if let Some(w) = r.get("warning").and_then(|w| w.as_str()) {
            rows.push(("WARNING".into(), w.to_owned()));
        }
    }
    rows
}

/// The warnings of a redacted copy, named by the file they concern.
fn redaction_warnings(ctx: &Context, f: &Packed) -> Vec<String> {
    regions(ctx, f)
        .iter()
        .filter_map(|r| r.get("warning").and_then(|w| w.as_str()))
        .map(|w| format!("{} {}: {w}", f.item, f.name))
        .collect()
}

/// Each file's line of descent: original → … → the file, with the action at each step.
fn lineage(ctx: &Context, f: &Packed) -> Vec<String> {
    let mut steps = Vec::new();
    let mut item = f.item.clone();
    for _ in 0..64 {
        let Some((ev, out)) = ctx
            .events
            .iter()
            .find_map(|(e, _)| e.outputs.iter().find(|o| o.item.as_deref() == Some(item.as_str())).map(|o| (e, o)))
        else {
            break;
        };
        steps.push(format!("{item} {} (event {} {})", out.name.as_deref().unwrap_or_default(), ev.seq, ev.action));
        // Every made file names the item it was made from (`parent`), whichever event made it:
        // a derivation, or a push that brought it from a field store.
        match out.facts.get("parent").and_then(|p| p.as_str()) {
            Some(parent) => item = parent.to_owned(),
            None => break,
        }
    }
    steps.reverse();
    steps
}

fn event_lines(ev: &Event, hash: &str) -> Vec<String> {
    let mut l = vec![format!("Event {} - {} - {} UTC", ev.seq, ev.action, ev.time)];
    let login = ev.db_user.as_deref().map(|u| format!(", database role {u}")).unwrap_or_default();
    l.push(format!("Examiner {} (OS user {}{login}) on host {}", ev.examiner, ev.os_user, ev.host));
    if let Some(c) = &ev.case {
        l.push(format!("Case {c}{}", ev.exhibit.as_ref().map(|e| format!(", item {e}")).unwrap_or_default()));
    }
    let tools: Vec<String> = ev.tools.iter().map(|(k, v)| format!("{k} {v}")).collect();
    l.push(format!("Tools: {}", tools.join(", ")));
    for i in &ev.inputs {
        l.push(format!(
            "In:  {} {} sha256 {}",
            i.item.as_deref().unwrap_or("-"),
            i.name.as_deref().unwrap_or(""),
            i.sha256
        ));
    }
    for o in &ev.outputs {
        l.push(format!(
            "Out: {} {} sha256 {}",
            o.item.as_deref().unwrap_or("-"),
            o.name.as_deref().unwrap_or(""),
            o.sha256
        ));
    }
    if !ev.params.is_empty() {
        l.push(format!("Parameters: {}", serde_json::Value::Object(ev.params.clone())));
    }
    if let Some(n) = &ev.note {
        l.push(format!("Note: {n}"));
    }
    l.push(format!("Event hash {hash} (previous {})", ev.prev));
    l
}

const STEPS: [&str; 4] = [
    "Unzip the bundle and enter its folder. Check every file against the manifests with standard tools: `sha256sum -c manifest-sha256.txt` and `sha256sum -c tagmanifest-sha256.txt` (or validate the bag with the Library of Congress tool: `bagit.py --validate .`). Any changed, missing or added file is named.",
    "Check the custody record: `python3 verify_custody.py .` re-computes the hash of every event in data/custody/ledger.jsonl, checks that each event links to the one before it, that the last one is the ledger head stated in this report, and that every evidence file matches the event that recorded it.",
    "Compare the ledger head stated here with the head the agency wrote down or reported independently: a match shows the record was not rewritten after the bundle was made.",
    "With custody installed, `custody verify BUNDLE.zip` performs all of these checks at once, without access to the agency's store.",
];

pub fn html(ctx: &Context) -> Result<String> {
    let mut h = String::new();
    let title = format!("Custody and processing report - {}", ctx.bag);
    write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}code,pre{{font-size:85%;word-break:break-all;white-space:pre-wrap}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:2px 6px;text-align:left;vertical-align:top}}</style></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    )?;
    writeln!(h, "<table>")?;
    let mut row = |k: &str, v: &str| writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    if let Some(a) = ctx.agency {
        row("Agency", a)?;
    }
    row("Prepared by", ctx.examiner)?;
    row("Prepared at", ctx.created)?;
    if let Some(r) = ctx.recipient {
        row("Recipient", r)?;
    }
    if let Some(p) = ctx.purpose {
        row("Purpose", p)?;
    }
    if let Some(m) = ctx.medium {
        row("Medium", m)?;
    }
    row("Ledger head", &ctx.head.to_string())?;
    row(
        "Events",
        &format!(
            "{} of the ledger's {} concern these files (the others appear only as hashes)",
            ctx.events.len(),
            ctx.total_events
        ),
    )?;
    writeln!(h, "</table>")?;
    for w in ctx.files.iter().flat_map(|f| redaction_warnings(ctx, f)) {
        writeln!(h, "<p style=\"color:#b00000\"><strong>WARNING: {}</strong></p>", esc(&w))?;
    }
    writeln!(
        h,
        "<h2>Chain of custody</h2>\n<table>\n<tr><th>Exhibit</th><th>Held by</th><th>From</th><th>Until</th><th>How it passed on</th></tr>"
    )?;
    for (exhibit, holds) in chain_of_custody(ctx) {
        for (i, hold) in holds.iter().enumerate() {
            writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if i == 0 { esc(&exhibit) } else { String::new() },
                esc(&hold.holder),
                esc(&hold.from),
                esc(&hold.until),
                esc(&hold.how)
            )?;
        }
    }
    writeln!(h, "</table>")?;
    writeln!(h, "<h2>Evidence files</h2>")?;
    for f in ctx.files {
        writeln!(h, "<h3>{} - {}:{}/{}</h3>\n<table>", esc(&f.item), esc(&f.case), esc(&f.exhibit), esc(&f.name))?;
        let rows = file_facts(ctx, f);
        for (k, v) in rows {
            writeln!(h, "<tr><th>{}</th><td><code>{}</code></td></tr>", esc(&k), esc(&v))?;
        }
        writeln!(h, "</table>")?;
        if let Some(t) = thumbnail(ctx, f) {
            writeln!(
                h,
                "<p><img alt=\"{}\" width=\"{}\" height=\"{}\" src=\"data:image/png;base64,{}\"></p>",
                esc(&f.name),
                t.width,
                t.height,
                base64(&t.png)
            )?;
        }
        if let Some(pr) = processing(ctx, f) {
            writeln!(h, "<h4>Processing</h4>\n<p>{} {}`.</p>", esc(PROCESSING_INTRO), pr.seq)?;
            writeln!(h, "<table>\n<tr><th>Step</th><th>Parameters</th><th>Method</th><th>Reference</th></tr>")?;
            for st in &pr.steps {
                writeln!(h, "<tr>{}</tr>", st.iter().map(|c| format!("<td>{}</td>", esc(c))).collect::<String>())?;
            }
            writeln!(h, "</table>")?;
            for w in &pr.warnings {
                writeln!(h, "<p><strong>Order:</strong> {}</p>", esc(w))?;
            }
            writeln!(
                h,
                "<p>Recipe, verbatim (SHA-256 <code>{}</code>):</p>\n<pre>{}</pre>",
                esc(&pr.recipe_sha256),
                esc(&pr.recipe)
            )?;
            for c in &pr.chains {
                writeln!(h, "<p>FFmpeg filter graph, {}</p>", esc(c))?;
            }
            writeln!(h, "<p>FFmpeg libraries: {}</p>", esc(&pr.libraries))?;
            if let Some(sheet) = &pr.sheet {
                writeln!(h, "<p>Before and after: {}</p>", esc(sheet))?;
            }
        }
        if let Some((rows, input, output)) = exemption_rows(ctx, f) {
            writeln!(
                h,
                "<p>Exemption log: what the redaction withheld and why. Redacted item SHA-256 <code>{}</code>; redacted copy SHA-256 <code>{}</code>.</p>\n<table>\n<tr>{}</tr>",
                esc(&input),
                esc(&output),
                LOG_COLUMNS.iter().map(|(_, t)| format!("<th>{t}</th>")).collect::<String>()
            )?;
            for r in rows {
                writeln!(h, "<tr>{}</tr>", r.iter().map(|v| format!("<td>{}</td>", esc(v))).collect::<String>())?;
            }
            writeln!(h, "</table>")?;
        }
    }
    writeln!(h, "<h2>Events</h2>")?;
    for (ev, hash) in ctx.events {
        writeln!(h, "<pre>{}</pre>", esc(&event_lines(ev, hash).join("\n")))?;
    }
    writeln!(h, "<h2>How to verify this bundle</h2>\n<ol>")?;
    for s in STEPS {
        writeln!(h, "<li>{}</li>", esc(s))?;
    }
    writeln!(h, "</ol>\n</body></html>")?;
    Ok(h)
}

/// One period of an exhibit in someone's hands, for the chain-of-custody table.
struct Hold {
    holder: String,
    from: String,
    until: String,
    how: String,
}

/// Each exhibit in the bundle (`CASE:ITEM`) with who held it, from when to when, and how it
/// passed on: from the event that first made one of its files, through every transfer that
/// names any of them.
fn chain_of_custody(ctx: &Context) -> Vec<(String, Vec<Hold>)> {
    let mut exhibits: Vec<(String, Vec<&str>)> = Vec::new();
    for f in ctx.files {
        let key = format!("{}:{}", f.case, f.exhibit);
        match exhibits.iter_mut().find(|(k, _)| *k == key) {
            Some((_, items)) => items.push(&f.item),
            None => exhibits.push((key, vec![&f.item])),
        }
    }
    let mut out = Vec::new();
    for (key, items) in exhibits {
        let names = |refs: &[crate::ledger::FileRef]| {
            refs.iter().filter(|r| r.item.as_deref().is_some_and(|i| items.contains(&i))).count()
        };
        let mut holds: Vec<Hold> = Vec::new();
        for (ev, _) in ctx.events {
            if holds.is_empty() && names(&ev.outputs) > 0 {
                let how = match ev.action.as_str() {
                    "ingest" => "ingested".to_owned(),
                    "push" => "pushed from a field store".to_owned(),
                    a => format!("made ({a})"),
                };
                holds.push(Hold {
                    holder: ev.examiner.clone(),
                    from: format!("{} ({how}, event {})", ev.time, ev.seq),
                    until: String::new(),
                    how: String::new(),
                });
            } else if ev.action == "transfer" && !holds.is_empty() {
                let n = names(&ev.inputs);
                if n == 0 {
                    continue;
                }
                let to = ev.params.get("to").and_then(|v| v.as_str()).unwrap_or("?").to_owned();
                let reason = ev.params.get("reason").and_then(|v| v.as_str()).unwrap_or("").to_owned();
                let part =
                    if n < items.len() { format!(" ({n} of its {} files here)", items.len()) } else { String::new() };
                let last = holds.last_mut().expect("a hold");
                last.until = format!("{} (event {})", ev.time, ev.seq);
                last.how = format!("to {to}{part}: {reason}");
                holds.push(Hold {
                    holder: to,
                    from: format!("{} (transfer, event {})", ev.time, ev.seq),
                    until: String::new(),
                    how: String::new(),
                });
            }
        }
        if let Some(last) = holds.last_mut() {
            last.until = format!("held when this bundle was made ({})", ctx.created);
        }
        out.push((key, holds));
    }
    out
}

/// An event's parameters as `name: value` lines (nested names joined with dots), at most
/// `limit` of them.
fn parameter_lines(
    params: &serde_json::Map<String, serde_json::Value>,
    limit: usize,
) -> (Vec<(String, String)>, usize) {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        use serde_json::Value as V;
        match v {
            V::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    walk(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, x, out);
                }
            }
            V::Array(a) if a.iter().any(|x| x.is_object() || x.is_array()) => {
                for (i, x) in a.iter().enumerate() {
                    walk(&format!("{prefix}[{}]", i + 1), x, out);
                }
            }
            V::Array(a) => out.push((prefix.to_owned(), a.iter().map(scalar).collect::<Vec<_>>().join(", "))),
            x => out.push((prefix.to_owned(), scalar(x))),
        }
    }
    fn scalar(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "none".into(),
            serde_json::Value::Object(_) => "(none)".into(),
            serde_json::Value::Array(_) => "(none)".into(),
            x => x.to_string(),
        }
    }
    let mut out = Vec::new();
    walk("", &serde_json::Value::Object(params.clone()), &mut out);
    let more = out.len().saturating_sub(limit);
    out.truncate(limit);
    (out, more)
}

/// A value in monospace when it is a digest or an identifier, in the body face otherwise.
fn value_cell(v: &str) -> Cell {
    let hexish = v.len() >= 16 && v.chars().all(|c| c.is_ascii_hexdigit() || c == ':');
    cell(if hexish { Style::MONO } else { Style::VALUE }, v)
}

fn fact_rows(rows: &[(String, String)]) -> Vec<Vec<Cell>> {
    rows.iter().map(|(k, v)| vec![cell(Style::SMALL_BOLD, k.as_str()), value_cell(v)]).collect()
}

const FACT_COLUMNS: [Column<'static>; 2] = [Column { title: "", share: 0.24 }, Column { title: "", share: 0.76 }];

/// The report as a PDF/A document: a summary page a judge can read (case, recipient, purpose,
/// the exhibits with their SHA-256, the ledger head, how to check the bundle), the chain of
/// custody, each exhibit file with its facts and pictures, a certification the examiner signs,
/// and the ledger events in readable form. `attach` is attached inside a PDF/A-3 report.
pub fn pdf(
    ctx: &Context,
    paper: Paper,
    level: Pdfa,
    created: &jiff::Timestamp,
    attach: &[(&str, &str, &[u8])],
) -> Result<Vec<u8>> {
    let title = "Custody and processing report";
    let mut p = Pdf::new(&format!("{title} - {}", ctx.bag), paper);
    p.set_author(ctx.examiner);
    p.set_footer(&format!("{} · ledger head {}", ctx.bag, ctx.head));
    for (name, description, data) in attach {
        p.attach(name, description, data.to_vec());
    }
    let mut cases: Vec<&str> = ctx.files.iter().map(|f| f.case.as_str()).collect();
    cases.dedup();
    cases.sort_unstable();
    cases.dedup();

    // Page 1: the summary.
    p.heading(1, title);
    let mut facts: Vec<(String, String)> = Vec::new();
    facts.push((if cases.len() == 1 { "Case" } else { "Cases" }.into(), cases.join(", ")));
    if let Some(a) = ctx.agency {
        facts.push(("Agency".into(), a.to_owned()));
    }
    if let Some(r) = ctx.recipient {
        facts.push(("Recipient".into(), r.to_owned()));
    }
    if let Some(pp) = ctx.purpose {
        facts.push(("Purpose".into(), pp.to_owned()));
    }
    if let Some(m) = ctx.medium {
        facts.push(("Medium".into(), m.to_owned()));
    }
    facts.push(("Prepared by".into(), ctx.examiner.to_owned()));
    facts.push(("Prepared at".into(), ctx.created.to_owned()));
    facts.push(("Bundle".into(), ctx.bag.to_owned()));
    p.table(&FACT_COLUMNS, &fact_rows(&facts))?;
    let mut head = vec![
        (Style::SMALL_BOLD, "Ledger head (event number and hash): ".to_owned()),
        (Style::MONO, format!("{}:{}", ctx.head.seq, ctx.head.hash)),
        (
            Style::SMALL,
            format!(
                " The ledger held {} events when this bundle was made; {} of them concern these files and are \
                 included (the others appear only as hashes in the chain).",
                ctx.total_events,
                ctx.events.len()
            ),
        ),
    ];
    head[2].1 = head[2].1.replace("  ", " ");
    p.paragraph(&head)?;
    for w in ctx.files.iter().flat_map(|f| redaction_warnings(ctx, f)) {
        p.paragraph(&[(Style::WARNING, format!("WARNING: {w}"))])?;
    }
    p.heading(2, "Exhibits in this bundle");
    let rows: Vec<Vec<Cell>> = ctx
        .files
        .iter()
        .map(|f| {
            vec![
                cell(Style::SMALL, f.item.as_str()),
                cell(Style::SMALL, format!("{}:{}/{}", f.case, f.exhibit, f.name)),
                cell(Style::SMALL, format!("{} bytes", f.size)),
                cell(Style::MONO, f.sha256.as_str()),
            ]
        })
        .collect();
    p.table(
        &[
            Column { title: "Item", share: 0.06 },
            Column { title: "Exhibit and file", share: 0.22 },
            Column { title: "Size", share: 0.12 },
            Column { title: "SHA-256", share: 0.60 },
        ],
        &rows,
    )?;
    p.heading(2, "How to check this bundle");
    for (i, s) in STEPS.iter().enumerate() {
        let mut spans = vec![(Style::BODY, format!("{}. ", i + 1))];
        spans.extend(code_spans(s, Style::BODY));
        p.paragraph(&spans)?;
    }

    // The chain of custody.
    p.page_break();
    p.heading(2, "Chain of custody");
    p.paragraph(&[(
        Style::SMALL,
        "Who held each exhibit, from when to when, and how it passed on, from the custody ledger (times UTC)."
            .to_owned(),
    )])?;
    let mut rows = Vec::new();
    for (exhibit, holds) in chain_of_custody(ctx) {
        for (i, h) in holds.iter().enumerate() {
            rows.push(vec![
                cell(Style::SMALL_BOLD, if i == 0 { exhibit.clone() } else { String::new() }),
                cell(Style::SMALL, h.holder.as_str()),
                cell(Style::SMALL, h.from.as_str()),
                cell(Style::SMALL, h.until.as_str()),
                cell(Style::SMALL, h.how.as_str()),
            ]);
        }
    }
    p.table(
        &[
            Column { title: "Exhibit", share: 0.12 },
            Column { title: "Held by", share: 0.18 },
            Column { title: "From", share: 0.22 },
            Column { title: "Until", share: 0.22 },
            Column { title: "How it passed on", share: 0.26 },
        ],
        &rows,
    )?;

    // Each exhibit file.
    p.heading(2, "Exhibits");
    for f in ctx.files {
        p.heading(3, &format!("{} — {}:{}/{}", f.item, f.case, f.exhibit, f.name));
        let rows = file_facts(ctx, f);
        let mut table = fact_rows(&rows);
        for (row, (k, _)) in table.iter_mut().zip(&rows) {
            if k == "File in bundle" {
                row[1] = cell(Style::MONO, f.path.as_str());
            }
            if k == "WARNING" {
                row[1] = cell(Style::WARNING, row[1][0].1.clone());
            }
        }
        if let Some(t) = thumbnail(ctx, f) {
            // The picture stays with its heading: it comes first, the facts after it.
            let wide = kind(ctx, f).as_deref() == Some("face review sheet");
            p.image(&t.rgb, t.width, t.height, if wide { 480.0 } else { 240.0 }, &format!("{} {}", f.item, f.name))?;
        }
        p.table(&FACT_COLUMNS, &table)?;
        if let Some(pr) = processing(ctx, f) {
            p.paragraph(&[(Style::BOLD, "Processing".to_owned())])?;
            p.paragraph(&code_spans(&format!("{PROCESSING_INTRO} {}`.", pr.seq), Style::SMALL))?;
            let rows: Vec<Vec<Cell>> = pr
                .steps
                .iter()
                .map(|st| {
                    vec![
                        cell(Style::SMALL_BOLD, st[0].as_str()),
                        cell(Style::SMALL, st[1].as_str()),
                        cell(Style::SMALL, st[2].as_str()),
                        cell(Style::SMALL, st[3].as_str()),
                    ]
                })
                .collect();
            p.table(
                &[
                    Column { title: "Step", share: 0.13 },
                    Column { title: "Parameters", share: 0.19 },
                    Column { title: "Method", share: 0.43 },
                    Column { title: "Reference", share: 0.25 },
                ],
                &rows,
            )?;
            for w in &pr.warnings {
                p.paragraph(&[(Style::SMALL_BOLD, "Order: ".to_owned()), (Style::SMALL, w.clone())])?;
            }
            p.paragraph(&[
                (Style::SMALL, "Recipe, verbatim (SHA-256 ".to_owned()),
                (Style::MONO, pr.recipe_sha256.clone()),
                (Style::SMALL, "):".to_owned()),
            ])?;
            for line in pr.recipe.lines() {
                p.paragraph_at(12.0, &[(Style::MONO, if line.is_empty() { " ".to_owned() } else { line.to_owned() })])?;
            }
            for c in &pr.chains {
                p.paragraph(&[(Style::SMALL, "FFmpeg filter graph, ".to_owned()), (Style::MONO, c.clone())])?;
            }
            p.paragraph(&[(Style::SMALL, format!("FFmpeg libraries: {}", pr.libraries))])?;
            if let Some(sheet) = &pr.sheet {
                p.paragraph(&[(Style::SMALL, format!("Before and after: {sheet}"))])?;
            }
        }
        if let Some((rows, input, output)) = exemption_rows(ctx, f) {
            p.paragraph(&[
                (Style::BODY, "Exemption log: what the redaction withheld and why. Redacted item SHA-256 ".to_owned()),
                (Style::MONO, input),
                (Style::BODY, "; redacted copy SHA-256 ".to_owned()),
                (Style::MONO, output),
                (Style::BODY, ".".to_owned()),
            ])?;
            let columns: Vec<Column> = LOG_COLUMNS
                .iter()
                .map(|(_, t)| Column { title: t, share: if *t == "Basis" || *t == "Withheld" { 1.6 } else { 1.0 } })
                .collect();
            let cells: Vec<Vec<Cell>> = rows
                .into_iter()
                .map(|r| {
                    let decided = if r[7].is_empty() { "the examiner who redacted".to_owned() } else { r[7].clone() };
                    let mut row: Vec<Cell> = r[..7].iter().map(|v| cell(Style::SMALL, v.as_str())).collect();
                    row.push(cell(Style::SMALL, decided));
                    row
                })
                .collect();
            p.table(&columns, &cells)?;
        }
    }

    // The certification the examiner signs.
    p.heading(2, "Certification");
    p.paragraph(&[(
        Style::BODY,
        format!(
            "I, {}, certify that I prepared this report and the bundle {} it describes on {}{}, from the custody \
             ledger, and that each file listed above is the file the ledger records under the SHA-256 shown for it. \
             The ledger head stated on page 1 identifies the record as it stood when the bundle was made.",
            ctx.examiner,
            ctx.bag,
            ctx.created,
            ctx.agency.map(|a| format!(" for {a}")).unwrap_or_default()
        ),
    )])?;
    p.signature_line(&format!("Signature of {}", ctx.examiner), 260.0)?;
    p.signature_line("Date", 160.0)?;
    p.signature_line("Name, title and badge or employee number (printed)", 260.0)?;

    // The events, readable.
    p.page_break();
    p.heading(2, "Appendix: the ledger events");
    p.paragraph(&[(
        Style::SMALL,
        "Every event of the ledger that concerns these files, as recorded (times UTC). The exact bytes are in \
         data/custody/ledger.jsonl, which the steps on page 1 check."
            .to_owned(),
    )])?;
    for (ev, hash) in ctx.events {
        p.heading(3, &format!("Event {} — {} — {}", ev.seq, ev.action, ev.time));
        let login = ev.db_user.as_deref().map(|u| format!(", database role {u}")).unwrap_or_default();
        let mut rows: Vec<(String, String)> =
            vec![("Examiner".into(), format!("{} (OS user {}{login}) on host {}", ev.examiner, ev.os_user, ev.host))];
        if let Some(c) = &ev.case {
            rows.push((
                "Case".into(),
                format!("{c}{}", ev.exhibit.as_ref().map(|e| format!(", item {e}")).unwrap_or_default()),
            ));
        }
        rows.push(("Tools".into(), ev.tools.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")));
        let mut table = fact_rows(&rows);
        for (label, refs) in [("In", &ev.inputs), ("Out", &ev.outputs)] {
            for r in refs {
                table.push(vec![
                    cell(Style::SMALL_BOLD, label),
                    vec![
                        (
                            Style::SMALL,
                            format!("{} {} ", r.item.as_deref().unwrap_or("-"), r.name.as_deref().unwrap_or("")),
                        ),
                        (Style::MONO, r.sha256.clone()),
                    ],
                ]);
            }
        }
        let (params, more) = parameter_lines(&ev.params, 40);
        for (k, v) in params {
            table.push(vec![cell(Style::SMALL, k), value_cell(&v)]);
        }
        if more > 0 {
            table.push(vec![
                cell(Style::SMALL, "…"),
                cell(
                    Style::SMALL,
                    format!("{more} more parameters: see event {} in data/custody/ledger.jsonl", ev.seq),
                ),
            ]);
        }
        if let Some(n) = &ev.note {
            table.push(vec![cell(Style::SMALL_BOLD, "Note"), cell(Style::VALUE, n.as_str())]);
        }
        table.push(vec![cell(Style::SMALL_BOLD, "Event hash"), cell(Style::MONO, hash.as_str())]);
        table.push(vec![cell(Style::SMALL_BOLD, "Previous"), cell(Style::MONO, ev.prev.as_str())]);
        p.table(&FACT_COLUMNS, &table)?;
    }
    p.finish(level, created)
}
