//! The frame index of a video stream: every frame in presentation order, with its timestamp
//! and whether it is a keyframe. Built by demuxing alone (no decoding), it turns positions
//! (`frame:N`, a time, a wall-clock time) into exact frames.

use std::path::Path;

use anyhow::Result;
use ffmpeg_next as ffmpeg;
use serde::Serialize;

use super::ffi;
use super::time::{ClockOffset, Position, WallTime, Zone, format_civil, format_us};
use crate::error;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FrameEntry {
    /// Presentation timestamp in the stream's time base.
    pub pts: i64,
    pub duration: i64,
    pub key: bool,
    /// An IDR picture (H.264, HEVC): a keyframe where decoding may start afresh, with nothing
    /// after it referring to anything before it. For other codecs, the same as `key`.
    pub idr: bool,
    /// Position of the packet in decode order.
    pub decode_index: usize,
    /// Byte offset of the packet in the file, as the demuxer reports it (-1: unknown). Streams
    /// without timestamps (raw H.264/HEVC) are sought by it: there is no timestamp to seek to.
    pub pos: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FrameIndex {
    pub stream: usize,
    /// True when the indexed stream is audio (an audio-only item): its "frames" are audio
    /// packets, and only time positions apply.
    pub audio: bool,
    /// The stream's time base, `num/den` seconds.
    pub time_base: (i32, i32),
    /// Every frame, in presentation order.
    pub frames: Vec<FrameEntry>,
    /// True when the container carried no timestamps (raw elementary streams) and they were
    /// derived from the frame durations in decode order.
    pub derived_timestamps: bool,
}

/// What wall-clock positions need: the DVR time of the first frame and the clock offset, and
/// for times written with a zone (or a recording across a daylight-saving change) the DVR's
/// time zone.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub recording_start: Option<jiff::civil::DateTime>,
    pub clock: Option<ClockOffset>,
    /// The DVR's time zone as ingest recorded it (`--timezone`), looked up when it is needed.
    pub timezone: Option<String>,
    /// How far this item's first frame is into the recording that started at
    /// `recording_start`, in microseconds: 0 for the original, a clip's start in it for a clip.
    pub first_frame_us: i64,
}

impl Timeline {
    /// The DVR's time zone, when it was recorded.
    pub fn zone(&self) -> Result<Option<Zone>> {
        self.timezone
            .as_deref()
            .map(|z| Zone::parse(z).map_err(|e| e.context(format!("the DVR's recorded time zone {z}"))))
            .transpose()
    }

    /// The corrected time of the recording's first frame on the DVR's local clock.
    fn corrected_start(&self) -> Result<jiff::civil::DateTime> {
        let start = self.recording_start.ok_or_else(|| {
            error::input("wall-clock positions need the recording's start time: ingest it with --recording-start")
        })?;
        let clock = self.clock.as_ref().ok_or_else(|| {
            error::input("wall-clock positions need the DVR clock offset: ingest it with --dvr-time/--actual-time or --clock-offset")
        })?;
        Ok(clock.correct(start))
    }

    /// Microseconds from the first frame to `wall` (negative before it). A time written
    /// without a zone is read on the DVR's local clock: through its time zone when that is
    /// known (so a daylight-saving change inside the recording counts as it happened), else as
    /// the plain difference of the two clock readings. A time written with a zone needs the
    /// DVR's zone.
    pub fn media_us(&self, wall: &WallTime) -> Result<i64> {
        let start = self.corrected_start()?;
        let Some(zone) = self.zone()? else {
            if wall.has_zone() {
                return Err(error::input(format!(
                    "{} has a time zone, but the DVR's time zone was not recorded when this item was ingested \
                     (ingest --timezone), so it cannot be placed: write the time on the DVR's corrected local clock, \
                     without a zone (2024-05-01T14:03:10)",
                    wall.text
                )));
            }
            return Ok(wall.civil.duration_since(start).as_micros() as i64 - self.first_frame_us);
        };
        let first = zone.instant(start).map_err(|a| {
            error::input(format!(
                "the recording's corrected start {}; record the DVR's zone as the fixed UTC offset its clock kept (--timezone)",
                a.describe(start, &zone)
            ))
        })?;
        Ok(wall.instant(&zone)?.duration_since(first).as_micros() as i64 - self.first_frame_us)
    }

