//! `shmkit view`: a live view of a segment in the browser — each frame ring as an image (or a
//! plot, for one-dimensional rings), the deformable mirror's map, shared numbers as plots,
//! the histograms over a sliding window, rates, jitter, alarms, the testbed's state and each
//! device's status.
//!
//! Kept away from the loop it shows: frames reach browsers through a per-client,
//! rate-limited push built from one copy of each ring's newest frame, taken at most
//! `max_fps` times a second by a polling reader that never waits on the ring, holds a slot
//! only for that copy and so never blocks its writer; the segment's state is read from a
//! copy of its pages ([`shmkit::inspect`]); every thread of the viewer runs at nice 10.
//!
//! Private by default: it listens on loopback, and every request needs the random token the
//! printed URL carries; listening elsewhere needs TLS (`tls`) or an explicit `insecure`.
//! The page (HTML, JavaScript, CSS) is compiled into the binary: no CDN, no build step.
//!
//! Files: `options.rs` (what a caller chooses, and the exposure rule), `token.rs`, `frames.rs`
//! (the sampler and the frame messages), `state.rs` (the segment's state as JSON),
//! `socket.rs` (one browser's WebSocket), `server.rs` (HTTP, TLS, the threads), `assets.rs`
//! (the embedded page).

mod assets;
mod error;
mod frames;
mod options;
mod server;
mod socket;
mod state;
mod token;

pub use error::ViewError;
pub use options::{TlsFiles, ViewOptions};
pub use server::Viewer;
