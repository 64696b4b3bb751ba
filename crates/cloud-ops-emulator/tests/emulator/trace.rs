//! Cloud Trace rules T1-T8 and v1 reads, driven over real gRPC with
//! gcloud-sdk's generated clients.

use std::collections::HashMap;

use crate::helpers::{ts, TestEmulator, PROJECT};
use gcloud_sdk::google::devtools::cloudtrace::v1::{
    list_traces_request::ViewType, trace_span::SpanKind as V1Kind, GetTraceRequest,
    ListTracesRequest,
};
use gcloud_sdk::google::devtools::cloudtrace::v2::{
    attribute_value, span, span::time_event, AttributeValue, BatchWriteSpansRequest, Span,
    TruncatableString,
};
use tonic::Code;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn text(value: &str) -> Option<TruncatableString> {
    Some(TruncatableString {
        value: value.into(),
        truncated_byte_count: 0,
    })
}

fn span(trace: &str, id: &str, parent: &str) -> Span {
    Span {
        name: format!("projects/{PROJECT}/traces/{trace}/spans/{id}"),
        span_id: id.into(),
        parent_span_id: parent.into(),
        display_name: text("GET /books"),
        start_time: Some(ts(-10)),
        end_time: Some(ts(-9)),
        span_kind: span::SpanKind::Server as i32,
        ..Span::default()
    }
}

fn batch(spans: Vec<Span>) -> BatchWriteSpansRequest {
    BatchWriteSpansRequest {
        name: format!("projects/{PROJECT}"),
        spans,
    }
}

fn string_attr(value: &str) -> AttributeValue {
    AttributeValue {
        value: Some(attribute_value::Value::StringValue(TruncatableString {
            value: value.into(),
            truncated_byte_count: 0,
        })),
    }
}

async fn write(emu: &TestEmulator, spans: Vec<Span>) -> Result<(), tonic::Status> {
    emu.trace_writer()
        .batch_write_spans(batch(spans))
        .await
        .map(|_| ())
}

async fn expect_invalid(emu: &TestEmulator, spans: Vec<Span>, message: &str) {
    let status = write(emu, spans).await.expect_err("must be rejected");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains(message),
        "message {:?} lacks {message:?}",
        status.message()
    );
}

