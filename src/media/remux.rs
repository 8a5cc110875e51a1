//! Stream copy: packets moved from one container to another untouched, for copy clips and
//! playback copies. Timestamps are rescaled at every boundary and shifted so the output starts
//! at zero; streams without timestamps (raw elementary streams) get them from their frame
//! durations. Every copied packet is hashed, per stream, so the event can prove the copy's
//! streams are bit-identical to the source's over the range.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use ffmpeg_next as ffmpeg;
use serde::Serialize;

use super::ffi;
use super::framing::Framing;
use super::index::FrameIndex;
use super::probe::open_input;
use crate::error;

/// Which packets to copy.
pub struct Selection {
    /// Decode-order range (inclusive) of the indexed stream's packets; `None` copies them all.
    pub decode_range: Option<(usize, usize)>,
    /// Other streams: packets whose start falls in this window, in microseconds on the
    /// indexed stream's absolute timeline; `None` copies everything.
    pub window_us: Option<(i64, i64)>,
    /// Microseconds subtracted from every other stream's timestamps so the output starts at zero.
    pub shift_us: i64,
    /// The same shift for the indexed stream, exactly, in its own ticks (no rounding through
    /// microseconds, which would move every frame by a tick or a whole frame).
    pub shift_ticks: i64,
    /// PCM audio alone: keep exactly the samples in `[start, end)` (the indexed stream's
    /// ticks), splitting the first and last packets (a PCM packet is whole samples, so a split
    /// loses nothing).
    pub trim_ticks: Option<(i64, i64)>,
}

impl Selection {
    /// Every packet of every stream, as it is.
    pub fn all() -> Selection {
        Selection { decode_range: None, window_us: None, shift_us: 0, shift_ticks: 0, trim_ticks: None }
    }
}

/// Per-stream record of what was copied.
#[derive(Clone, Debug, Serialize)]
pub struct CopiedStream {
    pub input_index: usize,
    pub output_index: usize,
    pub kind: String,
    pub codec: String,
    pub packets: u64,
    pub bytes: u64,
    /// SHA-256 over the copied packets' access units in order, as `compared` says: H.264/HEVC
    /// NAL units without their start codes or length prefixes, AAC frames without ADTS headers
    /// (the framing taken from the stream's parameters), so the hash does not depend on the
    /// container's framing.
    pub packets_sha256: String,
    /// What the packet hash covers.
    pub compared: String,
    /// The input stream's framing.
    #[serde(skip)]
    pub framing: Framing,
}

/// The containers a copy of a file in `input_format` (FFmpeg's demuxer name) may go into, best
/// first: the source's own family where it can hold the streams as they are (MOV stays MOV, 3GP
/// stays 3GP, MP4 stays MP4, AVI stays AVI; the brand in an ISO file's `ftyp` tells them apart),
/// MP4 for raw H.264/HEVC; then MOV for the ISO family's other members, and Matroska last,
/// which holds nearly any codec as it is.
pub fn containers(input_format: &str, major_brand: Option<&str>, has_video: bool) -> Vec<(&'static str, &'static str)> {
    let first = input_format.split(',').next().unwrap_or_default();
    let family = match first {
        "mov" => Some(iso_family(major_brand, has_video)),
        "avi" => Some(("avi", "avi")),
        "matroska" => Some(("matroska", if has_video { "mkv" } else { "mka" })),
        "mpegts" => Some(("mpegts", "ts")),
        "h264" | "hevc" => Some(("mp4", "mp4")),
        "wav" => Some(("wav", "wav")),
        "mp3" => Some(("mp3", "mp3")),
        "amr" => Some(("amr", "amr")),
        "flac" => Some(("flac", "flac")),
        _ => None,
    };
    let mut out: Vec<_> = family.into_iter().collect();
    // MOV holds more codecs than its MP4 and 3GP siblings (PCM, timed text beside it…).
    if first == "mov" && !out.contains(&("mov", "mov")) {
        out.push(("mov", "mov"));
    }
    if !out.iter().any(|(m, _)| *m == "matroska") {
        out.push(("matroska", if has_video { "mkv" } else { "mka" }));
    }
    out
}

