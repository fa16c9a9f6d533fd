//! One browser's WebSocket: the state at every refresh, and the newest frame of each ring it
//! watches at most `fps` times a second, never queued — a browser that reads slowly gets
//! fewer frames, and only it waits for its socket.
//!
//! The browser sends JSON text messages:
//! - `{"subscribe": ["RING", …]}`: the rings to send (replacing the previous list);
//! - `{"fps": N}`: frames per second per ring (1 to the viewer's `max_fps`);
//! - `{"save": "RING", "id": N}`: frame `N` of `RING`, one of the last it was sent, as a
//!   FITS file. The answer is a binary message: `SKS1`, u16 name length, u16 0, u64 frame
//!   id, the name zero-padded to a multiple of 8, then the file.
//!
//! Anything else is answered with `{"type": "error", "message": …}`.

use crate::frames::{Feeds, FrameMessage};
use axum::extract::ws::{Message, WebSocket};
use serde::Deserialize;
use shmkit_record::fits::FrameImage;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The first four bytes of a saved frame's message.
const SAVED_MAGIC: &[u8; 4] = b"SKS1";
/// Most rings one browser watches.
const MAX_SUBSCRIPTIONS: usize = 64;
/// Frames kept per ring for a save (the last ones sent).
const KEPT: usize = 4;

/// What every browser's socket shares.
pub(crate) struct Context {
    pub(crate) segment: String,
    pub(crate) feeds: Arc<Feeds>,
    /// The newest state message.
    pub(crate) state: watch::Receiver<Arc<str>>,
    /// Bumped by the sampler after each pass that copied a frame.
    pub(crate) sampled: watch::Receiver<u64>,
    pub(crate) max_fps: f64,
}

/// A message from the browser.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    subscribe: Option<Vec<String>>,
    fps: Option<f64>,
    save: Option<String>,
    id: Option<u64>,
}

/// A ring this browser watches.
struct Watched {
    ring: String,
    rx: watch::Receiver<Option<FrameMessage>>,
    last_sent: Option<Instant>,
    /// The last frames sent, for a save.
    kept: VecDeque<FrameMessage>,
}

