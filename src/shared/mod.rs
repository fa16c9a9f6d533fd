//! Shared objects built on the segment: [`Shared<T>`] (a plain-data value and its robust
//! mutex) and [`SharedDict`] (a string-keyed dictionary under one robust mutex), both found or
//! created by name from any process.

mod dict;
mod value;

pub use dict::{DictError, DictSpec, SharedDict, MAX_KEY_LEN};
pub use value::{Shared, SharedAcquired, SharedError, SharedGuard, SharedOwnerDied, SharedValue};

#[cfg(all(test, not(miri)))]
mod tests;
