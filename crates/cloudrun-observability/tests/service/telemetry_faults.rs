//! When Cloud Trace and Cloud Monitoring misbehave, the service does not:
//! its exporters' peer (the emulator behind a fault switch, see
//! `fault_peer.rs`) is slow by 5 s, answers UNAVAILABLE, answers
//! INVALID_ARGUMENT, or stops listening. In each case requests keep
//! succeeding about as fast as before, the process's memory stays bounded
//! while spans pile up, what is lost is counted and reported in the WARNING
//! lines, and once the peer is healthy again on the same address, new spans
//! and metric points reach it without restarting the service. At SIGTERM
//! every span is accounted for: exported (and stored by the peer), failed
//! or dropped. Each outage is met by both trace exporters (OTLP and Cloud
//! Trace v2, see `traces::Exporter`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fault_peer::{Fault, FaultPeer};
use crate::helpers::{spawn_service, ServiceProcess};
use crate::traces::Exporter;
use cloud_ops_emulator::monitoring::filter;
use gcloud_sdk::google::monitoring::v3::typed_value;
use serde_json::Value;

/// The project telemetry goes to without GOOGLE_CLOUD_PROJECT.
const PROJECT: &str = "local";
const DURATION: &str = "workload.googleapis.com/http.server.request.duration";

/// The span queue of the service under test: small, so that spans pile up
/// to its bound quickly.
const QUEUE: &str = "256";

/// The load sent while the peer is faulty: each request's span carries its
/// 16 KiB user agent, so a queue that did not drop would hold
/// `LOAD_REQUESTS * 16 KiB` (about 40 MB); the bounded one holds 256 spans.
const LOAD_CLIENTS: usize = 8;
const LOAD_REQUESTS: usize = 2400;
const USER_AGENT_BYTES: usize = 16 * 1024;

/// How much the service's resident memory may grow under that load: far
/// above what 256 queued spans need, far below what the load would take
/// if nothing were dropped.
const RSS_GROWTH_BOUND_KIB: u64 = 24 * 1024;

#[derive(Clone, Copy, Debug)]
enum Outage {
    Slow,
    Unavailable,
    InvalidArgument,
    Stopped,
}