    /// The corrected wall-clock time `us` after the first frame, as the DVR's local clock
    /// shows it (with its UTC offset when the zone is known); None without a start and offset.
    pub fn wall_at(&self, us: i64) -> Option<String> {
        let start = self.corrected_start().ok()?;
        let step = jiff::SignedDuration::from_micros(self.first_frame_us.saturating_add(us));
        if let Ok(Some(zone)) = self.zone()
            && let Ok(first) = zone.instant(start)
            && let Ok(at) = first.checked_add(step)
        {
            return Some(zone.show(at));
        }
        Some(format_civil(start.checked_add(step).unwrap_or(start)))
    }

    /// "… on the corrected DVR clock (America/Chicago)": which clock `wall_at` speaks.
    fn clock_name(&self) -> String {
        match &self.timezone {
            Some(z) => format!("on the corrected DVR clock ({z})"),
            None => "on the corrected DVR clock".to_owned(),
        }
    }
}

impl FrameIndex {
    /// Demux the best video stream of `path` (else its best audio stream) and index its frames.
    /// The H.264 or HEVC video of an MP4 or MOV object is indexed from the container's sample
    /// tables, reading only the headers of its keyframes (see below).
    pub fn build(path: &Path) -> Result<FrameIndex> {
        FrameIndex::build_with(path, true)
    }

    /// [`FrameIndex::build`]; with `use_tables` false, every packet is read (to show that the two
    /// give the same index).
    #[doc(hidden)]
    pub fn build_with(path: &Path, use_tables: bool) -> Result<FrameIndex> {
        match FrameIndex::read(path, use_tables)? {
            Some(index) => Ok(index),
            // The tables could not be followed: read every packet.
            None => Ok(FrameIndex::read(path, false)?.expect("reading every packet gives an index")),
        }
    }

