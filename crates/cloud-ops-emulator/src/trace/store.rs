//! Bounded, thread-safe in-memory storage of the spans the emulator accepted.
//!
//! Spans are kept in arrival order in one queue so that the oldest can be
//! dropped first when a cap is reached; reads group them by trace on demand
//! (a trace's spans may arrive from several processes in several batches).
//! Two caps: a number of spans, and an estimate of their bytes
//! ([`footprint`](crate::trace::footprint)), since Google's per-span limits
//! still let one span hold megabytes.
//!
//! OTLP spans point at attributes they share ([`shared`](crate::trace::shared)):
//! a layer is counted once, on the last span of the batch that reaches it.
//! Spans leave oldest first, so that span leaves last: the layer counts
//! while any of its spans is held, and its bytes go when the last one does.
//!
//! Reads never hold the lock for long: they copy a chunk of spans under it
//! (a bounded number and bytes), merge and filter them without it, and stop
//! when the caller's [`Deadline`] passes. Writes interleave between chunks.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use gcloud_sdk::google::devtools::cloudtrace::v2::Span;
use serde::Serialize;

use crate::deadline::{Deadline, DeadlineExceeded};
use crate::trace::footprint;
use crate::trace::shared::{self, SharedAttributes};

/// One accepted span with the identifiers parsed from its resource name.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSpan {
    pub project: String,
    /// 32 lowercase hex characters.
    pub trace_id: String,
    /// The span as stored, after truncation (T7).
    pub span: Span,
}

/// Counters shown by `/api/status` and read by tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TraceStats {
    /// Spans currently held.
    pub spans_stored: u64,
    /// Spans accepted since start, including those later dropped by the cap.
    pub spans_accepted: u64,
    /// Spans evicted because `max_spans` or the byte cap was reached (oldest first).
    pub spans_dropped: u64,
    /// Estimated bytes of the spans held, each shared layer of attributes once.
    pub bytes_stored: u64,
    /// Accepted spans in which something was truncated or dropped (T7).
    pub spans_truncated: u64,
    /// Spans silently dropped because their times were outside the window (T5).
    pub spans_out_of_window: u64,
    /// Write requests rejected with an error.
    pub requests_rejected: u64,
    /// OTLP spans rejected one by one (reported in `partial_success`).
    pub spans_rejected: u64,
    /// Reads stopped because their client's deadline passed.
    pub reads_timed_out: u64,
}

/// Cheap clonable handle to the span store.
#[derive(Debug, Clone)]
pub struct TraceStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    max_spans: usize,
    max_bytes: usize,
    entries: VecDeque<Entry>,
    /// The arrival number of `entries[0]`: a read resumes by number after
    /// the spans before it were evicted.
    first: u64,
    bytes: usize,
    stats: TraceStats,
}

/// A span as held: its own attributes, the layer it shares, and the bytes
/// it accounts for (its own, and those of the layers it is the last of).
#[derive(Debug)]
struct Entry {
    stored: StoredSpan,
    shared: Option<Arc<SharedAttributes>>,
    bytes: usize,
}

/// The default byte cap of [`TraceStore`]: 100 000 ordinary spans take
/// about a tenth of it.
pub const DEFAULT_MAX_BYTES: usize = 512 * 1024 * 1024;

/// Spans a read looks at, and copies at most, per turn of the lock.
const READ_CHUNK: usize = 256;
/// Bytes a read copies at most per turn of the lock: one span may hold a
/// megabyte.
const READ_CHUNK_BYTES: usize = 1024 * 1024;

