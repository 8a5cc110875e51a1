//! An agency store's objects in an S3-compatible bucket: content-addressed keys below the
//! store's prefix (`PREFIX/objects/ab/cdef…`, their BLAKE3 trees at `PREFIX/outboards/ab/…`,
//! the same names as in a store's own directory), created write-once and read in ranges.
//!
//! - **Write-once**: every object is created with `If-None-Match: *`. A second writer of the
//!   same key gets 412 and takes it as "already stored", after the stored bytes are checked.
//! - **Retention**: the bucket's own Object Lock default (COMPLIANCE, a period the agency sets
//!   when it creates the bucket) applies at upload; what the server applied is read back and
//!   recorded. Workstations need no right to set or lift retention.
//! - **Proof at the destination**: after an upload, the object is read back from the bucket
//!   and its BLAKE3 compared with the one computed while it was staged. The event records the
//!   key, the version the server gave it, its retention and that proof.
//! - **Reads**: ranged GETs, through the verifying reader of [`crate::outboard`] for media
//!   work, so a still of a day-long recording fetches what it shows.
//!
//! The client is `rust-s3` with its synchronous backend (no async runtime); credentials follow
//! the AWS conventions (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE` and
//! `~/.aws/credentials`), the endpoint `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (else the
//! one given at init), the region `AWS_REGION` or `AWS_DEFAULT_REGION`. None is ever recorded
//! or printed.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use anyhow::Result;
use s3::error::S3Error;
use serde_json::{Value, json};

use crate::error;

/// Objects up to this size go up in one PUT; larger ones in parts of [`PART`] bytes.
const ONE_PUT: u64 = 16 << 20;
/// The size of an upload's parts (the last may be shorter).
const PART: u64 = 16 << 20;
/// Parts sent at once.
const UPLOADERS: u32 = 4;
/// Bytes fetched at a time by sequential readers.
pub const FETCH: u64 = 8 << 20;

/// A bucket (and prefix within it) holding a store's objects.
pub struct Bucket {
    /// `s3://NAME/PREFIX`, as the store names it.
    url: String,
    endpoint: String,
    /// The prefix every key starts with: empty, or ending in `/`.
    prefix: String,
    inner: Box<s3::Bucket>,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bucket({} at {})", self.url, self.endpoint)
    }
}

/// What the server holds under a key.
#[derive(Clone, Debug, Default)]
pub struct Head {
    pub size: u64,
    pub version: Option<String>,
    pub lock_mode: Option<String>,
    pub retain_until: Option<String>,
}

/// Whether `url` names a bucket (`s3://…`).
pub fn is_bucket_url(url: &str) -> bool {
    url.starts_with("s3://")
}

/// The endpoint the environment names, if any (`AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`).
pub fn endpoint_from_env() -> Option<String> {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"].iter().find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
}

