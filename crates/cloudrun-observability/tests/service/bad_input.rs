//! Hostile and broken input to the service, over real sockets (raw bytes
//! where an HTTP client would tidy the request up): malformed, huge and
//! deeply nested JSON, invalid UTF-8 in body, path and query, path
//! traversal, hostile headers and garbage trace headers. Each gets a clear
//! 4xx with a JSON body saying what is wrong, or, for what hyper refuses
//! before the service sees it, hyper's own 4xx, after which the service
//! still serves. Nothing panics, and memory stays put.

use std::net::SocketAddr;
use std::time::Duration;

use crate::helpers::{spawn_service, trace_id_of, ServiceProcess};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// An answer read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

/// Sends `request` on a new connection and reads the answer until the
/// server closes; `None` when it closed without answering.
async fn raw(addr: SocketAddr, request: Vec<u8>) -> Option<Answer> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.split();
    // The server may answer (and close) before reading everything.
    let write = async {
        let _ = writer.write_all(&request).await;
    };
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), reader.read_to_end(&mut received));
    let ((), _) = tokio::join!(write, read);
    let text = String::from_utf8_lossy(&received).into_owned();
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Some(Answer { status, body })
}

/// `GET target` with `headers` (raw lines without CRLF), on a connection
/// the server closes after answering.
fn get(target: &[u8], headers: &[&[u8]]) -> Vec<u8> {
    let mut request = b"GET ".to_vec();
    request.extend_from_slice(target);
    request.extend_from_slice(b" HTTP/1.1\r\nHost: bookshop\r\nConnection: close\r\n");
    for header in headers {
        request.extend_from_slice(header);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    request
}

/// A JSON error body: `{"error": {"code", "message"}}`; its code.
fn error_code(answer: &Answer) -> String {
    let body: Value = serde_json::from_str(&answer.body)
        .unwrap_or_else(|error| panic!("not a JSON body ({error}): {answer:?}"));
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "a message says what is wrong: {body}");
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code: {body}"))
        .to_owned()
}

/// The service answers normally.
async fn still_serves(service: &ServiceProcess, after: &str) {
    let response = service.get("/api/books/1").await;
    assert_eq!(response.status(), 200, "after {after}");
}

