//! Typed views of shared memory: `#[repr(C)]` structs of atomics that mirror a `shm-layout`
//! type field for field, checked at compile time.
//!
//! A handle attaches a view once, after the segment checked that the block holds it (bounds,
//! alignment, kind), and from then on reaches every shared word by field name: no function
//! takes a byte offset, so no caller can pass a wrong one. [`shared_view!`] declares a view
//! and asserts its size, alignment and every field's offset and size against the layout
//! type; [`SharedWord`] limits the fields to types that are valid for any bytes another
//! process may write (atomics, [`Reserved`] fields, arrays and other views).

use std::cell::UnsafeCell;

/// A reserved field of a shared struct, typed as its layout field is (`u32`, `[u64; 4]`), so
/// that a view can mirror the layout field for field. Never read or written by this process:
/// it copies out as zero; an `UnsafeCell` because another process may write it.
#[repr(transparent)]
pub(crate) struct Reserved<T>(UnsafeCell<T>);

impl<T: Default> Reserved<T> {
    pub(crate) fn new() -> Self {
        Reserved(UnsafeCell::new(T::default()))
    }
}

// SAFETY: the value is never read or written through this type, so sharing it is harmless.
unsafe impl<T> Sync for Reserved<T> {}

/// A type that is valid for any bit pattern and may be written by another process while this
/// one holds a shared reference to it (atomics, padding cells, arrays of them, views).
///
/// # Safety
/// Implementors must have no invalid bit patterns, no padding that is read, and interior
/// mutability for every byte (so concurrent writes by other processes are not UB).
pub(crate) unsafe trait SharedWord: Sync + 'static {
    /// The plain value this word holds (`u32` for an `AtomicU32`, the layout struct for a
    /// view), as copied out for a validator.
    type Plain: Copy;
    /// A copy of the current value, each atomic loaded Relaxed (a snapshot for validation,
    /// not a synchronised read).
    fn load_plain(&self) -> Self::Plain;
}

// SAFETY: atomics are valid for any bits and are written through shared references.
unsafe impl SharedWord for std::sync::atomic::AtomicU8 {
    type Plain = u8;
    fn load_plain(&self) -> u8 {
        self.load(std::sync::atomic::Ordering::Relaxed)
    }
}
// SAFETY: as above.
unsafe impl SharedWord for std::sync::atomic::AtomicU16 {
    type Plain = u16;
    fn load_plain(&self) -> u16 {
        self.load(std::sync::atomic::Ordering::Relaxed)
    }
}
// SAFETY: as above.
unsafe impl SharedWord for super::AtomicU32 {
    type Plain = u32;
    fn load_plain(&self) -> u32 {
        self.load(super::Ordering::Relaxed)
    }
}
// SAFETY: as above.
unsafe impl SharedWord for super::AtomicU64 {
    type Plain = u64;
    fn load_plain(&self) -> u64 {
        self.load(super::Ordering::Relaxed)
    }
}
// SAFETY: an array of valid-for-any-bytes cells is one too.
unsafe impl<T: SharedWord, const N: usize> SharedWord for [T; N] {
    type Plain = [T::Plain; N];
    fn load_plain(&self) -> [T::Plain; N] {
        std::array::from_fn(|i| self[i].load_plain())
    }
}
// SAFETY: a `Reserved` is an `UnsafeCell` of plain integers that is never read; any bytes are a
// valid `T` for the integer and integer-array types it is used with (`FromBytes` in the layout).
unsafe impl<T: Copy + Default + Sync + 'static> SharedWord for Reserved<T> {
    type Plain = T;
    /// Reserved fields are never read: they copy out as zeros.
    fn load_plain(&self) -> T {
        T::default()
    }
}

/// `size_of` the type a field accessor returns, usable in `const` assertions.
#[doc(hidden)]
pub(crate) const fn size_of_field<S, F>(_field: fn(&S) -> &F) -> usize {
    std::mem::size_of::<F>()
}

/// Declares a view struct mirroring `$layout` and asserts, at compile time, that it has the
/// layout's size and alignment and that each field has the layout field's offset and size.
/// Every field must be a [`SharedWord`] whose plain value has the layout field's type (the
/// generated `load_plain` builds the layout struct from them, so a view that leaves a field
/// out, or gives one another type, does not compile); the view itself becomes a `SharedWord`.
macro_rules! shared_view {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident mirrors $layout:ident, align($align:literal) {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $fty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C, align($align))]
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $fty ),*
        }

        // SAFETY: every field is a `SharedWord` (checked below, and by `load_plain`), and a
        // `repr(C)` struct of them with each field at the layout field's offset and size has
        // no padding (zerocopy's `IntoBytes` on the layout type proves its fields tile it).
        unsafe impl $crate::sync::SharedWord for $name {
            type Plain = $layout;
            fn load_plain(&self) -> $layout {
                $layout { $( $field: self.$field.load_plain() ),* }
            }
        }

        #[cfg(not(loom))]
        const _: () = {
            const fn is_shared_word<T: $crate::sync::SharedWord>() {}
            $( is_shared_word::<$fty>(); )*
            assert!(::core::mem::size_of::<$name>() == ::core::mem::size_of::<$layout>());
            assert!(::core::mem::align_of::<$name>() == ::core::mem::align_of::<$layout>());
            $(
                assert!(
                    ::core::mem::offset_of!($name, $field) == ::core::mem::offset_of!($layout, $field)
                );
                assert!(
                    $crate::sync::size_of_field(|v: &$name| &v.$field)
                        == $crate::sync::size_of_field(|l: &$layout| &l.$field)
                );
            )*
        };
    };
}
pub(crate) use shared_view;
