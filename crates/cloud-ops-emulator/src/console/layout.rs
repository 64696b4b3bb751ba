//! The page shell every console page shares (navigation, a little inline
//! CSS) and the small formatting helpers the pages have in common.
//!
//! Inline CSS only: the console must work offline and load in one request.

use maud::{html, Markup, DOCTYPE};
use time::OffsetDateTime;

use crate::logging::store::Severity;

const CSS: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#202124;background:#fff}
header{background:#1a73e8;color:#fff;padding:8px 20px;display:flex;gap:24px;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:500}header a.on{border-bottom:2px solid #fff}
header .brand{font-weight:700;margin-right:12px}
main{padding:16px 20px;max-width:1360px}
h1{font-size:20px;margin:4px 0 12px}h2{font-size:16px;margin:20px 0 8px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e0e0e0;vertical-align:top}
th{background:#f1f3f4;font-weight:600}
code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px}
.sev{display:inline-block;min-width:64px;padding:0 6px;border-radius:3px;font-size:12px;font-weight:600;text-align:center}
.sev-DEFAULT,.sev-DEBUG{background:#eceff1;color:#455a64}.sev-INFO,.sev-NOTICE{background:#e3f2fd;color:#0d47a1}
.sev-WARNING{background:#fff3e0;color:#e65100}.sev-ERROR,.sev-CRITICAL,.sev-ALERT,.sev-EMERGENCY{background:#fdecea;color:#b71c1c}
.muted{color:#5f6368}.err{color:#c5221f;font-weight:600}.ok{color:#188038}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #dadce0;border-radius:8px;padding:10px 16px;min-width:150px}
.card .n{font-size:24px;font-weight:600}.card a{text-decoration:none}
form.filters{display:flex;gap:8px;align-items:center;margin-bottom:12px}
input,select,button{font:inherit;padding:3px 6px}
details>summary{cursor:pointer;color:#1a73e8}pre{white-space:pre-wrap;word-break:break-all;margin:4px 0;background:#f8f9fa;padding:6px}
.kv{display:grid;grid-template-columns:max-content 1fr;gap:0 12px}.kv dt{color:#5f6368}.kv dd{margin:0}
.wf td{padding:2px 8px;white-space:nowrap}.wf td.bar-cell{width:45%;position:relative}
.bar{position:relative;height:14px;background:#8ab4f8;border-radius:2px;min-width:2px}.bar.error{background:#f28b82}
.errbox{border-left:3px solid #c5221f;padding:2px 8px;margin:4px 0;background:#fdf6f6}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(620px,1fr));gap:16px}
.chart{border:1px solid #dadce0;border-radius:8px;padding:8px}
"#;

/// The console's sections, for the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Logs,
    Traces,
    Metrics,
    Errors,
    Incidents,
    Slo,
}

const NAV: [(Section, &str, &str); 7] = [
    (Section::Overview, "/", "Overview"),
    (Section::Logs, "/logs", "Logs"),
    (Section::Traces, "/traces", "Traces"),
    (Section::Metrics, "/metrics", "Metrics"),
    (Section::Errors, "/errors", "Errors"),
    (Section::Incidents, "/incidents", "Alerting"),
    (Section::Slo, "/slo", "SLOs"),
];

/// A whole page: `title` in the tab and as its heading, `body` below.
pub fn page(section: Section, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Cloud Ops emulator console" }
                style { (maud::PreEscaped(CSS)) }
            }
            body {
                header {
                    span.brand { "Cloud Ops emulator" }
                    @for (s, href, label) in NAV {
                        a href=(href) class=[(s == section).then_some("on")] { (label) }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A severity badge.
pub fn severity(severity: Severity) -> Markup {
    let name = severity.as_str();
    html! { span class=(format!("sev sev-{name}")) { (name) } }
}

/// `2026-11-24 16:36:40.202` (UTC) for nanoseconds since the epoch.
pub fn time(nanos: i64) -> String {
    crate::time::timestamp::format_utc_millis(nanos, '-', ' ')
}

/// `16:36:40` (UTC), for chart axes.
pub fn clock(nanos: i64) -> String {
    match OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)) {
        Ok(t) => format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()),
        Err(_) => String::new(),
    }
}

/// A duration readable at any scale: `850 µs`, `12.3 ms`, `1.52 s`.
pub fn duration(nanos: i64) -> String {
    let n = nanos.max(0) as f64;
    if n < 1e6 {
        format!("{:.0} µs", n / 1e3)
    } else if n < 1e9 {
        format!("{:.1} ms", n / 1e6)
    } else {
        format!("{:.2} s", n / 1e9)
    }
}

/// A number of seconds (a latency, a percentile) the same way.
pub fn seconds(s: f64) -> String {
    if s == 0.0 {
        return "0".to_owned();
    }
    duration((s * 1e9) as i64)
}

/// A plain number with at most two decimals and no trailing zeros: `0.25`, `12.5`, `3`.
pub fn number(v: f64) -> String {
    let text = format!("{v:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_escapes_its_title() {
        let html = page(Section::Logs, "<script>x</script>", html! {}).into_string();
        assert!(!html.contains("<script>x"));
        assert!(html.contains("&lt;script&gt;x"));
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(duration(850_000), "850 µs");
        assert_eq!(duration(12_300_000), "12.3 ms");
        assert_eq!(duration(1_520_000_000), "1.52 s");
        assert_eq!(time(0), "1970-01-01 00:00:00.000");
        assert_eq!(
            (number(0.25), number(12.5), number(3.0), number(0.0)),
            ("0.25".into(), "12.5".into(), "3".into(), "0".into())
        );
    }
}
