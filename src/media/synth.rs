//! Synthetic evidence media for tests and the demo.
//!
//! Every file is produced through the FFmpeg *libraries* (via `ffmpeg-next`): libavfilter test
//! sources (`testsrc2` for pictures, `sine` for sound) run through a filter graph, then the real
//! encoders (libx264, MJPEG, AAC, libmp3lame, PCM) and muxers (MP4, raw H.264, AVI, WAV, MP3).
//! The product itself never calls this module; tests and the demo do.
//!
//! # Frame-index band
//!
//! Every video frame carries its 0-based frame index in its pixels so that later code can tell
//! exactly which frame a still or a clip holds. At the top of the frame is a band of height
//! `B = max(16, (H / 10) rounded down to even)` spanning the full width, made of 20 cells of
//! width `C = (W / 20) rounded down to even` (leftover pixels on the right are black). Cell 0 is
//! white and cell 1 black (calibration); cells 2..=19 hold the 18 bits of the frame index, most
//! significant bit first, white = 1. White is luma 235, black luma 16, chroma neutral (128).
//! [`read_frame_index`] reads it back from a decoded luma plane.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use ffmpeg_next as ffmpeg;
use ffmpeg_next::{ChannelLayout, Dictionary, Packet, Rational, codec, encoder, filter, format, frame, picture};

/// Number of cells in the frame-index band (2 calibration cells + [`INDEX_BITS`] data cells).
pub const BAND_CELLS: usize = 20;
/// Number of bits of frame index the band carries.
pub const INDEX_BITS: usize = BAND_CELLS - 2;
/// Largest frame index the band can carry.
pub const MAX_FRAME_INDEX: u32 = (1 << INDEX_BITS) - 1;
/// Luma code value of a white cell (limited range).
pub const BAND_WHITE: u8 = 235;
/// Luma code value of a black cell (limited range).
pub const BAND_BLACK: u8 = 16;
/// Chroma code value inside the band (neutral grey).
pub const BAND_CHROMA: u8 = 128;
/// The calibration cells must differ by at least this many luma levels for a band to be read.
pub const MIN_CALIBRATION_CONTRAST: f64 = 64.0;

/// Where the frame-index band lies in a frame of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BandGeometry {
    /// Height of the band in luma rows, from the top of the frame (always even).
    pub band_height: usize,
    /// Width of one cell in luma columns (always even).
    pub cell_width: usize,
}

/// The band geometry for a `width` x `height` frame, or `None` if the frame is too small to
/// hold a band (narrower than 40 pixels or shorter than the band).
pub fn band_geometry(width: usize, height: usize) -> Option<BandGeometry> {
    let band_height = ((height / 10) & !1).max(16);
    let cell_width = (width / BAND_CELLS) & !1;
    if cell_width < 2 || band_height > height {
        return None;
    }
    Some(BandGeometry { band_height, cell_width })
}

/// Whether band cell `cell` (0..BAND_CELLS) is white for frame `index`.
fn cell_is_white(cell: usize, index: u32) -> bool {
    match cell {
        0 => true,
        1 => false,
        c if c < BAND_CELLS => (index >> (BAND_CELLS - 1 - c)) & 1 == 1,
        _ => false,
    }
}

/// Paint the luma part of the band for frame `index` into a luma plane.
fn paint_band_luma(y: &mut [u8], stride: usize, width: usize, height: usize, index: u32) -> Result<()> {
    ensure!(index <= MAX_FRAME_INDEX, "frame index {index} does not fit in the {INDEX_BITS}-bit band");
    let geo = band_geometry(width, height)
        .ok_or_else(|| anyhow!("a {width}x{height} frame is too small for a frame-index band"))?;
    ensure!(stride >= width && y.len() >= stride * (geo.band_height - 1) + width, "luma plane too small for the band");
    let row: Vec<u8> =
        (0..width).map(|x| if cell_is_white(x / geo.cell_width, index) { BAND_WHITE } else { BAND_BLACK }).collect();
    for r in 0..geo.band_height {
        y[r * stride..r * stride + width].copy_from_slice(&row);
    }
    Ok(())
}

/// Make the band neutral in one 4:2:0 chroma plane of a `width` x `height` frame.
fn paint_band_chroma(plane: &mut [u8], stride: usize, width: usize, height: usize) -> Result<()> {
    let geo = band_geometry(width, height)
        .ok_or_else(|| anyhow!("a {width}x{height} frame is too small for a frame-index band"))?;
    let (chroma_width, chroma_rows) = (width.div_ceil(2), geo.band_height / 2);
    ensure!(
        stride >= chroma_width && plane.len() >= stride * (chroma_rows - 1) + chroma_width,
        "chroma plane too small for the band"
    );
    for r in 0..chroma_rows {
        plane[r * stride..r * stride + chroma_width].fill(BAND_CHROMA);
    }
    Ok(())
}

