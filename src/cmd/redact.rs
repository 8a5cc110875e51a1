//! `custody redact`: a redacted copy for release, with its decisions stored beside it as a spec
//! that a reviewer can read and that renders the same redaction again; or, with `--preview`, a
//! contact sheet of the regions for review.

use std::io::Cursor;

use anyhow::Result;
use serde_json::{Map, json};

use super::{Ctx, Report, head_line};
use crate::cli::RedactArgs;
use crate::derive::{self, Output, Source};
use crate::error;
use crate::ledger::canonical;
use crate::media::exact::AudioCodec;
use crate::media::redact::exemptions::{self, Binding, Codes};
use crate::media::redact::spec::{self, AudioAction, Coverage, Geometry, Plan, Shape, Spec, SpecSource, Subject};
use crate::media::redact::{self, Entry};
use crate::media::{ffi, probe, still};

/// Tags whose loss or survival a records clerk must see named.
const SENSITIVE: [&str; 8] = [
    "location",
    "location-eng",
    "com.apple.quicktime.location.ISO6709",
    "make",
    "model",
    "serial",
    "creation_time",
    "comment",
];

pub fn run(args: RedactArgs, ctx: &Ctx) -> Result<Report> {
    let store = ctx.store()?;
    let mut ledger = store.open_ledger()?;
    let source = Source::open(&store, &ledger, &args.item)?.verify_whole(args.verify_whole);
    source.require_decodable("a redaction")?;
    let index = source.frame_index(&ledger)?;

    // What the item offers: the picture the coordinates refer to, and whether it has sound.
    crate::media::init();
    let (geometry, orientation, audio_codec_name) = {
        let input = probe::open_input(&source.path)
            .map_err(|e| error::input(format!("FFmpeg cannot open item {}: {e}", source.row.id)))?;
        let geometry = (!index.audio).then(|| {
            let stream = input.stream(index.stream).expect("indexed stream");
            let (w, h, sar) = ffi::dimensions(&stream.parameters());
            let orientation = ffi::display_orientation(&stream);
            (Geometry::new((w.max(0) as u32, h.max(0) as u32), sar, orientation), orientation)
        });
        let audio =
            input.streams().best(ffmpeg_next::media::Type::Audio).map(|s| s.parameters().id().name().to_owned());
        (geometry.map(|g| g.0), geometry.map(|g| g.1).unwrap_or_default(), audio)
    };

    let (mut spec, spec_item) = match &args.spec {
        Some(path) => read_spec(&store, &ledger, path)?,
        None => (Spec::default(), None),
    };
    for b in &args.boxes {
        spec.regions.push(spec::parse_box_flag(b, Shape::Rect)?);
    }
    for b in &args.ellipses {
        spec.regions.push(spec::parse_box_flag(b, Shape::Ellipse)?);
    }
    for r in &args.mute {
        spec.audio.push(spec::parse_range_flag(r, AudioAction::Mute)?);
    }
    for r in &args.bleep {
        spec.audio.push(spec::parse_range_flag(r, AudioAction::Bleep)?);
    }
    if let Some(f) = args.fill {
        spec.fill = Some(f);
    }
    spec.fill = Some(spec.fill.unwrap_or_default());
    for k in &args.keep_tags {
        if !spec.keep_tags.contains(k) {
            spec.keep_tags.push(k.clone());
        }
    }
    spec.require_decisions()?;
    if let Some(d) = &spec.detection
        && d.sha256 != source.file.sha256
    {
        return Err(error::input(format!(
            "the spec's tracks were found in item {} (SHA-256 {}…), not in {} (SHA-256 {}…): they mark faces \
             of another recording. Run `custody detect {}` for this one; nothing was recorded",
            d.item,
            &d.sha256[..16.min(d.sha256.len())],
            source.row.id,
            &source.file.sha256[..16],
            source.row.id
        )));
    }
    spec.settle_reasons(args.reason.as_deref())?;
    let codes_path = args.codes.clone().or_else(|| {
        std::env::var_os("CUSTODY_EXEMPTION_CODES").filter(|v| !v.is_empty()).map(std::path::PathBuf::from)
    });
    let codes = codes_path.as_deref().map(Codes::read).transpose()?;
    // Tracks a reviewer rejected stay in the spec (and the record), and are not painted.
    let rendered = spec.without_rejected();
    if let Some(codes) = &codes {
        let regions = rendered
            .regions
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("region {}", i + 1), r.reason.as_deref().unwrap_or_default()));
        let ranges = rendered
            .audio
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("audio range {}", i + 1), a.reason.as_deref().unwrap_or_default()));
        codes.check(regions.chain(ranges).collect::<Vec<_>>())?;
    }
    let subject =
        Subject { index: &index, timeline: &source.timeline, geometry, has_audio: audio_codec_name.is_some() };
    let plan = spec::resolve(&rendered, &subject)?;
    let coverage = spec::coverage(&plan, &index);
    let warnings: Vec<String> = coverage.iter().filter_map(|c| c.warning.clone()).collect();
    if args.strict && !warnings.is_empty() {
        return Err(error::input(format!(
            "--strict refuses this redaction of {}: {}; nothing was recorded",
            source.label(),
            warnings.iter().map(|w| w.replace("; if it", ". If it")).collect::<Vec<_>>().join("; ")
        )));
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    spec.source = Some(SpecSource {
        item: source.row.id.clone(),
        sha256: source.file.sha256.clone(),
        picture: geometry.map(|g| format!("{}x{}", g.display().0, g.display().1)),
    });
    let spec_value = serde_json::to_value(&spec)?;
    let spec_json = canonical::encode(&spec_value).map_err(|e| error::input(format!("the redaction spec: {e}")))?;

    if redact::reversible(plan.fill) {
        eprintln!(
            "warning: --fill {} can be reversed when it is weak; custody uses large blocks and a heavy blur, \
             but solid fill is the only one that leaves nothing to recover",
            plan.fill.name()
        );
    }
    for k in &spec.keep_tags {
        if SENSITIVE.contains(&k.as_str()) {
            eprintln!("warning: keeping the tag {k:?}: it can identify a place, a device or a time");
        }
    }

    let actor = ctx.actor();
    let stem = source.stem().to_owned();
    let mut params = Map::new();
    params.insert("spec".into(), spec_value.clone());
    params.insert("spec_sha256".into(), json!(hex::encode(crate::digest::sha256(spec_json.as_bytes()))));
    params.insert("preview".into(), json!(args.preview));
    if let Some(codes) = &codes {
        params.insert("codes_sha256".into(), json!(codes.sha256));
    }
    if let Some(id) = &spec_item {
        // The stored spec these decisions came from (a review's output, or a draft).
        params.insert("spec_item".into(), json!(id));
    }

    if args.preview {
        let header = vec![
            format!("REDACTION PREVIEW  CASE {}  ITEM {}  {}", source.row.case, source.row.exhibit, source.row.id),
            format!("SOURCE SHA-256 {}", &source.file.sha256[..16]),
        ];
        let (pic, captions) = redact::preview(&source.path, &index, &plan, &coverage, orientation, &header)?;
        let png = still::encode_png(
            &pic,
            &[
                ("Source-SHA256", source.file.sha256.clone()),
                (
                    "Source-Item",
                    format!("{} {}:{}/{}", source.row.id, source.row.case, source.row.exhibit, source.row.name),
                ),
                ("Redaction-Spec", spec_json.clone()),
                ("Description", captions.join("\n")),
                ("Software", format!("custody {}", env!("CARGO_PKG_VERSION"))),
            ],
        )?;
        let mut staging = store.stage()?;
        source.confirm()?;
        let name = format!("{stem}_redaction_preview.png");
        let digests = staging.write_from(&store, &mut Cursor::new(&png), &name, &[])?.digests.clone();
        let mut facts = Map::new();
        facts.insert("kind".into(), json!("redaction preview"));
        facts.insert("width".into(), json!(pic.width));
        facts.insert("height".into(), json!(pic.height));
        let outputs = vec![Output { name, digests, facts }];
        let (head, event) = derive::commit(
            &store,
            &mut ledger,
            &actor,
            staging,
            &source,
            "redact_preview",
            outputs,
            params,
            args.note.clone(),
        )?;
        let out = &event.outputs[0];
        let id = out.item.clone().unwrap_or_default();
        let mut text = format!(
            "Redaction preview {id} of {}: {} region(s), {} audio range(s); nothing was redacted yet\n  {}  sha256 {}\n",
            source.label(),
            plan.regions.len(),
            plan.audio.len(),
            out.name.as_deref().unwrap_or_default(),
            out.sha256
        );
        text.push_str(&coverage_lines(&plan, &coverage));
        text.push_str(&super::copy_out_line(&store, out, args.out.as_deref(), "  ")?);
        text.push_str(&head_line(&head));
        let json = json!({"schema_version": 1, "command": "redact", "parent": source.row.id,
            "preview": {"item": id, "name": out.name, "sha256": out.sha256, "size": out.size},
            "regions": coverage, "warnings": warnings, "head": head});
        return Ok(Report::ok(text, json));
    }

    let (container, audio, ext) = match (index.audio, audio_codec_name.as_deref()) {
        (true, Some(c)) if c.starts_with("pcm_") => ("wav", AudioCodec::PcmS16, "wav"),
        (true, _) => ("mp4", AudioCodec::Aac, "m4a"),
        (false, _) => ("mp4", AudioCodec::Aac, "mp4"),
    };
    let mut staging = store.stage()?;
    let scratch = staging.scratch(ext);
    let outcome =
        source.verified_while(|| redact::render(&source.path, &scratch, &index, &plan, geometry, container, audio))?;
    let painted: Vec<u64> = coverage.iter().map(|c| c.frames as u64).collect();
    if outcome.region_frames != painted {
        return Err(error::mismatch(format!(
            "the regions were painted in {:?} frames where {painted:?} were planned; nothing was recorded",
            outcome.region_frames
        )));
    }
    let digests = staging.adopt(&store, &scratch)?.digests.clone();
    let spec_name = format!("{stem}_redaction_spec.json");
    let spec_digests =
        staging.write_from(&store, &mut Cursor::new(spec_json.as_bytes()), &spec_name, &[])?.digests.clone();

    let mut facts = Map::new();
    facts.insert("kind".into(), json!("redacted copy"));
    facts.insert("spec_sha256".into(), json!(spec_digests.sha256()));
    facts.insert("fill".into(), json!(plan.fill.name()));
    facts.insert("frames".into(), json!({"source": outcome.frames_source, "output": outcome.frames_output}));
    facts.insert(
        "duration_us".into(),
        json!({"source": outcome.duration_source_us, "output": outcome.duration_output_us}),
    );
    facts.insert("frames_redacted".into(), json!(outcome.frames_redacted));
    facts.insert("regions".into(), serde_json::to_value(&coverage)?);
    facts.insert("samples_redacted".into(), json!(outcome.samples_redacted));
    facts.insert("encoding".into(), serde_json::to_value(&outcome.encoding)?);
    facts.insert(
        "metadata".into(),
        // The event keeps what the source carried by SHA-256 only: ledger excerpts travel in
        // bundles, and a release bundle must not disclose the very tags the redaction removed.
        json!({"before": sealed(&outcome.before), "after": outcome.after, "removed": sealed(&outcome.removed),
               "values": "tag values of the source are recorded as sha256:HEX of their UTF-8 text"}),
    );
    let mut spec_facts = Map::new();
    spec_facts.insert("kind".into(), json!("redaction spec"));
    // What was withheld and why, bound to both files by their hashes.
    let output_sha256 = digests.sha256().to_owned();
    let bound = Binding {
        input_sha256: &source.file.sha256,
        output_sha256: &output_sha256,
        redactor: ctx.examiner.as_deref().unwrap_or_default(),
    };
    let log = exemptions::log(&rendered, &plan, &coverage, &index, codes.as_ref(), &bound)?;
    let log_name = format!("{stem}_exemption_log.csv");
    let log_digests = staging.write_from(&store, &mut Cursor::new(&log), &log_name, &[])?.digests.clone();
    let mut log_facts = Map::new();
    log_facts.insert("kind".into(), json!("exemption log"));
    log_facts.insert("rows".into(), json!(plan.regions.len() + plan.audio.len()));
    let covered: std::collections::BTreeMap<u32, usize> = rendered
        .regions
        .iter()
        .zip(&coverage)
        .filter_map(|(r, c)| r.detected.as_ref().map(|d| (d.track, c.frames)))
        .collect();
    let mut outputs = vec![
        Output { name: format!("{stem}_redacted.{ext}"), digests, facts },
        Output { name: spec_name, digests: spec_digests, facts: spec_facts },
        Output { name: log_name, digests: log_digests, facts: log_facts },
    ];
    if let Some(report) = exemptions::object_report(&spec, &covered, &index, &bound)? {
        let name = format!("{stem}_object_report.csv");
        let report_digests = staging.write_from(&store, &mut Cursor::new(&report), &name, &[])?.digests.clone();
        let mut report_facts = Map::new();
        report_facts.insert("kind".into(), json!("object report"));
        report_facts.insert("tracks".into(), json!(decided_tracks(&spec).len()));
        outputs.push(Output { name, digests: report_digests, facts: report_facts });
    }
    let (head, event) =
        derive::commit(&store, &mut ledger, &actor, staging, &source, "redact", outputs, params, args.note.clone())?;
    let (out, spec_out, log_out) = (&event.outputs[0], &event.outputs[1], &event.outputs[2]);
    let report_out = event.outputs.get(3);
    let id = out.item.clone().unwrap_or_default();
    let spec_id = spec_out.item.clone().unwrap_or_default();

    let mut text = format!("Redacted copy {id} of {}, {} fill:\n", source.label(), plan.fill.name());
    text.push_str(&coverage_lines(&plan, &coverage));
    let tracks = decided_tracks(&spec);
    for t in tracks.iter().filter(|t| t["decision"] == "rejected") {
        text.push_str(&format!(
            "  track {} left visible: rejected by {}\n",
            t["track"],
            t["reviewer"].as_str().unwrap_or("the spec's author")
        ));
    }
    for (i, a) in plan.audio.iter().enumerate() {
        text.push_str(&format!(
            "  audio {}: {} {} to {}, reason {}\n",
            i + 1,
            if a.action == AudioAction::Mute { "muted" } else { "bleeped" },
            crate::media::time::format_us(a.from_us),
            crate::media::time::format_us(a.to_us),
            a.reason
        ));
    }
    if !index.audio {
        text.push_str(&format!(
            "  {} of {} frames redacted; {} frames lasting {}, as the source (checked)\n",
            outcome.frames_redacted,
            outcome.frames_source,
            outcome.frames_output,
            crate::media::time::format_us(outcome.duration_output_us)
        ));
    }
    if outcome.samples_redacted > 0 {
        text.push_str(&format!("  {} audio samples muted or bleeped\n", outcome.samples_redacted));
    }
    text.push_str(&removed_summary(&outcome.removed));
    text.push_str(&format!(
        "  {}  sha256 {}  {}\n  {}  sha256 {} (the decisions; renders again with --spec)\n",
        out.name.as_deref().unwrap_or_default(),
        out.sha256,
        super::human_size(out.size),
        spec_out.name.as_deref().unwrap_or_default(),
        spec_out.sha256
    ));
    text.push_str(&format!(
        "  {}  sha256 {} (what was withheld and why)\n",
        log_out.name.as_deref().unwrap_or_default(),
        log_out.sha256
    ));
    if let Some(r) = report_out {
        text.push_str(&format!(
            "  {}  sha256 {} (every track found, accepted or not)\n",
            r.name.as_deref().unwrap_or_default(),
            r.sha256
        ));
    }
    text.push_str(&super::copy_out_line(&store, out, args.out.as_deref(), "  ")?);
    // The decisions and the logs travel with the video they made.
    for o in [Some(spec_out), Some(log_out), report_out].into_iter().flatten() {
        text.push_str(&super::copy_out_line(&store, o, args.out.as_deref(), "  ")?);
    }
    text.push_str(&head_line(&head));
    let file = |o: &crate::ledger::FileRef| json!({"item": o.item, "name": o.name, "sha256": o.sha256});
    let json = json!({"schema_version": 1, "command": "redact", "parent": source.row.id, "item": id,
        "name": out.name, "sha256": out.sha256, "size": out.size,
        "spec": {"item": spec_id, "name": spec_out.name, "sha256": spec_out.sha256},
        "exemption_log": file(log_out), "object_report": report_out.map(file),
        "fill": plan.fill.name(),
        "frames": {"source": outcome.frames_source, "output": outcome.frames_output, "redacted": outcome.frames_redacted},
        "duration_us": {"source": outcome.duration_source_us, "output": outcome.duration_output_us},
        "samples_redacted": outcome.samples_redacted,
        "regions": coverage, "warnings": warnings, "tracks": tracks,
        "metadata": {"before": outcome.before, "after": outcome.after, "removed": outcome.removed},
        "head": head});
    Ok(Report::ok(text, json))
}