impl Bucket {
    /// The bucket `url` (`s3://NAME[/PREFIX]`) at `endpoint`, with the environment's
    /// credentials. Nothing is sent yet.
    pub fn open(url: &str, endpoint: &str) -> Result<Bucket> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| error::input(format!("{url} is not an S3 location; give one as s3://BUCKET/PREFIX")))?;
        let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if name.len() < 3
            || name.len() > 63
            || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(error::input(format!(
                "{url}: {name:?} is not a bucket name (3 to 63 lower-case letters, digits, dots and hyphens)"
            )));
        }
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .ok()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".to_owned());
        // rust-s3 retries every failed request once after a second by default, a 404 (an object
        // not there yet) and a 412 (already stored) included: custody decides itself.
        s3::set_retries(0);
        let profile = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty());
        let credentials = s3::creds::Credentials::new(None, None, None, None, profile.as_deref()).map_err(|_| {
            error::input(format!(
                "no credentials for the object store {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                 or AWS_PROFILE naming a profile in ~/.aws/credentials; nothing was changed"
            ))
        })?;
        let region = s3::Region::Custom { region, endpoint: endpoint.trim_end_matches('/').to_owned() };
        let inner = s3::Bucket::new(name, region, credentials)
            .map_err(|e| error::input(format!("{url} at {endpoint}: {e}")))?
            .with_path_style();
        Ok(Bucket {
            url: format!("s3://{name}/{}", prefix.trim_end_matches('/')),
            endpoint: endpoint.to_owned(),
            prefix,
            inner,
        })
    }

    /// `s3://NAME/PREFIX`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The key of object `sha256`.
    pub fn object_key(&self, sha256: &str) -> String {
        format!("{}{}/{}/{}", self.prefix, crate::store::OBJECTS_DIR, &sha256[..2], &sha256[2..])
    }

    /// The key of object `sha256`'s BLAKE3 tree.
    pub fn outboard_key(&self, sha256: &str) -> String {
        format!("{}{}/{}/{}", self.prefix, crate::outboard::DIR, &sha256[..2], &sha256[2..])
    }

    /// Check that the bucket answers and these credentials may list it (at init, so a store is
    /// never made over a bucket it cannot use).
    pub fn check(&self) -> Result<()> {
        self.inner
            .list_page(self.prefix.clone(), Some("/".into()), None, None, Some(1))
            .map_err(|e| self.failure(e, "list", &self.prefix))?;
        Ok(())
    }

    /// What the server holds under `key`, or `None`.
    pub fn head(&self, key: &str) -> Result<Option<Head>> {
        match self.inner.head_object(key) {
            Ok((h, _)) => Ok(Some(Head {
                size: h.content_length.unwrap_or(0).max(0) as u64,
                version: h.version_id,
                lock_mode: h.object_lock_mode,
                retain_until: h.object_lock_retain_until_date,
            })),
            Err(S3Error::HttpFailWithBody(404, _)) => Ok(None),
            // A refused HEAD has no body to say why: a listing, which has one, tells refused
            // credentials (exit 2) from a refusal of this request (exit 3).
            Err(S3Error::HttpFailWithBody(403, body)) if error_code(&body).is_empty() => {
                self.check()?;
                let denied = S3Error::HttpFailWithBody(403, "<Code>AccessDenied</Code>".into());
                Err(self.failure(denied, "look up", key))
            }
            Err(e) => Err(self.failure(e, "look up", key)),
        }
    }

    /// Bytes `start..end` of `key`.
    pub fn get_range(&self, key: &str, start: u64, end: u64) -> io::Result<Vec<u8>> {
        if end <= start {
            return Ok(Vec::new());
        }
        let r = self.inner.get_object_range(key, start, Some(end - 1)).map_err(|e| {
            let why = self.failure(e, "read", key);
            io::Error::other(format!("{why:#}"))
        })?;
        let bytes = r.to_vec();
        if bytes.len() as u64 != end - start {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{}: asked for bytes {start}..{end}, the server sent {}", self.shown(key), bytes.len()),
            ));
        }
        Ok(bytes)
    }

    /// Create `key` with the `size` bytes of `file`, unless it exists. Returns whether this
    /// call created it (`false`: the key was already there; its bytes are the caller's to
    /// check). `progress` is told of every byte sent.
    pub fn create_from_file(&self, key: &str, file: &File, size: u64, progress: &(dyn Fn(u64) + Sync)) -> Result<bool> {
        if size <= ONE_PUT {
            let mut bytes = vec![0u8; size as usize];
            file.read_exact_at(&mut bytes, 0)
                .map_err(|e| error::environment(format!("cannot read the staged copy: {e}")))?;
            let created = self.create(key, &bytes)?;
            progress(size);
            return Ok(created);
        }
        let upload = self
            .inner
            .initiate_multipart_upload(key, "application/octet-stream")
            .map_err(|e| self.failure(e, "start the upload of", key))?;
        let id = upload.upload_id;
        let sent = (|| {
            let mut parts = self.upload_parts(key, &id, file, size, progress)?;
            parts.sort_by_key(|p| p.part_number);
            let conditional = self.conditional()?;
            match conditional.complete_multipart_upload(key, &id, parts) {
                Ok(r) if r.as_str().is_ok_and(|s| s.contains("<Error>")) => Err(error::environment(format!(
                    "{}: the server refused to complete the upload ({}); nothing was recorded",
                    self.shown(key),
                    error_code(r.as_str().unwrap_or_default())
                ))),
                Ok(_) => Ok(true),
                Err(S3Error::HttpFailWithBody(412, _)) => Ok(false),
                Err(e) => Err(self.failure(e, "complete the upload of", key)),
            }
        })();
        if sent.is_err() {
            let _ = self.inner.abort_upload(key, &id);
        }
        sent
    }

    /// Send every part of `file` to upload `id`, [`UPLOADERS`] at a time (a server takes
    /// concurrent parts faster than one stream: SeaweedFS here, 1 GiB in about 7 s against 10 s
    /// one part after another). Each sender reads its own part from the file; memory is one
    /// part per sender. The first failure stops the others and is returned.
    fn upload_parts(
        &self,
        key: &str,
        id: &str,
        file: &File,
        size: u64,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<s3::serde_types::Part>> {
        let count = size.div_ceil(PART) as u32;
        let next = AtomicU32::new(1);
        let stop = AtomicBool::new(false);
        let sender = || -> Result<Vec<s3::serde_types::Part>> {
            let mut buf = vec![0u8; PART as usize];
            let mut sent = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let number = next.fetch_add(1, Ordering::Relaxed);
                if number > count {
                    break;
                }
                let at = (number - 1) as u64 * PART;
                let n = PART.min(size - at) as usize;
                let part = file
                    .read_exact_at(&mut buf[..n], at)
                    .map_err(|e| error::environment(format!("cannot read the staged copy: {e}")))
                    .and_then(|()| {
                        self.inner
                            .put_multipart_chunk(&buf[..n], key, number, id, "application/octet-stream")
                            .map_err(|e| self.failure(e, "upload", key))
                    });
                match part {
                    Ok(p) => sent.push(p),
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
                progress(n as u64);
            }
            Ok(sent)
        };
        let results: Vec<Result<Vec<s3::serde_types::Part>>> = std::thread::scope(|s| {
            let senders: Vec<_> = (0..UPLOADERS.min(count)).map(|_| s.spawn(sender)).collect();
            senders.into_iter().map(|h| h.join().expect("an upload thread panicked")).collect()
        });
        let mut parts = Vec::with_capacity(count as usize);
        for r in results {
            parts.extend(r?);
        }
        Ok(parts)
    }

    /// Create `key` holding `bytes`, unless it exists; whether this call created it.
    pub fn create(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::IF_NONE_MATCH, http::HeaderValue::from_static("*"));
        match self.inner.put_object_with_headers(key, bytes, Some(headers)) {
            Ok(_) => Ok(true),
            Err(S3Error::HttpFailWithBody(412, _)) => Ok(false),
            Err(e) => Err(self.failure(e, "store", key)),
        }
    }

    /// The bucket with `If-None-Match: *` on every request.
    fn conditional(&self) -> Result<s3::Bucket> {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::IF_NONE_MATCH, http::HeaderValue::from_static("*"));
        self.inner.with_extra_headers(headers).map_err(|e| self.failure(e, "prepare", &self.prefix))
    }

    /// Every object below the prefix's `dir/` (`objects` or `outboards`): its name (the two
    /// fan-out characters and the rest, joined) and key; and every other key found there.
    pub fn list(&self, dir: &str) -> Result<Listing> {
        let under = format!("{}{dir}/", self.prefix);
        let pages = self.inner.list(under.clone(), None).map_err(|e| self.failure(e, "list", &under))?;
        let (mut found, mut other) = (Vec::new(), Vec::new());
        for page in pages {
            for o in page.contents {
                let rel = o.key.strip_prefix(&under).unwrap_or(&o.key);
                match rel.split_once('/') {
                    Some((fan, rest)) if fan.len() == 2 && !rest.contains('/') => {
                        found.push((format!("{fan}{rest}"), o.key.clone()))
                    }
                    _ => other.push(o.key.clone()),
                }
            }
        }
        Ok((found, other))
    }

    /// `s3://NAME/KEY`, for messages.
    pub fn shown(&self, key: &str) -> String {
        let name = self.url.trim_start_matches("s3://").split('/').next().unwrap_or_default();
        format!("s3://{name}/{key}")
    }

    /// The error of a request that failed, with the exit code its kind calls for: refused
    /// credentials are the user's to fix (exit 2); everything else (a refusal, a full bucket,
    /// a server that does not answer) is the environment's (exit 3).
    fn failure(&self, e: S3Error, what: &str, key: &str) -> anyhow::Error {
        let at = self.shown(key);
        match e {
            S3Error::HttpFailWithBody(status, body) => {
                let code = error_code(&body);
                match code.as_str() {
                    "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidToken" | "ExpiredToken" => {
                        error::input(format!(
                            "the object store at {} refused the credentials ({code}) to {what} {at}; nothing was recorded. \
                         Check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the profile AWS_PROFILE names)",
                            self.endpoint
                        ))
                    }
                    "AccessDenied" => error::environment(format!(
                        "the object store refused to {what} {at} (403 AccessDenied): these credentials lack the right, or \
                         the bucket refuses writes; nothing was recorded. Ask the store's administrator"
                    )),
                    "NoSuchBucket" => error::environment(format!(
                        "the bucket of {} does not exist at {}; nothing was recorded",
                        self.url, self.endpoint
                    )),
                    _ => error::environment(format!(
                        "the object store could not {what} {at} (HTTP {status}{}); nothing was recorded. Try again; \
                         if it persists, ask the store's administrator{}",
                        if code.is_empty() { String::new() } else { format!(" {code}") },
                        // A server out of space answers so (SeaweedFS: "no free volumes left").
                        if status >= 500 { " whether it is out of space or failing" } else { "" }
                    )),
                }
            }
            other => error::environment(format!(
                "cannot reach the object store at {} to {what} {at} ({other}); nothing was recorded. \
                 Check the network and that the server is running, then try again",
                self.endpoint
            )),
        }
    }
}

