//! The console's log, error and metric pages over huge stores: they search within
//! a time budget, stop and say so past it, and never hold the stores'
//! writers up while they search (issue #18, part 3).

use std::time::{Duration, Instant};

use cloud_ops_emulator::console::metrics::REQUEST_DURATION;
use cloud_ops_emulator::time::timestamp::now_nanos;
use cloud_ops_emulator::EmulatorConfig;
use gcloud_sdk::google::api::metric_descriptor::MetricKind;

use crate::helpers::contention::read_beside_writes;
use crate::helpers::metrics::{distribution, labels, series};
use crate::helpers::{ts, TestEmulator, PROJECT};

/// Log entries in the store: a text search over them takes seconds.
const ENTRIES: usize = 20_000;
/// Distinct request-duration series: the metric page aligns each.
const SERIES: usize = 20_000;
/// The cut-short note the pages end their search with.
const CUT_SHORT: &str = "id=\"cut-short\"";

fn with_budget(budget: Duration) -> EmulatorConfig {
    EmulatorConfig {
        console_page_budget: budget,
        max_log_entries: ENTRIES,
        ..EmulatorConfig::default()
    }
}

/// `ENTRIES` request lines of about 2 KB, ingested straight into the store.
fn crowd_logs(emu: &TestEmulator) {
    let logs = emu.emulator.store().logs;
    let detail = "lorem ipsum ".repeat(150);
    for n in 0..ENTRIES {
        logs.ingest_line(&format!(
            r#"{{"severity":"INFO","message":"request {n}","detail":"{detail}","httpRequest":{{"requestMethod":"GET","requestUrl":"/api/books/{n}","status":200}}}}"#
        ));
    }
}

/// `SERIES` cumulative request-duration series, one point each, written
/// straight into the store.
fn crowd_metrics(emu: &TestEmulator) {
    let store = emu.emulator.store().metrics.clone();
    let now = now_nanos();
    let batch: Vec<_> = (0..SERIES)
        .map(|n| {
            series(
                REQUEST_DURATION,
                labels(&[
                    ("http_route", &format!("/route/{n}")),
                    ("http_response_status_code", "200"),
                ]),
                MetricKind::Cumulative,
                Some(ts(-600)),
                ts(-60),
                distribution(&[1, 2, 3, 4, 5], 12.0),
            )
        })
        .collect();
    for chunk in batch.chunks(200) {
        let outcome = store.write(PROJECT, chunk, now);
        assert!(outcome.errors.is_empty(), "{:?}", &outcome.errors[..1]);
    }
}

/// The page's body and how long it took.
async fn timed_get(emu: &TestEmulator, path: &str) -> (String, Duration) {
    let started = Instant::now();
    let response = reqwest::get(format!("http://{}{path}", emu.emulator.local_addr()))
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let body = response.text().await.unwrap();
    (body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_search_over_a_huge_store_stops_at_its_budget_and_says_so() {
    let emu = TestEmulator::start_with(with_budget(Duration::from_millis(200))).await;
    crowd_logs(&emu);
    let (page, took) = timed_get(&emu, "/logs?q=nowhere-to-be-found").await;
    eprintln!("the page took {took:?}");
    // Before the budget the page searched every entry and said nothing.
    assert!(
        page.contains(CUT_SHORT),
        "the page does not say it was cut short"
    );
    // Generous: the budget is 200 ms, the whole search takes seconds.
    assert!(took < Duration::from_secs(5), "the page took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_page_over_a_huge_store_stops_at_its_budget_and_says_so() {
    let emu = TestEmulator::start_with(with_budget(Duration::from_millis(200))).await;
    crowd_metrics(&emu);
    let (page, took) = timed_get(&emu, &format!("/metrics?window=1h&project={PROJECT}")).await;
    eprintln!("the page took {took:?}");
    assert!(
        page.contains(CUT_SHORT),
        "the page does not say it was cut short"
    );
    assert!(took < Duration::from_secs(5), "the page took {took:?}");
}

/// Error Reporting entries of `kinds` error types, one each.
fn crowd_errors(emu: &TestEmulator, kinds: usize) {
    let logs = emu.emulator.store().logs;
    for n in 0..kinds {
        logs.ingest_line(&format!(
            r#"{{"severity":"ERROR","message":"boom {n}","@type":"type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent","errorType":"kind_{n}","context":{{"reportLocation":{{"filePath":"src/x.rs","lineNumber":7,"functionName":"x"}}}}}}"#
        ));
    }
}

/// `path` over 50 error entries: cut short, and saying so, under a budget
/// that has passed before the first turn of the store's lock; whole, with
/// `whole` in it and no note, under the default budget.
async fn assert_groups_within_budget(path: &str, whole: &str) {
    let emu = TestEmulator::start_with(with_budget(Duration::from_nanos(1))).await;
    crowd_errors(&emu, 50);
    let (page, _) = timed_get(&emu, path).await;
    assert!(
        page.contains(CUT_SHORT),
        "the page does not say it was cut short"
    );
    let emu = TestEmulator::start().await;
    crowd_errors(&emu, 50);
    let (page, _) = timed_get(&emu, path).await;
    assert!(
        page.contains(whole) && !page.contains(CUT_SHORT),
        "{path} is not shown whole with {whole:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_errors_page_groups_within_its_budget_and_says_when_it_stopped() {
    // Before, the page grouped every entry whatever the time, on the
    // emulator's async workers.
    assert_groups_within_budget("/errors", "50 error groups").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_counts_within_its_budget_and_says_when_it_stopped() {
    // Before, the overview copied every entry and span and grouped them
    // whatever the time.
    assert_groups_within_budget("/", "50 errors").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_store_is_shown_whole_without_a_note() {
    let emu = TestEmulator::start().await;
    emu.emulator
        .store()
        .logs
        .ingest_line(r#"{"message":"hello"}"#);
    let (page, _) = timed_get(&emu, "/logs?q=hello").await;
    assert!(page.contains("hello") && !page.contains(CUT_SHORT));
    let (page, _) = timed_get(&emu, "/metrics").await;
    assert!(!page.contains(CUT_SHORT));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_ingestion_is_not_held_up_by_a_long_log_search() {
    // A budget long enough for the whole search to run beside the writes.
    let emu = TestEmulator::start_with(with_budget(Duration::from_secs(60))).await;
    crowd_logs(&emu);
    let url = format!("http://{}", emu.emulator.local_addr());
    let search = reqwest::get(format!("{url}/logs?q=nowhere-to-be-found"));
    let search = async move { search.await.unwrap().text().await.unwrap() };
    let client = reqwest::Client::new();
    let steady_write = |n| {
        let post = client
            .post(format!("{url}/api/logs"))
            .header("content-type", "application/x-ndjson")
            .body(format!("{{\"message\":\"steady {n}\"}}\n"))
            .send();
        async move {
            let response = post.await.unwrap();
            assert!(response.status().is_success(), "{}", response.status());
        }
    };
    let (page, beside) = read_beside_writes(search, steady_write).await;
    assert!(
        page.contains("No log entries match"),
        "the search did not finish"
    );
    // Before the fix the search held the store's lock throughout.
    beside.assert_writes_were_not_held_up();
}
