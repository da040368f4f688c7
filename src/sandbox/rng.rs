//! Deterministic randomness for the sandbox world: a small seeded generator and stable hashing.
//!
//! The world must be a pure function of the seed, stable across builds and platforms, so this does
//! not depend on `rand`'s algorithm choices (which may change between versions): SplitMix64 is
//! tiny, fast even in debug builds, and its output is fixed by its definition.

/// Mixes one 64-bit value into a well-distributed one (the SplitMix64 finaliser).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable hash of a sequence of integers (order matters).
pub fn hash_ints(parts: &[u64]) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15_u64;
    for p in parts {
        h = mix64(h ^ mix64(*p));
    }
    h
}

/// A stable hash of a byte string (FNV-1a then mixed), for hashing text such as message bodies.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// Maps a hash to a float in `[0, 1)`.
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Domain-separation tags so different streams drawn from the same ids never coincide.
pub mod stream {
    pub const PROFILE: u64 = 1;
    pub const POSTS: u64 = 2;
    pub const POST: u64 = 3;
    pub const CHANGE: u64 = 4;
    pub const CHANGE_BIO: u64 = 5;
    pub const CHANGE_POST: u64 = 6;
    pub const REPLY: u64 = 7;
    pub const FOLLOWERS: u64 = 8;
    pub const IMAGE: u64 = 9;
    pub const JUDGE: u64 = 10;
    pub const FAULTS: u64 = 11;
    pub const BIO: u64 = 12;
}

/// SplitMix64: a seeded generator with just enough distributions for the world generator.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator for the stream identified by `parts` (e.g. seed, stream tag, account index).
    pub fn for_parts(parts: &[u64]) -> Self {
        Self {
            state: hash_ints(parts),
        }
    }

    /// The next raw 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.state)
    }

    /// Uniform in `[0, 1)`.
    pub fn f64(&mut self) -> f64 {
        unit(self.next_u64())
    }

    /// Uniform in `0..n` (n > 0; returns 0 for n == 0 so callers never divide by zero).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: unbiased enough for a simulation and branch-free.
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform integer in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo + 1) as usize) as i64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// A standard normal draw (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.f64().max(1e-12);
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A log-normal draw with the given parameters of the underlying normal.
    pub fn log_normal(&mut self, mu: f64, sigma: f64) -> f64 {
        (mu + sigma * self.normal()).exp()
    }

    /// An exponential draw with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).ln()
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// An index drawn with the given relative weights.
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_parts_give_the_same_stream() {
        let mut a = Rng::for_parts(&[42, 1, 7]);
        let mut b = Rng::for_parts(&[42, 1, 7]);
        let mut c = Rng::for_parts(&[42, 1, 8]);
        let xa: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..5).map(|_| c.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = Rng::for_parts(&[1]);
        for n in 1..50 {
            assert!(r.below(n) < n);
        }
    }
}
