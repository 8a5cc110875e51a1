//! Media facts of an evidence file, as FFmpeg's libraries see them: container, streams,
//! duration, tags; and, on request, a full decode that counts and locates decode errors.
//!
//! Facts are recorded in the ledger, so they contain no floating-point numbers: times are
//! integers in microseconds or in a stated time base, rates are `num/den` strings.

use std::path::Path;

use ffmpeg_next as ffmpeg;
use serde::{Deserialize, Serialize};

use super::ffi;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaFacts {
    /// False when FFmpeg cannot open the file; the file is evidence all the same.
    pub decodable: bool,
    /// FFmpeg's reason when it cannot open the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_long: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<i64>,
    /// True when the container states its duration as unknown (an ISO duration of all ones, which
    /// FFmpeg reads as a number) and `duration_us` is the span of its packets instead.
    #[serde(default, skip_serializing_if = "is_false")]
    pub duration_measured: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_us: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bit_rate: Option<i64>,
    /// Container tags as `[key, value]` pairs, in file order (keys may be any text).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<[String; 2]>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<StreamFacts>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub chapters: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deep: Option<DeepCheck>,
}

impl MediaFacts {
    /// The value of container tag `key` (the first, when there are several).
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|[k, _]| k == key).map(|[_, v]| v.as_str())
    }

    /// The containers a copy of this file may go into, best first ([`super::remux::containers`]).
    pub fn copy_containers(&self, has_video: bool) -> Vec<(&'static str, &'static str)> {
        super::remux::containers(self.container.as_deref().unwrap_or_default(), self.tag("major_brand"), has_video)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamFacts {
    pub index: u64,
    /// video, audio, subtitle, data, attachment or unknown.
    pub kind: String,
    pub codec: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    pub time_base: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_pts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_pts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<i64>,
    /// Sample aspect ratio, `num:den`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_frame_rate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_order: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_layout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bit_rate: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<[String; 2]>,
    /// The container states no timescale for the stream (an ISO `mdhd` timescale of 0): FFmpeg
    /// counts its ticks as seconds, so its timestamps, rates and duration are not times.
    #[serde(default, skip_serializing_if = "is_false")]
    pub timescale_missing: bool,
    /// The container lists samples of the stream that the file does not hold whole: the file
    /// was cut short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncated>,
}

/// How much of a stream a truncated file holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Truncated {
    /// Samples (video frames, audio frames) the container lists.
    pub listed: u64,
    /// Of those, the samples whose bytes lie wholly within the file.
    pub in_file: u64,
}

/// Result of decoding every packet of every audio and video stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeepCheck {
    pub packets: u64,
    pub frames: u64,
    pub errors: u64,
    /// The first errors (up to 100): stream, position in microseconds when known, FFmpeg's message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_positions: Vec<DecodeErrorAt>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DecodeErrorAt {
    pub stream: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_us: Option<i64>,
    pub message: String,
}

const MAX_ERROR_POSITIONS: usize = 100;

