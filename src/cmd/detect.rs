//! `custody detect --faces`: faces found by the machine, joined into tracks, written as a draft
//! redaction spec in which every track is `pending`, with a review sheet; both recorded as
//! items of one `detect` event that names the model by its SHA-256 and every setting.
//!
//! Frames are decoded on this thread and searched on worker threads (one detector each), so
//! both cores are busy; the tracker then takes the detection frames in order.

use std::io::Cursor;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use serde_json::{Map, json};

use super::{Ctx, Report, head_line};
use crate::cli::DetectArgs;
use crate::derive::{self, Output, Source};
use crate::detect::centerface::CenterFace;
use crate::detect::sheet;
use crate::detect::track::{Settings, Track, Tracker};
use crate::detect::{Detection, Detector, Frame};
use crate::error;
use crate::media::index::FrameIndex;
use crate::media::redact::spec::{self, Decision, Detected, Key, Pos, RegionSpec, Spec, SpecSource};
use crate::media::still;
use crate::media::time::format_us;

/// Detection frames a second, when `--every` is not given: enough to keep a walking face's
/// track, few enough to keep up with the footage on two cores.
const SEARCHES_PER_SECOND: f64 = 5.0;

/// A confidence as the spec and the ledger hold it: a decimal string.
fn conf(v: f32) -> String {
    format!("{v:.3}")
}

