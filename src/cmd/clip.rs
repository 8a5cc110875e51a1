//! `custody clip`: a clip of an item. Copy mode moves packets untouched, so it can only start
//! at a keyframe: it says which frames it really holds, and warns when that differs from the
//! request.

use anyhow::Result;
use serde_json::{Map, json};

use super::{Ctx, Report, head_line};
use crate::cli::{ClipArgs, ClipMode};

use crate::derive::{self, Output, Source};
use crate::error;
use crate::media::index::FrameIndex;
use crate::media::remux::{self, Selection};
use crate::media::time::{Position, format_us};

/// A resolved range of the indexed stream, in presentation order, both ends included.
struct Range {
    first: usize,
    last: usize,
}

pub fn run(args: ClipArgs, ctx: &Ctx) -> Result<Report> {
    let store = ctx.store()?;
    let mut ledger = store.open_ledger()?;
    let source = Source::open(&store, &ledger, &args.item)?;
    let media = source.require_decodable("a clip")?.clone();
    let index = source.frame_index(&ledger)?;
    let asked = resolve_range(&index, &args, &source)?;
    match args.mode {
        ClipMode::Exact => return exact(args, ctx, store, ledger, source, index, asked),
        ClipMode::Smart => {
            let container = media.container.clone().unwrap_or_default();
            return smart(args, ctx, store, ledger, source, index, asked, &container);
        }
        ClipMode::Copy => {}
    }
    if args.lossless || args.crf != 18 {
        return Err(error::input(
            "--crf and --lossless apply to --mode exact and --mode smart; a copy clip is not re-encoded",
        ));
    }
    let actor = ctx.actor();

    // Which packets a stream copy must take to show the asked frames.
    let key = index.keyframe_before(asked.first);
    let wanted = &index.frames[asked.first..=asked.last];
    let start = wanted.iter().map(|f| f.decode_index).min().unwrap_or(0).min(index.frames[key].decode_index);
    let mut end = wanted.iter().map(|f| f.decode_index).max().unwrap_or(0);
    // Close the range: every frame shown between the first and last copied frame must be
    // copied too, or the clip would skip frames (B-frames decode after the frames they precede).
    // Frames decoded after the keyframe but shown before it (open GOPs) depend on the group
    // before and cannot be shown: they are not claimed.
    let produced = loop {
        let taken: Vec<usize> =
            (key..index.len()).filter(|&i| (start..=end).contains(&index.frames[i].decode_index)).collect();
        let (first, last) = (taken[0], taken[taken.len() - 1]);
        let needed = index.frames[first..=last].iter().map(|f| f.decode_index).max().unwrap_or(end);
        if (needed <= end && taken.len() == last - first + 1) || end + 1 >= index.len() {
            break Range { first, last };
        }
        end = needed.max(end + 1);
    };
    let abs = |i: usize| index.to_us(index.frames[i].pts);
    let end_us = abs(produced.last) + index.frame_len_us(produced.last);
    let selection = Selection {
        decode_range: Some((start, end)),
        window_us: Some((abs(produced.first), end_us)),
        shift_us: abs(produced.first),
        shift_ticks: index.frames[produced.first].pts,
    };

    let has_video = !index.audio;
    let (muxer, ext) = remux::output_format(media.container.as_deref().unwrap_or_default(), has_video);
    let (copied, verified, staging) = {
        let mut staging = store.stage()?;
        let scratch = staging.scratch(ext);
        let copied = source
            .verified_while(|| remux::copy(&source.path, &scratch, muxer, &index, &selection))
            .inspect_err(|_| source.forget_frame_index())?;
        let staged = staging.adopt(&store, &scratch)?.digests.clone();
        (copied, staged, staging)
    };

    let stem = source.stem().to_owned();
    let name = if has_video {
        format!("{stem}_clip_frames{}-{}.{ext}", produced.first, produced.last)
    } else {
        format!("{stem}_clip_{}ms-{}ms.{ext}", index.time_us(produced.first) / 1000, (end_us - abs(0)) / 1000)
    };
    let exact = produced.first == asked.first && produced.last == asked.last;
    let describe = |r: &Range| {
        if has_video {
            format!(
                "frames {}..{} ({} to {})",
                r.first,
                r.last,
                format_us(index.time_us(r.first)),
                format_us(index.time_us(r.last))
            )
        } else {
            format!(
                "{} to {}",
                format_us(index.time_us(r.first)),
                format_us(index.time_us(r.last) + index.frame_len_us(r.last))
            )
        }
    };
    let mut facts = Map::new();
    facts.insert("mode".into(), json!("copy"));
    facts.insert(
        "requested".into(),
        json!({"from": args.from.to_string(), "to": args.to.to_string(), "first_frame": asked.first, "last_frame": asked.last}),
    );
    facts.insert(
        "produced".into(),
        json!({"first_frame": produced.first, "last_frame": produced.last, "frames": produced.last - produced.first + 1,
               "first_time": format_us(index.time_us(produced.first)), "last_time": format_us(index.time_us(produced.last)),
               "duration": format_us(end_us - abs(produced.first))}),
    );
    facts.insert("exact".into(), json!(exact));
    facts.insert("container".into(), json!(muxer));
    facts.insert("streams".into(), serde_json::to_value(&copied)?);
    let left = left_out(&source, &copied.iter().map(|c| c.input_index).collect::<Vec<_>>(), &mut facts);
    let mut params = Map::new();
    params.insert("from".into(), json!(args.from.to_string()));
    params.insert("to".into(), json!(args.to.to_string()));
    params.insert("mode".into(), json!("copy"));
    let outputs = vec![Output { name, digests: verified.clone(), facts }];
    let (head, event) =
        derive::commit(&store, &mut ledger, &actor, staging, &source, "clip", outputs, params, args.note.clone())?;
    let out = &event.outputs[0];
    let id = out.item.clone().unwrap_or_default();
    let mut text = format!(
        "Clip {id} of {}, stream copy (no re-encoding):\n  asked    {}\n  produced {}\n",
        source.label(),
        describe(&asked),
        describe(&produced)
    );
    if !exact {
        let warning = format!(
            "warning: a stream copy starts at a keyframe, so clip {id} holds {} instead of {} (a stream copy cannot start between keyframes)",
            describe(&produced),
            describe(&asked)
        );
        eprintln!("{warning}");
    }
    text.push_str(&output_line(out));
    for c in &copied {
        text.push_str(&format!(
            "  stream {} {} {}: {} packets copied bit for bit\n",
            c.input_index, c.kind, c.codec, c.packets
        ));
    }
    text.push_str(&left_out_line(&left, "  "));
    text.push_str(&super::copy_out_line(&store, out, args.out.as_deref(), "  ")?);
    text.push_str(&head_line(&head));
    let json = json!({"schema_version": 1, "command": "clip", "parent": source.row.id, "item": id, "name": out.name,
        "sha256": out.sha256, "size": out.size, "mode": "copy", "exact": exact,
        "requested": {"first_frame": asked.first, "last_frame": asked.last},
        "produced": {"first_frame": produced.first, "last_frame": produced.last}, "streams": copied,
        "left_out": left, "head": head});
    Ok(Report::ok(text, json))
}

