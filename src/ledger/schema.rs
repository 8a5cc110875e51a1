//! The ledger's SQLite schema, and the check that a ledger file has exactly this schema.
//!
//! Security-relevant: a ledger whose schema differs in any way (a trigger dropped, a column
//! added, a view or trigger smuggled in) is refused, so a crafted or swapped file cannot make
//! this program run SQL it did not write. `trusted_schema` is off for the same reason.

use rusqlite::Connection;

/// `PRAGMA application_id`: "CUST" in ASCII.
pub const APPLICATION_ID: i64 = 0x4355_5354;
/// `PRAGMA user_version`: the schema version.
pub const SCHEMA_VERSION: i64 = 1;

/// The schema, one statement each, exactly as SQLite stores it in `sqlite_master`.
pub const STATEMENTS: &[(&str, &str, &str)] = &[
    (
        "table",
        "events",
        "CREATE TABLE events (\n    seq  INTEGER PRIMARY KEY,\n    hash TEXT NOT NULL UNIQUE,\n    body TEXT NOT NULL\n) STRICT",
    ),
    (
        "trigger",
        "events_no_update",
        "CREATE TRIGGER events_no_update BEFORE UPDATE ON events\nBEGIN SELECT RAISE(ABORT, 'the custody ledger is append-only'); END",
    ),
    (
        "trigger",
        "events_no_delete",
        "CREATE TRIGGER events_no_delete BEFORE DELETE ON events\nBEGIN SELECT RAISE(ABORT, 'the custody ledger is append-only'); END",
    ),
    (
        "table",
        "items",
        "CREATE TABLE items (\n    id      TEXT PRIMARY KEY,\n    seq     INTEGER NOT NULL,\n    sha256  TEXT NOT NULL,\n    case_id TEXT NOT NULL,\n    exhibit TEXT NOT NULL,\n    name    TEXT NOT NULL,\n    parent  TEXT\n) STRICT",
    ),
    ("index", "items_sha256", "CREATE INDEX items_sha256 ON items(sha256)"),
    ("index", "items_name", "CREATE UNIQUE INDEX items_name ON items(case_id, exhibit, name)"),
    (
        "trigger",
        "items_no_update",
        "CREATE TRIGGER items_no_update BEFORE UPDATE ON items\nBEGIN SELECT RAISE(ABORT, 'the custody ledger is append-only'); END",
    ),
    (
        "trigger",
        "items_no_delete",
        "CREATE TRIGGER items_no_delete BEFORE DELETE ON items\nBEGIN SELECT RAISE(ABORT, 'the custody ledger is append-only'); END",
    ),
];

/// Indexes SQLite creates by itself for PRIMARY KEY / UNIQUE constraints (no SQL text).
const AUTO_INDEXES: &[&str] = &["sqlite_autoindex_events_1", "sqlite_autoindex_items_1"];

/// Create the schema in an empty database.
pub fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "application_id", APPLICATION_ID)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    for (_, _, sql) in STATEMENTS {
        conn.execute_batch(sql)?;
    }
    Ok(())
}

/// Every way the file's schema differs from the expected one; empty when it is exact.
pub fn differences(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut problems = Vec::new();
    let app: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    if app != APPLICATION_ID {
        problems.push(format!("application_id is {app:#x}, not custody's {APPLICATION_ID:#x}"));
    }
    let ver: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if ver != SCHEMA_VERSION {
        problems.push(format!("schema version is {ver}, this custody expects {SCHEMA_VERSION}"));
    }
    let mut stmt = conn.prepare("SELECT type, name, sql FROM sqlite_master")?;
    let found: Vec<(String, String, Option<String>)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
    for (kind, name, sql) in STATEMENTS {
        match found.iter().find(|(_, n, _)| n == name) {
            None => problems.push(format!("{kind} {name} is missing")),
            Some((k, _, s)) if k != kind || s.as_deref() != Some(*sql) => {
                problems.push(format!("{kind} {name} differs from custody's definition"))
            }
            Some(_) => {}
        }
    }
    for (kind, name, sql) in &found {
        let expected = STATEMENTS.iter().any(|(_, n, _)| n == name)
            || (kind == "index" && sql.is_none() && AUTO_INDEXES.contains(&name.as_str()));
        if !expected {
            problems.push(format!("unexpected {kind} {name}"));
        }
    }
    Ok(problems)
}
