//! Concurrent writers lose nothing below the caps, and the stores never grow
//! beyond them.

use crate::helpers::metrics::{gauge, labels, request};
use crate::helpers::{now_seconds, ts_at, TestEmulator, PROJECT};
use cloud_ops_emulator::EmulatorConfig;
use gcloud_sdk::google::devtools::cloudtrace::v2::{
    BatchWriteSpansRequest, Span, TruncatableString,
};

const WRITERS: usize = 8;
const REQUESTS: usize = 1_000;

fn span(writer: usize, request: usize, n: usize, now: i64) -> Span {
    let trace = format!("{:016x}{:016x}", writer + 1, request + 1);
    let id = format!("{:016x}", n + 1);
    Span {
        name: format!("projects/{PROJECT}/traces/{trace}/spans/{id}"),
        span_id: id,
        display_name: Some(TruncatableString {
            value: "work".into(),
            truncated_byte_count: 0,
        }),
        start_time: Some(ts_at(now - 10)),
        end_time: Some(ts_at(now - 9)),
        ..Span::default()
    }
}

/// Each writer sends `requests` span batches of two spans and `requests`
/// points of its own series, 5 s apart so the sampling rule holds.
async fn run_writers(emu: &TestEmulator, requests: usize) {
    let now = now_seconds();
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let mut traces = emu.trace_writer();
        let mut metrics = emu.metrics();
        handles.push(tokio::spawn(async move {
            for r in 0..requests {
                let spans = vec![span(w, r, 0, now), span(w, r, 1, now)];
                traces
                    .batch_write_spans(BatchWriteSpansRequest {
                        name: format!("projects/{PROJECT}"),
                        spans,
                    })
                    .await
                    .expect("span batch accepted");
                let end = now - 5 * (requests - r) as i64;
                let mut point = gauge("workload.googleapis.com/load", ts_at(end), r as f64);
                point.metric.as_mut().unwrap().labels = labels(&[("writer", &w.to_string())]);
                metrics
                    .create_time_series(request(vec![point]))
                    .await
                    .expect("point accepted");
            }
        }));
    }
    for handle in handles {
        handle.await.expect("writer finished");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_writers_lose_nothing_below_the_caps() {
    let emu = TestEmulator::start().await;
    run_writers(&emu, REQUESTS).await;
    let traces = emu.emulator.store().traces.stats();
    assert_eq!(
        (
            traces.spans_stored,
            traces.spans_dropped,
            traces.requests_rejected
        ),
        ((WRITERS * REQUESTS * 2) as u64, 0, 0)
    );
    let metrics = emu.emulator.store().metrics.stats();
    assert_eq!(
        (
            metrics.series,
            metrics.points_stored,
            metrics.points_dropped
        ),
        (WRITERS as u64, (WRITERS * REQUESTS) as u64, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_stay_within_their_caps_and_count_what_they_drop() {
    let config = EmulatorConfig {
        max_spans: 1_000,
        max_points: 500,
        ..EmulatorConfig::default()
    };
    let emu = TestEmulator::start_with(config).await;
    // Fewer requests than the main test keep it fast; still 4x the span cap.
    let requests = 250;
    run_writers(&emu, requests).await;
    let store = emu.emulator.store();
    let traces = store.traces.stats();
    let total_spans = (WRITERS * requests * 2) as u64;
    assert_eq!(
        (traces.spans_stored, traces.spans_dropped),
        (1_000, total_spans - 1_000)
    );
    assert_eq!(store.traces.spans().len(), 1_000);
    let metrics = store.metrics.stats();
    let total_points = (WRITERS * requests) as u64;
    assert_eq!(
        (metrics.points_stored, metrics.points_dropped),
        (500, total_points - 500)
    );
    assert_eq!(metrics.points_accepted, total_points);
}
