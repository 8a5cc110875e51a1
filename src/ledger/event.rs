//! One ledger event: the record of one action, and the hash that chains it to the one before.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::canonical;
use super::private::{self, Private, PrivateError};

/// Version of the event encoding. Bump it, and document the change in docs/ledger.md, if the
/// set of fields or their meaning ever changes. Format 1 events carry no `private` member and
/// are hashed over their body as stored; format 2 adds `private` (see [`super::private`]).
/// custody reads and verifies both, and records format 2.
pub const FORMAT_VERSION: u64 = 2;

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
    /// The role the database authenticated for the workstation that appended the event (an
    /// agency ledger in PostgreSQL: `session_user`), beside the examiner it declared. Absent
    /// from events of a SQLite ledger, which has no logins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_user: Option<String>,
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
    /// Which members a public release withholds, and the salt of their commitments (format 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<Private>,
}

impl Event {
    /// The canonical bytes of this event: the only input to its hash.
    /// Written field by field: the same bytes as `canonical::encode(&serde_json::to_value(self))`
    /// (a test holds the two together), without a second copy of the event in memory.
    pub fn encode(&self) -> Result<String, canonical::CanonicalError> {
        use canonical::Field;
        let mut out = String::with_capacity(512 + 512 * (self.inputs.len() + self.outputs.len()));
        let files = |refs: &[FileRef], out: &mut String| -> Result<(), canonical::CanonicalError> {
            out.push('[');
            for (i, file) in refs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                file.write(out)?;
            }
            out.push(']');
            Ok(())
        };
        // The members in key order, the arrays and maps spliced in as they come.
        let head = |out: &mut String, key: &str| {
            out.push(if out.is_empty() { '{' } else { ',' });
            out.push('"');
            out.push_str(key);
            out.push_str("\":");
        };
        let text = |out: &mut String, key: &str, value: Option<&str>| {
            head(out, key);
            match value {
                Some(v) => canonical::write_string(v, out),
                None => out.push_str("null"),
            }
        };
        text(&mut out, "action", Some(&self.action));
        text(&mut out, "case", self.case.as_deref());
        if let Some(user) = &self.db_user {
            text(&mut out, "db_user", Some(user));
        }
        text(&mut out, "examiner", Some(&self.examiner));
        text(&mut out, "exhibit", self.exhibit.as_deref());
        text(&mut out, "host", Some(&self.host));
        head(&mut out, "inputs");
        files(&self.inputs, &mut out)?;
        text(&mut out, "note", self.note.as_deref());
        text(&mut out, "os_user", Some(&self.os_user));
        head(&mut out, "outputs");
        files(&self.outputs, &mut out)?;
        head(&mut out, "params");
        let mut params: Vec<(&str, Field<'_>)> =
            self.params.iter().map(|(k, v)| (k.as_str(), Field::Value(v))).collect();
        canonical::write_object(&mut params, &mut out)?;
        text(&mut out, "prev", Some(&self.prev));
        if let Some(private) = &self.private {
            head(&mut out, "private");
            let members = Value::from(private.members.clone());
            let mut fields = [("members", Field::Value(&members)), ("salt", Field::Str(&private.salt))];
            canonical::write_object(&mut fields, &mut out)?;
        }
        head(&mut out, "seq");
        canonical::write_value(&Value::from(self.seq), &mut out)?;
        text(&mut out, "time", Some(&self.time));
        head(&mut out, "tools");
        let mut tools: Vec<(&str, Field<'_>)> = self.tools.iter().map(|(k, v)| (k.as_str(), Field::Str(v))).collect();
        canonical::write_object(&mut tools, &mut out)?;
        head(&mut out, "v");
        canonical::write_value(&Value::from(self.v), &mut out)?;
        out.push('}');
        Ok(out)
    }
}

impl FileRef {
    /// Append this file's canonical encoding: its fixed members and its facts, in key order.
    fn write(&self, out: &mut String) -> Result<(), canonical::CanonicalError> {
        use canonical::Field;
        let mut fields: Vec<(&str, Field<'_>)> = Vec::with_capacity(5 + self.facts.len());
        if let Some(item) = &self.item {
            fields.push(("item", Field::Str(item)));
        }
        if let Some(name) = &self.name {
            fields.push(("name", Field::Str(name)));
        }
        fields.push(("sha256", Field::Str(&self.sha256)));
        fields.push(("blake3", Field::Str(&self.blake3)));
        fields.push(("size", Field::U64(self.size)));
        fields.extend(self.facts.iter().map(|(k, v)| (k.as_str(), Field::Value(v))));
        canonical::write_object(&mut fields, out)
    }
}

/// The hash of a stored event: over its body as stored (format 1, or nothing withheld), or over
/// its committed form (its private members replaced by their commitments). `body` is the
/// canonical encoding of `event`.
pub fn stored_hash(body: &str, event: &Event) -> Result<String, PrivateError> {
    if event.private.is_none() {
        return Ok(event_hash(body));
    }
    let value: Value = serde_json::from_str(body).map_err(|_| PrivateError::Shape)?;
    Ok(event_hash(&canonical::encode(&private::committed(value)?)?))
}

/// The hash of an event, given the canonical bytes it is hashed over (the body of a format-1
/// event, the committed form of a format-2 one): SHA-256 over the prefix and those bytes.
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
            let (body, hash) = kat_line(line);
            let event: Event = serde_json::from_str(body).expect("kat event parses");
            assert_eq!(event.encode().unwrap(), body, "re-encoding event {}", event.seq);
            assert_eq!(event_hash(body), hash, "hash of event {}", event.seq);
            assert_eq!(stored_hash(body, &event).unwrap(), hash, "a format-1 event is hashed as stored");
            assert_eq!(event.prev, prev);
            prev = hash.to_owned();
            count += 1;
        }
        assert_eq!(count, 3);
    }

    /// `{"event":BODY,"hash":"HASH"}` → (BODY, HASH), byte for byte.
    fn kat_line(line: &str) -> (&str, &str) {
        let (body, hash) =
            line.strip_prefix("{\"event\":").and_then(|r| r.rsplit_once(",\"hash\":\"")).expect("kat line shape");
        (body, hash.trim_end_matches("\"}"))
    }

    /// fixtures/ledger/kat-v2.jsonl (format 2, members withheld) and kat-v2-release.jsonl (the
    /// same events in their committed form) were made by make_kat.py, independently of this
    /// code. Each event must re-encode to the same bytes, its committed form must be the
    /// released bytes, both must give the same hash, and custody must choose the same members
    /// to withhold.
    #[test]
    fn known_answer_vectors_of_format_2() {
        let kat = include_str!("../../fixtures/ledger/kat-v2.jsonl");
        let release = include_str!("../../fixtures/ledger/kat-v2-release.jsonl");
        let mut prev = GENESIS_PREV.to_owned();
        let mut count = 0;
        for (line, released) in kat.lines().zip(release.lines()) {
            let (body, hash) = kat_line(line);
            let (committed, released_hash) = kat_line(released);
            let event: Event = serde_json::from_str(body).expect("kat event parses");
            assert_eq!(event.encode().unwrap(), body, "re-encoding event {}", event.seq);
            let value: Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                canonical::encode(&private::committed(value).unwrap()).unwrap(),
                committed,
                "event {}",
                event.seq
            );
            assert_eq!(stored_hash(body, &event).unwrap(), hash, "hash of event {}", event.seq);
            assert_eq!(event_hash(committed), hash, "hash of the released event {}", event.seq);
            assert_eq!(released_hash, hash);
            let listed = &event.private.as_ref().expect("format 2 lists its private members").members;
            assert_eq!(
                &private::members(&event),
                listed,
                "custody withholds what the format says, event {}",
                event.seq
            );
            assert_eq!(event.prev, prev);
            prev = hash.to_owned();
            count += 1;
        }
        assert_eq!(count, 3);
    }

    /// The field-by-field encoder writes exactly what encoding the serde value of the event
    /// writes, facts, inputs, nested parameters and escapes included.
    #[test]
    fn direct_encoding_matches_value_encoding() {
        let file = |item: Option<&str>, name: Option<&str>, facts: Value| FileRef {
            item: item.map(str::to_owned),
            name: name.map(str::to_owned),
            sha256: "ab".repeat(32),
            blake3: "cd".repeat(32),
            size: 9_007_199_254_740_991,
            facts: facts.as_object().unwrap().clone(),
        };
        let event = Event {
            v: FORMAT_VERSION,
            seq: 42,
            prev: GENESIS_PREV.into(),
            time: "2026-11-22T10:00:00.000Z".into(),
            examiner: "Det. \"Q\" O'Neil\n".into(),
            os_user: "é".into(),
            host: "h".into(),
            db_user: None,
            tools: [("custody".to_owned(), "1".to_owned()), ("avcodec".to_owned(), "59.37.100".to_owned())].into(),
            action: "clip".into(),
            case: None,
            exhibit: Some("3".into()),
            inputs: vec![file(Some("i1"), None, serde_json::json!({"parent": "i0", "zz": [1, {"b": null, "a": -3}]}))],
            outputs: vec![
                file(
                    None,
                    Some("a/b\u{1}.mp4"),
                    serde_json::json!({"acquisition": "new", "media": {"decodable": true}}),
                ),
                file(Some("i7"), Some("x"), serde_json::json!({})),
            ],
            params: serde_json::json!({"to": "frame:9", "from": {"s": "1.5"}, "list": []}).as_object().unwrap().clone(),
            note: None,
            private: None,
        };
        let via_value = canonical::encode(&serde_json::to_value(&event).unwrap()).unwrap();
        assert_eq!(event.encode().unwrap(), via_value);
        let mut withheld = event.clone();
        withheld.private = Some(Private { members: private::members(&event), salt: "0a".repeat(16) });
        let via_value = canonical::encode(&serde_json::to_value(&withheld).unwrap()).unwrap();
        assert_eq!(withheld.encode().unwrap(), via_value);
        let mut logged_in = withheld.clone();
        logged_in.db_user = Some("tech_ortiz".into());
        let via_value = canonical::encode(&serde_json::to_value(&logged_in).unwrap()).unwrap();
        assert_eq!(logged_in.encode().unwrap(), via_value);
        let mut clash = event.clone();
        clash.outputs[1].facts.insert("size".into(), 1.into());
        assert_eq!(clash.encode(), Err(canonical::CanonicalError::Duplicate("size".into())));
    }
}
