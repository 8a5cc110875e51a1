//! Frame-exact clips: exactly the frames asked for, re-encoded as H.264 (visually lossless by
//! default, or lossless), with the audio cut to the same span, sample-accurately, as AAC.
//!
//! The protocol, step by step: seek to the keyframe before the first frame → send packets →
//! receive frames → keep the frames whose presentation timestamp is in the range (video) or the
//! samples inside the span (audio, through an `atrim` filter graph that also reframes them for
//! the encoder) → encode → rescale to the output time base → write. At the end: flush the
//! decoders, the filter graph, the encoders, then the trailer.

use std::path::Path;

use anyhow::{Context as _, Result};
use ffmpeg::{Rational, codec, encoder, filter, format, frame, media};
use ffmpeg_next as ffmpeg;
use serde::Serialize;

use super::ffi;
use super::index::FrameIndex;
use super::probe::open_input;
use crate::error;

/// How to encode.
#[derive(Clone, Copy, Debug)]
pub struct Quality {
    /// x264 constant rate factor (18 ≈ visually lossless).
    pub crf: u8,
    /// Mathematically lossless (x264 qp 0) instead.
    pub lossless: bool,
    /// No B-frames: frames are stored in the order they are shown, so the last one stored is
    /// the last one shown and an MP4 track ends exactly where the source's does.
    pub in_order: bool,
}

/// What the exact clip holds.
#[derive(Clone, Debug, Serialize)]
pub struct ExactReport {
    pub video_frames: u64,
    pub audio_samples: u64,
    pub audio_sample_rate: u32,
    pub pixel_format: String,
    pub encoder: String,
    /// The source's audio stream carried over, if any.
    #[serde(skip)]
    pub audio_stream: Option<usize>,
    /// Microseconds of audio before media time 0 that the decoder drops (encoder priming of an
    /// audio-only source), so the output starts that much later in the source.
    #[serde(skip)]
    pub audio_priming_us: i64,
}

/// Changes made to decoded pictures and sound before they are encoded (redaction).
pub trait Edits {
    /// Change frame `n` (presentation order in the source) shown at `t_us` from the first frame.
    /// The frame is 8-bit planar YUV, and may share its pictures with the decoder's reference
    /// frames: call [`ffi::make_writable`] before changing it.
    fn video(&mut self, _frame: &mut frame::Video, _n: usize, _t_us: i64) -> Result<()> {
        Ok(())
    }
    /// Change audio samples; `first_sample` counts from the start of the span at `rate` Hz.
    /// The frame is planar f32 (AAC) or packed s16 (PCM).
    fn audio(&mut self, _frame: &mut frame::Audio, _first_sample: i64, _rate: u32) -> Result<()> {
        Ok(())
    }
}

/// No changes: a plain frame-exact clip.
pub struct Unchanged;
impl Edits for Unchanged {}

/// The audio codec of the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioCodec {
    Aac,
    /// 16-bit PCM in WAV: lossless for PCM sources.
    PcmS16,
    /// The decoded samples as they came out of the decoder, in PCM of the decoder's own sample
    /// format and channel layout (32-bit float for MP3 and AAC): lossless of the decoded sound.
    Decoded,
}

/// What to encode, and how.
pub struct Job<'a> {
    pub index: &'a FrameIndex,
    /// Frames `first..=last` (presentation order) of the indexed stream.
    pub first: usize,
    pub last: usize,
    pub quality: Quality,
    /// The muxer: `mp4` (H.264 + AAC; `.m4a` for audio alone) or `wav` (PCM audio alone).
    pub container: &'static str,
    pub audio: AudioCodec,
    /// Container tags to write; nothing else of the source's metadata is carried.
    pub tags: Vec<(String, String)>,
    /// The audio span in microseconds on the source's timeline, instead of the span of frames
    /// `first..=last` (audio alone: exactly the samples asked, not whole packets).
    pub span_us: Option<(i64, i64)>,
}

struct AudioPath {
    stream: usize,
    decoder: codec::decoder::Audio,
    graph: filter::Graph,
    encoder: encoder::Audio,
    out: usize,
    in_tb: Rational,
    samples: u64,
    last_us: i64,
}