/// The member of the ISO family (QuickTime, MP4, 3GPP) an `ftyp` major brand names. A file
/// without one is old QuickTime.
fn iso_family(major_brand: Option<&str>, has_video: bool) -> (&'static str, &'static str) {
    let brand = major_brand.map(str::trim).unwrap_or("qt");
    match brand {
        "qt" => ("mov", "mov"),
        b if b.starts_with("3g2") => ("3g2", "3g2"),
        b if b.starts_with("3g") => ("3gp", "3gp"),
        "M4A" | "M4B" => ("ipod", "m4a"),
        _ if has_video => ("mp4", "mp4"),
        _ => ("ipod", "m4a"),
    }
}

/// What users call a muxer's files.
pub fn container_name(muxer: &str) -> &str {
    match muxer {
        "mov" => "MOV",
        "mp4" => "MP4",
        "ipod" => "M4A",
        "3gp" => "3GP",
        "3g2" => "3G2",
        "avi" => "AVI",
        "matroska" => "Matroska",
        "mpegts" => "MPEG-TS",
        "wav" => "WAV",
        "mp3" => "MP3",
        "amr" => "AMR",
        "flac" => "FLAC",
        other => other,
    }
}

/// Container tags a muxer writes of its own (the brand, the library): never carried over.
const MUXER_TAGS: [&str; 5] = ["major_brand", "minor_version", "compatible_brands", "encoder", "duration"];

/// The tags of a recording worth keeping on a clip or playback copy for court: every tag but
/// those a muxer writes of its own (creation time, location, make and model, language stay).
pub fn recording_tags(tags: Vec<(String, String)>) -> Vec<(String, String)> {
    tags.into_iter().filter(|(k, _)| !MUXER_TAGS.contains(&k.as_str())).collect()
}

/// Give `output` the source's recording tags; an ISO muxer writes keys it has no atom for too.
pub(crate) fn carry_tags(
    input: &ffmpeg::format::context::Input,
    output: &mut ffmpeg::format::context::Output,
    header: &mut ffmpeg::Dictionary,
    muxer: &str,
) {
    let mut tags = ffmpeg::Dictionary::new();
    for (k, v) in recording_tags(ffi::tags(&input.metadata())) {
        tags.set(&k, &v);
    }
    output.set_metadata(tags);
    if matches!(muxer, "mp4" | "ipod" | "mov" | "3gp" | "3g2") {
        header.set("movflags", "+faststart+use_metadata_tags");
    }
}

/// A copy made by [`copy_into_first`]: what was copied, into which container, and where.
pub struct Made {
    pub streams: Vec<CopiedStream>,
    pub muxer: &'static str,
    pub ext: &'static str,
    pub path: PathBuf,
}

/// Copy into the first of `containers` that holds the streams as they are: a container that
/// refuses them (an input error: MP4 cannot hold PCM, AVI cannot hold AAC with its
/// configuration…) is followed by the next, its partial file removed. `scratch(ext)` names each
/// attempt's file. When none holds them, the error says what each refused, then `hint`.
pub fn copy_into_first(
    src: &Path,
    containers: &[(&'static str, &'static str)],
    mut scratch: impl FnMut(&str) -> PathBuf,
    index: &FrameIndex,
    sel: &Selection,
    hint: &str,
) -> Result<Made> {
    let mut refused = Vec::new();
    for &(muxer, ext) in containers {
        let path = scratch(ext);
        match copy(src, &path, muxer, index, sel) {
            Ok(streams) => return Ok(Made { streams, muxer, ext, path }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                if error::exit_for(&e) != error::Exit::Input {
                    return Err(e);
                }
                refused.push(format!("{e:#}"));
            }
        }
    }
    Err(error::input(format!(
        "no container holds these streams as they are: {}. Nothing was recorded{hint}",
        refused.join("; ")
    )))
}

