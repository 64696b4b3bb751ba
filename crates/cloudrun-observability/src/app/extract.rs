//! Request extractors that answer bad input with [`AppError`]'s JSON body
//! instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, Request};
use http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::error::AppError;
use super::server::BodyReadTimeout;

/// The largest request body accepted; anything above is answered 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON request body. Syntax errors are answered 400, a body of the wrong
/// shape 422 naming the offending field, a missing or other content type 415
/// and a body over [`BODY_LIMIT`] 413.
#[derive(Debug)]
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, AppError> {
        if !has_json_content_type(&request) {
            return Err(AppError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(body_error)?;
        // serde also reads a struct from an array (`[1, 2]`), which no
        // client means; every body of this API is an object.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(AppError::invalid_field(
                "body",
                "body: expected a JSON object, got an array",
            ));
        }
        parse_json(&bytes).map(AppJson)
    }
}

fn has_json_content_type(request: &Request) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

fn body_error(rejection: BytesRejection) -> AppError {
    match rejection {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            AppError::PayloadTooLarge { limit: BODY_LIMIT }
        }
        other => match body_timeout(&other) {
            Some(timeout) => AppError::BodyTimeout(BodyReadTimeout {
                budget_ms: timeout.budget_ms,
            }),
            None => AppError::bad_request(other.body_text()),
        },
    }
}

/// The body's read deadline passing, somewhere in the rejection's causes.
fn body_timeout(rejection: &BytesRejection) -> Option<&BodyReadTimeout> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(error) = cause {
        if let Some(timeout) = error.downcast_ref::<BodyReadTimeout>() {
            return Some(timeout);
        }
        cause = error.source();
    }
    None
}

/// Parses `bytes` as `T`, naming the path of the field that does not fit.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        json_error(path, error.into_inner())
    })?;
    deserializer
        .end()
        .map_err(|error| json_error(".".to_owned(), error))?;
    Ok(value)
}

fn json_error(path: String, error: serde_json::Error) -> AppError {
    match error.classify() {
        Category::Data => {
            let message = error.to_string();
            let field = if path == "." {
                field_named_in(&message).unwrap_or("body").to_owned()
            } else {
                path
            };
            AppError::invalid_field(&field, format!("{field}: {message}"))
        }
        Category::Syntax | Category::Eof | Category::Io => AppError::BadRequest {
            message: format!("request body is not valid JSON: {error}"),
            field: None,
        },
    }
}

/// serde reports a missing or repeated field at the parent's path; take its
/// name from the message (``missing field `book_id` ``, ``duplicate field
/// `book_id` ``).
fn field_named_in(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("duplicate field `"))?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Order {
        book_id: u32,
        quantity: i64,
    }

    fn field_of(error: AppError) -> Option<String> {
        match error {
            AppError::Unprocessable { field, .. } => Some(field),
            _ => None,
        }
    }

    #[test]
    fn wrong_types_name_the_field() {
        let error = parse_json::<Order>(br#"{"book_id": "seven", "quantity": 1}"#).unwrap_err();
        assert_eq!(field_of(error).as_deref(), Some("book_id"));
    }

    #[test]
    fn missing_fields_are_named() {
        let error = parse_json::<Order>(br#"{"book_id": 7}"#).unwrap_err();
        assert_eq!(field_of(error).as_deref(), Some("quantity"));
    }

    #[test]
    fn a_repeated_field_is_named() {
        let error =
            parse_json::<Order>(br#"{"book_id": 1, "book_id": 2, "quantity": 1}"#).unwrap_err();
        assert_eq!(field_of(error).as_deref(), Some("book_id"));
    }

    #[test]
    fn syntax_errors_and_trailing_garbage_are_bad_requests() {
        for body in [
            &b"{"[..],
            b"not json",
            b"{\"book_id\":1,\"quantity\":1} x",
            b"\xff\xfe",
        ] {
            let error = parse_json::<Order>(body).unwrap_err();
            assert!(matches!(error, AppError::BadRequest { .. }), "{error:?}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(parse_json::<serde_json::Value>(deep.as_bytes()).is_err());
    }
}
