//! The ledger on PostgreSQL (an agency store): the same two tables as the SQLite file, in a
//! schema of their own (`custody`), holding byte for byte the events SQLite would hold.
//!
//! Append-only twice over: triggers refuse UPDATE, DELETE and TRUNCATE, and the roles that
//! record (`custody_recorder`) or only read (`custody_auditor`) are granted INSERT and SELECT,
//! or SELECT, on tables another role owns, so they cannot alter, disable or drop anything.
//! Appends take a transaction-level advisory lock, so workstations appending at once queue
//! (within the store's lock timeout) and the sequence stays contiguous; the primary key on
//! `seq` refuses a second event of one number whatever a client does.
//!
//! Credentials follow libpq's conventions: the URL never holds a password (custody refuses
//! to write one down); it comes from `PGPASSWORD` or the password file (`PGPASSFILE`, else
//! `~/.pgpass`). So does `sslmode` (OpenSSL): `disable` is plain TCP; `prefer` (the default)
//! and `require` encrypt without authenticating the server, as libpq does; `verify-ca` checks
//! its certificate against the root certificates (`sslrootcert`, `PGSSLROOTCERT`,
//! `~/.postgresql/root.crt`, else the system's), `verify-full` its host name too. The TLS
//! context is built only once the server has agreed to TLS.

use std::cell::RefCell;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Result;
use postgres::error::SqlState;
use postgres::tls::{MakeTlsConnect, TlsConnect};
use postgres::{Client, Config};

use super::{ItemRow, Row, Writer};
use crate::error;

/// The schema's comment, checked on open: which software wrote it, and its version.
pub const SCHEMA_COMMENT: &str = "custody ledger, schema 2";
/// The role granted SELECT and INSERT: workstations that record.
pub const RECORDER: &str = "custody_recorder";
/// The role granted SELECT only: auditors.
pub const AUDITOR: &str = "custody_auditor";
/// The advisory lock every append holds until it commits ("CUST" "LEDG").
const APPEND_LOCK: i64 = 0x4355_5354_4c45_4447;

/// The body of the trigger function that refuses every change.
const APPEND_ONLY_BODY: &str = "BEGIN RAISE EXCEPTION 'the custody ledger is append-only'; END";

/// The body of the trigger function every new event must pass, whoever inserts it: the next
/// number, linked to the head, and naming as its `db_user` the role that really logged in. So
/// a workstation with INSERT can neither fork the chain nor record under another's login.
const NEXT_EVENT_BODY: &str = "
DECLARE
    head_seq bigint;
    head_hash text;
    ev jsonb := NEW.body::jsonb;
BEGIN
    SELECT seq, hash INTO head_seq, head_hash FROM custody.events ORDER BY seq DESC LIMIT 1;
    IF NEW.seq IS DISTINCT FROM COALESCE(head_seq, 0) + 1 OR (ev->>'seq')::bigint IS DISTINCT FROM NEW.seq THEN
        RAISE EXCEPTION 'custody ledger: event % does not follow event %', NEW.seq, COALESCE(head_seq, 0);
    END IF;
    IF ev->>'prev' IS DISTINCT FROM COALESCE(head_hash, repeat('0', 64)) THEN
        RAISE EXCEPTION 'custody ledger: event % does not link to the head %', NEW.seq, head_hash;
    END IF;
    IF ev->>'db_user' IS DISTINCT FROM session_user::text THEN
        RAISE EXCEPTION 'custody ledger: event % names database role %, but % is appending it',
            NEW.seq, ev->>'db_user', session_user;
    END IF;
    RETURN NEW;
END";

/// custody's functions in the schema: name, body.
const FUNCTIONS: &[(&str, &str)] = &[("append_only", APPEND_ONLY_BODY), ("next_event", NEXT_EVENT_BODY)];

