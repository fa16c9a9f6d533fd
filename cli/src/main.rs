//! `shmkit`: list, inspect, watch and clean shmkit segments; bridge frame rings to
//! ImageStreamIO streams (`shmkit milk`, in `milk.rs`); record and replay rings (`record.rs`);
//! capture traces (`trace.rs`); serve a live view to a browser (`view.rs`).
//!
//! The segment subcommands (`ls`, `inspect`, `watch`, `clean`) read segments from a copy of
//! their bytes ([`shmkit::inspect`]): they never map a segment and never change one, except
//! `clean`, which removes stale ones; `milk`, `record`, `replay`, `trace` and `view` are
//! long-running tools that open a segment like any shmkit process (`view` as a reader of the
//! rings a browser watches). Exit codes: 0 success, 1 the segment is missing, unreadable or not shmkit's, 2 bad
//! usage, 3 the segment is corrupt.

mod milk;
mod record;
mod trace;
mod view;

use clap::{Parser, Subcommand};
use shmkit::inspect::{self, InspectError, Inspection, ObjectState};
use shmkit::HistogramSnapshot;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "shmkit",
    version,
    about = "Inspect and clean shmkit shared-memory segments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every shmkit segment: name, size, creator pid, alive or stale, age.
    Ls {
        /// Print JSON (an array of listings; schema in cli/SCHEMA.md).
        #[arg(long)]
        json: bool,
    },
    /// Show a segment's header and every named object's state.
    Inspect {
        /// The segment's name (as given to Segment::create).
        name: String,
        /// Print JSON (schema in cli/SCHEMA.md).
        #[arg(long)]
        json: bool,
    },
    /// Show `inspect` refreshed live, with frame and call rates; q or Ctrl+C quits.
    Watch {
        /// The segment's name.
        name: String,
        /// Refresh period in milliseconds.
        #[arg(long, default_value_t = 500)]
        interval_ms: u64,
        /// Quit after this many refreshes (default: until q or Ctrl+C).
        #[arg(long)]
        count: Option<u64>,
        /// Print one JSON object per refresh, one per line, for scripts: `window_s` (time
        /// since the previous refresh, null for the first), `rates` (frames or calls per
        /// second over that window, by object name), `histogram_windows` (each histogram's
        /// samples over that window: `count`, `p50`, `p99`, `p999` in its unit, ns for
        /// shmkit's; none across a reset) and `inspection` (as `inspect --json`).
        #[arg(long)]
        json: bool,
    },
    /// Remove segments whose creator is dead and that no live process maps. Never a live
    /// segment, never another user's.
    Clean {
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON (an array of actions).
        #[arg(long)]
        json: bool,
    },
    /// ImageStreamIO (milk / cacao) streams: export a ring, import a stream, list streams.
    Milk {
        #[command(subcommand)]
        command: milk::Milk,
    },
    /// Record frame rings into FITS files (a cube and a metadata table per file) until Ctrl+C,
    /// SIGTERM or --duration; every frame is accounted for. --repair DIR completes a session
    /// whose recorder was killed.
    Record(record::Record),
    /// Publish a recorded session again into rings of the same names and specs, with its
    /// user words, at the original pace (--speed for faster or slower, --as-fast for none).
    Replay(record::Replay),
    /// Follow a segment's trace buffer for --duration seconds and write the Chrome
    /// trace-event format (JSON) that Perfetto and chrome://tracing open.
    Trace(trace::Trace),
    /// Serve a live view of a segment to a browser: frame rings as images and plots, the
    /// mirror's map, histograms, rates, alarms, the testbed's and devices' state. Prints the
    /// URL (loopback, with a random token); Ctrl+C stops.
    View(view::View),
}

const EXIT_MISSING: u8 = 1;
const EXIT_CORRUPT: u8 = 3;

fn error_code(e: &InspectError) -> ExitCode {
    match e {
        InspectError::Corrupt { .. } | InspectError::NotAFile { .. } => {
            ExitCode::from(EXIT_CORRUPT)
        }
        _ => ExitCode::from(EXIT_MISSING),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Ls { json } => ls(json),
        Command::Inspect { name, json } => match inspect::inspect(&name) {
            Ok(i) => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&i).unwrap_or_default());
                } else {
                    print!("{}", render(&i, None, None));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("shmkit inspect: {}", shmkit::error_chain(&e));
                error_code(&e)
            }
        },
        Command::Watch {
            name,
            interval_ms,
            count,
            json,
        } => watch(
            &name,
            Duration::from_millis(interval_ms.max(50)),
            count,
            json,
        ),
        Command::Milk { command } => milk::run(command),
        Command::Record(args) => record::run(args),
        Command::Replay(args) => record::replay(args),
        Command::Trace(args) => trace::run(args),
        Command::View(args) => view::run(args),
        Command::Clean { dry_run, json } => {
            let actions = inspect::clean(dry_run);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&actions).unwrap_or_default()
                );
            } else {
                for a in &actions {
                    let verb = match (a.removed, dry_run) {
                        (true, true) => "would remove",
                        (true, false) => "removed",
                        (false, _) => "kept",
                    };
                    println!("{verb:<12} {:<40} {}", a.name, a.reason);
                }
                if actions.is_empty() {
                    println!("no shmkit segments");
                }
            }
            ExitCode::SUCCESS
        }
    }
}

