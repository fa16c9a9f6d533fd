//! Arbitrary bytes as an ImageStreamIO stream file (header and claimed length): the metadata
//! and layout parser returns a typed error or a layout whose every region lies inside the
//! file, never a panic or an overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit_isio::layout::{parse, Layout, Metadata};
use zerocopy::FromBytes;

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes choose the file length the header is checked against (the real file
    // length in the importer), the rest are the header.
    let (len, header) = match data.split_first_chunk::<8>() {
        Some((len, rest)) => (u64::from_le_bytes(*len), rest),
        None => return,
    };
    if let Ok(p) = parse(header, len) {
        let l = p.layout;
        assert_eq!(l.total, len);
        for start in [
            l.data,
            l.keywords,
            l.semaphores,
            l.semlog,
            l.read_pids,
            l.write_pids,
        ] {
            assert!(start <= l.total);
        }
        assert!(l.data + l.data_len <= l.total);
    }
    // The sizing alone, on any header: an error or a layout, never an overflow panic.
    if let Ok((md, _)) = Metadata::read_from_prefix(header) {
        let _ = Layout::of(&md);
    }
});
