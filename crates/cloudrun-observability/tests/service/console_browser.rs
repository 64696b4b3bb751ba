//! The web console in a real browser: headless Chromium, driven through
//! chromedriver's WebDriver HTTP API, opens every page after real traffic
//! (an order across a frontend and a backend process, faults) and checks
//! that the entries, the order's waterfall, the charts and the error groups
//! show that data.
//!
//! WebDriver is spoken with `reqwest` directly (a few JSON calls) rather than
//! with `fantoccini`, which would bring a second `http` crate version.
//! Without `/usr/bin/chromedriver` the test is skipped with a message, except
//! in CI (`CI` set), where it must run: `scripts/install-browser` installs it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::emulator_helpers::metrics::generic_task;
use crate::emulator_helpers::{now_seconds, TestEmulator, PROJECT};
use crate::helpers::{spawn_service, trace_id_of, ServiceProcess};
use gcloud_sdk::google::api::distribution::{bucket_options, BucketOptions};
use gcloud_sdk::google::api::metric_descriptor::MetricKind;
use gcloud_sdk::google::api::{Distribution, Metric};
use gcloud_sdk::google::monitoring::v3::{
    typed_value, CreateTimeSeriesRequest, Point, TimeInterval, TimeSeries, TypedValue,
};
use prost_types::Timestamp;
use serde_json::{json, Value};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const ORDER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// chromedriver and one Chromium session; both stopped when dropped.
struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    async fn start() -> Self {
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        wait_until_ready(&http, &base).await;
        let profile = std::env::temp_dir().join(format!(
            "console-browser-test-{}-{}",
            std::process::id(),
            now_seconds()
        ));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("create a session")
            .json()
            .await
            .unwrap();
        let id = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"));
        Self {
            http,
            session: format!("{base}/session/{id}"),
            driver,
            profile,
        }
    }

    async fn open(&self, url: &str) {
        let response: Value = self
            .http
            .post(format!("{}/url", self.session))
            .json(&json!({ "url": url }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(response["value"].is_null(), "navigate to {url}: {response}");
    }

    /// Runs `script` in the page and returns its result.
    async fn eval(&self, script: &str) -> Value {
        let response: Value = self
            .http
            .post(format!("{}/execute/sync", self.session))
            .json(&json!({ "script": script, "args": [] }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            response["value"].get("error").is_none(),
            "{script}: {response}"
        );
        response["value"].clone()
    }

    /// The text the browser renders for the first element matching `css`.
    async fn text(&self, css: &str) -> String {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.innerText : null;",
            json!(css)
        );
        self.eval(&script)
            .await
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_owned()
    }

    /// How many elements match `css`.
    async fn count(&self, css: &str) -> u64 {
        let script = format!("return document.querySelectorAll({}).length;", json!(css));
        self.eval(&script).await.as_u64().unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends Chromium through chromedriver; best effort, the driver is killed anyway.
        let session = self.session.clone();
        let _ = std::thread::spawn(move || {
            let _ = reqwest::blocking_delete(&session);
        })
        .join();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

mod reqwest {
    //! `reqwest` plus the one blocking call `Drop` needs, done with std only
    //! (reqwest's blocking client is not compiled in).
    pub use ::reqwest::*;

    pub fn blocking_delete(url: &str) -> std::io::Result<()> {
        use std::io::{Read, Write};
        let rest = url.trim_start_matches("http://");
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut stream = std::net::TcpStream::connect(host)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        write!(
            stream,
            "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
        Ok(())
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn wait_until_ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = http.get(format!("{base}/status")).send().await {
            if let Ok(status) = response.json::<Value>().await {
                if status["value"]["ready"] == true {
                    return;
                }
            }
        }
        assert!(Instant::now() < deadline, "chromedriver never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// False (with a message) when the browser is missing outside CI.
fn browser_available() -> bool {
    if std::path::Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    // scripts/test sets this, with the reason, when it could not install
    // the browser (no apt-get): the one test is reported skipped.
    if let Some(reason) = std::env::var_os("CONSOLE_BROWSER_SKIP") {
        println!("SKIPPED console browser test: {}", reason.to_string_lossy());
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{CHROMEDRIVER} is missing in CI: scripts/install-browser must run first"
    );
    println!(
        "SKIPPED console browser test: {CHROMEDRIVER} is missing; run scripts/install-browser"
    );
    false
}

fn exporting_to<'a>(emulator: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("CLOUD_OPS_EMULATOR_HOST", emulator),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    env.extend_from_slice(extra);
    env
}

/// An order through the frontend (continuing `ORDER_TRACE`), two handler
/// errors and a panic.
async fn drive_traffic(frontend: &ServiceProcess) {
    let response = frontend
        .http
        .post(frontend.url("/api/orders"))
        .header(
            "traceparent",
            format!("00-{ORDER_TRACE}-00f067aa0ba902b7-01"),
        )
        .json(&json!({"book_id": 2, "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    for fault in ["error", "error", "panic"] {
        let response = frontend
            .http
            .get(frontend.url(&format!("/api/faults/{fault}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
    }
}

/// Waits until the emulator holds `count` spans of `trace`.
async fn wait_for_spans(emulator: &TestEmulator, trace: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let store = emulator.emulator.store();
    while store.traces.trace("local", trace).len() < count {
        assert!(
            Instant::now() < deadline,
            "the spans of {trace} never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends both services' stdout, as a standalone deployment would.
async fn post_logs(emulator: &str, services: &[&ServiceProcess]) {
    for service in services {
        let response = reqwest::Client::new()
            .post(format!("http://{emulator}/api/logs"))
            .header("content-type", "application/x-ndjson")
            .body(service.lines().join("\n"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

fn ts(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

/// Cumulative request durations (buckets 0.01, 0.1, 1 s) of one route and status.
fn durations(route: &str, status: &str, start: i64, end: i64, counts: [i64; 4]) -> TimeSeries {
    let count: i64 = counts.iter().sum();
    let value = typed_value::Value::DistributionValue(Distribution {
        count,
        mean: if count > 0 { 0.05 } else { 0.0 },
        bucket_options: Some(BucketOptions {
            options: Some(bucket_options::Options::ExplicitBuckets(
                bucket_options::Explicit {
                    bounds: vec![0.01, 0.1, 1.0],
                },
            )),
        }),
        bucket_counts: counts.to_vec(),
        ..Distribution::default()
    });
    let labels = [
        ("http_route", route),
        ("http_response_status_code", status),
        ("http_request_method", "POST"),
    ];
    series(
        "workload.googleapis.com/http.server.request.duration",
        &labels,
        MetricKind::Cumulative,
        ts(start),
        end,
        value,
    )
}

fn series(
    metric_type: &str,
    labels: &[(&str, &str)],
    kind: MetricKind,
    start: Option<Timestamp>,
    end: i64,
    value: typed_value::Value,
) -> TimeSeries {
    TimeSeries {
        metric: Some(Metric {
            r#type: metric_type.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }),
        resource: Some(generic_task("task-1")),
        metric_kind: kind as i32,
        points: vec![Point {
            interval: Some(TimeInterval {
                start_time: start,
                end_time: ts(end),
            }),
            value: Some(TypedValue { value: Some(value) }),
        }],
        ..TimeSeries::default()
    }
}

/// Two exports a minute apart: /api/orders 30 requests (10 of them 500s),
/// /api/books 12 requests, 3 active sessions.
async fn write_metrics(emulator: &TestEmulator) {
    let now = now_seconds();
    let start = now - 600;
    let exports = [
        (now - 70, [0, 10, 0, 0], [0, 0, 0, 0], [2, 4, 0, 0], 2),
        (now - 10, [0, 20, 0, 0], [0, 0, 10, 0], [4, 8, 0, 0], 3),
    ];
    for (end, created, failed, books, sessions) in exports {
        let request = CreateTimeSeriesRequest {
            name: format!("projects/{PROJECT}"),
            time_series: vec![
                durations("/api/orders", "201", start, end, created),
                durations("/api/orders", "500", start, end, failed),
                durations("/api/books", "200", start, end, books),
                series(
                    "workload.googleapis.com/app.sessions.active",
                    &[],
                    MetricKind::Gauge,
                    None,
                    end,
                    typed_value::Value::Int64Value(sessions),
                ),
            ],
        };
        emulator
            .metrics()
            .create_time_series(request)
            .await
            .expect("CreateTimeSeries");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_real_logs_traces_metrics_and_errors_in_a_browser() {
    if !browser_available() {
        return;
    }
    let emulator = TestEmulator::start().await;
    let host = emulator.emulator.local_addr().to_string();
    let backend = spawn_service(&exporting_to(&host, &[("OTEL_SERVICE_NAME", "backend")]));
    let backend_url = backend.url("");
    let frontend = spawn_service(&exporting_to(
        &host,
        &[
            ("DOWNSTREAM_URL", &backend_url),
            ("OTEL_SERVICE_NAME", "frontend"),
        ],
    ));
    drive_traffic(&frontend).await;
    wait_for_spans(&emulator, ORDER_TRACE, 5).await;
    frontend
        .wait_for_entries(3, |e| e["errorType"].is_string())
        .await;
    post_logs(&host, &[&frontend, &backend]).await;
    write_metrics(&emulator).await;
    let fault_trace = frontend
        .request_lines("/api/faults/error", 2)
        .await
        .last()
        .and_then(|line| trace_id_of(line).map(str::to_owned))
        .expect("the fault's request line has a trace");

    let browser = Browser::start().await;
    let base = format!("http://{host}");

    // Overview: counters of what was really received.
    browser.open(&format!("{base}/")).await;
    let counters = browser.text("#counters").await;
    assert!(counters.contains("Log entries"), "{counters}");
    assert!(counters.contains("Error groups\n2"), "{counters}");

    // Logs: severity filter, readable httpRequest, link to the trace.
    browser.open(&format!("{base}/logs?severity=ERROR")).await;
    let severities = browser
        .eval("return [...document.querySelectorAll('tr.entry')].map(r => r.dataset.severity);")
        .await;
    let severities = severities.as_array().unwrap();
    assert!(
        severities.len() >= 6,
        "3 error reports and 3 request lines: {severities:?}"
    );
    assert!(severities.iter().all(|s| s == "ERROR"), "{severities:?}");
    let entries = browser.text("#log-entries").await;
    assert!(entries.contains("GET /api/faults/error → 500"), "{entries}");
    assert!(
        entries.contains(
            "Error Reporting: handler_error at crates/cloudrun-observability/src/app/faults.rs"
        ),
        "{entries}"
    );
    browser
        .open(&format!("{base}/logs?q=%2Fapi%2Forders"))
        .await;
    let links = browser
        .eval("return [...document.querySelectorAll('a.trace-link')].map(a => a.getAttribute('href'));")
        .await;
    assert!(
        links
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == &json!(format!("/traces/{ORDER_TRACE}"))),
        "{links}"
    );

    // Traces: newest first, the order with its 5 spans, the faults marked.
    browser.open(&format!("{base}/traces")).await;
    let order_row = format!("tr[data-trace-id='{ORDER_TRACE}']");
    assert_eq!(
        browser.text(&format!("{order_row} td.span-count")).await,
        "5"
    );
    assert!(browser.text(&order_row).await.contains("POST /api/orders"));
    assert!(browser
        .text(&format!("tr[data-trace-id='{fault_trace}']"))
        .await
        .contains("error"));
    let starts = browser
        .eval("return [...document.querySelectorAll('tr.trace td:first-child')].map(td => td.innerText);")
        .await;
    let starts: Vec<String> = serde_json::from_value(starts).unwrap();
    let mut sorted = starts.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(starts, sorted, "newest first");

    // The order's waterfall: one tree over two processes.
    browser.open(&format!("{base}/traces/{ORDER_TRACE}")).await;
    let rows = browser
        .eval("return [...document.querySelectorAll('tr.span')].map(r => [Number(r.dataset.depth), r.cells[0].innerText, r.cells[1].innerText.split(' ')[0]]);")
        .await;
    let rows: Vec<(u64, String, String)> = serde_json::from_value(rows).unwrap();
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert_eq!(rows[0].0, 0);
    assert!(rows[0].1.contains("POST /api/orders"), "{rows:?}");
    let depths: Vec<u64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(
        depths,
        [0, 1, 2, 1, 2],
        "server, client, backend server, ...: {rows:?}"
    );
    // Processes: each span names the service that wrote it.
    let processes: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(
        processes,
        ["frontend", "frontend", "backend", "frontend", "backend"],
        "{rows:?}"
    );
    let details = browser.text(".span-detail").await;
    // OTLP, the default exporter, keeps OpenTelemetry's attribute keys (the
    // Cloud Trace v2 exporter writes `/http/route`).
    assert!(details.contains("http.route"), "{details}");
    assert!(details.contains("Status: OK"), "{details}");

    // Metrics: charts and the per-route table from the written series.
    browser
        .open(&format!("{base}/metrics?window=15m&project={PROJECT}"))
        .await;
    assert_eq!(
        browser
            .count("svg[data-chart='request-rate'] g[data-series='/api/orders']")
            .await,
        1
    );
    assert_eq!(
        browser
            .count("svg[data-chart='latency'] g[data-series]")
            .await,
        3
    );
    for chart in ["request-rate", "error-rate", "latency", "sessions"] {
        let points = browser
            .eval(&format!("return Number(document.querySelector(\"svg[data-chart='{chart}']\").dataset.points);"))
            .await;
        assert!(points.as_f64().unwrap() >= 2.0, "{chart}: {points}");
    }
    let orders = browser.text("tr[data-route='/api/orders']").await;
    let cells: Vec<&str> = orders.split('\t').collect();
    assert_eq!(
        (cells[1], cells[3], cells[4]),
        ("30", "10", "33.3%"),
        "{orders}"
    );

    // Errors: grouped by type and location, with counts and links.
    browser.open(&format!("{base}/errors")).await;
    assert_eq!(browser.count("tr.error-group").await, 2);
    assert_eq!(
        browser
            .text("tr[data-error-type='handler_error'] td.count")
            .await,
        "2"
    );
    assert_eq!(
        browser.text("tr[data-error-type='panic'] td.count").await,
        "1"
    );
    let sample_trace = browser
        .eval("return document.querySelector(\"tr[data-error-type='handler_error'] a.sample-trace\").getAttribute('href');")
        .await;
    assert_eq!(sample_trace, json!(format!("/traces/{fault_trace}")));
}
