//! Verified reads: an object's BLAKE3 tree, kept beside it (its *outboard*), and the reader that
//! hands out only bytes it has checked against the BLAKE3 recorded when the object entered
//! custody.
//!
//! The tree is BLAKE3's own, cut into chunk groups of [`GROUP`] bytes: the outboard holds the
//! parent nodes above the groups (64 bytes per group, 0.2 % of the object) in post order, as the
//! `bao-tree` crate lays them out (`PostOrderOutboard`, block size [`GROUP_LOG`]). It needs no
//! trust of its own: `bao-tree` checks every node it uses against the recorded root on the way
//! down, and every group against its node. A damaged, forged, short or missing outboard is
//! rebuilt from the object (one full read, whose root must be the recorded BLAKE3) and never
//! believed.
//!
//! Derived commands register their parent's object ([`Object::register`]); FFmpeg then reads it
//! through a [`Reader`] (see `media::avio`) and every other reader of the object asks
//! [`open`]. A group that does not hash to its node stops the command: the error names the item
//! and the byte range, and the command records nothing.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bao_tree::io::EncodeError;
use bao_tree::io::outboard::PostOrderOutboard;
use bao_tree::io::sync::{encode_ranges_validated, outboard_post_order};
use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};
use serde_json::{Value, json};

use crate::mapped::Mapped;

/// log2 of the BLAKE3 chunks (1 KiB) in a chunk group.
pub const GROUP_LOG: u8 = 5;
/// Bytes in a chunk group: the unit that is read and checked.
pub const GROUP: u64 = 1024 << GROUP_LOG;
const BLOCK: BlockSize = BlockSize::from_chunk_log(GROUP_LOG);
/// Where outboards live, below the store's root (`outboards/ab/cdef…`, named like objects).
pub const DIR: &str = "outboards";
/// The most byte ranges an event lists (see [`Object::summary`]).
pub const LISTED_RANGES: usize = 64;
/// The most bytes read and checked at a time.
const MAX_READ: u64 = 32 * GROUP;
/// Outboard bytes kept in memory while one is computed, before they go to a temporary file.
const SPILL_AT: usize = 4 << 20;

/// The tree of an object of `size` bytes.
pub fn tree(size: u64) -> BaoTree {
    BaoTree::new(size, BLOCK)
}

/// The outboard of object `sha256` in the store at `root`.
pub fn path_in(root: &Path, sha256: &str) -> PathBuf {
    root.join(DIR).join(&sha256[..2]).join(&sha256[2..])
}

/// An outboard as it is computed: in memory, then in an unnamed temporary file once it is
/// large, so memory stays flat whatever the object's size.
#[derive(Default)]
pub struct Encoded {
    mem: Vec<u8>,
    spill: Option<File>,
    spilled: u64,
}

impl Write for Encoded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.mem.extend_from_slice(buf);
        if self.mem.len() >= SPILL_AT {
            let spill = match &mut self.spill {
                Some(f) => f,
                None => self.spill.insert(tempfile::tempfile()?),
            };
            spill.write_all_at(&self.mem, self.spilled)?;
            self.spilled += self.mem.len() as u64;
            self.mem.clear();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encoded({} bytes)", self.len())
    }
}

impl Encoded {
    pub fn len(&self) -> u64 {
        self.spilled + self.mem.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copy the outboard into `out`.
    fn write_into(&self, out: &mut impl Write) -> io::Result<()> {
        if let Some(spill) = &self.spill {
            let mut buf = vec![0u8; 1 << 20];
            let mut at = 0;
            while at < self.spilled {
                let n = buf.len().min((self.spilled - at) as usize);
                spill.read_exact_at(&mut buf[..n], at)?;
                out.write_all(&buf[..n])?;
                at += n as u64;
            }
        }
        out.write_all(&self.mem)
    }

    /// The outboard's bytes.
    pub fn to_vec(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len() as usize);
        self.write_into(&mut out)?;
        Ok(out)
    }

