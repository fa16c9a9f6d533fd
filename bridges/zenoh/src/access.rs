//! Who may use what: Zenoh access-control rules generated from the bridge configuration.
//!
//! As soon as any export names who may use it (`allow`) or any import names the peer it comes
//! from (`peer`), the bridge turns on Zenoh's access control with *deny* as the default and
//! allows, per peer identity (a certificate common name from mutual TLS, or a user name from
//! user/password authentication):
//!
//! - on an export's keys (frames and `@spec`, or calls and `@spec`): every message, both ways,
//!   for the peers its `allow` names — anyone else can neither subscribe to its frames, nor
//!   query its spec, nor call it;
//! - on an import's keys: every message, both ways, for its `peer` alone — frames, spec
//!   replies and call replies from anyone else are dropped by Zenoh before the bridge sees
//!   them;
//! - on bridge and exporter liveliness tokens: the peers named anywhere, except that an
//!   import's host tokens (`shmkit/<host>/@bridge/*`) come only from its `peer`.
//!
//! Identities are only as good as the authentication: with plain TCP (`--insecure`) there are
//! none, and every peer is denied. A Zenoh configuration file that turns access control on
//! itself is refused alongside generated rules (one place for the rules).

use crate::config::BridgeConfig;
use crate::error::BridgeError;
use crate::keys::{RingKey, ROOT};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Every Zenoh message kind an ACL rule can name.
const ALL_MESSAGES: [&str; 9] = [
    "put",
    "delete",
    "declare_subscriber",
    "query",
    "declare_queryable",
    "reply",
    "liveliness_token",
    "declare_liveliness_subscriber",
    "liveliness_query",
];

/// Whether the configuration asks for access control.
pub fn wanted(c: &BridgeConfig) -> bool {
    c.export.iter().any(|e| !e.allow.is_empty())
        || c.export_commands.iter().any(|e| !e.allow.is_empty())
        || c.import.iter().any(|i| i.peer.is_some())
        || c.import_commands.iter().any(|i| i.peer.is_some())
}

/// The `access_control` section for `c` (see the module's description).
pub fn rules(c: &BridgeConfig) -> Result<Value, BridgeError> {
    // Key expressions each identity may use.
    let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    fn grant(keys: &mut BTreeMap<String, BTreeSet<String>>, names: &[String], exprs: &[String]) {
        for n in names {
            keys.entry(n.clone())
                .or_default()
                .extend(exprs.iter().cloned());
        }
    }
    for e in &c.export {
        let k = RingKey::new(&c.host, &e.segment, &e.ring)?;
        grant(&mut keys, &e.allow, &[k.frames(), k.spec(), k.acks()]);
    }
    for e in &c.export_commands {
        let k = RingKey::new(&c.host, &e.segment, &e.ring)?;
        grant(&mut keys, &e.allow, &[k.command(), k.command_spec()]);
    }
    let mut import_hosts = BTreeSet::new();
    for i in &c.import {
        let k = RingKey::new(&i.host, &i.segment, &i.ring)?;
        let peer: Vec<String> = i.peer.iter().cloned().collect();
        grant(&mut keys, &peer, &[k.frames(), k.spec(), k.acks()]);
        grant(&mut keys, &peer, &[format!("{ROOT}/{}/@bridge/*", i.host)]);
        import_hosts.insert(i.host.clone());
    }
    for i in &c.import_commands {
        let k = RingKey::new(&i.host, &i.segment, &i.ring)?;
        let peer: Vec<String> = i.peer.iter().cloned().collect();
        grant(&mut keys, &peer, &[k.command(), k.command_spec()]);
        grant(&mut keys, &peer, &[format!("{ROOT}/{}/@bridge/*", i.host)]);
        import_hosts.insert(i.host.clone());
    }
    let names: Vec<String> = keys.keys().cloned().collect();
    for n in &names {
        // Our own bridge token and exporter tokens, and tokens of hosts no import trusts to a
        // single peer.
        let mut common = vec![
            format!("{ROOT}/{}/@bridge/*", c.host),
            format!("{ROOT}/*/*/cmd/*/@exporter/*"),
        ];
        if import_hosts.is_empty() {
            common.push(format!("{ROOT}/*/@bridge/*"));
        }
        grant(&mut keys, std::slice::from_ref(n), &common);
    }
    let (mut rules, mut subjects, mut policies) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (name, key_exprs)) in keys.iter().enumerate() {
        let rule = format!("rule-{i}");
        rules.push(json!({
            "id": rule,
            "messages": ALL_MESSAGES,
            "flows": ["ingress", "egress"],
            "permission": "allow",
            "key_exprs": key_exprs,
        }));
        let (by_cert, by_user) = (format!("cert-{i}"), format!("user-{i}"));
        subjects.push(json!({"id": by_cert, "cert_common_names": [name]}));
        subjects.push(json!({"id": by_user, "usernames": [name]}));
        policies.push(json!({"rules": [rule], "subjects": [by_cert, by_user]}));
    }
    Ok(json!({
        "enabled": true,
        "default_permission": "deny",
        "rules": rules,
        "subjects": subjects,
        "policies": policies,
    }))
}

