//! Log lines leave the service in batches, from a writer thread, yet none is
//! lost on the ways a process ends that it can see: SIGTERM under load, and a
//! panic followed at once by the end of the process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::spawn_service;

/// Sends requests with unique URLs until one fails (the service stopped
/// listening) or `give_up`; returns the URLs that got a response.
fn client(
    http: reqwest::Client,
    base: String,
    c: usize,
    give_up: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut answered = Vec::new();
        for n in 0.. {
            if give_up.load(Ordering::SeqCst) {
                break;
            }
            let path = format!("/api/books/{}?c={c}&n={n}", (c + n) % 8 + 1);
            match http.get(format!("{base}{path}")).send().await {
                Ok(response) => {
                    assert_eq!(response.status(), 200, "{path}");
                    // The whole response, body included, was received.
                    response.bytes().await.expect("the body");
                    answered.push(path);
                }
                Err(_) => break,
            }
        }
        answered
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_leaves_one_request_line_per_response() {
    let mut service = spawn_service(&[]);
    let base = service.url("");
    let give_up = Arc::new(AtomicBool::new(false));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let clients: Vec<_> = (0..8)
        .map(|c| client(http.clone(), base.clone(), c, Arc::clone(&give_up)))
        .collect();
    // Requests in flight and lines queued right up to the signal.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    service.sigterm();
    service
        .wait_exit(Duration::from_secs(10))
        .expect("exits within 10 s of SIGTERM");
    give_up.store(true, Ordering::SeqCst);
    let mut answered = Vec::new();
    for client in clients {
        answered.extend(client.await.unwrap());
    }
    assert!(
        answered.len() > 200,
        "under load: {} responses",
        answered.len()
    );

    // "stopped" is the last line: once it is read, so is every line before.
    let deadline = Instant::now() + Duration::from_secs(5);
    while service.entries_containing("\"stopped\"").is_empty() {
        assert!(Instant::now() < deadline, "no \"stopped\" line");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut lines_per_url: HashMap<String, usize> = HashMap::new();
    for entry in service.entries_containing("\"httpRequest\"") {
        let url = entry["httpRequest"]["requestUrl"]
            .as_str()
            .unwrap()
            .to_owned();
        *lines_per_url.entry(url).or_default() += 1;
    }
    for url in &answered {
        assert_eq!(
            lines_per_url.get(url),
            Some(&1),
            "one request line for {url}"
        );
    }
    assert_eq!(
        lines_per_url.values().sum::<usize>(),
        answered.len(),
        "a line for each response the clients received, and no other"
    );
    let stopped = &service.entries_containing("\"stopped\"")[0];
    eprintln!(
        "{} responses, {} request lines; the log queue held at most {} lines",
        answered.len(),
        lines_per_url.len(),
        stopped["logMaxQueuedLines"]
    );
}

#[tokio::test]
async fn a_panic_entry_reaches_stdout_even_when_the_process_dies_right_after() {
    let mut service = spawn_service(&[]);
    for _ in 0..5 {
        service.get("/api/books/1").await;
    }
    let response = service.get("/api/faults/panic").await;
    assert_eq!(response.status(), 500);
    // Killed the moment the answer is in: nothing in the process runs after
    // SIGKILL, so the entry was on stdout before the 500 left.
    service.sigkill();
    let deadline = Instant::now() + Duration::from_secs(5);
    let panic_entries = |service: &crate::helpers::ServiceProcess| -> Vec<Value> {
        service
            .entries_containing("\"panic\"")
            .into_iter()
            .filter(|entry| entry["errorType"] == "panic")
            .collect()
    };
    while panic_entries(&service).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the panic's ERROR entry never reached stdout: {:#?}",
            service.lines()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let entry = &panic_entries(&service)[0];
    assert_eq!(entry["severity"], "ERROR");
    assert_eq!(
        entry["@type"],
        "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
    );
}
