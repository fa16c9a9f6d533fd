//! loom model of the claim / initialise / ready protocol.

use super::*;
use loom::sync::Arc;
use loom::thread;

#[test]
fn two_creators_of_one_name_create_it_once_and_agree() {
    loom::model(|| {
        let t: Arc<Vec<EntryState>> = Arc::new((0..2).map(|_| EntryState::new()).collect());
        let created = Arc::new(AtomicU32::new(0));
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let (t, created) = (t.clone(), created.clone());
                thread::spawn(move || {
                    let (info, _) = find_or_create(
                        &t,
                        &ObjectName::new("x").unwrap(),
                        ObjectKind::Event,
                        Deadline::NEVER,
                        || {
                            created.fetch_add(1, Ordering::Relaxed);
                            Ok::<_, ()>(Created {
                                offset: 100 + i,
                                size: 64,
                                param: 0,
                            })
                        },
                    )
                    .unwrap();
                    info.offset
                })
            })
            .collect();
        let offsets: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(created.load(Ordering::Relaxed), 1);
        assert_eq!(offsets[0], offsets[1]);
        // A lock-free lookup afterwards sees the published entry.
        let found = lookup(&t, &ObjectName::new("x").unwrap()).unwrap().unwrap();
        assert_eq!(found.offset, offsets[0]);
    });
}