pub fn run(args: DetectArgs, ctx: &Ctx) -> Result<Report> {
    let unit = |v: f32| v > 0.0 && v <= 1.0;
    if !unit(args.threshold) || !unit(args.floor) || args.floor > args.threshold {
        return Err(error::input(format!(
            "--floor {} and --threshold {} must be confidences between 0 and 1, the floor at most the threshold",
            args.floor, args.threshold
        )));
    }
    if !(1.0..=3.0).contains(&args.margin) {
        return Err(error::input(format!("--margin {} must be between 1 (the box as found) and 3", args.margin)));
    }
    if args.every == Some(0) {
        return Err(error::input("--every 0: give how many frames apart the searched frames are (1 = every frame)"));
    }
    let store = ctx.store()?;
    let mut ledger = store.open_ledger()?;
    let source = Source::open(&store, &ledger, &args.item)?.verify_whole(args.verify_whole);
    let media = source.require_decodable("face detection")?;
    if !media.streams.iter().any(|s| s.kind == "video") {
        return Err(error::input(format!(
            "item {} has no video (it is audio-only): there are no faces to find",
            source.row.id
        )));
    }
    // Before any decoding: a missing or unknown model is an environment error (exit 3).
    let detector = CenterFace::load()?;
    let model = detector.model().clone();
    let index = source.frame_index(&ledger)?;
    let resolve = |p: &Option<crate::media::time::Position>, default: usize| -> Result<usize> {
        p.as_ref().map_or(Ok(default), |p| index.resolve(p, &source.timeline))
    };
    let (first, last) = (resolve(&args.from, 0)?, resolve(&args.to, index.len() - 1)?);
    if last < first {
        return Err(error::input(format!(
            "--to {} comes before --from {}: give the range in order",
            format_us(index.time_us(last)),
            format_us(index.time_us(first))
        )));
    }
    let every = args.every.unwrap_or_else(|| {
        let seconds = index.duration_us().max(1) as f64 / 1e6;
        let rate = index.len() as f64 / seconds;
        ((rate / SEARCHES_PER_SECOND).round() as usize).max(1)
    });
    let searched = |n: usize| n >= first && n <= last && ((n - first).is_multiple_of(every) || n == last);

    let found = source.verified_while(|| search(&source, &index, (first, last), &searched, &args, detector))?;
    let shown = found.shown;
    let settings = Settings::default();
    let mut tracker = Tracker::new(settings);
    for (n, faces) in &found.frames {
        tracker.step(*n, faces);
    }
    let tracks = tracker.finish();

    // The draft: one moving region per track, every one pending.
    let regions: Vec<RegionSpec> = tracks
        .iter()
        .map(|t| {
            let keys = t.keys(every, (first, last), args.margin, shown);
            RegionSpec {
                track: keys.iter().map(|(f, b)| Key { at: Pos(format!("frame:{f}")), bbox: *b }).collect(),
                name: Some(format!("face {}", t.id)),
                detected: Some(detected(t, args.threshold)),
                ..RegionSpec::default()
            }
        })
        .filter(|r| !r.track.is_empty())
        .collect();
    let low = regions.iter().filter(|r| r.detected.as_ref().is_some_and(|d| d.low_confidence)).count();
    let draft = Spec {
        regions,
        source: Some(SpecSource {
            item: source.row.id.clone(),
            sha256: source.file.sha256.clone(),
            picture: Some(format!("{}x{}", shown.0, shown.1)),
        }),
        detection: Some(spec::Detection {
            item: source.row.id.clone(),
            sha256: source.file.sha256.clone(),
            model: model.name.to_owned(),
            model_sha256: model.sha256.to_owned(),
            backend: model.backend.clone(),
            threshold: conf(args.threshold),
            floor: conf(args.floor),
            every,
            scaled_to: format!("{}x{}", found.scaled.0, found.scaled.1),
            margin: format!("{:.2}", args.margin),
            first_frame: first,
            last_frame: last,
        }),
        ..Spec::default()
    };
    let yaml = format!(
        "# Draft redaction spec from `custody detect`: every track is pending until a person decides it\n\
         # (`custody review`, or set decision: accepted / rejected below). `custody redact` refuses a\n\
         # spec with a pending track.\n{}",
        serde_yaml_ng::to_string(&draft)?
    );

    // The sheet: low-confidence tracks first, then in order of appearance.
    let mut rows: Vec<sheet::Row> = draft
        .regions
        .iter()
        .zip(&tracks)
        .map(|(r, t)| {
            let d = r.detected.as_ref().expect("drafted");
            let found_boxes = t
                .hits
                .iter()
                .map(|(f, h)| {
                    (
                        *f,
                        [h.x1 as i64, h.y1 as i64, (h.width().ceil() as i64).max(1), (h.height().ceil() as i64).max(1)],
                    )
                })
                .collect();
            sheet::Row {
                track: d.track,
                low_confidence: d.low_confidence,
                decision: d.decision.name().to_owned(),
                first_frame: d.first_frame,
                last_frame: d.last_frame,
                detections: d.detections,
                confidence: (d.confidence_mean.clone(), d.confidence_min.clone(), d.confidence_max.clone()),
                found: found_boxes,
            }
        })
        .collect();
    rows.sort_by_key(|r| (!r.low_confidence, r.track));
    let header = vec![
        format!("FACE REVIEW  CASE {}  ITEM {}  {}", source.row.case, source.row.exhibit, source.row.id),
        format!("SOURCE SHA-256 {}", &source.file.sha256[..16]),
        format!(
            "{} TRACKS ({low} LOW CONFIDENCE)  FRAMES {first}-{last} EVERY {every}  THRESHOLD {}",
            rows.len(),
            conf(args.threshold)
        ),
        format!("MODEL SHA-256 {}", &model.sha256[..16]),
        "EVERY TRACK IS PENDING: A PERSON DECIDES EACH ONE (CUSTODY REVIEW)".to_owned(),
    ];
    let picture = source.verified_while(|| sheet::draw(&source.path, &index, &header, &rows))?;
    let png = still::encode_png(
        &picture,
        &[
            ("Source-SHA256", source.file.sha256.clone()),
            (
                "Source-Item",
                format!("{} {}:{}/{}", source.row.id, source.row.case, source.row.exhibit, source.row.name),
            ),
            ("Model-SHA256", model.sha256.to_owned()),
            ("Software", format!("custody {}", env!("CARGO_PKG_VERSION"))),
        ],
    )?;

    let stem = source.stem().to_owned();
    let mut staging = store.stage()?;
    let draft_name = format!("{stem}_faces_draft.yaml");
    let sheet_name = format!("{stem}_faces_review.png");
    let draft_digests =
        staging.write_from(&store, &mut Cursor::new(yaml.as_bytes()), &draft_name, &[])?.digests.clone();
    let sheet_digests = staging.write_from(&store, &mut Cursor::new(&png), &sheet_name, &[])?.digests.clone();
    let detections: usize = found.frames.iter().map(|f| f.1.len()).sum();
    let mut draft_facts = Map::new();
    draft_facts.insert("kind".into(), json!("draft redaction spec"));
    draft_facts.insert("tracks".into(), json!(draft.regions.len()));
    draft_facts.insert("low_confidence".into(), json!(low));
    draft_facts.insert("pending".into(), json!(draft.regions.len()));
    let mut sheet_facts = Map::new();
    sheet_facts.insert("kind".into(), json!("face review sheet"));
    sheet_facts.insert("width".into(), json!(picture.width));
    sheet_facts.insert("height".into(), json!(picture.height));
    let outputs = vec![
        Output { name: draft_name, digests: draft_digests, facts: draft_facts },
        Output { name: sheet_name, digests: sheet_digests, facts: sheet_facts },
    ];
    let mut params = Map::new();
    params.insert("objects".into(), json!("faces"));
    params.insert("model".into(), json!({"name": model.name, "sha256": model.sha256, "backend": model.backend}));
    params.insert("threshold".into(), json!(conf(args.threshold)));
    params.insert("floor".into(), json!(conf(args.floor)));
    params.insert("every".into(), json!(every));
    params.insert("max_side".into(), json!(args.max_side));
    params.insert("scaled_to".into(), json!(format!("{}x{}", found.scaled.0, found.scaled.1)));
    params.insert("margin".into(), json!(format!("{:.2}", args.margin)));
    params.insert("frames".into(), json!({"first": first, "last": last, "searched": found.frames.len()}));
    params.insert(
        "tracker".into(),
        json!({"iou": format!("{:.2}", settings.iou), "hold": settings.hold,
        "model": "constant-velocity Kalman filter per box coordinate, greedy nearest-first association"}),
    );
    params.insert("detections".into(), json!(detections));
    let (head, event) = derive::commit(
        &store,
        &mut ledger,
        &ctx.actor(),
        staging,
        &source,
        "detect",
        outputs,
        params,
        args.note.clone(),
    )?;
    let (draft_out, sheet_out) = (&event.outputs[0], &event.outputs[1]);
    let draft_id = draft_out.item.clone().unwrap_or_default();
    let sheet_id = sheet_out.item.clone().unwrap_or_default();

    let mut text = format!(
        "Found {} face track{} in {}: {} frames searched, every {every} of frames {first}-{last}; {}; threshold {}\n",
        draft.regions.len(),
        if draft.regions.len() == 1 { "" } else { "s" },
        source.label(),
        found.frames.len(),
        model.name,
        conf(args.threshold)
    );
    let mut listed: Vec<&Detected> = draft.regions.iter().filter_map(|r| r.detected.as_ref()).collect();
    listed.sort_by_key(|d| (!d.low_confidence, d.track));
    let mut tracks_json = Vec::new();
    for d in &listed {
        text.push_str(&format!(
            "  track {:<3} frames {}-{} ({} to {})  found in {}  confidence {}-{}{}  pending\n",
            d.track,
            d.first_frame,
            d.last_frame,
            format_us(index.time_us(d.first_frame)),
            format_us(index.time_us(d.last_frame)),
            d.detections,
            d.confidence_min,
            d.confidence_max,
            if d.low_confidence { "  LOW CONFIDENCE" } else { "" }
        ));
        tracks_json.push(serde_json::to_value(d)?);
    }
    text.push_str(&format!(
        "  {draft_id:<5}{}  sha256 {}  ({})\n  {sheet_id:<5}{}  sha256 {}  (the review sheet)\n",
        draft_out.name.as_deref().unwrap_or_default(),
        draft_out.sha256,
        if draft.regions.is_empty() { "the draft: no face found" } else { "the draft: every track pending" },
        sheet_out.name.as_deref().unwrap_or_default(),
        sheet_out.sha256
    ));
    text.push_str(&super::copy_out_line(&store, draft_out, args.out.as_deref(), "  ")?);
    text.push_str(&super::copy_out_line(&store, sheet_out, args.out.as_deref(), "  ")?);
    if !draft.regions.is_empty() {
        text.push_str(&format!(
            "A person decides every track: custody review {draft_id} --accept N,… --reject N,… --reason CODE\n"
        ));
    }
    text.push_str(
        "The detector misses small, profile, turned-away, masked and covered faces: look at the whole video.\n",
    );
    text.push_str(&head_line(&head));
    let json = json!({"schema_version": 1, "command": "detect", "parent": source.row.id,
        "draft": {"item": draft_id, "name": draft_out.name, "sha256": draft_out.sha256},
        "sheet": {"item": sheet_id, "name": sheet_out.name, "sha256": sheet_out.sha256},
        "model": {"name": model.name, "sha256": model.sha256, "backend": model.backend},
        "frames": {"first": first, "last": last, "every": every, "searched": found.frames.len()},
        "tracks": tracks_json, "head": head});
    Ok(Report::ok(text, json))
}