fn ls(json: bool) -> ExitCode {
    let listings = inspect::list();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&listings).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<40} {:>10} {:>8} {:<12} {:>10}  NOTE",
        "NAME", "SIZE", "CREATOR", "STATUS", "AGE"
    );
    for l in &listings {
        let note = match (&l.error, l.mapped_by.is_empty()) {
            (Some(e), _) => e.clone(),
            (None, false) => format!("mapped by {:?}", l.mapped_by),
            (None, true) => String::new(),
        };
        println!(
            "{:<40} {:>10} {:>8} {:<12} {:>10}  {}",
            l.name,
            human_bytes(l.size),
            l.creator_pid.map_or("-".into(), |p| p.to_string()),
            l.status,
            l.age_s.map_or("-".into(), human_age),
            note
        );
    }
    ExitCode::SUCCESS
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn human_age(s: f64) -> String {
    match s {
        s if s >= 86400.0 => format!("{:.1} d", s / 86400.0),
        s if s >= 3600.0 => format!("{:.1} h", s / 3600.0),
        s if s >= 60.0 => format!("{:.1} min", s / 60.0),
        s => format!("{s:.1} s"),
    }
}

fn alive(a: Option<bool>) -> &'static str {
    match a {
        Some(true) => "alive",
        Some(false) => "DEAD",
        None => "-",
    }
}

/// Rates between two inspections: (frames/s per ring, calls/s per command ring).
type Rates = HashMap<String, f64>;

/// Each histogram's samples between the previous refresh and this one, and how long that was.
type Windows = (f64, HashMap<String, HistogramSnapshot>);

fn render(i: &Inspection, rates: Option<&Rates>, windows: Option<&Windows>) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "segment {}  {}  layout {} ({})  creator pid {} {}",
        i.name,
        human_bytes(i.size),
        i.version,
        i.layout_hash,
        i.creator_pid,
        if i.creator_alive { "alive" } else { "DEAD" }
    ));
    line(format!(
        "allocated {} in {} blocks; {} named objects (table of {}); exception slots {} in use, {} reported, of {}",
        human_bytes(i.allocated),
        i.blocks,
        i.objects.len(),
        i.table_capacity,
        i.exception_slots.in_use,
        i.exception_slots.reported,
        i.exception_slots.total
    ));
    for o in &i.objects {
        let rate = rates.and_then(|r| r.get(&o.name)).copied();
        let (kind, mut state) = describe(&o.state, rate);
        if let Some((seconds, w)) = windows.and_then(|(s, w)| w.get(&o.name).map(|w| (s, w))) {
            state.push_str(
                &match (w.quantile(0.5), w.quantile(0.99), w.quantile(0.999)) {
                    (Some(p50), Some(p99), Some(p999)) => format!(
                        "; last {seconds:.1} s: {} samples, p50 {} p99 {} p99.9 {}",
                        w.count(),
                        ns(p50),
                        ns(p99),
                        ns(p999)
                    ),
                    _ => format!("; last {seconds:.1} s: no samples"),
                },
            );
        }
        line(format!("  {kind:<12} {:<36} {state}", o.name));
    }
    if !i.devices.is_empty() {
        line("devices:".into());
        for d in &i.devices {
            line(format!(
                "  {:<16} {:<13} pid {:<8} starts {:<3} heartbeat {}{}",
                d.name,
                d.state,
                d.pid.map_or("-".into(), |p| p.to_string()),
                d.starts,
                d.heartbeat_age_s
                    .map_or("-".into(), |a| format!("{:.0} ms ago", a * 1000.0)),
                if d.message.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", d.message)
                }
            ));
        }
    }
    if !i.links.is_empty() {
        line("links (imported by a bridge):".into());
        for l in &i.links {
            line(format!(
                "  {:<16} {:<11} {:<4} last {} received {} gaps {} skipped {} rejected {} errors {} downs {}",
                l.ring,
                l.kind,
                if l.up { "up" } else { "DOWN" },
                l.last_rx_age_s
                    .map_or("never".into(), |a| format!("{:.0} ms ago", a * 1000.0)),
                l.received,
                l.gaps,
                l.remote_skipped,
                l.rejected,
                l.remote_errors,
                l.downs
            ));
        }
    }
    out
}