fn service_env(host: &str, exporter: Exporter) -> Vec<(&str, &str)> {
    vec![
        ("CLOUD_OPS_EMULATOR_HOST", host),
        ("OTEL_TRACES_EXPORTER", exporter.env()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", QUEUE),
        ("OTEL_METRIC_EXPORT_INTERVAL", "5000"),
    ]
}

/// Waits until `done` holds, checking every 50 ms; panics after `limit`.
async fn eventually(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `n` sequential `GET /api/books/1`, each answered 200; their latencies,
/// sorted.
async fn timed_requests(service: &ServiceProcess, n: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let response = service.get("/api/books/1").await;
        assert_eq!(response.status(), 200);
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies
}

fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

/// Sends [`LOAD_REQUESTS`] requests with big user agents from
/// [`LOAD_CLIENTS`] concurrent clients, sampling the service's RSS all the
/// while; returns how many succeeded and the highest RSS seen (KiB).
async fn load(service: &ServiceProcess) -> (usize, u64) {
    let pid = service.pid();
    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (sampling, peak) = (Arc::clone(&sampling), Arc::clone(&peak));
        tokio::spawn(async move {
            while sampling.load(Ordering::SeqCst) {
                if let Some(rss) = crate::helpers::rss_kib(pid) {
                    peak.fetch_max(rss, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let user_agent = format!("fault-test/{}", "x".repeat(USER_AGENT_BYTES));
    let clients: Vec<_> = (0..LOAD_CLIENTS)
        .map(|client| {
            let http = service.http.clone();
            let url = service.url(&format!("/api/books/{}", client % 8 + 1));
            let user_agent = user_agent.clone();
            tokio::spawn(async move {
                let mut ok = 0;
                for _ in 0..LOAD_REQUESTS / LOAD_CLIENTS {
                    let response = http
                        .get(&url)
                        .header("user-agent", &user_agent)
                        .send()
                        .await;
                    if response.is_ok_and(|response| response.status() == 200) {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let mut succeeded = 0;
    for client in clients {
        succeeded += client.await.unwrap();
    }
    sampling.store(false, Ordering::SeqCst);
    sampler.await.unwrap();
    (succeeded, peak.load(Ordering::SeqCst))
}

/// The request count of the newest `http.server.request.duration` point of
/// route `/api/books/{id}` the peer stored (0 before any).
fn exported_request_count(peer: &FaultPeer) -> i64 {
    let books = filter::parse(&format!(
        "metric.type = \"{DURATION}\" AND metric.labels.http_route = \"/api/books/{{id}}\""
    ))
    .unwrap();
    peer.store
        .metrics
        .series(PROJECT, &books)
        .iter()
        .filter_map(|series| series.points.iter().max_by_key(|point| point.end))
        .map(|point| match &point.value.value {
            Some(typed_value::Value::DistributionValue(distribution)) => distribution.count,
            other => panic!("expected a distribution, got {other:?}"),
        })
        .sum()
}

/// The WARNING lines about `signal` ("traces" or "metrics").
fn warnings(service: &ServiceProcess, signal: &str) -> Vec<Value> {
    service
        .entries_containing(&format!("\"signal\":\"{signal}\""))
        .into_iter()
        .filter(|entry| entry["severity"] == "WARNING")
        .collect()
}

/// The one entry whose message is `message`.
fn entry_with_message(service: &ServiceProcess, message: &str) -> Value {
    let entries = service.entries_containing(&format!("\"message\":\"{message}\""));
    assert_eq!(entries.len(), 1, "one {message:?} line: {entries:#?}");
    entries.into_iter().next().unwrap()
}

fn as_u64(entry: &Value, field: &str) -> u64 {
    entry[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {entry}"))
}

async fn outage_is_survived(outage: Outage, exporter: Exporter) {
    let started = Instant::now();
    let mut peer = FaultPeer::start().await;
    let host = peer.host();
    let mut service = spawn_service(&service_env(&host, exporter));
    eprintln!("{outage:?} with {exporter:?}");
    let mut requests: u64 = 0;

    // Healthy: the baseline, and proof that spans and points flow.
    let baseline = timed_requests(&service, 40).await;
    requests += 40;
    eventually(
        "spans reach the healthy peer",
        Duration::from_secs(10),
        || peer.store.traces.stats().spans_stored >= 40,
    )
    .await;
    eventually(
        "points reach the healthy peer",
        Duration::from_secs(12),
        || exported_request_count(&peer) > 0,
    )
    .await;
    let rss_before = service.rss_kib();
    eprintln!("{outage:?}: healthy phase done at {:?}", started.elapsed());

    // The outage.
    match outage {
        Outage::Slow => peer.set(Fault::Delay(Duration::from_secs(5))),
        Outage::Unavailable => peer.set(Fault::Status(tonic::Code::Unavailable)),
        Outage::InvalidArgument => peer.set(Fault::Status(tonic::Code::InvalidArgument)),
        Outage::Stopped => peer.stop().await,
    }
    let stored_at_outage = peer.store.traces.stats().spans_stored;
    let served_at_outage = peer.served_calls();
    let (succeeded, peak_rss) = load(&service).await;
    requests += LOAD_REQUESTS as u64;
    assert_eq!(succeeded, LOAD_REQUESTS, "every request succeeds");
    let during = timed_requests(&service, 40).await;
    requests += 40;
    // Generous: a request that waited for an export would take 1 s (the
    // retries of UNAVAILABLE), 2 s (a connect timeout) or 5 s (the delay).
    assert!(
        median(&during) <= median(&baseline) * 5 + Duration::from_millis(200),
        "{outage:?}: median latency {:?}, before the outage {:?}",
        median(&during),
        median(&baseline)
    );
    eprintln!("{outage:?}: load done at {:?}", started.elapsed());
    let growth = peak_rss.saturating_sub(rss_before);
    eprintln!("{outage:?}: RSS {rss_before} KiB before, peak {peak_rss} KiB under load");
    assert!(
        growth < RSS_GROWTH_BOUND_KIB,
        "{outage:?}: RSS grew by {growth} KiB (from {rss_before} KiB)"
    );

    // The losses are counted and reported: one WARNING per signal.
    eventually("a traces WARNING", Duration::from_secs(10), || {
        !warnings(&service, "traces").is_empty()
    })
    .await;
    let trace_warning = &warnings(&service, "traces")[0];
    let message = trace_warning["message"].as_str().unwrap();
    match outage {
        Outage::Slow => {
            assert!(message.contains("export queue full"), "{message}");
            assert!(as_u64(trace_warning, "dropped") >= 1, "{trace_warning}");
        }
        Outage::Unavailable | Outage::InvalidArgument | Outage::Stopped => {
            // Whichever came first: a failed export, or the queue filling
            // up behind the retries.
            assert!(
                message.contains("traces export failed") || message.contains("export queue full"),
                "{message}"
            );
            assert!(
                as_u64(trace_warning, "failed") + as_u64(trace_warning, "dropped") >= 1,
                "{trace_warning}"
            );
        }
    }
    match outage {
        Outage::Slow => {
            // Slow is not failed: the calls end within the 10 s deadline.
            assert!(peer.faulted_calls() >= 1, "the exports met the delay");
        }
        Outage::Unavailable | Outage::InvalidArgument | Outage::Stopped => {
            // A metric export (every 5 s) meets the outage too.
            eventually("a metrics WARNING", Duration::from_secs(12), || {
                !warnings(&service, "metrics").is_empty()
            })
            .await;
            let metric_warning = &warnings(&service, "metrics")[0];
            assert!(
                metric_warning["message"]
                    .as_str()
                    .unwrap()
                    .contains("metrics export failed"),
                "{metric_warning}"
            );
            // Nothing got through.
            assert_eq!(peer.store.traces.stats().spans_stored, stored_at_outage);
            assert_eq!(peer.served_calls(), served_at_outage);
        }
    }
    match outage {
        Outage::Unavailable => {
            // Retried: each failed batch was tried three times.
            assert!(peer.faulted_calls() >= 3, "{}", peer.faulted_calls());
        }
        Outage::InvalidArgument => assert!(peer.faulted_calls() >= 2),
        Outage::Slow | Outage::Stopped => {}
    }

    // Recovery on the same address, without restarting the service.
    match outage {
        Outage::Stopped => peer.restart().await,
        _ => peer.set(Fault::None),
    }
    // New spans flow again: requests of a marker trace, until one of them
    // reaches the peer (the first may still find the queue full of the
    // outage's spans, waiting behind a delayed export).
    let marker = "7ecc0e5ecc0e5ecc0e5ecc0e5ecc0e51";
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut n = 0u64;
    while peer.store.traces.trace(PROJECT, marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "{outage:?}: no span reached the peer within 15 s of its recovery"
        );
        n += 1;
        let response = service
            .http
            .get(service.url("/api/books/2"))
            .header("traceparent", format!("00-{marker}-{n:016x}-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        requests += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("{outage:?}: recovered at {:?}", started.elapsed());
    // Points written after the recovery count the requests sent after it.
    let served = i64::try_from(requests).unwrap();
    eventually(
        "points written after the recovery reach the peer",
        Duration::from_secs(15),
        || exported_request_count(&peer) >= served,
    )
    .await;

    eprintln!("{outage:?}: points recovered at {:?}", started.elapsed());
    // SIGTERM: every span is exported, failed or dropped, and each export
    // the service counts is a span the peer stored.
    service.sigterm();
    assert!(
        service.wait_exit(Duration::from_secs(10)).is_some(),
        "exits within 10 s"
    );
    let flushed = entry_with_message(&service, "traces flushed");
    let (exported, failed, dropped) = (
        as_u64(&flushed, "exported"),
        as_u64(&flushed, "failed"),
        as_u64(&flushed, "dropped"),
    );
    assert_eq!(exported + failed + dropped, requests, "{flushed}");
    assert_eq!(
        exported,
        peer.store.traces.stats().spans_accepted,
        "{flushed}"
    );
    match outage {
        Outage::Slow => assert!(dropped > 0, "{flushed}"),
        _ => assert!(failed + dropped > 0, "{flushed}"),
    }
    let metrics_flushed = entry_with_message(&service, "metrics flushed");
    match outage {
        Outage::Slow => assert_eq!(as_u64(&metrics_flushed, "failed"), 0),
        _ => assert!(as_u64(&metrics_flushed, "failed") > 0, "{metrics_flushed}"),
    }
    assert!(service.entries_containing("panic").is_empty());
    eprintln!("{outage:?}: {:?}", started.elapsed());
}

async fn a_peer_slow_by_5_s_costs_dropped_spans_not_requests(exporter: Exporter) {
    outage_is_survived(Outage::Slow, exporter).await;
}

async fn a_peer_answering_unavailable_costs_spans_and_points_not_requests(exporter: Exporter) {
    outage_is_survived(Outage::Unavailable, exporter).await;
}

async fn a_peer_answering_invalid_argument_costs_spans_and_points_not_requests(exporter: Exporter) {
    outage_is_survived(Outage::InvalidArgument, exporter).await;
}

async fn a_stopped_peer_costs_spans_and_points_not_requests(exporter: Exporter) {
    outage_is_survived(Outage::Stopped, exporter).await;
}

crate::with_each_exporter!(
    a_peer_slow_by_5_s_costs_dropped_spans_not_requests,
    a_peer_answering_unavailable_costs_spans_and_points_not_requests,
    a_peer_answering_invalid_argument_costs_spans_and_points_not_requests,
    a_stopped_peer_costs_spans_and_points_not_requests,
);
