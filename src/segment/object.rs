//! One way to open every kind of segment object.
//!
//! Each kind (mutex, event, barrier, shared value, dictionary, frame ring, command ring)
//! implements [`SegmentObject`]: its table kind, its creation parameters, how to place a new
//! one, how to attach to an existing block (validating every geometry field with the kind's
//! validator in `shm_layout::validate`), and how to tell whether an existing one matches
//! parameters. On top of that the segment offers, for every kind alike:
//!
//! - [`SegmentObjects::open`]: attach to an existing object by name, reading its geometry from
//!   the segment (a reader never repeats what the creator said);
//! - [`SegmentObjects::create`]: create it, failing if the name exists;
//! - [`SegmentObjects::open_or_create`]: either, checking that an existing object matches the
//!   parameters and naming both sides when it does not;
//! - [`Segment::attach`]: attach by offset, through the same validation.
//!
//! The short forms (`seg.mutex(name)`, `seg.frame_ring(name, spec)`, ...) are `open_or_create`
//! spelled for one kind. These, [`Segment::attach`], [`Segment::lookup`] and
//! [`Segment::entries`] are every public way from a segment to an object; the rest of
//! `Segment` is its life cycle (`mod.rs`) and its raw bytes (`raw.rs`).

use super::{Segment, SegmentError};
use crate::primitives::{Barrier, Event, Mutex};
use crate::rings::{CommandRing, CommandSpec, FrameRing, FrameSpec};
use crate::shared::{DictSpec, PlainData, Shared, SharedDict};
use crate::sys::clock::Deadline;
use crate::table::{self, Created, EntryInfo, NamedEntry};
use shm_layout::ObjectKind;

/// Where a newly placed object is, as recorded in the named-object table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// Offset of the object's block.
    pub offset: u64,
    /// Bytes of the object.
    pub size: u64,
    /// A kind-specific parameter word shown by the inspector (barrier parties, dictionary
    /// capacity, a fingerprint of a ring's geometry).
    pub param: u64,
}

pub(crate) mod sealed {
    /// Only this crate's object kinds can be segment objects: their bytes are part of the
    /// versioned layout.
    pub trait Sealed {}
}

/// A kind of object that lives in a segment (see the module documentation).
pub trait SegmentObject: Sized + sealed::Sealed {
    /// What creating one takes: `()` for a mutex or an event, the number of parties for a
    /// barrier, the geometry for a ring or a dictionary, the initial value for a shared value.
    type Params: ?Sized;
    /// Its kind in the named-object table.
    const KIND: ObjectKind;

    /// Attaches to the object whose block is at `offset`, validating the block's kind and
    /// size and every field the handle will rely on.
    fn attach(segment: &Segment, offset: u64) -> Result<Self, SegmentError>;

    /// Places a new object (not yet named) and says where it is.
    fn place(segment: &Segment, params: &Self::Params) -> Result<Placed, SegmentError>;

    /// `None` if this existing object matches `params`; otherwise a sentence naming both
    /// sides ("it has 4 slots of u16 [480, 640]; 8 slots of u16 [480, 640] were asked for").
    fn mismatch(&self, params: &Self::Params) -> Option<String>;
}

/// Opening segment objects by name, for every kind alike.
///
/// A trait rather than inherent methods only because `Segment::open` and `Segment::create`
/// already name the segment's own constructors; bring it into scope with
/// `use shmkit::SegmentObjects` (or `use shmkit::prelude::*`).
pub trait SegmentObjects {
    /// Attaches to the existing object `name`, reading its parameters from the segment.
    /// [`SegmentError::ObjectNotFound`] if there is none, [`SegmentError::KindMismatch`] if
    /// it is another kind.
    fn open<T: SegmentObject>(&self, name: &str) -> Result<T, SegmentError>;

    /// Creates the object `name`; [`SegmentError::ObjectExists`] if the name is taken.
    fn create<T: SegmentObject>(&self, name: &str, params: &T::Params) -> Result<T, SegmentError>;

    /// Opens `name` if it exists (it must be this kind and match `params`, else
    /// [`SegmentError::ParamMismatch`] names both sides), creates it otherwise. Safe against
    /// racing creators in any process: exactly one creates it.
    fn open_or_create<T: SegmentObject>(
        &self,
        name: &str,
        params: &T::Params,
    ) -> Result<T, SegmentError>;
}

impl SegmentObjects for Segment {
    fn open<T: SegmentObject>(&self, name: &str) -> Result<T, SegmentError> {
        let info = self
            .lookup(name)?
            .ok_or_else(|| SegmentError::ObjectNotFound {
                name: name.to_owned(),
                kind: T::KIND.name(),
            })?;
        check_kind(&info, name, T::KIND)?;
        T::attach(self, info.offset).map_err(|e| e.for_name(name))
    }

    fn create<T: SegmentObject>(&self, name: &str, params: &T::Params) -> Result<T, SegmentError> {
        let (offset, created) = self.find_or_place::<T>(name, params)?;
        if !created {
            return Err(SegmentError::ObjectExists {
                name: name.to_owned(),
                kind: T::KIND.name(),
            });
        }
        T::attach(self, offset).map_err(|e| e.for_name(name))
    }

    fn open_or_create<T: SegmentObject>(
        &self,
        name: &str,
        params: &T::Params,
    ) -> Result<T, SegmentError> {
        let (offset, created) = self.find_or_place::<T>(name, params)?;
        let object = T::attach(self, offset).map_err(|e| e.for_name(name))?;
        if !created {
            if let Some(detail) = object.mismatch(params) {
                return Err(SegmentError::ParamMismatch {
                    name: name.to_owned(),
                    detail,
                });
            }
        }
        Ok(object)
    }
}