    /// [`FrameIndex::build_with`], `None` when the sample tables turned out not to be enough.
    fn read(path: &Path, use_tables: bool) -> Result<Option<FrameIndex>> {
        super::init();
        let registered = crate::outboard::Object::find(path).is_some();
        let left_out = crate::outboard::LeftOut::default();
        let mut input = super::probe::open_input_leaving_out(
            path,
            (use_tables && registered).then(|| std::sync::Arc::clone(&left_out)),
        )
        .map_err(|e| error::input(format!("FFmpeg cannot open {}: {e}", path.display())))?;
        let stream = input
            .streams()
            .best(ffmpeg::media::Type::Video)
            .or_else(|| input.streams().best(ffmpeg::media::Type::Audio))
            .ok_or_else(|| error::input(format!("{} has neither video nor audio", path.display())))?;
        let audio = stream.parameters().medium() == ffmpeg::media::Type::Audio;
        let kind = if audio { "audio" } else { "video" };
        if input.format().name().starts_with("mov,")
            && super::iso::Movie::read(path).is_some_and(|m| m.timescale_missing(stream.index()))
        {
            return Err(error::input(format!(
                "{}: the container states no timescale for its {kind} (stream {}: the `mdhd` box says 0), so its \
                 frames have no times: FFmpeg counts each tick as a second, which puts frames of a one-second \
                 clip minutes apart. custody makes no stills, clips, redactions or playback copies on such a \
                 timeline; `custody hash --frames` lists and hashes its frames",
                path.display(),
                stream.index()
            )));
        }
        // Cut short by the end of the file: the demuxer returns what is there, flagged corrupt.
        let file_len = crate::outboard::size_of(path).map(|n| n as i64).unwrap_or(i64::MAX);
        let listed = ffi::index_entries(&stream).len();
        let codec = stream.parameters().id();
        let length_size = super::nal::length_size(codec, &ffi::extradata(&stream.parameters()));
        let index = stream.index();
        let tb = stream.time_base();
        // MP4 and MOV list every sample (position, size, time, sync flag) in tables the demuxer
        // reads when the file is opened, and their demuxer takes each packet's times from those
        // tables, not from its bytes. So the payloads of the video's samples are left out: read
        // as zeros, never from the disk, the demuxer giving the same packets with nothing in
        // them. A packet is a keyframe where FFmpeg's H.264/HEVC parser finds one in the bytes:
        // the sync samples the tables list are checked by their NAL unit headers (and SEI
        // messages), read through the checked reader; other samples are not keyframes. Read
        // whole instead: files whose tables do not list every frame (fragmented MP4), that list
        // most samples or fewer than one a minute as sync samples, or whose keyframes are
        // recovery points (intra refresh, where FFmpeg finds keyframes the tables do not list).
        let entries = ffi::index_entries_flagged(&stream);
        let syncs = entries.iter().filter(|e| e.2).count();
        let minutes = (stream.duration().max(0) as f64 * f64::from(tb)) / 60.0;
        let tables = use_tables
            && registered
            && !audio
            && matches!(codec, ffmpeg::codec::Id::H264 | ffmpeg::codec::Id::HEVC)
            && input.format().name().starts_with("mov,")
            && stream.frames() > 0
            && entries.len() as i64 == stream.frames()
            && entries.iter().all(|&(pos, size, _)| pos >= 0 && size >= 0)
            && syncs * 2 < entries.len()
            && syncs as f64 >= minutes;
        let mut sync_sizes = std::collections::HashMap::new();
        let mut headers = None;
        if let (true, Some(n)) = (tables, length_size) {
            // Everything from the first sample of any stream to the end of the last: the media
            // data, with the other streams' samples between the video's (read forward through
            // by FFmpeg, never wanted). The header was read when the file was opened.
            let spans = input.streams().flat_map(|st| ffi::index_entries(&st)).filter(|&(p, s)| p >= 0 && s > 0);
            let (first, last) = spans.fold((i64::MAX, 0), |(a, b), (p, s)| (a.min(p), b.max(p + s)));
            let merged = if first < last { vec![(first as u64, last as u64)] } else { Vec::new() };
            *left_out.lock().unwrap_or_else(|e| e.into_inner()) = merged;
            // The other streams' samples are not wanted at all: the demuxer skips them unread.
            ffi::discard_all_but(&mut input, index);
            sync_sizes = entries.iter().filter(|e| e.2).map(|&(p, s, _)| (p, s)).collect();
            headers = Some((crate::outboard::open(path)?, n));
        }
        // FFmpeg's parser complains of the zeros it is given: not a word of it is about the file.
        let _quiet = headers.is_some().then(super::log::Quiet::new);
        let mut frames = Vec::new();
        let mut derived = false;
        let mut next_ts = 0i64;
        let mut packet = ffmpeg::Packet::empty();
        let mut decode_index = 0usize;
        while super::probe::next_packet(&mut input, &mut packet, path)? {
            if packet.stream() != index || ffi::packet_discarded(&packet) {
                continue;
            }
            // A frame whose bytes the file ends in the middle of is not a frame of it: FFmpeg
            // cannot decode it (a still of it would show another frame).
            let pos = packet.position() as i64;
            if packet.is_corrupt() && pos >= 0 && pos + packet.size() as i64 >= file_len {
                continue;
            }
            let duration = packet.duration().max(0);
            let pts = match packet.pts() {
                Some(p) => p,
                None => {
                    derived = true;
                    packet.dts().unwrap_or(next_ts)
                }
            };
            next_ts = pts + duration.max(1);
            let (key, idr) = match headers.as_mut() {
                Some((file, n)) => match sync_sizes.get(&pos) {
                    Some(&size) => {
                        let found = super::nal::sample_key(codec, *n, file.as_mut(), pos as u64, size as u64)
                            .map_err(|e| error::environment(format!("cannot read {}: {e}", path.display())))?;
                        if found.recovery {
                            return Ok(None);
                        }
                        (found.key, found.idr)
                    }
                    None => (false, false),
                },
                None => {
                    let key = packet.is_key();
                    (key, key && super::nal::is_idr(codec, length_size, packet.data().unwrap_or_default()))
                }
            };
            frames.push(FrameEntry { pts, duration, key, idr, decode_index, pos });
            decode_index += 1;
        }
        if frames.is_empty() && listed > 0 {
            return Err(error::input(format!(
                "{} is truncated: its container lists {listed} {kind} frames, and the file ends before the \
                 first of them is whole",
                path.display()
            )));
        }
        if frames.is_empty() {
            return Err(error::input(format!("{} has a {kind} stream without frames", path.display())));
        }
        frames.sort_by_key(|f| (f.pts, f.decode_index));
        Ok(Some(FrameIndex {
            stream: index,
            audio,
            time_base: (tb.numerator(), tb.denominator()),
            frames,
            derived_timestamps: derived,
        }))
    }

