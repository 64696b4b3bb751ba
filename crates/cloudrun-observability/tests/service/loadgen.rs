//! `loadgen` against the real service: the requests it reports are the
//! requests the service logged.

use std::time::Duration;

use crate::helpers::spawn_service;
use cloudrun_observability::loadgen::{self, LoadgenConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_sends_the_configured_mix_and_reports_it() {
    let service = spawn_service(&[]);
    let summary = loadgen::run(LoadgenConfig {
        target: service.url(""),
        rps: 40.0,
        duration: Duration::from_secs(1),
        error_share: 0.3,
        slow_ms: 0,
        visitors: 3,
        progress: false,
    })
    .await
    .unwrap();
    assert_eq!(summary.sent, 40);
    assert_eq!(summary.failed + summary.skipped, 0);
    assert_eq!(summary.statuses.values().sum::<u64>(), 40);
    assert!(
        summary.statuses.get(&500).copied().unwrap_or(0) > 0,
        "{summary:?}"
    );
    assert!(
        summary.statuses.get(&200).copied().unwrap_or(0) > 0,
        "{summary:?}"
    );
    assert!(summary.report().contains("requests: 40 sent"));

    // Every request the generator counts is one request line of the service
    // (orders add their two downstream calls, which are not on /api).
    let logged = service
        .wait_for_entries(40, |entry| {
            entry["httpRequest"]["requestUrl"]
                .as_str()
                .is_some_and(|url| url.starts_with("/api/"))
        })
        .await;
    assert_eq!(logged.len(), 40);
    let faults = logged
        .iter()
        .filter(|entry| entry["route"] == "/api/faults/error")
        .count() as u64;
    assert_eq!(faults, summary.statuses[&500]);
}

#[tokio::test]
async fn an_unreachable_target_is_counted_not_fatal() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let summary = loadgen::run(LoadgenConfig {
        target,
        rps: 20.0,
        duration: Duration::from_millis(500),
        error_share: 0.0,
        slow_ms: 0,
        visitors: 1,
        progress: false,
    })
    .await
    .unwrap();
    assert_eq!(summary.sent, 10);
    assert_eq!(summary.failed, 10);
}