    /// Write the outboard to `dest` (atomically: complete or not there).
    pub fn save(&self, dest: &Path) -> io::Result<()> {
        let dir = dest.parent().expect("outboard paths have a parent");
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new().prefix(".new-").tempfile_in(dir)?;
        self.write_into(&mut io::BufWriter::new(tmp.as_file_mut()))?;
        // Read-only, like the objects: anyone who may read the store may use it.
        tmp.as_file().set_permissions(fs::Permissions::from_mode(0o444))?;
        tmp.persist(dest).map_err(|e| e.error)?;
        Ok(())
    }

    /// The outboard in an unnamed temporary file (where the store cannot keep it).
    fn into_file(self) -> io::Result<File> {
        let mut f = tempfile::tempfile()?;
        self.write_into(&mut io::BufWriter::new(&mut f))?;
        Ok(f)
    }
}

/// Compute the BLAKE3 of `size` bytes read from `data` and their outboard.
pub fn encode(data: impl Read, size: u64) -> io::Result<(blake3::Hash, Encoded)> {
    let mut out = Encoded::default();
    let root = outboard_post_order(data, tree(size), &mut out)?;
    Ok((root, out))
}

/// Why bytes of an object could not be handed out.
#[derive(Clone, Debug)]
pub enum Failure {
    /// These bytes do not hash to their place in the recorded tree.
    Altered { start: u64, end: u64 },
    /// The object as a whole does not have the recorded BLAKE3 (or size).
    Whole(String),
    /// The object could not be read.
    Unreadable(String),
}

/// Where an object's bytes are when they are not in a file of the store's own directory (an
/// agency store's bucket): read in ranges, its stored outboard fetched whole (it is 0.2 % of
/// the object). Nothing it returns is trusted more than a file's bytes: every byte is checked.
pub trait Remote: Send + Sync {
    /// Bytes `start..end` of the object.
    fn read(&self, start: u64, end: u64) -> io::Result<Vec<u8>>;
    /// The object's size as stored.
    fn size(&self) -> io::Result<u64>;
    /// The outboard kept beside the object, when there is one of `size` bytes.
    fn outboard(&self, size: u64) -> Option<Vec<u8>>;
    /// Keep an outboard rebuilt from the object beside it (best effort: it needs no trust).
    fn keep_outboard(&self, bytes: &[u8]);
    /// Where the object is, for messages.
    fn shown(&self) -> String;
}

/// Bytes fetched at once from a [`Remote`] object: a request costs a round trip, so a reader
/// moving forward in small steps (FFmpeg's demuxers) is served from one fetch.
const REMOTE_AHEAD: u64 = 2 << 20;

/// An object being read by a derived command, and what was checked of it.
pub struct Object {
    /// The item, as reports name it.
    label: String,
    path: PathBuf,
    outboard_path: PathBuf,
    size: u64,
    root: blake3::Hash,
    remote: Option<Arc<dyn Remote>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    file: Option<File>,
    nodes: Option<PostOrderOutboard<Pages>>,
    /// The outboard was rebuilt from the object by this process (a node that still fails is
    /// then the object's fault).
    rebuilt: bool,
    /// Byte ranges checked, start → end, merged (each starts on a group; each ends on one or
    /// at the end of the object).
    checked: BTreeMap<u64, u64>,
    failure: Option<Failure>,
    /// The last bytes fetched from a remote object (not yet checked), and where they start.
    fetched: Option<(u64, Vec<u8>)>,
    /// The remote object's size was checked against the recorded one.
    sized: bool,
}

/// Objects registered by this process: FFmpeg and every other reader of their path read them
/// through a [`Reader`].
static REGISTERED: Mutex<Vec<Arc<Object>>> = Mutex::new(Vec::new());

impl Object {
    /// Read the object at `path` (of `size` bytes and BLAKE3 `blake3_hex`, as recorded) only
    /// through checked reads from now on, in this process; `label` names it in errors.
    pub fn register(path: &Path, outboard_path: PathBuf, size: u64, blake3_hex: &str, label: String) -> Arc<Object> {
        Object::register_at(path, None, outboard_path, size, blake3_hex, label)
    }

