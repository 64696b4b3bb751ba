//! Distributed tracing, end to end: two service processes (frontend, and
//! backend as its DOWNSTREAM_URL) export their spans to the emulator over
//! real gRPC, and the emulator's Cloud Trace v1 read API shows one trace.
//!
//! Every test runs with both trace exporters (`OTEL_TRACES_EXPORTER`): OTLP
//! (`TraceService/Export`, the default) and Cloud Trace v2
//! (`BatchWriteSpans`, `gcp_trace`); see [`Exporter`].

use std::collections::HashMap;
use std::time::Duration;

use crate::emulator_helpers::TestEmulator;
use crate::helpers::{spawn_service, trace_id_of, ServiceProcess};
use gcloud_sdk::google::devtools::cloudtrace::v1::trace_span::SpanKind;
use gcloud_sdk::google::devtools::cloudtrace::v1::{GetTraceRequest, TraceSpan};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// The trace exporter under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exporter {
    Otlp,
    GcpTrace,
}

impl Exporter {
    /// The value of `OTEL_TRACES_EXPORTER`.
    pub fn env(self) -> &'static str {
        match self {
            Self::Otlp => "otlp",
            Self::GcpTrace => "gcp_trace",
        }
    }

    /// The label under which the read API shows OpenTelemetry attribute
    /// `key`: OTLP keeps the semantic conventions' keys, the Cloud Trace
    /// exporter renames HTTP ones to the labels the Trace UI knows.
    pub fn label(self, key: &'static str) -> &'static str {
        match (self, key) {
            (Self::Otlp, key) => key,
            (Self::GcpTrace, "http.request.method") => "/http/method",
            (Self::GcpTrace, "http.route") => "/http/route",
            (Self::GcpTrace, "url.path") => "/http/path",
            (Self::GcpTrace, "http.response.status_code") => "/http/status_code",
            (Self::GcpTrace, "user_agent.original") => "/http/user_agent",
            (Self::GcpTrace, "url.full") => "/http/url",
            (Self::GcpTrace, key) => key,
        }
    }
}

/// Runs an `async fn(Exporter)` test once per exporter, as
/// `<test>::otlp` and `<test>::gcp_trace`.
#[macro_export]
macro_rules! with_each_exporter {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn otlp() {
                super::$test($crate::traces::Exporter::Otlp).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn gcp_trace() {
                super::$test($crate::traces::Exporter::GcpTrace).await;
            }
        }
    )+};
}

with_each_exporter!(
    an_order_across_two_processes_is_one_trace,
    failures_mark_the_span_with_an_error_and_an_exception,
    an_x_cloud_trace_context_continues_its_trace,
    an_unsampled_caller_exports_nothing_but_logs_stay_correlated,
    with_the_emulator_down_requests_still_succeed_and_drops_are_reported_once,
    an_emulator_that_rejects_the_spans_does_not_affect_requests,
    sigterm_flushes_every_finished_span,
    a_full_span_queue_drops_and_counts_instead_of_growing,
);

fn exporting_to<'a>(
    emulator: &'a str,
    exporter: Exporter,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("CLOUD_OPS_EMULATOR_HOST", emulator),
        ("OTEL_TRACES_EXPORTER", exporter.env()),
        // Export quickly; the shutdown flush is tested as well.
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    env.extend_from_slice(extra);
    env
}

async fn stop(service: &mut ServiceProcess) {
    service.sigterm();
    assert!(
        service.wait_exit(Duration::from_secs(10)).is_some(),
        "exits within 10 s"
    );
}

async fn spans_of(emulator: &TestEmulator, trace_id: &str) -> Vec<TraceSpan> {
    let response = emulator
        .trace_reader()
        .get_trace(GetTraceRequest {
            project_id: "local".into(),
            trace_id: trace_id.into(),
        })
        .await;
    match response {
        Ok(trace) => trace.into_inner().spans,
        Err(status) if status.code() == tonic::Code::NotFound => Vec::new(),
        Err(status) => panic!("GetTrace failed: {status}"),
    }
}

