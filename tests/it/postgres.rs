//! A real PostgreSQL server for the agency-store tests, started by the harness itself: one
//! throwaway cluster per checkout (in the temp directory, listening on 127.0.0.1 only), shared
//! by the test processes (nextest runs each test in its own process) and started by the first
//! that needs it, under a file lock. Each test gets a database and roles of its own. `bins/test`
//! stops the cluster when the run ends; a cluster left running is found and reused, or, if its
//! server is gone, made again.
//!
//! PostgreSQL refuses to run as root, and tests run as root in CI: the server then runs as the
//! `postgres` user Debian's package creates.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::support::Output;

/// The superuser's password in the throwaway cluster.
const SUPER_PASSWORD: &str = "custody-test-superuser";
/// Every test role's password.
pub const PASSWORD: &str = "custody-test-role";

pub struct Cluster {
    pub port: u16,
    data: PathBuf,
}

/// The cluster, started if need be.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(start)
}

/// Where the cluster lives: one per checkout.
pub fn base() -> PathBuf {
    // The first 12 hex digits of the SHA-256 of the checkout's path, as bins/test computes it.
    let manifest = env!("CARGO_MANIFEST_DIR");
    let tag = hex::encode(ring::digest::digest(&ring::digest::SHA256, manifest.as_bytes()))[..12].to_owned();
    std::env::temp_dir().join(format!("custody-test-pg-{tag}"))
}

fn bin(name: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (bins/setup installs the postgresql package)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| panic!("no {name} under /usr/lib/postgresql/*/bin"))
}

fn as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A server program, run as the `postgres` user when we are root.
fn server_cmd(name: &str) -> Command {
    if as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin(name));
        c
    } else {
        Command::new(bin(name))
    }
}

fn run(mut c: Command, what: &str) -> String {
    let out = c.output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed: {text}");
    text
}

fn start() -> Cluster {
    let base = base();
    fs::create_dir_all(&base).expect("cluster base dir");
    fs::set_permissions(&base, fs::Permissions::from_mode(0o777)).expect("chmod cluster base");
    let lock = fs::File::create(base.join("lock")).expect("cluster lock file");
    // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
    assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) }, 0);
    let data = base.join("data");
    let port_file = base.join("port");
    if let Ok(port) = fs::read_to_string(&port_file).map(|p| p.trim().parse::<u16>().expect("port file"))
        && ready(port)
    {
        return Cluster { port, data };
    }
    // Nothing usable: make it afresh.
    if data.exists() {
        let mut stop = server_cmd("pg_ctl");
        stop.arg("-D").arg(&data).args(["-m", "immediate", "stop"]);
        let _ = stop.output();
        fs::remove_dir_all(&data).expect("remove the old cluster");
    }
    let port = create(&base, "");
    fs::write(&port_file, port.to_string()).expect("port file");
    Cluster { port, data }
}

/// Make a cluster in `base/data` and start it, with `extra` server options: its port.
fn create(base: &std::path::Path, extra: &str) -> u16 {
    let data = base.join("data");
    let pwfile = base.join("pwfile");
    fs::write(&pwfile, SUPER_PASSWORD).expect("pwfile");
    fs::set_permissions(&pwfile, fs::Permissions::from_mode(0o644)).expect("chmod pwfile");
    let mut init = server_cmd("initdb");
    init.arg("-D").arg(&data).args(["-U", "postgres", "-E", "UTF8", "--locale=C", "--auth-host=scram-sha-256"]);
    init.args(["--auth-local=scram-sha-256"]).arg(format!("--pwfile={}", pwfile.display()));
    run(init, "initdb");
    let port = free_port();
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={} -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
         -c max_wal_size=128MB -c min_wal_size=32MB {extra}",
        base.display()
    );
    let mut pg_ctl = server_cmd("pg_ctl");
    pg_ctl.arg("-D").arg(&data).arg("-l").arg(data.join("server.log")).args(["-o", &options, "-w", "start"]);
    run(pg_ctl, "pg_ctl start");
    assert!(ready(port), "the PostgreSQL server started but does not answer on 127.0.0.1:{port}");
    port
}

/// A cluster of one test's own, for faults that would disturb the others (a restart): stopped
/// and removed when dropped.
pub struct Private {
    pub cluster: &'static Cluster,
    _dir: tempfile::TempDir,
}

pub fn private() -> Private {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let port = create(dir.path(), "");
    let cluster = Box::leak(Box::new(Cluster { port, data: dir.path().join("data") }));
    Private { cluster, _dir: dir }
}

/// A private cluster that offers TLS with a self-signed certificate for 127.0.0.1 (made with
/// the openssl CLI) and logs every connection: the cluster, and the certificate's path.
pub fn private_tls() -> (Private, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    let mut req = Command::new("openssl");
    req.args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=custody test server"]);
    req.args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"]).arg(&key).arg("-out").arg(&cert);
    run(req, "openssl req");
    fs::set_permissions(&cert, fs::Permissions::from_mode(0o644)).expect("chmod cert");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod key");
    if as_root() {
        run(
            {
                let mut c = Command::new("chown");
                c.arg("postgres").arg(&key);
                c
            },
            "chown the key",
        );
    }
    let extra = format!(
        "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={} -c log_connections=on",
        cert.display(),
        key.display()
    );
    let port = create(dir.path(), &extra);
    let cluster = Box::leak(Box::new(Cluster { port, data: dir.path().join("data") }));
    (Private { cluster, _dir: dir }, cert)
}

