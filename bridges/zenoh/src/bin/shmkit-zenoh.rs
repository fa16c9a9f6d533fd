//! `shmkit-zenoh`: a bridge process. Exports local frame and command rings and imports remote
//! ones as its configuration (a JSON file, and/or flags) says, until SIGINT or SIGTERM.
//!
//! Exit codes: 0 stopped cleanly, 1 the bridge failed (a ring missing, a spec mismatch, …),
//! 2 bad usage or configuration.
#![forbid(unsafe_code)]

use clap::Parser;
use shmkit_zenoh::{
    Bridge, BridgeConfig, BridgeError, ExportCommands, ExportRing, ImportCommands, ImportRing,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "shmkit-zenoh",
    version,
    about = "Bridge shmkit frame and command rings over Zenoh"
)]
struct Cli {
    /// A JSON configuration file (flags add to it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// This bridge's host name in keys (default: the machine's).
    #[arg(long)]
    host: Option<String>,
    /// An endpoint to listen on (repeatable): tcp/127.0.0.1:7447, unixsock-stream//tmp/b.sock.
    #[arg(long)]
    listen: Vec<String>,
    /// An endpoint to connect to (repeatable).
    #[arg(long)]
    connect: Vec<String>,
    /// Link lease in milliseconds.
    #[arg(long)]
    lease_ms: Option<u64>,
    /// Export SEGMENT/RING[@NAME,…] (repeatable; no limits: use the file for those). `@NAME,…`
    /// names the peers (certificate common names or user names) allowed to receive it.
    #[arg(long)]
    export: Vec<String>,
    /// Import HOST/SEGMENT/RING=LOCAL_SEGMENT/LOCAL_RING[@PEER] (repeatable). `@PEER`: take
    /// it only from the peer with that certificate common name or user name.
    #[arg(long)]
    import: Vec<String>,
    /// Export the command ring SEGMENT/RING[@NAME,…] (repeatable; `@` as for --export).
    #[arg(long)]
    export_cmd: Vec<String>,
    /// Import the command ring HOST/SEGMENT/RING=LOCAL_SEGMENT/LOCAL_RING[@PEER] (repeatable).
    #[arg(long)]
    import_cmd: Vec<String>,
    /// A standard Zenoh configuration file (JSON5) applied under these settings: TLS and
    /// mutual TLS certificates, user/password, access control.
    #[arg(long)]
    zenoh_config: Option<PathBuf>,
    /// Listen where any peer may connect without authentication (TCP, loopback included):
    /// refused without this flag, which prints what it exposes.
    #[arg(long)]
    insecure: bool,
    /// The largest message a peer may send, in bytes (default 64 MiB).
    #[arg(long)]
    max_message_bytes: Option<u64>,
    /// Print the links' status every this many milliseconds (0: never).
    #[arg(long, default_value_t = 0)]
    status_ms: u64,
}

