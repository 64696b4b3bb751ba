//! The one reader of an evaluated Terraform resource's arguments, as JSON
//! (`ResourceInstance::to_json`): log-based metrics, uptime checks and alert
//! policies all read their blocks, strings and flags through it, so that a
//! block given once or as a one-element list, a `null` and an empty list
//! mean the same everywhere, and every error names the resource's address.

use serde_json::{Map, Value};
use thiserror::Error;

use crate::json::{first_object, is_empty, scalar_text};

/// An argument the emulator cannot take, with the resource that has it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArgumentError {
    #[error("{address}: {field} is required")]
    Missing { address: String, field: String },
    #[error("{address}: {field}: {message}")]
    Invalid {
        address: String,
        field: String,
        message: String,
    },
    #[error("{address}: {what} is not supported by the emulator")]
    Unsupported { address: String, what: String },
}

/// A resource's (or a nested block's) arguments with the resource's address.
#[derive(Debug, Clone, Copy)]
pub struct Arguments<'a> {
    address: &'a str,
    json: &'a Value,
}

impl<'a> Arguments<'a> {
    pub fn new(address: &'a str, json: &'a Value) -> Self {
        Self { address, json }
    }

    pub fn address(&self) -> &'a str {
        self.address
    }

    /// The argument, unless it is absent, `null` or an empty list.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.json.get(key).filter(|value| !is_empty(value))
    }

    pub fn str(&self, key: &str) -> Option<String> {
        self.get(key).and_then(scalar_text)
    }

    pub fn required_str(&self, key: &str) -> Result<String, ArgumentError> {
        self.str(key).ok_or_else(|| self.missing(key))
    }

    /// `true` or `"true"`; anything else is false, as an absent flag is.
    pub fn bool(&self, key: &str) -> bool {
        match self.get(key) {
            Some(Value::Bool(flag)) => *flag,
            Some(Value::String(text)) => text == "true",
            _ => false,
        }
    }

    /// A nested block that may appear once: `None` when absent.
    pub fn block(&self, key: &str) -> Result<Option<Map<String, Value>>, ArgumentError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) if items.len() > 1 => {
                Err(self.invalid(key, "expected one block".into()))
            }
            Some(value) => first_object(value)
                .map(Some)
                .ok_or_else(|| self.invalid(key, "expected a block".into())),
        }
    }

    pub fn missing(&self, field: &str) -> ArgumentError {
        ArgumentError::Missing {
            address: self.address.to_owned(),
            field: field.to_owned(),
        }
    }

    pub fn invalid(&self, field: &str, message: String) -> ArgumentError {
        ArgumentError::Invalid {
            address: self.address.to_owned(),
            field: field.to_owned(),
            message,
        }
    }

    pub fn unsupported(&self, what: &str) -> ArgumentError {
        ArgumentError::Unsupported {
            address: self.address.to_owned(),
            what: what.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_block_may_be_an_object_or_a_one_element_list() {
        let json = json!({"a": {"x": 1}, "b": [{"x": 2}], "c": [], "d": [{}, {}], "e": null});
        let args = Arguments::new("google_x.y", &json);
        assert_eq!(args.block("a").unwrap().unwrap()["x"], 1);
        assert_eq!(args.block("b").unwrap().unwrap()["x"], 2);
        assert_eq!(args.block("c").unwrap(), None);
        assert_eq!(args.block("e").unwrap(), None);
        assert!(matches!(
            args.block("d"),
            Err(ArgumentError::Invalid { field, .. }) if field == "d"
        ));
        assert_eq!(
            args.required_str("missing").unwrap_err().to_string(),
            "google_x.y: missing is required"
        );
    }

    #[test]
    fn flags_and_scalars_read_as_terraform_writes_them() {
        let json = json!({"t": true, "s": "true", "n": 3, "f": "2.5", "x": false});
        let args = Arguments::new("r", &json);
        assert!(args.bool("t") && args.bool("s") && !args.bool("x") && !args.bool("absent"));
        assert_eq!(args.str("n").as_deref(), Some("3"));
        assert_eq!(crate::json::as_f64(&json["f"]), Some(2.5));
    }
}
