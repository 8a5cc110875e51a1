//! Recipes: an ordered list of named steps with parameters, from a YAML file or from `--step`
//! flags, checked as a whole before anything runs (every problem with its line and column),
//! and compared with the order examiners teach.
//!
//! ```yaml
//! recipe: dark DVR plate
//! steps:
//!   - deinterlace: {method: bwdif}
//!   - levels: {black: 16, white: 120, gamma: 1.2}
//!   - sharpen
//! ```

use std::path::Path;

use serde_json::{Map, Value as Json, json};

use super::steps::{self, Medium, Step, Values};
use crate::error;
use crate::job::{Kind, Node};

/// One step of a recipe, checked, with its parameters completed.
#[derive(Clone)]
pub struct Planned {
    pub step: &'static Step,
    pub values: Values,
    /// Where it was written: `FILE:LINE:COLUMN`, or the `--step` flag.
    pub at: String,
}

impl Planned {
    pub fn params_json(&self) -> Json {
        Json::Object(self.values.iter().map(|(k, v)| ((*k).to_owned(), v.json())).collect::<Map<_, _>>())
    }
}

#[derive(Clone)]
pub struct Recipe {
    pub title: Option<String>,
    pub steps: Vec<Planned>,
    /// The recipe as written: the file's text, or the `--step` flags one per line.
    pub text: String,
    /// Where it came from (a file name, or `--step`).
    pub origin: String,
}

impl Recipe {
    pub fn has(&self, medium: Medium) -> bool {
        self.steps.iter().any(|s| s.step.medium == medium)
    }

    pub fn steps_json(&self) -> Json {
        Json::Array(
            self.steps
                .iter()
                .map(|s| json!({"name": s.step.name, "medium": s.step.medium.name(), "params": s.params_json(), "learned_model": s.step.learned}))
                .collect(),
        )
    }

    /// Warnings for steps out of the order examiners teach (they run as written).
    pub fn order_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for medium in [Medium::Video, Medium::Audio] {
            let mut highest: Option<&Planned> = None;
            for p in self.steps.iter().filter(|p| p.step.medium == medium) {
                let Some(stage) = p.step.stage else { continue };
                if let Some(h) = highest
                    && let Some(hs) = h.step.stage
                    && stage.rank < hs.rank
                {
                    {
                        out.push(format!(
                            "{}: step {} ({}: {}) comes after {} ({}: {}), out of the usual order; {} ({}). \
                             It runs as written: say why in --note",
                            p.at,
                            p.step.name,
                            medium.name(),
                            stage.name,
                            h.step.name,
                            h.at,
                            hs.name,
                            if medium == Medium::Video {
                                "examiners correct defects in the reverse of the order they arose: acquisition \
                                 (range, aspect) → encoding (deinterlace) → sensor noise and contrast (denoise, \
                                 levels, contrast, white balance, then sharpen) → lens (perspective) → scene \
                                 (stabilise, average, crop)"
                            } else {
                                "the order taught for audio is repair (declick, declip) → filter/EQ (high-, \
                                 low-, band-pass, notch) → broadband noise reduction → normalisation last"
                            },
                            "see docs/enhance.md"
                        ));
                        continue;
                    }
                }
                highest = Some(p);
            }
        }
        out
    }
}

/// A problem with a recipe, where it is.
fn problem(origin: &str, n: &Node, message: impl std::fmt::Display) -> String {
    format!("{origin}:{}:{}: {message}", n.line, n.col)
}

/// Read and check a recipe file.
pub fn load(path: &Path) -> anyhow::Result<Recipe> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| error::input(format!("cannot read the recipe {}: {e}", path.display())))?;
    parse(&text, &path.display().to_string())
}

/// Check a recipe's text; every problem is reported at once, each with its line and column
/// (exit 2).
pub fn parse(text: &str, origin: &str) -> anyhow::Result<Recipe> {
    let fail = |problems: Vec<String>| {
        error::input(format!(
            "the recipe has {} problem{}; nothing was done:\n  {}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n  ")
        ))
    };
    let root = match crate::job::nodes(text) {
        Ok(Some(root)) => root,
        Ok(None) => return Err(fail(vec![format!("{origin}:1:1: the recipe is empty")])),
        Err(p) => return Err(fail(vec![format!("{origin}:{}:{}: {}", p.line, p.column, p.message)])),
    };
    let mut problems = Vec::new();
    let mut title = None;
    let mut list = None;
    match &root.kind {
        Kind::Map(pairs) => {
            for (k, v) in pairs {
                match k.scalar() {
                    Some("recipe") => title = v.scalar().map(str::to_owned),
                    Some("steps") => list = Some(v),
                    Some(other) => problems.push(problem(
                        origin,
                        k,
                        format!("unknown key {other:?}; a recipe has `recipe:` (its title) and `steps:`"),
                    )),
                    None => problems.push(problem(origin, k, "keys must be text")),
                }
            }
        }
        Kind::Seq(_) => list = Some(&root),
        Kind::Scalar(_) => {
            problems.push(problem(origin, &root, "a recipe is a mapping with `steps:`, a list of steps"))
        }
    }
    let mut planned = Vec::new();
    match list.map(|l| &l.kind) {
        None if problems.is_empty() => problems.push(format!("{origin}:1:1: the recipe has no `steps:`")),
        None => {}
        Some(Kind::Seq(items)) if items.is_empty() => {
            problems.push(problem(origin, list.expect("list"), "`steps:` is empty"));
        }
        Some(Kind::Seq(items)) => {
            for item in items {
                match step_node(item, origin) {
                    Ok(p) => planned.push(p),
                    Err(mut e) => problems.append(&mut e),
                }
            }
        }
        Some(_) => {
            problems.push(problem(origin, list.expect("list"), "`steps:` must be a list (lines starting with `- `)"))
        }
    }
    if !problems.is_empty() {
        return Err(fail(problems));
    }
    Ok(Recipe { title, steps: planned, text: text.to_owned(), origin: origin.to_owned() })
}