/// Serves one browser until it closes its socket or the viewer stops.
pub(crate) async fn serve(mut ws: WebSocket, ctx: Arc<Context>) {
    let mut state = ctx.state.clone();
    state.mark_changed();
    let mut sampled = ctx.sampled.clone();
    let mut watched: Vec<Watched> = Vec::new();
    let mut period = Duration::from_secs_f64(1.0 / ctx.max_fps);
    loop {
        tokio::select! {
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
                let text = state.borrow_and_update().clone();
                if ws.send(Message::Text(text.as_ref().into())).await.is_err() {
                    return;
                }
            }
            changed = sampled.changed() => {
                if changed.is_err() {
                    return;
                }
                sampled.borrow_and_update();
                if send_frames(&mut ws, &mut watched, period).await.is_err() {
                    return;
                }
            }
            message = ws.recv() => {
                let text = match message {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let answer = handle(&text, &ctx, &mut watched, &mut period);
                if let Some(answer) = answer {
                    if ws.send(answer).await.is_err() {
                        return;
                    }
                }
                // A ring just subscribed to gets its newest frame now: the feed may hold it
                // already (another browser watches it), and an idle ring is not sampled again.
                if send_frames(&mut ws, &mut watched, period).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Sends each watched ring's newest frame, if it is new and the ring's period has passed.
async fn send_frames(
    ws: &mut WebSocket,
    watched: &mut [Watched],
    period: Duration,
) -> Result<(), axum::Error> {
    for w in watched {
        // A little early is fine: the sampler's own period spaces the frames.
        if w.last_sent
            .is_some_and(|t| t.elapsed() < period.mul_f64(0.8))
        {
            continue;
        }
        // A new message, not a new id: a segment made again counts its frames from 1.
        if !w.rx.has_changed().unwrap_or(false) {
            continue;
        }
        let Some(message) = w.rx.borrow_and_update().clone() else {
            continue;
        };
        w.last_sent = Some(Instant::now());
        if w.kept.len() == KEPT {
            w.kept.pop_front();
        }
        w.kept.push_back(message.clone());
        ws.send(Message::Binary(message.0)).await?;
    }
    Ok(())
}

fn error(message: &str) -> Message {
    Message::Text(
        serde_json::json!({ "type": "error", "message": message })
            .to_string()
            .into(),
    )
}

/// Handles one message from the browser; the answer to send, if any.
fn handle(
    text: &str,
    ctx: &Context,
    watched: &mut Vec<Watched>,
    period: &mut Duration,
) -> Option<Message> {
    let request: Request = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) => return Some(error(&format!("not a request: {e}"))),
    };
    if let Some(fps) = request.fps {
        if !(fps.is_finite() && fps >= 1.0) {
            return Some(error("fps must be a number of at least 1"));
        }
        *period = Duration::from_secs_f64(1.0 / fps.min(ctx.max_fps));
    }
    if let Some(rings) = request.subscribe {
        if rings.len() > MAX_SUBSCRIPTIONS || rings.iter().any(|r| r.is_empty() || r.len() > 256) {
            return Some(error(&format!(
                "subscribe to at most {MAX_SUBSCRIPTIONS} rings, each named in 1 to 256 bytes"
            )));
        }
        let mut before: HashMap<String, Watched> =
            watched.drain(..).map(|w| (w.ring.clone(), w)).collect();
        for ring in rings {
            let w = before.remove(&ring).unwrap_or_else(|| Watched {
                rx: {
                    // The ring's newest frame is news to a browser that just asked for it.
                    let mut rx = ctx.feeds.subscribe(&ring);
                    rx.mark_changed();
                    rx
                },
                ring: ring.clone(),
                last_sent: None,
                kept: VecDeque::new(),
            });
            if !watched.iter().any(|x| x.ring == w.ring) {
                watched.push(w);
            }
        }
    }
    if let Some(ring) = request.save {
        return Some(save(ctx, watched, &ring, request.id));
    }
    None
}

/// Frame `id` (default: the last sent) of `ring` as a saved-frame message.
fn save(ctx: &Context, watched: &[Watched], ring: &str, id: Option<u64>) -> Message {
    let Some(w) = watched.iter().find(|w| w.ring == ring) else {
        return error(&format!("{ring}: not watched, nothing to save"));
    };
    let found = match id {
        Some(id) => w.kept.iter().rev().find(|m| m.id() == id),
        None => w.kept.back(),
    };
    let Some(m) = found else {
        return error(&format!(
            "{ring}: frame {} is no longer kept (the last {KEPT} sent are)",
            id.map_or("-".into(), |i| i.to_string())
        ));
    };
    let Some(elem) = m.elem() else {
        return error(&format!("{ring}: unknown element type"));
    };
    let shape = m.shape();
    let fits = FrameImage {
        ring,
        segment: &ctx.segment,
        elem,
        shape: &shape,
        id: m.id(),
        ts_ns: m.ts_ns(),
        bytes: m.data(),
    }
    .to_fits();
    let name = ring.as_bytes();
    let mut out = Vec::with_capacity(16 + name.len() + 8 + fits.len());
    out.extend_from_slice(SAVED_MAGIC);
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&m.id().to_le_bytes());
    out.extend_from_slice(name);
    out.resize(16 + name.len().div_ceil(8) * 8, 0);
    out.extend_from_slice(&fits);
    Message::Binary(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context {
        Context {
            segment: "lab".into(),
            feeds: Arc::new(Feeds::default()),
            state: watch::channel(Arc::<str>::from("{}")).1,
            sampled: watch::channel(0).1,
            max_fps: 30.0,
        }
    }

    fn is_error(m: Option<Message>) -> bool {
        matches!(m, Some(Message::Text(t)) if t.as_str().contains("\"error\""))
    }

    #[test]
    fn hostile_requests_are_answered_with_errors_and_change_nothing() {
        let ctx = context();
        let mut watched = Vec::new();
        let mut period = Duration::from_millis(100);
        for bad in [
            "",
            "not json",
            "[]",
            r#"{"subscribe": "cam"}"#,
            r#"{"subscribe": [""]}"#,
            r#"{"unknown": 1}"#,
            r#"{"fps": -1}"#,
            r#"{"fps": 0.5}"#,
            r#"{"save": "cam"}"#,
        ] {
            assert!(
                is_error(handle(bad, &ctx, &mut watched, &mut period)),
                "{bad:?}"
            );
        }
        let many: Vec<String> = (0..=MAX_SUBSCRIPTIONS).map(|i| format!("r{i}")).collect();
        let request = serde_json::json!({ "subscribe": many }).to_string();
        assert!(is_error(handle(&request, &ctx, &mut watched, &mut period)));
        let long = serde_json::json!({ "subscribe": ["x".repeat(257)] }).to_string();
        assert!(is_error(handle(&long, &ctx, &mut watched, &mut period)));
        assert!(watched.is_empty());
        assert_eq!(period, Duration::from_millis(100));
    }

    #[test]
    fn subscriptions_replace_each_other_and_fps_is_capped_at_the_viewers() {
        let ctx = context();
        let mut watched = Vec::new();
        let mut period = Duration::ZERO;
        let r = handle(
            r#"{"subscribe": ["a", "b", "a"], "fps": 1000}"#,
            &ctx,
            &mut watched,
            &mut period,
        );
        assert!(r.is_none());
        assert_eq!(
            watched.iter().map(|w| w.ring.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(period, Duration::from_secs_f64(1.0 / 30.0));
        handle(
            r#"{"subscribe": ["b"], "fps": 10}"#,
            &ctx,
            &mut watched,
            &mut period,
        );
        assert_eq!(watched.len(), 1);
        assert_eq!(period, Duration::from_millis(100));
        assert_eq!(ctx.feeds.watched_names(), vec!["b".to_owned()]);
    }
}
