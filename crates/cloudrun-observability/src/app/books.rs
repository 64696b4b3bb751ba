//! `GET /api/books` and `GET /api/books/{id}`: reads from the catalog.

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::Json;
use serde::Serialize;

use super::catalog::{self, Book};
use super::error::AppError;

#[derive(Serialize)]
pub struct BookList {
    books: &'static [Book],
}

pub async fn list_books() -> Json<BookList> {
    Json(BookList {
        books: catalog::BOOKS,
    })
}

pub async fn get_book(
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<&'static Book>, AppError> {
    let Path(id) = id?;
    id.parse::<u32>()
        .ok()
        .and_then(catalog::find)
        .map(Json)
        .ok_or_else(|| AppError::NotFound(format!("no book with id {id:?}")))
}
