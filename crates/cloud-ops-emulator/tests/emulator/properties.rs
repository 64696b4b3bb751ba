//! Property tests (this project's fuzzing: `cargo fuzz` needs a nightly
//! toolchain, which these machines cannot install): whatever bytes or
//! shapes a client sends, the request decoders, the validators and the log
//! line parser answer with a value or an error, never a panic. The
//! Monitoring and Logging filter parsers and the trace header parsers have
//! their own properties beside their code.
//!
//! `scripts/test` runs 256 cases each; run them longer with
//! `PROPTEST_CASES=100000 cargo test -p cloud-ops-emulator --test emulator properties`.

use cloud_ops_emulator::logging::store::parse_line;
use cloud_ops_emulator::monitoring::MetricStore;
use cloud_ops_emulator::trace::validation::validate_batch;
use gcloud_sdk::google::api::{Metric, MonitoredResource};
use gcloud_sdk::google::devtools::cloudtrace::v2::span::Attributes;
use gcloud_sdk::google::devtools::cloudtrace::v2::{
    attribute_value, AttributeValue, BatchWriteSpansRequest, Span, TruncatableString,
};
use gcloud_sdk::google::monitoring::v3::{
    typed_value, CreateTimeSeriesRequest, Point, TimeInterval, TimeSeries, TypedValue,
};
use proptest::prelude::*;
use prost::Message;

const NOW: i64 = 1_800_000_000 * 1_000_000_000;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[a-z/._-]{0,300}",
        Just("projects/p/traces/0af7651916cd43dd8448eb211c80319c/spans/b7ad6b7169203331".into()),
        (0usize..70_000).prop_map(|n| "é".repeat(n / 2)),
    ]
}

fn span() -> impl Strategy<Value = Span> {
    (
        text(),
        text(),
        text(),
        prop::collection::vec((text(), text()), 0..40),
        any::<i64>(),
        any::<i32>(),
    )
        .prop_map(
            |(name, span_id, display, attributes, seconds, nanos)| Span {
                name,
                span_id,
                display_name: Some(TruncatableString {
                    value: display,
                    truncated_byte_count: 0,
                }),
                start_time: Some(prost_types::Timestamp { seconds, nanos }),
                end_time: Some(prost_types::Timestamp {
                    seconds: seconds.saturating_add(1),
                    nanos,
                }),
                attributes: Some(Attributes {
                    attribute_map: attributes
                        .into_iter()
                        .map(|(k, v)| {
                            (
                                k,
                                AttributeValue {
                                    value: Some(attribute_value::Value::StringValue(
                                        TruncatableString {
                                            value: v,
                                            truncated_byte_count: 0,
                                        },
                                    )),
                                },
                            )
                        })
                        .collect(),
                    dropped_attributes_count: 0,
                }),
                ..Span::default()
            },
        )
}

fn series() -> impl Strategy<Value = TimeSeries> {
    (
        text(),
        prop::collection::vec((text(), text()), 0..12),
        text(),
        any::<f64>(),
        any::<i64>(),
    )
        .prop_map(
            |(metric_type, labels, resource_type, value, seconds)| TimeSeries {
                metric: Some(Metric {
                    r#type: metric_type,
                    labels: labels.iter().cloned().collect(),
                }),
                resource: Some(MonitoredResource {
                    r#type: resource_type,
                    labels: labels.into_iter().collect(),
                }),
                points: vec![Point {
                    interval: Some(TimeInterval {
                        start_time: None,
                        end_time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
                    }),
                    value: Some(TypedValue {
                        value: Some(typed_value::Value::DoubleValue(value)),
                    }),
                }],
                ..TimeSeries::default()
            },
        )
}

proptest! {
    #[test]
    fn any_bytes_decode_to_a_request_or_an_error_and_a_decoded_one_validates_without_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..4096)
    ) {
        if let Ok(request) = BatchWriteSpansRequest::decode(bytes.as_slice()) {
            let _ = validate_batch(request, NOW);
        }
        if let Ok(request) = CreateTimeSeriesRequest::decode(bytes.as_slice()) {
            let store = MetricStore::new(1000, std::time::Duration::from_secs(5));
            let _ = store.write("p", &request.time_series, NOW);
        }
    }

    #[test]
    fn any_span_validates_or_is_refused_and_what_is_kept_is_within_google_limits(
        spans in prop::collection::vec(span(), 1..8)
    ) {
        let request = BatchWriteSpansRequest { name: "projects/p".into(), spans };
        if let Ok(batch) = validate_batch(request, NOW) {
            for stored in batch.spans {
                let name = stored.span.display_name.map(|d| d.value).unwrap_or_default();
                prop_assert!(name.len() <= 128, "display name of {} bytes kept", name.len());
            }
        }
    }

    #[test]
    fn any_series_is_written_or_refused_without_panic(batch in prop::collection::vec(series(), 0..10)) {
        let store = MetricStore::new(1000, std::time::Duration::from_secs(5));
        let outcome = store.write("p", &batch, NOW);
        prop_assert!(outcome.points_written + outcome.errors.len() <= batch.len());
    }

    #[test]
    fn any_log_line_becomes_an_entry(line in prop_oneof![
        ".{0,400}",
        "\\{\"severity\":\"[A-Z]{0,9}\",\"message\":\".{0,50}\"\\}",
        (0usize..300_000).prop_map(|n| format!("{{\"message\":\"{}\"}}", "x".repeat(n))),
        (0usize..2_000).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
    ]) {
        let (entry, oversized) = parse_line(&line, NOW);
        prop_assert!(!entry.severity.as_str().is_empty());
        prop_assert_eq!(oversized, line.len() > 256 * 1024);
    }
}
