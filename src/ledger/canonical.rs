//! The one encoding whose bytes are hashed: RFC 8785 (JSON Canonicalization Scheme) over the
//! subset of JSON the ledger uses.
//!
//! Security-relevant: every event hash is computed over bytes produced here and nowhere else.
//! The subset is chosen so that a reader with only a standard library reproduces the bytes:
//! no floating-point numbers (integers within ±2^53 only), and object keys in ASCII (so that
//! JCS's UTF-16 key order is plain byte order). Values that break these rules are refused at
//! encoding time rather than hashed ambiguously.

use std::fmt::Write as _;

use serde_json::Value;

/// Largest integer JCS (ECMAScript numbers) represents exactly.
const MAX_SAFE: u64 = (1 << 53) - 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CanonicalError {
    #[error("floating-point number {0} cannot be encoded in the ledger (use an integer or a string)")]
    Float(String),
    #[error("integer {0} is outside ±2^53 and cannot be encoded exactly")]
    Range(String),
    #[error("object key {0:?} is not ASCII")]
    Key(String),
    #[error("object key {0:?} appears twice")]
    Duplicate(String),
}

/// Encode `value` canonically.
pub fn encode(value: &Value) -> Result<String, CanonicalError> {
    let mut out = String::new();
    write_value(value, &mut out)?;
    Ok(out)
}