/// Paint the frame-index band for `index` into 4:2:0 planes (`u`/`v` subsampled by two in
/// both directions), each given as (data, stride).
pub fn paint_frame_index_planes(
    (y, y_stride): (&mut [u8], usize),
    (u, u_stride): (&mut [u8], usize),
    (v, v_stride): (&mut [u8], usize),
    width: usize,
    height: usize,
    index: u32,
) -> Result<()> {
    paint_band_luma(y, y_stride, width, height, index)?;
    paint_band_chroma(u, u_stride, width, height)?;
    paint_band_chroma(v, v_stride, width, height)
}

/// Paint the frame-index band for `index` into a `yuv420p`/`yuvj420p` frame (in place).
///
/// The frame's buffers are made writable first (copied if they are shared).
pub fn paint_frame_index(frame: &mut frame::Video, index: u32) -> Result<()> {
    let fmt = frame.format();
    ensure!(
        matches!(fmt, format::Pixel::YUV420P | format::Pixel::YUVJ420P),
        "frame-index band needs a yuv420p/yuvj420p frame, got {fmt:?}"
    );
    // SAFETY: `frame` wraps a valid, allocated AVFrame that we borrow mutably, so nobody else
    // can observe it while av_frame_make_writable() possibly replaces its buffers.
    let ret = unsafe { ffmpeg::ffi::av_frame_make_writable(frame.as_mut_ptr()) };
    if ret < 0 {
        return Err(ffmpeg::Error::from(ret)).context("making a video frame writable");
    }
    let (width, height) = (frame.width() as usize, frame.height() as usize);
    let stride = frame.stride(0);
    paint_band_luma(frame.data_mut(0), stride, width, height, index)?;
    for plane in [1, 2] {
        let stride = frame.stride(plane);
        paint_band_chroma(frame.data_mut(plane), stride, width, height)?;
    }
    Ok(())
}

/// Read the frame index from the band of a decoded luma (or 8-bit grey) plane.
///
/// Averages the central half (in both directions) of every cell, thresholds the data cells at
/// the midpoint between the two calibration cells, and returns `None` if the frame is too small
/// for a band, the plane is shorter than `stride` x band height, or the white calibration cell
/// is not at least [`MIN_CALIBRATION_CONTRAST`] levels brighter than the black one. Works on
/// limited- and full-range data and survives lossy coding.
pub fn read_frame_index(luma: &[u8], stride: usize, width: usize, height: usize) -> Option<u32> {
    let geo = band_geometry(width, height)?;
    if stride < width || luma.len() < stride * (geo.band_height - 1) + width {
        return None;
    }
    let (y0, y1) = (geo.band_height / 4, geo.band_height - geo.band_height / 4);
    let cell_mean = |cell: usize| -> f64 {
        let left = cell * geo.cell_width;
        let (x0, x1) = (left + geo.cell_width / 4, left + geo.cell_width - geo.cell_width / 4);
        let sum: u64 =
            (y0..y1).map(|r| luma[r * stride + x0..r * stride + x1].iter().map(|&p| u64::from(p)).sum::<u64>()).sum();
        sum as f64 / ((y1 - y0) * (x1 - x0)) as f64
    };
    let (white, black) = (cell_mean(0), cell_mean(1));
    if white - black < MIN_CALIBRATION_CONTRAST {
        return None;
    }
    let threshold = (white + black) / 2.0;
    Some((2..BAND_CELLS).fold(0u32, |acc, cell| (acc << 1) | u32::from(cell_mean(cell) > threshold)))
}

/// The kinds of synthetic evidence file [`generate`] can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fixture {
    /// 640x360, 25 fps, 3 s H.264 (libx264, B-frames, gop 25) + AAC 48 kHz stereo, in MP4.
    H264Mp4,
    /// Raw Annex-B H.264 elementary stream, 704x480, 15 fps, 2 s, no B-frames, gop 15 (DVR).
    RawH264,
    /// MJPEG in AVI, 704x480, 15 fps, 2 s, with pcm_mulaw 8 kHz mono audio.
    MjpegAvi,
    /// Variable-frame-rate H.264 in MP4 (time base 1/90000, 60 frames) + AAC 48 kHz mono.
    VfrMp4,
    /// PCM s16le 48 kHz mono WAV, 3 s.
    Wav,
    /// MP3 (libmp3lame) 44.1 kHz mono, 3 s.
    Mp3,
    /// A 64 KiB deterministic pseudo-random blob with vendor magic that FFmpeg cannot open.
    Proprietary,
}

impl Fixture {
    /// Every fixture kind, in a fixed order.
    pub const ALL: [Fixture; 7] = [
        Fixture::H264Mp4,
        Fixture::RawH264,
        Fixture::MjpegAvi,
        Fixture::VfrMp4,
        Fixture::Wav,
        Fixture::Mp3,
        Fixture::Proprietary,
    ];

