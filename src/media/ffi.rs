//! The few FFmpeg fields ffmpeg-next does not expose, read through its raw pointers.
//! Every `unsafe` block of the media layer lives here, each with its SAFETY note.

use std::ffi::CStr;

use ffmpeg::ffi;
use ffmpeg_next as ffmpeg;

/// Raw codec-parameter facts missing from the safe API.
pub struct ExtraParams {
    pub field_order: &'static str,
    pub profile: Option<String>,
    pub channel_layout: Option<String>,
    pub bits_per_raw_sample: i32,
}

pub fn extra_params(params: &ffmpeg::codec::Parameters) -> ExtraParams {
    // SAFETY: `params` wraps a valid AVCodecParameters owned by a live stream or by itself; we
    // only read plain fields and pass them to FFmpeg's own pure lookup functions.
    unsafe {
        let p = params.as_ptr();
        let field_order = match (*p).field_order {
            ffi::AVFieldOrder::AV_FIELD_PROGRESSIVE => "progressive",
            ffi::AVFieldOrder::AV_FIELD_TT => "tt",
            ffi::AVFieldOrder::AV_FIELD_BB => "bb",
            ffi::AVFieldOrder::AV_FIELD_TB => "tb",
            ffi::AVFieldOrder::AV_FIELD_BT => "bt",
            _ => "unknown",
        };
        let profile = if (*p).profile >= 0 {
            let name = ffi::avcodec_profile_name((*p).codec_id, (*p).profile);
            (!name.is_null()).then(|| CStr::from_ptr(name).to_string_lossy().into_owned())
        } else {
            None
        };
        let channel_layout = if (*p).ch_layout.nb_channels > 0 {
            let mut buf = [0 as libc::c_char; 128];
            let n = ffi::av_channel_layout_describe(&(*p).ch_layout, buf.as_mut_ptr(), buf.len());
            (n > 0).then(|| CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned())
        } else {
            None
        };
        ExtraParams { field_order, profile, channel_layout, bits_per_raw_sample: (*p).bits_per_raw_sample }
    }
}

/// Number of channels from the parameters' channel layout.
pub fn channels(params: &ffmpeg::codec::Parameters) -> i32 {
    // SAFETY: plain field read from a valid AVCodecParameters.
    unsafe { (*params.as_ptr()).ch_layout.nb_channels }
}

/// Sample rate from the parameters.
pub fn sample_rate(params: &ffmpeg::codec::Parameters) -> i32 {
    // SAFETY: plain field read from a valid AVCodecParameters.
    unsafe { (*params.as_ptr()).sample_rate }
}

/// Width, height and sample aspect ratio from the parameters.
pub fn dimensions(params: &ffmpeg::codec::Parameters) -> (i32, i32, (i32, i32)) {
    // SAFETY: plain field reads from a valid AVCodecParameters.
    unsafe {
        let p = params.as_ptr();
        ((*p).width, (*p).height, ((*p).sample_aspect_ratio.num, (*p).sample_aspect_ratio.den))
    }
}

// The same FFmpeg functions declared with plain `int` parameters, so a format number read from
// a file can be passed without turning it into a Rust enum value it might not be.
unsafe extern "C" {
    #[link_name = "av_pix_fmt_desc_get"]
    fn pix_fmt_desc_get(pix_fmt: libc::c_int) -> *const ffi::AVPixFmtDescriptor;
    #[link_name = "av_get_sample_fmt_name"]
    fn sample_fmt_name(sample_fmt: libc::c_int) -> *const libc::c_char;
}

/// Pixel or sample format name from the parameters' raw `format` field.
pub fn format_name(params: &ffmpeg::codec::Parameters) -> Option<String> {
    // SAFETY: reads plain fields of a valid AVCodecParameters; both lookups accept any int
    // and return NULL for unknown values; returned names are static strings.
    unsafe {
        let p = params.as_ptr();
        let fmt = (*p).format;
        if fmt < 0 {
            return None;
        }
        let name = match (*p).codec_type {
            ffi::AVMediaType::AVMEDIA_TYPE_VIDEO => {
                let desc = pix_fmt_desc_get(fmt);
                if desc.is_null() { std::ptr::null() } else { (*desc).name }
            }
            ffi::AVMediaType::AVMEDIA_TYPE_AUDIO => sample_fmt_name(fmt),
            _ => std::ptr::null(),
        };
        (!name.is_null()).then(|| CStr::from_ptr(name).to_string_lossy().into_owned())
    }
}

