//! Small filesystem primitives the store and ingest rely on for durability and for leaving
//! sources untouched: open without touching atime, rename without overwriting, fsync a directory.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Open a source file read-only without following a final symlink, and without updating its
/// access time where the kernel allows it (O_NOATIME needs ownership or CAP_FOWNER; without
/// them the open is retried plainly). Evidence sources must not change, not even atime.
pub fn open_source(path: &Path) -> io::Result<File> {
    let base = libc::O_NOFOLLOW | libc::O_CLOEXEC;
    match OpenOptions::new().read(true).custom_flags(base | libc::O_NOATIME).open(path) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => OpenOptions::new().read(true).custom_flags(base).open(path),
        other => other,
    }
}

/// Rename `from` to `to` only if `to` does not exist. Returns `Ok(false)` when `to` exists
/// (the caller decides what that means), never replacing it.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<bool> {
    let cfrom = cstring(from)?;
    let cto = cstring(to)?;
    // SAFETY: both pointers are valid NUL-terminated strings that outlive the call;
    // renameat2 with AT_FDCWD only reads them.
    let rc = unsafe {
        libc::renameat2(libc::AT_FDCWD, cfrom.as_ptr(), libc::AT_FDCWD, cto.as_ptr(), libc::RENAME_NOREPLACE)
    };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EEXIST) => Ok(false),
        // Filesystems without RENAME_NOREPLACE: link() also refuses to replace.
        Some(libc::EINVAL) | Some(libc::ENOSYS) => match std::fs::hard_link(from, to) {
            Ok(()) => {
                std::fs::remove_file(from)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        },
        _ => Err(err),
    }
}

/// Whether this process may write `path` (create and remove entries, for a directory): the
/// kernel's answer for the effective user, `EROFS` on a read-only mount, `EACCES` where the
/// permissions forbid it (root passes those unless the filesystem itself refuses).
pub fn writable(path: &Path) -> io::Result<()> {
    let c = cstring(path)?;
    // SAFETY: a valid NUL-terminated path that outlives the call; faccessat only reads it.
    let rc = unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::W_OK, libc::AT_EACCESS) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// What a file that is neither regular, a directory nor a link is, as messages name it.
pub fn special_kind(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

/// Flush a directory's entries to disk, so a rename into it survives a crash.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn cstring(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// A path as text for messages and the ledger. Valid UTF-8 is kept as it is; any invalid byte
/// is written `\xNN` (and the caller records the raw bytes separately where it matters).
pub fn path_text(path: &Path) -> String {
    let bytes = path.as_os_str().as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            let mut out = String::new();
            for chunk in bytes.utf8_chunks() {
                out.push_str(chunk.valid());
                for b in chunk.invalid() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            out
        }
    }
}

/// True when the path's bytes are not valid UTF-8.
pub fn path_is_utf8(path: &Path) -> bool {
    std::str::from_utf8(path.as_os_str().as_bytes()).is_ok()
}

/// The name of the effective OS user (from the password database), else `uid N`.
pub fn os_user() -> String {
    // SAFETY: geteuid cannot fail. getpwuid_r writes only into the buffers we pass, sized as
    // given; the returned pointer, when non-null, points into `pwd`/`buf`, which outlive its use.
    unsafe {
        let uid = libc::geteuid();
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc == 0 && !result.is_null() && !(*result).pw_name.is_null() {
            return std::ffi::CStr::from_ptr((*result).pw_name).to_string_lossy().into_owned();
        }
        format!("uid {uid}")
    }
}

/// Ask the kernel to start writing a range of `file` to disk now, without waiting, so the
/// final fsync of a large copy has little left to do. A hint only: errors are ignored here
/// and surface at the fsync that follows.
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range on a valid open descriptor; it only schedules I/O.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// Copy `len` bytes at `offset` of `src` to the same offset of `dst` inside the kernel
/// (`copy_file_range`: page cache to page cache, no trip through this process's memory).
pub fn copy_range(src: &File, dst: &File, offset: u64, len: usize) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (mut off_in, mut off_out) = (offset as i64, offset as i64);
    let mut left = len;
    while left > 0 {
        // SAFETY: valid descriptors and offsets owned by this call.
        let n = unsafe { libc::copy_file_range(src.as_raw_fd(), &mut off_in, dst.as_raw_fd(), &mut off_out, left, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the source ended before the bytes already read from it (it changed during the copy)",
            ));
        }
        left -= n as usize;
    }
    Ok(())
}

/// True when `copy_file_range` cannot copy between these files (another filesystem, an old
/// kernel): the caller writes the bytes itself instead.
pub fn copy_range_unsupported(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EXDEV | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::EBADF))
}

/// Write a small file whole and durably: to a temporary name beside it, fsynced, renamed
/// into place (never over an existing file), the directory fsynced.
pub fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    let (_, tmp_path) = tmp.keep().map_err(|e| e.error)?;
    match rename_noreplace(&tmp_path, path) {
        Ok(true) => fsync_dir(dir),
        Ok(false) => {
            let _ = std::fs::remove_file(&tmp_path);
            Err(io::Error::new(io::ErrorKind::AlreadyExists, "the file already exists"))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp_path);
            Err(e)
        }
    }
}
