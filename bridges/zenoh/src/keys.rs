//! The bridge's key expressions, and the names allowed in them.
//!
//! | key | what |
//! |---|---|
//! | `shmkit/<host>/<segment>/frames/<ring>` | a ring's frames (payload: the frame's bytes) |
//! | `shmkit/<host>/<segment>/frames/<ring>/@spec` | a queryable: the ring's spec and layout version |
//! | `shmkit/<host>/<segment>/frames/<ring>/@ack/<zid>` | an importer's acknowledgements (flow control) |
//! | `shmkit/<host>/<segment>/cmd/<ring>` | a command ring, as a queryable (`cmd_wire`) |
//! | `shmkit/<host>/<segment>/cmd/<ring>/@spec` | a queryable: the command ring's sizes and versions |
//! | `shmkit/<host>/<segment>/cmd/<ring>/@exporter/<zid>` | the exporting bridge's liveliness token |
//! | `shmkit/<host>/@bridge/<zid>` | a bridge's liveliness token |
//!
//! Zenoh gives `*`, `$`, `?`, `#` and `/` meaning inside a key, and `@` at the start of a chunk;
//! a host, segment or ring name holding any of them, or empty, or with whitespace, is refused
//! with [`BridgeError::Name`] rather than escaped: a refused name is visible at once, an
//! escaped one would be a second spelling of the same ring.

use crate::error::BridgeError;

/// The first chunk of every key.
pub const ROOT: &str = "shmkit";

/// Checks that `name` (a `what`) can be one chunk of a key expression.
pub fn check(what: &'static str, name: &str) -> Result<(), BridgeError> {
    let refuse = |reason: &'static str| {
        Err(BridgeError::Name {
            what,
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return refuse("empty");
    }
    if name.starts_with('@') {
        return refuse("starts with '@', which Zenoh reserves");
    }
    if let Some(c) = name.chars().find(|c| "*$?#/".contains(*c)) {
        return match c {
            '/' => refuse("contains '/', Zenoh's chunk separator"),
            _ => refuse("contains one of Zenoh's special characters * $ ? #"),
        };
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("contains whitespace or control characters");
    }
    Ok(())
}

/// Where one ring of one segment on one host lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingKey {
    /// The host the ring is on.
    pub host: String,
    /// Its segment.
    pub segment: String,
    /// The ring.
    pub ring: String,
}

impl RingKey {
    /// A checked key.
    pub fn new(host: &str, segment: &str, ring: &str) -> Result<RingKey, BridgeError> {
        check("host", host)?;
        check("segment", segment)?;
        check("ring", ring)?;
        Ok(RingKey {
            host: host.to_owned(),
            segment: segment.to_owned(),
            ring: ring.to_owned(),
        })
    }

    /// `shmkit/<host>/<segment>/frames/<ring>`.
    pub fn frames(&self) -> String {
        format!("{ROOT}/{}/{}/frames/{}", self.host, self.segment, self.ring)
    }

    /// `…/frames/<ring>/@spec`.
    pub fn spec(&self) -> String {
        format!("{}/@spec", self.frames())
    }

    /// `…/frames/<ring>/@ack/<id>`: where importer `id` acknowledges samples ([`crate::flow`]).
    pub fn ack(&self, id: &str) -> Result<String, BridgeError> {
        check("bridge id", id)?;
        Ok(format!("{}/@ack/{id}", self.frames()))
    }

    /// Every importer's acknowledgements of this ring.
    pub fn acks(&self) -> String {
        format!("{}/@ack/*", self.frames())
    }

    /// `shmkit/<host>/<segment>/cmd/<ring>`.
    pub fn command(&self) -> String {
        format!("{ROOT}/{}/{}/cmd/{}", self.host, self.segment, self.ring)
    }

    /// `…/cmd/<ring>/@spec`.
    pub fn command_spec(&self) -> String {
        format!("{}/@spec", self.command())
    }

    /// `…/cmd/<ring>/@exporter/<id>`: the token of the bridge exporting this command ring,
    /// so that a second one sees it and refuses to start. (A `@` chunk is matched only by
    /// itself: `shmkit/**` does not reach it.)
    pub fn command_exporter(&self, id: &str) -> Result<String, BridgeError> {
        check("bridge id", id)?;
        Ok(format!("{}/@exporter/{id}", self.command()))
    }

    /// Every exporter token of this command ring.
    pub fn command_exporters(&self) -> String {
        format!("{}/@exporter/*", self.command())
    }
}

/// `shmkit/<host>/@bridge/<id>`: a bridge's liveliness token.
pub fn bridge_token(host: &str, id: &str) -> Result<String, BridgeError> {
    check("host", host)?;
    check("bridge id", id)?;
    Ok(format!("{ROOT}/{host}/@bridge/{id}"))
}

/// Every bridge's token on `host`.
pub fn bridge_tokens(host: &str) -> Result<String, BridgeError> {
    check("host", host)?;
    Ok(format!("{ROOT}/{host}/@bridge/*"))
}

/// This machine's host name, as a key chunk (characters a key cannot hold become `_`).
pub fn local_host() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .map(|c| {
            if "*$?#/@".contains(c) || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_zenoh_syntax_are_refused_and_plain_ones_make_the_documented_keys() {
        for bad in ["", "a/b", "a*", "$x", "q?", "#", "@spec", "a b", "tab\t"] {
            assert!(
                matches!(check("ring", bad), Err(BridgeError::Name { .. })),
                "{bad:?}"
            );
        }
        let k = RingKey::new("benchhost", "lab-1", "camera.raw").unwrap();
        assert_eq!(k.frames(), "shmkit/benchhost/lab-1/frames/camera.raw");
        assert_eq!(k.spec(), "shmkit/benchhost/lab-1/frames/camera.raw/@spec");
        assert_eq!(k.command(), "shmkit/benchhost/lab-1/cmd/camera.raw");
        assert_eq!(
            k.command_spec(),
            "shmkit/benchhost/lab-1/cmd/camera.raw/@spec"
        );
        assert!(RingKey::new("h", "s", "a/b").is_err());
        assert_eq!(bridge_token("h", "abc").unwrap(), "shmkit/h/@bridge/abc");
        assert_eq!(
            k.command_exporter("z1").unwrap(),
            "shmkit/benchhost/lab-1/cmd/camera.raw/@exporter/z1"
        );
        assert_eq!(
            k.command_exporters(),
            "shmkit/benchhost/lab-1/cmd/camera.raw/@exporter/*"
        );
        for c in local_host().chars() {
            assert!(!"*$?#/@".contains(c));
        }
    }
}
