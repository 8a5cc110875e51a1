//! Smart clips: exactly the frames asked for, like an exact clip, but lossless wherever that can
//! be had. Only the partial groups of pictures at the head (and the tail) of the range are
//! re-encoded; every whole group between them is copied packet for packet, and the audio is
//! copied too. The clip records which frames were copied and which re-encoded.
//!
//! How the pieces fit in one H.264 stream:
//! - A group is copied only when it is *closed*: it starts with a keyframe that is decoded
//!   exactly where it is shown (no frame before it is decoded after it, none after it before
//!   it) and is an IDR picture, so nothing in it refers to a frame outside it.
//! - The re-encoded runs are made by libx264 with their own parameter sets under IDs the
//!   source does not use (x264's `sps-id`, which numbers both its SPS and PPS), without
//!   B-frames and with `stitchable` headers. The output's `avcC` lists the source's parameter
//!   sets and the encoder's side by side, so every slice finds the sets it names, and each
//!   run starts with an IDR picture, where a decoder may switch sets.
//! - Decode timestamps of the re-encoded runs are their presentation timestamps less the
//!   source's reordering delay at the splice, so they stay strictly increasing into and out of
//!   the copied packets.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context as _, Result};
use ffmpeg::{Rational, codec, encoder, format, frame, media};
use ffmpeg_next as ffmpeg;
use serde::Serialize;

use super::exact::Quality;
use super::ffi;
use super::index::FrameIndex;
use super::nal::{self, annexb_units, pps_id, sps_id};
use super::probe::open_input;
use super::remux;
use crate::error;

/// A run of consecutive frames (presentation order, both ends included), all copied or all
/// re-encoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub first: usize,
    pub last: usize,
    pub how: How,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    Copied,
    ReEncoded,
}

/// Which frames of a range can be copied and which must be re-encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub segments: Vec<Segment>,
}

impl Plan {
    /// Plan frames `first..=last`: copy from the first closed keyframe in the range to the last
    /// closed boundary (a closed keyframe, or the end of the stream) after the range's last
    /// frame or inside it; re-encode what is left at either end. Without a whole group to copy,
    /// every frame is re-encoded.
    pub fn new(index: &FrameIndex, first: usize, last: usize) -> Plan {
        let clean = closed_keyframes(index);
        let a = (first..=last).find(|&k| clean[k]);
        let b = a.and_then(|a| ((a + 1)..=last + 1).rev().find(|&k| clean[k]));
        let mut segments = Vec::new();
        match (a, b) {
            (Some(a), Some(b)) => {
                if a > first {
                    segments.push(Segment { first, last: a - 1, how: How::ReEncoded });
                }
                segments.push(Segment { first: a, last: b - 1, how: How::Copied });
                if b <= last {
                    segments.push(Segment { first: b, last, how: How::ReEncoded });
                }
            }
            _ => segments.push(Segment { first, last, how: How::ReEncoded }),
        }
        Plan { segments }
    }

    pub fn copied(&self) -> Option<&Segment> {
        self.segments.iter().find(|s| s.how == How::Copied)
    }

    pub fn re_encodes(&self) -> bool {
        self.segments.iter().any(|s| s.how == How::ReEncoded)
    }

    /// Frames re-encoded, and frames copied.
    pub fn counts(&self) -> (usize, usize) {
        let count = |h: How| self.segments.iter().filter(|s| s.how == h).map(|s| s.last - s.first + 1).sum();
        (count(How::ReEncoded), count(How::Copied))
    }
}

/// For every position `k` (and the end, `len`): whether a copy may start or end there. A
/// keyframe is a closed boundary when the frames shown before it are exactly the frames decoded
/// before it.
fn closed_keyframes(index: &FrameIndex) -> Vec<bool> {
    let n = index.len();
    let mut clean = vec![false; n + 1];
    clean[n] = true;
    let mut max_before: Option<usize> = None;
    for (k, f) in index.frames.iter().enumerate() {
        clean[k] = f.key && f.idr && f.decode_index == k && max_before.is_none_or(|m| m < k);
        max_before = Some(max_before.map_or(f.decode_index, |m| m.max(f.decode_index)));
    }
    clean
}

