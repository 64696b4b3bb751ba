//! The service's stdout is Cloud Logging structured JSON: one object per
//! line, severities that follow the status, trace correlation from the
//! caller's headers, Error Reporting fields on errors and panics, and no
//! secrets.

use std::collections::HashSet;

use crate::helpers::{spawn_service, trace_id_of};
use serde_json::Value;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const ERROR_EVENT: &str =
    "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent";

#[tokio::test]
async fn request_lines_carry_http_request_and_severity_follows_status() {
    let service = spawn_service(&[]);
    for path in ["/api/books/1", "/api/books/999", "/api/faults/error"] {
        service.get(path).await;
    }

    let ok = &service.request_lines("/api/books/1", 1).await[0];
    let not_found = &service.request_lines("/api/books/999", 1).await[0];
    let failed = &service.request_lines("/api/faults/error", 1).await[0];
    assert_eq!(ok["severity"], "INFO");
    assert_eq!(not_found["severity"], "WARNING");
    assert_eq!(failed["severity"], "ERROR");

    let http = &ok["httpRequest"];
    assert_eq!(http["requestMethod"], "GET");
    assert_eq!(http["status"], 200);
    assert_eq!(http["protocol"], "HTTP/1.1");
    assert_eq!(http["remoteIp"], "127.0.0.1");
    assert!(http["responseSize"].as_u64().unwrap() > 0);
    let latency = http["latency"].as_str().unwrap();
    assert!(latency.ends_with('s') && latency.trim_end_matches('s').parse::<f64>().is_ok());
    assert_eq!(ok["route"], "/api/books/{id}");
    assert!(ok["time"].as_str().unwrap().ends_with('Z'));
    assert!(ok["logging.googleapis.com/sourceLocation"]["file"].is_string());
    // The request span is named by the trace fields, not copied into the line.
    assert!(ok["logging.googleapis.com/spanId"].is_string());
    assert!(
        ok.get("span").is_none() && ok.get("spans").is_none(),
        "{ok}"
    );

    // Every line written, including start-up, is a JSON object.
    for entry in service.entries() {
        assert!(entry.is_object(), "{entry}");
        assert!(entry["severity"].is_string(), "{entry}");
        assert!(entry["message"].is_string(), "{entry}");
    }
}

