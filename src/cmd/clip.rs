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
    let source = Source::open(&store, &ledger, &args.item)?.verify_whole(args.verify_whole);
    let media = source.require_decodable("a clip")?.clone();
    let index = source.frame_index(&ledger)?;
    let asked = resolve_range(&index, &args, &source)?;
    match args.mode {
        ClipMode::Exact => return exact(args, ctx, store, ledger, source, index, asked),
        ClipMode::Smart => {
            let containers = media.copy_containers(true);
            return smart(args, ctx, store, ledger, source, index, asked, &containers);
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
    let origin = abs(0);
    let has_video = !index.audio;
    // Audio: the span typed, in media time. PCM is cut at exactly those samples (a PCM packet
    // is whole samples, so splitting one loses nothing); compressed audio at whole frames.
    let typed = asked_times(&index, &args, &source);
    let pcm_span = typed.filter(|_| index.audio && source_codec(&source, index.stream).starts_with("pcm_"));
    let (start_us, end_us) = match pcm_span {
        Some((a, b)) => (origin + a, origin + b),
        None => (abs(produced.first), abs(produced.last) + index.frame_len_us(produced.last)),
    };
    let ticks = |us: i64| crate::media::time::us_to_ticks(us, index.time_base.0, index.time_base.1);
    let selection = Selection {
        decode_range: Some((start, end)),
        window_us: Some((start_us, end_us)),
        shift_us: start_us,
        shift_ticks: if pcm_span.is_some() { ticks(start_us) } else { index.frames[produced.first].pts },
        trim_ticks: pcm_span.map(|_| (ticks(start_us), ticks(end_us))),
    };

    let containers = media.copy_containers(has_video);
    let (made, verified, staging) = {
        let mut staging = store.stage()?;
        let made = source
            .verified_while(|| {
                let hint = "; `--mode exact` re-encodes them instead";
                remux::copy_into_first(&source.path, &containers, |ext| staging.scratch(ext), &index, &selection, hint)
            })
            .inspect_err(|_| source.forget_frame_index())
            .map_err(|e| error::about(e, &format!("a copy clip of {}", source.label())))?;
        let staged = staging.adopt(&store, &made.path)?.digests.clone();
        (made, staged, staging)
    };
    let (copied, muxer, ext) = (made.streams, made.muxer, made.ext);

    let stem = source.stem().to_owned();
    let name = if let Some(named) = &args.stem {
        format!("{named}.{ext}")
    } else if has_video {
        format!("{stem}_clip_frames{}-{}.{ext}", produced.first, produced.last)
    } else {
        format!("{stem}_clip_{}ms-{}ms.{ext}", (start_us - origin) / 1000, (end_us - origin) / 1000)
    };
    // Exact only when the clip holds what was asked: the same frames, or the same span of sound.
    let exact = match (has_video, typed) {
        (true, _) | (false, None) => produced.first == asked.first && produced.last == asked.last,
        (false, Some((a, b))) => (start_us - origin, end_us - origin) == (a, b),
    };
    let span = |a: i64, b: i64| format!("{} to {}", format_us(a), format_us(b));
    let frames =
        |r: &Range| format!("frames {}..{} ({})", r.first, r.last, span(index.time_us(r.first), index.time_us(r.last)));
    let asked_text = match (has_video, typed) {
        (true, _) => format!("{} to {}: {}", args.from, args.to, frames(&asked)),
        (false, Some((a, b))) => span(a, b),
        (false, None) => format!("{} to {}", args.from, args.to),
    };
    let produced_text = if has_video { frames(&produced) } else { span(start_us - origin, end_us - origin) };
    let mut facts = Map::new();
    facts.insert("mode".into(), json!("copy"));
    let mut requested = json!({"from": args.from.to_string(), "to": args.to.to_string(), "first_frame": asked.first, "last_frame": asked.last});
    if let (false, Some((a, b))) = (has_video, typed) {
        requested["from_time"] = json!(format_us(a));
        requested["to_time"] = json!(format_us(b));
    }
    facts.insert("requested".into(), requested.clone());
    let mut produced_facts = json!({"first_frame": produced.first, "last_frame": produced.last,
        "frames": produced.last - produced.first + 1,
        "first_time": format_us(index.time_us(produced.first)), "last_time": format_us(index.time_us(produced.last)),
        "duration": format_us(end_us - start_us)});
    if !has_video {
        produced_facts["from_time"] = json!(format_us(start_us - origin));
        produced_facts["to_time"] = json!(format_us(end_us - origin));
        if pcm_span.is_some() {
            produced_facts["cut"] = json!("at the samples asked: PCM packets split losslessly");
        }
    }
    facts.insert("produced".into(), produced_facts.clone());
    facts.insert("exact".into(), json!(exact));
    facts.insert("container".into(), json!(muxer));
    facts.insert("tags_kept".into(), json!(kept_tags(&source).into_iter().map(|(k, _)| k).collect::<Vec<_>>()));
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
        "Clip {id} of {}, stream copy (no re-encoding):\n  asked    {asked_text}\n  produced {produced_text}{}\n",
        source.label(),
        if pcm_span.is_some() { " (PCM cut at the samples asked)" } else { "" }
    );
    if !exact {
        let why = if has_video {
            "a stream copy cannot start between keyframes; `--mode smart` or `--mode exact` gives exactly the frames asked"
        } else {
            "compressed audio is copied in whole frames; `--mode exact` gives exactly the samples asked, decoded to PCM"
        };
        eprintln!("warning: clip {id} holds {produced_text} instead of {asked_text} ({why})");
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
        "requested": requested, "produced": produced_facts, "streams": copied,
        "left_out": left, "head": head});
    Ok(Report::ok(text, json))
}

