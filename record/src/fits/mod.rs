//! FITS, as far as a recording needs it: a primary HDU holding a cube of frames and a binary
//! table of per-frame metadata, written to the standard (FITS 4.0: 2 880-byte blocks,
//! mandatory keywords in order, big-endian data, `BZERO` for unsigned integers) and checked
//! against astropy by the Python suite; and a single frame as an image file of its own.

pub mod data;
pub mod header;
mod image;
pub mod table;

pub use header::{Header, Value, BLOCK};
pub use image::FrameImage;
