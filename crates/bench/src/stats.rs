//! Percentiles of a set of samples, by nearest rank.

use std::time::Duration;

use serde::Serialize;

/// Spread of one measured quantity, in the unit of its row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    /// Summarises `values`; `None` when there are none or one is NaN.
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let position = (p * sorted.len() as f64).ceil() as usize;
            sorted[position.clamp(1, sorted.len()) - 1]
        };
        Some(Summary { count: sorted.len(), p50: rank(0.50), p90: rank(0.90), p99: rank(0.99), max: rank(1.0) })
    }

    /// Summarises durations in milliseconds.
    pub fn of_durations(samples: &[Duration]) -> Option<Summary> {
        let millis: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        Summary::of(&millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_uses_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let summary = Summary::of(&values).expect("non-empty");
        assert_eq!(summary.p50, 50.0);
        assert_eq!(summary.p90, 90.0);
        assert_eq!(summary.p99, 99.0);
        assert_eq!(summary.max, 100.0);
        assert_eq!(summary.count, 100);
    }

    #[test]
    fn summary_of_nothing_is_none() {
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn summary_of_one_sample() {
        let summary = Summary::of(&[3.0]).expect("one sample");
        assert_eq!(summary.p50, 3.0);
        assert_eq!(summary.p99, 3.0);
    }
}
