//! The one encoding whose bytes are hashed: RFC 8785 (JSON Canonicalization Scheme) over the
//! subset of JSON the ledger uses.
//!
//! Security-relevant: every event hash is computed over bytes produced here and nowhere else.
//! The subset is chosen so that a reader with only a standard library reproduces the bytes:
//! no floating-point numbers (integers within ±2^53 only), and object keys in ASCII (so that
//! JCS's UTF-16 key order is plain byte order). Values that break these rules are refused at
//! encoding time rather than hashed ambiguously.

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
}

/// Encode `value` canonically.
pub fn encode(value: &Value) -> Result<String, CanonicalError> {
    let mut out = String::new();
    write_value(value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut String) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                if u > MAX_SAFE {
                    return Err(CanonicalError::Range(n.to_string()));
                }
                out.push_str(&u.to_string());
            } else if let Some(i) = n.as_i64() {
                if i.unsigned_abs() > MAX_SAFE {
                    return Err(CanonicalError::Range(n.to_string()));
                }
                out.push_str(&i.to_string());
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
            let mut keys: Vec<&String> = map.keys().collect();
            if let Some(bad) = keys.iter().find(|k| !k.is_ascii()) {
                return Err(CanonicalError::Key((*bad).clone()));
            }
            // ASCII keys: UTF-16 code-unit order (RFC 8785 §3.2.3) is byte order.
            keys.sort();
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(&map[*key], out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// String escaping as ECMAScript's JSON.stringify does it (RFC 8785 §3.2.2.2).
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
