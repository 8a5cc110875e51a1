//! Assisted redaction end to end: `detect --faces` → `review` → `redact`, on video made from
//! real photographs (scikit-image's astronaut.png, a NASA portrait, composited moving over its
//! camera.png, whose cameraman is a real face too), so where each face is in every frame is
//! known. The output is read back with the ffmpeg CLI and the faces' pixels compared.

use std::path::{Path, PathBuf};

use custody::media::redact::spec::Spec;
use serde_json::Value;

use crate::support::{Store, tool};

const W: usize = 640;
const H: usize = 360;
const FPS: f64 = 30.0;
const SECONDS: f64 = 5.0;

/// One face composited into the video: the astronaut's head (astronaut.png cropped to 150x180
/// at 150,30) scaled to `w` x `h`, mirrored or not, at `x0 + vx t`, `y0 + vy t` from `from`
/// seconds on.
struct Face {
    w: u32,
    h: u32,
    mirrored: bool,
    x0: f64,
    vx: f64,
    y0: f64,
    vy: f64,
    from: f64,
}

/// Eyes to mouth in the 150x180 crop: the pixels that identify her.
const FEATURES: [f64; 4] = [45.0, 55.0, 108.0, 130.0];

impl Face {
    fn on_screen(&self, n: usize) -> bool {
        n as f64 / FPS >= self.from - 1e-9
    }

    /// The features' rectangle in frame `n` (x0, y0, x1, y1), shrunk by 2 pixels on each side:
    /// the overlay filter places the picture on even coordinates.
    fn features(&self, n: usize) -> (usize, usize, usize, usize) {
        let t = n as f64 / FPS;
        let (x, y) = (self.x0 + self.vx * t, self.y0 + self.vy * t);
        let (kx, ky) = (self.w as f64 / 150.0, self.h as f64 / 180.0);
        let [mut a, b, mut c, d] = FEATURES;
        if self.mirrored {
            (a, c) = (150.0 - c, 150.0 - a);
        }
        let px = |v: f64| v.round() as usize;
        (px(x + a * kx + 2.0), px(y + b * ky + 2.0), px(x + c * kx - 2.0), px(y + d * ky - 2.0))
    }

    fn filter(&self, input: &str, label: &str) -> String {
        let flip = if self.mirrored { ",hflip" } else { "" };
        format!(
            "[1]crop=150:180:150:30,scale={}:{}{flip}[f{label}];{input}[f{label}]overlay=x='{}+{}*t':y='{}+{}*t':enable='gte(t,{})'[{label}]",
            self.w, self.h, self.x0, self.vx, self.y0, self.vy, self.from
        )
    }
}

fn faces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/faces")
}

/// Three faces, none passing over another or over the cameraman's (about x 240-330, y 60-160):
/// one crossing the bottom of the picture left to right, a larger mirrored one drifting down
/// and left at the right, and one that appears after 1.5 s (between two searched frames) at
/// the left.
fn faces() -> Vec<Face> {
    vec![
        Face { w: 76, h: 92, mirrored: false, x0: 20.0, vx: 90.0, y0: 250.0, vy: 2.0, from: 0.0 },
        Face { w: 100, h: 122, mirrored: true, x0: 530.0, vx: -20.0, y0: 10.0, vy: 25.0, from: 0.0 },
        Face { w: 84, h: 102, mirrored: false, x0: 30.0, vx: 10.0, y0: 20.0, vy: 10.0, from: 1.5 },
    ]
}

