//! The custody ledger: an append-only, hash-chained table of events, in a SQLite file (a
//! store's `ledger.db`) or in PostgreSQL (an agency store, [`pg`]). This module is the seam:
//! commands see one [`Ledger`]; the event encoding, the chain and its checks are one
//! implementation whichever database holds the rows.
//!
//! Events are only ever appended, in a `BEGIN IMMEDIATE` transaction (SQLite) or under an
//! advisory lock (PostgreSQL), so concurrent writers queue rather than fork the chain. The `items` table is an index derived from the events
//! (short ID → object and name), written in the same transaction and checked against the events
//! by `verify`. See docs/ledger.md for the format.

pub mod canonical;
pub mod chain;
pub mod event;
pub mod pg;
pub mod private;
pub mod schema;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use serde_json::{Map, Value};

pub use event::{Event, FileRef};

use crate::error;

/// The newest event: its sequence number and hash. Written down elsewhere, it lets anyone
/// detect a truncated or rewritten ledger later (`custody verify --against SEQ:HASH`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl std::str::FromStr for Head {
    type Err = String;
    fn from_str(s: &str) -> Result<Head, String> {
        let (seq, hash) = s.split_once(':').ok_or_else(|| format!("{s:?} is not SEQ:HASH"))?;
        let seq = seq.parse().map_err(|_| format!("{seq:?} is not a sequence number"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{hash:?} is not a 64-digit hex hash"));
        }
        Ok(Head { seq, hash: hash.to_ascii_lowercase() })
    }
}

/// One stored row, exactly as it is on disk.
#[derive(Clone, Debug)]
pub struct Row {
    pub seq: i64,
    pub hash: String,
    pub body: String,
}

/// Who is acting, where, with which tools: the part of every event the command does not choose.
#[derive(Clone, Debug)]
pub struct Actor {
    pub examiner: String,
    pub os_user: String,
    pub host: String,
    pub tools: std::collections::BTreeMap<String, String>,
    /// The batch job step this action runs for (recorded as the `job` parameter), so a re-run
    /// of the job can find what is already done.
    pub job: Option<serde_json::Value>,
}

/// What a command records: the event minus the chain fields and the actor.
#[derive(Clone, Debug, Default)]
pub struct Draft {
    pub action: String,
    pub case: Option<String>,
    pub exhibit: Option<String>,
    pub inputs: Vec<FileRef>,
    pub outputs: Vec<FileRef>,
    pub params: Map<String, Value>,
    pub note: Option<String>,
}

/// An item as the index knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ItemRow {
    pub id: String,
    pub seq: i64,
    pub sha256: String,
    pub case: String,
    pub exhibit: String,
    pub name: String,
    pub parent: Option<String>,
}

/// How a command opens the ledger: to append to it, or only to read it. A command that records
/// nothing opens it read-only, so it works on a store on read-only or write-once media and
/// cannot change the file whatever it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
}

/// Where a store's ledger lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file (`ledger.db` in the store's directory).
    File(PathBuf),
    /// A PostgreSQL database, by its URL (never with a password).
    Postgres(String),
}

impl Location {
    /// How reports name an agency ledger after the store: " (ledger in PostgreSQL: URL)"; empty
    /// for a store's own file.
    pub fn after_store(&self) -> String {
        match self {
            Location::File(_) => String::new(),
            Location::Postgres(url) => format!(" (ledger in PostgreSQL: {})", pg::shown(url)),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File(p) => write!(f, "{}", p.display()),
            Location::Postgres(url) => f.write_str(&pg::shown(url)),
        }
    }
}

pub struct Ledger {
    db: Db,
    location: Location,
    lock_timeout: Duration,
    /// The directory of the store the ledger was opened for (its objects, caches).
    store_root: Option<PathBuf>,
}

enum Db {
    Sqlite(Connection),
    Postgres(Box<pg::Pg>),
}

