//! A segment file read page by page, on demand: what `inspect` and `shmkit watch` decode, so
//! a refresh reads the header, the table, the block headers and the objects it shows, not
//! every frame of every ring.
//!
//! Pages are 4 KiB and read once each with `pread`; shared words are aligned and never
//! straddle a page, so each word is what it was at some instant (structures spanning words
//! may be caught mid-update, as in any copy, and are checked like hostile input).

use crate::segment::{ImageBytes, SegmentBytes};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

const PAGE: u64 = 4096;

/// A segment file whose pages are read when first touched.
pub(crate) struct PagedFile {
    file: File,
    len: u64,
    pages: RefCell<HashMap<u64, Box<[u8]>>>,
}

impl PagedFile {
    /// Pages of `file`, which is `len` bytes long.
    pub(crate) fn new(file: File, len: u64) -> PagedFile {
        PagedFile {
            file,
            len,
            pages: RefCell::new(HashMap::new()),
        }
    }

    /// Pages read so far (for tests and `watch`'s cost).
    pub(crate) fn pages_read(&self) -> usize {
        self.pages.borrow().len()
    }

    /// Runs `f` on page `index` (reading it first if needed); `None` past the end or if the
    /// read fails (a segment truncated under us reads as ending there).
    fn with_page<R>(&self, index: u64, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let start = index.checked_mul(PAGE).filter(|&s| s < self.len)?;
        let mut pages = self.pages.borrow_mut();
        let page = pages.entry(index).or_insert_with(|| {
            let mut buf = vec![0u8; (self.len - start).min(PAGE) as usize];
            let mut done = 0;
            while done < buf.len() {
                match self.file.read_at(&mut buf[done..], start + done as u64) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            buf.truncate(done);
            buf.into_boxed_slice()
        });
        Some(f(page))
    }
}

impl ImageBytes for PagedFile {
    fn copy_at(&self, offset: u64, out: &mut [u8]) -> bool {
        let Some(end) = offset
            .checked_add(out.len() as u64)
            .filter(|&e| e <= self.len)
        else {
            return false;
        };
        let mut at = offset;
        while at < end {
            let (page, within) = (at / PAGE, (at % PAGE) as usize);
            let take = ((end - at) as usize).min(PAGE as usize - within);
            let dst = &mut out[(at - offset) as usize..][..take];
            let copied = self.with_page(page, |p| match p.get(within..within + take) {
                Some(src) => {
                    dst.copy_from_slice(src);
                    true
                }
                None => false,
            });
            if copied != Some(true) {
                return false;
            }
            at += take as u64;
        }
        true
    }
}

impl SegmentBytes for PagedFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn load_u32(&self, offset: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        (offset % 4 == 0 && self.copy_at(offset, &mut b)).then(|| u32::from_le_bytes(b))
    }

    fn load_u64(&self, offset: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        (offset % 8 == 0 && self.copy_at(offset, &mut b)).then(|| u64::from_le_bytes(b))
    }
}
