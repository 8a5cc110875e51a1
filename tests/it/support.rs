//! The test builder: a fresh store in a temp dir, the real `custody` binary run with a fixed
//! environment, and assertions on exit code, stdout and stderr that show both on failure.
//! Independent oracles (`sha256sum`, `b3sum`, `md5sum`, `sha1sum`, SQLite) live here too.

#![allow(dead_code)] // each test file uses a different part of the builder

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use custody::media::synth::{self, Fixture};
use serde_json::Value;
use tempfile::TempDir;

/// The examiner every test acts as (CUSTODY_EXAMINER).
pub const EXAMINER: &str = "Examiner Tess";

/// Longest any one custody run may take before the test fails (a hang is a bug, e.g. a FIFO
/// opened for reading).
const TIMEOUT: Duration = Duration::from_secs(120);

/// The ledger backend the store-independent tests run against: `CUSTODY_TEST_LEDGER=postgres`
/// (bins/test's second pass) makes every [`Store::new`] an agency store whose ledger is a
/// database of its own in the harness's PostgreSQL cluster; unset, a `ledger.db`.
pub fn agency() -> bool {
    std::env::var("CUSTODY_TEST_LEDGER").is_ok_and(|v| v == "postgres")
}

/// Whether the agency stores keep their objects in the harness's S3 server
/// (`CUSTODY_TEST_OBJECTS=s3`, with [`agency`]: bins/test's second pass), each store under a
/// bucket of its own.
pub fn bucket_objects() -> bool {
    agency() && std::env::var("CUSTODY_TEST_OBJECTS").is_ok_and(|v| v == "s3")
}

/// The variables of the AWS conventions custody reads: removed from every run, so a
/// developer's own never reach a test, and set to the harness server's under
/// [`bucket_objects`].
const AWS_VARS: [&str; 11] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_SHARED_CREDENTIALS_FILE",
    "CUSTODY_OBJECTS",
];

/// A fresh evidence store (`custody init`) in its own temp dir, with a `work/` directory beside
/// it for source files. Its ledger is SQLite's, or PostgreSQL's under [`agency`]; its objects
/// are in its `objects/`, or in a bucket under [`bucket_objects`].
pub struct Store {
    _dir: TempDir,
    root: PathBuf,
    work: PathBuf,
    /// What `custody init` printed.
    pub init: Output,
    /// The agency ledger's database, under [`agency`].
    pub db: Option<crate::postgres::Database>,
    /// The bucket holding the objects (the run's shared one), and the prefix of this store's,
    /// under [`bucket_objects`].
    pub bucket: Option<(crate::s3::Bucket, String)>,
}

impl Store {
    pub fn new() -> Store {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("store");
        let work = dir.path().join("work");
        fs::create_dir(&work).expect("work dir");
        let db = agency().then(|| crate::postgres::cluster().database());
        let mut init = cmd(&["init"]).arg(&root).args(&["--agency", "Test PD"]);
        if let Some(db) = &db {
            init = init.args(&["--ledger", &db.url(&db.owner)]);
        }
        let bucket = bucket_objects().then(|| {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // The random part: the shared bucket outlives runs, and pids are reused.
            let prefix = format!("s-{}-{n}-{:08x}", std::process::id(), rand_u32());
            (crate::s3::server().shared_bucket(), prefix)
        });
        if let Some((bucket, prefix)) = &bucket {
            init = init.args(&["--objects", &bucket.url(prefix)]);
        }
        let init = init.current_dir(&work).run().status(0).clone();
        let root = root.canonicalize().expect("store exists after init");
        Store { _dir: dir, root, work, init, db, bucket }
    }

    /// Whether this store's objects are files in its `objects/` (tests that alter or remove
    /// object files themselves apply to it alone).
    pub fn local_objects(&self) -> bool {
        self.bucket.is_none()
    }

    /// The bytes of the object with this SHA-256, read straight from where it is kept.
    pub fn object_bytes(&self, sha256: &str) -> Vec<u8> {
        match &self.bucket {
            Some((b, prefix)) => b.get(&format!("{prefix}/objects/{}/{}", &sha256[..2], &sha256[2..])),
            None => fs::read(self.object_path(sha256)).expect("read the object"),
        }
    }

    /// Whether this store's ledger is a SQLite file (tests that open `ledger.db` themselves
    /// apply to it alone).
    pub fn sqlite_ledger(&self) -> bool {
        self.db.is_none()
    }

