//! Single-pass, multi-digest hashing: SHA-256 and BLAKE3 by default, MD5 and SHA-1 on request.
//!
//! Bytes are read once. The reading thread computes SHA-256, the slowest digest, on bytes still
//! hot in its cache, exactly as `openssl dgst` does (and through the same libcrypto code, SHA-NI
//! accelerated); BLAKE3 (and MD5/SHA-1 on request) run on other threads over the same shared
//! buffers, and so does the copy into the store ([`copy_stream`]). BLAKE3 needs a quarter of
//! the second core, so the pair costs SHA-256 alone.
//!
//! Files of 16 MiB or more are not read into buffers at all: every thread reads their pages
//! in place through a guarded memory map ([`digest_mapped`], [`crate::mapped`]), BLAKE3
//! leading and taking the page faults, SHA-256 and the copy following close behind.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use md5::Digest as _;
use serde::{Deserialize, Serialize};

use crate::mapped::{self, Mapped};

/// Size of one read: small enough that the piece is still in this core's cache when the inline
/// digest and the sink read it (measured: 64 KiB beat 128 KiB, 256 KiB and 1 MiB here).
const PIECE: usize = 64 << 10;
/// Size of one buffer handed to the other digest threads: large, so they are woken rarely
/// (a wake-up costs more than hashing 64 KiB on this kind of machine).
const CHUNK: usize = 1 << 20;
/// Buffers in flight between the reader and the digest threads.
const DEPTH: usize = 8;
/// Buffers in flight when copying: enough to ride out the writer stalling while the disk
/// catches up (64 MiB), so reading and hashing never wait for it.
const COPY_DEPTH: usize = 64;

/// A digest algorithm custody can compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Sha256,
    Blake3,
    Md5,
    Sha1,
    Sha512,
}

impl Algorithm {
    /// The name used in tagged (BSD-style) checksum lines, as coreutils and b3sum spell it.
    pub fn tag(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA256",
            Algorithm::Blake3 => "BLAKE3",
            Algorithm::Md5 => "MD5",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// The lowercase name used in JSON and in the ledger.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Blake3 => "blake3",
            Algorithm::Md5 => "md5",
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex digest.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 | Algorithm::Blake3 => 64,
            Algorithm::Md5 => 32,
            Algorithm::Sha1 => 40,
            Algorithm::Sha512 => 128,
        }
    }

    /// The list file name conventionally used for this algorithm's sums.
    pub fn sums_file(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA256SUMS",
            Algorithm::Blake3 => "B3SUMS",
            Algorithm::Md5 => "MD5SUMS",
            Algorithm::Sha1 => "SHA1SUMS",
            Algorithm::Sha512 => "SHA512SUMS",
        }
    }

    pub fn from_tag(tag: &str) -> Option<Algorithm> {
        match tag.to_ascii_uppercase().as_str() {
            "SHA256" | "SHA2-256" | "SHA-256" => Some(Algorithm::Sha256),
            "BLAKE3" => Some(Algorithm::Blake3),
            "MD5" => Some(Algorithm::Md5),
            "SHA1" | "SHA-1" => Some(Algorithm::Sha1),
            "SHA512" | "SHA2-512" | "SHA-512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

/// The digests of one byte stream, lowercase hex, plus its length.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Digests {
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha512: Option<String>,
    /// The BLAKE3 tree's outboard, when it was asked for ([`digest_mapped`] with `tree`): kept
    /// beside the object so later reads can check parts of it ([`crate::outboard`]).
    #[serde(skip)]
    pub tree: Option<Tree>,
}

/// An outboard computed with a digest run.
#[derive(Clone, Debug)]
pub struct Tree(pub Arc<crate::outboard::Encoded>);

/// Digest sets are equal when their sizes and digests are: a tree follows from the bytes as the
/// BLAKE3 does, and whether one was kept takes no part.
impl PartialEq for Digests {
    fn eq(&self, other: &Digests) -> bool {
        (self.size, &self.sha256, &self.blake3, &self.md5, &self.sha1, &self.sha512)
            == (other.size, &other.sha256, &other.blake3, &other.md5, &other.sha1, &other.sha512)
    }
}

impl Eq for Digests {}

impl Digests {
    pub fn get(&self, algo: Algorithm) -> Option<&str> {
        match algo {
            Algorithm::Sha256 => self.sha256.as_deref(),
            Algorithm::Blake3 => self.blake3.as_deref(),
            Algorithm::Md5 => self.md5.as_deref(),
            Algorithm::Sha1 => self.sha1.as_deref(),
            Algorithm::Sha512 => self.sha512.as_deref(),
        }
    }

    fn set(&mut self, algo: Algorithm, hex: String) {
        match algo {
            Algorithm::Sha256 => self.sha256 = Some(hex),
            Algorithm::Blake3 => self.blake3 = Some(hex),
            Algorithm::Md5 => self.md5 = Some(hex),
            Algorithm::Sha1 => self.sha1 = Some(hex),
            Algorithm::Sha512 => self.sha512 = Some(hex),
        }
    }

    /// The SHA-256, which every store-side digest set has.
    pub fn sha256(&self) -> &str {
        self.sha256.as_deref().unwrap_or_default()
    }

    /// The BLAKE3, which every store-side digest set has.
    pub fn blake3(&self) -> &str {
        self.blake3.as_deref().unwrap_or_default()
    }
}

/// Where a single-pass digest run failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("read error at byte offset {offset}: {source}")]
    Read { offset: u64, source: io::Error },
    #[error("write error at byte offset {offset}: {source}")]
    Sink { offset: u64, source: io::Error },
}