/// Copy the selected packets of `src` into `dst` with the `muxer` format.
pub fn copy(src: &Path, dst: &Path, muxer: &str, index: &FrameIndex, sel: &Selection) -> Result<Vec<CopiedStream>> {
    super::init();
    let mut input = open_input(src).map_err(|e| error::input(format!("FFmpeg cannot open {}: {e}", src.display())))?;
    let mut output = ffmpeg::format::output_as(&dst, muxer).map_err(|e| {
        error::environment(format!("cannot create the {} file in the store's staging: {e}", container_name(muxer)))
    })?;
    let mut map: BTreeMap<usize, usize> = BTreeMap::new();
    let mut in_tb = BTreeMap::new();
    let mut tally = Tally::default();
    // Subtitle streams are sparse (a cue every few seconds, or none for minutes): they never
    // hold up the end of a range, and the cue on screen when the range starts is carried into
    // it, its timing trimmed to the range and its payload untouched.
    let mut sparse: Vec<usize> = Vec::new();
    for ist in input.streams() {
        let params = ist.parameters();
        let kind = super::probe::kind_name(params.medium());
        if !matches!(kind, "video" | "audio" | "subtitle") {
            continue;
        }
        // Attached pictures (cover art) are not part of the recording.
        if ist.disposition().contains(ffmpeg::format::stream::Disposition::ATTACHED_PIC) {
            continue;
        }
        let ost = add_copied_stream(&mut output, &ist)?;
        map.insert(ist.index(), ost);
        in_tb.insert(ist.index(), ist.time_base());
        if kind == "subtitle" {
            sparse.push(ist.index());
        }
        tally.add(ist.index(), ost, kind, &params);
    }
    if !map.contains_key(&index.stream) {
        return Err(error::input(format!("{}: the indexed stream cannot be copied", src.display())));
    }
    let mut opts = ffmpeg::Dictionary::new();
    // Players can start before the whole file is read: the index goes first. The recording's
    // creation time and location stay with it.
    carry_tags(&input, &mut output, &mut opts, muxer);
    let header = output.write_header_with(opts).map(drop);
    if let Err(e) = header {
        let refused: Vec<String> = tally
            .streams
            .iter()
            .filter(|c| {
                let id = input.stream(c.input_index).map(|s| s.parameters().id());
                id.is_some_and(|id| ffi::muxer_holds(&output, id) == Some(false))
            })
            .map(|c| format!("stream {} ({} {})", c.input_index, c.codec, c.kind))
            .collect();
        let name = container_name(muxer);
        return Err(if refused.is_empty() {
            error::input(format!("{name} cannot hold these streams as they are ({e})"))
        } else {
            error::input(format!("{name} cannot hold {} as it is ({e})", refused.join(", ")))
        });
    }
    let out_tb: BTreeMap<usize, ffmpeg::Rational> =
        map.values().map(|&o| (o, output.stream(o).expect("added stream").time_base())).collect();

    // The pts of every indexed packet, by decode position: each packet copied is checked
    // against it, so the clip holds the frames the index (perhaps a cached one) says it does.
    let mut pts_by_decode = vec![i64::MIN; index.len()];
    for f in &index.frames {
        pts_by_decode[f.decode_index] = f.pts;
    }
    let mut decode_index = 0usize;
    if let Some((ts, first)) = seek_start(&mut input, index, sel, &map, &in_tb, &pts_by_decode, src)? {
        ffi::seek_stream_backward(&mut input, index.stream, ts)
            .map_err(|e| error::input(format!("{}: cannot seek: {e}", src.display())))?;
        decode_index = first;
    }
    // Streams with nothing more to copy: reading stops when every stream is done.
    let mut finished: BTreeMap<usize, bool> =
        map.keys().map(|&k| (k, sel.window_us.is_some() && sparse.contains(&k))).collect();
    let mut carried: BTreeMap<usize, ffmpeg::Packet> = BTreeMap::new();
    let mut carrying = sel.window_us.is_some() && !sparse.is_empty();
    let mut packet = ffmpeg::Packet::empty();
    let raw_duration = index.typical_duration();
    let trim = match sel.trim_ticks {
        Some(range) => {
            let stream = input.stream(index.stream).expect("the indexed stream");
            Some(PcmTrim::new(&stream, range, src)?)
        }
        None => None,
    };
    while super::probe::next_packet(&mut input, &mut packet, src)? {
        let ist = packet.stream();
        let Some(&ost) = map.get(&ist) else { continue };
        let tb = in_tb[&ist];
        if ist == index.stream {
            // Packets an edit list hides are not frames of the index: a range copy skips them,
            // a whole-file copy keeps them (and the edit list's effect with them).
            if ffi::packet_discarded(&packet) && sel.decode_range.is_some() {
                continue;
            }
            let n = decode_index;
            decode_index += 1;
            if let Some((a, b)) = sel.decode_range {
                if n < a {
                    continue;
                }
                if n > b {
                    if done(&mut finished, ist) {
                        break;
                    }
                    continue;
                }
                if !index.derived_timestamps && pts_by_decode.get(n) != Some(&packet.pts().unwrap_or(i64::MIN)) {
                    return Err(error::environment(format!(
                        "{}: packet {n} of the copied stream is not the frame the frame index lists \
                         (pts {:?} instead of {:?}); nothing was recorded. The store's cached frame \
                         index is dropped: run the command again",
                        src.display(),
                        packet.pts(),
                        pts_by_decode.get(n)
                    )));
                }
            }
            if let Some(t) = &trim {
                match t.cut(&packet) {
                    Cut::Whole => {}
                    Cut::Nothing => continue,
                    Cut::Part(part) => packet = part,
                }
            }
            if index.derived_timestamps {
                let base = sel.decode_range.map_or(0, |(a, _)| a) as i64;
                let ts = (n as i64 - base) * raw_duration;
                packet.set_pts(Some(ts));
                packet.set_dts(Some(ts));
                if packet.duration() <= 0 {
                    packet.set_duration(raw_duration);
                }
            } else {
                shift_by(&mut packet, sel.shift_ticks);
            }
            // The range starts here: the cues on screen go first.
            if carrying {
                carrying = false;
                for (s, mut cue) in std::mem::take(&mut carried) {
                    let (s_tb, s_out) = (in_tb[&s], map[&s]);
                    shift(&mut cue, sel.shift_us, s_tb);
                    tally.count(s, &cue);
                    write_copied(&mut cue, s_tb, (s_out, out_tb[&s_out]), &mut output)?;
                }
            }
        } else {
            if let Some((t0, t1)) = sel.window_us {
                let Some(ts) = packet.pts().or(packet.dts()) else { continue };
                let at = to_us(ts, tb);
                // Packets of a stream arrive in (nearly) increasing time: well past the window,
                // that stream is done.
                if at >= t1 + SETTLED_US && done(&mut finished, ist) {
                    break;
                }
                if carrying && at < t0 && sparse.contains(&ist) {
                    // The latest cue before the range; carried if it is still on screen at t0.
                    let end = at + to_us(packet.duration(), tb);
                    if end > t0 {
                        let mut cue = packet.clone();
                        cue.set_pts(Some(from_us(t0, tb)));
                        cue.set_dts(Some(from_us(t0, tb)));
                        cue.set_duration(from_us(end.min(t1) - t0, tb));
                        carried.insert(ist, cue);
                    } else {
                        carried.remove(&ist);
                    }
                    continue;
                }
                if at < t0 || at >= t1 {
                    continue;
                }
            }
            shift(&mut packet, sel.shift_us, tb);
        }
        tally.count(ist, &packet);
        write_copied(&mut packet, tb, (ost, out_tb[&ost]), &mut output)?;
    }
    output.write_trailer().map_err(|e| mux_error(e, format!("cannot finish the {} file", container_name(muxer))))?;
    Ok(tally.finish())
}