fn by_name<'a>(spans: &'a [TraceSpan], name: &str, kind: SpanKind) -> &'a TraceSpan {
    let matching: Vec<&TraceSpan> = spans
        .iter()
        .filter(|span| span.name == name && span.kind == kind as i32)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "one {kind:?} span {name:?} in {spans:#?}"
    );
    matching[0]
}

fn hex(id: u64) -> String {
    format!("{id:016x}")
}

async fn an_order_across_two_processes_is_one_trace(exporter: Exporter) {
    let emulator = TestEmulator::start().await;
    let host = emulator.emulator.local_addr().to_string();
    let mut backend = spawn_service(&exporting_to(
        &host,
        exporter,
        &[("OTEL_SERVICE_NAME", "backend")],
    ));
    let backend_url = backend.url("");
    let mut frontend = spawn_service(&exporting_to(
        &host,
        exporter,
        &[
            ("OTEL_SERVICE_NAME", "frontend"),
            ("DOWNSTREAM_URL", &backend_url),
        ],
    ));

    let response = frontend
        .http
        .post(frontend.url("/api/orders"))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .header("user-agent", "trace-test/1.0")
        .json(&serde_json::json!({"book_id": 2, "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    stop(&mut frontend).await;
    stop(&mut backend).await;

    let spans = spans_of(&emulator, TRACE_ID).await;
    assert_eq!(spans.len(), 5, "{spans:#?}");
    let server = by_name(&spans, "POST /api/orders", SpanKind::RpcServer);
    let reserve = by_name(
        &spans,
        "POST /internal/inventory/reserve",
        SpanKind::RpcClient,
    );
    let charge = by_name(
        &spans,
        "POST /internal/payments/charge",
        SpanKind::RpcClient,
    );
    let reserve_server = by_name(
        &spans,
        "POST /internal/inventory/reserve",
        SpanKind::RpcServer,
    );
    let charge_server = by_name(
        &spans,
        "POST /internal/payments/charge",
        SpanKind::RpcServer,
    );

    // The tree: caller -> frontend server -> clients -> backend servers.
    assert_eq!(hex(server.parent_span_id), CALLER_SPAN);
    assert_eq!(reserve.parent_span_id, server.span_id);
    assert_eq!(charge.parent_span_id, server.span_id);
    assert_eq!(reserve_server.parent_span_id, reserve.span_id);
    assert_eq!(charge_server.parent_span_id, charge.span_id);

    // HTTP semantic conventions, as Cloud Trace's well-known labels.
    let label = |span: &TraceSpan, key: &'static str| {
        span.labels
            .get(exporter.label(key))
            .unwrap_or_else(|| panic!("no {key} label in {:#?}", span.labels))
            .clone()
    };
    assert_eq!(label(server, "http.request.method"), "POST");
    assert_eq!(label(server, "http.route"), "/api/orders");
    assert_eq!(label(server, "url.path"), "/api/orders");
    assert_eq!(label(server, "http.response.status_code"), "201");
    assert_eq!(label(server, "user_agent.original"), "trace-test/1.0");
    assert_eq!(label(server, "service.name"), "frontend");
    assert_eq!(label(charge_server, "service.name"), "backend");
    assert_eq!(label(charge, "http.response.status_code"), "200");
    assert!(label(charge, "url.full").ends_with("/internal/payments/charge"));
    if exporter == Exporter::GcpTrace {
        assert!(label(server, "g.co/agent").starts_with("opentelemetry-rust"));
    }

    // Each process's log lines name the trace and its own server span.
    let frontend_line = &frontend.request_lines("/api/orders", 1).await[0];
    assert_eq!(trace_id_of(frontend_line), Some(TRACE_ID));
    assert_eq!(
        frontend_line["logging.googleapis.com/spanId"],
        hex(server.span_id)
    );
    let backend_line = &backend.request_lines("/internal/payments/charge", 1).await[0];
    assert_eq!(trace_id_of(backend_line), Some(TRACE_ID));
    assert_eq!(
        backend_line["logging.googleapis.com/spanId"],
        hex(charge_server.span_id)
    );
}

async fn failures_mark_the_span_with_an_error_and_an_exception(exporter: Exporter) {
    let emulator = TestEmulator::start().await;
    let host = emulator.emulator.local_addr().to_string();
    let mut service = spawn_service(&exporting_to(&host, exporter, &[]));
    for path in ["/api/faults/error", "/api/faults/panic"] {
        service
            .http
            .get(service.url(path))
            .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
            .send()
            .await
            .unwrap();
    }
    stop(&mut service).await;
    let spans = spans_of(&emulator, TRACE_ID).await;
    let error = by_name(&spans, "GET /api/faults/error", SpanKind::RpcServer);
    let status_code = exporter.label("http.response.status_code");
    assert_eq!(error.labels[status_code], "500");
    let panic = by_name(&spans, "GET /api/faults/panic", SpanKind::RpcServer);
    assert_eq!(panic.labels[status_code], "500");
    // The error status and the exception event are checked on the stored
    // v2 spans, which keep them.
    let stored = emulator.emulator.store().traces.trace("local", TRACE_ID);
    let error_span = &stored
        .iter()
        .find(|stored| stored.span.display_name.as_ref().unwrap().value == "GET /api/faults/error")
        .unwrap()
        .span;
    let status = error_span.status.as_ref().unwrap();
    assert_eq!(status.code, 2);
    assert!(
        status.message.contains("could not load the featured shelf"),
        "{status:?}"
    );
    let events = &error_span.time_events.as_ref().unwrap().time_event;
    assert_eq!(events.len(), 1);
}

async fn an_x_cloud_trace_context_continues_its_trace(exporter: Exporter) {
    let emulator = TestEmulator::start().await;
    let host = emulator.emulator.local_addr().to_string();
    let mut service = spawn_service(&exporting_to(&host, exporter, &[]));
    service
        .http
        .get(service.url("/api/books/1"))
        .header(
            "x-cloud-trace-context",
            "105445aa7843bc8bf206b12000100000/1;o=1",
        )
        .send()
        .await
        .unwrap();
    stop(&mut service).await;
    let spans = spans_of(&emulator, "105445aa7843bc8bf206b12000100000").await;
    let server = by_name(&spans, "GET /api/books/{id}", SpanKind::RpcServer);
    assert_eq!(server.parent_span_id, 1);
    assert_eq!(
        server.labels[exporter.label("http.route")],
        "/api/books/{id}"
    );
}

async fn an_unsampled_caller_exports_nothing_but_logs_stay_correlated(exporter: Exporter) {
    let emulator = TestEmulator::start().await;
    let host = emulator.emulator.local_addr().to_string();
    let mut service = spawn_service(&exporting_to(
        &host,
        exporter,
        &[("OTEL_TRACES_SAMPLER_ARG", "0")],
    ));
    service
        .http
        .get(service.url("/api/books/1"))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-00"))
        .send()
        .await
        .unwrap();
    // A sampled caller is followed even at ratio 0.
    service
        .http
        .get(service.url("/api/books/2"))
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .send()
        .await
        .unwrap();
    stop(&mut service).await;
    assert!(spans_of(&emulator, TRACE_ID).await.is_empty());
    assert_eq!(
        spans_of(&emulator, "0af7651916cd43dd8448eb211c80319c")
            .await
            .len(),
        1
    );
    let line = &service.request_lines("/api/books/1", 1).await[0];
    assert_eq!(trace_id_of(line), Some(TRACE_ID));
    assert_eq!(line["logging.googleapis.com/trace_sampled"], false);
}

async fn with_the_emulator_down_requests_still_succeed_and_drops_are_reported_once(
    exporter: Exporter,
) {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = closed.local_addr().unwrap().to_string();
    drop(closed);
    let mut service = spawn_service(&exporting_to(&host, exporter, &[]));
    for n in 0..30 {
        let response = service.get(&format!("/api/books/1?n={n}")).await;
        assert_eq!(response.status(), 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop(&mut service).await;
    let warnings: Vec<_> = service
        .entries()
        .into_iter()
        .filter(|entry| entry["severity"] == "WARNING" && entry["signal"] == "traces")
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning a minute at most: {warnings:#?}"
    );
    assert!(warnings[0]["message"]
        .as_str()
        .unwrap()
        .contains("traces export failed"));
    let flushed = service
        .entries()
        .into_iter()
        .find(|entry| entry["message"] == "traces flushed")
        .expect("a flush summary");
    assert_eq!(flushed["exported"], 0);
    assert_eq!(flushed["failed"], 30);
}

async fn an_emulator_that_rejects_the_spans_does_not_affect_requests(exporter: Exporter) {
    let emulator = TestEmulator::start().await;
    let host = emulator.emulator.local_addr().to_string();
    // Not a valid project id: every BatchWriteSpans is INVALID_ARGUMENT.
    let mut service = spawn_service(&exporting_to(
        &host,
        exporter,
        &[("GOOGLE_CLOUD_PROJECT", "bad project")],
    ));
    for _ in 0..5 {
        let response = service.get("/api/books/3").await;
        assert_eq!(response.status(), 200);
    }
    stop(&mut service).await;
    let warning = service
        .entries()
        .into_iter()
        .find(|entry| entry["severity"] == "WARNING" && entry["signal"] == "traces")
        .expect("a warning");
    let message = warning["message"].as_str().unwrap();
    assert!(
        message.contains("InvalidArgument") || message.contains("invalid argument"),
        "{message}"
    );
    let status: HashMap<String, serde_json::Value> =
        reqwest::get(format!("http://{host}/api/status"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert!(status["traces"]["requests_rejected"].as_u64().unwrap() >= 1);
}

async fn sigterm_flushes_every_finished_span(exporter: Exporter) {
    let emulator = TestEmulator::start().await;
    let host = emulator.emulator.local_addr().to_string();
    // No periodic export within the test: only the shutdown flush sends.
    let mut service = spawn_service(&[
        ("CLOUD_OPS_EMULATOR_HOST", &host),
        ("OTEL_TRACES_EXPORTER", exporter.env()),
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
    ]);
    for n in 0..20 {
        let response = service.get(&format!("/api/books/{}", n % 8 + 1)).await;
        assert_eq!(response.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(emulator.emulator.store().traces.stats().spans_stored, 0);
    stop(&mut service).await;
    let stored = emulator.emulator.store().traces.spans();
    let books = stored
        .iter()
        .filter(|span| span.span.display_name.as_ref().unwrap().value == "GET /api/books/{id}")
        .count();
    assert_eq!(books, 20);
}

async fn a_full_span_queue_drops_and_counts_instead_of_growing(exporter: Exporter) {
    // An endpoint that accepts connections and never answers: the first
    // export hangs, so the queue (5 spans) stays full.
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = blackhole.local_addr().unwrap().to_string();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = blackhole.accept().await {
            held.push(socket);
        }
    });
    let mut service = spawn_service(&[
        ("CLOUD_OPS_EMULATOR_HOST", &host),
        ("OTEL_TRACES_EXPORTER", exporter.env()),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "5"),
    ]);
    for _ in 0..12 {
        assert_eq!(service.get("/api/books/1").await.status(), 200);
    }
    stop(&mut service).await;
    let flushed = service
        .entries()
        .into_iter()
        .find(|entry| {
            entry["message"] == "traces flushed"
                || entry["message"] == "traces could not be flushed"
        })
        .expect("a flush summary");
    let counts = service
        .entries()
        .into_iter()
        .filter(|entry| entry["signal"] == "traces" && entry["severity"] == "WARNING")
        .collect::<Vec<_>>();
    assert_eq!(counts.len(), 1, "one warning: {counts:#?}");
    assert_eq!(counts[0]["dropped"], 1, "warned at the first drop");
    assert!(counts[0]["message"]
        .as_str()
        .unwrap()
        .contains("export queue full"));
    // The hanging export never finishes within the grace period, and says so.
    assert_eq!(flushed["message"], "traces could not be flushed");
    assert_eq!(flushed["dropped"], 7, "{flushed}");
    assert_eq!(flushed["exported"], 0, "{flushed}");
}