/// What a smart clip holds.
#[derive(Clone, Debug, Serialize)]
pub struct SmartReport {
    /// How the re-encoded runs were made (`None` when every frame was copied).
    pub encoder: Option<String>,
    /// The H.264 parameter-set IDs of the re-encoded runs, in order (the source keeps its own).
    pub parameter_set_ids: Vec<u32>,
    pub video_frames: u64,
    /// SHA-256 over the copied video packets, in order, as a copy clip records its streams'
    /// (H.264: each NAL unit with a 4-byte length before it, whatever the framing).
    pub copied_packets_sha256: String,
    /// Audio packets copied, over all audio streams.
    pub audio_packets: u64,
    /// The source's audio streams copied (their input indices).
    pub audio_streams: Vec<usize>,
}

/// The parts of the source's `avcC` a smart clip needs.
struct AvcC {
    bytes: Vec<u8>,
    length_size: usize,
    sps: Vec<Vec<u8>>,
    pps: Vec<Vec<u8>>,
    /// Bytes after the PPS list (the High-profile extension), kept as they are.
    rest: Vec<u8>,
}

impl AvcC {
    fn parse(bytes: &[u8]) -> Option<AvcC> {
        if bytes.len() < 7 || bytes[0] != 1 {
            return None;
        }
        let length_size = (bytes[4] & 3) as usize + 1;
        let mut at = 5;
        let mut list = |count_mask: u8| -> Option<Vec<Vec<u8>>> {
            let count = (bytes.get(at)? & count_mask) as usize;
            at += 1;
            let mut out = Vec::new();
            for _ in 0..count {
                let len = u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]) as usize;
                out.push(bytes.get(at + 2..at + 2 + len)?.to_vec());
                at += 2 + len;
            }
            Some(out)
        };
        let sps = list(0x1f)?;
        let pps = list(0xff)?;
        Some(AvcC { bytes: bytes.to_vec(), length_size, sps, pps, rest: bytes[at..].to_vec() })
    }

    /// The record with more parameter sets added after the source's own; `None` when the
    /// record cannot hold them (31 SPS, 255 PPS, 65,535 bytes each).
    fn with(&self, sps: &[Vec<u8>], pps: &[Vec<u8>]) -> Option<Vec<u8>> {
        let mut out = self.bytes[..5].to_vec();
        let all_sps: Vec<&Vec<u8>> = self.sps.iter().chain(sps).collect();
        let all_pps: Vec<&Vec<u8>> = self.pps.iter().chain(pps).collect();
        if all_sps.len() > 31 || all_pps.len() > 255 || all_sps.iter().chain(&all_pps).any(|s| s.len() > 0xffff) {
            return None;
        }
        out.push(0xe0 | all_sps.len() as u8);
        for s in all_sps {
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s);
        }
        out.push(all_pps.len() as u8);
        for p in all_pps {
            out.extend_from_slice(&(p.len() as u16).to_be_bytes());
            out.extend_from_slice(p);
        }
        out.extend_from_slice(&self.rest);
        Some(out)
    }
}

/// For the fuzz target: an `avcC` that parses must take one more SPS and PPS and read back as
/// the same lists with them after.
#[doc(hidden)]
pub fn check_avcc(data: &[u8]) {
    let Some(avcc) = AvcC::parse(data) else { return };
    let (sps, pps) = (vec![0x67, 0x42], vec![0x68, 0xce]);
    let Some(merged) = avcc.with(std::slice::from_ref(&sps), std::slice::from_ref(&pps)) else { return };
    let again = AvcC::parse(&merged).expect("a merged avcC parses");
    assert_eq!(again.sps[..avcc.sps.len()], avcc.sps[..]);
    assert_eq!(again.sps.last(), Some(&sps));
    assert_eq!(again.pps.last(), Some(&pps));
    assert_eq!(again.length_size, avcc.length_size);
}

/// How the indexed H.264 stream frames its pictures and parameter sets, checked to be one smart
/// mode can splice into.
struct Framing {
    codec_id: codec::Id,
    /// The source's avcC (MP4, MKV), when it has one.
    avcc: Option<AvcC>,
    /// Annex B (MPEG-TS): every IDR picture carries its parameter sets in the stream, and so do
    /// the re-encoded runs; no avcC to merge.
    annexb: bool,
    /// The NAL length field size of length-prefixed packets (`None`: Annex B).
    nal_lengths: Option<usize>,
    length_size: usize,
    /// The packets' framing, for the copied packets' hash.
    packets: super::framing::Framing,
}

