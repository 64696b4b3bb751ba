//! Structured logs, trace context and (later) OpenTelemetry exporters.