fn resolve_range(index: &FrameIndex, args: &ClipArgs, source: &Source) -> Result<Range> {
    let first = index.resolve(&args.from, &source.timeline)?;
    let mut last = index.resolve(&args.to, &source.timeline)?;
    let times = |p: &Position| match p {
        Position::Frame(_) => None,
        Position::Time(us) => Some(*us),
        Position::WallClock(w) => index.wall_to_media_us(w, &source.timeline).ok(),
    };
    if let (Some(a), Some(b)) = (times(&args.from), times(&args.to))
        && b <= a
    {
        return Err(error::input(format!(
            "--to {} is not after --from {}: a clip needs a range of some length",
            args.to, args.from
        )));
    }
    // A time --to on a frame's exact start ends the clip before that frame.
    if let Some(t) = times(&args.to)
        && last > first
        && index.time_us(last) == t
    {
        last -= 1;
    }
    if last < first {
        return Err(error::input(format!("--to {} is before --from {}", args.to, args.from)));
    }
    Ok(Range { first, last })
}

/// `--mode exact`: exactly the frames asked, re-encoded; the audio cut to the same span.
fn exact(
    args: ClipArgs,
    ctx: &Ctx,
    store: crate::store::Store,
    mut ledger: crate::ledger::Ledger,
    source: Source,
    index: FrameIndex,
    asked: Range,
) -> Result<Report> {
    if index.audio {
        return Err(error::input(format!(
            "item {} is audio-only: --mode exact re-encodes video; use the default copy mode, which cuts audio at packet boundaries",
            source.row.id
        )));
    }
    let actor = ctx.actor();
    let quality = crate::media::exact::Quality { crf: args.crf, lossless: args.lossless, in_order: false };
    let mut staging = store.stage()?;
    let scratch = staging.scratch("mp4");
    let made = source.verified_while(|| {
        crate::media::exact::exact_clip(&source.path, &scratch, &index, asked.first, asked.last, quality)
    })?;
    let digests = staging.adopt(&store, &scratch)?.digests.clone();
    let start = index.time_us(asked.first);
    let stem = source.stem().to_owned();
    let mut facts = frame_exact_facts(&args, &index, &asked, made.video_frames, "exact", "mp4");
    facts.insert("encoding".into(), serde_json::to_value(&made)?);
    let kept: Vec<usize> = [Some(index.stream), made.audio_stream].into_iter().flatten().collect();
    let left = left_out(&source, &kept, &mut facts);
    let params = re_encode_params(&args, "exact");
    let name = format!("{stem}_exact_frames{}-{}.mp4", asked.first, asked.last);
    let outputs = vec![Output { name, digests, facts }];
    let (head, event) =
        derive::commit(&store, &mut ledger, &actor, staging, &source, "clip", outputs, params, args.note.clone())?;
    let out = &event.outputs[0];
    let id = out.item.clone().unwrap_or_default();
    let mut text = format!(
        "Clip {id} of {}, frame-exact, re-encoded with {}:\n  frames {}..{} ({} to {}, {} frames)\n",
        source.label(),
        made.encoder,
        asked.first,
        asked.last,
        format_us(start),
        format_us(index.time_us(asked.last)),
        made.video_frames
    );
    if made.audio_samples > 0 {
        text.push_str(&format!(
            "  audio: {} samples at {} Hz, cut to the same span\n",
            made.audio_samples, made.audio_sample_rate
        ));
    }
    text.push_str(&left_out_line(&left, "  "));
    text.push_str(&output_line(out));
    text.push_str(&super::copy_out_line(&store, out, args.out.as_deref(), "  ")?);
    text.push_str(&head_line(&head));
    let json = json!({"schema_version": 1, "command": "clip", "parent": source.row.id, "item": id, "name": out.name,
        "sha256": out.sha256, "size": out.size, "mode": "exact", "exact": true,
        "requested": {"first_frame": asked.first, "last_frame": asked.last},
        "produced": {"first_frame": asked.first, "last_frame": asked.last}, "encoding": made, "left_out": left,
        "head": head});
    Ok(Report::ok(text, json))
}

