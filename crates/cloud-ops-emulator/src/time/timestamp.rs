//! Protobuf timestamps as plain nanoseconds since the Unix epoch.
//!
//! Validation, storage and aggregation all compare times; doing it on one
//! checked integer keeps out-of-range client input from panicking anywhere.

use std::time::{SystemTime, UNIX_EPOCH};

use prost_types::{Duration as ProtoDuration, Timestamp};

/// Nanoseconds in one second.
pub const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Errors converting client-supplied times.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("timestamp out of range (seconds {seconds}, nanos {nanos})")]
    OutOfRange { seconds: i64, nanos: i32 },
}

/// A timestamp as nanoseconds since the epoch, `None` when outside what an i64 holds
/// or when `nanos` is not in `0..1e9` (protobuf's own validity rule).
pub fn to_nanos(ts: &Timestamp) -> Result<i64, TimestampError> {
    let out_of_range = TimestampError::OutOfRange {
        seconds: ts.seconds,
        nanos: ts.nanos,
    };
    if !(0..NANOS_PER_SECOND as i32).contains(&ts.nanos) {
        return Err(out_of_range);
    }
    ts.seconds
        .checked_mul(NANOS_PER_SECOND)
        .and_then(|n| n.checked_add(i64::from(ts.nanos)))
        .ok_or(out_of_range)
}

/// The inverse of [`to_nanos`].
pub fn from_nanos(nanos: i64) -> Timestamp {
    Timestamp {
        seconds: nanos.div_euclid(NANOS_PER_SECOND),
        nanos: nanos.rem_euclid(NANOS_PER_SECOND) as i32,
    }
}

/// A protobuf duration in nanoseconds, saturating rather than overflowing.
pub fn duration_nanos(duration: &ProtoDuration) -> i64 {
    duration
        .seconds
        .saturating_mul(NANOS_PER_SECOND)
        .saturating_add(i64::from(duration.nanos))
}

/// The real clock, in nanoseconds since the epoch.
pub fn now_nanos() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

/// RFC 3339 with nanoseconds and a `Z`, the way Google prints times in errors.
pub fn rfc3339(ts: &Timestamp) -> String {
    let formatted = time::OffsetDateTime::from_unix_timestamp(ts.seconds)
        .ok()
        .and_then(|t| {
            t.replace_nanosecond(ts.nanos.clamp(0, 999_999_999) as u32)
                .ok()
        })
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    formatted.unwrap_or_else(|| format!("{}s+{}ns", ts.seconds, ts.nanos))
}

/// `2019/06/21-12:29:46.439`, the format of the M8 sampling-period error.
pub fn sampling_format(nanos: i64) -> String {
    format_utc_millis(nanos, '/', '-')
}

/// UTC date and time to the millisecond, e.g. with `'-'` and `' '`:
/// `2026-11-24 16:36:40.202`; the raw nanoseconds when out of range.
pub fn format_utc_millis(nanos: i64, date_separator: char, between: char) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)) {
        Ok(t) => format!(
            "{:04}{date_separator}{:02}{date_separator}{:02}{between}{:02}:{:02}:{:02}.{:03}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => nanos.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_nanos() {
        let ts = Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        };
        assert_eq!(from_nanos(to_nanos(&ts).unwrap()), ts);
        assert!(to_nanos(&Timestamp {
            seconds: 1,
            nanos: -1
        })
        .is_err());
        assert!(to_nanos(&Timestamp {
            seconds: i64::MAX,
            nanos: 0
        })
        .is_err());
    }

    #[test]
    fn formats_like_google() {
        assert_eq!(
            sampling_format(1_561_120_186_439_000_000),
            "2019/06/21-12:29:46.439"
        );
        let ts = Timestamp {
            seconds: 1_561_120_186,
            nanos: 0,
        };
        assert_eq!(rfc3339(&ts), "2019-06-21T12:29:46Z");
    }
}
