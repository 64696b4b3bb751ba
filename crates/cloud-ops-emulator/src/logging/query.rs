//! Cloud Logging's query language, the subset that log-based metrics and
//! log views use (`gcp-api-rules.md`, L1): comparisons `=`, `!=`, `<`, `<=`,
//! `>`, `>=`, `:` (has), `=~`/`!~` (regex) on LogEntry fields; `AND`, `OR`,
//! `NOT` (uppercase; adjacency means AND; `-` negates); parentheses; a
//! parenthesised right-hand side (`resource.labels.service_name=("a" OR "b")`);
//! bare terms as a global text search.
//!
//! String comparisons are case-insensitive, regexes case-sensitive, as
//! Cloud Logging's are; severities compare by rank (DEBUG < INFO < ... <
//! EMERGENCY). A query that names a LogEntry field that does not exist
//! (`jsonPaylod.x`, `severty`) is an error: in Cloud Logging it would match
//! nothing, silently, which is exactly the typo a test should catch.
//!
//! Entries are evaluated as JSON in the shape of Cloud Logging's LogEntry
//! (`severity`, `resource.type`, `resource.labels`, `jsonPayload`,
//! `httpRequest`, `labels`, `trace`, `spanId`, `textPayload`, ...).
//!
//! Why one file: the Logging query language's lexer, parser and matcher
//! change together, like the Monitoring filter's.

use std::fmt;

use regex::Regex;
use serde_json::Value;
use thiserror::Error;

/// A query that does not parse, with where.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{message} at offset {offset} in log filter {query:?}")]
pub struct LogFilterError {
    pub message: String,
    pub offset: usize,
    pub query: String,
}

/// A parsed query.
#[derive(Clone, Debug)]
pub struct LogFilter {
    expression: Option<Expr>,
}

#[derive(Clone, Debug)]
enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Compare {
        path: Vec<String>,
        op: Op,
        values: ValueExpr,
    },
    Search(String),
}

/// The right-hand side: one value, or a parenthesised `OR`/`AND` of values.
#[derive(Clone, Debug)]
enum ValueExpr {
    One(Literal),
    Any(Vec<Literal>),
    All(Vec<Literal>),
}

#[derive(Clone, Debug)]
struct Literal {
    text: String,
    regex: Option<Regex>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Has,
    Matches,
    NotMatches,
}

/// LogEntry's top-level fields.
const LOG_ENTRY_FIELDS: &[&str] = &[
    "logName",
    "log_name",
    "resource",
    "timestamp",
    "receiveTimestamp",
    "receive_timestamp",
    "severity",
    "insertId",
    "insert_id",
    "httpRequest",
    "http_request",
    "labels",
    "metadata",
    "operation",
    "trace",
    "spanId",
    "span_id",
    "traceSampled",
    "trace_sampled",
    "sourceLocation",
    "source_location",
    "textPayload",
    "text_payload",
    "jsonPayload",
    "json_payload",
    "protoPayload",
    "proto_payload",
    "split",
    "errorGroups",
];

const SEVERITIES: &[&str] = &[
    "DEFAULT",
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "ALERT",
    "EMERGENCY",
];

impl LogFilter {
    /// Parses `query`; an empty query matches every entry.
    pub fn parse(query: &str) -> Result<Self, LogFilterError> {
        let tokens = tokenize(query)?;
        let mut parser = Parser {
            query,
            tokens,
            position: 0,
            depth: 0,
        };
        if parser.tokens.is_empty() {
            return Ok(Self { expression: None });
        }
        let expression = parser.or_expr()?;
        if let Some(token) = parser.peek() {
            return Err(parser.error(format!("unexpected {}", token.kind), token.offset));
        }
        Ok(Self {
            expression: Some(expression),
        })
    }

    /// Whether `entry` (a LogEntry as JSON) matches.
    pub fn matches(&self, entry: &Value) -> bool {
        self.expression
            .as_ref()
            .is_none_or(|expression| expression.matches(entry))
    }
}

