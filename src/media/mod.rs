//! Everything that touches FFmpeg: probing, decoding, test-source synthesis.

pub mod enhance;
pub mod exact;
pub mod ffi;
pub mod frames;
pub mod framing;
pub mod index;
pub mod iso;
pub mod log;
pub mod nal;
pub mod probe;
pub mod redact;
pub mod remux;
pub mod smart;
pub mod still;
pub mod synth;
pub mod time;

use std::collections::BTreeMap;
use std::sync::Once;

use ffmpeg_next as ffmpeg;

static INIT: Once = Once::new();

/// Initialise FFmpeg once per process and take its own log: every problem it reports reaches
/// the user through custody's messages, as warnings naming what was read ([`log`]).
pub fn init() {
    INIT.call_once(|| {
        let _ = ffmpeg::init();
        log::install();
    });
}

/// The FFmpeg library versions in use, as `major.minor.micro`, keyed by library name.
pub fn library_versions() -> BTreeMap<String, String> {
    fn v(n: u32) -> String {
        format!("{}.{}.{}", n >> 16, (n >> 8) & 0xff, n & 0xff)
    }
    BTreeMap::from([
        ("libavutil".to_owned(), v(ffmpeg::util::version())),
        ("libavcodec".to_owned(), v(ffmpeg::codec::version())),
        ("libavformat".to_owned(), v(ffmpeg::format::version())),
        ("libavfilter".to_owned(), v(ffmpeg::filter::version())),
        ("libswscale".to_owned(), v(ffmpeg::software::scaling::version())),
        ("libswresample".to_owned(), v(ffmpeg::software::resampling::version())),
    ])
}