/// What an append does to the database, whichever it is: the steps of
/// [`Ledger::append_each`], inside its one transaction.
pub(crate) trait Writer {
    fn last(&self) -> Result<Option<(i64, String)>>;
    fn item_count(&self) -> Result<i64>;
    fn insert_event(&self, seq: i64, hash: &str, body: &str) -> Result<()>;
    /// Item row `pos` (counted from 0) of its event.
    fn insert_item(&self, row: &ItemRow, pos: i32) -> Result<()>;
    fn item_named(&self, case: &str, exhibit: &str, name: &str) -> Result<Option<String>>;
    /// The role the database authenticated, if it has logins.
    fn session_user(&self) -> Result<Option<String>>;
    /// The newest row pushed of a field store's chain.
    fn pushed_last(&self, chain: &str) -> Result<Option<(i64, String)>>;
    /// Keep one row of a field store's chain, verbatim.
    fn insert_pushed(&self, chain: &str, row: &Row) -> Result<()>;
}

/// An append to a SQLite ledger.
struct SqliteWriter<'a> {
    tx: rusqlite::Transaction<'a>,
    path: &'a Path,
    timeout: Duration,
}

impl Writer for SqliteWriter<'_> {
    fn session_user(&self) -> Result<Option<String>> {
        Ok(None)
    }

    fn pushed_last(&self, _chain: &str) -> Result<Option<(i64, String)>> {
        Ok(None)
    }

    fn insert_pushed(&self, _chain: &str, _row: &Row) -> Result<()> {
        Err(error::input(format!(
            "the ledger {} is a store's own file: field stores are pushed into an agency store (a PostgreSQL ledger)",
            self.path.display()
        )))
    }

    fn last(&self) -> Result<Option<(i64, String)>> {
        Ok(self
            .tx
            .query_row("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    fn item_count(&self) -> Result<i64> {
        Ok(self.tx.query_row("SELECT count(*) FROM items", [], |r| r.get(0))?)
    }

    fn insert_event(&self, seq: i64, hash: &str, body: &str) -> Result<()> {
        self.tx
            .execute("INSERT INTO events (seq, hash, body) VALUES (?1, ?2, ?3)", params![seq, hash, body])
            .map_err(|e| busy_or(e, self.path, self.timeout))?;
        Ok(())
    }

    fn insert_item(&self, row: &ItemRow, _pos: i32) -> Result<()> {
        // SQLite keeps rows in the order they are inserted (rowid).
        self.tx.execute(
            "INSERT INTO items (id, seq, sha256, case_id, exhibit, name, parent) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![row.id, row.seq, row.sha256, row.case, row.exhibit, row.name, row.parent],
        )?;
        Ok(())
    }

    fn item_named(&self, case: &str, exhibit: &str, name: &str) -> Result<Option<String>> {
        Ok(self
            .tx
            .query_row(
                "SELECT id FROM items WHERE case_id = ?1 AND exhibit = ?2 AND name = ?3",
                [case, exhibit, name],
                |r| r.get(0),
            )
            .optional()?)
    }
}

impl Ledger {
    /// Create a new ledger file with custody's schema. Fails if the file exists.
    pub fn create(path: &Path) -> Result<Ledger> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot create the ledger {}", path.display()))?;
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(error::environment(format!(
                "the filesystem holding {} does not support SQLite's WAL mode; put the store on a local disk",
                path.display()
            )));
        }
        let ledger = Ledger::configure(conn, path, Duration::from_secs(30))?;
        schema::create(ledger.sqlite())?;
        Ok(ledger)
    }

    /// Create custody's tables in a PostgreSQL database that has none (as the role that will
    /// own them), and connect to it.
    pub fn create_postgres(url: &str, lock_timeout: Duration) -> Result<Ledger> {
        let db = pg::Pg::connect(url, lock_timeout)?;
        db.create_schema()?;
        Ok(Ledger {
            db: Db::Postgres(Box::new(db)),
            location: Location::Postgres(url.to_owned()),
            lock_timeout,
            store_root: None,
        })
    }

    /// Open the ledger at `location`, refusing one whose schema was altered.
    pub fn open_at(location: &Location, lock_timeout: Duration, access: Access) -> Result<Ledger> {
        let (ledger, problems) = Ledger::open_unchecked_at(location, lock_timeout, access)?;
        if !problems.is_empty() {
            return Err(error::mismatch(format!(
                "the ledger {location} has been altered outside custody ({}); refusing to use it. \
                 Run `custody verify` to see what changed, and restore the store from a trusted copy",
                problems.join("; ")
            )));
        }
        Ok(ledger)
    }

    /// [`Ledger::open_at`] that reports how the schema differs instead of refusing it.
    pub fn open_unchecked_at(
        location: &Location,
        lock_timeout: Duration,
        access: Access,
    ) -> Result<(Ledger, Vec<String>)> {
        match location {
            Location::File(path) => Ledger::open_unchecked(path, lock_timeout, access),
            Location::Postgres(url) => {
                // Read-only access is the database's to enforce (an auditor's role).
                let db = pg::Pg::connect(url, lock_timeout)?;
                let problems = db.differences()?;
                Ok((
                    Ledger {
                        db: Db::Postgres(Box::new(db)),
                        location: location.clone(),
                        lock_timeout,
                        store_root: None,
                    },
                    problems,
                ))
            }
        }
    }

    fn sqlite(&self) -> &Connection {
        match &self.db {
            Db::Sqlite(c) => c,
            Db::Postgres(_) => unreachable!("a SQLite step on a PostgreSQL ledger"),
        }
    }

    /// Open an existing ledger, refusing it unless its schema is exactly custody's.
    pub fn open(path: &Path, lock_timeout: Duration, access: Access) -> Result<Ledger> {
        let (ledger, problems) = Ledger::open_unchecked(path, lock_timeout, access)?;
        if !problems.is_empty() {
            return Err(error::mismatch(format!(
                "the ledger {} has been altered outside custody ({}); refusing to use it. \
                 Run `custody verify` to see what changed, and restore the store from a trusted copy",
                path.display(),
                problems.join("; ")
            )));
        }
        Ok(ledger)
    }

    /// Open a ledger and report how its schema differs, without refusing it (for `verify`).
    pub fn open_unchecked(path: &Path, lock_timeout: Duration, access: Access) -> Result<(Ledger, Vec<String>)> {
        if !path.is_file() {
            return Err(error::input(format!("the ledger {} does not exist", path.display())));
        }
        let conn = match access {
            Access::ReadWrite => {
                Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                    .with_context(|| format!("cannot open the ledger {}", path.display()))?
            }
            Access::ReadOnly => connect_read_only(path)?,
        };
        let ledger = Ledger::configure(conn, path, lock_timeout)?;
        let problems = schema::differences(ledger.sqlite())
            .map_err(|e| error::mismatch(format!("{} is not a readable custody ledger: {e}", path.display())))?;
        Ok((ledger, problems))
    }

    fn configure(conn: Connection, path: &Path, lock_timeout: Duration) -> Result<Ledger> {
        // Security-relevant: never run SQL found inside the file (views, triggers) in a
        // context it was not written for.
        conn.pragma_update(None, "trusted_schema", false)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.busy_timeout(lock_timeout)?;
        let store_root = path.parent().map(Path::to_owned);
        Ok(Ledger { db: Db::Sqlite(conn), location: Location::File(path.to_owned()), lock_timeout, store_root })
    }

    /// The ledger as opened for the store in `root`.
    pub fn for_store(mut self, root: &Path) -> Ledger {
        self.store_root = Some(root.to_owned());
        self
    }

    /// The directory of the store this ledger was opened for.
    pub fn store_root(&self) -> Option<&Path> {
        self.store_root.as_deref()
    }

    /// Where the ledger is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Append one event. `build` runs inside the write transaction, so what it reads (item
    /// numbers, existing names) cannot change before the event lands.
    pub fn append(
        &mut self,
        actor: &Actor,
        build: impl FnOnce(&mut Txn<'_>) -> Result<Draft>,
    ) -> Result<(Head, Event)> {
        let mut build = Some(build);
        self.append_each(actor, |txn| build.take().map(|b| b(txn)).transpose())
    }

    /// Append consecutive events in one transaction: all of them land, or none. `build` is
    /// called until it returns `None`; each draft is encoded and written before the next is
    /// asked for, so only one event is in memory at a time. Returns the last event.
    pub fn append_each(
        &mut self,
        actor: &Actor,
        mut build: impl FnMut(&mut Txn<'_>) -> Result<Option<Draft>>,
    ) -> Result<(Head, Event)> {
        match &mut self.db {
            Db::Sqlite(conn) => {
                let Location::File(path) = &self.location else { unreachable!("a SQLite ledger is a file") };
                let timeout = self.lock_timeout;
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(|e| busy_or(e, path, timeout))?;
                let writer = SqliteWriter { tx, path, timeout };
                let recorded = append_with(&writer, actor, &mut build)?;
                writer.tx.commit().map_err(|e| busy_or(e, path, timeout))?;
                Ok(recorded)
            }
            Db::Postgres(pg) => pg.append(|writer| append_with(writer, actor, &mut build)),
        }
    }

    /// The newest event, if any.
    pub fn head(&self) -> Result<Option<Head>> {
        let last = match &self.db {
            Db::Sqlite(conn) => conn
                .query_row("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1", [], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get(1)?))
                })
                .optional()?,
            Db::Postgres(pg) => pg.last()?,
        };
        Ok(last.map(|(seq, hash)| Head { seq: seq as u64, hash }))
    }

    /// Visit every stored row in sequence order, exactly as stored.
    pub fn for_each_row(&self, f: impl FnMut(Row) -> Result<()>) -> Result<()> {
        self.for_each_row_after(None, f)
    }

    /// Every stored row after event `seq` (all of them for `None`), in order.
    pub fn for_each_row_after(&self, seq: Option<u64>, mut f: impl FnMut(Row) -> Result<()>) -> Result<()> {
        let conn = match &self.db {
            Db::Sqlite(conn) => conn,
            Db::Postgres(pg) => {
                // In batches, so memory stays flat however long the ledger is.
                let mut after = seq.map_or(-1, |s| s as i64);
                loop {
                    let rows = pg.rows_after(after, 1000)?;
                    let Some(last) = rows.last() else { return Ok(()) };
                    after = last.seq;
                    for row in rows {
                        f(row)?;
                    }
                }
            }
        };
        let mut stmt = conn.prepare("SELECT seq, hash, body FROM events WHERE seq > ?1 ORDER BY seq")?;
        let mut rows = stmt.query([seq.map_or(-1, |s| s as i64)])?;
        while let Some(r) = rows.next()? {
            f(Row { seq: r.get(0)?, hash: r.get(1)?, body: r.get(2)? })?;
        }
        Ok(())
    }

    /// Every event, parsed, in order.
    pub fn events(&self) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        self.for_each_row(|row| {
            out.push(parse_body(&row)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Whether an event that derived a file from object `sha256` recorded using the frame
    /// index with this digest (`params.frame_index`).
    pub fn frame_index_recorded(&self, sha256: &str, digest: &str) -> Result<bool> {
        let rows = match &self.db {
            Db::Sqlite(conn) => {
                let mut stmt = conn.prepare(
                    "SELECT e.seq, e.hash, e.body FROM items AS d JOIN items AS p ON d.parent = p.id \
                     JOIN events AS e ON e.seq = d.seq WHERE p.sha256 = ?1 AND instr(e.body, ?2) > 0",
                )?;
                stmt.query_map([sha256, digest], |r| Ok(Row { seq: r.get(0)?, hash: r.get(1)?, body: r.get(2)? }))?
                    .collect::<Result<Vec<_>, _>>()?
            }
            Db::Postgres(pg) => pg.derived_rows_mentioning(sha256, digest)?,
        };
        for row in rows {
            let ev = parse_body(&row)?;
            if ev.params.get("frame_index").and_then(Value::as_str) == Some(digest)
                && ev.inputs.iter().any(|i| i.sha256 == sha256)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One event by sequence number.
    pub fn event(&self, seq: u64) -> Result<Option<Event>> {
        let row = match &self.db {
            Db::Sqlite(conn) => conn
                .query_row("SELECT seq, hash, body FROM events WHERE seq = ?1", [seq as i64], |r| {
                    Ok(Row { seq: r.get(0)?, hash: r.get(1)?, body: r.get(2)? })
                })
                .optional()?,
            Db::Postgres(pg) => pg.rows_after(seq as i64 - 1, 1)?.into_iter().find(|r| r.seq == seq as i64),
        };
        row.map(|r| parse_body(&r)).transpose()
    }

    /// Every row of the items index, in ID order of creation.
    pub fn items(&self) -> Result<Vec<ItemRow>> {
        self.query_items("", &[])
    }

    pub fn item(&self, id: &str) -> Result<Option<ItemRow>> {
        Ok(self.query_items("id = ?1", &[id])?.pop())
    }

    pub fn items_by_sha_prefix(&self, prefix: &str) -> Result<Vec<ItemRow>> {
        let pattern = format!("{}%", prefix.to_ascii_lowercase());
        self.query_items("sha256 LIKE ?1", &[&pattern])
    }

    pub fn items_in_exhibit(&self, case: &str, exhibit: &str) -> Result<Vec<ItemRow>> {
        self.query_items("case_id = ?1 AND exhibit = ?2", &[case, exhibit])
    }

    pub fn items_in_case(&self, case: &str) -> Result<Vec<ItemRow>> {
        self.query_items("case_id = ?1", &[case])
    }

    /// Item rows matching `condition` (over `?1`, `?2`…; empty for all), in order of creation.
    fn query_items(&self, condition: &str, values: &[&str]) -> Result<Vec<ItemRow>> {
        let conn = match &self.db {
            Db::Sqlite(conn) => conn,
            Db::Postgres(pg) => {
                let filter =
                    if condition.is_empty() { String::new() } else { format!("WHERE {}", condition.replace('?', "$")) };
                return pg.items(&filter, values);
            }
        };
        let filter = if condition.is_empty() { String::new() } else { format!("WHERE {condition}") };
        let mut stmt = conn.prepare(&format!(
            "SELECT id, seq, sha256, case_id, exhibit, name, parent FROM items {filter} ORDER BY seq, rowid"
        ))?;
        let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
            Ok(ItemRow {
                id: r.get(0)?,
                seq: r.get(1)?,
                sha256: r.get(2)?,
                case: r.get(3)?,
                exhibit: r.get(4)?,
                name: r.get(5)?,
                parent: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The event that created an item, and the item as that event recorded it.
    pub fn item_origin(&self, row: &ItemRow) -> Result<(Event, FileRef)> {
        let created = self.event(row.seq as u64)?.ok_or_else(|| {
            error::mismatch(format!("item {} names event {}, which is missing; run `custody verify`", row.id, row.seq))
        })?;
        let file =
            created.outputs.iter().find(|o| o.item.as_deref() == Some(row.id.as_str())).cloned().ok_or_else(|| {
                error::mismatch(format!("event {} does not record item {}; run `custody verify`", row.seq, row.id))
            })?;
        Ok((created, file))
    }

    /// Whether this ledger can hold pushed chains (an agency ledger).
    pub fn holds_pushed_chains(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    /// The newest row of chain `chain` pushed into this ledger, if any.
    pub fn pushed_head(&self, chain: &str) -> Result<Option<Head>> {
        let last = match &self.db {
            Db::Sqlite(_) => None,
            Db::Postgres(pg) => pg.pushed_last(chain)?,
        };
        Ok(last.map(|(seq, hash)| Head { seq: seq as u64, hash }))
    }

    /// The field stores whose chains were pushed into this ledger, by chain ID.
    pub fn pushed_chains(&self) -> Result<Vec<String>> {
        match &self.db {
            Db::Sqlite(_) => Ok(Vec::new()),
            Db::Postgres(pg) => pg.pushed_chains(),
        }
    }

    /// Every row of a pushed chain after event `seq` (all for `None`), in order, as stored.
    pub fn for_each_pushed_row(
        &self,
        chain: &str,
        seq: Option<u64>,
        mut f: impl FnMut(Row) -> Result<()>,
    ) -> Result<()> {
        let Db::Postgres(pg) = &self.db else { return Ok(()) };
        let mut after = seq.map_or(0, |s| s as i64);
        loop {
            let rows = pg.pushed_rows_after(chain, after, 1000)?;
            let Some(last) = rows.last() else { return Ok(()) };
            after = last.seq;
            for row in rows {
                f(row)?;
            }
        }
    }

    /// The `push` events that bound rows of chain `chain`, in order.
    pub fn push_events(&self, chain: &str) -> Result<Vec<(Event, String)>> {
        let rows = match &self.db {
            Db::Sqlite(_) => return Ok(Vec::new()),
            Db::Postgres(pg) => pg.rows_mentioning(chain)?,
        };
        let mut out = Vec::new();
        for row in rows {
            let ev = parse_body(&row)?;
            if ev.action == "push" && ev.params.get("chain").and_then(Value::as_str) == Some(chain) {
                out.push((ev, row.hash));
            }
        }
        Ok(out)
    }

    /// Where an item was really acquired: for an item a `push` brought from a field store, the
    /// field event that recorded it (kept verbatim in this ledger) and the file as that event
    /// recorded it (its media facts, source, recording start; the event's clock offset); for any
    /// other item, [`Ledger::item_origin`].
    pub fn acquisition(&self, row: &ItemRow) -> Result<(Event, FileRef)> {
        let (created, file) = self.item_origin(row)?;
        if created.action != "push" {
            return Ok((created, file));
        }
        let origin = file.facts.get("pushed");
        let text = |k: &str| origin.and_then(|o| o.get(k)).and_then(Value::as_str).map(str::to_owned);
        let (Some(chain), Some(field_item), Some(seq)) =
            (text("chain"), text("item"), origin.and_then(|o| o.get("seq")).and_then(Value::as_u64))
        else {
            return Ok((created, file));
        };
        let found = match &self.db {
            Db::Postgres(pg) => pg.pushed_rows_after(&chain, seq.saturating_sub(1) as i64, 1)?.pop(),
            Db::Sqlite(_) => None,
        };
        let kept = found.filter(|r| r.seq as u64 == seq).ok_or_else(|| {
            error::mismatch(format!(
                "item {} was pushed from event {seq} of field chain {}, which this ledger no longer keeps; run \
                 `custody verify`",
                row.id,
                &chain[..chain.len().min(12)]
            ))
        })?;
        let field = parse_body(&kept)?;
        let field_file = field
            .outputs
            .iter()
            .find(|o| o.item.as_deref() == Some(field_item.as_str()) && o.sha256 == file.sha256)
            .cloned()
            .ok_or_else(|| {
                error::mismatch(format!(
                    "item {}: field event {seq} of chain {} does not record it as push event {} says; run `custody verify`",
                    row.id,
                    &chain[..chain.len().min(12)],
                    created.seq
                ))
            })?;
        Ok((field, field_file))
    }

    /// True when any committed event references the object.
    pub fn references(&self, sha256: &str) -> Result<bool> {
        match &self.db {
            Db::Sqlite(conn) => {
                Ok(conn.query_row("SELECT EXISTS (SELECT 1 FROM items WHERE sha256 = ?1)", [sha256], |r| r.get(0))?)
            }
            Db::Postgres(pg) => pg.references(sha256),
        }
    }
}

/// What a command may consult while its event is being written.
pub struct Txn<'a> {
    db: &'a dyn Writer,
    next_item: u64,
}

impl Txn<'_> {
    /// Allocate the next item short ID (`i1`, `i2`, …). IDs are never reused.
    pub fn new_item_id(&mut self) -> String {
        let id = format!("i{}", self.next_item);
        self.next_item += 1;
        id
    }

    /// The newest row of a field store's chain pushed into this ledger, if any.
    pub fn pushed_head(&self, chain: &str) -> Result<Option<Head>> {
        Ok(self.db.pushed_last(chain)?.map(|(seq, hash)| Head { seq: seq as u64, hash }))
    }

    /// Keep one row of a field store's chain verbatim, beside the event that binds it.
    pub fn insert_pushed(&self, chain: &str, row: &Row) -> Result<()> {
        self.db.insert_pushed(chain, row)
    }

    /// The item already holding this name in this exhibit, if any.
    pub fn item_named(&self, case: &str, exhibit: &str, name: &str) -> Result<Option<String>> {
        self.db.item_named(case, exhibit, name)
    }
}

/// The body of every append: number, encode, chain and write each drafted event, and the item
/// rows it implies. Returns the last event.
fn append_with(
    db: &dyn Writer,
    actor: &Actor,
    build: &mut dyn FnMut(&mut Txn<'_>) -> Result<Option<Draft>>,
) -> Result<(Head, Event)> {
    let (mut seq, mut prev) = match db.last()? {
        Some((s, h)) => (s as u64 + 1, h),
        None => (1, event::GENESIS_PREV.to_owned()),
    };
    let item_count = db.item_count()?;
    let db_user = db.session_user()?;
    let mut txn = Txn { db, next_item: item_count as u64 + 1 };
    let mut recorded = None;
    while let Some(draft) = build(&mut txn)? {
        let mut event = Event {
            v: event::FORMAT_VERSION,
            seq,
            prev: std::mem::take(&mut prev),
            time: now_utc(),
            examiner: actor.examiner.clone(),
            os_user: actor.os_user.clone(),
            host: actor.host.clone(),
            db_user: db_user.clone(),
            tools: actor.tools.clone(),
            action: draft.action,
            case: draft.case,
            exhibit: draft.exhibit,
            inputs: draft.inputs,
            outputs: draft.outputs,
            params: {
                let mut p = draft.params;
                if let Some(job) = &actor.job {
                    p.insert("job".into(), job.clone());
                }
                p
            },
            note: draft.note,
            private: None,
        };
        // Host, OS user and paths are recorded in the clear but hashed as commitments, so
        // a public release can withhold them and still be checked against the chain.
        event.private = Some(private::Private { members: private::members(&event), salt: private::new_salt()? });
        let body = event.encode().context("cannot encode the ledger event")?;
        let hash = event::stored_hash(&body, &event).context("cannot encode the ledger event")?;
        db.insert_event(seq as i64, &hash, &body)?;
        drop(body);
        for (pos, row) in item_rows(&event).iter().enumerate() {
            db.insert_item(row, pos as i32)?;
        }
        prev = hash.clone();
        seq += 1;
        recorded = Some((Head { seq: event.seq, hash }, event));
    }
    recorded.ok_or_else(|| anyhow::anyhow!("internal error: a command recorded no event"))
}

/// The items index rows an event implies: one per output that names an item.
pub fn item_rows(event: &Event) -> Vec<ItemRow> {
    event
        .outputs
        .iter()
        .filter_map(|out| {
            let id = out.item.clone()?;
            // A push brings items of many exhibits: each of its outputs names its own.
            let own = |key: &str| {
                (event.action == "push")
                    .then(|| out.facts.get(key).and_then(Value::as_str).map(str::to_owned))
                    .flatten()
            };
            Some(ItemRow {
                id,
                seq: event.seq as i64,
                sha256: out.sha256.clone(),
                case: own("case").or_else(|| event.case.clone()).unwrap_or_default(),
                exhibit: own("exhibit").or_else(|| event.exhibit.clone()).unwrap_or_default(),
                name: out.name.clone().unwrap_or_default(),
                parent: out.facts.get("parent").and_then(|v| v.as_str()).map(str::to_owned),
            })
        })
        .collect()
}

/// Parse a stored body. Never used to compute hashes: those come from the stored bytes.
pub fn parse_body(row: &Row) -> Result<Event> {
    serde_json::from_str(&row.body)
        .map_err(|e| error::mismatch(format!("ledger event {} is not a valid event: {e}", row.seq)))
}

fn busy_or(e: rusqlite::Error, path: &Path, timeout: Duration) -> anyhow::Error {
    if matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)) {
        return error::environment(format!(
            "the ledger {} stayed locked by another process for more than {} s; \
             wait for the other custody command to finish, or raise CUSTODY_LOCK_TIMEOUT",
            path.display(),
            timeout.as_secs()
        ));
    }
    if matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::ReadOnly)) {
        // Media that let a write be attempted and then refuse it (write-once discs).
        return error::environment(format!(
            "the ledger {} is read-only: SQLite cannot write it ({e}); nothing was recorded. \
             To record, use a writable store",
            path.display()
        ));
    }
    if matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DiskFull)) {
        return error::environment(format!(
            "the disk holding the ledger {} is full; nothing was recorded. Free space and run the command again",
            path.display()
        ));
    }
    if matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)) {
        // Exit 1 (a mismatch: the ledger was damaged or replaced), decided from the SQLite error.
        return anyhow::Error::new(e).context(format!("cannot write to the ledger {}", path.display()));
    }
    error::environment(format!(
        "cannot write to the ledger {}: {e}; nothing was recorded. Check the disk holding the store \
         (`custody verify` checks the ledger) and run the command again",
        path.display()
    ))
}

