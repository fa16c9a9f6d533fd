//! The bytes of an ImageStreamIO stream file, version 2.00 on x86-64 Linux / glibc: the
//! 384-byte `IMAGE_METADATA` header, and where each region after it starts — exactly as the
//! reference writer sizes them (`ImageStreamIO_image_sizing`: every region rounded up to 8
//! bytes, in this order: metadata, data, keywords, semaphores, semlog, read PIDs, write PIDs,
//! semaphore control words, semaphore status words, process traces, the circular buffer's
//! time and counter arrays when the stream is a temporal circular buffer, the fast circular
//! buffer's metadata and data).
//!
//! Stream bytes are hostile input: [`parse`] checks the version string, every count, size and
//! product with checked arithmetic, and that the regions end exactly where the file does
//! (what the reference reader demands too), before anything is attached.

use super::IsioError;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// The version string the reference writes and its reader demands.
pub const VERSION: &str = "2.00";

/// Semaphores per stream the reference creates by default (`IMAGE_NB_SEMAPHORE`).
pub const DEFAULT_SEMAPHORES: u16 = 10;

/// Process-trace entries per stream (`IMAGE_NB_PROCTRACE`).
pub const DEFAULT_PROCTRACE: u16 = 10;

/// A semaphore is not posted beyond this value (`SEMAPHORE_MAXVAL`): a late reader catches up
/// with at most this many pending posts.
pub const SEMAPHORE_MAXVAL: i32 = 10;

/// glibc's `sem_t` on x86-64.
pub const SEM_T_SIZE: u64 = 32;

/// `imagetype` bits: a circular buffer along a temporal z axis (`CIRCULAR_BUFFER |
/// ZAXIS_TEMPORAL`) carries per-slice time and counter arrays.
pub const CIRCULAR_BUFFER: u64 = 0x0001;
/// The temporal-z-axis code in `imagetype`.
pub const ZAXIS_TEMPORAL: u64 = 0x20000;

/// The largest element count the reference reader loads (it refuses more).
pub const MAX_ELEMENTS: u64 = 10_000_000_000;

/// A `struct timespec` (two `i64` on x86-64).
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct Timespec {
    /// Seconds.
    pub sec: i64,
    /// Nanoseconds.
    pub nsec: i64,
}

impl Timespec {
    /// From nanoseconds.
    pub fn from_ns(ns: u64) -> Timespec {
        Timespec {
            sec: (ns / 1_000_000_000) as i64,
            nsec: (ns % 1_000_000_000) as i64,
        }
    }

