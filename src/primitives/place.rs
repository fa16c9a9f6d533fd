//! Where a primitive's state lives, and what keeps that memory alive.

use std::any::Any;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;

/// A shared reference to a state struct in a segment mapping or on the heap, together with
/// whatever keeps that memory mapped (the segment's mapping, or the heap allocation itself).
pub(crate) struct StateRef<T: Sync + 'static> {
    ptr: NonNull<T>,
    offset: Option<u64>,
    _keep: Arc<dyn Any + Send + Sync>,
}

// SAFETY: `T: Sync` (state structs are atomics only) and the keep-alive is `Send + Sync`, so the
// reference may move to and be shared by other threads like an `Arc<T>`.
unsafe impl<T: Sync + 'static> Send for StateRef<T> {}
// SAFETY: as above.
unsafe impl<T: Sync + 'static> Sync for StateRef<T> {}

impl<T: Sync + Send + 'static> StateRef<T> {
    /// State in its own heap allocation: a process-local primitive.
    pub(crate) fn heap(value: T) -> Self {
        let arc = Arc::new(value);
        let ptr = NonNull::from(&*arc);
        StateRef {
            ptr,
            offset: None,
            _keep: arc,
        }
    }
}

impl<T: Sync + 'static> StateRef<T> {
    /// State inside a mapping.
    ///
    /// # Safety
    /// `ptr` must be aligned for `T` and point to `size_of::<T>()` bytes that stay mapped while
    /// `keep` is alive; `T` must be valid for any bytes (atomics and [`Reserved`](crate::sync::Reserved) fields only).
    #[cfg(not(loom))]
    pub(crate) unsafe fn in_mapping(
        ptr: NonNull<T>,
        offset: u64,
        keep: Arc<dyn Any + Send + Sync>,
    ) -> Self {
        StateRef {
            ptr,
            offset: Some(offset),
            _keep: keep,
        }
    }

    /// Offset of the state in its segment; `None` on the heap.
    pub(crate) fn offset(&self) -> Option<u64> {
        self.offset
    }
}

impl<T: Sync + 'static> Clone for StateRef<T> {
    fn clone(&self) -> Self {
        StateRef {
            ptr: self.ptr,
            offset: self.offset,
            _keep: Arc::clone(&self._keep),
        }
    }
}

impl<T: Sync + 'static> Deref for StateRef<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: construction guarantees the pointer is aligned and valid while `_keep` lives,
        // and `_keep` lives as long as `self`.
        unsafe { self.ptr.as_ref() }
    }
}

/// A shared reference to an array of state structs (a barrier's party slots) in a segment
/// mapping or on the heap, with whatever keeps that memory alive.
pub(crate) struct StateSlice<T: Sync + 'static> {
    ptr: NonNull<T>,
    len: usize,
    _keep: Arc<dyn Any + Send + Sync>,
}

// SAFETY: as for `StateRef`: `T: Sync` and the keep-alive is `Send + Sync`.
unsafe impl<T: Sync + 'static> Send for StateSlice<T> {}
// SAFETY: as above.
unsafe impl<T: Sync + 'static> Sync for StateSlice<T> {}

impl<T: Sync + Send + 'static> StateSlice<T> {
    /// `len` values made by `make` in their own heap allocation.
    pub(crate) fn heap(len: usize, make: impl FnMut() -> T) -> Self {
        let arc: Arc<[T]> = std::iter::repeat_with(make).take(len).collect();
        let ptr = NonNull::from(&arc[..]).cast::<T>();
        StateSlice {
            ptr,
            len,
            _keep: Arc::new(arc),
        }
    }
}

impl<T: Sync + 'static> StateSlice<T> {
    /// An array inside a mapping.
    ///
    /// # Safety
    /// `ptr` must be aligned for `T` and point to `len * size_of::<T>()` bytes that stay
    /// mapped while `keep` is alive; `T` must be valid for any bytes (atomics only).
    #[cfg(not(loom))]
    pub(crate) unsafe fn in_mapping(
        ptr: NonNull<T>,
        len: usize,
        keep: Arc<dyn Any + Send + Sync>,
    ) -> Self {
        StateSlice {
            ptr,
            len,
            _keep: keep,
        }
    }
}

impl<T: Sync + 'static> Clone for StateSlice<T> {
    fn clone(&self) -> Self {
        StateSlice {
            ptr: self.ptr,
            len: self.len,
            _keep: Arc::clone(&self._keep),
        }
    }
}

impl<T: Sync + 'static> Deref for StateSlice<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: construction guarantees `len` valid, aligned values while `_keep` lives,
        // and `_keep` lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}
