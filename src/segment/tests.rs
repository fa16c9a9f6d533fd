//! Single-process tests of segment creation, validation, allocation and attachment.
use super::*;
use shm_layout::{BlockKind, SegmentHeader};
use std::mem::offset_of;

/// A segment name unique to this test process and call site; unlinked on drop.
struct TempName(String);

impl TempName {
    fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempName(format!("shmkit-unit-{}-{tag}-{n}", std::process::id()))
    }
}

impl Drop for TempName {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

#[test]
fn create_then_open_sees_the_same_header() {
    let name = TempName::new("hdr");
    let seg = small(&name.0).unwrap();
    let other = Segment::open(&name.0).unwrap();
    assert_eq!(other.info().total_size, 64 * 1024);
    assert_eq!(other.info().creator, seg.info().creator);
    assert_eq!(other.info().version, (VERSION_MAJOR, VERSION_MINOR));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(format!("/dev/shm/{}", name.0))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "private by default");
}

/// 64 KiB with a small table and two exception slots.
fn small_options() -> CreateOptions {
    CreateOptions::new(64 * 1024)
        .table_capacity(64)
        .exception_slots(2)
}

/// A segment made with [`small_options`].
fn small(name: &str) -> Result<Segment, SegmentError> {
    Segment::create(name, &small_options())
}

fn name_posix(name: &str) -> std::ffi::CString {
    std::ffi::CString::new(format!("/{name}")).unwrap()
}

#[test]
fn create_refuses_an_existing_name_and_open_refuses_a_missing_one() {
    let name = TempName::new("excl");
    let _seg = small(&name.0).unwrap();
    assert!(matches!(
        Segment::create(&name.0, &small_options(),),
        Err(SegmentError::AlreadyExists { .. })
    ));
    let missing = TempName::new("missing");
    assert!(matches!(
        Segment::open(&missing.0),
        Err(SegmentError::NotFound { .. })
    ));
    assert!(matches!(
        Segment::open("bad/name"),
        Err(SegmentError::InvalidName { .. })
    ));
}

#[test]
fn open_or_create_creates_once_then_opens() {
    let name = TempName::new("ooc");
    let a = Segment::open_or_create(&name.0, &small_options()).unwrap();
    let m = a.mutex("mutex-1").unwrap();
    let b = Segment::open_or_create(&name.0, &small_options()).unwrap();
    assert_eq!(b.info().creator, a.info().creator);
    assert!(b.attach::<crate::Mutex>(m.offset().unwrap()).is_ok());
}

#[test]
fn bad_options_are_rejected() {
    let name = TempName::new("opts");
    assert!(matches!(
        Segment::create(&name.0, &CreateOptions::new(10)),
        Err(SegmentError::InvalidOption(_))
    ));
    assert!(matches!(
        Segment::create(&name.0, &CreateOptions::new(1 << 20).mode(0o400)),
        Err(SegmentError::InvalidOption(_))
    ));
}

#[test]
fn objects_reattach_by_offset_and_kinds_are_checked() {
    let name = TempName::new("attach");
    let seg = small(&name.0).unwrap();
    let m = seg.mutex("mutex-2").unwrap();
    let e = seg.event("event-1").unwrap();
    let b = seg.barrier("barrier-1", 3).unwrap();
    let bytes = seg.raw().alloc(24, 16).unwrap();
    let other = Segment::open(&name.0).unwrap();
    let e2 = other.attach::<crate::Event>(e.offset().unwrap()).unwrap();
    e.set();
    assert!(e2.is_set(), "both handles see one event");
    assert_eq!(
        other
            .attach::<crate::Barrier>(b.offset().unwrap())
            .unwrap()
            .parties(),
        3
    );
    assert!(matches!(
        other.attach::<crate::Event>(m.offset().unwrap()),
        Err(SegmentError::WrongKind {
            expected: "event",
            found: "mutex",
            ..
        })
    ));
    assert!(matches!(
        other.attach::<crate::Mutex>(7),
        Err(SegmentError::BadOffset { .. })
    ));
    assert!(matches!(
        other.attach::<crate::Mutex>(1 << 40),
        Err(SegmentError::BadOffset { .. })
    ));
    assert!(matches!(
        other.attach::<crate::Mutex>(60 * 1024),
        Err(SegmentError::BadOffset { .. })
    ));
    other
        .raw()
        .atomic_u64(bytes + 16)
        .unwrap()
        .store(9, Ordering::Relaxed);
    assert_eq!(
        seg.raw()
            .atomic_u64(bytes + 16)
            .unwrap()
            .load(Ordering::Relaxed),
        9
    );
    assert!(
        seg.raw().atomic_u64(bytes + 24).is_err(),
        "past the end of the block"
    );
    let kinds: Vec<BlockKind> = other.blocks().unwrap().iter().map(|b| b.kind).collect();
    assert_eq!(
        kinds,
        [
            BlockKind::Table,
            BlockKind::Exceptions,
            BlockKind::Mutex,
            BlockKind::Event,
            BlockKind::Barrier,
            BlockKind::Bytes
        ]
    );
}