/// Open `path` with FFmpeg and describe it. Never fails: a file FFmpeg cannot open is
/// described as not decodable, with FFmpeg's reason.
pub fn probe(path: &Path, deep: bool) -> MediaFacts {
    super::init();
    let mut input = match open_input(path) {
        Ok(i) => i,
        Err(e) => return MediaFacts { decodable: false, reason: Some(e.to_string()), ..MediaFacts::default() },
    };
    let format = input.format();
    let duration = input.duration();
    let start = ffi::start_time(&input);
    let mut facts = MediaFacts {
        decodable: true,
        container: Some(format.name().to_owned()),
        container_long: Some(format.description().to_owned()),
        duration_us: (duration > 0).then_some(duration),
        start_us: start,
        bit_rate: (input.bit_rate() > 0).then(|| input.bit_rate()),
        tags: super::ffi::tags(&input.metadata()).into_iter().map(|(k, v)| [k, v]).collect(),
        chapters: input.chapters().count() as u64,
        ..MediaFacts::default()
    };
    // What the ISO header states that FFmpeg's reading smooths over (MP4, MOV, 3GP only).
    let movie = format.name().starts_with("mov,").then(|| super::iso::Movie::read(path)).flatten();
    let file_len = crate::outboard::size_of(path).ok();
    for stream in input.streams() {
        let mut s = stream_facts(&stream);
        if let Some(movie) = &movie {
            s.timescale_missing = movie.timescale_missing(stream.index());
            if movie.tracks.get(stream.index()).copied().flatten().is_some_and(|t| t.duration_unknown) {
                s.duration_pts = None;
            }
            s.truncated = file_len.and_then(|len| truncation(&stream, len));
        }
        facts.streams.push(s);
    }
    if facts.streams.is_empty() {
        facts.decodable = false;
        facts.reason = Some("FFmpeg found no streams in the file".to_owned());
    }
    if movie.as_ref().is_some_and(|m| m.duration_unknown()) {
        facts.duration_us = packet_span_us(path);
        facts.duration_measured = true;
    }
    // A raw elementary stream states neither its length nor its frame count: count its frames
    // (one demux pass, no decoding) and time them as the frame index does, by their durations.
    let raw = RAW_VIDEO.contains(&format.name().split(',').next().unwrap_or_default());
    if raw && facts.duration_us.is_none() && facts.streams.len() == 1 {
        if let Some((frames, duration_us)) = count_raw_frames(&mut input, path) {
            facts.streams[0].frames = Some(frames);
            facts.duration_us = Some(duration_us);
        }
        let _ = ffi::seek_byte(&mut input, 0);
    }
    if deep {
        facts.deep = Some(deep_check(&mut input));
    }
    facts
}

/// Demuxers of raw elementary video streams, which carry no timestamps or length.
const RAW_VIDEO: [&str; 6] = ["h264", "hevc", "mjpeg", "mpegvideo", "m4v", "cavsvideo"];

/// The frames of a raw stream's only stream and their total duration in microseconds (the sum
/// of the packet durations the parser gives, as the frame index times them).
fn count_raw_frames(input: &mut ffmpeg::format::context::Input, path: &Path) -> Option<(i64, i64)> {
    let tb = input.stream(0)?.time_base();
    let (mut frames, mut ticks, mut typical) = (0i64, 0i64, 0i64);
    let mut packet = ffmpeg::Packet::empty();
    while next_packet(input, &mut packet, path).ok()? {
        frames += 1;
        let d = packet.duration();
        if d > 0 {
            typical = d;
        }
        ticks += if d > 0 { d } else { typical };
    }
    (frames > 0).then(|| (frames, super::time::ticks_to_us(ticks, tb.numerator(), tb.denominator())))
}

/// Open a local file for demuxing. Only the `file` protocol is allowed, so a crafted file
/// (a playlist, a concat list) cannot make FFmpeg open network resources.
pub fn open_input(path: &Path) -> Result<ffmpeg::format::context::Input, ffmpeg::Error> {
    open_input_leaving_out(path, None)
}

/// [`open_input`], reading the byte ranges `left_out` will hold as zeros when `path` is a
/// registered object ([`crate::outboard::Reader::leaving_out`]).
pub fn open_input_leaving_out(
    path: &Path,
    left_out: Option<crate::outboard::LeftOut>,
) -> Result<ffmpeg::format::context::Input, ffmpeg::Error> {
    super::init();
    super::log::reading(path);
    let mut opts = ffmpeg::Dictionary::new();
    opts.set("protocol_whitelist", "file");
    // Evidence is one file: demuxers that read *other* files named inside it (playlists,
    // concat lists, manifests, numbered image sequences) are not allowed, so a hostile file
    // can neither make custody read outside the evidence nor hang it on a playlist.
    opts.set("format_whitelist", allowed_demuxers());
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    // The `file:` prefix stops FFmpeg reading a name such as `http:x` as a URL.
    let url = format!("file:{}", abs.display());
    // A derived command's parent object: FFmpeg gets only bytes checked against the BLAKE3
    // recorded for it (`crate::outboard`), through its own I/O context.
    if let Some(object) = crate::outboard::Object::find(path) {
        let reader = match left_out {
            Some(ranges) => crate::outboard::Reader::leaving_out(object, ranges),
            None => crate::outboard::Reader::new(object),
        };
        let io = ffmpeg::format::context::StreamIo::from_read_seek_with_capacity(reader, 64 << 10)?;
        return ffmpeg::format::input_from_stream(io, Some(&url), Some(opts));
    }
    ffmpeg::format::input_with_dictionary(&url, opts)
}