    /// `(seq, hash, body)` of every event, read straight from the database (not through
    /// custody): SQLite, or psql for an agency ledger.
    pub fn rows(&self) -> Vec<(i64, String, String)> {
        match &self.db {
            Some(db) => db.rows(),
            None => {
                let conn = rusqlite::Connection::open_with_flags(
                    self.ledger_path(),
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .expect("open ledger.db read-only");
                let mut stmt = conn.prepare("SELECT seq, hash, body FROM events ORDER BY seq").expect("query events");
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .expect("read events")
                    .map(|r| r.expect("event row"))
                    .collect()
            }
        }
    }

    /// The store directory (canonical).
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// A scratch directory outside the store, the default working directory of commands.
    pub fn work(&self) -> &Path {
        &self.work
    }

    /// `custody --store STORE ARGS…`, run from the work directory.
    pub fn cmd(&self, args: &[&str]) -> Cmd {
        cmd(&[]).arg("--store").arg(&self.root).args(args).current_dir(&self.work)
    }

    /// Write `bytes` to `work/REL` (parents created) and return the path.
    pub fn file(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        write(&self.work.join(rel), bytes)
    }

    /// Ingest one new file with `content` as `CASE:ITEM`; returns the item's JSON from
    /// `ingest --json` (id, name, sha256, …).
    pub fn ingest_text(&self, case: &str, item: &str, name: &str, content: &str) -> Value {
        let path = self.file(&format!("src-{case}-{item}/{name}"), content);
        let out = self.cmd(&["--json", "ingest", "--case", case, "--item", item]).arg(&path).run().status(0).json();
        out["items"][0].clone()
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.root.join("ledger.db")
    }

    /// The ledger opened directly with SQLite, read-write (for tampering).
    pub fn sqlite(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.ledger_path()).expect("open ledger.db with SQLite")
    }