/// What [`Bucket::list`] found: `(name, key)` of each object, and every other key.
pub type Listing = (Vec<(String, String)>, Vec<String>);

/// The `<Code>` of an S3 error document.
fn error_code(body: &str) -> String {
    body.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.trim().to_owned())
        .unwrap_or_default()
}

/// An object of a bucket read in order (or seeking), [`FETCH`] bytes per request.
pub struct Ranged {
    bucket: Arc<Bucket>,
    key: String,
    size: u64,
    pos: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl Ranged {
    pub fn new(bucket: Arc<Bucket>, key: String, size: u64) -> Ranged {
        Ranged { bucket, key, size, pos: 0, buf: Vec::new(), buf_start: 0 }
    }
}

impl Read for Ranged {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || out.is_empty() {
            return Ok(0);
        }
        let held = self.pos >= self.buf_start && self.pos < self.buf_start + self.buf.len() as u64;
        if !held {
            let end = (self.pos + FETCH).min(self.size);
            self.buf = self.bucket.get_range(&self.key, self.pos, end)?;
            self.buf_start = self.pos;
        }
        let at = (self.pos - self.buf_start) as usize;
        let n = out.len().min(self.buf.len() - at);
        out[..n].copy_from_slice(&self.buf[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Ranged {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = crate::outboard::seek_in(self.pos, self.size, to)?;
        Ok(self.pos)
    }
}

/// An object in a bucket as the verifying reader sees it ([`crate::outboard::Remote`]).
pub struct Remote {
    pub bucket: Arc<Bucket>,
    pub sha256: String,
}

impl crate::outboard::Remote for Remote {
    fn read(&self, start: u64, end: u64) -> io::Result<Vec<u8>> {
        self.bucket.get_range(&self.bucket.object_key(&self.sha256), start, end)
    }

    fn size(&self) -> io::Result<u64> {
        let key = self.bucket.object_key(&self.sha256);
        match self.bucket.head(&key) {
            Ok(Some(h)) => Ok(h.size),
            Ok(None) => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not in the bucket", self.bucket.shown(&key)),
            )),
            Err(e) => Err(io::Error::other(format!("{e:#}"))),
        }
    }