/// One `- name` or `- name: {k: v}` entry.
fn step_node(item: &Node, origin: &str) -> Result<Planned, Vec<String>> {
    let (name_node, params) = match &item.kind {
        Kind::Scalar(_) => (item, None),
        Kind::Map(pairs) if pairs.len() == 1 => (&pairs[0].0, Some(&pairs[0].1)),
        _ => {
            return Err(vec![problem(origin, item, "a step is `- NAME` or `- NAME: {parameter: value, ...}`")]);
        }
    };
    let name = name_node.scalar().unwrap_or_default();
    let at = format!("{origin}:{}:{}", name_node.line, name_node.col);
    let Some(step) = steps::find(name) else {
        return Err(vec![problem(origin, name_node, unknown_step(name))]);
    };
    let mut problems = Vec::new();
    let mut values = Values::new();
    match params.map(|p| (p, &p.kind)) {
        None => {}
        Some((_, Kind::Scalar(s))) if s.is_empty() => {}
        Some((_, Kind::Map(pairs))) => {
            for (k, v) in pairs {
                let key = k.scalar().unwrap_or_default();
                let Some(param) = step.param(key) else {
                    problems.push(problem(
                        origin,
                        k,
                        format!("{} has no parameter {key:?}; its parameters are: {}", step.name, step.param_names()),
                    ));
                    continue;
                };
                if values.contains_key(param.name) {
                    problems.push(problem(origin, k, format!("{key} is given twice")));
                    continue;
                }
                match v.scalar().map(|s| steps::parse_value(param, s)) {
                    Some(Ok(value)) => {
                        values.insert(param.name, value);
                    }
                    Some(Err(e)) => problems.push(problem(origin, v, format!("{}: {e}", step.name))),
                    None => problems.push(problem(origin, v, format!("{}: {key} must be a single value", step.name))),
                }
            }
        }
        Some((p, _)) => problems.push(problem(
            origin,
            p,
            format!(
                "the parameters of {} must be a mapping, e.g. `{}: {{{}: …}}`",
                step.name,
                step.name,
                step.params.first().map_or("…", |p| p.name)
            ),
        )),
    }
    if problems.is_empty() {
        match steps::complete(step, values) {
            Ok(values) => {
                // A builder's own checks (black below white, method-specific parameters).
                if let Err(e) = step.build(&values, &steps::Context::default()) {
                    problems.push(problem(origin, name_node, format!("{}: {e}", step.name)));
                }
                if problems.is_empty() {
                    return Ok(Planned { step, values, at });
                }
            }
            Err(e) => problems.push(problem(origin, name_node, e)),
        }
    }
    Err(problems)
}

fn unknown_step(name: &str) -> String {
    let video: Vec<&str> = steps::STEPS.iter().filter(|s| s.medium == Medium::Video).map(|s| s.name).collect();
    let audio: Vec<&str> = steps::STEPS.iter().filter(|s| s.medium == Medium::Audio).map(|s| s.name).collect();
    format!(
        "unknown step {name:?}; the steps are, for video: {}; for audio: {} (`custody enhance --list` describes each)",
        video.join(", "),
        audio.join(", ")
    )
}

/// A recipe from `--step NAME[:k=v,...]` flags.
pub fn from_flags(flags: &[String]) -> anyhow::Result<Recipe> {
    let mut problems = Vec::new();
    let mut planned = Vec::new();
    for flag in flags {
        let at = format!("--step {flag}");
        let (name, rest) = flag.split_once(':').unwrap_or((flag.as_str(), ""));
        let Some(step) = steps::find(name.trim()) else {
            problems.push(format!("{at}: {}", unknown_step(name.trim())));
            continue;
        };
        let mut values = Values::new();
        let mut ok = true;
        for pair in rest.split(',').filter(|p| !p.trim().is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                problems.push(format!("{at}: {pair:?} is not key=value"));
                ok = false;
                continue;
            };
            let Some(param) = step.param(k.trim()) else {
                problems.push(format!(
                    "{at}: {} has no parameter {:?}; its parameters are: {}",
                    step.name,
                    k.trim(),
                    step.param_names()
                ));
                ok = false;
                continue;
            };
            match steps::parse_value(param, v) {
                Ok(value) => {
                    values.insert(param.name, value);
                }
                Err(e) => {
                    problems.push(format!("{at}: {}: {e}", step.name));
                    ok = false;
                }
            }
        }
        if !ok {
            continue;
        }
        match steps::complete(step, values) {
            Ok(values) => match step.build(&values, &steps::Context::default()) {
                Ok(_) => planned.push(Planned { step, values, at }),
                Err(e) => problems.push(format!("{at}: {}: {e}", step.name)),
            },
            Err(e) => problems.push(format!("{at}: {e}")),
        }
    }
    if !problems.is_empty() {
        return Err(error::input(format!("{}; nothing was done", problems.join("\n"))));
    }
    Ok(Recipe { title: None, steps: planned, text: flags.join("\n") + "\n", origin: "--step".to_owned() })
}
