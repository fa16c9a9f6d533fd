//! Telemetry for shmkit: record frame rings into FITS files at full rate without disturbing
//! the loop, account for every frame, and complete a recording whose recorder was killed.
//!
//! A [`Recorder`] reads each ring with its own reader (oldest first), holding a slot only for
//! one copy of the frame, and hands the copy to a writer thread through a bounded buffer; the
//! loop's writer never waits for it (a recorder that falls behind is lapped, and the frames it
//! missed are counted from the frame ids, never guessed). A session directory holds, per ring,
//! FITS files rolled over by frame count, bytes or duration — each a cube of frames and a
//! `FRAMES` table of per-frame metadata (see [`fits::table`]) — and `manifest.json`
//! ([`Manifest`]): files, specs, counts, drops, start and end. Per ring, recorded + dropped =
//! published over the session, exactly.
//!
//! [`replay`] publishes a session again into rings of the same names and specs, at the original
//! pace, a speed factor or as fast as possible.
//!
//! [`TraceCapture`] reads a segment's trace buffer and writes the Chrome trace-event format.
//!
//! Not part of the IPC core: it brings file formats and threads a loop does not need.

// Under `--cfg loom` (the core's model checks build its dev-dependencies) this crate is empty.
#![cfg(not(loom))]

mod direct;
mod error;
pub mod file;
pub mod fits;
mod manifest;
pub mod read;
mod recorder;
mod repair;
mod replay;
mod sys;
mod time;
mod trace;

pub use error::RecordError;
pub use manifest::{Manifest, RingRecord, MANIFEST};
pub use recorder::{Progress, RecordOptions, Recorder, Roll};
pub use repair::repair;
pub use replay::{replay, Pace, ReplayOptions, ReplayStart, Replayed};
pub use trace::{TraceCapture, TraceLosses};
