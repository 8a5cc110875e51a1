//! Enhancement: a recipe's steps run as FFmpeg filter graphs (and custody's exact frame
//! averaging) over the decoded pictures and sound of a span, encoded losslessly (FFV1 video,
//! FLAC audio, in Matroska; FLAC alone for audio items) or, when asked, as an H.264/AAC MP4 to
//! deliver. Every output frame is hashed as FFmpeg's `framemd5` hashes it, and the graph FFmpeg
//! really ran (the filters it inserted, every option's value) is returned for the record.
//!
//! Deterministic by construction, so `custody redo` reproduces a result bit for bit: the filter
//! graphs and the encoders run on a stated number of threads that is recorded, FFV1 is cut into
//! a fixed number of slices, the muxer writes no time or random identifier (`+bitexact`), and
//! nothing depends on the time of day.

pub mod preview;
pub mod recipe;
pub mod steps;

use std::collections::VecDeque;
use std::ffi::CStr;
use std::path::Path;

use anyhow::{Context as _, Result, anyhow};
use ffmpeg::{Rational, codec, encoder, filter, format, frame, media};
use ffmpeg_next as ffmpeg;
use md5::Digest as _;
use serde::Serialize;

use self::recipe::Recipe;
use self::steps::{Medium, Op};
use super::index::FrameIndex;
use super::probe::open_input;
use crate::error;

/// How the result is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Deliver {
    /// FFV1 video and FLAC audio in Matroska (FLAC alone for audio): every output frame kept exactly.
    Lossless,
    /// Lossless H.264 (x264 QP 0) and FLAC in Matroska: every frame kept exactly, in a codec more players decode.
    H264Lossless,
    /// H.264 (x264 CRF 18, visually lossless) and AAC in MP4 (M4A for audio), for playing anywhere.
    Mp4,
}

impl Deliver {
    pub fn name(self) -> &'static str {
        match self {
            Deliver::Lossless => "lossless",
            Deliver::H264Lossless => "h264-lossless",
            Deliver::Mp4 => "mp4",
        }
    }

    /// Every output frame is in the file exactly.
    pub fn is_lossless(self) -> bool {
        self != Deliver::Mp4
    }
}

/// What to make, and how.
pub struct Job<'a> {
    pub index: &'a FrameIndex,
    /// Frames `first..=last` (presentation order) of the indexed stream.
    pub frames: (usize, usize),
    /// A span was asked (`--from/--to`): audio is cut to it sample by sample.
    pub span: bool,
    pub recipe: &'a Recipe,
    pub deliver: Deliver,
    /// Threads for the filter graphs and the encoders (recorded: some encoders' output depends on it).
    pub threads: usize,
    /// Where the audio of a video item is encoded first (a scratch file).
    pub audio_scratch: Option<&'a Path>,
    /// The frame shown before and after (default: the middle of the span).
    pub look_at: Option<usize>,
}

/// One output stream, as made.
#[derive(Clone, Debug, Serialize)]
pub struct StreamMade {
    pub kind: &'static str,
    pub codec: String,
    /// Pixel or sample format of the frames hashed (and encoded).
    pub format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u32>,
    pub time_base: String,
    pub frames: u64,
    /// MD5 of each frame as given to the encoder, packed as `framemd5` packs it.
    pub frame_md5: Vec<String>,
}

/// One filter graph as FFmpeg ran it.
#[derive(Clone, Debug, Serialize)]
pub struct GraphMade {
    pub medium: &'static str,
    /// The chain custody built from the recipe.
    pub chain: String,
    /// Every filter in the configured graph (including those FFmpeg inserted to convert
    /// formats), in order, with every option's value: `name=filter:key=value:...`.
    pub filters: Vec<String>,
}

#[derive(Serialize)]
pub struct Made {
    pub streams: Vec<StreamMade>,
    pub graphs: Vec<GraphMade>,
    /// The encoders and their options.
    pub encoders: Vec<String>,
    /// The picture before and after at one frame, or the sound's spectrograms before and after.
    #[serde(skip)]
    pub before_after: Option<preview::BeforeAfter>,
    /// How players show the source (its display matrix, in words), kept for the output.
    #[serde(skip)]
    pub orientation: Option<String>,
}

/// Video segments: FFmpeg filter chains, and custody's averaging between them.
fn video_ops(recipe: &Recipe) -> Result<Vec<Op>> {
    let mut ops: Vec<Op> = Vec::new();
    for p in recipe.steps.iter().filter(|p| p.step.medium == Medium::Video) {
        let op =
            p.step.build(&p.values, &steps::Context::default()).map_err(|e| error::input(format!("{}: {e}", p.at)))?;
        match (ops.last_mut(), op) {
            (Some(Op::Filters(chain)), Op::Filters(more)) => {
                chain.push(',');
                chain.push_str(&more);
            }
            (_, Op::Average(n)) => {
                // Averaging works on 8-bit planar pictures: convert to one first where needed.
                match ops.last_mut() {
                    Some(Op::Filters(chain)) => {
                        chain.push(',');
                        chain.push_str(AVERAGE_FORMATS);
                    }
                    _ => ops.push(Op::Filters(AVERAGE_FORMATS.to_owned())),
                }
                ops.push(Op::Average(n));
            }
            (_, op) => ops.push(op),
        }
    }
    Ok(ops)
}

/// The video encoder of a lossless delivery.
fn video_encoder(deliver: Deliver) -> &'static str {
    if deliver == Deliver::H264Lossless { "libx264" } else { "ffv1" }
}