    /// As nanoseconds (0 for a negative or out-of-range value).
    pub fn as_ns(&self) -> u64 {
        if self.sec < 0 || !(0..1_000_000_000).contains(&self.nsec) {
            return 0;
        }
        (self.sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(self.nsec as u64)
    }
}

/// `IMAGE_METADATA`, field for field; the padding the C compiler inserts is spelled out
/// (`_padN`), so the offsets below are the ones a C reader sees.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct Metadata {
    /// `"2.00"`, NUL-padded.
    pub version: [u8; 32],
    /// The stream's name, NUL-terminated (79 characters at most).
    pub name: [u8; 80],
    /// Axes: 1, 2 or 3.
    pub naxis: u8,
    _pad0: [u8; 3],
    /// Size along each axis; `size[0]` is x, the fastest-varying index.
    pub size: [u32; 3],
    /// Elements: the product of the sizes in use.
    pub nelement: u64,
    /// Element type code (`_DATATYPE_*`).
    pub datatype: u8,
    _pad1: [u8; 7],
    /// Image type bits (circular buffer, axis meaning).
    pub imagetype: u64,
    /// Creation time (`CLOCK_TAI`).
    pub creationtime: Timespec,
    /// Last access time.
    pub lastaccesstime: Timespec,
    /// When the data was acquired (may be carried from a source).
    pub atime: Timespec,
    /// When the data was last written.
    pub writetime: Timespec,
    /// The process that created the stream.
    pub creator_pid: i32,
    /// The process owning it (0: unset).
    pub owner_pid: i32,
    /// 1: in shared memory.
    pub shared: u8,
    _pad2: [u8; 7],
    /// The file's inode.
    pub inode: u64,
    /// -1: CPU memory; 0 and up: a GPU.
    pub location: i8,
    /// Logging status.
    pub status: u8,
    _pad3: [u8; 6],
    /// Permission bits.
    pub flag: u64,
    /// Logging flag.
    pub logflag: u8,
    _pad4: u8,
    /// Semaphores.
    pub sem: u16,
    /// Process-trace entries.
    pub nb_proctrace: u16,
    _pad5: [u8; 2],
    /// Frames written (incremented after each write).
    pub cnt0: u64,
    /// Last slice written (3-D rolling buffers).
    pub cnt1: u64,
    /// Events (event mode).
    pub cnt2: u64,
    /// 1 while the data is being written.
    pub write: u8,
    _pad6: u8,
    /// Keywords.
    pub nb_kw: u16,
    /// Fast circular buffer frames (0: none).
    pub cb_size: u32,
    /// Fast circular buffer index.
    pub cb_index: u32,
    _pad7: [u8; 4],
    /// Fast circular buffer cycles.
    pub cb_cycle: u64,
    /// Bytes of one frame of data.
    pub imdatamemsize: u64,
    /// A CUDA IPC handle (GPU streams).
    pub cuda_mem_handle: [u8; 64],
}

/// `IMAGE_KEYWORD`: a name, a type (`N` unused, `L` i64, `D` f64, `S` string), a 16-byte
/// value, a write counter and a comment.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct Keyword {
    /// Name, NUL-padded.
    pub name: [u8; 16],
    /// Type code.
    pub kind: u8,
    _pad: [u8; 7],
    /// The value's bytes (`i64`, `f64` or a 16-byte string).
    pub value: [u8; 16],
    /// Incremented at each write.
    pub cnt: u64,
    /// Comment, NUL-padded.
    pub comment: [u8; 80],
}

impl Keyword {
    /// Offset of the value inside a keyword.
    pub const VALUE: u64 = 24;
    /// Offset of the write counter inside a keyword.
    pub const CNT: u64 = 40;

    /// An `L` (64-bit integer) keyword; the name is cut to 15 bytes and the comment to 79
    /// (each field keeps its NUL).
    pub fn long(name: &str, value: i64, comment: &str) -> Keyword {
        let mut kw = Keyword::new_zeroed();
        let n = name.len().min(15);
        kw.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        kw.kind = b'L';
        kw.value[..8].copy_from_slice(&value.to_ne_bytes());
        let c = comment.len().min(79);
        kw.comment[..c].copy_from_slice(&comment.as_bytes()[..c]);
        kw
    }

    /// An unused (`N`) keyword, as the reference writer initialises them.
    pub fn unused() -> Keyword {
        let mut kw = Keyword::new_zeroed();
        kw.kind = b'N';
        kw
    }

    /// The keyword's name.
    pub fn name(&self) -> String {
        c_str(&self.name)
    }

    /// The value, if this is an `L` keyword.
    pub fn long_value(&self) -> Option<i64> {
        (self.kind == b'L').then(|| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&self.value[..8]);
            i64::from_ne_bytes(b)
        })
    }
}

/// Offsets inside a `STREAM_PROC_TRACE` entry the creator initialises.
pub mod proctrace {
    /// `trigsemindex` (`i32`; -1: none).
    pub const TRIGSEMINDEX: u64 = 48;
}

/// Bytes of a `STREAM_PROC_TRACE` entry.
pub const PROCTRACE_SIZE: u64 = 64;
/// Bytes of a `CBFRAMEMD` entry.
pub const CBFRAMEMD_SIZE: u64 = 48;

