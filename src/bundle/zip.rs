//! ZIP files, written and read by hand: the writer stores every file as it is (media must not be
//! deflated), with ZIP64 where sizes or offsets need it; the reader checks an archive's structure
//! strictly (names, links, duplicates, overlaps, sizes, truncation) before anything in it is used.

use std::fs::File;
use std::io::{self, Write};

const LOCAL: u32 = 0x0403_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END: u32 = 0x0605_4b50;
const END64: u32 = 0x0606_4b50;
const LOCATOR64: u32 = 0x0706_4b50;
const MAX32: u64 = 0xFFFF_FFFF;
/// General-purpose flag: names are UTF-8.
const UTF8: u16 = 0x0800;

struct Written {
    name: String,
    crc: u32,
    size: u64,
    offset: u64,
}

/// Entries from this size on are written on their own thread while the archive is digested.
const PARALLEL_FROM: usize = 8 << 20;
/// How much is written before it is handed to the disk.
const WRITEBACK_STEP: u64 = 32 << 20;

/// Writes a ZIP archive of stored (uncompressed) entries, front to back (never seeking back),
/// digesting the archive's own bytes as they are written.
pub struct ZipWriter {
    file: File,
    offset: u64,
    entries: Vec<Written>,
    dos_time: (u16, u16),
    sha256: ring::digest::Context,
    blake3: blake3::Hasher,
}

/// A finished archive: its file (synced) and digests.
pub struct Finished {
    pub file: File,
    pub sha256: String,
    pub blake3: String,
    pub size: u64,
}

fn le16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn le32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn le64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

impl ZipWriter {
    /// Start an archive in `file` (empty, opened for writing). `time` is the entries' time.
    pub fn new(file: File, time: jiff::civil::DateTime) -> ZipWriter {
        let date = (((time.year().max(1980) - 1980) as u16) << 9) | ((time.month() as u16) << 5) | time.day() as u16;
        let clock = ((time.hour() as u16) << 11) | ((time.minute() as u16) << 5) | (time.second() as u16 / 2);
        ZipWriter {
            file,
            offset: 0,
            entries: Vec::new(),
            dos_time: (clock, date),
            sha256: ring::digest::Context::new(&ring::digest::SHA256),
            blake3: blake3::Hasher::new(),
        }
    }

    fn put(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.sha256.update(data);
        self.blake3.update(data);
        // Hand finished stretches to the disk as we go, so the final sync has little left.
        const STEP: u64 = WRITEBACK_STEP;
        let end = self.offset + data.len() as u64;
        if end / STEP > self.offset / STEP {
            let from = (self.offset / STEP).saturating_sub(1) * STEP;
            crate::fsutil::start_writeback(&self.file, from, end - from);
        }
        self.offset = end;
        Ok(())
    }

    fn local_header(&self, name: &str, crc: u32, size: u64) -> Vec<u8> {
        let zip64 = size >= MAX32;
        let mut h = Vec::with_capacity(30 + name.len() + 20);
        le32(&mut h, LOCAL);
        le16(&mut h, if zip64 { 45 } else { 20 });
        le16(&mut h, UTF8);
        le16(&mut h, 0); // stored
        le16(&mut h, self.dos_time.0);
        le16(&mut h, self.dos_time.1);
        le32(&mut h, crc);
        let small = if zip64 { MAX32 as u32 } else { size as u32 };
        le32(&mut h, small);
        le32(&mut h, small);
        le16(&mut h, name.len() as u16);
        le16(&mut h, if zip64 { 20 } else { 0 });
        h.extend_from_slice(name.as_bytes());
        if zip64 {
            le16(&mut h, 1);
            le16(&mut h, 16);
            le64(&mut h, size);
            le64(&mut h, size);
        }
        h
    }

    /// Add `data` under `name`.
    pub fn add_bytes(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.add(name, crc32fast::hash(data), data)
    }

