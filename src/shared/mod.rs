//! Shared objects built on the segment: [`Shared<T>`] (a plain-data value and its robust
//! mutex; [`SharedBytes`] when the type is known only at run time) and [`SharedDict`] (a string-keyed dictionary under one robust mutex), both found or
//! created by name from any process; [`Histogram`]s (lock-free log-scaled counts of latencies
//! from every process) and [`TraceBuffer`]s (spans, instants and counters from every process,
//! for a timeline).

mod bytes;
mod dict;
mod histogram;
mod trace;
mod value;

pub use bytes::{BytesSpec, SharedBytes};
pub use dict::{DictError, DictSpec, SharedDict, MAX_KEY_LEN};
pub use histogram::{Histogram, HistogramSnapshot};
pub use trace::{
    Span, TraceBuffer, TraceCursor, TraceError, TraceName, TraceRecord, TraceRecordKind, TraceSpec,
};
pub use value::{PlainData, Shared, SharedError};

#[cfg(all(test, not(miri)))]
mod tests;