    /// The file name [`generate_all`] uses for this fixture.
    pub fn file_name(self) -> &'static str {
        match self {
            Fixture::H264Mp4 => "h264_bframes.mp4",
            Fixture::RawH264 => "dvr_ch01.h264",
            Fixture::MjpegAvi => "cam_704x480.avi",
            Fixture::VfrMp4 => "phone_vfr.mp4",
            Fixture::Wav => "overhear.wav",
            Fixture::Mp3 => "overhear.mp3",
            Fixture::Proprietary => "vendor_blob.bin",
        }
    }

    /// Whether the fixture has a video stream (with a frame-index band in every frame).
    pub fn has_video(self) -> bool {
        matches!(self, Fixture::H264Mp4 | Fixture::RawH264 | Fixture::MjpegAvi | Fixture::VfrMp4)
    }
}

/// The magic bytes the [`Fixture::Proprietary`] blob starts with.
pub const PROPRIETARY_MAGIC: &[u8; 8] = b"\xA7NVXDVR\x1A";
/// Size in bytes of the [`Fixture::Proprietary`] blob.
pub const PROPRIETARY_LEN: usize = 64 * 1024;

/// What [`generate`] wrote. Zero / empty / `None` where a fixture has no such stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureInfo {
    pub kind: Fixture,
    /// FFmpeg muxer (short) name used, `None` for the proprietary blob.
    pub container: Option<&'static str>,
    /// FFmpeg / ffprobe codec name of the video stream (`"h264"`, `"mjpeg"`).
    pub video_codec: Option<&'static str>,
    /// FFmpeg / ffprobe codec name of the audio stream (`"aac"`, `"pcm_mulaw"`, ...).
    pub audio_codec: Option<&'static str>,
    /// Number of video frames (frame `i` carries band index `i`).
    pub video_frames: u32,
    pub width: u32,
    pub height: u32,
    /// Nominal frame rate (num, den); for VFR the encoder hint only.
    pub frame_rate: (i32, i32),
    /// Whether frame durations vary.
    pub variable_frame_rate: bool,
    /// Maximum consecutive B-frames the encoder was asked for (0 = none).
    pub max_b_frames: u32,
    /// Keyframe interval (GOP length) in frames.
    pub gop: u32,
    /// Presentation time of each video frame in seconds, as (num, den), first frame at 0.
    pub frame_times: Vec<(i64, i64)>,
    /// Duration of each video frame in seconds, as (num, den).
    pub frame_durations: Vec<(i64, i64)>,
    /// Total video duration in seconds, as (num, den).
    pub video_duration: (i64, i64),
    pub audio_sample_rate: u32,
    pub audio_channels: u32,
    /// Audio samples per channel fed to the encoder.
    pub audio_samples: u64,
    /// Frequency of the sine tone in Hz.
    pub audio_tone_hz: u32,
    /// Size of the file written, in bytes.
    pub file_size: u64,
}

impl FixtureInfo {
    fn empty(kind: Fixture) -> Self {
        FixtureInfo {
            kind,
            container: None,
            video_codec: None,
            audio_codec: None,
            video_frames: 0,
            width: 0,
            height: 0,
            frame_rate: (0, 1),
            variable_frame_rate: false,
            max_b_frames: 0,
            gop: 0,
            frame_times: Vec::new(),
            frame_durations: Vec::new(),
            video_duration: (0, 1),
            audio_sample_rate: 0,
            audio_channels: 0,
            audio_samples: 0,
            audio_tone_hz: 0,
            file_size: 0,
        }
    }

    /// Audio duration in seconds (0 if there is no audio).
    pub fn audio_seconds(&self) -> f64 {
        if self.audio_sample_rate == 0 { 0.0 } else { self.audio_samples as f64 / f64::from(self.audio_sample_rate) }
    }

    /// Video duration in seconds (0 if there is no video).
    pub fn video_seconds(&self) -> f64 {
        self.video_duration.0 as f64 / self.video_duration.1 as f64
    }
}

/// Write fixture `kind` to `path` (overwriting it) and describe what was written.
///
/// Silences FFmpeg's library logging (process-wide) so nothing is printed to stderr.
pub fn generate(kind: Fixture, path: &Path) -> Result<FixtureInfo> {
    ffmpeg::init().context("initialising FFmpeg")?;
    ffmpeg::log::set_level(ffmpeg::log::Level::Quiet);
    let mut info = match kind {
        Fixture::Proprietary => write_proprietary(path)?,
        _ => write_media(kind, path)?,
    };
    info.file_size = fs::metadata(path).with_context(|| format!("reading the size of {}", path.display()))?.len();
    Ok(info)
}