impl Framing {
    fn of(
        src: &Path,
        index: &FrameIndex,
        params: &codec::Parameters,
        muxer: &str,
        re_encodes: bool,
    ) -> Result<Framing> {
        if index.audio || index.derived_timestamps {
            return Err(error::input(format!(
                "{}: smart mode needs a video stream with timestamps; rewrap a raw stream first (custody rewrap), \
                 or use --mode exact",
                src.display()
            )));
        }
        let extradata = ffi::extradata(params);
        let avcc = AvcC::parse(&extradata);
        let annexb = avcc.is_none() && muxer == "mpegts";
        let codec_id = params.id();
        if re_encodes && (codec_id != codec::Id::H264 || (avcc.is_none() && !annexb)) {
            return Err(error::input(format!(
                "{}: smart mode re-encodes the partial groups of pictures only for H.264 in MP4 or MPEG-TS \
                 (this stream is {}); use --mode exact for exactly these frames, or --mode copy",
                src.display(),
                codec_id.name()
            )));
        }
        let nal_lengths = nal::length_size(codec_id, &extradata);
        let packets = super::framing::Framing::from_parts(codec_id, &extradata);
        Ok(Framing { codec_id, avcc, annexb, nal_lengths, length_size: nal_lengths.unwrap_or(4), packets })
    }

    /// The IDs the source's parameter sets use: from its avcC, or from the sets the demuxer
    /// found in the stream (0 when it found none).
    fn used_ids(&self, params: &codec::Parameters) -> Vec<u32> {
        let (sps, pps): (Vec<Vec<u8>>, Vec<Vec<u8>>) = match &self.avcc {
            Some(avcc) => (avcc.sps.clone(), avcc.pps.clone()),
            None => {
                let extradata = ffi::extradata(params);
                let units = annexb_units(&extradata);
                let of = |t| nal::h264_units_of(&units, t).into_iter().map(<[u8]>::to_vec).collect();
                (of(7), of(8))
            }
        };
        let mut used: Vec<u32> = sps.iter().filter_map(|s| sps_id(s)).collect();
        used.extend(pps.iter().filter_map(|p| pps_id(p)));
        if used.is_empty() {
            used.push(0);
        }
        used
    }
}

/// A re-encoded run in the making: its decoder, its encoder and the packets made so far.
struct Run {
    first: usize,
    last: usize,
    /// The ID of its SPS and PPS.
    id: u32,
    decoder: codec::decoder::Video,
    encoder: encoder::Video,
    /// The encoder and its settings, as the report names them.
    encoder_name: String,
    /// Its SPS and PPS, for the clip's avcC (empty in Annex B, where they travel in the stream).
    sps: Vec<u8>,
    pps: Vec<u8>,
    frames: u64,
    packets: Vec<ffmpeg::Packet>,
    drained: bool,
}