/// The container's start time in microseconds, when FFmpeg knows it.
pub fn start_time(input: &ffmpeg::format::context::Input) -> Option<i64> {
    // SAFETY: plain field read from the valid AVFormatContext the Input owns.
    let start = unsafe { (*input.as_ptr()).start_time };
    (start != ffi::AV_NOPTS_VALUE).then_some(start)
}

/// Where the demuxer's index puts each sample of the stream: (byte position, size), in index
/// order. MP4 and MOV list every sample from their sample tables when the file is opened, so
/// the samples of a file cut short lie past its end; other containers list keyframes as they
/// are read, or nothing.
pub fn index_entries(stream: &ffmpeg::format::stream::Stream<'_>) -> Vec<(i64, i64)> {
    index_entries_flagged(stream).into_iter().map(|(pos, size, _)| (pos, size)).collect()
}

/// Discard every stream of `input` but `keep`: the demuxer gives no packets of them (MP4 and
/// MOV do not even read them).
pub fn discard_all_but(input: &mut ffmpeg::format::context::Input, keep: usize) {
    // SAFETY: plain field writes on the streams of an open AVFormatContext we own.
    unsafe {
        let ctx = input.as_mut_ptr();
        for i in (0..(*ctx).nb_streams as usize).filter(|&i| i != keep) {
            (**(*ctx).streams.add(i)).discard = ffi::AVDiscard::AVDISCARD_ALL;
        }
    }
}

/// [`index_entries`] with each entry's keyframe flag (an MP4's sync samples).
pub fn index_entries_flagged(stream: &ffmpeg::format::stream::Stream<'_>) -> Vec<(i64, i64, bool)> {
    // SAFETY: the stream belongs to an open AVFormatContext that is not used while the entries
    // are read; each entry pointer is dereferenced at once, as avformat_index_get_entry allows.
    unsafe {
        let st = stream.as_ptr() as *mut ffi::AVStream;
        (0..ffi::avformat_index_get_entries_count(st))
            .filter_map(|i| {
                let e = ffi::avformat_index_get_entry(st, i);
                (!e.is_null()).then(|| ((*e).pos, i64::from((*e).size()), (*e).flags() & ffi::AVINDEX_KEYFRAME != 0))
            })
            .collect()
    }
}

/// How many frames the decoder holds back before its first output (B-frame reordering), as the
/// stream's parameters state it.
pub fn video_delay(params: &ffmpeg::codec::Parameters) -> i32 {
    // SAFETY: plain field read from a valid AVCodecParameters.
    unsafe { (*params.as_ptr()).video_delay }
}

/// True when the demuxer marked the packet to be decoded but not shown (edit lists).
pub fn packet_discarded(packet: &ffmpeg::Packet) -> bool {
    // SAFETY: plain field read from the valid AVPacket the Packet owns.
    use ffmpeg::packet::Ref;
    unsafe { (*packet.as_ptr()).flags & ffi::AV_PKT_FLAG_DISCARD != 0 }
}

/// Make the frame's pictures this frame's own before they are changed: a decoder's output
/// frames share their buffers with the pictures later frames are predicted from.
pub fn make_writable(frame: &mut ffmpeg::frame::Video) -> Result<(), ffmpeg::Error> {
    // SAFETY: av_frame_make_writable on the valid AVFrame the Video owns; it copies the data
    // into new buffers when they are shared, and leaves the frame valid either way.
    let rc = unsafe { ffi::av_frame_make_writable(frame.as_mut_ptr()) };
    if rc < 0 { Err(ffmpeg::Error::from(rc)) } else { Ok(()) }
}