    /// [`Object::register`] for an object whose bytes `remote` holds (`path` is then only the
    /// name FFmpeg is given); `outboard_path` caches its outboard.
    pub fn register_at(
        path: &Path,
        remote: Option<Arc<dyn Remote>>,
        outboard_path: PathBuf,
        size: u64,
        blake3_hex: &str,
        label: String,
    ) -> Arc<Object> {
        let root = blake3::Hash::from_hex(blake3_hex).unwrap_or_else(|_| blake3::hash(b"not a recorded BLAKE3"));
        let object = Arc::new(Object {
            label,
            path: path.to_owned(),
            outboard_path,
            size,
            root,
            remote,
            state: Mutex::new(State::default()),
        });
        let mut all = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|o| o.path != object.path);
        all.push(Arc::clone(&object));
        object
    }

    /// The object registered for `path`, if any.
    pub fn find(path: &Path) -> Option<Arc<Object>> {
        let all = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
        all.iter().find(|o| o.path == path).cloned().or_else(|| {
            let canonical = fs::canonicalize(path).ok()?;
            all.iter().find(|o| fs::canonicalize(&o.path).is_ok_and(|p| p == canonical)).cloned()
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first failure of any read, if one failed.
    pub fn failure(&self) -> Option<Failure> {
        self.state().failure.clone()
    }

    /// The failure as the command reports it (exit 1).
    pub fn failure_message(&self) -> Option<String> {
        let failure = self.failure()?;
        Some(match failure {
            Failure::Altered { start, end } => format!(
                "item {}: bytes {start}..{end} of its object do not match the BLAKE3 recorded when it entered \
                 custody: the object was altered. Nothing was recorded; run `custody verify`",
                self.label
            ),
            Failure::Whole(why) => format!(
                "item {} no longer matches the digests recorded for it: {why}. Nothing was recorded; run `custody verify`",
                self.label
            ),
            Failure::Unreadable(why) => format!(
                "item {}: its object {} cannot be read ({why}); nothing was recorded; run `custody verify`",
                self.label,
                self.shown()
            ),
        })
    }

    /// What was checked: for the event's `verified` member. The byte ranges are listed when
    /// there are at most [`LISTED_RANGES`] of them; more (the first command on a long MP4
    /// reads a group of every keyframe) are told by their count, their span and the SHA-256
    /// of their list, so an event stays small.
    pub fn summary(&self) -> Value {
        let st = self.state();
        let bytes: u64 = st.checked.iter().map(|(s, e)| e - s).sum();
        let groups: u64 = st.checked.iter().map(|(s, e)| (e - s).div_ceil(GROUP)).sum();
        let ranges: Vec<Value> = st.checked.iter().map(|(s, e)| json!([s, e])).collect();
        let mut v = json!({
            "mode": "read-ranges",
            "against": "blake3",
            "group_bytes": GROUP,
            "groups": groups,
            "bytes": bytes,
            "of": self.size,
        });
        if ranges.len() <= LISTED_RANGES {
            v["ranges"] = json!(ranges);
        } else {
            let list = serde_json::to_vec(&ranges).expect("numbers serialize");
            v["range_count"] = json!(ranges.len());
            v["span"] = json!([st.checked.keys().next(), st.checked.values().next_back()]);
            v["ranges_sha256"] = json!(hex::encode(crate::digest::sha256(&list)));
        }
        v
    }

    /// Bytes `start..start + len` (within the object), checked.
    fn read_checked(&self, start: u64, len: u64) -> Result<Vec<u8>, Failure> {
        let mut st = self.state();
        if let Some(f) = &st.failure {
            return Err(f.clone());
        }
        let result = self.read_locked(&mut st, start, len);
        if let Err(f) = &result {
            st.failure = Some(f.clone());
            crate::media::log::hush();
        }
        result
    }

    /// Where the object is, for messages.
    fn shown(&self) -> String {
        match &self.remote {
            Some(r) => r.shown(),
            None => self.path.display().to_string(),
        }
    }

    /// Bytes `first..last` of a remote object, fetched [`REMOTE_AHEAD`] at a time.
    fn fetch(&self, st: &mut State, remote: &dyn Remote, first: u64, last: u64) -> Result<Vec<u8>, Failure> {
        if !st.sized {
            let actual = remote.size().map_err(|e| Failure::Unreadable(e.to_string()))?;
            if actual != self.size {
                return Err(Failure::Whole(format!(
                    "its object holds {actual} bytes where {} were recorded",
                    self.size
                )));
            }
            st.sized = true;
        }
        let held = |st: &State| st.fetched.as_ref().is_some_and(|(at, b)| *at <= first && last <= *at + b.len() as u64);
        if !held(st) {
            let end = last.max(first + REMOTE_AHEAD).min(self.size);
            let bytes = remote
                .read(first, end)
                .map_err(|e| Failure::Unreadable(format!("reading bytes {first}..{end}: {e}")))?;
            st.fetched = Some((first, bytes));
        }
        let (at, bytes) = st.fetched.as_ref().expect("fetched above");
        Ok(bytes[(first - at) as usize..(last - at) as usize].to_vec())
    }

    fn read_locked(&self, st: &mut State, start: u64, len: u64) -> Result<Vec<u8>, Failure> {
        let end = (start + len).min(self.size);
        let (first, last) = (start / GROUP * GROUP, end.div_ceil(GROUP) * GROUP);
        let last = last.min(self.size);
        let bytes = match &self.remote {
            Some(remote) => self.fetch(st, remote.as_ref(), first, last)?,
            None => self.read_file(st, first, last)?,
        };
        self.check_read(st, first, last, bytes)
    }

    /// Bytes `first..last` of the object's file.
    fn read_file(&self, st: &mut State, first: u64, last: u64) -> Result<Vec<u8>, Failure> {
        if st.file.is_none() {
            let file = File::open(&self.path).map_err(|e| Failure::Unreadable(e.to_string()))?;
            let actual = file.metadata().map_err(|e| Failure::Unreadable(e.to_string()))?.len();
            if actual != self.size {
                return Err(Failure::Whole(format!(
                    "its object holds {actual} bytes where {} were recorded",
                    self.size
                )));
            }
            st.file = Some(file);
        }
        let mut bytes = vec![0u8; (last - first) as usize];
        let file = st.file.as_ref().expect("opened above");
        file.read_exact_at(&mut bytes, first).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Failure::Whole(format!("its object is shorter than the {} bytes recorded", self.size))
            } else {
                Failure::Unreadable(format!("reading bytes {first}..{last}: {e}"))
            }
        })?;
        Ok(bytes)
    }

    /// Check bytes `first..last` of the object against the recorded tree.
    fn check_read(&self, st: &mut State, first: u64, last: u64, bytes: Vec<u8>) -> Result<Vec<u8>, Failure> {
        let ranges = ChunkRanges::from(ChunkNum(first / 1024)..ChunkNum(last.div_ceil(1024)));
        loop {
            if st.nodes.is_none() {
                st.nodes = Some(self.load_nodes(st)?);
            }
            let nodes = st.nodes.as_ref().expect("loaded above");
            let data = Window { start: first, bytes: &bytes };
            match encode_ranges_validated(data, nodes, &ranges, io::sink()) {
                Ok(()) => break,
                Err(EncodeError::LeafHashMismatch(chunk)) => {
                    // Every node above this group checked out against the root: the bytes are wrong.
                    let start = chunk.0 * 1024;
                    return Err(Failure::Altered { start, end: (start + GROUP).min(self.size) });
                }
                Err(EncodeError::ParentHashMismatch(_)) if !st.rebuilt => {
                    // A node of the outboard does not hash up to the root: the outboard is
                    // damaged or forged. Rebuild it from the object and try again.
                    st.nodes = None;
                    st.nodes = Some(self.rebuild(st)?);
                }
                Err(EncodeError::ParentHashMismatch(_)) => {
                    return Err(Failure::Whole("its BLAKE3 tree changed while it was read".into()));
                }
                Err(e) => return Err(Failure::Unreadable(format!("checking bytes {first}..{last}: {e}"))),
            }
        }
        insert_range(&mut st.checked, first, last);
        Ok(bytes)
    }

    /// The stored outboard, when it has the size the object's tree needs; else one rebuilt.
    fn load_nodes(&self, st: &mut State) -> Result<PostOrderOutboard<Pages>, Failure> {
        let tree = tree(self.size);
        if let Ok(f) = File::open(&self.outboard_path)
            && f.metadata().is_ok_and(|m| m.len() == tree.outboard_size())
        {
            return Ok(PostOrderOutboard { root: self.root, tree, data: Pages::new(f) });
        }
        // A remote object's outboard is fetched whole and cached beside the store (it needs no
        // trust: a node that does not hash up to the root makes us rebuild it).
        if let Some(remote) = &self.remote
            && let Some(bytes) = remote.outboard(tree.outboard_size())
        {
            let encoded = Encoded { mem: bytes, ..Encoded::default() };
            let data = match encoded.save(&self.outboard_path).and_then(|_| File::open(&self.outboard_path)) {
                Ok(f) => f,
                Err(_) => encoded.into_file().map_err(|e| Failure::Unreadable(e.to_string()))?,
            };
            return Ok(PostOrderOutboard { root: self.root, tree, data: Pages::new(data) });
        }
        self.rebuild(st)
    }

    /// Read the whole object once, build its outboard and keep it (in the store when the store
    /// can be written, else in a temporary file). Its root must be the recorded BLAKE3.
    fn rebuild(&self, st: &mut State) -> Result<PostOrderOutboard<Pages>, Failure> {
        st.rebuilt = true;
        if self.size >= 1 << 30 {
            eprintln!(
                "note: reading {} whole once to build its BLAKE3 tree (it was stored before custody kept one, or its tree was damaged); later commands read only what they need",
                self.label
            );
        }
        let built = match (&self.remote, st.file.as_ref()) {
            (Some(remote), _) => {
                let reader = RemoteReader { remote: remote.as_ref(), pos: 0, size: self.size };
                encode(io::BufReader::with_capacity(crate::objects::FETCH as usize, reader), self.size)
            }
            (None, Some(file)) => match Mapped::if_large(file) {
                Some(map) => {
                    let built = encode(&map[..], self.size);
                    map.check().map_err(|e| Failure::Unreadable(e.to_string()))?;
                    built
                }
                None => encode(io::BufReader::new(file), self.size),
            },
            (None, None) => unreachable!("a local object's file is opened before its tree is needed"),
        };
        let (root, encoded) = built.map_err(|e| Failure::Unreadable(e.to_string()))?;
        if root != self.root {
            return Err(Failure::Whole("its BLAKE3 is not the one recorded: the object was altered".into()));
        }
        let tree = tree(self.size);
        if let Some(remote) = &self.remote
            && let Ok(bytes) = encoded.to_vec()
        {
            remote.keep_outboard(&bytes);
        }
        let data = match encoded.save(&self.outboard_path).and_then(|_| File::open(&self.outboard_path)) {
            Ok(f) => f,
            Err(_) => encoded.into_file().map_err(|e| Failure::Unreadable(e.to_string()))?,
        };
        Ok(PostOrderOutboard { root: self.root, tree, data: Pages::new(data) })
    }
}