impl Cluster {
    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.data.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        let mut stop = server_cmd("pg_ctl");
        stop.arg("-D").arg(&self.cluster.data).args(["-m", "immediate", "stop"]);
        let _ = stop.output();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().expect("its address").port()
}

fn ready(port: u16) -> bool {
    let out = Command::new(bin("pg_isready")).args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "5"]).output();
    out.is_ok_and(|o| o.status.success())
}

impl Cluster {
    /// Restart the server: every session is ended (`pg_ctl restart -m fast`).
    pub fn restart(&self) {
        let mut restart = server_cmd("pg_ctl");
        // The log file again: without it the new server would hold our output pipes open.
        restart.arg("-D").arg(&self.data).arg("-l").arg(self.data.join("server.log"));
        restart.args(["-m", "fast", "-w", "restart"]);
        run(restart, "pg_ctl restart");
        assert!(ready(self.port), "the PostgreSQL server does not answer after its restart");
    }

    /// `postgres://ROLE@127.0.0.1:PORT/DB`.
    pub fn url(&self, role: &str, db: &str) -> String {
        format!("postgres://{role}@127.0.0.1:{}/{db}", self.port)
    }

    /// Run SQL with psql as `role` (password [`PASSWORD`], or the superuser's for
    /// `postgres`) in `db`.
    pub fn psql(&self, role: &str, db: &str, sql: &str) -> Output {
        let password = if role == "postgres" { SUPER_PASSWORD } else { PASSWORD };
        let out = Command::new("psql")
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", &self.url(role, db), "-c", sql])
            .env("PGPASSWORD", password)
            .env_remove("PGPASSFILE")
            .output()
            .expect("run psql");
        Output {
            command: format!("psql as {role}: {sql}"),
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        }
    }

    /// SQL as the superuser, which must succeed; its output.
    pub fn admin(&self, db: &str, sql: &str) -> String {
        self.psql("postgres", db, sql).status(0).stdout().trim().to_owned()
    }

    /// A fresh database owned by a fresh role (which may create roles, as an agency's custody
    /// owner would): the names of both.
    pub fn database(&'static self) -> Database {
        static N: AtomicU32 = AtomicU32::new(0);
        // The random part: the cluster outlives runs, pids are reused, and a test killed part-way
        // leaves its roles behind.
        let random =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        let tag = format!("{}_{}_{random:x}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        let (owner, name) = (format!("owner_{tag}"), format!("ledger_{tag}"));
        self.admin("postgres", &format!("CREATE ROLE {owner} LOGIN CREATEROLE PASSWORD '{PASSWORD}'"));
        self.admin("postgres", &format!("CREATE DATABASE {name} OWNER {owner}"));
        Database { cluster: self, owner, name, tag }
    }
}

/// A database for one test, dropped when the test ends (a few MB each: a run makes hundreds).
pub struct Database {
    pub cluster: &'static Cluster,
    pub owner: String,
    pub name: String,
    tag: String,
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ =
            self.cluster.psql("postgres", "postgres", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

impl Database {
    pub fn url(&self, role: &str) -> String {
        self.cluster.url(role, &self.name)
    }

    /// A login role (password [`PASSWORD`]) in `group` (`custody_recorder`, `custody_auditor`
    /// or none), named after `what` and this test.
    pub fn role(&self, what: &str, group: Option<&str>) -> String {
        let role = format!("{what}_{}", self.tag);
        let member = group.map(|g| format!(" IN ROLE {g}")).unwrap_or_default();
        self.cluster.admin("postgres", &format!("CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'{member}"));
        role
    }

    pub fn psql(&self, role: &str, sql: &str) -> Output {
        self.cluster.psql(role, &self.name, sql)
    }

    /// `(seq, hash, body)` of every event, read with psql.
    pub fn rows(&self) -> Vec<(i64, String, String)> {
        self.admin("SELECT json_build_array(seq, hash, body)::text FROM custody.events ORDER BY seq")
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("a row as JSON");
                (v[0].as_i64().unwrap(), v[1].as_str().unwrap().to_owned(), v[2].as_str().unwrap().to_owned())
            })
            .collect()
    }

    pub fn admin(&self, sql: &str) -> String {
        self.cluster.admin(&self.name, sql)
    }

    /// How many advisory locks are held (`granted`) or waited for in this database. pg_locks
    /// lists the whole cluster's locks, and other tests' workstations share the cluster.
    pub fn advisory_locks(&self, granted: bool) -> usize {
        let sql = format!(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted = {granted} \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        );
        self.admin(&sql).parse().expect("a count")
    }

    /// End the sessions holding an advisory lock in this database, and only in it: terminating
    /// every holder in the cluster killed other tests' workstations mid-append.
    pub fn end_advisory_lock_holders(&self) {
        self.admin(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        );
    }

    /// Edit row `seq` of `custody.TABLE` as its owner can: the append-only trigger disabled,
    /// `from` replaced by `to` in its body, the trigger enabled again.
    pub fn edit_as_owner(&self, table: &str, seq: i64, from: &str, to: &str) {
        let sql = format!(
            "ALTER TABLE custody.{table} DISABLE TRIGGER {table}_append_only; \
             UPDATE custody.{table} SET body = replace(body, '{from}', '{to}') WHERE seq = {seq}; \
             ALTER TABLE custody.{table} ENABLE TRIGGER {table}_append_only"
        );
        self.psql(&self.owner, &sql).status(0);
    }
}
