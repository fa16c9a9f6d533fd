//! A bridge's configuration: endpoints, lease, which rings go out and which come in, with
//! their limits. Read from a JSON file and/or flags; multicast scouting is off unless asked
//! for, so a bridge talks only to the endpoints it is given.

use crate::error::BridgeError;
use crate::keys;
use serde::{Deserialize, Serialize};

/// One ring exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRing {
    /// The local segment.
    pub segment: String,
    /// The ring.
    pub ring: String,
    /// At most this many frames per second (`None`: as they come).
    #[serde(default)]
    pub max_rate: Option<f64>,
    /// Send one frame in this many (1: all).
    #[serde(default = "one")]
    pub decimate: u32,
    /// At most this many payload bytes per second (`None`: no limit).
    #[serde(default)]
    pub max_bytes_per_s: Option<f64>,
}

fn one() -> u32 {
    1
}

fn eight() -> u32 {
    8
}

/// One remote ring imported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRing {
    /// The remote host (as its bridge names itself).
    pub host: String,
    /// The remote segment.
    pub segment: String,
    /// The remote ring.
    pub ring: String,
    /// The local segment (created if missing).
    pub local_segment: String,
    /// The local ring (created from the remote spec).
    pub local_ring: String,
    /// Slots of the local ring.
    #[serde(default = "eight")]
    pub slots: u32,
}

/// One command ring exported: its calls answered to the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportCommands {
    /// The local segment.
    pub segment: String,
    /// The command ring.
    pub ring: String,
    /// Calls run at once (default 4).
    #[serde(default = "four")]
    pub workers: u32,
}

/// One remote command ring imported as a local ring whose server forwards every call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportCommands {
    /// The remote host (as its bridge names itself).
    pub host: String,
    /// The remote segment.
    pub segment: String,
    /// The remote command ring.
    pub ring: String,
    /// The local segment (created if missing).
    pub local_segment: String,
    /// The local command ring (created from the remote spec).
    pub local_ring: String,
    /// Calls forwarded at once (default 4).
    #[serde(default = "four")]
    pub workers: u32,
}

fn four() -> u32 {
    4
}

/// A bridge's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// This bridge's host name in keys (default: the machine's).
    #[serde(default = "keys::local_host")]
    pub host: String,
    /// Endpoints to listen on (`tcp/127.0.0.1:7447`, `unixsock-stream//tmp/zb.sock`).
    #[serde(default)]
    pub listen: Vec<String>,
    /// Endpoints to connect to.
    #[serde(default)]
    pub connect: Vec<String>,
    /// Link lease in milliseconds: a peer silent this long is gone (default 2000).
    #[serde(default = "default_lease")]
    pub lease_ms: u64,
    /// Multicast scouting (default off: explicit endpoints only).
    #[serde(default)]
    pub multicast: bool,
    /// Rings to export.
    #[serde(default)]
    pub export: Vec<ExportRing>,
    /// Rings to import.
    #[serde(default)]
    pub import: Vec<ImportRing>,
    /// Command rings to export.
    #[serde(default)]
    pub export_commands: Vec<ExportCommands>,
    /// Command rings to import.
    #[serde(default)]
    pub import_commands: Vec<ImportCommands>,
}

fn default_lease() -> u64 {
    2000
}

impl Default for BridgeConfig {
    fn default() -> BridgeConfig {
        BridgeConfig {
            host: keys::local_host(),
            listen: Vec::new(),
            connect: Vec::new(),
            lease_ms: default_lease(),
            multicast: false,
            export: Vec::new(),
            import: Vec::new(),
            export_commands: Vec::new(),
            import_commands: Vec::new(),
        }
    }
}

impl BridgeConfig {
    /// Reads a JSON configuration file.
    pub fn from_file(path: &std::path::Path) -> Result<BridgeConfig, BridgeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BridgeError::Config(format!("{}: {e}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| BridgeError::Config(format!("{}: {e}", path.display())))
    }

    /// Checks names, limits and the lease.
    pub fn check(&self) -> Result<(), BridgeError> {
        keys::check("host", &self.host)?;
        if !(100..=600_000).contains(&self.lease_ms) {
            return Err(BridgeError::Config(format!(
                "lease {} ms: between 100 ms and 10 min",
                self.lease_ms
            )));
        }
        for e in &self.export {
            keys::RingKey::new(&self.host, &e.segment, &e.ring)?;
            let positive = |v: Option<f64>| v.is_none_or(|v| v.is_finite() && v > 0.0);
            if !positive(e.max_rate) || !positive(e.max_bytes_per_s) || e.decimate == 0 {
                return Err(BridgeError::Config(format!(
                    "export {}/{}: rates must be > 0 and decimate ≥ 1",
                    e.segment, e.ring
                )));
            }
        }
        for i in &self.import {
            keys::RingKey::new(&i.host, &i.segment, &i.ring)?;
        }
        let workers = |what: &str, segment: &str, ring: &str, n: u32| {
            if (1..=64).contains(&n) {
                Ok(())
            } else {
                Err(BridgeError::Config(format!(
                    "{what} {segment}/{ring}: workers {n}, between 1 and 64"
                )))
            }
        };
        for e in &self.export_commands {
            keys::RingKey::new(&self.host, &e.segment, &e.ring)?;
            workers("command export", &e.segment, &e.ring, e.workers)?;
        }
        for i in &self.import_commands {
            keys::RingKey::new(&i.host, &i.segment, &i.ring)?;
            workers("command import", &i.segment, &i.ring, i.workers)?;
        }
        Ok(())
    }

    /// The Zenoh configuration: peer mode, these endpoints, the lease, scouting as asked.
    pub fn zenoh(&self) -> Result<zenoh::Config, BridgeError> {
        let mut c = zenoh::Config::default();
        let mut set = |key: &str, value: String| {
            c.insert_json5(key, &value)
                .map_err(|e| BridgeError::Config(format!("{key} = {value}: {e}")))
        };
        let list = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        set("mode", "\"peer\"".into())?;
        set("listen/endpoints", list(&self.listen))?;
        set("connect/endpoints", list(&self.connect))?;
        set("scouting/multicast/enabled", self.multicast.to_string())?;
        set("transport/link/tx/lease", self.lease_ms.to_string())?;
        set("transport/link/tx/keep_alive", "4".into())?;
        // Keep retrying a connect endpoint whose bridge is not up yet (started in any order).
        set("connect/timeout_ms", "-1".into())?;
        set("connect/exit_on_failure", "false".into())?;
        Ok(c)
    }
}