/// A remote object read in order, for rebuilding its tree.
struct RemoteReader<'a> {
    remote: &'a dyn Remote,
    pos: u64,
    size: u64,
}

impl Read for RemoteReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let end = (self.pos + buf.len() as u64).min(self.size);
        let bytes = self.remote.read(self.pos, end)?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        self.pos = end;
        Ok(bytes.len())
    }
}

/// An outboard file read a page at a time, the pages kept: checking one group reads a node
/// per level of the tree, 64 bytes each, and neighbouring groups share most of them, so a
/// sequential read of the object reads each page of its outboard once instead of a node per
/// system call. Nothing here is trusted: every node is checked as it is used.
struct Pages {
    file: File,
    pages: std::cell::RefCell<std::collections::HashMap<u64, Box<[u8]>>>,
}

/// Bytes in an outboard page (64 nodes).
const PAGE: u64 = 4096;
/// Pages kept before the cache starts afresh: 4 MiB, the outboard of 2 GiB of object.
const PAGES_KEPT: usize = 1024;

impl Pages {
    fn new(file: File) -> Pages {
        Pages { file, pages: Default::default() }
    }
}

impl positioned_io::ReadAt for Pages {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut pages = self.pages.borrow_mut();
        let mut done = 0;
        while done < buf.len() {
            let at = pos + done as u64;
            let page_start = at / PAGE * PAGE;
            if !pages.contains_key(&page_start) {
                if pages.len() >= PAGES_KEPT {
                    pages.clear();
                }
                let mut page = vec![0u8; PAGE as usize];
                let mut got = 0;
                while got < page.len() {
                    match FileExt::read_at(&self.file, &mut page[got..], page_start + got as u64) {
                        Ok(0) => break,
                        Ok(n) => got += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                page.truncate(got);
                pages.insert(page_start, page.into_boxed_slice());
            }
            let page = &pages[&page_start];
            let offset = (at - page_start) as usize;
            if offset >= page.len() {
                break; // the end of the file
            }
            let n = (page.len() - offset).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&page[offset..offset + n]);
            done += n;
        }
        Ok(done)
    }
}

