//! The Cloud Monitoring filter language (F1 of `gcp-api-rules.md`).
//!
//! Used by `ListTimeSeries` and `ListMetricDescriptors`, and meant to check the
//! filters of Terraform alert policies too, so a typo in a selector or a
//! function name is a clear error rather than a filter that matches nothing.
//!
//! Grammar (adjacent terms are an implicit `AND`, as in Google's language):
//! ```text
//! expr       := and ("OR" and)*
//! and        := unary (["AND"] unary)*
//! unary      := "NOT" unary | "(" expr ")" | comparison
//! comparison := selector ("=" | "!=" | ":") value
//! value      := string | bare-word | number | function "(" string ("," string)* ")"
//! function   := starts_with | ends_with | has_substring | one_of | monitoring.regex.full_match
//! selector   := metric.type | resource.type | project | metric.display_name
//!             | metric.label(s).KEY | resource.label(s).KEY
//!             | metadata.system_labels.KEY | metadata.user_labels.KEY
//! ```
//!
//! Why one file: the grammar, its parser and its matcher change together;
//! half of it is tests, including property tests.

use std::fmt;

use regex::Regex;

/// The deepest nesting of `(` and `NOT` a filter may have. The parser, the
/// evaluation and the drop of a [`Filter`] recurse once per level, so an
/// unbounded depth let a request of a few kilobytes (`((((...`) overflow
/// the stack and abort the whole process, a service with its embedded
/// emulator included. Real filters nest a handful of levels.
pub const MAX_NESTING: usize = 64;

/// A parse error, with the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("unknown selector \"{selector}\" at offset {offset}; expected metric.type, resource.type, project, metric.labels.KEY or resource.labels.KEY")]
    UnknownSelector { selector: String, offset: usize },
    #[error("unknown function \"{name}\" at offset {offset}; expected starts_with, ends_with, has_substring, one_of or monitoring.regex.full_match")]
    UnknownFunction { name: String, offset: usize },
    #[error("expected {expected} at offset {offset}, found {found}")]
    Unexpected {
        expected: &'static str,
        found: String,
        offset: usize,
    },
    #[error("unterminated string starting at offset {offset}")]
    UnterminatedString { offset: usize },
    #[error("invalid regular expression {pattern:?}: {reason}")]
    BadRegex { pattern: String, reason: String },
    #[error("the filter is empty")]
    Empty,
    #[error("the filter nests parentheses and NOT deeper than {limit} levels at offset {offset}")]
    TooDeep { offset: usize, limit: usize },
}

/// What a comparison looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    MetricType,
    ResourceType,
    Project,
    MetricDisplayName,
    MetricLabel(String),
    ResourceLabel(String),
    SystemMetadataLabel(String),
    UserMetadataLabel(String),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MetricType => write!(f, "metric.type"),
            Self::ResourceType => write!(f, "resource.type"),
            Self::Project => write!(f, "project"),
            Self::MetricDisplayName => write!(f, "metric.display_name"),
            Self::MetricLabel(k) => write!(f, "metric.labels.{k}"),
            Self::ResourceLabel(k) => write!(f, "resource.labels.{k}"),
            Self::SystemMetadataLabel(k) => write!(f, "metadata.system_labels.{k}"),
            Self::UserMetadataLabel(k) => write!(f, "metadata.user_labels.{k}"),
        }
    }
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone)]
pub enum Matcher {
    Equals(String),
    StartsWith(String),
    EndsWith(String),
    HasSubstring(String),
    OneOf(Vec<String>),
    Regex(Regex),
}