impl StreamError {
    pub fn io(&self) -> &io::Error {
        match self {
            StreamError::Read { source, .. } | StreamError::Sink { source, .. } => source,
        }
    }
}

enum Worker {
    /// SHA-256 through the system's libcrypto: the same code `openssl dgst` runs.
    Sha256(openssl::sha::Sha256),
    Sha512(Box<openssl::sha::Sha512>),
    Ring(ring::digest::Context),
    Md5(md5::Md5),
    Blake3(Box<blake3::Hasher>),
}

impl Worker {
    fn new(algo: Algorithm) -> Worker {
        match algo {
            Algorithm::Sha256 => Worker::Sha256(openssl::sha::Sha256::new()),
            Algorithm::Sha1 => Worker::Ring(ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY)),
            Algorithm::Md5 => Worker::Md5(md5::Md5::new()),
            Algorithm::Sha512 => Worker::Sha512(Box::new(openssl::sha::Sha512::new())),
            Algorithm::Blake3 => Worker::Blake3(Box::new(blake3::Hasher::new())),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Worker::Sha256(c) => c.update(data),
            Worker::Sha512(c) => c.update(data),
            Worker::Ring(c) => c.update(data),
            Worker::Md5(c) => c.update(data),
            Worker::Blake3(c) => {
                c.update(data);
            }
        }
    }

    fn finish(self) -> String {
        match self {
            Worker::Sha256(c) => hex::encode(c.finish()),
            Worker::Sha512(c) => hex::encode(c.finish()),
            Worker::Ring(c) => hex::encode(c.finish().as_ref()),
            Worker::Md5(c) => hex::encode(c.finalize()),
            Worker::Blake3(c) => c.finalize().to_hex().to_string(),
        }
    }
}

type Chunk = (Arc<Vec<u8>>, usize);

