//! `custody enhance`: process and clarify an item with a recipe of named steps, recorded so
//! that the result can be defended and reproduced: the recipe verbatim, the filter graph
//! FFmpeg ran with every option's value, the libraries' versions (every event has them), the
//! thread count, and every output frame's MD5 as `framemd5` lists it.

use anyhow::Result;
use serde_json::{Map, json};

use super::{Ctx, Report, head_line};
use crate::cli::EnhanceArgs;
use crate::derive::{self, Output, Source};
use crate::error;
use crate::media::enhance::recipe;
use crate::media::enhance::steps::{self, Kind, Medium};
use crate::media::enhance::{self, Deliver, Job};
use crate::media::time::{Position, format_us};

pub fn run(args: EnhanceArgs, ctx: &Ctx) -> Result<Report> {
    if args.list {
        return Ok(list());
    }
    let recipe = match (&args.recorded_recipe, &args.recipe, args.steps.is_empty()) {
        (Some((text, origin)), _, _) if origin == "--step" => {
            recipe::from_flags(&text.lines().map(str::to_owned).collect::<Vec<_>>())?
        }
        (Some((text, origin)), _, _) => recipe::parse(text, origin)?,
        (None, Some(path), _) => recipe::load(path)?,
        (None, None, false) => recipe::from_flags(&args.steps)?,
        (None, None, true) => {
            return Err(error::input(
                "say what to do: --recipe FILE.yaml, or --step NAME[:k=v,...] (repeatable); `custody enhance --list` lists the steps",
            ));
        }
    };
    let item = args.item.as_deref().expect("clap requires ITEM without --list");
    let store = ctx.store()?;
    let mut ledger = store.open_ledger()?;
    let source = Source::open(&store, &ledger, item)?.verify_whole(args.verify_whole);
    let media = source.require_decodable("enhancement")?.clone();
    let has_video = media.streams.iter().any(|s| s.kind == "video");
    let has_audio = media.streams.iter().any(|s| s.kind == "audio");
    let names = |m: Medium| {
        recipe.steps.iter().filter(|p| p.step.medium == m).map(|p| p.step.name).collect::<Vec<_>>().join(", ")
    };
    if recipe.has(Medium::Video) && !has_video {
        return Err(error::input(format!(
            "item {} has no video, but the recipe has video steps ({}); nothing was done",
            source.row.id,
            names(Medium::Video)
        )));
    }
    if recipe.has(Medium::Audio) && !has_audio {
        return Err(error::input(format!(
            "item {} has no audio, but the recipe has audio steps ({}); nothing was done",
            source.row.id,
            names(Medium::Audio)
        )));
    }
    let index = source.frame_index(&ledger)?;
    if index.is_empty() {
        return Err(error::input(format!("item {} has no frames to enhance", source.row.id)));
    }
    let (first, last) = span(&args, &index, &source)?;
    if recipe.steps.iter().any(|p| p.step.name == "reverse") {
        // Every frame of the span is held in memory to be given backwards.
        let (w, h) = media
            .streams
            .iter()
            .find(|s| s.kind == "video")
            .map_or((0, 0), |s| (s.width.unwrap_or(0).max(0) as u64, s.height.unwrap_or(0).max(0) as u64));
        let bytes = (last - first + 1) as u64 * w * h * 3 / 2;
        if bytes > 4 << 30 {
            return Err(error::input(format!(
                "reverse holds every frame of the span in memory: {} frames of {w}x{h} is {:.1} GiB. \
                 Give a shorter span with --from/--to; nothing was done",
                last - first + 1,
                bytes as f64 / f64::from(1u32 << 30)
            )));
        }
    }
    let warnings = recipe.order_warnings();
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if args.preview {
        return preview(&args, &source, &index, &recipe, (first, last), threads);
    }
    let actor = ctx.actor();
    let mut staging = store.stage()?;
    let (ext, name_ext) = match (index.audio, args.deliver) {
        (true, Deliver::Lossless | Deliver::H264Lossless) => ("flac", "flac"),
        (true, Deliver::Mp4) => ("m4a", "m4a"),
        (false, Deliver::Lossless | Deliver::H264Lossless) => ("mkv", "mkv"),
        (false, Deliver::Mp4) => ("mp4", "mp4"),
    };
    let scratch = staging.scratch(ext);
    let audio_scratch = staging.scratch(if args.deliver == Deliver::Mp4 { "m4a" } else { "mka" });
    let job = Job {
        index: &index,
        frames: (first, last),
        span: args.from.is_some(),
        recipe: &recipe,
        deliver: args.deliver,
        threads,
        audio_scratch: Some(&audio_scratch),
        look_at: None,
    };
    let made = source
        .verified_while(|| enhance::render(&source.path, &scratch, &job))
        .map_err(|e| error::about(e, &format!("the enhancement of {}", source.label())))?;
    let _ = std::fs::remove_file(&audio_scratch);
    let digests = staging.adopt(&store, &scratch)?.digests.clone();
    let name = format!("{}_enhanced.{name_ext}", source.stem());
    // The picture (or the sound's spectrogram) before and after, for the report and the reader.
    let sheet = match &made.before_after {
        Some(ba) => {
            let png = ba.png(
                &caption(&source, &index, ba, "the enhanced copy", &recipe),
                &[("Source-SHA256", source.file.sha256.clone())],
            )?;
            let staged = staging.write_from(&store, &mut std::io::Cursor::new(&png), "before_after.png", &[])?;
            let mut facts = Map::new();
            facts.insert("before_after".into(), json!(true));
            facts.insert("enhanced".into(), json!(name));
            if let Some(n) = ba.frame {
                facts.insert("frame".into(), json!(n));
                facts.insert("time".into(), json!(format_us(index.time_us(n))));
            }
            Some(Output {
                name: format!("{}_enhanced_before_after.png", source.stem()),
                digests: staged.digests.clone(),
                facts,
            })
        }
        None => None,
    };

    let mut params = Map::new();
    params.insert("recipe".into(), json!(recipe.text));
    params.insert("recipe_origin".into(), json!(recipe.origin));
    params.insert("recipe_sha256".into(), json!(hex::encode(crate::digest::sha256(recipe.text.as_bytes()))));
    if let Some(t) = &recipe.title {
        params.insert("title".into(), json!(t));
    }
    params.insert("steps".into(), recipe.steps_json());
    params.insert("from".into(), json!(args.from.as_ref().map(ToString::to_string)));
    params.insert("to".into(), json!(args.to.as_ref().map(ToString::to_string)));
    params.insert("frames".into(), json!({"first": first, "last": last}));
    params.insert("deliver".into(), json!(args.deliver.name()));
    params.insert("threads".into(), json!(threads));
    params.insert("graphs".into(), json!(made.graphs));
    params.insert("encoders".into(), json!(made.encoders));
    params.insert("ffmpeg".into(), json!(crate::media::library_versions()));
    if !warnings.is_empty() {
        params.insert("order_warnings".into(), json!(warnings));
    }
    let mut facts = Map::new();
    facts.insert(
        "container".into(),
        json!(if index.audio {
            ext
        } else if ext == "mkv" {
            "matroska"
        } else {
            "mp4"
        }),
    );
    facts.insert("lossless".into(), json!(args.deliver.is_lossless()));
    facts.insert("enhanced".into(), json!(true));
    facts.insert("streams".into(), json!(made.streams));
    if let Some(o) = &made.orientation {
        // The source's display matrix: MP4 carries it on; Matroska in FFmpeg 5.1 cannot.
        facts.insert("display".into(), json!(o));
        if args.deliver != Deliver::Mp4 {
            eprintln!(
                "warning: players show {} {o}; the Matroska copy keeps its pictures as coded and cannot say so \
                 (FFmpeg 5.1). Add --step rotate:degrees=N to store them upright, or --deliver mp4",
                source.label()
            );
        }
    }
    let mut outputs = vec![Output { name, digests, facts }];
    outputs.extend(sheet);
    let (head, event) =
        derive::commit(&store, &mut ledger, &actor, staging, &source, "enhance", outputs, params, args.note.clone())?;
    let out = &event.outputs[0];
    let id = out.item.clone().unwrap_or_default();

    let mut text = format!(
        "Enhanced copy {id} of {} ({}), {} step{}:\n",
        source.label(),
        if args.from.is_some() {
            format!("frames {first}–{last}, {}–{}", format_us(index.time_us(first)), format_us(index.time_us(last)))
        } else {
            "the whole item".to_owned()
        },
        recipe.steps.len(),
        if recipe.steps.len() == 1 { "" } else { "s" }
    );
    for (i, p) in recipe.steps.iter().enumerate() {
        let params: Vec<String> = p.values.iter().map(|(k, v)| format!("{k}={}", v.shown())).collect();
        text.push_str(&format!("  {}. {} {}\n", i + 1, p.step.name, params.join(" ")));
    }
    text.push_str(&format!("  {}  sha256 {}\n", out.name.as_deref().unwrap_or_default(), out.sha256));
    for s in &made.streams {
        text.push_str(&format!(
            "  {} {} {}: {} frames hashed (MD5 per frame, as framemd5)\n",
            s.kind, s.codec, s.format, s.frames
        ));
    }
    text.push_str(&format!(
        "  {}; reproduce with `custody redo {}`\n",
        if args.deliver.is_lossless() {
            "lossless: every frame above is in the file exactly"
        } else {
            "H.264/AAC to deliver (visually lossless)"
        },
        head.seq
    ));
    if let Some(sheet) = event.outputs.get(1) {
        text.push_str(&format!("  {}  before and after\n", sheet.name.as_deref().unwrap_or_default()));
    }
    for o in &event.outputs {
        text.push_str(&super::copy_out_line(&store, o, args.out.as_deref(), "  ")?);
    }
    text.push_str(&head_line(&head));
    let sheet = event.outputs.get(1).map(|s| json!({"item": s.item, "name": s.name, "sha256": s.sha256}));
    let json = json!({"schema_version": 1, "command": "enhance", "parent": source.row.id, "item": id, "name": out.name,
        "sha256": out.sha256, "event": head.seq, "warnings": warnings, "steps": recipe.steps_json(),
        "frames": {"first": first, "last": last}, "streams": made.streams, "graphs": made.graphs, "sheet": sheet,
        "head": head});
    Ok(Report::ok(text, json))
}