/// One member of an object being written by [`write_object`].
pub enum Field<'a> {
    Str(&'a str),
    U64(u64),
    Value(&'a Value),
}

/// Append the canonical encoding of the object with these members to `out`, without building
/// a [`Value`] for it first (an event with thousands of outputs would otherwise exist twice).
/// Keys must be ASCII and distinct; they are sorted here.
pub fn write_object(fields: &mut [(&str, Field<'_>)], out: &mut String) -> Result<(), CanonicalError> {
    if let Some((bad, _)) = fields.iter().find(|(k, _)| !k.is_ascii()) {
        return Err(CanonicalError::Key((*bad).to_owned()));
    }
    fields.sort_by(|a, b| a.0.cmp(b.0));
    if let Some(w) = fields.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(CanonicalError::Duplicate(w[0].0.to_owned()));
    }
    out.push('{');
    for (i, (key, field)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(key, out);
        out.push(':');
        match field {
            Field::Str(s) => write_string(s, out),
            Field::U64(n) => write_value(&Value::from(*n), out)?,
            Field::Value(v) => write_value(v, out)?,
        }
    }
    out.push('}');
    Ok(())
}

/// Append the canonical encoding of `value` to `out`.
pub fn write_value(value: &Value, out: &mut String) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                if u > MAX_SAFE {
                    return Err(CanonicalError::Range(n.to_string()));
                }
                let _ = write!(out, "{u}");
            } else if let Some(i) = n.as_i64() {
                if i.unsigned_abs() > MAX_SAFE {
                    return Err(CanonicalError::Range(n.to_string()));
                }
                let _ = write!(out, "{i}");
            } else {
                return Err(CanonicalError::Float(n.to_string()));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            if let Some(bad) = map.keys().find(|k| !k.is_ascii()) {
                return Err(CanonicalError::Key(bad.clone()));
            }
            // ASCII keys: UTF-16 code-unit order (RFC 8785 §3.2.3) is byte order, the order
            // serde_json's map already keeps (a BTreeMap), unless some crate turned on its
            // `preserve_order` feature: then sort.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(value, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// String escaping as ECMAScript's JSON.stringify does it (RFC 8785 §3.2.2.2).
pub fn write_string(s: &str, out: &mut String) {
    out.push('"');
    // Every character that is escaped is ASCII: copy the runs between them as they are.
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            b if b < 0x20 => "",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// True when `body` is certainly the canonical encoding of the JSON it holds: exactly the
/// bytes [`encode`] writes for it (no whitespace, keys ASCII and strictly increasing, strings
/// escaped as JSON.stringify escapes them, integers within ±2^53 written plainly). Checked in
/// one pass over the bytes, without building the value: the fast path of `custody verify`.
/// False means "not shown canonical here" (a key with an escape, a nesting deeper than 128):
/// the caller then decides the slow way, parsing and re-encoding.
pub fn is_canonical(body: &str) -> bool {
    let mut v = Validator { b: body.as_bytes(), i: 0, depth: 0 };
    v.value() && v.i == v.b.len()
}

struct Validator<'a> {
    b: &'a [u8],
    i: usize,
    depth: u32,
}

impl<'a> Validator<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn value(&mut self) -> bool {
        match self.peek() {
            Some(b'{') => self.nested(Self::object),
            Some(b'[') => self.nested(Self::array),
            Some(b'"') => self.string().is_some(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            _ => false,
        }
    }

    fn nested(&mut self, f: fn(&mut Self) -> bool) -> bool {
        self.depth += 1;
        let ok = self.depth <= 128 && f(self);
        self.depth -= 1;
        ok
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        let ok = self.b[self.i..].starts_with(word);
        self.i += word.len();
        ok
    }

    /// `-?(0|[1-9][0-9]*)` within ±2^53 − 1; no fraction, no exponent, no `-0`.
    fn integer(&mut self) -> bool {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        let digits = &self.b[start..self.i];
        if digits.is_empty() || digits.len() > 16 || (digits[0] == b'0' && (digits.len() > 1 || negative)) {
            return false;
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return false;
        }
        let n = digits.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        n <= MAX_SAFE
    }

    /// A string as [`write_string`] writes it; returns its raw content when it holds no escape.
    fn string(&mut self) -> Option<Option<&'a [u8]>> {
        let b = self.b;
        self.i += 1;
        let start = self.i;
        let mut plain = true;
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return Some(plain.then(|| &b[start..self.i - 1])),
                b'\\' => {
                    plain = false;
                    match self.peek()? {
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            // Only the control characters without a short escape, lowercase.
                            let hex = self.b.get(self.i + 1..self.i + 5)?;
                            let ok = hex[0] == b'0'
                                && hex[1] == b'0'
                                && matches!(hex[2], b'0' | b'1')
                                && matches!(hex[3], b'0'..=b'9' | b'a'..=b'f');
                            let code = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                            if !ok || matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                                return None;
                            }
                            self.i += 5;
                        }
                        _ => return None,
                    }
                }
                c if c < 0x20 => return None,
                _ => {}
            }
        }
    }

    fn object(&mut self) -> bool {
        self.i += 1;
        if self.peek() == Some(b'}') {
            self.i += 1;
            return true;
        }
        let mut previous: Option<&'a [u8]> = None;
        loop {
            if self.peek() != Some(b'"') {
                return false;
            }
            // Keys: ASCII without escapes (anything else goes the slow way), strictly increasing.
            let Some(Some(key)) = self.string() else { return false };
            if !key.is_ascii() || previous.is_some_and(|p| p >= key) {
                return false;
            }
            previous = Some(key);
            if self.peek() != Some(b':') {
                return false;
            }
            self.i += 1;
            if !self.value() {
                return false;
            }
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return true;
                }
                _ => return false,
            }
        }
    }

    fn array(&mut self) -> bool {
        self.i += 1;
        if self.peek() == Some(b']') {
            self.i += 1;
            return true;
        }
        loop {
            if !self.value() {
                return false;
            }
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return true;
                }
                _ => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The fast check never calls a body canonical that re-encoding would not reproduce, and
    /// it does call every real event body canonical (so verify takes the fast path).
    #[test]
    fn is_canonical_agrees_with_encode() {
        let kat = include_str!("../../fixtures/ledger/kat-v1.jsonl");
        let mut bodies: Vec<String> =
            kat.lines().map(|l| encode(&serde_json::from_str::<Value>(l).unwrap()["event"]).unwrap()).collect();
        bodies.push(
            encode(&json!({"a": "q\"b\\\n\u{1}\u{1f}é\u{7f}", "b": [-9007199254740991i64, 0, 9007199254740991u64]}))
                .unwrap(),
        );
        for b in &bodies {
            assert!(is_canonical(b), "a canonical body was not recognised: {b}");
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n.max(1) as u64) as usize
        };
        let pieces = [
            " ",
            "\\u0041",
            "\\/",
            "-0",
            "1.0",
            "1e3",
            "9007199254740992",
            "\"a\":1,",
            "\\u001F",
            "\\u0008",
            "01",
            "\u{1}",
            "]",
            "}",
        ];
        for n in 0..20_000 {
            let mut m = bodies[rand(bodies.len())].clone().into_bytes();
            match rand(4) {
                0 => {
                    let i = rand(m.len());
                    m[i] ^= 1 << rand(7);
                }
                1 => {
                    let i = rand(m.len());
                    m.splice(i..i, pieces[rand(pieces.len())].bytes());
                }
                2 => {
                    let (a, b) = (rand(m.len()), rand(m.len()));
                    m.drain(a.min(b)..a.max(b));
                }
                _ => {
                    let (a, b) = (rand(m.len()), rand(m.len()));
                    m.swap(a, b);
                }
            }
            let Ok(text) = String::from_utf8(m) else { continue };
            if is_canonical(&text) {
                let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("mutation {n}: {text}: {e}"));
                assert_eq!(encode(&v).as_deref(), Ok(text.as_str()), "mutation {n} was called canonical");
            }
        }
    }

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v = json!({"b": [1, true, null], "a": {"z": "x", "y": -5}});
        assert_eq!(encode(&v).unwrap(), r#"{"a":{"y":-5,"z":"x"},"b":[1,true,null]}"#);
    }

    #[test]
    fn escapes_like_json_stringify() {
        let v = json!("q\"b\\n\n\u{1}\u{1f}é€😀\u{7f}");
        assert_eq!(encode(&v).unwrap(), "\"q\\\"b\\\\n\\n\\u0001\\u001fé€😀\u{7f}\"");
    }

    #[test]
    fn refuses_floats_large_integers_and_non_ascii_keys() {
        assert!(matches!(encode(&json!(1.5)), Err(CanonicalError::Float(_))));
        assert!(matches!(encode(&json!(1u64 << 53)), Err(CanonicalError::Range(_))));
        assert!(matches!(encode(&json!({"é": 1})), Err(CanonicalError::Key(_))));
        assert_eq!(encode(&json!((1u64 << 53) - 1)).unwrap(), "9007199254740991");
    }
}
