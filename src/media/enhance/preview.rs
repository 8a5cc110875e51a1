//! Before and after: the source's frame and the enhanced frame shown at the same moment, side
//! by side, captured while the enhancement runs (no second decode); for sound, the
//! spectrograms of the span before and after, one above the other.

use anyhow::Result;
use ffmpeg::{Rational, frame};
use ffmpeg_next as ffmpeg;

use super::Segment;
use crate::media::ffi::Orientation;
use crate::media::still::{self, Picture, Render};

/// The two pictures, rendered upright at their display size.
pub struct BeforeAfter {
    pub before: Picture,
    pub after: Picture,
    /// The source frame shown (presentation order), or `None` for spectrograms.
    pub frame: Option<usize>,
    /// Side by side (pictures) or one above the other (spectrograms).
    pub beside: bool,
}

impl BeforeAfter {
    /// One PNG: before | after (or before over after), with `caption` in a banner below.
    pub fn png(&self, caption: &[String], text: &[(&str, String)]) -> Result<Vec<u8>> {
        const GAP: u32 = 8;
        let (a, b) = (&self.before, &self.after);
        let mut sheet = if self.beside {
            let (w, h) = (a.width + GAP + b.width, a.height.max(b.height));
            let mut sheet = Picture::blank(w, h);
            blit(&mut sheet, a, 0, 0);
            blit(&mut sheet, b, a.width + GAP, 0);
            sheet
        } else {
            let (w, h) = (a.width.max(b.width), a.height + GAP + b.height);
            let mut sheet = Picture::blank(w, h);
            blit(&mut sheet, a, 0, 0);
            blit(&mut sheet, b, 0, a.height + GAP);
            sheet
        };
        still::add_caption(&mut sheet, caption, 640)?;
        still::encode_png(&sheet, text)
    }
}

fn blit(sheet: &mut Picture, pic: &Picture, x: u32, y: u32) {
    let (sw, pw) = (sheet.width as usize, pic.width as usize);
    for row in 0..pic.height as usize {
        let to = ((y as usize + row) * sw + x as usize) * 3;
        sheet.rgb[to..to + pw * 3].copy_from_slice(&pic.rgb[row * pw * 3..(row + 1) * pw * 3]);
    }
}

/// Keeps the source frame asked for and the output frame nearest the moment it is shown.
pub(crate) struct Capture {
    look: usize,
    look_us: i64,
    before: Option<(frame::Video, Orientation)>,
    after: Option<(frame::Video, i64)>,
}

impl Capture {
    pub(crate) fn new(look: usize, look_us: i64) -> Capture {
        Capture { look, look_us, before: None, after: None }
    }

    pub(crate) fn before(&mut self, f: frame::Video, orientation: Orientation) {
        self.before = Some((f, orientation));
    }

    /// An output frame: kept when it is shown nearer the moment than the one kept so far.
    pub(crate) fn offer(&mut self, f: &frame::Video, segments: &[Segment], in_tb: Rational) {
        let tb = super::output_timing(segments, in_tb).0;
        let Some(pts) = f.pts() else { return };
        let us = crate::media::time::ticks_to_us(pts, tb.numerator(), tb.denominator().max(1));
        let d = (us - self.look_us).abs();
        if self.after.as_ref().is_none_or(|(_, best)| d < *best) {
            self.after = Some((f.clone(), d));
        }
    }

    pub(crate) fn finish(self) -> Option<BeforeAfter> {
        let (before, orientation) = self.before?;
        let (mut after, _) = self.after?;
        full_range_twin(&mut after);
        let opts = Render { no_sar: false, deinterlace: false };
        Some(BeforeAfter {
            before: still::render(&before, orientation, opts).ok()?,
            after: still::render(&after, orientation, opts).ok()?,
            frame: Some(self.look),
            beside: true,
        })
    }
}

/// A picture marked full range in a plain YUV format, as its "J" twin, which is how the still
/// renderer knows full range.
fn full_range_twin(f: &mut frame::Video) {
    if f.color_range() != ffmpeg::util::color::Range::JPEG {
        return;
    }
    if let Some(&(twin, _)) = super::FULL_RANGE_TWINS.iter().find(|(_, plain)| *plain == f.format()) {
        f.set_format(twin);
    }
}

/// A spectrogram (FFmpeg's showspectrumpic, with its legend) of sound fed frame by frame: 0 to
/// 8 kHz, where speech, hum and its harmonics lie.
pub(crate) struct Spectrogram {
    graph: ffmpeg::filter::Graph,
}

impl Spectrogram {
    pub(crate) fn new(rate: u32, format: ffmpeg::format::Sample, layout: ffmpeg::ChannelLayout) -> Result<Spectrogram> {
        let mut graph = ffmpeg::filter::Graph::new();
        graph.add(
            &ffmpeg::filter::find("abuffer").expect("abuffer"),
            "in",
            &crate::media::ffi::abuffer_args(Rational::new(1, rate as i32), rate, format, layout),
        )?;
        graph.add(&ffmpeg::filter::find("buffersink").expect("buffersink"), "out", "")?;
        graph.output("in", 0)?.input("out", 0)?.parse(
            "aformat=channel_layouts=mono,showspectrumpic=s=1024x320:legend=1:scale=log:fscale=lin:color=intensity:stop=8000,format=rgb24",
        )?;
        graph.validate()?;
        Ok(Spectrogram { graph })
    }

    pub(crate) fn add(&mut self, f: &frame::Audio) {
        // A copy of the reference (the frame goes on to the enhancement too); a frame it refuses
        // only thins the picture.
        let mut source = self.graph.get("in").expect("source");
        // SAFETY: `f` is a valid audio frame; av_buffersrc_write_frame takes its own reference.
        let _ = unsafe { ffmpeg::ffi::av_buffersrc_write_frame(source.as_mut_ptr(), f.as_ptr()) };
    }

    /// The picture, once all the sound was added.
    pub(crate) fn finish(mut self) -> Option<Picture> {
        self.graph.get("in").expect("source").source().flush().ok()?;
        let mut f = frame::Video::empty();
        self.graph.get("out").expect("sink").sink().frame(&mut f).ok()?;
        let (w, h) = (f.width(), f.height());
        let stride = f.stride(0);
        let mut pic = Picture::blank(w, h);
        for row in 0..h as usize {
            pic.rgb[row * w as usize * 3..(row + 1) * w as usize * 3]
                .copy_from_slice(&f.data(0)[row * stride..row * stride + w as usize * 3]);
        }
        Some(pic)
    }
}