/// The tracks a detector found and a person decided, as the redaction carried them out.
fn decided_tracks(spec: &Spec) -> Vec<serde_json::Value> {
    spec.regions
        .iter()
        .filter_map(|r| r.detected.as_ref().map(|d| (r, d)))
        .map(|(r, d)| {
            json!({"track": d.track, "decision": d.decision.name(), "reviewer": d.reviewer, "how": d.how,
                "reason": if d.decision == spec::Decision::Accepted { r.reason.clone() } else { None }})
        })
        .collect()
}

/// A `--spec`: a file, or a spec stored as an item (a review's output: `custody review` prints
/// its short ID). Also the item whose bytes the file holds, when the store has one (a reviewed
/// spec copied out with `review --out`), so the redaction names the review it carries out.
fn read_spec(
    store: &crate::store::Store,
    ledger: &crate::ledger::Ledger,
    path: &std::path::Path,
) -> Result<(Spec, Option<String>)> {
    if path.is_file() {
        let bytes = std::fs::read(path)
            .map_err(|e| error::input(format!("cannot read the redaction spec {}: {e}", path.display())))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| error::input(format!("the redaction spec {} is not UTF-8 text", path.display())))?;
        let spec = Spec::parse(&text, &path.display().to_string())?;
        let sha = hex::encode(crate::digest::sha256(text.as_bytes()));
        let stored = ledger.items_by_sha_prefix(&sha)?.into_iter().next().map(|row| row.id);
        return Ok((spec, stored));
    }
    let name = path.to_string_lossy();
    let Ok(row) = crate::item::resolve(ledger, &name) else {
        return Err(error::input(format!(
            "cannot read the redaction spec {}: no such file, and no item of this store is named so",
            path.display()
        )));
    };
    let stored = Source::open(store, ledger, &row.id)?;
    let bytes = stored.read_all()?;
    let text = String::from_utf8(bytes)
        .map_err(|_| error::input(format!("item {} is not a redaction spec (not UTF-8 text)", row.id)))?;
    let spec = Spec::parse(&text, &format!("item {}", row.id))?;
    Ok((spec, Some(row.id)))
}

