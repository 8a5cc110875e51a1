//! Disc images for court media: ISO 9660 with Joliet names (what Windows reads) and Rock Ridge
//! names (what Linux and macOS read), written with hadris-iso, and read back by mapping every
//! file to its extents on the image or the disc: the read-back after writing or burning, and
//! `custody verify IMAGE.iso`, read the bytes where the disc keeps them.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use hadris_fs::sync::FileSystem as _;
use hadris_fs::{DirCursor, FileType, MountOptions, NodeId};
use hadris_iso::sync::IsoFs;
use hadris_iso::{IsoId, IsoOptions, Namespace};

use crate::error;

/// Where ISO 9660's first volume descriptor starts, and its signature.
const DESCRIPTOR_AT: u64 = 16 * 2048;

/// Whether the file at `path` starts like an ISO 9660 image (or a disc holding one).
pub fn is_image(path: &Path) -> bool {
    let mut sig = [0u8; 6];
    File::open(path).and_then(|f| f.read_exact_at(&mut sig, DESCRIPTOR_AT)).is_ok() && &sig[1..6] == b"CD001"
}

/// The ISO 9660 volume identifier for `label`: at most 32 of A–Z, 0–9 and `_` (d-characters);
/// the full label is in the Joliet tree's files (index.html), not here.
pub fn volume_id(label: &str) -> String {
    let mut id: String = label
        .chars()
        .map(|c| c.to_ascii_uppercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    while id.contains("__") {
        id = id.replace("__", "_");
    }
    let id = id.trim_matches('_');
    let id: String = id.chars().take(32).collect();
    if id.is_empty() { "CUSTODY".into() } else { id }
}

/// Write an image holding `files` (path on the disc, file on this machine) to `image`, which
/// must not exist, dated `time` (seconds since 1970) and named `volume`. Returns its size.
pub fn write(files: &[(String, PathBuf)], image: &Path, volume: &str, time: i64) -> Result<u64> {
    let fail = |what: String| error::environment(format!("cannot write the disc image {}: {what}", image.display()));
    let mut tree = hadris_fs::Tree::new();
    for (rel, host) in files {
        // Folders first: the tree wants each parent before its children.
        let mut at = String::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            if tree.get(&at).is_none() {
                tree.insert(&at, hadris_fs::Node::dir()).map_err(|e| fail(format!("{at}: {e}")))?;
            }
        }
        let content = hadris_fs::host::file(host).map_err(|e| fail(format!("{}: {e}", host.display())))?;
        tree.insert(rel, hadris_fs::Node::file(content)).map_err(|e| fail(format!("{rel}: {e}")))?;
    }
    let when = hadris_fs::DateTime::new(time, 0).map_err(|e| fail(format!("the date {time}: {e:?}")))?;
    let options = IsoOptions::default()
        .with_id(IsoId::Volume, volume)
        .with_id(IsoId::Publisher, "custody")
        .with_id(IsoId::Application, concat!("CUSTODY ", env!("CARGO_PKG_VERSION")))
        .with_joliet()
        .with_rock_ridge()
        .with_time(when);
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(image)
        .map_err(|e| crate::store::env_io(e, image, "cannot create"))?;
    let dev = hadris_storage::host::FileDevice::new(file).map_err(|e| fail(e.to_string()))?;
    let report = hadris_iso::sync::write(dev, &tree, &options).map_err(|e| {
        let e = e.to_string();
        if e.contains("No space left") || e.contains("os error 28") {
            error::environment(format!(
                "the disk holding {} is full: free space there (the image needs as much as the medium's files) and \
                 run the command again",
                image.display()
            ))
        } else {
            fail(e)
        }
    })?;
    if let Some(w) = report.warnings().first() {
        return Err(fail(format!("the writer could not store everything: {w}")));
    }
    let f = File::open(image).map_err(|e| crate::store::env_io(e, image, "cannot open"))?;
    f.sync_all().map_err(|e| crate::store::env_io(e, image, "cannot sync"))?;
    Ok(report.size())
}

/// One file on a disc: its path (the Rock Ridge name, else Joliet's) and where its bytes lie.
#[derive(Clone, Debug)]
pub struct OnDisc {
    pub size: u64,
    /// (byte offset on the disc, length), in file order.
    pub extents: Vec<(u64, u64)>,
}