#[allow(clippy::too_many_arguments)]
/// `--mode smart`: exactly the frames asked; whole groups of pictures copied, the partial ones
/// at either end re-encoded; the audio copied. The frame map says which frames are which.
fn smart(
    args: ClipArgs,
    ctx: &Ctx,
    store: crate::store::Store,
    mut ledger: crate::ledger::Ledger,
    source: Source,
    index: FrameIndex,
    asked: Range,
    container: &str,
) -> Result<Report> {
    use crate::media::smart::{How, Plan, smart_clip};
    if index.audio {
        return Err(error::input(format!(
            "item {} is audio-only: every audio packet starts a frame, so the default copy mode already cuts it as \
             exactly as smart mode would",
            source.row.id
        )));
    }
    let actor = ctx.actor();
    let quality = crate::media::exact::Quality { crf: args.crf, lossless: args.lossless, in_order: true };
    let plan = Plan::new(&index, asked.first, asked.last);
    // Re-encoded runs are spliced into MP4 (MPEG-TS for a transport stream, whose pictures carry
    // their parameter sets); a clip that copies every frame keeps the container a copy clip would.
    let (muxer, ext) = match remux::output_format(container, true) {
        copy_like if !plan.re_encodes() => copy_like,
        ("mpegts", ext) => ("mpegts", ext),
        _ => ("mp4", "mp4"),
    };
    let mut staging = store.stage()?;
    let scratch = staging.scratch(ext);
    let made = source
        .verified_while(|| smart_clip(&source.path, &scratch, muxer, &index, &plan, quality))
        .inspect_err(|_| source.forget_frame_index())?;
    let digests = staging.adopt(&store, &scratch)?.digests.clone();
    let start = index.time_us(asked.first);
    let (re_encoded, copied) = plan.counts();
    let mut facts = frame_exact_facts(&args, &index, &asked, made.video_frames, "smart", muxer);
    facts.insert("frame_map".into(), serde_json::to_value(&plan.segments)?);
    facts.insert("parameter_set_ids".into(), json!(made.parameter_set_ids));
    facts.insert("frames_copied".into(), json!(copied));
    facts.insert("frames_re_encoded".into(), json!(re_encoded));
    facts.insert("encoder".into(), json!(made.encoder));
    facts.insert("copied_packets_sha256".into(), json!(made.copied_packets_sha256));
    facts.insert("audio_packets_copied".into(), json!(made.audio_packets));
    let kept: Vec<usize> = std::iter::once(index.stream).chain(made.audio_streams.iter().copied()).collect();
    let left = left_out(&source, &kept, &mut facts);
    let params = re_encode_params(&args, "smart");
    let name = format!("{}_smart_frames{}-{}.{ext}", source.stem(), asked.first, asked.last);
    let outputs = vec![Output { name, digests, facts }];
    let (head, event) =
        derive::commit(&store, &mut ledger, &actor, staging, &source, "clip", outputs, params, args.note.clone())?;
    let out = &event.outputs[0];
    let id = out.item.clone().unwrap_or_default();
    let mut text = format!(
        "Clip {id} of {}, smart (frame-exact; {copied} of {} frames copied bit for bit):\n  frames {}..{} ({} to {})\n",
        source.label(),
        made.video_frames,
        asked.first,
        asked.last,
        format_us(start),
        format_us(index.time_us(asked.last)),
    );
    for seg in &plan.segments {
        let how = match seg.how {
            How::Copied => "copied bit for bit".to_owned(),
            How::ReEncoded => format!("re-encoded ({})", made.encoder.as_deref().unwrap_or("libx264")),
        };
        text.push_str(&format!("    frames {}..{}  {how}\n", seg.first, seg.last));
    }
    if made.audio_packets > 0 {
        text.push_str(&format!("  audio: {} packets copied bit for bit over the same span\n", made.audio_packets));
    }
    text.push_str(&left_out_line(&left, "  "));
    text.push_str(&output_line(out));
    text.push_str(&super::copy_out_line(&store, out, args.out.as_deref(), "  ")?);
    text.push_str(&head_line(&head));
    let json = json!({"schema_version": 1, "command": "clip", "parent": source.row.id, "item": id, "name": out.name,
        "sha256": out.sha256, "size": out.size, "mode": "smart", "exact": true,
        "requested": {"first_frame": asked.first, "last_frame": asked.last},
        "produced": {"first_frame": asked.first, "last_frame": asked.last}, "frame_map": plan.segments,
        "frames_copied": copied, "frames_re_encoded": re_encoded, "encoder": made.encoder,
        "copied_packets_sha256": made.copied_packets_sha256, "audio_packets_copied": made.audio_packets,
        "left_out": left, "head": head});
    Ok(Report::ok(text, json))
}