impl Expr {
    fn matches(&self, entry: &Value) -> bool {
        match self {
            Self::And(parts) => parts.iter().all(|part| part.matches(entry)),
            Self::Or(parts) => parts.iter().any(|part| part.matches(entry)),
            Self::Not(inner) => !inner.matches(entry),
            Self::Search(text) => contains_text(entry, &text.to_lowercase()),
            Self::Compare { path, op, values } => {
                let found = lookup(entry, path);
                match values {
                    ValueExpr::One(literal) => compare(path, found, *op, literal),
                    ValueExpr::Any(literals) => {
                        literals.iter().any(|l| compare(path, found, *op, l))
                    }
                    ValueExpr::All(literals) => {
                        literals.iter().all(|l| compare(path, found, *op, l))
                    }
                }
            }
        }
    }
}

/// The value at `path`, accepting snake_case for the camelCase LogEntry
/// fields as Cloud Logging does.
fn lookup<'a>(entry: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut current = entry;
    for segment in path {
        let object = current.as_object()?;
        current = object
            .get(segment)
            .or_else(|| object.get(&snake_to_camel(segment)))?;
    }
    Some(current)
}

/// `http_request` -> `httpRequest`: LogEntry fields have both spellings.
pub(crate) fn snake_to_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn compare(path: &[String], found: Option<&Value>, op: Op, literal: &Literal) -> bool {
    // `field:*` is "the field exists".
    if op == Op::Has && literal.text == "*" {
        return found.is_some_and(|value| !value.is_null());
    }
    let Some(found) = found.filter(|value| !value.is_null()) else {
        // A missing field equals nothing, and so is "not equal" to anything.
        return op == Op::Ne || op == Op::NotMatches;
    };
    if path.len() == 1 && path[0] == "severity" {
        if let (Some(left), Some(right)) = (severity_rank(found), severity_rank_text(&literal.text))
        {
            return ordered(op, left.cmp(&right));
        }
    }
    let text = match found {
        Value::String(text) => text.clone(),
        Value::Object(_) | Value::Array(_) => {
            return op == Op::Has && contains_text(found, &literal.text.to_lowercase());
        }
        other => other.to_string(),
    };
    match op {
        Op::Matches => literal.regex.as_ref().is_some_and(|re| re.is_match(&text)),
        Op::NotMatches => !literal.regex.as_ref().is_some_and(|re| re.is_match(&text)),
        Op::Has => text.to_lowercase().contains(&literal.text.to_lowercase()),
        _ => match (text.parse::<f64>(), literal.text.parse::<f64>()) {
            (Ok(left), Ok(right)) => left
                .partial_cmp(&right)
                .is_some_and(|ordering| ordered(op, ordering)),
            _ => ordered(op, text.to_lowercase().cmp(&literal.text.to_lowercase())),
        },
    }
}

fn ordered(op: Op, ordering: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Op::Eq => ordering == Equal,
        Op::Ne => ordering != Equal,
        Op::Lt => ordering == Less,
        Op::Le => ordering != Greater,
        Op::Gt => ordering == Greater,
        Op::Ge => ordering != Less,
        Op::Has | Op::Matches | Op::NotMatches => false,
    }
}

fn severity_rank(value: &Value) -> Option<usize> {
    match value {
        Value::String(text) => severity_rank_text(text),
        Value::Number(number) => number.as_u64().map(|n| (n / 100) as usize),
        _ => None,
    }
}

/// DEFAULT=0, DEBUG=1, ... EMERGENCY=8; numbers as LogSeverity's (100 = DEBUG).
fn severity_rank_text(text: &str) -> Option<usize> {
    let upper = text.to_ascii_uppercase();
    SEVERITIES
        .iter()
        .position(|name| *name == upper)
        .or_else(|| text.parse::<u64>().ok().map(|n| (n / 100) as usize))
}

/// Global search: does any string or number in `value` contain `needle`
/// (already lowercase)?
fn contains_text(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(text) => text.to_lowercase().contains(needle),
        Value::Number(number) => number.to_string().contains(needle),
        Value::Bool(flag) => flag.to_string() == needle,
        Value::Array(items) => items.iter().any(|item| contains_text(item, needle)),
        Value::Object(map) => map.values().any(|item| contains_text(item, needle)),
        Value::Null => false,
    }
}