    /// Add `data` under `name`, whose CRC-32 the caller computed (on another thread, say).
    /// Large entries are written, and the archive's two digests taken, on three threads at once.
    pub fn add(&mut self, name: &str, crc: u32, data: &[u8]) -> io::Result<()> {
        let header = self.local_header(name, crc, data.len() as u64);
        let start = self.offset;
        self.put(&header)?;
        if data.len() < PARALLEL_FROM {
            self.put(data)?;
        } else {
            let ZipWriter { file, offset, sha256, blake3, .. } = self;
            let base = *offset;
            std::thread::scope(|s| {
                let writer = s.spawn(|| {
                    let mut done = 0u64;
                    for piece in data.chunks(WRITEBACK_STEP as usize) {
                        file.write_all(piece)?;
                        done += piece.len() as u64;
                        // Hand finished stretches to the disk as we go, so the final sync has
                        // little left.
                        crate::fsutil::start_writeback(file, base + done - piece.len() as u64, piece.len() as u64);
                    }
                    io::Result::Ok(())
                });
                s.spawn(|| {
                    blake3.update(data);
                });
                sha256.update(data);
                writer.join().expect("zip writer thread panicked")
            })?;
            self.offset += data.len() as u64;
        }
        self.entries.push(Written { name: name.to_owned(), crc, size: data.len() as u64, offset: start });
        Ok(())
    }

    /// Write the central directory and the end records; returns the file, synced, and digests.
    pub fn finish(mut self) -> io::Result<Finished> {
        let cd_start = self.offset;
        let mut cd = Vec::new();
        for e in &self.entries {
            let mut extra = Vec::new();
            if e.size >= MAX32 {
                le64(&mut extra, e.size);
                le64(&mut extra, e.size);
            }
            if e.offset >= MAX32 {
                le64(&mut extra, e.offset);
            }
            let zip64 = !extra.is_empty();
            le32(&mut cd, CENTRAL);
            le16(&mut cd, (3 << 8) | 45); // made by: Unix, 4.5
            le16(&mut cd, if zip64 { 45 } else { 20 });
            le16(&mut cd, UTF8);
            le16(&mut cd, 0);
            le16(&mut cd, self.dos_time.0);
            le16(&mut cd, self.dos_time.1);
            le32(&mut cd, e.crc);
            let small = if e.size >= MAX32 { MAX32 as u32 } else { e.size as u32 };
            le32(&mut cd, small);
            le32(&mut cd, small);
            le16(&mut cd, e.name.len() as u16);
            le16(&mut cd, if zip64 { extra.len() as u16 + 4 } else { 0 });
            le16(&mut cd, 0); // comment
            le16(&mut cd, 0); // disk
            le16(&mut cd, 0); // internal attributes
            le32(&mut cd, 0o100_444 << 16); // a read-only regular file
            le32(&mut cd, if e.offset >= MAX32 { MAX32 as u32 } else { e.offset as u32 });
            cd.extend_from_slice(e.name.as_bytes());
            if zip64 {
                le16(&mut cd, 1);
                le16(&mut cd, extra.len() as u16);
                cd.extend_from_slice(&extra);
            }
        }
        let count = self.entries.len() as u64;
        let cd_size = cd.len() as u64;
        let mut end = Vec::new();
        if count >= 0xFFFF || cd_start >= MAX32 || cd_size >= MAX32 {
            let end64_at = cd_start + cd_size;
            le32(&mut end, END64);
            le64(&mut end, 44);
            le16(&mut end, (3 << 8) | 45);
            le16(&mut end, 45);
            le32(&mut end, 0);
            le32(&mut end, 0);
            le64(&mut end, count);
            le64(&mut end, count);
            le64(&mut end, cd_size);
            le64(&mut end, cd_start);
            le32(&mut end, LOCATOR64);
            le32(&mut end, 0);
            le64(&mut end, end64_at);
            le32(&mut end, 1);
        }
        le32(&mut end, END);
        le16(&mut end, 0);
        le16(&mut end, 0);
        le16(&mut end, count.min(0xFFFF) as u16);
        le16(&mut end, count.min(0xFFFF) as u16);
        le32(&mut end, cd_size.min(MAX32) as u32);
        le32(&mut end, cd_start.min(MAX32) as u32);
        le16(&mut end, 0);
        self.put(&cd)?;
        self.put(&end)?;
        self.file.sync_all()?;
        Ok(Finished {
            sha256: hex::encode(self.sha256.finish()),
            blake3: self.blake3.finalize().to_hex().to_string(),
            size: self.offset,
            file: self.file,
        })
    }
}

/// One entry of an archive, as its central directory declares it (checked).
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub method: u16,
    pub crc: u32,
    pub compressed: u64,
    pub size: u64,
    /// Where the entry's data starts in the archive.
    pub data_at: u64,
    pub is_dir: bool,
}

/// Why an archive is refused before anything in it is used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"))
}