/// The banner under a before-and-after sheet.
fn caption(
    source: &Source,
    index: &crate::media::index::FrameIndex,
    ba: &crate::media::enhance::preview::BeforeAfter,
    name: &str,
    recipe: &crate::media::enhance::recipe::Recipe,
) -> Vec<String> {
    let steps: Vec<&str> = recipe.steps.iter().map(|p| p.step.name).collect();
    let what = match ba.frame {
        Some(n) => format!("frame {n} ({}): before (left), after (right)", format_us(index.time_us(n))),
        None => "spectrograms: before (top), after (bottom)".to_owned(),
    };
    vec![
        format!("CASE {}  ITEM {}  {}  {what}", source.row.case, source.row.exhibit, source.row.id),
        format!("SOURCE {}  SHA-256 {}", crate::item::shown(&source.row.name), &source.file.sha256[..16]),
        format!("AFTER ({name}): {}", steps.join(" → ")),
    ]
}

/// `--preview`: before-and-after sheets of frames (`--at`, or the middle of the span), or the
/// spectrograms of an audio item, into `--out`; nothing is recorded.
fn preview(
    args: &EnhanceArgs,
    source: &Source,
    index: &crate::media::index::FrameIndex,
    recipe: &crate::media::enhance::recipe::Recipe,
    (first, last): (usize, usize),
    threads: usize,
) -> Result<Report> {
    let Some(dir) = &args.out else {
        return Err(error::input("--preview writes its sheets into --out DIR (nothing is recorded); say where"));
    };
    let looks: Vec<usize> = if index.audio || args.at.is_empty() {
        vec![first + (last - first) / 2]
    } else {
        args.at.iter().map(|p| index.resolve(p, &source.timeline)).collect::<Result<_>>()?
    };
    let scratch =
        tempfile::tempdir().map_err(|e| error::environment(format!("cannot create a scratch directory: {e}")))?;
    // Temporal steps need the frames before the one shown.
    let back = 16
        + recipe
            .steps
            .iter()
            .filter(|p| p.step.name == "average")
            .map(|p| p.values.get("frames").map_or(0, |v| v.num() as usize))
            .max()
            .unwrap_or(0);
    let mut written = Vec::new();
    for (i, &n) in looks.iter().enumerate() {
        let span = if index.audio { (first, last) } else { (n.saturating_sub(back).max(first), (n + 4).min(last)) };
        let out = scratch.path().join(format!("preview-{i}.{}", if index.audio { "flac" } else { "mkv" }));
        let job = Job {
            index,
            frames: span,
            span: args.from.is_some() || !index.audio,
            recipe,
            deliver: Deliver::Lossless,
            threads,
            audio_scratch: None,
            look_at: Some(n),
        };
        let made = source
            .verified_while(|| enhance::render(&source.path, &out, &job))
            .map_err(|e| error::about(e, &format!("the preview of {}", source.label())))?;
        let Some(ba) = &made.before_after else {
            return Err(error::input(format!("the recipe gave no picture to show for frame {n}")));
        };
        // Named by the file's own name: the item's folders are not made under DIR.
        let stem = source.stem().rsplit('/').next().unwrap_or("item");
        let file = match ba.frame {
            Some(f) => format!("{stem}_preview_frame{f:06}.png"),
            None => format!("{stem}_preview_spectrogram.png"),
        };
        let png = ba.png(&caption(source, index, ba, "(preview, not recorded)", recipe), &[])?;
        std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(dir.join(&file), &png))
            .map_err(|e| error::environment(format!("cannot write {}: {e}", dir.join(&file).display())))?;
        written.push(dir.join(file));
    }
    let mut text = format!("Preview of {} ({} steps); nothing was recorded:\n", source.label(), recipe.steps.len());
    for w in &written {
        text.push_str(&format!("  {}\n", w.display()));
    }
    let json = json!({"schema_version": 1, "command": "enhance", "preview": true, "parent": source.row.id,
        "files": written.iter().map(|w| w.display().to_string()).collect::<Vec<_>>()});
    Ok(Report::ok(text, json))
}

