//! NAL units of H.264 and HEVC packets: just enough parsing to tell IDR pictures and to
//! read parameter-set IDs, for the frame index and smart clips.

use ffmpeg_next::codec::Id;

/// The NAL units of an Annex B byte stream (start codes, and the zero bytes before them,
/// removed).
pub fn annexb_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut end = if k + 1 < starts.len() { starts[k + 1] - 3 } else { data.len() };
        // Trailing zero bytes belong to the next start code (00 00 00 01), not the NAL.
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        out.push(&data[s..end]);
    }
    out
}

/// The NAL units of a length-prefixed packet (as MP4 and Matroska store them), each prefix
/// `length_size` bytes, big-endian; a unit cut short by the end of the packet is what remains.
pub fn length_prefixed_units(data: &[u8], length_size: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + length_size <= data.len() {
        let len = data[i..i + length_size].iter().fold(0usize, |n, &b| n << 8 | b as usize);
        let end = (i + length_size).saturating_add(len).min(data.len());
        out.push(&data[i + length_size..end]);
        i = end;
    }
    out
}

/// The first unsigned Exp-Golomb number of a NAL unit's payload after `skip` bytes (enough for
/// the parameter-set IDs at the start of an SPS or PPS; emulation prevention bytes removed).
fn first_ue(unit: &[u8], skip: usize) -> Option<u32> {
    let mut rbsp = Vec::new();
    let mut zeros = 0;
    for &b in unit.get(skip..)?.iter().take(16) {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        rbsp.push(b);
    }
    let bit = |i: usize| rbsp.get(i / 8).map(|b| (b >> (7 - i % 8)) & 1);
    let mut lead = 0;
    while bit(lead)? == 0 {
        lead += 1;
        if lead > 31 {
            return None;
        }
    }
    let mut value = 0u32;
    for i in 0..lead {
        value = value << 1 | bit(lead + 1 + i)? as u32;
    }
    Some((1u32 << lead) - 1 + value)
}

pub fn sps_id(sps: &[u8]) -> Option<u32> {
    first_ue(sps, 4)
}

pub fn pps_id(pps: &[u8]) -> Option<u32> {
    first_ue(pps, 1)
}

/// An H.264 NAL unit's type (5 IDR slice, 7 SPS, 8 PPS, 9 access unit delimiter…).
pub fn h264_type(unit: &[u8]) -> Option<u8> {
    unit.first().map(|b| b & 0x1f)
}

/// The H.264 NAL units of type `t` among `units`.
pub fn h264_units_of<'a>(units: &[&'a [u8]], t: u8) -> Vec<&'a [u8]> {
    units.iter().copied().filter(|u| h264_type(u) == Some(t)).collect()
}

/// How a stream's packets frame their NAL units: the length-prefix size from its `avcC` or
/// `hvcC`, or `None` for Annex B start codes.
pub fn length_size(codec: Id, extradata: &[u8]) -> Option<usize> {
    match codec {
        Id::H264 if extradata.len() >= 7 && extradata[0] == 1 => Some((extradata[4] & 3) as usize + 1),
        Id::HEVC if extradata.len() >= 23 && extradata[0] == 1 => Some((extradata[21] & 3) as usize + 1),
        _ => None,
    }
}

/// True when the packet holds an IDR picture (H.264 type 5; HEVC IDR and BLA, types 16–20),
/// where a decoder may start afresh and switch parameter sets. Other codecs: always true (the
/// caller asks only of keyframes).
pub fn is_idr(codec: Id, length_size: Option<usize>, data: &[u8]) -> bool {
    let units = match length_size {
        Some(n) => length_prefixed_units(data, n),
        None => annexb_units(data),
    };
    match codec {
        Id::H264 => units.iter().any(|u| h264_type(u) == Some(5)),
        Id::HEVC => units.iter().any(|u| u.first().is_some_and(|b| (16..=20).contains(&((b >> 1) & 0x3f)))),
        _ => true,
    }
}

