//! `shmkit view SEGMENT`: serves the segment's live view to a browser (the `shmkit-viewer`
//! crate) until Ctrl+C, SIGTERM or `--duration`.

use shmkit_viewer::{TlsFiles, ViewError, ViewOptions, Viewer};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Arguments of `shmkit view`.
#[derive(clap::Args)]
pub struct View {
    /// The segment's name.
    segment: String,
    /// Where to listen. Beyond loopback it needs --tls-cert and --tls-key, or --insecure.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP beyond loopback: the token and the frames travel in the clear.
    #[arg(long)]
    insecure: bool,
    /// Most frames per second per ring sent to each browser (1 to 120).
    #[arg(long, default_value_t = 30.0, value_name = "FPS")]
    max_fps: f64,
    /// How often the segment's state (tables, histograms, plots) is refreshed.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    refresh_ms: u64,
    /// The histograms' and rates' sliding window.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    window: f64,
    /// Stop after this many seconds (default: until Ctrl+C or SIGTERM).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
}

/// Runs `shmkit view`.
pub fn run(args: View) -> ExitCode {
    let seconds = |s: f64, what: &str| {
        Duration::try_from_secs_f64(s).map_err(|_| format!("--{what} {s} is not a duration"))
    };
    let (window, duration) = match (
        seconds(args.window, "window"),
        args.duration.map(|d| seconds(d, "duration")).transpose(),
    ) {
        (Ok(w), Ok(d)) => (w, d),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("shmkit view: {e}");
            return ExitCode::from(2);
        }
    };
    let options = ViewOptions {
        listen: args.listen,
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| TlsFiles { cert, key }),
        insecure: args.insecure,
        max_fps: args.max_fps,
        refresh: Duration::from_millis(args.refresh_ms),
        window,
        token: None,
    };
    let stop = crate::milk::stop_flag();
    let viewer = match Viewer::start(&args.segment, &options) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("shmkit view: {}", shmkit::error_chain(&e));
            return ExitCode::from(match e {
                ViewError::Exposed { .. } | ViewError::InvalidOption(_) => 2,
                ViewError::Segment { .. } | ViewError::Tls { .. } | ViewError::Io { .. } => 1,
            });
        }
    };
    if !viewer.local_addr().ip().is_loopback() && options.tls.is_none() {
        eprintln!(
            "shmkit view: WARNING (--insecure): {} serves plain HTTP to other machines; the \
             token and the frames travel in the clear",
            viewer.local_addr()
        );
    }
    println!(
        "shmkit view: segment {} at\n  {}",
        args.segment,
        viewer.url()
    );
    println!("(open it in a browser; Ctrl+C stops)");
    let _ = std::io::stdout().flush();
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) && duration.is_none_or(|d| started.elapsed() < d) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(viewer);
    ExitCode::SUCCESS
}
