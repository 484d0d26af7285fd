//! Medians and spreads of repeated measurements, and the order in which
//! compared variants take turns.

use serde_json::{json, Value};

/// Sorts the samples; returns (median, p99).
pub fn median_p99(samples: &mut [f64]) -> (f64, f64) {
    assert!(!samples.is_empty());
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// A handful of repeated measurements of one figure: their median and range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    /// None for no values. The median of an even count is the mean of the
    /// two middle values.
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    pub fn to_json(self) -> Value {
        json!({ "median": self.median, "min": self.min, "max": self.max, "n": self.n })
    }

    pub fn from_json(v: &Value) -> Option<Spread> {
        Some(Spread {
            median: v["median"].as_f64()?,
            min: v["min"].as_f64()?,
            max: v["max"].as_f64()?,
            n: v["n"].as_u64()? as usize,
        })
    }
}

/// The order of `n` variants in round `round`: rotated by one each round,
/// so every variant runs in every position (first after a pause, right
/// after the heaviest …) as often as the others.
pub fn rotation(round: usize, n: usize) -> Vec<usize> {
    (0..n).map(|i| (i + round) % n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let mut v: Vec<f64> = (1..=101).rev().map(f64::from).collect();
        assert_eq!(median_p99(&mut v), (51.0, 100.0));
    }

    #[test]
    fn spread_of_odd_and_even_counts() {
        assert_eq!(
            Spread::of(&[3.0, 1.0, 2.0]),
            Some(Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0,
                n: 3
            })
        );
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(Spread::of(&[]), None);
        let s = Spread::of(&[1.0, 5.0]).unwrap();
        assert_eq!(Spread::from_json(&s.to_json()), Some(s));
    }

    #[test]
    fn every_variant_takes_every_position() {
        let n = 4;
        for pos in 0..n {
            let mut seen: Vec<usize> = (0..n).map(|r| rotation(r, n)[pos]).collect();
            seen.sort();
            assert_eq!(seen, (0..n).collect::<Vec<_>>());
        }
    }
}