/// Read and check the central directory of the archive `zip` (the whole file's bytes). Refused:
/// no end record (not a ZIP, or truncated), a directory or entry outside the file, names that
/// are absolute, climb with `..`, hold backslashes, NUL or control characters, duplicate names,
/// symbolic links, encryption, methods other than stored and deflate, stored entries whose
/// sizes disagree, entries whose bytes overlap, local headers that disagree with the directory.
pub fn read_entries(zip: &[u8]) -> Result<Vec<Entry>, Refusal> {
    let refuse = |m: String| Err(Refusal(m));
    let len = zip.len();
    if len < 22 {
        return refuse("the archive is truncated: it is too short to be a ZIP file".into());
    }
    // The end record is within the last 64 KiB + 22 bytes (its comment is at most 65535).
    let lowest = len.saturating_sub(22 + 0xFFFF);
    let Some(eocd) = (lowest..=len - 22).rev().find(|&i| u32_at(zip, i) == END) else {
        return refuse("the archive is truncated or not a ZIP file: its end record is missing".into());
    };
    let mut count = u16_at(zip, eocd + 10) as u64;
    let mut cd_size = u32_at(zip, eocd + 12) as u64;
    let mut cd_start = u32_at(zip, eocd + 16) as u64;
    if eocd >= 20 && u32_at(zip, eocd - 20) == LOCATOR64 {
        let at = u64_at(zip, eocd - 12) as usize;
        if at + 56 > len || u32_at(zip, at) != END64 {
            return refuse("the archive is truncated: its ZIP64 end record is missing".into());
        }
        count = u64_at(zip, at + 32);
        cd_size = u64_at(zip, at + 40);
        cd_start = u64_at(zip, at + 48);
    }
    if cd_start.checked_add(cd_size).is_none_or(|e| e > eocd as u64) {
        return refuse("the archive is truncated: its central directory lies outside the file".into());
    }
    let mut entries: Vec<Entry> = Vec::new();
    let mut spans: Vec<(u64, u64, String)> = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut p = cd_start as usize;
    let cd_end = (cd_start + cd_size) as usize;
    for _ in 0..count {
        if p + 46 > cd_end || u32_at(zip, p) != CENTRAL {
            return refuse("the central directory is damaged or truncated".into());
        }
        let made_by = u16_at(zip, p + 4);
        let flags = u16_at(zip, p + 8);
        let method = u16_at(zip, p + 10);
        let crc = u32_at(zip, p + 16);
        let mut compressed = u32_at(zip, p + 20) as u64;
        let mut size = u32_at(zip, p + 24) as u64;
        let name_len = u16_at(zip, p + 28) as usize;
        let extra_len = u16_at(zip, p + 30) as usize;
        let comment_len = u16_at(zip, p + 32) as usize;
        let external = u32_at(zip, p + 38);
        let mut local = u32_at(zip, p + 42) as u64;
        let next = p + 46 + name_len + extra_len + comment_len;
        if next > cd_end {
            return refuse("the central directory is damaged or truncated".into());
        }
        let raw = &zip[p + 46..p + 46 + name_len];
        // ZIP64 extra field: the 64-bit values of the fields set to 0xFFFFFFFF, in order.
        let mut e = p + 46 + name_len;
        let extra_end = e + extra_len;
        while e + 4 <= extra_end {
            let (id, n) = (u16_at(zip, e), u16_at(zip, e + 2) as usize);
            if id == 1 {
                let mut q = e + 4;
                for field in [&mut size, &mut compressed, &mut local] {
                    if *field == MAX32 && q + 8 <= e + 4 + n {
                        *field = u64_at(zip, q);
                        q += 8;
                    }
                }
            }
            e += 4 + n;
        }
        p = next;
        let Ok(name) = std::str::from_utf8(raw) else {
            return refuse(format!("an entry's name is not UTF-8 ({})", String::from_utf8_lossy(raw)));
        };
        let name = name.to_owned();
        check_name(&name)?;
        if !names.insert(name.clone()) {
            return refuse(format!("the archive holds two entries named {name:?}"));
        }
        let unix = made_by >> 8 == 3;
        if unix && (external >> 16) & 0o170_000 == 0o120_000 {
            return refuse(format!("{name} is a symbolic link"));
        }
        if flags & 1 != 0 {
            return refuse(format!("{name} is encrypted"));
        }
        if method != 0 && method != 8 {
            return refuse(format!("{name} uses compression method {method}; only stored and deflate are accepted"));
        }
        if method == 0 && compressed != size {
            return refuse(format!("{name} is stored but declares {size} bytes in {compressed}"));
        }
        // The local header must agree, and the data must lie inside the file.
        let l = local as usize;
        if local.checked_add(30).is_none_or(|x| x > cd_start) || u32_at(zip, l) != LOCAL {
            return refuse(format!("{name}: its local header is missing or outside the archive"));
        }
        let (lname, lextra) = (u16_at(zip, l + 26) as usize, u16_at(zip, l + 28) as usize);
        if l + 30 + lname > len || &zip[l + 30..l + 30 + lname] != raw {
            return refuse(format!("{name}: its local header names another file"));
        }
        let data_at = local + 30 + lname as u64 + lextra as u64;
        if data_at.checked_add(compressed).is_none_or(|x| x > cd_start) {
            return refuse(format!("{name}: its data runs past the end of the archive (truncated?)"));
        }
        spans.push((local, data_at + compressed, name.clone()));
        let is_dir = name.ends_with('/');
        entries.push(Entry { name, method, crc, compressed, size, data_at, is_dir });
    }
    spans.sort();
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            return refuse(format!("the entries {} and {} overlap (a crafted archive)", w[0].2, w[1].2));
        }
    }
    Ok(entries)
}