/// End the video chain with the pixel formats the encoder takes, so FFmpeg converts (losslessly
/// where it can: packed RGB to planar) what a step gave that the encoder cannot store.
fn end_with_encoder_formats(ops: &mut Vec<Op>, deliver: Deliver) {
    let formats = match deliver {
        Deliver::Mp4 => "yuv420p".to_owned(),
        Deliver::Lossless | Deliver::H264Lossless => encoder::find_by_name(video_encoder(deliver))
            .and_then(|c| c.video().ok())
            .and_then(|v| {
                v.formats().map(|f| f.filter_map(|p| p.descriptor().map(|d| d.name().to_owned())).collect::<Vec<_>>())
            })
            .map(|names| names.join("|"))
            .unwrap_or_else(|| "yuv420p".to_owned()),
    };
    let last = format!("format=pix_fmts={formats}");
    match ops.last_mut() {
        Some(Op::Filters(chain)) => {
            chain.push(',');
            chain.push_str(&last);
        }
        _ => ops.push(Op::Filters(last)),
    }
}

const AVERAGE_FORMATS: &str = steps::PLANAR_8BIT;

/// The audio chain for a stream of `ctx`.
fn audio_chain(recipe: &Recipe, ctx: &steps::Context) -> Result<String> {
    let mut parts = Vec::new();
    for p in recipe.steps.iter().filter(|p| p.step.medium == Medium::Audio) {
        match p.step.build(&p.values, ctx).map_err(|e| error::input(format!("{}: {e}", p.at)))? {
            Op::Filters(s) => parts.push(s),
            Op::Average(_) => unreachable!("averaging is a video step"),
        }
    }
    Ok(parts.join(","))
}

/// Make the enhanced copy of `src` in `dst`.
pub fn render(src: &Path, dst: &Path, job: &Job) -> Result<Made> {
    super::init();
    let index = job.index;
    let (first, last) = job.frames;
    let t0 = index.to_us(index.frames[first].pts);
    let t1 = index.to_us(index.frames[last].pts) + index.frame_len_us(last);
    let mut made =
        Made { streams: Vec::new(), graphs: Vec::new(), encoders: Vec::new(), before_after: None, orientation: None };
    // What the streams say, from one opening of the file (a day's MP4 header is megabytes).
    let facts = {
        let input = open_input(src).map_err(|e| error::input(format!("FFmpeg cannot open {}: {e}", src.display())))?;
        let video = (!index.audio).then(|| input.stream(index.stream)).flatten();
        // The rotation a player applies goes along, unless the recipe turns or mirrors the
        // pixels itself (the examiner then set the orientation).
        let turns = job.recipe.steps.iter().any(|p| matches!(p.step.name, "rotate" | "flip"));
        SourceFacts {
            audio: if index.audio {
                Some(index.stream)
            } else {
                input.streams().best(media::Type::Audio).map(|s| s.index())
            },
            rate: video.as_ref().map_or(Rational::new(0, 1), |s| s.avg_frame_rate()),
            matrix: video.as_ref().and_then(super::ffi::display_matrix).filter(|_| !turns),
            orientation: video.as_ref().and_then(|s| super::ffi::display_orientation(s).describe()).filter(|_| !turns),
        }
    };
    let audio_stream = facts.audio;
    let span_us = (job.span || !index.audio).then_some((t0, t1));
    if index.audio {
        let container = if job.deliver == Deliver::Mp4 { "ipod" } else { "flac" };
        audio_pass(src, dst, container, audio_stream.expect("audio item"), span_us, job, &mut made)?;
        return Ok(made);
    }
    let scratch = match (audio_stream, job.audio_scratch) {
        (Some(a), Some(scratch)) => {
            let container = if job.deliver == Deliver::Mp4 { "mp4" } else { "matroska" };
            audio_pass(src, scratch, container, a, span_us, job, &mut made)?;
            Some(scratch)
        }
        _ => None,
    };
    made.orientation = facts.orientation.clone();
    video_pass(src, dst, scratch, &facts, job, &mut made)?;
    // Video first in the record, as in the file.
    made.streams.rotate_right(1);
    made.graphs.sort_by_key(|g| g.medium != "video");
    Ok(made)
}

// ------------------------------------------------------------------------------- video

pub(crate) struct Segment {
    op: Op,
    graph: Option<filter::Graph>,
    average: Option<Averager>,
}

struct Encoding {
    output: format::context::Output,
    encoder: encoder::Video,
    stream: usize,
    enc_tb: Rational,
    audio: Option<AudioMerge>,
    hashes: Hasher,
    format: format::Pixel,
    /// The encoder and its options, for the record.
    described: String,
    /// Each frame's duration by its timestamp (known once the next frame arrives), for the
    /// packets: an MP4 whose last sample lasts nothing loses that frame to its edit list.
    durations: std::collections::HashMap<i64, i64>,
    last_pts: Option<i64>,
    last_duration: i64,
}

/// The audio encoded beforehand, read back and interleaved with the video as it is written.
struct AudioMerge {
    input: format::context::Input,
    from: usize,
    to: usize,
    in_tb: Rational,
    pending: Option<ffmpeg::Packet>,
    done: bool,
}

impl AudioMerge {
    /// Write the audio packets up to `until_us` (everything with `None`).
    fn write_until(&mut self, output: &mut format::context::Output, until_us: Option<i64>) -> Result<()> {
        let out_tb = output.stream(self.to).expect("audio stream").time_base();
        loop {
            if self.pending.is_none() && !self.done {
                let mut p = ffmpeg::Packet::empty();
                match p.read(&mut self.input) {
                    Ok(()) if p.stream() == self.from => self.pending = Some(p),
                    Ok(()) => continue,
                    Err(ffmpeg::Error::Eof) => self.done = true,
                    Err(e) => return Err(anyhow!("reading back the encoded audio: {e}")),
                }
            }
            let Some(p) = self.pending.as_ref() else { return Ok(()) };
            let at = p
                .dts()
                .or(p.pts())
                .map(|t| super::time::ticks_to_us(t, self.in_tb.numerator(), self.in_tb.denominator()));
            if let (Some(until), Some(at)) = (until_us, at)
                && at > until
            {
                return Ok(());
            }
            let mut p = self.pending.take().expect("pending");
            p.set_stream(self.to);
            p.set_position(-1);
            p.rescale_ts(self.in_tb, out_tb);
            p.write_interleaved(output)?;
        }
    }
}