/// `WHAT@A,B` as `WHAT` and the names after `@` (none without one).
fn split_names(s: &str) -> (&str, Vec<String>) {
    match s.split_once('@') {
        Some((what, names)) => (
            what,
            names
                .split(',')
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        None => (s, Vec::new()),
    }
}

fn parse_export(s: &str) -> Result<ExportRing, BridgeError> {
    let (s, allow) = split_names(s);
    let (segment, ring) = s
        .split_once('/')
        .ok_or_else(|| BridgeError::Config(format!("--export {s}: SEGMENT/RING[@NAME,…]")))?;
    Ok(ExportRing {
        segment: segment.into(),
        ring: ring.into(),
        max_rate: None,
        decimate: 1,
        max_bytes_per_s: None,
        low_latency: false,
        allow,
    })
}

/// `HOST/SEGMENT/RING=LOCAL_SEGMENT/LOCAL_RING[@PEER]` as its five names and the peer.
type ImportNames = (String, String, String, String, String, Option<String>);

fn parse_import_names(flag: &str, s: &str) -> Result<ImportNames, BridgeError> {
    let (s, peers) = split_names(s);
    if peers.len() > 1 {
        return Err(BridgeError::Config(format!("{flag} {s}: one @PEER")));
    }
    let bad = || {
        BridgeError::Config(format!(
            "{flag} {s}: HOST/SEGMENT/RING=LOCAL_SEGMENT/LOCAL_RING"
        ))
    };
    let (remote, local) = s.split_once('=').ok_or_else(bad)?;
    let mut r = remote.splitn(3, '/');
    let (Some(host), Some(segment), Some(ring)) = (r.next(), r.next(), r.next()) else {
        return Err(bad());
    };
    let (local_segment, local_ring) = local.split_once('/').ok_or_else(bad)?;
    Ok((
        host.into(),
        segment.into(),
        ring.into(),
        local_segment.into(),
        local_ring.into(),
        peers.into_iter().next(),
    ))
}

fn parse_import(s: &str) -> Result<ImportRing, BridgeError> {
    let (host, segment, ring, local_segment, local_ring, peer) = parse_import_names("--import", s)?;
    Ok(ImportRing {
        host,
        segment,
        ring,
        local_segment,
        local_ring,
        slots: 8,
        peer,
    })
}

fn parse_import_cmd(s: &str) -> Result<ImportCommands, BridgeError> {
    let (host, segment, ring, local_segment, local_ring, peer) =
        parse_import_names("--import-cmd", s)?;
    Ok(ImportCommands {
        host,
        segment,
        ring,
        local_segment,
        local_ring,
        workers: 4,
        peer,
    })
}

fn config(cli: &Cli) -> Result<BridgeConfig, BridgeError> {
    let mut c = match &cli.config {
        Some(path) => BridgeConfig::from_file(path)?,
        None => BridgeConfig::default(),
    };
    if let Some(h) = &cli.host {
        c.host = h.clone();
    }
    c.listen.extend(cli.listen.iter().cloned());
    c.connect.extend(cli.connect.iter().cloned());
    if let Some(l) = cli.lease_ms {
        c.lease_ms = l;
    }
    if let Some(path) = &cli.zenoh_config {
        c.zenoh_config = Some(path.display().to_string());
    }
    c.insecure |= cli.insecure;
    if let Some(m) = cli.max_message_bytes {
        c.max_message_bytes = m;
    }
    for e in &cli.export {
        c.export.push(parse_export(e)?);
    }
    for i in &cli.import {
        c.import.push(parse_import(i)?);
    }
    for e in &cli.export_cmd {
        let ExportRing {
            segment,
            ring,
            allow,
            ..
        } = parse_export(e)?;
        c.export_commands.push(ExportCommands {
            segment,
            ring,
            workers: 4,
            max_call_ms: shmkit_zenoh::config::default_max_call_ms(),
            allow,
        });
    }
    for i in &cli.import_cmd {
        c.import_commands.push(parse_import_cmd(i)?);
    }
    c.check()?;
    Ok(c)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shmkit-zenoh: {e}");
            return ExitCode::from(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(signal, Arc::clone(&stop));
    }
    let bridge = match Bridge::start(config) {
        Ok(b) => b,
        Err(e @ BridgeError::Exposed { .. }) => {
            eprintln!("shmkit-zenoh: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("shmkit-zenoh: {e}");
            return ExitCode::from(1);
        }
    };
    println!(
        "bridge {} up: {} exports, {} imports, {} command exports, {} command imports",
        bridge.config.host,
        bridge.exports.len(),
        bridge.imports.len(),
        bridge.command_exports.len(),
        bridge.command_imports.len()
    );
    let period = Duration::from_millis(cli.status_ms);
    let mut waited = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        waited += Duration::from_millis(50);
        if cli.status_ms > 0 && waited >= period {
            waited = Duration::ZERO;
            for i in &bridge.imports {
                println!("{}: {:?}", i.key.frames(), i.link());
            }
            for i in &bridge.command_imports {
                println!("{}: {:?}", i.key.command(), i.link());
            }
        }
    }
    for e in &bridge.exports {
        println!(
            "{}: sent {}, skipped {}",
            e.key.frames(),
            e.counters.sent.load(Ordering::Relaxed),
            e.counters.skipped.load(Ordering::Relaxed)
        );
    }
    for i in &bridge.imports {
        println!("{}: {:?}", i.key.frames(), i.link());
    }
    for e in &bridge.command_exports {
        println!(
            "{}: replied {}, failed {}, busy {}",
            e.key.command(),
            e.counters.replied.load(Ordering::Relaxed),
            e.counters.failed.load(Ordering::Relaxed),
            e.counters.busy.load(Ordering::Relaxed)
        );
    }
    for i in &bridge.command_imports {
        println!("{}: {:?}", i.key.command(), i.link());
    }
    match bridge.stop() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmkit-zenoh: {e}");
            ExitCode::from(1)
        }
    }
}
