//! Deliberate faults, so people can watch a failure travel through logs,
//! traces, metrics and alerts. Served under `/api/faults/` when
//! `ENABLE_FAULT_ROUTES=true` (the default locally, off on Cloud Run).
//!
//! - `GET /api/faults/error`: a realistic bug, a corrupt record that fails to
//!   parse; answered 500, logged with its whole cause chain.
//! - `GET /api/faults/panic`: a panic in a handler; caught, answered 500, and
//!   the process keeps serving.
//! - `GET /api/faults/slow?ms=N`: answers after N ms (at most 10 000).

use std::num::ParseIntError;
use std::panic::Location;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::Json;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::catalog::{self, Book};
use super::error::{AppError, Bug, BugReport};

/// The longest `/api/faults/slow` may sleep.
pub const MAX_SLOW_MS: u64 = 10_000;

/// The featured shelf, as an upstream feed exports it: `id;title;price`.
/// Row 3 was written with a decimal comma, the kind of record that breaks a
/// parser in production long after the tests passed.
const FEATURED_FEED: &str = "\
id;title;price
3;Observability Engineering;52.99
6;Distributed Tracing in Practice;38,99
8;Release It!;37.95
";

/// A bug in this service, with the place it surfaced.
#[derive(Debug, Error)]
#[error("could not load the featured shelf")]
pub struct FaultError {
    #[source]
    source: FeedError,
    location: &'static Location<'static>,
}

impl Bug for FaultError {
    fn location(&self) -> &'static Location<'static> {
        self.location
    }
}

impl From<FaultError> for AppError {
    fn from(error: FaultError) -> Self {
        Self::Fault(BugReport(Box::new(error)))
    }
}

impl From<FeedError> for FaultError {
    #[track_caller]
    fn from(source: FeedError) -> Self {
        Self {
            source,
            location: Location::caller(),
        }
    }
}

/// A row of the featured feed that does not parse.
#[derive(Debug, Error)]
pub enum FeedError {
    #[error("row {row} has {found} fields, expected 3")]
    FieldCount { row: usize, found: usize },
    #[error("row {row}: invalid book id {value:?}")]
    BookId {
        row: usize,
        value: String,
        #[source]
        source: ParseIntError,
    },
    #[error("row {row}: invalid price {value:?}")]
    Price {
        row: usize,
        value: String,
        #[source]
        source: std::num::ParseFloatError,
    },
}

#[derive(Debug, Serialize)]
pub struct FeaturedBook {
    id: u32,
    title: String,
    price_cents: u32,
}

/// `GET /api/faults/error`: parses the featured feed, which has a corrupt row.
pub async fn error() -> Result<Json<Vec<FeaturedBook>>, AppError> {
    match parse_featured(FEATURED_FEED) {
        Ok(featured) => Ok(Json(featured)),
        // Called here, not through `map_err`, so the error records this line.
        Err(error) => Err(FaultError::from(error).into()),
    }
}

fn parse_featured(feed: &str) -> Result<Vec<FeaturedBook>, FeedError> {
    feed.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| parse_row(index + 1, line))
        .collect()
}

fn parse_row(row: usize, line: &str) -> Result<FeaturedBook, FeedError> {
    let fields: Vec<&str> = line.split(';').collect();
    let [id, title, price] = fields[..] else {
        return Err(FeedError::FieldCount {
            row,
            found: fields.len(),
        });
    };
    let id = id.parse().map_err(|source| FeedError::BookId {
        row,
        value: id.to_owned(),
        source,
    })?;
    let price: f64 = price.parse().map_err(|source| FeedError::Price {
        row,
        value: price.to_owned(),
        source,
    })?;
    Ok(FeaturedBook {
        id,
        title: title.to_owned(),
        price_cents: (price * 100.0).round() as u32,
    })
}

/// `GET /api/faults/panic`: picks the staff pick from a shelf that turns out
/// to be empty, and indexes past its end.
pub async fn panic() -> Json<Book> {
    let staff_picks: Vec<&Book> = catalog::BOOKS
        .iter()
        .filter(|book| book.year > 2100)
        .collect();
    let pick = staff_picks[0];
    Json(pick.clone())
}

#[derive(Debug, Deserialize)]
pub struct SlowParams {
    ms: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Slept {
    slept_ms: u64,
}

/// `GET /api/faults/slow?ms=N`: answers after N ms (default 1 000).
pub async fn slow(
    params: Result<Query<SlowParams>, QueryRejection>,
) -> Result<Json<Slept>, AppError> {
    let Query(params) = params?;
    let ms = params.ms.unwrap_or(1_000);
    if ms > MAX_SLOW_MS {
        return Err(AppError::BadRequest {
            message: format!("ms must be at most {MAX_SLOW_MS}, got {ms}"),
            field: Some("ms".to_owned()),
        });
    }
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(Json(Slept { slept_ms: ms }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::logs::error_reporting::cause_chain;

    #[test]
    fn the_featured_feed_fails_on_its_decimal_comma() {
        let error = FaultError::from(parse_featured(FEATURED_FEED).unwrap_err());
        assert_eq!(
            cause_chain(&error),
            "could not load the featured shelf: row 3: invalid price \"38,99\": invalid float literal"
        );
    }

    #[test]
    fn a_clean_feed_parses() {
        let books = parse_featured("id;title;price\n1;A;1.50\n").unwrap();
        assert_eq!(books[0].price_cents, 150);
    }
}
