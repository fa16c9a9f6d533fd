//! Traces out of a segment: follow a trace buffer for a while ([`TraceCapture::follow`]), or
//! take what it holds ([`TraceCapture::newest`]), and write the Chrome trace-event format
//! (JSON) that Perfetto and `chrome://tracing` open.
//!
//! Spans become complete events (`"ph": "X"`, so every span in the file is closed), instants
//! `"i"`, counters `"C"`, and each process and thread a `"M"` name record: the name it gave
//! itself in the buffer, else the name the kernel had for it while the capture ran. Events are
//! written in time order (a span before the spans it encloses), timestamps in microseconds on
//! `CLOCK_MONOTONIC`, and `otherData.shmkit` says what the capture missed and why.

use crate::RecordError;
use serde::Serialize;
use serde_json::{json, Value};
use shmkit::os::clock::monotonic_ns;
use shmkit::os::identity::{process_name, task_name};
use shmkit::shared::{TraceBuffer, TraceCursor, TraceRecord, TraceRecordKind};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// How often [`TraceCapture::follow`] reads the buffer: a 4 Mi-event buffer at 100 k events/s
/// is lapped in 40 s, a default one (65 536) in 0.6 s, so 10 ms keeps far ahead of either.
const POLL: Duration = Duration::from_millis(10);

/// What a capture missed, and the window it covers (`otherData.shmkit` in the file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TraceLosses {
    /// Events overwritten before the capture read them (it fell a buffer behind).
    pub overwritten: u64,
    /// Events whose bytes failed their check.
    pub torn: u64,
    /// Events never completed (given up by their writer, or a writer killed mid-event).
    pub unfinished: u64,
    /// Events writers gave up while the capture ran (the buffer's drop counter's increase).
    pub dropped: u64,
}

/// Events read from a trace buffer, with the names they need.
#[derive(Debug, Clone, Default)]
pub struct TraceCapture {
    /// The events, in the order they were recorded.
    pub records: Vec<TraceRecord>,
    /// What the capture missed.
    pub losses: TraceLosses,
    /// The window asked for, `CLOCK_MONOTONIC` ns.
    pub from_ns: u64,
    /// Its end.
    pub to_ns: u64,
    names: HashMap<u16, String>,
    kernel_names: HashMap<(u32, u32), (Option<String>, Option<String>)>,
}

impl TraceCapture {
    /// Reads every event recorded into `buffer` from now for `duration` (or until `stop`
    /// returns true), following it every 10 ms so none is overwritten unread.
    pub fn follow(buffer: &TraceBuffer, duration: Duration, stop: impl Fn() -> bool) -> Self {
        let from_ns = monotonic_ns();
        let until = from_ns.saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
        let dropped_before = buffer.dropped();
        let mut cursor = buffer.cursor_from_now();
        let mut capture = TraceCapture {
            from_ns,
            ..TraceCapture::default()
        };
        loop {
            let seen = capture.records.len();
            buffer.read(&mut cursor, &mut capture.records);
            capture.learn_names(buffer, seen);
            let now = monotonic_ns();
            if now >= until || stop() {
                break;
            }
            std::thread::sleep(POLL.min(Duration::from_nanos(until - now)));
        }
        let seen = capture.records.len();
        buffer.read_rest(&mut cursor, &mut capture.records);
        capture.learn_names(buffer, seen);
        capture.to_ns = monotonic_ns();
        capture.losses = losses(&cursor, buffer.dropped().saturating_sub(dropped_before));
        capture
    }

    /// The events `buffer` holds now that ended in the last `window` (all it holds for
    /// `None`): a look back, for a program that traces all along and keeps its last seconds.
    pub fn newest(buffer: &TraceBuffer, window: Option<Duration>) -> Self {
        let to_ns = monotonic_ns();
        let from_ns = window.map_or(0, |w| {
            to_ns.saturating_sub(u64::try_from(w.as_nanos()).unwrap_or(u64::MAX))
        });
        let mut cursor = buffer.cursor_from_oldest();
        let mut capture = TraceCapture {
            from_ns,
            to_ns,
            ..TraceCapture::default()
        };
        buffer.read_rest(&mut cursor, &mut capture.records);
        capture
            .records
            .retain(|r| r.ts_ns.saturating_add(duration_ns(r)) >= from_ns);
        capture.learn_names(buffer, 0);
        capture.losses = losses(&cursor, 0);
        capture
    }

    /// Files the names of records from `records[seen..]`, and asks the kernel for the names
    /// of threads seen for the first time while they still run.
    fn learn_names(&mut self, buffer: &TraceBuffer, seen: usize) {
        for r in &self.records[seen..] {
            if let std::collections::hash_map::Entry::Vacant(e) = self.names.entry(r.name) {
                if let Some(name) = buffer.name_at(r.name) {
                    e.insert(name);
                }
            }
            self.kernel_names
                .entry((r.pid, r.tid))
                .or_insert_with(|| (process_name(r.pid), task_name(r.pid, r.tid)));
        }
    }

