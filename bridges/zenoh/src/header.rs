//! The frame header a bridge puts in each sample's attachment (the payload is the frame's bytes
//! alone, so `numpy.frombuffer(sample.payload.to_bytes(), dtype)` works on the far side).
//!
//! Version 1, 112 bytes, little-endian, no padding:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `SHKZ` |
//! | 4 | 2 | header version (1) |
//! | 6 | 1 | element type (shmkit's code: 1 u8, 2 u16, 3 u32, 4 i16, 5 i32, 6 f32, 7 f64) |
//! | 7 | 1 | dimensions used (1–4) |
//! | 8 | 16 | shape, outermost first, 4 × u32 (unused ones 0) |
//! | 24 | 8 | the source ring's frame id |
//! | 32 | 8 | the source publish time, `CLOCK_MONOTONIC` ns of the source host |
//! | 40 | 40 | the frame's five user words, 5 × u64 |
//! | 80 | 8 | the bridge's sequence number for this ring (1, 2, … with no gaps as sent) |
//! | 88 | 8 | frames the source ring published that were not sent, since this export's first sample (a running count) |
//! | 96 | 8 | CRC-32 of the payload (zlib's, `zlib.crc32` in Python), in the low 32 bits |
//! | 104 | 8 | payload length in bytes |
//!
//! A received header is hostile input: every field is checked ([`FrameHeader::decode`]).

use crate::error::BridgeError;
use shmkit::rings::ElemType;

/// The header's magic.
pub const MAGIC: [u8; 4] = *b"SHKZ";
/// The header version this bridge writes and reads.
pub const VERSION: u16 = 1;
/// Bytes of a version-1 header.
pub const SIZE: usize = 112;

/// One frame's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameHeader {
    /// Element type.
    pub elem: ElemType,
    /// Shape, outermost first (1 to 4 dimensions).
    pub shape: Vec<u32>,
    /// Source frame id.
    pub id: u64,
    /// Source publish time, `CLOCK_MONOTONIC` ns of the source host.
    pub ts_ns: u64,
    /// The five user words.
    pub user: [u64; 5],
    /// The bridge's sequence number.
    pub seq: u64,
    /// Source frames not sent since this export's first sample, in total (a running count, so
    /// a receiver that lost samples still knows how many frames were never sent; the
    /// difference between two samples is what was skipped between them).
    pub skipped: u64,
    /// [`checksum`] of the payload.
    pub checksum: u64,
    /// Payload length.
    pub len: u64,
}

/// The payload checksum: CRC-32 (IEEE, zlib's), as `u64`. Carry-less-multiply hardware
/// makes it run at memory speed (an 8 MiB frame in well under a millisecond), and every
/// language has it (`zlib.crc32` in Python's standard library).
pub fn checksum(bytes: &[u8]) -> u64 {
    u64::from(crc32fast::hash(bytes))
}

/// Bytes copied and checksummed per step of [`CopyChecksum`]: small enough that the CRC
/// reads what was just written from the L1 cache, so a frame costs one pass over memory
/// instead of two.
const COPY_CHUNK: usize = 16 << 10;

/// A copy that computes [`checksum`] of what it copies on the way.
#[derive(Default)]
pub struct CopyChecksum {
    crc: crc32fast::Hasher,
}

impl CopyChecksum {
    /// A copy with nothing copied yet.
    pub fn new() -> CopyChecksum {
        CopyChecksum::default()
    }

    /// Copies `src` into the start of `dst` (which must be at least as long).
    ///
    /// # Panics
    /// If `dst` is shorter than `src` (a caller's bug: sizes are checked before copying).
    pub fn copy(&mut self, dst: &mut [u8], src: &[u8]) {
        for (d, s) in dst[..src.len()]
            .chunks_mut(COPY_CHUNK)
            .zip(src.chunks(COPY_CHUNK))
        {
            d.copy_from_slice(s);
            self.crc.update(d);
        }
    }

    /// Appends `src` to `dst`.
    pub fn extend(&mut self, dst: &mut Vec<u8>, src: &[u8]) {
        dst.reserve(src.len());
        for s in src.chunks(COPY_CHUNK) {
            let at = dst.len();
            dst.extend_from_slice(s);
            self.crc.update(&dst[at..]);
        }
    }