/// Cutting PCM packets at sample boundaries.
struct PcmTrim {
    /// Bytes of one sample of every channel.
    frame_bytes: usize,
    /// Ticks per sample, as a fraction: `ticks = samples * num / den`.
    num: i128,
    den: i128,
    range: (i64, i64),
}

enum Cut {
    Whole,
    Nothing,
    Part(ffmpeg::Packet),
}

impl PcmTrim {
    fn new(stream: &ffmpeg::format::stream::Stream<'_>, range: (i64, i64), src: &Path) -> Result<PcmTrim> {
        let params = stream.parameters();
        let (frame_bytes, rate) = ffi::pcm_frame(&params);
        if frame_bytes == 0 || rate <= 0 {
            return Err(error::input(format!("{}: the PCM stream states no sample size or rate", src.display())));
        }
        let tb = stream.time_base();
        // One sample lasts 1/rate s = den_tb / (num_tb * rate) ticks.
        Ok(PcmTrim { frame_bytes, num: tb.denominator() as i128, den: tb.numerator() as i128 * rate as i128, range })
    }

    fn ticks(&self, samples: i64) -> i64 {
        (samples as i128 * self.num / self.den) as i64
    }

    fn samples(&self, ticks: i64) -> i64 {
        // Rounded to the nearest sample: ticks of a sample-exact position are whole samples.
        ((ticks as i128 * self.den * 2 + self.num) / (self.num * 2)) as i64
    }