/// What a disc holds: every file by path, and the image's size as its descriptor states it.
pub struct Listing {
    pub files: BTreeMap<String, OnDisc>,
    pub size: u64,
    pub volume: String,
    /// Where the Joliet tree (what Windows reads) and the Rock Ridge tree (what Linux and macOS
    /// read) disagree: a file in one and not the other, or pointing at other bytes. Each is
    /// (path, what is wrong); custody writes both trees over the same data.
    pub disagreements: Vec<(String, String)>,
}

/// List the image or disc at `path` (an image file, a block device, or a libburn `stdio:` file):
/// its most capable tree, checked against its Joliet tree.
pub fn list(path: &Path) -> Result<Listing> {
    let (files, size, volume, tree) = list_tree(path, Namespace::Preferred)?;
    let mut disagreements = Vec::new();
    if tree != Namespace::Joliet {
        match list_tree(path, Namespace::Joliet) {
            Ok((joliet, ..)) => {
                for (rel, on) in &files {
                    match joliet.get(rel) {
                        None => disagreements.push((
                            rel.clone(),
                            format!("{rel} is missing from the disc's Joliet tree, which Windows reads"),
                        )),
                        Some(j) if j.extents != on.extents => disagreements.push((
                            rel.clone(),
                            format!(
                                "{rel} in the disc's Joliet tree (what Windows reads) points at other bytes than in its \
                                 Rock Ridge tree"
                            ),
                        )),
                        Some(_) => {}
                    }
                }
                for rel in joliet.keys().filter(|r| !files.contains_key(*r)) {
                    disagreements.push((
                        rel.clone(),
                        format!(
                            "{rel} is in the disc's Joliet tree (what Windows reads) only, not in its Rock Ridge tree"
                        ),
                    ));
                }
            }
            Err(e) => disagreements.push((String::new(), format!("the disc's Joliet tree cannot be read: {e}"))),
        }
    }
    Ok(Listing { files, size, volume, disagreements })
}

/// Every file of one tree of the disc at `path`, the image's size and volume name, and which
/// tree was read.
fn list_tree(path: &Path, namespace: Namespace) -> Result<(BTreeMap<String, OnDisc>, u64, String, Namespace)> {
    let bad =
        |what: String| error::input(format!("{} is not a readable ISO 9660 disc or image: {what}", path.display()));
    let dev = hadris_storage::host::FileDevice::open(path).map_err(|e| crate::store::env_io(e, path, "cannot open"))?;
    let mut iso = IsoFs::mount_namespace(dev, MountOptions::new(), namespace).map_err(|e| bad(e.to_string()))?;
    let tree = iso.namespace();
    let info = iso.info();
    let size = info.volume_space_size() as u64 * info.block_size() as u64;
    let volume = String::from_utf8_lossy(info.id(IsoId::Volume)).trim_end().to_owned();
    let mut files = BTreeMap::new();
    let mut stack: Vec<(NodeId, String)> = vec![(iso.root(), String::new())];
    while let Some((dir, at)) = stack.pop() {
        let mut cursor = DirCursor::START;
        while let Some(entry) = iso.readdir(dir, cursor).map_err(|e| bad(format!("{at}/: {e}")))? {
            cursor = entry.next_cursor();
            let name = String::from_utf8_lossy(entry.name().as_bytes()).into_owned();
            let rel = if at.is_empty() { name } else { format!("{at}/{name}") };
            match entry.file_type() {
                FileType::Dir => stack.push((entry.node(), rel)),
                FileType::File => {
                    let mut out = [hadris_fs::Extent::new(0, 0); 16];
                    let mut extents = Vec::new();
                    let mut from = 0u64;
                    loop {
                        let n = iso.extents(entry.node(), from, &mut out).map_err(|e| bad(format!("{rel}: {e}")))?;
                        if n == 0 {
                            break;
                        }
                        for x in &out[..n] {
                            extents.push((x.offset(), x.len()));
                            from = x.file_offset() + x.len();
                        }
                    }
                    let size = extents.iter().map(|e| e.1).sum();
                    files.insert(rel, OnDisc { size, extents });
                }
                other => return Err(bad(format!("{rel} is a {other:?}, not a file or folder"))),
            }
        }
    }
    Ok((files, size, volume, tree))
}

/// The device or image behind a burn target: `stdio:FILE` is FILE, a drive is itself.
pub fn device_path(target: &str) -> PathBuf {
    PathBuf::from(target.strip_prefix("stdio:").unwrap_or(target))
}

