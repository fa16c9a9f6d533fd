//! Device servers and the device cache, with real server processes: exactly-once start under
//! a race, a killed server reported and restarted, a forced close past a client holding the
//! device's mutex, an open failure's message, the owner's death closing the device, and the
//! simulated camera seeing the simulated mirror.
//!
//! Own `main` (no libtest harness): device servers are children of this program, dispatched at
//! the top of `main`.

#[path = "common/mod.rs"]
mod common;
#[path = "common/own_main.rs"]
mod own_main;

use shmkit::process::{ChildContext, Entries};
use shmkit::rings::ReadMode;
use shmkit::{CreateOptions, Segment};
use shmkit_devices::{DeviceCache, DeviceError, DeviceState, RestartPolicy};
use shmkit_sim::{
    aberration, CameraCommand, CameraReply, DmCommand, DmReply, SimCamera, SimCameraConfig, SimDm,
    SimDmConfig,
};
use std::time::{Duration, Instant};

shmkit_devices::devices! {
    /// The bench these tests run.
    pub struct Bench {
        /// A camera seeing the mirror.
        Camera: SimCamera = SimCameraConfig {
            dm: Some("Dm".into()),
            rate_hz: 500.0,
            ..SimCameraConfig::default()
        },
        /// The mirror.
        Dm: SimDm = SimDmConfig::default(),
    }
}

type Never = std::convert::Infallible;

fn segment(test: &str) -> Segment {
    let name = format!("shmkit-test-dev-{test}-{}", std::process::id());
    let _ = Segment::unlink(&name);
    Segment::create(&name, &CreateOptions::new(32 << 20)).unwrap()
}

fn finish(seg: Segment, cache: &DeviceCache) {
    let failures = cache.close_all(Bench::NAMES, Duration::from_secs(2));
    assert!(failures.is_empty(), "{failures:?}");
    let name = seg.name().to_owned();
    drop(seg);
    let _ = Segment::unlink(&name);
}

fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid as libc::pid_t, 0) == 0 };
    exists
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

/// Child: waits for the others at a barrier, then asks for the camera and records which
/// server answered.
fn requester(ctx: &ChildContext, index: u32) -> Result<(), DeviceError> {
    let seg = ctx.segment();
    seg.barrier("go", 4)
        .unwrap()
        .wait(Duration::from_secs(10))
        .unwrap();
    let camera = Bench::Camera.client(seg)?;
    let reply = camera.call(&CameraCommand::Stats)?;
    assert!(matches!(reply, CameraReply::Stats { .. }));
    let pid = camera.status()?.pid;
    seg.dict("pids", 16)
        .unwrap()
        .insert(&format!("{index}"), &pid)
        .unwrap();
    Ok(())
}

fn four_processes_requesting_the_camera_start_one_server() {
    let seg = segment("race");
    let cache = DeviceCache::new(&seg).own().unwrap();
    let mut children: Vec<_> = (0u32..4)
        .map(|i| shmkit::process::spawn(&seg, "requester", &i).unwrap())
        .collect();
    for c in &mut children {
        c.join(Duration::from_secs(20)).unwrap();
    }
    let pids = seg.dict("pids", 16).unwrap();
    let seen: Vec<u32> = (0..4)
        .map(|i| pids.get(&format!("{i}")).unwrap().unwrap())
        .collect();
    assert!(seen.iter().all(|&p| p == seen[0] && p != 0), "{seen:?}");
    let status = cache.status("Camera").unwrap();
    assert_eq!(status.starts, 1, "servers started: {status:?}");
    assert_eq!(status.state, DeviceState::Running);
    finish(seg, &cache);
}

fn a_killed_server_is_reported_within_100ms_and_restart_works() {
    let seg = segment("crash");
    let cache = DeviceCache::new(&seg).own().unwrap();
    let dm = Bench::Dm.client_in(&cache).unwrap();
    dm.call(&DmCommand::Zero).unwrap();
    let pid = dm.status().unwrap().pid;
    // SAFETY: killing the server process we just started.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    let t = Instant::now();
    let err = loop {
        match dm.call(&DmCommand::Get) {
            Err(e) => break e,
            Ok(_) => assert!(t.elapsed() < Duration::from_secs(1), "calls still answered"),
        }
    };
    let noticed = t.elapsed();
    assert!(
        matches!(err, DeviceError::Crashed { pid: p, .. } if p == pid),
        "{err}"
    );
    assert!(
        noticed < Duration::from_millis(100),
        "noticed after {noticed:?}"
    );
    assert_eq!(cache.status("Dm").unwrap().state, DeviceState::Crashed);
    // The default policy reports the crash instead of restarting.
    assert!(matches!(
        Bench::Dm.client_in(&cache),
        Err(DeviceError::Crashed { .. })
    ));
    let dm = cache.restart::<SimDm>("Dm", &Bench::Dm.config()).unwrap();
    assert!(matches!(dm.call(&DmCommand::Get).unwrap(), DmReply::Shape(v) if v.len() == 144));
    let status = cache.status("Dm").unwrap();
    assert_ne!(status.pid, pid);
    assert_eq!(status.starts, 2);
    finish(seg, &cache);
}