impl TraceStore {
    /// An empty store keeping at most `max_spans` spans.
    pub fn new(max_spans: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                max_spans,
                max_bytes: DEFAULT_MAX_BYTES,
                entries: VecDeque::new(),
                first: 0,
                bytes: 0,
                stats: TraceStats::default(),
            })),
        }
    }

    /// The same store, holding at most about `max_bytes` of spans.
    #[must_use]
    pub fn with_max_bytes(self, max_bytes: usize) -> Self {
        self.lock().max_bytes = max_bytes;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not make the emulator unusable: the data is
        // still consistent because every mutation below is completed in one go.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores a whole batch atomically; `truncated` of them had something cut.
    pub fn insert_batch(&self, spans: Vec<StoredSpan>, truncated: u64, out_of_window: u64) {
        let spans = spans.into_iter().map(|stored| (stored, None));
        self.insert(entries(spans), truncated, out_of_window);
    }

    /// Stores a whole batch of spans, each over the attributes it shares
    /// (read as if they were its own, under them). The spans reaching one
    /// layer must come one after another: a layer is counted once for each
    /// run of spans reaching it.
    pub fn insert_sharing(&self, spans: Vec<(StoredSpan, Option<Arc<SharedAttributes>>)>) {
        self.insert(entries(spans.into_iter()), 0, 0);
    }

    fn insert(&self, entries: Vec<Entry>, truncated: u64, out_of_window: u64) {
        let mut inner = self.lock();
        inner.stats.spans_accepted += entries.len() as u64;
        inner.stats.spans_truncated += truncated;
        inner.stats.spans_out_of_window += out_of_window;
        inner.bytes += entries.iter().map(|e| e.bytes).sum::<usize>();
        inner.entries.extend(entries);
        inner.evict();
    }

    /// Counts a rejected write request.
    pub fn record_rejected(&self) {
        self.lock().stats.requests_rejected += 1;
    }

    /// Counts spans rejected inside an accepted OTLP request.
    pub fn record_spans_rejected(&self, spans: u64) {
        self.lock().stats.spans_rejected += spans;
    }

    /// Counts a read stopped by its client's deadline.
    pub fn record_read_timeout(&self) {
        self.lock().stats.reads_timed_out += 1;
    }

    /// Current counters.
    pub fn stats(&self) -> TraceStats {
        self.lock().stats
    }

    /// Every stored span, oldest first.
    pub fn spans(&self) -> Vec<StoredSpan> {
        let mut out = Vec::new();
        // Deadline::NONE never passes, so this always completes.
        let _ = self.scan(Deadline::NONE, |_| true, |span| out.push(span));
        out
    }

    /// The spans of one trace, in arrival order.
    pub fn trace(&self, project: &str, trace_id: &str) -> Vec<StoredSpan> {
        self.trace_by(project, trace_id, Deadline::NONE)
            .unwrap_or_default()
    }

    /// [`trace`](Self::trace) that gives up when `deadline` passes.
    ///
    /// # Errors
    /// [`DeadlineExceeded`] when it passed before the read was done.
    pub(crate) fn trace_by(
        &self,
        project: &str,
        trace_id: &str,
        deadline: Deadline,
    ) -> Result<Vec<StoredSpan>, DeadlineExceeded> {
        let trace_id = trace_id.to_ascii_lowercase();
        let mut out = Vec::new();
        self.scan(
            deadline,
            |s| s.project == project && s.trace_id == trace_id,
            |span| out.push(span),
        )?;
        Ok(out)
    }

    /// All traces of a project, each with its spans in arrival order.
    pub fn traces(&self, project: &str) -> Vec<(String, Vec<StoredSpan>)> {
        self.traces_by(project, Deadline::NONE).unwrap_or_default()
    }

    /// [`traces`](Self::traces) that gives up when `deadline` passes.
    ///
    /// # Errors
    /// [`DeadlineExceeded`] when it passed before the read was done.
    pub(crate) fn traces_by(
        &self,
        project: &str,
        deadline: Deadline,
    ) -> Result<Vec<(String, Vec<StoredSpan>)>, DeadlineExceeded> {
        let mut order: Vec<String> = Vec::new();
        let mut by_trace: HashMap<String, Vec<StoredSpan>> = HashMap::new();
        self.scan(
            deadline,
            |s| s.project == project,
            |span| {
                by_trace
                    .entry(span.trace_id.clone())
                    .or_insert_with(|| {
                        order.push(span.trace_id.clone());
                        Vec::new()
                    })
                    .push(span);
            },
        )?;
        Ok(order
            .into_iter()
            .filter_map(|id| by_trace.remove(&id).map(|spans| (id, spans)))
            .collect())
    }

    /// Visits the spans held when the read starts that pass `keep`, oldest
    /// first, as they were sent (their shared attributes merged in). Each
    /// turn of the lock looks at [`READ_CHUNK`] spans and copies at most
    /// [`READ_CHUNK_BYTES`] of those kept; merging and `visit` run without
    /// it. A span evicted meanwhile is not seen; one written meanwhile is
    /// not either. `deadline` is checked between turns.
    ///
    /// # Errors
    /// [`DeadlineExceeded`] when it passed before the read was done; what
    /// was visited until then stays visited.
    pub(crate) fn scan(
        &self,
        deadline: Deadline,
        mut keep: impl FnMut(&StoredSpan) -> bool,
        mut visit: impl FnMut(StoredSpan),
    ) -> Result<(), DeadlineExceeded> {
        let (mut next, end) = {
            let inner = self.lock();
            (inner.first, inner.first + inner.entries.len() as u64)
        };
        let mut chunk: Vec<(StoredSpan, Option<Arc<SharedAttributes>>)> =
            Vec::with_capacity(READ_CHUNK);
        while next < end {
            deadline.check()?;
            next = self.copy_chunk(next, end, &mut keep, &mut chunk);
            for (stored, shared) in chunk.drain(..) {
                visit(shared::merge(stored, shared.as_deref()));
            }
        }
        Ok(())
    }

    /// Copies into `chunk` the kept spans of one turn from arrival number
    /// `next` (or the oldest still held) up to `end`; returns where the next
    /// turn starts.
    fn copy_chunk(
        &self,
        next: u64,
        end: u64,
        keep: &mut impl FnMut(&StoredSpan) -> bool,
        chunk: &mut Vec<(StoredSpan, Option<Arc<SharedAttributes>>)>,
    ) -> u64 {
        let inner = self.lock();
        let mut next = next.max(inner.first);
        let start = usize::try_from(next - inner.first).unwrap_or(usize::MAX);
        let mut bytes = 0;
        for entry in inner
            .entries
            .range(start.min(inner.entries.len())..)
            .take(READ_CHUNK)
        {
            if next >= end || bytes >= READ_CHUNK_BYTES {
                break;
            }
            next += 1;
            if keep(&entry.stored) {
                bytes += entry.bytes;
                chunk.push((entry.stored.clone(), entry.shared.clone()));
            }
        }
        // Nothing left to look at: what the read started with is all gone.
        if start >= inner.entries.len() {
            return end;
        }
        next
    }
}