impl Matcher {
    fn matches(&self, value: &str) -> bool {
        match self {
            Self::Equals(s) => value == s,
            Self::StartsWith(s) => value.starts_with(s.as_str()),
            Self::EndsWith(s) => value.ends_with(s.as_str()),
            Self::HasSubstring(s) => value.contains(s.as_str()),
            Self::OneOf(options) => options.iter().any(|o| o == value),
            Self::Regex(re) => re.is_match(value),
        }
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    /// `:` — "has": a substring test on strings.
    Has,
}

/// A parsed filter.
#[derive(Debug, Clone)]
pub enum Filter {
    Compare {
        selector: Selector,
        op: Op,
        matcher: Matcher,
    },
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
}

/// Anything a filter can be evaluated against: returns the value of a selector,
/// `None` when the subject has no such field (an absent label).
pub trait Subject {
    fn field(&self, selector: &Selector) -> Option<&str>;
}

impl Filter {
    /// True when `subject` satisfies the filter. A comparison on an absent
    /// field is false, and its `!=` is true, as Monitoring treats missing labels.
    pub fn matches(&self, subject: &dyn Subject) -> bool {
        match self {
            Self::Compare {
                selector,
                op,
                matcher,
            } => {
                let value = subject.field(selector);
                match op {
                    Op::Eq => value.is_some_and(|v| matcher.matches(v)),
                    Op::Ne => !value.is_some_and(|v| matcher.matches(v)),
                    Op::Has => value.is_some_and(|v| match matcher {
                        Matcher::Equals(s) => v.contains(s.as_str()),
                        other => other.matches(v),
                    }),
                }
            }
            Self::And(parts) => parts.iter().all(|p| p.matches(subject)),
            Self::Or(parts) => parts.iter().any(|p| p.matches(subject)),
            Self::Not(inner) => !inner.matches(subject),
        }
    }

    /// The metric types the filter pins with `metric.type = "..."` (positively, outside `NOT`/`OR`).
    pub fn metric_types(&self) -> Vec<&str> {
        match self {
            Self::Compare {
                selector: Selector::MetricType,
                op: Op::Eq,
                matcher: Matcher::Equals(t),
            } => vec![t.as_str()],
            Self::And(parts) => parts.iter().flat_map(|p| p.metric_types()).collect(),
            _ => Vec::new(),
        }
    }

    /// Number of comparisons on `selector` anywhere in the filter.
    pub fn count_selector(&self, selector: &Selector) -> usize {
        match self {
            Self::Compare { selector: s, .. } => usize::from(s == selector),
            Self::And(parts) | Self::Or(parts) => {
                parts.iter().map(|p| p.count_selector(selector)).sum()
            }
            Self::Not(inner) => inner.count_selector(selector),
        }
    }
}

/// Parses a Monitoring filter.
///
/// # Errors
/// A [`FilterError`] naming what was expected and where.
pub fn parse(input: &str) -> Result<Filter, FilterError> {
    let tokens = tokenize(input)?;
    if tokens.is_empty() {
        return Err(FilterError::Empty);
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let filter = parser.or()?;
    match parser.peek() {
        None => Ok(filter),
        Some(token) => Err(parser.unexpected("AND, OR or the end of the filter", token)),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Eq,
    Ne,
    Colon,
    LParen,
    RParen,
    Comma,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Word(w) => write!(f, "{w}"),
            Self::Str(s) => write!(f, "{s:?}"),
            Self::Eq => write!(f, "="),
            Self::Ne => write!(f, "!="),
            Self::Colon => write!(f, ":"),
            Self::LParen => write!(f, "("),
            Self::RParen => write!(f, ")"),
            Self::Comma => write!(f, ","),
        }
    }
}

fn tokenize(input: &str) -> Result<Vec<(usize, Tok)>, FilterError> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(offset, c)) = chars.peek() {
        let token = match c {
            c if c.is_whitespace() => {
                chars.next();
                continue;
            }
            '=' | ':' | '(' | ')' | ',' => {
                chars.next();
                match c {
                    '=' => Tok::Eq,
                    ':' => Tok::Colon,
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    _ => Tok::Comma,
                }
            }
            '!' => {
                chars.next();
                match chars.next() {
                    Some((_, '=')) => Tok::Ne,
                    _ => {
                        return Err(FilterError::Unexpected {
                            expected: "!=",
                            found: "!".into(),
                            offset,
                        })
                    }
                }
            }
            '"' | '\'' => Tok::Str(read_string(&mut chars, offset)?),
            _ => Tok::Word(read_word(&mut chars)),
        };
        tokens.push((offset, token));
    }
    Ok(tokens)
}

fn read_string(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    offset: usize,
) -> Result<String, FilterError> {
    let (_, quote) = chars
        .next()
        .ok_or(FilterError::UnterminatedString { offset })?;
    let mut value = String::new();
    loop {
        match chars.next() {
            None => return Err(FilterError::UnterminatedString { offset }),
            Some((_, '\\')) => match chars.next() {
                Some((_, escaped)) => value.push(escaped),
                None => return Err(FilterError::UnterminatedString { offset }),
            },
            Some((_, c)) if c == quote => return Ok(value),
            Some((_, c)) => value.push(c),
        }
    }
}

