//! FFmpeg's own messages (a damaged slice, a missing reference picture, a stream it cannot
//! time), taken from its log and told through custody's: as warnings naming the item or file
//! being read, repeats counted, never raw on stderr and never lost.

use std::collections::BTreeMap;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ffmpeg_next::ffi;

/// At most this many different messages are kept per command; the rest are counted.
const KEEP: usize = 20;

/// Messages about custody's own use of the libraries, not about the evidence, left out: swscale
/// warns on every picture of full-range ("J") formats that it converts them, full range, as it
/// should (MJPEG cameras); saying so to a clerk as a problem of the recording would mislead.
const NOT_ABOUT_EVIDENCE: [&str; 1] = ["deprecated pixel format used"];

struct Log {
    /// What is being read now, as reports name it.
    subject: String,
    /// Names for files: an object in the store is told by its item.
    names: BTreeMap<PathBuf, String>,
    /// (subject, message) → how often, in order of first appearance.
    lines: Vec<((String, String), u64)>,
    dropped: u64,
    /// While a [`Quiet`] lives: FFmpeg is reading bytes custody left out on purpose (zeros in
    /// place of payloads), and what it says of them is not about the evidence.
    quiet: u32,
}

static LOG: Mutex<Log> =
    Mutex::new(Log { subject: String::new(), names: BTreeMap::new(), lines: Vec::new(), dropped: 0, quiet: 0 });

/// FFmpeg's messages are dropped while one of these lives (see [`Log::quiet`]).
pub struct Quiet(());

impl Quiet {
    pub fn new() -> Quiet {
        log().quiet += 1;
        Quiet(())
    }
}

/// Drop FFmpeg's messages from now on in this process: a read of the object was refused (its
/// bytes did not match), the command fails for that reason, and what FFmpeg says of the bytes
/// it did not get is not about the recording.
pub fn hush() {
    log().quiet += 1;
}

impl Default for Quiet {
    fn default() -> Quiet {
        Quiet::new()
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        log().quiet -= 1;
    }
}

fn log() -> std::sync::MutexGuard<'static, Log> {
    LOG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Route FFmpeg's warnings and errors here (called once, by [`super::init`]).
pub(super) fn install() {
    // SAFETY: av_log_set_level and av_log_set_callback only store their arguments; `callback`
    // is a plain function that lives as long as the process.
    unsafe {
        ffi::av_log_set_level(ffi::AV_LOG_WARNING);
        ffi::av_log_set_callback(Some(callback));
    }
}

/// Name `path` (an object in the store) as `name` (its item) in messages.
pub fn name(path: &Path, name: &str) {
    log().names.insert(path.to_owned(), name.to_owned());
}

/// What is read from now on: `path`, told by the name given it, else as it is.
pub fn reading(path: &Path) {
    let mut log = log();
    let subject = log.names.get(path).cloned().unwrap_or_else(|| path.display().to_string());
    log.subject = subject;
}

/// The messages gathered since the last call, as warning lines.
pub fn take() -> Vec<String> {
    let mut log = log();
    let mut out: Vec<String> = std::mem::take(&mut log.lines)
        .into_iter()
        .map(|((subject, message), n)| {
            let times = if n > 1 { format!(" ({n} times)") } else { String::new() };
            if subject.is_empty() {
                format!("FFmpeg: {message}{times}")
            } else {
                format!("FFmpeg, reading {subject}: {message}{times}")
            }
        })
        .collect();
    let dropped = std::mem::take(&mut log.dropped);
    if dropped > 0 {
        out.push(format!("FFmpeg: {dropped} more messages of other kinds"));
    }
    out
}

unsafe extern "C" fn callback(avcl: *mut c_void, level: c_int, fmt: *const c_char, vl: *mut ffi::__va_list_tag) {
    if level > ffi::AV_LOG_WARNING || fmt.is_null() {
        return;
    }
    let mut buf = [0 as c_char; 1024];
    let mut prefix: c_int = 1;
    // SAFETY: FFmpeg hands the callback a valid format string and its va_list, which
    // av_log_format_line2 consumes once, writing at most `buf.len()` bytes (NUL-terminated).
    let line = unsafe {
        ffi::av_log_format_line2(avcl, level, fmt, vl, buf.as_mut_ptr(), buf.len() as c_int, &mut prefix);
        CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
    };
    record(&line);
}

/// Keep one formatted line: `[h264 @ 0x55d…] error while decoding MB 3 4` → `h264: error
/// while decoding MB 3 4` (the address means nothing to a reader).
fn record(line: &str) {
    let text = line.trim();
    if text.is_empty() {
        return;
    }
    if NOT_ABOUT_EVIDENCE.iter().any(|m| text.contains(m)) {
        return;
    }
    let message = match text.strip_prefix('[').and_then(|t| t.split_once("] ")) {
        Some((who, what)) => format!("{}: {}", who.split(" @ ").next().unwrap_or(who), what.trim()),
        None => text.to_owned(),
    };
    let mut log = log();
    if log.quiet > 0 {
        return;
    }
    let key = (log.subject.clone(), message);
    if let Some(slot) = log.lines.iter_mut().find(|(k, _)| *k == key) {
        slot.1 += 1;
    } else if log.lines.len() < KEEP {
        log.lines.push((key, 1));
    } else {
        log.dropped += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_lose_their_addresses_and_repeats_are_counted() {
        let _ = take();
        reading(Path::new("/store/objects/ab/cd"));
        name(Path::new("/store/objects/ab/ef"), "i3 (24-1:1/cam.h264)");
        reading(Path::new("/store/objects/ab/ef"));
        record("[h264 @ 0x55d0c0ffee00] error while decoding MB 3 4\n");
        record("[h264 @ 0x55d0c0ffee00] error while decoding MB 3 4\n");
        record("plain message\n");
        assert_eq!(
            take(),
            [
                "FFmpeg, reading i3 (24-1:1/cam.h264): h264: error while decoding MB 3 4 (2 times)",
                "FFmpeg, reading i3 (24-1:1/cam.h264): plain message"
            ]
        );
        assert!(take().is_empty());
    }
}
