//! The fuzzer's source of randomness: SplitMix64, small, fast and the same
//! on every machine, so a seed names one run for good. Each statement gets
//! a generator of its own derived from (seed, index), so statement N is
//! the same whatever the count of the run.

/// SplitMix64 (Steele, Lea and Flood's generator, as used to seed
/// xorshift generators): every 64-bit state is valid, including 0.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The generator of statement `index` of a run from `seed`.
    pub fn for_statement(seed: u64, index: usize) -> Rng {
        let mut mix = Rng(seed ^ (index as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
        Rng(mix.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn the_same_seed_gives_the_same_numbers() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut r = Rng::for_statement(7, 3);
        let first = r.next_u64();
        assert_eq!(Rng::for_statement(7, 3).next_u64(), first);
        assert_ne!(Rng::for_statement(7, 4).next_u64(), first);
    }
}