    /// The checksum of everything copied.
    pub fn finish(self) -> u64 {
        u64::from(self.crc.finalize())
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

impl FrameHeader {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; SIZE] {
        let mut b = [0u8; SIZE];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&VERSION.to_le_bytes());
        b[6] = self.elem as u8;
        b[7] = self.shape.len() as u8;
        for (i, d) in self.shape.iter().take(4).enumerate() {
            b[8 + 4 * i..12 + 4 * i].copy_from_slice(&d.to_le_bytes());
        }
        b[24..32].copy_from_slice(&self.id.to_le_bytes());
        b[32..40].copy_from_slice(&self.ts_ns.to_le_bytes());
        for (i, u) in self.user.iter().enumerate() {
            b[40 + 8 * i..48 + 8 * i].copy_from_slice(&u.to_le_bytes());
        }
        b[80..88].copy_from_slice(&self.seq.to_le_bytes());
        b[88..96].copy_from_slice(&self.skipped.to_le_bytes());
        b[96..104].copy_from_slice(&self.checksum.to_le_bytes());
        b[104..112].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// Reads a header, refusing anything a version-1 bridge does not write.
    pub fn decode(b: &[u8]) -> Result<FrameHeader, BridgeError> {
        let bad = |what: &'static str| Err(BridgeError::Header(what));
        if b.len() != SIZE {
            return bad("not 112 bytes");
        }
        if b[0..4] != MAGIC {
            return bad("wrong magic");
        }
        let version = u16::from_le_bytes([b[4], b[5]]);
        if version != VERSION {
            return Err(BridgeError::HeaderVersion { found: version });
        }
        let Some(elem) = ElemType::from_raw(u32::from(b[6])) else {
            return bad("unknown element type");
        };
        let ndims = usize::from(b[7]);
        if !(1..=4).contains(&ndims) {
            return bad("not 1 to 4 dimensions");
        }
        let shape: Vec<u32> = (0..ndims).map(|i| u32_at(b, 8 + 4 * i)).collect();
        if (ndims..4).any(|i| u32_at(b, 8 + 4 * i) != 0) {
            return bad("unused dimensions not 0");
        }
        let mut user = [0u64; 5];
        for (i, u) in user.iter_mut().enumerate() {
            *u = u64_at(b, 40 + 8 * i);
        }
        Ok(FrameHeader {
            elem,
            shape,
            id: u64_at(b, 24),
            ts_ns: u64_at(b, 32),
            user,
            seq: u64_at(b, 80),
            skipped: u64_at(b, 88),
            checksum: u64_at(b, 96),
            len: u64_at(b, 104),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_and_damaged_ones_are_refused() {
        let h = FrameHeader {
            elem: ElemType::U16,
            shape: vec![192, 192],
            id: 7,
            ts_ns: 123,
            user: [1, 2, 3, 4, 5],
            seq: 9,
            skipped: 2,
            checksum: checksum(b"abc"),
            len: 3,
        };
        let b = h.encode();
        assert_eq!(FrameHeader::decode(&b).unwrap(), h);
        assert_eq!(checksum(b""), 0);
        // Copied in pieces and chunks, the same sum as in one go.
        let src: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut c = CopyChecksum::new();
        let mut dst = vec![0u8; src.len()];
        c.copy(&mut dst[..40_000], &src[..40_000]);
        c.copy(&mut dst[40_000..], &src[40_000..]);
        assert_eq!((c.finish(), &dst), (checksum(&src), &src));
        let mut c = CopyChecksum::new();
        let mut v = Vec::new();
        c.extend(&mut v, &src[..7]);
        c.extend(&mut v, &src[7..]);
        assert_eq!((c.finish(), v), (checksum(&src), src));
        assert_eq!(
            checksum(b"123456789"),
            0xcbf4_3926,
            "the CRC-32 check value"
        );
        assert!(FrameHeader::decode(&b[..100]).is_err());
        let mut v = b;
        v[4] = 2;
        assert!(matches!(
            FrameHeader::decode(&v),
            Err(BridgeError::HeaderVersion { found: 2 })
        ));
        let mut e = b;
        e[6] = 99;
        assert!(FrameHeader::decode(&e).is_err());
        let mut d = b;
        d[7] = 5;
        assert!(FrameHeader::decode(&d).is_err());
        let mut u = b;
        u[20] = 1;
        assert!(FrameHeader::decode(&u).is_err(), "a stray fourth dimension");
    }
}