/// Child: holds the mirror's mutex and sleeps.
fn holder(ctx: &ChildContext, _: ()) -> Result<(), Never> {
    let dm = Bench::Dm.client(ctx.segment()).unwrap();
    let _guard = dm.lock().unwrap();
    ctx.segment().event("held").unwrap().set();
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}

fn a_forced_close_gets_past_a_client_holding_the_mutex() {
    let seg = segment("force");
    let cache = DeviceCache::new(&seg).own().unwrap();
    let dm = Bench::Dm.client_in(&cache).unwrap();
    let pid = dm.status().unwrap().pid;
    let mut child = shmkit::process::spawn(&seg, "holder", &()).unwrap();
    assert!(seg.event("held").unwrap().wait(Duration::from_secs(10)));
    // A call now waits for the mutex: the holder is stuck.
    let stuck = dm
        .clone()
        .with_timeout(Duration::from_millis(50))
        .call(&DmCommand::Get);
    assert!(matches!(stuck, Err(DeviceError::Lock(_))), "{stuck:?}");
    let t = Instant::now();
    let status = cache.close("Dm", Duration::from_secs(2)).unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "close took {:?}",
        t.elapsed()
    );
    assert_eq!(status.state, DeviceState::Closed, "{status:?}");
    assert!(!pid_alive(pid), "the server still runs");
    child.kill().unwrap();
    let _ = child.join(Duration::from_secs(5));
    finish(seg, &cache);
}

/// A call waiting for the device's mutex (held by another process) ends when its interrupt
/// says so — typed, within 100 ms, nothing sent — even with no deadline.
fn an_interrupted_call_gives_up_waiting_for_the_device() {
    let seg = segment("interrupt");
    let cache = DeviceCache::new(&seg).own().unwrap();
    let dm = Bench::Dm.client_in(&cache).unwrap();
    let mut child = shmkit::process::spawn(&seg, "holder", &()).unwrap();
    assert!(seg.event("held").unwrap().wait(Duration::from_secs(10)));
    let (got, after) = interrupted_while_asleep(|stop| {
        dm.call_interruptible(&DmCommand::Get, shmkit::Timeout::Forever, stop)
    });
    assert!(
        matches!(
            got,
            Err(DeviceError::Lock(shmkit::LockError::Interrupted { .. }))
        ),
        "{got:?}"
    );
    assert!(
        after < Duration::from_millis(100),
        "gave up {after:?} after the interrupt"
    );
    child.kill().unwrap();
    let _ = child.join(Duration::from_secs(5));
    finish(seg, &cache);
}

/// Runs `wait` with an interrupt that says stop once this thread sleeps in it; returns what
/// `wait` returned and how long after the interrupt it did (the contract: within 100 ms).
fn interrupted_while_asleep<R>(wait: impl FnOnce(&dyn shmkit::Interrupt) -> R) -> (R, Duration) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let flag = AtomicBool::new(false);
    let said = std::sync::OnceLock::new();
    let me = common::gettid();
    let got = std::thread::scope(|s| {
        s.spawn(|| {
            common::wait_until_asleep(me, Duration::from_secs(10));
            said.set(Instant::now()).unwrap();
            flag.store(true, Ordering::Relaxed);
        });
        wait(&|| flag.load(Ordering::Relaxed))
    });
    let after = said.get().expect("the interrupt was given").elapsed();
    (got, after)
}

