//! The write-once, content-addressed object store, and the one data path every changing
//! command goes through.
//!
//! Layout: `ledger.db` (the custody ledger; an agency store has `store.json` instead, naming
//! its PostgreSQL ledger), `objects/ab/cdef…` (one read-only file per
//! object, named by its SHA-256), `tmp/` (staging directories, one per running command) and
//! `lock` (held while an event is committed and its objects are moved into place).
//!
//! The data path: stage each output in the command's own staging directory, digesting it as
//! it is written, fsync it and verify it by reading it back → take the store lock → append one
//! event in one transaction → rename the staged files into `objects/` without overwriting and
//! fsync the directories → release the lock. A command killed before the commit leaves only
//! its staging directory, which the next writer or `verify` removes; one killed after the
//! commit leaves complete staged files that are moved into place the same way ("recovery").
//! Either way nothing half-written ever stands under an object name.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};

use crate::digest::{self, Algorithm, Digests};
use crate::error;
use crate::fsutil;
use crate::ledger::{Access, Actor, Draft, Event, Head, Ledger, Location, Txn};
use crate::mapped::Mapped;
use crate::objects::Bucket;
use std::sync::Arc;

pub const LEDGER_FILE: &str = "ledger.db";
/// An agency store's descriptor: where its ledger is (never a password).
pub const DESCRIPTOR: &str = "store.json";
pub const OBJECTS_DIR: &str = "objects";
pub const TMP_DIR: &str = "tmp";
pub const LOCK_FILE: &str = "lock";

/// Name prefix of a staging directory that is not yet locked.
const NEW_STAGING_PREFIX: &str = ".new-";

/// Start writing a large copy to disk every this many bytes, so its final fsync is short.
const WRITEBACK_STEP: u64 = 32 << 20;

/// Default time to wait for the store lock or the ledger before giving up with exit 3.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    lock_timeout: Duration,
    ledger: Location,
    /// The bucket holding the objects of an agency store that keeps them in S3; `None`: they
    /// are in `objects/`.
    objects: Option<Arc<Bucket>>,
    /// `custody redo`: derived commands run in full, and stop before recording (see
    /// [`crate::derive::Rehearsed`]).
    rehearsal: bool,
}

impl Store {
    /// This store for `custody redo`: commands that derive files run in full but record nothing;
    /// [`crate::derive::commit`] hands their outputs back instead.
    pub fn rehearsing(self) -> Store {
        Store { rehearsal: true, ..self }
    }

    pub fn is_rehearsal(&self) -> bool {
        self.rehearsal
    }

    /// Create a new store in `dir` (created if missing; must not already be a store).
    pub fn create(dir: &Path, lock_timeout: Duration) -> Result<(Store, Ledger)> {
        let (store, created) = Store::prepare(dir, lock_timeout)?;
        // A failed init leaves nothing behind.
        let ledger = Ledger::create(&store.ledger_path()).inspect_err(|_| store.unprepare(created))?;
        fsutil::fsync_dir(&store.root)?;
        let store = Store { ledger: Location::File(store.ledger_path()), ..store };
        Ok((store, ledger))
    }

    /// Create a store in `dir` whose ledger is a new one in the agency's PostgreSQL database at
    /// `url` (whose role will own its tables), its objects in the bucket `objects` names, else in
    /// `dir` (which workstations then share). The URL is written to `store.json`; a password
    /// never is.
    pub fn create_agency(
        dir: &Path,
        url: &str,
        objects: Option<&str>,
        lock_timeout: Duration,
    ) -> Result<(Store, Ledger)> {
        refuse_password(url)?;
        // The bucket first: it must answer to these credentials before anything is made.
        let bucket = objects.map(open_checked).transpose()?;
        let (store, created) = Store::prepare(dir, lock_timeout)?;
        let cleanup = |_: &anyhow::Error| store.unprepare(created);
        let ledger = Ledger::create_postgres(url, lock_timeout).inspect_err(cleanup)?;
        store.write_descriptor(url, bucket.as_deref()).inspect_err(cleanup)?;
        let ledger = ledger.for_store(&store.root);
        Ok((Store { ledger: Location::Postgres(url.to_owned()), objects: bucket, ..store }, ledger))
    }

    /// A workstation's store in `dir` for the agency store whose ledger is at `url` (opened as
    /// the workstation's role, schema checked): its objects are where the ledger's `init` event
    /// says (a bucket: listed first with the environment's credentials). Writes `store.json`.
    pub fn join(dir: &Path, url: &str, lock_timeout: Duration) -> Result<(Store, Ledger)> {
        refuse_password(url)?;
        let location = Location::Postgres(url.to_owned());
        let ledger = Ledger::open_at(&location, lock_timeout, Access::ReadWrite)?;
        let first = ledger.event(1)?.filter(|e| e.action == "init").ok_or_else(|| {
            error::input(format!(
                "{} holds no custody store (no init event); create one with `custody init DIR --ledger URL`",
                crate::ledger::pg::shown(url)
            ))
        })?;
        let Some(objects) = first.params.get("objects").and_then(|v| v.as_str()) else {
            return Err(error::input(format!(
                "the agency store of {} keeps its objects in its own directory ({}), not in a bucket: a workstation \
                 uses that directory (shared), with CUSTODY_LEDGER naming its own role; nothing was changed",
                crate::ledger::pg::shown(url),
                first.params.get("store").and_then(|v| v.as_str()).unwrap_or("see its init event")
            )));
        };
        let bucket = open_checked(objects)?;
        let (store, created) = Store::prepare(dir, lock_timeout)?;
        store.write_descriptor(url, Some(&bucket)).inspect_err(|_| store.unprepare(created))?;
        let ledger = ledger.for_store(&store.root);
        Ok((Store { ledger: location, objects: Some(bucket), ..store }, ledger))
    }