#[tokio::test]
async fn t1_rejects_a_bad_project_name_and_an_empty_batch() {
    let emu = TestEmulator::start().await;
    let mut request = batch(vec![span(TRACE, "00f067aa0ba902b7", "")]);
    request.name = "project/x".into();
    let status = emu
        .trace_writer()
        .batch_write_spans(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = write(&emu, vec![]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(emu.emulator.store().traces.stats().requests_rejected, 2);
}

#[tokio::test]
async fn t2_rejects_malformed_span_names_and_ids_but_stores_a_repeated_span_twice() {
    let emu = TestEmulator::start().await;
    let short_trace = span("4bf92f3577b34da6a3ce929d0e0e473", "00f067aa0ba902b7", "");
    expect_invalid(&emu, vec![short_trace], "Invalid span name").await;
    let zero_span = span(TRACE, "0000000000000000", "");
    expect_invalid(&emu, vec![zero_span], "Invalid span name").await;
    let mut mismatch = span(TRACE, "00f067aa0ba902b7", "");
    mismatch.span_id = "00f067aa0ba902b8".into();
    expect_invalid(&emu, vec![mismatch], "does not match").await;
    let mut other_project = span(TRACE, "00f067aa0ba902b7", "");
    other_project.name = format!("projects/other/traces/{TRACE}/spans/00f067aa0ba902b7");
    expect_invalid(&emu, vec![other_project], "not to the request's project").await;

    let good = span(TRACE, "00f067aa0ba902b7", "");
    write(&emu, vec![good.clone(), good]).await.unwrap();
    assert_eq!(emu.emulator.store().traces.stats().spans_stored, 2);
}

#[tokio::test]
async fn t3_rejects_an_invalid_parent_id_with_googles_message() {
    let emu = TestEmulator::start().await;
    let bad_parent = span(TRACE, "00f067aa0ba902b7", "xyz");
    let status = write(&emu, vec![bad_parent]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "Invalid parent id!");
    write(
        &emu,
        vec![span(TRACE, "00f067aa0ba902b7", "53995c3f42cd8ad8")],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn t4_rejects_a_missing_display_name_and_truncates_a_long_one() {
    let emu = TestEmulator::start().await;
    let mut unnamed = span(TRACE, "00f067aa0ba902b7", "");
    unnamed.display_name = None;
    let status = write(&emu, vec![unnamed]).await.unwrap_err();
    assert_eq!(status.message(), "Missing span display name!");

    let mut long = span(TRACE, "00f067aa0ba902b7", "");
    long.display_name = text(&"x".repeat(200));
    write(&emu, vec![long]).await.unwrap();
    let stored = &emu.emulator.store().traces.spans()[0].span;
    let name = stored.display_name.as_ref().unwrap();
    assert_eq!((name.value.len(), name.truncated_byte_count), (128, 72));
}

#[tokio::test]
async fn t5_requires_both_times_and_drops_spans_outside_the_window() {
    let emu = TestEmulator::start().await;
    let mut no_end = span(TRACE, "00f067aa0ba902b7", "");
    no_end.end_time = None;
    expect_invalid(&emu, vec![no_end], "end_time is required").await;
    let mut bad_nanos = span(TRACE, "00f067aa0ba902b7", "");
    bad_nanos.start_time = Some(prost_types::Timestamp {
        seconds: i64::MAX,
        nanos: -5,
    });
    expect_invalid(&emu, vec![bad_nanos], "not a valid timestamp").await;

    let mut old = span(TRACE, "00f067aa0ba902b7", "");
    old.start_time = Some(ts(-15 * 86_400));
    old.end_time = Some(ts(-15 * 86_400 + 1));
    let mut future = span(TRACE, "00f067aa0ba902b8", "");
    future.start_time = Some(ts(4 * 86_400));
    future.end_time = Some(ts(4 * 86_400 + 1));
    let fine = span(TRACE, "00f067aa0ba902b9", "");
    write(&emu, vec![old, future, fine]).await.unwrap();
    let stats = emu.emulator.store().traces.stats();
    assert_eq!((stats.spans_stored, stats.spans_out_of_window), (1, 2));
}

#[tokio::test]
async fn t6_t7_limits_truncate_and_count_without_rejecting() {
    let emu = TestEmulator::start().await;
    let mut big = span(TRACE, "00f067aa0ba902b7", "");
    let mut attributes = span::Attributes::default();
    for i in 0..40 {
        attributes
            .attribute_map
            .insert(format!("key{i:02}"), string_attr("v"));
    }
    attributes
        .attribute_map
        .insert("key00".into(), string_attr(&"é".repeat(200)));
    big.attributes = Some(attributes);
    let annotation = |i: usize| span::TimeEvent {
        time: Some(ts(-10)),
        value: Some(time_event::Value::Annotation(time_event::Annotation {
            description: text(&format!("event {i} {}", "d".repeat(300))),
            attributes: None,
        })),
    };
    big.time_events = Some(span::TimeEvents {
        time_event: (0..35).map(annotation).collect(),
        ..Default::default()
    });
    big.links = Some(span::Links {
        link: vec![span::Link::default(); 130],
        dropped_links_count: 0,
    });
    write(&emu, vec![big]).await.unwrap();

    let stored = &emu.emulator.store().traces.spans()[0].span;
    let attributes = stored.attributes.as_ref().unwrap();
    assert_eq!(attributes.attribute_map.len(), 32);
    assert_eq!(attributes.dropped_attributes_count, 8);
    let Some(attribute_value::Value::StringValue(long)) = &attributes.attribute_map["key00"].value
    else {
        panic!("string attribute expected");
    };
    assert_eq!((long.value.len(), long.truncated_byte_count), (256, 144));
    let events = stored.time_events.as_ref().unwrap();
    assert_eq!(events.time_event.len(), 32);
    assert_eq!(events.dropped_annotations_count, 3);
    let links = stored.links.as_ref().unwrap();
    assert_eq!((links.link.len(), links.dropped_links_count), (128, 2));
    assert_eq!(emu.emulator.store().traces.stats().spans_truncated, 1);
}

#[tokio::test]
async fn t8_one_bad_span_fails_the_whole_batch() {
    let emu = TestEmulator::start().await;
    let good = span(TRACE, "00f067aa0ba902b7", "");
    let bad = span("not-a-trace", "00f067aa0ba902b8", "");
    expect_invalid(&emu, vec![good, bad], "spans[1]").await;
    assert_eq!(emu.emulator.store().traces.stats().spans_stored, 0);
}

#[tokio::test]
async fn v1_get_trace_joins_batches_and_converts_like_cloud_trace() {
    let emu = TestEmulator::start().await;
    let mut root = span(TRACE, "00000000000000aa", "");
    let mut attributes = span::Attributes::default();
    attributes
        .attribute_map
        .insert("/http/method".into(), string_attr("GET"));
    attributes.attribute_map.insert(
        "/http/status_code".into(),
        AttributeValue {
            value: Some(attribute_value::Value::IntValue(200)),
        },
    );
    root.attributes = Some(attributes);
    let mut child = span(TRACE, "00000000000000bb", "00000000000000aa");
    child.span_kind = span::SpanKind::Client as i32;
    child.display_name = text("db.query");
    // Written by two "processes" in two batches, the second through CreateSpan.
    write(&emu, vec![root]).await.unwrap();
    emu.trace_writer().create_span(child).await.unwrap();

    let trace = emu
        .trace_reader()
        .get_trace(GetTraceRequest {
            project_id: PROJECT.into(),
            trace_id: TRACE.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(trace.spans.len(), 2);
    let by_id: HashMap<u64, _> = trace.spans.iter().map(|s| (s.span_id, s)).collect();
    let (root, child) = (by_id[&0xaa], by_id[&0xbb]);
    assert_eq!(
        (root.kind, root.parent_span_id),
        (V1Kind::RpcServer as i32, 0)
    );
    assert_eq!(root.labels["/http/method"], "GET");
    assert_eq!(root.labels["/http/status_code"], "200");
    assert_eq!(
        (child.kind, child.parent_span_id),
        (V1Kind::RpcClient as i32, 0xaa)
    );
    assert_eq!(child.name, "db.query");

    let missing = emu
        .trace_reader()
        .get_trace(GetTraceRequest {
            project_id: PROJECT.into(),
            trace_id: "11111111111111111111111111111111".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn v1_list_traces_is_newest_first_with_views_and_pages() {
    let emu = TestEmulator::start().await;
    for (i, age) in [(1u8, 300), (2, 200), (3, 100)] {
        let trace = format!("{i:032x}");
        let mut root = span(&trace, "00000000000000aa", "");
        root.start_time = Some(ts(-age));
        root.end_time = Some(ts(-age + 1));
        let mut child = span(&trace, "00000000000000bb", "00000000000000aa");
        child.start_time = Some(ts(-age));
        child.end_time = Some(ts(-age + 1));
        write(&emu, vec![root, child]).await.unwrap();
    }
    let request = |view: ViewType, page_size, page_token: &str| ListTracesRequest {
        project_id: PROJECT.into(),
        view: view as i32,
        page_size,
        page_token: page_token.into(),
        ..Default::default()
    };
    let mut reader = emu.trace_reader();
    let first = reader
        .list_traces(request(ViewType::Rootspan, 2, ""))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = first.traces.iter().map(|t| t.trace_id.as_str()).collect();
    assert_eq!(ids, [format!("{:032x}", 3), format!("{:032x}", 2)]);
    assert!(first
        .traces
        .iter()
        .all(|t| t.spans.len() == 1 && t.spans[0].parent_span_id == 0));
    let second = reader
        .list_traces(request(ViewType::Complete, 2, &first.next_page_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.traces.len(), 1);
    assert_eq!(second.traces[0].spans.len(), 2);
    assert!(second.next_page_token.is_empty());

    let mut windowed = request(ViewType::Minimal, 0, "");
    windowed.start_time = Some(ts(-250));
    let recent = reader.list_traces(windowed).await.unwrap().into_inner();
    assert_eq!(recent.traces.len(), 2);
    assert!(recent.traces.iter().all(|t| t.spans.is_empty()));
}

#[tokio::test]
async fn status_page_reports_span_counters_over_http1() {
    let emu = TestEmulator::start().await;
    write(&emu, vec![span(TRACE, "00f067aa0ba902b7", "")])
        .await
        .unwrap();
    let base = format!("http://{}", emu.emulator.local_addr());
    let status: serde_json::Value = reqwest::get(format!("{base}/api/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["traces"]["spans_stored"], 1);
    let page = reqwest::get(&base).await.unwrap().text().await.unwrap();
    assert!(page.contains("emulator"));
}

#[tokio::test]
async fn v1_list_traces_applies_cloud_trace_filters() {
    let emu = TestEmulator::start().await;
    let mut post = span(&format!("{:032x}", 7), "00000000000000aa", "");
    post.display_name = text("POST /orders");
    write(&emu, vec![span(TRACE, "00000000000000aa", ""), post])
        .await
        .unwrap();
    let list = |filter: &str| ListTracesRequest {
        project_id: PROJECT.into(),
        filter: filter.into(),
        ..Default::default()
    };
    let mut reader = emu.trace_reader();
    let found = reader
        .list_traces(list("root:POST"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.traces.len(), 1);
    assert_eq!(found.traces[0].trace_id, format!("{:032x}", 7));
    let both = reader
        .list_traces(list("latency:1s"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(both.traces.len(), 2);
    let status = reader.list_traces(list("nonsense")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}