/// The test video, H.264 in MP4, 640x360 at 30 fps.
fn make_video(dir: &Path, faces: &[Face]) -> PathBuf {
    let dir_faces = faces_dir();
    let (camera, astronaut) = (dir_faces.join("camera.png"), dir_faces.join("astronaut.png"));
    assert!(astronaut.is_file(), "{} is missing: run bins/setup", astronaut.display());
    let mut graph = format!("[0]scale={W}:{H},setsar=1,format=yuv420p,trim=duration={SECONDS}[v0]");
    for (i, f) in faces.iter().enumerate() {
        graph.push(';');
        graph.push_str(&f.filter(&format!("[v{i}]"), &format!("v{}", i + 1)));
    }
    let out = dir.join("faces.mp4");
    let args: Vec<String> = ["-v", "error", "-y", "-loop", "1", "-i"]
        .iter()
        .map(|s| s.to_string())
        .chain([camera.display().to_string(), "-loop".into(), "1".into(), "-i".into(), astronaut.display().to_string()])
        .chain([
            "-filter_complex".into(),
            graph,
            "-map".into(),
            format!("[v{}]", faces.len()),
            "-r".into(),
            FPS.to_string(),
            "-t".into(),
            SECONDS.to_string(),
            "-c:v".into(),
            "libx264".into(),
            "-crf".into(),
            "16".into(),
            "-pix_fmt".into(),
            "yuv420p".into(),
            out.display().to_string(),
        ])
        .collect();
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    tool("ffmpeg", &args, dir).status(0);
    out
}

/// Every frame's luma, as the ffmpeg CLI decodes it.
fn luma(path: &Path) -> Vec<Vec<u8>> {
    let args: Vec<&std::ffi::OsStr> = ["-v", "error", "-i"]
        .iter()
        .map(|a| a.as_ref())
        .chain([path.as_os_str()])
        .chain(["-f", "rawvideo", "-pix_fmt", "gray", "-"].iter().map(|a| a.as_ref()))
        .collect();
    let out = std::process::Command::new("ffmpeg").args(&args).output().expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg cannot decode {}", path.display());
    out.stdout.chunks_exact(W * H).map(<[u8]>::to_vec).collect()
}

/// The share of the rectangle's pixels that are the solid fill (black), and the mean absolute
/// difference from the same rectangle of `source`.
fn hidden(frame: &[u8], source: &[u8], (x0, y0, x1, y1): (usize, usize, usize, usize)) -> (f64, f64) {
    let (mut dark, mut diff, mut all) = (0usize, 0u64, 0usize);
    for y in y0..y1.min(H) {
        for x in x0..x1.min(W) {
            let (o, s) = (frame[y * W + x], source[y * W + x]);
            dark += usize::from(o <= 40);
            diff += (o as i64 - s as i64).unsigned_abs();
            all += 1;
        }
    }
    (dark as f64 / all.max(1) as f64, diff as f64 / all.max(1) as f64)
}

fn ingest(store: &Store, path: &Path) -> String {
    ingest_as(store, path, "3")
}