fn read_word(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) -> String {
    let mut word = String::new();
    while let Some(&(_, c)) = chars.peek() {
        if c.is_whitespace() || matches!(c, '=' | '!' | ':' | '(' | ')' | ',' | '"' | '\'') {
            break;
        }
        word.push(c);
        chars.next();
    }
    word
}

struct Parser {
    tokens: Vec<(usize, Tok)>,
    pos: usize,
    /// Open `(` and `NOT` around the current position.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&(usize, Tok)> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<(usize, Tok)> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn end_offset(&self) -> usize {
        self.tokens.last().map(|(o, _)| o + 1).unwrap_or(0)
    }

    fn unexpected(&self, expected: &'static str, token: &(usize, Tok)) -> FilterError {
        FilterError::Unexpected {
            expected,
            found: token.1.to_string(),
            offset: token.0,
        }
    }

    fn expect(&mut self, expected: &'static str, want: &Tok) -> Result<(), FilterError> {
        match self.next() {
            Some((_, ref t)) if t == want => Ok(()),
            Some(token) => Err(self.unexpected(expected, &token)),
            None => Err(FilterError::Unexpected {
                expected,
                found: "the end of the filter".into(),
                offset: self.end_offset(),
            }),
        }
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some((_, Tok::Word(w))) if w == keyword)
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut parts = vec![self.and()?];
        while self.is_keyword("OR") {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut parts = vec![self.unary()?];
        loop {
            if self.is_keyword("AND") {
                self.pos += 1;
            } else if self.is_keyword("OR") || matches!(self.peek(), None | Some((_, Tok::RParen)))
            {
                break;
            }
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        let nested = self.is_keyword("NOT") || matches!(self.peek(), Some((_, Tok::LParen)));
        if !nested {
            return self.comparison();
        }
        self.enter()?;
        let filter = if self.is_keyword("NOT") {
            self.pos += 1;
            Filter::Not(Box::new(self.unary()?))
        } else {
            self.pos += 1;
            let inner = self.or()?;
            self.expect(")", &Tok::RParen)?;
            inner
        };
        self.depth -= 1;
        Ok(filter)
    }

    /// One level deeper, refused past [`MAX_NESTING`].
    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(FilterError::TooDeep {
                offset: self
                    .peek()
                    .map_or_else(|| self.end_offset(), |(offset, _)| *offset),
                limit: MAX_NESTING,
            });
        }
        Ok(())
    }

    fn comparison(&mut self) -> Result<Filter, FilterError> {
        let selector = match self.next() {
            Some((offset, Tok::Word(word))) => parse_selector(&word, offset)?,
            Some(token) => return Err(self.unexpected("a selector like metric.type", &token)),
            None => {
                return Err(FilterError::Unexpected {
                    expected: "a selector like metric.type",
                    found: "the end of the filter".into(),
                    offset: self.end_offset(),
                })
            }
        };
        let op = match self.next() {
            Some((_, Tok::Eq)) => Op::Eq,
            Some((_, Tok::Ne)) => Op::Ne,
            Some((_, Tok::Colon)) => Op::Has,
            Some(token) => return Err(self.unexpected("=, != or :", &token)),
            None => {
                return Err(FilterError::Unexpected {
                    expected: "=, != or :",
                    found: "the end of the filter".into(),
                    offset: self.end_offset(),
                })
            }
        };
        let matcher = self.value()?;
        Ok(Filter::Compare {
            selector,
            op,
            matcher,
        })
    }

    fn value(&mut self) -> Result<Matcher, FilterError> {
        match self.next() {
            Some((_, Tok::Str(s))) => Ok(Matcher::Equals(s)),
            Some((offset, Tok::Word(word))) => {
                if matches!(self.peek(), Some((_, Tok::LParen))) {
                    self.pos += 1;
                    self.function(&word, offset)
                } else {
                    Ok(Matcher::Equals(word))
                }
            }
            Some(token) => Err(self.unexpected("a quoted string or a function", &token)),
            None => Err(FilterError::Unexpected {
                expected: "a quoted string or a function",
                found: "the end of the filter".into(),
                offset: self.end_offset(),
            }),
        }
    }

    fn function(&mut self, name: &str, offset: usize) -> Result<Matcher, FilterError> {
        let mut args = vec![self.string_arg()?];
        while matches!(self.peek(), Some((_, Tok::Comma))) {
            self.pos += 1;
            args.push(self.string_arg()?);
        }
        self.expect(")", &Tok::RParen)?;
        let single = |args: Vec<String>| -> Result<String, FilterError> {
            match <[String; 1]>::try_from(args) {
                Ok([arg]) => Ok(arg),
                Err(_) => Err(FilterError::Unexpected {
                    expected: "exactly one argument",
                    found: format!("several arguments to {name}"),
                    offset,
                }),
            }
        };
        match name {
            "starts_with" => Ok(Matcher::StartsWith(single(args)?)),
            "ends_with" => Ok(Matcher::EndsWith(single(args)?)),
            "has_substring" => Ok(Matcher::HasSubstring(single(args)?)),
            "one_of" => Ok(Matcher::OneOf(args)),
            "monitoring.regex.full_match" => {
                let pattern = single(args)?;
                Regex::new(&format!("^(?:{pattern})$"))
                    .map(Matcher::Regex)
                    .map_err(|e| FilterError::BadRegex {
                        pattern,
                        reason: e.to_string(),
                    })
            }
            _ => Err(FilterError::UnknownFunction {
                name: name.to_string(),
                offset,
            }),
        }
    }

    fn string_arg(&mut self) -> Result<String, FilterError> {
        match self.next() {
            Some((_, Tok::Str(s))) => Ok(s),
            Some(token) => Err(self.unexpected("a quoted string argument", &token)),
            None => Err(FilterError::Unexpected {
                expected: "a quoted string argument",
                found: "the end of the filter".into(),
                offset: self.end_offset(),
            }),
        }
    }
}