/// Read `reader` to its end once, computing every digest in `algos` and passing each chunk to
/// `sink` (in order) as it is read. The slowest digest (SHA-256 when asked for) runs on the
/// reading thread, on bytes still hot in its cache; every other digest runs on its own thread.
pub fn digest_stream<R: Read>(
    reader: &mut R,
    algos: &[Algorithm],
    sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> Result<Digests, StreamError> {
    run_pipeline(reader, algos, sink, None)
}

/// A writer fed from its own thread by [`copy_stream`].
pub type Writer<'a> = Box<dyn FnMut(&[u8]) -> io::Result<()> + Send + 'a>;

/// Like [`digest_stream`], but `writer` (the copy into the store) runs on a thread of its own,
/// beside the digest threads, so the reading thread's only work is reading and SHA-256: the
/// copy costs what reading and hashing cost. On the writer's first error reading stops, and
/// the error is returned with the offset of the chunk that failed.
pub fn copy_stream<R: Read>(reader: &mut R, algos: &[Algorithm], writer: Writer<'_>) -> Result<Digests, StreamError> {
    run_pipeline(reader, algos, |_| Ok(()), Some(writer))
}

/// Digest a mapped file, and with `writer`, copy it ([`copy_stream`] over a mapping): every
/// thread reads the file's pages where they lie in the page cache, so no byte is copied into a
/// buffer first. The fastest digest (BLAKE3) runs on this thread and leads, reading ahead of
/// itself ([`Mapped::prefetch`]); the other digests and `writer` each follow on their own
/// thread, at most [`COPY_DEPTH`] chunks behind, so a file larger than memory is read from its
/// medium once. `progress` is told how many bytes the leader has taken. A page that cannot be read (the
/// file shrank, the medium failed) stops the run with a read error at its offset; nothing
/// computed from the mapping is returned then.
///
/// With `tree` (and BLAKE3 among `algos`), the leader also keeps the BLAKE3 tree's parent
/// nodes as it goes: the object's outboard, returned in [`Digests::tree`], for the cost of
/// finishing each chunk group's hash on its own.
pub fn digest_mapped(
    map: &Mapped,
    algos: &[Algorithm],
    writer: Option<Writer<'_>>,
    progress: &dyn Fn(u64),
    tree: bool,
) -> Result<Digests, StreamError> {
    let data: &[u8] = map;
    let mut wanted = distinct(algos);
    // The fastest digest leads (BLAKE3, when asked for): the leader takes the page faults and
    // the reads from the medium, so SHA-256, which sets the pace, follows on pages already
    // mapped in.
    if let Some(i) = wanted.iter().position(|&a| a == Algorithm::Blake3) {
        let fast = wanted.remove(i);
        wanted.insert(0, fast);
    }
    let write_failed = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        // Each follower is sent the (offset, length) of every chunk the leader has hashed.
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for &algo in wanted.iter().skip(1) {
            let (tx, rx) = mpsc::sync_channel::<(usize, usize)>(COPY_DEPTH);
            senders.push(tx);
            handles.push((
                algo,
                scope.spawn(move || {
                    let mut w = Worker::new(algo);
                    for (at, len) in rx {
                        w.update(&data[at..at + len]);
                    }
                    w.finish()
                }),
            ));
        }
        let failed = &write_failed;
        let write_handle = writer.map(|write| {
            let (tx, rx) = mpsc::sync_channel::<(usize, usize)>(COPY_DEPTH);
            senders.push(tx);
            scope.spawn(move || {
                let mut copier = Copier::new(write, failed);
                for (at, len) in rx {
                    copier.take(&data[at..at + len]);
                }
                copier.error
            })
        });
        // The leader's duties for each chunk before it is hashed: read ahead, report, and
        // hand it to the followers. None once the run must stop (a write failed, a page was lost).
        let announce = |at: usize| {
            if at >= data.len() || write_failed.load(Ordering::Relaxed) || map.lost().is_some() {
                return None;
            }
            map.prefetch(at + mapped::AHEAD, CHUNK);
            let len = CHUNK.min(data.len() - at);
            progress(len as u64);
            for tx in &senders {
                // A follower only stops when its sender is dropped, so this cannot fail.
                let _ = tx.send((at, len));
            }
            Some(len)
        };
        map.prefetch(0, mapped::AHEAD);
        let with_tree = tree && wanted.first() == Some(&Algorithm::Blake3);
        let mut own = if with_tree { None } else { wanted.first().map(|&a| Worker::new(a)) };
        let mut at = 0;
        let mut outboard = None;
        if with_tree {
            // bao-tree hashes each chunk group and writes the parents in post order while it
            // reads the mapping through `Lead`, which does the leader's duties chunk by chunk.
            let mut lead = Lead { data, at: 0, announced: 0, announce: &announce };
            let built = crate::outboard::encode(&mut lead, data.len() as u64);
            at = lead.announced;
            if let Ok(built) = built {
                outboard = Some(built);
            }
        } else {
            while let Some(len) = announce(at) {
                if let Some(w) = own.as_mut() {
                    w.update(&data[at..at + len]);
                }
                at += len;
            }
        }
        drop(senders);
        let mut digests = Digests { size: at as u64, ..Digests::default() };
        if let Some((root, encoded)) = outboard {
            digests.set(Algorithm::Blake3, root.to_hex().to_string());
            digests.tree = Some(Tree(Arc::new(encoded)));
        } else if with_tree && at == data.len() && !write_failed.load(Ordering::Relaxed) && map.lost().is_none() {
            // Only the outboard's temporary file can have failed here.
            return Err(StreamError::Sink {
                offset: at as u64,
                source: io::Error::other("cannot keep the BLAKE3 tree"),
            });
        }
        for (algo, h) in handles {
            digests.set(algo, h.join().expect("digest thread panicked"));
        }
        if let Some(e) = write_handle.and_then(|h| h.join().expect("writer thread panicked")) {
            return Err(e);
        }
        if let (Some(&algo), Some(w)) = (wanted.first(), own) {
            digests.set(algo, w.finish());
        }
        Ok(digests)
    });
    // A lost page explains whatever else went wrong (a copy cut short, a read-back mismatch).
    intact(map)?;
    result
}

