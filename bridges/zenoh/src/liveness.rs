//! Is the far side there? Every bridge holds a liveliness token `shmkit/<host>/@bridge/<zid>`;
//! an importer watches the tokens of the host it imports from. Zenoh withdraws a token when
//! its session ends or its link's lease runs out, so a killed or cut-off bridge is seen gone
//! within the lease. A host may run several bridges: it is up while any of its tokens is.

use crate::error::BridgeError;
use crate::keys;
use crate::status::LinkStatus;
use shmkit::Shared;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use zenoh::sample::SampleKind;
use zenoh::Wait;

/// Watches `host`'s bridge tokens: `up` follows them, and so do `status`'s `up` and `downs`.
/// Undeclared when the returned subscriber is dropped.
pub fn watch_host(
    session: &zenoh::Session,
    host: &str,
    up: Arc<AtomicBool>,
    status: Shared<LinkStatus>,
) -> Result<zenoh::pubsub::Subscriber<()>, BridgeError> {
    let tokens = Mutex::new(HashSet::<String>::new());
    session
        .liveliness()
        .declare_subscriber(keys::bridge_tokens(host)?)
        .history(true)
        .callback(move |sample| {
            let Ok(mut tokens) = tokens.lock() else {
                return;
            };
            let key = sample.key_expr().as_str().to_owned();
            if sample.kind() == SampleKind::Put {
                tokens.insert(key);
            } else {
                tokens.remove(&key);
            }
            let now_up = !tokens.is_empty();
            up.store(now_up, Ordering::Release);
            let _ = status.update(|s| {
                if s.up == 1 && !now_up {
                    s.downs += 1;
                }
                s.up = u64::from(now_up);
            });
        })
        .wait()
        .map_err(BridgeError::zenoh)
}
