//! Medians and spreads of repeated measurements.

/// Sorts the samples; returns (median, p99).
pub fn median_p99(samples: &mut [f64]) -> (f64, f64) {
    assert!(!samples.is_empty());
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quantiles() {
        let mut v: Vec<f64> = (1..=101).rev().map(f64::from).collect();
        assert_eq!(super::median_p99(&mut v), (51.0, 100.0));
    }
}