// The offsets a C compiler gives `IMAGE_METADATA` and `IMAGE_KEYWORD` on x86-64 (checked by
// hand against the reference header with offsetof; the conformance test reads a file with
// an independent reader written from these numbers).
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<Metadata>() == 384);
    assert!(offset_of!(Metadata, name) == 32);
    assert!(offset_of!(Metadata, naxis) == 112);
    assert!(offset_of!(Metadata, size) == 116);
    assert!(offset_of!(Metadata, nelement) == 128);
    assert!(offset_of!(Metadata, datatype) == 136);
    assert!(offset_of!(Metadata, imagetype) == 144);
    assert!(offset_of!(Metadata, creationtime) == 152);
    assert!(offset_of!(Metadata, lastaccesstime) == 168);
    assert!(offset_of!(Metadata, atime) == 184);
    assert!(offset_of!(Metadata, writetime) == 200);
    assert!(offset_of!(Metadata, creator_pid) == 216);
    assert!(offset_of!(Metadata, creator_pid) == offsets::CREATOR_PID);
    assert!(offset_of!(Metadata, creationtime) == offsets::CREATIONTIME);
    assert!(offset_of!(Metadata, owner_pid) == offsets::OWNER_PID);
    assert!(offset_of!(Metadata, owner_pid) == 220);
    assert!(offset_of!(Metadata, shared) == 224);
    assert!(offset_of!(Metadata, inode) == 232);
    assert!(offset_of!(Metadata, location) == 240);
    assert!(offset_of!(Metadata, status) == 241);
    assert!(offset_of!(Metadata, flag) == 248);
    assert!(offset_of!(Metadata, logflag) == 256);
    assert!(offset_of!(Metadata, sem) == 258);
    assert!(offset_of!(Metadata, nb_proctrace) == 260);
    assert!(offset_of!(Metadata, cnt0) == 264);
    assert!(offset_of!(Metadata, cnt1) == 272);
    assert!(offset_of!(Metadata, cnt2) == 280);
    assert!(offset_of!(Metadata, write) == 288);
    assert!(offset_of!(Metadata, nb_kw) == 290);
    assert!(offset_of!(Metadata, cb_size) == 292);
    assert!(offset_of!(Metadata, cb_index) == 296);
    assert!(offset_of!(Metadata, cb_cycle) == 304);
    assert!(offset_of!(Metadata, imdatamemsize) == 312);
    assert!(offset_of!(Metadata, cuda_mem_handle) == 320);
    assert!(size_of::<Keyword>() == 128);
    assert!(offset_of!(Keyword, kind) == 16);
    assert!(offset_of!(Keyword, value) == 24);
    assert!(offset_of!(Keyword, cnt) == 40);
    assert!(offset_of!(Keyword, comment) == 48);
};

/// Offsets of the shared words readers and writers touch in place.
pub mod offsets {
    /// `cnt0`.
    pub const CNT0: usize = 264;
    /// `cnt1`.
    pub const CNT1: usize = 272;
    /// `write`.
    pub const WRITE: usize = 288;
    /// `atime`.
    pub const ATIME: usize = 184;
    /// `writetime`.
    pub const WRITETIME: usize = 200;
    /// `lastaccesstime`.
    pub const LASTACCESSTIME: usize = 168;
    /// `creationtime`.
    pub const CREATIONTIME: usize = 152;
    /// `creatorPID`.
    pub const CREATOR_PID: usize = 216;
    /// `ownerPID`.
    pub const OWNER_PID: usize = 220;
}