#[test]
fn allocation_reports_a_full_segment_with_numbers() {
    let name = TempName::new("full");
    let seg = Segment::create(
        &name.0,
        &CreateOptions::new(8192)
            .table_capacity(8)
            .exception_slots(0),
    )
    .unwrap();
    let mut n = 0;
    let err = loop {
        match seg.raw().alloc(64, 16) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert!(n > 50, "only {n} blocks of 64 bytes fit in 8 KiB");
    assert!(
        matches!(err, SegmentError::OutOfSpace { requested, available } if requested > available)
    );
    assert!(
        seg.raw().alloc(0, 8192).is_err(),
        "alignment above a page is refused"
    );
}

#[test]
fn a_corrupt_header_is_reported_by_field() {
    let name = TempName::new("corrupt");
    let seg = small(&name.0).unwrap();
    let poke = |field: usize, v: u64| {
        seg.map
            .atomic_u64(field as u64)
            .unwrap()
            .store(v, Ordering::Relaxed)
    };
    poke(offset_of!(SegmentHeader, layout_hash), 1);
    assert!(matches!(
        Segment::open(&name.0),
        Err(SegmentError::LayoutMismatch { found: 1, .. })
    ));
    poke(offset_of!(SegmentHeader, layout_hash), LAYOUT_HASH);
    let next = seg.info().alloc_next;
    poke(offset_of!(SegmentHeader, alloc_next), 3);
    assert!(matches!(
        Segment::open(&name.0),
        Err(SegmentError::Corrupt {
            what: "allocator next offset",
            ..
        })
    ));
    poke(offset_of!(SegmentHeader, alloc_next), next);
    poke(offset_of!(SegmentHeader, magic), 0xDEAD);
    assert!(matches!(
        Segment::open(&name.0),
        Err(SegmentError::Corrupt {
            what: "header magic",
            ..
        })
    ));
    poke(offset_of!(SegmentHeader, magic), MAGIC);
    // version_major and version_minor share the u64 at offset 8 with header_size.
    let versions = offset_of!(SegmentHeader, version_major);
    let good = seg
        .map
        .atomic_u64(versions as u64)
        .unwrap()
        .load(Ordering::Relaxed);
    poke(versions, (good & !0xFFFF) | 7);
    assert!(matches!(
        Segment::open(&name.0),
        Err(SegmentError::VersionMismatch { found_major: 7, .. })
    ));
    poke(versions, good);
    poke(offset_of!(SegmentHeader, total_size), 1 << 30);
    assert!(matches!(
        Segment::open(&name.0),
        Err(SegmentError::TooSmall { .. })
    ));
    poke(offset_of!(SegmentHeader, total_size), 64 * 1024);
    seg.map
        .atomic_u32(offset_of!(SegmentHeader, state) as u64)
        .unwrap()
        .store(3, Ordering::Relaxed);
    assert!(matches!(
        Segment::open(&name.0),
        Err(SegmentError::Corrupt {
            what: "header state",
            ..
        })
    ));
    seg.map
        .atomic_u32(offset_of!(SegmentHeader, state) as u64)
        .unwrap()
        .store(SegmentState::Ready as u32, Ordering::Relaxed);
    assert!(Segment::open(&name.0).is_ok());
}

#[test]
fn a_half_initialised_segment_of_a_dead_creator_is_named_as_such() {
    let name = TempName::new("halfinit");
    let fd = shm::create(name_posix(&name.0).as_c_str(), 0o600).unwrap();
    shm::set_size(&fd, 64 * 1024).unwrap();
    let map = Mapping::map(fd, 64 * 1024, MemoryOptions::default()).unwrap();
    map.atomic_u32(offset_of!(SegmentHeader, creator_pid) as u64)
        .unwrap()
        .store(0x3FFF_FFF0, Ordering::Relaxed);
    assert!(matches!(
        Segment::open(&name.0),
        Err(SegmentError::CreatorDied {
            creator_pid: 0x3FFF_FFF0,
            ..
        })
    ));
    // A live creator that never finishes: bounded wait.
    let me = current_process();
    map.atomic_u32(offset_of!(SegmentHeader, creator_pid) as u64)
        .unwrap()
        .store(me.pid, Ordering::Relaxed);
    map.atomic_u64(offset_of!(SegmentHeader, creator_token) as u64)
        .unwrap()
        .store(me.token, Ordering::Relaxed);
    let opts = OpenOptions {
        init_timeout: Duration::from_millis(30),
        ..OpenOptions::default()
    };
    assert!(matches!(
        Segment::open_with(&name.0, &opts),
        Err(SegmentError::StillInitialising { .. })
    ));
}

#[test]
fn an_unsized_object_is_still_initialising_and_a_tiny_one_too_small() {
    let name = TempName::new("tiny");
    let fd = shm::create(name_posix(&name.0).as_c_str(), 0o600).unwrap();
    let opts = OpenOptions {
        init_timeout: Duration::from_millis(20),
        ..OpenOptions::default()
    };
    assert!(matches!(
        Segment::open_with(&name.0, &opts),
        Err(SegmentError::StillInitialising { creator_pid: 0, .. })
    ));
    shm::set_size(&fd, 100).unwrap();
    assert!(matches!(
        Segment::open(&name.0),
        Err(SegmentError::TooSmall { size: 100, .. })
    ));
}

#[test]
fn prefault_and_lock_in_memory_map_the_segment() {
    let name = TempName::new("mlock");
    let mem = MemoryOptions {
        prefault: true,
        lock_in_memory: true,
    };
    match Segment::create(
        &name.0,
        &CreateOptions::new(256 * 1024)
            .table_capacity(64)
            .exception_slots(2)
            .memory(mem),
    ) {
        Ok(seg) => assert!(seg.event("event-2").is_ok()),
        // Without CAP_IPC_LOCK and a small RLIMIT_MEMLOCK, mlock is refused: a typed error.
        Err(SegmentError::Io {
            op: "mmap", source, ..
        }) => {
            assert!(
                matches!(
                    source.raw_os_error(),
                    Some(libc::ENOMEM | libc::EPERM | libc::EAGAIN)
                ),
                "{source}"
            )
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn close_reports_handles_that_keep_the_mapping() {
    let name = TempName::new("close");
    let seg = small(&name.0).unwrap();
    let m = seg.mutex("mutex-4").unwrap();
    let seg2 = seg.clone();
    assert!(matches!(
        seg.close(),
        Err(SegmentError::StillInUse { handles: 2 })
    ));
    drop(m);
    assert!(seg2.close().is_ok());
}

#[test]
fn validate_image_accepts_a_live_snapshot_and_rejects_garbage() {
    let name = TempName::new("image");
    let seg = small(&name.0).unwrap();
    seg.raw().alloc(100, 1024).unwrap();
    seg.event("event-3").unwrap();
    let image = seg.snapshot();
    let (info, blocks) = validate_image(&image).unwrap().unwrap();
    assert_eq!(info.alloc_count, 4, "table, exception slots, bytes, event");
    assert_eq!(blocks.len(), 4);
    assert_eq!(blocks[0].kind, BlockKind::Table);
    assert_eq!(blocks[1].kind, BlockKind::Exceptions);
    assert_eq!(blocks[2].offset % 1024, 0);
    let mut bad = image.clone();
    let first_tag = blocks[2].offset as usize - 16;
    bad[first_tag..first_tag + 4].copy_from_slice(&[1, 2, 3, 4]);
    assert!(validate_image(&bad).is_err());
    assert!(validate_image(&image[..100]).is_err());
}