fn stream_facts(stream: &ffmpeg::format::stream::Stream<'_>) -> StreamFacts {
    let params = stream.parameters();
    let medium = params.medium();
    let kind = kind_name(medium);
    let extra = ffi::extra_params(&params);
    let tb = stream.time_base();
    let nopts = ffmpeg::ffi::AV_NOPTS_VALUE;
    let mut facts = StreamFacts {
        index: stream.index() as u64,
        kind: kind.to_owned(),
        codec: params.id().name().to_owned(),
        profile: extra.profile,
        time_base: format!("{}/{}", tb.numerator(), tb.denominator()),
        start_pts: (stream.start_time() != nopts).then(|| stream.start_time()),
        duration_pts: (stream.duration() != nopts && stream.duration() > 0).then(|| stream.duration()),
        frames: (stream.frames() > 0).then(|| stream.frames()),
        format: ffi::format_name(&params),
        bit_rate: (params.bit_rate() > 0).then(|| params.bit_rate()),
        tags: super::ffi::tags(&stream.metadata()).into_iter().map(|(k, v)| [k, v]).collect(),
        ..StreamFacts::default()
    };
    match medium {
        ffmpeg::media::Type::Video => {
            let (w, h, (sn, sd)) = ffi::dimensions(&params);
            facts.width = Some(w as i64);
            facts.height = Some(h as i64);
            if sn > 0 && sd > 0 {
                facts.sar = Some(format!("{sn}:{sd}"));
            }
            facts.frame_rate = rational(stream.rate());
            facts.avg_frame_rate = rational(stream.avg_frame_rate());
            facts.field_order = Some(extra.field_order.to_owned());
        }
        ffmpeg::media::Type::Audio => {
            facts.sample_rate = Some(ffi::sample_rate(&params) as i64);
            facts.channels = Some(ffi::channels(&params) as i64);
            facts.channel_layout = extra.channel_layout;
        }
        _ => {}
    }
    facts
}

/// The samples of `stream` the container lists past the end of a file of `len` bytes, when there
/// are any (the demuxer's index holds every sample of an MP4 or MOV from its header).
fn truncation(stream: &ffmpeg::format::stream::Stream<'_>, len: u64) -> Option<Truncated> {
    let entries = ffi::index_entries(stream);
    let in_file = entries.iter().filter(|&&(pos, size)| pos >= 0 && (pos + size) as u64 <= len).count();
    (in_file < entries.len()).then_some(Truncated { listed: entries.len() as u64, in_file: in_file as u64 })
}

/// From the first presentation time of any audio or video packet of `path` to the end of the
/// last, in microseconds: the duration FFmpeg reports when the container states none. `None`
/// when the file holds no such packet or cannot be read to its end.
fn packet_span_us(path: &Path) -> Option<i64> {
    let mut input = open_input(path).ok()?;
    let bases: Vec<Option<ffmpeg::Rational>> = input
        .streams()
        .map(|s| {
            matches!(s.parameters().medium(), ffmpeg::media::Type::Video | ffmpeg::media::Type::Audio)
                .then(|| s.time_base())
        })
        .collect();
    let (mut first, mut end) = (i64::MAX, i64::MIN);
    let mut packet = ffmpeg::Packet::empty();
    while next_packet(&mut input, &mut packet, path).ok()? {
        let Some(Some(tb)) = bases.get(packet.stream()) else { continue };
        let Some(ts) = packet.pts().or(packet.dts()) else { continue };
        let us = |t: i64| super::time::ticks_to_us(t, tb.numerator(), tb.denominator());
        first = first.min(us(ts));
        end = end.max(us(ts + packet.duration().max(0)));
    }
    (end > first).then(|| end - first)
}

fn rational(r: ffmpeg::Rational) -> Option<String> {
    (r.numerator() > 0 && r.denominator() > 0).then(|| format!("{}/{}", r.numerator(), r.denominator()))
}