/// ImageStreamIO element types, by code. Those shmkit frame rings hold map to an
/// [`ElemType`](shmkit::rings::ElemType); the others are refused with their name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// `_DATATYPE_UINT8` (1).
    U8,
    /// `_DATATYPE_INT8` (2).
    I8,
    /// `_DATATYPE_UINT16` (3).
    U16,
    /// `_DATATYPE_INT16` (4).
    I16,
    /// `_DATATYPE_UINT32` (5).
    U32,
    /// `_DATATYPE_INT32` (6).
    I32,
    /// `_DATATYPE_UINT64` (7).
    U64,
    /// `_DATATYPE_INT64` (8).
    I64,
    /// `_DATATYPE_FLOAT` (9).
    F32,
    /// `_DATATYPE_DOUBLE` (10).
    F64,
    /// `_DATATYPE_COMPLEX_FLOAT` (11).
    ComplexF32,
    /// `_DATATYPE_COMPLEX_DOUBLE` (12).
    ComplexF64,
    /// `_DATATYPE_HALF` (13).
    F16,
    /// `_DATATYPE_EVENT_UI8_UI8_UI16_UI8` (20).
    Event,
}

impl DataType {
    /// The type of code `code`, if ImageStreamIO defines one.
    pub fn from_code(code: u8) -> Option<DataType> {
        Some(match code {
            1 => DataType::U8,
            2 => DataType::I8,
            3 => DataType::U16,
            4 => DataType::I16,
            5 => DataType::U32,
            6 => DataType::I32,
            7 => DataType::U64,
            8 => DataType::I64,
            9 => DataType::F32,
            10 => DataType::F64,
            11 => DataType::ComplexF32,
            12 => DataType::ComplexF64,
            13 => DataType::F16,
            20 => DataType::Event,
            _ => return None,
        })
    }

    /// Its code.
    pub fn code(self) -> u8 {
        match self {
            DataType::U8 => 1,
            DataType::I8 => 2,
            DataType::U16 => 3,
            DataType::I16 => 4,
            DataType::U32 => 5,
            DataType::I32 => 6,
            DataType::U64 => 7,
            DataType::I64 => 8,
            DataType::F32 => 9,
            DataType::F64 => 10,
            DataType::ComplexF32 => 11,
            DataType::ComplexF64 => 12,
            DataType::F16 => 13,
            DataType::Event => 20,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            DataType::U8 | DataType::I8 => 1,
            DataType::U16 | DataType::I16 | DataType::F16 => 2,
            DataType::U32 | DataType::I32 | DataType::F32 => 4,
            DataType::U64 | DataType::I64 | DataType::F64 | DataType::ComplexF32 => 8,
            DataType::ComplexF64 => 16,
            DataType::Event => 5,
        }
    }

    /// Its name in ImageStreamIO's terms.
    pub fn name(self) -> &'static str {
        match self {
            DataType::U8 => "UINT8",
            DataType::I8 => "INT8",
            DataType::U16 => "UINT16",
            DataType::I16 => "INT16",
            DataType::U32 => "UINT32",
            DataType::I32 => "INT32",
            DataType::U64 => "UINT64",
            DataType::I64 => "INT64",
            DataType::F32 => "FLOAT",
            DataType::F64 => "DOUBLE",
            DataType::ComplexF32 => "COMPLEX_FLOAT",
            DataType::ComplexF64 => "COMPLEX_DOUBLE",
            DataType::F16 => "HALF",
            DataType::Event => "EVENT_UI8_UI8_UI16_UI8",
        }
    }

    /// The shmkit element type holding it, if any.
    pub fn elem(self) -> Option<shmkit::rings::ElemType> {
        use shmkit::rings::ElemType;
        Some(match self {
            DataType::U8 => ElemType::U8,
            DataType::U16 => ElemType::U16,
            DataType::I16 => ElemType::I16,
            DataType::U32 => ElemType::U32,
            DataType::I32 => ElemType::I32,
            DataType::F32 => ElemType::F32,
            DataType::F64 => ElemType::F64,
            _ => return None,
        })
    }

    /// The ImageStreamIO type of a shmkit element type.
    pub fn of(elem: shmkit::rings::ElemType) -> DataType {
        use shmkit::rings::ElemType;
        match elem {
            ElemType::U8 => DataType::U8,
            ElemType::U16 => DataType::U16,
            ElemType::I16 => DataType::I16,
            ElemType::U32 => DataType::U32,
            ElemType::I32 => DataType::I32,
            ElemType::F32 => DataType::F32,
            ElemType::F64 => DataType::F64,
        }
    }
}

