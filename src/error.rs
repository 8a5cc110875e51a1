//! Exit codes and the typed failures that decide them.
//!
//! DESIGN.md fixes the exit codes: 0 success, 1 verification failed (a mismatch was found),
//! 2 usage or input error (nothing was changed), 3 environment error (lock timeout, disk full,
//! read-only store, a codec missing). Errors travel as `anyhow::Error`; the code is decided by
//! the first [`Failure`] found in the chain, or else by the kind of the underlying I/O or
//! SQLite error.

use std::fmt;

/// The documented process exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Mismatch = 1,
    Input = 2,
    Environment = 3,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// An error that knows its exit code. Its message names the file, item or event and says what
/// to do.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// A usage or input error (exit 2).
pub fn input(message: impl Into<String>) -> anyhow::Error {
    Failure { exit: Exit::Input, message: message.into() }.into()
}

/// An environment error (exit 3).
pub fn environment(message: impl Into<String>) -> anyhow::Error {
    Failure { exit: Exit::Environment, message: message.into() }.into()
}

/// A verification failure (exit 1).
pub fn mismatch(message: impl Into<String>) -> anyhow::Error {
    Failure { exit: Exit::Mismatch, message: message.into() }.into()
}

/// The same failure (same exit code) with a fuller message.
pub fn with_exit(err: anyhow::Error, message: String) -> anyhow::Error {
    Failure { exit: exit_for(&err), message: format!("{message}\nThe failing step: {err:#}") }.into()
}

/// The same failure (same exit code), its message led by what it concerns (`clip of i3 (…)`).
pub fn about(err: anyhow::Error, subject: &str) -> anyhow::Error {
    Failure { exit: exit_for(&err), message: format!("{subject}: {err:#}") }.into()
}

/// The same failure (same exit code) with every mention of `path` (an object's place in the
/// store, which means nothing to a user) replaced by `name` (the item it holds).
pub fn naming(err: anyhow::Error, path: &std::path::Path, name: &str) -> anyhow::Error {
    let message = format!("{err:#}");
    let shown = path.display().to_string();
    if !message.contains(&shown) {
        return err;
    }
    Failure { exit: exit_for(&err), message: message.replace(&shown, name) }.into()
}

/// Decide the exit code for an error chain.
pub fn exit_for(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.exit;
        }
    }
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<rusqlite::Error>() {
            return sqlite_exit(e);
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            return io_exit(e);
        }
    }
    Exit::Input
}

fn sqlite_exit(e: &rusqlite::Error) -> Exit {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(
            DatabaseBusy | DatabaseLocked | DiskFull | ReadOnly | SystemIoFailure | CannotOpen | PermissionDenied
            | OutOfMemory,
        ) => Exit::Environment,
        Some(DatabaseCorrupt | NotADatabase) => Exit::Mismatch,
        _ => Exit::Environment,
    }
}

fn io_exit(e: &std::io::Error) -> Exit {
    use std::io::ErrorKind::*;
    match e.kind() {
        NotFound | InvalidInput | InvalidData | IsADirectory | NotADirectory => Exit::Input,
        _ => Exit::Environment,
    }
}

/// True when an I/O error means the disk (or quota) is full.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}
