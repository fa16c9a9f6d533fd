//! Who may connect to a bridge: a TCP listener (loopback included) without peer
//! authentication is refused unless `--insecure`, which warns; a Unix socket is made private;
//! mutual TLS, configured through a standard Zenoh configuration file with certificates the
//! test makes itself (`openssl`, no committed keys), carries frames and calls, and a peer whose
//! certificate another CA signed, or a peer with none, gets nothing. Every wait is bounded.

mod common;

use common::{eventually, free_port, name, status, Proc, Segs, Source};
use shmkit::rings::{CommandRing, ElemType, FrameRing, FrameSpec, ReadMode};
use shmkit::{CreateOptions, Segment, SegmentObjects};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use zenoh::Wait;

/// The bridge binary with `args`, stdout and stderr piped.
fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_shmkit-zenoh"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the bridge binary runs")
}

/// Waits (at most 30 s) for `child` to exit; its code and stderr.
fn exit_of(mut child: Child) -> (Option<i32>, String) {
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the bridge did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), err)
}

/// Waits for `child`'s "up" line; its stdout is then drained in the background.
fn up(child: &mut Child) {
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    if !line.contains(" up:") {
        let mut err = String::new();
        let _ = child.wait();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        panic!("the bridge said {line:?}: {err}");
    }
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
}

#[test]
fn a_tcp_listener_without_peer_authentication_is_refused_unless_insecure_which_warns() {
    let seg = name("open");
    let _segs = Segs(vec![seg.clone()]);
    let s = Segment::create(&seg, &CreateOptions::new(1 << 20)).unwrap();
    s.frame_ring("cam", &FrameSpec::new(2, ElemType::U8, &[8]))
        .unwrap();
    let export = format!("{seg}/cam");
    for host in ["127.0.0.1", "0.0.0.0"] {
        let ep = format!("tcp/{host}:{}", free_port());
        let (code, err) = exit_of(spawn(&["--listen", &ep, "--export", &export]));
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains(&format!("refusing to listen on {ep}")),
            "{err}"
        );
    }
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let mut child = spawn(&["--listen", &ep, "--export", &export, "--insecure"]);
    up(&mut child);
    child.kill().unwrap();
    let (_, err) = exit_of(child);
    assert!(
        err.contains("WARNING (--insecure)") && err.contains(&ep) && err.contains(&export),
        "the warning names the endpoint and what it exposes: {err}"
    );
}

#[test]
fn a_unix_socket_listener_is_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(name("sock"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bridge.sock");
    let ep = format!("unixsock-stream/{}", path.display());
    let mut child = Proc(spawn(&["--listen", &ep]));
    up(&mut child.0);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", path.display());
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `openssl ARGS` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (Debian's openssl package): it makes the test's certificates");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA named `ca` in `dir` (`ca.pem`, `ca.key`).
fn make_ca(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
            "-days",
            "1",
            "-subj",
            &format!("/CN={ca}"),
        ],
    );
}

/// A certificate for `cn` (also valid for the name `localhost`) signed by CA `ca`:
/// `<cn>.pem` and `<cn>.key` in `dir`.
fn make_cert(dir: &Path, ca: &str, cn: &str) {
    let ext = format!("{cn}.ext");
    std::fs::write(dir.join(&ext), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{cn}.key"),
            "-out",
            &format!("{cn}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{cn}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{cn}.pem"),
            "-days",
            "1",
            "-extfile",
            &ext,
        ],
    );
}

/// A Zenoh configuration file for a bridge whose identity is `cn` (trusting CA `ca`), with
/// mutual TLS on; `None` for `cn`: a TLS peer with no certificate of its own.
fn tls_config(dir: &Path, ca: &str, cn: Option<&str>) -> PathBuf {
    let file = dir.join(format!("{}-{ca}.json5", cn.unwrap_or("anonymous")));
    let p = |f: String| dir.join(f).display().to_string();
    let mut tls = serde_json::json!({
        "root_ca_certificate": p(format!("{ca}.pem")),
    });
    if let Some(cn) = cn {
        let own = serde_json::json!({
            "listen_private_key": p(format!("{cn}.key")),
            "listen_certificate": p(format!("{cn}.pem")),
            "connect_private_key": p(format!("{cn}.key")),
            "connect_certificate": p(format!("{cn}.pem")),
            "enable_mtls": true,
        });
        tls.as_object_mut()
            .unwrap()
            .extend(own.as_object().unwrap().clone());
    }
    let config = serde_json::json!({ "transport": { "link": { "tls": tls } } });
    std::fs::write(&file, config.to_string()).unwrap();
    file
}

