//! Distributions: a metric's bucket layout (`bucket_options`, checked
//! against Monitoring's M13) and the builder that turns one interval's
//! values into a Monitoring distribution.

use std::fmt::Debug;

use gcloud_sdk::google::api::distribution::{bucket_options, BucketOptions};
use gcloud_sdk::google::api::Distribution;

/// Monitoring's limit on buckets, underflow and overflow included (M13).
const MAX_BUCKETS: usize = 200;
/// A distribution's bucket layout (`bucket_options`).
#[derive(Clone, Debug, PartialEq)]
pub enum Buckets {
    Linear {
        num_finite_buckets: i32,
        width: f64,
        offset: f64,
    },
    Exponential {
        num_finite_buckets: i32,
        growth_factor: f64,
        scale: f64,
    },
    Explicit {
        bounds: Vec<f64>,
    },
}

impl Buckets {
    /// M13's constraints on the layout.
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn validate(&self) -> Result<(), String> {
        let finite = match self {
            Self::Linear {
                num_finite_buckets,
                width,
                offset,
            } => {
                if *num_finite_buckets <= 0 || !positive(*width) || !offset.is_finite() {
                    return Err("linear_buckets needs num_finite_buckets > 0 and width > 0".into());
                }
                *num_finite_buckets as usize
            }
            Self::Exponential {
                num_finite_buckets,
                growth_factor,
                scale,
            } => {
                if *num_finite_buckets <= 0 || !positive(*growth_factor - 1.0) || !positive(*scale)
                {
                    return Err("exponential_buckets needs num_finite_buckets > 0, growth_factor > 1 and scale > 0".into());
                }
                *num_finite_buckets as usize
            }
            Self::Explicit { bounds } => {
                let increasing = bounds.windows(2).all(|w| w[1] > w[0]);
                if bounds.is_empty() || !increasing || bounds.iter().any(|b| !b.is_finite()) {
                    return Err(
                        "explicit_buckets needs at least one bound, finite and strictly increasing"
                            .into(),
                    );
                }
                bounds.len() - 1
            }
        };
        if finite + 2 > MAX_BUCKETS {
            return Err(format!(
                "{} buckets with underflow and overflow, more than Monitoring's {MAX_BUCKETS}",
                finite + 2
            ));
        }
        Ok(())
    }

    /// The lower bounds of buckets 1..N+1: a value's bucket is how many of
    /// them are at or below it (bucket 0 is the underflow, the last the overflow).
    pub fn bounds(&self) -> Vec<f64> {
        match self {
            Self::Linear {
                num_finite_buckets,
                width,
                offset,
            } => (0..=*num_finite_buckets)
                .map(|i| offset + width * f64::from(i))
                .collect(),
            Self::Exponential {
                num_finite_buckets,
                growth_factor,
                scale,
            } => (0..=*num_finite_buckets)
                .map(|i| scale * growth_factor.powi(i))
                .collect(),
            Self::Explicit { bounds } => bounds.clone(),
        }
    }

    /// As Monitoring's `BucketOptions`.
    pub fn to_proto(&self) -> BucketOptions {
        let options = match self {
            Self::Linear {
                num_finite_buckets,
                width,
                offset,
            } => bucket_options::Options::LinearBuckets(bucket_options::Linear {
                num_finite_buckets: *num_finite_buckets,
                width: *width,
                offset: *offset,
            }),
            Self::Exponential {
                num_finite_buckets,
                growth_factor,
                scale,
            } => bucket_options::Options::ExponentialBuckets(bucket_options::Exponential {
                num_finite_buckets: *num_finite_buckets,
                growth_factor: *growth_factor,
                scale: *scale,
            }),
            Self::Explicit { bounds } => {
                bucket_options::Options::ExplicitBuckets(bucket_options::Explicit {
                    bounds: bounds.clone(),
                })
            }
        };
        BucketOptions {
            options: Some(options),
        }
    }
}

/// Strictly positive, and so not NaN.
fn positive(x: f64) -> bool {
    x > 0.0
}

/// Values of one interval as a Monitoring distribution: counts per bucket,
/// mean and sum of squared deviation (Welford's running form, which stays
/// accurate for values far from zero).
#[derive(Clone, Debug)]
pub struct DistributionBuilder {
    buckets: Buckets,
    bounds: Vec<f64>,
    counts: Vec<i64>,
    count: i64,
    mean: f64,
    squared_deviation: f64,
}

impl DistributionBuilder {
    /// An empty distribution over `buckets`, which should have passed
    /// [`Buckets::validate`] (that bounds the bucket count).
    pub fn new(buckets: &Buckets) -> Self {
        let bounds = buckets.bounds();
        Self {
            counts: vec![0; bounds.len() + 1],
            buckets: buckets.clone(),
            bounds,
            count: 0,
            mean: 0.0,
            squared_deviation: 0.0,
        }
    }

    /// Adds one value; non-finite values are ignored (Monitoring could not store them).
    pub fn add(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        let bucket = self.bounds.partition_point(|bound| *bound <= value);
        self.counts[bucket] += 1;
        self.count += 1;
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.squared_deviation += delta * (value - self.mean);
    }

    pub fn count(&self) -> i64 {
        self.count
    }

    pub fn build(&self) -> Distribution {
        Distribution {
            count: self.count,
            mean: self.mean,
            sum_of_squared_deviation: self.squared_deviation.max(0.0),
            bucket_options: Some(self.buckets.to_proto()),
            bucket_counts: self.counts.clone(),
            ..Distribution::default()
        }
    }
}