/// The tables' columns, as `information_schema.columns` gives them: table, column, type,
/// nullable.
const COLUMNS: &[(&str, &str, &str, &str)] = &[
    ("events", "seq", "bigint", "NO"),
    ("events", "hash", "text", "NO"),
    ("events", "body", "text", "NO"),
    ("items", "id", "text", "NO"),
    ("items", "seq", "bigint", "NO"),
    ("items", "pos", "integer", "NO"),
    ("items", "sha256", "text", "NO"),
    ("items", "case_id", "text", "NO"),
    ("items", "exhibit", "text", "NO"),
    ("items", "name", "text", "NO"),
    ("items", "parent", "text", "YES"),
    ("pushed", "chain", "text", "NO"),
    ("pushed", "seq", "bigint", "NO"),
    ("pushed", "hash", "text", "NO"),
    ("pushed", "body", "text", "NO"),
];

/// The triggers: table, name, `pg_trigger.tgtype` (1 row, 2 before, 4 insert, 8 delete,
/// 16 update, 32 truncate), function.
const TRIGGERS: &[(&str, &str, i16, &str)] = &[
    ("events", "events_append_only", 1 | 2 | 8 | 16, "custody.append_only()"),
    ("events", "events_next_only", 1 | 2 | 4, "custody.next_event()"),
    ("events", "events_no_truncate", 2 | 32, "custody.append_only()"),
    ("items", "items_append_only", 1 | 2 | 8 | 16, "custody.append_only()"),
    ("items", "items_no_truncate", 2 | 32, "custody.append_only()"),
    ("pushed", "pushed_append_only", 1 | 2 | 8 | 16, "custody.append_only()"),
    ("pushed", "pushed_no_truncate", 2 | 32, "custody.append_only()"),
];

/// The indexes, by name (the keys' own and one for lookups by object).
const INDEXES: &[&str] =
    &["events_hash_key", "events_pkey", "items_case_id_exhibit_name_key", "items_pkey", "items_sha256", "pushed_pkey"];

/// The tables.
const TABLES: &[&str] = &["events", "items", "pushed"];

fn schema_sql() -> String {
    let mut sql = format!(
        "CREATE SCHEMA custody;
         COMMENT ON SCHEMA custody IS '{SCHEMA_COMMENT}';
         CREATE TABLE custody.events (seq bigint PRIMARY KEY, hash text NOT NULL UNIQUE, body text NOT NULL);
         CREATE TABLE custody.items (id text PRIMARY KEY, seq bigint NOT NULL, pos integer NOT NULL, sha256 text NOT NULL,
             case_id text NOT NULL, exhibit text NOT NULL, name text NOT NULL, parent text, UNIQUE (case_id, exhibit, name));
         CREATE INDEX items_sha256 ON custody.items (sha256);
         CREATE TABLE custody.pushed (chain text NOT NULL, seq bigint NOT NULL, hash text NOT NULL, body text NOT NULL,
             PRIMARY KEY (chain, seq));
         CREATE FUNCTION custody.append_only() RETURNS trigger LANGUAGE plpgsql AS $body${APPEND_ONLY_BODY}$body$;
         CREATE FUNCTION custody.next_event() RETURNS trigger LANGUAGE plpgsql AS $body${NEXT_EVENT_BODY}$body$;
         CREATE TRIGGER events_next_only BEFORE INSERT ON custody.events
             FOR EACH ROW EXECUTE FUNCTION custody.next_event();
         REVOKE ALL ON SCHEMA custody FROM PUBLIC;
         REVOKE ALL ON ALL TABLES IN SCHEMA custody FROM PUBLIC;
         REVOKE ALL ON FUNCTION custody.append_only() FROM PUBLIC;
         REVOKE ALL ON FUNCTION custody.next_event() FROM PUBLIC;"
    );
    for table in TABLES {
        sql.push_str(&format!(
            "CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON custody.{table}
                 FOR EACH ROW EXECUTE FUNCTION custody.append_only();
             CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON custody.{table}
                 FOR EACH STATEMENT EXECUTE FUNCTION custody.append_only();"
        ));
    }
    // The group roles are the cluster's; another custody database may have made them.
    for role in [RECORDER, AUDITOR] {
        sql.push_str(&format!(
            "DO $do$ BEGIN CREATE ROLE {role} NOLOGIN;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $do$;"
        ));
    }
    sql.push_str(&format!(
        "GRANT USAGE ON SCHEMA custody TO {RECORDER}, {AUDITOR};
         GRANT SELECT, INSERT ON custody.events, custody.items, custody.pushed TO {RECORDER};
         GRANT SELECT ON custody.events, custody.items, custody.pushed TO {AUDITOR};"
    ));
    sql
}