/// One line per region: what it is, its range, its reason, the frames it covers ("N of M
/// frames"); then a WARNING line for each region that leaves frames at one end uncovered.
fn coverage_lines(plan: &Plan, coverage: &[Coverage]) -> String {
    use crate::media::time::format_us;
    let mut text = String::new();
    for (i, (r, c)) in plan.regions.iter().zip(coverage).enumerate() {
        let span = match (c.first, c.last) {
            (Some(a), Some(b)) if a == b => format!(" (frame {a})"),
            (Some(a), Some(b)) => format!(" (frames {a}-{b})"),
            _ => String::new(),
        };
        text.push_str(&format!(
            "  {}: {}{}{} {} to {}, reason {}: {} of {} frames{span}\n",
            r.label(i + 1),
            r.kind(),
            if r.moving { format!(" ({} keys)", r.keys.len()) } else { String::new() },
            if r.inverse { ", inverse (all else hidden)" } else { "" },
            format_us(r.from_us),
            format_us(r.to_us),
            r.reason,
            c.frames,
            c.of
        ));
    }
    for w in coverage.iter().filter_map(|c| c.warning.as_ref()) {
        text.push_str(&format!("  WARNING: {w}\n"));
    }
    text
}

/// Inventory entries with each tag's value replaced by its SHA-256 (streams keep their codec).
fn sealed(entries: &[Entry]) -> Vec<Entry> {
    entries
        .iter()
        .map(|e| Entry {
            scope: e.scope.clone(),
            key: e.key.clone(),
            value: if e.key == "stream" || e.key == "chapter" {
                e.value.clone()
            } else {
                format!("sha256:{}", hex::encode(crate::digest::sha256(e.value.as_bytes())))
            },
        })
        .collect()
}

/// Name what was dropped: sensitive tags one by one, the rest counted.
fn removed_summary(removed: &[Entry]) -> String {
    if removed.is_empty() {
        return "  metadata: the source carried none\n".to_owned();
    }
    let sensitive: Vec<String> = removed
        .iter()
        .filter(|e| SENSITIVE.iter().any(|k| e.key.eq_ignore_ascii_case(k)))
        .map(|e| format!("{} {}={}", e.scope, e.key, e.value))
        .collect();
    let streams: Vec<String> =
        removed.iter().filter(|e| e.key == "stream").map(|e| format!("{} ({})", e.scope, e.value)).collect();
    let mut text = format!("  metadata removed: {} entries (checked on the copy)\n", removed.len());
    if !sensitive.is_empty() {
        text.push_str(&format!("    identifying tags removed: {}\n", sensitive.join("; ")));
    }
    if !streams.is_empty() {
        text.push_str(&format!("    streams dropped: {}\n", streams.join("; ")));
    }
    text
}
