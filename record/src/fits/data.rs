//! Frame bytes as FITS data: big-endian, and unsigned integers stored signed with the
//! standard's `BZERO` offset (an unsigned 16-bit pixel `v` is stored as the signed `v - 32768`,
//! which is `v` with its top bit flipped).

use shm_layout::ElemType;

/// How frames of `elem` are stored: `BITPIX`, and `BZERO` for unsigned integers wider than a
/// byte.
pub fn bitpix(elem: ElemType) -> (i32, Option<i128>) {
    match elem {
        ElemType::U8 => (8, None),
        ElemType::U16 => (16, Some(1 << 15)),
        ElemType::U32 => (32, Some(1 << 31)),
        ElemType::I16 => (16, None),
        ElemType::I32 => (32, None),
        ElemType::F32 => (-32, None),
        ElemType::F64 => (-64, None),
    }
}

/// Appends `frame` (native little-endian elements of `elem`) to `out` as FITS data. One pass
/// of whole-word swaps the compiler vectorises: this runs at the recording's full data rate.
pub fn encode(elem: ElemType, frame: &[u8], out: &mut Vec<u8>) {
    let unsigned = bitpix(elem).1.is_some();
    let start = out.len();
    let len = frame.len() - frame.len() % elem.size();
    out.resize(start + len, 0);
    let dst = &mut out[start..];
    let src = &frame[..len];
    match elem.size() {
        1 => dst.copy_from_slice(src),
        2 => {
            let flip = if unsigned { 0x8000 } else { 0 };
            for (d, s) in dst.chunks_exact_mut(2).zip(src.chunks_exact(2)) {
                let v = u16::from_le_bytes([s[0], s[1]]) ^ flip;
                d.copy_from_slice(&v.to_be_bytes());
            }
        }
        4 => {
            let flip = if unsigned { 0x8000_0000 } else { 0 };
            for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
                let v = u32::from_le_bytes([s[0], s[1], s[2], s[3]]) ^ flip;
                d.copy_from_slice(&v.to_be_bytes());
            }
        }
        _ => {
            for (d, s) in dst.chunks_exact_mut(8).zip(src.chunks_exact(8)) {
                let v = u64::from_le_bytes(s.try_into().expect("8 bytes"));
                d.copy_from_slice(&v.to_be_bytes());
            }
        }
    }
}

/// The inverse of [`encode`]: FITS data back to native elements (for reading recordings).
pub fn decode(elem: ElemType, data: &[u8], out: &mut Vec<u8>) {
    let size = elem.size();
    let flip = if bitpix(elem).1.is_some() { 0x80 } else { 0 };
    for element in data.chunks_exact(size) {
        let start = out.len();
        out.extend(element.iter().rev());
        out[start + size - 1] ^= flip;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_pixels_are_stored_big_endian_with_the_bzero_offset() {
        let mut out = Vec::new();
        encode(ElemType::U16, &[0x34, 0x12, 0x00, 0x80], &mut out);
        // 0x1234 - 32768 = -0x6dcc = 0x9234 as i16; 0x8000 - 32768 = 0.
        assert_eq!(out, [0x92, 0x34, 0x00, 0x00]);
        let mut back = Vec::new();
        decode(ElemType::U16, &out, &mut back);
        assert_eq!(back, [0x34, 0x12, 0x00, 0x80]);
    }

    #[test]
    fn floats_and_signed_integers_are_only_byte_swapped() {
        let v = 1.5f32.to_le_bytes();
        let mut out = Vec::new();
        encode(ElemType::F32, &v, &mut out);
        assert_eq!(out, 1.5f32.to_be_bytes());
        out.clear();
        encode(ElemType::I16, &(-2i16).to_le_bytes(), &mut out);
        assert_eq!(out, (-2i16).to_be_bytes());
    }
}
