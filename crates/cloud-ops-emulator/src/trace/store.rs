//! Bounded, thread-safe in-memory storage of the spans the emulator accepted.
//!
//! Spans are kept in arrival order in one queue so that the oldest can be
//! dropped first when a cap is reached; reads group them by trace on demand
//! (a trace's spans may arrive from several processes in several batches).
//! Two caps: a number of spans, and an estimate of their bytes
//! ([`footprint`](crate::trace::footprint)), since Google's per-span limits
//! still let one span hold megabytes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use gcloud_sdk::google::devtools::cloudtrace::v2::Span;
use serde::Serialize;

use crate::trace::footprint;

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
    /// Estimated bytes of the spans held.
    pub bytes_stored: u64,
    /// Accepted spans in which something was truncated or dropped (T7).
    pub spans_truncated: u64,
    /// Spans silently dropped because their times were outside the window (T5).
    pub spans_out_of_window: u64,
    /// Write requests rejected with an error.
    pub requests_rejected: u64,
    /// OTLP spans rejected one by one (reported in `partial_success`).
    pub spans_rejected: u64,
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
    spans: VecDeque<StoredSpan>,
    /// The estimated bytes of each span in `spans`, in the same order.
    sizes: VecDeque<usize>,
    bytes: usize,
    stats: TraceStats,
}

/// The default byte cap of [`TraceStore`]: 100 000 ordinary spans take
/// about a tenth of it.
pub const DEFAULT_MAX_BYTES: usize = 512 * 1024 * 1024;

impl TraceStore {
    /// An empty store keeping at most `max_spans` spans.
    pub fn new(max_spans: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                max_spans,
                max_bytes: DEFAULT_MAX_BYTES,
                spans: VecDeque::new(),
                sizes: VecDeque::new(),
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
        // Estimated before taking the lock: writers do not wait on it.
        let sizes: Vec<usize> = spans.iter().map(footprint::span_bytes).collect();
        let mut inner = self.lock();
        inner.stats.spans_accepted += spans.len() as u64;
        inner.stats.spans_truncated += truncated;
        inner.stats.spans_out_of_window += out_of_window;
        inner.bytes += sizes.iter().sum::<usize>();
        inner.spans.extend(spans);
        inner.sizes.extend(sizes);
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

    /// Current counters.
    pub fn stats(&self) -> TraceStats {
        self.lock().stats
    }

    /// Every stored span, oldest first.
    pub fn spans(&self) -> Vec<StoredSpan> {
        self.lock().spans.iter().cloned().collect()
    }

    /// The spans of one trace, in arrival order.
    pub fn trace(&self, project: &str, trace_id: &str) -> Vec<StoredSpan> {
        let trace_id = trace_id.to_ascii_lowercase();
        self.lock()
            .spans
            .iter()
            .filter(|s| s.project == project && s.trace_id == trace_id)
            .cloned()
            .collect()
    }

    /// All traces of a project, each with its spans in arrival order.
    pub fn traces(&self, project: &str) -> Vec<(String, Vec<StoredSpan>)> {
        let inner = self.lock();
        let mut order: Vec<String> = Vec::new();
        let mut by_trace: HashMap<String, Vec<StoredSpan>> = HashMap::new();
        for span in inner.spans.iter().filter(|s| s.project == project) {
            let entry = by_trace.entry(span.trace_id.clone()).or_insert_with(|| {
                order.push(span.trace_id.clone());
                Vec::new()
            });
            entry.push(span.clone());
        }
        order
            .into_iter()
            .filter_map(|id| by_trace.remove(&id).map(|spans| (id, spans)))
            .collect()
    }
}

impl Inner {
    fn evict(&mut self) {
        while self.spans.len() > self.max_spans || self.bytes > self.max_bytes {
            if self.spans.pop_front().is_none() {
                break;
            }
            self.bytes -= self.sizes.pop_front().unwrap_or(0);
            self.stats.spans_dropped += 1;
        }
        self.stats.spans_stored = self.spans.len() as u64;
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
