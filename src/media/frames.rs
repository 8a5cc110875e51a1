//! Frame hashes: the MD5 of every decoded video frame, in the format of FFmpeg's `framemd5`
//! muxer, so a list made here can be compared line by line with one made by `ffmpeg`.
//!
//! Every picture the decoder gives is listed, damaged or not, in the order it gives them, with
//! its timestamp. The decoder runs on one thread, so the list is the same on every machine:
//! on damaged input, FFmpeg's multi-threaded decoding conceals errors differently with each
//! thread count. The `ffmpeg` command line, by default, also drops frames whose timestamps do
//! not advance and rewrites timestamps that go backwards before its muxer sees them; so on
//! damaged input the list equals `ffmpeg -threads 1 -i FILE -map 0:v -fps_mode passthrough -f
//! framemd5 -` (docs/hash.md), not always the default command's.

use std::path::Path;

use anyhow::Result;
use ffmpeg_next as ffmpeg;
use md5::Digest as _;
use serde::Serialize;

use super::ffi;
use super::probe::open_input;
use crate::error;

#[derive(Clone, Debug, Serialize)]
pub struct FrameHash {
    pub stream: usize,
    pub pts: Option<i64>,
    pub duration: i64,
    pub size: usize,
    pub md5: String,
    /// The decoder flagged the picture as damaged (errors concealed, or parts missing).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub corrupt: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct StreamHeader {
    pub index: usize,
    pub time_base: String,
    pub width: u32,
    pub height: u32,
    pub sar: String,
}

/// Decode every video stream of `path` and hash each frame's packed pixels.
pub fn frame_hashes(path: &Path) -> Result<(Vec<StreamHeader>, Vec<FrameHash>)> {
    super::init();
    let mut input =
        open_input(path).map_err(|e| error::input(format!("FFmpeg cannot open {}: {e}", path.display())))?;
    let mut decoders = Vec::new();
    let mut headers = Vec::new();
    for s in input.streams() {
        if s.parameters().medium() != ffmpeg::media::Type::Video {
            continue;
        }
        let ctx = ffmpeg::codec::context::Context::from_parameters(s.parameters())?;
        let dec = ctx
            .decoder()
            .video()
            .map_err(|e| error::environment(format!("no decoder for stream {}: {e}", s.index())))?;
        let tb = s.time_base();
        headers.push(StreamHeader {
            index: s.index(),
            time_base: format!("{}/{}", tb.numerator(), tb.denominator()),
            width: dec.width(),
            height: dec.height(),
            sar: {
                let a = dec.aspect_ratio();
                if a.numerator() > 0 { format!("{}/{}", a.numerator(), a.denominator()) } else { "0/1".to_owned() }
            },
        });
        decoders.push((s.index(), dec, Clock::new(&s)));
    }
    if decoders.is_empty() {
        return Err(error::input(format!("{} has no video stream to hash frame by frame", path.display())));
    }
    let mut out = Vec::new();
    let mut frame = ffmpeg::frame::Video::empty();
    let mut packet = ffmpeg::Packet::empty();
    loop {
        let eof = !super::probe::next_packet(&mut input, &mut packet, path)?;
        for (index, dec, clock) in decoders.iter_mut() {
            if eof {
                let _ = dec.send_eof();
            } else if packet.stream() == *index {
                // An empty packet would tell the decoder the stream has ended; `ffmpeg` skips
                // them too.
                if packet.size() == 0 {
                    continue;
                }
                clock.stamp(&mut packet);
                let _ = dec.send_packet(&packet);
            } else {
                continue;
            }
            while dec.receive_frame(&mut frame).is_ok() {
                let data = ffi::packed_frame(&frame)?;
                out.push(FrameHash {
                    stream: *index,
                    // Pictures flushed out at the end of a stream without timestamps take the
                    // clock's next readings, as in `ffmpeg`.
                    pts: frame.timestamp().or(frame.pts()).or_else(|| eof.then(|| clock.flushed()).flatten()),
                    duration: frame_duration(&frame),
                    size: data.len(),
                    md5: hex::encode(md5::Md5::digest(&data)),
                    corrupt: frame.is_corrupt() || frame.has_decode_errors(),
                });
            }
        }
        if eof {
            break;
        }
    }
    Ok((headers, out))
}