/// The names of every demuxer this FFmpeg has (each may list several, comma-separated).
pub fn demuxer_names() -> Vec<String> {
    let mut names = Vec::new();
    let mut opaque: *mut std::ffi::c_void = std::ptr::null_mut();
    loop {
        // SAFETY: av_demuxer_iterate walks FFmpeg's static list of demuxers; `opaque` is the
        // iteration state it owns, and each returned pointer is a static AVInputFormat whose
        // `name` is a static NUL-terminated string.
        let fmt = unsafe { ffi::av_demuxer_iterate(&mut opaque) };
        if fmt.is_null() {
            break;
        }
        let name = unsafe { (*fmt).name };
        if !name.is_null() {
            names.push(unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned());
        }
    }
    names
}

/// Seek `stream` to the last keyframe at or before `ts` (in the stream's time base).
pub fn seek_stream_backward(
    input: &mut ffmpeg::format::context::Input,
    stream: usize,
    ts: i64,
) -> Result<(), ffmpeg::Error> {
    // SAFETY: av_seek_frame on the valid AVFormatContext the Input owns; the stream index was
    // taken from this context.
    let rc = unsafe { ffi::av_seek_frame(input.as_mut_ptr(), stream as i32, ts, ffi::AVSEEK_FLAG_BACKWARD) };
    if rc < 0 { Err(ffmpeg::Error::from(rc)) } else { Ok(()) }
}

/// Move the demuxer to byte `pos` of the file (raw streams, which have no timestamps to seek
/// by); its parser starts afresh there.
pub fn seek_byte(input: &mut ffmpeg::format::context::Input, pos: i64) -> Result<(), ffmpeg::Error> {
    // SAFETY: av_seek_frame on the valid AVFormatContext the Input owns; with AVSEEK_FLAG_BYTE
    // the stream index is ignored and `pos` is a byte offset.
    let rc = unsafe { ffi::av_seek_frame(input.as_mut_ptr(), -1, pos, ffi::AVSEEK_FLAG_BYTE) };
    if rc < 0 { Err(ffmpeg::Error::from(rc)) } else { Ok(()) }
}

/// How a player turns the coded picture to show it: a clockwise rotation, then, for a mirrored
/// picture, a left-right flip.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Orientation {
    /// Clockwise degrees: 0, 90, 180 or 270.
    pub rotation: i32,
    /// Flipped left to right after the rotation (a front camera's selfie view, a mirror).
    pub mirrored: bool,
}

impl Orientation {
    /// In words, for reports: `rotated 90° clockwise and mirrored left to right`.
    pub fn describe(self) -> Option<String> {
        match (self.rotation, self.mirrored) {
            (0, false) => None,
            (0, true) => Some("mirrored left to right".to_owned()),
            (r, false) => Some(format!("rotated {r}° clockwise")),
            (r, true) => Some(format!("rotated {r}° clockwise and mirrored left to right")),
        }
    }
}

/// How a player shows the stream (phones record rotated, some cameras mirrored, and say so in
/// the display matrix), decided as FFmpeg's own `ffmpeg` tool decides it when it auto-rotates:
/// the angle from `av_display_rotation_get`, and a flip where the matrix's signs say so. Angles
/// other than multiples of 90° are shown unrotated.
pub fn display_orientation(stream: &ffmpeg::format::stream::Stream<'_>) -> Orientation {
    for sd in stream.side_data() {
        if sd.kind() == ffmpeg::codec::packet::side_data::Type::DisplayMatrix && sd.data().len() >= 36 {
            let mut matrix = [0i32; 9];
            for (i, m) in matrix.iter_mut().enumerate() {
                let b = &sd.data()[i * 4..i * 4 + 4];
                *m = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            }
            // SAFETY: av_display_rotation_get reads exactly nine int32 values from the pointer,
            // which points at our local array.
            let ccw = unsafe { ffi::av_display_rotation_get(matrix.as_ptr()) };
            return orientation_of(&matrix, ccw);
        }
    }
    Orientation::default()
}