    /// A constant-frame-rate video stream of `frames` frames `ticks` long each, a keyframe (IDR)
    /// every `gop`, stored in presentation order: for tests and the fuzz targets.
    #[doc(hidden)]
    pub fn regular(frames: usize, ticks: i64, gop: usize, time_base: (i32, i32)) -> FrameIndex {
        FrameIndex {
            stream: 0,
            audio: false,
            time_base,
            frames: (0..frames)
                .map(|i| FrameEntry {
                    pts: i as i64 * ticks,
                    duration: ticks,
                    key: i % gop == 0,
                    idr: i % gop == 0,
                    decode_index: i,
                    pos: -1,
                })
                .collect(),
            derived_timestamps: false,
        }
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Microseconds from the first frame to frame `n`.
    pub fn time_us(&self, n: usize) -> i64 {
        self.to_us(self.frames[n].pts - self.frames[0].pts)
    }

    /// Total duration shown: from the first frame to the end of the last.
    pub fn duration_us(&self) -> i64 {
        let last = self.frames.last().expect("non-empty");
        let dur = if last.duration > 0 { last.duration } else { self.typical_duration() };
        self.to_us(last.pts + dur - self.frames[0].pts)
    }

    /// A frame's usual duration in ticks: the median packet duration, else the median spacing
    /// of the timestamps.
    pub fn typical_duration(&self) -> i64 {
        let median = |mut d: Vec<i64>| {
            d.sort_unstable();
            d.get(d.len() / 2).copied()
        };
        median(self.frames.iter().map(|f| f.duration).filter(|d| *d > 0).collect())
            .or_else(|| median(self.frames.windows(2).map(|w| w[1].pts - w[0].pts).filter(|d| *d > 0).collect()))
            .unwrap_or(1)
    }

    /// The last keyframe at or before frame `n` in presentation order (frame 0 if none).
    pub fn keyframe_before(&self, n: usize) -> usize {
        self.frames[..=n].iter().rposition(|f| f.key).unwrap_or(0)
    }

    /// How long frame `i` stays on screen, in the stream's ticks: until the next frame, else
    /// its own duration, else the usual one (never zero).
    pub fn frame_len_ticks(&self, i: usize) -> i64 {
        let d = if i + 1 < self.len() {
            self.frames[i + 1].pts - self.frames[i].pts
        } else if self.frames[i].duration > 0 {
            self.frames[i].duration
        } else {
            self.typical_duration()
        };
        d.max(1)
    }

    /// The last keyframe at or before frame `first`, sought in `input` (a second early: some
    /// containers, MPEG-TS, seek by decode time, which runs ahead of presentation time). Frames
    /// before the range are read and skipped by the caller. A failed seek reads from the start.
    pub fn seek_before(&self, input: &mut ffmpeg::format::context::Input, first: usize) {
        if self.derived_timestamps || first == 0 {
            return;
        }
        let key = self.frames[self.keyframe_before(first)].pts;
        let margin = super::time::us_to_ticks(1_000_000, self.time_base.0, self.time_base.1);
        let _ = ffi::seek_stream_backward(input, self.stream, key - margin);
    }

    /// How long frame `i` stays on screen, in microseconds.
    pub fn frame_len_us(&self, i: usize) -> i64 {
        if i + 1 < self.len() { self.time_us(i + 1) - self.time_us(i) } else { self.duration_us() - self.time_us(i) }
    }

    pub fn to_us(&self, ticks: i64) -> i64 {
        super::time::ticks_to_us(ticks, self.time_base.0, self.time_base.1)
    }

    /// The frame on screen at `pos`: `frame:N` exactly; a time → the last frame shown at or
    /// before it; a wall-clock time → the same on the corrected timeline. A position outside
    /// the recording is an error, never clamped.
    pub fn resolve(&self, pos: &Position, timeline: &Timeline) -> Result<usize> {
        let us = match pos {
            Position::Frame(_) if self.audio => {
                return Err(error::input(
                    "frame:N positions need video; this item is audio-only: use a time (HH:MM:SS.mmm)",
                ));
            }
            Position::Frame(n) => {
                let n = *n as usize;
                if n >= self.len() {
                    return Err(error::input(format!(
                        "frame:{n} is past the end: the video has {} frames (frame:0 to frame:{})",
                        self.len(),
                        self.len() - 1
                    )));
                }
                return Ok(n);
            }
            Position::Time(us) => *us,
            Position::WallClock(w) => match self.wall_to_media_us(w, timeline)? {
                us if us >= self.duration_us() => return Err(self.outside(w, us, timeline)),
                us => us,
            },
        };
        let total = self.duration_us();
        if us < 0 || us >= total {
            return Err(error::input(format!(
                "{} is outside the recording, which runs from 00:00:00.000 to {}",
                format_us(us),
                format_us(total)
            )));
        }
        // The last frame whose start is at or before the position.
        let n = self.frames.partition_point(|f| self.to_us(f.pts - self.frames[0].pts) <= us);
        Ok(n.saturating_sub(1))
    }

    /// Convert a corrected wall-clock time to media time: from the first frame to the end of
    /// the last, else an error in the user's words (the time as written, the recording's span
    /// on the corrected clock).
    pub fn wall_to_media_us(&self, wall: &WallTime, timeline: &Timeline) -> Result<i64> {
        let us = timeline.media_us(wall)?;
        if us < 0 || us > self.duration_us() {
            return Err(self.outside(wall, us, timeline));
        }
        Ok(us)
    }

    /// A wall-clock time outside the recording, said on the corrected clock.
    fn outside(&self, wall: &WallTime, us: i64, timeline: &Timeline) -> anyhow::Error {
        let span = |us| timeline.wall_at(us).unwrap_or_default();
        error::input(format!(
            "{} is {} the recording, which runs from {} to {} {}",
            wall.text,
            if us < 0 { "before" } else { "after the end of" },
            span(0),
            span(self.duration_us()),
            timeline.clock_name()
        ))
    }
}

/// The frame index cache: `cache/frames/<SHA-256>` in the store, so that every clip, still and
/// redaction of an item after the first starts without demuxing the whole file.
///
/// The cache is derived data, never evidence: each file carries the FFmpeg version that built
/// it and ends with the BLAKE3 of everything before it (its digest), and anything unexpected
/// (another FFmpeg, a torn or edited file) is ignored and rebuilt. Every derived event records
/// the digest of the index it used (`params.frame_index`), and a cached index is used only when
/// an event deriving from the same object recorded its digest: a cache file crafted behind
/// custody's back is rebuilt, never trusted. A copy clip also checks every packet it copies
/// against the index.
pub mod cache {
    use std::collections::BTreeSet;
    use std::fs;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    use super::{FrameEntry, FrameIndex};
    use crate::ledger::Ledger;