/// What the source's streams say, read once.
struct SourceFacts {
    audio: Option<usize>,
    rate: Rational,
    matrix: Option<Vec<u8>>,
    orientation: Option<String>,
}

fn video_pass(
    src: &Path,
    dst: &Path,
    audio: Option<&Path>,
    facts: &SourceFacts,
    job: &Job,
    made: &mut Made,
) -> Result<()> {
    let index = job.index;
    let (first, last) = job.frames;
    let mut ops = video_ops(job.recipe)?;
    end_with_encoder_formats(&mut ops, job.deliver);
    let mut segments: Vec<Segment> = ops.into_iter().map(|op| Segment { op, graph: None, average: None }).collect();
    let in_tb = Rational::new(index.time_base.0, index.time_base.1);
    let rate = facts.rate;
    let first_pts = index.frames[first].pts;
    let out_to = VideoOut { dst, audio, matrix: facts.matrix.as_deref() };
    let mut enc: Option<Encoding> = None;
    let bar = progress(last - first + 1, "enhancing");
    // The frame shown before and after: the source's as decoded, and the output frame shown
    // at the same moment.
    let look = job.look_at.unwrap_or(first + (last - first) / 2).clamp(first, last);
    let look_us = index.to_us(index.frames[look].pts - first_pts);
    let mut capture = preview::Capture::new(look, look_us);
    let mut run = |n: usize, decoded: frame::Video, orientation: super::ffi::Orientation| -> Result<()> {
        if n == look {
            capture.before(super::ffi::frame_ref(&decoded), orientation);
        }
        let mut f = decoded;
        f.set_pts(Some(index.frames[n].pts - first_pts));
        f.set_kind(ffmpeg::picture::Type::None);
        plain_range(&mut f);
        let out = push(&mut segments, 0, f, in_tb, rate, job.threads, &mut made.graphs)?;
        for o in out {
            capture.offer(&o, &segments, in_tb);
            encode_video(&mut enc, o, &out_to, &segments, in_tb, job)?;
        }
        bar.inc(1);
        Ok(())
    };
    // Decoding runs on a thread of its own, one picture at a time as before (so a damaged
    // stream conceals the same way on every machine), ahead of the filters and the encoder.
    let given = std::thread::scope(|scope| -> Result<usize> {
        let (to, from) = std::sync::mpsc::sync_channel::<(usize, frame::Video, super::ffi::Orientation)>(4);
        let decoding = scope.spawn(move || {
            super::still::each_frame(
                src,
                index,
                (first, last),
                |_| true,
                |n, f, o| to.send((n, super::ffi::frame_ref(f), o)).map_err(|_| anyhow!("the enhancement stopped")),
            )
        });
        let mut ran = Ok(());
        for (n, f, o) in from.iter() {
            ran = run(n, f, o);
            if ran.is_err() {
                break;
            }
        }
        drop(from);
        let decoded = decoding.join().expect("the decoding thread");
        ran?;
        decoded
    })?;
    bar.finish_and_clear();
    if given != last - first + 1 {
        return Err(error::input(format!(
            "{}: decoded {given} of the {} frames of the span (the stream is damaged there); nothing was recorded",
            src.display(),
            last - first + 1
        )));
    }
    // Flush every segment in turn: what the first holds back goes through the rest.
    for i in 0..segments.len() {
        let out = flush(&mut segments, i, job.threads, &mut made.graphs)?;
        for o in out {
            capture.offer(&o, &segments, in_tb);
            encode_video(&mut enc, o, &out_to, &segments, in_tb, job)?;
        }
    }
    made.before_after = capture.finish();
    let Some(mut e) = enc else {
        return Err(error::input(format!(
            "{}: the recipe left no frames to encode; nothing was recorded",
            src.display()
        )));
    };
    if let Some(last) = e.last_pts {
        e.durations.insert(last, e.last_duration);
    }
    e.encoder.send_eof()?;
    drain(&mut e)?;
    if let Some(a) = e.audio.as_mut() {
        a.write_until(&mut e.output, None)?;
    }
    e.output.write_trailer().map_err(|err| error::environment(format!("cannot finish the output: {err}")))?;
    let (w, h) = (e.encoder.width(), e.encoder.height());
    let md5 = std::mem::replace(&mut e.hashes, Hasher::idle()).finish();
    made.encoders.insert(0, std::mem::take(&mut e.described));
    made.streams.push(StreamMade {
        kind: "video",
        codec: e.encoder.id().name().to_owned(),
        format: e.format.descriptor().map(|d| d.name().to_owned()).unwrap_or_default(),
        width: Some(w),
        height: Some(h),
        sample_rate: None,
        channels: None,
        time_base: format!("{}/{}", e.enc_tb.numerator(), e.enc_tb.denominator()),
        frames: md5.len() as u64,
        frame_md5: md5,
    });
    Ok(())
}

/// Full-range "J" formats are read as their plain twin marked full range: the same pixels,
/// which every encoder and filter takes, converted by nothing.
fn plain_range(f: &mut frame::Video) {
    if let Some(&(_, plain)) = FULL_RANGE_TWINS.iter().find(|(j, _)| *j == f.format()) {
        f.set_format(plain);
        f.set_color_range(ffmpeg::util::color::Range::JPEG);
    }
}

