//! `custody still`: the exact frame at each position, as a lossless PNG with its provenance.

use std::io::Cursor;

use anyhow::Result;
use serde_json::{Map, json};

use super::{Ctx, Report, head_line};
use crate::cli::StillArgs;
use crate::derive::{self, Output, Source};
use crate::error;
use crate::ledger::Ledger;
use crate::media::still::{self, Render};
use crate::media::time::{Position, format_us};

pub fn run(args: StillArgs, ctx: &Ctx) -> Result<Report> {
    if args.at.is_empty() && args.every.is_none() {
        return Err(error::input("say which frames: --at POS (repeatable) and/or --every DURATION"));
    }
    let every = match &args.every {
        None => None,
        Some(Position::Time(us)) if *us > 0 => Some(*us),
        Some(other) => {
            return Err(error::input(format!("--every needs a duration such as 10 or 00:00:10, not {other}")));
        }
    };
    let store = ctx.store()?;
    let mut ledger = store.open_ledger()?;
    let source = Source::open(&store, &ledger, &args.item)?.verify_whole(args.verify_whole);
    let media = source.require_decodable("a still")?;
    if !media.streams.iter().any(|s| s.kind == "video") {
        return Err(error::input(format!(
            "item {} has no video (it is audio-only); a still needs a picture",
            source.row.id
        )));
    }
    let actor = ctx.actor();

    // Re-verify the parent's object while the frames are decoded; nothing is recorded unless it
    // passes.
    let stills = source.verified_while(|| make_stills(&args, &ledger, &source, every))?;

    let mut staging = store.stage()?;
    let mut outputs = Vec::new();
    let mut lines = Vec::new();
    for s in &stills {
        let staged = staging.write_from(&store, &mut Cursor::new(&s.png), &s.name, &[])?;
        outputs.push(Output { name: s.name.clone(), digests: staged.digests.clone(), facts: s.facts.clone() });
        lines.push(format!("  frame {:>6}  {}  {}x{}  {}", s.frame, format_us(s.time_us), s.width, s.height, s.name));
    }
    let mut params = Map::new();
    params.insert("at".into(), json!(args.at.iter().map(|p| p.to_string()).collect::<Vec<_>>()));
    params.insert("every".into(), json!(args.every.as_ref().map(|p| p.to_string())));
    params.insert("caption".into(), json!(args.caption));
    params.insert("no_sar".into(), json!(args.no_sar));
    params.insert("deinterlace".into(), json!(args.deinterlace));
    params.insert("format".into(), json!("png"));
    let (head, event) =
        derive::commit(&store, &mut ledger, &actor, staging, &source, "still", outputs, params, args.note.clone())?;

    let mut text = format!(
        "Exported {} still{} of {}, lossless PNG:\n",
        stills.len(),
        if stills.len() == 1 { "" } else { "s" },
        source.label()
    );
    let mut items = Vec::new();
    for (out, line) in event.outputs.iter().zip(&lines) {
        let id = out.item.clone().unwrap_or_default();
        text.push_str(&format!("  {id:<5}{}\n", line.trim_start()));
        items.push(json!({"id": id, "name": out.name, "sha256": out.sha256, "size": out.size, "facts": out.facts}));
        text.push_str(&super::copy_out_line(&store, out, args.out.as_deref(), "        ")?);
    }
    for s in stills.iter().filter(|s| s.note.is_some()) {
        text.push_str(&format!("  note: {}\n", s.note.as_deref().unwrap_or_default()));
    }
    text.push_str(&head_line(&head));
    let json = json!({"schema_version": 1, "command": "still", "parent": source.row.id, "items": items, "head": head});
    Ok(Report::ok(text, json))
}

struct Made {
    name: String,
    png: Vec<u8>,
    frame: usize,
    time_us: i64,
    width: u32,
    height: u32,
    facts: Map<String, serde_json::Value>,
    note: Option<String>,
}