    const MAGIC: &[u8] = b"custody frame index 4\n";
    /// Bytes each frame takes in the encoding.
    const ENTRY: usize = 33;
    /// Where caches live, below the store's root.
    pub const DIR: &str = "cache";

    fn path(store_root: &Path, sha256: &str) -> PathBuf {
        store_root.join(DIR).join("frames").join(sha256)
    }

    fn builder_version() -> u32 {
        // SAFETY: a constant query of the linked library.
        unsafe { ffmpeg_next::ffi::avformat_version() }
    }

    /// Digests of the indexes this process has built or found recorded: trusted without asking
    /// the ledger again (a batch job's position check builds an index its steps then use). An
    /// index's encoding names its object, so a digest stands for one object's index.
    static TRUSTED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

    /// The index of object `sha256` at `object` in the store at `store_root`, and its digest:
    /// from the cache when an event in `ledger` deriving from the object recorded using it, or
    /// this process built it, else built (see [`load_or_build`]).
    pub fn load_recorded(
        ledger: &Ledger,
        store_root: &Path,
        sha256: &str,
        object: &Path,
    ) -> anyhow::Result<(FrameIndex, String)> {
        let trusted = |d: &str| TRUSTED.lock().unwrap_or_else(|e| e.into_inner()).contains(d);
        let (index, digest) =
            load_or_build(store_root, sha256, object, |d| Ok(trusted(d) || ledger.frame_index_recorded(sha256, d)?))?;
        TRUSTED.lock().unwrap_or_else(|e| e.into_inner()).insert(digest.clone());
        Ok((index, digest))
    }

