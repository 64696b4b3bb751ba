//! SIGTERM under load, as Cloud Run sends it when it scales in: with
//! concurrent clients and slow requests in flight, every request already
//! sent completes with 200, the span of every request served and a final
//! metric point counting all of them reach the emulator, and the process
//! exits within Cloud Run's 10 s. With both trace exporters (OTLP and
//! Cloud Trace v2).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::emulator_helpers::TestEmulator;
use crate::helpers::spawn_service;
use crate::traces::Exporter;
use cloud_ops_emulator::monitoring::filter;
use gcloud_sdk::google::monitoring::v3::typed_value;

const DURATION: &str = "workload.googleapis.com/http.server.request.duration";

/// One request a client sent: what it asked, how it ended, and when.
#[derive(Debug)]
struct Sent {
    path: String,
    status: Result<u16, String>,
    started: Instant,
    finished: Instant,
}

/// Sends `path(n)` for n = 0, 1, ... until `stopping`; every request sent.
fn client(
    http: reqwest::Client,
    base: String,
    stopping: Arc<AtomicBool>,
    path: impl Fn(usize) -> String + Send + 'static,
) -> tokio::task::JoinHandle<Vec<Sent>> {
    tokio::spawn(async move {
        let mut sent = Vec::new();
        let mut n = 0;
        while !stopping.load(Ordering::SeqCst) {
            let path = path(n);
            n += 1;
            let started = Instant::now();
            let status = http
                .get(format!("{base}{path}"))
                .send()
                .await
                .map(|response| response.status().as_u16())
                .map_err(|error| format!("{error:?}"));
            sent.push(Sent {
                path,
                status,
                started,
                finished: Instant::now(),
            });
        }
        sent
    })
}

crate::with_each_exporter!(
    sigterm_under_load_completes_in_flight_requests_and_flushes_their_telemetry
);

async fn sigterm_under_load_completes_in_flight_requests_and_flushes_their_telemetry(
    exporter: Exporter,
) {
    let emulator = TestEmulator::start().await;
    let host = emulator.emulator.local_addr().to_string();
    let mut service = spawn_service(&[
        ("CLOUD_OPS_EMULATOR_HOST", &host),
        ("OTEL_TRACES_EXPORTER", exporter.env()),
        ("OTEL_BSP_SCHEDULE_DELAY", "500"),
        // No periodic export within the test: the final one counts all.
        ("OTEL_METRIC_EXPORT_INTERVAL", "60000"),
    ]);
    let base = service.url("");
    let stopping = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..6 {
        clients.push(client(
            service.http.clone(),
            base.clone(),
            Arc::clone(&stopping),
            move |n| format!("/api/books/{}", (c + n) % 8 + 1),
        ));
    }
    for c in 0..3u64 {
        // 2.5 s, 3 s and 3.5 s: all of them are in flight at the signal.
        clients.push(client(
            service.http.clone(),
            base.clone(),
            Arc::clone(&stopping),
            move |_| format!("/api/faults/slow?ms={}", 2500 + 500 * c),
        ));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // No request starts after the signal: a request sent after it would be
    // refused, as it should be.
    stopping.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let signalled = Instant::now();
    service.sigterm();

    let mut sent = Vec::new();
    for client in clients {
        sent.extend(client.await.unwrap());
    }
    let budget = Duration::from_secs(10).saturating_sub(signalled.elapsed());
    service
        .wait_exit(budget)
        .expect("exits within 10 s of SIGTERM");
    let exited_after = signalled.elapsed();
    let in_flight: Vec<&Sent> = sent
        .iter()
        .filter(|request| request.started < signalled && request.finished > signalled)
        .collect();
    assert!(
        in_flight
            .iter()
            .filter(|request| request.path.starts_with("/api/faults/slow"))
            .count()
            >= 3,
        "the slow requests were in flight at the signal: {in_flight:#?}"
    );
    let failed: Vec<&Sent> = sent
        .iter()
        .filter(|request| request.status != Ok(200))
        .collect();
    assert!(failed.is_empty(), "every request completes: {failed:#?}");
    let served = sent.len();
    assert!(served > 50, "under load: {served} requests");

    // Every span: one SERVER span per request served.
    let spans = emulator.emulator.store().traces.spans();
    let names = |name: &str| {
        spans
            .iter()
            .filter(|span| span.span.display_name.as_ref().unwrap().value == name)
            .count()
    };
    let slow = sent
        .iter()
        .filter(|request| request.path.starts_with("/api/faults/slow"))
        .count();
    assert_eq!(names("GET /api/faults/slow"), slow);
    assert_eq!(names("GET /api/books/{id}"), served - slow);
    assert_eq!(spans.len(), served);
    let flushed = service
        .entries()
        .into_iter()
        .find(|entry| entry["message"] == "traces flushed")
        .expect("a flush summary");
    assert_eq!(flushed["exported"], served, "{flushed}");
    assert_eq!(flushed["dropped"], 0, "{flushed}");

    // The final metric point counts every request served.
    let all = filter::parse(&format!("metric.type = \"{DURATION}\"")).unwrap();
    let counted: i64 = emulator
        .emulator
        .store()
        .metrics
        .series("local", &all)
        .iter()
        .map(|series| {
            let newest = series.points.iter().max_by_key(|point| point.end).unwrap();
            match &newest.value.value {
                Some(typed_value::Value::DistributionValue(distribution)) => distribution.count,
                other => panic!("expected a distribution, got {other:?}"),
            }
        })
        .sum();
    assert_eq!(counted, served as i64);
    let stats = emulator.emulator.store().metrics.stats();
    assert_eq!(stats.requests_rejected, 0, "{stats:?}");

    let messages: Vec<String> = service
        .entries()
        .iter()
        .filter_map(|entry| entry["message"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(messages.last().map(String::as_str), Some("stopped"));
    eprintln!("{served} requests, exited {exited_after:?} after SIGTERM");
}
