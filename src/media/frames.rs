//! Frame hashes: the MD5 of every decoded video frame, in the format of FFmpeg's `framemd5`
//! muxer, so a list made here can be compared line by line with one made by `ffmpeg`.

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
        decoders.push((s.index(), dec));
    }
    if decoders.is_empty() {
        return Err(error::input(format!("{} has no video stream to hash frame by frame", path.display())));
    }
    let mut out = Vec::new();
    let mut frame = ffmpeg::frame::Video::empty();
    let mut packet = ffmpeg::Packet::empty();
    loop {
        let eof = !super::probe::next_packet(&mut input, &mut packet, path)?;
        for (index, dec) in decoders.iter_mut() {
            if eof {
                let _ = dec.send_eof();
            } else if packet.stream() == *index {
                let _ = dec.send_packet(&packet);
            } else {
                continue;
            }
            while dec.receive_frame(&mut frame).is_ok() {
                let data = ffi::packed_frame(&frame)?;
                out.push(FrameHash {
                    stream: *index,
                    pts: frame.timestamp().or(frame.pts()),
                    duration: frame_duration(&frame),
                    size: data.len(),
                    md5: hex::encode(md5::Md5::digest(&data)),
                });
            }
        }
        if eof {
            break;
        }
    }
    Ok((headers, out))
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