/// `lock_interruptible` on a device another process holds ends when told, typed.
fn an_interrupted_device_lock_gives_up_within_100ms() {
    let seg = segment("lock-intr");
    let cache = DeviceCache::new(&seg).own().unwrap();
    let dm = Bench::Dm.client_in(&cache).unwrap();
    let mut child = shmkit::process::spawn(&seg, "holder", &()).unwrap();
    assert!(seg.event("held").unwrap().wait(Duration::from_secs(10)));
    let (got, after) = interrupted_while_asleep(|stop| {
        dm.lock_interruptible(shmkit::Timeout::Forever, stop)
            .map(|_| ())
    });
    assert!(
        matches!(
            got,
            Err(DeviceError::Lock(shmkit::LockError::Interrupted { .. }))
        ),
        "{got:?}"
    );
    assert!(
        after < Duration::from_millis(100),
        "returned {after:?} after the interrupt"
    );
    child.kill().unwrap();
    let _ = child.join(Duration::from_secs(5));
    finish(seg, &cache);
}

/// `get_interruptible` waiting for another starter of the device ends when told.
fn an_interrupted_get_gives_up_waiting_for_a_start_within_100ms() {
    let seg = segment("get-intr");
    let cache = DeviceCache::new(&seg).own().unwrap();
    // Another starter holds the device's start lock (a thread here: the lock is per thread).
    let start = seg.mutex("dev/Dm/start").unwrap();
    let (taken, release) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    std::thread::scope(|s| {
        s.spawn(|| {
            let _held = start.lock(shmkit::DEFAULT_LOCK_TIMEOUT).unwrap();
            taken.wait();
            release.wait();
        });
        taken.wait();
        let (got, after) = interrupted_while_asleep(|stop| {
            cache
                .get_interruptible::<SimDm>("Dm", &Bench::Dm.config(), stop)
                .map(|_| ())
        });
        release.wait();
        assert!(
            matches!(got, Err(DeviceError::Interrupted { .. })),
            "{got:?}"
        );
        assert!(
            after < Duration::from_millis(100),
            "returned {after:?} after the interrupt"
        );
    });
    assert_eq!(
        cache.status("Dm").unwrap().state,
        DeviceState::Closed,
        "nothing was started"
    );
    finish(seg, &cache);
}

/// `close_interruptible` waiting for a server that cannot close (stopped) ends when told;
/// the server, resumed, still closes as it was asked to.
fn an_interrupted_close_gives_up_within_100ms_and_the_server_still_closes() {
    let seg = segment("close-intr");
    let cache = DeviceCache::new(&seg).own().unwrap();
    Bench::Dm.client_in(&cache).unwrap();
    let pid = cache.status("Dm").unwrap().pid as libc::pid_t;
    // SAFETY: signalling our own server child, which is alive (its status says running).
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let (got, after) = interrupted_while_asleep(|stop| {
        cache
            .close_interruptible("Dm", Duration::from_secs(60), stop)
            .map(|_| ())
    });
    assert!(
        matches!(got, Err(DeviceError::Interrupted { .. })),
        "{got:?}"
    );
    assert!(
        after < Duration::from_millis(100),
        "returned {after:?} after the interrupt"
    );
    // SAFETY: as above; the server is stopped, not reaped.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let status = cache.close("Dm", Duration::from_secs(10)).unwrap();
    assert_eq!(status.state, DeviceState::Closed, "{status:?}");
    finish(seg, &cache);
}

/// The one owner-died contract for devices: a call that finds the device's mutex abandoned
/// by a dead client does not run, says who died, and a retry runs; `lock()` hands the
/// outcome to the caller as any mutex does.
fn a_client_killed_holding_the_device_mutex_is_reported_and_the_retry_runs() {
    let seg = segment("clientdied");
    let cache = DeviceCache::new(&seg).own().unwrap();
    let dm = Bench::Dm.client_in(&cache).unwrap();
    for lock_style in [false, true] {
        let held = seg.event("held").unwrap();
        held.clear();
        let mut child = shmkit::process::spawn(&seg, "holder", &()).unwrap();
        let pid = child.pid();
        assert!(held.wait(Duration::from_secs(10)));
        child.kill().unwrap();
        let _ = child.join(Duration::from_secs(5));
        if lock_style {
            match dm.lock().unwrap() {
                shmkit::Acquired::OwnerDied(g) => {
                    assert_eq!(g.previous_owner().map(|p| p.pid), Some(pid));
                    drop(g.make_consistent());
                }
                shmkit::Acquired::Locked(_) => panic!("the death was not reported"),
            }
        } else {
            match dm.call(&DmCommand::Get) {
                Err(DeviceError::OwnerDied {
                    previous: Some(p), ..
                }) => assert_eq!(p.pid, pid),
                other => panic!("expected OwnerDied, got {other:?}"),
            }
        }
        assert!(matches!(dm.call(&DmCommand::Get), Ok(DmReply::Shape(_))));
    }
    finish(seg, &cache);
}

