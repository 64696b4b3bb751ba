//! OTLP log records into the [`LogStore`](crate::LogStore): one log entry
//! per record (O28-O32 of `otlp-telemetry-api.md`), so the console shows
//! them and log-based metrics count them.
//!
//! - `logName`: the record's `event_name`, else the first of its attributes
//!   `log.name`, `gcp.log.name`, `log_name`, `gcp.log_name`,
//!   `logging.googleapis.com/logName`, URL-encoded; `otel` when none.
//! - `resource`: `cloud_run_revision` for a resource with
//!   `cloud.platform=gcp_cloud_run`, else `generic_task` with the labels
//!   metrics use ([`super::metrics`]).
//! - `timestamp`: `time_unix_nano`, else `observed_time_unix_nano`, else
//!   the time received; `receiveTimestamp` the time received.
//! - `severity`: from `severity_number` as Google's exporter maps it, else
//!   from `severity_text`.
//! - payload: a string body is `textPayload`, a map `jsonPayload`, anything
//!   else `textPayload` holding its JSON.
//! - `trace`, `spanId`, `traceSampled` from the record's ids and flags
//!   (a trace id that is not 16 bytes, or all zeros, is left out).
//! - `httpRequest` from the attribute `gcp.http_request`; the other
//!   attributes are `labels` (64 at most, keys 512 B, values 64 KiB).
//! - `otel`: the resource's and scope's attributes, as the Telemetry API adds.
//!
//! A record over Cloud Logging's 256 KB entry limit is rejected alone
//! (`partial_success`); a request without a project is rejected whole.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value as Any, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message;
use serde_json::{Map, Value as Json};

use super::{attribute, hex_id, json, json_map, nanos, text, OtlpError, OtlpIngest, Rejections};
use crate::logging::store::{http_request, LogEntry, LogResource, Severity, CLOUD_RUN_REVISION};
use crate::time::timestamp::{from_nanos, now_nanos, rfc3339};

/// Cloud Logging's limit on one entry.
const MAX_ENTRY_BYTES: usize = 256 * 1024;
const MAX_LABELS: usize = 64;
const MAX_LABEL_KEY_BYTES: usize = 512;
const MAX_LABEL_VALUE_BYTES: usize = 64 * 1024;
/// The log a record goes to when it names none.
pub const DEFAULT_LOG: &str = "otel";
/// Attributes naming the log, in the order the newer documentation gives.
const LOG_NAME_ATTRIBUTES: [&str; 5] = [
    "log.name",
    "gcp.log.name",
    "log_name",
    "gcp.log_name",
    "logging.googleapis.com/logName",
];
const HTTP_REQUEST_ATTRIBUTE: &str = "gcp.http_request";

