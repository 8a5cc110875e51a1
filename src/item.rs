//! Naming items: validating case and exhibit numbers, and resolving what a user types
//! (short ID, `CASE:ITEM[/path]`, or a SHA-256 prefix) to one item.

use anyhow::Result;

use crate::error;
use crate::ledger::{ItemRow, Ledger};

/// Check a case or exhibit number typed by the user. They become parts of names
/// (`CASE:ITEM/path`) and of bundle file names, so separators and control characters are
/// refused.
/// A name as reports print it: control characters (an escape sequence in a file name from a
/// hostile or broken device could rewrite the terminal) shown escaped, `\x1b`, the rest as is.
pub fn shown(name: &str) -> std::borrow::Cow<'_, str> {
    if !name.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let code = c as u32;
                if code < 0x100 {
                    out.push_str(&format!("\\x{code:02x}"));
                } else {
                    out.push_str(&format!("\\u{{{code:x}}}"));
                }
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

pub fn validate_id(what: &str, value: &str) -> Result<()> {
    let problem = if value.trim().is_empty() {
        Some("is empty")
    } else if value.contains('/') {
        Some("contains '/'")
    } else if value.contains(':') {
        Some("contains ':' (it separates case and item when naming items)")
    } else if value.contains('\0') {
        Some("contains a NUL character")
    } else if value.contains('\n') || value.contains('\r') {
        Some("contains a line break")
    } else if value.chars().any(char::is_control) {
        Some("contains a control character")
    } else if value.len() > 128 {
        Some("is longer than 128 bytes")
    } else {
        None
    };
    match problem {
        Some(p) => Err(error::input(format!("the {what} {value:?} {p}; use letters, digits, '-', '.' or '_'"))),
        None => Ok(()),
    }
}

/// Resolve what the user typed to exactly one item.
pub fn resolve(ledger: &Ledger, spec: &str) -> Result<ItemRow> {
    let spec = spec.trim();
    if let Some(num) = spec.strip_prefix('i')
        && !num.is_empty()
        && num.bytes().all(|b| b.is_ascii_digit())
    {
        return ledger
            .item(spec)?
            .ok_or_else(|| error::input(format!("no item {spec} in this store; `custody log` lists the items")));
    }
    if let Some((case, rest)) = spec.split_once(':') {
        let (exhibit, path) = match rest.split_once('/') {
            Some((e, p)) => (e, Some(p)),
            None => (rest, None),
        };
        let items = ledger.items_in_exhibit(case, exhibit)?;
        if items.is_empty() {
            return Err(error::input(format!(
                "no exhibit {case}:{exhibit} in this store; `custody log --case {case}` lists its items"
            )));
        }
        if let Some(p) = path {
            return items.into_iter().find(|i| i.name == p).ok_or_else(|| {
                error::input(format!(
                    "exhibit {case}:{exhibit} holds no file named {p:?}; `custody log --case {case}` lists its files"
                ))
            });
        }
        // `CASE:ITEM` means the exhibit's original: the stills, clips and copies made from it
        // since live in the same exhibit, but they do not make the name ambiguous.
        let originals: Vec<ItemRow> = items.iter().filter(|i| i.parent.is_none()).cloned().collect();
        let candidates = if originals.is_empty() { items } else { originals };
        return match candidates.len() {
            1 => Ok(candidates.into_iter().next().expect("one item")),
            n => Err(error::input(format!(
                "exhibit {case}:{exhibit} holds {n} original files; name one as {case}:{exhibit}/PATH or by its short ID: {}",
                list(&candidates)
            ))),
        };
    }
    if spec.len() >= 8 && spec.len() <= 64 && spec.bytes().all(|b| b.is_ascii_hexdigit()) {
        let items = ledger.items_by_sha_prefix(spec)?;
        return match items.len() {
            0 => Err(error::input(format!("no item has a SHA-256 starting with {spec}"))),
            1 => Ok(items.into_iter().next().expect("one item")),
            _ => Err(error::input(format!(
                "SHA-256 prefix {spec} matches {} items: {}; name one by its short ID",
                items.len(),
                list(&items)
            ))),
        };
    }
    Err(error::input(format!(
        "{spec:?} does not name an item: use its short ID (i3), CASE:ITEM or CASE:ITEM/path, \
         or 8 or more hex digits of its SHA-256"
    )))
}

/// The candidates, as many as a message can usefully hold (`custody log` lists them all).
fn list(items: &[ItemRow]) -> String {
    const SHOWN: usize = 10;
    let mut text = items
        .iter()
        .take(SHOWN)
        .map(|i| format!("{} ({}:{}/{})", i.id, i.case, i.exhibit, i.name))
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(first) = items.first().filter(|_| items.len() > SHOWN) {
        text.push_str(&format!(
            " and {} more (`custody log --case {}` lists them all)",
            items.len() - SHOWN,
            first.case
        ));
    }
    text
}

/// Resolve a name that may stand for several items: `CASE:ITEM` names every file of the
/// exhibit; anything else names one item as [`resolve`] does.
pub fn resolve_many(ledger: &Ledger, spec: &str) -> Result<Vec<ItemRow>> {
    if let Some((case, exhibit)) = spec.trim().split_once(':')
        && !exhibit.contains('/')
    {
        let items = ledger.items_in_exhibit(case, exhibit)?;
        if !items.is_empty() {
            return Ok(items);
        }
    }
    Ok(vec![resolve(ledger, spec)?])
}
