//! What a redaction withheld and why, for the records clerk and the requester: the exemption
//! log (one row per region and audio range redacted: its time span, what was withheld, the
//! reason or exemption code, the statutory basis the agency's code list gives, who decided)
//! and, when the machine drafted tracks, the object report (every track found, accepted or
//! not, with its frames and confidence). Both are CSV and carry the SHA-256 of the item
//! redacted and of the redacted copy on every row, so a row cut out of either still names
//! the files it speaks of.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use super::spec::{AudioAction, Coverage, Decision, Plan, Shape, Spec};
use crate::error;
use crate::media::index::FrameIndex;
use crate::media::time::format_us;

/// An agency's exemption codes: `code,basis,description` rows under that header.
#[derive(Debug)]
pub struct Codes {
    pub sha256: String,
    entries: BTreeMap<String, (String, String)>,
}

impl Codes {
    /// Read the list; errors name the file and the line.
    pub fn read(path: &Path) -> Result<Codes> {
        let bytes = std::fs::read(path)
            .map_err(|e| error::input(format!("cannot read the exemption code list {}: {e}", path.display())))?;
        let bad = |line: u64, what: &str| {
            error::input(format!(
                "the exemption code list {} line {line}: {what}. It is CSV with the header code,basis,description",
                path.display()
            ))
        };
        let mut reader = csv::ReaderBuilder::new().has_headers(true).trim(csv::Trim::All).from_reader(&bytes[..]);
        let header = reader.headers().map_err(|e| bad(1, &e.to_string()))?.clone();
        let column = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
        let (Some(c), Some(b)) = (column("code"), column("basis")) else {
            return Err(bad(1, "its header names no code column or no basis column"));
        };
        let d = column("description");
        let mut entries = BTreeMap::new();
        for record in reader.records() {
            let record = record.map_err(|e| bad(e.position().map_or(0, |p| p.line()), &e.to_string()))?;
            let line = record.position().map_or(0, |p| p.line());
            let code = record.get(c).unwrap_or_default().to_owned();
            if code.is_empty() {
                return Err(bad(line, "a row without a code"));
            }
            let entry = (
                record.get(b).unwrap_or_default().to_owned(),
                d.and_then(|d| record.get(d)).unwrap_or_default().to_owned(),
            );
            if entries.insert(code.clone(), entry).is_some() {
                return Err(bad(line, &format!("the code {code:?} is listed twice")));
            }
        }
        if entries.is_empty() {
            return Err(bad(1, "it lists no code"));
        }
        Ok(Codes { sha256: hex::encode(crate::digest::sha256(&bytes)), entries })
    }

