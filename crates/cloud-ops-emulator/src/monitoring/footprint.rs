//! What a series and a point cost in memory, estimated from their shapes.
//!
//! The store's byte cap is only as honest as these estimates: a count of
//! points alone let 200 000 one-point series with long labels take 850 MB
//! under a 1 000-point cap. Each estimate adds the inline size of the
//! stored structs to the heap bytes they own (strings, vectors, exemplar
//! attachments) and a fixed allowance for map and allocator overhead;
//! `tests/emulator/memory.rs` holds the estimates to the process's RSS.

use std::collections::BTreeMap;
use std::mem::size_of;

use gcloud_sdk::google::api::distribution::Exemplar;
use gcloud_sdk::google::api::Distribution;
use gcloud_sdk::google::monitoring::v3::typed_value::Value;

use crate::monitoring::store::StoredSeries;
use crate::monitoring::validation::{SeriesKey, StoredPoint};

/// What one heap allocation costs beyond its bytes (the allocator's header
/// and rounding), and one map entry beyond its key and value (node or
/// bucket pointers): measured orders of magnitude, not exact figures.
const ALLOCATION: usize = 16;
const MAP_ENTRY: usize = 48;

/// Bytes of a series without its points: the struct, its key (shared by
/// the series and the store's index) and the index's entry.
pub(crate) fn series_bytes(key: &SeriesKey) -> usize {
    size_of::<StoredSeries>() + MAP_ENTRY + ALLOCATION + key_bytes(key)
}

fn key_bytes(key: &SeriesKey) -> usize {
    size_of::<SeriesKey>()
        + string(&key.project)
        + string(&key.metric_type)
        + labels(&key.metric_labels)
        + string(&key.resource_type)
        + labels(&key.resource_labels)
}

/// Bytes of a stored point, its slot in the arrival queue included.
pub(crate) fn point_bytes(point: &StoredPoint) -> usize {
    let heap = match point.value.value.as_ref() {
        Some(Value::StringValue(s)) => string(s),
        Some(Value::DistributionValue(d)) => distribution(d),
        _ => 0,
    };
    size_of::<StoredPoint>() + size_of::<usize>() + heap
}

fn distribution(d: &Distribution) -> usize {
    let bounds = d
        .bucket_options
        .as_ref()
        .and_then(|o| o.options.as_ref())
        .map_or(0, |o| match o {
            gcloud_sdk::google::api::distribution::bucket_options::Options::ExplicitBuckets(e) => {
                vector::<f64>(e.bounds.len())
            }
            _ => 0,
        });
    vector::<i64>(d.bucket_counts.len())
        + bounds
        + vector::<Exemplar>(d.exemplars.len())
        + d.exemplars.iter().map(exemplar).sum::<usize>()
}

fn exemplar(e: &Exemplar) -> usize {
    vector::<prost_types::Any>(e.attachments.len())
        + e.attachments
            .iter()
            .map(|a| string(&a.type_url) + vector::<u8>(a.value.len()))
            .sum::<usize>()
}

fn labels(map: &BTreeMap<String, String>) -> usize {
    map.iter()
        .map(|(k, v)| MAP_ENTRY + size_of::<(String, String)>() + string(k) + string(v))
        .sum()
}

fn string(s: &str) -> usize {
    vector::<u8>(s.len())
}

fn vector<T>(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        len * size_of::<T>() + ALLOCATION
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gcloud_sdk::google::monitoring::v3::TypedValue;

    #[test]
    fn long_labels_and_attachments_cost_what_they_hold() {
        let key = |value: &str| SeriesKey {
            project: "p".into(),
            metric_type: "custom.googleapis.com/x".into(),
            metric_labels: [("k".to_owned(), value.to_owned())].into(),
            resource_type: "global".into(),
            resource_labels: BTreeMap::new(),
        };
        assert!(series_bytes(&key(&"v".repeat(1000))) >= series_bytes(&key("v")) + 999);

        let point = |attachment: usize| StoredPoint {
            start: 0,
            end: 0,
            value: TypedValue {
                value: Some(Value::DistributionValue(Distribution {
                    exemplars: vec![Exemplar {
                        attachments: vec![prost_types::Any {
                            type_url: "t".into(),
                            value: vec![0; attachment],
                        }],
                        ..Exemplar::default()
                    }],
                    ..Distribution::default()
                })),
            },
        };
        assert!(point_bytes(&point(100_000)) >= point_bytes(&point(0)) + 100_000);
    }
}
