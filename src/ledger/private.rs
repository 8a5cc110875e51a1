//! Withheld members: the parts of an event a public release leaves out (host names, OS
//! accounts, paths), and the salted commitments that keep the event's hash computable without
//! them.
//!
//! Security-relevant. An event of format 2 lists its private members (`private.members`, JSON
//! pointers) and a random salt (`private.salt`). It is hashed over its *committed form*: the
//! stored body without `private`, each listed member's value replaced by
//! `{"withheld_sha256": SHA-256("custody-withheld-v1" 0x00 salt 0x00 pointer 0x00 canonical value)}`.
//! The agency's ledger keeps every value in the clear; a release carries the committed form,
//! which hashes to the same chain hash, and which cannot say more or less than what was
//! committed when the event was recorded. The salt (never released) keeps short values such as
//! a user name from being guessed back from their digest. See docs/ledger.md.

use std::collections::HashSet;

use ring::rand::SecureRandom as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::canonical;
use super::event::Event;

/// Domain-separation prefix of a withheld member's commitment.
pub const COMMITMENT_PREFIX: &[u8] = b"custody-withheld-v1\0";

/// The one key of the object that stands for a withheld member in a committed form.
pub const WITHHELD: &str = "withheld_sha256";

/// How a withheld member reads in a report or a CASE/UCO graph.
pub const SHOWN: &str = "(withheld)";

/// Members holding paths on the agency's machines (or its ledger's address and login),
/// withheld whatever their value.
const PATH_KEYS: [&str; 7] = ["ledger", "objects", "paths", "source_path", "store", "stored", "target"];

/// The `private` member of a format-2 event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Private {
    /// JSON pointers (RFC 6901) of the withheld members, in ascending byte order.
    pub members: Vec<String>,
    /// 32 lowercase hex digits (16 random bytes), shared by the event's commitments.
    pub salt: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrivateError {
    #[error("it withholds members but is of format {0}; only format 2 events do")]
    Version(u64),
    #[error("its `private` member is not {{\"members\": [...], \"salt\": \"...\"}}")]
    Shape,
    #[error("its salt is not 32 lowercase hex digits")]
    Salt,
    #[error("its withheld member {0:?} {1}")]
    Pointer(String, &'static str),
    #[error("it holds a \"withheld_sha256\" object of its own, which a release could not tell from a withheld member")]
    Reserved,
    #[error(transparent)]
    Canonical(#[from] canonical::CanonicalError),
}

/// The members of `event` that a public release withholds: its host and OS user; its examiner
/// when that is the OS user (no `--examiner` was given); and every path on the agency's
/// machines in its parameters and file facts (`paths`, `source_path`, `store`, a symlink's
/// `target`, and any string that is an absolute path).
pub fn members(event: &Event) -> Vec<String> {
    let mut out = vec!["/host".to_owned(), "/os_user".to_owned()];
    if event.db_user.is_some() {
        out.push("/db_user".to_owned());
    }
    if event.examiner == event.os_user {
        out.push("/examiner".to_owned());
    }
    walk_map(&event.params, "/params", &mut out);
    for (list, files) in [("inputs", &event.inputs), ("outputs", &event.outputs)] {
        for (i, f) in files.iter().enumerate() {
            let at = format!("/{list}/{i}");
            if f.name.as_deref().is_some_and(is_absolute_path) {
                out.push(format!("{at}/name"));
            }
            walk_map(&f.facts, &at, &mut out);
        }
    }
    out.sort();
    out
}

fn walk_map(map: &Map<String, Value>, at: &str, out: &mut Vec<String>) {
    for (key, value) in map {
        let pointer = format!("{at}/{}", escape(key));
        if PATH_KEYS.contains(&key.as_str()) && !value.is_null() {
            out.push(pointer);
        } else {
            walk(value, pointer, out);
        }
    }
}

fn walk(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::String(s) if is_absolute_path(s) => out.push(at),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, format!("{at}/{i}"), out);
            }
        }
        Value::Object(map) => walk_map(map, &at, out),
        _ => {}
    }
}

/// A path on some machine: `/…`, `~/…`, `\\server\…` or `C:\…` / `C:/…`.
fn is_absolute_path(s: &str) -> bool {
    let b = s.as_bytes();
    s.starts_with('/')
        || s.starts_with("~/")
        || s.starts_with("\\\\")
        || (b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b[2] == b'\\' || b[2] == b'/'))
}

/// RFC 6901 escaping of one reference token.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// A fresh salt: 16 bytes from the operating system's random source, as hex.
pub fn new_salt() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| crate::error::environment("the operating system's random source failed; nothing was recorded"))?;
    Ok(hex::encode(bytes))
}

