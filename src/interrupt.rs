//! Ctrl-C (SIGINT), SIGTERM and SIGHUP: a command stopped before it records anything says
//! "interrupted, nothing recorded", removes its staging directory and exits 128 + the signal
//! (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).
//!
//! The signals are blocked in every thread and taken by one thread of their own (`sigwait`),
//! so they never land in the middle of FFmpeg, SQLite or a copy, and the cleanup runs as
//! ordinary code, not in a signal handler. Integrity-relevant: the commit of an event and the
//! moves of its objects into place run holding [`committing`], which that thread takes before
//! it removes anything, so a command is never stopped between writing its event and putting
//! its objects in place; a signal that arrives meanwhile waits for the commit, and the message
//! then names the event that was recorded. Signals the caller set to be ignored (`nohup`, a
//! background job of a non-interactive shell) stay ignored.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Staging directories and temporary files of this process, removed when it is interrupted.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Held while an event is committed and its objects moved into place.
static COMMIT: Mutex<()> = Mutex::new(());
/// The last event this process recorded (0: none).
static RECORDED: AtomicU64 = AtomicU64::new(0);
/// Whether to print the JSON error document on stdout too (`--json`).
static JSON: AtomicBool = AtomicBool::new(false);

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Block the signals and start the thread that takes them. Call first thing in `main`,
/// before any other thread exists: threads inherit the blocked set from their creator.
pub fn install() {
    // SAFETY: the sigset is initialised by sigemptyset before use; sigaction with a null new
    // action only reads the current one; pthread_sigmask changes this thread's mask, which
    // every thread created later inherits.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in SIGNALS {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut current) == 0 && current.sa_sigaction != libc::SIG_IGN {
                libc::sigaddset(&mut set, sig);
            }
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return;
        }
        set
    };
    let spawned = std::thread::Builder::new().name("signals".into()).spawn(move || {
        loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` is a valid, initialised sigset; sigwait writes only `sig`.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                interrupted(sig);
            }
        }
    });
    if spawned.is_err() {
        // No thread to take them: let the signals act as they would have.
        // SAFETY: unblocking the set this thread blocked above.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
}

/// Say the interruption in the `--json` error document too.
pub fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

/// Remove `path` (a staging directory or a temporary file) if the process is interrupted.
pub fn remove_on_interrupt(path: &Path) {
    lock(&PENDING).push(path.to_owned());
}

/// Forget `path`: it was removed, or it must now be kept (its event is recorded).
pub fn keep(path: &Path) {
    lock(&PENDING).retain(|p| p != path);
}

/// Held while an event is committed: an interruption waits for it.
pub fn committing() -> MutexGuard<'static, ()> {
    lock(&COMMIT)
}

/// Note that this process recorded event `seq` (call holding [`committing`]).
pub fn recorded(seq: u64) {
    RECORDED.store(seq, Ordering::SeqCst);
}

fn lock<T>(m: &'static Mutex<T>) -> MutexGuard<'static, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs on the signal thread: wait for a commit under way, remove what is pending, say what
/// happened, exit. Never returns.
fn interrupted(sig: libc::c_int) {
    let _no_commit = committing();
    let pending: Vec<PathBuf> = std::mem::take(&mut *lock(&PENDING));
    for path in &pending {
        // The command is still running on other threads and may add a file meanwhile: retry.
        for _ in 0..5 {
            let gone = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
            if gone.is_ok() || !path.exists() {
                break;
            }
        }
    }
    let name = match sig {
        libc::SIGINT => "SIGINT, Ctrl-C",
        libc::SIGTERM => "SIGTERM",
        _ => "SIGHUP",
    };
    let removed = if pending.is_empty() { "" } else { "; its staged files were removed" };
    let message = match RECORDED.load(Ordering::SeqCst) {
        0 => format!("interrupted, nothing recorded ({name}{removed})"),
        seq => format!(
            "interrupted after event {seq} was recorded; nothing of the work under way was recorded \
             ({name}{removed}; `custody log` shows what was)"
        ),
    };
    let code = 128 + sig;
    if JSON.load(Ordering::Relaxed) {
        let doc = serde_json::json!({"schema_version": 1, "error": message, "exit_code": code});
        write_fd(1, &format!("{}\n", serde_json::to_string_pretty(&doc).expect("errors serialize")));
    }
    let newline = if std::io::IsTerminal::is_terminal(&std::io::stderr()) { "\n" } else { "" };
    write_fd(2, &format!("{newline}custody: {message}\n"));
    // SAFETY: _exit ends the process at once, without running destructors or atexit handlers
    // that other threads, still working, could be using.
    unsafe { libc::_exit(code) }
}

/// Write straight to a file descriptor: the command's own thread may hold the lock of Rust's
/// stdout or stderr (`export` holds stdout's while it writes), and waiting for it could hang.
fn write_fd(fd: libc::c_int, text: &str) {
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        // SAFETY: writes from a valid buffer of the given length; the descriptor is one of the
        // standard ones, open for the process's life.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            return;
        }
        rest = &rest[n as usize..];
    }
}
