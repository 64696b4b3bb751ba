//! The client's deadline, as gRPC carries it (`grpc-timeout`), for reads
//! that may run long.
//!
//! tonic drops a handler's future when the deadline passes, but a read
//! computing on a thread does not notice: a long filter over many series
//! went on for seconds after its client had given up. Long reads check a
//! [`Deadline`] between chunks of work and stop with DEADLINE_EXCEEDED.

use std::time::{Duration, Instant};

/// When a piece of work must stop; `NONE` never passes. The console's
/// pages make one from their time budget ([`Deadline::after`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Option<Instant>);

/// The deadline passed before the work was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Deadline expired before the operation could complete.")]
pub struct DeadlineExceeded;

/// What a read found before its deadline passed: the console shows it and
/// says the page was cut short, where a gRPC read answers DEADLINE_EXCEEDED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutShort<T>(pub T);

impl From<DeadlineExceeded> for tonic::Status {
    fn from(e: DeadlineExceeded) -> Self {
        tonic::Status::deadline_exceeded(e.to_string())
    }
}

impl Deadline {
    /// No deadline: internal readers (the alert engine, the console).
    pub const NONE: Self = Self(None);

    /// `timeout` from now.
    pub fn after(timeout: Duration) -> Self {
        Self(Instant::now().checked_add(timeout))
    }

    /// The deadline of a gRPC request: its `grpc-timeout` header, or none.
    /// A header that does not parse is ignored, as servers do.
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map_or(Self::NONE, Self::after)
    }

    /// `Err` once the deadline has passed.
    ///
    /// # Errors
    /// [`DeadlineExceeded`] when it has.
    pub fn check(self) -> Result<(), DeadlineExceeded> {
        match self.0 {
            Some(at) if Instant::now() >= at => Err(DeadlineExceeded),
            _ => Ok(()),
        }
    }
}

/// Runs `read` over `store` on a blocking thread, with `request`'s
/// deadline: a read over many items computes for a while, and must not hold
/// up the async workers serving the writes beside it. The outer `Err` is
/// the thread's failure (a panic in the read).
pub(crate) async fn read_off_the_runtime<S, T, R, E>(
    store: S,
    request: tonic::Request<T>,
    read: impl FnOnce(&S, T, Deadline) -> Result<R, E> + Send + 'static,
) -> Result<Result<R, E>, tonic::Status>
where
    S: Send + 'static,
    T: Send + 'static,
    R: Send + 'static,
    E: Send + 'static,
{
    let deadline = Deadline::of(&request);
    tokio::task::spawn_blocking(move || read(&store, request.into_inner(), deadline))
        .await
        .map_err(|e| tonic::Status::internal(format!("the read failed: {e}")))
}

/// gRPC's `TimeoutValue TimeoutUnit`: at most 8 digits, then one of
/// `H M S m u n`.
fn parse_grpc_timeout(text: &str) -> Option<Duration> {
    let split = text.len().checked_sub(1)?;
    if !text.is_char_boundary(split) {
        return None;
    }
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value * 3600),
        "M" => Duration::from_secs(value * 60),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_nonsense_is_ignored() {
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "S", "123456789S", "1x", "-1S", "1é"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
        assert!(Deadline::after(Duration::ZERO).check().is_err());
        assert!(Deadline::NONE.check().is_ok());
    }
}