    /// The index of object `sha256` at `object`, and its digest (the BLAKE3 its encoding ends
    /// with, hex): from the cache when it holds a sound one whose digest `recorded` accepts
    /// (one a command recorded using), else built (and cached for next time; a cache that
    /// cannot be written is no error). Building is deterministic: the same object and FFmpeg
    /// give the same index and digest.
    pub fn load_or_build(
        store_root: &Path,
        sha256: &str,
        object: &Path,
        recorded: impl FnOnce(&str) -> anyhow::Result<bool>,
    ) -> anyhow::Result<(FrameIndex, String)> {
        let file = path(store_root, sha256);
        if let Ok(bytes) = fs::read(&file)
            && let Some(index) = decode(&bytes, sha256)
        {
            let digest = digest_of(&bytes);
            if recorded(&digest)? {
                return Ok((index, digest));
            }
        }
        let index = FrameIndex::build(object);
        // An index is cached only from bytes that all checked out against the recorded BLAKE3.
        crate::outboard::check(object)?;
        let index = index?;
        let bytes = encode(&index, sha256);
        let _ = save(&file, &bytes);
        Ok((index, digest_of(&bytes)))
    }

    /// The digest of an encoded index: the BLAKE3 it ends with, in hex.
    fn digest_of(encoded: &[u8]) -> String {
        hex::encode(&encoded[encoded.len() - 32..])
    }

    /// Forget the cached index of `sha256` (after it disagreed with the file).
    pub fn forget(store_root: &Path, sha256: &str) {
        let _ = fs::remove_file(path(store_root, sha256));
    }

    fn save(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let dir = file.parent().expect("cache path has a parent");
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new().prefix(".new-").tempfile_in(dir)?;
        tmp.write_all(bytes)?;
        tmp.persist(file).map_err(|e| e.error)?;
        Ok(())
    }

    pub(super) fn encode(index: &FrameIndex, sha256: &str) -> Vec<u8> {
        let mut b = Vec::with_capacity(MAGIC.len() + 128 + index.frames.len() * ENTRY);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&builder_version().to_le_bytes());
        b.extend_from_slice(sha256.as_bytes());
        b.extend_from_slice(&(index.stream as u64).to_le_bytes());
        b.push(index.audio as u8);
        b.push(index.derived_timestamps as u8);
        b.extend_from_slice(&index.time_base.0.to_le_bytes());
        b.extend_from_slice(&index.time_base.1.to_le_bytes());
        b.extend_from_slice(&(index.frames.len() as u64).to_le_bytes());
        for f in &index.frames {
            b.extend_from_slice(&f.pts.to_le_bytes());
            b.extend_from_slice(&f.duration.to_le_bytes());
            b.extend_from_slice(&(f.decode_index as u64).to_le_bytes());
            b.extend_from_slice(&f.pos.to_le_bytes());
            b.push(f.key as u8 | (f.idr as u8) << 1);
        }
        let check = blake3::hash(&b);
        b.extend_from_slice(check.as_bytes());
        b
    }

