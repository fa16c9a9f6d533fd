//! The `@spec` a frame-exporting bridge answers: the ring's spec and the versions a receiver
//! must share (shmkit's segment layout, the frame header), as JSON.

use crate::error::BridgeError;
use serde::{Deserialize, Serialize};
use shmkit::rings::{ElemType, FrameSpec};

/// What a `@spec` reply holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteSpec {
    /// shmkit's segment layout major version at the source.
    pub layout_major: u32,
    /// The frame header version.
    pub header_version: u16,
    /// Slots of the source ring.
    pub slots: u32,
    /// Element type code (the header's).
    pub elem: u8,
    /// Shape, outermost first.
    pub shape: Vec<u32>,
    /// Bytes of a full frame.
    pub max_bytes: u64,
}

impl RemoteSpec {
    /// The spec of `spec`'s ring at this build's versions.
    pub fn of(spec: &FrameSpec, max_bytes: u64) -> RemoteSpec {
        RemoteSpec {
            layout_major: u32::from(shm_layout::VERSION_MAJOR),
            header_version: crate::header::VERSION,
            slots: spec.slots,
            elem: spec.elem as u8,
            shape: spec.shape.clone(),
            max_bytes,
        }
    }

    /// Parses and checks a reply for `key`: versions equal to ours, a known element type.
    pub fn parse(key: &str, bytes: &[u8]) -> Result<RemoteSpec, BridgeError> {
        let spec: RemoteSpec = serde_json::from_slice(bytes).map_err(|e| BridgeError::BadSpec {
            key: key.to_owned(),
            detail: e.to_string(),
        })?;
        let local = RemoteSpec::of(&FrameSpec::new(2, ElemType::U8, &[1]), 1);
        if (spec.layout_major, spec.header_version) != (local.layout_major, local.header_version) {
            return Err(BridgeError::VersionMismatch {
                key: key.to_owned(),
                remote: format!("{} / header {}", spec.layout_major, spec.header_version),
                local: format!("{} / header {}", local.layout_major, local.header_version),
            });
        }
        if ElemType::from_raw(u32::from(spec.elem)).is_none() || spec.shape.is_empty() {
            return Err(BridgeError::BadSpec {
                key: key.to_owned(),
                detail: "unknown element type or empty shape".into(),
            });
        }
        Ok(spec)
    }

    /// The bytes of one frame of this spec, checked: `None` when the shape's product
    /// overflows, and [`BridgeError::TooLarge`] when it is more than `limit` (a peer's numbers
    /// size nothing before this says they fit).
    pub fn checked_frame_bytes(&self, key: &str, limit: u64) -> Result<u64, BridgeError> {
        let elem = ElemType::from_raw(u32::from(self.elem)).map_or(1, |e| e.size() as u64);
        let bytes = self
            .shape
            .iter()
            .try_fold(elem, |n, &d| n.checked_mul(u64::from(d)));
        match bytes {
            Some(b) if b <= limit && self.slots <= 1024 => Ok(b),
            _ => Err(BridgeError::TooLarge {
                key: key.to_owned(),
                detail: format!(
                    "{} slots of shape {:?} (element code {}); this bridge takes frames up to {limit} bytes",
                    self.slots, self.shape, self.elem
                ),
            }),
        }
    }

    /// The local ring spec that holds these frames, with `slots` slots.
    pub fn frame_spec(&self, slots: u32) -> FrameSpec {
        let elem = ElemType::from_raw(u32::from(self.elem)).unwrap_or(ElemType::U8);
        FrameSpec::new(slots, elem, &self.shape)
    }
}
