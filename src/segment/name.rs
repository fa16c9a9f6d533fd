//! Segment names: what a caller may pass, and the POSIX shared memory name it maps to.

use super::SegmentError;
use std::ffi::CString;

/// Longest segment name accepted (POSIX allows 255 bytes including the leading `/`; we keep
/// room for suffixes later layers add).
pub const MAX_NAME_LEN: usize = 200;

/// A validated segment name: 1–200 bytes of `[A-Za-z0-9._-]`, not starting with `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SegmentName {
    name: String,
    posix: CString,
}

impl SegmentName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<SegmentName, SegmentError> {
        let reason = if name.is_empty() {
            Some("is empty")
        } else if name.len() > MAX_NAME_LEN {
            Some("is longer than 200 bytes")
        } else if name.starts_with('.') {
            Some("starts with '.'")
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            Some("may only contain ASCII letters, digits, '.', '_' and '-'")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(SegmentError::InvalidName {
                name: name.escape_default().to_string(),
                reason,
            });
        }
        let posix = CString::new(format!("/{name}")).expect("validated names contain no NUL");
        Ok(SegmentName {
            name: name.to_owned(),
            posix,
        })
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The POSIX shared memory object name (`/name`).
    pub(crate) fn posix(&self) -> &std::ffi::CStr {
        &self.posix
    }
}

impl std::fmt::Display for SegmentName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["a", "bench-1", "my_lab.camera", &"x".repeat(MAX_NAME_LEN)] {
            assert_eq!(
                SegmentName::new(ok).unwrap().posix().to_bytes(),
                format!("/{ok}").as_bytes()
            );
        }
    }

    #[test]
    fn rejects_bad_names_with_the_reason() {
        for (bad, why) in [
            ("", "empty"),
            (".hidden", "'.'"),
            ("a/b", "ASCII"),
            ("..", "'.'"),
            ("nul\0", "ASCII"),
            ("é", "ASCII"),
            (&"x".repeat(MAX_NAME_LEN + 1), "longer"),
        ] {
            match SegmentName::new(bad) {
                Err(SegmentError::InvalidName { reason, .. }) => {
                    assert!(reason.contains(why), "{bad:?}: {reason}")
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }
}
