//! A pathological Cloud Trace v1 `ListTraces` beside a steady
//! `BatchWriteSpans` stream: the read must not hold the writes up, and must
//! stop when its client's deadline passes (issue #18, part 3, for traces).

use std::collections::HashMap;

use cloud_ops_emulator::trace::store::StoredSpan;
use gcloud_sdk::google::devtools::cloudtrace::v1::ListTracesRequest;
use gcloud_sdk::google::devtools::cloudtrace::v2::{
    attribute_value, span, AttributeValue, BatchWriteSpansRequest, Span, TruncatableString,
};

use crate::helpers::contention::{assert_stops_at_deadline, read_beside_writes};
use crate::helpers::{ts, TestEmulator, PROJECT};

const SPANS: usize = 60_000;
const SPANS_PER_TRACE: usize = 10;
const ATTRIBUTES: usize = 24;

fn text(value: String) -> Option<TruncatableString> {
    Some(TruncatableString {
        value,
        truncated_byte_count: 0,
    })
}

/// A span of trace `trace` with id `id` and `attributes`.
fn stored(trace: usize, id: usize, attributes: &HashMap<String, AttributeValue>) -> StoredSpan {
    let trace_id = format!("{:032x}", trace + 1);
    let span_id = format!("{:016x}", id + 1);
    StoredSpan {
        project: PROJECT.into(),
        span: Span {
            name: format!("projects/{PROJECT}/traces/{trace_id}/spans/{span_id}"),
            span_id,
            display_name: text(format!("GET /books/{id}")),
            start_time: Some(ts(-2)),
            end_time: Some(ts(-1)),
            attributes: Some(span::Attributes {
                attribute_map: attributes.clone(),
                dropped_attributes_count: 0,
            }),
            ..Span::default()
        },
        trace_id,
    }
}

/// `SPANS` spans of `ATTRIBUTES` attributes each, written straight into
/// the store (through gRPC it would take the test longer than the read).
fn crowd(emu: &TestEmulator) {
    let attributes: HashMap<String, AttributeValue> = (0..ATTRIBUTES)
        .map(|n| {
            let value = AttributeValue {
                value: Some(attribute_value::Value::StringValue(TruncatableString {
                    value: format!("value of attribute {n}"),
                    truncated_byte_count: 0,
                })),
            };
            (format!("attribute.{n}"), value)
        })
        .collect();
    let store = emu.emulator.store().traces.clone();
    for chunk in (0..SPANS).collect::<Vec<_>>().chunks(1_000) {
        let spans = chunk
            .iter()
            .map(|n| stored(n / SPANS_PER_TRACE, *n, &attributes))
            .collect();
        store.insert_batch(spans, 0, 0);
    }
    assert_eq!(store.stats().spans_stored, SPANS as u64);
}

/// A read whose filter matches no trace, after converting every one of
/// them: seconds of work.
fn slow_read() -> ListTracesRequest {
    ListTracesRequest {
        project_id: PROJECT.into(),
        filter: "+root:nowhere attribute.3:value".into(),
        page_size: 10,
        ..ListTracesRequest::default()
    }
}

/// One span a write, ids from `n`.
fn write(n: usize) -> BatchWriteSpansRequest {
    let trace_id = format!("{:032x}", 1u128 << 100 | n as u128);
    let span_id = format!("{:016x}", n + 1);
    BatchWriteSpansRequest {
        name: format!("projects/{PROJECT}"),
        spans: vec![Span {
            name: format!("projects/{PROJECT}/traces/{trace_id}/spans/{span_id}"),
            span_id,
            display_name: text("steady".into()),
            start_time: Some(ts(-2)),
            end_time: Some(ts(-1)),
            ..Span::default()
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_writes_are_not_held_up_by_a_slow_list_traces() {
    let emu = TestEmulator::start().await;
    crowd(&emu);

    let mut reader = emu.trace_reader();
    let read = async move {
        let answer = reader.list_traces(slow_read()).await;
        answer.map(|r| r.into_inner().traces.len())
    };
    let writer = emu.trace_writer();
    let steady_write = |n| {
        let mut writer = writer.clone();
        async move {
            writer
                .batch_write_spans(write(n))
                .await
                .expect("the write succeeds");
        }
    };
    let (answer, beside) = read_beside_writes(read, steady_write).await;
    assert_eq!(answer.expect("the read succeeds"), 0);
    // Before the fix a write waited while the read copied every span under
    // the store's lock.
    beside.assert_writes_were_not_held_up();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_traces_stops_when_its_deadline_passes() {
    let emu = TestEmulator::start().await;
    crowd(&emu);

    // The status page says when the emulator stopped a read.
    let status_page = format!("http://{}/api/status", emu.emulator.local_addr());
    let reads_timed_out = async || {
        let status: serde_json::Value = reqwest::get(&status_page)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        status["traces"]["reads_timed_out"].as_u64().unwrap_or(0)
    };
    assert_stops_at_deadline(
        slow_read(),
        async |read| emu.trace_reader().list_traces(read).await,
        reads_timed_out,
    )
    .await;
}
