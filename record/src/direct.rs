//! Appending a recording's frames to its file with direct I/O, past the page cache.
//!
//! A recorder writes hundreds of MB/s. Through the page cache every byte is copied once more
//! by the kernel, and the dirty pages are allocated, written back and reclaimed by kernel
//! threads that run on any CPU, the loop's included: measured on the AO bench, the camera's
//! writer thread took 19 % of a CPU at 147 MB/s. With `O_DIRECT` the device reads the
//! buffer itself. Direct I/O needs offsets, lengths and buffer addresses aligned to the
//! device's block, so [`DirectAppend`] keeps one aligned buffer, writes only whole multiples
//! of [`ALIGN`] while it is open, and writes the unaligned tail through the page cache at
//! [`finish`](DirectAppend::finish). Where the file system refuses direct I/O (some tmpfs
//! and network file systems), it falls back to ordinary writes and says so in
//! [`is_direct`](DirectAppend::is_direct).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The alignment of every direct write: a page, which covers every block size a disk
/// reports (512 or 4 096 bytes).
pub const ALIGN: usize = 4096;

/// A buffer whose bytes start at an address aligned to [`ALIGN`]. Its capacity is fixed
/// when it is made and appends stay inside it, so the vector never moves.
#[derive(Debug)]
struct Block {
    buf: Vec<u8>,
    lead: usize,
}

impl Block {
    fn with_room(room: usize) -> Block {
        let mut buf: Vec<u8> = Vec::with_capacity(room + ALIGN);
        let lead = buf.as_ptr().align_offset(ALIGN);
        buf.resize(lead, 0);
        Block { buf, lead }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.lead..]
    }

    fn room(&self) -> usize {
        self.buf.capacity() - self.buf.len()
    }

    fn clear(&mut self) {
        self.buf.truncate(self.lead);
    }
}

/// A block handed to the I/O thread: write its first `len` bytes at `at`.
type Job = (Block, u64, usize);

/// An append-only writer of one file that bypasses the page cache where it can, and
/// overlaps the caller's encoding with the disk: full batches go to its own I/O thread
/// while the next one fills.
#[derive(Debug)]
pub struct DirectAppend {
    file: Arc<File>,
    staging: Block,
    /// Bytes of the file handed to the I/O thread or written; a multiple of [`ALIGN`].
    sent: u64,
    /// Send a batch once this many bytes are staged.
    batch: usize,
    jobs: Option<SyncSender<Job>>,
    free: Receiver<Block>,
    io: Option<JoinHandle<io::Result<bool>>>,
    /// Whether the I/O thread's writes stayed direct, once it has ended.
    io_direct: Option<bool>,
}

impl DirectAppend {
    /// Writes `file` from offset 0, starting with `initial` (which replaces what the file
    /// holds there), in batches of `batch` bytes. `file` must be open for writing; it is
    /// switched to direct I/O here if the file system allows it.
    pub fn new(file: File, initial: &[u8], batch: usize) -> io::Result<DirectAppend> {
        let batch = batch.max(ALIGN).next_multiple_of(ALIGN);
        let direct = set_direct(&file, true).is_ok();
        let file = Arc::new(file);
        // Two blocks in flight at most: one filling, one being written.
        let (jobs, from_writer) = sync_channel::<Job>(1);
        let (to_writer, free) = sync_channel::<Block>(2);
        let room = 2 * batch + ALIGN;
        to_writer
            .send(Block::with_room(room))
            .map_err(|_| io::Error::other("the I/O thread's channel closed"))?;
        let io = {
            let file = file.clone();
            std::thread::Builder::new()
                .name("shmkit-record-io".into())
                .spawn(move || write_jobs(&file, direct, &from_writer, &to_writer))?
        };
        let mut w = DirectAppend {
            file,
            staging: Block::with_room(room),
            sent: 0,
            batch,
            jobs: Some(jobs),
            free,
            io: Some(io),
            io_direct: None,
        };
        w.append(initial.len(), |b| b.extend_from_slice(initial))?;
        Ok(w)
    }

    /// Bytes appended so far (written or staged).
    #[cfg(test)]
    pub fn len(&self) -> u64 {
        self.sent + self.staging.bytes().len() as u64
    }

    /// Appends `n` bytes that `fill` pushes onto the staging vector (it must push exactly
    /// `n`; the room for them is there, so the vector does not move).
    pub fn append(&mut self, n: usize, fill: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        if self.staging.room() < n {
            self.send_staged()?;
        }
        if self.staging.room() < n {
            let mut bigger = Block::with_room(self.staging.bytes().len() + n + ALIGN);
            bigger.buf.extend_from_slice(self.staging.bytes());
            self.staging = bigger;
        }
        let before = self.staging.buf.len();
        fill(&mut self.staging.buf);
        debug_assert_eq!(
            self.staging.buf.len(),
            before + n,
            "fill pushed the announced bytes"
        );
        if self.staging.bytes().len() >= self.batch {
            self.send_staged()?;
        }
        Ok(())
    }