/// The span typed, in media microseconds, when both ends are times (audio positions always
/// are); a `--to` past the end means the end.
fn asked_times(index: &FrameIndex, args: &ClipArgs, source: &Source) -> Option<(i64, i64)> {
    let time = |p: &Position| match p {
        Position::Frame(_) => None,
        Position::Time(us) => Some(*us),
        Position::WallClock(dt) => index.wall_to_media_us(dt, &source.timeline).ok(),
    };
    Some((time(&args.from)?, time(&args.to)?.min(index.duration_us())))
}

/// The source's container tags a clip keeps for court (creation time, location, make…; not
/// the tags a muxer writes of its own). A redaction keeps none of them.
fn kept_tags(source: &Source) -> Vec<(String, String)> {
    let tags = source.media.as_ref().map(|m| m.tags.as_slice()).unwrap_or_default();
    remux::recording_tags(tags.iter().map(|[k, v]| (k.clone(), v.clone())).collect())
}

/// The codec of the source's stream `stream`, as probed.
fn source_codec(source: &Source, stream: usize) -> &str {
    let streams = source.media.as_ref().map(|m| m.streams.as_slice()).unwrap_or_default();
    streams.iter().find(|s| s.index as usize == stream).map_or("", |s| s.codec.as_str())
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
        return exact_audio(args, ctx, store, ledger, source, index, asked);
    }
    let actor = ctx.actor();
    let quality = crate::media::exact::Quality { crf: args.crf, lossless: args.lossless, in_order: false };
    let mut staging = store.stage()?;
    let scratch = staging.scratch("mp4");
    let made = source.verified_while(|| {
        crate::media::exact::exact_clip(
            &source.path,
            &scratch,
            &index,
            (asked.first, asked.last),
            quality,
            kept_tags(&source),
        )
    })?;
    let digests = staging.adopt(&store, &scratch)?.digests.clone();
    let start = index.time_us(asked.first);
    let stem = source.stem().to_owned();
    let mut facts = frame_exact_facts(&source, &args, &index, &asked, made.video_frames, "exact", "mp4");
    facts.insert("encoding".into(), serde_json::to_value(&made)?);
    let kept: Vec<usize> = [Some(index.stream), made.audio_stream].into_iter().flatten().collect();
    let left = left_out(&source, &kept, &mut facts);
    let params = re_encode_params(&args, "exact");
    let name = match &args.stem {
        Some(named) => format!("{named}.mp4"),
        None => format!("{stem}_exact_frames{}-{}.mp4", asked.first, asked.last),
    };
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
    text.push_str(&closing_lines(&store, out, &left, args.out.as_deref(), &head)?);
    let json = json!({"schema_version": 1, "command": "clip", "parent": source.row.id, "item": id, "name": out.name,
        "sha256": out.sha256, "size": out.size, "mode": "exact", "exact": true,
        "requested": {"first_frame": asked.first, "last_frame": asked.last},
        "produced": {"first_frame": asked.first, "last_frame": asked.last}, "encoding": made, "left_out": left,
        "head": head});
    Ok(Report::ok(text, json))
}