/// Write every fixture into `dir` (created if missing) under [`Fixture::file_name`].
pub fn generate_all(dir: &Path) -> Result<Vec<(Fixture, PathBuf)>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Fixture::ALL
        .iter()
        .map(|&kind| {
            let path = dir.join(kind.file_name());
            generate(kind, &path).with_context(|| format!("generating {kind:?} at {}", path.display()))?;
            Ok((kind, path))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Plans: what each fixture holds.

#[derive(Debug, Clone, Copy)]
enum VideoCodec {
    /// libx264 at constant rate factor `crf`.
    X264 { crf: u32 },
    /// FFmpeg's MJPEG encoder at a constant quantiser `q` (2..=31).
    Mjpeg { q: i32 },
}

#[derive(Debug, Clone)]
struct VideoPlan {
    codec: VideoCodec,
    width: u32,
    height: u32,
    pix_fmt: format::Pixel,
    /// Nominal frame rate (testsrc2 rate and encoder hint).
    frame_rate: Rational,
    /// Encoder time base; `pts` and `durations` are in it.
    time_base: Rational,
    pts: Vec<i64>,
    durations: Vec<i64>,
    max_b_frames: u32,
    gop: u32,
}

impl VideoPlan {
    fn constant(
        codec: VideoCodec,
        (width, height): (u32, u32),
        fps: i32,
        frames: u32,
        max_b_frames: u32,
        gop: u32,
    ) -> Self {
        let pix_fmt = match codec {
            VideoCodec::X264 { .. } => format::Pixel::YUV420P,
            VideoCodec::Mjpeg { .. } => format::Pixel::YUVJ420P,
        };
        VideoPlan {
            codec,
            width,
            height,
            pix_fmt,
            frame_rate: Rational::new(fps, 1),
            time_base: Rational::new(1, fps),
            pts: (0..i64::from(frames)).collect(),
            durations: vec![1; frames as usize],
            max_b_frames,
            gop,
        }
    }

    fn frames(&self) -> usize {
        self.pts.len()
    }

    /// Whether frame durations vary.
    fn is_variable(&self) -> bool {
        self.durations.windows(2).any(|w| w[0] != w[1])
    }

    /// Total duration in time-base units.
    fn total(&self) -> i64 {
        self.durations.iter().sum()
    }
}

#[derive(Debug, Clone, Copy)]
struct AudioPlan {
    /// FFmpeg encoder name.
    encoder: &'static str,
    rate: u32,
    channels: u32,
    samples: u64,
    tone_hz: u32,
    bit_rate: usize,
}

/// The VFR schedule in 1/90000 s ticks: blocks of ten frames alternate between 1/30 s and
/// 1/20 s durations, and frame 30 lasts 100 ms (a capture hiccup). 60 frames, 2.55 s in all.
fn vfr_durations() -> Vec<i64> {
    (0..60)
        .map(|i| match i {
            30 => 9000,
            i if i % 20 >= 10 => 4500,
            _ => 3000,
        })
        .collect()
}

fn plan(kind: Fixture) -> Result<(&'static str, Option<VideoPlan>, Option<AudioPlan>)> {
    Ok(match kind {
        Fixture::H264Mp4 => (
            "mp4",
            Some(VideoPlan::constant(VideoCodec::X264 { crf: 30 }, (640, 360), 25, 75, 3, 25)),
            Some(AudioPlan {
                encoder: "aac",
                rate: 48_000,
                channels: 2,
                samples: 3 * 48_000,
                tone_hz: 440,
                bit_rate: 64_000,
            }),
        ),
        Fixture::RawH264 => {
            ("h264", Some(VideoPlan::constant(VideoCodec::X264 { crf: 30 }, (704, 480), 15, 30, 0, 15)), None)
        }
        Fixture::MjpegAvi => (
            "avi",
            Some(VideoPlan::constant(VideoCodec::Mjpeg { q: 20 }, (704, 480), 15, 30, 0, 1)),
            Some(AudioPlan {
                encoder: "pcm_mulaw",
                rate: 8_000,
                channels: 1,
                samples: 2 * 8_000,
                tone_hz: 1_000,
                bit_rate: 0,
            }),
        ),
        Fixture::VfrMp4 => {
            let durations = vfr_durations();
            let pts = durations
                .iter()
                .scan(0i64, |t, d| {
                    let start = *t;
                    *t += d;
                    Some(start)
                })
                .collect();
            let total: i64 = durations.iter().sum();
            let video = VideoPlan {
                codec: VideoCodec::X264 { crf: 30 },
                width: 480,
                height: 270,
                pix_fmt: format::Pixel::YUV420P,
                frame_rate: Rational::new(30, 1),
                time_base: Rational::new(1, 90_000),
                pts,
                durations,
                max_b_frames: 0,
                gop: 30,
            };
            // Audio as long as the video: total/90000 s at 48 kHz.
            ensure!(total * 48_000 % 90_000 == 0, "VFR length not whole samples");
            let samples = (total * 48_000 / 90_000) as u64;
            (
                "mp4",
                Some(video),
                Some(AudioPlan { encoder: "aac", rate: 48_000, channels: 1, samples, tone_hz: 660, bit_rate: 48_000 }),
            )
        }
        Fixture::Wav => (
            "wav",
            None,
            Some(AudioPlan {
                encoder: "pcm_s16le",
                rate: 48_000,
                channels: 1,
                samples: 3 * 48_000,
                tone_hz: 440,
                bit_rate: 0,
            }),
        ),
        Fixture::Mp3 => (
            "mp3",
            None,
            Some(AudioPlan {
                encoder: "libmp3lame",
                rate: 44_100,
                channels: 1,
                samples: 3 * 44_100,
                tone_hz: 440,
                bit_rate: 64_000,
            }),
        ),
        Fixture::Proprietary => bail!("the proprietary blob is not written through FFmpeg"),
    })
}

// ---------------------------------------------------------------------------------------------
// Writing media through FFmpeg.

/// One output stream: a source filter graph feeding an encoder feeding the muxer.
struct Track {
    graph: filter::Graph,
    encoder: encoder::Encoder,
    stream: usize,
    /// Encoder time base (frame and packet timestamps come out of the encoder in it).
    encoder_tb: Rational,
    /// Stream time base, as chosen by the muxer in `write_header`.
    stream_tb: Rational,
    media: TrackMedia,
    finished: bool,
}

enum TrackMedia {
    Video { plan: VideoPlan, next: usize },
    Audio { plan: AudioPlan, sent: u64 },
}

impl Track {
    /// Presentation time in seconds of the next frame this track will send.
    fn next_time(&self) -> f64 {
        match &self.media {
            TrackMedia::Video { plan, next } => {
                let t = plan.pts.get(*next).copied().unwrap_or_else(|| plan.total());
                t as f64 * f64::from(self.encoder_tb)
            }
            TrackMedia::Audio { plan, sent } => *sent as f64 / f64::from(plan.rate),
        }
    }

    /// Send one frame (or, once the source is exhausted, end-of-stream) to the encoder and
    /// write out whatever packets it produces.
    fn step(&mut self, octx: &mut format::context::Output) -> Result<()> {
        let sink_name = "out";
        match &mut self.media {
            TrackMedia::Video { plan, next } => {
                if *next == plan.frames() {
                    self.encoder.send_eof().context("flushing the video encoder")?;
                    self.finished = true;
                } else {
                    let mut frame = frame::Video::empty();
                    self.graph
                        .get(sink_name)
                        .ok_or_else(|| anyhow!("video filter graph has no sink"))?
                        .sink()
                        .frame(&mut frame)
                        .context("pulling a picture from testsrc2")?;
                    let index = u32::try_from(*next)?;
                    paint_frame_index(&mut frame, index)?;
                    frame.set_pts(Some(plan.pts[*next]));
                    // testsrc2 marks every picture as an I-frame; let the encoder decide.
                    frame.set_kind(picture::Type::None);
                    self.encoder.send_frame(&frame).with_context(|| format!("encoding video frame {index}"))?;
                    *next += 1;
                }
            }
            TrackMedia::Audio { plan, sent } => {
                let mut frame = frame::Audio::empty();
                let got = self
                    .graph
                    .get(sink_name)
                    .ok_or_else(|| anyhow!("audio filter graph has no sink"))?
                    .sink()
                    .frame(&mut frame);
                match got {
                    Ok(()) => {
                        let remaining = plan.samples - *sent;
                        ensure!(remaining > 0, "sine produced more samples than asked for");
                        if frame.samples() as u64 > remaining {
                            frame.set_samples(remaining as usize);
                        }
                        frame.set_pts(Some(i64::try_from(*sent)?));
                        *sent += frame.samples() as u64;
                        self.encoder.send_frame(&frame).context("encoding an audio frame")?;
                    }
                    Err(ffmpeg::Error::Eof) => {
                        ensure!(*sent == plan.samples, "sine ended after {sent} of {} samples", plan.samples);
                        self.encoder.send_eof().context("flushing the audio encoder")?;
                        self.finished = true;
                    }
                    Err(e) => return Err(e).context("pulling samples from sine"),
                }
            }
        }
        self.drain(octx)
    }

    /// Receive every packet the encoder has ready and hand it to the muxer.
    fn drain(&mut self, octx: &mut format::context::Output) -> Result<()> {
        let mut packet = Packet::empty();
        loop {
            match self.encoder.receive_packet(&mut packet) {
                Ok(()) => {
                    if let TrackMedia::Video { plan, .. } = &self.media
                        && packet.duration() <= 0
                        && let Some(pts) = packet.pts()
                        && let Ok(i) = plan.pts.binary_search(&pts)
                    {
                        packet.set_duration(plan.durations[i]);
                    }
                    packet.set_stream(self.stream);
                    packet.rescale_ts(self.encoder_tb, self.stream_tb);
                    packet.write_interleaved(octx).context("writing a packet to the muxer")?;
                }
                Err(ffmpeg::Error::Other { errno: ffmpeg::error::EAGAIN }) | Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(e) => return Err(e).context("receiving a packet from the encoder"),
            }
        }
    }
}

fn write_media(kind: Fixture, path: &Path) -> Result<FixtureInfo> {
    let (muxer, video, audio) = plan(kind)?;
    let mut octx =
        format::output_as(path, muxer).with_context(|| format!("creating {muxer} output {}", path.display()))?;
    let global_header = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);

    let mut tracks = Vec::new();
    let mut info = FixtureInfo::empty(kind);
    info.container = Some(muxer);
    if let Some(plan) = video {
        info.video_codec = Some(match plan.codec {
            VideoCodec::X264 { .. } => "h264",
            VideoCodec::Mjpeg { .. } => "mjpeg",
        });
        info.video_frames = u32::try_from(plan.frames())?;
        info.width = plan.width;
        info.height = plan.height;
        info.frame_rate = (plan.frame_rate.numerator(), plan.frame_rate.denominator());
        info.variable_frame_rate = plan.is_variable();
        info.max_b_frames = plan.max_b_frames;
        info.gop = plan.gop;
        let (tb_num, tb_den) = (i64::from(plan.time_base.numerator()), i64::from(plan.time_base.denominator()));
        info.frame_times = plan.pts.iter().map(|&p| (p * tb_num, tb_den)).collect();
        info.frame_durations = plan.durations.iter().map(|&d| (d * tb_num, tb_den)).collect();
        info.video_duration = (plan.total() * tb_num, tb_den);
        tracks.push(add_video_track(&mut octx, plan, global_header)?);
    }
    if let Some(plan) = audio {
        info.audio_codec = Some(match plan.encoder {
            "libmp3lame" => "mp3",
            other => other,
        });
        info.audio_sample_rate = plan.rate;
        info.audio_channels = plan.channels;
        info.audio_samples = plan.samples;
        info.audio_tone_hz = plan.tone_hz;
        tracks.push(add_audio_track(&mut octx, plan, global_header)?);
    }

    // Bit-exact muxing: no library version strings, so output depends only on the inputs.
    let mut opts = Dictionary::new();
    opts.set("fflags", "+bitexact");
    octx.write_header_with(opts).context("writing the container header")?;
    for track in &mut tracks {
        track.stream_tb =
            octx.stream(track.stream).ok_or_else(|| anyhow!("stream {} vanished", track.stream))?.time_base();
    }

    // Feed whichever track is furthest behind so the muxer sees packets in time order.
    while let Some(track) =
        tracks.iter_mut().filter(|t| !t.finished).min_by(|a, b| a.next_time().total_cmp(&b.next_time()))
    {
        track.step(&mut octx)?;
    }
    octx.write_trailer().context("writing the container trailer")?;
    Ok(info)
}

fn add_video_track(octx: &mut format::context::Output, plan: VideoPlan, global_header: bool) -> Result<Track> {
    let (codec, mut opts) = match plan.codec {
        VideoCodec::X264 { crf } => {
            let codec = encoder::find_by_name("libx264").ok_or_else(|| anyhow!("FFmpeg has no libx264 encoder"))?;
            let mut opts = Dictionary::new();
            opts.set("preset", "veryfast");
            opts.set("crf", &crf.to_string());
            // Fixed closed GOPs starting with IDR pictures, as cameras write them (no scene cuts),
            // and a fixed B-frame pattern, so the structure is known.
            opts.set("x264-params", "scenecut=0:b-adapt=0:open-gop=0");
            // One thread: tiny files, many tests in parallel, and no doubt about repeatability.
            opts.set("threads", "1");
            (codec, opts)
        }
        VideoCodec::Mjpeg { .. } => {
            let codec = encoder::find(codec::Id::MJPEG).ok_or_else(|| anyhow!("FFmpeg has no MJPEG encoder"))?;
            (codec, Dictionary::new())
        }
    };
    let mut enc = codec::Context::new_with_codec(codec).encoder().video().context("creating the video encoder")?;
    enc.set_width(plan.width);
    enc.set_height(plan.height);
    enc.set_format(plan.pix_fmt);
    enc.set_time_base(plan.time_base);
    enc.set_frame_rate(Some(plan.frame_rate));
    enc.set_gop(plan.gop);
    enc.set_max_b_frames(plan.max_b_frames as usize);
    let mut flags = codec::Flags::BITEXACT;
    if global_header {
        flags |= codec::Flags::GLOBAL_HEADER;
    }
    if let VideoCodec::Mjpeg { q } = plan.codec {
        // Constant quantiser by pinning rate control's range (AV_CODEC_FLAG_QSCALE would take
        // it from each frame's `quality` field, which the safe API cannot set).
        enc.set_qmin(q);
        enc.set_qmax(q);
        enc.set_color_range(ffmpeg::color::Range::JPEG);
        opts.set("huffman", "optimal");
    }
    enc.set_flags(flags);
    let encoder = enc.open_with(opts).with_context(|| format!("opening the {} encoder", codec.name()))?;

    let mut stream = octx.add_stream(codec).context("adding the video stream")?;
    stream.set_parameters(&encoder);
    stream.set_time_base(plan.time_base);
    if !plan.is_variable() {
        stream.set_avg_frame_rate(plan.frame_rate);
    }
    let stream = stream.index();

    let graph = source_graph(
        &format!(
            "testsrc2=size={}x{}:rate={},format={}",
            plan.width,
            plan.height,
            plan.frame_rate,
            plan.pix_fmt.descriptor().ok_or_else(|| anyhow!("unknown pixel format"))?.name(),
        ),
        false,
    )?;
    let encoder_tb = plan.time_base;
    Ok(Track {
        graph,
        encoder: encoder.0.0,
        stream,
        encoder_tb,
        stream_tb: encoder_tb,
        media: TrackMedia::Video { plan, next: 0 },
        finished: false,
    })
}

fn add_audio_track(octx: &mut format::context::Output, plan: AudioPlan, global_header: bool) -> Result<Track> {
    let codec = encoder::find_by_name(plan.encoder).ok_or_else(|| anyhow!("FFmpeg has no {} encoder", plan.encoder))?;
    let sample_fmt = codec
        .audio()
        .context("not an audio codec")?
        .formats()
        .and_then(|mut f| f.next())
        .ok_or_else(|| anyhow!("{} lists no sample formats", plan.encoder))?;
    let (layout, layout_name) = match plan.channels {
        1 => (ChannelLayout::MONO, "mono"),
        2 => (ChannelLayout::STEREO, "stereo"),
        n => bail!("no channel layout for {n} channels"),
    };
    let mut enc = codec::Context::new_with_codec(codec).encoder().audio().context("creating the audio encoder")?;
    enc.set_rate(i32::try_from(plan.rate)?);
    enc.set_channel_layout(layout);
    enc.set_channels(i32::try_from(plan.channels)?);
    enc.set_format(sample_fmt);
    enc.set_time_base(Rational::new(1, i32::try_from(plan.rate)?));
    if plan.bit_rate > 0 {
        enc.set_bit_rate(plan.bit_rate);
    }
    let mut flags = codec::Flags::BITEXACT;
    if global_header {
        flags |= codec::Flags::GLOBAL_HEADER;
    }
    enc.set_flags(flags);
    let encoder = enc.open().with_context(|| format!("opening the {} encoder", plan.encoder))?;
    let frame_size = encoder.frame_size();

    let mut stream = octx.add_stream(codec).context("adding the audio stream")?;
    stream.set_parameters(&encoder);
    stream.set_time_base(Rational::new(1, i32::try_from(plan.rate)?));
    let stream = stream.index();

    // `duration` is cut at a whole sample by sine; exact for every plan here.
    let duration_us = plan.samples * 1_000_000 / u64::from(plan.rate);
    let mut graph = source_graph(
        &format!(
            "sine=frequency={}:sample_rate={}:duration={duration_us}us,\
         aformat=sample_fmts={}:channel_layouts={layout_name}",
            plan.tone_hz,
            plan.rate,
            sample_fmt.name(),
        ),
        true,
    )?;
    if frame_size > 0 && !codec.capabilities().contains(codec::capabilities::Capabilities::VARIABLE_FRAME_SIZE) {
        graph.get("out").ok_or_else(|| anyhow!("audio filter graph has no sink"))?.sink().set_frame_size(frame_size);
    }
    Ok(Track {
        graph,
        encoder: encoder.0.0,
        stream,
        encoder_tb: Rational::new(1, i32::try_from(plan.rate)?),
        stream_tb: Rational::new(1, i32::try_from(plan.rate)?),
        media: TrackMedia::Audio { plan, sent: 0 },
        finished: false,
    })
}

/// A configured filter graph: the chain `spec` (starting at a source filter) feeding a sink
/// named "out" (`abuffersink` if `audio`, else `buffersink`).
fn source_graph(spec: &str, audio: bool) -> Result<filter::Graph> {
    let sink_name = if audio { "abuffersink" } else { "buffersink" };
    let mut graph = filter::Graph::new();
    let sink = filter::find(sink_name).ok_or_else(|| anyhow!("FFmpeg has no {sink_name}"))?;
    graph.add(&sink, "out", "").context("adding the sink")?;
    graph.input("out", 0).and_then(|p| p.parse(spec)).with_context(|| format!("parsing filter graph {spec:?}"))?;
    graph.validate().with_context(|| format!("configuring filter graph {spec:?}"))?;
    Ok(graph)
}

// ---------------------------------------------------------------------------------------------
// The proprietary blob.

/// splitmix64: a tiny, well-mixed deterministic generator (no RNG crate needed).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The bytes of the [`Fixture::Proprietary`] blob: a vendor-looking header (magic, version,
/// channel, a fake timestamp, payload length) followed by pseudo-random "encrypted" payload.
pub fn proprietary_blob() -> Vec<u8> {
    let mut out = Vec::with_capacity(PROPRIETARY_LEN);
    out.extend_from_slice(PROPRIETARY_MAGIC);
    out.extend_from_slice(&3u16.to_le_bytes()); // format version
    out.extend_from_slice(&1u16.to_le_bytes()); // camera channel
    out.extend_from_slice(&1_700_000_000u64.to_le_bytes()); // recording start, Unix seconds
    let payload = (PROPRIETARY_LEN - out.len() - 4) as u32;
    out.extend_from_slice(&payload.to_le_bytes());
    let mut state = 0xC0D1_F1ED_5EED_0001u64;
    while out.len() < PROPRIETARY_LEN {
        out.extend_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    out.truncate(PROPRIETARY_LEN);
    out
}

fn write_proprietary(path: &Path) -> Result<FixtureInfo> {
    fs::write(path, proprietary_blob()).with_context(|| format!("writing {}", path.display()))?;
    Ok(FixtureInfo::empty(Fixture::Proprietary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn painted(width: usize, height: usize, index: u32) -> Vec<u8> {
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        let mut y = vec![90u8; width * height];
        let mut u = vec![60u8; cw * ch];
        let mut v = vec![200u8; cw * ch];
        paint_frame_index_planes((&mut y, width), (&mut u, cw), (&mut v, cw), width, height, index).unwrap();
        y
    }

    #[test]
    fn geometry_matches_spec() {
        let g = band_geometry(640, 360).unwrap();
        assert_eq!((g.band_height, g.cell_width), (36, 32));
        let g = band_geometry(704, 480).unwrap();
        assert_eq!((g.band_height, g.cell_width), (48, 34));
        let g = band_geometry(100, 50).unwrap();
        assert_eq!((g.band_height, g.cell_width), (16, 4));
        assert!(band_geometry(39, 100).is_none());
        assert!(band_geometry(640, 15).is_none());
    }

    #[test]
    fn band_round_trips() {
        for &(w, h) in &[(640, 360), (704, 480), (480, 270), (41, 17)] {
            for index in [0, 1, 2, 5, 74, 1000, 131_071, MAX_FRAME_INDEX] {
                let y = painted(w, h, index);
                assert_eq!(read_frame_index(&y, w, w, h), Some(index), "{w}x{h} #{index}");
            }
        }
    }

    #[test]
    fn band_survives_range_conversion_and_noise() {
        let (w, h) = (640, 360);
        let y = painted(w, h, 12345);
        // Limited -> full range, plus a deterministic ripple.
        let full: Vec<u8> = y
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let v = (f64::from(p) - 16.0) * 255.0 / 219.0 + ((i % 7) as f64 - 3.0) * 4.0;
                v.clamp(0.0, 255.0) as u8
            })
            .collect();
        assert_eq!(read_frame_index(&full, w, w, h), Some(12345));
    }

    #[test]
    fn flat_or_short_planes_are_rejected() {
        assert_eq!(read_frame_index(&vec![128u8; 640 * 360], 640, 640, 360), None);
        assert_eq!(read_frame_index(&[0u8; 100], 640, 640, 360), None);
        let y = painted(640, 360, 7);
        assert_eq!(read_frame_index(&y, 600, 640, 360), None);
    }

    #[test]
    fn paint_rejects_oversized_index() {
        let mut y = vec![0u8; 64 * 32];
        let mut u = vec![0u8; 32 * 16];
        let mut v = vec![0u8; 32 * 16];
        assert!(
            paint_frame_index_planes((&mut y, 64), (&mut u, 32), (&mut v, 32), 64, 32, MAX_FRAME_INDEX + 1).is_err()
        );
    }

    #[test]
    fn proprietary_blob_is_deterministic() {
        let a = proprietary_blob();
        assert_eq!(a.len(), PROPRIETARY_LEN);
        assert!(a.starts_with(PROPRIETARY_MAGIC));
        assert_eq!(a, proprietary_blob());
    }
}