    /// What of `packet` falls in the range.
    fn cut(&self, packet: &ffmpeg::Packet) -> Cut {
        let (Some(pts), Some(data)) = (packet.pts(), packet.data()) else { return Cut::Whole };
        let n = (data.len() / self.frame_bytes) as i64;
        let first = self.samples(pts);
        let keep_from = (self.samples(self.range.0) - first).clamp(0, n);
        let keep_to = (self.samples(self.range.1) - first).clamp(0, n);
        if keep_to <= keep_from {
            return Cut::Nothing;
        }
        if (keep_from, keep_to) == (0, n) {
            return Cut::Whole;
        }
        let bytes = &data[keep_from as usize * self.frame_bytes..keep_to as usize * self.frame_bytes];
        let mut part = ffmpeg::Packet::copy(bytes);
        let at = self.ticks(first + keep_from);
        part.set_pts(Some(at));
        part.set_dts(Some(at));
        part.set_duration(self.ticks(first + keep_to) - at);
        part.set_stream(packet.stream());
        part.set_flags(packet.flags());
        Cut::Part(part)
    }
}

/// The streams being copied, each with its framing and the SHA-256 of its packets. The
/// hashing runs on a thread of its own, fed references to the packets (not copies), so it
/// overlaps the reading and writing instead of adding to them.
#[derive(Default)]
struct Tally {
    streams: Vec<CopiedStream>,
    framings: Vec<Framing>,
    hashing: Option<Hashing>,
}

/// The hashing thread: packets in (by slot), one SHA-256 per stream out.
struct Hashing {
    packets: std::sync::mpsc::SyncSender<(usize, ffmpeg::Packet)>,
    thread: std::thread::JoinHandle<Vec<ring::digest::Context>>,
}

/// Packets queued for the hashing thread before the copy waits for it: a few seconds of
/// video, so memory stays bounded however far the copy runs ahead.
const HASH_QUEUE: usize = 256;

impl Tally {
    /// Start counting input stream `input` (written as output stream `output`).
    fn add(&mut self, input: usize, output: usize, kind: &str, params: &ffmpeg::codec::Parameters) {
        let framing = Framing::of(params);
        self.streams.push(CopiedStream {
            input_index: input,
            output_index: output,
            kind: kind.to_owned(),
            codec: params.id().name().to_owned(),
            packets: 0,
            bytes: 0,
            packets_sha256: String::new(),
            compared: framing.compared().to_owned(),
            framing,
        });
        self.framings.push(framing);
    }