/// Where each region of a stream file starts (byte offsets from the start of the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// One frame of data.
    pub data: u64,
    /// Its length.
    pub data_len: u64,
    /// The keyword array.
    pub keywords: u64,
    /// Keywords.
    pub nb_kw: u16,
    /// The semaphore array (`sem` × `sem_t`).
    pub semaphores: u64,
    /// Semaphores.
    pub sem: u16,
    /// The logging semaphore.
    pub semlog: u64,
    /// Readers' PIDs, one `i32` per semaphore.
    pub read_pids: u64,
    /// Writers' PIDs.
    pub write_pids: u64,
    /// Semaphore control words (`u32`).
    pub semctrl: u64,
    /// Semaphore status words (`u32`).
    pub semstatus: u64,
    /// Process-trace entries.
    pub proctrace: u64,
    /// The fast circular buffer's metadata.
    pub cb_metadata: u64,
    /// The whole file.
    pub total: u64,
}

fn round8(v: u64) -> Result<u64, IsioError> {
    v.checked_add(7)
        .map(|v| v & !7)
        .ok_or(IsioError::Corrupt("a region size overflows"))
}

/// Adds a region of `count × size` bytes at `at`; returns where it starts and moves `at`.
fn region(at: &mut u64, count: u64, size: u64) -> Result<u64, IsioError> {
    let start = *at;
    let len = count
        .checked_mul(size)
        .ok_or(IsioError::Corrupt("a region size overflows"))?;
    *at = at
        .checked_add(round8(len)?)
        .ok_or(IsioError::Corrupt("the file size overflows"))?;
    Ok(start)
}

impl Layout {
    /// The regions of a stream with metadata `md` (its counts trusted only as far as the
    /// arithmetic is checked; [`parse`] also checks them against the file).
    pub fn of(md: &Metadata) -> Result<Layout, IsioError> {
        let mut at = round8(core::mem::size_of::<Metadata>() as u64)?;
        let data = region(&mut at, 1, md.imdatamemsize)?;
        let keywords = region(&mut at, u64::from(md.nb_kw), 128)?;
        let semaphores = region(&mut at, u64::from(md.sem), SEM_T_SIZE)?;
        let semlog = region(&mut at, 1, SEM_T_SIZE)?;
        let read_pids = region(&mut at, u64::from(md.sem), 4)?;
        let write_pids = region(&mut at, u64::from(md.sem), 4)?;
        let semctrl = region(&mut at, u64::from(md.sem), 4)?;
        let semstatus = region(&mut at, u64::from(md.sem), 4)?;
        let proctrace = region(&mut at, u64::from(md.nb_proctrace), PROCTRACE_SIZE)?;
        if md.imagetype & 0xF000F == CIRCULAR_BUFFER | ZAXIS_TEMPORAL {
            let slices = u64::from(md.size[2]);
            region(&mut at, slices, 16)?; // atimearray
            region(&mut at, slices, 16)?; // writetimearray
            region(&mut at, slices, 8)?; // cntarray
        }
        let cb_metadata = region(&mut at, u64::from(md.cb_size), CBFRAMEMD_SIZE)?;
        if md.cb_size > 0 {
            region(&mut at, md.imdatamemsize, u64::from(md.cb_size))?;
        }
        Ok(Layout {
            data,
            data_len: md.imdatamemsize,
            keywords,
            nb_kw: md.nb_kw,
            semaphores,
            sem: md.sem,
            semlog,
            read_pids,
            write_pids,
            semctrl,
            semstatus,
            proctrace,
            cb_metadata,
            total: at,
        })
    }
}