fn make_stills(args: &StillArgs, ledger: &Ledger, source: &Source, every: Option<i64>) -> Result<Vec<Made>> {
    let index = source.frame_index(ledger)?;
    let mut frames = Vec::new();
    for pos in &args.at {
        frames.push((index.resolve(pos, &source.timeline)?, pos.to_string()));
    }
    if let Some(step) = every {
        let total = index.duration_us();
        let mut t = 0;
        while t < total {
            frames.push((index.resolve(&Position::Time(t), &source.timeline)?, format_us(t)));
            t += step;
        }
    }
    let stem = source.stem().to_owned();
    let mut made = Vec::new();
    for (n, asked) in frames {
        let (frame, orientation) = still::decode_frame(&source.path, &index, n)?;
        let mut pic =
            still::render(&frame, orientation, Render { no_sar: args.no_sar, deinterlace: args.deinterlace })?;
        let entry = &index.frames[n];
        let time_us = index.time_us(n);
        let wall = source.timeline.wall_at(time_us);
        let (w, h) = (pic.width, pic.height);
        if args.caption {
            let mut lines = vec![
                format!(
                    "CASE {}  ITEM {}  {}  SHA-256 {}",
                    source.row.case,
                    source.row.exhibit,
                    source.row.id,
                    &source.file.sha256[..16]
                ),
                format!("FRAME {n}  MEDIA TIME {}  PTS {}", format_us(time_us), entry.pts),
            ];
            match &wall {
                Some(wc) => lines.push(format!(
                    "WALL CLOCK {wc} (corrected, DVR offset {})",
                    source.timeline.clock.as_ref().map(|c| c.offset.clone()).unwrap_or_default()
                )),
                None => lines.push("WALL CLOCK unknown (no recording start / clock offset recorded)".to_owned()),
            }
            still::add_caption(&mut pic, &lines, still::MIN_BANNER)?;
        }
        let mut text = vec![
            ("Source-SHA256", source.file.sha256.clone()),
            (
                "Source-Item",
                format!("{} {}:{}/{}", source.row.id, source.row.case, source.row.exhibit, source.row.name),
            ),
            ("Frame-Index", n.to_string()),
            ("PTS", format!("{} (time base {}/{})", entry.pts, index.time_base.0, index.time_base.1)),
            ("Media-Time", format_us(time_us)),
            ("Software", format!("custody {}", env!("CARGO_PKG_VERSION"))),
        ];
        if let Some(wc) = &wall {
            text.push(("Wall-Clock-Corrected", wc.clone()));
        }
        if let Some(how) = orientation.describe() {
            text.push(("Orientation", format!("{how}, as the file's display matrix says a player shows it")));
        }
        if pic.deinterlaced {
            text.push(("Deinterlaced", "first field kept, second interpolated".to_owned()));
        }
        let png = still::encode_png(&pic, &text)?;
        let mut facts = Map::new();
        facts.insert("asked".into(), json!(asked));
        facts.insert("frame".into(), json!(n));
        facts.insert("pts".into(), json!(entry.pts));
        facts.insert("time_base".into(), json!(format!("{}/{}", index.time_base.0, index.time_base.1)));
        facts.insert("media_time".into(), json!(format_us(time_us)));
        facts.insert("wall_clock".into(), json!(wall));
        facts.insert("width".into(), json!(w));
        facts.insert("height".into(), json!(h));
        facts.insert("coded_size".into(), json!(format!("{}x{}", pic.coded_width, pic.coded_height)));
        facts.insert("sar".into(), json!(format!("{}:{}", pic.sar.0, pic.sar.1)));
        facts.insert("sar_applied".into(), json!(pic.sar_applied));
        facts.insert("rotation".into(), json!(pic.rotation));
        facts.insert("mirrored".into(), json!(pic.mirrored));
        facts.insert("interlaced".into(), json!(pic.interlaced));
        facts.insert("deinterlaced".into(), json!(pic.deinterlaced));
        facts.insert("caption".into(), json!(args.caption));
        let mut notes = Vec::new();
        if let Some(how) = orientation.describe() {
            notes.push(format!(
                "frame {n} is shown {how}, as the file's display matrix says a player shows it (the coded picture is not)"
            ));
        }
        if pic.interlaced && !pic.deinterlaced {
            notes.push(format!(
                "frame {n} is interlaced and kept as it is (use --deinterlace for a single-field picture)"
            ));
        }
        if pic.deinterlaced {
            notes.push(format!("frame {n} is deinterlaced: its first field kept, the second interpolated"));
        }
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        // A deinterlaced picture is not the frame as coded: it does not take the frame's name.
        let suffix = if pic.deinterlaced { "_deinterlaced" } else { "" };
        made.push(Made {
            name: format!("{stem}_frame{n:06}{suffix}.png"),
            png,
            frame: n,
            time_us,
            width: w,
            height: h,
            facts,
            note,
        });
    }
    Ok(made)
}