/// The commitment to one withheld member's value.
pub fn commitment(salt: &str, pointer: &str, value: &Value) -> Result<String, PrivateError> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(COMMITMENT_PREFIX);
    ctx.update(salt.as_bytes());
    ctx.update(b"\0");
    ctx.update(pointer.as_bytes());
    ctx.update(b"\0");
    ctx.update(canonical::encode(value)?.as_bytes());
    Ok(hex::encode(ctx.finish()))
}

/// The committed form of an event body (as a JSON value): the form its hash is computed over.
/// A body without `private` (every format-1 event, and a committed form itself) is its own
/// committed form.
pub fn committed(mut event: Value) -> Result<Value, PrivateError> {
    let Some(private) = event.as_object_mut().and_then(|o| o.remove("private")) else {
        return Ok(event);
    };
    let private: Private = serde_json::from_value(private).map_err(|_| PrivateError::Shape)?;
    let version = event.get("v").and_then(Value::as_u64).unwrap_or(0);
    if version < 2 {
        return Err(PrivateError::Version(version));
    }
    if private.salt.len() != 32 || !private.salt.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(PrivateError::Salt);
    }
    if holds_withheld(&event) {
        return Err(PrivateError::Reserved);
    }
    check_pointers(&private.members)?;
    for pointer in &private.members {
        let slot = event
            .pointer_mut(pointer)
            .ok_or_else(|| PrivateError::Pointer(pointer.clone(), "does not name a member of the event"))?;
        let digest = commitment(&private.salt, pointer, slot)?;
        *slot = json!({ WITHHELD: digest });
    }
    Ok(event)
}

/// Pointers must be ascending (so each is listed once), none inside another, and none may
/// name what the chain or the evidence rests on (sequence, links, time, action, file digests).
fn check_pointers(members: &[String]) -> Result<(), PrivateError> {
    let bad = |p: &String, why| Err(PrivateError::Pointer(p.clone(), why));
    let listed: HashSet<&str> = members.iter().map(String::as_str).collect();
    for (i, p) in members.iter().enumerate() {
        if i > 0 && members[i - 1] >= *p {
            return bad(p, "is listed out of order or twice");
        }
        if !may_be_withheld(p) {
            return bad(
                p,
                "may not be withheld (only host, os_user, db_user, examiner, note, parameters and file facts may)",
            );
        }
        let mut end = p.len();
        while let Some(cut) = p[..end].rfind('/').filter(|&c| c > 0) {
            if listed.contains(&p[..cut]) {
                return bad(p, "lies inside another withheld member");
            }
            end = cut;
        }
    }
    Ok(())
}

fn may_be_withheld(pointer: &str) -> bool {
    let parts: Vec<&str> = pointer.split('/').collect();
    match parts.as_slice() {
        ["", "host" | "os_user" | "db_user" | "examiner" | "note"] => true,
        ["", "params", _, ..] => true,
        ["", "inputs" | "outputs", index, key, ..] => {
            index.parse::<usize>().is_ok() && !matches!(*key, "item" | "sha256" | "blake3" | "size")
        }
        _ => false,
    }
}

fn holds_withheld(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().any(holds_withheld),
        Value::Object(map) => map.contains_key(WITHHELD) || map.values().any(holds_withheld),
        _ => false,
    }
}

/// A committed form as people read it: each withheld member's commitment replaced by
/// [`SHOWN`], so it parses as an [`Event`] for the report and the CASE/UCO graph.
pub fn shown(committed: &Value) -> Value {
    match committed {
        Value::Object(map) if map.len() == 1 && map.contains_key(WITHHELD) => Value::String(SHOWN.to_owned()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), shown(v))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(shown).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_inside_others_out_of_order_or_on_the_chain_are_refused() {
        let ok = |m: &[&str]| check_pointers(&m.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(ok(&["/host", "/os_user", "/outputs/0/source_path", "/params/paths"]), Ok(()));
        assert!(ok(&["/os_user", "/host"]).is_err());
        assert!(ok(&["/host", "/host"]).is_err());
        assert!(ok(&["/params/a", "/params/a-b", "/params/a/c"]).is_err(), "nested, not adjacent");
        for bad in ["/seq", "/prev", "/time", "/action", "/v", "/outputs/0/sha256", "/outputs/x/name", "/params"] {
            assert!(ok(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn absolute_paths_are_recognised() {
        for p in ["/tmp/x", "~/evidence", "\\\\server\\share", "C:\\DVR", "d:/x"] {
            assert!(is_absolute_path(p), "{p}");
        }
        for p in ["00:00:01.000", "25/1", "1/12800", "CH03/a.avi", "sha256:ab", ""] {
            assert!(!is_absolute_path(p), "{p}");
        }
    }
}
