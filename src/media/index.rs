//! The frame index of a video stream: every frame in presentation order, with its timestamp
//! and whether it is a keyframe. Built by demuxing alone (no decoding), it turns positions
//! (`frame:N`, a time, a wall-clock time) into exact frames.

use std::path::Path;

use anyhow::Result;
use ffmpeg_next as ffmpeg;
use serde::Serialize;

use super::ffi;
use super::probe::open_input;
use super::time::{ClockOffset, Position, format_civil, format_us};
use crate::error;

#[derive(Clone, Debug, Serialize)]
pub struct FrameEntry {
    /// Presentation timestamp in the stream's time base.
    pub pts: i64,
    pub duration: i64,
    pub key: bool,
    /// Position of the packet in decode order.
    pub decode_index: usize,
}

#[derive(Clone, Debug, Serialize)]
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

/// What wall-clock positions need: the DVR time of the first frame and the clock offset.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub recording_start: Option<jiff::civil::DateTime>,
    pub clock: Option<ClockOffset>,
}

impl FrameIndex {
    /// Demux the best video stream of `path` (else its best audio stream) and index its frames.
    pub fn build(path: &Path) -> Result<FrameIndex> {
        super::init();
        let mut input =
            open_input(path).map_err(|e| error::input(format!("FFmpeg cannot open {}: {e}", path.display())))?;
        let stream = input
            .streams()
            .best(ffmpeg::media::Type::Video)
            .or_else(|| input.streams().best(ffmpeg::media::Type::Audio))
            .ok_or_else(|| error::input(format!("{} has neither video nor audio", path.display())))?;
        let audio = stream.parameters().medium() == ffmpeg::media::Type::Audio;
        let index = stream.index();
        let tb = stream.time_base();
        let mut frames = Vec::new();
        let mut derived = false;
        let mut next_ts = 0i64;
        let mut packet = ffmpeg::Packet::empty();
        let mut decode_index = 0usize;
        while super::probe::next_packet(&mut input, &mut packet, path)? {
            if packet.stream() != index || ffi::packet_discarded(&packet) {
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
            frames.push(FrameEntry { pts, duration, key: packet.is_key(), decode_index });
            decode_index += 1;
        }
        if frames.is_empty() {
            return Err(error::input(format!("{} has a video stream without frames", path.display())));
        }
        frames.sort_by_key(|f| (f.pts, f.decode_index));
        Ok(FrameIndex {
            stream: index,
            audio,
            time_base: (tb.numerator(), tb.denominator()),
            frames,
            derived_timestamps: derived,
        })
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
            Position::WallClock(dt) => self.wall_to_media_us(*dt, timeline)?,
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

    /// Convert a corrected wall-clock time to media time.
    pub fn wall_to_media_us(&self, actual: jiff::civil::DateTime, timeline: &Timeline) -> Result<i64> {
        let start = timeline.recording_start.ok_or_else(|| {
            error::input("wall-clock positions need the recording's start time: ingest it with --recording-start")
        })?;
        let clock = timeline.clock.as_ref().ok_or_else(|| {
            error::input("wall-clock positions need the DVR clock offset: ingest it with --dvr-time/--actual-time or --clock-offset")
        })?;
        let corrected_start = clock.correct(start);
        let us = actual.duration_since(corrected_start).as_micros() as i64;
        if us < 0 {
            return Err(error::input(format!(
                "{} is before the recording starts ({} corrected)",
                format_civil(actual),
                format_civil(corrected_start)
            )));
        }
        Ok(us)
    }
}