    /// The newest event as `SEQ:HASH`, read straight from the database (not through custody).
    pub fn head(&self) -> String {
        if let Some(db) = &self.db {
            return db.admin("SELECT seq || ':' || hash FROM custody.events ORDER BY seq DESC LIMIT 1");
        }
        let conn =
            rusqlite::Connection::open_with_flags(self.ledger_path(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .expect("open ledger.db read-only");
        conn.query_row("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1", [], |r| {
            Ok(format!("{}:{}", r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .expect("the ledger has a head")
    }

    /// Number of events stored, read straight from the database.
    pub fn event_count(&self) -> i64 {
        if let Some(db) = &self.db {
            return db.admin("SELECT count(*) FROM custody.events").parse().expect("a count");
        }
        let conn =
            rusqlite::Connection::open_with_flags(self.ledger_path(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .expect("open ledger.db read-only");
        conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).expect("count events")
    }

    /// Where custody keeps the object with this SHA-256: `objects/ab/cdef…`. For a store whose
    /// objects are in a bucket: a copy of the object, fetched from the bucket by its
    /// administrator (a path that does not exist when the bucket does not hold it). Tests that
    /// alter or remove the file apply to [`Store::local_objects`] stores alone.
    pub fn object_path(&self, sha256: &str) -> PathBuf {
        let Some((bucket, prefix)) = &self.bucket else {
            return self.root.join("objects").join(&sha256[..2]).join(&sha256[2..]);
        };
        let copy = self._dir.path().join("fetched").join(&sha256[..2]).join(&sha256[2..]);
        if !copy.is_file() {
            fs::create_dir_all(copy.parent().unwrap()).expect("fetched dir");
            let key = format!("{prefix}/objects/{}/{}", &sha256[..2], &sha256[2..]);
            let got = bucket.s3api(crate::s3::Identity::Admin, "get-object", &["--key", &key, copy.to_str().unwrap()]);
            if got.code != Some(0) {
                let _ = fs::remove_file(&copy);
            }
        }
        copy
    }

    /// Every file under `objects/` (or every key of the bucket's), sorted.
    pub fn object_files(&self) -> Vec<PathBuf> {
        match &self.bucket {
            Some((b, prefix)) => {
                b.keys_under(&format!("{prefix}/objects/")).into_iter().map(|(k, _)| PathBuf::from(k)).collect()
            }
            None => files_under(&self.root.join("objects")),
        }
    }

    /// Alter the object with this SHA-256 behind custody's back, as a faulty disk or a tamperer
    /// would: its file rewritten in place, or (in a bucket) a new version written over its key
    /// by the bucket's administrator.
    pub fn alter_object(&self, sha256: &str, alter: impl FnOnce(&mut Vec<u8>)) {
        match &self.bucket {
            None => {
                let path = self.object_path(sha256);
                let mode = fs::metadata(&path).expect("the object").permissions().mode();
                fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o200)).expect("chmod u+w");
                let mut bytes = fs::read(&path).expect("read");
                alter(&mut bytes);
                fs::write(&path, bytes).expect("write");
            }
            Some((bucket, prefix)) => {
                let mut bytes = self.object_bytes(sha256);
                alter(&mut bytes);
                let body = self._dir.path().join("altered");
                fs::write(&body, bytes).expect("write");
                let key = format!("{prefix}/objects/{}/{}", &sha256[..2], &sha256[2..]);
                bucket
                    .s3api(crate::s3::Identity::Admin, "put-object", &["--key", &key, "--body", body.to_str().unwrap()])
                    .status(0);
                let _ = fs::remove_file(self._dir.path().join("fetched").join(&sha256[..2]).join(&sha256[2..]));
            }
        }
    }

    /// Remove the object behind custody's back: delete its file, or (in a bucket, whose
    /// retention keeps every version) hide it under a delete marker.
    pub fn remove_object(&self, sha256: &str) {
        match &self.bucket {
            None => fs::remove_file(self.object_path(sha256)).expect("remove the object"),
            Some((bucket, prefix)) => {
                let key = format!("{prefix}/objects/{}/{}", &sha256[..2], &sha256[2..]);
                bucket.s3api(crate::s3::Identity::Workstation, "delete-object", &["--key", &key]).status(0);
            }
        }
    }

    /// [`Store::alter_object`]: flip one bit of its middle byte.
    pub fn flip_object_byte(&self, sha256: &str) {
        self.alter_object(sha256, |bytes| {
            let at = bytes.len() / 2;
            bytes[at] ^= 0x01;
        });
    }

    /// The SHA-256 of every object the store holds, read from its `objects/` or its bucket.
    pub fn object_shas(&self) -> Vec<String> {
        self.object_files()
            .iter()
            .map(|f| {
                let mut parts = f.iter().rev().take(2).map(|c| c.to_string_lossy().into_owned()).collect::<Vec<_>>();
                parts.reverse();
                parts.concat()
            })
            .collect()
    }

    /// Every entry left in `tmp/` (staging directories of commands).
    pub fn tmp_entries(&self) -> Vec<PathBuf> {
        match fs::read_dir(self.root.join("tmp")) {
            Ok(entries) => entries.map(|e| e.expect("tmp entry").path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// What a failed command must not have changed: the head, the event count and the objects.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot { head: self.head(), events: self.event_count(), objects: self.object_files() }
    }

    /// Assert nothing was recorded or stored since `before`, and nothing was left in `tmp/`.
    #[track_caller]
    pub fn assert_unchanged(&self, before: &Snapshot) {
        assert_eq!(&self.snapshot(), before, "the store changed although the command failed");
        assert_eq!(self.tmp_entries(), Vec::<PathBuf>::new(), "leftovers in the store's tmp/");
    }

    /// `custody verify`, expecting success.
    #[track_caller]
    pub fn verify_ok(&self) -> Output {
        self.cmd(&["verify"]).run().status(0).stdout_has("OK").clone()
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    head: String,
    events: i64,
    objects: Vec<PathBuf>,
}

/// A custody command being built.
pub struct Cmd {
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    dir: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
    /// A program (and its arguments) that runs the binary: `unshare …`, `setpriv …`.
    wrap: Vec<OsString>,
    _scratch: Option<TempDir>,
}

/// `custody ARGS…` with no store given: CUSTODY_STORE is removed from the environment, the
/// examiner is fixed, no config file is read, and the working directory is a fresh empty temp
/// dir unless set.
pub fn cmd(args: &[&str]) -> Cmd {
    Cmd {
        args: args.iter().map(OsString::from).collect(),
        env: vec![
            ("CUSTODY_STORE".into(), None),
            ("CUSTODY_LOCK_TIMEOUT".into(), None),
            ("CUSTODY_EXAMINER".into(), Some(EXAMINER.into())),
            ("NO_COLOR".into(), Some("1".into())),
            // No user config file: tests see only what they set.
            ("CUSTODY_CONFIG".into(), Some("/nonexistent/custody-test-config.yaml".into())),
            // An agency store's ledger logs in with the test roles' password (and a store's
            // own ledger.db ignores it).
            ("PGPASSWORD".into(), Some(crate::postgres::PASSWORD.into())),
            ("CUSTODY_LEDGER".into(), None),
        ]
        .into_iter()
        .chain(aws_env())
        .collect(),
        dir: None,
        stdin: None,
        wrap: Vec::new(),
        _scratch: None,
    }
}

/// A random number (seeded by the clock and the process), for names that must not repeat.
fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish() as u32
}

/// Every AWS variable removed, then the harness server's endpoint and workstation credentials
/// under [`bucket_objects`].
fn aws_env() -> Vec<(OsString, Option<OsString>)> {
    let mut env: Vec<(OsString, Option<OsString>)> = AWS_VARS.iter().map(|v| (v.into(), None)).collect();
    if bucket_objects() {
        let server = crate::s3::server();
        let (key, secret) = crate::s3::Identity::Workstation.keys();
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", key.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", secret.to_owned()),
            ("AWS_ENDPOINT_URL", server.endpoint()),
            ("AWS_REGION", crate::s3::REGION.to_owned()),
        ] {
            env.push((k.into(), Some(v.into())));
        }
    }
    env
}

impl Cmd {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: &[S]) -> Cmd {
        self.args.extend(args.iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Cmd {
        self.env.push((key.into(), Some(value.as_ref().to_owned())));
        self
    }

    /// Set every `(name, value)` of `vars`.
    pub fn envs(mut self, vars: Vec<(String, String)>) -> Cmd {
        for (k, v) in vars {
            self.env.push((k.into(), Some(v.into())));
        }
        self
    }

    pub fn env_remove(mut self, key: &str) -> Cmd {
        self.env.push((key.into(), None));
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.dir = Some(dir.as_ref().to_owned());
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(bytes.into());
        self
    }

    /// The binary's command line (arguments, working directory, a scratch one if none was
    /// given, environment; stdout and stderr piped) and how to show it in a failure.
    fn command(&mut self) -> (Command, String) {
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => {
                let scratch = tempfile::tempdir().expect("temp dir");
                let d = scratch.path().to_owned();
                self._scratch = Some(scratch);
                d
            }
        };
        let mut command = match self.wrap.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_custody"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_custody")),
        };
        command.args(&self.args).current_dir(&dir);
        for (k, v) in &self.env {
            match v {
                Some(v) => command.env(k, v),
                None => command.env_remove(k),
            };
        }
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let shown = format!(
            "{}custody {} (in {})",
            self.wrap.iter().map(|a| format!("{a:?} ")).collect::<String>(),
            self.args.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(" "),
            dir.display()
        );
        (command, shown)
    }

    /// Run the binary to completion (failing the test if it runs past the timeout).
    #[track_caller]
    pub fn run(mut self) -> Output {
        let (mut command, shown) = self.command();
        command.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
        if let Some(bytes) = self.stdin.take() {
            let mut pipe = child.stdin.take().expect("stdin piped");
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = match rx.recv_timeout(TIMEOUT) {
            Ok(out) => out.unwrap_or_else(|e| panic!("waiting for {shown}: {e}")),
            Err(_) => {
                // SAFETY: kill(2) on the pid of the child this test started and has not reaped.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                panic!("{shown} did not finish within {} s", TIMEOUT.as_secs());
            }
        };
        Output { command: shown, code: out.status.code(), stdout: out.stdout, stderr: out.stderr }
    }
}

/// How a test makes a store read-only to custody, as an archived copy is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOnly {
    /// The store bind-mounted read-only over itself in a private mount namespace of the one
    /// command (`unshare --map-root-user --mount`): the kernel refuses every write with EROFS,
    /// to root as well, and nothing outside that command sees the mount. Works as root and,
    /// where user namespaces are allowed, as any user.
    Mount,
    /// Write permission taken from the store's files and directories
    /// ([`Store::remove_write_permission`]), the command run by a user the permissions bind:
    /// `nobody` (through `setpriv`) when the test runs as root, which writes through them.
    Permissions,
}

impl Cmd {
    /// Run with the directory `dir` (a store) read-only, made so `how`. With
    /// [`ReadOnly::Permissions`], hold a [`Store::remove_write_permission`] guard meanwhile.
    pub fn read_only(mut self, dir: &Path, how: ReadOnly) -> Cmd {
        // SAFETY: geteuid cannot fail and touches no memory.
        let root = unsafe { libc::geteuid() } == 0;
        match how {
            ReadOnly::Mount => {
                let script = r#"mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@""#;
                self.wrap = ["unshare", "--map-root-user", "--mount", "--", "sh", "-c", script]
                    .iter()
                    .map(OsString::from)
                    .chain([dir.as_os_str().to_owned()])
                    .collect();
            }
            ReadOnly::Permissions if root => {
                self.wrap = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
                    .iter()
                    .map(OsString::from)
                    .collect();
            }
            ReadOnly::Permissions => {}
        }
        self
    }
}

impl Store {
    /// `custody --store STORE ARGS…` with the store read-only, made so `how` (see
    /// [`Cmd::read_only`]).
    pub fn read_only_cmd(&self, how: ReadOnly, args: &[&str]) -> Cmd {
        self.cmd(args).read_only(&self.root, how)
    }

    /// Take write permission from every directory and file of the store (and open the temp
    /// dir to other users, for `nobody`) until the guard is dropped, which restores the modes.
    pub fn remove_write_permission(&self) -> Permissions {
        let mut saved = Vec::new();
        let top = self.root.parent().expect("the store's temp dir").to_owned();
        saved.push((top.clone(), mode(&top)));
        fs::set_permissions(&top, fs::Permissions::from_mode(mode(&top) | 0o055)).expect("chmod temp dir");
        let mut all = vec![self.root.clone()];
        let mut i = 0;
        while i < all.len() {
            if all[i].is_dir() {
                let children: Vec<PathBuf> =
                    fs::read_dir(&all[i]).expect("read store dir").map(|e| e.expect("entry").path()).collect();
                all.extend(children);
            }
            i += 1;
        }
        // Files first, then directories from the deepest up.
        for path in all.iter().rev() {
            let m = mode(path);
            saved.push((path.clone(), m));
            let readable = if path.is_dir() { 0o555 } else { 0o444 };
            fs::set_permissions(path, fs::Permissions::from_mode((m | readable) & !0o222)).expect("chmod a-w");
        }
        Permissions { saved }
    }
}

/// Modes to restore when dropped (see [`Store::remove_write_permission`]).
pub struct Permissions {
    saved: Vec<(PathBuf, u32)>,
}

impl Drop for Permissions {
    fn drop(&mut self) {
        // Directories were saved after their contents: restore in reverse, parents first.
        for (path, m) in self.saved.iter().rev() {
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(*m));
        }
    }
}

/// What a run printed and how it exited.
#[derive(Clone, Debug)]
pub struct Output {
    pub command: String,
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    fn report(&self) -> String {
        format!(
            "{}\nexit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}--------------",
            self.command,
            self.code,
            self.stdout(),
            self.stderr()
        )
    }

