//! Exponential backoff with full jitter, shared by every retry loop (RPC calls, sink deliveries).

use std::time::Duration;

/// A random delay in `[0, min(max, base * 2^attempt))`; with `jitter_seed == 0`, the ceiling itself.
pub fn backoff_delay(base: Duration, max: Duration, attempt: u32, jitter_seed: u64) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.min(16)).min(max);
    if jitter_seed == 0 {
        return ceiling;
    }
    let fraction = (splitmix(jitter_seed) % 1_000) as u32;
    ceiling * fraction / 1_000
}

/// A well-mixed 64-bit value from a counter (SplitMix64), enough for jitter.
pub fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_jitters_below_it() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(backoff_delay(base, max, 0, 0), base);
        assert_eq!(backoff_delay(base, max, 3, 0), Duration::from_millis(800));
        assert_eq!(backoff_delay(base, max, 30, 0), max);
        let jittered: Vec<_> = (1..50).map(|seed| backoff_delay(base, max, 4, seed)).collect();
        assert!(jittered.iter().all(|d| *d < Duration::from_millis(1600)));
        assert!(jittered.windows(2).any(|w| w[0] != w[1]), "jitter varies");
    }
}
