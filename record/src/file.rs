//! One FITS file of a recording, being written: a cube of one ring's frames, then their
//! metadata table.
//!
//! While it is open the file is `NAME.fits.part`: its header (frame count 0), then the frames
//! as they come; each frame's metadata row goes to `NAME.fits.meta` as it is written. Closing
//! appends the table, writes the counts into the header, syncs, and renames the file to
//! `NAME.fits` — so a `.fits` file is always complete and valid, and a recorder killed at any
//! instant leaves at most one `.part` file, which [`repair`](crate::repair) completes from the
//! frames and rows that reached the disk.

use crate::direct::DirectAppend;
use crate::fits::{data, header, table, Header, Value, BLOCK};
use crate::RecordError;
use shm_layout::ElemType;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What a file's header says about where its frames came from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The ring's name.
    pub ring: String,
    /// The segment's name.
    pub segment: String,
    /// This host's name.
    pub host: String,
    /// The frames' element type.
    pub elem: ElemType,
    /// The frames' shape, outermost first.
    pub shape: Vec<u32>,
    /// The recording's start, UTC, ISO 8601.
    pub start_utc: String,
    /// This file's number in the ring's sequence (0, 1, 2, ...).
    pub index: u32,
}

/// What a closed file holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileSummary {
    /// The file's name in the session directory.
    pub file: String,
    /// Frames in it.
    pub frames: u64,
    /// The first and last frame ids (0 when empty).
    pub first_id: u64,
    /// See `first_id`.
    pub last_id: u64,
    /// Frames not recorded just before each of its frames (the sum of its `DROPPED` column):
    /// the sums over a ring's files plus its tail give its drops exactly.
    pub dropped: u64,
}

/// The primary header for `frames` frames of `origin`.
fn primary_header(origin: &Origin, frames: u64, first: u64, last: u64, dropped: u64) -> Header {
    let (bitpix, bzero) = data::bitpix(origin.elem);
    let mut h = Header::new();
    h.card("SIMPLE", Value::Logical(true), "conforms to FITS 4.0")
        .card("BITPIX", Value::Int(bitpix.into()), "bits per pixel")
        .card(
            "NAXIS",
            Value::Int(origin.shape.len() as i128 + 1),
            "a cube: frame axes, then time",
        );
    // FITS's first axis varies fastest: the frame's last (innermost) dimension.
    for (i, &d) in origin.shape.iter().rev().enumerate() {
        h.card(&format!("NAXIS{}", i + 1), Value::Int(d.into()), "");
    }
    h.card(
        &format!("NAXIS{}", origin.shape.len() + 1),
        Value::Int(frames.into()),
        "frames",
    )
    .card("EXTEND", Value::Logical(true), "the FRAMES table follows");
    if let Some(zero) = bzero {
        h.card("BZERO", Value::Int(zero), "unsigned integers")
            .card("BSCALE", Value::Int(1), "");
    }
    h.card("ORIGIN", Value::Text("shmkit".into()), "shmkit record")
        .card("RING", Value::Text(origin.ring.clone()), "frame ring")
        .card(
            "SEGMENT",
            Value::Text(origin.segment.clone()),
            "shmkit segment",
        )
        .card("HOST", Value::Text(origin.host.clone()), "recording host")
        .card(
            "DTYPE",
            Value::Text(origin.elem.name().into()),
            "element type",
        )
        .card(
            "SHAPE",
            Value::Text(format!("{:?}", origin.shape)),
            "frame shape, outermost first",
        )
        .card(
            "DATE-OBS",
            Value::Text(origin.start_utc.clone()),
            "recording start, UTC",
        )
        .card(
            "FILEIDX",
            Value::Int(origin.index.into()),
            "file number in this ring's sequence",
        )
        .card("NFRAMES", Value::Int(frames.into()), "frames in this file")
        .card("FIRSTID", Value::Int(first.into()), "first frame id")
        .card("LASTID", Value::Int(last.into()), "last frame id")
        .card(
            "NDROPPED",
            Value::Int(dropped.into()),
            "frames not recorded in this file's span",
        );
    h
}