    fn outboard(&self, size: u64) -> Option<Vec<u8>> {
        let key = self.bucket.outboard_key(&self.sha256);
        let head = self.bucket.head(&key).ok().flatten()?;
        (head.size == size).then(|| self.bucket.get_range(&key, 0, size).ok()).flatten()
    }

    fn keep_outboard(&self, bytes: &[u8]) {
        let _ = self.bucket.create(&self.bucket.outboard_key(&self.sha256), bytes);
    }

    fn shown(&self) -> String {
        self.bucket.shown(&self.bucket.object_key(&self.sha256))
    }
}

/// Upload the staged copy `file` (`size` bytes, BLAKE3 `blake3_hex`) as object `sha256`, and
/// prove it at the destination: read it back whole from the bucket and compare its BLAKE3.
/// An object that was already there is proven the same way before it stands for the copy.
/// Returns what the event records of it (`stored`).
pub fn store(
    bucket: &Arc<Bucket>,
    sha256: &str,
    file: &File,
    size: u64,
    blake3_hex: &str,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Value> {
    let key = bucket.object_key(sha256);
    let created = bucket.create_from_file(&key, file, size, progress)?;
    prove(bucket, sha256, size, blake3_hex, created)
}

/// Hand `consume` every byte of `key` (`size` bytes) in order, fetched [`FETCH`] bytes per
/// request, [`UPLOADERS`] requests at a time: a read-back at the pace the server can serve
/// several streams, in memory of one fetch per request.
fn read_in_order(bucket: &Bucket, key: &str, size: u64, mut consume: impl FnMut(&[u8])) -> io::Result<()> {
    let mut at = 0u64;
    while at < size {
        let round: Vec<(u64, u64)> = (0..UPLOADERS as u64)
            .map(|i| at + i * FETCH)
            .filter(|&start| start < size)
            .map(|start| (start, (start + FETCH).min(size)))
            .collect();
        let fetched: Vec<io::Result<Vec<u8>>> = std::thread::scope(|s| {
            let fetches: Vec<_> =
                round.iter().map(|&(start, end)| s.spawn(move || bucket.get_range(key, start, end))).collect();
            fetches.into_iter().map(|f| f.join().expect("a read-back thread panicked")).collect()
        });
        for bytes in fetched {
            consume(&bytes?);
        }
        at = round.last().map_or(size, |r| r.1);
    }
    Ok(())
}

/// Read object `sha256` back whole from the bucket and check it has `size` bytes and BLAKE3
/// `blake3_hex` (`created`: this command just uploaded it; else it was there before). Returns
/// what the event records of it.
pub fn prove(bucket: &Arc<Bucket>, sha256: &str, size: u64, blake3_hex: &str, created: bool) -> Result<Value> {
    let key = bucket.object_key(sha256);
    let head = bucket.head(&key)?.ok_or_else(|| {
        error::environment(format!(
            "{} was stored, but the server does not show it; nothing was recorded. Try again",
            bucket.shown(&key)
        ))
    })?;
    let mut hasher = blake3::Hasher::new();
    read_in_order(bucket, &key, head.size, |bytes| {
        hasher.update(bytes);
    })
    .map_err(|e| {
        error::environment(format!(
            "cannot read {} back from the bucket ({e}); nothing was recorded. Try again",
            bucket.shown(&key)
        ))
    })?;
    let back = hasher.finalize().to_hex();
    if head.size != size || !crate::digest::hex_eq(&back, blake3_hex) {
        let shown = bucket.shown(&key);
        let found = format!("{} bytes with BLAKE3 {back} instead of {size} bytes with BLAKE3 {blake3_hex}", head.size);
        return Err(error::environment(if created {
            format!(
                "the copy just uploaded to {shown} does not read back as the bytes staged ({found}): the storage is \
                 faulty. Nothing was recorded; try again, and tell the store's administrator"
            )
        } else {
            format!(
                "the bucket already holds an object under this SHA-256, but {shown} does not read back as the bytes \
                 read from the source ({found}): the stored object is damaged. Nothing was recorded; run `custody \
                 verify` to list what is damaged"
            )
        }));
    }
    let mut stored = json!({
        "url": bucket.shown(&key),
        "created": created,
        "proof": "read back whole from the bucket; BLAKE3 matches",
    });
    if let Some(v) = head.version {
        stored["version"] = json!(v);
    }
    if let Some(mode) = head.lock_mode {
        stored["retention"] = json!({"mode": mode, "until": head.retain_until});
    }
    Ok(stored)
}