/// Nothing panicked: no Error Reporting entry of a panic, no panic text.
fn assert_no_panic(service: &ServiceProcess) {
    let panics = service.entries_containing("panic");
    assert!(panics.is_empty(), "{panics:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_traversal_and_invalid_utf8_in_paths_and_queries_get_json_4xx() {
    let service = spawn_service(&[]);
    let long_id = format!("/api/books/{}", "1".repeat(60_000));
    let cases: Vec<(&[u8], u16, &str)> = vec![
        (b"/api/books/..%2f..%2fetc%2fpasswd", 404, "not_found"),
        (b"/../../etc/passwd", 404, "not_found"),
        (b"/api/books/../../../etc/passwd", 404, "not_found"),
        (b"/%2e%2e/%2e%2e/etc/passwd", 404, "not_found"),
        (
            b"/api/books/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
            404,
            "not_found",
        ),
        (
            b"/api/books/%252e%252e%252fetc%252fpasswd",
            404,
            "not_found",
        ),
        (b"/api/books/..%5c..%5cwindows%5cwin.ini", 404, "not_found"),
        (b"/api/books/..;/..;/etc/passwd", 404, "not_found"),
        (b"//etc/passwd", 404, "not_found"),
        (b"/api/books/%00", 404, "not_found"),
        (b"/api/books/1%00.json", 404, "not_found"),
        (long_id.as_bytes(), 404, "not_found"),
        // Invalid UTF-8, percent-encoded.
        (b"/api/books/%FF%FE", 400, "bad_request"),
        (b"/%FF%FE/%C0%AF", 404, "not_found"),
        (b"/api/faults/slow?ms=%FF", 400, "bad_request"),
        (b"/api/faults/slow?ms=1&ms=2", 400, "bad_request"),
        (b"/api/faults/slow?ms=-1", 400, "bad_request"),
        (
            b"/api/faults/slow?ms=99999999999999999999999",
            400,
            "bad_request",
        ),
    ];
    for (target, status, code) in cases {
        let shown = String::from_utf8_lossy(&target[..target.len().min(60)]).into_owned();
        let answer = raw(service.addr, get(target, &[]))
            .await
            .unwrap_or_else(|| panic!("{shown}: no answer"));
        assert_eq!(answer.status, status, "{shown}: {answer:?}");
        assert_eq!(error_code(&answer), code, "{shown}");
        assert!(!answer.body.contains("root:"), "{shown}: {answer:?}");
    }
    // A query the route does not read is ignored, invalid UTF-8 or not.
    let answer = raw(service.addr, get(b"/api/books/1?%FF=%FE", &[]))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");

    // Bytes no URI may hold, and a URI longer than hyper takes: refused by
    // hyper before routing, and the service serves on.
    let long_uri = format!("/api/books/{}", "9".repeat(100_000));
    let refused: Vec<&[u8]> = vec![
        b"/api/books/\xff\xfe",
        b"/api/books/1\x01",
        b"/api/books/1\x7f",
        long_uri.as_bytes(),
    ];
    for target in refused {
        let shown = String::from_utf8_lossy(&target[..target.len().min(60)]).into_owned();
        let answer = raw(service.addr, get(target, &[]))
            .await
            .unwrap_or_else(|| panic!("{shown}: no answer"));
        assert!([400, 414].contains(&answer.status), "{shown}: {answer:?}");
        still_serves(&service, &shown).await;
    }
    assert_no_panic(&service);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_headers_are_refused_by_hyper_or_served_and_never_hurt_the_service() {
    let service = spawn_service(&[]);
    let rss_before = service.rss_kib();

    // Refused before the service sees them: hyper's 400 or 431.
    let huge = format!("User-Agent: {}", "a".repeat(1024 * 1024));
    let many: Vec<String> = (0..5_000).map(|n| format!("X-Header-{n}: {n}")).collect();
    let many: Vec<&[u8]> = many.iter().map(|h| h.as_bytes()).collect();
    let refused: Vec<(&str, Vec<u8>, &[u16])> = vec![
        (
            "a 1 MiB header",
            get(b"/api/books/1", &[huge.as_bytes()]),
            &[431],
        ),
        ("5 000 headers", get(b"/api/books/1", &many), &[431]),
        (
            "a control character",
            get(b"/api/books/1", &[b"X-Test: a\x01b"]),
            &[400],
        ),
        (
            "a bare CR",
            get(b"/api/books/1", &[b"X-Test: a\rInjected: b"]),
            &[400],
        ),
        ("a NUL", get(b"/api/books/1", &[b"X-Test: a\x00b"]), &[400]),
        (
            "a line without a colon",
            get(b"/api/books/1", &[b"Garbage"]),
            &[400],
        ),
        (
            "a space before the colon",
            get(b"/api/books/1", &[b"X-Test : b"]),
            &[400],
        ),
        (
            "a negative Content-Length",
            get(b"/api/books/1", &[b"Content-Length: -1"]),
            &[400],
        ),
        (
            "two different Content-Lengths",
            get(
                b"/api/books/1",
                &[b"Content-Length: 1", b"Content-Length: 2"],
            ),
            &[400],
        ),
        (
            "an unknown Transfer-Encoding",
            get(b"/api/books/1", &[b"Transfer-Encoding: gzip"]),
            &[400],
        ),
    ];
    for (what, request, statuses) in refused {
        let answer = raw(service.addr, request).await.expect(what);
        assert!(statuses.contains(&answer.status), "{what}: {answer:?}");
        still_serves(&service, what).await;
    }

    // Served: big but within hyper's limits, non-ASCII, 90 headers. The
    // request line logs them without breaking the JSON line.
    let big = format!("User-Agent: big/{}", "b".repeat(32 * 1024));
    let ninety: Vec<String> = (0..90).map(|n| format!("X-Header-{n}: {n}")).collect();
    let ninety: Vec<&[u8]> = ninety.iter().map(|h| h.as_bytes()).collect();
    let served: Vec<(&str, Vec<u8>)> = vec![
        (
            "a 32 KiB user agent",
            get(b"/api/books/1?h=1", &[big.as_bytes()]),
        ),
        (
            "obs-text in the user agent",
            get(b"/api/books/1?h=2", &[b"User-Agent: caf\xe9 \xff\xfe"]),
        ),
        ("90 headers", get(b"/api/books/1?h=3", &ninety)),
        (
            "a forged X-Forwarded-For",
            get(
                b"/api/books/1?h=4",
                &[b"X-Forwarded-For: <script>, 999.1.1.1"],
            ),
        ),
    ];
    for (what, request) in served {
        let answer = raw(service.addr, request).await.expect(what);
        assert_eq!(answer.status, 200, "{what}: {answer:?}");
    }
    for n in 1..=4 {
        let url = format!("/api/books/1?h={n}");
        assert_eq!(service.request_lines(&url, 1).await.len(), 1, "{url}");
    }
    let big_line = &service.request_lines("/api/books/1?h=1", 1).await[0];
    assert!(big_line["httpRequest"]["userAgent"]
        .as_str()
        .unwrap()
        .starts_with("big/bbbb"));
    let forwarded = &service.request_lines("/api/books/1?h=4", 1).await[0];
    assert_eq!(
        forwarded["httpRequest"]["remoteIp"], "127.0.0.1",
        "a first hop that is not an IP is ignored"
    );

    assert_no_panic(&service);
    let growth = service.rss_kib().saturating_sub(rss_before);
    assert!(growth < 64 * 1024, "RSS grew by {growth} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_garbage_trace_headers_start_a_new_valid_trace() {
    let service = spawn_service(&[]);
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let huge_zeros = "0".repeat(60 * 1024);
    let huge_state = format!("congo={}", "t".repeat(60 * 1024));
    let many_states = (0..200)
        .map(|n| format!("k{n}=v{n}"))
        .collect::<Vec<_>>()
        .join(",");
    let long_flags = format!(
        "105445aa7843bc8bf206b12000100000/1;o={}",
        "1".repeat(10_000)
    );
    let cases: Vec<Vec<(&str, &[u8])>> = vec![
        vec![("traceparent", huge_zeros.as_bytes())],
        vec![(
            "traceparent",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )],
        vec![(
            "traceparent",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        )],
        vec![(
            "traceparent",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        )],
        vec![(
            "traceparent",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
        )],
        vec![(
            "traceparent",
            b"00-\xff\xfe92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )],
        vec![("traceparent", b"-----")],
        vec![(
            "x-cloud-trace-context",
            b"105445aa7843bc8bf206b12000100000/18446744073709551616;o=1",
        )],
        vec![("x-cloud-trace-context", b";o=1")],
        vec![("x-cloud-trace-context", b"/;o=1")],
        vec![("x-cloud-trace-context", long_flags.as_bytes())],
        vec![("x-cloud-trace-context", b"\xe9\xe9\xe9/1;o=1")],
        vec![
            ("traceparent", valid.as_bytes()),
            ("tracestate", huge_state.as_bytes()),
        ],
        vec![
            ("traceparent", valid.as_bytes()),
            ("tracestate", many_states.as_bytes()),
        ],
        vec![
            ("traceparent", b"garbage"),
            ("x-cloud-trace-context", b"garbage"),
        ],
    ];
    for (index, headers) in cases.iter().enumerate() {
        let url = format!("/api/books/1?trace_case={index}");
        let mut request = service.http.get(service.url(&url));
        for (name, value) in headers {
            request = request.header(*name, http::HeaderValue::from_bytes(value).unwrap());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "case {index}");
        let line = &service.request_lines(&url, 1).await[0];
        let trace = trace_id_of(line).unwrap_or_else(|| panic!("case {index}: {line}"));
        assert!(
            trace.len() == 32
                && trace.bytes().all(|b| b.is_ascii_hexdigit())
                && trace != "00000000000000000000000000000000",
            "case {index}: {trace}"
        );
    }
    // The valid traceparent is continued whatever its tracestate.
    for index in [12, 13] {
        let url = format!("/api/books/1?trace_case={index}");
        let line = &service.request_lines(&url, 1).await[0];
        assert_eq!(trace_id_of(line), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    }
    assert_no_panic(&service);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_json_4xx_naming_the_problem() {
    let service = spawn_service(&[]);
    let rss_before = service.rss_kib();
    let order = br#"{"book_id": 1, "quantity": 1}"#;
    let padded = |size: usize| {
        let mut body = order.to_vec();
        body.resize(size, b' ');
        body
    };
    let mut deep_object = br#"{"book_id": 1, "quantity": 1, "x": "#.to_vec();
    deep_object.extend(br#"{"a": "#.repeat(10_000));
    let mut bad_utf8_string = br#"{"book_id": ""#.to_vec();
    bad_utf8_string.extend([0xff, 0xfe]);
    bad_utf8_string.extend(br#"", "quantity": 1}"#);
    let mut trailing_byte = order.to_vec();
    trailing_byte.push(0xff);
    let utf16: Vec<u8> = String::from_utf8_lossy(order)
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let json = "application/json";
    // (what, body, content type, status, code, field)
    type Case<'a> = (&'a str, Vec<u8>, &'a str, u16, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "a body of 64 KiB + 1",
            padded(64 * 1024 + 1),
            json,
            413,
            "payload_too_large",
            None,
        ),
        (
            "a body of 10 MB",
            padded(10 * 1024 * 1024),
            json,
            413,
            "payload_too_large",
            None,
        ),
        (
            "100 000 [",
            b"[".repeat(100_000),
            json,
            413,
            "payload_too_large",
            None,
        ),
        (
            "60 000 [",
            b"[".repeat(60_000),
            json,
            422,
            "invalid_field",
            Some("body"),
        ),
        (
            "60 000 [ in a field",
            [&br#"{"book_id": "#[..], &b"[".repeat(60_000)].concat(),
            json,
            422,
            "invalid_field",
            Some("book_id"),
        ),
        (
            "10 000 nested objects",
            deep_object,
            json,
            422,
            "invalid_field",
            Some("x"),
        ),
        (
            "invalid UTF-8 in a string",
            bad_utf8_string,
            json,
            400,
            "bad_request",
            None,
        ),
        (
            "a byte after the JSON",
            trailing_byte,
            json,
            400,
            "bad_request",
            None,
        ),
        (
            "UTF-16",
            utf16,
            "application/json; charset=utf-16",
            400,
            "bad_request",
            None,
        ),
        ("an empty body", Vec::new(), json, 400, "bad_request", None),
        (
            "null",
            b"null".to_vec(),
            json,
            422,
            "invalid_field",
            Some("body"),
        ),
        (
            "a duplicated field",
            br#"{"book_id": 1, "book_id": 2, "quantity": 1}"#.to_vec(),
            json,
            422,
            "invalid_field",
            Some("book_id"),
        ),
        (
            "a quantity past u64",
            br#"{"book_id": 1, "quantity": 18446744073709551616}"#.to_vec(),
            json,
            422,
            "invalid_field",
            Some("quantity"),
        ),
        (
            "a number past f64",
            br#"{"book_id": 1e400, "quantity": 1}"#.to_vec(),
            json,
            400,
            "bad_request",
            None,
        ),
        (
            "no content type",
            order.to_vec(),
            "",
            415,
            "unsupported_media_type",
            None,
        ),
    ];
    for (what, body, content_type, status, code, field) in cases {
        let mut request = service.http.post(service.url("/api/orders")).body(body);
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        let response = match request.send().await {
            Ok(response) => response,
            // hyper answers 413 from the Content-Length alone and closes
            // the connection without reading 10 MB: the client, still
            // writing, may meet the closed socket before reading the answer.
            Err(error) if what == "a body of 10 MB" && error.is_request() => {
                still_serves(&service, what).await;
                continue;
            }
            Err(error) => panic!("{what}: {error:?}"),
        };
        let answer = Answer {
            status: response.status().as_u16(),
            body: response.text().await.unwrap(),
        };
        assert_eq!(answer.status, status, "{what}: {answer:?}");
        assert_eq!(error_code(&answer), code, "{what}");
        if let Some(field) = field {
            let body: Value = serde_json::from_str(&answer.body).unwrap();
            assert_eq!(body["error"]["field"], field, "{what}: {body}");
        }
    }
    // Exactly the limit is accepted.
    let response = service
        .http
        .post(service.url("/api/orders"))
        .header("content-type", json)
        .body(padded(64 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    // 10 MB without a Content-Length (chunked): cut off at the limit.
    let mut chunked = b"POST /api/orders HTTP/1.1\r\nHost: bookshop\r\nConnection: close\r\n\
Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    let chunk = [b"10000\r\n".as_slice(), &[b' '; 0x10000], b"\r\n"].concat();
    for _ in 0..160 {
        chunked.extend_from_slice(&chunk);
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = raw(service.addr, chunked).await.expect("an answer");
    assert_eq!(answer.status, 413, "{answer:?}");
    // A chunked body's answer is itself chunked: the JSON is inside.
    assert!(answer.body.contains("payload_too_large"), "{answer:?}");

    still_serves(&service, "the bodies").await;
    assert_no_panic(&service);
    let growth = service.rss_kib().saturating_sub(rss_before);
    assert!(growth < 64 * 1024, "RSS grew by {growth} KiB");
}
