//! The web console over plain HTTP: the embedded emulator receives every log
//! line of the service it runs with, `POST /api/logs` takes lines from a
//! standalone service and refuses what it must, and pages escape what they show.

use std::time::{Duration, Instant};

use crate::emulator_helpers::TestEmulator;
use crate::helpers::spawn_service;

/// The embedded console's address from the service's start-up line.
fn console_address(lines: &[String]) -> Option<String> {
    lines.iter().find_map(|line| {
        let entry: serde_json::Value = serde_json::from_str(line).ok()?;
        entry["emulator"].as_str().map(str::to_owned)
    })
}

async fn get_text(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("GET");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_console_shows_the_services_own_log_lines() {
    let service = spawn_service(&[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let console = loop {
        if let Some(address) = console_address(&service.lines()) {
            break address;
        }
        assert!(
            Instant::now() < deadline,
            "no emulator address in {:?}",
            service.lines()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let response = service
        .http
        .get(service.url("/api/books/42"))
        .header("user-agent", "console-test/<b>1</b>")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    let page_url = format!("http://{console}/logs?severity=WARNING&q=console-test");
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let (status, page) = get_text(&page_url).await;
        assert_eq!(status, 200);
        if page.contains("class=\"entry\"") {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "the request line never reached the console"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(page.contains("/api/books/42"));
    assert!(
        page.contains("console-test/&lt;b&gt;1&lt;/b&gt;"),
        "the user agent is escaped"
    );
    assert!(!page.contains("<b>1</b>"));
    let (_, status) = get_text(&format!("http://{console}/api/status")).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(
        status["logs"]["entries_stored"].as_u64().unwrap() >= 2,
        "{status}"
    );
    assert_eq!(status["logs"]["lines_lost"], 0);
}

#[tokio::test]
async fn posted_lines_become_entries_and_a_line_that_is_not_json_is_text() {
    let emulator = TestEmulator::start().await;
    let base = format!("http://{}", emulator.emulator.local_addr());
    let body = concat!(
        r#"{"severity":"ERROR","message":"disk on fire","logging.googleapis.com/trace":"projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736"}"#,
        "\n\nnot json at all\n",
        r#"{"severity":"WARNING","message":"#,
        "\n"
    );
    let response = reqwest::Client::new()
        .post(format!("{base}/api/logs"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let accepted: serde_json::Value = response.json().await.unwrap();
    assert_eq!(accepted["accepted"], 3);

    let entries = emulator.emulator.store().logs.entries();
    let severities: Vec<&str> = entries.iter().map(|e| e.severity.as_str()).collect();
    assert_eq!(severities, ["ERROR", "DEFAULT", "DEFAULT"]);
    assert!(entries[1].text_payload && entries[2].text_payload);
    let (_, page) = get_text(&format!("{base}/logs?severity=ERROR")).await;
    assert!(page.contains("disk on fire"));
    assert!(page.contains("href=\"/traces/4bf92f3577b34da6a3ce929d0e0e4736\""));
    assert!(!page.contains("not json at all"));
}

#[tokio::test]
async fn a_ten_megabyte_post_is_refused_with_413_and_a_reason() {
    let emulator = TestEmulator::start().await;
    let base = format!("http://{}", emulator.emulator.local_addr());
    let response = reqwest::Client::new()
        .post(format!("{base}/api/logs"))
        .body("x".repeat(10 * 1024 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let text = response.text().await.unwrap();
    assert!(text.contains("at most"), "{text}");
    assert_eq!(emulator.emulator.store().logs.stats().entries_received, 0);
}

#[tokio::test]
async fn every_page_answers_and_an_unknown_trace_is_404() {
    let emulator = TestEmulator::start().await;
    let base = format!("http://{}", emulator.emulator.local_addr());
    for path in [
        "/",
        "/logs",
        "/traces",
        "/metrics?window=1h",
        "/metrics?window=bogus",
        "/errors",
    ] {
        let (status, page) = get_text(&format!("{base}{path}")).await;
        assert_eq!(status, 200, "{path}");
        assert!(page.starts_with("<!DOCTYPE html>"), "{path}");
    }
    let (status, _) = get_text(&format!("{base}/traces/0123456789abcdef0123456789abcdef")).await;
    assert_eq!(status, 404);
}
