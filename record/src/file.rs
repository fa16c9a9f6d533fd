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

/// Completes `NAME.fits.part` from what reached the disk: the whole frames that have a
/// metadata row in `NAME.fits.meta` are kept, the rest cut; the header gets the counts, the
/// table is appended, and the file becomes `NAME.fits`. Returns what it holds.
pub fn complete_part(part: &Path) -> Result<FileSummary, RecordError> {
    let bytes = std::fs::read(part).map_err(io("read", part))?;
    let (cards, header_len) = header::parse(&bytes).ok_or_else(|| RecordError::Corrupt {
        path: part.to_owned(),
        detail: "no END card: the header itself was cut".into(),
    })?;
    let get = |key: &str| -> Option<i128> {
        cards
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse().ok())
    };
    let corrupt = |detail: &str| RecordError::Corrupt {
        path: part.to_owned(),
        detail: detail.to_owned(),
    };
    let naxis = get("NAXIS").ok_or_else(|| corrupt("no NAXIS"))? as usize;
    let bitpix = get("BITPIX").ok_or_else(|| corrupt("no BITPIX"))?;
    let mut frame_bytes = (bitpix.unsigned_abs() / 8) as usize;
    for i in 1..naxis {
        frame_bytes *=
            get(&format!("NAXIS{i}")).ok_or_else(|| corrupt("a frame axis is missing"))? as usize;
    }
    let on_disk = (bytes.len().saturating_sub(header_len))
        .checked_div(frame_bytes)
        .unwrap_or(0);
    let meta_path = part.with_extension("meta");
    let meta = std::fs::read(&meta_path).unwrap_or_default();
    let frames = on_disk.min(meta.len() / table::ROW);
    let rows = &meta[..frames * table::ROW];
    let decoded: Vec<table::Row> = rows
        .chunks_exact(table::ROW)
        .map(|r| table::Row::decode(r.try_into().expect("a row")))
        .collect();
    let (first, last) = match (decoded.first(), decoded.last()) {
        (Some(f), Some(l)) => (f.id, l.id),
        _ => (0, 0),
    };
    let dropped: u64 = decoded.iter().map(|r| r.dropped).sum();
    let mut out = bytes[..header_len + frames * frame_bytes].to_vec();
    for (key, value) in [
        (format!("NAXIS{naxis}"), frames as u64),
        ("NFRAMES".to_owned(), frames as u64),
        ("FIRSTID".to_owned(), first),
        ("LASTID".to_owned(), last),
        ("NDROPPED".to_owned(), dropped),
    ] {
        header::replace_value(&mut out[..header_len], &key, &Value::Int(value.into()));
    }
    out.resize(header_len + header::blocks_for(frames * frame_bytes), 0);
    out.extend_from_slice(&table::unit(rows));
    debug_assert_eq!(out.len() % BLOCK, 0);
    let done = part.with_extension("");
    let tmp = part.with_extension("repairing");
    std::fs::write(&tmp, &out).map_err(io("write", &tmp))?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io("sync", &tmp))?;
    std::fs::rename(&tmp, &done).map_err(io("rename", &tmp))?;
    std::fs::remove_file(part).map_err(io("remove", part))?;
    let _ = std::fs::remove_file(&meta_path);
    Ok(FileSummary {
        file: done
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        frames: frames as u64,
        first_id: first,
        last_id: last,
        dropped,
    })
}