/// A file being written.
#[derive(Debug)]
pub struct CubeFile {
    origin: Origin,
    part: PathBuf,
    meta_path: PathBuf,
    done: PathBuf,
    out: DirectAppend,
    meta: BufWriter<File>,
    header_len: u64,
    frame_bytes: usize,
    summary: FileSummary,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RecordError + 'a {
    move |source| RecordError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

impl CubeFile {
    /// Starts `dir/name.fits.part` for frames of `origin`.
    pub fn create(dir: &Path, name: &str, origin: Origin) -> Result<CubeFile, RecordError> {
        let done = dir.join(format!("{name}.fits"));
        let part = dir.join(format!("{name}.fits.part"));
        let meta_path = dir.join(format!("{name}.fits.meta"));
        let header = primary_header(&origin, 0, 0, 0, 0).to_bytes();
        // The header is whole before the name `.part` exists (written under another name,
        // then renamed): a recorder killed at any instant leaves no `.part` without one.
        let fresh = dir.join(format!("{name}.fits.new"));
        std::fs::write(&fresh, &header).map_err(io("write", &fresh))?;
        std::fs::rename(&fresh, &part).map_err(io("rename", &fresh))?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&part)
            .map_err(io("open", &part))?;
        let frame_bytes =
            origin.shape.iter().map(|&d| d as usize).product::<usize>() * origin.elem.size();
        // Frames go to the disk in batches of 4 MiB (or two frames, if larger): big enough
        // for the disk's full rate, small enough that a killed recorder loses little.
        let out = DirectAppend::new(file, &header, (4 << 20).max(2 * frame_bytes))
            .map_err(io("write", &part))?;
        let meta = BufWriter::new(File::create(&meta_path).map_err(io("create", &meta_path))?);
        Ok(CubeFile {
            summary: FileSummary {
                file: format!("{name}.fits"),
                frames: 0,
                first_id: 0,
                last_id: 0,
                dropped: 0,
            },
            origin,
            part,
            meta_path,
            done,
            out,
            meta,
            header_len: header.len() as u64,
            frame_bytes,
        })
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.summary.frames
    }

    /// Bytes of frame data written so far.
    pub fn data_bytes(&self) -> u64 {
        self.summary.frames * self.frame_bytes as u64
    }

    /// Appends one frame (`bytes`: the published bytes, zero-padded or cut to the frame
    /// size) and its metadata.
    pub fn write(&mut self, bytes: &[u8], row: &table::Row) -> Result<(), RecordError> {
        // `encode` takes whole elements; the rest of the frame is zeros. It writes straight
        // into the direct-I/O buffer: the frame's one pass after the reader's copy.
        let (elem, frame_bytes) = (self.origin.elem, self.frame_bytes);
        let n = bytes.len().min(frame_bytes);
        self.out
            .append(frame_bytes, |buf| {
                let end = buf.len() + frame_bytes;
                data::encode(elem, &bytes[..n], buf);
                buf.resize(end, 0);
            })
            .map_err(io("write", &self.part))?;
        self.meta
            .write_all(&row.encode())
            .map_err(io("write", &self.meta_path))?;
        let s = &mut self.summary;
        if s.frames == 0 {
            s.first_id = row.id;
        }
        s.dropped += row.dropped;
        s.last_id = row.id;
        s.frames += 1;
        Ok(())
    }

    /// Completes the file (table, counts, sync, rename) and says what it holds.
    pub fn close(mut self) -> Result<FileSummary, RecordError> {
        let pad = header::blocks_for(self.data_bytes() as usize) - self.data_bytes() as usize;
        let (file, len) = self.out.finish().map_err(io("write", &self.part))?;
        debug_assert_eq!(
            len,
            self.header_len + self.summary.frames * self.frame_bytes as u64
        );
        // The rows are the ones already in the metadata file, not kept twice in memory.
        self.meta.flush().map_err(io("write", &self.meta_path))?;
        let rows = std::fs::read(&self.meta_path).map_err(io("read", &self.meta_path))?;
        let mut tail = vec![0; pad];
        tail.extend_from_slice(&table::unit(&rows));
        file.write_all_at(&tail, len)
            .map_err(io("write", &self.part))?;
        let s = &self.summary;
        let header =
            primary_header(&self.origin, s.frames, s.first_id, s.last_id, s.dropped).to_bytes();
        debug_assert_eq!(header.len() as u64, self.header_len);
        // The counts go into the header in place.
        file.write_all_at(&header, 0)
            .map_err(io("write", &self.part))?;
        file.sync_all().map_err(io("sync", &self.part))?;
        drop(self.meta);
        std::fs::rename(&self.part, &self.done).map_err(io("rename", &self.part))?;
        let _ = std::fs::remove_file(&self.meta_path);
        Ok(self.summary)
    }
}

/// The longest header a repair reads looking for its `END` card (this crate writes one or
/// two blocks).
const MAX_HEADER_BLOCKS: usize = 64;

