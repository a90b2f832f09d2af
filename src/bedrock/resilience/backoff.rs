//! Our backoff between retries of one target: exponential, capped, full
//! jitter (a uniformly random wait between zero and the capped
//! exponential), so callers that failed together spread out.

use std::time::Duration;

/// The wait before retry number `retry` (1 for the first retry): uniform
/// in `[0, min(cap, base * 2^(retry-1))]`.
pub fn full_jitter(retry: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = ceiling(retry, base, cap);
    let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=ms))
}

/// The upper bound of [`full_jitter`] for `retry`.
pub fn ceiling(retry: u32, base: Duration, cap: Duration) -> Duration {
    let exp = retry.saturating_sub(1).min(30);
    base.saturating_mul(1u32 << exp).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_under_the_capped_exponential() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_millis(1_000);
        assert_eq!(ceiling(1, base, cap), Duration::from_millis(100));
        assert_eq!(ceiling(3, base, cap), Duration::from_millis(400));
        assert_eq!(ceiling(10, base, cap), cap);
        assert_eq!(ceiling(200, base, cap), cap);
        let mut seen_low = false;
        for _ in 0..500 {
            let d = full_jitter(4, base, cap);
            assert!(d <= Duration::from_millis(800), "{d:?}");
            seen_low |= d < Duration::from_millis(100);
        }
        assert!(seen_low, "full jitter goes down to zero");
    }
}
