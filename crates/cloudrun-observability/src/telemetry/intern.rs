//! Strings made once and kept for the process's life, so that a request's
//! route template and span name cost no allocation on the request path
//! (issue #10, #16). Only for sets the router bounds (its routes, times the
//! standard methods): never for anything a client writes freely.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::sync::RwLock;

/// A set of leaked strings by key; lookups share a read lock, and only the
/// first request with a new key takes the write lock.
pub(crate) struct Interner<K> {
    leaked: RwLock<BTreeMap<K, &'static str>>,
}

impl<K: Ord> Interner<K> {
    pub(crate) const fn new() -> Self {
        Self {
            leaked: RwLock::new(BTreeMap::new()),
        }
    }

    /// The string interned for `key`; the first time, `text()` is leaked
    /// under `owned()`, the key as the map keeps it.
    pub(crate) fn get<Q>(
        &self,
        key: &Q,
        owned: impl FnOnce() -> K,
        text: impl FnOnce() -> String,
    ) -> &'static str
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        // A thread that panicked holding the lock left the map whole (an
        // insert is all it does), so go on with it.
        let known = self
            .leaked
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(key)
            .copied();
        known.unwrap_or_else(|| {
            *self
                .leaked
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .entry(owned())
                .or_insert_with(|| Box::leak(text().into_boxed_str()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_and_then_shared() {
        static NAMES: Interner<Box<str>> = Interner::new();
        let mut made = 0;
        let mut get = |key: &str| {
            NAMES.get(
                key,
                || key.into(),
                || {
                    made += 1;
                    format!("GET {key}")
                },
            )
        };
        let first = get("/a");
        let second = get("/a");
        let other = get("/b");
        assert_eq!((first, other), ("GET /a", "GET /b"));
        assert!(std::ptr::eq(first, second));
        assert_eq!(made, 2);
    }
}