/// Decode every audio and video packet, counting frames and locating errors.
fn deep_check(input: &mut ffmpeg::format::context::Input) -> DeepCheck {
    use std::collections::HashMap;
    let mut check = DeepCheck::default();
    let mut decoders: HashMap<usize, (ffmpeg::decoder::Opened, ffmpeg::Rational)> = HashMap::new();
    for stream in input.streams() {
        let medium = stream.parameters().medium();
        if !matches!(medium, ffmpeg::media::Type::Video | ffmpeg::media::Type::Audio) {
            continue;
        }
        let opened = ffmpeg::codec::context::Context::from_parameters(stream.parameters()).and_then(|c| {
            let id = c.id();
            let codec = ffmpeg::decoder::find(id).ok_or(ffmpeg::Error::DecoderNotFound)?;
            c.decoder().open_as(codec)
        });
        match opened {
            Ok(d) => {
                decoders.insert(stream.index(), (d, stream.time_base()));
            }
            Err(e) => record_error(&mut check, stream.index() as i64, None, format!("no decoder: {e}")),
        }
    }
    // A video frame works for audio too: both wrap the same AVFrame.
    let mut frame = ffmpeg::frame::Video::empty();
    let mut packet = ffmpeg::Packet::empty();
    loop {
        match ffi::read_packet(input, &mut packet) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => break,
            Err(ffmpeg::Error::InvalidData) => {
                record_error(&mut check, -1, None, "corrupt data in the container".to_owned());
                continue;
            }
            Err(e) => {
                record_error(&mut check, -1, None, format!("reading stopped: {e}"));
                break;
            }
        }
        check.packets += 1;
        let index = packet.stream();
        let Some((decoder, tb)) = decoders.get_mut(&index) else { continue };
        let at = packet.pts().or(packet.dts()).map(|t| super::time::ticks_to_us(t, tb.numerator(), tb.denominator()));
        if packet.is_corrupt() {
            record_error(&mut check, index as i64, at, "packet flagged corrupt by the demuxer".to_owned());
        }
        if let Err(e) = decoder.send_packet(&packet) {
            record_error(&mut check, index as i64, at, e.to_string());
        }
        drain(decoder, &mut frame, &mut check, index, *tb);
    }
    for (index, (decoder, tb)) in decoders.iter_mut() {
        let _ = decoder.send_eof();
        drain(decoder, &mut frame, &mut check, *index, *tb);
    }
    check
}

fn drain(
    decoder: &mut ffmpeg::decoder::Opened,
    frame: &mut ffmpeg::frame::Video,
    check: &mut DeepCheck,
    index: usize,
    tb: ffmpeg::Rational,
) {
    loop {
        match decoder.receive_frame(frame) {
            Ok(()) => {
                check.frames += 1;
                if frame.is_corrupt() || frame.has_decode_errors() {
                    let at = frame
                        .timestamp()
                        .or(frame.pts())
                        .map(|t| super::time::ticks_to_us(t, tb.numerator(), tb.denominator()));
                    record_error(check, index as i64, at, "frame decoded with errors".to_owned());
                }
            }
            Err(ffmpeg::Error::Eof) => return,
            Err(ffmpeg::Error::Other { errno }) if errno == libc::EAGAIN => return,
            Err(e) => {
                record_error(check, index as i64, None, e.to_string());
                return;
            }
        }
    }
}

fn record_error(check: &mut DeepCheck, stream: i64, at_us: Option<i64>, message: String) {
    check.errors += 1;
    if check.error_positions.len() < MAX_ERROR_POSITIONS {
        check.error_positions.push(DecodeErrorAt { stream, at_us, message });
    }
}

impl StreamFacts {
    /// A GoPro GPMF track (GPS, accelerometer, gyroscope), which FFmpeg sees as binary data.
    fn is_gopro_telemetry(&self) -> bool {
        self.kind == "data" && self.tags.iter().any(|[k, v]| k == "handler_name" && v.contains("GoPro MET"))
    }
}