    /// Waits for the I/O thread, writes the staged tail through the page cache and hands
    /// back the file (for what follows the frames) and its length.
    pub fn finish(mut self) -> io::Result<(File, u64)> {
        self.join_io()?;
        // What is left is less than a block: ordinary writes from here.
        set_direct(&self.file, false)?;
        self.file.write_all_at(self.staging.bytes(), self.sent)?;
        let len = self.sent + self.staging.bytes().len() as u64;
        let file = Arc::try_unwrap(self.file)
            .map_err(|_| io::Error::other("the I/O thread still holds the file"))?;
        Ok((file, len))
    }

    /// Hands every whole block staged to the I/O thread; the partial block left over
    /// starts the next batch.
    fn send_staged(&mut self) -> io::Result<()> {
        let pending = self.staging.bytes().len();
        let n = pending - pending % ALIGN;
        if n == 0 {
            return Ok(());
        }
        let Ok(mut next) = self.free.recv() else {
            // The I/O thread stopped: its error says why.
            return Err(self
                .join_io()
                .err()
                .unwrap_or_else(|| io::Error::other("the recorder's I/O thread stopped")));
        };
        if next.buf.capacity() < self.staging.buf.capacity() {
            next = Block::with_room(self.staging.buf.capacity());
        }
        next.clear();
        next.buf.extend_from_slice(&self.staging.bytes()[n..]);
        let full = std::mem::replace(&mut self.staging, next);
        let job = (full, self.sent, n);
        self.sent += n as u64;
        match self.jobs.as_ref().map(|j| j.send(job)) {
            Some(Ok(())) => Ok(()),
            _ => Err(self
                .join_io()
                .err()
                .unwrap_or_else(|| io::Error::other("the recorder's I/O thread stopped"))),
        }
    }

    /// Ends the I/O thread after its last write; its first error, if any.
    fn join_io(&mut self) -> io::Result<()> {
        self.jobs = None;
        if let Some(handle) = self.io.take() {
            let direct = handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the recorder's I/O thread panicked")))?;
            self.io_direct = Some(direct);
        }
        Ok(())
    }
}

/// The I/O thread: writes each job, then returns its block for reuse. Stops at the first
/// error (returned). Returns whether the writes stayed direct.
fn write_jobs(
    file: &File,
    mut direct: bool,
    jobs: &Receiver<Job>,
    free: &SyncSender<Block>,
) -> io::Result<bool> {
    for (block, at, len) in jobs {
        let bytes = &block.bytes()[..len];
        match file.write_all_at(bytes, at) {
            Ok(()) => {}
            // A file system may accept O_DIRECT at open and refuse it at the first write.
            Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => {
                set_direct(file, false)?;
                direct = false;
                file.write_all_at(bytes, at)?;
            }
            Err(e) => return Err(e),
        }
        let _ = free.send(block);
    }
    Ok(direct)
}

/// Turns direct I/O on or off for `file`.
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL reads the flags of a descriptor `file` keeps open; no memory passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let flags = if on {
        flags | libc::O_DIRECT
    } else {
        flags & !libc::O_DIRECT
    };
    // SAFETY: as above; F_SETFL takes the flags as an integer.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(initial: usize, chunks: &[usize], batch: usize) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut expected: Vec<u8> = (0..initial).map(|i| (i % 251) as u8).collect();
        let mut w = DirectAppend::new(file, &expected, batch).unwrap();
        for (k, &n) in chunks.iter().enumerate() {
            let bytes: Vec<u8> = (0..n).map(|i| ((i * 7 + k) % 253) as u8).collect();
            w.append(n, |b| b.extend_from_slice(&bytes)).unwrap();
            expected.extend_from_slice(&bytes);
            assert_eq!(w.len(), expected.len() as u64);
        }
        let (file, len) = w.finish().unwrap();
        assert_eq!(len, expected.len() as u64);
        drop(file);
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    #[test]
    fn every_byte_lands_in_order_whatever_the_sizes() {
        roundtrip(2880, &[73728; 100], 1 << 20);
        roundtrip(2880, &[1, 4095, 4096, 4097, 0, 12345], ALIGN);
        roundtrip(0, &[], ALIGN);
    }

    #[test]
    fn an_append_larger_than_the_buffer_grows_it() {
        roundtrip(2880, &[10, 3 << 20, 5, 9 << 20], 1 << 20);
    }

    #[test]
    fn a_disk_file_is_written_direct() {
        // /tmp may be tmpfs, which may refuse O_DIRECT; the crate's own folder is on a disk.
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let file = std::fs::File::create(dir.path().join("f")).unwrap();
        let mut w = DirectAppend::new(file, &[1; ALIGN], ALIGN).unwrap();
        w.join_io().unwrap();
        let direct = w.io_direct.expect("the I/O thread wrote a block");
        assert!(direct, "direct I/O refused on {}", dir.path().display());
    }
}