/// The decode timestamps `ffmpeg` gives packets that carry none (raw H.264/HEVC): it keeps a
/// clock in microseconds that starts at minus the decoder's reordering delay in frames (at the
/// stream's average frame rate) and advances by each packet's duration, and hands each packet
/// the clock's reading; the decoder passes it on to the picture the packet completes. Stamping
/// packets the same way gives every picture the timestamp `ffmpeg` lists for it. The frame
/// index adds the durations up exactly instead: where a frame's duration is not a whole number
/// of microseconds (30 fps: 33,333.3), `ffmpeg`'s clock drifts from it by up to half a
/// microsecond a frame.
struct Clock {
    time_base: ffmpeg::Rational,
    /// The stream's average frame rate, when known.
    rate: Option<ffmpeg::Rational>,
    /// Microseconds; `None` before the first packet.
    next_us: Option<i64>,
    delay: i32,
    /// A packet without timestamps was stamped.
    stamped: bool,
}

impl Clock {
    fn new(stream: &ffmpeg::format::stream::Stream<'_>) -> Clock {
        let rate = stream.avg_frame_rate();
        Clock {
            time_base: stream.time_base(),
            rate: (rate.numerator() > 0 && rate.denominator() > 0).then_some(rate),
            next_us: None,
            delay: ffi::video_delay(&stream.parameters()),
            stamped: false,
        }
    }

    /// Give `packet` the clock's reading when it carries no timestamp, and advance the clock.
    fn stamp(&mut self, packet: &mut ffmpeg::Packet) {
        use ffmpeg::Rescale;
        const US: ffmpeg::Rational = ffmpeg::Rational(1, 1_000_000);
        let mut now = self.next_us();
        match packet.dts() {
            Some(dts) => now = dts.rescale(self.time_base, US),
            None if packet.pts().is_none() => {
                packet.set_dts(Some(now.rescale(US, self.time_base)));
                self.stamped = true;
            }
            None => {}
        }
        let step = if packet.duration() > 0 { packet.duration().rescale(self.time_base, US) } else { self.frame_us() };
        self.next_us = Some(now + step);
    }

    /// The clock's reading for the next packet, in microseconds (where it starts, before the
    /// first).
    fn next_us(&self) -> i64 {
        self.next_us.unwrap_or_else(|| self.start_us())
    }

    /// Where the clock starts: minus the decoder's reordering delay, in frames.
    fn start_us(&self) -> i64 {
        self.rate.map_or(0, |r| (-f64::from(self.delay) * 1e6 / f64::from(r)) as i64)
    }

    /// The timestamp of a picture the decoder gives without one after the end of the stream:
    /// the clock's reading, which then advances by a frame. `None` for a stream that had no
    /// packets without timestamps.
    fn flushed(&mut self) -> Option<i64> {
        use ffmpeg::Rescale;
        let now = self.next_us.filter(|_| self.stamped)?;
        self.next_us = Some(now + self.frame_us());
        Some(now.rescale(ffmpeg::Rational(1, 1_000_000), self.time_base))
    }

    /// One frame at the average frame rate, in microseconds (0 when it is not known).
    fn frame_us(&self) -> i64 {
        self.rate.map_or(0, |r| 1_000_000 * i64::from(r.denominator()) / i64::from(r.numerator()))
    }
}

fn frame_duration(frame: &ffmpeg::frame::Video) -> i64 {
    // SAFETY: plain field read from a valid decoded AVFrame.
    unsafe { (*frame.as_ptr()).pkt_duration }
}

/// The list as `framemd5` writes it.
pub fn render(headers: &[StreamHeader], frames: &[FrameHash]) -> String {
    let mut s = String::from("#format: frame checksums\n#version: 2\n#hash: MD5\n");
    for h in headers {
        s.push_str(&format!(
            "#tb {}: {}\n#media_type {}: video\n#codec_id {}: rawvideo\n#dimensions {}: {}x{}\n#sar {}: {}\n",
            h.index, h.time_base, h.index, h.index, h.index, h.width, h.height, h.index, h.sar
        ));
    }
    s.push_str("#stream#, dts,        pts, duration,     size, hash\n");
    for f in frames {
        let pts = f.pts.map_or("NOPTS".to_owned(), |p| p.to_string());
        s.push_str(&format!("{},{:>11},{:>11},{:>9},{:>9}, {}\n", f.stream, pts, pts, f.duration, f.size, f.md5));
    }
    s
}