/// What the detector found in the searched frames, in frame order, in displayed pixels.
struct Found {
    frames: Vec<(usize, Vec<Detection>)>,
    /// The displayed picture's size, and the size the detector searched.
    shown: (u32, u32),
    scaled: (u32, u32),
}

/// A searched frame on its way to a worker: its number, BGR pixels and size, and the displayed
/// picture's size.
type Job = (usize, Vec<u8>, u32, u32, (u32, u32));

fn search(
    source: &Source,
    index: &FrameIndex,
    range: (usize, usize),
    searched: &(dyn Fn(usize) -> bool + Sync),
    args: &DetectArgs,
    detector: CenterFace,
) -> Result<Found> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8);
    let bar = super::frame_progress((range.1 - range.0 + 1) as u64, "detecting");
    let (jobs, queue) = mpsc::sync_channel::<Job>(workers * 2);
    let queue = Arc::new(Mutex::new(queue));
    let (results, answers) = mpsc::channel::<Result<(usize, Vec<Detection>)>>();
    let floor = args.floor;
    let mut sizes = ((0, 0), (0, 0));
    let decoded = std::thread::scope(|scope| {
        for _ in 0..workers {
            let (queue, results, mut detector) = (queue.clone(), results.clone(), detector.clone());
            scope.spawn(move || {
                loop {
                    let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((n, bgr, w, h, shown)) = job else { break };
                    let frame = Frame { bgr: &bgr, width: w as usize, height: h as usize, stride: w as usize * 3 };
                    let (kx, ky) = (shown.0 as f32 / w as f32, shown.1 as f32 / h as f32);
                    let found = detector.detect(&frame, floor).map(|faces| {
                        let back = |d: Detection| Detection {
                            x1: d.x1 * kx,
                            y1: d.y1 * ky,
                            x2: d.x2 * kx,
                            y2: d.y2 * ky,
                            score: d.score,
                        };
                        (n, faces.into_iter().map(back).collect())
                    });
                    let failed = found.is_err();
                    if results.send(found).is_err() || failed {
                        break;
                    }
                }
            });
        }
        drop(results);
        drop(detector);
        let decoded = still::each_frame(
            &source.path,
            index,
            range,
            |n| {
                bar.set_position((n - range.0) as u64);
                searched(n)
            },
            |n, frame, orientation| {
                let (bgr, w, h, shown) = still::detector_view(frame, orientation, args.max_side)?;
                sizes = (shown, (w, h));
                jobs.send((n, bgr, w, h, shown))
                    .map_err(|_| error::environment("the face detector stopped while frames were still coming"))?;
                Ok(())
            },
        );
        drop(jobs);
        decoded
    });
    bar.finish_and_clear();
    let mut frames = Vec::new();
    for answer in answers {
        frames.push(answer.map_err(|e| error::environment(format!("the face detector failed: {e:#}")))?);
    }
    let decoded = decoded?;
    if decoded == 0 {
        return Err(error::input(format!(
            "no frame of {} between frames {} and {} decodes: there is nothing to search",
            source.row.id, range.0, range.1
        )));
    }
    frames.sort_by_key(|f| f.0);
    Ok(Found { frames, shown: sizes.0, scaled: sizes.1 })
}

/// A track as the draft records it.
fn detected(t: &Track, threshold: f32) -> Detected {
    Detected {
        track: t.id,
        decision: Decision::Pending,
        detections: t.hits.len(),
        first_frame: t.first(),
        last_frame: t.last(),
        confidence_mean: conf(t.mean()),
        confidence_min: conf(t.least()),
        confidence_max: conf(t.best()),
        low_confidence: t.best() < threshold,
        reviewer: None,
        how: None,
    }
}