/// Write a smart clip of frames as `plan` says into `dst` with the `muxer` format (MP4 whenever
/// anything is re-encoded): video from the indexed stream, every audio stream copied over the
/// same span.
pub fn smart_clip(
    src: &Path,
    dst: &Path,
    muxer: &str,
    index: &FrameIndex,
    plan: &Plan,
    q: Quality,
) -> Result<SmartReport> {
    super::init();
    let first = plan.segments[0].first;
    let last = plan.segments[plan.segments.len() - 1].last;
    let mut input = open_input(src).map_err(|e| error::input(format!("FFmpeg cannot open {}: {e}", src.display())))?;
    let ist = input.stream(index.stream).expect("indexed stream");
    let vtb = ist.time_base();
    let params = ist.parameters();
    let (re_encoded, _) = plan.counts();
    let framing = Framing::of(src, index, &params, muxer, re_encoded > 0)?;
    let Framing { annexb, length_size, .. } = framing;

    let mut output = format::output_as(&dst, muxer)
        .map_err(|e| error::environment(format!("cannot create the output in the store's staging directory: {e}")))?;
    let vout = remux::add_copied_stream(&mut output, &ist)?;
    let mut audio_map: HashMap<usize, (usize, Rational)> = HashMap::new();
    for a in input.streams() {
        if a.parameters().medium() != media::Type::Audio
            || a.disposition().contains(format::stream::Disposition::ATTACHED_PIC)
        {
            continue;
        }
        audio_map.insert(a.index(), (remux::add_copied_stream(&mut output, &a)?, a.time_base()));
    }

    // One encoder per re-encoded run, each with parameter sets under IDs of its own, which the
    // clip's avcC lists beside the source's.
    let mut runs = if re_encoded > 0 { open_runs(src, plan, &framing, &ist, q)? } else { Vec::new() };
    let encoder_name = runs.first().map(|r| r.encoder_name.clone());
    let parameter_set_ids: Vec<u32> = runs.iter().map(|r| r.id).collect();
    if let Some(avcc) = framing.avcc.as_ref().filter(|_| !runs.is_empty()) {
        let new_sps: Vec<Vec<u8>> = runs.iter().map(|r| r.sps.clone()).collect();
        let new_pps: Vec<Vec<u8>> = runs.iter().map(|r| r.pps.clone()).collect();
        let merged = avcc.with(&new_sps, &new_pps).ok_or_else(|| {
            error::input(format!(
                "{}: the stream's avcC cannot hold more parameter sets; use --mode exact",
                src.display()
            ))
        })?;
        let mut p = output.stream_mut(vout).expect("video stream").parameters();
        ffi::set_extradata(&mut p, &merged)?;
    }

    let mut header = ffmpeg::Dictionary::new();
    remux::carry_tags(&input, &mut output, &mut header, muxer);
    header.set("fflags", "+bitexact");
    output.write_header_with(header).map_err(|e| {
        error::input(format!(
            "{} cannot hold these streams as they are ({e}); use --mode exact",
            remux::container_name(muxer)
        ))
    })?;
    let vout_tb = output.stream(vout).expect("video stream").time_base();
    let audio_out_tb: HashMap<usize, Rational> =
        audio_map.values().map(|&(o, _)| (o, output.stream(o).expect("audio stream").time_base())).collect();

    // Where things are, in the source's ticks and in microseconds.
    let by_pts: HashMap<i64, usize> = index.frames.iter().enumerate().map(|(n, f)| (f.pts, n)).collect();
    let origin = index.frames[first].pts;
    let t0 = index.to_us(origin);
    let t1 = index.to_us(index.frames[last].pts) + index.frame_len_us(last);
    // A frame's duration by its timestamp in the clip, so the muxer knows how long the last
    // frame lasts.
    let duration_of =
        |pts: i64| by_pts.get(&(pts + origin)).map_or(index.typical_duration(), |&n| index.frame_len_ticks(n));
    let copy = plan.copied().map(|s| (s.first, s.last + 1));
    let key0 = index.keyframe_before(first);
    index.seek_before(&mut input, first);

    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    let mut copied_frames = 0u64;
    // Source reordering delay at the splice (pts − dts of the first copied packet), and the
    // last decode timestamp written, relative to the clip's start.
    let mut delay: Option<i64> = None;
    let mut last_dts: Option<i64> = None;
    let mut audio_packets = 0u64;
    let mut audio_last: HashMap<usize, i64> = HashMap::new();
    let mut video_done = false;
    let mut packet = ffmpeg::Packet::empty();
    let mut decoded = frame::Video::empty();
    loop {
        let more = super::probe::next_packet(&mut input, &mut packet, src)?;
        if !more {
            break;
        }
        let s = packet.stream();
        if let Some(&(ost, tb)) = audio_map.get(&s) {
            let Some(ts) = packet.pts().or(packet.dts()) else { continue };
            let at = super::time::ticks_to_us(ts, tb.numerator(), tb.denominator());
            audio_last.insert(s, at);
            if at >= t0 && at < t1 {
                let shift = super::time::us_to_ticks(t0, tb.numerator(), tb.denominator());
                packet.set_pts(packet.pts().map(|p| p - shift));
                packet.set_dts(packet.dts().map(|d| d - shift));
                remux::write_copied(&mut packet, tb, (ost, audio_out_tb[&ost]), &mut output)?;
                audio_packets += 1;
            }
        } else if s == index.stream && !video_done {
            if ffi::packet_discarded(&packet) {
                continue;
            }
            let Some(&n) = packet.pts().and_then(|p| by_pts.get(&p)) else { continue };
            let d = index.frames[n].decode_index;
            if d < index.frames[key0].decode_index {
                continue;
            }
            match copy {
                Some((a, b)) if d >= a && d < b => {
                    // The first copied packet: the head run is complete (a closed boundary),
                    // and its packets go first, timed against this one.
                    if delay.is_none() {
                        let (pts, dts) = (packet.pts().unwrap_or(0), packet.dts().unwrap_or(0));
                        delay = Some((pts - dts).max(0));
                        let head = runs.iter().any(|r| r.last + 1 == a);
                        check_splice(src, &framing, a, d, head, packet.data().unwrap_or_default())?;
                        if let Some(run) = runs.iter_mut().find(|r| r.last + 1 == a) {
                            finish_run(run, index, origin, &by_pts)?;
                            let timing = Timing { tb: vtb, out_tb: vout_tb, delay, length_size, annexb };
                            write_run(run, &mut output, vout, &timing, &mut last_dts, &|p| duration_of(p))?;
                        }
                    }
                    if let Some(data) = packet.data() {
                        framing.packets.hash_into(&mut hasher, data);
                    }
                    copied_frames += 1;
                    let (pts, dts) = (packet.pts().unwrap_or(0) - origin, packet.dts().unwrap_or(0) - origin);
                    packet.set_pts(Some(pts));
                    packet.set_dts(Some(dts));
                    last_dts = Some(dts);
                    remux::write_copied(&mut packet, vtb, (vout, vout_tb), &mut output)?;
                    if d + 1 == b && !runs.iter().any(|r| r.first == b) {
                        video_done = true;
                    }
                }
                _ => {
                    // A packet of a re-encoded run: the head's before the copy, the tail's after.
                    let run = match copy {
                        Some((a, _)) if d < a => runs.iter_mut().find(|r| r.last + 1 == a),
                        Some((_, b)) => runs.iter_mut().find(|r| r.first == b),
                        None => runs.first_mut(),
                    };
                    let Some(run) = run else { continue };
                    if run.drained {
                        continue;
                    }
                    let _ = run.decoder.send_packet(&packet);
                    while run.decoder.receive_frame(&mut decoded).is_ok() {
                        encode_frame(run, &mut decoded, index, origin, &by_pts)?;
                    }
                    if run.frames == (run.last - run.first + 1) as u64 && run.last == last {
                        video_done = true;
                    }
                }
            }
        }
        if video_done && audio_map.keys().all(|s| audio_last.get(s).is_some_and(|&t| t >= t1 + SETTLED_US)) {
            break;
        }
    }
    // Whatever runs are not written yet (the tail, or a clip with nothing to copy).
    for run in runs.iter_mut().filter(|r| !r.drained) {
        finish_run(run, index, origin, &by_pts)?;
        let timing = Timing { tb: vtb, out_tb: vout_tb, delay, length_size, annexb };
        write_run(run, &mut output, vout, &timing, &mut last_dts, &|p| duration_of(p))?;
    }
    output.write_trailer().map_err(|e| error::environment(format!("cannot finish the output: {e}")))?;

    let copied_expected = plan.copied().map_or(0, |s| (s.last - s.first + 1) as u64);
    let encoded: u64 = runs.iter().map(|r| r.frames).sum();
    if copied_frames != copied_expected || encoded != re_encoded as u64 {
        return Err(error::input(format!(
            "{}: made {} of the {} frames asked ({copied_frames} copied, {encoded} re-encoded); the stream is \
             damaged around them. Nothing was recorded",
            src.display(),
            copied_frames + encoded,
            last - first + 1
        )));
    }
    Ok(SmartReport {
        encoder: encoder_name,
        parameter_set_ids,
        video_frames: copied_frames + encoded,
        copied_packets_sha256: hex::encode(hasher.finish().as_ref()),
        audio_packets,
        audio_streams: {
            let mut streams: Vec<usize> = audio_map.keys().copied().collect();
            streams.sort_unstable();
            streams
        },
    })
}

