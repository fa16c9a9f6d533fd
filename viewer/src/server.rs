//! The viewer's threads and its HTTP side: a listener (plain or TLS) served by hyper on a
//! single-threaded tokio runtime, the router (the page, its two assets, the WebSocket), and
//! the token check in front of all of it.
//!
//! Three threads, each at nice 10 so the loop being viewed always wins the CPU: the HTTP
//! runtime, the frame sampler and the state refresher.

use crate::frames::{Feeds, Sampler};
use crate::options::{TlsFiles, ViewOptions};
use crate::socket::{self, Context};
use crate::token::Token;
use crate::{assets, state, ViewError};
use axum::extract::{Request, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use shmkit::inspect::Watcher;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// Most bytes of one message a browser may send (its requests are a few hundred bytes).
const MAX_REQUEST: usize = 64 << 10;

/// A running viewer. Dropping it stops it (and waits for its threads).
pub struct Viewer {
    url: String,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    shutdown: Option<oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer").field("addr", &self.addr).finish()
    }
}

/// What the token check needs.
#[derive(Clone)]
struct Gate {
    token: Token,
    cookie: String,
    secure: bool,
}

impl Viewer {
    /// Starts serving segment `segment` as `options` say; the segment must exist now (it may
    /// go away later: the page then says so, and shows it again when it is back).
    pub fn start(segment: &str, options: &ViewOptions) -> Result<Viewer, ViewError> {
        options.check()?;
        let segment_error = |source| ViewError::Segment {
            name: segment.to_owned(),
            source,
        };
        shmkit::inspect::inspect(segment).map_err(segment_error)?;
        let token = match &options.token {
            Some(t) => Token::given(t),
            None => Token::random().map_err(|source| ViewError::Io {
                what: "drawing a random token".into(),
                source,
            })?,
        };
        let tls = options.tls.as_ref().map(tls_acceptor).transpose()?;
        let listener = std::net::TcpListener::bind(options.listen)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| ViewError::Io {
                what: format!("listening on {}", options.listen),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ViewError::Io {
            what: "reading the listener's address".into(),
            source,
        })?;
        let url = format!(
            "{}://{}:{}/?token={}",
            if tls.is_some() { "https" } else { "http" },
            url_host(addr),
            addr.port(),
            token.as_str()
        );

        let stop = Arc::new(AtomicBool::new(false));
        let feeds = Arc::new(Feeds::default());
        let (state_tx, state_rx) = watch::channel(Arc::<str>::from("{}"));
        let (sampled_tx, sampled_rx) = watch::channel(0u64);
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let ctx = Arc::new(Context {
            segment: segment.to_owned(),
            feeds: Arc::clone(&feeds),
            state: state_rx,
            sampled: sampled_rx,
            max_fps: options.max_fps,
        });
        let gate = Gate {
            token,
            cookie: format!("shmkit_view_{}", addr.port()),
            secure: tls.is_some(),
        };
        let mut threads = Vec::new();
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    lower_priority();
                    f()
                })
                .map_err(|source| ViewError::Io {
                    what: format!("starting thread {name}"),
                    source,
                })
        };
        let sampler = Sampler::new(segment, Arc::clone(&feeds), sampled_tx, options.max_fps);
        let s = Arc::clone(&stop);
        threads.push(spawn(
            "shmkit-view-frames",
            Box::new(move || sampler.run(&s)),
        )?);
        let watcher = Watcher::new(segment, options.window);
        let (s, period, f) = (Arc::clone(&stop), options.refresh, Arc::clone(&feeds));
        threads.push(spawn(
            "shmkit-view-state",
            Box::new(move || state::run(watcher, period, &f, &state_tx, &s)),
        )?);
        let router = router(ctx, gate);
        threads.push(spawn(
            "shmkit-view-http",
            Box::new(move || http(listener, tls, router, shutdown_rx)),
        )?);
        Ok(Viewer {
            url,
            addr,
            stop,
            shutdown: Some(shutdown_tx),
            threads,
        })
    }

    /// The page's address, with its token: the one thing to give a browser.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The host part of the printed URL: the address, or this machine's name for a wildcard.
fn url_host(addr: SocketAddr) -> String {
    match addr {
        a if a.ip().is_unspecified() => rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    }
}

/// Lowers the calling thread's priority to nice 10: on Linux the nice value is per thread,
/// and `setpriority(PRIO_PROCESS, 0, …)` sets the caller's.
fn lower_priority() {
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// The TLS acceptor for `files`, or why they cannot serve.
fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ViewError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |path: &std::path::Path, detail: String| ViewError::Tls {
        path: path.to_owned(),
        detail,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|i| i.collect())
        .map_err(|e| bad(&files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(&files.cert, "no certificate in it".into()));
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| bad(&files.key, e.to_string()))?;
    // ring, not rustls's default aws-lc-rs: it builds without CMake or NASM. Its key exchange
    // (X25519, P-256) has no post-quantum group, which rustls now flags as deprecated; a
    // lab's frame viewer does not need one.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| bad(&files.key, e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn router(ctx: Arc<Context>, gate: Gate) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset(assets::INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/view.js",
            get(|| async { asset(assets::VIEW_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/view.css",
            get(|| async { asset(assets::VIEW_CSS, "text/css; charset=utf-8") }),
        )
        .route("/ws", get(websocket))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such page") })
        .with_state(ctx)
        .layer(middleware::from_fn_with_state(gate, admit))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn websocket(
    State(ctx): State<Arc<Context>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-origin WebSocket refused").into_response();
    }
    upgrade
        .max_message_size(MAX_REQUEST)
        .max_frame_size(MAX_REQUEST)
        .on_upgrade(move |ws| socket::serve(ws, ctx))
}

/// A browser's WebSocket from another site's page is refused even with the cookie: its
/// `Origin` (when sent) must name the host the request was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, h)| h);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// The token check in front of every route, and the headers every answer carries.
async fn admit(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let from_query = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("token=")));
    if !gate
        .token
        .admits(request.uri(), request.headers(), &gate.cookie)
    {
        let mut refused = (
            StatusCode::UNAUTHORIZED,
            "shmkit view: this page needs the token in the URL the viewer printed when it started\n",
        )
            .into_response();
        harden(refused.headers_mut());
        return refused;
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    harden(headers);
    if from_query {
        // The page's own requests (its assets, its WebSocket) carry the token as a cookie,
        // so the token can leave the address bar.
        let cookie = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict{}",
            gate.cookie,
            gate.token.as_str(),
            if gate.secure { "; Secure" } else { "" }
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            headers.insert(header::SET_COOKIE, v);
        }
    }
    response
}

/// No caching, no sniffing, no framing by other pages, no referrer (the URL holds the token),
/// nothing loaded from anywhere but the viewer.
fn harden(headers: &mut HeaderMap) {
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// The HTTP thread: accepts connections until `shutdown`.
fn http(
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    shutdown: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shmkit view: cannot start the HTTP runtime: {e}");
            return;
        }
    };
    runtime.block_on(accept(listener, tls, router, shutdown));
}

async fn accept(
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    mut shutdown: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("shmkit view: cannot use the listener: {e}");
            return;
        }
    };
    loop {
        let tcp = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(_) => {
                    // Out of descriptors, say: wait rather than spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(tcp, service).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await;
                    if let Ok(Ok(stream)) = handshake {
                        connection(stream, service).await;
                    }
                }
            }
        });
    }
}

/// Serves one connection (HTTP/1.1, with upgrades for the WebSocket).
async fn connection<I>(io: I, service: TowerToHyperService<Router>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_websocket_from_another_origin_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8000"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8000"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }
}
