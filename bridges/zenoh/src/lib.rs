//! shmkit-zenoh: frame rings beyond one machine, through Zenoh.
//!
//! A bridge is its own process (the `shmkit-zenoh` binary, or [`Bridge`] in a program of
//! yours): the real-time processes never run an async runtime, they keep reading and writing
//! their rings, and the bridge's plain threads use Zenoh's blocking API. A bridge exports
//! local frame rings ([`frames_out`]: small frames every one, large ones newest-only and paced
//! by the importers' acknowledgements ([`flow`]), limited, dropped rather than blocking under
//! congestion, nothing read without a subscriber) and imports remote ones ([`frames_in`]:
//! into local rings created from the remote `@spec`, every sample checked). It exports
//! command rings as queryables served by a worker pool ([`cmd_out`]) and imports remote ones
//! as local command rings whose server forwards each call with its deadline ([`cmd_in`];
//! the wire format, the typed errors and the at-most-once guarantee are in [`cmd_wire`]).
//! Each bridge holds a liveliness token, so the far side sees it go within the lease
//! ([`liveness`]). Keys are in [`keys`], the frame header in [`header`].
#![forbid(unsafe_code)]

pub mod access;
pub mod cmd_in;
pub mod cmd_out;
pub mod cmd_wire;
pub mod config;
pub mod error;
pub mod exposure;
pub mod flow;
pub mod frames_in;
pub mod frames_out;
pub mod header;
pub mod keys;
pub mod liveness;
pub mod local;
pub mod spec;
pub mod status;

pub use cmd_wire::RemoteError;
pub use config::{BridgeConfig, ExportCommands, ExportRing, ImportCommands, ImportRing};
pub use error::BridgeError;
pub use status::LinkStatus;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use zenoh::Wait;

/// A running bridge: a Zenoh session, its liveliness token, its exports and imports.
pub struct Bridge {
    /// The configuration it runs.
    pub config: BridgeConfig,
    /// Exports, in configuration order.
    pub exports: Vec<frames_out::FrameExport>,
    /// Imports, in configuration order.
    pub imports: Vec<frames_in::FrameImport>,
    /// Command exports, in configuration order.
    pub command_exports: Vec<cmd_out::CommandExport>,
    /// Command imports, in configuration order.
    pub command_imports: Vec<cmd_in::CommandImport>,
    stop: Arc<AtomicBool>,
    _token: zenoh::liveliness::LivelinessToken,
    session: zenoh::Session,
}

impl Bridge {
    /// Opens the session and starts every export (frames, then commands), then every import.
    pub fn start(config: BridgeConfig) -> Result<Bridge, BridgeError> {
        config.check()?;
        let zenoh_config = config.zenoh()?;
        let listeners = exposure::listeners(&zenoh_config)?;
        for warning in exposure::check(&listeners, config.insecure, &config.exposed())? {
            eprintln!("shmkit-zenoh: {warning}");
        }
        let session = zenoh::open(zenoh_config)
            .wait()
            .map_err(BridgeError::zenoh)?;
        exposure::make_sockets_private(&listeners)?;
        let id = session.zid().to_string();
        let token = session
            .liveliness()
            .declare_token(keys::bridge_token(&config.host, &id)?)
            .wait()
            .map_err(BridgeError::zenoh)?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut exports = Vec::new();
        for e in &config.export {
            exports.push(frames_out::FrameExport::start(
                &session,
                &config.host,
                e,
                Arc::clone(&stop),
            )?);
        }
        let mut command_exports = Vec::new();
        for e in &config.export_commands {
            command_exports.push(cmd_out::CommandExport::start(
                &session,
                &config.host,
                e,
                Arc::clone(&stop),
            )?);
        }
        let mut imports = Vec::new();
        for i in &config.import {
            imports.push(frames_in::FrameImport::start(
                &session,
                i,
                config.max_message_bytes.saturating_sub(header::SIZE as u64),
            )?);
        }
        let mut command_imports = Vec::new();
        for i in &config.import_commands {
            command_imports.push(cmd_in::CommandImport::start(
                &session,
                i,
                Arc::clone(&stop),
                config.max_message_bytes,
            )?);
        }
        Ok(Bridge {
            config,
            exports,
            imports,
            command_exports,
            command_imports,
            stop,
            _token: token,
            session,
        })
    }

    /// The Zenoh session (for a program that bridges more than rings).
    pub fn session(&self) -> &zenoh::Session {
        &self.session
    }

    /// Stops the export threads and the command workers (calls in flight are answered or
    /// interrupted) and closes the session.
    pub fn stop(self) -> Result<(), BridgeError> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut result = Ok(());
        for e in self.exports {
            if let Err(err) = e.join() {
                result = Err(err);
            }
        }
        for i in self.command_imports {
            i.join();
        }
        for e in self.command_exports {
            e.join();
        }
        drop(self.imports);
        self.session.close().wait().map_err(BridgeError::zenoh)?;
        result
    }
}
