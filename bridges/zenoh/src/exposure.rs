//! Who can reach this bridge. A listener another account can connect to — any TCP address,
//! loopback included, since every local account reaches 127.0.0.1 — is refused unless its
//! peers must authenticate (a `tls/` endpoint with mutual TLS, or a user/password dictionary
//! over TLS), or the bridge runs with `insecure` (which prints what it exposes). A Unix socket
//! is made private by its file's mode (0600), as segments are. The check reads the final
//! Zenoh configuration, so settings from a Zenoh configuration file count.

use crate::error::BridgeError;

/// How one listen endpoint is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listener {
    /// A Unix socket at this path: private once its mode is 0600.
    UnixSocket(String),
    /// A TLS endpoint whose peers must present a certificate or a password.
    Authenticated(String),
    /// Any peer that reaches it may connect.
    Open(String),
}

/// Sorts the listen endpoints of `config` by who can connect.
pub fn listeners(config: &zenoh::Config) -> Result<Vec<Listener>, BridgeError> {
    let endpoints = endpoints(config)?;
    let get = |key: &str| config.get_json(key).unwrap_or_default();
    let mtls = get("transport/link/tls/enable_mtls") == "true";
    let usrpwd = !matches!(
        get("transport/auth/usrpwd/dictionary_file").as_str(),
        "" | "null"
    );
    Ok(endpoints
        .into_iter()
        .map(|e| {
            let (proto, rest) = e.split_once('/').unwrap_or((e.as_str(), ""));
            match proto {
                "unixsock-stream" => {
                    let path = rest.split(['?', '#']).next().unwrap_or(rest).to_owned();
                    Listener::UnixSocket(path)
                }
                "tls" if mtls || usrpwd => Listener::Authenticated(e),
                _ => Listener::Open(e),
            }
        })
        .collect())
}

/// The peer-mode listen endpoints of `config` (a list, or a per-mode map).
fn endpoints(config: &zenoh::Config) -> Result<Vec<String>, BridgeError> {
    let json = config
        .get_json("listen/endpoints")
        .map_err(|e| BridgeError::Config(format!("listen/endpoints: {e}")))?;
    let value: serde_json::Value = serde_json::from_str(&json)
        .map_err(|e| BridgeError::Config(format!("listen/endpoints {json}: {e}")))?;
    let list = match &value {
        serde_json::Value::Object(per_mode) => per_mode.get("peer").cloned().unwrap_or_default(),
        other => other.clone(),
    };
    Ok(match list {
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    })
}

/// Refuses an open listener unless `insecure`; with it, returns one warning per open
/// listener, naming what it exposes (`exposed`: the exported rings, for the message).
pub fn check(
    listeners: &[Listener],
    insecure: bool,
    exposed: &str,
) -> Result<Vec<String>, BridgeError> {
    let mut warnings = Vec::new();
    for l in listeners {
        if let Listener::Open(endpoint) = l {
            if !insecure {
                return Err(BridgeError::Exposed {
                    endpoint: endpoint.clone(),
                });
            }
            warnings.push(format!(
                "WARNING (--insecure): {endpoint} accepts any peer without authentication or \
                 encryption: whoever reaches it can read and call {exposed}"
            ));
        }
    }
    Ok(warnings)
}

/// Makes every Unix socket listener private (mode 0600) once the session has created it.
pub fn make_sockets_private(listeners: &[Listener]) -> Result<(), BridgeError> {
    use std::os::unix::fs::PermissionsExt;
    for l in listeners {
        if let Listener::UnixSocket(path) = l {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| BridgeError::Config(format!("making {path} private: {e}")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json5: &str) -> zenoh::Config {
        zenoh::Config::from_json5(json5).unwrap()
    }

    #[test]
    fn tcp_even_on_loopback_is_open_and_refused_unless_insecure() {
        let c = config(
            r#"{listen: {endpoints: ["tcp/127.0.0.1:7447", "unixsock-stream//tmp/x.sock"]}}"#,
        );
        let l = listeners(&c).unwrap();
        assert_eq!(
            l,
            vec![
                Listener::Open("tcp/127.0.0.1:7447".into()),
                Listener::UnixSocket("/tmp/x.sock".into())
            ]
        );
        assert!(matches!(
            check(&l, false, "x"),
            Err(BridgeError::Exposed { .. })
        ));
        let warnings = check(&l, true, "ring a").unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("tcp/127.0.0.1:7447") && warnings[0].contains("ring a"));
    }

    #[test]
    fn tls_is_authenticated_only_with_mutual_tls_or_passwords() {
        let plain = config(r#"{listen: {endpoints: ["tls/127.0.0.1:7447"]}}"#);
        assert_eq!(
            listeners(&plain).unwrap(),
            vec![Listener::Open("tls/127.0.0.1:7447".into())]
        );
        let mtls = config(
            r#"{listen: {endpoints: ["tls/127.0.0.1:7447"]},
                transport: {link: {tls: {enable_mtls: true}}}}"#,
        );
        assert_eq!(
            listeners(&mtls).unwrap(),
            vec![Listener::Authenticated("tls/127.0.0.1:7447".into())]
        );
        assert!(check(&listeners(&mtls).unwrap(), false, "x")
            .unwrap()
            .is_empty());
    }
}
