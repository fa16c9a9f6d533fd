//! `shmkit view` in a real browser: a known pattern published into a ring reaches the page's
//! canvas pixel for pixel, a second frame changes it, the saved FITS file holds the frame, and
//! requests without the token are refused. Drives Debian's headless `chromium` through
//! `chromedriver`'s WebDriver HTTP API (a few plain HTTP calls: no WebDriver crate). Skipped,
//! visibly, where no browser is installed (`apt-get install chromium chromium-driver`; the
//! README's test command installs them as root); under `SHMKIT_REQUIRE_ALL=1` that skip fails.
//!
//! The page's screenshot is written to `CARGO_TARGET_TMPDIR/view.png` (`target/tmp/`).

#[path = "../../tests/common/own_main.rs"]
mod own_main;

use serde_json::{json, Value};
use shmkit::rings::{ElemType, FrameSpec, FrameWriter};
use shmkit::segment::{CreateOptions, Segment};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    own_main::run_tests(&[
        (
            "a_rings_frames_reach_the_page_pixel_for_pixel_and_save_as_fits",
            frames_reach_the_page,
        ),
        (
            "a_request_without_the_token_is_refused",
            requests_without_the_token_are_refused,
        ),
        (
            "listening_beyond_loopback_needs_tls_or_insecure",
            beyond_loopback_needs_tls_or_insecure,
        ),
        (
            "tls_serves_the_page_to_the_token_only",
            tls_serves_the_token_only,
        ),
    ]);
}

const W: usize = 64;
const H: usize = 48;
const RING: &str = "test/frames";
const PROFILE: &str = "test/profile";

/// The test pattern: 8×8 blocks of 0, 1000, 2000 and 3000, shifted by `phase` blocks.
fn pattern(phase: usize) -> Vec<u16> {
    (0..H)
        .flat_map(|y| (0..W).map(move |x| (((x / 8 + y / 8 + phase) % 4) * 1000) as u16))
        .collect()
}

fn publish(w: &mut FrameWriter, pixels: &[u16]) -> u64 {
    let mut slot = w.try_claim().expect("a free slot");
    for (d, v) in slot.bytes_mut().chunks_exact_mut(2).zip(pixels) {
        d.copy_from_slice(&v.to_le_bytes());
    }
    slot.publish()
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join(program))
        .find(|p| p.is_file())
}

/// A child killed (and reaped) when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One plain HTTP/1.1 request; the status and the whole response (head and body).
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if !headers.iter().any(|h| h.starts_with("Connection:")) {
        request.push_str("Connection: close\r\n");
    }
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 65536];
    // Until the answer is complete (a server may keep the connection open after it).
    while !complete(&response) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Whether `response` holds a whole answer: its head, and the body its `Content-Length` or
/// its last chunk says (an upgrade, 101, has none).
fn complete(response: &[u8]) -> bool {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    let body = &response[end + 4..];
    if head.starts_with("http/1.1 101") {
        return true;
    }
    if let Some(n) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
    {
        return body.len() >= n;
    }
    if head.contains("transfer-encoding: chunked") {
        return body.ends_with(b"0\r\n\r\n");
    }
    false
}

/// The body of an HTTP response `http` returned.
fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// Decodes chunked transfer encoding, if the response used it.
fn dechunk(headers_and_body: &str) -> String {
    let (head, b) = headers_and_body.split_once("\r\n\r\n").unwrap_or(("", ""));
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return b.to_owned();
    }
    let mut out = String::new();
    let mut rest = b;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

/// A chromedriver and one headless Chromium session.
struct Browser {
    addr: SocketAddr,
    session: String,
    _driver: Reaped,
    _profile: PathBuf,
}