/// Open a decoder and an encoder for every re-encoded segment of `plan`, each encoder with
/// parameter sets under an ID the source does not use.
fn open_runs(
    src: &Path,
    plan: &Plan,
    framing: &Framing,
    ist: &format::stream::Stream<'_>,
    q: Quality,
) -> Result<Vec<Run>> {
    let params = ist.parameters();
    let mut used = framing.used_ids(&params);
    let mut runs = Vec::new();
    let mut next_id = 0u32;
    for seg in plan.segments.iter().filter(|s| s.how == How::ReEncoded) {
        while used.contains(&next_id) {
            next_id += 1;
        }
        if next_id > 31 {
            return Err(error::input(format!(
                "{}: the stream uses every H.264 parameter-set ID; use --mode exact",
                src.display()
            )));
        }
        let decoder = codec::context::Context::from_parameters(params.clone())?.decoder().video()?;
        if !matches!(decoder.format(), format::Pixel::YUV420P | format::Pixel::YUVJ420P) {
            return Err(error::input(format!(
                "{}: smart mode re-encodes only 8-bit 4:2:0 H.264 (this stream is {:?}); use --mode exact",
                src.display(),
                decoder.format()
            )));
        }
        let (encoder, encoder_name) =
            x264(&decoder, &params, ist.avg_frame_rate(), ist.time_base(), q, next_id, !framing.annexb)?;
        let (sps, pps) = if framing.annexb {
            (Vec::new(), Vec::new())
        } else {
            parameter_sets(&ffi::encoder_extradata(&encoder), next_id)?
        };
        used.push(next_id);
        runs.push(Run {
            first: seg.first,
            last: seg.last,
            id: next_id,
            decoder,
            encoder,
            encoder_name,
            sps,
            pps,
            frames: 0,
            packets: Vec::new(),
            drained: false,
        });
    }
    Ok(runs)
}

