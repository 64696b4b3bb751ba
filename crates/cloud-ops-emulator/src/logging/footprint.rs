//! What a parsed log entry costs in memory, for the store's byte cap.
//!
//! The cap used to count the bytes of the line as received, but a parsed
//! entry costs far more than its line: every JSON value is a 32-byte node
//! (`[0,0,0,...]` costs sixteen times its text), every object key a map
//! entry, and the message and route are copied out of the payload. About
//! 1 GB was reached under a 64 MiB cap. This estimate adds the entry's own
//! allocation to the heap it owns, with the shared primitives of
//! [`crate::footprint`]; `tests/emulator/memory.rs` holds it to RSS.

use std::collections::BTreeMap;
use std::mem::size_of;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::footprint::{allocation, arc, btree_map, buffer, opt_string, string};
use crate::logging::store::{ErrorEvent, HttpRequest, LogEntry, SourceLocation};

/// Estimated bytes of `entry` as the store holds it: its `Arc`, the
/// queue's pointer to it, and what it owns.
pub(crate) fn entry_bytes(entry: &LogEntry) -> usize {
    arc::<LogEntry>()
        + size_of::<Arc<LogEntry>>()
        + opt_string(entry.time.as_ref())
        + string(&entry.message)
        + entry.http_request.as_ref().map_or(0, http_request)
        + entry
            .trace
            .as_ref()
            .map_or(0, |(project, trace)| string(project) + string(trace))
        + opt_string(entry.span_id.as_ref())
        + entry.source_location.as_ref().map_or(0, source_location)
        + entry.error.as_ref().map_or(0, error_event)
        + opt_string(entry.route.as_ref())
        + object(&entry.payload)
        + labels(&entry.labels)
        + opt_string(entry.insert_id.as_ref())
        + string(&entry.resource.resource_type)
        + labels(&entry.resource.labels)
        + opt_string(entry.log_name.as_ref())
        + entry
            .otel
            .as_ref()
            .map_or(0, |v| allocation(size_of::<Value>()) + value(v))
}

/// Heap bytes of a JSON value (its own node is counted by its holder).
/// serde_json's parser refuses nesting past 128 levels, so the recursion
/// is bounded.
fn value(v: &Value) -> usize {
    match v {
        Value::String(s) => string(s),
        // The parser grows arrays by doubling: capacity, not length, is held.
        Value::Array(items) => {
            buffer::<Value>(items.capacity()) + items.iter().map(value).sum::<usize>()
        }
        Value::Object(map) => object(map),
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

/// serde_json's `Map` is a `BTreeMap` (the `preserve_order` feature is off).
fn object(map: &Map<String, Value>) -> usize {
    btree_map::<String, Value>(map.len())
        + map.iter().map(|(k, v)| string(k) + value(v)).sum::<usize>()
}

fn http_request(r: &HttpRequest) -> usize {
    [
        &r.request_method,
        &r.request_url,
        &r.user_agent,
        &r.remote_ip,
        &r.latency,
        &r.protocol,
    ]
    .into_iter()
    .map(|s| opt_string(s.as_ref()))
    .sum()
}

fn source_location(l: &SourceLocation) -> usize {
    string(&l.file) + opt_string(l.function.as_ref())
}

fn error_event(e: &ErrorEvent) -> usize {
    string(&e.error_type)
        + e.location.as_ref().map_or(0, source_location)
        + opt_string(e.service.as_ref())
        + opt_string(e.version.as_ref())
        + e.http_request.as_ref().map_or(0, http_request)
}

fn labels(map: &BTreeMap<String, String>) -> usize {
    btree_map::<String, String>(map.len())
        + map
            .iter()
            .map(|(k, v)| string(k) + string(v))
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::store::parse_line;

    #[test]
    fn a_parsed_entry_costs_more_than_its_line_when_its_json_is_dense() {
        let numbers = format!("{{\"a\":[{}0]}}", "0,".repeat(10_000));
        let (entry, _) = parse_line(&numbers, 0);
        // Each two-byte `0,` is a 32-byte JSON node.
        assert!(
            entry_bytes(&entry) > 10_000 * size_of::<Value>(),
            "{}",
            entry_bytes(&entry)
        );

        let keys: String = (0..1_000).map(|n| format!("\"k{n}\":1,")).collect();
        let (entry, _) = parse_line(&format!("{{{keys}\"z\":1}}"), 0);
        assert!(entry_bytes(&entry) > 1_000 * size_of::<(String, Value)>());

        // A plain text line costs its text and the entry around it.
        let text = "x".repeat(10_000);
        let (entry, _) = parse_line(&text, 0);
        let bytes = entry_bytes(&entry);
        assert!(bytes > 10_000 && bytes < 10_000 + 2_048, "{bytes}");
    }
}
