//! An imported ring's link, published in its local segment beside the ring: a shared value
//! named `link/<ring>` holding a [`LinkStatus`] (its bytes are `shm_layout::LinkStatus`, so
//! `shmkit inspect` shows it too), so local readers see whether the far side is up and when
//! it last sent or answered.

pub use shm_layout::{LinkStatus, LINK_COMMANDS_IN, LINK_FRAMES_IN};

/// The name of ring `ring`'s link value.
pub fn status_name(ring: &str) -> String {
    format!("{}{ring}", shm_layout::LINK_PREFIX)
}
