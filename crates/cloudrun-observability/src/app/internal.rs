//! The downstream services an order calls: inventory and payments.
//!
//! They are served by the same binary under `/internal/`, so one process is
//! enough locally, and on Cloud Run the same image deployed as a private
//! `backend` service plays them. Payments fail on purpose with probability
//! `PAYMENT_FAILURE_RATE`, to give the telemetry a realistic failure to show.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::catalog;
use super::error::AppError;
use super::extract::AppJson;
use super::AppState;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    pub book_id: u32,
    pub quantity: u32,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct Reservation {
    pub reservation_id: String,
    pub book_id: u32,
    pub quantity: u32,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChargeRequest {
    pub reservation_id: String,
    pub amount_cents: u64,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct Payment {
    pub payment_id: String,
    pub amount_cents: u64,
}

/// `POST /internal/inventory/reserve`: holds copies of a book for an order.
pub async fn reserve(
    AppJson(request): AppJson<ReserveRequest>,
) -> Result<Json<Reservation>, AppError> {
    let book = catalog::find(request.book_id).ok_or_else(|| {
        AppError::invalid_field("book_id", format!("no book with id {}", request.book_id))
    })?;
    if request.quantity == 0 {
        return Err(AppError::invalid_field(
            "quantity",
            "quantity must be at least 1",
        ));
    }
    if request.quantity > book.stock {
        return Err(AppError::Conflict(format!(
            "only {} copies of book {} are in stock",
            book.stock, book.id
        )));
    }
    Ok(Json(Reservation {
        reservation_id: new_id("res"),
        book_id: book.id,
        quantity: request.quantity,
    }))
}

/// `POST /internal/payments/charge`: charges an order; declines a share of
/// charges on purpose (`PAYMENT_FAILURE_RATE`).
pub async fn charge(
    State(state): State<AppState>,
    AppJson(request): AppJson<ChargeRequest>,
) -> Result<(StatusCode, Json<Payment>), AppError> {
    if request.amount_cents == 0 {
        return Err(AppError::invalid_field(
            "amount_cents",
            "amount_cents must be positive",
        ));
    }
    if rand::rng().random::<f64>() < state.payment_failure_rate {
        return Err(AppError::PaymentDeclined(
            "card declined by the issuer".to_owned(),
        ));
    }
    Ok((
        StatusCode::OK,
        Json(Payment {
            payment_id: new_id("pay"),
            amount_cents: request.amount_cents,
        }),
    ))
}

/// A random id with a readable prefix, e.g. `res_3f9a…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::rng().random::<u64>())
}
