//! Arbitrary bytes as one of a stream's semaphores: shmkit's own post, wait and flush (which
//! the importer and exporter use instead of glibc's, which abort on such bytes) return a
//! typed error or a result, never a panic, an abort or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(bytes) = data.first_chunk::<32>() else {
        return;
    };
    let _ = shmkit_isio::sem::exercise(*bytes);
});