    /// Write `store.json`: the ledger's URL and the bucket (and its endpoint), never a secret.
    fn write_descriptor(&self, url: &str, bucket: Option<&Bucket>) -> Result<()> {
        let mut descriptor = serde_json::json!({"custody_store": 1, "ledger": url});
        if let Some(b) = bucket {
            descriptor["objects"] = serde_json::json!(b.url());
            descriptor["endpoint"] = serde_json::json!(b.endpoint());
        }
        let path = self.root.join(DESCRIPTOR);
        fsutil::write_durably(&path, format!("{descriptor:#}\n").as_bytes())
            .map_err(|e| env_io(e, &path, "cannot write"))
    }

    /// The directories and lock file of a new store in `dir`, which must not be one yet; and
    /// whether `dir` itself was created.
    fn prepare(dir: &Path, lock_timeout: Duration) -> Result<(Store, bool)> {
        if dir.join(LEDGER_FILE).exists() || dir.join(DESCRIPTOR).exists() {
            return Err(error::input(format!("{} is already a custody store; nothing was changed", dir.display())));
        }
        if dir.exists() && !dir.is_dir() {
            return Err(error::input(format!("{} exists and is not a directory", dir.display())));
        }
        let created = !dir.exists();
        fs::create_dir_all(dir).map_err(|e| env_io(e, dir, "cannot create the store directory"))?;
        let root = dir.canonicalize()?;
        let store = Store {
            ledger: Location::File(root.join(LEDGER_FILE)),
            root,
            lock_timeout,
            objects: None,
            rehearsal: false,
        };
        let made = (|| {
            for sub in [OBJECTS_DIR, TMP_DIR] {
                let p = store.root.join(sub);
                fs::create_dir_all(&p).map_err(|e| env_io(e, &p, "cannot create"))?;
            }
            let lock = store.root.join(LOCK_FILE);
            File::create(&lock).map_err(|e| env_io(e, &lock, "cannot create"))?;
            Ok::<_, anyhow::Error>(())
        })();
        made.inspect_err(|_| store.unprepare(created))?;
        Ok((store, created))
    }

    /// Undo [`Store::prepare`] (and a ledger file or descriptor written after it) when the
    /// store could not be made: a failed init leaves nothing behind.
    fn unprepare(&self, created: bool) {
        for file in [LEDGER_FILE, "ledger.db-wal", "ledger.db-shm", DESCRIPTOR, LOCK_FILE] {
            let _ = fs::remove_file(self.root.join(file));
        }
        for sub in [OBJECTS_DIR, TMP_DIR] {
            let _ = fs::remove_dir(self.root.join(sub));
        }
        if created {
            let _ = fs::remove_dir(&self.root);
        }
    }

    /// Find the store: `--store`, then `CUSTODY_STORE`, then the current directory and its
    /// ancestors, like git.
    pub fn locate(explicit: Option<&Path>, lock_timeout: Duration) -> Result<Store> {
        if let Some(dir) = explicit {
            return Store::at(dir, lock_timeout);
        }
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let mut here = Some(cwd.as_path());
        while let Some(dir) = here {
            if is_store(dir) {
                return Store::at(dir, lock_timeout);
            }
            here = dir.parent();
        }
        Err(error::input(format!(
            "no custody store found (none given with --store or CUSTODY_STORE, and none in {} or above it). \
             Create one with `custody init DIR`, then pass `--store DIR` or set CUSTODY_STORE=DIR",
            cwd.display()
        )))
    }

    /// Open the store at `dir`, which must be one.
    pub fn at(dir: &Path, lock_timeout: Duration) -> Result<Store> {
        if !is_store(dir) {
            return Err(error::input(format!(
                "{} is not a custody store (no {LEDGER_FILE} or {DESCRIPTOR}, and {OBJECTS_DIR}/, in it). Create one with `custody init {}`",
                dir.display(),
                dir.display()
            )));
        }
        let root = dir.canonicalize()?;
        let descriptor = root.join(DESCRIPTOR);
        let mut objects = None;
        let ledger = if descriptor.is_file() {
            let text = fs::read_to_string(&descriptor).map_err(|e| env_io(e, &descriptor, "cannot read"))?;
            let parsed = serde_json::from_str::<serde_json::Value>(&text).ok();
            let field = |name: &str| parsed.as_ref().and_then(|v| v.get(name)?.as_str().map(str::to_owned));
            // Each workstation may name the bucket and server its own way (CUSTODY_OBJECTS,
            // AWS_ENDPOINT_URL); the descriptor says what the store was made with.
            if let Some(url) = workstation_setting("CUSTODY_OBJECTS").or_else(|| field("objects")) {
                let endpoint = crate::objects::endpoint_from_env()
                    .or_else(|| field("endpoint"))
                    .ok_or_else(|| error::input(format!("{url}: which S3 server? Set AWS_ENDPOINT_URL")))?;
                objects = Some(Arc::new(Bucket::open(&url, &endpoint)?));
            }
            let url = field("ledger").ok_or_else(|| {
                error::input(format!(
                    "{} is not a custody store descriptor (it names no ledger); restore it, or join the agency's \
                         ledger again with `custody init --join URL` in an empty directory",
                    descriptor.display()
                ))
            })?;
            // Each workstation records as its own role: CUSTODY_LEDGER names it.
            let url = workstation_setting("CUSTODY_LEDGER").unwrap_or(url);
            Location::Postgres(url)
        } else {
            Location::File(root.join(LEDGER_FILE))
        };
        Ok(Store { root, lock_timeout, ledger, objects, rehearsal: false })
    }