fn ingest_as(store: &Store, path: &Path, exhibit: &str) -> String {
    let out = store.cmd(&["--json", "ingest", "--case", "26-0042", "--item", exhibit]).arg(path).run().status(0).json();
    out["items"][0]["id"].as_str().expect("item id").to_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One CSV line's fields (quoted fields may hold commas; no field here holds a line break).
fn split_csv(line: &str) -> Vec<String> {
    let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// The newest event of `action`, as `custody log --json` gives it.
fn event(store: &Store, action: &str) -> Value {
    let log = store.cmd(&["--json", "log"]).run().status(0).json();
    log["events"].as_array().expect("events").iter().rev().find(|e| e["action"] == action).cloned().expect(action)
}

#[test]
fn every_face_is_covered_on_its_path_after_detect_review_and_redact_and_keeps_one_track() {
    let store = Store::new();
    let faces = faces();
    let video = make_video(store.work(), &faces);
    let item = ingest(&store, &video);
    let out = store.work().join("out");

    let mut checks = crate::json::Checks::new();
    let detect = checks.doc(
        "detect",
        "detect --faces",
        &store.cmd(&["--json", "detect", &item, "--faces", "--out"]).arg(&out).run(),
        0,
    );
    let draft_id = detect["draft"]["item"].as_str().unwrap().to_owned();
    assert_eq!(detect["frames"]["every"], 6, "about five searches a second at 30 fps: {detect:#}");
    assert_eq!(detect["model"]["sha256"], custody::detect::centerface::SHA256);
    let draft = Spec::parse(&read(&out.join(detect["draft"]["name"].as_str().unwrap())), "draft").unwrap();
    assert!(out.join(detect["sheet"]["name"].as_str().unwrap()).is_file());
    // Every track is pending, and each composited face's detections are in one track alone.
    assert!(draft.regions.iter().all(|r| r.detected.as_ref().unwrap().decision.name() == "pending"));
    for (i, face) in faces.iter().enumerate() {
        let mut holders: Vec<u32> = Vec::new();
        for r in &draft.regions {
            let d = r.detected.as_ref().unwrap();
            for key in &r.track {
                let n: usize = key.at.0.trim_start_matches("frame:").parse().unwrap();
                if n < d.first_frame || n > d.last_frame || !face.on_screen(n) {
                    continue;
                }
                let [x, y, w, h] = key.bbox;
                let (cx, cy) = ((x + w / 2) as usize, (y + h / 2) as usize);
                let (a, b, c, e) = face.features(n);
                if (a..c).contains(&cx) && (b..e).contains(&cy) && !holders.contains(&d.track) {
                    holders.push(d.track);
                }
            }
        }
        let keys: Vec<String> = draft
            .regions
            .iter()
            .map(|r| format!("{:?}", r.track.iter().take(3).map(|k| (k.at.0.clone(), k.bbox)).collect::<Vec<_>>()))
            .collect();
        assert_eq!(
            holders.len(),
            1,
            "face {} (features {:?} at frame 0) is in tracks {holders:?}, not one; the tracks begin {keys:#?}",
            i + 1,
            face.features(0)
        );
    }

    // A person accepts every track (named as a blanket decision in the record), then redacts.
    let review = checks.doc(
        "review",
        "review --accept-all",
        &store
            .cmd(&["--json", "--examiner", "C. Ruiz", "review", &draft_id, "--accept-all", "--reason", "privacy"])
            .run(),
        0,
    );
    assert_eq!(review["pending"], 0);
    let reviewed = review["item"].as_str().unwrap().to_owned();
    let recorded = event(&store, "review");
    assert_eq!(recorded["params"]["blanket"], "accept-all");
    assert!(
        recorded["params"]["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["reviewer"] == "C. Ruiz" && d["how"] == "accept-all")
    );
    let redact = checks.doc(
        "redact",
        "redact --spec REVIEWED",
        &store.cmd(&["--json", "--examiner", "D. Lee", "redact", &item, "--spec", &reviewed, "--out"]).arg(&out).run(),
        0,
    );
    checks.validate();
    assert_eq!(event(&store, "redact")["params"]["spec_item"], Value::String(reviewed.clone()));
    assert_eq!(event(&store, "redact")["examiner"], "D. Lee");

    // Every face, in every frame it is on screen: its features hidden, and never its pixels.
    let source = luma(&video);
    let output = luma(&out.join(redact["name"].as_str().unwrap()));
    assert_eq!(source.len(), output.len());
    for (i, face) in faces.iter().enumerate() {
        let frames: Vec<usize> = (0..source.len()).filter(|&n| face.on_screen(n)).collect();
        let mut covered = 0;
        for &n in &frames {
            let (dark, diff) = hidden(&output[n], &source[n], face.features(n));
            covered += usize::from(dark >= 0.95);
            assert!(
                diff >= 40.0,
                "face {} shows in frame {n}: {dark:.2} of its features hidden, mean difference {diff:.1}",
                i + 1
            );
        }
        eprintln!("face {}: covered in {covered} of {} frames", i + 1, frames.len());
        assert!(
            covered * 100 >= frames.len() * 99,
            "face {} is covered in {covered} of the {} frames it is on screen",
            i + 1,
            frames.len()
        );
    }
}

#[test]
fn a_pending_track_is_refused_a_rejected_face_stays_visible_and_every_decision_is_recorded() {
    let store = Store::new();
    let faces = faces();
    let video = make_video(store.work(), &faces);
    let item = ingest(&store, &video);
    let out = store.work().join("out");
    let detect = store.cmd(&["--json", "detect", &item, "--faces", "--out"]).arg(&out).run().status(0).json();
    let draft_id = detect["draft"]["item"].as_str().unwrap().to_owned();
    let recorded = event(&store, "detect");
    assert_eq!(recorded["params"]["model"]["sha256"], custody::detect::centerface::SHA256);
    assert_eq!(recorded["params"]["threshold"], "0.500");
    assert_eq!(recorded["inputs"][0]["sha256"], crate::support::sha256sum(&video));
    // The track holding face 2 (the mirrored one, at the right), found by where its boxes are.
    let draft = Spec::parse(&read(&out.join(detect["draft"]["name"].as_str().unwrap())), "draft").unwrap();
    let face2 = draft
        .regions
        .iter()
        .find(|r| r.track.iter().all(|k| k.bbox[0] >= 400))
        .and_then(|r| r.detected.as_ref())
        .map(|d| d.track)
        .expect("a track at the right of the picture");
    let others: Vec<String> = draft
        .regions
        .iter()
        .filter_map(|r| r.detected.as_ref().map(|d| d.track))
        .filter(|&t| t != face2)
        .map(|t| t.to_string())
        .collect();

    // Nothing is released that no person decided.
    let before = store.event_count();
    store
        .cmd(&["redact", &item, "--spec", &draft_id])
        .run()
        .status(2)
        .stderr_has("no one has decided")
        .stderr_has(&format!("track {face2} ("))
        .stderr_has("custody review");
    // Nor does a batch job run with it: refused before any step, nothing recorded.
    let draft_file = out.join(detect["draft"]["name"].as_str().unwrap());
    let job = crate::support::write(
        &out.join("job.yaml"),
        format!(
            "job: release 26-7\nsteps:\n  - redact: {{item: {item}, spec: {}}}\n",
            draft_file.file_name().unwrap().to_string_lossy()
        ),
    );
    store.cmd(&["batch"]).arg(&job).run().status(2).stderr_has("no one has decided").stderr_has("nothing was run");
    assert_eq!(store.event_count(), before);
    // Review mistakes: an unknown track, a track decided both ways, an accepted one with no
    // reason, nothing to decide.
    store.cmd(&["review", &draft_id, "--accept", "99"]).run().status(2).stderr_has("has no track 99");
    store
        .cmd(&["review", &draft_id, "--accept", "1", "--reject", "1", "--reason", "x"])
        .run()
        .status(2)
        .stderr_has("both accepted and rejected");
    store.cmd(&["review", &draft_id, "--accept", "1"]).run().status(2).stderr_has("--reason");
    store.cmd(&["review", &draft_id]).run().status(2).stderr_has("say what you decide");
    store
        .cmd(&["review", &item, "--accept", "1", "--reason", "x"])
        .run()
        .status(2)
        .stderr_has("is not a redaction spec");
    assert_eq!(store.event_count(), before, "a refused command recorded something");

    // One examiner decides part, a second decides the rest; a third redacts.
    let first = store
        .cmd(&[
            "--json",
            "--examiner",
            "C. Ruiz",
            "review",
            &draft_id,
            "--accept",
            &others.join(","),
            "--reason",
            "RCW 42.56.240(1)",
        ])
        .run()
        .status(0)
        .json();
    assert_eq!(first["pending"], 1);
    let partial = first["item"].as_str().unwrap().to_owned();
    store.cmd(&["redact", &item, "--spec", &partial]).run().status(2).stderr_has(&format!("track {face2} ("));
    let second = store
        .cmd(&["--json", "--examiner", "A. Okafor", "review", &partial, "--reject", &face2.to_string()])
        .run()
        .status(0)
        .json();
    assert_eq!((second["pending"].as_u64(), second["rejected"].as_u64()), (Some(0), Some(1)));
    let reviewed = second["item"].as_str().unwrap().to_owned();
    let review = event(&store, "review");
    assert_eq!(review["inputs"][0]["item"], Value::String(partial.clone()));
    assert_eq!(review["params"]["decisions"][0]["reviewer"], "A. Okafor");
    assert_eq!(review["params"]["decisions"][0]["decision"], "rejected");

    // The agency's exemption codes: a reason not on the list is refused.
    let codes = crate::support::write(
        &store.work().join("codes.csv"),
        "code,basis,description\n\"RCW 42.56.240(1)\",\"RCW 42.56.240(1), investigative records\",faces of uninvolved people\nplate,RCW 46.12.635,licence plates\n",
    );
    let before = store.event_count();
    store
        .cmd(&["redact", &item, "--spec", &reviewed, "--box", "600,330,40,30", "--reason", "tag", "--codes"])
        .arg(&codes)
        .run()
        .status(2)
        .stderr_has("gives the reason \"tag\", which is not a code");
    assert_eq!(store.event_count(), before);

    // A person's own box mixes with the decided tracks: the bottom-right corner.
    let redacted = store
        .cmd(&["--json", "--examiner", "D. Lee", "redact", &item, "--spec", &reviewed])
        .args(&["--box", "600,330,40,30", "--reason", "plate", "--codes"])
        .arg(&codes)
        .arg("--out")
        .arg(&out)
        .run()
        .status(0)
        .json();
    // The exemption log: a row per accepted track and the box, bound to both files.
    let output_sha = redacted["sha256"].as_str().unwrap().to_owned();
    let input_sha = crate::support::sha256sum(&video);
    let log = read(&out.join(redacted["exemption_log"]["name"].as_str().unwrap()));
    let rows: Vec<Vec<String>> = log.lines().skip(1).map(split_csv).collect();
    assert_eq!(rows.len(), others.len() + 1, "{log}");
    for r in &rows {
        assert_eq!((&r[12], &r[13], r[1].as_str()), (&input_sha, &output_sha, "video"), "{log}");
    }
    let tracks_logged: Vec<&Vec<String>> = rows.iter().filter(|r| r[2].starts_with("face, track")).collect();
    assert_eq!(tracks_logged.len(), others.len(), "{log}");
    assert!(
        tracks_logged.iter().all(|r| r[8] == "RCW 42.56.240(1)"
            && r[9] == "RCW 42.56.240(1), investigative records"
            && r[10] == "C. Ruiz"),
        "{log}"
    );
    assert!(!log.contains(&format!("face, track {face2} ")), "the rejected track is in the exemption log: {log}");
    let boxed = rows.iter().find(|r| r[2].contains("box 600,330,40,30")).expect("the box's row");
    assert_eq!((boxed[8].as_str(), boxed[9].as_str(), boxed[10].as_str()), ("plate", "RCW 46.12.635", "D. Lee"));
    assert_eq!(boxed[7], "150", "the box covers every frame: {log}");
    // The object report: every track, the rejected one with no frame redacted.
    let report = read(&out.join(redacted["object_report"]["name"].as_str().unwrap()));
    let report: Vec<Vec<String>> = report.lines().skip(1).map(split_csv).collect();
    assert_eq!(report.len(), draft.regions.len());
    let rejected = report.iter().find(|r| r[0] == face2.to_string()).unwrap();
    assert_eq!((rejected[1].as_str(), rejected[2].as_str(), rejected[10].as_str()), ("rejected", "A. Okafor", "0"));
    assert!(report.iter().filter(|r| r[1] == "accepted").all(|r| r[10].parse::<usize>().unwrap() > 0));
    assert!(report.iter().all(|r| r[15] == custody::detect::centerface::SHA256 && r[17] == output_sha));
    let tracks = redacted["tracks"].as_array().unwrap();
    assert!(tracks.iter().any(|t| t["track"] == face2 && t["decision"] == "rejected" && t["reviewer"] == "A. Okafor"));
    assert!(tracks.iter().filter(|t| t["decision"] == "accepted").all(|t| t["reason"] == "RCW 42.56.240(1)"));
    let source = luma(&video);
    let output = luma(&out.join(redacted["name"].as_str().unwrap()));
    for n in (0..source.len()).step_by(10) {
        // The rejected face is left as it was; the others and the box are hidden.
        let (dark, _) = hidden(&output[n], &source[n], faces[1].features(n));
        assert!(dark < 0.2, "the rejected face 2 is hidden in frame {n}");
        let (dark, _) = hidden(&output[n], &source[n], faces[0].features(n));
        assert!(dark >= 0.95, "the accepted face 1 shows in frame {n}");
        let (dark, _) = hidden(&output[n], &source[n], (600, 330, 640, 360));
        assert!(dark >= 0.95, "the manual box shows in frame {n}");
    }

    // A release holds the redacted copy, its exemption log and object report; never the review
    // sheet, which shows the faces unredacted. The report lists what was withheld and why.
    let sheet = detect["sheet"]["item"].as_str().unwrap();
    let (copy, log_item) = (redacted["item"].as_str().unwrap(), redacted["exemption_log"]["item"].as_str().unwrap());
    let report_item = redacted["object_report"]["item"].as_str().unwrap();
    let zip = store.work().join("release.zip");
    let before = store.event_count();
    store
        .cmd(&["package", copy, log_item, sheet, "--release", "--recipient", "request 26-7"])
        .arg("--out")
        .arg(&zip)
        .run()
        .status(2)
        .stderr_has("face review sheet, which shows the unredacted pictures");
    assert!(!zip.exists());
    assert_eq!(store.event_count(), before);
    store
        .cmd(&["package", copy, log_item, report_item, "--release", "--recipient", "request 26-7"])
        .arg("--out")
        .arg(&zip)
        .run()
        .status(0);
    let bag = crate::bundle::unzip(&zip, &store.work().join("release"));
    let text = tool("pdftotext", &["report.pdf".as_ref(), "-".as_ref()], &bag.join("data/report")).status(0).stdout();
    assert!(text.contains("Exemption log: what the redaction withheld and why"), "{text}");
    let joined: String = text.split_whitespace().collect();
    assert!(joined.contains(&output_sha) && joined.contains(&input_sha), "{text}");
    // The log is a table: with its layout kept, each row's first line holds its times, its
    // reason and who decided it.
    let layout =
        tool("pdftotext", &["-layout".as_ref(), "report.pdf".as_ref(), "-".as_ref()], &bag.join("data/report"))
            .status(0)
            .stdout();
    let rows = |needles: &[&str]| layout.lines().filter(|l| needles.iter().all(|n| l.contains(n))).count();
    assert_eq!(rows(&["00:00:05.000", "RCW", "C. Ruiz"]), others.len(), "{layout}");
    assert_eq!(rows(&["00:00:00.000", "00:00:05.000", "plate", "RCW 46.12.635", "D. Lee"]), 1, "{layout}");

    // The tracks of one recording are refused on another.
    std::fs::create_dir_all(store.work().join("other")).unwrap();
    let other = make_video(&store.work().join("other"), &faces[..1]);
    let other_id = ingest_as(&store, &other, "4");
    let before = store.event_count();
    store
        .cmd(&["redact", &other_id, "--spec", &reviewed])
        .run()
        .status(2)
        .stderr_has("not in")
        .stderr_has("custody detect");
    assert_eq!(store.event_count(), before);
}

#[test]
fn a_model_file_custody_does_not_know_is_refused_with_exit_3_and_nothing_recorded() {
    let store = Store::new();
    let video = make_video(store.work(), &faces()[..1]);
    let item = ingest(&store, &video);
    let models = store.work().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let mut bytes = std::fs::read(custody::detect::models_dir().join(custody::detect::centerface::FILE)).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(models.join(custody::detect::centerface::FILE), bytes).unwrap();
    let before = store.event_count();
    store
        .cmd(&["detect", &item, "--faces"])
        .env("CUSTODY_MODELS", &models)
        .run()
        .status(3)
        .stderr_has("Reinstall it with bins/setup");
    std::fs::remove_file(models.join(custody::detect::centerface::FILE)).unwrap();
    store.cmd(&["detect", &item, "--faces"]).env("CUSTODY_MODELS", &models).run().status(3).stderr_has("bins/setup");
    assert_eq!(store.event_count(), before);
    assert!(store.tmp_entries().is_empty(), "{:?}", store.tmp_entries());
}
