//! Attributes that many stored spans share instead of each holding a copy.
//!
//! Google stores an OTLP resource's attributes on each of its spans (O13).
//! Copied into every span, a resource of 4 attributes cost nine allocations
//! at ingest and nine frees at eviction per span, the most of what made an
//! OTLP span dearer to ingest than a v2 one, and a large resource multiplied
//! by a batch's spans. So an OTLP request's resource is converted once into
//! a [`SharedAttributes`], a scope's name and version are layered over it
//! the same way, and each stored span points at its layer; the span's own
//! attributes go over the layers only when it is read ([`merge`]), so every
//! reader sees the span exactly as before.

use std::collections::HashMap;
use std::sync::Arc;

use gcloud_sdk::google::devtools::cloudtrace::v2::span::Attributes;
use gcloud_sdk::google::devtools::cloudtrace::v2::AttributeValue;

use crate::trace::store::StoredSpan;

/// One layer of shared attributes, over the layer it refines (a scope's
/// over its resource's). The store counts each layer's bytes once, while
/// any span reaches it.
#[derive(Debug, PartialEq)]
pub struct SharedAttributes {
    under: Option<Arc<SharedAttributes>>,
    attributes: HashMap<String, AttributeValue>,
}

impl SharedAttributes {
    /// `attributes` over `under`'s, which they win against.
    pub fn new(
        attributes: HashMap<String, AttributeValue>,
        under: Option<Arc<SharedAttributes>>,
    ) -> Self {
        Self { under, attributes }
    }

    /// This layer's own attributes.
    pub(crate) fn attributes(&self) -> &HashMap<String, AttributeValue> {
        &self.attributes
    }

    /// This layer, then the layers under it.
    pub(crate) fn layers(&self) -> impl Iterator<Item = &SharedAttributes> {
        std::iter::successors(Some(self), |layer| layer.under.as_deref())
    }
}

/// `stored` as it was sent: its own attributes over `shared`'s, own
/// attributes winning, as one map (what Cloud Trace's readers expect).
pub(crate) fn merge(mut stored: StoredSpan, shared: Option<&SharedAttributes>) -> StoredSpan {
    let Some(shared) = shared else {
        return stored;
    };
    let attributes = stored
        .span
        .attributes
        .get_or_insert_with(Attributes::default);
    let own = std::mem::take(&mut attributes.attribute_map);
    let layers: Vec<&SharedAttributes> = shared.layers().collect();
    let mut merged = HashMap::with_capacity(
        layers.iter().map(|l| l.attributes.len()).sum::<usize>() + own.len(),
    );
    // The deepest layer first, so that each one above overrides it.
    for layer in layers.iter().rev() {
        merged.extend(
            layer
                .attributes
                .iter()
                .map(|(key, value)| (key.clone(), value.clone())),
        );
    }
    merged.extend(own);
    attributes.attribute_map = merged;
    stored
}

#[cfg(test)]
mod tests {
    use super::*;
    use gcloud_sdk::google::devtools::cloudtrace::v2::{attribute_value, Span};

    fn int(n: i64) -> AttributeValue {
        AttributeValue {
            value: Some(attribute_value::Value::IntValue(n)),
        }
    }

    fn map(pairs: &[(&str, i64)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), int(*v)))
            .collect()
    }

    #[test]
    fn a_span_reads_its_own_attributes_over_its_scopes_over_its_resources() {
        let resource = Arc::new(SharedAttributes::new(
            map(&[("a", 1), ("b", 1), ("c", 1)]),
            None,
        ));
        let scope = SharedAttributes::new(map(&[("b", 2), ("c", 2)]), Some(resource));
        let stored = StoredSpan {
            project: "p".into(),
            trace_id: "t".into(),
            span: Span {
                attributes: Some(Attributes {
                    attribute_map: map(&[("c", 3), ("d", 3)]),
                    dropped_attributes_count: 7,
                }),
                ..Span::default()
            },
        };
        let merged = merge(stored, Some(&scope));
        let attributes = merged.span.attributes.unwrap();
        assert_eq!(
            attributes.attribute_map,
            map(&[("a", 1), ("b", 2), ("c", 3), ("d", 3)])
        );
        assert_eq!(attributes.dropped_attributes_count, 7);
    }
}
