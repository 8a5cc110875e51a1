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
}

/// What the exact clip holds.
#[derive(Clone, Debug, Serialize)]
pub struct ExactReport {
    pub video_frames: u64,
    pub audio_samples: u64,
    pub audio_sample_rate: u32,
    pub pixel_format: String,
    pub encoder: String,
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
    first: usize,
    last: usize,
    q: Quality,
) -> Result<ExactReport> {
    super::init();
    let mut input = open_input(src).map_err(|e| error::input(format!("FFmpeg cannot open {}: {e}", src.display())))?;
    let mut output = format::output_as(&dst, "mp4")
        .map_err(|e| error::environment(format!("cannot create {}: {e}", dst.display())))?;
    let first_pts = index.frames[first].pts;
    let last_pts = index.frames[last].pts;
    let vtb = Rational::new(index.time_base.0, index.time_base.1);
    let t0 = index.to_us(first_pts);
    let t1 = index.to_us(last_pts) + index.frame_len_us(last);

    // Video: decoder → (scaler when x264 cannot take the format) → libx264.
    let vstream = input.stream(index.stream).expect("indexed stream");
    let mut vdec = codec::context::Context::from_parameters(vstream.parameters())?.decoder().video()?;
    let rate = vstream.avg_frame_rate();
    let x264 =
        encoder::find_by_name("libx264").ok_or_else(|| error::environment("this FFmpeg has no libx264 encoder"))?;
    let in_fmt = vdec.format();
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
    venc.set_width(vdec.width());
    venc.set_height(vdec.height());
    venc.set_format(out_fmt);
    venc.set_time_base(vtb);
    venc.set_aspect_ratio(vdec.aspect_ratio());
    if rate.numerator() > 0 {
        venc.set_frame_rate(Some(rate));
    }
    venc.set_flags(codec::Flags::GLOBAL_HEADER);
    let mut opts = ffmpeg::Dictionary::new();
    opts.set("preset", "medium");
    // As many encoder threads as the machine has, as the ffmpeg tool does by default.
    opts.set("threads", "auto");
    if q.lossless {
        opts.set("qp", "0");
    } else {
        opts.set("crf", &q.crf.to_string());
    }
    let mut venc = venc.open_as_with(x264, opts).context("opening libx264")?;
    let vout = {
        let mut s = output.add_stream(x264)?;
        s.set_parameters(&venc);
        s.set_time_base(vtb);
        // Pictures are encoded as coded; the rotation a player applies goes along.
        ffi::copy_display_matrix(&vstream, &mut s);
        s.index()
    };
    let mut scaler = if out_fmt != in_fmt {
        Some(ffmpeg::software::scaling::Context::get(
            in_fmt,
            vdec.width(),
            vdec.height(),
            out_fmt,
            vdec.width(),
            vdec.height(),
            ffmpeg::software::scaling::Flags::BICUBIC,
        )?)
    } else {
        None
    };

    // Audio: decoder → atrim to the span, reframed for AAC → aac.
    let mut audio = match input.streams().best(media::Type::Audio) {
        Some(a) => Some(audio_path(&a, &mut output, t0, t1)?),
        None => None,
    };

    let mut header = ffmpeg::Dictionary::new();
    header.set("movflags", "+faststart");
    output.write_header_with(header).map_err(|e| error::environment(format!("cannot write {}: {e}", dst.display())))?;
    let vout_tb = output.stream(vout).expect("video stream").time_base();

    let key = index.frames[index.keyframe_before(first)].pts;
    if !index.derived_timestamps {
        // Seek a second before the keyframe: some containers (MPEG-TS) seek by decode time,
        // which runs ahead of presentation time; frames before the range are skipped anyway.
        let margin = super::time::us_to_ticks(1_000_000, vtb.numerator(), vtb.denominator());
        let _ = ffi::seek_stream_backward(&mut input, index.stream, key - margin);
    }
    let wanted: std::collections::HashSet<i64> = index.frames[first..=last].iter().map(|f| f.pts).collect();
    // Each output frame's duration (from the index), so the muxer knows how long the last
    // frame lasts; without it MP4 would cut the last frame off.
    let durations: std::collections::HashMap<i64, i64> = (first..=last)
        .map(|i| {
            let d = if i + 1 < index.len() {
                index.frames[i + 1].pts - index.frames[i].pts
            } else {
                index.frames[i].duration
            };
            (index.frames[i].pts - first_pts, d.max(1))
        })
        .collect();
    let mut video_frames = 0u64;
    let mut decoded = 0usize; // counts output frames, for streams without timestamps
    let mut vframe = frame::Video::empty();
    let mut scaled = frame::Video::empty();
    let mut aframe = frame::Audio::empty();
    let mut packet = ffmpeg::Packet::empty();
    let mut done_video = false;
    let mut eof = false;
    while !eof {
        eof = !super::probe::next_packet(&mut input, &mut packet, src)?;
        if eof || packet.stream() == index.stream {
            if done_video && !eof {
                // Every wanted frame is encoded; keep reading only for the audio.
            } else {
                if eof {
                    vdec.send_eof()?;
                } else {
                    let _ = vdec.send_packet(&packet);
                }
                while vdec.receive_frame(&mut vframe).is_ok() {
                    let pts = if index.derived_timestamps {
                        let n = decoded;
                        decoded += 1;
                        (first..=last).contains(&n).then(|| index.frames[n].pts)
                    } else {
                        vframe.timestamp().or(vframe.pts()).filter(|p| wanted.contains(p))
                    };
                    let Some(pts) = pts else { continue };
                    let src_frame = match scaler.as_mut() {
                        Some(s) => {
                            s.run(&vframe, &mut scaled)?;
                            &mut scaled
                        }
                        None => &mut vframe,
                    };
                    src_frame.set_pts(Some(pts - first_pts));
                    src_frame.set_kind(ffmpeg::picture::Type::None);
                    venc.send_frame(src_frame)?;
                    video_frames += 1;
                    drain_video(&mut venc, &mut output, vout, vtb, vout_tb, &durations)?;
                    if pts == last_pts {
                        done_video = true;
                    }
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
                drain_audio(a, &mut output)?;
            }
            if eof {
                a.graph.get("in").expect("source").source().flush()?;
                drain_audio(a, &mut output)?;
            }
        }
        // Stop reading once the video is done and the audio is well past the span.
        if done_video && audio.as_ref().is_none_or(|a| a.last_us > t1 + 1_000_000) {
            if let Some(a) = audio.as_mut() {
                let _ = a.decoder.send_eof();
                while a.decoder.receive_frame(&mut aframe).is_ok() {
                    a.graph.get("in").expect("source").source().add(&aframe)?;
                }
                a.graph.get("in").expect("source").source().flush()?;
                drain_audio(a, &mut output)?;
            }
            break;
        }
    }
    venc.send_eof()?;
    drain_video(&mut venc, &mut output, vout, vtb, vout_tb, &durations)?;
    if let Some(a) = audio.as_mut() {
        a.encoder.send_eof()?;
        drain_audio_encoder(a, &mut output)?;
    }
    output.write_trailer().map_err(|e| error::environment(format!("cannot finish {}: {e}", dst.display())))?;
    let expected = (last - first + 1) as u64;
    if video_frames != expected {
        return Err(error::input(format!(
            "{}: decoded {video_frames} of the {expected} frames asked (the stream is damaged around them); nothing was recorded",
            src.display()
        )));
    }
    Ok(ExactReport {
        video_frames,
        audio_samples: audio.as_ref().map_or(0, |a| a.samples),
        audio_sample_rate: audio.as_ref().map_or(0, |a| a.encoder.rate()),
        pixel_format: out_fmt.descriptor().map(|d| d.name().to_owned()).unwrap_or_default(),
        encoder: format!(
            "libx264 {}",
            if q.lossless { "qp 0 (lossless)".to_owned() } else { format!("crf {}", q.crf) }
        ),
    })
}

fn audio_path(
    stream: &format::stream::Stream<'_>,
    output: &mut format::context::Output,
    t0: i64,
    t1: i64,
) -> Result<AudioPath> {
    let in_tb = stream.time_base();
    let mut decoder = codec::context::Context::from_parameters(stream.parameters())?.decoder().audio()?;
    decoder.set_packet_time_base(in_tb);
    let aac = encoder::find(codec::Id::AAC).ok_or_else(|| error::environment("this FFmpeg has no AAC encoder"))?;
    let channels = decoder.channels().max(1);
    let layout = if channels == 1 { ffmpeg::ChannelLayout::MONO } else { ffmpeg::ChannelLayout::STEREO };
    let mut enc = codec::Context::new_with_codec(aac).encoder().audio()?;
    enc.set_rate(decoder.rate() as i32);
    enc.set_channel_layout(layout);
    enc.set_channels(layout.channels());
    enc.set_format(format::Sample::F32(format::sample::Type::Planar));
    enc.set_time_base(Rational::new(1, decoder.rate() as i32));
    enc.set_bit_rate(if channels == 1 { 96_000 } else { 160_000 });
    enc.set_flags(codec::Flags::GLOBAL_HEADER);
    let encoder = enc.open_as(aac).context("opening the AAC encoder")?;
    let out = {
        let mut s = output.add_stream(aac)?;
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
        &format!(
            "time_base={}/{}:sample_rate={}:sample_fmt={}:channel_layout=0x{:x}",
            in_tb.numerator(),
            in_tb.denominator(),
            decoder.rate(),
            decoder.format().name(),
            in_layout
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
    graph.get("out").expect("sink").sink().set_frame_size(encoder.frame_size());
    Ok(AudioPath { stream: stream.index(), decoder, graph, encoder, out, in_tb, samples: 0, last_us: i64::MIN })
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

fn drain_audio(a: &mut AudioPath, output: &mut format::context::Output) -> Result<()> {
    let mut filtered = frame::Audio::empty();
    let enc_tb = Rational::new(1, a.encoder.rate() as i32);
    while a.graph.get("out").expect("sink").sink().frame(&mut filtered).is_ok() {
        a.samples += filtered.samples() as u64;
        let pts = filtered.pts().map(|p| ffmpeg::Rescale::rescale(&p, a.in_tb, enc_tb));
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