impl MediaFacts {
    /// The container as users know it: MP4, MOV, 3GP by the brand in the file; raw H.264.
    fn container_name(&self, demuxer: &str) -> String {
        let first = demuxer.split(',').next().unwrap_or(demuxer);
        let named = match first {
            "mov" => match self.tag("major_brand").map(str::trim) {
                None | Some("qt") => "MOV",
                Some(b) if b.starts_with("3g2") => "3G2",
                Some(b) if b.starts_with("3g") => "3GP",
                Some("M4A" | "M4B") => "M4A",
                Some(_) => "MP4",
            },
            "matroska" if demuxer.contains("webm") && self.tag("doctype") == Some("webm") => "WebM",
            "matroska" => "Matroska",
            "mpegts" => "MPEG-TS",
            "mpeg" => "MPEG-PS",
            "avi" => "AVI",
            "wav" => "WAV",
            "mp3" => "MP3",
            "flac" => "FLAC",
            "ogg" => "Ogg",
            "amr" => "AMR",
            "aac" => "AAC (ADTS)",
            "asf" => "ASF (WMV/WMA)",
            "dhav" => "Dahua DAV",
            "h264" => "raw H.264",
            "hevc" => "raw HEVC",
            "mjpeg" => "raw MJPEG",
            "mpegvideo" => "raw MPEG video",
            "m4v" => "raw MPEG-4 video",
            _ => return self.container_long.clone().unwrap_or_else(|| first.to_owned()),
        };
        named.to_owned()
    }

    /// One line for people: container, streams, duration; or why FFmpeg cannot read the file.
    pub fn summary(&self) -> String {
        if !self.decodable {
            return format!("not decodable by FFmpeg ({})", self.reason.as_deref().unwrap_or("no reason given"));
        }
        let mut parts = Vec::new();
        if let Some(c) = &self.container {
            parts.push(self.container_name(c));
        }
        let demuxer = self.container.as_deref().unwrap_or_default();
        let raw = RAW_VIDEO.contains(&demuxer.split(',').next().unwrap_or_default());
        for s in &self.streams {
            parts.push(match s.kind.as_str() {
                "video" => {
                    let mut v = format!("{} {}x{}", s.codec, s.width.unwrap_or(0), s.height.unwrap_or(0));
                    if s.timescale_missing {
                        v.push_str(" (no timescale: the container states 0, so its times are unknown)");
                    } else if let Some((rate, average)) = shown_rate(s, raw) {
                        v.push_str(&format!(" {} fps", rate_text(rate)));
                        if let Some(avg) = average {
                            v.push_str(&format!(
                                " (ffprobe's average frame rate: {}, from the first frames; the stream's own timing changes)",
                                rate_text(avg)
                            ));
                        }
                    }
                    if let Some(fo) = s.field_order.as_deref().filter(|f| !matches!(*f, "progressive" | "unknown")) {
                        v.push_str(&format!(" interlaced ({fo})"));
                    }
                    // A raw stream's frames are counted (its container states nothing).
                    if let Some(n) = s.frames.filter(|n| *n > 0 && raw) {
                        v.push_str(&format!(", {n} frame{}", if n == 1 { "" } else { "s" }));
                    }
                    v
                }
                "audio" => {
                    let mut a = s.codec.clone();
                    if let Some(rate) = s.sample_rate.filter(|r| *r > 0) {
                        a.push_str(&format!(" {rate} Hz"));
                    }
                    match (s.channel_layout.as_deref(), s.channels) {
                        // FFmpeg's name for one channel of no known layout.
                        (Some("1 channels"), _) => a.push_str(" 1 channel"),
                        (Some(layout), _) => a.push_str(&format!(" {layout}")),
                        (None, Some(1)) => a.push_str(" 1 channel"),
                        (None, Some(n)) if n > 1 => a.push_str(&format!(" {n} channels")),
                        _ => {}
                    }
                    a
                }
                _ if s.is_gopro_telemetry() => "GPS telemetry (GoPro GPMF)".to_owned(),
                kind => format!("{kind} {}", s.codec),
            });
        }
        if let Some(d) = self.duration_us {
            parts.push(super::time::format_us(d));
            if self.duration_measured {
                parts.push("measured from the packets: the container states its duration as unknown".to_owned());
            }
        }
        for s in &self.streams {
            if let Some(t) = &s.truncated {
                parts.push(format!(
                    "TRUNCATED: the file holds {} of the {} {} frames the container lists for stream {}",
                    t.in_file, t.listed, s.kind, s.index
                ));
            }
        }
        if let Some(deep) = &self.deep {
            parts.push(format!("decoded {} frames, {} decode errors", deep.frames, deep.errors));
        }
        parts.join(", ")
    }
}