/// The facts every frame-exact clip records (`--mode exact` and `smart`): the positions asked,
/// the frames it holds, and its container.
fn frame_exact_facts(
    args: &ClipArgs,
    index: &FrameIndex,
    asked: &Range,
    frames: u64,
    mode: &str,
    container: &str,
) -> Map<String, serde_json::Value> {
    let start = index.time_us(asked.first);
    let end = index.time_us(asked.last) + index.frame_len_us(asked.last);
    let mut facts = Map::new();
    facts.insert("mode".into(), json!(mode));
    facts.insert("requested".into(), json!({"from": args.from.to_string(), "to": args.to.to_string()}));
    facts.insert(
        "produced".into(),
        json!({"first_frame": asked.first, "last_frame": asked.last, "frames": frames,
               "first_time": format_us(start), "last_time": format_us(index.time_us(asked.last)), "duration": format_us(end - start)}),
    );
    facts.insert("exact".into(), json!(true));
    facts.insert("container".into(), json!(container));
    facts
}

/// The parameters of a clip that re-encodes (`--mode exact` and `smart`).
fn re_encode_params(args: &ClipArgs, mode: &str) -> Map<String, serde_json::Value> {
    let mut params = Map::new();
    params.insert("from".into(), json!(args.from.to_string()));
    params.insert("to".into(), json!(args.to.to_string()));
    params.insert("mode".into(), json!(mode));
    params.insert("crf".into(), json!(args.crf));
    params.insert("lossless".into(), json!(args.lossless));
    params
}

/// The report line naming a clip's output: its name, SHA-256 and size.
fn output_line(out: &crate::ledger::FileRef) -> String {
    format!("  {}  sha256 {}  {}\n", out.name.as_deref().unwrap_or_default(), out.sha256, super::human_size(out.size))
}

/// The source's streams a clip does not hold (`kept`: the input indices it does), as
/// `{stream, kind, codec}`, recorded in the clip's `facts` (as `left_out`, when there are any)
/// and returned for the report, so nobody takes a clip for the whole recording when, say, its
/// subtitles or GPS track were left out.
fn left_out(source: &Source, kept: &[usize], facts: &mut Map<String, serde_json::Value>) -> Vec<serde_json::Value> {
    let Some(media) = &source.media else { return Vec::new() };
    let left: Vec<serde_json::Value> = media
        .streams
        .iter()
        .filter(|s| !kept.contains(&(s.index as usize)))
        .map(|s| json!({"stream": s.index, "kind": s.kind, "codec": s.codec}))
        .collect();
    if !left.is_empty() {
        facts.insert("left_out".into(), json!(left));
    }
    left
}

/// The report line naming what [`left_out`] found (empty when the clip holds every stream).
pub(super) fn left_out_line(left: &[serde_json::Value], indent: &str) -> String {
    if left.is_empty() {
        return String::new();
    }
    let named: Vec<String> = left
        .iter()
        .map(|s| {
            format!(
                "stream {} {} ({})",
                s["stream"],
                s["kind"].as_str().unwrap_or("?"),
                s["codec"].as_str().unwrap_or("?")
            )
        })
        .collect();
    format!("{indent}not in the clip: {}\n", named.join(", "))
}
