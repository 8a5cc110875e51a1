//! The one data path for derived files (clips, stills, playback copies): resolve the parent
//! item, read its object only through checks against the recorded BLAKE3 (or, when asked,
//! re-verify it whole), stage the outputs, and record them as new items that name their
//! parent, in one event that says what was verified.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use anyhow::Result;
use serde_json::{Map, Value, json};

use crate::digest;
use crate::error;
use crate::item;
use crate::ledger::{Actor, Draft, Event, FileRef, Head, ItemRow, Ledger};
use crate::media::index::{FrameIndex, Timeline};
use crate::media::probe::MediaFacts;
use crate::media::time::{ClockOffset, Position, parse_civil};
use crate::outboard::Object;
use crate::store::{Staging, Store};

/// A parent item, ready to be read.
pub struct Source {
    pub row: ItemRow,
    pub file: FileRef,
    /// The object in the store.
    pub path: PathBuf,
    pub media: Option<MediaFacts>,
    pub timeline: Timeline,
    pub created: Event,
    /// The store the item is in (for its frame-index cache).
    store_root: PathBuf,
    /// The digest of the frame index this command used, once it used one (recorded with the
    /// event, so later commands may trust the cached copy).
    index_digest: OnceLock<String>,
    /// The object as FFmpeg and every other reader in this process read it: checked, a chunk
    /// group at a time, against the recorded BLAKE3.
    object: Arc<Object>,
    /// Re-hash the whole object before the result counts (`--verify-whole`).
    whole: bool,
    /// The bucket the object is in, for an agency store that keeps its objects in S3.
    bucket: Option<Arc<crate::objects::Bucket>>,
}

impl Source {
    /// Resolve `spec` to an item whose object can be read.
    pub fn open(store: &Store, ledger: &Ledger, spec: &str) -> Result<Source> {
        let row = item::resolve(ledger, spec)?;
        let (created, file) = ledger.item_origin(&row)?;
        let path = store.object_path(&row.sha256);
        let label = format!("{} ({}:{}/{})", row.id, row.case, row.exhibit, item::shown(&row.name));
        crate::media::log::name(&path, &label);
        let object = Object::register_at(
            &path,
            store.remote(&row.sha256),
            crate::outboard::path_in(store.root(), &row.sha256),
            file.size,
            &file.blake3,
            label,
        );
        // Derived items (clips, playback copies) carry no probe of their own: probe them now.
        let media: Option<MediaFacts> =
            file.facts.get("media").and_then(|m| serde_json::from_value(m.clone()).ok()).or_else(|| {
                (store.bucket().is_some() || path.is_file()).then(|| crate::media::probe::probe(&path, false))
            });
        let timeline = timeline(ledger, &row)?;
        Ok(Source {
            row,
            file,
            path,
            media,
            timeline,
            created,
            store_root: store.root().to_owned(),
            index_digest: OnceLock::new(),
            object,
            whole: false,
            bucket: store.bucket().cloned(),
        })
    }

    /// With `yes`, the whole object is re-hashed before the result counts, as well as every
    /// byte read being checked (`--verify-whole`, for procedures that require it).
    pub fn verify_whole(mut self, yes: bool) -> Source {
        self.whole = yes;
        self
    }

    /// After work that read the object: re-hash it whole with `--verify-whole`, and fail (exit
    /// 1) when any read found bytes that are not the recorded ones.
    pub fn confirm(&self) -> Result<()> {
        if self.whole {
            self.verify()?;
        }
        self.check()
    }

    /// The whole object, every byte checked against the recorded BLAKE3 (a small object: a
    /// stored redaction spec).
    pub fn read_all(&self) -> Result<Vec<u8>> {
        use std::io::Read as _;
        let mut bytes = Vec::with_capacity(self.file.size as usize);
        let read = crate::outboard::Reader::new(self.object.clone()).read_to_end(&mut bytes);
        self.check()?;
        read.map_err(|e| error::environment(format!("cannot read item {} from the store: {e}", self.row.id)))?;
        Ok(bytes)
    }

    /// Fail (exit 1) when a read of the object found bytes that are not the recorded ones.
    pub fn check(&self) -> Result<()> {
        match self.object.failure_message() {
            Some(message) => Err(error::mismatch(message)),
            None => Ok(()),
        }
    }

    /// What this command verified of the object, for its event: the chunk groups it read, each
    /// checked against the recorded BLAKE3, or the whole object re-hashed.
    pub fn verification(&self) -> Value {
        let mut v = self.object.summary();
        if self.whole {
            v["mode"] = json!("whole");
            v["bytes"] = json!(self.file.size);
        }
        v
    }

