//! `POST /api/orders`: the one flow that crosses services.
//!
//! An order is validated here, then stock is reserved with inventory and the
//! amount charged with payments, both over real HTTP. A declined or failed
//! payment answers 502 and is logged once at ERROR with its cause chain; the
//! request middleware does the logging, from the error this returns.
//!
//! Every order, even one whose body does not parse, counts once in
//! `app.orders` with its outcome.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::catalog;
use super::downstream::DownstreamFailure;
use super::error::AppError;
use super::extract::AppJson;
use super::internal::{new_id, ChargeRequest, Payment, Reservation, ReserveRequest};
use super::AppState;
use crate::telemetry::metrics::{self, OrderOutcome};

/// The most copies of one book in one order.
pub const MAX_QUANTITY: i64 = 10;

/// An order as clients send it. Numbers are read as `i64` so that a
/// negative or zero value gets a precise message rather than a type error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub book_id: i64,
    pub quantity: i64,
}

#[derive(Debug, Serialize)]
pub struct Order {
    pub order_id: String,
    pub book_id: u32,
    pub quantity: u32,
    pub total_cents: u64,
    pub reservation_id: String,
    pub payment_id: String,
}

/// The body is taken as a `Result` so that an unreadable order is counted
/// as rejected too.
pub async fn create_order(
    State(state): State<AppState>,
    order: Result<AppJson<NewOrder>, AppError>,
) -> Result<(StatusCode, Json<Order>), AppError> {
    let result = match order {
        Ok(AppJson(order)) => place_order(&state, &order).await,
        Err(error) => Err(error),
    };
    metrics::record_order(outcome_of(&result));
    result
}

/// `app.orders`' outcome: the client's fault (4xx) is `rejected`; a
/// failure of the payments service or a declined payment `payment_failed`;
/// any other failure `failed`.
fn outcome_of<T>(result: &Result<T, AppError>) -> OrderOutcome {
    match result {
        Ok(_) => OrderOutcome::Accepted,
        Err(AppError::Downstream(error)) if error.dependency() == PAYMENTS => {
            OrderOutcome::PaymentFailed
        }
        Err(AppError::Downstream(_) | AppError::Fault(_)) => OrderOutcome::Failed,
        Err(_) => OrderOutcome::Rejected,
    }
}

const PAYMENTS: &str = "payments";

async fn place_order(
    state: &AppState,
    order: &NewOrder,
) -> Result<(StatusCode, Json<Order>), AppError> {
    let (book, quantity) = validate(order)?;
    let downstream = &state.downstream;

    let reserve = ReserveRequest {
        book_id: book.id,
        quantity,
    };
    let reservation: Reservation = downstream
        .post_json(
            "inventory",
            "reserve stock",
            "/internal/inventory/reserve",
            &reserve,
        )
        .await
        .map_err(|error| match &error.failure {
            // Running out of stock is the client's problem, not an outage.
            DownstreamFailure::Rejected {
                status, message, ..
            } if *status == reqwest::StatusCode::CONFLICT => AppError::Conflict(message.clone()),
            _ => AppError::from(error),
        })?;

    let total_cents = u64::from(book.price_cents) * u64::from(quantity);
    let charge = ChargeRequest {
        reservation_id: reservation.reservation_id.clone(),
        amount_cents: total_cents,
    };
    let payment: Payment = downstream
        .post_json(
            PAYMENTS,
            "charge the payment",
            "/internal/payments/charge",
            &charge,
        )
        .await?;

    Ok((
        StatusCode::CREATED,
        Json(Order {
            order_id: new_id("ord"),
            book_id: book.id,
            quantity,
            total_cents,
            reservation_id: reservation.reservation_id,
            payment_id: payment.payment_id,
        }),
    ))
}

fn validate(order: &NewOrder) -> Result<(&'static catalog::Book, u32), AppError> {
    if order.book_id <= 0 {
        return Err(AppError::invalid_field(
            "book_id",
            "book_id must be a positive integer",
        ));
    }
    let book = u32::try_from(order.book_id)
        .ok()
        .and_then(catalog::find)
        .ok_or_else(|| {
            AppError::invalid_field("book_id", format!("no book with book_id {}", order.book_id))
        })?;
    if !(1..=MAX_QUANTITY).contains(&order.quantity) {
        return Err(AppError::invalid_field(
            "quantity",
            format!(
                "quantity must be between 1 and {MAX_QUANTITY}, got {}",
                order.quantity
            ),
        ));
    }
    // In range 1..=10, so the conversion cannot fail.
    let quantity = u32::try_from(order.quantity).unwrap_or(1);
    Ok((book, quantity))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(result: Result<(&'static catalog::Book, u32), AppError>) -> String {
        match result {
            Err(AppError::Unprocessable { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn orders_name_the_bad_field() {
        let order = |book_id, quantity| NewOrder { book_id, quantity };
        assert_eq!(field_of(validate(&order(0, 1))), "book_id");
        assert_eq!(field_of(validate(&order(999, 1))), "book_id");
        assert_eq!(field_of(validate(&order(1, 0))), "quantity");
        assert_eq!(field_of(validate(&order(1, -3))), "quantity");
        assert_eq!(field_of(validate(&order(1, 11))), "quantity");
        assert!(validate(&order(1, 10)).is_ok());
    }
}
