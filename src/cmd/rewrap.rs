//! `custody rewrap`: a lossless playback copy of a raw or proprietary stream. The file hashes
//! differ from the source's; the event proves the streams do not: per-stream packet hashes of
//! the source (as copied) and of the copy (as read back) must be equal, or nothing is recorded.

use anyhow::Result;
use serde_json::{Map, json};

use super::{Ctx, Report, head_line};
use crate::cli::RewrapArgs;
use crate::derive::{self, Output, Source};
use crate::error;
use crate::media::framing::Framing;
use crate::media::remux::{self, Selection};

pub fn run(args: RewrapArgs, ctx: &Ctx) -> Result<Report> {
    let store = ctx.store()?;
    let mut ledger = store.open_ledger()?;
    let source = Source::open(&store, &ledger, &args.item)?.verify_whole(args.verify_whole);
    let media = source.require_decodable("a playback copy")?.clone();
    let actor = ctx.actor();
    let index = source.frame_index(&ledger)?;
    let all = Selection::all();
    let mut staging = store.stage()?;

    // MP4 where it holds the streams as they are; for the ISO family (MOV, MP4, 3GP), MOV next
    // (PCM audio beside timed text, as dash cameras write them); Matroska last, which holds
    // nearly any codec.
    let mut containers = vec![("mp4", "mp4")];
    if media.copy_containers(true).contains(&("mov", "mov")) {
        containers.push(("mov", "mov"));
    }
    containers.push(("matroska", "mkv"));
    // The object is verified once, alongside the copy (and the retries, if MP4 refuses).
    let made = source
        .verified_while(|| {
            remux::copy_into_first(&source.path, &containers, |ext| staging.scratch(ext), &index, &all, "")
        })
        .map_err(|e| error::about(e, &format!("the playback copy of {}", source.label())))?;
    let (copied, muxer, ext, scratch) = (made.streams, made.muxer, made.ext, made.path);
    // Read the copy back and hash its streams the same way.
    let again = remux::stream_hashes(&scratch)?;
    let mut streams = Vec::new();
    for c in &copied {
        let back = again.iter().find(|a| a.input_index == c.output_index);
        let same = back.is_some_and(|b| b.packets_sha256 == c.packets_sha256 && b.packets == c.packets);
        if !same {
            let how = remux::first_difference(&source.path, c.input_index, &scratch, c.output_index)?;
            return Err(error::mismatch(format!(
                "the playback copy of {} does not read back with the same packets in stream {} ({} {}, compared as {}): \
                 {how}. It would not be a faithful copy, so nothing was recorded",
                source.label(),
                c.input_index,
                c.kind,
                c.codec,
                c.compared
            )));
        }
        streams.push(json!({"source_stream": c.input_index, "copy_stream": c.output_index, "kind": c.kind, "codec": c.codec,
            "packets": c.packets, "bytes": c.bytes, "compared": c.compared, "packets_sha256": c.packets_sha256, "copy_packets_sha256": back.map(|b| b.packets_sha256.clone())}));
    }
    let digests = staging.adopt(&store, &scratch)?.digests.clone();
    let stem = source.stem().to_owned();
    let mut facts = Map::new();
    facts.insert("container".into(), json!(muxer));
    facts.insert("streams".into(), json!(streams));
    facts.insert("streams_identical".into(), json!(true));
    facts.insert("derived_timestamps".into(), json!(index.derived_timestamps));
    let mut params = Map::new();
    params.insert("container".into(), json!(muxer));
    let outputs = vec![Output { name: format!("{stem}_playback.{ext}"), digests, facts }];
    let (head, event) =
        derive::commit(&store, &mut ledger, &actor, staging, &source, "rewrap", outputs, params, args.note.clone())?;
    let out = &event.outputs[0];
    let id = out.item.clone().unwrap_or_default();
    let mut text = format!(
        "Playback copy {id} of {} in {}: streams copied bit for bit\n  {}  sha256 {}\n",
        source.label(),
        remux::container_name(muxer),
        out.name.as_deref().unwrap_or_default(),
        out.sha256
    );
    for c in &copied {
        text.push_str(&format!(
            "  stream {} {} {}: {} packets, packet hash {} in both{}\n",
            c.input_index,
            c.kind,
            c.codec,
            c.packets,
            &c.packets_sha256[..16],
            if c.framing == Framing::Adts {
                " (AAC frames compared without their ADTS headers, which MP4 does not keep)"
            } else {
                ""
            }
        ));
    }
    if index.derived_timestamps {
        text.push_str("  the source had no timestamps (raw stream): the copy's come from its frame rate\n");
    }
    text.push_str(&super::copy_out_line(&store, out, args.out.as_deref(), "  ")?);
    text.push_str(&head_line(&head));
    let json = json!({"schema_version": 1, "command": "rewrap", "parent": source.row.id, "item": id, "name": out.name,
        "sha256": out.sha256, "container": muxer, "streams": streams, "head": head});
    Ok(Report::ok(text, json))
}