/// The orientation a display matrix asks for, given its counter-clockwise angle: the cases of
/// FFmpeg 5.1's `ffmpeg` (transpose `clock`/`cclock_flip` at 90°, `hflip`/`vflip` at 180°,
/// `cclock`/`clock_flip` at 270°, `vflip` at 0°), each a rotation followed by a left-right
/// flip or not (a vertical flip is a half turn and a left-right flip).
fn orientation_of(m: &[i32; 9], ccw: f64) -> Orientation {
    if ccw.is_nan() {
        return Orientation::default();
    }
    // FFmpeg's convention: the angle is counter-clockwise; players rotate by its negation.
    let theta = (-ccw).rem_euclid(360.0);
    let near = |a: f64| (theta - a).abs() < 1.0;
    let o = |rotation, mirrored| Orientation { rotation, mirrored };
    if near(90.0) {
        if m[3] > 0 { o(90, true) } else { o(90, false) }
    } else if near(180.0) {
        match (m[0] < 0, m[4] < 0) {
            (true, true) => o(180, false),
            (true, false) => o(0, true),
            (false, true) => o(180, true),
            (false, false) => o(0, false),
        }
    } else if near(270.0) {
        if m[3] < 0 { o(270, true) } else { o(270, false) }
    } else if (near(0.0) || near(360.0)) && m[4] < 0 {
        o(180, true)
    } else {
        o(0, false)
    }
}

/// A PCM stream's bytes per sample of every channel (its block alignment, else computed from
/// its bits per sample) and its sample rate.
pub fn pcm_frame(params: &ffmpeg::codec::Parameters) -> (usize, i32) {
    // SAFETY: a valid AVCodecParameters; plain field reads, and av_get_bits_per_sample is a
    // pure lookup by codec ID.
    unsafe {
        let p = params.as_ptr();
        let channels = (*p).ch_layout.nb_channels.max(1);
        let bytes = if (*p).block_align > 0 {
            (*p).block_align
        } else {
            ffi::av_get_bits_per_sample((*p).codec_id) * channels / 8
        };
        (bytes.max(0) as usize, (*p).sample_rate)
    }
}

/// Whether an output format can hold `codec` (FFmpeg's `avformat_query_codec`): `None` when the
/// muxer does not say.
pub fn muxer_holds(output: &ffmpeg::format::context::Output, codec: ffmpeg::codec::Id) -> Option<bool> {
    // SAFETY: the output context is valid and its `oformat` points at one of FFmpeg's static
    // muxer descriptions; avformat_query_codec only reads it.
    let rc = unsafe { ffi::avformat_query_codec((*output.as_ptr()).oformat, codec.into(), ffi::FF_COMPLIANCE_NORMAL) };
    match rc {
        1 => Some(true),
        0 => Some(false),
        _ => None,
    }
}

/// Clear a copied stream's codec tag, so the output muxer picks its own (a tag valid in one
/// container can be invalid in another).
pub fn reset_codec_tag(params: &mut ffmpeg::codec::Parameters) {
    // SAFETY: plain field write into the valid AVCodecParameters of an output stream that is
    // not yet written.
    unsafe { (*params.as_mut_ptr()).codec_tag = 0 }
}

/// A decoded video frame's pixels packed without padding (align 1), exactly as FFmpeg's
/// rawvideo encoder writes them, so frame hashes match `ffmpeg -f framemd5`.
pub fn packed_frame(frame: &ffmpeg::frame::Video) -> Result<Vec<u8>, ffmpeg::Error> {
    // SAFETY: the frame is a valid decoded AVFrame whose format, width and height describe its
    // data planes; the destination buffer is sized by av_image_get_buffer_size for exactly
    // those values and outlives the call.
    unsafe {
        let f = frame.as_ptr();
        let fmt: ffi::AVPixelFormat = frame.format().into();
        let size = ffi::av_image_get_buffer_size(fmt, (*f).width, (*f).height, 1);
        if size < 0 {
            return Err(ffmpeg::Error::from(size));
        }
        let mut buf = vec![0u8; size as usize];
        let rc = ffi::av_image_copy_to_buffer(
            buf.as_mut_ptr(),
            size,
            (*f).data.as_ptr() as *const *const u8,
            (*f).linesize.as_ptr(),
            fmt,
            (*f).width,
            (*f).height,
            1,
        );
        if rc < 0 {
            return Err(ffmpeg::Error::from(rc));
        }
        Ok(buf)
    }
}

