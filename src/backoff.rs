//! Exponential backoff, capped, with jitter, so callers that failed
//! together spread out. One formula, [`ceiling`], for every retry the
//! process makes: model calls ([`full_jitter`], a wait anywhere up to the
//! ceiling), jobs and store errors ([`equal_jitter`], at least half of it,
//! so a job does not come back at once), SQS redeliveries (the ceiling
//! itself, in whole seconds).

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

/// The delay before attempt `attempt + 1` after `attempt` failed: the
/// [`ceiling`], of which a random half is taken off, and never less than
/// the service's own hint (itself capped).
pub fn equal_jitter(
    attempt: u32,
    base: Duration,
    cap: Duration,
    hint: Option<Duration>,
) -> Duration {
    let full = ceiling(attempt, base, cap);
    let half = full / 2;
    let jitter_ms = fastrand::u64(0..=u64::try_from(half.as_millis()).unwrap_or(u64::MAX));
    let delay = half + Duration::from_millis(jitter_ms);
    hint.map_or(delay, |h| delay.max(h.min(cap)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_jitter_doubles_up_to_the_cap_and_keeps_half() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(1);
        for _ in 0..100 {
            let d1 = equal_jitter(1, base, cap, None);
            assert!(d1 >= Duration::from_millis(50) && d1 <= base, "{d1:?}");
            let d3 = equal_jitter(3, base, cap, None);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d10 = equal_jitter(10, base, cap, None);
            assert!(d10 >= cap / 2 && d10 <= cap, "{d10:?}");
            let hinted = equal_jitter(1, base, cap, Some(Duration::from_millis(700)));
            assert!(hinted >= Duration::from_millis(700), "{hinted:?}");
        }
    }

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