/// The mapped bytes as the BLAKE3 leader reads them: chunk by chunk, each announced (read
/// ahead, reported, handed to the followers) before its first byte is given out. A run that
/// must stop reads as an error.
struct Lead<'a, F: Fn(usize) -> Option<usize>> {
    data: &'a [u8],
    at: usize,
    /// Where the chunks announced so far end.
    announced: usize,
    announce: &'a F,
}

impl<F: Fn(usize) -> Option<usize>> Read for Lead<'_, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.announced {
            if self.at == self.data.len() {
                return Ok(0);
            }
            let len = (self.announce)(self.at).ok_or_else(|| io::Error::other("stopped"))?;
            self.announced += len;
        }
        let n = buf.len().min(self.announced - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The read error for the first page of `map` that could not be read, if any.
fn intact(map: &Mapped) -> Result<(), StreamError> {
    match map.lost() {
        Some(at) => Err(StreamError::Read { offset: at, source: map.error(at) }),
        None => Ok(()),
    }
}

/// `algos` in [`Algorithm`] order (SHA-256 first), each once.
fn distinct(algos: &[Algorithm]) -> Vec<Algorithm> {
    let mut wanted = algos.to_vec();
    wanted.sort();
    wanted.dedup();
    wanted
}

/// The writer's side of a copy: hands each stretch to the writer, in order, until one fails;
/// after that it only counts, so the reader is never stuck waiting, and keeps the first error
/// with the offset of its stretch (flagged in `failed`, which stops the reader).
struct Copier<'w, 'f> {
    write: Writer<'w>,
    offset: u64,
    error: Option<StreamError>,
    failed: &'f AtomicBool,
}

impl<'w, 'f> Copier<'w, 'f> {
    fn new(write: Writer<'w>, failed: &'f AtomicBool) -> Self {
        Copier { write, offset: 0, error: None, failed }
    }

    fn take(&mut self, data: &[u8]) {
        if self.error.is_none()
            && let Err(source) = (self.write)(data)
        {
            self.error = Some(StreamError::Sink { offset: self.offset, source });
            self.failed.store(true, Ordering::Relaxed);
        }
        self.offset += data.len() as u64;
    }
}

/// Receive buffers in order until the sender hangs up, handing each to `each`, and tell the
/// reader about freed buffers in batches and whenever this thread is about to wait: one
/// wake-up per buffer costs more than hashing it.
fn consume(rx: mpsc::Receiver<Chunk>, done: mpsc::Sender<()>, mut each: impl FnMut(&[u8])) {
    let mut freed = 0;
    loop {
        let (buf, len) = match rx.try_recv() {
            Ok(chunk) => chunk,
            Err(mpsc::TryRecvError::Disconnected) => break,
            Err(mpsc::TryRecvError::Empty) => {
                if freed > 0 {
                    let _ = done.send(());
                    freed = 0;
                }
                match rx.recv() {
                    Ok(chunk) => chunk,
                    Err(_) => break,
                }
            }
        };
        each(&buf[..len]);
        drop(buf);
        freed += 1;
        if freed >= DEPTH / 2 {
            let _ = done.send(());
            freed = 0;
        }
    }
}

fn run_pipeline<R: Read>(
    reader: &mut R,
    algos: &[Algorithm],
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
    mut writer: Option<Writer<'_>>,
) -> Result<Digests, StreamError> {
    // An input that fits one buffer (most of a DVR export's logs and snapshots, every still)
    // is handled on this thread: starting threads for it costs more than the work.
    let mut first = vec![0u8; CHUNK];
    let mut filled = 0;
    while filled < CHUNK {
        match reader.read(&mut first[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(StreamError::Read { offset: filled as u64, source }),
        }
    }
    if filled < CHUNK {
        let data = &first[..filled];
        sink(data).map_err(|source| StreamError::Sink { offset: 0, source })?;
        if let Some(write) = writer.as_mut() {
            write(data).map_err(|source| StreamError::Sink { offset: 0, source })?;
        }
        return Ok(digest_bytes(data, algos));
    }
    let mut rest = io::Cursor::new(first).chain(reader);
    let reader = &mut rest;
    let wanted = distinct(algos);
    // Algorithm's order puts SHA-256 first: the most expensive digest stays inline.
    let inline = wanted.first().copied();
    let others: Vec<Algorithm> = wanted.iter().skip(1).copied().collect();
    let write_failed = AtomicBool::new(false);
    let depth = if writer.is_some() { COPY_DEPTH } else { DEPTH };

    std::thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for &algo in &others {
            let (tx, rx) = mpsc::sync_channel::<Chunk>(depth);
            let done = done_tx.clone();
            senders.push(tx);
            handles.push((
                algo,
                scope.spawn(move || {
                    let mut w = Worker::new(algo);
                    consume(rx, done, |data| w.update(data));
                    w.finish()
                }),
            ));
        }
        let write_handle = writer.map(|write| {
            let (tx, rx) = mpsc::sync_channel::<Chunk>(depth);
            let done = done_tx.clone();
            senders.push(tx);
            let failed = &write_failed;
            scope.spawn(move || {
                let mut copier = Copier::new(write, failed);
                consume(rx, done, |data| copier.take(data));
                copier.error
            })
        });
        drop(done_tx);

        let mut own = inline.map(Worker::new);
        let mut in_flight: VecDeque<Arc<Vec<u8>>> = VecDeque::new();
        let mut offset: u64 = 0;
        let result: Result<(), StreamError> = (|| {
            loop {
                if write_failed.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let mut buf = next_buffer(&mut in_flight, &done_rx, senders.is_empty(), depth);
                let data = Arc::get_mut(&mut buf).expect("buffer is free");
                // Fill the buffer a piece at a time, hashing and passing on each piece while it
                // is still in this core's cache; other threads get the whole buffer at once,
                // so they are woken once per buffer, not once per piece.
                let mut len = 0;
                while len < data.len() {
                    let end = (len + PIECE).min(data.len());
                    let n = read_full(reader, &mut data[len..end])
                        .map_err(|source| StreamError::Read { offset, source })?;
                    if n == 0 {
                        break;
                    }
                    let piece = &data[len..len + n];
                    sink(piece).map_err(|source| StreamError::Sink { offset, source })?;
                    if let Some(w) = own.as_mut() {
                        w.update(piece);
                    }
                    offset += n as u64;
                    len += n;
                    if n < end - (len - n) {
                        break;
                    }
                }
                if len == 0 {
                    return Ok(());
                }
                for tx in &senders {
                    // A consumer only stops when its sender is dropped, so this cannot fail.
                    let _ = tx.send((Arc::clone(&buf), len));
                }
                in_flight.push_back(buf);
            }
        })();
        drop(senders);
        let mut digests = Digests { size: offset, ..Digests::default() };
        for (algo, handle) in handles {
            let hex = handle.join().expect("digest thread panicked");
            digests.set(algo, hex);
        }
        let write_error = write_handle.and_then(|h| h.join().expect("writer thread panicked"));
        result?;
        if let Some(e) = write_error {
            return Err(e);
        }
        if let (Some(algo), Some(w)) = (inline, own) {
            digests.set(algo, w.finish());
        }
        Ok(digests)
    })
}