/// The segment's object methods: every public method of [`Segment`] that reaches an object.
impl Segment {
    /// Attaches to the object of kind `T` whose block is at `offset` (as returned by its
    /// handle's `offset()` in any process), validating it as [`SegmentObjects::open`] does.
    pub fn attach<T: SegmentObject>(&self, offset: u64) -> Result<T, SegmentError> {
        T::attach(self, offset)
    }

    /// The named object `name`, if it exists. Lock-free: no mutex, no system call.
    pub fn lookup(&self, name: &str) -> Result<Option<EntryInfo>, SegmentError> {
        let name = super::named::object_name(name)?;
        table::lookup(self.table(), &name).map_err(|e| super::named::table_error(e, name.as_str()))
    }

    /// Every named object.
    pub fn entries(&self) -> Result<Vec<NamedEntry>, SegmentError> {
        table::list(self.table())
            .into_iter()
            .map(|r| r.map_err(|e| super::named::table_error(e, "")))
            .collect()
    }

    /// Finds or creates the mutex `name`: `open_or_create::<Mutex>(name, &())`.
    pub fn mutex(&self, name: &str) -> Result<Mutex, SegmentError> {
        self.open_or_create(name, &())
    }

    /// Finds or creates the event `name`.
    pub fn event(&self, name: &str) -> Result<Event, SegmentError> {
        self.open_or_create(name, &())
    }

    /// Finds or creates the histogram `name`.
    pub fn histogram(&self, name: &str) -> Result<crate::shared::Histogram, SegmentError> {
        self.open_or_create(name, &())
    }

    /// Finds or creates the trace buffer `name`; an existing one must have `spec`'s size.
    pub fn trace_buffer(
        &self,
        name: &str,
        spec: &crate::shared::TraceSpec,
    ) -> Result<crate::shared::TraceBuffer, SegmentError> {
        self.open_or_create(name, spec)
    }

    /// Finds or creates the barrier `name` for `parties`; an existing barrier must have the
    /// same number of parties.
    pub fn barrier(&self, name: &str, parties: u32) -> Result<Barrier, SegmentError> {
        self.open_or_create(name, &parties)
    }

    /// Finds or creates the shared value `name`, initialised to `init` by its creator. An
    /// existing value must have been created with the same type.
    pub fn shared<T: PlainData>(&self, name: &str, init: T) -> Result<Shared<T>, SegmentError> {
        self.open_or_create(name, &init)
    }

    /// Finds or creates the dictionary `name` holding up to `max_entries` keys, with 128 bytes
    /// of record space per key; an existing dictionary must have that capacity. (Another
    /// record space: `open_or_create::<SharedDict>(name, &DictSpec { .. })`; without knowing
    /// the capacity: `open::<SharedDict>(name)`.)
    pub fn dict(&self, name: &str, max_entries: u32) -> Result<SharedDict, SegmentError> {
        self.open_or_create(name, &DictSpec::new(max_entries))
    }

    /// Finds or creates the frame ring `name`; an existing ring must have the same spec.
    /// (To read a ring without knowing its spec: `seg.open::<FrameRing>(name)`.)
    pub fn frame_ring(&self, name: &str, spec: &FrameSpec) -> Result<FrameRing, SegmentError> {
        self.open_or_create(name, spec)
    }

    /// Finds or creates the command ring `name`; an existing ring must have the same spec.
    /// (To call a ring without knowing its spec: `seg.open::<CommandRing>(name)`.)
    pub fn command_ring(
        &self,
        name: &str,
        spec: &CommandSpec,
    ) -> Result<CommandRing, SegmentError> {
        self.open_or_create(name, spec)
    }
}

impl Segment {
    /// Finds `name` (checking its kind) or places it; returns its offset and whether this
    /// call created it.
    fn find_or_place<T: SegmentObject>(
        &self,
        name: &str,
        params: &T::Params,
    ) -> Result<(u64, bool), SegmentError> {
        let (info, created) =
            self.find_or_create_entry(name, T::KIND, || T::place(self, params))?;
        check_kind(&info, name, T::KIND)?;
        Ok((info.offset, created))
    }

    /// The table entry `name`, or a new one of `kind` whose object `place` puts in the
    /// segment (exactly one caller in any process places it); and whether this call did.
    pub(super) fn find_or_create_entry(
        &self,
        name: &str,
        kind: ObjectKind,
        place: impl FnOnce() -> Result<Placed, SegmentError>,
    ) -> Result<(EntryInfo, bool), SegmentError> {
        if let Some(info) = self.lookup(name)? {
            return Ok((info, false));
        }
        let object_name = super::named::object_name(name)?;
        table::find_or_create(
            self.table(),
            &object_name,
            kind,
            Deadline::after(self.create_wait),
            || {
                place().map(|p| Created {
                    offset: p.offset,
                    size: p.size,
                    param: p.param,
                })
            },
        )
        .map_err(|e| super::named::creation_error(e, name, self.create_wait))
    }
}

/// `KindMismatch` unless the entry `info` of `name` is a `kind`.
fn check_kind(info: &EntryInfo, name: &str, kind: ObjectKind) -> Result<(), SegmentError> {
    if info.kind != kind {
        return Err(SegmentError::KindMismatch {
            name: name.to_owned(),
            existing: info.kind.name(),
            requested: kind.name(),
        });
    }
    Ok(())
}