/// Encode frames `first..=last` (presentation order) of the indexed video stream of `src`,
/// and the audio of the same span, into an MP4 at `dst`.
pub fn exact_clip(
    src: &Path,
    dst: &Path,
    index: &FrameIndex,
    (first, last): (usize, usize),
    q: Quality,
    tags: Vec<(String, String)>,
) -> Result<ExactReport> {
    let job = Job { index, first, last, quality: q, container: "mp4", audio: AudioCodec::Aac, tags, span_us: None };
    encode(src, dst, &job, &mut Unchanged)
}

/// The video side of an encode: decoder → (scaler when x264 cannot take the format) → libx264.
struct VideoPath {
    decoder: codec::decoder::Video,
    encoder: encoder::Video,
    scaler: Option<ffmpeg::software::scaling::Context>,
    out: usize,
    format: format::Pixel,
}

/// Encode `job` from `src` into `dst`, passing every picture and sound through `edits`. No
/// metadata of the source is written (only `job.tags`), and the muxer adds no encoder tag.
pub fn encode(src: &Path, dst: &Path, job: &Job, edits: &mut dyn Edits) -> Result<ExactReport> {
    super::init();
    let (index, first, last, q) = (job.index, job.first, job.last, job.quality);
    let mut input = open_input(src).map_err(|e| error::input(format!("FFmpeg cannot open {}: {e}", src.display())))?;
    let mut output = format::output_as(&dst, job.container)
        .map_err(|e| error::environment(format!("cannot create the output in the store's staging directory: {e}")))?;
    let first_pts = index.frames[first].pts;
    let last_pts = index.frames[last].pts;
    let vtb = Rational::new(index.time_base.0, index.time_base.1);
    let (t0, t1) = job.span_us.unwrap_or((index.to_us(first_pts), index.to_us(last_pts) + index.frame_len_us(last)));

    let mut video = if index.audio { None } else { Some(video_path(&input, index, q, &mut output)?) };

    // Audio: decoder → atrim to the span, reframed for the encoder → encoder.
    let audio_stream = if index.audio { input.stream(index.stream) } else { input.streams().best(media::Type::Audio) };
    let mut audio_priming_us = 0;
    let mut audio = match audio_stream {
        Some(a) => {
            // Audio alone: media time 0 is the first sample a player plays. MP3 and AAC files
            // start with encoder priming the decoder drops, so the stream's start time lies
            // after its first packet's timestamp.
            let start_time = (a.start_time() != ffmpeg::ffi::AV_NOPTS_VALUE).then(|| {
                let tb = a.time_base();
                super::time::ticks_to_us(a.start_time(), tb.numerator(), tb.denominator())
            });
            let (start, end) = match (job.span_us, start_time) {
                // A span of audio alone counts from the first sample played: past the priming.
                (Some(_), Some(st)) if index.audio => {
                    let priming = (st - index.to_us(first_pts.min(index.frames[0].pts))).max(0);
                    (t0 + priming, t1 + priming)
                }
                (None, Some(st)) if index.audio && first == 0 => (st.max(t0), t1),
                _ => (t0, t1),
            };
            audio_priming_us = start - t0;
            Some(audio_path(&a, &mut output, start, end, job.audio)?)
        }
        None => None,
    };

    let mut tags = ffmpeg::Dictionary::new();
    for (k, v) in &job.tags {
        tags.set(k, v);
    }
    output.set_metadata(tags);
    let mut header = ffmpeg::Dictionary::new();
    if job.container == "mp4" {
        // Tags without an atom of their own (com.apple.quicktime.*) are written only this way.
        header.set("movflags", "+faststart+use_metadata_tags");
    }
    // Bit-exact: no `encoder` tag naming the library, nothing that varies between runs.
    header.set("fflags", "+bitexact");
    output.write_header_with(header).map_err(|e| {
        error::environment(format!("cannot start the {} output: {e}", super::remux::container_name(job.container)))
    })?;
    let vout_tb = video.as_ref().map(|v| output.stream(v.out).expect("video stream").time_base());

    index.seek_before(&mut input, first);
    let wanted: std::collections::HashMap<i64, usize> = (first..=last).map(|n| (index.frames[n].pts, n)).collect();
    // Each output frame's duration (from the index), so the muxer knows how long the last
    // frame lasts; without it MP4 would cut the last frame off.
    let durations: std::collections::HashMap<i64, i64> =
        (first..=last).map(|i| (index.frames[i].pts - first_pts, index.frame_len_ticks(i))).collect();
    // Frames encoded, on stderr when it is a terminal: redactions and exact clips take a while.
    let bar = {
        use std::io::IsTerminal;
        let target = if std::io::stderr().is_terminal() {
            indicatif::ProgressDrawTarget::stderr()
        } else {
            indicatif::ProgressDrawTarget::hidden()
        };
        let b = indicatif::ProgressBar::with_draw_target(Some((last - first + 1) as u64), target);
        b.set_style(
            indicatif::ProgressStyle::with_template("encoding     [{bar:32}] {pos}/{len} frames, eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b
    };
    let mut video_frames = 0u64;
    let mut decoded = 0usize; // counts output frames, for raw streams that reorder pictures
    // A raw stream's packets carry the index's timestamps into the decoder, so its pictures are
    // known by them: a packet the decoder gives no picture for (damage) leaves a gap, never a
    // later picture taken for this frame. One that reorders pictures is counted.
    let raw_pts = input.stream(index.stream).and_then(|s| super::still::raw_timestamps(index, &s));
    let mut packets_sent = 0usize;
    let mut vframe = frame::Video::empty();
    let mut scaled = frame::Video::empty();
    let mut aframe = frame::Audio::empty();
    let mut packet = ffmpeg::Packet::empty();
    let mut done_video = video.is_none();
    let mut eof = false;
    while !eof {
        eof = !super::probe::next_packet(&mut input, &mut packet, src)?;
        if let Some(v) = video.as_mut()
            && (eof || packet.stream() == index.stream)
            && (!done_video || eof)
        {
            if eof {
                v.decoder.send_eof()?;
            } else {
                if let Some(pts) = &raw_pts {
                    packet.set_pts(pts.get(packets_sent).copied());
                    packets_sent += 1;
                }
                let _ = v.decoder.send_packet(&packet);
            }
            while v.decoder.receive_frame(&mut vframe).is_ok() {
                let n = if index.derived_timestamps && raw_pts.is_none() {
                    let n = decoded;
                    decoded += 1;
                    (first..=last).contains(&n).then_some(n)
                } else {
                    vframe.timestamp().or(vframe.pts()).and_then(|p| wanted.get(&p).copied())
                };
                let Some(n) = n else { continue };
                let pts = index.frames[n].pts;
                let src_frame = match v.scaler.as_mut() {
                    Some(s) => {
                        s.run(&vframe, &mut scaled)?;
                        &mut scaled
                    }
                    None => &mut vframe,
                };
                edits.video(src_frame, n, index.time_us(n))?;
                src_frame.set_pts(Some(pts - first_pts));
                src_frame.set_kind(ffmpeg::picture::Type::None);
                v.encoder.send_frame(src_frame)?;
                video_frames += 1;
                bar.inc(1);
                drain_video(&mut v.encoder, &mut output, v.out, vtb, vout_tb.expect("video"), &durations)?;
                if pts == last_pts {
                    done_video = true;
                }
            }
        }
        if let Some(a) = audio.as_mut() {
            if eof {
                let _ = a.decoder.send_eof();
            } else if packet.stream() == a.stream {
                let _ = a.decoder.send_packet(&packet);
            } else {
                continue;
            }
            while a.decoder.receive_frame(&mut aframe).is_ok() {
                let ts = aframe.timestamp().or(aframe.pts());
                if let Some(t) = ts {
                    a.last_us = super::time::ticks_to_us(t, a.in_tb.numerator(), a.in_tb.denominator());
                }
                aframe.set_pts(ts);
                a.graph.get("in").expect("source").source().add(&aframe)?;
                drain_audio(a, &mut output, edits)?;
            }
            if eof {
                a.graph.get("in").expect("source").source().flush()?;
                drain_audio(a, &mut output, edits)?;
            }
        }
        // Stop reading once the video is done and the audio is well past the span.
        if !eof && done_video && audio.as_ref().is_none_or(|a| a.last_us > t1 + 1_000_000) {
            if let Some(a) = audio.as_mut() {
                let _ = a.decoder.send_eof();
                while a.decoder.receive_frame(&mut aframe).is_ok() {
                    a.graph.get("in").expect("source").source().add(&aframe)?;
                }
                a.graph.get("in").expect("source").source().flush()?;
                drain_audio(a, &mut output, edits)?;
            }
            break;
        }
    }
    if let Some(v) = video.as_mut() {
        v.encoder.send_eof()?;
        drain_video(&mut v.encoder, &mut output, v.out, vtb, vout_tb.expect("video"), &durations)?;
    }
    if let Some(a) = audio.as_mut() {
        a.encoder.send_eof()?;
        drain_audio_encoder(a, &mut output)?;
    }
    bar.finish_and_clear();
    output.write_trailer().map_err(|e| error::environment(format!("cannot finish the output: {e}")))?;
    let expected = (last - first + 1) as u64;
    if video.is_some() && video_frames != expected {
        return Err(error::input(format!(
            "{}: decoded {video_frames} of the {expected} frames asked (the stream is damaged around them); nothing was recorded",
            src.display()
        )));
    }
    Ok(ExactReport {
        audio_stream: audio.as_ref().map(|a| a.stream),
        audio_priming_us,
        video_frames,
        audio_samples: audio.as_ref().map_or(0, |a| a.samples),
        audio_sample_rate: audio.as_ref().map_or(0, |a| a.encoder.rate()),
        pixel_format: video
            .as_ref()
            .and_then(|v| v.format.descriptor().map(|d| d.name().to_owned()))
            .unwrap_or_default(),
        encoder: match (&video, job.audio) {
            (Some(_), _) => {
                format!("libx264 {}", if q.lossless { "qp 0 (lossless)".to_owned() } else { format!("crf {}", q.crf) })
            }
            (None, AudioCodec::Aac) => "aac".to_owned(),
            (None, AudioCodec::PcmS16) => "pcm_s16le".to_owned(),
            (None, AudioCodec::Decoded) => audio.as_ref().map(|a| a.encoder.id().name().to_owned()).unwrap_or_default(),
        },
    })
}

fn video_path(
    input: &format::context::Input,
    index: &FrameIndex,
    q: Quality,
    output: &mut format::context::Output,
) -> Result<VideoPath> {
    let vtb = Rational::new(index.time_base.0, index.time_base.1);
    let vstream = input.stream(index.stream).expect("indexed stream");
    let decoder = codec::context::Context::from_parameters(vstream.parameters())?.decoder().video()?;
    let rate = vstream.avg_frame_rate();
    let x264 =
        encoder::find_by_name("libx264").ok_or_else(|| error::environment("this FFmpeg has no libx264 encoder"))?;
    let in_fmt = decoder.format();
    let out_fmt = match in_fmt {
        format::Pixel::YUV420P
        | format::Pixel::YUVJ420P
        | format::Pixel::YUV422P
        | format::Pixel::YUVJ422P
        | format::Pixel::YUV444P
        | format::Pixel::YUVJ444P => in_fmt,
        _ => format::Pixel::YUV420P,
    };
    let mut venc = codec::Context::new_with_codec(x264).encoder().video()?;
    venc.set_width(decoder.width());
    venc.set_height(decoder.height());
    venc.set_format(out_fmt);
    venc.set_time_base(vtb);
    venc.set_aspect_ratio(decoder.aspect_ratio());
    if rate.numerator() > 0 {
        venc.set_frame_rate(Some(rate));
    }
    venc.set_flags(codec::Flags::GLOBAL_HEADER);
    let mut opts = ffmpeg::Dictionary::new();
    opts.set("preset", "medium");
    // As many encoder threads as the machine has, as the ffmpeg tool does by default.
    opts.set("threads", "auto");
    if q.in_order {
        opts.set("bf", "0");
    }
    if q.lossless {
        opts.set("qp", "0");
    } else {
        opts.set("crf", &q.crf.to_string());
    }
    let encoder = venc.open_as_with(x264, opts).context("opening libx264")?;
    let out = {
        let mut s = output.add_stream(x264)?;
        s.set_parameters(&encoder);
        s.set_time_base(vtb);
        // Pictures are encoded as coded; the rotation a player applies goes along.
        ffi::copy_display_matrix(&vstream, &mut s);
        s.index()
    };
    let scaler = if out_fmt != in_fmt {
        Some(ffmpeg::software::scaling::Context::get(
            in_fmt,
            decoder.width(),
            decoder.height(),
            out_fmt,
            decoder.width(),
            decoder.height(),
            ffmpeg::software::scaling::Flags::BICUBIC,
        )?)
    } else {
        None
    };
    Ok(VideoPath { decoder, encoder, scaler, out, format: out_fmt })
}

fn audio_path(
    stream: &format::stream::Stream<'_>,
    output: &mut format::context::Output,
    t0: i64,
    t1: i64,
    codec_choice: AudioCodec,
) -> Result<AudioPath> {
    let in_tb = stream.time_base();
    let mut decoder = codec::context::Context::from_parameters(stream.parameters())?.decoder().audio()?;
    decoder.set_packet_time_base(in_tb);
    let (id, sample_format) = match codec_choice {
        AudioCodec::Aac => (codec::Id::AAC, format::Sample::F32(format::sample::Type::Planar)),
        AudioCodec::PcmS16 => (codec::Id::PCM_S16LE, format::Sample::I16(format::sample::Type::Packed)),
        AudioCodec::Decoded => decoded_pcm(decoder.format())?,
    };
    let codec = encoder::find(id).ok_or_else(|| error::environment(format!("this FFmpeg has no {id:?} encoder")))?;
    let channels = decoder.channels().max(1);
    let layout = match codec_choice {
        // Every channel as decoded.
        AudioCodec::Decoded if decoder.channel_layout().bits() != 0 => decoder.channel_layout(),
        AudioCodec::Decoded => ffmpeg::ChannelLayout::default(channels as i32),
        _ if channels == 1 => ffmpeg::ChannelLayout::MONO,
        _ => ffmpeg::ChannelLayout::STEREO,
    };
    let mut enc = codec::Context::new_with_codec(codec).encoder().audio()?;
    enc.set_rate(decoder.rate() as i32);
    enc.set_channel_layout(layout);
    enc.set_channels(layout.channels());
    enc.set_format(sample_format);
    enc.set_time_base(Rational::new(1, decoder.rate() as i32));
    if codec_choice == AudioCodec::Aac {
        // AAC holds at most 6144 bits per channel per 1024-sample frame: 6 bits per sample, so
        // 8 kHz mono (a DVR's audio) caps at 48 kb/s.
        let most = 6 * decoder.rate() as usize * layout.channels() as usize;
        enc.set_bit_rate((if channels == 1 { 96_000 } else { 160_000 }).min(most));
        enc.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    let encoder = enc.open_as(codec).context("opening the audio encoder")?;
    let out = {
        let mut s = output.add_stream(codec)?;
        s.set_parameters(&encoder);
        s.set_time_base(Rational::new(1, decoder.rate() as i32));
        s.index()
    };
    let in_layout = if decoder.channel_layout().bits() != 0 {
        decoder.channel_layout().bits()
    } else {
        ffmpeg::ChannelLayout::default(channels as i32).bits()
    };
    let mut graph = filter::Graph::new();
    graph.add(
        &filter::find("abuffer").expect("abuffer"),
        "in",
        &ffi::abuffer_args(
            in_tb,
            decoder.rate(),
            decoder.format(),
            ffmpeg::ChannelLayout::from_bits_truncate(in_layout),
        ),
    )?;
    graph.add(&filter::find("abuffersink").expect("abuffersink"), "out", "")?;
    {
        let mut sink = graph.get("out").expect("sink");
        sink.set_sample_format(encoder.format());
        sink.set_channel_layout(layout);
        sink.set_sample_rate(encoder.rate());
    }
    // Cut at sample precision on the source timeline, then start the clip's audio at zero.
    // Shift by the span's start (not by the first sample kept), so audio that starts late in the
    // source starts equally late in the clip and stays in sync with the video.
    let shift = ((t0 as i128 * in_tb.denominator() as i128) / (in_tb.numerator().max(1) as i128 * 1_000_000)) as i64;
    let spec = format!("atrim=start={t0}us:end={t1}us,asetpts=PTS-{shift}");
    graph.output("in", 0)?.input("out", 0)?.parse(&spec)?;
    graph.validate()?;
    if encoder.frame_size() > 0 {
        graph.get("out").expect("sink").sink().set_frame_size(encoder.frame_size());
    }
    Ok(AudioPath { stream: stream.index(), decoder, graph, encoder, out, in_tb, samples: 0, last_us: i64::MIN })
}

/// The PCM codec and packed sample format that hold a decoder's samples exactly.
fn decoded_pcm(decoded: format::Sample) -> Result<(codec::Id, format::Sample)> {
    use format::Sample;
    use format::sample::Type::Packed;
    Ok(match decoded {
        Sample::U8(_) => (codec::Id::PCM_U8, Sample::U8(Packed)),
        Sample::I16(_) => (codec::Id::PCM_S16LE, Sample::I16(Packed)),
        Sample::I32(_) => (codec::Id::PCM_S32LE, Sample::I32(Packed)),
        Sample::I64(_) => (codec::Id::PCM_S64LE, Sample::I64(Packed)),
        Sample::F32(_) => (codec::Id::PCM_F32LE, Sample::F32(Packed)),
        Sample::F64(_) => (codec::Id::PCM_F64LE, Sample::F64(Packed)),
        Sample::None => return Err(error::input("the audio decoder names no sample format")),
    })
}

fn drain_video(
    enc: &mut encoder::Video,
    output: &mut format::context::Output,
    stream: usize,
    from: Rational,
    to: Rational,
    durations: &std::collections::HashMap<i64, i64>,
) -> Result<()> {
    let mut packet = ffmpeg::Packet::empty();
    while enc.receive_packet(&mut packet).is_ok() {
        packet.set_stream(stream);
        if let Some(d) = packet.pts().and_then(|p| durations.get(&p)) {
            packet.set_duration(*d);
        }
        packet.rescale_ts(from, to);
        packet.write_interleaved(output)?;
    }
    Ok(())
}

fn drain_audio(a: &mut AudioPath, output: &mut format::context::Output, edits: &mut dyn Edits) -> Result<()> {
    let mut filtered = frame::Audio::empty();
    let enc_tb = Rational::new(1, a.encoder.rate() as i32);
    while a.graph.get("out").expect("sink").sink().frame(&mut filtered).is_ok() {
        let pts = filtered.pts().map(|p| ffmpeg::Rescale::rescale(&p, a.in_tb, enc_tb));
        edits.audio(&mut filtered, pts.unwrap_or(a.samples as i64), a.encoder.rate())?;
        a.samples += filtered.samples() as u64;
        filtered.set_pts(pts);
        a.encoder.send_frame(&filtered)?;
        drain_audio_encoder(a, output)?;
    }
    Ok(())
}

fn drain_audio_encoder(a: &mut AudioPath, output: &mut format::context::Output) -> Result<()> {
    let mut packet = ffmpeg::Packet::empty();
    let tb = Rational::new(1, a.encoder.rate() as i32);
    let out_tb = output.stream(a.out).expect("audio stream").time_base();
    while a.encoder.receive_packet(&mut packet).is_ok() {
        packet.set_stream(a.out);
        packet.rescale_ts(tb, out_tb);
        packet.write_interleaved(output)?;
    }
    Ok(())
}