/// A connection to an agency ledger.
pub struct Pg {
    client: RefCell<Client>,
    /// The URL as messages show it: no password, ever.
    shown: String,
    lock_timeout: Duration,
}

/// The URL with any password taken out, as messages and the store's descriptor show it (a
/// `key=value` connection string loses its `password=` too).
pub fn shown(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
            let (auth, host) = authority.rsplit_once('@').map_or((None, authority), |(a, h)| (Some(a), h));
            let path = path
                .split_once('?')
                .map(|(p, q)| {
                    let kept: Vec<&str> = q.split('&').filter(|kv| !kv.starts_with("password=")).collect();
                    if kept.is_empty() { p.to_owned() } else { format!("{p}?{}", kept.join("&")) }
                })
                .unwrap_or_else(|| path.to_owned());
            match auth {
                Some(a) => format!("{scheme}://{}@{host}{path}", a.split(':').next().unwrap_or(a)),
                None => format!("{scheme}://{host}{path}"),
            }
        }
        None => url.split_whitespace().filter(|kv| !kv.starts_with("password=")).collect::<Vec<_>>().join(" "),
    }
}

/// Whether `url` holds a password (custody never writes one down).
pub fn has_password(url: &str) -> bool {
    let (url, _) = tls_options(url);
    Config::from_str(&url).is_ok_and(|c| c.get_password().is_some())
}

/// How the connection is secured, as libpq's `sslmode` says.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tls {
    Disable,
    /// `allow`, `prefer`, `require`: encrypted, the server not authenticated.
    Encrypt {
        required: bool,
    },
    /// `verify-ca` (`host` false) or `verify-full`: the certificate checked against these roots
    /// (`None`: the system's).
    Verify {
        roots: Option<PathBuf>,
        host: bool,
    },
}

/// The URL without the TLS options the `postgres` crate does not parse (`sslmode` beyond
/// disable/prefer/require, `sslrootcert`), and the TLS they ask for.
fn tls_options(url: &str) -> (String, Tls) {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (mut mode, mut root) = ("prefer".to_owned(), std::env::var("PGSSLROOTCERT").ok());
    if let Ok(m) = std::env::var("PGSSLMODE") {
        mode = m;
    }
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", v)) => mode = percent_decode(v),
            Some(("sslrootcert", v)) => root = Some(percent_decode(v)),
            _ => kept.push(pair),
        }
    }
    let tls = match mode.as_str() {
        "disable" => Tls::Disable,
        "require" => Tls::Encrypt { required: true },
        "verify-ca" | "verify-full" => {
            let roots = match root.as_deref() {
                Some("system") => None,
                Some(path) => Some(PathBuf::from(path)),
                None => std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(".postgresql/root.crt"))
                    .filter(|p| p.is_file()),
            };
            Tls::Verify { roots, host: mode == "verify-full" }
        }
        _ => Tls::Encrypt { required: false },
    };
    // The crate itself only needs to know whether TLS must be had.
    kept.push(match &tls {
        Tls::Disable => "sslmode=disable",
        Tls::Encrypt { required: false } => "sslmode=prefer",
        _ => "sslmode=require",
    });
    (format!("{base}?{}", kept.join("&")), tls)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// TLS through OpenSSL, its context built only when the server agrees to TLS: loading the
/// root certificates costs tens of milliseconds, which a server without TLS (sslmode=prefer)
/// should not cost every command.
struct LazyTls(Tls);

impl MakeTlsConnect<postgres::Socket> for LazyTls {
    type Stream = postgres_openssl::TlsStream<postgres::Socket>;
    type TlsConnect = LazyConnect;
    type Error = openssl::error::ErrorStack;

    fn make_tls_connect(&mut self, domain: &str) -> Result<LazyConnect, openssl::error::ErrorStack> {
        Ok(LazyConnect { tls: self.0.clone(), domain: domain.to_owned() })
    }
}