/// Bytes of the object held in memory, read at their offsets in the object.
struct Window<'a> {
    start: u64,
    bytes: &'a [u8],
}

impl positioned_io::ReadAt for Window<'_> {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let at = pos.checked_sub(self.start).ok_or_else(|| io::Error::other("read before the window"))?;
        self.bytes.read_at(at, buf)
    }
}

fn insert_range(ranges: &mut BTreeMap<u64, u64>, mut start: u64, mut end: u64) {
    let touching: Vec<(u64, u64)> = ranges.range(..=end).filter(|(_, e)| **e >= start).map(|(s, e)| (*s, *e)).collect();
    for (s, e) in touching {
        ranges.remove(&s);
        start = start.min(s);
        end = end.max(e);
    }
    ranges.insert(start, end);
}

/// Byte ranges of an object a reader leaves out: it reads them as zeros, without reading or
/// checking them (see [`Reader::leaving_out`]).
pub type LeftOut = Arc<Mutex<Vec<(u64, u64)>>>;

/// A reader over a registered object that hands out only checked bytes.
pub struct Reader {
    object: Arc<Object>,
    pos: u64,
    window_start: u64,
    window: Vec<u8>,
    left_out: Option<LeftOut>,
}

impl Reader {
    pub fn new(object: Arc<Object>) -> Reader {
        Reader { object, pos: 0, window_start: 0, window: Vec::new(), left_out: None }
    }