/// Give an output stream the input stream's display matrix (rotation), which in FFmpeg 5.1
/// lives in stream side data rather than in the codec parameters a stream copy carries over.
pub fn copy_display_matrix(from: &ffmpeg::format::stream::Stream<'_>, to: &mut ffmpeg::format::stream::StreamMut<'_>) {
    if let Some(m) = display_matrix(from) {
        set_display_matrix(to, &m);
    }
}

/// The stream's display matrix (the rotation a player applies), as stored.
pub fn display_matrix(from: &ffmpeg::format::stream::Stream<'_>) -> Option<Vec<u8>> {
    from.side_data()
        .find(|sd| sd.kind() == ffmpeg::codec::packet::side_data::Type::DisplayMatrix)
        .map(|sd| sd.data().to_vec())
}

/// Give an output stream, before its header is written, a display matrix.
pub fn set_display_matrix(to: &mut ffmpeg::format::stream::StreamMut<'_>, data: &[u8]) {
    // SAFETY: av_stream_new_side_data allocates `data.len()` bytes owned by the output stream,
    // which we fill completely before anything else reads them; the stream is not yet written
    // (the header comes later).
    unsafe {
        let dst = ffi::av_stream_new_side_data(
            to.as_mut_ptr(),
            ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX,
            data.len(),
        );
        if !dst.is_null() {
            std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len());
        }
    }
}

/// Read the next packet into `packet`, releasing the one it held first. (`av_read_frame`
/// does not release it: reusing a packet without this leaks every packet read, so memory
/// would grow with the size of the file.)
pub fn read_packet(
    input: &mut ffmpeg::format::context::Input,
    packet: &mut ffmpeg::Packet,
) -> Result<(), ffmpeg::Error> {
    use ffmpeg::packet::Mut;
    // SAFETY: `packet` owns a valid AVPacket; unreferencing it leaves it blank, which is what
    // av_read_frame (called by Packet::read) requires.
    unsafe { ffi::av_packet_unref(packet.as_mut_ptr()) };
    packet.read(input)
}

/// A second reference to a packet's data (and a copy of its fields), without copying the
/// data: ffmpeg-next's `clone` makes the copy writable, which copies every byte.
pub fn packet_ref(packet: &ffmpeg::Packet) -> ffmpeg::Packet {
    use ffmpeg::packet::{Mut, Ref};
    let mut out = ffmpeg::Packet::empty();
    // SAFETY: both are valid AVPackets; `out` is blank. av_packet_ref shares a refcounted
    // buffer (or copies the data of one that is not) and copies the side data and fields.
    // Nothing writes to the shared data: a muxer or filter that wants to make it writable
    // finds it referenced twice and copies it first.
    let rc = unsafe { ffi::av_packet_ref(out.as_mut_ptr(), packet.as_ptr()) };
    assert!(rc >= 0, "av_packet_ref failed ({rc}): out of memory");
    out
}

/// The codec's extradata (for H.264 in MP4: the `avcC` record with its parameter sets).
pub fn extradata(params: &ffmpeg::codec::Parameters) -> Vec<u8> {
    // SAFETY: a valid AVCodecParameters, whose `extradata` holds `extradata_size` bytes when
    // non-null.
    unsafe { owned_bytes((*params.as_ptr()).extradata, (*params.as_ptr()).extradata_size) }
}

/// An opened encoder's extradata (its global headers: for libx264, SPS and PPS in Annex B).
pub fn encoder_extradata(ctx: &ffmpeg::codec::Context) -> Vec<u8> {
    // SAFETY: a valid, opened AVCodecContext, whose `extradata` holds `extradata_size` bytes
    // when non-null.
    unsafe { owned_bytes((*ctx.as_ptr()).extradata, (*ctx.as_ptr()).extradata_size) }
}

/// A copy of the `size` bytes at `ptr` (none when it is null or `size` is not positive).
///
/// # Safety
/// A non-null `ptr` must point to at least `size` readable bytes.
unsafe fn owned_bytes(ptr: *const u8, size: i32) -> Vec<u8> {
    if ptr.is_null() || size <= 0 {
        return Vec::new();
    }
    // SAFETY: the caller vouches for `size` readable bytes at `ptr`.
    unsafe { std::slice::from_raw_parts(ptr, size as usize).to_vec() }
}