    #[track_caller]
    pub fn status(&self, code: i32) -> &Output {
        assert_eq!(self.code, Some(code), "expected exit {code}\n{}", self.report());
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, text: &str) -> &Output {
        assert!(self.stdout().contains(text), "stdout lacks {text:?}\n{}", self.report());
        self
    }

    #[track_caller]
    pub fn stdout_lacks(&self, text: &str) -> &Output {
        assert!(!self.stdout().contains(text), "stdout has {text:?}\n{}", self.report());
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, text: &str) -> &Output {
        assert!(self.stderr().contains(text), "stderr lacks {text:?}\n{}", self.report());
        self
    }

    #[track_caller]
    pub fn stderr_lacks(&self, text: &str) -> &Output {
        assert!(!self.stderr().contains(text), "stderr has {text:?}\n{}", self.report());
        self
    }

    /// stdout exactly equal to `bytes`.
    #[track_caller]
    pub fn stdout_is(&self, bytes: impl AsRef<[u8]>) -> &Output {
        let want = bytes.as_ref();
        assert!(
            self.stdout == want,
            "stdout differs\n--- expected ---\n{}\n{}",
            String::from_utf8_lossy(want),
            self.report()
        );
        self
    }

    /// stdout parsed as the one JSON document `--json` prints.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.report()))
    }

