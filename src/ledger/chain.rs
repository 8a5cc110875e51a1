//! Chain verification: recompute every event hash from the stored bytes, never trusting the
//! stored hash column, and check each event links to the one before.
//!
//! Security-relevant: this is what makes the ledger tamper-evident.

use super::event::{self, Event, GENESIS_PREV};
use super::{Head, Row, canonical};

/// One way the chain is broken. Each names the event it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error(
        "event {seq}: its content does not match its hash (stored {stored}, recomputed {computed}): the event was edited"
    )]
    HashMismatch { seq: i64, stored: String, computed: String },
    #[error(
        "event {seq}: it does not link to event {prev_seq} (prev {found}, expected {expected}): events were removed, inserted or reordered"
    )]
    BrokenLink { seq: i64, prev_seq: i64, found: String, expected: String },
    #[error(
        "event {seq}: the first event must link to the genesis value, not {found}: the start of the ledger was removed or replaced"
    )]
    BadGenesis { seq: i64, found: String },
    #[error("event {expected} is missing (the next stored event is {found}): events were deleted or inserted")]
    Gap { expected: i64, found: i64 },
    #[error("event {seq}: its body says it is event {body_seq}: rows were renumbered")]
    SeqMismatch { seq: i64, body_seq: u64 },
    #[error("event {seq}: its body is not in canonical form: it was rewritten outside custody")]
    NotCanonical { seq: i64 },
    #[error("event {seq}: {reason}")]
    Private { seq: i64, reason: String },
    #[error("event {seq}: its body cannot be read as an event ({reason})")]
    Unreadable { seq: i64, reason: String },
    #[error("the ledger ends at event {last}, but event {seq} was written down as a head: the ledger was truncated")]
    Truncated { seq: u64, last: i64 },
    #[error("event {seq} has hash {found}, but {expected} was written down for it: the ledger was rewritten")]
    Rewritten { seq: u64, found: String, expected: String },
}

/// Verifies rows one at a time, in sequence order.
pub struct ChainVerifier {
    last: Option<(i64, String)>,
    pub count: u64,
    pub problems: Vec<ChainError>,
    against: Option<Head>,
    against_seen: bool,
}

impl ChainVerifier {
    pub fn new(against: Option<Head>) -> ChainVerifier {
        ChainVerifier { last: None, count: 0, problems: Vec::new(), against, against_seen: false }
    }

    /// Check one row; returns the parsed event when its body is readable.
    pub fn check(&mut self, row: &Row) -> Option<Event> {
        self.count += 1;
        let expected_seq = self.last.as_ref().map_or(1, |(s, _)| s + 1);
        if row.seq != expected_seq {
            self.problems.push(ChainError::Gap { expected: expected_seq, found: row.seq });
        }
        // The fast path: a body shown canonical byte by byte is parsed straight into an event.
        let parsed = if canonical::is_canonical(&row.body) {
            match serde_json::from_str::<Event>(&row.body) {
                Ok(ev) => Some(ev),
                Err(e) => {
                    self.problems.push(ChainError::Unreadable { seq: row.seq, reason: e.to_string() });
                    None
                }
            }
        } else {
            self.slow_parse(row)
        };
        // Over the stored bytes, or over the committed form when members are withheld (an
        // unreadable body is hashed as stored: it cannot match a committed form's hash).
        let computed = match parsed.as_ref().map(|ev| event::stored_hash(&row.body, ev)) {
            None => event::event_hash(&row.body),
            Some(Ok(hash)) => hash,
            Some(Err(e)) => {
                self.problems.push(ChainError::Private { seq: row.seq, reason: e.to_string() });
                event::event_hash(&row.body)
            }
        };
        if computed != row.hash {
            self.problems.push(ChainError::HashMismatch {
                seq: row.seq,
                stored: row.hash.clone(),
                computed: computed.clone(),
            });
        }
        self.link(row, parsed.as_ref(), &computed);
        self.last = Some((row.seq, computed));
        parsed
    }

    /// Parse, re-encode and compare: decides whether the body is canonical (and readable).
    fn slow_parse(&mut self, row: &Row) -> Option<Event> {
        match serde_json::from_str::<serde_json::Value>(&row.body) {
            Ok(value) => {
                if canonical::encode(&value).as_deref() != Ok(row.body.as_str()) {
                    self.problems.push(ChainError::NotCanonical { seq: row.seq });
                }
                match serde_json::from_value::<Event>(value) {
                    Ok(ev) => Some(ev),
                    Err(e) => {
                        self.problems.push(ChainError::Unreadable { seq: row.seq, reason: e.to_string() });
                        None
                    }
                }
            }
            Err(e) => {
                self.problems.push(ChainError::Unreadable { seq: row.seq, reason: e.to_string() });
                None
            }
        }
    }

    /// The event's number, its link to the one before, and the written-down head.
    fn link(&mut self, row: &Row, parsed: Option<&Event>, computed: &str) {
        if let Some(ev) = parsed {
            if ev.seq as i64 != row.seq {
                self.problems.push(ChainError::SeqMismatch { seq: row.seq, body_seq: ev.seq });
            }
            match &self.last {
                None if ev.prev != GENESIS_PREV => {
                    self.problems.push(ChainError::BadGenesis { seq: row.seq, found: ev.prev.clone() })
                }
                Some((prev_seq, prev_hash)) if &ev.prev != prev_hash => self.problems.push(ChainError::BrokenLink {
                    seq: row.seq,
                    prev_seq: *prev_seq,
                    found: ev.prev.clone(),
                    expected: prev_hash.clone(),
                }),
                _ => {}
            }
        }
        if let Some(head) = &self.against
            && head.seq as i64 == row.seq
        {
            self.against_seen = true;
            if computed != head.hash {
                self.problems.push(ChainError::Rewritten {
                    seq: head.seq,
                    found: computed.to_owned(),
                    expected: head.hash.clone(),
                });
            }
        }
    }

    /// Finish: the recomputed head, and the truncation check against a written-down head.
    pub fn finish(&mut self) -> Option<Head> {
        if let Some(head) = &self.against
            && !self.against_seen
        {
            let last = self.last.as_ref().map_or(0, |(s, _)| *s);
            self.problems.push(ChainError::Truncated { seq: head.seq, last });
        }
        self.last.as_ref().map(|(seq, hash)| Head { seq: *seq as u64, hash: hash.clone() })
    }
}