/// Replace the extradata of an output stream's parameters (before the header is written).
pub fn set_extradata(params: &mut ffmpeg::codec::Parameters, bytes: &[u8]) -> Result<(), ffmpeg::Error> {
    // SAFETY: the old buffer was allocated by FFmpeg (av_malloc family) and is owned by these
    // parameters, so av_freep releases it; the new one is av_mallocz'd with the padding FFmpeg
    // requires and filled completely before the size is set.
    unsafe {
        let p = params.as_mut_ptr();
        ffi::av_freep(&mut (*p).extradata as *mut *mut u8 as *mut libc::c_void);
        (*p).extradata_size = 0;
        let buf = ffi::av_mallocz(bytes.len() + ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize) as *mut u8;
        if buf.is_null() {
            return Err(ffmpeg::Error::from(-libc::ENOMEM));
        }
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len());
        (*p).extradata = buf;
        (*p).extradata_size = bytes.len() as i32;
    }
    Ok(())
}

/// The entries of an FFmpeg dictionary (container, stream or chapter tags), in order. Tags
/// come from the file, so they need not be UTF-8 (an ID3 tag in Latin-1, a misdetected file's
/// bytes): invalid sequences become U+FFFD. ffmpeg-next's own iterator takes them as `str`
/// unchecked, which must never be done with bytes from evidence.
pub fn tags(dict: &ffmpeg::DictionaryRef<'_>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut entry: *const ffi::AVDictionaryEntry = std::ptr::null();
    loop {
        // SAFETY: a valid (possibly null) AVDictionary; av_dict_get with an empty key and
        // AV_DICT_IGNORE_SUFFIX walks every entry after `entry`, returning null at the end.
        // Each entry's key and value are NUL-terminated strings owned by the dictionary,
        // copied out before the next call.
        unsafe {
            entry = ffi::av_dict_get(dict.as_ptr(), c"".as_ptr(), entry, ffi::AV_DICT_IGNORE_SUFFIX);
            if entry.is_null() {
                break;
            }
            let key = CStr::from_ptr((*entry).key).to_string_lossy().into_owned();
            let value = CStr::from_ptr((*entry).value).to_string_lossy().into_owned();
            out.push((key, value));
        }
    }
    out
}

/// The arguments of an `abuffer` source for decoded sound of this time base, rate, sample
/// format and channel layout.
pub fn abuffer_args(
    tb: ffmpeg::Rational,
    rate: u32,
    format: ffmpeg::format::Sample,
    layout: ffmpeg::ChannelLayout,
) -> String {
    format!(
        "time_base={}/{}:sample_rate={rate}:sample_fmt={}:channel_layout=0x{:x}",
        tb.numerator(),
        tb.denominator(),
        format.name(),
        layout.bits()
    )
}

/// A new reference to the same pictures (no copy): the frame keeps its data alive as long as
/// either holds it.
pub fn frame_ref(frame: &ffmpeg::frame::Video) -> ffmpeg::frame::Video {
    let mut out = ffmpeg::frame::Video::empty();
    // SAFETY: `out` is a freshly allocated, blank AVFrame; av_frame_ref adds references to the
    // source's buffers and copies its properties.
    let rc = unsafe { ffi::av_frame_ref(out.as_mut_ptr(), frame.as_ptr()) };
    if rc < 0 {
        // Not reference-counted (never from a decoder or a filter graph): copy it.
        return frame.clone();
    }
    out
}