    /// The full `ledger head: SEQ:HASH` printed (stdout or stderr) by `init`, `package`, `log`.
    #[track_caller]
    pub fn head(&self) -> String {
        let all = format!("{}\n{}", self.stdout(), self.stderr());
        head_in(&all).unwrap_or_else(|| panic!("no `ledger head: SEQ:HASH` line\n{}", self.report()))
    }

    /// The short `ledger head SEQ:XXXXXXXX…` line other changing commands end with (stdout or
    /// stderr): `SEQ:` and the hash's first 8 hex digits.
    #[track_caller]
    pub fn short_head(&self) -> String {
        let all = format!("{}\n{}", self.stdout(), self.stderr());
        let line = all.lines().find(|l| l.starts_with("ledger head ") && l.ends_with('…'));
        let head = line.map(|l| l["ledger head ".len()..].trim_end_matches('…').to_owned());
        let ok = head.as_deref().and_then(|h| h.split_once(':')).is_some_and(|(seq, hash)| {
            seq.bytes().all(|b| b.is_ascii_digit()) && hash.len() == 8 && hash.bytes().all(|b| b.is_ascii_hexdigit())
        });
        assert!(ok, "no `ledger head SEQ:XXXXXXXX…` line\n{}", self.report());
        head.unwrap_or_default()
    }
}

