//! What a failed child reports: its error's type, message, cause chain, location and backtrace.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The marker appended to any field shortened to fit a slot.
pub const TRUNCATION_MARKER: &str = " …[truncated by shmkit]";

/// A child's report of how it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildReport {
    /// The error's type name (for a panic: the payload's type, usually `&str` or `String`).
    pub type_name: String,
    /// The error's `Display` (for a panic: its message).
    pub message: String,
    /// The `Display` of each `source()`, outermost first.
    pub chain: Vec<String>,
    /// `file:line:column` of a panic.
    pub location: Option<String>,
    /// The backtrace captured when the report was made.
    pub backtrace: String,
    /// True if any field was shortened to fit the slot (each ends with [`TRUNCATION_MARKER`]).
    pub truncated: bool,
}

impl ChildReport {
    /// A report of `error` and its whole `source()` chain.
    pub fn from_error<E: std::error::Error + ?Sized>(type_name: &str, error: &E) -> ChildReport {
        let mut chain = Vec::new();
        let mut source = error.source();
        while let Some(s) = source {
            chain.push(s.to_string());
            source = s.source();
        }
        ChildReport {
            type_name: type_name.to_owned(),
            message: error.to_string(),
            chain,
            location: None,
            backtrace: std::backtrace::Backtrace::force_capture().to_string(),
            truncated: false,
        }
    }

    /// Encodes the report in at most `max` bytes, shortening the backtrace first, then the
    /// chain, then the message, each with [`TRUNCATION_MARKER`]. Never silently.
    pub(crate) fn encode_bounded(&self, max: usize) -> Vec<u8> {
        let encode = |r: &ChildReport| postcard::to_allocvec(r).unwrap_or_default();
        let mut bytes = encode(self);
        if bytes.len() <= max {
            return bytes;
        }
        let mut r = self.clone();
        r.truncated = true;
        for _ in 0..64 {
            let over = bytes.len().saturating_sub(max) + TRUNCATION_MARKER.len() + 16;
            let field = if r.backtrace.len() > TRUNCATION_MARKER.len() * 2 {
                &mut r.backtrace
            } else if let Some(last) = r
                .chain
                .iter_mut()
                .rev()
                .find(|c| c.len() > TRUNCATION_MARKER.len() * 2)
            {
                last
            } else if r.message.len() > TRUNCATION_MARKER.len() * 2 {
                &mut r.message
            } else {
                r.chain.clear();
                r.type_name.truncate(64);
                r.location = None;
                bytes = encode(&r);
                break;
            };
            shorten(field, over);
            bytes = encode(&r);
            if bytes.len() <= max {
                break;
            }
        }
        bytes.truncate(max);
        bytes
    }

    /// Decodes a payload (untrusted bytes).
    pub(crate) fn decode(bytes: &[u8]) -> Result<ChildReport, String> {
        postcard::from_bytes(bytes).map_err(|e| format!("report does not decode: {e}"))
    }
}

/// Cuts at least `by` bytes off `s` (at a char boundary) and appends the marker.
fn shorten(s: &mut String, by: usize) {
    let already = s.ends_with(TRUNCATION_MARKER);
    if already {
        s.truncate(s.len() - TRUNCATION_MARKER.len());
    }
    let mut keep = s.len().saturating_sub(by);
    while !s.is_char_boundary(keep) {
        keep -= 1;
    }
    s.truncate(keep);
    s.push_str(TRUNCATION_MARKER);
}

impl fmt::Display for ChildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.type_name, self.message)?;
        if let Some(location) = &self.location {
            write!(f, " at {location}")?;
        }
        for cause in &self.chain {
            write!(f, "\n  caused by: {cause}")?;
        }
        if !self.backtrace.is_empty() {
            write!(f, "\nchild backtrace:\n{}", self.backtrace)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(message_len: usize, backtrace_len: usize) -> ChildReport {
        ChildReport {
            type_name: "demo::Error".into(),
            message: "é".repeat(message_len / 2),
            chain: vec!["cause one".into(), "cause two".into()],
            location: None,
            backtrace: "b".repeat(backtrace_len),
            truncated: false,
        }
    }

    #[test]
    fn a_report_that_fits_is_kept_whole() {
        let r = report(100, 100);
        let bytes = r.encode_bounded(4000);
        assert_eq!(ChildReport::decode(&bytes).unwrap(), r);
    }

    #[test]
    fn an_oversized_report_is_cut_to_fit_with_the_marker() {
        for (message, backtrace) in [(100, 100_000), (100_000, 100), (50_000, 50_000)] {
            let bytes = report(message, backtrace).encode_bounded(4000);
            assert!(bytes.len() <= 4000);
            let back = ChildReport::decode(&bytes).unwrap();
            assert!(back.truncated);
            let marked = [&back.message, &back.backtrace]
                .iter()
                .any(|f| f.ends_with(TRUNCATION_MARKER));
            assert!(marked, "no field carries the marker");
            assert_eq!(back.type_name, "demo::Error");
        }
    }

    #[test]
    fn a_report_shows_each_message_of_a_cause_chain_once() {
        let io = crate::segment::SegmentError::Io {
            op: "open",
            name: "lab".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        let outer = crate::process::ProcessError::Segment(io);
        let r = ChildReport::from_error("shmkit::process::ProcessError", &outer);
        let all = std::iter::once(&r.message)
            .chain(&r.chain)
            .cloned()
            .collect::<Vec<_>>()
            .join(" | ");
        let os = std::io::Error::from_raw_os_error(libc::ENOENT).to_string();
        assert_eq!(all.matches(&os).count(), 1, "{all}");
        assert_eq!(all.matches("open on segment").count(), 1, "{all}");
    }

    #[test]
    fn slot_images_decode_to_typed_errors_or_reports() {
        use crate::process::decode_slot_image;
        assert_eq!(decode_slot_image(&[0; 64]), Ok(None), "not reported");
        assert!(
            decode_slot_image(&[0; 8]).is_err(),
            "shorter than the header"
        );
        assert!(decode_slot_image(&[3, 0, 0]).is_err(), "too short");
        let mut slot = vec![0u8; 4096];
        slot[0] = 3; // REPORTED
        slot[20] = 1; // REPORT_ERROR
        slot[32..36].copy_from_slice(&5000u32.to_le_bytes());
        assert!(decode_slot_image(&slot).is_err(), "length past the payload");
        let payload = postcard::to_allocvec(&report(10, 10)).unwrap();
        slot[32..36].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        slot[64..64 + payload.len()].copy_from_slice(&payload);
        assert_eq!(
            decode_slot_image(&slot).unwrap().unwrap().message,
            "é".repeat(5)
        );
        slot[20] = 9;
        assert!(decode_slot_image(&slot).is_err(), "unknown report kind");
    }
}