/// `--mode exact` of audio alone: exactly the samples asked. A compressed frame cannot be split
/// without re-encoding it, so the clip holds the decoded samples as PCM (32-bit float for MP3
/// and AAC: the decoder's own format, so nothing is rounded), labelled as decoded; a copy clip
/// keeps the coded frames instead.
fn exact_audio(
    args: ClipArgs,
    ctx: &Ctx,
    store: crate::store::Store,
    mut ledger: crate::ledger::Ledger,
    source: Source,
    index: FrameIndex,
    asked: Range,
) -> Result<Report> {
    use crate::media::exact::{AudioCodec, Job, Quality, Unchanged, encode};
    if args.lossless || args.crf != 18 {
        return Err(error::input("--crf and --lossless apply to video; an exact audio clip holds the decoded samples"));
    }
    let Some((a, b)) = asked_times(&index, &args, &source) else {
        return Err(error::input("an audio clip takes times (HH:MM:SS.mmm or seconds), not frame:N"));
    };
    let actor = ctx.actor();
    let origin = index.to_us(index.frames[0].pts);
    let job = Job {
        index: &index,
        first: asked.first,
        last: asked.last,
        quality: Quality { crf: 18, lossless: false, in_order: true },
        container: "wav",
        audio: AudioCodec::Decoded,
        tags: Vec::new(),
        span_us: Some((origin + a, origin + b)),
    };
    let mut staging = store.stage()?;
    let scratch = staging.scratch("wav");
    let made = source.verified_while(|| encode(&source.path, &scratch, &job, &mut Unchanged))?;
    let digests = staging.adopt(&store, &scratch)?.digests.clone();
    let rate = made.audio_sample_rate.max(1) as i64;
    // The samples in [a, b) at the decoder's rate, counted as the trim counts them.
    let expected =
        ((b as i128 * rate as i128 + 999_999) / 1_000_000 - (a as i128 * rate as i128 + 999_999) / 1_000_000) as u64;
    let exact = made.audio_samples == expected;
    let codec = source_codec(&source, index.stream).to_owned();
    let decoded = format!(
        "decoded: the samples FFmpeg's {codec} decoder produced, as {} PCM in WAV (a compressed frame cannot be split without \
         re-encoding; a copy clip keeps the coded frames, cut at frame boundaries)",
        made.encoder
    );
    let mut facts = Map::new();
    facts.insert("mode".into(), json!("exact"));
    facts.insert(
        "requested".into(),
        json!({"from": args.from.to_string(), "to": args.to.to_string(), "from_time": format_us(a), "to_time": format_us(b)}),
    );
    facts.insert(
        "produced".into(),
        json!({"from_time": format_us(a), "to_time": format_us(b), "samples": made.audio_samples, "sample_rate": made.audio_sample_rate}),
    );
    facts.insert("exact".into(), json!(exact));
    facts.insert("container".into(), json!("wav"));
    facts
        .insert("audio".into(), json!({"decoded": true, "source_codec": codec, "codec": made.encoder, "how": decoded}));
    let kept = [index.stream];
    let left = left_out(&source, &kept, &mut facts);
    let mut params = re_encode_params(&args, "exact");
    params.remove("crf");
    params.remove("lossless");
    let name = match &args.stem {
        Some(named) => format!("{named}.wav"),
        None => format!("{}_exact_{}ms-{}ms.wav", source.stem(), a / 1000, b / 1000),
    };
    let outputs = vec![Output { name, digests, facts }];
    let (head, event) =
        derive::commit(&store, &mut ledger, &actor, staging, &source, "clip", outputs, params, args.note.clone())?;
    let out = &event.outputs[0];
    let id = out.item.clone().unwrap_or_default();
    if !exact {
        eprintln!(
            "warning: clip {id} holds {} samples where {} to {} spans {expected} at {rate} Hz (the stream ends early or is damaged there)",
            made.audio_samples,
            format_us(a),
            format_us(b)
        );
    }
    let mut text = format!(
        "Clip {id} of {}, sample-exact:\n  asked    {} to {}\n  produced {} to {}: {} samples at {} Hz\n  {decoded}\n",
        source.label(),
        format_us(a),
        format_us(b),
        format_us(a),
        format_us(b),
        made.audio_samples,
        made.audio_sample_rate
    );
    text.push_str(&closing_lines(&store, out, &left, args.out.as_deref(), &head)?);
    let json = json!({"schema_version": 1, "command": "clip", "parent": source.row.id, "item": id, "name": out.name,
        "sha256": out.sha256, "size": out.size, "mode": "exact", "exact": exact,
        "requested": {"from": args.from.to_string(), "to": args.to.to_string(), "from_time": format_us(a), "to_time": format_us(b),
                      "first_frame": asked.first, "last_frame": asked.last},
        "produced": {"from_time": format_us(a), "to_time": format_us(b), "samples": made.audio_samples,
                     "sample_rate": made.audio_sample_rate, "first_frame": asked.first, "last_frame": asked.last},
        "encoding": made, "decoded": true, "left_out": left, "head": head});
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
    containers: &[(&'static str, &'static str)],
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
    let (muxer, ext) = match containers[0] {
        copy_like if !plan.re_encodes() => copy_like,
        (keep @ ("mpegts" | "mov"), ext) => (keep, ext),
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
    let mut facts = frame_exact_facts(&source, &args, &index, &asked, made.video_frames, "smart", muxer);
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
    let name = match &args.stem {
        Some(named) => format!("{named}.{ext}"),
        None => format!("{}_smart_frames{}-{}.{ext}", source.stem(), asked.first, asked.last),
    };
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
    text.push_str(&closing_lines(&store, out, &left, args.out.as_deref(), &head)?);
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
    source: &Source,
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
    facts.insert("tags_kept".into(), json!(kept_tags(source).into_iter().map(|(k, _)| k).collect::<Vec<_>>()));
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
/// The end of a re-encoded clip's report: the streams left out, the clip, where it was copied,
/// the new head.
fn closing_lines(
    store: &crate::store::Store,
    out: &crate::ledger::FileRef,
    left: &[serde_json::Value],
    out_dir: Option<&std::path::Path>,
    head: &crate::ledger::Head,
) -> Result<String> {
    Ok(format!(
        "{}{}{}{}",
        left_out_line(left, "  "),
        output_line(out),
        super::copy_out_line(store, out, out_dir, "  ")?,
        head_line(head)
    ))
}

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