/// Stores the valid records of `request`.
///
/// # Errors
/// [`OtlpError`] when a resource names no project: nothing is stored.
pub fn export(
    ingest: &OtlpIngest,
    request: ExportLogsServiceRequest,
) -> Result<ExportLogsServiceResponse, OtlpError> {
    let projects = request
        .resource_logs
        .iter()
        .map(|rl| ingest.project_of(rl.resource.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let received = now_nanos();
    let mut rejections = Rejections::default();
    let mut entries = Vec::new();
    for (index, (resource_logs, project)) in request.resource_logs.iter().zip(projects).enumerate()
    {
        let attributes: &[KeyValue] = resource_logs
            .resource
            .as_ref()
            .map_or(&[], |r| r.attributes.as_slice());
        let resource = log_resource(&project, attributes);
        for (scope_index, scope_logs) in resource_logs.scope_logs.iter().enumerate() {
            let otel = otel_field(attributes, scope_logs.scope.as_ref());
            for (record_index, record) in scope_logs.log_records.iter().enumerate() {
                let size = record.encoded_len();
                if size > MAX_ENTRY_BYTES {
                    rejections.add(
                        1,
                        format!(
                            "resourceLogs[{index}].scopeLogs[{scope_index}].logRecords[{record_index}]: the entry has {size} bytes, more than Cloud Logging's limit of {MAX_ENTRY_BYTES}."
                        ),
                    );
                    continue;
                }
                entries.push(entry(&project, &resource, &otel, record, size, received));
            }
        }
    }
    ingest.store.logs.insert_entries(entries);
    Ok(ExportLogsServiceResponse {
        partial_success: (!rejections.is_empty()).then(|| ExportLogsPartialSuccess {
            rejected_log_records: rejections.count(),
            error_message: rejections.message(),
        }),
    })
}

fn log_resource(project: &str, attributes: &[KeyValue]) -> LogResource {
    let get = |key: &str| attribute(attributes, key).map(text).unwrap_or_default();
    let first = |keys: &[&str]| {
        keys.iter()
            .map(|k| get(k))
            .find(|v| !v.is_empty())
            .unwrap_or_default()
    };
    let labels: BTreeMap<String, String> = if get("cloud.platform") == "gcp_cloud_run" {
        [
            ("project_id", project.to_owned()),
            ("service_name", first(&["faas.name", "service.name"])),
            ("revision_name", get("faas.version")),
            ("configuration_name", first(&["faas.name", "service.name"])),
            ("location", first(&["cloud.region", "location"])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    } else {
        let job = [get("job"), get("service.name"), get("faas.name")]
            .into_iter()
            .find(|v| !v.is_empty())
            .unwrap_or_default();
        [
            ("project_id", project.to_owned()),
            (
                "location",
                first(&["location", "cloud.availability_zone", "cloud.region"]),
            ),
            ("namespace", first(&["namespace", "service.namespace"])),
            ("job", job),
            (
                "task_id",
                first(&[
                    "instance",
                    "service.instance.id",
                    "faas.instance",
                    "host.id",
                ]),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    };
    let resource_type = if labels.contains_key("service_name") {
        CLOUD_RUN_REVISION
    } else {
        "generic_task"
    };
    LogResource {
        resource_type: resource_type.into(),
        labels,
    }
}

fn otel_field(resource: &[KeyValue], scope: Option<&InstrumentationScope>) -> Json {
    let mut otel = Map::new();
    otel.insert(
        "resource".into(),
        serde_json::json!({ "attributes": json_map(resource) }),
    );
    if let Some(scope) = scope {
        otel.insert(
            "scope".into(),
            serde_json::json!({
                "name": scope.name,
                "version": scope.version,
                "attributes": json_map(&scope.attributes),
            }),
        );
    }
    Json::Object(otel)
}

/// OTel severity numbers as Google's exporter maps them.
fn severity(record: &LogRecord) -> Severity {
    match record.severity_number {
        1..=8 => Severity::Debug,
        9..=10 => Severity::Info,
        11..=12 => Severity::Notice,
        13..=16 => Severity::Warning,
        17..=20 => Severity::Error,
        21..=22 => Severity::Critical,
        23 => Severity::Alert,
        24 => Severity::Emergency,
        _ => Severity::parse(&record.severity_text).unwrap_or(Severity::Default),
    }
}

/// Percent-encodes what is not URL-safe, as Cloud Logging writes log ids.
fn url_encode(name: &str) -> String {
    use std::fmt::Write;
    name.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

fn clip(text: &str, limit: usize) -> String {
    let mut end = limit.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn entry(
    project: &str,
    resource: &LogResource,
    otel: &Json,
    record: &LogRecord,
    size: usize,
    received: i64,
) -> LogEntry {
    let timestamp = [record.time_unix_nano, record.observed_time_unix_nano]
        .into_iter()
        .find(|t| *t != 0)
        .map_or(received, nanos);
    let log_name = Some(record.event_name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| {
            LOG_NAME_ATTRIBUTES
                .iter()
                .find_map(|key| attribute(&record.attributes, key).map(text))
                .filter(|n| !n.is_empty())
        })
        .unwrap_or_else(|| DEFAULT_LOG.to_owned());
    let (message, text_payload, payload) = match record.body.as_ref().and_then(|b| b.value.as_ref())
    {
        Some(Any::StringValue(s)) => (s.clone(), true, Map::new()),
        Some(Any::KvlistValue(list)) => {
            let payload = json_map(&list.values);
            let message = payload
                .get("message")
                .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned))
                .unwrap_or_default();
            (message, false, payload)
        }
        Some(_) => (
            record
                .body
                .as_ref()
                .map(|b| json(b).to_string())
                .unwrap_or_default(),
            true,
            Map::new(),
        ),
        None => (String::new(), true, Map::new()),
    };
    let http = attribute(&record.attributes, HTTP_REQUEST_ATTRIBUTE).and_then(|value| {
        match &value.value {
            Some(Any::StringValue(s)) => serde_json::from_str::<Json>(s).ok(),
            _ => Some(json(value)),
        }
        .as_ref()
        .and_then(http_request)
    });
    let mut labels = BTreeMap::new();
    for kv in &record.attributes {
        let special =
            kv.key == HTTP_REQUEST_ATTRIBUTE || LOG_NAME_ATTRIBUTES.contains(&kv.key.as_str());
        if special || labels.len() >= MAX_LABELS {
            continue;
        }
        let value = kv.value.as_ref().map(text).unwrap_or_default();
        labels.insert(
            clip(&kv.key, MAX_LABEL_KEY_BYTES),
            clip(&value, MAX_LABEL_VALUE_BYTES),
        );
    }
    let trace = (record.trace_id.len() == 16 && record.trace_id.iter().any(|b| *b != 0))
        .then(|| (project.to_owned(), hex_id(&record.trace_id)));
    let span_id = (record.span_id.len() == 8 && record.span_id.iter().any(|b| *b != 0))
        .then(|| hex_id(&record.span_id));
    LogEntry {
        id: 0,
        received_nanos: received,
        time: Some(rfc3339(&from_nanos(timestamp))),
        timestamp_nanos: timestamp,
        severity: severity(record),
        message,
        text_payload,
        http_request: http,
        trace_sampled: trace.is_some() && record.flags & 1 == 1,
        trace,
        span_id,
        source_location: None,
        error: None,
        route: None,
        payload,
        labels,
        insert_id: None,
        resource: resource.clone(),
        size,
        log_name: Some(url_encode(&log_name)),
        otel: Some(otel.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names_are_url_encoded_and_severities_mapped_like_googles_exporter() {
        assert_eq!(
            url_encode("run.googleapis.com/stdout"),
            "run.googleapis.com%2Fstdout"
        );
        let record = |n| LogRecord {
            severity_number: n,
            ..LogRecord::default()
        };
        assert_eq!(severity(&record(9)), Severity::Info);
        assert_eq!(severity(&record(17)), Severity::Error);
        assert_eq!(severity(&record(0)), Severity::Default);
    }
}