/// A NUL-terminated field as text (up to its first NUL; lossy).
pub fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// A parsed, checked stream header.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The metadata as read.
    pub metadata: Metadata,
    /// Its element type.
    pub datatype: DataType,
    /// Where everything is.
    pub layout: Layout,
    /// The sizes in use, x first (`naxis` of them).
    pub size: Vec<u32>,
}

impl Parsed {
    /// The stream's name.
    pub fn name(&self) -> String {
        c_str(&self.metadata.name)
    }

    /// The frame shape, row-major as shmkit rings hold it (slowest axis first: `[z, y, x]`).
    pub fn shape(&self) -> Vec<u32> {
        self.size.iter().rev().copied().collect()
    }
}

/// Checks a stream file's bytes (at least its header; `file_len` is the whole file's
/// length) and computes its layout. Refuses: a file shorter than the header, another
/// version, 0 or more than 3 axes, sizes whose product is not `nelement` (or above the
/// reference reader's limit), an unknown element type, a data size other than `nelement ×`
/// the element size, a GPU stream, a stream not in shared memory, and regions that do not
/// end exactly at `file_len`.
pub fn parse(header: &[u8], file_len: u64) -> Result<Parsed, IsioError> {
    let size = core::mem::size_of::<Metadata>();
    let Some(bytes) = header.get(..size) else {
        return Err(IsioError::TooShort {
            len: header.len() as u64,
        });
    };
    let metadata = Metadata::read_from_bytes(bytes).map_err(|_| IsioError::TooShort {
        len: header.len() as u64,
    })?;
    let version = c_str(&metadata.version);
    if version != VERSION {
        return Err(IsioError::Version { found: version });
    }
    if !(1..=3).contains(&metadata.naxis) {
        return Err(IsioError::Axes {
            naxis: metadata.naxis,
        });
    }
    let sizes: Vec<u32> = metadata.size[..usize::from(metadata.naxis)].to_vec();
    let product = sizes
        .iter()
        .try_fold(1u64, |p, &s| p.checked_mul(u64::from(s)))
        .ok_or(IsioError::Corrupt("the element count overflows"))?;
    if product != metadata.nelement || product == 0 || product > MAX_ELEMENTS {
        return Err(IsioError::Shape {
            size: sizes,
            nelement: metadata.nelement,
        });
    }
    let datatype = DataType::from_code(metadata.datatype).ok_or(IsioError::UnknownType {
        code: metadata.datatype,
    })?;
    if Some(metadata.imdatamemsize) != product.checked_mul(datatype.size()) {
        return Err(IsioError::Corrupt(
            "the data size is not the element count times the element size",
        ));
    }
    if metadata.location != -1 {
        return Err(IsioError::Gpu {
            location: metadata.location,
        });
    }
    if metadata.shared != 1 {
        return Err(IsioError::Corrupt("the stream is not in shared memory"));
    }
    let layout = Layout::of(&metadata)?;
    if layout.total != file_len {
        return Err(IsioError::FileSize {
            expected: layout.total,
            found: file_len,
        });
    }
    Ok(Parsed {
        metadata,
        datatype,
        layout,
        size: sizes,
    })
}

