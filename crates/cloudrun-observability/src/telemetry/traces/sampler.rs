//! The sampler for Cloud Run: follow a caller that says "sampled", otherwise
//! decide by a ratio on the trace id.
//!
//! Cloud Run's front end sends a `traceparent` on every request but marks
//! only about 0.1 request/s per instance as sampled. A plain parent-based
//! sampler would then export almost nothing. Deciding the rest by a ratio on
//! the trace id (not at random) means every service of one trace decides the
//! same way, so traces are whole or absent, never half.

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, SamplingResult, ShouldSample};

#[derive(Clone, Debug)]
pub struct CloudRunSampler {
    ratio: Sampler,
}

impl CloudRunSampler {
    /// `ratio` is clamped to 0.0..=1.0 (`OTEL_TRACES_SAMPLER_ARG`).
    pub fn new(ratio: f64) -> Self {
        Self {
            ratio: Sampler::TraceIdRatioBased(ratio.clamp(0.0, 1.0)),
        }
    }
}

impl ShouldSample for CloudRunSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let parent = parent_context
            .filter(|cx| cx.has_active_span())
            .map(|cx| cx.span().span_context().clone());
        match parent {
            // A span of this process follows its parent's decision, either way.
            Some(parent) if !parent.is_remote() => SamplingResult {
                decision: if parent.is_sampled() {
                    SamplingDecision::RecordAndSample
                } else {
                    SamplingDecision::Drop
                },
                attributes: Vec::new(),
                trace_state: parent.trace_state().clone(),
            },
            Some(parent) if parent.is_sampled() => SamplingResult {
                decision: SamplingDecision::RecordAndSample,
                attributes: Vec::new(),
                trace_state: parent.trace_state().clone(),
            },
            // A remote caller that did not sample, or no caller: the ratio.
            _ => self.ratio.should_sample(
                parent_context,
                trace_id,
                name,
                span_kind,
                attributes,
                links,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};

    fn remote(sampled: bool, trace_id: TraceId) -> Context {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        Context::new().with_remote_span_context(SpanContext::new(
            trace_id,
            SpanId::from(1),
            flags,
            true,
            TraceState::default(),
        ))
    }

    fn decide(
        sampler: &CloudRunSampler,
        cx: Option<&Context>,
        trace_id: TraceId,
    ) -> SamplingDecision {
        sampler
            .should_sample(cx, trace_id, "span", &SpanKind::Server, &[], &[])
            .decision
    }

    #[test]
    fn a_sampled_caller_is_always_followed() {
        let never = CloudRunSampler::new(0.0);
        let trace = TraceId::from(42);
        assert_eq!(
            decide(&never, Some(&remote(true, trace)), trace),
            SamplingDecision::RecordAndSample
        );
    }

    #[test]
    fn an_unsampled_caller_is_decided_by_the_ratio() {
        let trace = TraceId::from(42);
        assert_eq!(
            decide(
                &CloudRunSampler::new(1.0),
                Some(&remote(false, trace)),
                trace
            ),
            SamplingDecision::RecordAndSample
        );
        assert_eq!(
            decide(
                &CloudRunSampler::new(0.0),
                Some(&remote(false, trace)),
                trace
            ),
            SamplingDecision::Drop
        );
    }

    #[test]
    fn the_decision_depends_on_the_trace_id_only() {
        let sampler = CloudRunSampler::new(0.5);
        for id in 1..200u128 {
            let trace = TraceId::from(id.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834));
            let first = decide(&sampler, None, trace);
            let again = decide(&sampler, Some(&remote(false, trace)), trace);
            assert_eq!(first, again, "same trace, same decision");
        }
    }
}
