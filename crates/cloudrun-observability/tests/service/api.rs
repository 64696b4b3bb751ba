//! The bookshop API over real HTTP: routes, validation, sessions, fault
//! routes and graceful shutdown.

use std::time::Duration;

use crate::helpers::spawn_service;
use serde_json::{json, Value};

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON error body");
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    (status, body["error"].clone())
}

#[tokio::test]
async fn root_health_and_books_answer_json() {
    let service = spawn_service(&[("K_SERVICE", "frontend"), ("K_REVISION", "frontend-00042")]);
    let root: Value = service.get("/").await.json().await.unwrap();
    assert_eq!(root["service"], "frontend");
    assert_eq!(root["revision"], "frontend-00042");
    assert_eq!(root["version"], env!("CARGO_PKG_VERSION"));

    let health = service.get("/healthz").await;
    assert_eq!(health.status(), 200);

    let books: Value = service.get("/api/books").await.json().await.unwrap();
    assert_eq!(books["books"].as_array().unwrap().len(), 8);
    let book: Value = service.get("/api/books/4").await.json().await.unwrap();
    assert_eq!(book["title"], "Designing Data-Intensive Applications");

    for missing in ["/api/books/999", "/api/books/abc", "/api/books/-1"] {
        let (status, error) = error_of(service.get(missing).await).await;
        assert_eq!(status, 404, "{missing}");
        assert_eq!(error["code"], "not_found");
    }
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_get_json_errors() {
    let service = spawn_service(&[]);
    let (status, error) = error_of(service.get("/../../etc/passwd").await).await;
    assert_eq!(status, 404);
    assert_eq!(error["code"], "not_found");
    let (status, error) = error_of(
        service
            .http
            .delete(service.url("/api/books"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 405);
    assert_eq!(error["code"], "method_not_allowed");
}

#[tokio::test]
async fn an_order_goes_through_inventory_and_payments() {
    let service = spawn_service(&[]);
    let response = service
        .post_json("/api/orders", &json!({"book_id": 3, "quantity": 2}))
        .await;
    assert_eq!(response.status(), 201);
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["total_cents"], 2 * 5299);
    assert!(order["reservation_id"]
        .as_str()
        .unwrap()
        .starts_with("res_"));
    assert!(order["payment_id"].as_str().unwrap().starts_with("pay_"));
    // The downstream calls were real HTTP requests, carrying the trace.
    let order_line = &service.request_lines("/api/orders", 1).await[0];
    let trace = crate::helpers::trace_id_of(order_line).unwrap().to_owned();
    for path in ["/internal/inventory/reserve", "/internal/payments/charge"] {
        let line = &service.request_lines(path, 1).await[0];
        assert_eq!(
            crate::helpers::trace_id_of(line),
            Some(trace.as_str()),
            "{path}"
        );
    }
}

#[tokio::test]
async fn an_order_for_more_than_the_stock_is_a_conflict() {
    let service = spawn_service(&[]);
    // Book 8 has 3 copies.
    let (status, error) = error_of(
        service
            .post_json("/api/orders", &json!({"book_id": 8, "quantity": 5}))
            .await,
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(error["code"], "conflict");
}

#[tokio::test]
async fn bad_order_bodies_get_clear_client_errors() {
    let service = spawn_service(&[]);
    let post = |body: Vec<u8>, content_type: &'static str| {
        service
            .http
            .post(service.url("/api/orders"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let json = "application/json";
    let cases: Vec<(Vec<u8>, &str, u16, Option<&str>)> = vec![
        (b"not json".to_vec(), json, 400, None),
        (b"{\"book_id\": 1,".to_vec(), json, 400, None),
        (vec![0xff, 0xfe, 0x00], json, 400, None),
        (
            b"{\"book_id\": \"one\", \"quantity\": 1}".to_vec(),
            json,
            422,
            Some("book_id"),
        ),
        (b"{\"book_id\": 1}".to_vec(), json, 422, Some("quantity")),
        (b"{\"quantity\": 1}".to_vec(), json, 422, Some("book_id")),
        (
            b"{\"book_id\": 1, \"quantity\": -1}".to_vec(),
            json,
            422,
            Some("quantity"),
        ),
        (
            b"{\"book_id\": 1, \"quantity\": 0}".to_vec(),
            json,
            422,
            Some("quantity"),
        ),
        (
            b"{\"book_id\": 1, \"quantity\": 1.5}".to_vec(),
            json,
            422,
            Some("quantity"),
        ),
        (
            b"{\"book_id\": 99, \"quantity\": 1}".to_vec(),
            json,
            422,
            Some("book_id"),
        ),
        (
            b"{\"book_id\": 1, \"quantity\": 1, \"coupon\": \"x\"}".to_vec(),
            json,
            422,
            Some("coupon"),
        ),
        (b"[1, 2]".to_vec(), json, 422, Some("body")),
        ("[".repeat(10_000).into_bytes(), json, 422, Some("body")),
        (
            format!("{{\"book_id\": {}", "[".repeat(10_000)).into_bytes(),
            json,
            422,
            Some("book_id"),
        ),
        (
            b"{\"book_id\": 1, \"quantity\": 1}".to_vec(),
            "text/plain",
            415,
            None,
        ),
        (vec![b' '; 1024 * 1024], json, 413, None),
    ];
    for (body, content_type, expected, field) in cases {
        let preview = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        let (status, error) = error_of(post(body, content_type).await.unwrap()).await;
        assert_eq!(status, expected, "{preview}: {error}");
        if let Some(field) = field {
            assert_eq!(error["field"], field, "{preview}: {error}");
            assert!(
                error["message"].as_str().unwrap().contains(field),
                "{error}"
            );
        }
    }
    // Nothing above panicked.
    assert!(!service
        .entries()
        .iter()
        .any(|entry| entry["errorType"] == "panic"));
}

#[tokio::test]
async fn the_slow_route_sleeps_and_refuses_too_long_a_wait() {
    let service = spawn_service(&[]);
    let started = std::time::Instant::now();
    let response = service.get("/api/faults/slow?ms=300").await;
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let (status, error) = error_of(service.get("/api/faults/slow?ms=10001").await).await;
    assert_eq!(status, 400);
    assert_eq!(error["field"], "ms");
    let (status, _) = error_of(service.get("/api/faults/slow?ms=soon").await).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn fault_routes_are_off_on_cloud_run_unless_enabled() {
    let on_run = spawn_service(&[("K_SERVICE", "frontend")]);
    for path in [
        "/api/faults/error",
        "/api/faults/panic",
        "/api/faults/slow?ms=1",
    ] {
        let response = on_run.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    let enabled = spawn_service(&[("K_SERVICE", "frontend"), ("ENABLE_FAULT_ROUTES", "true")]);
    let response = enabled.get("/api/faults/error").await;
    assert_eq!(response.status(), 500);
}

#[tokio::test]
async fn a_visitor_gets_one_session_cookie_and_probes_get_none() {
    let service = spawn_service(&[("K_SERVICE", "frontend")]);
    let first = service.get("/api/books").await;
    let cookie = first.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("sid="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    let sid = cookie.split(';').next().unwrap().to_owned();
    let again = service
        .http
        .get(service.url("/api/books"))
        .header("cookie", &sid)
        .send()
        .await
        .unwrap();
    assert!(again.headers().get("set-cookie").is_none());

    let probe = service.get("/healthz").await;
    assert!(probe.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_promptly() {
    let mut service = spawn_service(&[]);
    let slow = {
        let http = service.http.clone();
        let url = service.url("/api/faults/slow?ms=1500");
        tokio::spawn(async move { http.get(url).send().await.map(|r| r.status()) })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    service.sigterm();
    let status = slow
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(status, 200);
    let took = service
        .wait_exit(Duration::from_secs(10))
        .expect("exits within 10 s");
    assert!(took < Duration::from_secs(10));
    let messages: Vec<String> = service
        .entries()
        .iter()
        .filter_map(|entry| entry["message"].as_str().map(str::to_owned))
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("draining")),
        "{messages:?}"
    );
    assert_eq!(messages.last().map(String::as_str), Some("stopped"));
}

#[tokio::test]
async fn sigterm_does_not_wait_forever_for_a_slow_request() {
    let mut service = spawn_service(&[]);
    let http = service.http.clone();
    let url = service.url("/api/faults/slow?ms=10000");
    let _slow = tokio::spawn(async move { http.get(url).send().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    service.sigterm();
    let took = service
        .wait_exit(Duration::from_secs(10))
        .expect("exits within 10 s");
    assert!(took < Duration::from_secs(9), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_project_the_service_embeds_an_emulator_and_says_where() {
    let mut service = spawn_service(&[("OTEL_BSP_SCHEDULE_DELAY", "100")]);
    let line = service
        .wait_for_entries(1, |entry| entry["emulator"].is_string())
        .await
        .pop()
        .expect("a line naming the embedded emulator");
    let emulator = line["emulator"].as_str().unwrap().to_owned();
    assert!(line["message"]
        .as_str()
        .unwrap()
        .contains(&format!("http://{emulator}/")));
    assert!(
        emulator.starts_with("127.0.0.1:"),
        "loopback only: {emulator}"
    );
    assert_eq!(service.get("/api/books/1").await.status(), 200);
    let status_url = format!("http://{emulator}/api/status");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status: Value = reqwest::get(&status_url)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["traces"]["spans_stored"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no span reached the embedded emulator: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    service.sigterm();
    assert!(service.wait_exit(Duration::from_secs(10)).is_some());
}