    /// Count one packet of input stream `ist` (one added before) and queue it for hashing.
    fn count(&mut self, ist: usize, packet: &ffmpeg::Packet) {
        let slot = self.streams.iter().position(|c| c.input_index == ist).expect("an added stream");
        let stream = &mut self.streams[slot];
        stream.packets += 1;
        let Some(data) = packet.data() else { return };
        stream.bytes += data.len() as u64;
        let framings = &self.framings;
        let hashing = self.hashing.get_or_insert_with(|| {
            let framings = framings.clone();
            let (packets, queue) = std::sync::mpsc::sync_channel::<(usize, ffmpeg::Packet)>(HASH_QUEUE);
            let thread = std::thread::spawn(move || {
                let mut hashers: Vec<_> =
                    framings.iter().map(|_| ring::digest::Context::new(&ring::digest::SHA256)).collect();
                for (slot, packet) in queue {
                    if let Some(data) = packet.data() {
                        framings[slot].hash_into(&mut hashers[slot], data);
                    }
                }
                hashers
            });
            Hashing { packets, thread }
        });
        hashing.packets.send((slot, ffi::packet_ref(packet))).expect("the packet hashing thread is running");
    }

    fn finish(self) -> Vec<CopiedStream> {
        let mut streams = self.streams;
        let hashers = match self.hashing {
            Some(Hashing { packets, thread }) => {
                drop(packets);
                thread.join().expect("the packet hashing thread panicked")
            }
            None => streams.iter().map(|_| ring::digest::Context::new(&ring::digest::SHA256)).collect(),
        };
        for (c, h) in streams.iter_mut().zip(hashers) {
            c.packets_sha256 = hex::encode(h.finish().as_ref());
        }
        streams
    }
}

/// Add an output stream that takes `ist`'s packets as they are: its codec parameters (the
/// codec tag left for the output muxer to choose) and its display matrix.
pub(crate) fn add_copied_stream(
    output: &mut ffmpeg::format::context::Output,
    ist: &ffmpeg::format::stream::Stream<'_>,
) -> Result<usize> {
    let kind = super::probe::kind_name(ist.parameters().medium());
    let mut ost = output
        .add_stream(ffmpeg::encoder::find(ffmpeg::codec::Id::None))
        .map_err(|e| error::input(format!("cannot add stream {} ({kind}) to the copy: {e}", ist.index())))?;
    ost.set_parameters(ist.parameters());
    // The stream's own tags (language, creation time), but not the handler a muxer names.
    let mut tags = ffmpeg::Dictionary::new();
    for (k, v) in ffi::tags(&ist.metadata()) {
        if !matches!(k.as_str(), "handler_name" | "vendor_id" | "encoder") {
            tags.set(&k, &v);
        }
    }
    ost.set_metadata(tags);
    let mut p = ost.parameters();
    ffi::reset_codec_tag(&mut p);
    ffi::copy_display_matrix(ist, &mut ost);
    Ok(ost.index())
}

/// Write a copied packet of an input stream (timestamps in `from`, that stream's time base) to
/// output stream `to` = (index, time base).
pub(crate) fn write_copied(
    packet: &mut ffmpeg::Packet,
    from: ffmpeg::Rational,
    to: (usize, ffmpeg::Rational),
    output: &mut ffmpeg::format::context::Output,
) -> Result<()> {
    let source_stream = packet.stream();
    packet.rescale_ts(from, to.1);
    packet.set_position(-1);
    packet.set_stream(to.0);
    let muxer = container_name(output.format().name()).to_owned();
    packet
        .write_interleaved(output)
        .map_err(|e| mux_error(e, format!("a packet of stream {source_stream} could not be written into {muxer}")))
}

/// A muxer's failure: the disk's (full, failing: exit 3) or the media's (exit 2).
fn mux_error(e: ffmpeg::Error, what: String) -> anyhow::Error {
    let io = matches!(e, ffmpeg::Error::Other { errno } if [libc::ENOSPC, libc::EDQUOT, libc::EIO, libc::EROFS].contains(&errno));
    if io { error::environment(format!("{what}: {e}")) } else { error::input(format!("{what}: {e}")) }
}

/// How far past a range's end another stream's packets must be before it counts as done
/// (covers B-frame reordering in a second video stream).
const SETTLED_US: i64 = 5_000_000;

/// Mark `stream` done; true when every stream is.
fn done(finished: &mut BTreeMap<usize, bool>, stream: usize) -> bool {
    finished.insert(stream, true);
    finished.values().all(|&d| d)
}

