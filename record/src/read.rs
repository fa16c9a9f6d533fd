//! Reading a recording's files back: a file's header, its frames one at a time (native
//! bytes), and its metadata rows — what replay needs, without loading a file whole.

use crate::fits::{data, header, table};
use crate::RecordError;
use shm_layout::ElemType;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// One closed file of a recording.
#[derive(Debug)]
pub struct RecordedFile {
    path: PathBuf,
    file: File,
    elem: ElemType,
    data_at: u64,
    frame_bytes: usize,
    rows: Vec<table::Row>,
}

impl RecordedFile {
    /// Opens `path` (a `.fits` file `shmkit record` wrote) and reads its metadata table.
    pub fn open(path: &Path) -> Result<RecordedFile, RecordError> {
        let corrupt = |detail: &str| RecordError::Corrupt {
            path: path.to_owned(),
            detail: detail.to_owned(),
        };
        let io = |what, source| RecordError::Io {
            what,
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(|e| io("open", e))?;
        let len = file.metadata().map_err(|e| io("read", e))?.len();
        let mut head = vec![0u8; (64 * header::BLOCK).min(len as usize)];
        file.read_exact_at(&mut head, 0)
            .map_err(|e| io("read", e))?;
        let (cards, hlen) = header::parse(&head).ok_or_else(|| corrupt("no END card"))?;
        let card = |k: &str| cards.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let num = |k: &str| card(k).and_then(|v| v.parse::<u64>().ok());
        let elem = card("DTYPE")
            .and_then(ElemType::from_name)
            .ok_or_else(|| corrupt("no DTYPE"))?;
        let naxis = num("NAXIS").ok_or_else(|| corrupt("no NAXIS"))? as usize;
        let frames = num(&format!("NAXIS{naxis}")).ok_or_else(|| corrupt("no frame count"))?;
        let mut frame_bytes = elem.size() as u64;
        for i in 1..naxis {
            frame_bytes = frame_bytes
                .checked_mul(num(&format!("NAXIS{i}")).ok_or_else(|| corrupt("no axis"))?)
                .ok_or_else(|| corrupt("axes overflow"))?;
        }
        let data_bytes = frames
            .checked_mul(frame_bytes)
            .ok_or_else(|| corrupt("size overflows"))?;
        let table_at = hlen as u64 + header::blocks_for(data_bytes as usize) as u64;
        if table_at > len {
            return Err(corrupt("shorter than its frames"));
        }
        let mut thead = vec![0u8; (8 * header::BLOCK).min((len - table_at) as usize)];
        file.read_exact_at(&mut thead, table_at)
            .map_err(|e| io("read", e))?;
        let (tcards, tlen) = header::parse(&thead).ok_or_else(|| corrupt("no table"))?;
        let rows_n: u64 = tcards
            .iter()
            .find(|(k, _)| k == "NAXIS2")
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| corrupt("no row count"))?;
        if rows_n != frames {
            return Err(corrupt("the table's rows are not the cube's frames"));
        }
        let mut raw = vec![0u8; rows_n as usize * table::ROW];
        file.read_exact_at(&mut raw, table_at + tlen as u64)
            .map_err(|e| io("read", e))?;
        let rows = raw
            .chunks_exact(table::ROW)
            .map(|r| table::Row::decode(r.try_into().expect("a row")))
            .collect();
        Ok(RecordedFile {
            path: path.to_owned(),
            file,
            elem,
            data_at: hlen as u64,
            frame_bytes: frame_bytes as usize,
            rows,
        })
    }

    /// The metadata rows, one per frame.
    pub fn rows(&self) -> &[table::Row] {
        &self.rows
    }

    /// Frame `i` as native bytes, into `out` (replacing its contents).
    pub fn frame(&self, i: usize, out: &mut Vec<u8>) -> Result<(), RecordError> {
        let mut stored = vec![0u8; self.frame_bytes];
        self.file
            .read_exact_at(&mut stored, self.data_at + (i * self.frame_bytes) as u64)
            .map_err(|source| RecordError::Io {
                what: "read",
                path: self.path.clone(),
                source,
            })?;
        out.clear();
        data::decode(self.elem, &stored, out);
        Ok(())
    }
}