/// Take a buffer no digest thread still holds, allocating up to `depth` of them.
fn next_buffer(
    in_flight: &mut VecDeque<Arc<Vec<u8>>>,
    done: &mpsc::Receiver<()>,
    alone: bool,
    depth: usize,
) -> Arc<Vec<u8>> {
    loop {
        if let Some(front) = in_flight.front()
            && (alone || Arc::strong_count(front) == 1)
        {
            return in_flight.pop_front().expect("front exists");
        }
        if in_flight.len() < depth {
            return Arc::new(vec![0u8; CHUNK]);
        }
        // Every buffer is still being hashed; wait for a worker to finish one.
        if done.recv().is_err() {
            // All workers are gone; nothing else can free a buffer, so allocate.
            return Arc::new(vec![0u8; CHUNK]);
        }
    }
}

/// Fill `buf` as far as the stream allows; returns 0 only at end of stream.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The BLAKE3 of a whole file, read back through a memory map with the two halves of the
/// BLAKE3 tree hashed on two threads (the read-back check of a fresh copy, which has the
/// machine to itself). Small files, and anything that cannot be mapped, are read plainly. A
/// page the disk cannot deliver is a read error at its offset (see [`crate::mapped`]).
pub fn blake3_file(file: &mut std::fs::File) -> Result<Digests, StreamError> {
    let Some(map) = Mapped::if_large(file) else {
        return digest_stream(file, &[Algorithm::Blake3], |_| Ok(()));
    };
    let hash = blake3_two_threads(&map);
    intact(&map)?;
    let mut digests = Digests { size: map.len() as u64, ..Digests::default() };
    digests.set(Algorithm::Blake3, hash.to_hex().to_string());
    Ok(digests)
}

