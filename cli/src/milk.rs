//! `shmkit milk`: ImageStreamIO (milk / cacao) streams beside shmkit rings — export a frame
//! ring as a stream, import a stream into a frame ring, list the streams of the directory.
//!
//! Export and import run until SIGINT or SIGTERM and then exit cleanly (an exported stream
//! is removed; an imported ring stays in its segment for its readers), printing what they
//! did. Exit codes: 0 success, 1 a segment, ring or stream is missing or refused, 2 bad
//! usage, 3 a stream or segment is corrupt (or what is at a stream's name is not a stream
//! file: a FIFO, a symbolic link).

use clap::{Args, Subcommand};
use shmkit::rings::FrameRing;
use shmkit::{CreateOptions, Segment, SegmentError, SegmentObjects};
use shmkit_isio::import::segment_size_for;
use shmkit_isio::{
    list, shm_dir, ExportOptions, Exporter, ImportOptions, Importer, IsioError, StreamOptions,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The `milk` subcommands.
#[derive(Subcommand)]
pub enum Milk {
    /// Export a frame ring as a stream: each newest frame written as milk's writer writes it.
    Export {
        /// The segment holding the ring.
        segment: String,
        /// The frame ring.
        ring: String,
        /// The stream's name (default: the ring's).
        #[arg(long)]
        name: Option<String>,
        /// The stream file's permissions, in octal (default 600: private to you; milk's own
        /// tools use 666).
        #[arg(long, default_value = "600", value_parser = parse_mode)]
        mode: u32,
        /// At most this many frames per second (frames in between are skipped).
        #[arg(long)]
        max_rate: Option<f64>,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Import a stream into a frame ring (created with the stream's shape and type; the
    /// segment is created if it does not exist).
    Import {
        /// The stream's name (the file `<dir>/<name>.im.shm`).
        stream: String,
        /// The segment to publish into.
        segment: String,
        /// The frame ring to create or reuse.
        ring: String,
        /// Slots of the ring.
        #[arg(long, default_value_t = 8)]
        slots: u32,
        /// The stream semaphore to prefer (another free one if it is taken).
        #[arg(long, default_value_t = 0)]
        semaphore: u16,
        /// Wait for the stream to appear instead of failing.
        #[arg(long)]
        wait: bool,
        /// Also read a stream file owned by this user id (repeatable). By default only this
        /// user's and root's streams are read: anyone can plant a file in `/tmp`.
        #[arg(long = "trust-owner", value_name = "UID")]
        trust_owner: Vec<u32>,
        #[command(flatten)]
        dir: DirArg,
    },
    /// List the streams of the directory: shape, type, counter and whether their writer lives.
    Ls {
        /// Print JSON (an array of streams).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DirArg,
    },
}

/// Where the streams are.
#[derive(Args)]
pub struct DirArg {
    /// The stream directory (default: $MILK_SHM_DIR, else /milk/shm, else /tmp).
    #[arg(long)]
    dir: Option<PathBuf>,
}

impl DirArg {
    fn get(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(shm_dir)
    }
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let mode = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("{s:?} is not an octal mode such as 600"))?;
    if mode > 0o777 {
        return Err(format!("{s}: permissions are at most 777"));
    }
    Ok(mode)
}

const EXIT_MISSING: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_CORRUPT: u8 = 3;

fn exit_code(e: &IsioError) -> ExitCode {
    ExitCode::from(match e {
        IsioError::Name { .. } | IsioError::Rate { .. } | IsioError::Unexportable { .. } => {
            EXIT_USAGE
        }
        IsioError::TooShort { .. }
        | IsioError::Version { .. }
        | IsioError::Axes { .. }
        | IsioError::Shape { .. }
        | IsioError::UnknownType { .. }
        | IsioError::FileSize { .. }
        | IsioError::NotAFile { .. }
        | IsioError::Semaphore { .. }
        | IsioError::Owner { .. }
        | IsioError::Corrupt(_) => EXIT_CORRUPT,
        IsioError::Segment(SegmentError::Corrupt { .. }) => EXIT_CORRUPT,
        _ => EXIT_MISSING,
    })
}

fn fail(what: &str, e: &IsioError) -> ExitCode {
    eprintln!("shmkit milk {what}: {}", shmkit::error_chain(e));
    exit_code(e)
}

/// A flag SIGINT and SIGTERM set.
pub(crate) fn stop_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(signal, Arc::clone(&stop));
    }
    stop
}

