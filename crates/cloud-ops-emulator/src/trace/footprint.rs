//! What a stored span costs in memory, for the span store's byte cap.
//!
//! A count of spans alone bounds nothing: within Google's limits (T6) one
//! span may carry 32 attributes of 256 bytes, 32 annotations, 128 links of
//! 32 attributes each, 128 stack frames and a status with any details, so
//! 100 000 spans ranged from megabytes to many gigabytes. The estimate is
//! the span's encoded size (its strings and bytes, roughly once each) plus
//! the inline size of every map entry and repeated message it decodes to,
//! with an allowance for hashing and allocation.

use std::mem::size_of;

use gcloud_sdk::google::devtools::cloudtrace::v2::{span, stack_trace, AttributeValue};
use prost::Message;

use crate::footprint;
use crate::trace::shared::SharedAttributes;
use crate::trace::store::StoredSpan;

/// A decoded map entry or repeated message beyond its own inline size and
/// its encoded bytes: the allocations' headers and rounding of its strings
/// (two, at most 23 bytes each with glibc; see [`crate::footprint`]).
const OVERHEAD: usize = 32;

/// Estimated bytes of `stored`, itself included.
pub(crate) fn span_bytes(stored: &StoredSpan) -> usize {
    let span = &stored.span;
    size_of::<StoredSpan>()
        + stored.project.len()
        + stored.trace_id.len()
        + span.encoded_len()
        + attributes(span.attributes.as_ref())
        + span.time_events.as_ref().map_or(0, time_events)
        + span.links.as_ref().map_or(0, links)
        + span.stack_trace.as_ref().map_or(0, stack_frames)
}

/// Estimated bytes of one layer of shared attributes behind its `Arc`
/// (the layers under it are counted on their own).
pub(crate) fn shared_bytes(shared: &SharedAttributes) -> usize {
    let map = shared.attributes();
    // The Arc's allocation, then the map as a span's map is counted.
    footprint::arc::<SharedAttributes>()
        + footprint::hash_map::<String, AttributeValue>(map.capacity())
        + map
            .iter()
            .map(|(key, value)| OVERHEAD + key.len() + value.encoded_len())
            .sum::<usize>()
}

/// A hash map's table, and two allocations (key, string value) per entry.
fn attributes(attributes: Option<&span::Attributes>) -> usize {
    attributes.map_or(0, |a| {
        footprint::hash_map::<String, AttributeValue>(a.attribute_map.capacity())
            + a.attribute_map.len() * OVERHEAD
    })
}

fn time_events(events: &span::TimeEvents) -> usize {
    events
        .time_event
        .iter()
        .map(|event| {
            let annotation = match event.value.as_ref() {
                Some(span::time_event::Value::Annotation(a)) => attributes(a.attributes.as_ref()),
                _ => 0,
            };
            size_of::<span::TimeEvent>() + OVERHEAD + annotation
        })
        .sum()
}

fn links(links: &span::Links) -> usize {
    links
        .link
        .iter()
        .map(|link| size_of::<span::Link>() + OVERHEAD + attributes(link.attributes.as_ref()))
        .sum()
}

fn stack_frames(stack: &gcloud_sdk::google::devtools::cloudtrace::v2::StackTrace) -> usize {
    stack.stack_frames.as_ref().map_or(0, |frames| {
        frames.frame.len() * (size_of::<stack_trace::StackFrame>() + OVERHEAD)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gcloud_sdk::google::devtools::cloudtrace::v2::{attribute_value, Span, TruncatableString};

    #[test]
    fn attributes_and_links_count_for_what_they_hold() {
        let bare = StoredSpan {
            project: "p".into(),
            trace_id: "t".into(),
            span: Span::default(),
        };
        let mut heavy = bare.clone();
        let value = AttributeValue {
            value: Some(attribute_value::Value::StringValue(TruncatableString {
                value: "v".repeat(256),
                truncated_byte_count: 0,
            })),
        };
        let map: std::collections::HashMap<_, _> =
            (0..32).map(|n| (format!("k{n}"), value.clone())).collect();
        heavy.span.links = Some(span::Links {
            link: (0..128)
                .map(|_| span::Link {
                    attributes: Some(span::Attributes {
                        attribute_map: map.clone(),
                        dropped_attributes_count: 0,
                    }),
                    ..span::Link::default()
                })
                .collect(),
            dropped_links_count: 0,
        });
        // 128 links x 32 values of 256 bytes: over a megabyte.
        assert!(span_bytes(&heavy) > span_bytes(&bare) + 128 * 32 * 256);
    }
}
