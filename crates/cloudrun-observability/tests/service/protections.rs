//! The service's protections against hostile input (issue #18): read
//! timeouts for a request's head and body, string caps that keep every
//! log entry (the ERROR entry above all) under Cloud Logging's 256 KiB,
//! the client address taken from the `X-Forwarded-For` entry the trusted
//! front end wrote, and credentials redacted from logged URLs however
//! their names are spelled.

use std::net::SocketAddr;
use std::time::Duration;

use crate::helpers::{spawn_service, ServiceProcess};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Cloud Logging's limit on one entry.
const ENTRY_LIMIT: usize = 256 * 1024;

/// Far longer than any timeout the tests configure: the bound only says
/// "the server gave up", never how fast.
const GENEROUS: Duration = Duration::from_secs(15);

/// Writes `sent` on a new connection, then waits (up to [`GENEROUS`]) for
/// the server to close it; what it answered, or `None` when it never
/// closed.
async fn send_and_wait_for_close(addr: SocketAddr, sent: &[u8]) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(sent).await.expect("write");
    let mut received = Vec::new();
    match tokio::time::timeout(GENEROUS, stream.read_to_end(&mut received)).await {
        Ok(_) => Some(String::from_utf8_lossy(&received).into_owned()),
        Err(_) => None,
    }
}

async fn still_serves(service: &ServiceProcess) {
    assert_eq!(service.get("/api/books/1").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let service = spawn_service(&[("HEADER_READ_TIMEOUT_MS", "300")]);
    let answer = send_and_wait_for_close(
        service.addr,
        b"GET /api/books/1 HTTP/1.1\r\nHost: bookshop\r\nX-Slow: ",
    )
    .await;
    let answer = answer.expect("the server closes a connection whose head never ends");
    // hyper closes without answering, or answers 408 first.
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // A connection that sends nothing is closed too.
    let silent = send_and_wait_for_close(service.addr, b"").await;
    assert_eq!(silent.as_deref(), Some(""), "a silent connection is closed");
    // So is a kept-alive connection once idle for as long: the header
    // timeout is also the keep-alive idle timeout.
    let kept_alive = send_and_wait_for_close(
        service.addr,
        b"GET /api/books/1 HTTP/1.1\r\nHost: bookshop\r\n\r\n",
    )
    .await
    .expect("an idle kept-alive connection is closed");
    assert!(kept_alive.starts_with("HTTP/1.1 200"), "{kept_alive}");
    still_serves(&service).await;
}

/// HTTP/2's connection preface and an empty SETTINGS frame: what an h2c
/// client (Cloud Run's front end with `--use-http2`) sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A HEADERS frame on stream 1 whose block never ends: END_STREAM without
/// END_HEADERS, and `:method GET`, `:scheme http`, `:path /` (HPACK's
/// static table) with no `:authority` or CONTINUATION to follow.
const H2_HALF_HEADERS: &[u8] = b"\x00\x00\x03\x01\x01\x00\x00\x00\x01\x82\x86\x84";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_client_that_never_completes_a_request_head_is_disconnected() {
    let service = spawn_service(&[("HEADER_READ_TIMEOUT_MS", "300")]);
    // hyper has no head timeout for HTTP/2: before the fix both
    // connections stayed open as long as the client liked.
    let preface_only = send_and_wait_for_close(service.addr, H2_PREFACE).await;
    assert!(
        preface_only.is_some(),
        "a connection that sent the preface and nothing more stays open"
    );
    let half_headers =
        send_and_wait_for_close(service.addr, &[H2_PREFACE, H2_HALF_HEADERS].concat()).await;
    assert!(
        half_headers.is_some(),
        "a connection whose header block never ends stays open"
    );
    // A real h2c client is still served.
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client
        .get(format!("http://{}/api/books/1", service.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    still_serves(&service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_is_answered_408() {
    let service = spawn_service(&[("BODY_READ_TIMEOUT_MS", "300")]);
    let head = b"POST /api/orders HTTP/1.1\r\nHost: bookshop\r\n\
Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"book_id\": 1";
    let answer = send_and_wait_for_close(service.addr, head)
        .await
        .expect("the server gives up on the body and closes");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body: Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    // The request is logged like any other 4xx.
    let lines = service
        .wait_for_entries(1, |entry| entry["httpRequest"]["status"] == 408)
        .await;
    assert_eq!(lines.len(), 1);
    still_serves(&service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_entry_of_a_request_with_a_huge_user_agent_is_written_whole() {
    let service = spawn_service(&[]);
    // Big enough to push the entry past 256 KiB, small enough for hyper
    // (which refuses heads over about 400 KB).
    let user_agent = format!("huge/{}", "u".repeat(300 * 1024));
    let response = service
        .http
        .get(service.url("/api/faults/error?ua=huge"))
        .header("user-agent", &user_agent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let errors = service
        .wait_for_entries(1, |entry| entry["@type"].as_str().is_some())
        .await;
    assert_eq!(errors.len(), 1, "the ERROR entry is written");
    let error = &errors[0];
    assert_eq!(error["severity"], "ERROR");
    assert_eq!(error["context"]["httpRequest"]["responseStatusCode"], 500);
    let logged = error["context"]["httpRequest"]["userAgent"]
        .as_str()
        .unwrap();
    assert!(logged.starts_with("huge/uuu"), "{}", &logged[..40]);
    assert!(logged.ends_with(" bytes]"), "marked as cut");
    let request = &service.request_lines("/api/faults/error?ua=huge", 1).await[0];
    assert_eq!(request["httpRequest"]["status"], 500);
    // Every line of the service, these two included, is within the limit.
    for line in service.lines() {
        assert!(line.len() < ENTRY_LIMIT, "a line of {} bytes", line.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_address_is_the_entry_the_trusted_front_end_appended() {
    // What Cloud Run's front end passes on when the client forged a header:
    // the client's own value first, the address it saw last.
    let forged = "203.0.113.66, 198.51.100.7";
    let cloud_run = spawn_service(&[]);
    let behind_a_load_balancer = spawn_service(&[("FORWARDED_FOR_TRUSTED_HOPS", "2")]);
    for (service, expected) in [
        (&cloud_run, "198.51.100.7"),
        (&behind_a_load_balancer, "203.0.113.66"),
    ] {
        let response = service
            .http
            .get(service.url("/api/books/1?xff=1"))
            .header("x-forwarded-for", forged)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let line = &service.request_lines("/api/books/1?xff=1", 1).await[0];
        assert_eq!(line["httpRequest"]["remoteIp"], expected, "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_redacted_however_their_names_are_spelled() {
    let service = spawn_service(&[]);
    let url = "/api/books/1?pass%77ord=hunter2;page=2&ACCESS-TOKEN=t0k3n;%53ig=s1g";
    let response = service.get(url).await;
    assert_eq!(response.status(), 200);
    let redacted = "/api/books/1?pass%77ord=REDACTED;page=2&ACCESS-TOKEN=REDACTED;%53ig=REDACTED";
    let lines = service.request_lines(redacted, 1).await;
    assert_eq!(lines.len(), 1, "logged as {redacted}");
    for secret in ["hunter2", "t0k3n", "s1g"] {
        let leaked = service.entries_containing(secret);
        assert!(leaked.is_empty(), "{secret} leaked: {leaked:#?}");
    }
}