    /// The bucket holding this store's objects, when they are not in `objects/`.
    pub fn bucket(&self) -> Option<&Arc<Bucket>> {
        self.objects.as_ref()
    }

    /// Where the object's bytes are, for the verifying reader: `None` for a file in `objects/`.
    pub fn remote(&self, sha256: &str) -> Option<Arc<dyn crate::outboard::Remote>> {
        let bucket = self.objects.as_ref()?;
        Some(Arc::new(crate::objects::Remote { bucket: Arc::clone(bucket), sha256: sha256.to_owned() }))
    }

    /// The object, read from the start (or seeking): its file, or ranged reads from the bucket.
    pub fn open_object(&self, sha256: &str) -> Result<Box<dyn crate::outboard::ReadSeek + Send>> {
        match &self.objects {
            None => {
                let path = self.object_path(sha256);
                Ok(Box::new(File::open(&path).map_err(|e| env_io(e, &path, "cannot open"))?))
            }
            Some(bucket) => {
                let key = bucket.object_key(sha256);
                let head = bucket.head(&key)?.ok_or_else(|| {
                    error::mismatch(format!(
                        "object {sha256} is missing from the bucket ({}); run `custody verify`",
                        bucket.shown(&key)
                    ))
                })?;
                Ok(Box::new(crate::objects::Ranged::new(Arc::clone(bucket), key, head.size)))
            }
        }
    }

    /// The object as a file: its own in `objects/`, or (kept in a bucket) a copy fetched into an
    /// unnamed temporary file, for work that reads it whole and in place (bundles).
    pub fn object_file(&self, sha256: &str) -> Result<File> {
        if self.objects.is_none() {
            let path = self.object_path(sha256);
            return File::open(&path).map_err(|e| env_io(e, &path, "cannot open"));
        }
        let tmp = self.root.join(TMP_DIR);
        let mut copy = tempfile::tempfile_in(&tmp).map_err(|e| env_io(e, &tmp, "cannot create a temporary file in"))?;
        let mut from = self.open_object(sha256)?;
        io::copy(&mut from, &mut copy)
            .map_err(|e| error::environment(format!("cannot fetch object {sha256} from the bucket: {e}")))?;
        // Read from the start, as the object's own file would be.
        io::Seek::rewind(&mut copy).map_err(|e| env_io(e, &tmp, "cannot read back a temporary file in"))?;
        Ok(copy)
    }

    /// Where the store's ledger is.
    pub fn ledger_location(&self) -> &Location {
        &self.ledger
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.root.join(LEDGER_FILE)
    }

    pub fn objects_dir(&self) -> PathBuf {
        self.root.join(OBJECTS_DIR)
    }

    pub fn lock_timeout(&self) -> Duration {
        self.lock_timeout
    }

    /// Where the object with this SHA-256 lives: `objects/ab/cdef…`.
    pub fn object_path(&self, sha256: &str) -> PathBuf {
        object_path_in(&self.root, sha256)
    }

    pub fn has_object(&self, sha256: &str) -> bool {
        self.object_exists(sha256).unwrap_or(false)
    }

    /// Whether the store holds the object (asking the bucket, for one kept in S3).
    pub fn object_exists(&self, sha256: &str) -> Result<bool> {
        match &self.objects {
            None => Ok(self.object_path(sha256).is_file()),
            Some(bucket) => Ok(bucket.head(&bucket.object_key(sha256))?.is_some()),
        }
    }

    /// Open the ledger to record in it, refusing one whose schema was altered. Every changing
    /// command opens it first, before any work: a store this process cannot write is refused
    /// here (exit 3), so nothing is done, recorded or left behind.
    pub fn open_ledger(&self) -> Result<Ledger> {
        if let Some(why) = self.read_only() {
            return Err(error::environment(format!(
                "the store at {} is read-only ({why}); nothing was recorded. Commands that only read it \
                 (verify, log, show, export) work on it as it is; to record, use a writable store",
                self.root.display()
            )));
        }
        Ok(Ledger::open_at(&self.ledger, self.lock_timeout, Access::ReadWrite)?.for_store(&self.root))
    }

    /// Open the ledger only to read it (commands that record nothing): works on a store on
    /// read-only or write-once media, and cannot change it.
    pub fn read_ledger(&self) -> Result<Ledger> {
        Ok(Ledger::open_at(&self.ledger, self.lock_timeout, Access::ReadOnly)?.for_store(&self.root))
    }

    /// [`Store::read_ledger`] that reports how the ledger's schema differs instead of refusing
    /// it (for `verify`).
    pub fn read_ledger_unchecked(&self) -> Result<(Ledger, Vec<String>)> {
        let (ledger, problems) = Ledger::open_unchecked_at(&self.ledger, self.lock_timeout, Access::ReadOnly)?;
        Ok((ledger.for_store(&self.root), problems))
    }

