//! The writer behind the JSON log layer: it completes each line that
//! `tracing-stackdriver` formats with the fields that layer cannot write.
//!
//! `tracing-stackdriver` 0.10 formats Cloud Logging's JSON, but its own trace
//! correlation needs an old `tracing-opentelemetry`, and it cannot emit
//! nested objects from event fields. So each formatted line passes through
//! here once, on its way to stdout, and gains:
//!
//! - `logging.googleapis.com/trace`, `/spanId`, `/trace_sampled` from the
//!   [`TraceContext`] stored on the current span;
//! - `logging.googleapis.com/sourceLocation` from the event's callsite, or for
//!   an error entry from where the error happened;
//! - for an error entry, the Error Reporting fields (see
//!   [`error_reporting`](crate::telemetry::logs::error_reporting)).
//!
//! The line is never parsed: its closing `}` is replaced by the extra fields,
//! whose values were serialized by `serde_json`, so user input stays inside
//! JSON strings. Each line reaches the sink in one `write_all` under the
//! sink's lock, so lines of concurrent requests never interleave.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::Arc;

use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

use crate::telemetry::logs::error_reporting::{self, ServiceContext};
use crate::telemetry::traces::context::TraceContext;
use crate::telemetry::traces::span_data;

/// Makes one [`LineWriter`] per event; wraps the real sink (stdout in the
/// service, a buffer in tests).
pub struct CorrelatingMakeWriter<M> {
    inner: M,
    /// `projects/{project}/traces/`, ready to prefix a trace id.
    trace_prefix: Arc<str>,
    /// `"serviceContext":{…}`, serialized once.
    service_context_field: Arc<str>,
}

impl<M> CorrelatingMakeWriter<M> {
    pub fn new(inner: M, project_id: &str, service_context: &ServiceContext) -> Self {
        let service_context = serde_json::to_string(service_context).unwrap_or_default();
        Self {
            inner,
            trace_prefix: format!("projects/{project_id}/traces/").into(),
            service_context_field: format!("\"serviceContext\":{service_context}").into(),
        }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for CorrelatingMakeWriter<M> {
    type Writer = LineWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            inner: self.inner.make_writer(),
            extra_fields: self.extra_fields(None),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        LineWriter {
            inner: self.inner.make_writer_for(meta),
            extra_fields: self.extra_fields(Some(meta)),
        }
    }
}

impl<M> CorrelatingMakeWriter<M> {
    /// The fields to add to the line of the event being written, joined by
    /// commas, without braces.
    fn extra_fields(&self, meta: Option<&Metadata<'_>>) -> String {
        let mut fields = String::with_capacity(256);
        if let Some(context) = span_data::current::<TraceContext>() {
            let _ = write!(
                fields,
                "\"logging.googleapis.com/trace\":\"{}{}\",\"logging.googleapis.com/spanId\":\"{}\",\"logging.googleapis.com/trace_sampled\":{}",
                self.trace_prefix, context.trace_id, context.span_id, context.sampled
            );
        }
        error_reporting::with_pending_report(|report| match report {
            Some(report) => {
                push_separator(&mut fields);
                fields.push_str(&report.json_fields);
                fields.push(',');
                fields.push_str(&self.service_context_field);
                push_source_location(
                    &mut fields,
                    &report.location.file_path,
                    report.location.line_number,
                    &report.location.function_name,
                );
            }
            None => {
                if let Some(meta) = meta {
                    if let (Some(file), Some(line)) = (meta.file(), meta.line()) {
                        push_source_location(
                            &mut fields,
                            file,
                            line,
                            meta.module_path().unwrap_or_default(),
                        );
                    }
                }
            }
        });
        fields
    }
}

fn push_separator(fields: &mut String) {
    if !fields.is_empty() {
        fields.push(',');
    }
}

fn push_source_location(fields: &mut String, file: &str, line: u32, function: &str) {
    push_separator(fields);
    let _ = write!(
        fields,
        "\"logging.googleapis.com/sourceLocation\":{{\"file\":{},\"line\":\"{line}\",\"function\":{}}}",
        json_string(file),
        json_string(function)
    );
}

fn json_string(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "\"\"".to_owned())
}

/// Writes one formatted line, completed with the correlation fields.
pub struct LineWriter<W> {
    inner: W,
    extra_fields: String,
}

thread_local! {
    /// Reused for every line this thread writes, so splicing allocates only
    /// while lines grow.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl<W: Write> Write for LineWriter<W> {
    /// Takes the whole line: the fmt layer hands each formatted event over in
    /// one `write_all`, and this answers it with one `write_all` to the sink.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.extra_fields.is_empty() {
            self.inner.write_all(buf)?;
            return Ok(buf.len());
        }
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            splice(buf, self.extra_fields.as_bytes(), &mut line);
            self.inner.write_all(&line)
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Copies the JSON object `line` into `out` with `fields` added before its
/// closing brace. A line that is not an object is copied unchanged.
fn splice(line: &[u8], fields: &[u8], out: &mut Vec<u8>) {
    let Some(close) = line.iter().rposition(|&b| b == b'}') else {
        out.extend_from_slice(line);
        return;
    };
    let body = &line[..close];
    out.extend_from_slice(body);
    let empty_object = body.iter().rev().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if !empty_object {
        out.push(b',');
    }
    out.extend_from_slice(fields);
    out.extend_from_slice(&line[close..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spliced(line: &str, fields: &str) -> String {
        let mut out = Vec::new();
        splice(line.as_bytes(), fields.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fields_go_before_the_closing_brace() {
        assert_eq!(spliced("{\"a\":1}\n", "\"b\":2"), "{\"a\":1,\"b\":2}\n");
    }

    #[test]
    fn an_empty_object_gets_no_leading_comma() {
        assert_eq!(spliced("{}\n", "\"b\":2"), "{\"b\":2}\n");
    }

    #[test]
    fn a_line_without_an_object_is_left_alone() {
        assert_eq!(spliced("plain text\n", "\"b\":2"), "plain text\n");
    }
}