struct LazyConnect {
    tls: Tls,
    domain: String,
}

impl TlsConnect<postgres::Socket> for LazyConnect {
    type Stream = postgres_openssl::TlsStream<postgres::Socket>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Stream, Self::Error>> + Send>>;

    fn connect(self, stream: postgres::Socket) -> Self::Future {
        use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
        let configured = (|| {
            let connector = match &self.tls {
                Tls::Verify { roots: Some(file), .. } => {
                    let mut b = SslConnector::builder(SslMethod::tls())?;
                    b.set_ca_file(file)?;
                    b
                }
                Tls::Verify { roots: None, .. } => SslConnector::builder(SslMethod::tls())?,
                _ => {
                    // Encrypt only: no roots to load, nothing verified (libpq's prefer/require).
                    let mut b = SslConnector::builder(SslMethod::tls())?;
                    b.set_verify(SslVerifyMode::NONE);
                    b
                }
            };
            let mut config = connector.build().configure()?;
            match self.tls {
                Tls::Verify { host: true, .. } => {}
                Tls::Verify { host: false, .. } => config.set_verify_hostname(false),
                _ => {
                    config.set_verify_hostname(false);
                    config.set_verify(SslVerifyMode::NONE);
                }
            }
            Ok::<_, openssl::error::ErrorStack>(config)
        })();
        match configured {
            Ok(config) => postgres_openssl::TlsConnector::new(config, &self.domain).connect(stream),
            Err(e) => Box::pin(async move { Err(Box::new(e) as Self::Error) }),
        }
    }
}

