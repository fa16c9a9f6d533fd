//! `shmkit trace`: follow a segment's trace buffer for `--duration` seconds (or until Ctrl+C)
//! and write what was recorded in the Chrome trace-event format, for Perfetto
//! (ui.perfetto.dev, which reads the file locally) or `chrome://tracing`.

use clap::Args;
use shmkit::inspect::{self, ObjectState};
use shmkit::shared::TraceBuffer;
use shmkit::{Segment, SegmentObjects};
use shmkit_record::TraceCapture;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What `shmkit trace` takes.
#[derive(Args)]
pub struct Trace {
    /// The segment.
    segment: String,
    /// Seconds to follow the buffer for (Ctrl+C ends it sooner, keeping what was read).
    #[arg(long)]
    duration: f64,
    /// The file to write (Chrome trace-event JSON).
    #[arg(long)]
    out: PathBuf,
    /// The trace buffer's name (default: the segment's only one).
    #[arg(long)]
    buffer: Option<String>,
}

/// Runs `shmkit trace`.
pub fn run(args: Trace) -> ExitCode {
    if !(args.duration.is_finite() && args.duration >= 0.0) {
        eprintln!(
            "shmkit trace: --duration must be a number of seconds, not {}",
            args.duration
        );
        return ExitCode::from(2);
    }
    let name = match args.buffer {
        Some(b) => b,
        None => match only_buffer(&args.segment) {
            Ok(b) => b,
            Err((code, message)) => {
                eprintln!("shmkit trace: {message}");
                return ExitCode::from(code);
            }
        },
    };
    let buffer = match Segment::open(&args.segment).and_then(|s| s.open::<TraceBuffer>(&name)) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("shmkit trace: {}", shmkit::error_chain(&e));
            return ExitCode::from(1);
        }
    };
    let stop = crate::milk::stop_flag();
    eprintln!(
        "shmkit trace: following {}/{name} for {} s (Ctrl+C stops sooner)",
        args.segment, args.duration
    );
    let capture = TraceCapture::follow(&buffer, Duration::from_secs_f64(args.duration), || {
        stop.load(Ordering::Relaxed)
    });
    if let Err(e) = capture.write_chrome(&args.out) {
        eprintln!("shmkit trace: {}", shmkit::error_chain(&e));
        return ExitCode::from(1);
    }
    let l = capture.losses;
    eprintln!(
        "shmkit trace: {} events into {} ({} overwritten unread, {} torn, {} unfinished, {} given up by writers)",
        capture.records.len(),
        args.out.display(),
        l.overwritten,
        l.torn,
        l.unfinished,
        l.dropped
    );
    ExitCode::SUCCESS
}

/// The name of the segment's one trace buffer, or why there is not exactly one.
fn only_buffer(segment: &str) -> Result<String, (u8, String)> {
    let i = inspect::inspect(segment).map_err(|e| (1, shmkit::error_chain(&e)))?;
    let names: Vec<String> = i
        .objects
        .into_iter()
        .filter(|o| matches!(o.state, ObjectState::TraceBuffer { .. }))
        .map(|o| o.name)
        .collect();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err((1, format!("segment {segment:?} holds no trace buffer"))),
        many => Err((
            2,
            format!(
                "segment {segment:?} holds several trace buffers ({}): choose one with --buffer",
                many.join(", ")
            ),
        )),
    }
}