/// Completes `NAME.fits.part` from what reached the disk: the whole frames that have a
/// metadata row in `NAME.fits.meta` are kept, the rest cut; the header gets the counts, the
/// table is appended, and the file becomes `NAME.fits`. Returns what it holds.
///
/// In place and in bounded memory (the header, and the rows in chunks): a recording of any
/// length is repaired without reading its frames. Idempotent, so a repair killed at any
/// instant is completed by the next: the `.meta` file is cut to the kept rows before the
/// `.part` file is cut to the kept frames, so both always agree on the count, and whatever a
/// killed repair appended after the frames is cut again.
pub fn complete_part(part: &Path) -> Result<FileSummary, RecordError> {
    let corrupt = |detail: &str| RecordError::Corrupt {
        path: part.to_owned(),
        detail: detail.to_owned(),
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(part)
        .map_err(io("open", part))?;
    let len = file.metadata().map_err(io("stat", part))?.len();
    // The header: blocks until its END card (a header of more than MAX_HEADER_BLOCKS is not
    // one this crate wrote).
    let mut head = Vec::new();
    let (cards, header_len) = loop {
        if let Some(parsed) = header::parse(&head) {
            break parsed;
        }
        let at = head.len() as u64;
        if at + BLOCK as u64 > len || head.len() >= MAX_HEADER_BLOCKS * BLOCK {
            return Err(corrupt("no END card: the header itself was cut"));
        }
        head.resize(head.len() + BLOCK, 0);
        file.read_exact_at(&mut head[at as usize..], at)
            .map_err(io("read", part))?;
    };
    let get = |key: &str| -> Option<i128> {
        cards
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse().ok())
    };
    let naxis = get("NAXIS")
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| (1..=999).contains(n))
        .ok_or_else(|| corrupt("no valid NAXIS"))?;
    let bitpix = get("BITPIX").ok_or_else(|| corrupt("no BITPIX"))?;
    let mut frame_bytes = u64::try_from(bitpix.unsigned_abs() / 8).unwrap_or(0);
    for i in 1..naxis {
        let axis = get(&format!("NAXIS{i}"))
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| corrupt("a frame axis is missing"))?;
        frame_bytes = frame_bytes
            .checked_mul(axis)
            .ok_or_else(|| corrupt("the frame size overflows"))?;
    }
    let on_disk = (len.saturating_sub(header_len as u64))
        .checked_div(frame_bytes)
        .unwrap_or(0);
    let meta_path = part.with_extension("meta");
    let meta = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&meta_path)
    {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io("open", &meta_path)(e)),
    };
    let meta_len = match &meta {
        Some(m) => m.metadata().map_err(io("stat", &meta_path))?.len(),
        None => 0,
    };
    let frames = on_disk.min(meta_len / table::ROW as u64);
    let rows_len = frames * table::ROW as u64;
    let data_end = header_len as u64 + frames * frame_bytes;
    // Both files cut to the kept count, rows first (see above).
    if let Some(m) = &meta {
        m.set_len(rows_len).map_err(io("truncate", &meta_path))?;
        m.sync_all().map_err(io("sync", &meta_path))?;
    }
    file.set_len(data_end).map_err(io("truncate", part))?;
    // The rows in chunks: their counts, and the table after the padded frames.
    let table_at = header_len as u64 + header::blocks_for_u64(frames * frame_bytes);
    let table_header = table::header(frames).to_bytes();
    file.write_all_at(&table_header, table_at)
        .map_err(io("write", part))?;
    let (mut first, mut last, mut dropped) = (None, 0u64, 0u64);
    let mut chunk = vec![0u8; table::ROW * 8192];
    let mut done = 0u64;
    let rows_at = table_at + table_header.len() as u64;
    // (No `.meta` file: no rows, `rows_len` is 0.)
    while let (Some(m), true) = (&meta, done < rows_len) {
        let n = (rows_len - done).min(chunk.len() as u64) as usize;
        m.read_exact_at(&mut chunk[..n], done)
            .map_err(io("read", &meta_path))?;
        for r in chunk[..n].chunks_exact(table::ROW) {
            let row = table::Row::decode(r.try_into().expect("a row"));
            first.get_or_insert(row.id);
            last = row.id;
            dropped = dropped.saturating_add(row.dropped);
        }
        file.write_all_at(&chunk[..n], rows_at + done)
            .map_err(io("write", part))?;
        done += n as u64;
    }
    // Zero padding to the block after the rows (and between frames and table: set_len's
    // extension reads as zeros).
    let end = rows_at + header::blocks_for_u64(rows_len);
    file.set_len(end).map_err(io("extend", part))?;
    for (key, value) in [
        (format!("NAXIS{naxis}"), frames),
        ("NFRAMES".to_owned(), frames),
        ("FIRSTID".to_owned(), first.unwrap_or(0)),
        ("LASTID".to_owned(), last),
        ("NDROPPED".to_owned(), dropped),
    ] {
        header::replace_value(&mut head[..header_len], &key, &Value::Int(value.into()));
    }
    file.write_all_at(&head[..header_len], 0)
        .map_err(io("write", part))?;
    file.sync_all().map_err(io("sync", part))?;
    debug_assert_eq!(end % BLOCK as u64, 0);
    let done = part.with_extension("");
    std::fs::rename(part, &done).map_err(io("rename", part))?;
    if let Some(parent) = done.parent() {
        // The rename made durable before the rows it no longer needs go.
        let _ = File::open(parent).and_then(|d| d.sync_all());
    }
    let _ = std::fs::remove_file(&meta_path);
    Ok(FileSummary {
        file: done
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        frames,
        first_id: first.unwrap_or(0),
        last_id: last,
        dropped,
    })
}