/// Each full-range "J" pixel format and its plain twin (the same layout, limited range unless
/// the frame says otherwise).
pub(crate) const FULL_RANGE_TWINS: [(format::Pixel, format::Pixel); 5] = [
    (format::Pixel::YUVJ420P, format::Pixel::YUV420P),
    (format::Pixel::YUVJ422P, format::Pixel::YUV422P),
    (format::Pixel::YUVJ444P, format::Pixel::YUV444P),
    (format::Pixel::YUVJ440P, format::Pixel::YUV440P),
    (format::Pixel::YUVJ411P, format::Pixel::YUV411P),
];

/// Send `f` through segments `i..`, returning what comes out of the last.
fn push(
    segments: &mut [Segment],
    i: usize,
    f: frame::Video,
    tb: Rational,
    rate: Rational,
    threads: usize,
    graphs: &mut Vec<GraphMade>,
) -> Result<Vec<frame::Video>> {
    let Some(seg) = segments.get_mut(i) else { return Ok(vec![f]) };
    let mut out = Vec::new();
    match &seg.op {
        Op::Filters(chain) => {
            if seg.graph.is_none() {
                let g = video_graph(&f, chain, tb, rate, threads)?;
                graphs.push(GraphMade { medium: "video", chain: chain.clone(), filters: expanded(&g) });
                seg.graph = Some(g);
            }
            let g = seg.graph.as_mut().expect("graph");
            g.get("in").expect("source").source().add(&f).map_err(|e| anyhow!("filter graph input: {e}"))?;
            pull(g, &mut out);
        }
        Op::Average(n) => {
            if seg.average.is_none() {
                graphs.push(GraphMade {
                    medium: "video",
                    chain: format!("average={n}"),
                    filters: vec![format!(
                        "custody average: each frame the mean of the last {n} frames (fewer at the start), rounded to nearest"
                    )],
                });
            }
            out.push(seg.average.get_or_insert_with(|| Averager::new(*n)).add(&f)?);
        }
    }
    let (out_tb, out_rate) = segment_timing(seg, tb, rate);
    let mut all = Vec::new();
    for o in out {
        all.extend(push(segments, i + 1, o, out_tb, out_rate, threads, graphs)?);
    }
    Ok(all)
}

/// The time base and frame rate of what the last segment outputs.
pub(crate) fn output_timing(segments: &[Segment], in_tb: Rational) -> (Rational, Rational) {
    segments.iter().fold((in_tb, Rational::new(0, 1)), |acc, s| match &s.graph {
        Some(_) => segment_timing(s, acc.0, acc.1),
        None => acc,
    })
}

/// The time base and frame rate of what segment `seg` outputs.
pub(crate) fn segment_timing(seg: &Segment, tb: Rational, rate: Rational) -> (Rational, Rational) {
    match &seg.graph {
        Some(g) => {
            let sink = sink_ptr(g);
            // SAFETY: the sink is a configured buffersink of a live graph.
            unsafe {
                (
                    Rational::from(ffmpeg::ffi::av_buffersink_get_time_base(sink)),
                    Rational::from(ffmpeg::ffi::av_buffersink_get_frame_rate(sink)),
                )
            }
        }
        None => (tb, rate),
    }
}

fn sink_ptr(g: &filter::Graph) -> *mut ffmpeg::ffi::AVFilterContext {
    // SAFETY: reading the filter list of a live graph; "out" is always its buffersink.
    unsafe {
        let graph = g.as_ptr();
        for k in 0..(*graph).nb_filters as usize {
            let ctx = *(*graph).filters.add(k);
            if CStr::from_ptr((*ctx).name).to_bytes() == b"out" {
                return ctx;
            }
        }
        std::ptr::null_mut()
    }
}

/// Flush segment `i` and pass what it gave through the segments after it.
fn flush(segments: &mut [Segment], i: usize, threads: usize, graphs: &mut Vec<GraphMade>) -> Result<Vec<frame::Video>> {
    let mut out = Vec::new();
    let seg = &mut segments[i];
    if let Some(g) = seg.graph.as_mut() {
        g.get("in").expect("source").source().flush()?;
        pull(g, &mut out);
    }
    let (tb, rate) = segment_timing(seg, Rational::new(1, 1), Rational::new(0, 1));
    let mut all = Vec::new();
    for o in out {
        all.extend(push(segments, i + 1, o, tb, rate, threads, graphs)?);
    }
    Ok(all)
}

fn pull(g: &mut filter::Graph, out: &mut Vec<frame::Video>) {
    loop {
        let mut f = frame::Video::empty();
        if g.get("out").expect("sink").sink().frame(&mut f).is_err() {
            break;
        }
        out.push(f);
    }
}

fn video_graph(f: &frame::Video, chain: &str, tb: Rational, rate: Rational, threads: usize) -> Result<filter::Graph> {
    let mut g = filter::Graph::new();
    // SAFETY: setting the thread count of a new, unconfigured graph.
    unsafe { (*g.as_mut_ptr()).nb_threads = threads as i32 };
    let sar = f.aspect_ratio();
    let mut args = format!(
        "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}",
        f.width(),
        f.height(),
        ffmpeg::ffi::AVPixelFormat::from(f.format()) as i32,
        tb.numerator(),
        tb.denominator(),
        sar.numerator().max(0),
        sar.denominator().max(1)
    );
    if rate.numerator() > 0 && rate.denominator() > 0 {
        args.push_str(&format!(":frame_rate={}/{}", rate.numerator(), rate.denominator()));
    }
    g.add(&filter::find("buffer").expect("buffer"), "in", &args)?;
    g.add(&filter::find("buffersink").expect("buffersink"), "out", "")?;
    g.output("in", 0)?
        .input("out", 0)?
        .parse(chain)
        .map_err(|e| error::input(format!("FFmpeg refused the filter chain {chain:?}: {e}")))?;
    g.validate().map_err(|e| error::input(format!("FFmpeg cannot configure the filter chain {chain:?}: {e}")))?;
    Ok(g)
}