/// Read every file of `files` (path, SHA-256, size) back from the disc or image at `path`, with
/// its cached pages dropped first so the bytes come from the medium: what differs, is missing,
/// or was not written (an unexpected file), one line each naming the file.
pub fn read_back(path: &Path, files: &[(String, String, u64)]) -> Result<Vec<String>> {
    drop_cache(path);
    let listing = list(path)?;
    let disc = File::open(path).map_err(|e| crate::store::env_io(e, path, "cannot open"))?;
    let mut bad = Vec::new();
    let expected: BTreeMap<&str, (&str, u64)> = files.iter().map(|(p, s, n)| (p.as_str(), (s.as_str(), *n))).collect();
    for (rel, (sha, size)) in &expected {
        let Some(on) = listing.files.get(*rel) else {
            bad.push(format!("{rel}: missing from the disc"));
            continue;
        };
        match hash_extents(&disc, on) {
            Ok(got) if got == *sha && on.size == *size => {}
            Ok(got) => bad.push(format!(
                "{rel}: read back {} bytes with SHA-256 {got}, written {size} bytes with {sha}",
                on.size
            )),
            Err(e) => bad.push(format!("{rel}: cannot be read back ({e})")),
        }
    }
    for rel in listing.files.keys().filter(|r| !expected.contains_key(r.as_str())) {
        bad.push(format!("{rel}: on the disc but never written to it"));
    }
    bad.extend(listing.disagreements.into_iter().map(|(_, why)| why));
    Ok(bad)
}

/// [`read_back`] and the SHA-256 of the first `size` bytes of the disc (the image as written),
/// in one sequential pass over the disc: each block read once, the image's hash taken on a
/// thread of its own while this one hashes the files the block holds.
pub fn read_back_whole(path: &Path, files: &[(String, String, u64)], size: u64) -> Result<(Vec<String>, String)> {
    drop_cache(path);
    let listing = list(path)?;
    let disc = File::open(path).map_err(|e| crate::store::env_io(e, path, "cannot open"))?;
    let expected: BTreeMap<&str, (&str, u64)> = files.iter().map(|(p, s, n)| (p.as_str(), (s.as_str(), *n))).collect();
    // Every extent of every expected file on the disc, by where it lies.
    let wanted: Vec<(&String, &OnDisc)> =
        listing.files.iter().filter(|(rel, _)| expected.contains_key(rel.as_str())).collect();
    let mut segments: Vec<(u64, u64, usize)> = wanted
        .iter()
        .enumerate()
        .flat_map(|(i, (_, on))| on.extents.iter().map(move |&(at, len)| (at, len, i)))
        .filter(|&(_, len, _)| len > 0)
        .collect();
    segments.sort_by_key(|&(at, _, _)| at);
    let in_order = wanted.iter().all(|(_, on)| on.extents.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0));
    let past_end = segments.iter().any(|&(at, len, _)| at + len > size);
    if !in_order || past_end {
        // Not laid out as custody lays out its images: read file by file instead.
        let bad = read_back(path, files)?;
        return Ok((bad, hash_prefix(path, size)?));
    }
    let mut hashers: Vec<ring::digest::Context> =
        wanted.iter().map(|_| ring::digest::Context::new(&ring::digest::SHA256)).collect();
    const BLOCK: usize = 4 << 20;
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::sync::Arc<Vec<u8>>>(4);
    let read = std::thread::scope(|s| -> std::io::Result<String> {
        let whole = s.spawn(move || {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            for block in rx {
                ctx.update(&block);
            }
            hex::encode(ctx.finish())
        });
        let mut pos = 0u64;
        let mut next = 0usize;
        let result = (|| {
            while pos < size {
                let n = ((size - pos) as usize).min(BLOCK);
                let mut buf = vec![0u8; n];
                disc.read_exact_at(&mut buf, pos)?;
                let block = std::sync::Arc::new(buf);
                let _ = tx.send(std::sync::Arc::clone(&block));
                let end = pos + n as u64;
                // The segments that start before this block's end; those wholly before it are done.
                while next < segments.len() && segments[next].0 + segments[next].1 <= pos {
                    next += 1;
                }
                for &(at, len, i) in segments[next..].iter().take_while(|&&(at, _, _)| at < end) {
                    let from = at.max(pos);
                    let to = (at + len).min(end);
                    if from < to {
                        hashers[i].update(&block[(from - pos) as usize..(to - pos) as usize]);
                    }
                }
                pos = end;
            }
            Ok(())
        })();
        drop(tx);
        let image = whole.join().expect("the image's hash thread");
        result.map(|_| image)
    });
    let image = read.map_err(|e| crate::store::env_io(e, path, "cannot read back"))?;
    let mut bad = Vec::new();
    let got: BTreeMap<&str, (String, u64)> =
        wanted.iter().zip(hashers).map(|((rel, on), h)| (rel.as_str(), (hex::encode(h.finish()), on.size))).collect();
    for (rel, (sha, size)) in &expected {
        match got.get(rel) {
            None => bad.push(format!("{rel}: missing from the disc")),
            Some((g, n)) if g == sha && n == size => {}
            Some((g, n)) => {
                bad.push(format!("{rel}: read back {n} bytes with SHA-256 {g}, written {size} bytes with {sha}"))
            }
        }
    }
    for rel in listing.files.keys().filter(|r| !expected.contains_key(r.as_str())) {
        bad.push(format!("{rel}: on the disc but never written to it"));
    }
    bad.extend(listing.disagreements.into_iter().map(|(_, why)| why));
    Ok((bad, image))
}

