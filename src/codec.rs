//! The one serialisation format of typed messages and values (postcard), and its error.
//!
//! Typed command-ring calls, dictionary values and child-process arguments all go through
//! one `encode` / `decode` pair, so a failure is always a [`CodecError`] that says what was being
//! encoded or decoded and keeps postcard's error as its `source()`.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Encoding or decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Rust value → bytes.
    Encode,
    /// Bytes → Rust value.
    Decode,
}

/// A value that could not be encoded, or bytes that do not decode as the asked-for type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} {what}", match direction { Direction::Encode => "encode", Direction::Decode => "decode" })]
pub struct CodecError {
    /// Which way.
    pub direction: Direction,
    /// What: "the request", "the reply", "the value", "the entry's arguments".
    pub what: &'static str,
    #[source]
    source: postcard::Error,
}

impl CodecError {
    /// Postcard's `source`, met while going `direction` with `what`.
    pub fn new(direction: Direction, what: &'static str, source: postcard::Error) -> Self {
        CodecError {
            direction,
            what,
            source,
        }
    }
}

/// Encodes `value` (`what` names it in an error).
pub fn encode<T: Serialize + ?Sized>(value: &T, what: &'static str) -> Result<Vec<u8>, CodecError> {
    postcard::to_allocvec(value).map_err(|source| CodecError {
        direction: Direction::Encode,
        what,
        source,
    })
}

/// Decodes `bytes` as a `T` (`what` names them in an error).
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, CodecError> {
    postcard::from_bytes(bytes).map_err(|source| CodecError {
        direction: Direction::Decode,
        what,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decode_error_names_what_and_keeps_postcards_error_as_its_source() {
        let e = decode::<u64>(&[], "the reply").unwrap_err();
        assert_eq!(e.to_string(), "cannot decode the reply");
        let source = std::error::Error::source(&e).expect("postcard's error is the source");
        assert!(!source.to_string().is_empty());
        assert_eq!(
            crate::error_chain(&e),
            format!("cannot decode the reply: {source}")
        );
    }
}
