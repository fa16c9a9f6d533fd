//! What a caller chooses for a viewer, and the rule for where it may listen.

use crate::ViewError;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// A PEM certificate chain and its private key, for serving over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM), the server's certificate first.
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// How a viewer serves.
#[derive(Debug, Clone)]
pub struct ViewOptions {
    /// Where to listen (default `127.0.0.1:0`: loopback, a free port).
    pub listen: SocketAddr,
    /// Serve HTTPS with this certificate (required beyond loopback unless `insecure`).
    pub tls: Option<TlsFiles>,
    /// Allow plain HTTP beyond loopback (the token and frames travel in the clear).
    pub insecure: bool,
    /// Most frames per second sent to each browser per ring (1..=120; default 30).
    pub max_fps: f64,
    /// How often the segment's state is read and pushed (default 500 ms).
    pub refresh: Duration,
    /// The histograms' and rates' sliding window (default 5 s).
    pub window: Duration,
    /// The access token; `None` (the default) draws a random one.
    pub token: Option<String>,
}

impl Default for ViewOptions {
    fn default() -> ViewOptions {
        ViewOptions {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            tls: None,
            insecure: false,
            max_fps: 30.0,
            refresh: Duration::from_millis(500),
            window: Duration::from_secs(5),
            token: None,
        }
    }
}

impl ViewOptions {
    /// Checks the options: the exposure rule (loopback, or TLS, or `insecure`) and ranges.
    pub(crate) fn check(&self) -> Result<(), ViewError> {
        if !self.listen.ip().is_loopback() && self.tls.is_none() && !self.insecure {
            return Err(ViewError::Exposed { addr: self.listen });
        }
        if !(1.0..=120.0).contains(&self.max_fps) {
            return Err(ViewError::InvalidOption(format!(
                "max_fps {} is not within 1..=120",
                self.max_fps
            )));
        }
        if !(Duration::from_millis(50)..=Duration::from_secs(60)).contains(&self.refresh) {
            return Err(ViewError::InvalidOption(format!(
                "refresh {:?} is not within 50 ms..=60 s",
                self.refresh
            )));
        }
        if self.window < self.refresh || self.window > Duration::from_secs(3600) {
            return Err(ViewError::InvalidOption(format!(
                "window {:?} is not within the refresh period..=1 h",
                self.window
            )));
        }
        if let Some(t) = &self.token {
            if t.len() < 16 || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(ViewError::InvalidOption(
                    "a token is at least 16 ASCII letters or digits".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_loopback_needs_tls_or_insecure() {
        let open = ViewOptions {
            listen: "0.0.0.0:8080".parse().unwrap(),
            ..ViewOptions::default()
        };
        assert!(matches!(open.check(), Err(ViewError::Exposed { .. })));
        let insecure = ViewOptions {
            insecure: true,
            ..open.clone()
        };
        assert!(insecure.check().is_ok());
        let tls = ViewOptions {
            tls: Some(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into(),
            }),
            ..open
        };
        assert!(tls.check().is_ok());
        assert!(ViewOptions::default().check().is_ok());
        let v6 = ViewOptions {
            listen: "[::1]:0".parse().unwrap(),
            ..ViewOptions::default()
        };
        assert!(v6.check().is_ok());
    }

    #[test]
    fn out_of_range_options_are_refused() {
        for o in [
            ViewOptions {
                max_fps: 0.0,
                ..ViewOptions::default()
            },
            ViewOptions {
                max_fps: f64::NAN,
                ..ViewOptions::default()
            },
            ViewOptions {
                refresh: Duration::ZERO,
                ..ViewOptions::default()
            },
            ViewOptions {
                token: Some("short".into()),
                ..ViewOptions::default()
            },
        ] {
            assert!(
                matches!(o.check(), Err(ViewError::InvalidOption(_))),
                "{o:?}"
            );
        }
    }
}