/// The SHA-256 (hex) of a file on the disc, read from its extents.
pub fn hash_extents(disc: &File, on: &OnDisc) -> std::io::Result<String> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    for &(offset, len) in &on.extents {
        let mut done = 0u64;
        while done < len {
            let want = ((len - done) as usize).min(buf.len());
            disc.read_exact_at(&mut buf[..want], offset + done)?;
            ctx.update(&buf[..want]);
            done += want as u64;
        }
    }
    Ok(hex::encode(ctx.finish()))
}

/// The SHA-256 (hex) of the first `size` bytes at `path`: the image as burnt (a disc holds
/// padding after it).
pub fn hash_prefix(path: &Path, size: u64) -> Result<String> {
    let f = File::open(path).map_err(|e| crate::store::env_io(e, path, "cannot open"))?;
    let on = OnDisc { size, extents: vec![(0, size)] };
    hash_extents(&f, &on).map_err(|e| crate::store::env_io(e, path, "cannot read"))
}

/// Drop what the page cache holds of `path`, so the next read comes from the medium.
pub fn drop_cache(path: &Path) {
    if let Ok(f) = File::open(path) {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid descriptor; the advice changes no data.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read-back after writing or burning, on a real image: it matches as written, names
    /// the file a flipped byte is in, and names a file that was never meant to be there.
    #[test]
    fn the_read_back_names_the_file_a_flipped_byte_is_in() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.bin");
        let b = dir.path().join("b.bin");
        std::fs::write(&a, vec![7u8; 5000]).expect("a");
        std::fs::write(&b, vec![9u8; 3000]).expect("b");
        let files = [("data/a.bin".to_owned(), a.clone()), ("data/Ánh/b.bin".to_owned(), b.clone())];
        let image = dir.path().join("disc.iso");
        write(&files, &image, "TEST", 1_800_000_000).expect("write");
        let sha = |p: &Path| hex::encode(crate::digest::sha256(&std::fs::read(p).expect("read")));
        let manifest =
            vec![("data/a.bin".to_owned(), sha(&a), 5000u64), ("data/Ánh/b.bin".to_owned(), sha(&b), 3000u64)];
        assert_eq!(read_back(&image, &manifest).expect("read back"), Vec::<String>::new());
        let size = list(&image).expect("list").size;
        let (bad, whole) = read_back_whole(&image, &manifest, size).expect("read back whole");
        assert_eq!(bad, Vec::<String>::new());
        assert_eq!(whole, sha(&image), "the image's SHA-256, in the same pass");

        let on = list(&image).expect("list").files["data/Ánh/b.bin"].clone();
        let mut bytes = std::fs::read(&image).expect("image");
        bytes[on.extents[0].0 as usize + 100] ^= 0x01;
        std::fs::write(&image, &bytes).expect("flip");
        let bad = read_back(&image, &manifest).expect("read back");
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].starts_with("data/Ánh/b.bin: read back 3000 bytes with SHA-256"), "{bad:?}");
        let (whole_bad, _) = read_back_whole(&image, &manifest, size).expect("read back whole");
        assert_eq!(whole_bad, bad, "one pass finds what file by file finds");

        let fewer = &manifest[..1];
        let bad = read_back(&image, fewer).expect("read back");
        assert!(bad.iter().any(|l| l == "data/Ánh/b.bin: on the disc but never written to it"), "{bad:?}");
    }

    #[test]
    fn volume_ids_are_d_characters() {
        assert_eq!(volume_id("Case 24-1234, disc 1 of 2"), "CASE_24_1234_DISC_1_OF_2");
        assert_eq!(volume_id("Дело 5"), "5");
        assert_eq!(volume_id("—"), "CUSTODY");
        assert_eq!(volume_id(&"x".repeat(40)).len(), 32);
    }
}
