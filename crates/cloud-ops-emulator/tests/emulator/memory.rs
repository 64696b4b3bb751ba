//! Each store, fed hostile shapes through the emulator's own APIs, stays
//! under its byte cap plus a stated margin, measured by the resident memory
//! of the process (issue #18, part 2).
//!
//! The tests of this binary share one process, so the measurement runs in
//! a child: this binary again, running only [`rss_child`] with the store to
//! feed in [`CHILD_ENV`]. The child prints how much its RSS grew.
#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::process::Command;

use cloud_ops_emulator::EmulatorConfig;
use gcloud_sdk::google::api::metric_descriptor::MetricKind;
use gcloud_sdk::google::devtools::cloudtrace::v2::{
    attribute_value, span, AttributeValue, BatchWriteSpansRequest, Span, TruncatableString,
};

use crate::helpers::metrics::{double, request, series};
use crate::helpers::{ts, TestEmulator, PROJECT};

const CHILD_ENV: &str = "EMULATOR_RSS_CHILD";
const MIB: usize = 1024 * 1024;
/// The byte cap of the store under test.
const CAP: usize = 32 * MIB;
/// What may come on top of the cap: the estimates' error, the allocator's
/// retained and fragmented memory, in-flight request buffers (4 MiB
/// bodies, decoded twice), the runtime. Before the fix each store grew to
/// several times `CAP + MARGIN` on these inputs.
const MARGIN: usize = 64 * MIB;

#[test]
fn each_store_stays_under_its_cap_measured_by_rss() {
    let mut over = Vec::new();
    for store in ["metrics", "logs", "traces"] {
        let output = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "memory::rss_child", "--nocapture"])
            .env(CHILD_ENV, store)
            .output()
            .expect("the test binary runs again");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{store}: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let grown: usize = stdout
            .lines()
            .find_map(|l| l.strip_prefix("RSS_GROWTH_BYTES="))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{store}: no measurement in {stdout}"));
        println!("{store}: RSS grew {} MiB", grown / MIB);
        if grown > CAP + MARGIN {
            over.push(format!("{store} grew {} MiB", grown / MIB));
        }
    }
    assert!(
        over.is_empty(),
        "over a {} MiB cap (+{} MiB margin): {}",
        CAP / MIB,
        MARGIN / MIB,
        over.join(", ")
    );
}

/// Not a test on its own: the child process of the test above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by each_store_stays_under_its_cap_measured_by_rss"]
async fn rss_child() {
    let Ok(store) = std::env::var(CHILD_ENV) else {
        return;
    };
    let emu = TestEmulator::start_with(EmulatorConfig {
        max_span_bytes: CAP,
        max_metric_bytes: CAP,
        max_log_bytes: CAP,
        ..EmulatorConfig::default()
    })
    .await;
    let before = rss();
    match store.as_str() {
        "metrics" => long_labelled_series(&emu).await,
        "logs" => dense_json_lines(&emu).await,
        "traces" => spans_full_of_links(&emu).await,
        other => panic!("no store {other}"),
    }
    println!("RSS_GROWTH_BYTES={}", rss().saturating_sub(before));
}

/// Resident bytes of this process.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// 4 000 one-point series, each with 30 labels of 1 024 characters (the
/// most Google allows): about 240 MB held before the fix.
async fn long_labelled_series(emu: &TestEmulator) {
    let mut client = emu.metrics();
    let filler = "v".repeat(1_000);
    for batch in 0..200 {
        let series: Vec<_> = (0..20)
            .map(|n| {
                let labels: HashMap<String, String> = (0..30)
                    .map(|k| (format!("label_{k}"), format!("{batch}-{n}-{filler}")))
                    .collect();
                series(
                    "custom.googleapis.com/hostile",
                    labels,
                    MetricKind::Gauge,
                    None,
                    ts(-30),
                    double(1.0),
                )
            })
            .collect();
        client
            .create_time_series(request(series))
            .await
            .expect("written");
    }
}

/// 128 MiB of log lines whose JSON is a long array of zeros: each 2-byte
/// `0,` is a 32-byte node once parsed, so 64 MiB of lines held about 1 GB.
async fn dense_json_lines(emu: &TestEmulator) {
    let line = format!("{{\"a\":[{}0]}}\n", "0,".repeat(100_000));
    let body = line.repeat(4 * MIB / line.len() - 1);
    let url = format!("http://{}/api/logs", emu.emulator.local_addr());
    let client = reqwest::Client::new();
    for _ in 0..(128 * MIB / body.len()) {
        let response = client
            .post(&url)
            .header("content-type", "application/x-ndjson")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
}

/// 150 spans at Google's limits: 128 links of 32 attributes of 256 bytes.
async fn spans_full_of_links(emu: &TestEmulator) {
    let mut client = emu.trace_writer();
    let value = AttributeValue {
        value: Some(attribute_value::Value::StringValue(TruncatableString {
            value: "x".repeat(256),
            truncated_byte_count: 0,
        })),
    };
    let attributes = span::Attributes {
        attribute_map: (0..32).map(|k| (format!("k{k}"), value.clone())).collect(),
        dropped_attributes_count: 0,
    };
    let link = span::Link {
        trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        span_id: "b7ad6b7169203331".into(),
        attributes: Some(attributes),
        ..span::Link::default()
    };
    for batch in 0..50u64 {
        let spans = (0..3u64)
            .map(|n| {
                let trace = format!("{:032x}", batch * 3 + n + 1);
                let id = format!("{:016x}", batch * 3 + n + 1);
                Span {
                    name: format!("projects/{PROJECT}/traces/{trace}/spans/{id}"),
                    span_id: id,
                    display_name: Some(TruncatableString {
                        value: "hostile".into(),
                        truncated_byte_count: 0,
                    }),
                    start_time: Some(ts(-2)),
                    end_time: Some(ts(-1)),
                    links: Some(span::Links {
                        link: vec![link.clone(); 128],
                        dropped_links_count: 0,
                    }),
                    ..Span::default()
                }
            })
            .collect();
        client
            .batch_write_spans(BatchWriteSpansRequest {
                name: format!("projects/{PROJECT}"),
                spans,
            })
            .await
            .expect("written");
    }
}