    /// A reader that reads the ranges `left_out` holds (sorted, not overlapping; empty at
    /// first, filled by its owner) as zeros, without reading them: the payloads of samples
    /// whose position, size, times and flags the container's own tables give, when only those
    /// are wanted (the frame index of an MP4). No byte of them is evidence of anything then.
    pub fn leaving_out(object: Arc<Object>, left_out: LeftOut) -> Reader {
        Reader { left_out: Some(left_out), ..Reader::new(object) }
    }

    /// Where the left-out range holding `pos` ends, or where the next one starts.
    fn left_out_at(&self, pos: u64) -> (Option<u64>, u64) {
        let Some(ranges) = &self.left_out else { return (None, u64::MAX) };
        let ranges = ranges.lock().unwrap_or_else(|e| e.into_inner());
        let i = ranges.partition_point(|&(_, end)| end <= pos);
        match ranges.get(i) {
            Some(&(start, end)) if start <= pos => (Some(end), start),
            Some(&(start, _)) => (None, start),
            None => (None, u64::MAX),
        }
    }
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.object.size || buf.is_empty() {
            return Ok(0);
        }
        let (inside, next) = self.left_out_at(self.pos);
        if let Some(end) = inside {
            let n = (buf.len() as u64).min(end.min(self.object.size) - self.pos) as usize;
            buf[..n].fill(0);
            self.pos += n as u64;
            return Ok(n);
        }
        let room = (buf.len() as u64).min(next - self.pos) as usize;
        let buf = &mut buf[..room];
        let in_window = self.pos >= self.window_start && self.pos < self.window_start + self.window.len() as u64;
        if !in_window {
            // The groups this read touches (at least one), and no more: a reader that jumps
            // through the file (from one sample's header to the next) is checked where it lands.
            let start = self.pos / GROUP * GROUP;
            let len = (self.pos + (buf.len() as u64).max(1)).min(self.object.size) - start;
            self.window = self.object.read_checked(start, len.min(MAX_READ)).map_err(|_| {
                let why = self.object.failure_message().unwrap_or_default();
                io::Error::new(io::ErrorKind::InvalidData, why)
            })?;
            self.window_start = start;
        }
        let at = (self.pos - self.window_start) as usize;
        let n = buf.len().min(self.window.len() - at);
        buf[..n].copy_from_slice(&self.window[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Reader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = seek_in(self.pos, self.object.size, to)?;
        Ok(self.pos)
    }
}

/// Where a seek `to` from `pos` lands in something of `size` bytes (past the end is allowed, as
/// for files; before the start is an error).
pub fn seek_in(pos: u64, size: u64, to: SeekFrom) -> io::Result<u64> {
    let at = match to {
        SeekFrom::Start(p) => Some(p),
        SeekFrom::End(d) => size.checked_add_signed(d),
        SeekFrom::Current(d) => pos.checked_add_signed(d),
    };
    at.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))
}