/// Where a range copy can start reading instead of the beginning: the seek target (a pts of
/// the indexed stream) and the decode position of the first indexed packet found there. Tried
/// by seeking and reading ahead: it is used only when the seek lands at or before the range's
/// first packet and every other stream starts at or before the range's window, else `None`
/// (read from the beginning). The input is left anywhere: the caller seeks again.
fn seek_start(
    input: &mut ffmpeg::format::context::Input,
    index: &FrameIndex,
    sel: &Selection,
    map: &BTreeMap<usize, usize>,
    in_tb: &BTreeMap<usize, ffmpeg::Rational>,
    pts_by_decode: &[i64],
    src: &Path,
) -> Result<Option<(i64, usize)>> {
    let (Some((a, _)), Some((t0, _))) = (sel.decode_range, sel.window_us) else { return Ok(None) };
    // Only where the demuxer reads every timestamp, decode and presentation, from an exact
    // sample index (MP4/MOV): elsewhere a seek can make timestamps up from byte positions (MP3,
    // raw streams), and a made-up timestamp could match the wrong packet, or decode timestamps
    // are guessed from the packets before (Matroska stores none), and a guess that starts
    // elsewhere makes different ones, which muxers refuse.
    let exact_index = input.format().name().split(',').any(|n| n == "mov");
    if a == 0 || index.derived_timestamps || index.audio || !exact_index {
        return Ok(None);
    }
    let target = pts_by_decode[a];
    if ffi::seek_stream_backward(input, index.stream, target).is_err() {
        return Ok(None);
    }
    let mut first_indexed = None;
    let mut others_ok: BTreeMap<usize, bool> = BTreeMap::new();
    let mut packet = ffmpeg::Packet::empty();
    for _ in 0..LOOK_AHEAD {
        if !super::probe::next_packet(input, &mut packet, src)? {
            break;
        }
        let ist = packet.stream();
        if !map.contains_key(&ist) {
            continue;
        }
        if ist == index.stream {
            if ffi::packet_discarded(&packet) {
                continue;
            }
            if first_indexed.is_none() {
                let Some(pts) = packet.pts() else { return Ok(None) };
                let mut at = pts_by_decode.iter().enumerate().filter(|&(_, &p)| p == pts).map(|(i, _)| i);
                match (at.next(), at.next()) {
                    (Some(d), None) if d <= a => first_indexed = Some(d),
                    _ => return Ok(None),
                }
            }
        } else if let std::collections::btree_map::Entry::Vacant(e) = others_ok.entry(ist) {
            let Some(ts) = packet.pts().or(packet.dts()) else { return Ok(None) };
            e.insert(to_us(ts, in_tb[&ist]) <= t0);
        }
        if first_indexed.is_some() && others_ok.len() + 1 == map.len() {
            break;
        }
    }
    let complete = others_ok.len() + 1 == map.len() && others_ok.values().all(|&ok| ok);
    Ok(first_indexed.filter(|_| complete).map(|d| (target, d)))
}

/// Packets read after a seek to see where every stream starts.
const LOOK_AHEAD: usize = 2000;

/// Hash every packet of every stream of a file, as [`copy`] hashes what it copies.
pub fn stream_hashes(path: &Path) -> Result<Vec<CopiedStream>> {
    super::init();
    let mut input =
        open_input(path).map_err(|e| error::input(format!("FFmpeg cannot open {}: {e}", path.display())))?;
    let mut tally = Tally::default();
    for s in input.streams() {
        tally.add(s.index(), s.index(), super::probe::kind_name(s.parameters().medium()), &s.parameters());
    }
    let mut packet = ffmpeg::Packet::empty();
    while super::probe::next_packet(&mut input, &mut packet, path)? {
        tally.count(packet.stream(), &packet);
    }
    Ok(tally.finish())
}