fn check_name(name: &str) -> Result<(), Refusal> {
    let refuse = |why: &str| Err(Refusal(format!("the entry name {name:?} {why}")));
    if name.is_empty() {
        return refuse("is empty");
    }
    if name.starts_with('/') || name.as_bytes().get(1) == Some(&b':') {
        return refuse("is an absolute path");
    }
    if name.contains('\\') {
        return refuse("holds a backslash");
    }
    if name.chars().any(|c| c.is_control()) {
        return refuse("holds a control character");
    }
    if name.split('/').any(|c| c == "..") {
        return refuse("climbs out of the archive with ..");
    }
    Ok(())
}

/// The bytes of a checked entry: borrowed when stored, inflated (never beyond the declared
/// size) when deflated; the CRC is checked either way.
pub fn entry_bytes<'a>(zip: &'a [u8], e: &Entry) -> Result<std::borrow::Cow<'a, [u8]>, String> {
    let raw = &zip[e.data_at as usize..(e.data_at + e.compressed) as usize];
    let data: std::borrow::Cow<'a, [u8]> = if e.method == 0 {
        std::borrow::Cow::Borrowed(raw)
    } else {
        let out = miniz_oxide::inflate::decompress_to_vec_with_limit(raw, e.size as usize)
            .map_err(|_| format!("{}: its compressed data is damaged or larger than declared", e.name))?;
        if out.len() as u64 != e.size {
            return Err(format!("{}: inflates to {} bytes, not the {} declared", e.name, out.len(), e.size));
        }
        std::borrow::Cow::Owned(out)
    };
    Ok(data)
}

/// Whether the entry's CRC-32 matches its bytes.
pub fn crc_ok(data: &[u8], e: &Entry) -> bool {
    crc32fast::hash(data) == e.crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};

    fn build(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let tmp = tempfile::tempfile().unwrap();
        let mut z = ZipWriter::new(tmp, jiff::civil::date(2026, 11, 22).at(10, 0, 0, 0));
        for (n, d) in entries {
            if d.len() > 4 {
                z.add(n, crc32fast::hash(d), d).unwrap();
            } else {
                z.add_bytes(n, d).unwrap();
            }
        }
        let done = z.finish().unwrap();
        let mut f = done.file;
        assert_eq!(done.size, f.metadata().unwrap().len());
        let mut out = Vec::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        io::Read::read_to_end(&mut f, &mut out).unwrap();
        out
    }

    #[test]
    fn written_archives_read_back_with_their_bytes_and_crcs() {
        let zip = build(&[("bag/a.txt", b"abc"), ("bag/data/b.bin", b"0123456789")]);
        let entries = read_entries(&zip).unwrap();
        assert_eq!(entries.len(), 2);
        let b = &entries[1];
        assert_eq!(b.name, "bag/data/b.bin");
        let data = entry_bytes(&zip, b).unwrap();
        assert_eq!(&*data, b"0123456789");
        assert!(crc_ok(&data, b));
    }

    #[test]
    fn crafted_names_and_truncation_are_refused() {
        for bad in ["../evil", "/etc/passwd", "a/../../b", "C:/x", "a\\b"] {
            let zip = build(&[(bad, b"x")]);
            assert!(read_entries(&zip).is_err(), "{bad}");
        }
        let zip = build(&[("a", b"x"), ("a", b"y")]);
        assert!(read_entries(&zip).unwrap_err().0.contains("two entries"));
        let zip = build(&[("a", b"xxxxxxxx")]);
        assert!(read_entries(&zip[..zip.len() - 10]).is_err());
        assert!(read_entries(&zip[..40]).is_err());
    }
}