impl Pg {
    /// Connect, with the password from the environment or the password file.
    pub fn connect(url: &str, lock_timeout: Duration) -> Result<Pg> {
        let shown = shown(url);
        let (url, tls) = tls_options(url);
        let mut config = Config::from_str(&url).map_err(|e| {
            error::input(format!(
                "{shown} is not a PostgreSQL connection URL ({e}); write postgres://ROLE@HOST:PORT/DATABASE"
            ))
        })?;
        if config.get_user().is_none() {
            let user = std::env::var("PGUSER").unwrap_or_else(|_| crate::fsutil::os_user());
            config.user(&user);
        }
        if config.get_password().is_none() {
            if let Ok(p) = std::env::var("PGPASSWORD") {
                config.password(p);
            } else if let Some(p) = password_from_file(&config) {
                config.password(p);
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("custody");
        let client = match tls {
            Tls::Disable => config.connect(postgres::NoTls),
            tls => config.connect(LazyTls(tls)),
        }
        .map_err(|e| failure(e, &shown, "connect to"))?;
        Ok(Pg { client: RefCell::new(client), shown, lock_timeout })
    }

    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Create custody's schema in the connected database (which must not have one yet), as
    /// the role that will own it.
    pub fn create_schema(&self) -> Result<()> {
        let mut client = self.client.borrow_mut();
        let exists: bool = client
            .query_one("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'custody')", &[])
            .map_err(|e| failure(e, &self.shown, "read"))?
            .get(0);
        if exists {
            return Err(error::input(format!(
                "{} already holds a custody ledger; nothing was changed. Join it with `custody init --join {}`",
                self.shown, self.shown
            )));
        }
        let mut tx = client.transaction().map_err(|e| failure(e, &self.shown, "write"))?;
        tx.batch_execute(&schema_sql()).map_err(|e| failure(e, &self.shown, "create the ledger's tables in"))?;
        tx.commit().map_err(|e| failure(e, &self.shown, "write"))
    }

    /// Every way the database's custody schema differs from the one custody creates.
    pub fn differences(&self) -> Result<Vec<String>> {
        let mut client = self.client.borrow_mut();
        let read = |e| failure(e, &self.shown, "read");
        let mut problems = Vec::new();
        let comment: Option<String> = client
            .query_opt("SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = 'custody'", &[])
            .map_err(read)?
            .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default());
        match comment {
            None => {
                return Ok(vec![format!("the database holds no custody ledger (no schema `custody`)")]);
            }
            Some(c) if c != SCHEMA_COMMENT => problems.push(format!("its schema says {c:?}, not {SCHEMA_COMMENT:?}")),
            Some(_) => {}
        }
        let found: Vec<(String, String, String, String)> = client
            .query(
                "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text
                 FROM information_schema.columns WHERE table_schema = 'custody' ORDER BY table_name, ordinal_position",
                &[],
            )
            .map_err(read)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        let expected: Vec<(String, String, String, String)> =
            COLUMNS.iter().map(|(t, c, ty, n)| (t.to_string(), c.to_string(), ty.to_string(), n.to_string())).collect();
        if found != expected {
            problems.push("its tables' columns differ from custody's definition".into());
        }
        let relations: Vec<(String, String)> = client
            .query(
                "SELECT c.relname::text, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'custody' ORDER BY c.relname",
                &[],
            )
            .map_err(read)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for (name, kind) in &relations {
            let known = match kind.as_str() {
                "r" => TABLES.contains(&name.as_str()),
                "i" => INDEXES.contains(&name.as_str()),
                _ => false,
            };
            if !known {
                problems.push(format!("unexpected relation custody.{name} (kind {kind})"));
            }
        }
        for index in INDEXES {
            if !relations.iter().any(|(n, k)| n == index && k == "i") {
                problems.push(format!("index {index} is missing"));
            }
        }
        let triggers: Vec<(String, String, i16, String, String)> = client
            .query(
                "SELECT c.relname::text, t.tgname::text, t.tgtype, t.tgenabled::text, p.oid::regprocedure::text
                 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                 JOIN pg_proc p ON p.oid = t.tgfoid WHERE n.nspname = 'custody' AND NOT t.tgisinternal ORDER BY t.tgname",
                &[],
            )
            .map_err(read)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect();
        for (table, name, kind, function) in TRIGGERS {
            match triggers.iter().find(|t| t.1 == *name) {
                None => problems.push(format!("trigger {name} is missing")),
                Some((t, _, k, _, f)) if t != table || k != kind || f != function => {
                    problems.push(format!("trigger {name} differs from custody's definition"))
                }
                Some((_, _, _, enabled, _)) if enabled != "O" => problems.push(format!("trigger {name} is disabled")),
                Some(_) => {}
            }
        }
        for t in &triggers {
            if !TRIGGERS.iter().any(|(_, n, _, _)| *n == t.1) {
                problems.push(format!("unexpected trigger {} on custody.{}", t.1, t.0));
            }
        }
        let functions: Vec<(String, String)> = client
            .query(
                "SELECT p.proname::text, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname = 'custody'",
                &[],
            )
            .map_err(read)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for (name, body) in &functions {
            match FUNCTIONS.iter().find(|(n, _)| n == name) {
                None => problems.push(format!("unexpected function custody.{name}")),
                Some((_, expected)) if body != expected => {
                    problems.push(format!("function custody.{name} differs from custody's definition"))
                }
                Some(_) => {}
            }
        }
        for (name, _) in FUNCTIONS {
            if !functions.iter().any(|(n, _)| n == name) {
                problems.push(format!("function custody.{name} is missing"));
            }
        }
        let rules: i64 =
            client.query_one("SELECT count(*) FROM pg_rules WHERE schemaname = 'custody'", &[]).map_err(read)?.get(0);
        if rules > 0 {
            problems.push(format!("{rules} unexpected rule(s) on its tables"));
        }
        Ok(problems)
    }

    /// Run `append` in one transaction holding the append lock; commit when it succeeds.
    pub(crate) fn append<T>(&self, append: impl FnOnce(&dyn Writer) -> Result<T>) -> Result<T> {
        let mut client = self.client.borrow_mut();
        let mut tx = client.transaction().map_err(|e| failure(e, &self.shown, "write"))?;
        let ms = self.lock_timeout.as_millis().max(1);
        tx.batch_execute(&format!("SET LOCAL lock_timeout = {ms}")).map_err(|e| failure(e, &self.shown, "write"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK]).map_err(|e| self.locked_or(e, "append to"))?;
        let writer = PgWriter { tx: RefCell::new(tx), shown: &self.shown };
        let out = append(&writer)?;
        writer.tx.into_inner().commit().map_err(|e| failure(e, &self.shown, "append to"))?;
        Ok(out)
    }

    fn locked_or(&self, e: postgres::Error, what: &str) -> anyhow::Error {
        if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
            return error::environment(format!(
                "the ledger {} stayed locked by other appends for more than {} s; nothing was recorded. \
                 Wait for the other custody commands to finish, or raise CUSTODY_LOCK_TIMEOUT",
                self.shown,
                self.lock_timeout.as_secs()
            ));
        }
        failure(e, &self.shown, what)
    }