fn an_open_failure_reaches_the_first_caller_with_its_message() {
    let seg = segment("openfail");
    let cache = DeviceCache::new(&seg).own().unwrap();
    let config = SimDmConfig {
        fail_open: Some("no deformable mirror on /dev/dm0".into()),
        ..SimDmConfig::default()
    };
    let err = cache.get::<SimDm>("Broken", &config).unwrap_err();
    match &err {
        DeviceError::OpenFailed { device, message } => {
            assert_eq!(device, "Broken");
            assert!(
                message.contains("no deformable mirror on /dev/dm0"),
                "{message}"
            );
        }
        other => panic!("expected OpenFailed, got {other}"),
    }
    let status = cache.status("Broken").unwrap();
    assert_eq!(status.state, DeviceState::Closed);
    assert!(status.message.contains("/dev/dm0"), "{status:?}");
    finish(seg, &cache);
}

/// Child: becomes the devices' owner, starts the mirror, records its server, sleeps.
fn owner(ctx: &ChildContext, _: ()) -> Result<(), Never> {
    let cache = DeviceCache::new(ctx.segment()).own().unwrap();
    let dm = Bench::Dm.client_in(&cache).unwrap();
    dm.call(&DmCommand::Set {
        values: vec![0.5; 144],
        tag: 1,
    })
    .unwrap();
    ctx.segment()
        .dict("owner", 4)
        .unwrap()
        .insert("server", &dm.status().unwrap().pid)
        .unwrap();
    ctx.segment().event("owned").unwrap().set();
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}

