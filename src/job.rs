//! Batch jobs: a YAML file describing a whole request (clips, stills, redactions, a package),
//! checked as a whole before any step runs, every problem reported at once with its line and
//! column. Each step's event records the job, the step and a key over its inputs and
//! parameters, so a re-run skips what is already done and an interrupted job resumes.
//!
//! ```yaml
//! job: records request 2024-118
//! steps:
//!   - id: plate
//!     clip: {item: "24-1234:3/cam.avi", from: "00:00:00.500", to: "00:00:01.500", mode: exact}
//!   - id: stills
//!     still: {item: "24-1234:3/cam.avi", at: ["00:00:01", "frame:20"], caption: true}
//!   - id: release
//!     redact: {item: plate, spec: release.yaml}
//!   - package: {items: [release, stills], out: request-2024-118.zip, recipient: J. Doe}
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::{Value, json};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use crate::error;
use crate::item;
use crate::ledger::Ledger;
use crate::media::time::Position;

/// A YAML node with where it starts.
#[derive(Clone, Debug)]
pub struct Node {
    pub line: usize,
    pub col: usize,
    pub kind: Kind,
}

#[derive(Clone, Debug)]
pub enum Kind {
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Builder {
    stack: Vec<(Node, Option<Node>)>,
    root: Option<Node>,
    aliases: bool,
}

impl Builder {
    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some((parent, pending_key)) => match &mut parent.kind {
                Kind::Seq(items) => items.push(node),
                Kind::Map(pairs) => match pending_key.take() {
                    None => *pending_key = Some(node),
                    Some(k) => pairs.push((k, node)),
                },
                Kind::Scalar(_) => {}
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = |kind| Node { line: mark.line(), col: mark.col() + 1, kind };
        match ev {
            Event::Scalar(s, ..) => self.push(at(Kind::Scalar(s))),
            Event::SequenceStart(..) => self.stack.push((at(Kind::Seq(Vec::new())), None)),
            Event::MappingStart(..) => self.stack.push((at(Kind::Map(Vec::new())), None)),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((node, _)) = self.stack.pop() {
                    self.push(node);
                }
            }
            Event::Alias(_) => self.aliases = true,
            _ => {}
        }
    }
}

/// One problem in a job file, where it is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// An item a step works on: an item in the store, or what an earlier step made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ref {
    Item(String),
    Step(String),
}

