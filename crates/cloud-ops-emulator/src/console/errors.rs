//! `/errors`: error entries grouped in the spirit of Cloud Error Reporting.
//!
//! Error Reporting groups events by their error and where it happened; the
//! service names both (`errorType`, `context.reportLocation`), so a group here
//! is one (error type, file, line). Each group links to a sample log entry
//! and its trace. The page visits the store within the console's time
//! budget, newest entries first, and says so when it stopped early.

use std::collections::BTreeMap;

use axum::extract::State;
use maud::{html, Markup};

use super::layout::{self, Section};
use crate::deadline::Deadline;
use crate::logging::store::LogEntry;
use crate::EmulatorStore;

/// What identifies a group: error type, file, line.
pub type GroupKey = (String, String, u32);

/// What the page shows of a group's sample message; its log entry has it whole.
const SAMPLE_BYTES: usize = 512;
/// Groups shown, the most recently seen first.
const GROUPS_SHOWN: usize = 200;

/// One group of error events.
#[derive(Debug, Clone)]
pub struct ErrorGroup {
    pub error_type: String,
    pub file: String,
    pub line: u32,
    pub function: Option<String>,
    pub count: u64,
    pub first_seen: i64,
    pub last_seen: i64,
    /// The newest event: its entry id, first message line and trace id.
    pub sample_id: u64,
    pub sample_message: String,
    pub sample_trace: Option<String>,
    pub service: Option<String>,
}

/// Error groups being gathered, the entries visited in any order.
#[derive(Default)]
pub struct ErrorGroups(BTreeMap<GroupKey, ErrorGroup>);

impl ErrorGroups {
    /// Counts `entry` in its group, if it is an error event; the group's
    /// sample is its newest event (the highest id).
    pub fn add(&mut self, entry: &LogEntry) {
        let Some(error) = &entry.error else { return };
        let (file, line, function) = error.location.as_ref().map_or(("unknown", 0, None), |l| {
            (l.file.as_str(), l.line.unwrap_or(0), l.function.as_ref())
        });
        let key = (error.error_type.clone(), file.to_owned(), line);
        let group = self.0.entry(key).or_insert_with(|| ErrorGroup {
            error_type: error.error_type.clone(),
            file: file.to_owned(),
            line,
            function: function.cloned(),
            count: 0,
            first_seen: entry.timestamp_nanos,
            last_seen: entry.timestamp_nanos,
            sample_id: entry.id,
            sample_message: String::new(),
            sample_trace: None,
            service: error.service.clone(),
        });
        group.count += 1;
        group.first_seen = group.first_seen.min(entry.timestamp_nanos);
        group.last_seen = group.last_seen.max(entry.timestamp_nanos);
        if group.count == 1 || entry.id >= group.sample_id {
            group.sample_id = entry.id;
            group.sample_message = crate::grpc::clip_to(
                entry.message.lines().next().unwrap_or_default(),
                SAMPLE_BYTES,
            );
            group.sample_trace = entry.trace.as_ref().map(|(_, t)| t.clone());
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The groups, the most recently seen first.
    pub fn newest_first(self) -> Vec<ErrorGroup> {
        let mut out: Vec<ErrorGroup> = self.0.into_values().collect();
        out.sort_by_key(|g| std::cmp::Reverse(g.last_seen));
        out
    }
}

/// The error groups of the stored entries that could be visited before
/// `deadline`, newest first, and whether it passed first.
pub(crate) fn stored_groups(store: &EmulatorStore, deadline: Deadline) -> (ErrorGroups, bool) {
    let mut groups = ErrorGroups::default();
    let cut_short = store
        .logs
        .visit_newest_first(deadline, |entry| groups.add(entry))
        .is_err();
    (groups, cut_short)
}

/// `GET /errors`.
pub async fn page(State(store): State<EmulatorStore>) -> Markup {
    let body = super::within_budget(store, render).await;
    layout::page(Section::Errors, "Errors", body)
}

/// The page's body: the groups of the entries visited before `deadline`.
fn render(store: &EmulatorStore, deadline: Deadline) -> Markup {
    let (groups, cut_short) = stored_groups(store, deadline);
    let groups = groups.newest_first();
    html! {
        @if cut_short { (super::cut_short_note(store.page_budget)) }
        p.muted {
            (groups.len()) " error groups, from the Error Reporting entries among the stored logs; grouped by error type and location."
            @if groups.len() > GROUPS_SHOWN { " The " (GROUPS_SHOWN) " seen most recently are shown." }
        }
        @if groups.is_empty() {
            p #no-errors { "No errors reported." }
        } @else {
            table #error-groups {
                tr { th { "Error" } th { "Location" } th { "Count" } th { "First seen (UTC)" } th { "Last seen (UTC)" } th { "Sample" } }
                @for g in groups.iter().take(GROUPS_SHOWN) {
                    tr.error-group data-error-type=(g.error_type) {
                        td { span.err { (g.error_type) } @if let Some(s) = &g.service { div.muted { (s) } } }
                        td.mono { (g.file) ":" (g.line) @if let Some(f) = &g.function { div.muted { (f) } } }
                        td.count { (g.count) }
                        td.mono { (layout::time(g.first_seen)) }
                        td.mono { (layout::time(g.last_seen)) }
                        td {
                            div { (g.sample_message) }
                            a.sample-log href=(format!("/logs?id={}", g.sample_id)) { "log entry" }
                            @if let Some(t) = &g.sample_trace { " · " a.sample-trace href=(format!("/traces/{t}")) { "trace" } }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::store::parse_line;

    fn error_line(kind: &str, line: u32, n: i64) -> LogEntry {
        let text = format!(
            r#"{{"severity":"ERROR","message":"boom {n}\nmore","@type":"type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent","errorType":"{kind}","context":{{"reportLocation":{{"filePath":"src/x.rs","lineNumber":{line},"functionName":"x"}}}}}}"#
        );
        let mut entry = parse_line(&text, n).0;
        entry.id = n as u64;
        entry
    }

    #[test]
    fn same_type_and_location_make_one_group() {
        let entries = vec![
            error_line("panic", 7, 1),
            error_line("panic", 7, 2),
            error_line("panic", 8, 3),
            error_line("handler_error", 7, 4),
            parse_line(r#"{"severity":"ERROR","message":"plain"}"#, 5).0,
        ];
        let mut groups = ErrorGroups::default();
        for entry in &entries {
            groups.add(entry);
        }
        let groups = groups.newest_first();
        assert_eq!(groups.len(), 3);
        let panic7 = groups
            .iter()
            .find(|g| g.error_type == "panic" && g.line == 7)
            .unwrap();
        assert_eq!(
            (panic7.count, panic7.first_seen, panic7.last_seen),
            (2, 1, 2)
        );
        assert_eq!(panic7.sample_message, "boom 2");
        assert_eq!(groups[0].error_type, "handler_error");
    }
}
