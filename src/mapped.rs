//! Read-only file mappings that fail the way reads fail, instead of killing the process.
//!
//! Reading a mapped page that can no longer be read raises SIGBUS, whose default action ends
//! the process on the spot: "Bus error", no message naming the file, staging files left
//! behind. It happens when another process truncates the file while it is mapped, and when
//! the medium returns an I/O error (a failing USB stick, a bad sector on a DVR's disk), which
//! is exactly what evidence media do.
//!
//! A [`Mapped`] file registers its address range with one process-wide SIGBUS handler. A fault
//! inside a registered range is answered by mapping zeros over the rest of the range, from the
//! page that failed, and noting that page's offset; the thread that faulted carries on reading
//! zeros. [`Mapped::lost`] tells the reader (which checks it as it goes, and once more at the
//! end) that everything computed from the mapping is void, and [`Mapped::error`] says why: the
//! file is now shorter than the mapping (it was truncated while being read), or it is not (the
//! medium failed). A SIGBUS anywhere else goes to the handler that was installed before (Rust's
//! own), exactly as if this module did not exist.

use std::fs::File;
use std::io;
use std::ops::Deref;
use std::sync::Once;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// Mappings that can be registered at once (a command maps a handful of files at a time).
const SLOTS: usize = 64;
/// Files at least this large are read through a memory map; below it, mapping costs more
/// than the copy into a buffer it saves.
pub const MAP_FROM: u64 = 16 << 20;
/// How far ahead of where it reads a reader of a mapping asks for pages ([`Mapped::prefetch`]).
pub const AHEAD: usize = 8 << 20;
/// `lost` when no page of the mapping failed.
const INTACT: u64 = u64::MAX;

/// `start` of a slot being filled in (no mapping starts at address 1).
const CLAIMING: usize = 1;

struct Slot {
    /// First address of the mapping, 0 when the slot is free, [`CLAIMING`] while it is taken.
    start: AtomicUsize,
    /// One past its last address.
    end: AtomicUsize,
    /// Offset of the first page that could not be read, or [`INTACT`].
    lost: AtomicU64,
}

static TABLE: [Slot; SLOTS] =
    [const { Slot { start: AtomicUsize::new(0), end: AtomicUsize::new(0), lost: AtomicU64::new(INTACT) } }; SLOTS];
static PAGE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();
/// The SIGBUS action that was in place before ours (leaked once, never freed).
static PREVIOUS: AtomicPtr<libc::sigaction> = AtomicPtr::new(std::ptr::null_mut());

/// A read-only, private mapping of a whole regular file whose unreadable pages read as zeros
/// and are reported, instead of raising SIGBUS.
pub struct Mapped {
    map: memmap2::Mmap,
    /// The file, to tell a truncation from a failed medium.
    file: File,
    slot: usize,
}

impl Mapped {
    /// Map all of `file` (at its current length), or say why not: it is empty or not a regular
    /// file, the filesystem cannot map it, or every slot is taken. Callers then read it plainly.
    /// Pages are read in as they are first touched; see [`Mapped::prefetch`] to read ahead.
    pub fn open(file: &File) -> io::Result<Mapped> {
        let meta = file.metadata()?;
        if !meta.is_file() || meta.len() == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a non-empty regular file"));
        }
        install();
        let file = file.try_clone()?;
        // SAFETY: a private, read-only mapping. Its pages can vanish only through truncation
        // or a failed read, and both are caught by the handler below (registered before any
        // page is touched) and reported through `lost`, never read as undefined memory.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        // Every reader reads its mapping from start to end.
        let _ = map.advise(memmap2::Advice::Sequential);
        let (start, end) = (map.as_ptr() as usize, map.as_ptr() as usize + map.len());
        for (i, slot) in TABLE.iter().enumerate() {
            // Claim a free slot, fill it in, then publish its start: the handler skips a slot
            // being filled in, so it never pairs one mapping's start with another's end.
            if slot.start.compare_exchange(0, CLAIMING, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                slot.end.store(end, Ordering::Release);
                slot.lost.store(INTACT, Ordering::Release);
                slot.start.store(start, Ordering::Release);
                return Ok(Mapped { map, file, slot: i });
            }
        }
        Err(io::Error::other("too many files mapped at once"))
    }

    /// Map `file` when it is a regular file of at least [`MAP_FROM`] bytes and can be mapped;
    /// `None` tells the caller to read it plainly.
    pub fn if_large(file: &File) -> Option<Mapped> {
        let len = file.metadata().ok()?.len();
        if len < MAP_FROM {
            return None;
        }
        Mapped::open(file).ok()
    }

    /// Offset of the first page that could not be read, if any: everything computed from the
    /// mapping since is void.
    pub fn lost(&self) -> Option<u64> {
        match TABLE[self.slot].lost.load(Ordering::Acquire) {
            INTACT => None,
            at => Some(at),
        }
    }

    /// The error to report for a lost page at `offset`: the file was truncated while it was
    /// read (`UnexpectedEof`), or the medium could not deliver it (`EIO`).
    pub fn error(&self, offset: u64) -> io::Error {
        match self.file.metadata() {
            Ok(m) if m.len() <= offset => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the file shrank to {} bytes while it was being read", m.len()),
            ),
            _ => io::Error::from_raw_os_error(libc::EIO),
        }
    }

    /// `Err` (see [`Mapped::error`]) when a page could not be read.
    pub fn check(&self) -> io::Result<()> {
        match self.lost() {
            None => Ok(()),
            Some(at) => Err(self.error(at)),
        }
    }

    /// Start reading `[at, at + len)` (clipped to the mapping) in from the medium now, without
    /// waiting: a reader that asks for the stretch [`AHEAD`] of where it is keeps a slow
    /// medium's reads going while it works, as plain reads' readahead does.
    pub fn prefetch(&self, at: usize, len: usize) {
        if at < self.map.len() {
            let _ = self.map.advise_range(memmap2::Advice::WillNeed, at, len.min(self.map.len() - at));
        }
    }
}

