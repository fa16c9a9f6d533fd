//! One frame as a FITS file of its own: a primary image HDU with the frame and where it came
//! from (ring, segment, frame id, publish time), for tools that save a single frame (the
//! viewer's "save").

use super::data;
use super::header::{blocks_for, Header, Value};
use shm_layout::ElemType;

/// A frame and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct FrameImage<'a> {
    /// The ring's name.
    pub ring: &'a str,
    /// The segment's name.
    pub segment: &'a str,
    /// The frame's element type.
    pub elem: ElemType,
    /// The frame's shape, outermost first.
    pub shape: &'a [u32],
    /// The frame's id.
    pub id: u64,
    /// Its publish time (CLOCK_MONOTONIC, ns).
    pub ts_ns: u64,
    /// Its bytes (native little-endian elements; a trailing partial element is dropped).
    pub bytes: &'a [u8],
}

impl FrameImage<'_> {
    /// The FITS file: header, then the data padded with zeros to a whole block.
    pub fn to_fits(&self) -> Vec<u8> {
        let (bitpix, bzero) = data::bitpix(self.elem);
        let mut h = Header::new();
        h.card("SIMPLE", Value::Logical(true), "conforms to FITS 4.0")
            .card("BITPIX", Value::Int(bitpix.into()), "bits per pixel")
            .card("NAXIS", Value::Int(self.shape.len() as i128), "frame axes");
        // FITS's first axis varies fastest: the frame's last (innermost) dimension.
        for (i, &d) in self.shape.iter().rev().enumerate() {
            h.card(&format!("NAXIS{}", i + 1), Value::Int(d.into()), "");
        }
        if let Some(zero) = bzero {
            h.card("BZERO", Value::Int(zero), "unsigned integers").card(
                "BSCALE",
                Value::Int(1),
                "",
            );
        }
        h.card(
            "ORIGIN",
            Value::Text("shmkit".into()),
            "one frame of a ring",
        )
        .card("RING", Value::Text(self.ring.into()), "frame ring")
        .card(
            "SEGMENT",
            Value::Text(self.segment.into()),
            "shmkit segment",
        )
        .card(
            "DTYPE",
            Value::Text(self.elem.name().into()),
            "element type",
        )
        .card("FRAMEID", Value::Int(self.id.into()), "frame id")
        .card(
            "TS_NS",
            Value::Int(self.ts_ns.into()),
            "publish time, CLOCK_MONOTONIC ns",
        );
        let mut out = h.to_bytes();
        // The data is exactly the shape's elements: a short frame is padded with zeros.
        let elements: usize = self.shape.iter().map(|&d| d as usize).product();
        let want = elements * self.elem.size();
        let start = out.len();
        data::encode(
            self.elem,
            &self.bytes[..self.bytes.len().min(want)],
            &mut out,
        );
        out.resize(start + blocks_for(want), 0);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fits::BLOCK;

    #[test]
    fn a_u16_frame_is_a_2d_image_with_bzero_and_its_id() {
        let pixels: Vec<u8> = (0u16..12).flat_map(|v| (v * 1000).to_le_bytes()).collect();
        let fits = FrameImage {
            ring: "cam",
            segment: "lab",
            elem: ElemType::U16,
            shape: &[3, 4],
            id: 42,
            ts_ns: 7,
            bytes: &pixels,
        }
        .to_fits();
        assert_eq!(fits.len() % BLOCK, 0);
        let (cards, header_len) = super::super::header::parse(&fits).unwrap();
        let get = |k: &str| cards.iter().find(|(key, _)| key == k).unwrap().1.clone();
        assert_eq!(get("NAXIS"), "2");
        assert_eq!(get("NAXIS1"), "4");
        assert_eq!(get("NAXIS2"), "3");
        assert_eq!(get("BZERO"), "32768");
        assert_eq!(get("FRAMEID"), "42");
        assert_eq!(get("RING"), "cam");
        let mut back = Vec::new();
        data::decode(ElemType::U16, &fits[header_len..header_len + 24], &mut back);
        assert_eq!(back, pixels);
        assert!(fits[header_len + 24..].iter().all(|&b| b == 0));
    }
}