/// BLAKE3 of `data` (more than one BLAKE3 chunk long) as its left and right subtrees, hashed
/// on two threads and merged: the same hash as `blake3::hash`, in about half the time.
fn blake3_two_threads(data: &[u8]) -> blake3::Hash {
    use blake3::hazmat::{HasherExt, Mode, left_subtree_len, merge_subtrees_root};
    if data.len() <= blake3::CHUNK_LEN {
        return blake3::hash(data);
    }
    let split = left_subtree_len(data.len() as u64) as usize;
    let (left, right) = data.split_at(split);
    std::thread::scope(|scope| {
        let right_cv =
            scope.spawn(|| blake3::Hasher::new().set_input_offset(split as u64).update(right).finalize_non_root());
        let left_cv = blake3::Hasher::new().update(left).finalize_non_root();
        let right_cv = right_cv.join().expect("BLAKE3 thread panicked");
        merge_subtrees_root(&left_cv, &right_cv, Mode::Hash)
    })
}

/// Digest a byte slice held in memory (small inputs: ledger bodies, test vectors).
pub fn digest_bytes(data: &[u8], algos: &[Algorithm]) -> Digests {
    // Small inputs: on this thread, one digest after another (a thread costs more).
    let mut digests = Digests { size: data.len() as u64, ..Digests::default() };
    for algo in distinct(algos) {
        let mut w = Worker::new(algo);
        w.update(data);
        digests.set(algo, w.finish());
    }
    digests
}