    /// Re-read the object and check it against the digests recorded when it entered custody.
    pub fn verify(&self) -> Result<()> {
        if let Some(bucket) = &self.bucket {
            let key = bucket.object_key(&self.file.sha256);
            let mut reader = crate::objects::Ranged::new(Arc::clone(bucket), key, self.file.size);
            let mut hasher = blake3::Hasher::new();
            let read = std::io::copy(&mut reader, &mut hasher).map_err(|e| {
                error::mismatch(format!(
                    "item {}: its object {} cannot be read ({e}); run `custody verify`",
                    self.row.id,
                    bucket.shown(&bucket.object_key(&self.file.sha256))
                ))
            })?;
            return self.compare(read, &hasher.finalize().to_hex());
        }
        let mut f = std::fs::File::open(&self.path).map_err(|e| {
            error::mismatch(format!(
                "item {}: its object {} cannot be read ({e}); run `custody verify`",
                self.row.id,
                self.path.display()
            ))
        })?;
        // Objects are read-only and never truncated in place: read them mapped, straight from the
        // page cache, without copying, the two halves of the BLAKE3 tree on two threads (a
        // day's recording is gigabytes: verifying it must not take longer than the work).
        let d = digest::blake3_file(&mut f)
            .map_err(|e| error::environment(format!("item {}: cannot read its object: {e}", self.row.id)))?;
        self.compare(d.size, d.blake3())
    }

    /// Fail (exit 1) unless the object re-read had the recorded size and BLAKE3.
    fn compare(&self, size: u64, blake3: &str) -> Result<()> {
        if size != self.file.size || !digest::hex_eq(blake3, &self.file.blake3) {
            // A frame index read from the altered bytes must not outlive this: it could misplace
            // frames once the object is restored.
            self.forget_frame_index();
            return Err(error::mismatch(format!(
                "item {} no longer matches the digests recorded for it: the object was altered. Nothing was done; run `custody verify`",
                self.row.id
            )));
        }
        Ok(())
    }

    /// Run `work`, which reads the object only through checked reads; nothing the work made
    /// counts unless every read checked out (a mismatch is reported first). With
    /// `--verify-whole`, the whole object is also re-hashed, on another thread.
    pub fn verified_while<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let (made, verified) = std::thread::scope(|scope| {
            let whole = self.whole.then(|| scope.spawn(|| self.verify()));
            let made = work();
            (made, whole.map_or(Ok(()), |h| h.join().expect("verification thread")))
        });
        if verified.is_err() {
            // The work may have cached a frame index of the altered bytes after verify dropped it.
            self.forget_frame_index();
        }
        verified?;
        self.check()?;
        made.map_err(|e| error::naming(e, &self.path, &self.label()))
    }

    /// The frame index of the item's object: from the store's cache when it has a sound one
    /// that the ledger records a command using, else built from the object.
    pub fn frame_index(&self, ledger: &Ledger) -> Result<FrameIndex> {
        let loaded = crate::media::index::cache::load_recorded(ledger, &self.store_root, &self.file.sha256, &self.path);
        self.check()?;
        let (index, digest) = loaded.map_err(|e| error::naming(e, &self.path, &self.label()))?;
        let _ = self.index_digest.set(digest);
        Ok(index)
    }

    /// Drop the cached frame index of the item's object (after it disagreed with the object,
    /// or may have been read from altered bytes).
    pub fn forget_frame_index(&self) {
        crate::media::index::cache::forget(&self.store_root, &self.file.sha256);
    }

    /// `i3 (24-1234:3/cam.avi)`: the item as reports name it.
    pub fn label(&self) -> String {
        format!("{} ({}:{}/{})", self.row.id, self.row.case, self.row.exhibit, item::shown(&self.row.name))
    }

    /// The item's name without its extension: the start of every derived file's name.
    pub fn stem(&self) -> &str {
        self.row.name.rsplit_once('.').map_or(self.row.name.as_str(), |(s, _)| s)
    }

    /// The item as an event input.
    pub fn input_ref(&self) -> FileRef {
        FileRef {
            item: Some(self.row.id.clone()),
            name: Some(self.row.name.clone()),
            sha256: self.file.sha256.clone(),
            blake3: self.file.blake3.clone(),
            size: self.file.size,
            facts: Map::new(),
        }
    }

    /// Fail with exit 2 unless FFmpeg could read the item when it was ingested.
    pub fn require_decodable(&self, what: &str) -> Result<&MediaFacts> {
        match &self.media {
            Some(m) if m.decodable => Ok(m),
            Some(m) => Err(error::input(format!(
                "item {} cannot be used for {what}: FFmpeg cannot read it ({}); nothing was done",
                self.row.id,
                m.reason.as_deref().unwrap_or("no reason given")
            ))),
            None => Err(error::input(format!("item {} has no media facts; {what} needs video or audio", self.row.id))),
        }
    }
}

