//! The bookshop's catalog, compiled into the binary: the service stays
//! stateless, as Cloud Run instances come and go.

use serde::Serialize;

/// A book for sale.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Book {
    pub id: u32,
    pub title: &'static str,
    pub author: &'static str,
    pub year: u16,
    pub price_cents: u32,
    /// Copies in stock; an order for more is refused.
    pub stock: u32,
}

const fn book(
    id: u32,
    title: &'static str,
    author: &'static str,
    year: u16,
    price_cents: u32,
    stock: u32,
) -> Book {
    Book {
        id,
        title,
        author,
        year,
        price_cents,
        stock,
    }
}

/// Every book, by id.
pub const BOOKS: &[Book] = &[
    book(
        1,
        "The Rust Programming Language",
        "Steve Klabnik, Carol Nichols",
        2023,
        3999,
        40,
    ),
    book(
        2,
        "Site Reliability Engineering",
        "Betsy Beyer et al.",
        2016,
        4499,
        25,
    ),
    book(
        3,
        "Observability Engineering",
        "Charity Majors et al.",
        2022,
        5299,
        12,
    ),
    book(
        4,
        "Designing Data-Intensive Applications",
        "Martin Kleppmann",
        2017,
        4799,
        30,
    ),
    book(
        5,
        "The Site Reliability Workbook",
        "Betsy Beyer et al.",
        2018,
        4299,
        8,
    ),
    book(
        6,
        "Distributed Tracing in Practice",
        "Austin Parker et al.",
        2020,
        3899,
        5,
    ),
    book(
        7,
        "Zero To Production In Rust",
        "Luca Palmieri",
        2022,
        3500,
        50,
    ),
    book(8, "Release It!", "Michael T. Nygard", 2018, 3795, 3),
];

/// The book with `id`, if the shop sells it.
pub fn find(id: u32) -> Option<&'static Book> {
    BOOKS.iter().find(|book| book.id == id)
}