// ---- tokens ----

#[derive(Clone, Debug, PartialEq)]
enum TokenKind {
    /// An unquoted word: a field path, a value, `AND`/`OR`/`NOT`.
    Word(String),
    Quoted(String),
    Op(Op),
    LParen,
    RParen,
    Minus,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Word(word) => write!(f, "{word:?}"),
            Self::Quoted(text) => write!(f, "string {text:?}"),
            Self::Op(op) => write!(f, "operator {op:?}"),
            Self::LParen => f.write_str("'('"),
            Self::RParen => f.write_str("')'"),
            Self::Minus => f.write_str("'-'"),
        }
    }
}

#[derive(Clone, Debug)]
struct Token {
    kind: TokenKind,
    offset: usize,
}

fn tokenize(query: &str) -> Result<Vec<Token>, LogFilterError> {
    let error = |message: String, offset: usize| LogFilterError {
        message,
        offset,
        query: query.to_owned(),
    };
    let bytes = query.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => {
                i += 1;
                TokenKind::LParen
            }
            b')' => {
                i += 1;
                TokenKind::RParen
            }
            b'"' => {
                let (text, end) =
                    quoted(query, i).ok_or_else(|| error("unterminated string".into(), i))?;
                i = end;
                TokenKind::Quoted(text)
            }
            b'=' if bytes.get(i + 1) == Some(&b'~') => {
                i += 2;
                TokenKind::Op(Op::Matches)
            }
            b'!' if bytes.get(i + 1) == Some(&b'~') => {
                i += 2;
                TokenKind::Op(Op::NotMatches)
            }
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                i += 2;
                TokenKind::Op(Op::Ne)
            }
            b'<' | b'>' => {
                let or_equal = bytes.get(i + 1) == Some(&b'=');
                i += 1 + usize::from(or_equal);
                TokenKind::Op(match (c, or_equal) {
                    (b'<', false) => Op::Lt,
                    (b'<', true) => Op::Le,
                    (_, false) => Op::Gt,
                    (_, true) => Op::Ge,
                })
            }
            b'=' => {
                i += 1;
                TokenKind::Op(Op::Eq)
            }
            b':' => {
                i += 1;
                TokenKind::Op(Op::Has)
            }
            b'-' if tokens
                .last()
                .is_none_or(|t: &Token| !matches!(t.kind, TokenKind::Op(_))) =>
            {
                i += 1;
                TokenKind::Minus
            }
            b'!' => return Err(error("'!' must be followed by '=' or '~'".into(), i)),
            _ => {
                while i < bytes.len() && !b" \t\n\r()\"=!<>:".contains(&bytes[i]) {
                    i += 1;
                }
                // A field path may contain quoted segments: labels."a/b".
                while i < bytes.len() && bytes[i] == b'"' && query[start..i].ends_with('.') {
                    let (_, end) =
                        quoted(query, i).ok_or_else(|| error("unterminated string".into(), i))?;
                    i = end;
                    while i < bytes.len() && !b" \t\n\r()\"=!<>:".contains(&bytes[i]) {
                        i += 1;
                    }
                }
                TokenKind::Word(query[start..i].to_owned())
            }
        };
        tokens.push(Token {
            kind,
            offset: start,
        });
    }
    Ok(tokens)
}

/// The string starting at the quote at `start`, unescaped, and the offset
/// after its closing quote.
fn quoted(query: &str, start: usize) -> Option<(String, usize)> {
    let mut text = String::new();
    let mut chars = query[start + 1..].char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => return Some((text, start + 1 + index + 1)),
            '\\' => text.push(chars.next()?.1),
            other => text.push(other),
        }
    }
    None
}

// ---- parser ----

struct Parser<'a> {
    query: &'a str,
    tokens: Vec<Token>,
    position: usize,
    /// Nesting of `NOT`, `-` and parentheses so far, see [`MAX_NESTING`].
    depth: usize,
}