/// Whether FFmpeg's parser calls the sample of `size` bytes at `pos` in `file` a keyframe, and
/// whether it is an IDR picture ([`is_idr`]), reading only what that takes of its
/// length-prefixed NAL units (as MP4 and MOV hold them): each unit's length and header byte,
/// skipping over its payload, and the messages of H.264 SEI units. H.264: a keyframe holds an
/// IDR slice or a recovery point SEI message; HEVC: an IRAP picture (NAL types 16 to 23).
pub fn sample_key(
    codec: Id,
    length_size: usize,
    file: &mut dyn crate::outboard::ReadSeek,
    pos: u64,
    size: u64,
) -> std::io::Result<Key> {
    use std::io::SeekFrom;
    let n = length_size as u64;
    let mut key = Key::default();
    let mut head = [0u8; 6];
    let mut at = 0u64;
    while at + n < size {
        let take = (n + 2).min(size - at) as usize;
        file.seek(SeekFrom::Start(pos + at))?;
        file.read_exact(&mut head[..take])?;
        let len = head[..length_size].iter().fold(0u64, |l, &b| l << 8 | u64::from(b));
        let len = len.min(size - at - n);
        let header = head[length_size];
        match codec {
            Id::H264 => match header & 0x1f {
                5 => return Ok(Key { key: true, idr: true, recovery: key.recovery }),
                6 if len <= 1 << 16 => {
                    let mut unit = vec![0u8; len as usize];
                    file.seek(SeekFrom::Start(pos + at + n))?;
                    file.read_exact(&mut unit)?;
                    if sei_has_recovery_point(&unit) {
                        key.key = true;
                        key.recovery = true;
                    }
                }
                _ => {}
            },
            _ => {
                let t = (header >> 1) & 0x3f;
                if (16..=23).contains(&t) {
                    key.key = true;
                    key.idr |= (16..=20).contains(&t);
                }
            }
        }
        at += n + len;
    }
    Ok(key)
}

/// What [`sample_key`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Key {
    pub key: bool,
    pub idr: bool,
    /// A keyframe by a recovery point SEI message (no IDR slice).
    pub recovery: bool,
}

/// True when the H.264 SEI unit `unit` (header byte first) holds a recovery point message
/// (payload type 6).
fn sei_has_recovery_point(unit: &[u8]) -> bool {
    let mut rbsp = Vec::with_capacity(unit.len());
    let mut zeros = 0;
    for &b in unit.iter().skip(1) {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        rbsp.push(b);
    }
    let mut i = 0;
    let number = |i: &mut usize| -> Option<usize> {
        let mut v = 0usize;
        loop {
            let b = *rbsp.get(*i)?;
            *i += 1;
            v += b as usize;
            if b != 0xff {
                return Some(v);
            }
        }
    };
    // Messages until the trailing bits (0x80).
    while i < rbsp.len() && rbsp[i] != 0x80 {
        let (Some(kind), Some(len)) = (number(&mut i), number(&mut i)) else { return false };
        if kind == 6 {
            return true;
        }
        i += len;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_do_not_depend_on_framing() {
        let annex_b = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 4, 5, 6];
        let avcc = [0, 0, 0, 3, 0x67, 1, 2, 0, 0, 0, 2, 0x68, 3, 0, 0, 0, 4, 0x65, 4, 5, 6];
        assert_eq!(annexb_units(&annex_b), length_prefixed_units(&avcc, 4));
        assert_eq!(annexb_units(&annex_b).len(), 3);
    }

    #[test]
    fn ids_units_and_idr() {
        // SPS: header 0x67, profile 100, flags, level 31, then ue(v) id 0 = bit "1".
        assert_eq!(sps_id(&[0x67, 100, 0, 31, 0b1000_0000]), Some(0));
        // id 1 = "010", id 3 = "00100".
        assert_eq!(sps_id(&[0x67, 100, 0, 31, 0b0100_0000]), Some(1));
        assert_eq!(pps_id(&[0x68, 0b0010_0000]), Some(3));
        assert_eq!(annexb_units(&[0, 0, 0, 1, 0x67, 5, 0, 0, 1, 0x68, 6]), [&[0x67u8, 5][..], &[0x68, 6][..]]);
        let idr = [0, 0, 0, 2, 0x06, 1, 0, 0, 0, 2, 0x65, 0x88];
        let non_idr = [0, 0, 0, 2, 0x06, 1, 0, 0, 0, 2, 0x41, 0x9a];
        assert!(is_idr(Id::H264, Some(4), &idr));
        assert!(!is_idr(Id::H264, Some(4), &non_idr));
        assert!(is_idr(Id::H264, None, &[0, 0, 1, 0x65, 0x88]));
        assert!(is_idr(Id::HEVC, None, &[0, 0, 1, 0x26, 0x01]));
        assert!(!is_idr(Id::HEVC, None, &[0, 0, 1, 0x2a, 0x01]));
    }
}