/// Every filter of a configured graph with every option's value.
fn expanded(g: &filter::Graph) -> Vec<String> {
    let mut out = Vec::new();
    // SAFETY: walking the filters of a live, configured graph and serialising their options
    // into buffers FFmpeg allocates and we free.
    unsafe {
        let graph = g.as_ptr();
        for k in 0..(*graph).nb_filters as usize {
            let ctx = *(*graph).filters.add(k);
            let filter = CStr::from_ptr((*(*ctx).filter).name).to_string_lossy().into_owned();
            let name = CStr::from_ptr((*ctx).name).to_string_lossy().into_owned();
            let mut opts = String::new();
            // The sinks are custody's plumbing (and list deprecated options FFmpeg warns about).
            let plumbing = filter.ends_with("buffersink");
            if !plumbing && !(*ctx).priv_.is_null() && !(*(*ctx).filter).priv_class.is_null() {
                let mut buf: *mut std::ffi::c_char = std::ptr::null_mut();
                if ffmpeg::ffi::av_opt_serialize((*ctx).priv_, 0, 0, &mut buf, b'=' as _, b':' as _) >= 0
                    && !buf.is_null()
                {
                    opts = CStr::from_ptr(buf).to_string_lossy().into_owned();
                    ffmpeg::ffi::av_free(buf.cast());
                }
            }
            out.push(if opts.is_empty() { format!("{name}={filter}") } else { format!("{name}={filter}:{opts}") });
        }
    }
    out
}

/// Where the video goes: the output file, the audio encoded beforehand, the display matrix.
struct VideoOut<'a> {
    dst: &'a Path,
    audio: Option<&'a Path>,
    matrix: Option<&'a [u8]>,
}

/// Create the encoder and the output on the first frame to encode, then encode `f`.
fn encode_video(
    enc: &mut Option<Encoding>,
    f: frame::Video,
    out: &VideoOut,
    segments: &[Segment],
    in_tb: Rational,
    job: &Job,
) -> Result<()> {
    if enc.is_none() {
        let (tb, rate) = output_timing(segments, in_tb);
        *enc = Some(open_video(&f, out.dst, (tb, rate), out.audio, out.matrix, job)?);
    }
    let e = enc.as_mut().expect("encoder");
    let mut f = f;
    if f.format() != e.format {
        return Err(anyhow!(
            "the filters gave {:?} pictures, but the encoder was opened for {:?}",
            f.format(),
            e.format
        ));
    }
    e.hashes.add(super::ffi::frame_ref(&f));
    f.set_kind(ffmpeg::picture::Type::None);
    if let Some(pts) = f.pts() {
        if let Some(prev) = e.last_pts
            && pts > prev
        {
            e.durations.insert(prev, pts - prev);
            e.last_duration = pts - prev;
        }
        e.last_pts = Some(pts);
    }
    e.encoder.send_frame(&f)?;
    drain(e)
}

fn drain(e: &mut Encoding) -> Result<()> {
    let mut packet = ffmpeg::Packet::empty();
    let out_tb = e.output.stream(e.stream).expect("video stream").time_base();
    while e.encoder.receive_packet(&mut packet).is_ok() {
        if let Some(a) = e.audio.as_mut() {
            let at = packet
                .dts()
                .or(packet.pts())
                .map(|t| super::time::ticks_to_us(t, e.enc_tb.numerator(), e.enc_tb.denominator()));
            a.write_until(&mut e.output, at)?;
        }
        packet.set_stream(e.stream);
        if packet.duration() <= 0
            && let Some(d) = packet.pts().and_then(|p| e.durations.get(&p))
        {
            packet.set_duration(*d);
        }
        packet.rescale_ts(e.enc_tb, out_tb);
        packet.write_interleaved(&mut e.output)?;
    }
    Ok(())
}