/// What a step does, its parameters as written (positions and paths checked).
#[derive(Clone, Debug)]
pub enum Action {
    Clip {
        item: Ref,
        from: String,
        to: String,
        mode: String,
        crf: u8,
        lossless: bool,
    },
    Still {
        item: Ref,
        at: Vec<String>,
        caption: bool,
        deinterlace: bool,
    },
    Redact {
        item: Ref,
        spec: Option<PathBuf>,
        boxes: Vec<String>,
        mute: Vec<String>,
        fill: Option<String>,
        reason: Option<String>,
        /// Refuse instead of warning when a region reaches one end of the recording but not
        /// the other (`redact --strict`); not part of the step's key, as it changes no output.
        strict: bool,
    },
    Package {
        items: Vec<Ref>,
        out: PathBuf,
        recipient: Option<String>,
        purpose: Option<String>,
        include: String,
        release: bool,
    },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Clip { .. } => "clip",
            Action::Still { .. } => "still",
            Action::Redact { .. } => "redact",
            Action::Package { .. } => "package",
        }
    }

    /// The items it reads.
    pub fn inputs(&self) -> Vec<&Ref> {
        match self {
            Action::Clip { item, .. } | Action::Still { item, .. } | Action::Redact { item, .. } => vec![item],
            Action::Package { items, .. } => items.iter().collect(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Step {
    pub id: String,
    pub action: Action,
    pub note: Option<String>,
    pub line: usize,
}

#[derive(Clone, Debug)]
pub struct Job {
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
    pub steps: Vec<Step>,
}

/// Read and check a job file as a whole. Every problem is returned, with its line and column;
/// items are looked up in `ledger` and positions checked against the items they apply to.
pub fn load(path: &Path, ledger: &Ledger) -> Result<Result<Job, Vec<Problem>>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| error::input(format!("cannot read the job file {}: {e}", path.display())))?;
    Ok(parse(&text, path, ledger))
}

/// The YAML document in `text` as nodes that know where they start (`None` when it is empty).
/// Anchors and aliases are refused: a file a court reads must say each thing where it is used.
pub fn nodes(text: &str) -> Result<Option<Node>, Problem> {
    let mut b = Builder::default();
    if let Err(e) = Parser::new_from_str(text).load(&mut b, false) {
        return Err(Problem { line: e.marker().line(), column: e.marker().col() + 1, message: e.info().to_owned() });
    }
    if b.aliases {
        return Err(Problem { line: 1, column: 1, message: "anchors and aliases (&, *) are not accepted".into() });
    }
    Ok(b.root)
}

/// Check a job file's text (read from `path`, which relative paths in it start from).
pub fn parse(text: &str, path: &Path, ledger: &Ledger) -> Result<Job, Vec<Problem>> {
    let sha256 = hex::encode(crate::digest::sha256(text.as_bytes()));
    let mut b = Builder::default();
    if let Err(e) = Parser::new_from_str(text).load(&mut b, false) {
        return Err(vec![Problem {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: e.info().to_owned(),
        }]);
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_owned();
    let mut c = Checker { problems: Vec::new(), ledger, dir, ids: Vec::new(), strict: false };
    if b.aliases {
        c.problems.push(Problem {
            line: 1,
            column: 1,
            message: "anchors and aliases (&, *) are not accepted in job files".into(),
        });
    }
    let Some(root) = b.root else {
        return Err(vec![Problem { line: 1, column: 1, message: "the job file is empty".into() }]);
    };
    let job = c.job(&root);
    let mut problems = c.problems;
    problems.sort_by_key(|p| (p.line, p.column));
    problems.dedup();
    match job {
        Some((name, steps)) if problems.is_empty() => Ok(Job { name, path: path.to_owned(), sha256, steps }),
        _ => Err(problems),
    }
}

struct Checker<'a> {
    problems: Vec<Problem>,
    ledger: &'a Ledger,
    dir: PathBuf,
    ids: Vec<String>,
    /// `strict: true` at the top of the job: every redaction step is strict unless it says not.
    strict: bool,
}

impl Checker<'_> {
    fn fail(&mut self, n: &Node, message: impl Into<String>) {
        self.problems.push(Problem { line: n.line, column: n.col, message: message.into() });
    }

    /// The mapping's entries by key, with unknown keys and missing required ones reported.
    fn fields<'n>(
        &mut self,
        n: &'n Node,
        what: &str,
        allowed: &[&str],
        required: &[&str],
    ) -> BTreeMap<String, &'n Node> {
        let mut out = BTreeMap::new();
        let Kind::Map(pairs) = &n.kind else {
            self.fail(n, format!("{what} must be a mapping (key: value)"));
            return out;
        };
        for (k, v) in pairs {
            let key = k.scalar().unwrap_or_default().to_owned();
            if !allowed.contains(&key.as_str()) {
                self.fail(k, format!("unknown key {key:?} in {what}; expected one of: {}", allowed.join(", ")));
            } else if out.insert(key.clone(), v).is_some() {
                self.fail(k, format!("{key:?} is given twice in {what}"));
            }
        }
        for r in required {
            if !out.contains_key(*r) {
                self.fail(n, format!("{what} needs {r:?}"));
            }
        }
        out
    }

    fn text(&mut self, n: Option<&&Node>, what: &str) -> Option<String> {
        let n = n?;
        match n.scalar() {
            Some(s) if !s.trim().is_empty() => Some(s.to_owned()),
            _ => {
                self.fail(n, format!("{what} must be a text value"));
                None
            }
        }
    }

    fn flag(&mut self, n: Option<&&Node>, what: &str) -> bool {
        match n.map(|n| (n, n.scalar())) {
            None => false,
            Some((_, Some("true"))) => true,
            Some((_, Some("false"))) => false,
            Some((n, _)) => {
                self.fail(n, format!("{what} must be true or false"));
                false
            }
        }
    }

    fn list(&mut self, n: Option<&&Node>, what: &str) -> Vec<(String, Node)> {
        let Some(n) = n else { return Vec::new() };
        match &n.kind {
            Kind::Scalar(s) => vec![(s.clone(), (*n).clone())],
            Kind::Seq(items) => items
                .iter()
                .filter_map(|i| match i.scalar() {
                    Some(s) => Some((s.to_owned(), i.clone())),
                    None => {
                        self.fail(i, format!("{what} must hold text values"));
                        None
                    }
                })
                .collect(),
            Kind::Map(_) => {
                self.fail(n, format!("{what} must be a value or a list of values"));
                Vec::new()
            }
        }
    }

    fn position(&mut self, n: &Node, text: &str, what: &str) -> Option<Position> {
        match text.parse::<Position>() {
            Ok(p) => Some(p),
            Err(e) => {
                self.fail(n, format!("{what}: {e}"));
                None
            }
        }
    }

    /// An item reference: an earlier step's id, else an item in the store.
    fn reference(&mut self, n: &Node, text: &str) -> Option<Ref> {
        if self.ids.iter().any(|i| i == text) {
            return Some(Ref::Step(text.to_owned()));
        }
        match item::resolve(self.ledger, text) {
            Ok(row) => Some(Ref::Item(row.id)),
            Err(e) => {
                self.fail(n, format!("{text:?} is neither an earlier step's id nor an item: {e}"));
                None
            }
        }
    }

    /// Check positions against the item when it is already in the store.
    fn check_positions(&mut self, r: &Ref, positions: &[(Position, Node)]) {
        let Ref::Item(id) = r else { return };
        if positions.is_empty() {
            return;
        }
        let Ok(row) = item::resolve(self.ledger, id) else { return };
        let Some(store_root) = self.ledger.store_root() else { return };
        let object = crate::store::object_path_in(store_root, &row.sha256);
        // An object kept in a bucket is read as derived commands read it: through the verifying
        // reader, in ranges (opening it as an item registers it so).
        let _source = crate::store::Store::at(store_root, std::time::Duration::from_secs(1))
            .ok()
            .filter(|s| s.bucket().is_some())
            .and_then(|s| crate::derive::Source::open(&s, self.ledger, id).ok());
        match crate::media::index::cache::load_recorded(self.ledger, store_root, &row.sha256, &object) {
            Ok((index, _)) => {
                let timeline = crate::media::index::Timeline::default();
                for (p, n) in positions {
                    if matches!(p, Position::WallClock(_)) {
                        continue;
                    }
                    if let Err(e) = index.resolve(p, &timeline) {
                        self.fail(n, format!("{p}: {e}"));
                    }
                }
            }
            Err(e) => {
                let n = &positions[0].1;
                self.fail(n, format!("item {id} has no frames to take positions from: {e}"));
            }
        }
    }

    fn job(&mut self, root: &Node) -> Option<(String, Vec<Step>)> {
        let top = self.fields(root, "the job", &["job", "steps", "note", "strict"], &["job", "steps"]);
        let name = self.text(top.get("job"), "job (its name)");
        self.strict = self.flag(top.get("strict"), "strict");
        let mut steps = Vec::new();
        match top.get("steps").map(|n| (n, &n.kind)) {
            Some((_, Kind::Seq(list))) if !list.is_empty() => {
                for (i, s) in list.iter().enumerate() {
                    if let Some(step) = self.step(s, i + 1) {
                        steps.push(step);
                    }
                }
            }
            Some((n, _)) => self.fail(n, "steps must be a non-empty list"),
            None => {}
        }
        Some((name?, steps))
    }

    fn step(&mut self, n: &Node, number: usize) -> Option<Step> {
        let kinds = ["clip", "still", "redact", "package"];
        let f = self.fields(n, &format!("step {number}"), &["id", "note", "clip", "still", "redact", "package"], &[]);
        let id = self.text(f.get("id"), "id").unwrap_or_else(|| format!("step{number}"));
        if self.ids.contains(&id) {
            self.fail(f.get("id").copied().unwrap_or(n), format!("the id {id:?} is used by an earlier step"));
        }
        let note = self.text(f.get("note"), "note");
        let given: Vec<&str> = kinds.iter().copied().filter(|k| f.contains_key(*k)).collect();
        if given.len() != 1 {
            self.fail(n, format!("step {number} must have exactly one of: {}", kinds.join(", ")));
            self.ids.push(id);
            return None;
        }
        let kind = given[0];
        let body = f[kind];
        let action = match kind {
            "clip" => self.clip(body),
            "still" => self.still(body),
            "redact" => self.redact(body),
            _ => self.package(body),
        };
        self.ids.push(id.clone());
        Some(Step { id, action: action?, note, line: n.line })
    }

    fn clip(&mut self, n: &Node) -> Option<Action> {
        let f = self.fields(n, "clip", &["item", "from", "to", "mode", "crf", "lossless"], &["item", "from", "to"]);
        let item_text = self.text(f.get("item"), "item");
        let item = item_text.and_then(|t| self.reference(f["item"], &t));
        let from = self.text(f.get("from"), "from");
        let to = self.text(f.get("to"), "to");
        let mut positions = Vec::new();
        for (t, key) in [(&from, "from"), (&to, "to")] {
            if let Some(t) = t
                && let Some(p) = self.position(f[key], t, key)
            {
                positions.push((p, f[key].clone()));
            }
        }
        let mode = self.text(f.get("mode"), "mode").unwrap_or_else(|| "copy".into());
        if !["copy", "exact", "smart"].contains(&mode.as_str()) {
            self.fail(f["mode"], format!("mode {mode:?}: use copy, exact or smart"));
        }
        let crf = match self.text(f.get("crf"), "crf") {
            Some(t) => match t.parse::<u8>() {
                Ok(v) if v <= 51 => v,
                _ => {
                    self.fail(f["crf"], format!("crf {t:?}: a whole number from 0 to 51"));
                    18
                }
            },
            None => 18,
        };
        let lossless = self.flag(f.get("lossless"), "lossless");
        if let Some(item) = &item {
            self.check_positions(item, &positions);
        }
        Some(Action::Clip { item: item?, from: from?, to: to?, mode, crf, lossless })
    }

    fn still(&mut self, n: &Node) -> Option<Action> {
        let f = self.fields(n, "still", &["item", "at", "caption", "deinterlace"], &["item", "at"]);
        let item_text = self.text(f.get("item"), "item");
        let item = item_text.and_then(|t| self.reference(f["item"], &t));
        let at = self.list(f.get("at"), "at");
        let mut positions = Vec::new();
        for (t, node) in &at {
            if let Some(p) = self.position(node, t, "at") {
                positions.push((p, node.clone()));
            }
        }
        let caption = self.flag(f.get("caption"), "caption");
        let deinterlace = self.flag(f.get("deinterlace"), "deinterlace");
        if let Some(item) = &item {
            self.check_positions(item, &positions);
        }
        Some(Action::Still { item: item?, at: at.into_iter().map(|(t, _)| t).collect(), caption, deinterlace })
    }

    fn redact(&mut self, n: &Node) -> Option<Action> {
        let f = self.fields(n, "redact", &["item", "spec", "box", "mute", "fill", "reason", "strict"], &["item"]);
        let item_text = self.text(f.get("item"), "item");
        let item = item_text.and_then(|t| self.reference(f["item"], &t));
        let spec = self.text(f.get("spec"), "spec").map(|s| self.dir.join(s));
        if let Some(p) = &spec {
            // A drafted spec with a track no one decided fails here, before any step runs.
            match crate::media::redact::spec::Spec::read(p).and_then(|s| s.require_decisions()) {
                Ok(()) => {}
                Err(e) => self.fail(f["spec"], format!("{e:#}")),
            }
        }
        let boxes: Vec<String> = self.list(f.get("box"), "box").into_iter().map(|(t, _)| t).collect();
        let mute: Vec<String> = self.list(f.get("mute"), "mute").into_iter().map(|(t, _)| t).collect();
        for b in &boxes {
            if let Err(e) = crate::media::redact::spec::parse_box_flag(b, crate::media::redact::spec::Shape::Rect) {
                self.fail(f["box"], format!("{e:#}"));
            }
        }
        for m in &mute {
            if let Err(e) =
                crate::media::redact::spec::parse_range_flag(m, crate::media::redact::spec::AudioAction::Mute)
            {
                self.fail(f["mute"], format!("{e:#}"));
            }
        }
        let fill = self.text(f.get("fill"), "fill");
        if let Some(fl) = &fill
            && !["solid", "pixelate", "blur"].contains(&fl.as_str())
        {
            self.fail(f["fill"], format!("fill {fl:?}: use solid, pixelate or blur"));
        }
        let reason = self.text(f.get("reason"), "reason");
        if spec.is_none() && boxes.is_empty() && mute.is_empty() {
            self.fail(n, "redact needs a spec, boxes or mute ranges");
        }
        let strict = if f.contains_key("strict") { self.flag(f.get("strict"), "strict") } else { self.strict };
        Some(Action::Redact { item: item?, spec, boxes, mute, fill, reason, strict })
    }

    fn package(&mut self, n: &Node) -> Option<Action> {
        let f = self.fields(
            n,
            "package",
            &["items", "out", "recipient", "purpose", "include", "release"],
            &["items", "out"],
        );
        let mut items = Vec::new();
        for (t, node) in self.list(f.get("items"), "items") {
            if let Some(r) = self.reference(&node, &t) {
                items.push(r);
            }
        }
        let out = self.text(f.get("out"), "out").map(|o| self.dir.join(o));
        let include = self.text(f.get("include"), "include").unwrap_or_else(|| "all".into());
        if !["all", "originals", "derived"].contains(&include.as_str()) {
            self.fail(f["include"], format!("include {include:?}: use all, originals or derived"));
        }
        Some(Action::Package {
            items,
            out: out?,
            recipient: self.text(f.get("recipient"), "recipient"),
            purpose: self.text(f.get("purpose"), "purpose"),
            include,
            release: self.flag(f.get("release"), "release"),
        })
    }
}