impl Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // Free the slot before the mapping goes (the field is dropped after this body): no
        // thread reads a mapping that is being dropped, so no fault can race the release.
        TABLE[self.slot].start.store(0, Ordering::Release);
    }
}

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE.store(page as usize, Ordering::Relaxed);
        }
        // SAFETY: a zeroed sigaction is a valid value to fill in; `on_sigbus` has the
        // SA_SIGINFO signature and only calls async-signal-safe system calls.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            let previous = Box::into_raw(Box::new(std::mem::zeroed::<libc::sigaction>()));
            if libc::sigaction(libc::SIGBUS, &action, previous) == 0 {
                PREVIOUS.store(previous, Ordering::Release);
            } else {
                drop(Box::from_raw(previous));
            }
        }
    });
}

extern "C" fn on_sigbus(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel hands a valid siginfo to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Relaxed);
    for slot in &TABLE {
        let start = slot.start.load(Ordering::Acquire);
        let end = slot.end.load(Ordering::Acquire);
        if start == 0 || start == CLAIMING || addr < start || addr >= end {
            continue;
        }
        let from = addr & !(page - 1);
        // Zeros over the rest of the mapping (one call, not one signal per page), then let
        // the faulting instruction run again.
        // SAFETY: the range lies inside a mapping this process owns and has registered; the
        // mapping is only unmapped after it is unregistered.
        let zeros = unsafe {
            libc::mmap(
                from as *mut libc::c_void,
                end - from,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if zeros != libc::MAP_FAILED {
            slot.lost.fetch_min((from - start) as u64, Ordering::AcqRel);
            return;
        }
        break;
    }
    // Not ours (or zeros could not be mapped): the previous action takes over.
    let previous = PREVIOUS.load(Ordering::Acquire);
    if previous.is_null() {
        // SAFETY: restoring the default action, as the signal was never ours to handle.
        unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
        return;
    }
    // SAFETY: `previous` was filled in by sigaction and is never freed.
    let previous = unsafe { &*previous };
    let handler = previous.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Reinstate it and return: the fault happens again and takes its default course.
        // SAFETY: as above.
        unsafe { libc::sigaction(libc::SIGBUS, previous, std::ptr::null_mut()) };
    } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        f(signal, info, context);
    } else {
        // SAFETY: the previous handler was installed with the one-argument signature.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        f(signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(len: usize) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
        f.write_all(&data).unwrap();
        f.flush().unwrap();
        f
    }

    #[test]
    fn a_file_truncated_while_mapped_reads_as_zeros_and_reports_where_and_why() {
        let page = {
            install();
            PAGE.load(Ordering::Relaxed)
        };
        let f = file_of(page * 8);
        let map = Mapped::open(f.as_file()).unwrap();
        assert_eq!(map.lost(), None);
        assert_eq!(map[page * 5], (page * 5 % 251) as u8 + 1);
        // A page lost while the file still reaches past it: the medium failed.
        assert_eq!(map.error((page * 5) as u64).raw_os_error(), Some(libc::EIO));
        f.as_file().set_len((page * 3 + 100) as u64).unwrap();
        // Without the handler this loop ends the test process with SIGBUS.
        let sum: u64 = map.iter().map(|&b| b as u64).sum();
        assert!(sum > 0);
        assert_eq!(map.lost(), Some((page * 4) as u64), "the first page wholly past the new end");
        assert!(map[page * 4..].iter().all(|&b| b == 0));
        assert_eq!(map[page * 3 + 99], ((page * 3 + 99) % 251) as u8 + 1, "pages still in the file are intact");
        let e = map.check().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("shrank"), "{e}");
    }

    #[test]
    fn slots_are_released_and_reused() {
        let f = file_of(10_000);
        for _ in 0..(SLOTS * 2) {
            let map = Mapped::open(f.as_file()).unwrap();
            assert_eq!(map.len(), 10_000);
            map.check().unwrap();
        }
    }

    #[test]
    fn mappings_registered_from_many_threads_at_once_keep_their_own_ranges() {
        let files: Vec<_> = (0..8).map(|i| file_of(4096 * (i + 1) + 17)).collect();
        std::thread::scope(|s| {
            for f in &files {
                s.spawn(move || {
                    let len = f.as_file().metadata().unwrap().len() as usize;
                    for _ in 0..200 {
                        let map = Mapped::open(f.as_file()).unwrap();
                        let slot = &TABLE[map.slot];
                        assert_eq!(slot.start.load(Ordering::Acquire), map.as_ptr() as usize);
                        assert_eq!(slot.end.load(Ordering::Acquire), map.as_ptr() as usize + len);
                        assert_eq!(map[len - 1], ((len - 1) % 251) as u8 + 1);
                        assert_eq!(map.lost(), None);
                    }
                });
            }
        });
    }

    #[test]
    fn empty_files_and_directories_are_read_plainly() {
        let f = file_of(0);
        assert!(Mapped::open(f.as_file()).is_err());
        assert!(Mapped::if_large(&File::open(std::env::temp_dir()).unwrap()).is_none());
    }
}