    /// Why this process cannot write the store, if it cannot: its filesystem is mounted
    /// read-only, or the store's directory, ledger, `objects/` or `tmp/` are not writable for
    /// this user (an archived copy on write-once media, or one made read-only by permissions).
    pub fn read_only(&self) -> Option<String> {
        let mut paths = vec![self.root.clone(), self.objects_dir(), self.root.join(TMP_DIR), self.root.join(LOCK_FILE)];
        if matches!(self.ledger, Location::File(_)) {
            paths.extend([LEDGER_FILE, "ledger.db-wal", "ledger.db-shm"].map(|f| self.root.join(f)));
        }
        paths.iter().find_map(|p| {
            let e = fsutil::writable(p).err()?;
            // A file that is not there is no obstacle: the -wal and -shm come and go with other
            // custody processes (SQLite removes them when the last connection closes; checking
            // for them first raced with that, and a concurrent ingest failed with exit 3), and
            // a missing ledger is reported when it is opened.
            if e.kind() == std::io::ErrorKind::NotFound {
                return None;
            }
            Some(if e.raw_os_error() == Some(libc::EROFS) {
                "its filesystem is mounted read-only".to_owned()
            } else {
                format!("{} is not writable by user {}: {e}", p.display(), fsutil::os_user())
            })
        })
    }