    /// The rows a read-only query returns.
    fn read(&self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Result<Vec<postgres::Row>> {
        self.client.borrow_mut().query(sql, params).map_err(|e| failure(e, &self.shown, "read"))
    }

    /// The newest event's number and hash.
    pub fn last(&self) -> Result<Option<(i64, String)>> {
        let rows = self.read("SELECT seq, hash FROM custody.events ORDER BY seq DESC LIMIT 1", &[])?;
        Ok(rows.first().map(|r| (r.get(0), r.get(1))))
    }

    /// Rows after `seq`, at most `limit`, in order.
    pub fn rows_after(&self, seq: i64, limit: i64) -> Result<Vec<Row>> {
        let sql = "SELECT seq, hash, body FROM custody.events WHERE seq > $1 ORDER BY seq LIMIT $2";
        Ok(event_rows(self.read(sql, &[&seq, &limit])?))
    }

    /// Rows whose item (an output) derives from an item holding object `sha256` and whose body
    /// mentions `text`.
    pub fn derived_rows_mentioning(&self, sha256: &str, text: &str) -> Result<Vec<Row>> {
        let sql = "SELECT e.seq, e.hash, e.body FROM custody.items AS d JOIN custody.items AS p ON d.parent = p.id
                   JOIN custody.events AS e ON e.seq = d.seq WHERE p.sha256 = $1 AND strpos(e.body, $2) > 0";
        Ok(event_rows(self.read(sql, &[&sha256, &text])?))
    }

    /// Item rows matching `filter` (a WHERE clause over `$1`, `$2`… or nothing), in order of
    /// creation.
    pub fn items(&self, filter: &str, params: &[&str]) -> Result<Vec<ItemRow>> {
        let sql = format!(
            "SELECT id, seq, sha256, case_id, exhibit, name, parent FROM custody.items {filter} ORDER BY seq, pos"
        );
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn postgres::types::ToSql + Sync)).collect();
        Ok(self
            .read(&sql, &params)?
            .iter()
            .map(|r| ItemRow {
                id: r.get(0),
                seq: r.get(1),
                sha256: r.get(2),
                case: r.get(3),
                exhibit: r.get(4),
                name: r.get(5),
                parent: r.get(6),
            })
            .collect())
    }

    /// The field stores whose chains were pushed here, by chain ID.
    pub fn pushed_chains(&self) -> Result<Vec<String>> {
        let rows = self.read("SELECT DISTINCT chain FROM custody.pushed ORDER BY chain", &[])?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Rows of a pushed chain after `seq`, at most `limit`, in order.
    pub fn pushed_rows_after(&self, chain: &str, seq: i64, limit: i64) -> Result<Vec<Row>> {
        let sql = "SELECT seq, hash, body FROM custody.pushed WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3";
        Ok(event_rows(self.read(sql, &[&chain, &seq, &limit])?))
    }

    /// The newest row of a pushed chain.
    pub fn pushed_last(&self, chain: &str) -> Result<Option<(i64, String)>> {
        let sql = "SELECT seq, hash FROM custody.pushed WHERE chain = $1 ORDER BY seq DESC LIMIT 1";
        Ok(self.read(sql, &[&chain])?.first().map(|r| (r.get(0), r.get(1))))
    }

    /// Events whose body mentions `text`, in order.
    pub fn rows_mentioning(&self, text: &str) -> Result<Vec<Row>> {
        let sql = "SELECT seq, hash, body FROM custody.events WHERE strpos(body, $1) > 0 ORDER BY seq";
        Ok(event_rows(self.read(sql, &[&text])?))
    }

    pub fn references(&self, sha256: &str) -> Result<bool> {
        let rows = self.read("SELECT EXISTS (SELECT 1 FROM custody.items WHERE sha256 = $1)", &[&sha256])?;
        Ok(rows.first().is_some_and(|r| r.get(0)))
    }
}

