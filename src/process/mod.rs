//! Child processes that report how they ended through the segment.
//!
//! Children are never forked from a (possibly threaded) parent: [`spawn`] re-executes
//! the current program with an entry marker in its environment, and the one-line
//! [`Entries::dispatch`] at the top of `main` runs the named entry in the child (and returns at
//! once in the parent). The child receives the segment and its serde arguments through that
//! environment, tags an exception slot with its identity, and on an error or a panic writes a
//! [`ChildReport`] there. [`Child::join`] then names exactly what happened.
//!
//! ```no_run
//! use shmkit::process::{self, ChildContext, Entries};
//! use shmkit::{CreateOptions, Segment};
//! use std::time::Duration;
//!
//! fn worker(ctx: &ChildContext, n: u32) -> Result<(), std::io::Error> {
//!     ctx.segment().shared("total", 0u32).unwrap().update(|t| *t += n).unwrap();
//!     Ok(())
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     Entries::new().entry("worker", worker).dispatch();
//!     let seg = Segment::create("lab", &CreateOptions::new(1 << 20))?;
//!     process::spawn(&seg, "worker", &5u32)?.join(Duration::from_secs(10))?;
//!     Ok(())
//! }
//! ```

mod child;
mod entry;
mod error;
mod report;
mod slots;
mod spawn;

pub use child::Child;
pub use entry::{ChildContext, ChildStart, Entries};
pub use error::{ChildError, ProcessError};
pub use spawn::{
    exception_slots_in_use, reclaim_exception_slots, spawn, spawn_with, HostProgram, SpawnOptions,
};

pub use report::{ChildReport, TRUNCATION_MARKER};
pub use slots::decode_slot_image;

use crate::segment::Segment;
use crate::sync::{Interrupt, NoInterrupt, Stop, Timeout, Waiting};
use crate::sys::futex_types::FutexWait;
use crate::sys::identity::{Liveness, ProcessIdentity};
use crate::sys::process::{signal_name, ExitWait, ExitWatch};
use serde::de::DeserializeOwned;
use serde::Serialize;
use slots::{Slot, SlotReport, KIND_ERROR, KIND_PANIC};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const ENV_ENTRY: &str = "SHMKIT_ENTRY";
const ENV_SEGMENT: &str = "SHMKIT_SEGMENT";
const ENV_SLOT: &str = "SHMKIT_SLOT";
const ENV_ARGS: &str = "SHMKIT_ARGS";
const ENV_PARENT: &str = "SHMKIT_PARENT";
const ENV_NAME: &str = "SHMKIT_CHILD_NAME";

/// Exit code of a child whose entry returned an error.
pub const EXIT_FAILED: i32 = 3;
/// Exit code of a child that could not start its entry (bad environment, unknown entry).
pub const EXIT_SETUP: i32 = 4;
/// Longest a child's [`ChildContext::parent_alive`] answers from its cache.
pub const PARENT_CHECK: Duration = Duration::from_millis(200);