fn describe(state: &ObjectState, rate: Option<f64>) -> (&'static str, String) {
    match state {
        ObjectState::Mutex {
            owner_pid,
            owner_tid,
            owner_alive,
            depth,
            owner_died_pending,
            not_recoverable,
            waiters,
            ..
        } => (
            "mutex",
            match owner_pid {
                None if *not_recoverable => "free, NOT RECOVERABLE".into(),
                None => "free".into(),
                Some(pid) => format!(
                    "held by pid {pid} tid {} ({}){}{}{}",
                    owner_tid.unwrap_or(0),
                    alive(*owner_alive),
                    if *depth > 0 { format!(", depth {}", depth + 1) } else { String::new() },
                    if *owner_died_pending { ", owner-died pending" } else { "" },
                    if *waiters { ", waiters" } else { "" }
                ),
            },
        ),
        ObjectState::Event { set, waiters } => (
            "event",
            format!("{}{}", if *set { "set" } else { "clear" }, if *waiters { ", waiters" } else { "" }),
        ),
        ObjectState::TraceBuffer {
            events,
            names,
            recorded,
            dropped,
        } => (
            "trace",
            format!("{recorded} events recorded ({dropped} dropped), keeps the newest {events}, {names} names"),
        ),
        ObjectState::Histogram {
            count,
            p50,
            p99,
            p999,
            max,
            ..
        } => (
            "histogram",
            match (p50, p99, p999) {
                (Some(p50), Some(p99), Some(p999)) => format!(
                    "{count} samples: p50 {} p99 {} p99.9 {} max {}",
                    ns(*p50),
                    ns(*p99),
                    ns(*p999),
                    ns(*max)
                ),
                _ => "no samples".to_owned(),
            },
        ),
        ObjectState::Barrier {
            parties,
            arrived,
            generation,
            broken,
        } => (
            "barrier",
            format!(
                "{arrived}/{parties} arrived, generation {generation}{}",
                if *broken { ", BROKEN" } else { "" }
            ),
        ),
        ObjectState::Shared {
            type_name,
            size,
            locked_by,
            value,
        } => (
            "shared",
            format!(
                "{type_name} ({size} B){}{}",
                value.map_or(String::new(), |v| format!(" = {v}")),
                locked_by.map_or(String::new(), |p| format!(", locked by pid {p}"))
            ),
        ),
        ObjectState::Dict {
            entries,
            max_entries,
            bytes_used,
            bytes_capacity,
            locked_by,
        } => (
            "dict",
            format!(
                "{entries}/{max_entries} keys, {}/{} data{}",
                human_bytes(*bytes_used),
                human_bytes(*bytes_capacity),
                locked_by.map_or(String::new(), |p| format!(", locked by pid {p}"))
            ),
        ),
        ObjectState::FrameRing {
            writer_pid,
            writer_alive,
            frames_written,
            last_id,
            rate_hz,
            jitter_us,
            age_ms,
            overruns,
            reader_lag,
            slots,
            format,
            readers,
            held_slots,
            ..
        } => (
            "frame ring",
            format!(
                "{format}, {slots} slots; {frames_written} frames (last {last_id}{}), {:.1} Hz, jitter {jitter_us:.1} µs; writer {} ({}); readers {readers:?}, {overruns} missed; {held_slots} held{}",
                age_ms.map_or(String::new(), |a| format!(", {a:.1} ms ago")),
                rate.unwrap_or(*rate_hz),
                writer_pid.map_or("-".into(), |p| p.to_string()),
                alive(*writer_alive),
                reader_lag.map_or(String::new(), |l| format!(", the oldest {l} frames behind"))
            ),
        ),
        ObjectState::CommandRing {
            server_pid,
            server_alive,
            slots,
            queued,
            in_use,
            calls,
        } => (
            "command ring",
            format!(
                "server {} ({}); {calls} calls{}; {queued} queued, {in_use}/{slots} slots in use",
                server_pid.map_or("-".into(), |p| p.to_string()),
                alive(*server_alive),
                rate.map_or(String::new(), |r| format!(" ({r:.0}/s)"))
            ),
        ),
        ObjectState::Corrupt {
            recorded_kind,
            detail,
        } => ("CORRUPT", format!("kind {recorded_kind}: {detail}")),
    }
}

/// Where `watch` reads its quit key from.
enum Keys {
    /// A terminal, in crossterm's raw mode (restored on drop): `q`, `Q` or Ctrl+C quit.
    Terminal,
    /// A pipe or file: a `q` read from it quits; end of input stops reading.
    Stream { open: bool },
}