/// Event rows (seq, hash, body) as the ledger module takes them.
fn event_rows(rows: Vec<postgres::Row>) -> Vec<Row> {
    rows.iter().map(|r| Row { seq: r.get(0), hash: r.get(1), body: r.get(2) }).collect()
}

/// An append in progress.
struct PgWriter<'a> {
    tx: RefCell<postgres::Transaction<'a>>,
    shown: &'a str,
}

impl Writer for PgWriter<'_> {
    fn session_user(&self) -> Result<Option<String>> {
        let row = self
            .tx
            .borrow_mut()
            .query_one("SELECT session_user::text", &[])
            .map_err(|e| failure(e, self.shown, "read"))?;
        Ok(Some(row.get(0)))
    }

    fn last(&self) -> Result<Option<(i64, String)>> {
        let row = self
            .tx
            .borrow_mut()
            .query_opt("SELECT seq, hash FROM custody.events ORDER BY seq DESC LIMIT 1", &[])
            .map_err(|e| failure(e, self.shown, "read"))?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    fn item_count(&self) -> Result<i64> {
        let row = self
            .tx
            .borrow_mut()
            .query_one("SELECT count(*) FROM custody.items", &[])
            .map_err(|e| failure(e, self.shown, "read"))?;
        Ok(row.get(0))
    }

    fn insert_event(&self, seq: i64, hash: &str, body: &str) -> Result<()> {
        self.tx
            .borrow_mut()
            .execute("INSERT INTO custody.events (seq, hash, body) VALUES ($1, $2, $3)", &[&seq, &hash, &body])
            .map_err(|e| failure(e, self.shown, "append to"))?;
        Ok(())
    }

    fn insert_item(&self, row: &ItemRow, pos: i32) -> Result<()> {
        self.tx
            .borrow_mut()
            .execute(
                "INSERT INTO custody.items (id, seq, pos, sha256, case_id, exhibit, name, parent)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[&row.id, &row.seq, &pos, &row.sha256, &row.case, &row.exhibit, &row.name, &row.parent],
            )
            .map_err(|e| failure(e, self.shown, "append to"))?;
        Ok(())
    }

    fn pushed_last(&self, chain: &str) -> Result<Option<(i64, String)>> {
        let row = self
            .tx
            .borrow_mut()
            .query_opt("SELECT seq, hash FROM custody.pushed WHERE chain = $1 ORDER BY seq DESC LIMIT 1", &[&chain])
            .map_err(|e| failure(e, self.shown, "read"))?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    fn insert_pushed(&self, chain: &str, row: &Row) -> Result<()> {
        self.tx
            .borrow_mut()
            .execute(
                "INSERT INTO custody.pushed (chain, seq, hash, body) VALUES ($1, $2, $3, $4)",
                &[&chain, &row.seq, &row.hash, &row.body],
            )
            .map_err(|e| failure(e, self.shown, "append to"))?;
        Ok(())
    }

    fn item_named(&self, case: &str, exhibit: &str, name: &str) -> Result<Option<String>> {
        let row = self
            .tx
            .borrow_mut()
            .query_opt(
                "SELECT id FROM custody.items WHERE case_id = $1 AND exhibit = $2 AND name = $3",
                &[&case, &exhibit, &name],
            )
            .map_err(|e| failure(e, self.shown, "read"))?;
        Ok(row.map(|r| r.get(0)))
    }
}

/// A PostgreSQL failure as custody reports it: what could not be done to which ledger, the
/// server's own words (never a password: the URL shown has none), the exit code by its kind.
fn failure(e: postgres::Error, shown: &str, what: &str) -> anyhow::Error {
    let said = e.as_db_error().map_or_else(
        || {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        },
        |d| d.message().to_owned(),
    );
    match e.code() {
        Some(c) if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            error::input(format!(
                "cannot log in to the ledger {shown}: {said}; nothing was recorded. Check the role in the URL and its \
                 password (given in PGPASSWORD or the password file, PGPASSFILE or ~/.pgpass)"
            ))
        }
        Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => error::input(format!(
            "the role this workstation logs in as may not {what} the ledger {shown} ({said}); nothing was recorded. \
             Recording needs a role in {RECORDER}; {AUDITOR} only reads"
        )),
        Some(c) if *c == SqlState::INVALID_CATALOG_NAME => {
            error::input(format!("cannot {what} the ledger {shown}: {said}; nothing was recorded"))
        }
        Some(c) if *c == SqlState::RAISE_EXCEPTION => {
            error::mismatch(format!("the ledger {shown} refused a change: {said}; nothing was recorded"))
        }
        _ if said.contains("certificate verify failed") => error::environment(format!(
            "cannot {what} the ledger {shown}: its server's TLS certificate does not check out ({said}); nothing was \
             recorded. With sslmode=verify-ca or verify-full the certificate must be signed by the root certificates \
             given (sslrootcert, PGSSLROOTCERT or ~/.postgresql/root.crt, else the system's), and verify-full also \
             needs the host name in the URL to be the certificate's"
        )),
        _ => error::environment(format!(
            "cannot {what} the ledger {shown}: {said}; nothing was recorded. Check that the PostgreSQL server is \
             up and reachable from this workstation, and run the command again"
        )),
    }
}

