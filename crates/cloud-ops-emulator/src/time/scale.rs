//! The emulator's time factor: how much faster than real time the
//! Terraform-defined monitoring runs locally.
//!
//! An alert policy's `duration = "300s"` or an uptime check's
//! `period = "60s"` would make a local run, or a test, wait minutes. With a
//! time scale of 60 every such span of monitoring time is divided by 60: the
//! 5-minute condition holds after 5 seconds, the uptime check probes every
//! second, alignment periods of 60 s become 1 s windows and the 5-second
//! sampling limit (M8) becomes 1/12 s. Everything else (timestamps, the data
//! itself) stays real. The scale is printed at start-up and shown in the
//! console: a fast local alert must never be mistaken for a real one.

use std::fmt;
use std::time::Duration;

/// A factor of 1 or more; 1 is real time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeScale(f64);

/// Why a time scale is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("time scale {0:?}: expected a number from 1 to 3600 (1 is real time)")]
pub struct TimeScaleError(String);

impl TimeScale {
    pub const REAL_TIME: Self = Self(1.0);
    const MAX: f64 = 3600.0;

    /// A checked factor.
    ///
    /// # Errors
    /// When `factor` is below 1, above 3600 or not a number.
    pub fn new(factor: f64) -> Result<Self, TimeScaleError> {
        if (1.0..=Self::MAX).contains(&factor) {
            Ok(Self(factor))
        } else {
            Err(TimeScaleError(factor.to_string()))
        }
    }

    pub fn factor(self) -> f64 {
        self.0
    }

    pub fn is_real_time(self) -> bool {
        self.0 == 1.0
    }

    /// A span of monitoring time (a period, a duration) as local wall time.
    pub fn scale(self, monitoring_time: Duration) -> Duration {
        monitoring_time.div_f64(self.0)
    }

    /// [`TimeScale::scale`] for nanoseconds, never below one.
    pub fn scale_nanos(self, monitoring_nanos: i64) -> i64 {
        ((monitoring_nanos as f64 / self.0).round() as i64).max(1)
    }
}

impl Default for TimeScale {
    fn default() -> Self {
        Self::REAL_TIME
    }
}

impl std::str::FromStr for TimeScale {
    type Err = TimeScaleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let factor = text
            .trim()
            .parse::<f64>()
            .map_err(|_| TimeScaleError(text.to_owned()))?;
        Self::new(factor)
    }
}

/// As its description, so JSON reports read the same as the start-up line.
impl serde::Serialize for TimeScale {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for TimeScale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_real_time() {
            f.write_str("real time")
        } else {
            write!(f, "{}x faster than real time", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_monitoring_time_down_and_refuses_nonsense() {
        let scale: TimeScale = "60".parse().unwrap();
        assert_eq!(
            scale.scale(Duration::from_secs(300)),
            Duration::from_secs(5)
        );
        assert_eq!(scale.scale_nanos(60_000_000_000), 1_000_000_000);
        assert_eq!(scale.to_string(), "60x faster than real time");
        assert_eq!(TimeScale::default().to_string(), "real time");
        for bad in ["0", "0.5", "-3", "NaN", "inf", "fast", "3601"] {
            assert!(bad.parse::<TimeScale>().is_err(), "{bad}");
        }
    }
}
