//! Small readers of `serde_json` values that log entries and evaluated
//! Terraform resources share: scalars as text, numbers from strings, and
//! blocks given as an object or a one-element list.

use serde_json::{Map, Value};

/// A string, or a number or boolean as text; `None` for null and structures.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A number, or a string holding one.
pub fn as_f64(value: &Value) -> Option<f64> {
    value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

/// A block's object: itself, or the first of a one-block list.
pub fn first_object(value: &Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(object) => Some(object.clone()),
        Value::Array(items) => items.first().and_then(Value::as_object).cloned(),
        _ => None,
    }
}

/// Every instance of a nested block: Terraform's JSON gives a list of
/// objects (or one object).
pub fn blocks<'a>(value: &'a Value, key: &str) -> Vec<&'a Value> {
    match &value[key] {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![&value[key]],
        _ => Vec::new(),
    }
}

/// A string argument, empty when absent.
pub fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_owned()
}

/// Absent in Terraform's sense: `null`, an empty list or an empty block.
pub fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(object) => object.is_empty(),
        _ => false,
    }
}