/// Where stream `a_stream` of `a` and stream `b_stream` of `b` part, packet by packet, their
/// access units compared as the packet hashes compare them: for the message of a copy that
/// does not read back the same. Reads both files again; used only on that failure.
pub fn first_difference(a: &Path, a_stream: usize, b: &Path, b_stream: usize) -> Result<String> {
    super::init();
    let mut a_in = open_input(a).map_err(|e| error::input(format!("FFmpeg cannot open {}: {e}", a.display())))?;
    let mut b_in = open_input(b).map_err(|e| error::input(format!("FFmpeg cannot open {}: {e}", b.display())))?;
    let framing = |input: &ffmpeg::format::context::Input, s: usize| {
        input.stream(s).map(|st| (Framing::of(&st.parameters()), st.time_base()))
    };
    let (Some((a_framing, a_tb)), Some((b_framing, _))) = (framing(&a_in, a_stream), framing(&b_in, b_stream)) else {
        return Ok("the stream is missing from one of the files".to_owned());
    };
    let (mut pa, mut pb) = (ffmpeg::Packet::empty(), ffmpeg::Packet::empty());
    let next = |input: &mut ffmpeg::format::context::Input, p: &mut ffmpeg::Packet, s: usize, path: &Path| {
        while super::probe::next_packet(input, p, path)? {
            if p.stream() == s {
                return Ok::<bool, anyhow::Error>(true);
            }
        }
        Ok(false)
    };
    let at = |p: &ffmpeg::Packet, tb: ffmpeg::Rational| match p.pts() {
        Some(ts) => format!(" (pts {})", super::time::format_us(to_us(ts, tb))),
        None => String::new(),
    };
    for n in 0u64.. {
        let (more_a, more_b) = (next(&mut a_in, &mut pa, a_stream, a)?, next(&mut b_in, &mut pb, b_stream, b)?);
        match (more_a, more_b) {
            (false, false) => break,
            (true, false) => {
                return Ok(format!(
                    "the copy ends after {n} packets; the source's packet {n}{} is missing",
                    at(&pa, a_tb)
                ));
            }
            (false, true) => return Ok(format!("the copy has a packet {n} the source does not have")),
            (true, true) => {}
        }
        let ua = a_framing.units(pa.data().unwrap_or_default());
        let ub = b_framing.units(pb.data().unwrap_or_default());
        if ua == ub {
            continue;
        }
        let what = |f: Framing| if f.is_nal() { "NAL units" } else { "units" };
        let sizes = |u: &[&[u8]]| u.iter().map(|x| x.len()).sum::<usize>();
        let detail = match ua.iter().zip(&ub).position(|(x, y)| x != y) {
            _ if ua.len() != ub.len() => format!(
                "the source's holds {} {} ({} bytes), the copy's {} ({} bytes)",
                ua.len(),
                what(a_framing),
                sizes(&ua),
                ub.len(),
                sizes(&ub)
            ),
            Some(u) => {
                let (x, y) = (ua[u], ub[u]);
                let byte = x.iter().zip(y).position(|(p, q)| p != q).unwrap_or(x.len().min(y.len()));
                format!(
                    "{} {u} differs from byte {byte} (source {} bytes, copy {} bytes)",
                    if a_framing.is_nal() { "NAL unit" } else { "the payload" },
                    x.len(),
                    y.len()
                )
            }
            None => "the payloads differ".to_owned(),
        };
        return Ok(format!("packet {n}{} differs: {detail}", at(&pa, a_tb)));
    }
    Ok("read again, every packet matches (the first reading differed: a failing disk or memory?)".to_owned())
}

fn shift(packet: &mut ffmpeg::Packet, shift_us: i64, tb: ffmpeg::Rational) {
    shift_by(packet, from_us(shift_us, tb));
}

fn shift_by(packet: &mut ffmpeg::Packet, d: i64) {
    if let Some(p) = packet.pts() {
        packet.set_pts(Some(p - d));
    }
    if let Some(p) = packet.dts() {
        packet.set_dts(Some(p - d));
    }
}

fn to_us(ts: i64, tb: ffmpeg::Rational) -> i64 {
    super::time::ticks_to_us(ts, tb.numerator(), tb.denominator())
}

fn from_us(us: i64, tb: ffmpeg::Rational) -> i64 {
    super::time::us_to_ticks(us, tb.numerator(), tb.denominator())
}
