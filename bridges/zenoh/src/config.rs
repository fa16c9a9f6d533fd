//! A bridge's configuration: endpoints, lease, which rings go out and which come in, with
//! their limits. Read from a JSON file and/or flags, on top of an optional standard Zenoh
//! configuration file (JSON5, as `zenohd` reads it: TLS and mutual TLS, user/password,
//! access control). Multicast scouting is off unless asked for and gossip is always off, so a
//! bridge talks only to the endpoints it is given.

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
    /// Wake the export thread by polling the ring for a while before it sleeps (about
    /// 65 µs of polling per wait, see [`shmkit::WaitStrategy::SpinThenBlock`]) instead of
    /// sleeping at once: small frames then cross with one thread wake-up fewer. Its cost is
    /// CPU: at a steady frame rate faster than that spin, the export thread keeps a core busy.
    #[serde(default)]
    pub low_latency: bool,
    /// Who may receive these frames and read the spec: peers' certificate common names or
    /// user names. Naming anyone, anywhere, turns on the bridge's access control
    /// ([`crate::access`]); then an export that names no one is closed to every peer.
    #[serde(default)]
    pub allow: Vec<String>,
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
    /// The remote bridge's identity (certificate common name or user name): frames, spec and
    /// liveliness for this import are taken from that peer alone ([`crate::access`]).
    #[serde(default)]
    pub peer: Option<String>,
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
    /// The longest a call whose caller gave no deadline may run, in milliseconds (default
    /// 60 000): a peer cannot pin a worker forever.
    #[serde(default = "default_max_call_ms")]
    pub max_call_ms: u64,
    /// Who may call this ring and read its spec (as [`ExportRing::allow`]).
    #[serde(default)]
    pub allow: Vec<String>,
}

/// [`ExportCommands::max_call_ms`]'s default.
pub fn default_max_call_ms() -> u64 {
    60_000
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
    /// The remote bridge's identity (as [`ImportRing::peer`]).
    #[serde(default)]
    pub peer: Option<String>,
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
    /// A standard Zenoh configuration file (JSON5) this bridge's settings are applied over:
    /// where TLS certificates, user/password and access control go.
    #[serde(default)]
    pub zenoh_config: Option<String>,
    /// Listen where any peer may connect without authentication (printing what that
    /// exposes). Off: such a listener is refused ([`crate::exposure`]).
    #[serde(default)]
    pub insecure: bool,
    /// The largest message a peer may send this bridge, in bytes (Zenoh's own default is
    /// 1 GiB); a remote ring whose frames would not fit is refused before anything is made.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: u64,
}

fn default_lease() -> u64 {
    2000
}

fn default_max_message() -> u64 {
    64 << 20
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
            zenoh_config: None,
            insecure: false,
            max_message_bytes: default_max_message(),
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

    /// The exported rings, named for a warning about who can reach them.
    pub fn exposed(&self) -> String {
        let frames = self
            .export
            .iter()
            .map(|e| format!("frames {}/{}", e.segment, e.ring));
        let calls = self
            .export_commands
            .iter()
            .map(|e| format!("command ring {}/{}", e.segment, e.ring));
        let all: Vec<String> = frames.chain(calls).collect();
        if all.is_empty() {
            "nothing exported yet (and can inject into the imports)".into()
        } else {
            all.join(", ")
        }
    }

    /// Checks names, limits and the lease.
    pub fn check(&self) -> Result<(), BridgeError> {
        keys::check("host", &self.host)?;
        if !(4096..=(1 << 32)).contains(&self.max_message_bytes) {
            return Err(BridgeError::Config(format!(
                "max_message_bytes {}: between 4 KiB and 4 GiB",
                self.max_message_bytes
            )));
        }
        if !(100..=600_000).contains(&self.lease_ms) {
            return Err(BridgeError::Config(format!(
                "lease {} ms: between 100 ms and 10 min",
                self.lease_ms
            )));
        }
        let names = self
            .export
            .iter()
            .flat_map(|e| e.allow.iter())
            .chain(self.export_commands.iter().flat_map(|e| e.allow.iter()))
            .chain(self.import.iter().filter_map(|i| i.peer.as_ref()))
            .chain(self.import_commands.iter().filter_map(|i| i.peer.as_ref()));
        for n in names {
            if n.is_empty() || n.len() > 255 || n.chars().any(|c| c.is_control()) {
                return Err(BridgeError::Config(format!(
                    "peer name {n:?}: 1 to 255 characters, no control characters"
                )));
            }
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
            if !(1..=86_400_000).contains(&e.max_call_ms) {
                return Err(BridgeError::Config(format!(
                    "command export {}/{}: max_call_ms {}, between 1 ms and a day",
                    e.segment, e.ring, e.max_call_ms
                )));
            }
        }
        for i in &self.import_commands {
            keys::RingKey::new(&i.host, &i.segment, &i.ring)?;
            workers("command import", &i.segment, &i.ring, i.workers)?;
        }
        Ok(())
    }

    /// The Zenoh configuration: the Zenoh file's (if any), with peer mode, these endpoints
    /// (where any are given), the lease, scouting as asked, gossip off and the message limit
    /// applied over it.
    pub fn zenoh(&self) -> Result<zenoh::Config, BridgeError> {
        let mut c = match &self.zenoh_config {
            Some(path) => zenoh::Config::from_file(path)
                .map_err(|e| BridgeError::Config(format!("{path}: {e}")))?,
            None => zenoh::Config::default(),
        };
        // The bridge's endpoints win; where it names none, the Zenoh file's stand if it set
        // any (Zenoh's own default, a listener on every address, never does).
        let defaults = zenoh::Config::default();
        let from_file: Vec<bool> = ["listen/endpoints", "connect/endpoints"]
            .iter()
            .map(|key| c.get_json(key).ok() != defaults.get_json(key).ok())
            .collect();
        let mut set = |key: &str, value: String| {
            c.insert_json5(key, &value)
                .map_err(|e| BridgeError::Config(format!("{key} = {value}: {e}")))
        };
        let list = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        set("mode", "\"peer\"".into())?;
        for ((key, ours), file_set) in [
            ("listen/endpoints", &self.listen),
            ("connect/endpoints", &self.connect),
        ]
        .into_iter()
        .zip(from_file)
        {
            if !ours.is_empty() || !file_set {
                set(key, list(ours))?;
            }
        }
        set("scouting/multicast/enabled", self.multicast.to_string())?;
        set("scouting/gossip/enabled", "false".into())?;
        set(
            "transport/link/rx/max_message_size",
            self.max_message_bytes.to_string(),
        )?;
        set("transport/link/tx/lease", self.lease_ms.to_string())?;
        set("transport/link/tx/keep_alive", "4".into())?;
        // Keep retrying a connect endpoint whose bridge is not up yet (started in any order).
        set("connect/timeout_ms", "-1".into())?;
        set("connect/exit_on_failure", "false".into())?;
        crate::access::apply(self, &mut c)?;
        Ok(c)
    }
}