    /// Take the store lock, waiting up to the lock timeout (exit 3 past it).
    pub fn write_lock(&self) -> Result<StoreLock> {
        let path = self.root.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| env_io(e, &path, "cannot open the store lock"))?;
        let start = Instant::now();
        loop {
            if try_flock(&file)? {
                return Ok(StoreLock { _file: file });
            }
            if start.elapsed() >= self.lock_timeout {
                return Err(error::environment(format!(
                    "the store {} stayed locked by another custody process for more than {} s; \
                     wait for it to finish, or raise CUSTODY_LOCK_TIMEOUT",
                    self.root.display(),
                    self.lock_timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A staging directory for one command's outputs, locked for as long as the command runs.
    pub fn stage(&self) -> Result<Staging> {
        let tmp = self.root.join(TMP_DIR);
        // Made under a name recovery ignores, locked, then renamed: recovery can never see an
        // unlocked staging directory of a live command.
        // The name carries our PID, so recovery can tell a directory whose maker died before
        // locking it from one a live command is setting up.
        let prefix = format!("{NEW_STAGING_PREFIX}{}-", std::process::id());
        let fresh = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(&tmp)
            .map_err(|e| env_io(e, &tmp, "cannot create a staging directory in"))?
            .keep();
        let lock = File::open(&fresh).map_err(|e| env_io(e, &fresh, "cannot open"))?;
        if !try_flock(&lock)? {
            return Err(error::environment(format!("cannot lock the staging directory {}", fresh.display())));
        }
        let suffix = fresh.file_name().and_then(|n| n.to_str()).unwrap_or_default().trim_start_matches(&prefix);
        let dir = tmp.join(format!("{}-{suffix}", std::process::id()));
        // Registered before the rename, so an interruption removes it under either name.
        crate::interrupt::remove_on_interrupt(&fresh);
        crate::interrupt::remove_on_interrupt(&dir);
        let renamed = fs::rename(&fresh, &dir);
        crate::interrupt::keep(if renamed.is_ok() { &fresh } else { &dir });
        renamed.map_err(|e| env_io(e, &dir, "cannot create"))?;
        Ok(Staging {
            dir,
            _lock: lock,
            moves: Vec::new(),
            seen: HashMap::new(),
            trees: Vec::new(),
            blake3: HashMap::new(),
            proven: HashMap::new(),
            last: None,
            next: 0,
            committed: false,
        })
    }

    /// Commit: append one event built by `build` and move the staged objects into place, all
    /// under the store lock. Returns the new head and the event as recorded.
    pub fn commit(
        &self,
        ledger: &mut Ledger,
        actor: &Actor,
        staging: Staging,
        build: impl FnOnce(&mut Txn<'_>) -> Result<Draft>,
    ) -> Result<(Head, Event)> {
        let mut build = Some(build);
        self.commit_each(ledger, actor, staging, |txn| build.take().map(|b| b(txn)).transpose())
    }

    /// Commit as [`Store::commit`] does, recording consecutive events in one transaction (see
    /// [`Ledger::append_each`]): all of them, or none. Returns the head and the last event.
    pub fn commit_each(
        &self,
        ledger: &mut Ledger,
        actor: &Actor,
        mut staging: Staging,
        build: impl FnMut(&mut Txn<'_>) -> Result<Option<Draft>>,
    ) -> Result<(Head, Event)> {
        if let Some(bucket) = &self.objects {
            return self.commit_to_bucket(bucket, ledger, actor, staging, build);
        }
        let mut parents: Vec<PathBuf> = staging
            .moves
            .iter()
            .map(|sha| self.object_path(&hex::encode(sha)).parent().expect("objects have a parent").to_owned())
            .collect();
        parents.sort();
        parents.dedup();
        for parent in &parents {
            fs::create_dir_all(parent).map_err(|e| env_io(e, parent, "cannot create"))?;
        }
        let _lock = self.write_lock()?;
        // An interruption (Ctrl-C) waits from here until the objects are in place.
        let _commit = crate::interrupt::committing();
        // Tidy up after commands that were killed, while the lock is held anyway. A failure
        // here must not stop this command: verify reports whatever is left.
        let _ = self.recover_locked(ledger);
        let (head, event) = ledger.append_each(actor, build)?;
        // From here on the event is durable: staged files must be kept until they are in place.
        staging.committed = true;
        crate::interrupt::keep(&staging.dir);
        crate::interrupt::recorded(head.seq);
        for sha in &staging.moves {
            let sha = hex::encode(sha);
            let path = staging.dir.join(&sha);
            let dest = self.object_path(&sha);
            let moved = fsutil::rename_noreplace(&path, &dest).map_err(|e| {
                error::environment(format!(
                    "event {} was recorded, but its object {} could not be moved into place ({e}); \
                     run `custody verify` to complete it",
                    head.seq,
                    dest.display()
                ))
            })?;
            if !moved {
                // Another command stored the same bytes meanwhile; theirs stands.
                let _ = fs::remove_file(&path);
            }
        }
        for dir in parents {
            fsutil::fsync_dir(&dir).map_err(|e| env_io(e, &dir, "cannot sync"))?;
        }
        // The objects' BLAKE3 trees, for checked reads later. They need no trust and no sync:
        // one that is missing or damaged is rebuilt from its object when it is next read.
        for (sha, tree) in &staging.trees {
            let path = crate::outboard::path_in(&self.root, sha);
            if !path.exists() {
                let _ = tree.0.save(&path);
            }
        }
        staging.committed = false; // everything is in place: the staging directory may go
        Ok((head, event))
    }

    /// [`Store::commit_each`] for a store whose objects are in a bucket: the objects go up
    /// first (created write-once, then read back and checked), and only then is the event
    /// appended, naming where each one is stored. A command killed or failing before the event
    /// leaves at most an object no event records (`verify` lists it as an orphan; the bucket's
    /// retention keeps it), never an event whose object is missing.
    fn commit_to_bucket(
        &self,
        bucket: &Arc<Bucket>,
        ledger: &mut Ledger,
        actor: &Actor,
        mut staging: Staging,
        mut build: impl FnMut(&mut Txn<'_>) -> Result<Option<Draft>>,
    ) -> Result<(Head, Event)> {
        let mut stored = std::mem::take(&mut staging.proven);
        for key in &staging.moves {
            let sha = hex::encode(key);
            let path = staging.dir.join(&sha);
            let file = File::open(&path).map_err(|e| env_io(e, &path, "cannot open the staged copy"))?;
            let size = file.metadata().map_err(|e| env_io(e, &path, "cannot read"))?.len();
            let blake3 = staging.blake3.get(key).cloned().unwrap_or_default();
            let facts = crate::objects::store(bucket, &sha, &file, size, &blake3, &|_| {})?;
            // Its BLAKE3 tree travels with it: computed from the staged copy when staging did not
            // (small copies, and outputs FFmpeg wrote), as ingest computes it for large ones.
            if !staging.trees.iter().any(|(s, _)| *s == sha) {
                let encoded = crate::outboard::encode(io::BufReader::new(&file), size)
                    .map_err(|e| env_io(e, &path, "cannot read the staged copy"))?;
                staging.trees.push((sha.clone(), digest::Tree(Arc::new(encoded.1))));
            }
            stored.insert(sha, facts);
        }
        // The objects' BLAKE3 trees, beside them in the bucket and in this store's cache. They
        // need no trust: one that is missing or damaged is rebuilt when the object is next read.
        for (sha, tree) in &staging.trees {
            if let Ok(bytes) = tree.0.to_vec() {
                let _ = bucket.create(&bucket.outboard_key(sha), &bytes);
            }
            let path = crate::outboard::path_in(&self.root, sha);
            if !path.exists() {
                let _ = tree.0.save(&path);
            }
        }
        let _lock = self.write_lock()?;
        let _commit = crate::interrupt::committing();
        let _ = self.recover_locked(ledger);
        let (head, event) = ledger.append_each(actor, |txn| {
            let draft = build(txn)?;
            Ok(draft.map(|mut d| {
                for out in &mut d.outputs {
                    if let Some(facts) = stored.get(&out.sha256) {
                        out.facts.insert("stored".into(), facts.clone());
                    }
                }
                d
            }))
        })?;
        crate::interrupt::recorded(head.seq);
        // Everything is in the bucket: the staging directory may go.
        staging.committed = false;
        Ok((head, event))
    }

    /// Finish or undo what killed commands left in `tmp/`. Runs under the store lock.
    pub fn recover(&self, ledger: &Ledger) -> Result<Recovery> {
        let _lock = self.write_lock()?;
        self.recover_locked(ledger)
    }

    fn recover_locked(&self, ledger: &Ledger) -> Result<Recovery> {
        let mut report = Recovery::default();
        let tmp = self.root.join(TMP_DIR);
        let entries = match fs::read_dir(&tmp) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
            Err(e) => return Err(env_io(e, &tmp, "cannot read")),
        };
        for entry in entries {
            let entry = entry?;
            let dir = entry.path();
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let Ok(handle) = File::open(&dir) else { continue };
            // A directory still being set up is left alone unless it is clearly abandoned: its
            // maker is gone, or it is an hour old.
            let name = entry.file_name().to_string_lossy().into_owned();
            let new = name.starts_with(NEW_STAGING_PREFIX) && !maker_is_gone(&name[NEW_STAGING_PREFIX.len()..]);
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > Duration::from_secs(3600));
            // A live command holds its staging directory's lock; a dead one's lock is gone.
            if (new && !old) || !try_flock(&handle)? {
                continue;
            }
            for file in fs::read_dir(&dir)? {
                let path = file?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
                // (A bucket's objects are stored before their event is: nothing to finish.)
                if self.objects.is_none() && is_sha256(&name) && ledger.references(&name)? && !self.has_object(&name) {
                    let dest = self.object_path(&name);
                    fs::create_dir_all(dest.parent().expect("objects have a parent"))?;
                    if fsutil::rename_noreplace(&path, &dest)? {
                        fsutil::fsync_dir(dest.parent().expect("objects have a parent"))?;
                        report.completed.push(name);
                        continue;
                    }
                }
                fs::remove_file(&path)?;
                report.discarded += 1;
            }
            fs::remove_dir(&dir)?;
            report.directories += 1;
        }
        Ok(report)
    }
}

/// The config file's `ledger` and `objects` (see [`workstation_setting`]).
static WORKSTATION: std::sync::OnceLock<(Option<String>, Option<String>)> = std::sync::OnceLock::new();

/// Set once, at start-up, from the config file.
pub fn set_workstation_defaults(ledger: Option<String>, objects: Option<String>) {
    let _ = WORKSTATION.set((ledger, objects));
}

/// `CUSTODY_LEDGER` or `CUSTODY_OBJECTS`: this workstation's login to the agency ledger, or its
/// bucket; from the environment, else the config file's `ledger` or `objects`.
pub fn workstation_setting(name: &str) -> Option<String> {
    let from_file = WORKSTATION.get().and_then(|(ledger, objects)| match name {
        "CUSTODY_LEDGER" => ledger.clone(),
        "CUSTODY_OBJECTS" => objects.clone(),
        _ => None,
    });
    std::env::var(name).ok().filter(|v| !v.is_empty()).or(from_file).filter(|v| !v.is_empty())
}

/// Refuse a ledger URL that holds a password: custody never writes one down.
fn refuse_password(url: &str) -> Result<()> {
    if crate::ledger::pg::has_password(url) {
        return Err(error::input(format!(
            "{}: the URL holds a password, and custody never writes one down; nothing was changed. \
             Give it in PGPASSWORD or the password file (~/.pgpass, or PGPASSFILE) and the URL without it",
            crate::ledger::pg::shown(url)
        )));
    }
    Ok(())
}

/// The bucket `url` names at the environment's endpoint, once it has answered a listing with the
/// environment's credentials (so no store is made or joined over a bucket it cannot use).
fn open_checked(url: &str) -> Result<Arc<Bucket>> {
    let endpoint = crate::objects::endpoint_from_env().ok_or_else(|| {
        error::input(format!(
            "{url}: which S3 server? Set AWS_ENDPOINT_URL (e.g. https://s3.us-east-1.amazonaws.com, or the agency's \
             own S3 service); nothing was changed"
        ))
    })?;
    let bucket = Bucket::open(url, &endpoint)?;
    bucket.check()?;
    Ok(Arc::new(bucket))
}

/// Where the store rooted at `root` keeps the object with this SHA-256: `objects/ab/cdef…`.
pub fn object_path_in(root: &Path, sha256: &str) -> PathBuf {
    root.join(OBJECTS_DIR).join(&sha256[..2]).join(&sha256[2..])
}

/// Whether the process whose PID starts `rest` (`PID-…`) no longer exists.
fn maker_is_gone(rest: &str) -> bool {
    let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()).filter(|p| *p > 0) else {
        return false;
    };
    // SAFETY: kill with signal 0 sends nothing; it only asks whether the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// What recovery did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Recovery {
    /// Objects of committed events moved into place.
    pub completed: Vec<String>,
    /// Staged or partial files of uncommitted work removed.
    pub discarded: usize,
    /// Staging directories of dead commands removed.
    pub directories: usize,
}

/// Held while committing; released on drop (and by the kernel if the process dies).
pub struct StoreLock {
    _file: File,
}

/// One file staged for the store.
pub struct Staged {
    pub digests: Digests,
    /// Where the verified bytes can be read now: the staged copy, or the existing object.
    pub location: PathBuf,
    /// True when the store already held this object before the command ran.
    pub existed: bool,
}

/// A command's staging directory: its outputs wait here, complete and verified, for the commit.
pub struct Staging {
    dir: PathBuf,
    _lock: File,
    /// The SHA-256 of every copy staged here (as `dir/<sha256>`), to move into `objects/` at
    /// commit: 32 bytes a file, so thousands of files cost little memory.
    moves: Vec<[u8; 32]>,
    /// Every object this command has staged or found, and whether the store held it before.
    seen: HashMap<[u8; 32], bool>,
    /// The BLAKE3 trees computed while objects were staged, to keep beside them at commit.
    trees: Vec<(String, digest::Tree)>,
    /// The BLAKE3 of every copy staged here, to prove its upload with (a bucket's objects).
    blake3: HashMap<[u8; 32], String>,
    /// What the event records of each object a bucket already held, proven when it was found
    /// (`stored`, `created: false`).
    proven: HashMap<String, serde_json::Value>,
    /// What the last call staged.
    last: Option<Staged>,
    next: u64,
    committed: bool,
}

impl Staging {
    /// Copy `reader` into the staging area in one pass, computing SHA-256 and BLAKE3 (plus
    /// `extra` digests) as it is written, reading every stretch of the copy back as soon as it
    /// is written and comparing it byte for byte with the bytes read and hashed (the
    /// verified-copy practice of forensic imagers, done in the same pass); then fsync it. When
    /// the store already holds an object with the same SHA-256, that object is read back and
    /// checked instead and the copy dropped. `label` names the source in error messages.
    pub fn write_from<R: Read>(
        &mut self,
        store: &Store,
        reader: &mut R,
        label: &str,
        extra: &[Algorithm],
    ) -> Result<&Staged> {
        self.stage(store, label, extra, None, |algos, writer| digest::copy_stream(reader, algos, writer))
    }

    /// [`Staging::write_from`] for a source file (a regular file, opened read-only), with
    /// `progress` told of the bytes hashed. Each stretch is copied by the kernel from the
    /// source file itself (`copy_file_range`, as `cp` does) instead of being written from the
    /// bytes just read: on this kind of machine that halves the cost of the copy. The
    /// read-back then proves the copy holds exactly the bytes that were hashed. Where the
    /// kernel cannot copy between the two files, the bytes read are written. A large source
    /// is read through a guarded memory map ([`crate::mapped`]): its pages are hashed and
    /// compared where they lie in the page cache, never copied into buffers first.
    pub fn copy_file(
        &mut self,
        store: &Store,
        source: &File,
        label: &str,
        extra: &[Algorithm],
        progress: &dyn Fn(u64),
    ) -> Result<&Staged> {
        match Mapped::if_large(source) {
            Some(map) => self.stage(store, label, extra, Some(source), |algos, writer| {
                digest::digest_mapped(&map, algos, Some(writer), progress, true)
            }),
            None => {
                let mut reader = Progress { inner: source, progress };
                self.stage(store, label, extra, Some(source), |algos, writer| {
                    digest::copy_stream(&mut reader, algos, writer)
                })
            }
        }
    }

    /// The copy both of the above make: `feed` runs the digests over the source and hands
    /// every stretch, in order, to the writer it is given, which copies the stretch (from
    /// `in_kernel` when given), reads it back and compares.
    fn stage(
        &mut self,
        store: &Store,
        label: &str,
        extra: &[Algorithm],
        mut in_kernel: Option<&File>,
        feed: impl FnOnce(&[Algorithm], digest::Writer<'_>) -> Result<Digests, digest::StreamError>,
    ) -> Result<&Staged> {
        let partial = self.dir.join(format!("partial-{}", self.next));
        self.next += 1;
        let mut out = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(|e| env_io(e, &partial, "cannot create"))?;
        let mut algos = vec![Algorithm::Sha256, Algorithm::Blake3];
        algos.extend_from_slice(extra);
        let (mut written, mut flushed) = (0u64, 0u64);
        let target = &mut out;
        let mut back = Vec::new();
        let result = feed(
            &algos,
            Box::new(move |chunk: &[u8]| {
                if let Some(src) = in_kernel {
                    match fsutil::copy_range(src, target, written, chunk.len()) {
                        Ok(()) => {}
                        Err(e) if fsutil::copy_range_unsupported(&e) => {
                            in_kernel = None;
                            target.write_all_at(chunk, written)?;
                        }
                        Err(e) => return Err(e),
                    }
                } else {
                    target.write_all_at(chunk, written)?;
                }
                back.resize(chunk.len(), 0);
                target.read_exact_at(&mut back, written)?;
                if back != chunk {
                    return Err(io::Error::other(ReadBackMismatch { offset: written }));
                }
                written += chunk.len() as u64;
                if written - flushed >= WRITEBACK_STEP {
                    fsutil::start_writeback(target, flushed, written - flushed);
                    flushed = written;
                }
                Ok(())
            }),
        );
        let partial = partial.as_path();
        let digests = match result {
            Ok(d) => d,
            Err(e) => {
                let _ = fs::remove_file(partial);
                return Err(stream_error(e, label, store));
            }
        };
        let synced = out.sync_all().and_then(|_| out.set_permissions(fs::Permissions::from_mode(0o444)));
        if let Err(e) = synced {
            let _ = fs::remove_file(partial);
            return Err(env_io(e, partial, &format!("cannot sync the copy of {label} to the store's disk at")));
        }
        self.place(store, partial, digests, Some(label))
    }

    /// A fresh path inside the staging directory for a tool that writes its own file (FFmpeg's
    /// muxers); hand it to [`Staging::adopt`] once written.
    pub fn scratch(&mut self, extension: &str) -> PathBuf {
        self.next += 1;
        self.dir.join(format!("scratch-{}.{extension}", self.next))
    }

    /// Take a file written at a [`Staging::scratch`] path: fsync it and, meanwhile, digest it
    /// in one read (which also reads it back), make it read-only and stage it like
    /// [`Staging::write_from`].
    pub fn adopt(&mut self, store: &Store, path: &Path) -> Result<&Staged> {
        let mut f = File::open(path).map_err(|e| env_io(e, path, "cannot open the output"))?;
        let syncing = f.try_clone().map_err(|e| env_io(e, path, "cannot open the output"))?;
        let (synced, digests) = std::thread::scope(|s| {
            let synced = s.spawn(move || syncing.sync_all());
            // Our own file, which nothing else writes: it may be read mapped.
            let digests = digest::digest_file(&mut f, &[Algorithm::Sha256, Algorithm::Blake3], &|_| {}, true);
            (synced.join().expect("sync thread panicked"), digests)
        });
        synced.map_err(|e| env_io(e, path, "cannot sync"))?;
        let digests = digests.map_err(|e| error::environment(format!("cannot read back {}: {e}", path.display())))?;
        drop(f);
        fs::set_permissions(path, fs::Permissions::from_mode(0o444)).map_err(|e| env_io(e, path, "cannot protect"))?;
        // Digesting it was the read-back: no second pass.
        self.place(store, path, digests, None)
    }

    /// Stage a complete, digested file: drop it when the store (or this command) already holds
    /// the same bytes, else move it to its final name in the staging directory. With
    /// `verify_existing` (the source's label), an object the store already held is read back
    /// and checked before it stands for the file.
    fn place(
        &mut self,
        store: &Store,
        file: &Path,
        digests: Digests,
        verify_existing: Option<&str>,
    ) -> Result<&Staged> {
        let sha = digests.sha256().to_owned();
        if let Some(tree) = &digests.tree
            && !self.trees.iter().any(|(s, _)| *s == sha)
        {
            self.trees.push((sha.clone(), tree.clone()));
        }
        let mut key = [0u8; 32];
        hex::decode_to_slice(&sha, &mut key).expect("SHA-256 digests are 64 hex digits");
        let existing = store.object_path(&sha);
        let staged = if let Some(&existed) = self.seen.get(&key) {
            // The same bytes twice in one command (a hard link, a duplicate file).
            let _ = fs::remove_file(file);
            let location = if existed && store.objects.is_none() { existing } else { self.dir.join(&sha) };
            Staged { digests, location, existed }
        } else if let Some(bucket) = &store.objects
            && store.object_exists(&sha)?
        {
            // The bucket holds these bytes already: they are read back and checked before they
            // stand for the file; the staged copy stays here, for this command to read.
            let facts = crate::objects::prove(bucket, &sha, digests.size, digests.blake3(), false)?;
            self.proven.insert(sha.clone(), facts);
            let dest = self.dir.join(&sha);
            fs::rename(file, &dest).map_err(|e| env_io(e, &dest, "cannot stage"))?;
            self.seen.insert(key, true);
            Staged { digests, location: dest, existed: true }
        } else if store.objects.is_none() && existing.is_file() {
            let _ = fs::remove_file(file);
            if let Some(label) = verify_existing {
                verify_copy(&existing, &digests, label)?;
            }
            self.seen.insert(key, true);
            Staged { digests, location: existing, existed: true }
        } else {
            let dest = self.dir.join(&sha);
            fs::rename(file, &dest).map_err(|e| env_io(e, &dest, "cannot stage"))?;
            self.seen.insert(key, false);
            self.moves.push(key);
            self.blake3.insert(key, digests.blake3().to_owned());
            Staged { digests, location: dest, existed: false }
        };
        Ok(self.last.insert(staged))
    }
}

impl Staging {
    /// Where a file staged under `sha256` lies (an output `redo` compares).
    pub fn staged_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            // Nothing here was recorded (or all of it is already in place): leave nothing behind.
            let _ = fs::remove_dir_all(&self.dir);
        }
        crate::interrupt::keep(&self.dir);
    }
}

/// A source file read plainly, telling `progress` of every byte read.
struct Progress<'a> {
    inner: &'a File,
    progress: &'a dyn Fn(u64),
}

impl Read for Progress<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(n as u64);
        Ok(n)
    }
}

/// A stretch of a copy that did not read back as the bytes written to it.
#[derive(Debug)]
struct ReadBackMismatch {
    offset: u64,
}

impl std::fmt::Display for ReadBackMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the copy does not read back as the bytes read from the source at byte offset {}", self.offset)
    }
}