/// The first `ledger head: SEQ:HASH` in `text`, checked for shape.
pub fn head_in(text: &str) -> Option<String> {
    let rest = &text[text.find("ledger head: ")? + "ledger head: ".len()..];
    let head: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == ':').collect();
    let (seq, hash) = head.split_once(':')?;
    let ok = !seq.is_empty()
        && seq.bytes().all(|b| b.is_ascii_digit())
        && hash.len() == 64
        && hash.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then_some(head)
}

/// Write `bytes` to `path`, creating parent directories.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> PathBuf {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parent dirs");
    }
    fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path.to_owned()
}

/// Every file (not directory) under `dir`, recursively, sorted. A file that goes between the
/// listing and its look-up (polling a directory a running custody stages into) is not listed.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else { return out };
    for e in entries {
        let path = e.expect("dir entry").path();
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("metadata of {}: {e}", path.display()),
        };
        if meta.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Generate a synthetic media fixture at `path`.
pub fn media(kind: Fixture, path: &Path) -> PathBuf {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parent dirs");
    }
    synth::generate(kind, path).unwrap_or_else(|e| panic!("generating {kind:?}: {e:#}"));
    path.to_owned()
}

/// Damage a file behind custody's back, as a faulty disk or a tamperer would: make it writable
/// by its owner (objects are read-only) and flip one bit of its middle byte.
pub fn flip_byte(path: &Path) {
    let mode = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode();
    fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o200)).expect("chmod u+w");
    let mut bytes = fs::read(path).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    fs::write(path, bytes).expect("write");
}

/// Permission bits of a file.
pub fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

/// Run an external tool (an oracle); returns its output (any exit code).
#[track_caller]
pub fn tool(program: &str, args: &[&OsStr], dir: &Path) -> Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"));
    Output {
        command: format!("{program} {args:?} (in {})", dir.display()),
        code: out.status.code(),
        stdout: out.stdout,
        stderr: out.stderr,
    }
}

/// A system tool bins/setup installs (sha256sum, qpdf, xorriso, ffmpeg…), from the PATH; a
/// missing one fails the test (it does not skip it).
#[track_caller]
pub fn system_oracle(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("the oracle {name} is not installed: run bins/setup"))
}

/// A validator bins/setup installs into the venv under target/oracles (bagit.py,
/// case_validate).
#[track_caller]
pub fn venv_oracle(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/oracles/bin").join(name);
    assert!(
        path.is_file(),
        "the oracle {} is missing: run bins/setup (it installs bagit==1.9.0 and case-utils==0.18.0 into target/oracles)",
        path.display()
    );
    path
}

/// Run an oracle with `args` in `dir`; any exit code.
#[track_caller]
pub fn run_oracle<S: AsRef<OsStr>>(program: &Path, args: &[S], dir: &Path) -> Output {
    let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_owned()).collect();
    let refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    tool(program.to_str().expect("a UTF-8 tool path"), &refs, dir)
}

/// A run in full (command, exit code, stdout, stderr), for failure messages.
pub fn shown(out: &Output) -> String {
    format!("{}\nexit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}", out.command, out.code, out.stdout(), out.stderr())
}

/// The file plays: ffmpeg (the oracle) decodes all of it and says nothing at `-v error`.
#[track_caller]
pub fn assert_plays(path: &Path) {
    let out = run_oracle(
        &system_oracle("ffmpeg"),
        &[
            OsStr::new("-v"),
            OsStr::new("error"),
            OsStr::new("-i"),
            path.as_os_str(),
            OsStr::new("-f"),
            OsStr::new("null"),
            OsStr::new("-"),
        ],
        Path::new("."),
    );
    out.status(0);
    assert!(out.stderr().trim().is_empty(), "{} does not play cleanly\n{}", path.display(), shown(&out));
}

/// The digest `program` (sha256sum, b3sum, md5sum, sha1sum) prints for the file.
#[track_caller]
pub fn digest_with(program: &str, path: &Path) -> String {
    // Read through stdin so odd file names cannot change the output format.
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    digest_bytes_with(program, &bytes)
}