/// The frames to enhance: `--from/--to`, or the whole item.
fn span(args: &EnhanceArgs, index: &crate::media::index::FrameIndex, source: &Source) -> Result<(usize, usize)> {
    let (Some(from), Some(to)) = (&args.from, &args.to) else { return Ok((0, index.len() - 1)) };
    let first = index.resolve(from, &source.timeline)?;
    let mut last = index.resolve(to, &source.timeline)?;
    if let Position::Time(t) = to
        && last > first
        && index.time_us(last) == *t
    {
        last -= 1;
    }
    if last < first {
        return Err(error::input(format!("--to {to} is before --from {from}; nothing was done")));
    }
    Ok((first, last))
}

/// `--list`: every step, its parameters, what it does and its reference.
fn list() -> Report {
    let mut text = String::new();
    let mut all = Vec::new();
    for medium in [Medium::Video, Medium::Audio] {
        text.push_str(&format!("{} steps\n", if medium == Medium::Video { "Video" } else { "Audio" }));
        for s in steps::STEPS.iter().filter(|s| s.medium == medium) {
            text.push_str(&format!("  {:<14} {}\n", s.name, s.summary));
            let mut params = Vec::new();
            for p in s.params {
                let (range, default) = describe(p);
                text.push_str(&format!("      {:<13} {}{range}{default}\n", p.name, p.help));
                params.push(json!({"name": p.name, "help": p.help, "range": range.trim(), "default": default.trim()}));
            }
            text.push_str(&format!(
                "      order: {}\n      reference: {}\n",
                s.stage.map_or("anywhere", |st| st.name),
                s.reference.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
            all.push(json!({"name": s.name, "medium": medium.name(), "summary": s.summary, "params": params,
                "order": s.stage.map(|st| st.name), "reference": s.reference, "algorithm": s.algorithm}));
        }
    }
    Report::ok(text, json!({"schema_version": 1, "command": "enhance", "steps": all}))
}

fn describe(p: &steps::Param) -> (String, String) {
    let d = steps::default_of(p).map(|v| format!(" [default {}]", v.shown())).unwrap_or_default();
    let r = match p.kind {
        Kind::Float { min, max, .. } => format!(" ({min} to {max})"),
        Kind::Int { min, max, .. } => format!(" ({min} to {max})"),
        Kind::Odd { min, max, .. } => format!(" (odd, {min} to {max})"),
        Kind::Choice { values, .. } => format!(" ({})", values.join(" | ")),
        Kind::Ratio { .. } => " (N:D or decimal)".to_owned(),
    };
    (r, d)
}

/// The recipe a recorded event ran, for `redo`.
pub fn recorded(params: &Map<String, serde_json::Value>) -> Option<(String, String)> {
    Some((params.get("recipe")?.as_str()?.to_owned(), params.get("recipe_origin")?.as_str()?.to_owned()))
}