fn the_owner_killed_closes_the_device_within_1s() {
    let seg = segment("owner");
    let mut child = shmkit::process::spawn(&seg, "owner", &()).unwrap();
    assert!(seg.event("owned").unwrap().wait(Duration::from_secs(10)));
    let server: u32 = seg
        .dict("owner", 4)
        .unwrap()
        .get("server")
        .unwrap()
        .unwrap();
    child.kill().unwrap();
    let t = Instant::now();
    while pid_alive(server) {
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "server alive after {:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let cache = DeviceCache::new(&seg);
    let status = cache.status("Dm").unwrap();
    assert_eq!(
        status.state,
        DeviceState::Closed,
        "closed, not crashed: {status:?}"
    );
    // The mirror went to its safe (flat) state on the way out.
    let reader = cache.segment().lookup("dev/Dm/shape").unwrap().unwrap();
    let ring = seg
        .attach::<shmkit::rings::FrameRing>(reader.offset)
        .unwrap();
    let mut r = ring.reader(ReadMode::NewestOnly).unwrap();
    let frame = r.latest().unwrap().unwrap();
    assert!(frame.typed::<f32>().unwrap().iter().all(|&v| v == 0.0));
    drop(frame);
    drop(r);
    let _ = child.join(Duration::from_secs(5));
    finish(seg, &cache);
}

/// Mean distance of each sub-aperture's spot (intensity centroid) from its centre, pixels.
fn mean_spot_offset(image: &[u16], subs: usize, pix: usize) -> f32 {
    let width = subs * pix;
    let mut total = 0.0;
    for sy in 0..subs {
        for sx in 0..subs {
            let (mut sum, mut mx, mut my) = (0.0f32, 0.0f32, 0.0f32);
            for y in 0..pix {
                for x in 0..pix {
                    let v = f32::from(image[(sy * pix + y) * width + sx * pix + x]) - 100.0;
                    sum += v;
                    mx += v * x as f32;
                    my += v * y as f32;
                }
            }
            let c = pix as f32 / 2.0 - 0.5;
            total += ((mx / sum - c).powi(2) + (my / sum - c).powi(2)).sqrt();
        }
    }
    total / (subs * subs) as f32
}

fn the_camera_sees_the_mirror_flatten_the_wavefront() {
    let seg = segment("optics");
    let cache = DeviceCache::new(&seg).own().unwrap();
    let dm = Bench::Dm.client_in(&cache).unwrap();
    let camera = Bench::Camera.client_in(&cache).unwrap();
    let mut frames = camera.frames("frames", ReadMode::NewestOnly).unwrap();
    let offset_now = |frames: &mut shmkit::rings::FrameReader| {
        // Two frames: the second was rendered after the last mirror change.
        frames.next(Duration::from_secs(2)).unwrap();
        let f = frames.next(Duration::from_secs(2)).unwrap();
        mean_spot_offset(f.typed::<u16>().unwrap(), 16, 8)
    };
    let aberrated = offset_now(&mut frames);
    // The mirror at minus half the aberration, sampled at its actuators.
    let n = 12;
    let values: Vec<f32> = (0..n * n)
        .map(|i| {
            let (c, r) = (i % n, i / n);
            let (x, y) = (c as f32 / 11.0 * 2.0 - 1.0, r as f32 / 11.0 * 2.0 - 1.0);
            -aberration(x, y) / 2.0
        })
        .collect();
    dm.call(&DmCommand::Set { values, tag: 7 }).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let corrected = offset_now(&mut frames);
    assert!(
        corrected < aberrated * 0.3,
        "spots moved {aberrated} px before, {corrected} px after correction"
    );
    finish(seg, &cache);
}

fn the_ao_camera_publishes_its_truth_and_refuses_bad_settings() {
    use shmkit_sim::ao::AoConfig;
    let seg = segment("ao");
    let cache = DeviceCache::new(&seg).own().unwrap();
    let ao = AoConfig {
        diameter: 8.0 / 3.0,
        outer_scale: 10.0,
        ..AoConfig::default()
    };
    let config = SimCameraConfig {
        subapertures: 8,
        rate_hz: 500.0,
        dm_actuators: 9,
        ao: Some(ao.clone()),
        ..SimCameraConfig::default()
    };
    let camera = cache.get::<SimCamera>("AoCam", &config).unwrap();
    let mut frames = camera.frames("frames", ReadMode::OldestFirst).unwrap();
    let truth = |frames: &mut shmkit::rings::FrameReader| {
        let f = frames.next(Duration::from_secs(2)).unwrap();
        (f64::from_bits(f.user(3)), f.user(4))
    };
    let (turbulent, t0) = truth(&mut frames);
    let (_, t1) = truth(&mut frames);
    assert!(turbulent > 50.0, "{turbulent} nm of turbulence over 2.7 m");
    assert_eq!(
        t1 - t0,
        2_000_000,
        "simulated time advances one period a frame"
    );
    camera.call(&CameraCommand::Turbulence(false)).unwrap();
    // Frames already in the ring were rendered before the switch.
    let mut flat = f64::MAX;
    for _ in 0..20 {
        flat = truth(&mut frames).0;
        if flat < 1e-3 {
            break;
        }
    }
    assert!(
        flat < 1e-3,
        "{flat} nm with turbulence off and a flat mirror"
    );
    let err = camera.call(&CameraCommand::Photons(-1.0)).unwrap_err();
    assert!(err.to_string().contains("photo-electrons"), "{err}");
    let mismatched = SimCameraConfig {
        dm_actuators: 12,
        ..config.clone()
    };
    match cache.get::<SimCamera>("AoCam2", &mismatched).unwrap_err() {
        DeviceError::OpenFailed { message, .. } => {
            assert!(message.contains("needs a mirror of 9"), "{message}")
        }
        other => panic!("expected an open failure, got {other:?}"),
    }
    let toy = cache
        .get::<SimCamera>("Toy", &SimCameraConfig::default())
        .unwrap();
    let err = toy.call(&CameraCommand::Turbulence(true)).unwrap_err();
    assert!(err.to_string().contains("AO mode"), "{err}");
    for name in ["AoCam", "Toy"] {
        assert!(cache.close_all(&[name], Duration::from_secs(2)).is_empty());
    }
    finish(seg, &cache);
}

fn a_hard_limit_puts_the_mirror_in_its_fail_safe_state() {
    let seg = segment("failsafe");
    let cache = DeviceCache::new(&seg).own().unwrap();
    let config = SimDmConfig {
        hard_limit: Some(1.5),
        ..SimDmConfig::default()
    };
    let dm = cache.get::<SimDm>("Dm", &config).unwrap();
    let mut values = vec![0.2f32; 144];
    dm.call(&DmCommand::Set {
        values: values.clone(),
        tag: 1,
    })
    .unwrap();
    values[117] = 1.7;
    let err = dm.call(&DmCommand::Set { values, tag: 2 }).unwrap_err();
    assert!(err.to_string().contains("actuator 117"), "{err}");
    let status = cache.status("Dm").unwrap();
    assert_eq!(status.state, DeviceState::FailSafe, "{status:?}");
    assert!(status.message.contains("hard limit 1.5"), "{status:?}");
    assert!(matches!(
        dm.call(&DmCommand::Get),
        Err(DeviceError::FailSafe { .. })
    ));
    // Safe means flat.
    let mut shape = dm.frames("shape", ReadMode::NewestOnly).unwrap();
    let frame = shape.latest().unwrap().unwrap();
    assert!(frame.typed::<f32>().unwrap().iter().all(|&v| v == 0.0));
    drop(frame);
    drop(shape);
    // Closing and starting again clears it.
    cache.close("Dm", Duration::from_secs(2)).unwrap();
    let dm = cache.get::<SimDm>("Dm", &config).unwrap();
    assert!(matches!(dm.call(&DmCommand::Get), Ok(DmReply::Shape(_))));
    finish(seg, &cache);
}

fn a_command_over_the_message_limit_is_refused_before_it_is_sent() {
    let seg = segment("toolarge");
    let cache = DeviceCache::new(&seg).own().unwrap();
    let dm = cache.get::<SimDm>("Dm", &SimDmConfig::default()).unwrap();
    // 20 000 f32 values: about 80 KB encoded, over the mirror's 64 KiB limit.
    let err = dm
        .call(&DmCommand::Set {
            values: vec![0.0; 20_000],
            tag: 7,
        })
        .unwrap_err();
    match &err {
        DeviceError::RequestTooLarge { size, limit, .. } => {
            assert_eq!(*limit, 64 * 1024);
            assert!(*size > u64::from(*limit), "{err}");
        }
        other => panic!("expected RequestTooLarge, got {other:?}"),
    }
    assert!(
        err.to_string().contains("65536-byte message limit"),
        "{err}"
    );
    // Not sent: the mirror's shape frame was never published with that tag, and it still
    // answers.
    let mut shape = dm.frames("shape", ReadMode::NewestOnly).unwrap();
    if let Some(frame) = shape.latest().unwrap() {
        assert_ne!(frame.user(0), 7);
    }
    drop(shape);
    assert!(matches!(dm.call(&DmCommand::Get), Ok(DmReply::Shape(_))));
    finish(seg, &cache);
}

fn the_on_access_policy_restarts_a_crashed_server() {
    let seg = segment("onaccess");
    let cache = DeviceCache::new(&seg)
        .own()
        .unwrap()
        .with_restart_policy(RestartPolicy::OnAccess);
    let pid = Bench::Dm.client_in(&cache).unwrap().status().unwrap().pid;
    // SAFETY: killing the server process we just started.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    let t = Instant::now();
    while pid_alive(pid) {
        assert!(t.elapsed() < Duration::from_secs(2));
        std::thread::sleep(Duration::from_millis(1));
    }
    let dm = Bench::Dm.client_in(&cache).unwrap();
    assert!(matches!(
        dm.call(&DmCommand::Get).unwrap(),
        DmReply::Shape(_)
    ));
    let status = dm.status().unwrap();
    assert_ne!(status.pid, pid);
    assert_eq!(status.starts, 2);
    finish(seg, &cache);
}

fn sigterm_closes_the_device_safely() {
    let seg = segment("sigterm");
    let cache = DeviceCache::new(&seg).own().unwrap();
    let dm = Bench::Dm.client_in(&cache).unwrap();
    dm.call(&DmCommand::Set {
        values: vec![0.3; 144],
        tag: 1,
    })
    .unwrap();
    let pid = dm.status().unwrap().pid;
    // SAFETY: signalling the server process we started.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let t = Instant::now();
    while pid_alive(pid) {
        assert!(t.elapsed() < Duration::from_secs(1), "SIGTERM ignored");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        dm.status().unwrap().state,
        DeviceState::Closed,
        "closed, not crashed"
    );
    let mut shape = dm.frames("shape", ReadMode::NewestOnly).unwrap();
    let frame = shape.latest().unwrap().unwrap();
    assert!(
        frame.typed::<f32>().unwrap().iter().all(|&v| v == 0.0),
        "not flat"
    );
    drop(frame);
    drop(shape);
    finish(seg, &cache);
}

/// A server whose heartbeat stops (the process stopped by SIGSTOP: alive, but not running)
/// is reported unresponsive once its heartbeat is older than 1 s — not before, and not as
/// crashed — and running again once it resumes.
fn a_stopped_server_is_unresponsive_after_1s_and_running_again_when_it_resumes() {
    let seg = segment("stopped");
    let cache = DeviceCache::new(&seg).own().unwrap();
    let dm = Bench::Dm.client_in(&cache).unwrap();
    dm.call(&DmCommand::Zero).unwrap();
    let pid = dm.status().unwrap().pid;
    // SAFETY: signalling the server process we started.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
    let stopped = Instant::now();
    let state = || cache.status("Dm").unwrap().state;
    let mut seen_running = false;
    while state() != DeviceState::Unresponsive {
        let s = state();
        assert_eq!(s, DeviceState::Running, "a stopped server is not {s:?}");
        seen_running = true;
        assert!(
            stopped.elapsed() < Duration::from_secs(3),
            "never reported unresponsive"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let after = stopped.elapsed();
    // The heartbeat was at most 50 ms old when the process stopped.
    assert!(
        seen_running && after >= Duration::from_millis(950),
        "unresponsive after only {after:?}"
    );
    // SAFETY: as above.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
    let resumed = Instant::now();
    while state() != DeviceState::Running {
        assert!(
            resumed.elapsed() < Duration::from_secs(1),
            "still {:?} after resuming",
            state()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(matches!(dm.call(&DmCommand::Get).unwrap(), DmReply::Shape(v) if v.len() == 144));
    finish(seg, &cache);
}

/// A command computed from a frame: its cause's instants, injected by the test, come back as
/// the device's per-stage latencies (the histograms' maxima are exact); a call without a
/// cause, a refused caused call and the plain call after it add nothing.
fn a_caused_command_fills_the_devices_stage_histograms_with_its_instants() {
    use shmkit::os::clock::monotonic_ns;
    use shmkit_devices::{stage_histogram, Cause};
    let seg = segment("cause");
    let cache = DeviceCache::new(&seg).own().unwrap();
    let dm = cache.get::<SimDm>("Dm", &SimDmConfig::default()).unwrap();
    let stage = |name: &str| seg.histogram(&stage_histogram("Dm", name)).unwrap();
    let (publish_to_held, held_to_sent, sent_to_applied, whole) = (
        stage("publish-to-held"),
        stage("held-to-sent"),
        stage("sent-to-applied"),
        stage("publish-to-applied"),
    );
    assert!(dm.call(&DmCommand::Zero).is_ok());
    assert_eq!(publish_to_held.snapshot().count(), 0, "no cause, no sample");
    let before = monotonic_ns();
    let cause = Cause {
        frame_id: 42,
        published_ns: before - 3_000_000,
        held_ns: before - 1_000_000,
    };
    dm.call_caused(&DmCommand::Zero, &cause).unwrap();
    let after = monotonic_ns();
    for h in [&publish_to_held, &held_to_sent, &sent_to_applied, &whole] {
        assert_eq!(h.snapshot().count(), 1);
    }
    // Exactly the injected 2 ms; the others bounded by what the test saw around the call.
    assert_eq!(publish_to_held.snapshot().max(), 2_000_000);
    let sent = held_to_sent.snapshot().max();
    assert!(
        (1_000_000..=1_000_000 + (after - before)).contains(&sent),
        "{sent}"
    );
    let applied = sent_to_applied.snapshot().max();
    assert!(applied <= after - before, "{applied}");
    assert_eq!(
        whole.snapshot().max(),
        3_000_000 + (sent - 1_000_000) + applied
    );
    // A refused call files nothing; the next plain call inherits nothing.
    let refused = dm.call_caused(
        &DmCommand::Set {
            values: vec![0.0; 20_000],
            tag: 1,
        },
        &cause,
    );
    assert!(matches!(refused, Err(DeviceError::RequestTooLarge { .. })));
    dm.call(&DmCommand::Zero).unwrap();
    assert_eq!(publish_to_held.snapshot().count(), 1);
    finish(seg, &cache);
}

/// A cadence declared for a running camera's ring reaches its server within a heartbeat; the
/// server then counts the frames published past the deadline: (almost) none at its 100 Hz,
/// every one once the camera is slowed to 4 Hz.
fn a_device_server_counts_its_rings_late_frames_once_a_cadence_is_declared() {
    use shmkit::rings::Cadence;
    let seg = segment("cadence");
    let cache = DeviceCache::new(&seg).own().unwrap();
    // Small frames: a debug build renders them well within the period.
    let config = SimCameraConfig {
        rate_hz: 100.0,
        subapertures: 4,
        pixels: 4,
        ..SimCameraConfig::default()
    };
    let camera = cache.get::<SimCamera>("Camera", &config).unwrap();
    let mut frames = camera.frames("frames", ReadMode::NewestOnly).unwrap();
    frames.next(Duration::from_secs(5)).unwrap();
    let declared = Cadence {
        period: Duration::from_millis(10),
        deadline: Duration::from_millis(100),
    }
    .declare(&seg, "dev/Camera/frames")
    .unwrap();
    // Two heartbeats at most, then frames at speed: on time (the deadline is ten periods; a
    // host stall may make one late).
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        frames.next(Duration::from_secs(1)).unwrap();
    }
    let on_time = declared.late.snapshot();
    assert!(
        on_time.count() <= 2,
        "{} late frames at 100 Hz, the longest interval {} ns",
        on_time.count(),
        on_time.max()
    );
    camera.call(&CameraCommand::SetRate(4.0)).unwrap();
    let slowed = Instant::now();
    while declared.late.snapshot().count() < on_time.count() + 3 {
        assert!(
            slowed.elapsed() < Duration::from_secs(5),
            "no late frame counted at 4 Hz"
        );
        frames.next(Duration::from_secs(1)).unwrap();
    }
    let late = declared.late.snapshot();
    assert!(
        late.max() >= 200_000_000,
        "a 250 ms interval, counted as {} ns",
        late.max()
    );
    finish(seg, &cache);
}

fn main() {
    Bench::entries(Entries::new())
        .entry("requester", requester)
        .entry("holder", holder)
        .entry("owner", owner)
        .dispatch();

    let tests: [(&str, fn()); 19] = [
        (
            "a_device_server_counts_its_rings_late_frames_once_a_cadence_is_declared",
            a_device_server_counts_its_rings_late_frames_once_a_cadence_is_declared,
        ),
        (
            "a_caused_command_fills_the_devices_stage_histograms_with_its_instants",
            a_caused_command_fills_the_devices_stage_histograms_with_its_instants,
        ),
        (
            "an_interrupted_device_lock_gives_up_within_100ms",
            an_interrupted_device_lock_gives_up_within_100ms,
        ),
        (
            "an_interrupted_get_gives_up_waiting_for_a_start_within_100ms",
            an_interrupted_get_gives_up_waiting_for_a_start_within_100ms,
        ),
        (
            "an_interrupted_close_gives_up_within_100ms_and_the_server_still_closes",
            an_interrupted_close_gives_up_within_100ms_and_the_server_still_closes,
        ),
        (
            "a_command_over_the_message_limit_is_refused_before_it_is_sent",
            a_command_over_the_message_limit_is_refused_before_it_is_sent,
        ),
        (
            "a_stopped_server_is_unresponsive_after_1s_and_running_again_when_it_resumes",
            a_stopped_server_is_unresponsive_after_1s_and_running_again_when_it_resumes,
        ),
        (
            "the_ao_camera_publishes_its_truth_and_refuses_bad_settings",
            the_ao_camera_publishes_its_truth_and_refuses_bad_settings,
        ),
        (
            "an_interrupted_call_gives_up_waiting_for_the_device",
            an_interrupted_call_gives_up_waiting_for_the_device,
        ),
        (
            "a_client_killed_holding_the_device_mutex_is_reported_and_the_retry_runs",
            a_client_killed_holding_the_device_mutex_is_reported_and_the_retry_runs,
        ),
        (
            "four_processes_requesting_the_camera_start_one_server",
            four_processes_requesting_the_camera_start_one_server,
        ),
        (
            "a_killed_server_is_reported_within_100ms_and_restart_works",
            a_killed_server_is_reported_within_100ms_and_restart_works,
        ),
        (
            "a_forced_close_gets_past_a_client_holding_the_mutex",
            a_forced_close_gets_past_a_client_holding_the_mutex,
        ),
        (
            "an_open_failure_reaches_the_first_caller_with_its_message",
            an_open_failure_reaches_the_first_caller_with_its_message,
        ),
        (
            "the_owner_killed_closes_the_device_within_1s",
            the_owner_killed_closes_the_device_within_1s,
        ),
        (
            "the_camera_sees_the_mirror_flatten_the_wavefront",
            the_camera_sees_the_mirror_flatten_the_wavefront,
        ),
        (
            "a_hard_limit_puts_the_mirror_in_its_fail_safe_state",
            a_hard_limit_puts_the_mirror_in_its_fail_safe_state,
        ),
        (
            "the_on_access_policy_restarts_a_crashed_server",
            the_on_access_policy_restarts_a_crashed_server,
        ),
        (
            "sigterm_closes_the_device_safely",
            sigterm_closes_the_device_safely,
        ),
    ];
    own_main::run_tests(&tests);
}