    /// Refuse a reason that is not one of the codes (exit 2), naming where it is used.
    pub fn check<'a>(&self, reasons: impl IntoIterator<Item = (String, &'a str)>) -> Result<()> {
        for (what, reason) in reasons {
            if !self.entries.contains_key(reason) {
                let known: Vec<&str> = self.entries.keys().map(String::as_str).collect();
                return Err(error::input(format!(
                    "{what} gives the reason {reason:?}, which is not a code of the exemption code list (it has {}); \
                     nothing was recorded",
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }

    pub fn basis(&self, code: &str) -> Option<&str> {
        self.entries.get(code).map(|e| e.0.as_str())
    }
}

/// The two files' bound hashes and who carried the redaction out.
pub struct Binding<'a> {
    pub input_sha256: &'a str,
    pub output_sha256: &'a str,
    /// The examiner redacting, when named (--examiner): the one who decided the regions drawn by
    /// hand. Empty otherwise: the OS account is not written into a file meant for a requester.
    pub redactor: &'a str,
}

fn csv_bytes(header: &[&str], rows: Vec<Vec<String>>) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header)?;
    for r in rows {
        w.write_record(&r)?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

/// The exemption log: one row per region painted and audio range muted or bleeped. `spec` is the
/// spec as rendered (rejected tracks left out), in the order of `plan` and `coverage`.
pub fn log(
    spec: &Spec,
    plan: &Plan,
    coverage: &[Coverage],
    index: &FrameIndex,
    codes: Option<&Codes>,
    bound: &Binding,
) -> Result<Vec<u8>> {
    let basis = |reason: &str| codes.and_then(|c| c.basis(reason)).unwrap_or_default().to_owned();
    let mut rows = Vec::new();
    for (i, ((r, s), c)) in plan.regions.iter().zip(&spec.regions).zip(coverage).enumerate() {
        let what =
            match (&s.detected, r.inverse) {
                (Some(d), _) => format!("face, track {} (found by the detector)", d.track),
                (None, true) => format!("everything outside region {}", i + 1),
                (None, false) => {
                    let [x, y, w, h] = r.keys[0].1;
                    match (r.moving, r.shape) {
                        (true, _) => format!(
                            "region {}: a moving {} ({} keys)",
                            i + 1,
                            if r.shape == Shape::Ellipse { "ellipse" } else { "box" },
                            r.keys.len()
                        ),
                        (false, Shape::Ellipse) => format!("region {}: ellipse in {x},{y},{w},{h}", i + 1),
                        (false, Shape::Rect) => format!("region {}: box {x},{y},{w},{h}", i + 1),
                    }
                }
            } + &s.name.as_deref().filter(|_| s.detected.is_none()).map(|n| format!(" ({n})")).unwrap_or_default();
        let (decided, how) = match &s.detected {
            Some(d) => (
                d.reviewer.clone().unwrap_or_default(),
                d.how.clone().unwrap_or_else(|| "edited in the spec".to_owned()),
            ),
            None => (bound.redactor.to_owned(), "drawn by hand".to_owned()),
        };
        let (first, last) = (c.first.map(|f| f.to_string()), c.last.map(|f| f.to_string()));
        let (from, to) = match (c.first, c.last) {
            (Some(a), Some(b)) => {
                let end = if b + 1 < index.len() { index.time_us(b + 1) } else { index.duration_us() };
                (format_us(index.time_us(a)), format_us(end))
            }
            _ => (format_us(r.from_us), format_us(r.to_us)),
        };
        rows.push(vec![
            (rows.len() + 1).to_string(),
            "video".into(),
            what,
            from,
            to,
            first.unwrap_or_default(),
            last.unwrap_or_default(),
            c.frames.to_string(),
            r.reason.clone(),
            basis(&r.reason),
            decided,
            how,
            bound.input_sha256.to_owned(),
            bound.output_sha256.to_owned(),
        ]);
    }
    for a in &plan.audio {
        rows.push(vec![
            (rows.len() + 1).to_string(),
            "audio".into(),
            if a.action == AudioAction::Mute { "sound muted".into() } else { "sound replaced by a tone".into() },
            format_us(a.from_us),
            format_us(a.to_us),
            String::new(),
            String::new(),
            String::new(),
            a.reason.clone(),
            basis(&a.reason),
            bound.redactor.to_owned(),
            "given by hand".into(),
            bound.input_sha256.to_owned(),
            bound.output_sha256.to_owned(),
        ]);
    }
    csv_bytes(
        &[
            "row",
            "medium",
            "withheld",
            "from",
            "to",
            "first_frame",
            "last_frame",
            "frames",
            "reason",
            "basis",
            "decided_by",
            "how",
            "input_sha256",
            "output_sha256",
        ],
        rows,
    )
}

/// The object report: every track the detector found (`spec` whole, rejected tracks too), with
/// the frames the redaction covered for it (`covered`: by track number). None without tracks.
pub fn object_report(
    spec: &Spec,
    covered: &BTreeMap<u32, usize>,
    index: &FrameIndex,
    bound: &Binding,
) -> Result<Option<Vec<u8>>> {
    let Some(detection) = &spec.detection else { return Ok(None) };
    if !spec.regions.iter().any(|r| r.detected.is_some()) {
        return Ok(None);
    }
    let mut rows = Vec::new();
    for (s, d) in spec.regions.iter().filter_map(|s| s.detected.as_ref().map(|d| (s, d))) {
        rows.push(vec![
            d.track.to_string(),
            d.decision.name().to_owned(),
            d.reviewer.clone().unwrap_or_default(),
            match (&d.how, d.decision) {
                (Some(how), _) => how.clone(),
                (None, Decision::Pending) => String::new(),
                (None, _) => "edited in the spec".to_owned(),
            },
            if d.decision == Decision::Accepted { s.reason.clone().unwrap_or_default() } else { String::new() },
            d.first_frame.to_string(),
            d.last_frame.to_string(),
            format_us(index.time_us(d.first_frame.min(index.len() - 1))),
            format_us(index.time_us(d.last_frame.min(index.len() - 1))),
            d.detections.to_string(),
            covered.get(&d.track).copied().unwrap_or(0).to_string(),
            d.confidence_mean.clone(),
            d.confidence_min.clone(),
            d.confidence_max.clone(),
            d.low_confidence.to_string(),
            detection.model_sha256.clone(),
            bound.input_sha256.to_owned(),
            bound.output_sha256.to_owned(),
        ]);
    }
    csv_bytes(
        &[
            "track",
            "decision",
            "reviewer",
            "how",
            "reason",
            "first_frame",
            "last_frame",
            "from",
            "to",
            "detections",
            "frames_redacted",
            "confidence_mean",
            "confidence_min",
            "confidence_max",
            "low_confidence",
            "model_sha256",
            "input_sha256",
            "output_sha256",
        ],
        rows,
    )
    .map(Some)
}