/// The item's timeline, as its ingest recorded it: the clock offset and time zone of the
/// event, the recording start of the file (recorded per file when it was given or derived per
/// file) or else of the event. A derived item inherits its original's (walking up through
/// parents), and a clip's first frame is where the clip starts in its parent (its
/// `produced.from_time` for audio alone, else `produced.first_time`), not the recording's first
/// frame.
fn timeline(ledger: &Ledger, row: &ItemRow) -> Result<Timeline> {
    let mut found: [Option<Value>; 3] = Default::default();
    let keys = ["clock", "recording_start", "timezone"];
    // The clips' starts between the item and the level looked at, and where the start was found.
    let (mut into_parent_us, mut first_frame_us) = (0i64, 0i64);
    let mut current = row.clone();
    for _ in 0..64 {
        // (For an item pushed from a field store, the field event that recorded it.)
        if let Ok((ev, file)) = ledger.acquisition(&current) {
            let file = Some(&file);
            for (slot, key) in found.iter_mut().zip(keys) {
                if slot.is_none() {
                    *slot = file
                        .and_then(|f| f.facts.get(key))
                        .or_else(|| ev.params.get(key))
                        .filter(|v| !v.is_null())
                        .cloned();
                    if key == "recording_start" && slot.is_some() {
                        first_frame_us = into_parent_us;
                    }
                }
            }
            if ev.action == "clip"
                && let Some(Position::Time(us)) = file
                    .and_then(|f| {
                        // Audio alone: where its sound starts (a PCM clip starts between packets).
                        let produced = f.facts.get("produced")?;
                        produced.get("from_time").or_else(|| produced.get("first_time"))?.as_str()
                    })
                    .and_then(|t| t.parse().ok())
            {
                into_parent_us += us;
            }
        }
        match current.parent.as_deref().map(|p| ledger.item(p)).transpose()?.flatten() {
            Some(parent) => current = parent,
            None => break,
        }
    }
    let [clock, start, timezone] = found;
    Ok(Timeline {
        clock: clock.and_then(|v| serde_json::from_value::<Option<ClockOffset>>(v).ok()).flatten(),
        recording_start: start.and_then(|v| v.as_str().and_then(|s| parse_civil("recording start", s).ok())),
        timezone: timezone.and_then(|v| v.as_str().map(str::to_owned)),
        first_frame_us,
    })
}

/// One derived output, staged.
pub struct Output {
    /// Wanted name in the parent's exhibit; made unique at commit if taken.
    pub name: String,
    pub digests: digest::Digests,
    pub facts: Map<String, Value>,
}

/// Record the outputs as new items of the parent's exhibit, each naming the parent.
#[allow(clippy::too_many_arguments)]
pub fn commit(
    store: &Store,
    ledger: &mut Ledger,
    actor: &Actor,
    staging: Staging,
    source: &Source,
    action: &str,
    outputs: Vec<Output>,
    params: Map<String, Value>,
    note: Option<String>,
) -> Result<(Head, Event)> {
    let case = source.row.case.clone();
    let exhibit = source.row.exhibit.clone();
    let mut params = params;
    if let Some(digest) = source.index_digest.get() {
        params.insert("frame_index".into(), json!(digest));
    }
    // Nothing is recorded from bytes that failed a check (a last guard: commands check first).
    source.check()?;
    params.insert("verified".into(), source.verification());
    if store.is_rehearsal() {
        // `custody redo`: everything was made as the command makes it; nothing is recorded.
        let outputs = outputs.into_iter().map(|o| (o.name, o.digests.sha256().to_owned(), o.facts)).collect();
        return Err(anyhow::Error::new(Rehearsed { outputs, params, staging }));
    }
    store.commit(ledger, actor, staging, |txn| {
        let mut refs: Vec<FileRef> = Vec::new();
        for out in outputs {
            let mut name = out.name.clone();
            let mut n = 2;
            // Unique in the exhibit, and among this event's own outputs.
            while txn.item_named(&case, &exhibit, &name)?.is_some()
                || refs.iter().any(|r| r.name.as_deref() == Some(name.as_str()))
            {
                name = versioned(&out.name, n);
                n += 1;
            }
            let mut facts = out.facts;
            facts.insert("parent".into(), json!(source.row.id));
            refs.push(FileRef {
                item: Some(txn.new_item_id()),
                name: Some(name),
                sha256: out.digests.sha256().to_owned(),
                blake3: out.digests.blake3().to_owned(),
                size: out.digests.size,
                facts,
            });
        }
        Ok(Draft {
            action: action.to_owned(),
            case: Some(case.clone()),
            exhibit: Some(exhibit.clone()),
            inputs: vec![source.input_ref()],
            outputs: refs,
            params,
            note,
        })
    })
}

/// What a command made when `custody redo` ran it: its outputs (name, SHA-256, facts) in the
/// order it would have recorded them, its parameters, and the staging directory holding them
/// (removed when this is dropped).
pub struct Rehearsed {
    pub outputs: Vec<(String, String, Map<String, Value>)>,
    pub params: Map<String, Value>,
    pub staging: Staging,
}

impl std::fmt::Debug for Rehearsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rehearsed").field("outputs", &self.outputs.len()).finish()
    }
}

impl std::fmt::Display for Rehearsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "re-made {} output(s) without recording them", self.outputs.len())
    }
}

impl std::error::Error for Rehearsed {}

/// `dir/name.ext` → `dir/name_v2.ext`.
fn versioned(name: &str, n: u32) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !ext.contains('/') => format!("{stem}_v{n}.{ext}"),
        _ => format!("{name}_v{n}"),
    }
}
