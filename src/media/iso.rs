//! What the header of an ISO base media file (MP4, MOV, 3GP) states about time, read from its
//! boxes: FFmpeg's libraries smooth over two values that matter for evidence. A media timescale
//! of 0 (`mdhd`) becomes 1 tick per second, so the frames of a one-second clip sit minutes apart;
//! a duration of all ones, which ISO/IEC 14496-12 defines as "unknown" (fragmented files whose
//! length was not known when the header was written), is read as a number, so a one-second file
//! lasts 39:46:05 at a timescale of 30000. Only box headers and the `moov` box are read.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The `moov` box of a damaged or hostile file may claim any size: larger ones are not read.
const MOOV_LIMIT: u64 = 64 << 20;

/// The time facts of one `mvhd` or `mdhd` box.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeHeader {
    pub timescale: u32,
    pub duration: u64,
    /// The duration field is all ones: the writer did not know it.
    pub duration_unknown: bool,
}

/// The movie header and the media header of every track, in file order (the order in which
/// FFmpeg numbers the streams).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Movie {
    pub movie: Option<TimeHeader>,
    pub tracks: Vec<Option<TimeHeader>>,
}

impl Movie {
    /// The header of `path`, when it is an ISO file whose `moov` box can be read; `None` for
    /// anything else (the caller then relies on FFmpeg alone).
    pub fn read(path: &Path) -> Option<Movie> {
        // A registered object is read through its checked reader, like FFmpeg reads it.
        let mut file = crate::outboard::open(path).ok()?;
        let len = file.seek(SeekFrom::End(0)).ok()?;
        let mut at = 0u64;
        while at + 8 <= len {
            file.seek(SeekFrom::Start(at)).ok()?;
            let (kind, header, size) = box_header(&mut file, len - at)?;
            if &kind == b"moov" {
                let body = size.checked_sub(header)?;
                if body > MOOV_LIMIT {
                    return None;
                }
                let mut moov = vec![0; body as usize];
                file.read_exact(&mut moov).ok()?;
                let movie = parse_moov(&moov);
                return (movie.movie.is_some() || !movie.tracks.is_empty()).then_some(movie);
            }
            at += size;
        }
        None
    }

    /// True when the movie header or a track's media header states its duration as unknown.
    pub fn duration_unknown(&self) -> bool {
        self.movie.is_some_and(|m| m.duration_unknown) || self.tracks.iter().flatten().any(|t| t.duration_unknown)
    }

    /// True when the media header of track `index` (stream `index` in FFmpeg) states a
    /// timescale of 0.
    pub fn timescale_missing(&self, index: usize) -> bool {
        self.tracks.get(index).copied().flatten().is_some_and(|t| t.timescale == 0)
    }
}

/// A box's type, header length and total length (which a length field of 0, "to the end of the
/// file", takes from `remaining`). `None` when the box does not fit.
fn box_header(r: &mut impl Read, remaining: u64) -> Option<([u8; 4], u64, u64)> {
    let mut h = [0u8; 8];
    r.read_exact(&mut h).ok()?;
    let kind: [u8; 4] = h[4..8].try_into().ok()?;
    let (header, size) = match u32::from_be_bytes(h[0..4].try_into().ok()?) {
        0 => (8, remaining),
        1 => {
            let mut large = [0u8; 8];
            r.read_exact(&mut large).ok()?;
            (16, u64::from_be_bytes(large))
        }
        n => (8, u64::from(n)),
    };
    (size >= header && size <= remaining).then_some((kind, header, size))
}

/// The boxes directly inside `body`: (type, contents).
fn children(body: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut rest = body;
    std::iter::from_fn(move || {
        let mut r = rest;
        let (kind, header, size) = box_header(&mut r, rest.len() as u64)?;
        let (this, next) = rest.split_at(size as usize);
        rest = next;
        Some((kind, &this[header as usize..]))
    })
}

fn parse_moov(moov: &[u8]) -> Movie {
    let mut movie = Movie::default();
    for (kind, body) in children(moov) {
        match &kind {
            b"mvhd" => movie.movie = time_header(body),
            b"trak" => {
                let mdhd = children(body)
                    .filter(|(k, _)| k == b"mdia")
                    .flat_map(|(_, mdia)| children(mdia))
                    .find(|(k, _)| k == b"mdhd")
                    .and_then(|(_, b)| time_header(b));
                movie.tracks.push(mdhd);
            }
            _ => {}
        }
    }
    movie
}

/// The timescale and duration of an `mvhd` or `mdhd` box (both: version and flags, creation
/// and modification times, timescale, duration; the times and duration are 64-bit in version 1).
fn time_header(body: &[u8]) -> Option<TimeHeader> {
    let be32 = |at: usize| body.get(at..at + 4).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")));
    let be64 = |at: usize| body.get(at..at + 8).map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
    let (timescale, duration, unknown) = match body.first()? {
        0 => {
            let d = be32(16)?;
            (be32(12)?, u64::from(d), d == u32::MAX)
        }
        1 => {
            let d = be64(24)?;
            (be32(20)?, d, d == u64::MAX)
        }
        _ => return None,
    };
    Some(TimeHeader { timescale, duration, duration_unknown: unknown })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A box of type `kind` holding `parts`, one after the other.
    fn boxed(kind: &[u8; 4], parts: &[&[u8]]) -> Vec<u8> {
        let body = parts.concat();
        [&(body.len() as u32 + 8).to_be_bytes()[..], kind, &body].concat()
    }

    #[test]
    fn reads_the_timescales_and_durations_of_both_versions() {
        let mvhd = boxed(b"mvhd", &[&[0, 0, 0, 0], &[0; 8], &1000u32.to_be_bytes(), &u32::MAX.to_be_bytes()]);
        let mdhd0 = boxed(b"mdhd", &[&[0, 0, 0, 0], &[0; 8], &0u32.to_be_bytes(), &25u32.to_be_bytes()]);
        let mdhd1 = boxed(b"mdhd", &[&[1, 0, 0, 0], &[0; 16], &30000u32.to_be_bytes(), &u64::MAX.to_be_bytes()]);
        let trak = |mdhd: &[u8]| boxed(b"trak", &[&boxed(b"mdia", &[mdhd])]);
        let moov = boxed(b"moov", &[&mvhd, &trak(&mdhd0), &trak(&mdhd1)]);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), [boxed(b"ftyp", &[b"isom"]), moov].concat()).unwrap();
        let movie = Movie::read(file.path()).expect("an ISO file");
        assert_eq!(
            movie.movie,
            Some(TimeHeader { timescale: 1000, duration: u32::MAX.into(), duration_unknown: true })
        );
        assert!(movie.timescale_missing(0) && !movie.timescale_missing(1) && !movie.timescale_missing(2));
        assert_eq!(movie.tracks[1].map(|t| (t.timescale, t.duration_unknown)), Some((30000, true)));
        assert!(movie.duration_unknown());
    }

    #[test]
    fn anything_else_is_not_read() {
        let file = tempfile::NamedTempFile::new().unwrap();
        for bytes in [&b""[..], b"not an mp4 at all", &[0, 0, 0, 9, b'm', b'o', b'o', b'v', 0, 0xff]] {
            std::fs::write(file.path(), bytes).unwrap();
            assert_eq!(Movie::read(file.path()), None);
        }
    }
}