fn open_video(
    f: &frame::Video,
    dst: &Path,
    (tb, rate): (Rational, Rational),
    audio: Option<&Path>,
    matrix: Option<&[u8]>,
    job: &Job,
) -> Result<Encoding> {
    let (container, name) = match job.deliver {
        Deliver::Lossless | Deliver::H264Lossless => ("matroska", video_encoder(job.deliver)),
        Deliver::Mp4 => ("mp4", "libx264"),
    };
    let mut output = format::output_as(&dst, container)
        .map_err(|e| error::environment(format!("cannot create the output in the store's staging directory: {e}")))?;
    let codec =
        encoder::find_by_name(name).ok_or_else(|| error::environment(format!("this FFmpeg has no {name} encoder")))?;
    let fmt = f.format();
    if job.deliver == Deliver::Mp4 && fmt != format::Pixel::YUV420P {
        return Err(anyhow!("the filters gave {fmt:?} pictures; an MP4 to deliver needs yuv420p"));
    }
    let mut ctx = codec::Context::new_with_codec(codec).encoder().video()?;
    ctx.set_width(f.width());
    ctx.set_height(f.height());
    ctx.set_format(fmt);
    ctx.set_time_base(tb);
    ctx.set_aspect_ratio(f.aspect_ratio());
    if rate.numerator() > 0 && rate.denominator() > 0 {
        ctx.set_frame_rate(Some(rate));
    }
    ctx.set_color_range(f.color_range());
    ctx.set_flags(codec::Flags::GLOBAL_HEADER);
    let mut opts = ffmpeg::Dictionary::new();
    let threads = job.threads.to_string();
    opts.set("threads", &threads);
    let described = match job.deliver {
        Deliver::Lossless => {
            opts.set("level", "3");
            opts.set("slices", "4");
            opts.set("slicecrc", "1");
            opts.set("g", "1");
            format!("ffv1 level=3 slices=4 slicecrc=1 g=1 threads={threads}")
        }
        Deliver::H264Lossless => {
            opts.set("preset", "medium");
            opts.set("qp", "0");
            format!("libx264 preset=medium qp=0 (lossless) threads={threads}")
        }
        Deliver::Mp4 => {
            opts.set("preset", "medium");
            opts.set("crf", "18");
            format!("libx264 preset=medium crf=18 threads={threads}")
        }
    };
    let encoder = ctx.open_as_with(codec, opts).with_context(|| format!("opening {name}"))?;
    let stream = {
        let mut s = output.add_stream(codec)?;
        s.set_parameters(&encoder);
        s.set_time_base(tb);
        if let Some(m) = matrix {
            super::ffi::set_display_matrix(&mut s, m);
        }
        s.index()
    };
    let audio = match audio {
        Some(path) => {
            let input = format::input(&path).map_err(|e| anyhow!("reading back the encoded audio: {e}"))?;
            let a =
                input.streams().best(media::Type::Audio).ok_or_else(|| anyhow!("the encoded audio has no stream"))?;
            let (from, in_tb) = (a.index(), a.time_base());
            let mut s = output.add_stream(encoder::find(a.parameters().id()))?;
            s.set_parameters(a.parameters());
            // SAFETY: clearing the codec tag of the new stream's own parameters, so the muxer
            // picks its own for the container.
            unsafe { (*s.parameters().as_mut_ptr()).codec_tag = 0 };
            s.set_time_base(in_tb);
            let to = s.index();
            Some(AudioMerge { input, from, to, in_tb, pending: None, done: false })
        }
        None => None,
    };
    let mut header = ffmpeg::Dictionary::new();
    header.set("fflags", "+bitexact");
    output.set_metadata(ffmpeg::Dictionary::new());
    output.write_header_with(header).map_err(|e| error::environment(format!("cannot start the output: {e}")))?;
    let last_duration =
        if rate.numerator() > 0 { ffmpeg::Rescale::rescale(&1i64, rate.invert(), tb).max(1) } else { 1 };
    Ok(Encoding {
        output,
        encoder,
        stream,
        enc_tb: tb,
        audio,
        hashes: Hasher::start(),
        format: fmt,
        described,
        durations: std::collections::HashMap::new(),
        last_pts: None,
        last_duration,
    })
}

/// MD5s of packed frames, computed on a thread of their own while the next frames are filtered
/// and encoded (a 1080p frame is 3 MB: hashing them in line would cost a fifth of the time).
struct Hasher {
    to: Option<std::sync::mpsc::SyncSender<frame::Video>>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Hasher {
    fn start() -> Hasher {
        let (to, from) = std::sync::mpsc::sync_channel::<frame::Video>(4);
        let thread = std::thread::spawn(move || {
            from.iter()
                .map(|f| super::ffi::frame_md5(&f).map(hex::encode).unwrap_or_else(|e| format!("unhashable: {e}")))
                .collect()
        });
        Hasher { to: Some(to), thread: Some(thread) }
    }

    fn idle() -> Hasher {
        Hasher { to: None, thread: None }
    }

    fn add(&mut self, f: frame::Video) {
        if let Some(to) = &self.to {
            let _ = to.send(f);
        }
    }

    /// Every MD5, in the order the frames were added.
    fn finish(mut self) -> Vec<String> {
        drop(self.to.take());
        self.thread.take().map(|t| t.join().expect("the hashing thread")).unwrap_or_default()
    }
}

/// Each frame the exact mean of the last `n` frames (of fewer at the start), rounded to the
/// nearest code value: sums kept per sample, the oldest frame subtracted as a new one enters.
struct Averager {
    n: usize,
    window: VecDeque<Vec<Vec<u8>>>,
    sums: Vec<Vec<u32>>,
}

impl Averager {
    fn new(n: u32) -> Averager {
        Averager { n: n as usize, window: VecDeque::new(), sums: Vec::new() }
    }