impl Metadata {
    /// A zeroed header (every field 0, the padding too).
    pub fn zeroed() -> Metadata {
        Metadata::new_zeroed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(size: [u32; 3], naxis: u8, datatype: DataType) -> Metadata {
        let mut md = Metadata::zeroed();
        md.version[..4].copy_from_slice(VERSION.as_bytes());
        md.naxis = naxis;
        md.size = size;
        md.nelement = size[..usize::from(naxis)]
            .iter()
            .map(|&s| u64::from(s))
            .product();
        md.datatype = datatype.code();
        md.imdatamemsize = md.nelement * datatype.size();
        md.location = -1;
        md.shared = 1;
        md.sem = DEFAULT_SEMAPHORES;
        md.nb_proctrace = DEFAULT_PROCTRACE;
        md.nb_kw = 4;
        md
    }

    #[test]
    fn the_layout_of_a_192_square_u16_stream_is_the_reference_writers() {
        let md = header([192, 192, 0], 2, DataType::U16);
        let l = Layout::of(&md).unwrap();
        // 384 header, 73728 data, 4 × 128 keywords, 10 × 32 semaphores, 32 semlog,
        // 4 × (10 × 4 → 40) PID/ctrl/status arrays, 10 × 64 traces.
        assert_eq!(l.data, 384);
        assert_eq!(l.keywords, 384 + 73728);
        assert_eq!(l.semaphores, l.keywords + 512);
        assert_eq!(l.semlog, l.semaphores + 320);
        assert_eq!(l.read_pids, l.semlog + 32);
        assert_eq!(l.write_pids, l.read_pids + 40);
        assert_eq!(l.semctrl, l.write_pids + 40);
        assert_eq!(l.semstatus, l.semctrl + 40);
        assert_eq!(l.proctrace, l.semstatus + 40);
        assert_eq!(l.total, l.proctrace + 640);
    }

    #[test]
    fn odd_sizes_round_every_region_up_to_eight() {
        let mut md = header([3, 0, 0], 1, DataType::U8);
        md.sem = 3;
        md.nb_kw = 0;
        let l = Layout::of(&md).unwrap();
        assert_eq!(l.keywords, 384 + 8);
        assert_eq!(l.read_pids, l.semlog + 32);
        assert_eq!(l.write_pids, l.read_pids + 16, "3 PIDs = 12 bytes → 16");
    }

    #[test]
    fn parse_accepts_what_the_layout_describes_and_refuses_the_rest() {
        let md = header([64, 32, 0], 2, DataType::F32);
        let total = Layout::of(&md).unwrap().total;
        let bytes = md.as_bytes().to_vec();
        let p = parse(&bytes, total).unwrap();
        assert_eq!(p.shape(), vec![32, 64]);
        assert_eq!(p.datatype, DataType::F32);
        assert!(matches!(
            parse(&bytes, total + 8),
            Err(IsioError::FileSize { .. })
        ));
        assert!(matches!(
            parse(&bytes[..100], total),
            Err(IsioError::TooShort { .. })
        ));
        let mut bad = md;
        bad.version[0] = b'1';
        assert!(matches!(
            parse(bad.as_bytes(), total),
            Err(IsioError::Version { .. })
        ));
        let mut bad = md;
        bad.naxis = 4;
        assert!(matches!(
            parse(bad.as_bytes(), total),
            Err(IsioError::Axes { naxis: 4 })
        ));
        let mut bad = md;
        bad.nelement += 1;
        assert!(matches!(
            parse(bad.as_bytes(), total),
            Err(IsioError::Shape { .. })
        ));
        let mut bad = md;
        bad.datatype = 99;
        assert!(matches!(
            parse(bad.as_bytes(), total),
            Err(IsioError::UnknownType { code: 99 })
        ));
        let mut bad = md;
        bad.location = 0;
        assert!(matches!(
            parse(bad.as_bytes(), total),
            Err(IsioError::Gpu { location: 0 })
        ));
        let mut bad = md;
        bad.size = [u32::MAX, u32::MAX, u32::MAX];
        bad.naxis = 3;
        assert!(parse(bad.as_bytes(), total).is_err());
    }

    #[test]
    fn every_shmkit_element_type_maps_and_the_others_are_named() {
        use shmkit::rings::ElemType;
        for e in [
            ElemType::U8,
            ElemType::U16,
            ElemType::U32,
            ElemType::I16,
            ElemType::I32,
            ElemType::F32,
            ElemType::F64,
        ] {
            let t = DataType::of(e);
            assert_eq!(t.elem(), Some(e));
            assert_eq!(t.size() as usize, e.size());
            assert_eq!(DataType::from_code(t.code()), Some(t));
        }
        for code in [2u8, 7, 8, 11, 12, 13, 20] {
            let t = DataType::from_code(code).unwrap();
            assert!(t.elem().is_none(), "{}", t.name());
        }
    }
}