/// The key of a step: its action and parameters with every input named by its SHA-256. Two runs
/// of the same step on the same bytes have the same key.
pub fn step_key(job: &Job, step: &Step, inputs: &[String]) -> String {
    let params = match &step.action {
        Action::Clip { from, to, mode, crf, lossless, .. } => {
            json!({"from": from, "to": to, "mode": mode, "crf": crf, "lossless": lossless})
        }
        Action::Still { at, caption, deinterlace, .. } => {
            json!({"at": at, "caption": caption, "deinterlace": deinterlace})
        }
        Action::Redact { spec, boxes, mute, fill, reason, .. } => {
            let spec_sha =
                spec.as_ref().and_then(|p| std::fs::read(p).ok()).map(|b| hex::encode(crate::digest::sha256(&b)));
            json!({"spec": spec_sha, "boxes": boxes, "mute": mute, "fill": fill, "reason": reason})
        }
        Action::Package { out, recipient, purpose, include, release, .. } => {
            json!({"out": out.file_name().map(|n| n.to_string_lossy().into_owned()), "recipient": recipient,
                   "purpose": purpose, "include": include, "release": release})
        }
    };
    let body =
        json!({"job": job.name, "step": step.id, "action": step.action.name(), "inputs": inputs, "params": params});
    let text = crate::ledger::canonical::encode(&body).unwrap_or_else(|_| body.to_string());
    hex::encode(crate::digest::sha256(text.as_bytes()))
}

/// The steps of batch jobs the ledger records as done, by key, kept up to date as the ledger
/// grows: the ledger is read once, then only the events appended since the last look.
#[derive(Default)]
pub struct DoneSteps {
    /// Step key → the last event that did it and its outputs' item IDs.
    by_key: HashMap<String, (u64, Vec<String>)>,
    /// The last event read.
    through: Option<u64>,
}

impl DoneSteps {
    /// The event that already did the step with this key, if any, and its outputs' item IDs.
    pub fn find(&mut self, ledger: &Ledger, key: &str) -> Result<Option<(u64, Vec<String>)>> {
        let (by_key, through) = (&mut self.by_key, &mut self.through);
        ledger.for_each_row_after(*through, |row| {
            *through = Some(row.seq as u64);
            if row.body.contains("\"job\"") {
                let ev = crate::ledger::parse_body(&row)?;
                if let Some(k) = ev.params.get("job").and_then(|j| j.get("key")).and_then(Value::as_str) {
                    let outputs = ev.outputs.iter().filter_map(|o| o.item.clone()).collect();
                    by_key.insert(k.to_owned(), (ev.seq, outputs));
                }
            }
            Ok(())
        })?;
        Ok(self.by_key.get(key).cloned())
    }
}