/// Turns access control on in `z` when `c` asks for it; refuses a Zenoh file that has its
/// own rules alongside.
pub fn apply(c: &BridgeConfig, z: &mut zenoh::Config) -> Result<(), BridgeError> {
    if !wanted(c) {
        return Ok(());
    }
    if z.get_json("access_control/enabled").ok().as_deref() == Some("true") {
        return Err(BridgeError::Config(
            "the Zenoh configuration file turns access control on, and so do the bridge's \
             `allow` / `peer` settings: write the rules in one place"
                .into(),
        ));
    }
    let acl = rules(c)?.to_string();
    z.insert_json5("access_control", &acl)
        .map_err(|e| BridgeError::Config(format!("access_control = {acl}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ExportRing, ImportRing};

    #[test]
    fn exports_are_granted_to_their_allowed_names_and_imports_to_their_peer_alone() {
        let mut c = BridgeConfig {
            host: "camhost".into(),
            ..BridgeConfig::default()
        };
        assert!(!wanted(&c));
        c.export.push(ExportRing {
            segment: "lab".into(),
            ring: "cam".into(),
            max_rate: None,
            decimate: 1,
            max_bytes_per_s: None,
            low_latency: false,
            allow: vec!["gui".into()],
        });
        c.import.push(ImportRing {
            host: "dmhost".into(),
            segment: "lab".into(),
            ring: "shape".into(),
            local_segment: "here".into(),
            local_ring: "shape".into(),
            slots: 4,
            peer: Some("dmhost".into()),
        });
        assert!(wanted(&c));
        let acl = rules(&c).unwrap();
        assert_eq!(acl["default_permission"], "deny");
        let rules = acl["rules"].as_array().unwrap();
        let keys_of = |i: usize| -> Vec<String> {
            rules[i]["key_exprs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_owned())
                .collect()
        };
        // Names sort: "dmhost" is rule 0, "gui" rule 1.
        assert!(keys_of(0).contains(&"shmkit/dmhost/lab/frames/shape".to_owned()));
        assert!(keys_of(0).contains(&"shmkit/dmhost/@bridge/*".to_owned()));
        assert!(!keys_of(0).contains(&"shmkit/camhost/lab/frames/cam".to_owned()));
        assert!(keys_of(1).contains(&"shmkit/camhost/lab/frames/cam".to_owned()));
        assert!(keys_of(1).contains(&"shmkit/camhost/lab/frames/cam/@spec".to_owned()));
        assert!(!keys_of(1).contains(&"shmkit/dmhost/@bridge/*".to_owned()));
        let mut z = zenoh::Config::default();
        apply(&c, &mut z).unwrap();
        assert_eq!(z.get_json("access_control/enabled").unwrap(), "true");
        assert!(apply(&c, &mut z).is_err(), "rules in two places");
    }
}
