//! How a stream frames its access units inside packets, read from the stream's parameters and
//! never guessed from a packet's bytes: the same H.264 picture is a run of start-code-separated
//! NAL units in a raw stream, AVI or MPEG-TS, and of length-prefixed ones in MP4 or Matroska;
//! the same AAC frame carries an ADTS header in MPEG-TS and none in MP4. Packet hashes compare
//! what the codec defines (the NAL units; the raw AAC frame), so a faithful copy into another
//! container hashes the same as its source.

use ffmpeg_next::codec::{self, Id};

use super::{ffi, nal};

/// A stream's framing, from its codec and extradata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// H.264/HEVC NAL units behind big-endian length prefixes of this many bytes (the size an
    /// `avcC` or `hvcC` states).
    LengthPrefixed(usize),
    /// H.264/HEVC NAL units after Annex B start codes (no `avcC`/`hvcC`).
    AnnexB,
    /// AAC frames behind ADTS headers (AAC without an AudioSpecificConfig).
    Adts,
    /// The payload is the access unit.
    Plain,
}

impl Framing {
    /// The framing of a stream with these parameters.
    pub fn of(params: &codec::Parameters) -> Framing {
        Framing::from_parts(params.id(), &ffi::extradata(params))
    }

    pub fn from_parts(codec: Id, extradata: &[u8]) -> Framing {
        match codec {
            Id::H264 | Id::HEVC => match nal::length_size(codec, extradata) {
                Some(n) => Framing::LengthPrefixed(n),
                None => Framing::AnnexB,
            },
            Id::AAC if extradata.is_empty() => Framing::Adts,
            _ => Framing::Plain,
        }
    }

    /// The length-prefix size of a NAL framing (`None`: Annex B, or not NAL units at all).
    pub fn nal_lengths(self) -> Option<usize> {
        match self {
            Framing::LengthPrefixed(n) => Some(n),
            _ => None,
        }
    }

    /// Whether packets hold NAL units.
    pub fn is_nal(self) -> bool {
        matches!(self, Framing::LengthPrefixed(_) | Framing::AnnexB)
    }

    /// What a packet hash covers under this framing, as the record states it.
    pub fn compared(self) -> &'static str {
        match self {
            Framing::LengthPrefixed(_) | Framing::AnnexB => {
                "NAL units, without start codes or length prefixes (each hashed behind its 4-byte length)"
            }
            Framing::Adts => "AAC frames without their ADTS headers",
            Framing::Plain => "packet payloads as they are",
        }
    }

    /// The access-unit pieces of one packet, in order: its NAL units, the AAC frame behind an
    /// ADTS header (the whole packet when the header is not there), or the packet itself.
    ///
    /// NAL units are given without trailing zero bytes: a NAL unit ends with its stop bit (or
    /// the 0x03 of a `cabac_zero_word`), never with a zero byte, so zeros after it are the byte
    /// stream's `trailing_zero_8bits`, which a muxer may move inside a length-prefixed unit
    /// (FFmpeg's MP4 muxer keeps one of an Annex B packet's trailing zeros).
    pub fn units(self, data: &[u8]) -> Vec<&[u8]> {
        match self {
            Framing::LengthPrefixed(n) => nal::length_prefixed_units(data, n).into_iter().map(trim_zeros).collect(),
            Framing::AnnexB => nal::annexb_units(data),
            Framing::Adts => vec![without_adts_header(data)],
            Framing::Plain => vec![data],
        }
    }

    /// Feed one packet to a hash: NAL units each behind its 4-byte big-endian length; anything
    /// else as its one unit.
    pub fn hash_into(self, h: &mut ring::digest::Context, data: &[u8]) {
        if self.is_nal() {
            for unit in self.units(data) {
                h.update(&(unit.len() as u32).to_be_bytes());
                h.update(unit);
            }
        } else {
            for unit in self.units(data) {
                h.update(unit);
            }
        }
    }
}

fn trim_zeros(unit: &[u8]) -> &[u8] {
    let end = unit.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &unit[..end]
}

/// An ADTS frame's payload: the bytes after its 7-byte header (9 with the CRC), as FFmpeg's
/// `aac_adtstoasc` leaves them when it moves AAC into MP4. A packet that does not start with a
/// whole ADTS header is returned as it is (and will not match a copy).
fn without_adts_header(data: &[u8]) -> &[u8] {
    if data.len() < 7 || data[0] != 0xff || data[1] & 0xf6 != 0xf0 {
        return data;
    }
    let protection_absent = data[1] & 1 == 1;
    let header = if protection_absent { 7 } else { 9 };
    data.get(header..).unwrap_or(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_framing_comes_from_the_stream_not_the_packet() {
        // An avcC packet whose first NAL unit is 256..511 bytes long begins 00 00 01 xx: it is
        // still one length-prefixed unit, not an Annex B start code.
        let mut packet = vec![0, 0, 1, 0x2c, 0x41];
        packet.extend(std::iter::repeat_n(0x9a, 0x12b));
        let avcc = [1, 100, 0, 31, 0xff, 0xe0, 0];
        let framing = Framing::from_parts(Id::H264, &avcc);
        assert_eq!(framing, Framing::LengthPrefixed(4));
        let units = framing.units(&packet);
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].len(), 0x12c);
        assert_eq!(units[0][0], 0x41);
        // The same picture in Annex B hashes the same.
        let mut annexb = vec![0, 0, 0, 1];
        annexb.extend_from_slice(&packet[4..]);
        let hash = |f: Framing, d: &[u8]| {
            let mut h = ring::digest::Context::new(&ring::digest::SHA256);
            f.hash_into(&mut h, d);
            h.finish().as_ref().to_vec()
        };
        assert_eq!(Framing::from_parts(Id::H264, &[]), Framing::AnnexB);
        assert_eq!(hash(framing, &packet), hash(Framing::AnnexB, &annexb));
        // A trailing zero the MP4 muxer kept inside the last unit is framing, as in Annex B.
        let mut padded = vec![0, 0, 0, 4, 0x65, 0x88, 0x80, 0];
        padded.extend_from_slice(&[0, 0, 0, 2, 0x41, 0x9a]);
        let plain = [0, 0, 0, 1, 0x65, 0x88, 0x80, 0, 0, 0, 0, 1, 0x41, 0x9a];
        assert_eq!(Framing::LengthPrefixed(4).units(&padded), Framing::AnnexB.units(&plain));
    }

    #[test]
    fn adts_headers_are_left_out() {
        assert_eq!(Framing::from_parts(Id::AAC, &[]), Framing::Adts);
        assert_eq!(Framing::from_parts(Id::AAC, &[0x12, 0x10]), Framing::Plain);
        // protection_absent = 1: 7-byte header.
        let frame = [0xff, 0xf1, 0x50, 0x80, 0x01, 0x3f, 0xfc, 0xde, 0xad];
        assert_eq!(Framing::Adts.units(&frame), [&[0xde, 0xad][..]]);
        // With a CRC: 9 bytes.
        let crc = [0xff, 0xf0, 0x50, 0x80, 0x01, 0x7f, 0xfc, 0x12, 0x34, 0xbe, 0xef];
        assert_eq!(Framing::Adts.units(&crc), [&[0xbe, 0xef][..]]);
        // Not ADTS: left as it is.
        assert_eq!(Framing::Adts.units(&[1, 2, 3]), [&[1u8, 2, 3][..]]);
    }
}