    pub(super) fn decode(bytes: &[u8], sha256: &str) -> Option<FrameIndex> {
        let (body, check) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
        if blake3::hash(body).as_bytes() != check {
            return None;
        }
        let mut r = Reader(body);
        if r.take(MAGIC.len())? != MAGIC
            || u32::from_le_bytes(r.array()?) != builder_version()
            || r.take(sha256.len())? != sha256.as_bytes()
        {
            return None;
        }
        let stream = usize::try_from(u64::from_le_bytes(r.array()?)).ok()?;
        let audio = r.flag()?;
        let derived_timestamps = r.flag()?;
        let time_base = (i32::from_le_bytes(r.array()?), i32::from_le_bytes(r.array()?));
        let count = usize::try_from(u64::from_le_bytes(r.array()?)).ok()?;
        if count == 0 || count > r.0.len() / ENTRY || time_base.0 <= 0 || time_base.1 <= 0 {
            return None;
        }
        let mut frames = Vec::with_capacity(count);
        for _ in 0..count {
            let pts = i64::from_le_bytes(r.array()?);
            let duration = i64::from_le_bytes(r.array()?);
            let decode_index = usize::try_from(u64::from_le_bytes(r.array()?)).ok()?;
            let pos = i64::from_le_bytes(r.array()?);
            let flags = r.take(1)?[0];
            if decode_index >= count || flags > 3 || flags == 2 || pos < -1 {
                return None;
            }
            frames.push(FrameEntry { pts, duration, key: flags & 1 == 1, idr: flags & 2 == 2, decode_index, pos });
        }
        r.0.is_empty().then_some(FrameIndex { stream, audio, time_base, frames, derived_timestamps })
    }

    struct Reader<'a>(&'a [u8]);

    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            let (head, rest) = self.0.split_at_checked(n)?;
            self.0 = rest;
            Some(head)
        }
        fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
            self.take(N)?.try_into().ok()
        }
        fn flag(&mut self) -> Option<bool> {
            match self.take(1)? {
                [0] => Some(false),
                [1] => Some(true),
                _ => None,
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn sample() -> FrameIndex {
            FrameIndex { stream: 1, ..FrameIndex::regular(50, 512, 25, (1, 12800)) }
        }

        #[test]
        fn an_index_reads_back_as_written_and_only_for_its_own_object() {
            let sha = "ab".repeat(32);
            let bytes = encode(&sample(), &sha);
            let back = decode(&bytes, &sha).expect("decodes");
            assert_eq!(format!("{:?}", back), format!("{:?}", sample()));
            assert!(decode(&bytes, &"cd".repeat(32)).is_none(), "another object's index must not be used");
        }

        #[test]
        fn a_torn_or_edited_cache_file_is_never_used() {
            let sha = "ab".repeat(32);
            let bytes = encode(&sample(), &sha);
            for cut in [0, 1, 10, bytes.len() / 2, bytes.len() - 1] {
                assert!(decode(&bytes[..cut], &sha).is_none(), "a file cut at {cut} bytes was used");
            }
            for at in [0, MAGIC.len() + 2, bytes.len() / 2, bytes.len() - 1] {
                let mut edited = bytes.clone();
                edited[at] ^= 1;
                assert!(decode(&edited, &sha).is_none(), "a file with byte {at} flipped was used");
            }
        }

        #[test]
        fn a_cache_is_rebuilt_from_the_file_when_it_is_missing_or_broken() {
            let store = tempfile::tempdir().unwrap();
            let media = store.path().join("clip.mp4");
            crate::media::synth::generate(crate::media::synth::Fixture::H264Mp4, &media).expect("fixture");
            let sha = "ef".repeat(32);
            let trusted = |_: &str| Ok(true);
            let (built, digest) = load_or_build(store.path(), &sha, &media, trusted).expect("built");
            let file = path(store.path(), &sha);
            assert!(file.is_file(), "the index was not cached");
            let (cached, cached_digest) = load_or_build(store.path(), &sha, &media, trusted).expect("cached");
            assert_eq!(format!("{cached:?}"), format!("{built:?}"));
            assert_eq!(cached_digest, digest);
            fs::write(&file, b"garbage").unwrap();
            let (rebuilt, rebuilt_digest) = load_or_build(store.path(), &sha, &media, trusted).expect("rebuilt");
            assert_eq!(format!("{rebuilt:?}"), format!("{built:?}"));
            assert_eq!(rebuilt_digest, digest, "building is deterministic");
            // A sound cache whose digest no event recorded is rebuilt, not used.
            let mut asked = None;
            let (_, unrecorded) = load_or_build(store.path(), &sha, &media, |d| {
                asked = Some(d.to_owned());
                Ok(false)
            })
            .expect("rebuilt");
            assert_eq!((asked.as_deref(), unrecorded.as_str()), (Some(digest.as_str()), digest.as_str()));
            assert_eq!(decode(&fs::read(&file).unwrap(), &sha).map(|i| i.len()), Some(built.len()));
        }
    }
}