/// The MD5 of a frame's pixels packed as `av_image_copy_to_buffer` packs them with alignment 1
/// (what FFmpeg's `framemd5` hashes for raw video), read row by row in place.
pub fn frame_md5(frame: &ffmpeg::frame::Video) -> Result<[u8; 16], ffmpeg::Error> {
    use md5::Digest as _;
    let fmt: ffi::AVPixelFormat = frame.format().into();
    let (w, h) = (frame.width() as i32, frame.height() as i32);
    let mut linesizes = [0i32; 4];
    // SAFETY: plain queries of FFmpeg's pixel format tables for a valid format and size.
    let desc = unsafe {
        let rc = ffi::av_image_fill_linesizes(linesizes.as_mut_ptr(), fmt, w);
        if rc < 0 {
            return Err(ffmpeg::Error::from(rc));
        }
        ffi::av_pix_fmt_desc_get(fmt)
    };
    if desc.is_null() {
        return Err(ffmpeg::Error::InvalidData);
    }
    // SAFETY: the descriptor FFmpeg returned for this format.
    let (chroma_h, paletted) = unsafe { ((*desc).log2_chroma_h, (*desc).flags & ffi::AV_PIX_FMT_FLAG_PAL as u64 != 0) };
    if paletted {
        // Palette formats pack their palette too: the general path.
        return packed_frame(frame).map(|d| md5::Md5::digest(&d).into());
    }
    let mut hasher = md5::Md5::new();
    for (plane, &bytes) in linesizes.iter().enumerate() {
        if bytes <= 0 {
            continue;
        }
        let rows = if plane == 1 || plane == 2 { -((-h) >> chroma_h) } else { h } as isize;
        // SAFETY: each row of a plane starts at data + row × linesize (negative for pictures
        // stored bottom-up, as a vertical flip gives them) and holds at least `bytes` bytes,
        // which is how FFmpeg lays out every frame of this format and size.
        unsafe {
            let f = frame.as_ptr();
            let (data, stride) = ((*f).data[plane], (*f).linesize[plane] as isize);
            if data.is_null() {
                return Err(ffmpeg::Error::InvalidData);
            }
            for row in 0..rows {
                hasher.update(std::slice::from_raw_parts(data.offset(row * stride), bytes as usize));
            }
        }
    }
    Ok(hasher.finalize().into())
}

/// Row `row` of plane `plane` of a decoded or filtered frame, its first `bytes` bytes, wherever
/// the frame keeps it (a picture stored bottom-up has a negative line size, as a vertical flip
/// gives it; ffmpeg-next's `data()` cannot express that).
pub fn plane_row(frame: &ffmpeg::frame::Video, plane: usize, row: usize, bytes: usize) -> &[u8] {
    // SAFETY: rows 0..plane_height of a frame's plane start at data + row × linesize and hold
    // at least the plane's width in bytes; callers ask within those bounds. The slice borrows
    // the frame, which keeps the buffer alive.
    unsafe {
        let f = frame.as_ptr();
        assert!(row < frame.plane_height(plane) as usize && !(*f).data[plane].is_null());
        std::slice::from_raw_parts((*f).data[plane].offset(row as isize * (*f).linesize[plane] as isize), bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A display matrix as FFmpeg's `av_display_rotation_set` (a clockwise rotation) and
    /// `av_display_matrix_flip` make them (16.16 fixed point), with its counter-clockwise angle.
    fn matrix(cw: f64, hflip: bool, vflip: bool) -> ([i32; 9], f64) {
        let mut m = [0i32; 9];
        // SAFETY: both functions write or read nine int32 values of our local array.
        unsafe {
            ffi::av_display_rotation_set(m.as_mut_ptr(), cw);
            ffi::av_display_matrix_flip(m.as_mut_ptr(), hflip as i32, vflip as i32);
            let angle = ffi::av_display_rotation_get(m.as_ptr());
            (m, angle)
        }
    }

    #[test]
    fn orientations_follow_ffmpegs_autorotation() {
        let o = |rotation, mirrored| Orientation { rotation, mirrored };
        let of = |cw, h, v| {
            let (m, a) = matrix(cw, h, v);
            orientation_of(&m, a)
        };
        assert_eq!(of(0.0, false, false), o(0, false));
        assert_eq!(of(90.0, false, false), o(90, false));
        assert_eq!(of(180.0, false, false), o(180, false));
        assert_eq!(of(270.0, false, false), o(270, false));
        assert_eq!(of(-90.0, false, false), o(270, false));
        assert_eq!(of(0.0, true, false), o(0, true));
        assert_eq!(of(0.0, false, true), o(180, true));
        assert_eq!(o(90, true).describe().as_deref(), Some("rotated 90° clockwise and mirrored left to right"));
        assert_eq!(o(0, false).describe(), None);
    }
}