/// The SHA-256 of `data`, as raw bytes.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// Compare two hex digests without an early exit, so timing says nothing about where they
/// differ (security-relevant: used when checking lists an adversary may have crafted).
pub fn hex_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x.to_ascii_lowercase() ^ y.to_ascii_lowercase())) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers_for_abc() {
        // FIPS 180-2 and RFC 1321 / the BLAKE3 reference implementation's published values.
        let d = digest_bytes(
            b"abc",
            &[Algorithm::Sha256, Algorithm::Blake3, Algorithm::Md5, Algorithm::Sha1, Algorithm::Sha512],
        );
        assert_eq!(d.sha256.as_deref(), Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
        assert_eq!(d.md5.as_deref(), Some("900150983cd24fb0d6963f7d28e17f72"));
        assert_eq!(d.sha1.as_deref(), Some("a9993e364706816aba3e25717850c26c9cd0d89d"));
        assert_eq!(
            d.sha512.as_deref(),
            Some(
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd\
                 454d4423643ce80e2a9ac94fa54ca49f"
            )
        );
        assert_eq!(d.blake3.as_deref(), Some("6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"));
        assert_eq!(d.size, 3);
    }

    #[test]
    fn many_chunks_match_one_shot() {
        let data: Vec<u8> = (0..(CHUNK * 3 + 12345)).map(|i| (i * 31 % 251) as u8).collect();
        let d = digest_bytes(&data, &[Algorithm::Sha256, Algorithm::Blake3]);
        assert_eq!(d.sha256.unwrap(), hex::encode(sha256(&data)));
        assert_eq!(d.blake3.unwrap(), blake3::hash(&data).to_hex().to_string());
        assert_eq!(d.size, data.len() as u64);
    }

    #[test]
    fn two_thread_blake3_is_blake3() {
        let data: Vec<u8> = (0..(3 * 1024 * 1024 + 4321)).map(|i| (i * 13 % 251) as u8).collect();
        for len in [0, 1, 1024, 1025, 2048, 4096 + 1, 65536, 1 << 20, (1 << 20) + 1, data.len()] {
            assert_eq!(blake3_two_threads(&data[..len]), blake3::hash(&data[..len]), "length {len}");
        }
    }

    #[test]
    fn writer_thread_sees_every_byte_in_order_and_its_error_stops_the_copy() {
        let data: Vec<u8> = (0..(CHUNK * 5 + 7)).map(|i| (i % 256) as u8).collect();
        let mut copy = Vec::new();
        let d = copy_stream(
            &mut io::Cursor::new(&data),
            &[Algorithm::Sha256, Algorithm::Blake3],
            Box::new(|c: &[u8]| {
                copy.extend_from_slice(c);
                Ok(())
            }),
        )
        .unwrap();
        assert_eq!(copy, data);
        assert_eq!(d, digest_bytes(&data, &[Algorithm::Sha256, Algorithm::Blake3]));

        let mut written = 0u64;
        let err = copy_stream(
            &mut io::Cursor::new(&data),
            &[Algorithm::Sha256],
            Box::new(|c: &[u8]| {
                if written >= 2 * CHUNK as u64 {
                    return Err(io::Error::other("disk full"));
                }
                written += c.len() as u64;
                Ok(())
            }),
        )
        .unwrap_err();
        match err {
            StreamError::Sink { offset, source } => {
                assert_eq!(offset, 2 * CHUNK as u64);
                assert_eq!(source.to_string(), "disk full");
            }
            other => panic!("expected a write error, got {other:?}"),
        }
    }

    #[test]
    fn sink_sees_every_byte_in_order() {
        let data: Vec<u8> = (0..(CHUNK * 2 + 7)).map(|i| (i % 256) as u8).collect();
        let mut copy = Vec::new();
        digest_stream(&mut io::Cursor::new(&data), &[Algorithm::Sha256], |c| {
            copy.extend_from_slice(c);
            Ok(())
        })
        .unwrap();
        assert_eq!(copy, data);
    }
}

/// Digest a whole file. Large regular files are memory-mapped and every digest runs on its own
/// thread straight from the page cache ([`digest_mapped`]); small files and anything that
/// cannot be mapped go through [`digest_stream`]. `progress` is told how many bytes were digested. A
/// page that cannot be read (the file shrank meanwhile, the medium failed) is a read error at
/// its offset, as with plain reads (see [`crate::mapped`]).
pub fn digest_file(
    file: &mut std::fs::File,
    algos: &[Algorithm],
    progress: &(dyn Fn(u64) + Sync),
    tree: bool,
) -> Result<Digests, StreamError> {
    let Some(map) = Mapped::if_large(file) else {
        return digest_stream(file, algos, |c| {
            progress(c.len() as u64);
            Ok(())
        });
    };
    digest_mapped(&map, algos, None, progress, tree)
}

#[cfg(test)]
mod file_tests {
    use super::*;

    #[test]
    fn mapped_and_streamed_digests_agree() {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..(mapped::MAP_FROM as usize + 12345)).map(|i| (i * 7 % 253) as u8).collect();
        std::io::Write::write_all(&mut tmp, &data).unwrap();
        let all = [Algorithm::Sha256, Algorithm::Blake3, Algorithm::Md5, Algorithm::Sha1, Algorithm::Sha512];
        let seen = std::sync::atomic::AtomicU64::new(0);
        let mapped = digest_file(
            tmp.as_file_mut(),
            &all,
            &|n| {
                seen.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            },
            true,
        )
        .unwrap();
        assert_eq!(mapped, digest_bytes(&data, &all));
        // The BLAKE3 tree kept on the way is the one bao-tree computes on its own.
        let tree = mapped.tree.as_ref().expect("a tree was asked for").0.to_vec().unwrap();
        assert!(tree == crate::outboard::encode(&data[..], data.len() as u64).unwrap().1.to_vec().unwrap());
        assert_eq!(seen.into_inner(), data.len() as u64);
    }
}