#[test]
fn mutual_tls_carries_frames_and_calls_and_peers_without_a_valid_certificate_get_nothing() {
    let dir = std::env::temp_dir().join(name("pki"));
    std::fs::create_dir_all(&dir).unwrap();
    make_ca(&dir, "lab-ca");
    make_ca(&dir, "other-ca");
    make_cert(&dir, "lab-ca", "camhost");
    make_cert(&dir, "lab-ca", "gui");
    make_cert(&dir, "other-ca", "intruder");

    let (src, dst, bad) = (name("tls-a"), name("tls-b"), name("tls-x"));
    let _segs = Segs(vec![src.clone(), dst.clone(), bad.clone()]);
    let source = Source::start(&src);

    let ep = format!("tls/localhost:{}", free_port());
    let a_config = tls_config(&dir, "lab-ca", Some("camhost"));
    let (export, export_cmd) = (format!("{src}/cam"), format!("{src}/dm"));
    let mut a = Proc(spawn(&[
        "--host",
        "camhost",
        "--zenoh-config",
        a_config.to_str().unwrap(),
        "--listen",
        &ep,
        "--export",
        &export,
        "--export-cmd",
        &export_cmd,
    ]));
    up(&mut a.0);

    // A peer with a certificate of the lab's CA: frames and calls.
    let b_config = tls_config(&dir, "lab-ca", Some("gui"));
    let (import, import_cmd) = (
        format!("camhost/{src}/cam={dst}/cam"),
        format!("camhost/{src}/dm={dst}/dm"),
    );
    let mut b = Proc(spawn(&[
        "--host",
        "gui",
        "--zenoh-config",
        b_config.to_str().unwrap(),
        "--connect",
        &ep,
        "--import",
        &import,
        "--import-cmd",
        &import_cmd,
    ]));
    up(&mut b.0);
    let local: FrameRing = Segment::open(&dst).unwrap().open("cam").unwrap();
    let mut reader = local.reader(ReadMode::NewestOnly).unwrap();
    eventually(
        "frames arrive over mutual TLS",
        Duration::from_secs(10),
        || reader.next(Duration::from_millis(100)).is_ok(),
    );
    let local_dm: CommandRing = Segment::open(&dst).unwrap().open("dm").unwrap();
    assert_eq!(local_dm.call(b"hi", Duration::from_secs(5)).unwrap(), b"hi");
    eventually(
        "the link up, nothing rejected",
        Duration::from_secs(5),
        || status(&dst, "cam").is_some_and(|s| s.up == 1 && s.rejected == 0),
    );
    let calls_before = source.calls.load(Ordering::Relaxed);

    // Peers whose certificate another CA signed, or with none, never get the spec: their
    // imports fail (nothing is created, no call reaches the server).
    for (who, config) in [
        (
            "another CA's certificate",
            tls_config(&dir, "other-ca", Some("intruder")),
        ),
        ("no certificate", tls_config(&dir, "lab-ca", None)),
    ] {
        let import = format!("camhost/{src}/cam={bad}/cam");
        let (code, err) = exit_of(spawn(&[
            "--host",
            "intruder",
            "--zenoh-config",
            config.to_str().unwrap(),
            "--connect",
            &ep,
            "--import",
            &import,
        ]));
        assert_eq!(code, Some(1), "{who}: {err}");
        assert!(err.contains("@spec"), "{who}: {err}");
        assert!(
            Segment::open(&bad).is_err(),
            "{who}: nothing was made locally"
        );
    }
    assert_eq!(source.calls.load(Ordering::Relaxed), calls_before);

    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Authorisation per export and imports from their peer alone: `ops` holds a certificate of
/// the lab's CA but is allowed nothing — it gets no spec, runs no call, and the frames and
/// liveliness token it forges under the camera host's keys never reach `gui`'s import.
#[test]
fn an_authenticated_peer_that_is_not_allowed_gets_nothing_and_forges_nothing() {
    let dir = std::env::temp_dir().join(name("acl"));
    std::fs::create_dir_all(&dir).unwrap();
    make_ca(&dir, "lab-ca");
    for cn in ["camhost", "gui", "ops"] {
        make_cert(&dir, "lab-ca", cn);
    }
    let (src, dst, bad) = (name("acl-a"), name("acl-b"), name("acl-x"));
    let _segs = Segs(vec![src.clone(), dst.clone(), bad.clone()]);
    let source = Source::start(&src);

    let (ep_a, ep_b) = (
        format!("tls/localhost:{}", free_port()),
        format!("tls/localhost:{}", free_port()),
    );
    let config = |cn: &str| tls_config(&dir, "lab-ca", Some(cn));
    let (export, export_cmd) = (format!("{src}/cam@gui"), format!("{src}/dm@gui"));
    let a_config = config("camhost");
    let mut a = Proc(spawn(&[
        "--host",
        "camhost",
        "--zenoh-config",
        a_config.to_str().unwrap(),
        "--listen",
        &ep_a,
        "--export",
        &export,
        "--export-cmd",
        &export_cmd,
    ]));
    up(&mut a.0);
    let b_config = config("gui");
    let (import, import_cmd) = (
        format!("camhost/{src}/cam={dst}/cam@camhost"),
        format!("camhost/{src}/dm={dst}/dm@camhost"),
    );
    let mut b = Proc(spawn(&[
        "--host",
        "gui",
        "--zenoh-config",
        b_config.to_str().unwrap(),
        "--connect",
        &ep_a,
        "--listen",
        &ep_b,
        "--import",
        &import,
        "--import-cmd",
        &import_cmd,
    ]));
    up(&mut b.0);
    let local: FrameRing = Segment::open(&dst).unwrap().open("cam").unwrap();
    let mut reader = local.reader(ReadMode::NewestOnly).unwrap();
    eventually(
        "frames reach the allowed peer",
        Duration::from_secs(10),
        || reader.next(Duration::from_millis(100)).is_ok(),
    );
    let local_dm: CommandRing = Segment::open(&dst).unwrap().open("dm").unwrap();
    assert_eq!(local_dm.call(b"hi", Duration::from_secs(5)).unwrap(), b"hi");
    let calls_before = source.calls.load(Ordering::Relaxed);

    // `ops` is authenticated but allowed nothing: no spec, so no import and no call.
    let ops_config = config("ops");
    for (flag, what) in [("--import", "cam"), ("--import-cmd", "dm")] {
        let import = format!("camhost/{src}/{what}={bad}/{what}");
        let (code, err) = exit_of(spawn(&[
            "--host",
            "ops",
            "--zenoh-config",
            ops_config.to_str().unwrap(),
            "--connect",
            &ep_a,
            flag,
            &import,
        ]));
        assert_eq!(code, Some(1), "{flag}: {err}");
        assert!(err.contains("@spec"), "{flag}: {err}");
    }
    assert!(Segment::open(&bad).is_err(), "nothing was made for ops");
    assert_eq!(
        source.calls.load(Ordering::Relaxed),
        calls_before,
        "no call ran"
    );

    // `ops` forges the camera's frames and its bridge token at `gui`.
    let ops = zenoh::open(
        shmkit_zenoh::BridgeConfig {
            zenoh_config: Some(ops_config.display().to_string()),
            connect: vec![ep_b.clone()],
            ..shmkit_zenoh::BridgeConfig::default()
        }
        .zenoh()
        .unwrap(),
    )
    .wait()
    .unwrap();
    let _forged_token = ops
        .liveliness()
        .declare_token("shmkit/camhost/@bridge/forged")
        .wait()
        .unwrap();
    let payload = vec![0u8; 16 * 16 * 2];
    let forged = shmkit_zenoh::header::FrameHeader {
        elem: ElemType::U16,
        shape: vec![16, 16],
        id: 1,
        ts_ns: 1,
        user: [0xF0_12_6E_D0, 0, 0, 0, 0],
        seq: 1,
        skipped: 0,
        checksum: shmkit_zenoh::header::checksum(&payload),
        len: payload.len() as u64,
    };
    let before = status(&dst, "cam").unwrap();
    for _ in 0..20 {
        ops.put(format!("shmkit/camhost/{src}/frames/cam"), payload.clone())
            .attachment(forged.encode().to_vec())
            .wait()
            .unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(500) {
        if let Ok(f) = reader.next(Duration::from_millis(50)) {
            assert_ne!(f.user(0), 0xF0_12_6E_D0, "a forged frame was published");
        }
    }
    let after = status(&dst, "cam").unwrap();
    assert_eq!(after.rejected, before.rejected, "dropped by Zenoh, unseen");

    // The camera host goes: its link goes down, whatever ops's forged token says.
    drop(a);
    eventually("the link goes down", Duration::from_secs(5), || {
        status(&dst, "cam").is_some_and(|s| s.up == 0)
    });

    drop((b, ops));
    let _ = std::fs::remove_dir_all(&dir);
}

/// User and password over TLS: a peer with the right password imports, a wrong password gets
/// nothing. (The listener holds the dictionary; TLS without client certificates encrypts.)
#[test]
fn a_password_over_tls_lets_a_peer_in_and_a_wrong_one_is_refused() {
    let dir = std::env::temp_dir().join(name("usrpwd"));
    std::fs::create_dir_all(&dir).unwrap();
    make_ca(&dir, "lab-ca");
    make_cert(&dir, "lab-ca", "camhost");
    std::fs::write(dir.join("users.txt"), "gui:right-horse-battery\n").unwrap();
    let p = |f: &str| dir.join(f).display().to_string();
    let write = |file: &str, config: serde_json::Value| {
        std::fs::write(dir.join(file), config.to_string()).unwrap();
        p(file)
    };
    let a_config = write(
        "camhost.json5",
        serde_json::json!({"transport": {
            "link": {"tls": {
                "root_ca_certificate": p("lab-ca.pem"),
                "listen_private_key": p("camhost.key"),
                "listen_certificate": p("camhost.pem"),
            }},
            "auth": {"usrpwd": {"dictionary_file": p("users.txt")}},
        }}),
    );
    let peer_config = |file: &str, password: &str| {
        write(
            file,
            serde_json::json!({"transport": {
                "link": {"tls": {"root_ca_certificate": p("lab-ca.pem")}},
                "auth": {"usrpwd": {"user": "gui", "password": password}},
            }}),
        )
    };
    let (src, dst, bad) = (name("pw-a"), name("pw-b"), name("pw-x"));
    let _segs = Segs(vec![src.clone(), dst.clone(), bad.clone()]);
    let seg = Segment::create(&src, &CreateOptions::new(4 << 20)).unwrap();
    let ring = seg
        .frame_ring("cam", &FrameSpec::new(4, ElemType::U16, &[8, 8]))
        .unwrap();
    let ep = format!("tls/localhost:{}", free_port());
    let export = format!("{src}/cam");
    let mut a = Proc(spawn(&[
        "--host",
        "camhost",
        "--zenoh-config",
        &a_config,
        "--listen",
        &ep,
        "--export",
        &export,
    ]));
    up(&mut a.0);

    let wrong = peer_config("wrong.json5", "wrong-password");
    let import = format!("camhost/{src}/cam={bad}/cam");
    let (code, err) = exit_of(spawn(&[
        "--host",
        "gui",
        "--zenoh-config",
        &wrong,
        "--connect",
        &ep,
        "--import",
        &import,
    ]));
    assert_eq!(code, Some(1), "a wrong password: {err}");
    assert!(err.contains("@spec"), "{err}");
    assert!(Segment::open(&bad).is_err(), "nothing was made");

    let right = peer_config("right.json5", "right-horse-battery");
    let import = format!("camhost/{src}/cam={dst}/cam");
    let mut b = Proc(spawn(&[
        "--host",
        "gui",
        "--zenoh-config",
        &right,
        "--connect",
        &ep,
        "--import",
        &import,
    ]));
    up(&mut b.0);
    let local: FrameRing = Segment::open(&dst).unwrap().open("cam").unwrap();
    let mut reader = local.reader(ReadMode::NewestOnly).unwrap();
    let mut w = ring.writer().unwrap();
    eventually(
        "frames arrive with the right password",
        Duration::from_secs(10),
        || {
            w.try_claim().unwrap().publish();
            reader.next(Duration::from_millis(100)).is_ok()
        },
    );
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}