/// Runs a `milk` subcommand.
pub fn run(command: Milk) -> ExitCode {
    match command {
        Milk::Export {
            segment,
            ring,
            name,
            mode,
            max_rate,
            dir,
        } => export(&segment, &ring, name.as_deref(), mode, max_rate, &dir.get()),
        Milk::Import {
            stream,
            segment,
            ring,
            slots,
            semaphore,
            wait,
            trust_owner,
            dir,
        } => import(
            &stream,
            &segment,
            &ring,
            &ImportOptions {
                slots,
                semaphore,
                trusted_owners: trust_owner,
            },
            wait,
            &dir.get(),
        ),
        Milk::Ls { json, dir } => ls(json, &dir.get()),
    }
}

fn export(
    segment: &str,
    ring: &str,
    name: Option<&str>,
    mode: u32,
    max_rate: Option<f64>,
    dir: &Path,
) -> ExitCode {
    let stop = stop_flag();
    let opened = Segment::open(segment)
        .and_then(|seg| seg.open::<FrameRing>(ring))
        .map_err(IsioError::from);
    let ring_handle = match opened {
        Ok(r) => r,
        Err(e) => return fail("export", &e),
    };
    let options = ExportOptions {
        stream: StreamOptions {
            dir: dir.to_owned(),
            mode,
            ..StreamOptions::default()
        },
        max_rate,
    };
    let mut exporter = match Exporter::new(&ring_handle, name.unwrap_or(ring), &options) {
        Ok(x) => x,
        Err(e) => return fail("export", &e),
    };
    println!(
        "exporting {segment}/{ring} ({}) to {}",
        ring_handle.spec(),
        exporter.writer().path().display()
    );
    let result = exporter.run(&|| stop.load(Ordering::Relaxed));
    let path = exporter.writer().path().to_owned();
    drop(exporter);
    match result {
        Ok(s) => {
            println!(
                "stopped: {} frames written, {} skipped, last id {}; removed {}",
                s.written,
                s.skipped,
                s.last_id,
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail("export", &e),
    }
}

fn import(
    stream: &str,
    segment: &str,
    ring: &str,
    options: &ImportOptions,
    wait: bool,
    dir: &Path,
) -> ExitCode {
    let stop = stop_flag();
    let path = match shmkit_isio::dir::stream_path(dir, stream) {
        Ok(p) => p,
        Err(e) => return fail("import", &e),
    };
    if wait && !path.exists() {
        println!("waiting for {}", path.display());
    }
    // With --wait, a stream that is not there yet, or that its writer is still initialising
    // (it writes the version string last, so a half-made file reads as another version or
    // too short), is waited for; without it, those are the errors they are.
    let size = loop {
        match segment_size_for(&path, options.slots) {
            Ok(s) => break s,
            Err(
                IsioError::Version { .. } | IsioError::TooShort { .. } | IsioError::FileSize { .. },
            ) if wait => {}
            Err(IsioError::Io { source, .. })
                if wait && source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return fail("import", &e),
        }
        if stop.load(Ordering::Relaxed) {
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seg = match Segment::open_or_create(segment, &CreateOptions::new(size)) {
        Ok(s) => s,
        Err(e) => return fail("import", &e.into()),
    };
    let mut importer = match Importer::new(&path, &seg, ring, options) {
        Ok(i) => i,
        Err(e) => return fail("import", &e),
    };
    println!(
        "importing {} into {segment}/{ring} ({}), semaphore {}",
        path.display(),
        importer.ring().spec(),
        importer.reader().semaphore()
    );
    match importer.run(&|| stop.load(Ordering::Relaxed)) {
        Ok(s) => {
            println!(
                "stopped: {} frames published, {} torn and {} busy dropped, {} missed, \
                 {} with the ring full, {} re-attachments",
                s.published, s.torn, s.busy, s.missed, s.ring_full, s.reattached
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail("import", &e),
    }
}

fn ls(json: bool, dir: &Path) -> ExitCode {
    let streams = match list(dir) {
        Ok(s) => s,
        Err(e) => return fail("ls", &e),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&streams).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<24} {:<16} {:<8} {:>10} {:<16}  NOTE",
        "NAME", "SHAPE", "TYPE", "CNT0", "WRITER"
    );
    for s in &streams {
        let shape = s
            .shape
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join("x");
        let writers: Vec<String> = s
            .writers
            .iter()
            .map(|&(pid, alive)| format!("{pid} {}", if alive { "alive" } else { "DEAD" }))
            .collect();
        let writer = if writers.is_empty() {
            format!(
                "{} {}",
                s.creator_pid,
                if s.creator_alive { "alive" } else { "DEAD" }
            )
        } else {
            writers.join(", ")
        };
        println!(
            "{:<24} {:<16} {:<8} {:>10} {:<16}  {}",
            s.name,
            shape,
            s.datatype,
            s.cnt0,
            writer,
            s.error.as_deref().unwrap_or("")
        );
    }
    if streams.is_empty() {
        println!("no streams in {}", dir.display());
    }
    ExitCode::SUCCESS
}