/// Something to read a file through.
pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// Open `path` for reading: through a [`Reader`] when it is a registered object, else plainly.
pub fn open(path: &Path) -> io::Result<Box<dyn ReadSeek>> {
    match Object::find(path) {
        Some(object) => Ok(Box::new(Reader::new(object))),
        None => Ok(Box::new(File::open(path)?)),
    }
}

/// The size of the file at `path`: a registered object's recorded size (its bytes may be in a
/// bucket, with no file at `path`), else the file's.
pub fn size_of(path: &Path) -> io::Result<u64> {
    match Object::find(path) {
        Some(object) => Ok(object.size),
        None => Ok(fs::metadata(path)?.len()),
    }
}

/// `Err` with the command's message when a read of the object registered for `path` failed.
pub fn check(path: &Path) -> anyhow::Result<()> {
    match Object::find(path).and_then(|o| o.failure_message()) {
        Some(message) => Err(crate::error::mismatch(message)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        let mut x: u64 = 7;
        (0..len)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn the_outboards_root_is_blake3_and_it_spills_without_changing() {
        for len in [0usize, 1, 1024, 32768, 32769, 5 * 32768 + 7, 300 * 32768 + 11] {
            let d = data(len);
            let (root, enc) = encode(&d[..], len as u64).unwrap();
            assert_eq!(root, blake3::hash(&d), "length {len}");
            assert_eq!(enc.len(), tree(len as u64).outboard_size(), "length {len}");
        }
        // An outboard larger than SPILL_AT reads back whole from its temporary file.
        let mut e = Encoded::default();
        let piece: Vec<u8> = (0..64u8).collect();
        for _ in 0..(SPILL_AT / 64 + 100) {
            e.write_all(&piece).unwrap();
        }
        let mut out = Vec::new();
        e.write_into(&mut out).unwrap();
        assert_eq!(out.len() as u64, e.len());
        assert!(out.chunks(64).all(|c| c == &piece[..]));
    }

    fn object(dir: &Path, bytes: &[u8]) -> (PathBuf, Arc<Object>) {
        let path = dir.join("obj");
        fs::write(&path, bytes).unwrap();
        let label = "i1 (c:1/x)".to_owned();
        let o = Object::register(&path, dir.join("ob"), bytes.len() as u64, &blake3::hash(bytes).to_hex(), label);
        (path, o)
    }

    #[test]
    fn a_reader_hands_out_the_objects_bytes_and_records_what_it_checked() {
        let dir = tempfile::tempdir().unwrap();
        let d = data(40 * 32768 + 5);
        let (_, o) = object(dir.path(), &d);
        let mut r = Reader::new(Arc::clone(&o));
        r.seek(SeekFrom::Start(20 * 32768 + 100)).unwrap();
        let mut buf = vec![0u8; 70000];
        r.read_exact(&mut buf).unwrap();
        assert!(buf == d[20 * 32768 + 100..20 * 32768 + 70100]);
        r.seek(SeekFrom::End(-3)).unwrap();
        let mut tail = Vec::new();
        r.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, &d[d.len() - 3..]);
        let s = o.summary();
        // Only the groups the reads touched.
        assert_eq!(s["ranges"], json!([[20 * 32768, 23 * 32768], [40 * 32768, d.len()]]));
        assert_eq!(s["groups"], json!(4));
        assert!(o.failure().is_none());
        // The outboard was built once (there was none) and kept.
        assert_eq!(fs::metadata(dir.path().join("ob")).unwrap().len(), tree(d.len() as u64).outboard_size());
    }

    #[test]
    fn objects_of_one_group_or_less_are_checked_against_the_root_itself() {
        for len in [1usize, 1000, 32768] {
            let dir = tempfile::tempdir().unwrap();
            let d = data(len);
            let (path, o) = object(dir.path(), &d);
            let mut all = Vec::new();
            Reader::new(Arc::clone(&o)).read_to_end(&mut all).unwrap();
            assert!(all == d, "length {len}");
            assert_eq!(fs::metadata(dir.path().join("ob")).unwrap().len(), 0, "no parent nodes");
            let mut bad = d.clone();
            bad[len / 2] ^= 2;
            fs::remove_file(&path).unwrap();
            fs::write(&path, &bad).unwrap();
            let o = Object::register(&path, dir.path().join("ob"), len as u64, &blake3::hash(&d).to_hex(), "i1".into());
            assert!(Reader::new(o).read_to_end(&mut Vec::new()).is_err(), "length {len}");
        }
    }

    #[test]
    fn many_scattered_reads_are_summed_up_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let d = data(200 * 32768);
        let (_, o) = object(dir.path(), &d);
        for g in (0..200).step_by(2) {
            o.read_checked(g * 32768 + 7, 1).unwrap();
        }
        let s = o.summary();
        assert_eq!((s["groups"].as_u64(), s["range_count"].as_u64()), (Some(100), Some(100)), "{s}");
        assert_eq!(s["span"], json!([0, 199 * 32768]));
        assert!(s.get("ranges").is_none() && s["ranges_sha256"].as_str().is_some_and(|h| h.len() == 64), "{s}");
    }

    #[test]
    fn an_altered_group_fails_with_its_range_and_others_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let d = data(40 * 32768);
        let (path, o) = object(dir.path(), &d);
        // Build the outboard from the good bytes, then alter one byte of group 30.
        let _ = o.read_checked(0, 10);
        let mut bad = d.clone();
        bad[30 * 32768 + 9] ^= 1;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).ok();
        fs::write(&path, &bad).unwrap();
        let o = Object::register(&path, dir.path().join("ob"), d.len() as u64, &blake3::hash(&d).to_hex(), "i1".into());
        assert!(o.read_checked(0, 32768).is_ok());
        match o.read_checked(30 * 32768 + 5, 10) {
            Err(Failure::Altered { start, end }) => assert_eq!((start, end), (30 * 32768, 31 * 32768)),
            other => panic!("{:?}", other.map(|v| v.len())),
        }
        assert!(o.failure_message().unwrap().contains("bytes 983040..1015808"));
    }

    #[test]
    fn a_forged_or_short_outboard_is_rebuilt_never_believed() {
        let dir = tempfile::tempdir().unwrap();
        let d = data(64 * 32768);
        let (path, o) = object(dir.path(), &d);
        let _ = o.read_checked(0, 10).unwrap();
        let ob = dir.path().join("ob");
        let mut nodes = fs::read(&ob).unwrap();
        // The root's pair (last, in post order) is on every group's path.
        let at = nodes.len() - 10;
        nodes[at] ^= 0x40;
        fs::remove_file(&ob).unwrap();
        fs::write(&ob, &nodes).unwrap();
        let o = Object::register(&path, ob.clone(), d.len() as u64, &blake3::hash(&d).to_hex(), "i1".into());
        assert!(o.read_checked(50 * 32768, 10).unwrap() == d[50 * 32768..51 * 32768]);
        assert!(fs::read(&ob).unwrap() == encode(&d[..], d.len() as u64).unwrap().1.mem, "rebuilt");
        fs::remove_file(&ob).unwrap();
        fs::write(&ob, &nodes[..nodes.len() - 64]).unwrap();
        let o = Object::register(&path, ob.clone(), d.len() as u64, &blake3::hash(&d).to_hex(), "i1".into());
        assert!(o.read_checked(3 * 32768, 10).unwrap() == d[3 * 32768..4 * 32768]);
        // A forged outboard of altered bytes is caught by the root.
        let mut bad = d.clone();
        bad[7] ^= 1;
        encode(&bad[..], bad.len() as u64).unwrap().1.save(&ob).unwrap();
        let o = Object::register(&path, ob, d.len() as u64, &blake3::hash(&d).to_hex(), "i1".into());
        assert!(o.read_checked(60 * 32768, 10).is_ok(), "a forged tree is rebuilt from the good object");
    }
}