fn parse_selector(word: &str, offset: usize) -> Result<Selector, FilterError> {
    let label = |prefixes: &[&str]| {
        prefixes
            .iter()
            .find_map(|p| word.strip_prefix(p))
            .filter(|key| !key.is_empty())
            .map(str::to_string)
    };
    let selector = match word {
        "metric.type" => Some(Selector::MetricType),
        "resource.type" => Some(Selector::ResourceType),
        "project" | "resource.labels.project_id" | "resource.label.project_id" => {
            Some(Selector::Project)
        }
        "metric.display_name" => Some(Selector::MetricDisplayName),
        _ => None,
    };
    selector
        .or_else(|| label(&["metric.labels.", "metric.label."]).map(Selector::MetricLabel))
        .or_else(|| label(&["resource.labels.", "resource.label."]).map(Selector::ResourceLabel))
        .or_else(|| {
            label(&["metadata.system_labels.", "metadata.system_label."])
                .map(Selector::SystemMetadataLabel)
        })
        .or_else(|| {
            label(&["metadata.user_labels.", "metadata.user_label."])
                .map(Selector::UserMetadataLabel)
        })
        .ok_or_else(|| FilterError::UnknownSelector {
            selector: word.to_string(),
            offset,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Fields(HashMap<String, String>);

    impl Subject for Fields {
        fn field(&self, selector: &Selector) -> Option<&str> {
            self.0.get(&selector.to_string()).map(String::as_str)
        }
    }

    fn subject() -> Fields {
        Fields(
            [
                (
                    "metric.type",
                    "workload.googleapis.com/http.server.duration",
                ),
                ("resource.type", "generic_task"),
                ("metric.labels.route", "/books/{id}"),
                ("resource.labels.location", "europe-west1"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        )
    }

    fn check(filter: &str) -> bool {
        parse(filter).unwrap().matches(&subject())
    }

    #[test]
    fn evaluates_comparisons_and_functions() {
        assert!(check(
            r#"metric.type = "workload.googleapis.com/http.server.duration" AND resource.type = "generic_task""#
        ));
        assert!(check(
            r#"metric.type = starts_with("workload.googleapis.com/")"#
        ));
        assert!(check(
            r#"resource.label.location = one_of("us-central1", "europe-west1")"#
        ));
        assert!(check(
            r#"metric.labels.route = monitoring.regex.full_match("/books/.*")"#
        ));
        assert!(!check(
            r#"metric.labels.route = monitoring.regex.full_match("books")"#
        ));
        assert!(check(
            r#"metric.labels.route != "/"  resource.type = generic_task"#
        ));
        assert!(check(r#"NOT metric.labels.missing = "x""#));
        assert!(check(r#"metric.labels.missing != "x""#));
        assert!(check(
            r#"resource.type = "gce_instance" OR (metric.labels.route : "books")"#
        ));
        assert!(!check(
            r#"resource.type = "gce_instance" OR metric.labels.route = ends_with("x")"#
        ));
        assert!(check(r#"metric.type = has_substring("server")"#));
    }

    #[test]
    fn reports_typos_clearly() {
        assert!(matches!(
            parse(r#"metric.tpye = "x""#),
            Err(FilterError::UnknownSelector { ref selector, offset: 0 }) if selector == "metric.tpye"
        ));
        assert!(matches!(
            parse(r#"metric.type = startswith("x")"#),
            Err(FilterError::UnknownFunction { .. })
        ));
        assert!(matches!(
            parse(r#"metric.type = "x"#),
            Err(FilterError::UnterminatedString { .. })
        ));
        assert!(parse(r#"metric.type = "x" AND"#).is_err());
        assert!(parse(r#"(metric.type = "x""#).is_err());
        assert!(matches!(parse("  "), Err(FilterError::Empty)));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        for nesting in ["(", "NOT ", "NOT ("] {
            let deep = nesting.repeat(100_000);
            assert!(
                matches!(parse(&deep), Err(FilterError::TooDeep { limit, .. }) if limit == MAX_NESTING),
                "{nesting:?}"
            );
        }
        let at_the_limit = format!(
            "{}metric.type = \"x\"{}",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        );
        assert!(!check(&at_the_limit), "parses, and does not match");
        assert!(matches!(
            parse(&format!("NOT {at_the_limit}")),
            Err(FilterError::TooDeep { .. })
        ));
        let beyond = format!("({at_the_limit})");
        assert!(matches!(
            parse(&beyond),
            Err(FilterError::TooDeep { offset, .. }) if offset == MAX_NESTING
        ));
        // Siblings are not nesting: many parenthesised terms side by side parse.
        let wide = vec![r#"(metric.type = "x")"#; 10_000].join(" OR ");
        assert!(parse(&wide).is_ok());
    }

    #[test]
    fn extracts_the_pinned_metric_type() {
        let f = parse(r#"metric.type = "a" AND resource.type = "b""#).unwrap();
        assert_eq!(f.metric_types(), ["a"]);
        assert_eq!(f.count_selector(&Selector::MetricType), 1);
        let f = parse(r#"metric.type = "a" OR metric.type = "b""#).unwrap();
        assert!(f.metric_types().is_empty());
    }
}

#[cfg(test)]
mod properties {
    //! Generated filters: arbitrary text never panics the parser; every
    //! filter the grammar allows parses, and means what was written (the
    //! parsed filter and a model of the written one agree on random
    //! subjects); what the grammar forbids is refused.

    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::{parse, FilterError, Selector, Subject, MAX_NESTING};

    /// A filter as written: the model the parser must agree with.
    #[derive(Debug, Clone)]
    enum Written {
        Compare {
            selector: (&'static str, Selector),
            op: &'static str,
            value: Value,
        },
        And(Vec<Written>, bool),
        Or(Vec<Written>),
        Not(Box<Written>),
    }

    #[derive(Debug, Clone)]
    enum Value {
        Quoted(String),
        Bare(&'static str),
        StartsWith(String),
        EndsWith(String),
        HasSubstring(String),
        OneOf(Vec<String>),
        /// `monitoring.regex.full_match` of the escaped text: matches it only.
        Literal(String),
    }

    /// Values drawn from a small pool, so that comparisons often match;
    /// with the characters a quoted string must escape.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "",
                "a",
                "ab",
                "b",
                "say \"hi\"",
                "back\\slash",
                "it's",
                "a b",
                "europe-west1",
                "workload.googleapis.com/x",
                "é",
            ])
            .prop_map(str::to_owned),
            "\\PC{0,6}",
        ]
    }

    fn selector() -> impl Strategy<Value = (&'static str, Selector)> {
        prop::sample::select(vec![
            ("metric.type", Selector::MetricType),
            ("resource.type", Selector::ResourceType),
            ("project", Selector::Project),
            ("resource.labels.project_id", Selector::Project),
            ("metric.display_name", Selector::MetricDisplayName),
            ("metric.labels.route", Selector::MetricLabel("route".into())),
            ("metric.label.route", Selector::MetricLabel("route".into())),
            ("metric.labels.code", Selector::MetricLabel("code".into())),
            (
                "resource.labels.location",
                Selector::ResourceLabel("location".into()),
            ),
            (
                "resource.label.location",
                Selector::ResourceLabel("location".into()),
            ),
            (
                "metadata.system_labels.zone",
                Selector::SystemMetadataLabel("zone".into()),
            ),
            (
                "metadata.user_label.team",
                Selector::UserMetadataLabel("team".into()),
            ),
        ])
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            text().prop_map(Value::Quoted),
            prop::sample::select(vec!["a", "ab", "generic_task", "europe-west1", "x/y.z"])
                .prop_map(Value::Bare),
            text().prop_map(Value::StartsWith),
            text().prop_map(Value::EndsWith),
            text().prop_map(Value::HasSubstring),
            prop::collection::vec(text(), 1..4).prop_map(Value::OneOf),
            text().prop_map(Value::Literal),
        ]
    }

    fn written() -> impl Strategy<Value = Written> {
        let comparison = (
            selector(),
            prop::sample::select(vec!["=", "!=", ":"]),
            value(),
        )
            .prop_map(|(selector, op, value)| Written::Compare {
                selector,
                op,
                value,
            });
        comparison.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                (prop::collection::vec(inner.clone(), 2..4), any::<bool>())
                    .prop_map(|(parts, explicit)| Written::And(parts, explicit)),
                prop::collection::vec(inner.clone(), 2..4).prop_map(Written::Or),
                inner.prop_map(|f| Written::Not(Box::new(f))),
            ]
        })
    }

    fn quote(text: &str) -> String {
        let mut quoted = String::from("\"");
        for c in text.chars() {
            if matches!(c, '"' | '\\') {
                quoted.push('\\');
            }
            quoted.push(c);
        }
        quoted.push('"');
        quoted
    }

    impl Written {
        fn render(&self) -> String {
            let nested = |part: &Written| match part {
                Written::Compare { .. } => part.render(),
                _ => format!("({})", part.render()),
            };
            match self {
                Self::Compare {
                    selector,
                    op,
                    value,
                } => {
                    let value = match value {
                        Value::Quoted(s) => quote(s),
                        Value::Bare(word) => (*word).to_owned(),
                        Value::StartsWith(s) => format!("starts_with({})", quote(s)),
                        Value::EndsWith(s) => format!("ends_with({})", quote(s)),
                        Value::HasSubstring(s) => format!("has_substring({})", quote(s)),
                        Value::OneOf(options) => format!(
                            "one_of({})",
                            options
                                .iter()
                                .map(|o| quote(o))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        Value::Literal(s) => {
                            format!("monitoring.regex.full_match({})", quote(&regex::escape(s)))
                        }
                    };
                    format!("{} {op} {value}", selector.0)
                }
                // Without AND between them, adjacent terms are an AND too;
                // except after a bare word before a `(`, which is a call.
                Self::And(parts, explicit) => {
                    let mut text = String::new();
                    for part in parts.iter().map(nested) {
                        if !text.is_empty() {
                            let after_bare_word = !text.ends_with(['"', ')']);
                            let call = after_bare_word && part.starts_with('(');
                            text.push_str(if *explicit || call { " AND " } else { " " });
                        }
                        text.push_str(&part);
                    }
                    text
                }
                Self::Or(parts) => parts.iter().map(nested).collect::<Vec<_>>().join(" OR "),
                Self::Not(inner) => format!("NOT {}", nested(inner)),
            }
        }

        /// What the written filter means, as the module documents it.
        fn holds(&self, subject: &Fields) -> bool {
            match self {
                Self::Compare {
                    selector,
                    op,
                    value,
                } => {
                    let field = subject.field(&selector.1);
                    let matches = |v: &str| match value {
                        Value::Quoted(s) if *op == ":" => v.contains(s.as_str()),
                        Value::Quoted(s) => v == s,
                        Value::Bare(word) if *op == ":" => v.contains(word),
                        Value::Bare(word) => v == *word,
                        Value::StartsWith(s) => v.starts_with(s.as_str()),
                        Value::EndsWith(s) => v.ends_with(s.as_str()),
                        Value::HasSubstring(s) => v.contains(s.as_str()),
                        Value::OneOf(options) => options.iter().any(|o| o == v),
                        Value::Literal(s) => v == s,
                    };
                    let found = field.is_some_and(matches);
                    if *op == "!=" {
                        !found
                    } else {
                        found
                    }
                }
                Self::And(parts, _) => parts.iter().all(|p| p.holds(subject)),
                Self::Or(parts) => parts.iter().any(|p| p.holds(subject)),
                Self::Not(inner) => !inner.holds(subject),
            }
        }
    }

    #[derive(Debug)]
    struct Fields(HashMap<Selector, String>);

    impl Subject for Fields {
        fn field(&self, selector: &Selector) -> Option<&str> {
            self.0.get(selector).map(String::as_str)
        }
    }

    fn subject() -> impl Strategy<Value = Fields> {
        prop::collection::vec((selector(), text()), 0..8).prop_map(|pairs| {
            Fields(
                pairs
                    .into_iter()
                    .map(|((_, selector), value)| (selector, value))
                    .collect(),
            )
        })
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(text in "\\PC{0,80}") {
            let _ = parse(&text);
        }

        #[test]
        fn parsing_filter_like_text_never_panics(
            text in r#"(metric|resource)[.](type|labels[.][a-z]{1,3}) ?(=|!=|:) ?("[a-z/]*"|starts_with[(]"x"[)]|one_of[(]"a","b"|[(]) ?(AND|OR|NOT)?"#
        ) {
            let _ = parse(&text);
        }

        #[test]
        fn parsing_long_punctuation_soup_never_panics(
            text in r#"([()"'\\!=:, ]|NOT |AND |OR |metric[.]type|one_of|x){0,400}"#
        ) {
            let _ = parse(&text);
        }

        #[test]
        fn every_written_filter_parses_and_means_what_was_written(
            filter in written(),
            subjects in prop::collection::vec(subject(), 1..8),
        ) {
            let text = filter.render();
            let parsed = parse(&text)
                .map_err(|error| TestCaseError::fail(format!("{text}: {error}")))?;
            for subject in &subjects {
                prop_assert_eq!(
                    parsed.matches(subject),
                    filter.holds(subject),
                    "{} on {:?}",
                    text,
                    subject
                );
            }
        }

        #[test]
        fn what_the_grammar_forbids_is_refused(
            filter in written(),
            defect in 0..9usize,
            word in prop::sample::select(vec!["metric.tpye", "metric.labels.", "metrics.type", "labels.x", "resource"]),
        ) {
            let valid = filter.render();
            let (text, expected): (String, fn(&FilterError) -> bool) = match defect {
                0 => (format!("{valid} AND"), |e| matches!(e, FilterError::Unexpected { .. })),
                1 => (format!("({valid}"), |e| matches!(e, FilterError::Unexpected { .. })),
                2 => (format!("{valid})"), |e| matches!(e, FilterError::Unexpected { .. })),
                3 => (
                    format!("{valid} AND {word} = \"x\""),
                    |e| matches!(e, FilterError::UnknownSelector { .. }),
                ),
                4 => (
                    format!("{valid} OR metric.type = startswith(\"x\")"),
                    |e| matches!(e, FilterError::UnknownFunction { .. }),
                ),
                5 => (
                    format!("{valid} AND metric.type = \"unterminated"),
                    |e| matches!(e, FilterError::UnterminatedString { .. }),
                ),
                6 => (
                    format!("{valid} AND metric.type = starts_with(\"a\", \"b\")"),
                    |e| matches!(e, FilterError::Unexpected { .. }),
                ),
                7 => (
                    format!("{valid} AND metric.type = monitoring.regex.full_match(\"(\")"),
                    |e| matches!(e, FilterError::BadRegex { .. }),
                ),
                _ => (
                    format!("{}{valid}{}", "(".repeat(MAX_NESTING + 1), ")".repeat(MAX_NESTING + 1)),
                    |e| matches!(e, FilterError::TooDeep { .. }),
                ),
            };
            match parse(&text) {
                Ok(parsed) => prop_assert!(false, "accepted {}: {:?}", text, parsed),
                Err(error) => prop_assert!(expected(&error), "{}: {:?}", text, error),
            }
        }
    }
}
