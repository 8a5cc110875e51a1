//! One ledger event: the record of one action, and the hash that chains it to the one before.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::canonical;

/// Version of the event encoding. Bump it, and document the change in docs/ledger.md, if the
/// set of fields or their meaning ever changes.
pub const FORMAT_VERSION: u64 = 1;

/// Domain-separation prefix of event hashes, so an event hash can never equal the SHA-256 of
/// an evidence file (object digests are plain SHA-256 of the file's bytes).
pub const HASH_PREFIX: &[u8] = b"custody-ledger-event-v1\0";

/// The `prev` of the first event.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A file an event consumed or produced.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FileRef {
    /// The item's short ID, when the file is an item in custody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// The file's name within its exhibit (or the path hashed, for `hash --record`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub sha256: String,
    pub blake3: String,
    pub size: u64,
    /// Anything else the action knows about the file (media facts, source path, parent…).
    #[serde(flatten)]
    pub facts: Map<String, Value>,
}

/// The body of an event, as hashed. Field names are the JSON keys documented in docs/ledger.md.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub v: u64,
    pub seq: u64,
    pub prev: String,
    /// UTC, RFC 3339 with milliseconds.
    pub time: String,
    pub examiner: String,
    pub os_user: String,
    pub host: String,
    /// custody's version and the FFmpeg library versions.
    pub tools: BTreeMap<String, String>,
    pub action: String,
    pub case: Option<String>,
    /// The agency's item number of the exhibit the event concerns.
    pub exhibit: Option<String>,
    pub inputs: Vec<FileRef>,
    pub outputs: Vec<FileRef>,
    /// Every parameter needed to redo the action.
    pub params: Map<String, Value>,
    pub note: Option<String>,
}

impl Event {
    /// The canonical bytes of this event: the only input to its hash.
    pub fn encode(&self) -> Result<String, canonical::CanonicalError> {
        let value = serde_json::to_value(self).expect("events always serialize");
        canonical::encode(&value)
    }
}

/// The hash of an event, given its canonical body: SHA-256 over the prefix and the body.
pub fn event_hash(body: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(HASH_PREFIX);
    ctx.update(body.as_bytes());
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in ctx.finish().as_ref() {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fixtures/ledger/kat-v1.jsonl was made by fixtures/ledger/make_kat.py with Python's
    /// standard library, independently of this encoder. Each stored event must re-encode to
    /// exactly the same bytes and hash to exactly the same value.
    #[test]
    fn known_answer_vectors() {
        let kat = include_str!("../../fixtures/ledger/kat-v1.jsonl");
        let mut prev = GENESIS_PREV.to_owned();
        let mut count = 0;
        for line in kat.lines() {
            let body =
                line.strip_prefix("{\"event\":").and_then(|r| r.rsplit_once(",\"hash\":\"")).expect("kat line shape");
            let (body, hash) = (body.0, body.1.trim_end_matches("\"}"));
            let event: Event = serde_json::from_str(body).expect("kat event parses");
            assert_eq!(event.encode().unwrap(), body, "re-encoding event {}", event.seq);
            assert_eq!(event_hash(body), hash, "hash of event {}", event.seq);
            assert_eq!(event.prev, prev);
            prev = hash.to_owned();
            count += 1;
        }
        assert_eq!(count, 3);
    }
}