#[tokio::test]
async fn a_traceparent_puts_every_line_of_the_request_in_that_trace() {
    let service = spawn_service(&[]);
    service
        .http
        .get(service.url("/api/faults/error"))
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .unwrap();
    let lines = service
        .wait_for_entries(2, |entry| {
            entry["route"] == "/api/faults/error" || entry["errorType"].is_string()
        })
        .await;
    assert_eq!(lines.len(), 2, "an error entry and a request line");
    for line in &lines {
        assert_eq!(
            line["logging.googleapis.com/trace"],
            "projects/local/traces/4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let span_id = line["logging.googleapis.com/spanId"].as_str().unwrap();
        assert_eq!(span_id.len(), 16);
        assert_ne!(span_id, "00f067aa0ba902b7", "the service has its own span");
        assert_eq!(line["logging.googleapis.com/trace_sampled"], true);
    }
}

#[tokio::test]
async fn the_project_id_names_the_trace() {
    let service = spawn_service(&[("GOOGLE_CLOUD_PROJECT", "shop-prod")]);
    service
        .http
        .get(service.url("/api/books"))
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .unwrap();
    let line = &service.request_lines("/api/books", 1).await[0];
    assert_eq!(
        line["logging.googleapis.com/trace"],
        "projects/shop-prod/traces/4bf92f3577b34da6a3ce929d0e0e4736"
    );
}

#[tokio::test]
async fn an_x_cloud_trace_context_continues_its_trace() {
    let service = spawn_service(&[]);
    service
        .http
        .get(service.url("/api/books/2"))
        .header(
            "x-cloud-trace-context",
            "105445aa7843bc8bf206b12000100000/1;o=1",
        )
        .send()
        .await
        .unwrap();
    let line = &service.request_lines("/api/books/2", 1).await[0];
    assert_eq!(trace_id_of(line), Some("105445aa7843bc8bf206b12000100000"));
    assert_eq!(line["logging.googleapis.com/trace_sampled"], true);
}

#[tokio::test]
async fn malformed_trace_headers_start_a_new_trace() {
    let service = spawn_service(&[]);
    let huge = "0".repeat(8 * 1024);
    let cases = [
        ("traceparent", "00-zzzz-00f067aa0ba902b7-01"),
        (
            "traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ),
        ("x-cloud-trace-context", "not-a-trace;o=1"),
        ("x-cloud-trace-context", huge.as_str()),
    ];
    for (index, (name, value)) in cases.iter().enumerate() {
        let url = format!("/api/books/1?case={index}");
        let response = service
            .http
            .get(service.url(&url))
            .header(*name, *value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}: {value}");
        let line = &service.request_lines(&url, 1).await[0];
        let trace = trace_id_of(line).unwrap();
        assert_eq!(trace.len(), 32);
        assert_ne!(trace, "00000000000000000000000000000000");
    }
}

#[tokio::test]
async fn a_handler_error_is_one_error_reporting_entry_with_its_cause_chain() {
    let service = spawn_service(&[]);
    service
        .http
        .get(service.url("/api/faults/error"))
        .header("user-agent", "probe/1.0")
        .send()
        .await
        .unwrap();
    let reports = service
        .wait_for_entries(1, |entry| entry["@type"] == ERROR_EVENT)
        .await;
    assert_eq!(reports.len(), 1, "logged exactly once");
    let report = &reports[0];
    assert_eq!(report["severity"], "ERROR");
    assert_eq!(report["errorType"], "handler_error");
    assert_eq!(
        report["message"],
        "could not load the featured shelf: row 3: invalid price \"38,99\": invalid float literal"
    );
    assert_eq!(
        report["serviceContext"]["service"],
        "cloudrun-observability"
    );
    assert!(report["serviceContext"]["version"].is_string());
    let location = &report["context"]["reportLocation"];
    assert_eq!(
        location["filePath"],
        "crates/cloudrun-observability/src/app/faults.rs"
    );
    assert!(location["lineNumber"].as_u64().unwrap() > 0);
    assert_eq!(
        location["functionName"],
        "cloudrun_observability::app::faults"
    );
    let http = &report["context"]["httpRequest"];
    assert_eq!(http["method"], "GET");
    assert_eq!(http["url"], "/api/faults/error");
    assert_eq!(http["userAgent"], "probe/1.0");
    assert_eq!(http["responseStatusCode"], 500);
    assert_eq!(http["remoteIp"], "127.0.0.1");
    // The request line itself is no second Error Reporting event.
    let request_line = &service.request_lines("/api/faults/error", 1).await[0];
    assert!(request_line.get("@type").is_none());
}

#[tokio::test]
async fn a_panic_is_reported_and_the_service_keeps_serving() {
    let service = spawn_service(&[]);
    let response = service
        .http
        .get(service.url("/api/faults/panic"))
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "internal");

    let reports = service
        .wait_for_entries(1, |entry| entry["errorType"] == "panic")
        .await;
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert_eq!(report["@type"], ERROR_EVENT);
    let message = report["message"].as_str().unwrap();
    assert!(
        message.contains("panicked at crates/cloudrun-observability/src/app/faults.rs"),
        "{message}"
    );
    assert!(message.contains("index out of bounds"), "{message}");
    assert!(
        !message.contains("stack backtrace"),
        "no RUST_BACKTRACE, no backtrace"
    );
    assert_eq!(
        report["context"]["reportLocation"]["filePath"],
        "crates/cloudrun-observability/src/app/faults.rs"
    );
    assert_eq!(report["context"]["httpRequest"]["responseStatusCode"], 500);
    assert_eq!(
        trace_id_of(report),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );

    let next = service.get("/healthz").await;
    assert_eq!(next.status(), 200);
}

#[tokio::test]
async fn with_rust_backtrace_a_panic_carries_its_backtrace() {
    let service = spawn_service(&[("RUST_BACKTRACE", "1")]);
    service.get("/api/faults/panic").await;
    let reports = service
        .wait_for_entries(1, |entry| entry["errorType"] == "panic")
        .await;
    let message = reports[0]["message"].as_str().unwrap();
    assert!(message.contains("stack backtrace"), "{message}");
    // The panicking handler's frame, not the panic machinery's, comes
    // first, and the entry stays small: at most 24 frames.
    assert!(message.contains("app::faults"), "{message}");
    assert!(message.len() < 12 * 1024, "{} bytes", message.len());
}

#[tokio::test]
async fn a_payment_failure_is_logged_once_with_its_cause() {
    let service = spawn_service(&[("PAYMENT_FAILURE_RATE", "1.0")]);
    let response = service
        .post_json(
            "/api/orders",
            &serde_json::json!({"book_id": 3, "quantity": 1}),
        )
        .await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payment_failed");
    assert_eq!(
        body["error"]["message"],
        "payments failed: card declined by the issuer"
    );

    let reports = service
        .wait_for_entries(1, |entry| entry["@type"] == ERROR_EVENT)
        .await;
    assert_eq!(reports.len(), 1, "logged exactly once");
    let report = &reports[0];
    assert_eq!(report["errorType"], "downstream_failure");
    assert_eq!(report["dependency"], "payments");
    let message = report["message"].as_str().unwrap();
    assert!(
        message.starts_with("could not charge the payment: POST http://127.0.0.1:"),
        "{message}"
    );
    assert!(message.ends_with("/internal/payments/charge answered 402 Payment Required: card declined by the issuer (code card_declined)"), "{message}");
    assert_eq!(
        report["context"]["reportLocation"]["filePath"],
        "crates/cloudrun-observability/src/app/orders.rs"
    );
    assert_eq!(report["context"]["httpRequest"]["responseStatusCode"], 502);
}

#[tokio::test]
async fn a_concurrent_burst_yields_exactly_one_well_formed_line_per_request() {
    let service = spawn_service(&[]);
    let requests = (0..100).map(|n| {
        let http = service.http.clone();
        let url = service.url(&format!("/api/books/{}?n={n}", n % 8 + 1));
        tokio::spawn(async move { http.get(url).send().await.unwrap().status() })
    });
    for status in futures::future::join_all(requests).await {
        assert_eq!(status.unwrap(), 200);
    }
    let lines = service
        .wait_for_entries(100, |entry| entry["route"] == "/api/books/{id}")
        .await;
    assert_eq!(lines.len(), 100);
    let urls: HashSet<&str> = lines
        .iter()
        .map(|line| line["httpRequest"]["requestUrl"].as_str().unwrap())
        .collect();
    assert_eq!(urls.len(), 100, "one line per request, none twice");
    // entries() parses every line: an interleaved line would fail here.
    assert!(service.entries().len() > 100);
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let service = spawn_service(&[]);
    service
        .http
        .post(service.url("/api/orders"))
        .header("authorization", "Bearer top-secret-token")
        .header(
            "cookie",
            "sid=0123456789abcdef0123456789abcdef; other=cookie-secret",
        )
        .json(&serde_json::json!({"book_id": 1, "quantity": 1}))
        .send()
        .await
        .unwrap();
    let response = service.get("/api/books").await;
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let session = set_cookie
        .trim_start_matches("sid=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    service.request_lines("/api/books", 1).await;
    service.request_lines("/api/orders", 1).await;
    let output = service.lines().join("\n");
    for secret in [
        "top-secret-token",
        "cookie-secret",
        "0123456789abcdef0123456789abcdef",
        session.as_str(),
    ] {
        assert!(!output.contains(secret), "{secret} leaked into the logs");
    }
}

#[tokio::test]
async fn user_input_cannot_forge_a_log_line() {
    let service = spawn_service(&[]);
    let forged = r#"/api/books/1?q=%0A{"severity":"ERROR","message":"forged"}"#;
    service
        .http
        .get(service.url(forged))
        .header("user-agent", "evil\",\"severity\":\"CRITICAL")
        .send()
        .await
        .unwrap();
    service
        .wait_for_entries(1, |entry| entry["route"] == "/api/books/{id}")
        .await;
    for entry in service.entries() {
        assert_ne!(entry["message"], "forged");
        assert_ne!(entry["severity"], "CRITICAL");
    }
}

#[tokio::test]
async fn pretty_format_prints_human_lines() {
    let service = spawn_service(&[("LOG_FORMAT", "pretty")]);
    service.get("/healthz").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !service
        .lines()
        .iter()
        .any(|line| line.contains("GET /healthz 200"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            service.lines()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(service.lines().iter().all(|line| !line.starts_with('{')));
}

#[tokio::test]
async fn telemetry_off_writes_nothing() {
    let service = spawn_service(&[("TELEMETRY", "off")]);
    let response = service.get("/api/books/1").await;
    assert_eq!(response.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(service.lines().is_empty(), "{:?}", service.lines());
}
