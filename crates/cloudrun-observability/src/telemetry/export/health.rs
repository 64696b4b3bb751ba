//! Bookkeeping of what an exporter sent, lost and dropped, and the one
//! WARNING a minute that tells an operator about it.
//!
//! Telemetry must never slow or fail a request, so an exporter that cannot
//! reach its backend drops data rather than queueing without bound. Dropping
//! silently would hide an outage of the telemetry itself; warning on every
//! failed batch would flood the logs exactly when something is already
//! wrong. So every loss is counted, and a summary is logged at most once a
//! minute.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often, at most, export problems are logged.
pub const WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Counters of one exporter (`traces` or `metrics`).
#[derive(Debug)]
pub struct ExportHealth {
    signal: &'static str,
    exported: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
}

/// A snapshot of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportCounts {
    /// Items the backend accepted.
    pub exported: u64,
    /// Items lost because the backend failed or rejected them.
    pub failed: u64,
    /// Items dropped before export because the queue was full.
    pub dropped: u64,
}

impl ExportHealth {
    pub fn new(signal: &'static str) -> Self {
        Self {
            signal,
            exported: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_warning: Mutex::new(None),
        }
    }

    pub fn counts(&self) -> ExportCounts {
        ExportCounts {
            exported: self.exported.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    pub fn record_exported(&self, items: usize) {
        self.exported.fetch_add(items as u64, Ordering::Relaxed);
    }

    /// Counts `items` lost to `error`, and warns if a minute has passed since
    /// the last warning.
    pub fn record_failed(&self, items: usize, error: &dyn std::fmt::Display) {
        self.failed.fetch_add(items as u64, Ordering::Relaxed);
        self.warn_at_most_once_a_minute(Some(error));
    }

    /// Counts `items` dropped because the export queue was full.
    pub fn record_dropped(&self, items: usize) {
        self.dropped.fetch_add(items as u64, Ordering::Relaxed);
        self.warn_at_most_once_a_minute(None);
    }

    fn warn_at_most_once_a_minute(&self, error: Option<&dyn std::fmt::Display>) {
        let now = Instant::now();
        {
            let mut last = self
                .last_warning
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if last.is_some_and(|at| now.duration_since(at) < WARNING_INTERVAL) {
                return;
            }
            *last = Some(now);
        }
        let counts = self.counts();
        match error {
            Some(error) => tracing::warn!(
                signal = self.signal,
                exported = counts.exported,
                failed = counts.failed,
                dropped = counts.dropped,
                "{} export failed: {error}; {} lost and {} dropped so far (this warning repeats at most once a minute)",
                self.signal,
                counts.failed,
                counts.dropped
            ),
            None => tracing::warn!(
                signal = self.signal,
                exported = counts.exported,
                failed = counts.failed,
                dropped = counts.dropped,
                "{} export queue full: {} dropped so far (this warning repeats at most once a minute)",
                self.signal,
                counts.dropped
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up() {
        let health = ExportHealth::new("traces");
        health.record_exported(10);
        health.record_failed(3, &"unavailable");
        health.record_dropped(2);
        health.record_failed(1, &"unavailable");
        assert_eq!(
            health.counts(),
            ExportCounts {
                exported: 10,
                failed: 4,
                dropped: 2
            }
        );
    }
}