/// Deepest nesting accepted: every level is a recursive call, and a query
/// of a few kilobytes of `(` or `NOT` must not overflow the stack (the
/// console parses queries from the URL). Real queries nest a few levels.
const MAX_NESTING: usize = 64;

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    fn error(&self, message: String, offset: usize) -> LogFilterError {
        LogFilterError {
            message,
            offset,
            query: self.query.to_owned(),
        }
    }

    fn end_offset(&self) -> usize {
        self.query.len()
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token { kind: TokenKind::Word(w), .. }) if w == word)
    }

    fn or_expr(&mut self) -> Result<Expr, LogFilterError> {
        let mut parts = vec![self.and_expr()?];
        while self.is_word("OR") {
            self.next();
            parts.push(self.and_expr()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn and_expr(&mut self) -> Result<Expr, LogFilterError> {
        let mut parts = vec![self.unary()?];
        loop {
            match self.peek() {
                None => break,
                Some(Token {
                    kind: TokenKind::RParen,
                    ..
                }) => break,
                Some(_) if self.is_word("OR") => break,
                Some(_) if self.is_word("AND") => {
                    self.next();
                    parts.push(self.unary()?);
                }
                // Adjacency means AND.
                Some(_) => parts.push(self.unary()?),
            }
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Expr, LogFilterError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            let offset = self.peek().map_or_else(|| self.end_offset(), |t| t.offset);
            return Err(self.error(
                format!("expressions nested deeper than {MAX_NESTING} levels"),
                offset,
            ));
        }
        let expression = self.unary_at_depth();
        self.depth -= 1;
        expression
    }

    fn unary_at_depth(&mut self) -> Result<Expr, LogFilterError> {
        if self.is_word("NOT") {
            self.next();
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if matches!(
            self.peek(),
            Some(Token {
                kind: TokenKind::Minus,
                ..
            })
        ) {
            self.next();
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, LogFilterError> {
        let offset = self.end_offset();
        let token = self
            .next()
            .ok_or_else(|| self.error("expected a comparison".into(), offset))?;
        match token.kind {
            TokenKind::LParen => {
                let inner = self.or_expr()?;
                self.expect_rparen(token.offset)?;
                Ok(inner)
            }
            TokenKind::Quoted(text) => Ok(Expr::Search(text)),
            TokenKind::Word(word) if matches!(word.as_str(), "AND" | "OR") => Err(self.error(
                format!("{word} needs an expression on its left"),
                token.offset,
            )),
            TokenKind::Word(word) => match self.peek() {
                Some(Token {
                    kind: TokenKind::Op(op),
                    ..
                }) => {
                    let op = *op;
                    self.next();
                    let path = self.field_path(&word, token.offset)?;
                    let values = self.values(op)?;
                    if path.len() == 1 && path[0] == "severity" {
                        self.check_severities(&values, token.offset)?;
                    }
                    Ok(Expr::Compare { path, op, values })
                }
                _ => Ok(Expr::Search(word)),
            },
            other => Err(self.error(format!("unexpected {other}"), token.offset)),
        }
    }

    fn expect_rparen(&mut self, open: usize) -> Result<(), LogFilterError> {
        match self.next() {
            Some(Token {
                kind: TokenKind::RParen,
                ..
            }) => Ok(()),
            _ => Err(self.error("unbalanced '('".into(), open)),
        }
    }

    /// `jsonPayload.a.b`, `labels."x/y"`; the first segment must be a LogEntry field.
    fn field_path(&self, word: &str, offset: usize) -> Result<Vec<String>, LogFilterError> {
        let mut segments = Vec::new();
        let mut rest = word;
        while !rest.is_empty() {
            if rest.starts_with('"') {
                let (text, end) = quoted(rest, 0)
                    .ok_or_else(|| self.error("unterminated string".into(), offset))?;
                segments.push(text);
                rest = rest[end..].strip_prefix('.').unwrap_or(&rest[end..]);
            } else {
                let (segment, tail) = rest.split_once('.').unwrap_or((rest, ""));
                if segment.is_empty() {
                    return Err(self.error(format!("empty field name in {word:?}"), offset));
                }
                segments.push(segment.to_owned());
                rest = tail;
            }
        }
        let first = segments.first().map(String::as_str).unwrap_or_default();
        if !LOG_ENTRY_FIELDS.contains(&first) {
            return Err(self.error(
                format!("unknown LogEntry field {first:?} (expected one of severity, resource, jsonPayload, httpRequest, labels, logName, textPayload, trace, spanId, timestamp, ...)"),
                offset,
            ));
        }
        Ok(segments)
    }

    fn values(&mut self, op: Op) -> Result<ValueExpr, LogFilterError> {
        let offset = self.end_offset();
        let token = self
            .next()
            .ok_or_else(|| self.error("expected a value after the operator".into(), offset))?;
        match token.kind {
            TokenKind::LParen => {
                let mut literals = vec![self.literal(op)?];
                let mut joiner: Option<String> = None;
                loop {
                    match self.next() {
                        Some(Token {
                            kind: TokenKind::RParen,
                            ..
                        }) => break,
                        Some(Token {
                            kind: TokenKind::Word(word),
                            offset,
                        }) if word == "OR" || word == "AND" => {
                            if joiner.as_ref().is_some_and(|j| *j != word) {
                                return Err(self.error(
                                    "mixing AND and OR in one value list needs parentheses".into(),
                                    offset,
                                ));
                            }
                            joiner = Some(word);
                            literals.push(self.literal(op)?);
                        }
                        _ => {
                            return Err(
                                self.error("unbalanced '(' in a value list".into(), token.offset)
                            )
                        }
                    }
                }
                Ok(match joiner.as_deref() {
                    Some("AND") => ValueExpr::All(literals),
                    _ => ValueExpr::Any(literals),
                })
            }
            TokenKind::Word(text) | TokenKind::Quoted(text) => {
                Ok(ValueExpr::One(self.make_literal(op, text, token.offset)?))
            }
            other => Err(self.error(format!("expected a value, found {other}"), token.offset)),
        }
    }

    fn literal(&mut self, op: Op) -> Result<Literal, LogFilterError> {
        let offset = self.end_offset();
        match self.next() {
            Some(Token {
                kind: TokenKind::Word(text) | TokenKind::Quoted(text),
                offset,
            }) => self.make_literal(op, text, offset),
            Some(token) => Err(self.error(
                format!("expected a value, found {}", token.kind),
                token.offset,
            )),
            None => Err(self.error("expected a value".into(), offset)),
        }
    }

    fn make_literal(&self, op: Op, text: String, offset: usize) -> Result<Literal, LogFilterError> {
        let regex = match op {
            Op::Matches | Op::NotMatches => Some(Regex::new(&text).map_err(|error| {
                self.error(format!("invalid regular expression: {error}"), offset)
            })?),
            _ => None,
        };
        Ok(Literal { text, regex })
    }

    fn check_severities(&self, values: &ValueExpr, offset: usize) -> Result<(), LogFilterError> {
        let literals = match values {
            ValueExpr::One(literal) => std::slice::from_ref(literal),
            ValueExpr::Any(literals) | ValueExpr::All(literals) => literals.as_slice(),
        };
        for literal in literals {
            if severity_rank_text(&literal.text).is_none() {
                return Err(self.error(
                    format!("unknown severity {:?} (expected DEFAULT, DEBUG, INFO, NOTICE, WARNING, ERROR, CRITICAL, ALERT or EMERGENCY)", literal.text),
                    offset,
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> Value {
        json!({
            "severity": "ERROR",
            "resource": {"type": "cloud_run_revision", "labels": {"service_name": "cloudrun-obs-frontend"}},
            "jsonPayload": {"errorType": "downstream_failure", "dependency": "payments", "latencyMs": "12.5",
                             "message": "could not charge the payment"},
            "httpRequest": {"status": 502, "requestMethod": "POST"},
            "labels": {"logging.googleapis.com/x": "y"},
        })
    }

    #[test]
    fn nesting_is_bounded_instead_of_overflowing_the_stack() {
        for deep in [
            "(".repeat(100_000),
            "NOT ".repeat(100_000),
            "-".repeat(100_000),
        ] {
            let error = LogFilter::parse(&deep).unwrap_err();
            assert!(error.message.contains("nested deeper than 64"), "{error}");
        }
        let fine = format!("{}severity=ERROR{}", "(".repeat(60), ")".repeat(60));
        assert!(LogFilter::parse(&fine).is_ok());
    }

    fn matches(query: &str) -> bool {
        LogFilter::parse(query)
            .unwrap_or_else(|error| panic!("{error}"))
            .matches(&entry())
    }

    #[test]
    fn the_deployments_filters_match_as_cloud_logging_would() {
        let base = r#"resource.type="cloud_run_revision" AND resource.labels.service_name=("cloudrun-obs-frontend" OR "cloudrun-obs-backend")"#;
        assert!(matches(&format!("{base} AND severity>=ERROR")));
        assert!(matches(&format!(
            r#"{base} AND severity>=ERROR AND jsonPayload.dependency="payments""#
        )));
        assert!(matches(&format!("{base} AND jsonPayload.latencyMs>=0")));
        assert!(!matches(&format!(
            r#"{base} AND jsonPayload.dependency="inventory""#
        )));
        assert!(!matches(r#"resource.labels.service_name=("a" OR "b")"#));
    }

    #[test]
    fn severities_compare_by_rank() {
        assert!(matches("severity>=WARNING"));
        assert!(matches("severity>INFO"));
        assert!(!matches("severity>=CRITICAL"));
        assert!(matches("severity=error"));
        assert!(matches("severity!=INFO"));
    }

    #[test]
    fn numbers_compare_as_numbers_and_strings_case_insensitively() {
        assert!(matches("httpRequest.status>=500"));
        assert!(matches("httpRequest.status<600"));
        assert!(!matches("httpRequest.status=200"));
        assert!(matches("jsonPayload.latencyMs>9"));
        assert!(matches(r#"httpRequest.requestMethod="post""#));
        assert!(matches(r#"http_request.request_method="POST""#));
    }

    #[test]
    fn has_exists_regex_search_and_negation() {
        assert!(matches("jsonPayload.message:charge"));
        assert!(matches("jsonPayload.errorType:*"));
        assert!(!matches("jsonPayload.missing:*"));
        assert!(matches(r#"jsonPayload.errorType=~"^down""#));
        assert!(
            !matches(r#"jsonPayload.errorType=~"^Down""#),
            "regexes are case-sensitive"
        );
        assert!(matches(r#"jsonPayload.errorType!~"panic""#));
        assert!(matches("payments"));
        assert!(matches(r#""could not charge""#));
        assert!(matches("NOT severity=INFO"));
        assert!(matches("-severity=INFO"));
        assert!(matches(
            r#"severity=INFO OR jsonPayload.dependency="payments""#
        ));
        assert!(matches(
            r#"(severity=INFO OR severity=ERROR) httpRequest.status=502"#
        ));
        assert!(matches(r#"labels."logging.googleapis.com/x"="y""#));
    }

    #[test]
    fn typos_are_errors_with_their_offset() {
        for (query, expected) in [
            (
                "jsonPaylod.dependency=\"payments\"",
                "unknown LogEntry field \"jsonPaylod\"",
            ),
            ("severity>=EROR", "unknown severity \"EROR\""),
            ("severity>=ERROR AND", "expected a comparison"),
            ("(severity=ERROR", "unbalanced '('"),
            ("severity=ERROR)", "unexpected ')'"),
            ("jsonPayload.x=\"unterminated", "unterminated string"),
            ("jsonPayload.x=~\"(\"", "invalid regular expression"),
            ("jsonPayload.x=", "expected a value"),
            ("AND severity=ERROR", "AND needs an expression on its left"),
        ] {
            let error = LogFilter::parse(query).unwrap_err();
            assert!(error.message.contains(expected), "{query}: {error}");
        }
        let error = LogFilter::parse("severity=ERROR AND jsonPaylod.x=1").unwrap_err();
        assert_eq!(error.offset, 19);
    }

    #[test]
    fn an_empty_query_matches_everything() {
        assert!(LogFilter::parse("  ").unwrap().matches(&json!({})));
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(query in ".{0,120}") {
            if let Ok(filter) = LogFilter::parse(&query) {
                let _ = filter.matches(&entry());
            }
        }
    }
}