    /// The name of record `r` (`"?"` for a name the table does not hold).
    pub fn name_of(&self, r: &TraceRecord) -> &str {
        self.names.get(&r.name).map_or("?", String::as_str)
    }

    /// The spans named `name`.
    pub fn spans<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a TraceRecord> + 'a {
        self.records.iter().filter(move |r| {
            matches!(r.kind, TraceRecordKind::Span { .. }) && self.name_of(r) == name
        })
    }

    /// The capture as a Chrome trace-event JSON object.
    pub fn to_chrome(&self) -> Value {
        let mut process_names: HashMap<u32, String> = HashMap::new();
        let mut thread_names: HashMap<(u32, u32), String> = HashMap::new();
        for (&(pid, tid), (process, thread)) in &self.kernel_names {
            if let Some(p) = process {
                process_names.entry(pid).or_insert_with(|| p.clone());
            }
            if let Some(t) = thread {
                thread_names.insert((pid, tid), t.clone());
            }
        }
        let mut timed: Vec<(&TraceRecord, Value)> = Vec::with_capacity(self.records.len());
        for r in &self.records {
            let name = self.name_of(r);
            let ts = r.ts_ns as f64 / 1e3;
            let mut args = serde_json::Map::new();
            if let Some(a) = r.arg {
                args.insert("arg".into(), a.into());
            }
            let event = match r.kind {
                TraceRecordKind::ThreadName => {
                    thread_names.insert((r.pid, r.tid), name.to_owned());
                    continue;
                }
                TraceRecordKind::ProcessName => {
                    process_names.insert(r.pid, name.to_owned());
                    continue;
                }
                TraceRecordKind::Span { duration_ns } => json!({
                    "name": name, "cat": "shmkit", "ph": "X", "ts": ts,
                    "dur": duration_ns as f64 / 1e3, "pid": r.pid, "tid": r.tid, "args": args,
                }),
                TraceRecordKind::Instant => json!({
                    "name": name, "cat": "shmkit", "ph": "i", "s": "t", "ts": ts,
                    "pid": r.pid, "tid": r.tid, "args": args,
                }),
                TraceRecordKind::Counter { value } => json!({
                    "name": name, "cat": "shmkit", "ph": "C", "ts": ts,
                    "pid": r.pid, "tid": r.tid,
                    "args": { name: if value.is_finite() { json!(value) } else { Value::Null } },
                }),
            };
            timed.push((r, event));
        }
        // Time order; at one instant, the longer span first (it encloses the shorter).
        timed.sort_by_key(|(r, _)| (r.ts_ns, std::cmp::Reverse(duration_ns(r)), r.number));
        let mut events: Vec<Value> = Vec::with_capacity(timed.len() + thread_names.len() * 2);
        let mut pids: Vec<u32> = self.records.iter().map(|r| r.pid).collect();
        pids.sort_unstable();
        pids.dedup();
        for pid in pids {
            let name = process_names
                .get(&pid)
                .cloned()
                .unwrap_or_else(|| format!("process {pid}"));
            events.push(json!({
                "name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": { "name": name },
            }));
        }
        let mut threads: Vec<(u32, u32)> = self.records.iter().map(|r| (r.pid, r.tid)).collect();
        threads.sort_unstable();
        threads.dedup();
        for (pid, tid) in threads {
            let name = thread_names
                .get(&(pid, tid))
                .cloned()
                .unwrap_or_else(|| format!("thread {tid}"));
            events.push(json!({
                "name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": { "name": name },
            }));
        }
        events.extend(timed.into_iter().map(|(_, e)| e));
        json!({
            "traceEvents": events,
            "displayTimeUnit": "ns",
            "otherData": {
                "shmkit": {
                    "from_us": self.from_ns as f64 / 1e3,
                    "to_us": self.to_ns as f64 / 1e3,
                    "events": self.records.len(),
                    "missed": self.losses,
                }
            },
        })
    }

    /// Writes [`to_chrome`](Self::to_chrome) to `path` (replacing it).
    pub fn write_chrome(&self, path: &Path) -> Result<(), RecordError> {
        let io = |what, source| RecordError::Io {
            what,
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::create(path).map_err(|e| io("create", e))?;
        let mut out = std::io::BufWriter::new(file);
        serde_json::to_writer(&mut out, &self.to_chrome())
            .map_err(|e| io("write", std::io::Error::other(e)))?;
        out.flush().map_err(|e| io("write", e))
    }
}

fn duration_ns(r: &TraceRecord) -> u64 {
    match r.kind {
        TraceRecordKind::Span { duration_ns } => duration_ns,
        _ => 0,
    }
}

fn losses(cursor: &TraceCursor, dropped: u64) -> TraceLosses {
    TraceLosses {
        overwritten: cursor.overwritten(),
        torn: cursor.torn(),
        unfinished: cursor.unfinished(),
        dropped,
    }
}