impl std::error::Error for ReadBackMismatch {}

/// Read an object the store already holds back and check it against the digests of the bytes
/// it is to stand for.
fn verify_copy(path: &Path, expected: &Digests, label: &str) -> Result<()> {
    let mut f = File::open(path).map_err(|e| env_io(e, path, "cannot re-read"))?;
    let again = digest::blake3_file(&mut f).map_err(|e| {
        error::environment(format!("cannot re-read the stored copy of {label} at {}: {e}", path.display()))
    })?;
    if again.size != expected.size || !digest::hex_eq(again.blake3(), expected.blake3()) {
        return Err(error::environment(format!(
            "the store already holds an object under the SHA-256 of {label}, but {} does not read back as \
             the bytes read from the source (BLAKE3 {} instead of {}): the stored object is damaged. Nothing \
             was recorded; run `custody verify` to list what is damaged",
            path.display(),
            again.blake3(),
            expected.blake3()
        )));
    }
    Ok(())
}

fn stream_error(e: digest::StreamError, label: &str, store: &Store) -> anyhow::Error {
    match &e {
        digest::StreamError::Sink { source, .. }
            if let Some(m) = source.get_ref().and_then(|e| e.downcast_ref::<ReadBackMismatch>()) =>
        {
            error::environment(format!(
                "the copy of {label} in the store {} does not read back as the bytes read from the source \
                 (first difference in the stretch from byte offset {}): the source changed during the copy, \
                 or the storage is faulty. Nothing was recorded",
                store.root.display(),
                m.offset
            ))
        }
        digest::StreamError::Read { offset, source } => error::environment(format!(
            "cannot read {label} at byte offset {offset}: {source}; nothing was recorded. \
             Check the source media and run the command again"
        )),
        digest::StreamError::Sink { source, .. } if error::is_disk_full(source) => error::environment(format!(
            "the disk holding the store {} is full while copying {label}; nothing was recorded. \
             Free space and run the command again",
            store.root.display()
        )),
        digest::StreamError::Sink { offset, source } => error::environment(format!(
            "cannot copy {label} into the store {} at byte offset {offset}: {source}; nothing was recorded. \
             Check the source media and the store's disk, and run the command again",
            store.root.display()
        )),
    }
}

/// An environment error about a path.
pub fn env_io(e: io::Error, path: &Path, what: &str) -> anyhow::Error {
    if error::is_disk_full(&e) {
        return error::environment(format!(
            "{what} {}: the disk is full. Free space and run the command again",
            path.display()
        ));
    }
    if e.raw_os_error() == Some(libc::EROFS) {
        return error::environment(format!("{what} {}: the filesystem is read-only", path.display()));
    }
    error::environment(format!("{what} {}: {e}", path.display()))
}

fn is_store(dir: &Path) -> bool {
    (dir.join(LEDGER_FILE).is_file() || dir.join(DESCRIPTOR).is_file()) && dir.join(OBJECTS_DIR).is_dir()
}

pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn try_flock(file: &File) -> Result<bool> {
    // SAFETY: flock on a valid, open file descriptor owned by `file`; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(error::environment(format!("cannot take a file lock: {err}")))
    }
}