/// Open a WAL-mode ledger for reading only.
///
/// Where this process may write the ledger and its directory, it is opened as writers open it
/// but with `query_only` set, so no statement can change it: a connection opened read-only
/// would leave `ledger.db-wal` and `ledger.db-shm` behind when it closes (only a writer's
/// close checkpoints and removes them), owned by whoever read, which could then stop the
/// store's owner from writing.
///
/// Elsewhere it is opened read-only. SQLite reads a WAL database on read-only media when its
/// `-wal` and `-shm` files exist or can be created; where neither holds (an archived copy on a
/// read-only mount or WORM disc, which has no `-wal` because the last writer checkpointed and
/// removed it), it is opened `immutable`: no locks, no `-shm`, the file read as it stands.
/// That is only sound when no `-wal` holds events the file lacks, so a non-empty `-wal` that
/// cannot be read is refused rather than silently ignored (it would hide the newest events).
/// <https://www.sqlite.org/wal.html#readonly>
fn connect_read_only(path: &Path) -> Result<Connection> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if crate::fsutil::writable(path).is_ok() && crate::fsutil::writable(dir).is_ok() {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .with_context(|| format!("cannot open the ledger {}", path.display()))?;
        conn.pragma_update(None, "query_only", true)?;
        return Ok(conn);
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .with_context(|| format!("cannot open the ledger {}", path.display()))?;
    // SQLite opens the WAL and its index lazily: the first read says whether it can.
    let readable = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0));
    match readable {
        Ok(_) => return Ok(conn),
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly)
            ) => {}
        Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot read the ledger {}", path.display()))),
    }
    drop(conn);
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Err(error::environment(format!(
            "the ledger {} cannot be read here: its write-ahead log {} may hold its newest events, and SQLite \
             can read that log only with its index (ledger.db-shm), which is missing or unusable and cannot be \
             created on this read-only storage. Copy the whole store to writable storage and run the command on the copy",
            path.display(),
            wal.display()
        )));
    }
    Connection::open_with_flags(immutable_uri(path), flags | OpenFlags::SQLITE_OPEN_URI)
        .with_context(|| format!("cannot open the ledger {} (read-only, immutable)", path.display()))
}

/// `file:PATH?immutable=1`, every byte of the path outside a safe set percent-encoded (SQLite
/// decodes `%XX` to the byte, so any path works, UTF-8 or not).
fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// Now, as the ledger writes times: UTC, RFC 3339, milliseconds.
pub fn now_utc() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
