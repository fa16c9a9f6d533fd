//! `shmkit record`: record frame rings into a session directory of FITS files until Ctrl+C,
//! SIGTERM or `--duration`, then print every ring's counts; `--repair DIR` completes a
//! session whose recorder was killed.

use clap::Args;
use shmkit::Segment;
use shmkit_record::{repair, Manifest, RecordOptions, Recorder, Roll};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What `shmkit record` takes.
#[derive(Args)]
pub struct Record {
    /// The segment (omit with --repair).
    #[arg(required_unless_present = "repair")]
    segment: Option<String>,
    /// The frame rings to record.
    #[arg(required_unless_present = "repair")]
    rings: Vec<String>,
    /// The session directory (must not hold a recording yet).
    #[arg(long, required_unless_present = "repair")]
    out: Option<PathBuf>,
    /// Stop after this many seconds (default: Ctrl+C or SIGTERM).
    #[arg(long)]
    duration: Option<f64>,
    /// Start a new file after this many frames.
    #[arg(long)]
    frames_per_file: Option<u64>,
    /// Start a new file after this many bytes of frames.
    #[arg(long)]
    bytes_per_file: Option<u64>,
    /// Start a new file after this many seconds.
    #[arg(long)]
    seconds_per_file: Option<f64>,
    /// Run the recorder at idle priority (SCHED_IDLE): it takes only time the loop leaves
    /// and never preempts it; on a CPU with no idle time left it is lapped, and says how
    /// many frames it missed.
    #[arg(long)]
    idle: bool,
    /// Run the recorder on this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// Memory for frames copied but not yet on disk, per ring, in MiB.
    #[arg(long, default_value_t = 256)]
    buffer_mib: usize,
    /// Complete the session in this directory after its recorder was killed.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["segment", "out", "duration"])]
    repair: Option<PathBuf>,
    /// Print the final manifest as JSON instead of a summary.
    #[arg(long)]
    json: bool,
}

/// Runs `shmkit record`.
pub fn run(args: Record) -> ExitCode {
    if let Some(dir) = &args.repair {
        return match repair(dir) {
            Ok(m) => report(&m, args.json),
            Err(e) => fail(&e),
        };
    }
    let (Some(name), Some(out)) = (&args.segment, &args.out) else {
        eprintln!("shmkit record: a segment, its rings and --out are required");
        return ExitCode::from(2);
    };
    let segment = match Segment::open(name) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let options = RecordOptions {
        roll: Roll {
            frames: args.frames_per_file,
            bytes: args.bytes_per_file,
            seconds: args.seconds_per_file,
        },
        idle: args.idle,
        cpu: args.cpu,
        buffer_bytes: args.buffer_mib.max(1) << 20,
        ..RecordOptions::new(out)
    };
    let stop = crate::milk::stop_flag();
    let rings: Vec<&str> = args.rings.iter().map(String::as_str).collect();
    let recorder = match Recorder::start(&segment, &rings, &options) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    eprintln!(
        "shmkit record: recording {} into {} (Ctrl+C stops)",
        rings.join(", "),
        out.display()
    );
    let until = args
        .duration
        .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    while !stop.load(Ordering::Relaxed) && until.is_none_or(|t| Instant::now() < t) {
        std::thread::sleep(Duration::from_millis(20));
    }
    match recorder.stop() {
        Ok(m) => report(&m, args.json),
        Err(e) => fail(&e),
    }
}

fn report(m: &Manifest, json: bool) -> ExitCode {
    if json {
        println!("{}", serde_json::to_string_pretty(m).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    for r in &m.rings {
        let published = r.published.map_or_else(
            || "unknown (the recorder was killed)".to_owned(),
            |p| p.to_string(),
        );
        println!(
            "{}: published {published}, recorded {}, dropped {}, in {} file(s)",
            r.ring,
            r.recorded,
            r.dropped,
            r.files.len()
        );
    }
    ExitCode::SUCCESS
}

fn fail(e: &(dyn std::error::Error + 'static)) -> ExitCode {
    eprintln!("shmkit record: {}", shmkit::error_chain(e));
    ExitCode::from(1)
}

/// What `shmkit replay` takes.
#[derive(Args)]
pub struct Replay {
    /// The session directory (written by `shmkit record`).
    dir: PathBuf,
    /// The segment to publish into (created if it does not exist).
    #[arg(long)]
    into: String,
    /// Replay this many times faster than recorded (default 1: the original pace).
    #[arg(long, default_value_t = 1.0, conflicts_with = "as_fast")]
    speed: f64,
    /// Publish without waiting between frames.
    #[arg(long)]
    as_fast: bool,
    /// Replay only this ring of the session (repeat for more; default: every ring).
    #[arg(long = "ring", value_name = "NAME")]
    rings: Vec<String>,
    /// Start this many seconds after the first frame of the rings replayed.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    from: f64,
}

/// Runs `shmkit replay`: the session's frames published again, with their user words, until
/// the end or Ctrl+C.
pub fn replay(args: Replay) -> ExitCode {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        eprintln!(
            "shmkit replay: --speed must be a positive number, not {}",
            args.speed
        );
        return ExitCode::from(2);
    }
    if !(args.from.is_finite() && args.from >= 0.0) {
        eprintln!(
            "shmkit replay: --from must be a number of seconds >= 0, not {}",
            args.from
        );
        return ExitCode::from(2);
    }
    let manifest = match Manifest::read(&args.dir) {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    // Room for every ring (slots × frame, twice over) and the segment's own tables.
    let bytes: u64 = manifest
        .rings
        .iter()
        .map(|r| {
            let frame: u64 = r.shape.iter().map(|&d| u64::from(d)).product::<u64>() * 8;
            2 * u64::from(r.slots) * frame
        })
        .sum::<u64>()
        + (4 << 20);
    let segment = match Segment::open_or_create(&args.into, &shmkit::CreateOptions::new(bytes)) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let pace = if args.as_fast {
        shmkit_record::Pace::AsFast
    } else {
        shmkit_record::Pace::Speed(args.speed)
    };
    let options = shmkit_record::ReplayOptions {
        pace,
        rings: args.rings,
        start: if args.from > 0.0 {
            shmkit_record::ReplayStart::After(std::time::Duration::from_secs_f64(args.from))
        } else {
            shmkit_record::ReplayStart::Beginning
        },
    };
    let stop = crate::milk::stop_flag();
    match shmkit_record::replay(&args.dir, &segment, &options, &stop) {
        Ok(done) => {
            for (ring, n) in &done.rings {
                println!("{ring}: published {n} frame(s) into {}", args.into);
            }
            if done.interrupted {
                println!("stopped before the end");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}