impl Keys {
    fn new() -> Keys {
        if std::io::stdin().is_terminal() && crossterm::terminal::enable_raw_mode().is_ok() {
            Keys::Terminal
        } else {
            Keys::Stream { open: true }
        }
    }

    /// Waits up to `period` for a quit key (or `quit` being set by a signal).
    fn wait_for_quit(&mut self, period: Duration, quit: &AtomicBool) -> bool {
        let deadline = Instant::now() + period;
        loop {
            if quit.load(Ordering::Relaxed) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let slice = left.min(Duration::from_millis(50));
            match self {
                Keys::Terminal => {
                    use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
                    if !event::poll(slice).unwrap_or(false) {
                        continue;
                    }
                    if let Ok(Event::Key(k)) = event::read() {
                        let ctrl_c = k.code == KeyCode::Char('c')
                            && k.modifiers.contains(KeyModifiers::CONTROL);
                        if k.kind == KeyEventKind::Press
                            && (ctrl_c || matches!(k.code, KeyCode::Char('q' | 'Q')))
                        {
                            return true;
                        }
                    }
                }
                Keys::Stream { open: false } => std::thread::sleep(slice),
                Keys::Stream { open } => {
                    use rustix::event::{poll, PollFd, PollFlags, Timespec};
                    let stdin = std::io::stdin();
                    let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
                    let timeout = Timespec {
                        tv_sec: 0,
                        tv_nsec: slice.as_nanos() as _,
                    };
                    if poll(&mut fds, Some(&timeout)).unwrap_or(0) == 0 {
                        continue;
                    }
                    let mut byte = [0u8; 1];
                    match rustix::io::read(&stdin, &mut byte) {
                        Ok(1) if matches!(byte[0], b'q' | b'Q') => return true,
                        Ok(1) => {}
                        _ => *open = false,
                    }
                }
            }
        }
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        if let Keys::Terminal = self {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
}

fn watch(name: &str, period: Duration, count: Option<u64>, json: bool) -> ExitCode {
    let quit = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(signal, Arc::clone(&quit));
    }
    // JSON lines go to a script: no raw terminal, no quit key read from its stdin.
    let mut keys = if json {
        Keys::Stream { open: false }
    } else {
        Keys::new()
    };
    let mut watcher = inspect::Watcher::new(name, Duration::ZERO);
    let mut shown = 0u64;
    let stdout = std::io::stdout();
    loop {
        let refresh = match watcher.refresh() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("shmkit watch: {}", shmkit::error_chain(&e));
                return error_code(&e);
            }
        };
        let inspection = &refresh.inspection;
        let rates = refresh.rates.as_ref();
        let windows: Option<Windows> = refresh
            .window_s
            .map(|s| (s, refresh.histogram_windows.clone()));
        if json {
            let window_quantiles: HashMap<&String, serde_json::Value> = refresh
                .histogram_windows
                .iter()
                .map(|(name, w)| {
                    let q = |q: f64| w.quantile(q);
                    let value = serde_json::json!({
                        "count": w.count(), "p50": q(0.5), "p99": q(0.99), "p999": q(0.999),
                    });
                    (name, value)
                })
                .collect();
            let line = serde_json::json!({
                "window_s": refresh.window_s,
                "histogram_windows": window_quantiles,
                "rates": rates,
                "inspection": inspection,
            });
            let mut out = stdout.lock();
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                // The reader went away (a closed pipe): nothing left to watch for.
                return ExitCode::SUCCESS;
            }
        } else {
            let mut out = stdout.lock();
            let _ = crossterm::queue!(
                out,
                crossterm::terminal::Clear(crossterm::terminal::ClearType::All),
                crossterm::cursor::MoveTo(0, 0)
            );
            // In raw mode a newline does not return the carriage: write both.
            let text = format!(
                "{}\n(refreshing every {} ms; q or Ctrl+C quits)\n",
                render(inspection, rates, windows.as_ref()),
                period.as_millis()
            );
            let text = match keys {
                Keys::Terminal => text.replace('\n', "\r\n"),
                Keys::Stream { .. } => text,
            };
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
        shown += 1;
        if count.is_some_and(|c| shown >= c) || keys.wait_for_quit(period, &quit) {
            return ExitCode::SUCCESS;
        }
    }
}

/// A nanosecond count as people read it (`850 ns`, `12.3 µs`, `4.05 ms`, `1.20 s`).
fn ns(v: u64) -> String {
    let v = v as f64;
    if v < 1e3 {
        format!("{v:.0} ns")
    } else if v < 1e6 {
        format!("{:.1} µs", v / 1e3)
    } else if v < 1e9 {
        format!("{:.2} ms", v / 1e6)
    } else {
        format!("{:.2} s", v / 1e9)
    }
}