    fn add(&mut self, f: &frame::Video) -> Result<frame::Video> {
        let planes = f.planes();
        let mut copy: Vec<Vec<u8>> = Vec::with_capacity(planes);
        for p in 0..planes {
            let (w, h) = (f.plane_width(p) as usize, f.plane_height(p) as usize);
            let mut plane = Vec::with_capacity(w * h);
            for row in 0..h {
                plane.extend_from_slice(super::ffi::plane_row(f, p, row, w));
            }
            copy.push(plane);
        }
        if self.sums.is_empty() {
            self.sums = copy.iter().map(|p| vec![0u32; p.len()]).collect();
        }
        if copy.iter().zip(&self.sums).any(|(c, s)| c.len() != s.len()) {
            return Err(anyhow!("frame averaging needs frames of one size; the size changed"));
        }
        for (s, c) in self.sums.iter_mut().zip(&copy) {
            for (a, &b) in s.iter_mut().zip(c) {
                *a += u32::from(b);
            }
        }
        self.window.push_back(copy);
        if self.window.len() > self.n {
            let old = self.window.pop_front().expect("oldest");
            for (s, c) in self.sums.iter_mut().zip(&old) {
                for (a, &b) in s.iter_mut().zip(c) {
                    *a -= u32::from(b);
                }
            }
        }
        let k = self.window.len() as u32;
        let mut out = frame::Video::new(f.format(), f.width(), f.height());
        for p in 0..planes {
            let (w, h) = (f.plane_width(p) as usize, f.plane_height(p) as usize);
            let stride = out.stride(p);
            let sums = &self.sums[p];
            let data = out.data_mut(p);
            for row in 0..h {
                for x in 0..w {
                    data[row * stride + x] = ((sums[row * w + x] + k / 2) / k) as u8;
                }
            }
        }
        out.set_pts(f.pts());
        // SAFETY: copying a plain field between two valid frames.
        unsafe { (*out.as_mut_ptr()).sample_aspect_ratio = (*f.as_ptr()).sample_aspect_ratio };
        out.set_color_range(f.color_range());
        Ok(out)
    }
}

// ------------------------------------------------------------------------------- audio

/// Decode the audio stream `stream` of `src`, cut it to `span_us` (source timeline), run the
/// recipe's audio steps and encode it into `dst` (`container`).
fn audio_pass(
    src: &Path,
    dst: &Path,
    container: &str,
    stream: usize,
    span_us: Option<(i64, i64)>,
    job: &Job,
    made: &mut Made,
) -> Result<()> {
    let mut input = open_input(src).map_err(|e| error::input(format!("FFmpeg cannot open {}: {e}", src.display())))?;
    let (in_tb, params) = {
        let s = input.stream(stream).expect("audio stream");
        (s.time_base(), s.parameters())
    };
    let mut decoder = codec::context::Context::from_parameters(params)?.decoder().audio()?;
    decoder.set_packet_time_base(in_tb);
    let channels = u32::from(decoder.channels().max(1));
    let ctx = steps::Context { sample_rate: decoder.rate(), channels };
    let chain = audio_chain(job.recipe, &ctx)?;
    let mut output = format::output_as(&dst, container)
        .map_err(|e| error::environment(format!("cannot create the output in the store's staging directory: {e}")))?;
    let (id, sample_format) = match job.deliver {
        Deliver::Lossless | Deliver::H264Lossless => {
            (codec::Id::FLAC, format::Sample::I16(format::sample::Type::Packed))
        }
        Deliver::Mp4 => (codec::Id::AAC, format::Sample::F32(format::sample::Type::Planar)),
    };
    let codec = encoder::find(id).ok_or_else(|| error::environment(format!("this FFmpeg has no {id:?} encoder")))?;
    let in_layout = if decoder.channel_layout().bits() != 0 {
        decoder.channel_layout()
    } else {
        ffmpeg::ChannelLayout::default(channels as i32)
    };
    // The graph: cut to the span (on the source's timeline) → the recipe → the encoder's format.
    let mut g = filter::Graph::new();
    // SAFETY: setting the thread count of a new, unconfigured graph.
    unsafe { (*g.as_mut_ptr()).nb_threads = job.threads as i32 };
    g.add(
        &filter::find("abuffer").expect("abuffer"),
        "in",
        &super::ffi::abuffer_args(in_tb, decoder.rate(), decoder.format(), in_layout),
    )?;
    g.add(&filter::find("abuffersink").expect("abuffersink"), "out", "")?;
    let mut full = Vec::new();
    if let Some((t0, t1)) = span_us {
        let shift =
            ((t0 as i128 * in_tb.denominator() as i128) / (in_tb.numerator().max(1) as i128 * 1_000_000)) as i64;
        full.push(format!("atrim=start={t0}us:end={t1}us,asetpts=PTS-{shift}"));
    }
    if !chain.is_empty() {
        full.push(chain.clone());
    }
    // The layout the output keeps: the source's, or mono after a channel step (some filters,
    // loudnorm among them, leave it unnamed).
    let mono = job.recipe.steps.iter().any(|p| p.step.name == "channels");
    let out_channels = if mono { 1 } else { channels };
    full.push(format!(
        "aformat=sample_fmts={}:channel_layouts={}",
        sample_format.name(),
        layout_name(if mono { ffmpeg::ChannelLayout::MONO } else { in_layout }, out_channels)
    ));
    let spec = full.join(",");
    g.output("in", 0)?
        .input("out", 0)?
        .parse(&spec)
        .map_err(|e| error::input(format!("FFmpeg refused the audio chain {chain:?}: {e}")))?;
    g.validate().map_err(|e| error::input(format!("FFmpeg cannot configure the audio chain {chain:?}: {e}")))?;
    let sink = sink_ptr(&g);
    // SAFETY: the sink of the configured graph above.
    let (rate, out_layout) = unsafe {
        (
            ffmpeg::ffi::av_buffersink_get_sample_rate(sink) as u32,
            ffmpeg::ChannelLayout::from_bits_truncate(ffmpeg::ffi::av_buffersink_get_channel_layout(sink)),
        )
    };
    let out_layout = if out_layout.bits() == 0 { ffmpeg::ChannelLayout::default(channels as i32) } else { out_layout };
    made.graphs.push(GraphMade { medium: "audio", chain: spec.clone(), filters: expanded(&g) });

    let mut enc = codec::Context::new_with_codec(codec).encoder().audio()?;
    enc.set_rate(rate as i32);
    enc.set_channel_layout(out_layout);
    enc.set_channels(out_layout.channels());
    enc.set_format(sample_format);
    enc.set_time_base(Rational::new(1, rate as i32));
    enc.set_flags(codec::Flags::GLOBAL_HEADER);
    if id == codec::Id::AAC {
        let most = 6 * rate as usize * out_layout.channels() as usize;
        enc.set_bit_rate((if out_layout.channels() == 1 { 96_000 } else { 160_000 }).min(most));
    }
    let mut encoder = enc.open_as(codec).context("opening the audio encoder")?;
    let out = {
        let mut s = output.add_stream(codec)?;
        s.set_parameters(&encoder);
        s.set_time_base(Rational::new(1, rate as i32));
        s.index()
    };
    if encoder.frame_size() > 0 {
        g.get("out").expect("sink").sink().set_frame_size(encoder.frame_size());
    }
    let mut header = ffmpeg::Dictionary::new();
    header.set("fflags", "+bitexact");
    output.write_header_with(header).map_err(|e| error::environment(format!("cannot start the audio output: {e}")))?;
    let enc_tb = Rational::new(1, rate as i32);
    let out_tb = output.stream(out).expect("audio stream").time_base();

    if let Some((t0, _)) = span_us {
        // Start a second before the span: the decoder needs the packets before it to settle.
        let at = (t0 - 1_000_000).max(0);
        let _ = input.seek(at, ..at);
    }
    let mut hashes = Vec::new();
    // The sound of an audio item before and after, as spectrograms.
    let mut spectra = if job.index.audio {
        Some((
            preview::Spectrogram::new(decoder.rate(), decoder.format(), in_layout)?,
            preview::Spectrogram::new(rate, sample_format, out_layout)?,
        ))
    } else {
        None
    };
    let mut packet = ffmpeg::Packet::empty();
    let mut decoded = frame::Audio::empty();
    let mut filtered = frame::Audio::empty();
    let mut samples_out = 0i64;
    let mut last_us = i64::MIN;
    let mut encode = |g: &mut filter::Graph,
                      encoder: &mut encoder::Audio,
                      output: &mut format::context::Output,
                      hashes: &mut Vec<String>,
                      samples_out: &mut i64,
                      after: Option<&mut preview::Spectrogram>|
     -> Result<()> {
        let mut after = after;
        while g.get("out").expect("sink").sink().frame(&mut filtered).is_ok() {
            hashes.push(hex::encode(md5::Md5::digest(audio_bytes(&filtered))));
            if let Some(a) = after.as_deref_mut() {
                a.add(&filtered);
            }
            filtered.set_pts(Some(*samples_out));
            *samples_out += filtered.samples() as i64;
            encoder.send_frame(&filtered)?;
            let mut p = ffmpeg::Packet::empty();
            while encoder.receive_packet(&mut p).is_ok() {
                p.set_stream(out);
                p.rescale_ts(enc_tb, out_tb);
                p.write_interleaved(output)?;
            }
        }
        Ok(())
    };
    loop {
        let eof = !super::probe::next_packet(&mut input, &mut packet, src)?;
        if eof {
            let _ = decoder.send_eof();
        } else if packet.stream() == stream {
            let _ = decoder.send_packet(&packet);
        } else {
            continue;
        }
        while decoder.receive_frame(&mut decoded).is_ok() {
            let ts = decoded.timestamp().or(decoded.pts());
            if let Some(t) = ts {
                last_us = super::time::ticks_to_us(t, in_tb.numerator(), in_tb.denominator());
            }
            decoded.set_pts(ts);
            if let Some((before, _)) = spectra.as_mut()
                && span_us.is_none_or(|(t0, t1)| (t0..t1).contains(&last_us))
            {
                before.add(&decoded);
            }
            g.get("in").expect("source").source().add(&decoded)?;
        }
        let past = span_us.is_some_and(|(_, t1)| last_us > t1 + 1_000_000);
        if eof || past {
            g.get("in").expect("source").source().flush()?;
        }
        encode(&mut g, &mut encoder, &mut output, &mut hashes, &mut samples_out, spectra.as_mut().map(|s| &mut s.1))?;
        if eof || past {
            break;
        }
    }
    encoder.send_eof()?;
    let mut p = ffmpeg::Packet::empty();
    while encoder.receive_packet(&mut p).is_ok() {
        p.set_stream(out);
        p.rescale_ts(enc_tb, out_tb);
        p.write_interleaved(&mut output)?;
    }
    output.write_trailer().map_err(|e| error::environment(format!("cannot finish the audio output: {e}")))?;
    if let Some((before, after)) = spectra
        && let (Some(before), Some(after)) = (before.finish(), after.finish())
    {
        made.before_after = Some(preview::BeforeAfter { before, after, frame: None, beside: false });
    }
    made.encoders.push(match id {
        codec::Id::FLAC => "flac s16 (lossless of the filtered sound at 16 bits)".to_owned(),
        _ => "aac".to_owned(),
    });
    made.streams.push(StreamMade {
        kind: "audio",
        codec: id.name().to_owned(),
        format: sample_format.name().to_owned(),
        width: None,
        height: None,
        sample_rate: Some(rate),
        channels: Some(out_layout.channels().max(0) as u32),
        time_base: format!("1/{rate}"),
        frames: hashes.len() as u64,
        frame_md5: hashes,
    });
    Ok(())
}

/// A channel layout as filter options name it.
fn layout_name(layout: ffmpeg::ChannelLayout, channels: u32) -> String {
    let mut buf = [0 as std::ffi::c_char; 128];
    // SAFETY: FFmpeg writes a NUL-terminated name of at most the buffer's length.
    unsafe {
        ffmpeg::ffi::av_get_channel_layout_string(buf.as_mut_ptr(), buf.len() as i32, channels as i32, layout.bits());
        CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
    }
}

/// The samples of an audio frame as `framemd5` hashes them: each plane's samples in turn.
fn audio_bytes(f: &frame::Audio) -> Vec<u8> {
    let bytes = f.format().bytes();
    let planes = if f.is_planar() { f.planes() } else { 1 };
    let per_plane = f.samples() * bytes * if f.is_planar() { 1 } else { usize::from(f.channels()) };
    let mut out = Vec::with_capacity(per_plane * planes);
    for p in 0..planes {
        out.extend_from_slice(&f.data(p)[..per_plane]);
    }
    out
}

fn progress(len: usize, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    let target = if std::io::stderr().is_terminal() {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::hidden()
    };
    let b = indicatif::ProgressBar::with_draw_target(Some(len as u64), target);
    b.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what:<12} [{{bar:32}}] {{pos}}/{{len}} frames, eta {{eta}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    b
}