/// The first copied packet (decode position `d`, frame `a` of the plan) must be an IDR picture
/// at the plan's splice, and in Annex B after a re-encoded `head` must carry its parameter sets.
fn check_splice(src: &Path, framing: &Framing, a: usize, d: usize, head: bool, data: &[u8]) -> Result<()> {
    if d != a || !nal::is_idr(framing.codec_id, framing.nal_lengths, data) {
        return Err(error::input(format!(
            "{}: frame {a} is a keyframe but not an IDR picture, so the frames after it may refer to frames \
             before it; smart mode cannot copy from it: use --mode exact",
            src.display()
        )));
    }
    if framing.annexb && head {
        let units = annexb_units(data);
        if nal::h264_units_of(&units, 7).is_empty() || nal::h264_units_of(&units, 8).is_empty() {
            return Err(error::input(format!(
                "{}: the IDR picture at frame {a} does not carry its parameter sets in the stream, so a decoder \
                 could not switch back to them after the re-encoded frames; use --mode exact",
                src.display()
            )));
        }
    }
    Ok(())
}

/// How far past the range the audio must be read before every audio stream is done.
const SETTLED_US: i64 = 2_000_000;

/// libx264 set up to splice into the source: same size, pixel format, aspect ratio and profile,
/// no B-frames, stitchable headers numbered `id`.
fn x264(
    decoder: &codec::decoder::Video,
    params: &codec::Parameters,
    rate: Rational,
    tb: Rational,
    q: Quality,
    id: u32,
    global_header: bool,
) -> Result<(encoder::Video, String)> {
    let codec =
        encoder::find_by_name("libx264").ok_or_else(|| error::environment("this FFmpeg has no libx264 encoder"))?;
    let mut enc = codec::Context::new_with_codec(codec).encoder().video()?;
    enc.set_width(decoder.width());
    enc.set_height(decoder.height());
    enc.set_format(decoder.format());
    enc.set_time_base(tb);
    enc.set_aspect_ratio(decoder.aspect_ratio());
    enc.set_colorspace(decoder.color_space());
    enc.set_color_range(decoder.color_range());
    if rate.numerator() > 0 {
        enc.set_frame_rate(Some(rate));
    }
    if global_header {
        enc.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    let mut opts = ffmpeg::Dictionary::new();
    opts.set("preset", "medium");
    opts.set("threads", "auto");
    opts.set("bf", "0");
    let profile = match ffi::extra_params(params).profile.as_deref() {
        Some("Baseline" | "Constrained Baseline") => Some("baseline"),
        Some("Main") => Some("main"),
        Some("High") => Some("high"),
        _ => None,
    };
    if q.lossless {
        opts.set("qp", "0");
    } else {
        opts.set("crf", &q.crf.to_string());
        if let Some(p) = profile {
            opts.set("profile", p);
        }
    }
    opts.set("x264-params", &format!("sps-id={id}:stitchable=1"));
    let encoder = enc.open_as_with(codec, opts).context("opening libx264")?;
    let name = format!(
        "libx264 {}, no B-frames",
        if q.lossless { "qp 0 (lossless)".to_owned() } else { format!("crf {}", q.crf) }
    );
    Ok((encoder, name))
}

/// The one SPS and PPS in `data` (Annex B), checked to bear `id`.
fn parameter_sets(data: &[u8], id: u32) -> Result<(Vec<u8>, Vec<u8>)> {
    let units = annexb_units(data);
    let (sps, pps) = (nal::h264_units_of(&units, 7), nal::h264_units_of(&units, 8));
    if sps.len() != 1 || pps.len() != 1 || sps_id(sps[0]) != Some(id) || pps_id(pps[0]) != Some(id) {
        return Err(error::environment(
            "libx264 did not number its parameter sets as asked (sps-id); smart mode cannot splice its \
             output into the stream: use --mode exact",
        ));
    }
    Ok((sps[0].to_vec(), pps[0].to_vec()))
}

/// Encode a decoded frame when it belongs to the run.
fn encode_frame(
    run: &mut Run,
    decoded: &mut frame::Video,
    index: &FrameIndex,
    origin: i64,
    by_pts: &HashMap<i64, usize>,
) -> Result<()> {
    let Some(n) = decoded.timestamp().or(decoded.pts()).and_then(|p| by_pts.get(&p).copied()) else { return Ok(()) };
    if n < run.first || n > run.last {
        return Ok(());
    }
    decoded.set_pts(Some(index.frames[n].pts - origin));
    decoded.set_kind(ffmpeg::picture::Type::None);
    run.encoder.send_frame(decoded)?;
    run.frames += 1;
    collect(run)
}

fn collect(run: &mut Run) -> Result<()> {
    let mut p = ffmpeg::Packet::empty();
    while run.encoder.receive_packet(&mut p).is_ok() {
        run.packets.push(std::mem::replace(&mut p, ffmpeg::Packet::empty()));
    }
    Ok(())
}

/// Drain a run's decoder into its encoder, then the encoder.
fn finish_run(run: &mut Run, index: &FrameIndex, origin: i64, by_pts: &HashMap<i64, usize>) -> Result<()> {
    let mut decoded = frame::Video::empty();
    let _ = run.decoder.send_eof();
    while run.decoder.receive_frame(&mut decoded).is_ok() {
        encode_frame(run, &mut decoded, index, origin, by_pts)?;
    }
    run.encoder.send_eof()?;
    collect(run)
}

/// How a run's packets are timed and framed in the output.
struct Timing {
    tb: Rational,
    out_tb: Rational,
    /// The source's reordering delay at the splice, in ticks (`None`: nothing copied).
    delay: Option<i64>,
    length_size: usize,
    /// Write the encoder's Annex B packets as they are, parameter sets included (MPEG-TS).
    annexb: bool,
}

/// Write a run's packets: their NAL units length-prefixed as the source's, without parameter
/// sets (they are in the `avcC`), decode timestamps set back by the source's reordering delay.
fn write_run(
    run: &mut Run,
    output: &mut format::context::Output,
    stream: usize,
    t: &Timing,
    last_dts: &mut Option<i64>,
    duration_of: &dyn Fn(i64) -> i64,
) -> Result<()> {
    run.drained = true;
    let delay = t.delay.unwrap_or(0);
    if t.annexb {
        // The run's first packet carries its parameter sets: they must bear the run's ID.
        let first = run.packets.first().and_then(|p| p.data()).unwrap_or_default();
        parameter_sets(first, run.id)?;
    }
    for p in std::mem::take(&mut run.packets) {
        let mut data = Vec::with_capacity(p.size() + 16);
        if t.annexb {
            data.extend_from_slice(p.data().unwrap_or_default());
        }
        for unit in annexb_units(p.data().unwrap_or_default()).into_iter().filter(|_| !t.annexb) {
            if nal::h264_type(unit).is_none_or(|t| matches!(t, 7..=9)) {
                continue;
            }
            data.extend_from_slice(&(unit.len() as u64).to_be_bytes()[8 - t.length_size..]);
            data.extend_from_slice(unit);
        }
        let pts = p.pts().unwrap_or(0);
        let dts = (pts - delay).max(last_dts.map_or(i64::MIN, |d| d + 1));
        if dts > pts {
            return Err(error::environment(
                "the re-encoded frames cannot be timed between the copied ones; use --mode exact",
            ));
        }
        *last_dts = Some(dts);
        let mut out = ffmpeg::Packet::copy(&data);
        out.set_pts(Some(pts));
        out.set_dts(Some(dts));
        out.set_duration(duration_of(pts));
        if p.is_key() {
            out.set_flags(ffmpeg::packet::Flags::KEY);
        }
        out.rescale_ts(t.tb, t.out_tb);
        out.set_stream(stream);
        out.write_interleaved(output)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::index::FrameEntry;

    /// A stream of `n` frames, keyframes every `gop`, with `b` B-frames between references
    /// (decode order I P B B P B B …), closed groups.
    fn index(n: usize, gop: usize, b: usize) -> FrameIndex {
        let mut decode = vec![0; n];
        let mut d = 0;
        let mut g = 0;
        while g < n {
            let end = (g + gop).min(n);
            decode[g] = d;
            d += 1;
            let mut r = g;
            while r + 1 < end {
                let next = (r + 1 + b).min(end - 1);
                decode[next] = d;
                d += 1;
                for slot in decode.iter_mut().take(next).skip(r + 1) {
                    *slot = d;
                    d += 1;
                }
                r = next;
            }
            g = end;
        }
        FrameIndex {
            stream: 0,
            audio: false,
            time_base: (1, 25),
            frames: (0..n)
                .map(|i| FrameEntry {
                    pts: i as i64,
                    duration: 1,
                    key: i % gop == 0,
                    idr: i % gop == 0,
                    decode_index: decode[i],
                    pos: -1,
                })
                .collect(),
            derived_timestamps: false,
        }
    }

    fn seg(first: usize, last: usize, how: How) -> Segment {
        Segment { first, last, how }
    }

    #[test]
    fn head_and_tail_are_re_encoded_and_whole_groups_copied() {
        let ix = index(75, 25, 2);
        assert_eq!(
            Plan::new(&ix, 10, 60).segments,
            [seg(10, 24, How::ReEncoded), seg(25, 49, How::Copied), seg(50, 60, How::ReEncoded)]
        );
        // Starting on a keyframe and ending at the end of a group: all copied.
        assert_eq!(Plan::new(&ix, 25, 49).segments, [seg(25, 49, How::Copied)]);
        // Ending at the end of the stream needs no tail.
        assert_eq!(Plan::new(&ix, 30, 74).segments, [seg(30, 49, How::ReEncoded), seg(50, 74, How::Copied)]);
        // Inside one group: nothing to copy.
        assert_eq!(Plan::new(&ix, 3, 20).segments, [seg(3, 20, How::ReEncoded)]);
        assert_eq!(Plan::new(&ix, 10, 60).counts(), (26, 25));
    }

    #[test]
    fn an_open_group_is_not_a_boundary() {
        // Frame 25 is a keyframe, but frame 24 is decoded after it (an open group): the copy
        // cannot start or end there.
        let mut ix = index(75, 25, 0);
        let (d24, d25) = (ix.frames[24].decode_index, ix.frames[25].decode_index);
        ix.frames[24].decode_index = d25;
        ix.frames[25].decode_index = d24;
        assert_eq!(Plan::new(&ix, 10, 74).segments, [seg(10, 49, How::ReEncoded), seg(50, 74, How::Copied)]);
    }

    #[test]
    fn avcc_lists_take_the_encoder_parameter_sets_after_the_source_ones() {
        let avcc = [1, 100, 0, 31, 0xff, 0xe1, 0, 2, 0x67, 0x80, 1, 0, 2, 0x68, 0x80, 0xfd, 0xf8, 0xf8, 0];
        let parsed = AvcC::parse(&avcc).unwrap();
        assert_eq!((parsed.length_size, parsed.sps.len(), parsed.pps.len()), (4, 1, 1));
        assert_eq!(parsed.rest, [0xfd, 0xf8, 0xf8, 0]);
        let merged = parsed.with(&[vec![0x67, 0x40]], &[vec![0x68, 0x40]]).unwrap();
        let again = AvcC::parse(&merged).unwrap();
        assert_eq!(again.sps, [vec![0x67, 0x80], vec![0x67, 0x40]]);
        assert_eq!(again.pps, [vec![0x68, 0x80], vec![0x68, 0x40]]);
        assert_eq!(again.rest, parsed.rest);
    }
}
