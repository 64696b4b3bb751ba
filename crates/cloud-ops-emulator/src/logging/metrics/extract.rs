//! Extractors: `EXTRACT(field)` and `REGEXP_EXTRACT(field, "re")` over a
//! log entry as Cloud Logging JSON, and the typed label extractors of a
//! log-based metric (L2: a failed extraction gives the type's default).

use std::fmt::Debug;

use gcloud_sdk::google::api::label_descriptor;
use regex::Regex;
use serde_json::Value;

use crate::logging::query::snake_to_camel;

/// Monitoring's limit on a label value (M10); longer extracted values are
/// cut rather than having the whole point rejected.
const MAX_LABEL_VALUE_CHARS: usize = 1024;
/// The LogEntry fields an extractor may start from.
const EXTRACTABLE_FIELDS: &[&str] = &[
    "jsonPayload",
    "textPayload",
    "httpRequest",
    "labels",
    "resource",
    "severity",
    "trace",
    "spanId",
    "sourceLocation",
    "logName",
    "insertId",
    "timestamp",
    "operation",
];

/// `EXTRACT(field)` or `REGEXP_EXTRACT(field, "re")`: a value taken from a
/// LogEntry (as Cloud Logging JSON).
#[derive(Clone, Debug)]
pub struct Extractor {
    path: Vec<String>,
    regex: Option<Regex>,
    expression: String,
}

impl Extractor {
    /// Parses an extractor expression.
    ///
    /// # Errors
    /// A message saying what is wrong: not one of the two functions, an
    /// unknown LogEntry field, a regex that does not compile or that has not
    /// exactly one capture group.
    pub fn parse(expression: &str) -> Result<Self, String> {
        let text = expression.trim();
        let (path, regex) = if let Some(inner) = call_argument(text, "REGEXP_EXTRACT") {
            let (field, literal) = split_field_and_literal(inner)?;
            (parse_field_path(field)?, Some(parse_regex(literal)?))
        } else if let Some(inner) = call_argument(text, "EXTRACT") {
            (parse_field_path(inner)?, None)
        } else {
            return Err(format!(
                "{text:?} is neither EXTRACT(field) nor REGEXP_EXTRACT(field, \"regex\")"
            ));
        };
        Ok(Self {
            path,
            regex,
            expression: text.to_owned(),
        })
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The extracted text, `None` when the field is missing, not a scalar,
    /// or the regex does not match.
    pub fn extract(&self, entry: &Value) -> Option<String> {
        let text = scalar_text(lookup(entry, &self.path)?)?;
        match &self.regex {
            None => Some(text),
            Some(regex) => regex
                .captures(&text)
                .and_then(|captures| captures.get(1))
                .map(|group| group.as_str().to_owned()),
        }
    }
}

/// `NAME( ... )`'s argument text, when `text` is that call.
fn call_argument<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(name)?.trim_start();
    rest.strip_prefix('(')?.strip_suffix(')').map(str::trim)
}

/// `field, "literal"`: split at the first comma outside quotes.
fn split_field_and_literal(inner: &str) -> Result<(&str, &str), String> {
    let mut quoted = false;
    for (i, c) in inner.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => return Ok((inner[..i].trim(), inner[i + 1..].trim())),
            _ => {}
        }
    }
    Err(format!(
        "REGEXP_EXTRACT({inner}) needs a field and a quoted regex"
    ))
}

/// A `"..."` literal's content: `\"` is a quote, other escapes stay for the regex.
fn parse_regex(literal: &str) -> Result<Regex, String> {
    let body = literal
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .ok_or_else(|| format!("the regex {literal} must be a double-quoted string"))?;
    let pattern = body.replace("\\\"", "\"");
    let regex = Regex::new(&pattern).map_err(|error| format!("bad regex {pattern:?}: {error}"))?;
    // captures_len counts the whole match as group 0.
    match regex.captures_len() - 1 {
        1 => Ok(regex),
        groups => Err(format!(
            "the regex {pattern:?} must have exactly one capture group, it has {groups}"
        )),
    }
}

/// `jsonPayload.a."b.c"` into its segments, the first a LogEntry field.
fn parse_field_path(field: &str) -> Result<Vec<String>, String> {
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in field.trim().chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => segments.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    segments.push(current);
    if quoted || segments.iter().any(|s| s.trim().is_empty()) {
        return Err(format!("{field:?} is not a field path"));
    }
    let first = snake_to_camel(&segments[0]);
    if !EXTRACTABLE_FIELDS.contains(&first.as_str()) {
        return Err(format!(
            "{field:?} does not start with a LogEntry field ({})",
            EXTRACTABLE_FIELDS.join(", ")
        ));
    }
    segments[0] = first;
    Ok(segments)
}

/// The value at `path`, accepting snake_case for camelCase LogEntry fields
/// (`http_request.status`), as Cloud Logging does.
fn lookup<'a>(entry: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(entry, |current, segment| {
        let object = current.as_object()?;
        object
            .get(segment)
            .or_else(|| object.get(&snake_to_camel(segment)))
    })
}

/// A string, number or boolean as text; objects, arrays and null are not extractable.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// The value type of a log metric label: what its default is when extraction fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelType {
    String,
    Int64,
    Bool,
}

impl LabelType {
    pub(crate) fn descriptor_type(self) -> label_descriptor::ValueType {
        match self {
            Self::String => label_descriptor::ValueType::String,
            Self::Int64 => label_descriptor::ValueType::Int64,
            Self::Bool => label_descriptor::ValueType::Bool,
        }
    }

    /// L2: the extracted text as this type, or the type's default.
    pub(crate) fn label_value(self, extracted: Option<String>) -> String {
        match self {
            Self::String => extracted
                .map(|text| text.chars().take(MAX_LABEL_VALUE_CHARS).collect())
                .unwrap_or_default(),
            Self::Int64 => extracted
                .and_then(|text| text.trim().parse::<i64>().ok())
                .unwrap_or(0)
                .to_string(),
            Self::Bool => extracted
                .and_then(|text| text.trim().to_ascii_lowercase().parse::<bool>().ok())
                .unwrap_or(false)
                .to_string(),
        }
    }
}

/// One metric label and how its value is taken from an entry.
#[derive(Clone, Debug)]
pub struct LabelExtractor {
    pub key: String,
    pub label_type: LabelType,
    pub extractor: Extractor,
}