/// The password for `config` from the password file (`PGPASSFILE`, else `~/.pgpass`), in
/// libpq's format: `host:port:database:user:password`, `*` matching anything, `\` escaping.
fn password_from_file(config: &Config) -> Option<String> {
    let path = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
    let user = config.get_user().unwrap_or_default().to_owned();
    let db = config.get_dbname().map(str::to_owned).unwrap_or_else(|| user.clone());
    let wanted = [host, port, db, user];
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass(line);
        if fields.len() != 5 {
            continue;
        }
        let matches = fields[..4].iter().zip(&wanted).all(|(f, w)| f == "*" || f == w);
        if matches {
            return Some(fields[4].clone());
        }
    }
    None
}

fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().expect("one field at least").push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field at least").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shown_url_never_holds_the_password() {
        assert_eq!(shown("postgres://tech:s3cret@db.example:5433/custody"), "postgres://tech@db.example:5433/custody");
        assert_eq!(shown("postgres://tech@db/custody"), "postgres://tech@db/custody");
        assert_eq!(shown("postgresql://db/custody?sslmode=require"), "postgresql://db/custody?sslmode=require");
        assert_eq!(shown("postgres://t@db/c?password=s3cret&sslmode=require"), "postgres://t@db/c?sslmode=require");
        assert_eq!(shown("host=db user=tech password=s3cret dbname=c"), "host=db user=tech dbname=c");
        assert!(has_password("postgres://tech:s3cret@db/custody"));
        assert!(!has_password("postgres://tech@db/custody"));
    }

    #[test]
    fn sslmode_and_sslrootcert_are_read_as_libpq_reads_them() {
        let (url, tls) =
            tls_options("postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=5");
        assert_eq!(url, "postgres://u@h/db?connect_timeout=5&sslmode=require");
        assert_eq!(tls, Tls::Verify { roots: Some("/etc/ca.pem".into()), host: true });
        assert_eq!(
            tls_options("postgres://u@h/db?sslmode=verify-ca&sslrootcert=system").1,
            Tls::Verify { roots: None, host: false }
        );
        assert_eq!(tls_options("postgres://u@h/db?sslmode=disable").1, Tls::Disable);
        assert_eq!(tls_options("postgres://u@h/db?sslmode=require").1, Tls::Encrypt { required: true });
    }

    #[test]
    fn password_file_lines_split_on_unescaped_colons() {
        assert_eq!(split_pgpass(r"db:5432:*:tech:pa\:ss\\word"), ["db", "5432", "*", "tech", r"pa:ss\word"]);
        assert_eq!(split_pgpass("a:b:c:d:e:f"), ["a", "b", "c", "d", "e:f"]);
    }
}