impl Browser {
    fn start(chromium: &PathBuf, chromedriver: &PathBuf) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Reaped(
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver starts"),
        );
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = std::env::temp_dir().join(format!("shmkit-view-test-{}", std::process::id()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1200,900", format!("--user-data-dir={}", profile.display()),
            ]},
        }}});
        let mut b = Browser {
            addr,
            session: String::new(),
            _driver: driver,
            _profile: profile,
        };
        let created = b.call("POST", "/session", &caps);
        b.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        b
    }

    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let (status, response) = http(self.addr, method, path, &[], &body);
        let v: Value = serde_json::from_str(&dechunk(&response))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}: {response}"));
        assert_eq!(status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    fn session(&self, method: &str, path: &str, body: &Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn script(&self, js: &str) -> Value {
        self.session("POST", "/execute/sync", &json!({"script": js, "args": []}))
    }

    /// Waits until `js` returns `want`.
    fn wait_for(&self, js: &str, want: &Value) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.script(js);
            if &got == want {
                return;
            }
            assert!(Instant::now() < deadline, "{js} stayed {got}, never {want}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The red channel of the canvas of `ring`, with its size.
    fn canvas(&self, ring: &str) -> (usize, usize, Vec<[u8; 3]>) {
        let v = self.script(&format!(
            "const c = document.querySelector('canvas[data-ring=\"{ring}\"]');
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             return [c.width, c.height, Array.from(d)];"
        ));
        let rgba: Vec<u8> = v[2]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u8)
            .collect();
        let pixels = rgba.chunks_exact(4).map(|p| [p[0], p[1], p[2]]).collect();
        (
            v[0].as_u64().unwrap() as usize,
            v[1].as_u64().unwrap() as usize,
            pixels,
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http(
                self.addr,
                "DELETE",
                &format!("/session/{}", self.session),
                &[],
                "",
            );
        }
        let _ = std::fs::remove_dir_all(&self._profile);
    }
}

/// `shmkit view SEGMENT ARGS…` and the URL it printed.
fn view(segment: &str, args: &[&str]) -> (Reaped, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmkit"))
        .arg("view")
        .arg(segment)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("shmkit view starts");
    let stdout = child.stdout.take().unwrap();
    let child = Reaped(child);
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads on after the URL, so the viewer's later lines never meet a closed pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let line = line.trim();
            if line.starts_with("http://") || line.starts_with("https://") {
                let _ = tx.send(line.to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("shmkit view printed its URL");
    (child, url)
}

fn standard_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

fn grey_of(v: u16) -> u8 {
    // The page's auto scale spans the frame's 0..3000; a value maps to round(v × 255 / 3000).
    (f64::from(v) * 255.0 / 3000.0).round() as u8
}

fn frames_reach_the_page() {
    let (Some(chromium), Some(chromedriver)) = (which("chromium"), which("chromedriver")) else {
        own_main::skip(
            "no chromium and chromedriver here (apt-get install chromium chromium-driver)",
        );
    };
    let name = format!("shmkit-view-browser-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let seg = Segment::create(&name, &CreateOptions::new(4 << 20)).unwrap();
    let ring = seg
        .frame_ring(
            RING,
            &FrameSpec::new(4, ElemType::U16, &[H as u32, W as u32]),
        )
        .unwrap();
    let mut writer = ring.writer().unwrap();
    let profile = seg
        .frame_ring(PROFILE, &FrameSpec::new(4, ElemType::F64, &[32]))
        .unwrap();
    let mut profile_writer = profile.writer().unwrap();
    {
        let mut slot = profile_writer.try_claim().unwrap();
        for (i, d) in slot.bytes_mut().chunks_exact_mut(8).enumerate() {
            d.copy_from_slice(&(i as f64).to_le_bytes());
        }
        slot.publish();
    }
    let first = publish(&mut writer, &pattern(0));
    let (_view, url) = view(&name, &[]);
    let browser = Browser::start(&chromium, &chromedriver);
    browser.session("POST", "/url", &json!({ "url": url }));

    let shown = |ring: &str| {
        format!("return window.shmkitView ? window.shmkitView.frameId('{ring}') : null;")
    };
    browser.wait_for(&shown(RING), &json!(first));
    browser.wait_for(&shown(PROFILE), &json!(1));
    let (w, h, pixels) = browser.canvas(RING);
    assert_eq!((w, h), (W, H), "the canvas is the frame's size");
    let expected: Vec<[u8; 3]> = pattern(0).iter().map(|&v| [grey_of(v); 3]).collect();
    assert_eq!(
        pixels, expected,
        "the canvas shows frame {first} pixel for pixel"
    );

    let second = publish(&mut writer, &pattern(1));
    browser.wait_for(&shown(RING), &json!(second));
    let (_, _, changed) = browser.canvas(RING);
    assert_ne!(changed, pixels, "the second frame changed the canvas");
    let expected: Vec<[u8; 3]> = pattern(1).iter().map(|&v| [grey_of(v); 3]).collect();
    assert_eq!(
        changed, expected,
        "the canvas shows frame {second} pixel for pixel"
    );

    // "save FITS" of the shown frame: the frame itself, as a FITS image.
    let fits = browser.session(
        "POST",
        "/execute/async",
        &json!({
            "script": "const done = arguments[arguments.length - 1];
                       window.shmkitView.fits(arguments[0], arguments[1]).then(done, (e) => done('failed: ' + e));",
            "args": [RING, second],
        }),
    );
    let fits = standard_base64(fits.as_str().expect("a base64 FITS file"));
    let (cards, header_len) = shmkit_record::fits::header::parse(&fits).expect("a FITS header");
    let card = |k: &str| {
        cards
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(card("NAXIS1").as_deref(), Some("64"));
    assert_eq!(card("NAXIS2").as_deref(), Some("48"));
    assert_eq!(card("FRAMEID"), Some(second.to_string()));
    let mut back = Vec::new();
    shmkit_record::fits::data::decode(
        ElemType::U16,
        &fits[header_len..header_len + W * H * 2],
        &mut back,
    );
    let want: Vec<u8> = pattern(1).iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(back, want, "the saved file holds the shown frame");

    // A second page opened while the first still watches and the ring is idle shows the
    // newest frame at once (the feed already holds it: nothing new will be sampled).
    let first_window = browser.session("GET", "/window", &Value::Null);
    let tab = browser.session("POST", "/window/new", &json!({ "type": "tab" }));
    browser.session("POST", "/window", &json!({ "handle": tab["handle"] }));
    browser.session("POST", "/url", &json!({ "url": url }));
    browser.wait_for(&shown(RING), &json!(second));
    browser.session("DELETE", "/window", &Value::Null);
    browser.session("POST", "/window", &json!({ "handle": first_window }));

    // A page opened again while the ring is idle still shows its newest frame.
    browser.session("POST", "/url", &json!({ "url": url }));
    browser.wait_for(&shown(RING), &json!(second));

    let shot = browser.session("GET", "/screenshot", &Value::Null);
    let png = standard_base64(shot.as_str().expect("a base64 PNG"));
    assert_eq!(&png[1..4], b"PNG");
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("view.png");
    std::fs::write(&path, &png).unwrap();
    println!("screenshot: {}", path.display());
    drop(browser);
    let _ = Segment::unlink(&name);
}

fn requests_without_the_token_are_refused() {
    let name = format!("shmkit-view-token-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let _seg = Segment::create(&name, &CreateOptions::new(1 << 20)).unwrap();
    let (_view, url) = view(&name, &[]);
    let rest = url.strip_prefix("http://").unwrap();
    let (host, query) = rest.split_once('/').unwrap();
    let addr: SocketAddr = host.parse().unwrap();
    assert!(addr.ip().is_loopback(), "{url} listens on loopback");
    let token = query.strip_prefix("?token=").unwrap();
    assert!(token.len() >= 32, "a random token of 128 bits: {token}");
    let ws = [
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ];
    for (path, headers) in [
        ("/".to_owned(), &[][..]),
        ("/view.js".to_owned(), &[][..]),
        ("/?token=".to_owned(), &[][..]),
        (format!("/?token={}", &token[..31]), &[][..]),
        ("/nothing".to_owned(), &[][..]),
        ("/ws".to_owned(), &ws[..]),
    ] {
        let (status, response) = http(addr, "GET", &path, headers, "");
        assert_eq!(status, 401, "GET {path} without the token: {response}");
        assert!(!body(&response).contains("<script"), "{response}");
    }
    let (status, response) = http(addr, "GET", &format!("/?token={token}"), &[], "");
    assert_eq!(status, 200, "{response}");
    assert!(
        response.to_ascii_lowercase().contains("set-cookie"),
        "{response}"
    );
    // The cookie the page got admits its own requests.
    let cookie = format!("Cookie: shmkit_view_{}={token}", addr.port());
    let (status, _) = http(addr, "GET", "/view.js", &[&cookie], "");
    assert_eq!(status, 200);
    // Another site's page cannot open the WebSocket even with the cookie.
    let mut cross = ws.to_vec();
    cross.push(&cookie);
    cross.push("Origin: http://evil.example");
    let (status, _) = http(addr, "GET", "/ws", &cross, "");
    assert_eq!(status, 403);
    let mut same = ws.to_vec();
    same.push(&cookie);
    let (status, response) = http(addr, "GET", "/ws", &same, "");
    assert_eq!(status, 101, "{response}");
    let _ = Segment::unlink(&name);
}

fn beyond_loopback_needs_tls_or_insecure() {
    let name = format!("shmkit-view-exposed-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let _seg = Segment::create(&name, &CreateOptions::new(1 << 20)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shmkit"))
        .args(["view", &name, "--listen", "0.0.0.0:0", "--duration", "0.1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--insecure") && stderr.contains("TLS"),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_shmkit"))
        .args([
            "view",
            &name,
            "--listen",
            "0.0.0.0:0",
            "--insecure",
            "--duration",
            "0.1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("WARNING"), "{stderr}");
    let missing = Command::new(env!("CARGO_BIN_EXE_shmkit"))
        .args(["view", "shmkit-view-no-such-segment", "--duration", "0.1"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let _ = Segment::unlink(&name);
}

/// `openssl s_client` sending `request` to `port`; what came back.
fn over_tls(port: u16, request: &str) -> String {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(request.as_bytes()).unwrap();
    // Kept open until the answer is read: s_client quits at its input's end.
    let out = {
        let mut stdout = child.stdout.take().unwrap();
        let mut text = Vec::new();
        let _ = stdout.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    };
    drop(stdin);
    let _ = child.wait();
    out
}

fn tls_serves_the_token_only() {
    if which("openssl").is_none() {
        own_main::skip("no openssl here to make a certificate (apt-get install openssl)");
    }
    let dir = std::env::temp_dir().join(format!("shmkit-view-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-subj", "/CN=localhost", "-days", "1"])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let name = format!("shmkit-view-tls-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let _seg = Segment::create(&name, &CreateOptions::new(1 << 20)).unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_shmkit"))
        .args(["view", &name, "--tls-cert"])
        .arg(&key)
        .arg("--tls-key")
        .arg(&key)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(
        bad.status.code(),
        Some(1),
        "a key is not a certificate: {stderr}"
    );
    assert!(stderr.contains("TLS"), "{stderr}");

    let (_view, url) = view(
        &name,
        &[
            "--listen",
            "0.0.0.0:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let rest = url
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("{url} is https"));
    let (host, query) = rest.split_once('/').unwrap();
    let port: u16 = host.rsplit_once(':').unwrap().1.parse().unwrap();
    let get = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n")
    };
    let page = over_tls(port, &get(&format!("/{query}")));
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.to_ascii_lowercase().contains("secure"),
        "the cookie is Secure: {page}"
    );
    let refused = over_tls(port, &get("/"));
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    // Plain HTTP to the TLS port is not served.
    let (status, _) = http(
        ([127, 0, 0, 1], port).into(),
        "GET",
        &format!("/{query}"),
        &[],
        "",
    );
    assert_ne!(status, 200);
    let _ = Segment::unlink(&name);
    let _ = std::fs::remove_dir_all(&dir);
}
