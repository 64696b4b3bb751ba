//! What a series and a point cost in memory, estimated from their shapes.
//!
//! The store's byte cap is only as honest as these estimates: a count of
//! points alone let 200 000 one-point series with long labels take 850 MB
//! under a 1 000-point cap. Each estimate adds the stored structs' slots
//! to the heap they own (strings, label maps, exemplar attachments), with
//! the shared primitives of [`crate::footprint`];
//! `tests/emulator/memory.rs` holds the estimates to the process's RSS.

use std::collections::BTreeMap;
use std::mem::size_of;
use std::sync::Arc;

use gcloud_sdk::google::api::distribution::Exemplar;
use gcloud_sdk::google::api::Distribution;
use gcloud_sdk::google::monitoring::v3::typed_value::Value;

use crate::footprint::{arc, btree_map, buffer, hash_entry, string};
use crate::monitoring::store::StoredSeries;
use crate::monitoring::validation::{SeriesKey, StoredPoint};

/// Points a series' queue has room for from its first point on (a
/// `VecDeque`'s first allocation).
const FIRST_POINT_SLOTS: usize = 4;

/// Bytes of a series without its points: its slot in the store, its key
/// (one `Arc`, shared by the series and the store's index), the index's
/// entry, and its points' queue as first allocated.
pub(crate) fn series_bytes(key: &SeriesKey) -> usize {
    size_of::<Option<StoredSeries>>()
        + hash_entry::<Arc<SeriesKey>, usize>()
        + arc::<SeriesKey>()
        + key_bytes(key)
        + buffer::<StoredPoint>(FIRST_POINT_SLOTS)
}

fn key_bytes(key: &SeriesKey) -> usize {
    string(&key.project)
        + string(&key.metric_type)
        + labels(&key.metric_labels)
        + string(&key.resource_type)
        + labels(&key.resource_labels)
}

/// Bytes of a stored point: its slot in its series' queue and in the
/// arrival queue, and what its value owns.
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
                buffer::<f64>(e.bounds.capacity())
            }
            _ => 0,
        });
    buffer::<i64>(d.bucket_counts.capacity())
        + bounds
        + buffer::<Exemplar>(d.exemplars.capacity())
        + d.exemplars.iter().map(exemplar).sum::<usize>()
}

fn exemplar(e: &Exemplar) -> usize {
    buffer::<prost_types::Any>(e.attachments.capacity())
        + e.attachments
            .iter()
            .map(|a| string(&a.type_url) + buffer::<u8>(a.value.capacity()))
            .sum::<usize>()
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
        assert_eq!(
            series_bytes(&key(&"v".repeat(1000))) - series_bytes(&key("v")),
            crate::footprint::allocation(1000) - crate::footprint::allocation(1)
        );

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