/// Entries with their bytes, estimated before the lock is taken: writers do
/// not wait on it. A shared layer is charged to the last span of a run of
/// spans reaching it.
/// Spans are moved once, from the request into the entries.
fn entries(
    spans: impl ExactSizeIterator<Item = (StoredSpan, Option<Arc<SharedAttributes>>)>,
) -> Vec<Entry> {
    let mut out = Vec::with_capacity(spans.len());
    let mut spans = spans.peekable();
    while let Some((stored, shared)) = spans.next() {
        let mut bytes = footprint::span_bytes(&stored);
        if let Some(shared) = shared.as_deref() {
            let next = spans.peek().and_then(|(_, s)| s.as_deref());
            bytes += shared
                .layers()
                .filter(|layer| !next.is_some_and(|n| n.layers().any(|l| std::ptr::eq(l, *layer))))
                .map(footprint::shared_bytes)
                .sum::<usize>();
        }
        out.push(Entry {
            stored,
            shared,
            bytes,
        });
    }
    out
}

impl Inner {
    fn evict(&mut self) {
        while self.entries.len() > self.max_spans || self.bytes > self.max_bytes {
            let Some(evicted) = self.entries.pop_front() else {
                break;
            };
            self.first += 1;
            self.bytes -= evicted.bytes;
            self.stats.spans_dropped += 1;
        }
        self.stats.spans_stored = self.entries.len() as u64;
        self.stats.bytes_stored = self.bytes as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(trace: &str, n: u32) -> StoredSpan {
        StoredSpan {
            project: "p".into(),
            trace_id: trace.into(),
            span: Span {
                span_id: format!("{n:016x}"),
                ..Span::default()
            },
        }
    }

    #[test]
    fn drops_oldest_beyond_cap_and_counts() {
        let store = TraceStore::new(3);
        store.insert_batch((1..=5).map(|n| span("a", n)).collect(), 0, 0);
        let stats = store.stats();
        assert_eq!((stats.spans_stored, stats.spans_dropped), (3, 2));
        assert_eq!(store.spans()[0].span.span_id, format!("{:016x}", 3));
    }

    #[test]
    fn the_byte_cap_counts_what_spans_hold() {
        let mut heavy = span("a", 1);
        heavy.span.display_name = Some(
            gcloud_sdk::google::devtools::cloudtrace::v2::TruncatableString {
                value: "x".repeat(100_000),
                truncated_byte_count: 0,
            },
        );
        let cap = 1024 * 1024;
        let store = TraceStore::new(1_000).with_max_bytes(cap);
        store.insert_batch(vec![heavy; 100], 0, 0);
        let stats = store.stats();
        assert!(stats.bytes_stored <= cap as u64, "{stats:?}");
        assert!(
            stats.spans_stored >= 5 && stats.spans_stored <= 10,
            "{stats:?}"
        );
        assert_eq!(stats.spans_stored + stats.spans_dropped, 100);
    }

    /// A layer of `attributes` values of `value_bytes` each.
    fn layer(attributes: usize, value_bytes: usize) -> Arc<SharedAttributes> {
        use gcloud_sdk::google::devtools::cloudtrace::v2::{attribute_value, AttributeValue};
        let value = AttributeValue {
            value: Some(attribute_value::Value::StringValue(
                gcloud_sdk::google::devtools::cloudtrace::v2::TruncatableString {
                    value: "r".repeat(value_bytes),
                    truncated_byte_count: 0,
                },
            )),
        };
        Arc::new(SharedAttributes::new(
            (0..attributes)
                .map(|n| (format!("r{n}"), value.clone()))
                .collect(),
            None,
        ))
    }

    #[test]
    fn a_shared_resource_counts_once_while_any_of_its_spans_is_held() {
        let resource = layer(64, 4096);
        let resource_bytes = footprint::shared_bytes(&resource);
        let span_bytes = footprint::span_bytes(&span("a", 1));
        let store = TraceStore::new(1_000);
        let batch = |from: u32| {
            (from..from + 100)
                .map(|n| (span("a", n), Some(Arc::clone(&resource))))
                .collect()
        };
        store.insert_sharing(batch(0));
        let bytes = |store: &TraceStore| store.stats().bytes_stored as usize;
        // Once, not zero and not once per span.
        assert_eq!(bytes(&store), resource_bytes + 100 * span_bytes);
        // 99 of the 100 gone: the last still holds the resource.
        let store = store.with_max_bytes(resource_bytes + span_bytes);
        store.insert_batch(Vec::new(), 0, 0);
        assert_eq!(store.stats().spans_stored, 1);
        assert_eq!(bytes(&store), resource_bytes + span_bytes);
        // A second request's spans: the first one's resource goes with its last span.
        let other = layer(1, 1);
        store.insert_sharing(vec![(span("b", 1), Some(Arc::clone(&other)))]);
        assert_eq!(store.stats().spans_stored, 1);
        assert_eq!(bytes(&store), footprint::shared_bytes(&other) + span_bytes);
        // Every span reads the resource's attributes as its own.
        let [read] = store.spans().try_into().unwrap();
        assert_eq!(read.span.attributes.unwrap().attribute_map.len(), 1);
    }

    #[test]
    fn the_byte_cap_holds_many_spans_sharing_a_large_resource() {
        let resource = layer(256, 4096);
        let cap = 4 * 1024 * 1024;
        let store = TraceStore::new(1_000_000).with_max_bytes(cap);
        for _ in 0..50 {
            let shared = layer(256, 4096);
            store.insert_sharing(
                (0..1_000)
                    .map(|n| (span("a", n), Some(Arc::clone(&shared))))
                    .collect(),
            );
        }
        let stats = store.stats();
        assert!(stats.bytes_stored <= cap as u64, "{stats:?}");
        // Each resource of a megabyte counted once: thousands of spans fit,
        // where a copy per span would have left three.
        assert!(
            stats.bytes_stored > footprint::shared_bytes(&resource) as u64
                && stats.spans_stored > 2_000,
            "{stats:?}"
        );
    }

    #[test]
    fn a_read_resumes_past_spans_evicted_between_its_chunks() {
        let store = TraceStore::new(READ_CHUNK * 2);
        store.insert_batch(
            (0..READ_CHUNK as u32 * 2).map(|n| span("a", n)).collect(),
            0,
            0,
        );
        let mut seen = Vec::new();
        let writer = store.clone();
        store
            .scan(
                Deadline::NONE,
                |_| true,
                |s| {
                    // The first chunk's visit pushes every span of the second out.
                    if seen.is_empty() {
                        writer.insert_batch(
                            (0..READ_CHUNK as u32 * 2).map(|n| span("b", n)).collect(),
                            0,
                            0,
                        );
                    }
                    seen.push(s.trace_id);
                },
            )
            .unwrap();
        assert_eq!(seen.len(), READ_CHUNK);
        assert!(seen.iter().all(|t| t == "a"));
    }

    #[test]
    fn a_read_past_its_deadline_stops() {
        let store = TraceStore::new(10);
        store.insert_batch(vec![span("a", 1)], 0, 0);
        assert_eq!(
            store.traces_by("p", Deadline::after(std::time::Duration::ZERO)),
            Err(DeadlineExceeded)
        );
        assert_eq!(store.traces_by("p", Deadline::NONE).unwrap().len(), 1);
    }

    #[test]
    fn groups_spans_by_trace() {
        let store = TraceStore::new(10);
        store.insert_batch(vec![span("a", 1), span("b", 2)], 0, 0);
        store.insert_batch(vec![span("a", 3)], 0, 0);
        let traces = store.traces("p");
        assert_eq!(traces.len(), 2);
        assert_eq!(traces[0].1.len(), 2);
        assert_eq!(store.trace("p", "A").len(), 2);
    }
}
