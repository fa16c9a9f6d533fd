//! A stream file as a hostile writer leaves it, opened by the importer's reader: a valid
//! stream (shape, type, semaphore and keyword counts chosen by the input) with any bytes of
//! it then overwritten (header fields, semaphores, reader PIDs, keywords, data, the length).
//! The reader checks the header, claims and flushes a semaphore, reads the keywords, copies
//! a frame and waits on its semaphore: a typed error or a frame, never a panic, an access outside the mapping, or
//! a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit::rings::ElemType;
use shmkit_isio::layout::Layout;
use shmkit_isio::writer::metadata;
use shmkit_isio::StreamReader;
use zerocopy::IntoBytes;

const ELEMS: [ElemType; 7] = [
    ElemType::U8,
    ElemType::U16,
    ElemType::U32,
    ElemType::I16,
    ElemType::I32,
    ElemType::F32,
    ElemType::F64,
];

fuzz_target!(|data: &[u8]| {
    let Some((choice, patches)) = data.split_first_chunk::<8>() else {
        return;
    };
    let elem = ELEMS[usize::from(choice[0]) % ELEMS.len()];
    let naxis = 1 + usize::from(choice[1] % 3);
    let shape: Vec<u32> = choice[2..2 + naxis]
        .iter()
        .map(|&d| 1 + u32::from(d % 32))
        .collect();
    let sems = u16::from(choice[5] % 12);
    let kws = u16::from(choice[6] % 20);
    let Ok(md) = metadata("fuzz", elem, &shape, sems, kws) else {
        return;
    };
    let Ok(layout) = Layout::of(&md) else {
        return;
    };
    let mut file = vec![0u8; layout.total as usize];
    file[..384].copy_from_slice(md.as_bytes());
    // Patches: (offset: u16 little-endian, byte), anywhere in the file; a patch past the end
    // cuts the file there instead.
    for p in patches.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([p[0], p[1]]));
        match file.get_mut(at) {
            Some(b) => *b = p[2],
            None if p[2] == 0xFF => file.truncate(at % (file.len() + 1)),
            None => {}
        }
    }
    let path = std::env::temp_dir().join(format!("shmkit-fuzz-isio-{}.im.shm", std::process::id()));
    if std::fs::write(&path, &file).is_err() {
        return;
    }
    if let Ok(mut reader) = StreamReader::open(&path, u16::from(choice[7])) {
        let mut frame = vec![0u8; reader.parsed().layout.data_len.min(1 << 20) as usize];
        let _ = reader.copy_frame(&mut frame);
        // The claimed semaphore's wait, on whatever bytes the patches left in it: a typed
        // error, a unit taken or a timeout, never glibc's abort.
        let _ = reader.wait(std::time::Duration::from_micros(100));
        let _ = reader.writer_alive();
        let _ = reader.cnt0();
    }
    let _ = std::fs::remove_file(&path);
});