/// The frame rate to show for a video stream, and ffprobe's average frame rate when it differs
/// and is worth showing beside it. A stream with timestamps shows its average rate (a phone's
/// variable-rate video states a fine-grained `r_frame_rate` such as 90000). A raw stream has no
/// timestamps: its timeline, in FFmpeg as in custody's frame index, steps by the durations its
/// own timing information gives each frame, which `r_frame_rate` follows, while the average is
/// an estimate over the first frames FFmpeg reads: they differ when that timing changes (a
/// damaged parameter set), and both are shown.
fn shown_rate(s: &StreamFacts, raw: bool) -> Option<(&String, Option<&String>)> {
    match (&s.frame_rate, &s.avg_frame_rate) {
        (Some(r), Some(avg)) if raw && r != avg => Some((r, Some(avg))),
        (r, avg) => avg.as_ref().or(r.as_ref()).map(|rate| (rate, None)),
    }
}

/// `30000/1001` → `29.97`, `25/1` → `25`.
fn rate_text(rate: &str) -> String {
    match rate.split_once('/') {
        Some((n, "1")) => n.to_owned(),
        Some((n, d)) => match (n.parse::<f64>(), d.parse::<f64>()) {
            (Ok(n), Ok(d)) if d > 0.0 => format!("{:.3}", n / d).trim_end_matches('0').trim_end_matches('.').to_owned(),
            _ => rate.to_owned(),
        },
        None => rate.to_owned(),
    }
}

/// Read the next packet of an input opened with [`open_input`]: `Ok(false)` at the end of the
/// file. A corrupt packet is skipped (the demuxer resyncs past it); any other read error ends
/// the work with a message naming the file. Every demux loop goes through here.
pub fn next_packet(
    input: &mut ffmpeg::format::context::Input,
    packet: &mut ffmpeg::Packet,
    path: &Path,
) -> anyhow::Result<bool> {
    loop {
        match ffi::read_packet(input, packet) {
            Ok(()) => return Ok(true),
            Err(ffmpeg::Error::Eof) => return Ok(false),
            Err(ffmpeg::Error::InvalidData) => continue,
            Err(e) => return Err(crate::error::input(format!("{}: reading stopped: {e}", path.display()))),
        }
    }
}

/// Demuxers that open files named inside the input: never used on evidence.
const FOREIGN_READERS: [&str; 8] = ["hls", "applehttp", "concat", "dash", "webm_dash_manifest", "image2", "imf", "tee"];

/// Every demuxer of this FFmpeg except [`FOREIGN_READERS`], as FFmpeg's `format_whitelist`.
fn allowed_demuxers() -> &'static str {
    static LIST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LIST.get_or_init(|| {
        super::init();
        super::ffi::demuxer_names()
            .iter()
            .flat_map(|n| n.split(','))
            .filter(|n| !FOREIGN_READERS.contains(n))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// The name custody uses for a stream's kind.
pub fn kind_name(medium: ffmpeg::media::Type) -> &'static str {
    match medium {
        ffmpeg::media::Type::Video => "video",
        ffmpeg::media::Type::Audio => "audio",
        ffmpeg::media::Type::Subtitle => "subtitle",
        ffmpeg::media::Type::Data => "data",
        ffmpeg::media::Type::Attachment => "attachment",
        ffmpeg::media::Type::Unknown => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_name_things_as_users_know_them() {
        let stream = |kind: &str, codec: &str, tags: &[[&str; 2]]| StreamFacts {
            kind: kind.to_owned(),
            codec: codec.to_owned(),
            tags: tags.iter().map(|[k, v]| [k.to_string(), v.to_string()]).collect(),
            ..StreamFacts::default()
        };
        let mut gps = stream("data", "bin_data", &[["handler_name", "\tGoPro MET"]]);
        gps.index = 3;
        let mut audio = stream("audio", "pcm_s16le", &[]);
        audio.channels = Some(1);
        audio.sample_rate = Some(0);
        let facts = MediaFacts {
            decodable: true,
            container: Some("mov,mp4,m4a,3gp,3g2,mj2".to_owned()),
            tags: vec![["major_brand".to_owned(), "3gp4".to_owned()]],
            streams: vec![audio, gps, stream("data", "bin_data", &[["handler_name", "GoPro TCD"]])],
            ..MediaFacts::default()
        };
        assert_eq!(facts.summary(), "3GP, pcm_s16le 1 channel, GPS telemetry (GoPro GPMF), data bin_data");
    }
}
