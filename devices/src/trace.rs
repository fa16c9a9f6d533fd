//! Device servers in the segment's trace: when the segment holds a trace buffer named
//! [`TRACE_BUFFER`], every server records each command it handles (`"NAME command"`) and each
//! poll of its device (`"NAME poll"`: a camera's exposure and publish) as spans on its thread,
//! so a trace shows the servers beside the processes that call them. A server looks for the
//! buffer when it starts and at every heartbeat until it finds one; without one, tracing costs
//! a table lookup per heartbeat.

use shmkit::segment::{Segment, SegmentObjects};
use shmkit::shared::{TraceBuffer, TraceName};
use std::time::Duration;

/// The trace buffer device servers record into, when a segment holds one by this name.
pub const TRACE_BUFFER: &str = "trace";

/// A server's spans, once its segment has a trace buffer.
pub(crate) struct ServerTrace {
    device: String,
    found: Option<Found>,
}

struct Found {
    buffer: TraceBuffer,
    command: TraceName,
    poll: TraceName,
}

impl ServerTrace {
    pub(crate) fn new(device: &str, segment: &Segment) -> ServerTrace {
        let mut trace = ServerTrace {
            device: device.to_owned(),
            found: None,
        };
        trace.look(segment);
        trace
    }

    /// Looks for the trace buffer if it was not found yet.
    pub(crate) fn look(&mut self, segment: &Segment) {
        if self.found.is_some() {
            return;
        }
        let Ok(buffer) = segment.open::<TraceBuffer>(TRACE_BUFFER) else {
            return;
        };
        // Names past 56 bytes cannot be filed: such a server traces nothing.
        let (Ok(command), Ok(poll)) = (
            buffer.name(&format!("{} command", self.device)),
            buffer.name(&format!("{} poll", self.device)),
        ) else {
            return;
        };
        let _ = buffer.name_process(&format!("{} server", self.device));
        self.found = Some(Found {
            buffer,
            command,
            poll,
        });
    }

    /// A command handled from `start_ns` to `end_ns` (for the frame `frame`, if its client
    /// said: see `cause.rs`).
    pub(crate) fn command(&self, start_ns: u64, end_ns: u64, frame: Option<u64>) {
        if let Some(f) = &self.found {
            span(&f.buffer, f.command, start_ns, end_ns, frame);
        }
    }

    /// A poll of the device from `start_ns` to `end_ns`.
    pub(crate) fn poll(&self, start_ns: u64, end_ns: u64) {
        if let Some(f) = &self.found {
            span(&f.buffer, f.poll, start_ns, end_ns, None);
        }
    }
}

fn span(buffer: &TraceBuffer, name: TraceName, start_ns: u64, end_ns: u64, arg: Option<u64>) {
    let d = Duration::from_nanos(end_ns.saturating_sub(start_ns));
    buffer.record_span(name, start_ns, d, arg);
}
