//! The Cloud Trace v1 `ListTraces` filter language.
//!
//! Space-separated terms, all of which must hold (as Cloud Trace documents):
//! `root:NAME_PREFIX`, `+root:NAME`, `span:NAME_PREFIX`, `+span:NAME`,
//! `latency:DURATION` (root span at least that long: `500ms`, `1.5s`),
//! `LABEL_KEY:VALUE_PREFIX`, `+LABEL_KEY:VALUE`, and the shorthands
//! `method:` (`/http/method`) and `url:` (`/http/url`). Values with spaces are
//! double-quoted.

use gcloud_sdk::google::devtools::cloudtrace::v1::TraceSpan;

use crate::time::timestamp::{self, NANOS_PER_SECOND};

/// Why a filter could not be parsed; the text is the gRPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceFilterError {
    #[error(
        "Invalid filter term \"{0}\": expected KEY:VALUE, for example root:GET or latency:500ms."
    )]
    BadTerm(String),
    #[error(
        "Invalid latency \"{0}\": expected a number with a unit (ns, us, ms, s, m), like 500ms."
    )]
    BadLatency(String),
    #[error("Unterminated quote in filter \"{0}\".")]
    UnterminatedQuote(String),
}

/// One condition on a trace.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    Root {
        name: String,
        exact: bool,
    },
    Span {
        name: String,
        exact: bool,
    },
    Latency {
        min_nanos: i64,
    },
    Label {
        key: String,
        value: String,
        exact: bool,
    },
}

/// Parses a v1 filter; an empty filter is no condition.
///
/// # Errors
/// A [`TraceFilterError`] naming the offending term.
pub fn parse(filter: &str) -> Result<Vec<Term>, TraceFilterError> {
    split_terms(filter)?
        .into_iter()
        .map(|t| parse_term(&t))
        .collect()
}

fn split_terms(filter: &str) -> Result<Vec<String>, TraceFilterError> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in filter.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    terms.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if quoted {
        return Err(TraceFilterError::UnterminatedQuote(filter.to_string()));
    }
    if !current.is_empty() {
        terms.push(current);
    }
    Ok(terms)
}

fn parse_term(term: &str) -> Result<Term, TraceFilterError> {
    let (exact, body) = match term.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, term),
    };
    let (key, value) = body
        .split_once(':')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| TraceFilterError::BadTerm(term.to_string()))?;
    let value = value.to_string();
    Ok(match key {
        "root" => Term::Root { name: value, exact },
        "span" => Term::Span { name: value, exact },
        "latency" => Term::Latency {
            min_nanos: parse_latency(&value)?,
        },
        "method" => label("/http/method", value, exact),
        "url" => label("/http/url", value, exact),
        _ => label(key, value, exact),
    })
}

fn label(key: &str, value: String, exact: bool) -> Term {
    Term::Label {
        key: key.to_string(),
        value,
        exact,
    }
}

fn parse_latency(text: &str) -> Result<i64, TraceFilterError> {
    let bad = || TraceFilterError::BadLatency(text.to_string());
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "ns" => 1.0,
        "us" => 1e3,
        "ms" => 1e6,
        "s" => NANOS_PER_SECOND as f64,
        "m" => 60.0 * NANOS_PER_SECOND as f64,
        _ => return Err(bad()),
    };
    Ok((number * scale) as i64)
}

fn text_matches(actual: &str, wanted: &str, exact: bool) -> bool {
    if exact {
        actual == wanted
    } else {
        actual.starts_with(wanted)
    }
}

fn duration(span: &TraceSpan) -> i64 {
    let nanos = |t: &Option<prost_types::Timestamp>| {
        t.as_ref()
            .and_then(|t| timestamp::to_nanos(t).ok())
            .unwrap_or(0)
    };
    nanos(&span.end_time).saturating_sub(nanos(&span.start_time))
}

/// True when every term holds for the trace made of `spans`.
pub fn matches(terms: &[Term], spans: &[TraceSpan]) -> bool {
    let roots: Vec<&TraceSpan> = spans.iter().filter(|s| s.parent_span_id == 0).collect();
    terms.iter().all(|term| match term {
        Term::Root { name, exact } => roots.iter().any(|s| text_matches(&s.name, name, *exact)),
        Term::Span { name, exact } => spans.iter().any(|s| text_matches(&s.name, name, *exact)),
        Term::Latency { min_nanos } => roots.iter().any(|s| duration(s) >= *min_nanos),
        Term::Label { key, value, exact } => spans.iter().any(|s| {
            s.labels
                .get(key)
                .is_some_and(|v| text_matches(v, value, *exact))
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(name: &str, parent: u64, millis: i64, labels: &[(&str, &str)]) -> TraceSpan {
        TraceSpan {
            name: name.into(),
            parent_span_id: parent,
            start_time: Some(prost_types::Timestamp {
                seconds: 100,
                nanos: 0,
            }),
            end_time: Some(timestamp::from_nanos(
                100 * NANOS_PER_SECOND + millis * 1_000_000,
            )),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..TraceSpan::default()
        }
    }

    #[test]
    fn terms_all_have_to_hold() {
        let trace = [
            span("GET /books", 0, 600, &[("/http/method", "GET")]),
            span("db.query", 1, 100, &[("db.system", "postgres")]),
        ];
        let check = |f: &str| matches(&parse(f).unwrap(), &trace);
        assert!(check(""));
        assert!(check("root:GET span:db"));
        assert!(check("+root:\"GET /books\" latency:500ms method:GET"));
        assert!(!check("+root:GET"));
        assert!(!check("root:db"));
        assert!(!check("latency:1s"));
        assert!(check("+db.system:postgres"));
        assert!(!check("db.system:mysql"));
    }

    #[test]
    fn bad_terms_are_errors() {
        assert!(matches!(
            parse("nocolon"),
            Err(TraceFilterError::BadTerm(_))
        ));
        assert!(matches!(
            parse("latency:fast"),
            Err(TraceFilterError::BadLatency(_))
        ));
        assert!(matches!(
            parse("root:\"open"),
            Err(TraceFilterError::UnterminatedQuote(_))
        ));
    }
}