/// The digest `program` prints for `bytes` given on stdin.
#[track_caller]
pub fn digest_bytes_with(program: &str, bytes: &[u8]) -> String {
    let mut child = Command::new(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let data = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer").expect("write to stdin");
    assert!(out.status.success(), "{program} failed");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let hex = text.split_whitespace().next().expect("a digest").to_owned();
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{program} printed {text:?}");
    hex
}

/// docs/ledger.md's committed form in Python's standard library, independently of custody:
/// `committed(ev)` drops `private` and replaces each member it lists by its salted commitment.
pub const COMMITTED_PY: &str = r#"
import hashlib, json

def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

def committed(ev):
    ev = json.loads(json.dumps(ev))
    private = ev.pop("private", None)
    for pointer in (private or {}).get("members", []):
        *path, last = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
        node = ev
        for t in path:
            node = node[int(t)] if isinstance(node, list) else node[t]
        key = int(last) if isinstance(node, list) else last
        data = (private["salt"] + "\0" + pointer + "\0" + canonical(node[key])).encode("utf-8")
        node[key] = {"withheld_sha256": hashlib.sha256(b"custody-withheld-v1\0" + data).hexdigest()}
    return ev
"#;

/// The documented event hash of a stored body: SHA-256 over "custody-ledger-event-v1\0" and
/// the canonical committed form (the body itself for format 1), computed with Python.
#[track_caller]
pub fn event_hash(body: &str) -> String {
    let script = format!(
        "{COMMITTED_PY}\nimport sys\nev = json.loads(sys.argv[1])\n\
         print(hashlib.sha256(b'custody-ledger-event-v1\\0' + canonical(committed(ev)).encode('utf-8')).hexdigest())\n"
    );
    let out = tool("python3", &[OsStr::new("-c"), OsStr::new(&script), OsStr::new(body)], Path::new("."));
    out.status(0);
    out.stdout().trim().to_owned()
}

pub fn sha256sum(path: &Path) -> String {
    digest_with("sha256sum", path)
}

pub fn b3sum(path: &Path) -> String {
    digest_with("b3sum", path)
}

/// True when this process can write into a directory whose mode forbids it (root, or
/// CAP_DAC_OVERRIDE): permission-based tests cannot work then.
pub fn permissions_are_bypassed(dir: &Path) -> bool {
    let probe = dir.join(".custody-permission-probe");
    match fs::write(&probe, b"x") {
        Ok(()) => {
            let _ = fs::remove_file(&probe);
            true
        }
        Err(_) => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Media helpers for the still and clip tests: fixtures taken into custody, and the ffmpeg /
// ffprobe command-line tools as oracles.

/// A media file taken into custody by [`Store::ingest_media`].
pub struct Ingested {
    /// The item's short ID (i1, i2, …).
    pub id: String,
    /// The source file in the work directory.
    pub path: PathBuf,
    /// What the fixture generator wrote (`None` for files made some other way).
    pub info: Option<synth::FixtureInfo>,
}

impl Ingested {
    /// The fixture facts (panics for files not made by the generator).
    pub fn info(&self) -> &synth::FixtureInfo {
        self.info.as_ref().expect("a generated fixture")
    }
}

impl Store {
    /// Generate fixture `kind` into `work/media/` and ingest it (case 24-1234, item 9).
    pub fn ingest_fixture(&self, kind: Fixture) -> Ingested {
        let path = self.work.join("media").join(kind.file_name());
        fs::create_dir_all(path.parent().expect("parent")).expect("create media dir");
        let info = synth::generate(kind, &path).unwrap_or_else(|e| panic!("generating {kind:?}: {e:#}"));
        let mut ingested = self.ingest_media(&path);
        ingested.info = Some(info);
        ingested
    }

    /// Ingest one media file (case 24-1234, item 9); returns its item.
    #[track_caller]
    pub fn ingest_media(&self, path: &Path) -> Ingested {
        let out = self.cmd(&["--json", "ingest", "--case", "24-1234", "--item", "9"]).arg(path).run().status(0).json();
        let id = out["items"][0]["id"].as_str().unwrap_or_else(|| panic!("no item id in {out:#}")).to_owned();
        Ingested { id, path: path.to_owned(), info: None }
    }
}

/// Run `ffprobe -v error -of json ARGS PATH`; panics unless it succeeds.
#[track_caller]
pub fn ffprobe_json(path: &Path, args: &[&str]) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(path)
        .output()
        .expect("running ffprobe (is it installed?)");
    assert!(out.status.success(), "ffprobe {args:?} {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

/// Run `ffmpeg -nostdin ARGS` and return stdout; panics unless it succeeds.
#[track_caller]
pub fn ffmpeg_stdout(args: &[&OsStr]) -> Vec<u8> {
    let out = Command::new("ffmpeg").arg("-nostdin").args(args).output().expect("running ffmpeg (is it installed?)");
    assert!(out.status.success(), "ffmpeg {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// `ffmpeg -v error -i PATH OUTPUT_ARGS...`: what it writes on stdout.
#[track_caller]
pub fn ffmpeg_read(path: &Path, output_args: &[&str]) -> Vec<u8> {
    let mut args = vec![OsStr::new("-v"), OsStr::new("error"), OsStr::new("-i"), path.as_os_str()];
    args.extend(output_args.iter().map(OsStr::new));
    ffmpeg_stdout(&args)
}

/// Decode every video frame of `path` with the ffmpeg CLI to 8-bit grey (no frame-rate
/// conversion) and read each frame's index band.
#[track_caller]
pub fn decoded_frame_indices(path: &Path, width: usize, height: usize) -> Vec<Option<u32>> {
    let raw =
        ffmpeg_read(path, &["-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-"]);
    assert_eq!(raw.len() % (width * height), 0, "decoded output is not whole {width}x{height} frames");
    raw.chunks_exact(width * height).map(|f| synth::read_frame_index(f, width, width, height)).collect()
}

/// What `ffmpeg -v error -i FILE -f null -` prints while decoding every stream.
pub fn decode_errors(path: &Path) -> Vec<String> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("running ffmpeg");
    assert!(out.status.success(), "ffmpeg cannot decode {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).lines().map(str::to_owned).collect()
}

// ---------------------------------------------------------------------------------------------
// A custody run in the background, to be killed part-way (the batch resume tests).

/// A custody process started by [`Cmd::spawn`] and not yet waited for.
pub struct Running {
    pub command: String,
    child: std::process::Child,
    _scratch: Option<TempDir>,
}

impl Cmd {
    /// Start the binary without waiting for it (stdin null, stdout and stderr piped).
    #[track_caller]
    pub fn spawn(mut self) -> Running {
        let (mut command, shown) = self.command();
        command.stdin(Stdio::null());
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
        Running { command: shown, child, _scratch: self._scratch.take() }
    }
}

impl Running {
    /// Whether the process has exited (it is reaped then, but its output is still readable).
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    /// Read the first `n` bytes it prints, then close the pipe, as `| head -c N` does.
    pub fn read_then_close_stdout(&mut self, n: usize) -> Vec<u8> {
        use std::io::Read;
        let mut pipe = self.child.stdout.take().expect("stdout piped");
        let mut first = vec![0; n];
        pipe.read_exact(&mut first).expect("read the first bytes");
        first
    }

    /// Send it a signal (SIGINT: as Ctrl-C does).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the pid of the child this test started and has not reaped.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill {}: {}", self.child.id(), std::io::Error::last_os_error());
    }

    /// SIGKILL it (when still running) and collect what it printed.
    pub fn kill(mut self) -> Output {
        let _ = self.child.kill();
        self.wait()
    }

    /// Wait for it to exit and collect what it printed.
    pub fn wait(self) -> Output {
        let out = self.child.wait_with_output().expect("wait for custody");
        Output { command: self.command, code: out.status.code(), stdout: out.stdout, stderr: out.stderr }
    }
}

impl Store {
    /// Number of events, or `None` when SQLite cannot answer right now (polling while a custody
    /// process writes).
    pub fn try_event_count(&self) -> Option<i64> {
        if let Some(db) = &self.db {
            return db.psql("postgres", "SELECT count(*) FROM custody.events").stdout().trim().parse().ok();
        }
        let conn =
            rusqlite::Connection::open_with_flags(self.ledger_path(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .ok()?;
        conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).ok()
    }

    /// Every event body, in order, parsed, read straight from the database.
    pub fn event_bodies(&self) -> Vec<Value> {
        if self.db.is_some() {
            return self.rows().iter().map(|(_, _, b)| serde_json::from_str(b).expect("event body is JSON")).collect();
        }
        let conn =
            rusqlite::Connection::open_with_flags(self.ledger_path(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .expect("open ledger.db read-only");
        let mut stmt = conn.prepare("SELECT body FROM events ORDER BY seq").expect("query events");
        stmt.query_map([], |r| r.get::<_, String>(0))
            .expect("read events")
            .map(|b| serde_json::from_str(&b.expect("event row")).expect("event body is JSON"))
            .collect()
    }
}
