//! This process's own tenant state, the embedded default (and what a
//! Redis-backed instance falls back to where configured): a governor
//! limiter per tenant with a rate (`limits.rs`), an in-process bucket per
//! tenant with tokens per minute, a nonce window per UsernameToken user
//! (`nonces.rs`) and the failed-login buckets (`throttle.rs`).
//!
//! Nothing here waits: every answer is a lock and some arithmetic.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::super::limits::Limiter;
use super::super::nonces::{Seen, Window};
use super::super::throttle::{Key, Throttle};
use super::{BoxFuture, ClusterHealth, Quotas, Refusal, SharedState, Unavailable, UserKind};

/// One tenant's limiters.
#[derive(Debug)]
struct TenantLimits {
    requests: Option<Limiter>,
    tokens: Option<TokenBucket>,
}

/// This process's limits, windows and throttle.
pub(in crate::tenants) struct Local {
    tenants: Vec<TenantLimits>,
    nonces: HashMap<String, Window>,
    throttle: Throttle,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("tenants", &self.tenants.len())
            .field("nonce_windows", &self.nonces.len())
            .finish_non_exhaustive()
    }
}

impl Local {
    /// The limiters of `quotas` (by tenant index), a nonce window for each
    /// UsernameToken user of `users`, and the failed-login buckets (each
    /// configured user name with one of its own).
    pub(in crate::tenants) fn new(
        quotas: &[Quotas],
        users: &[(String, UserKind)],
        nonce_ttl: Duration,
        nonce_capacity: u64,
        failed_auth_burst: u32,
        failed_auth_per_minute: u32,
    ) -> Local {
        let mut throttle = Throttle::new(failed_auth_burst, failed_auth_per_minute);
        let mut nonces = HashMap::new();
        for (user, kind) in users {
            throttle.add_user(user);
            if *kind == UserKind::Token {
                nonces.insert(user.clone(), Window::new(nonce_ttl, nonce_capacity));
            }
        }
        let tenants = quotas
            .iter()
            .map(|q| TenantLimits {
                requests: q
                    .requests
                    .map(|(per_minute, burst)| Limiter::new(per_minute, burst)),
                tokens: q.tokens_per_minute.map(TokenBucket::per_minute),
            })
            .collect();
        Local {
            tenants,
            nonces,
            throttle,
        }
    }

    /// [`SharedState::admit`], at once.
    pub(super) fn admit_now(&self, tenant: usize) -> Result<(), Refusal> {
        let Some(t) = self.tenants.get(tenant) else {
            return Ok(());
        };
        // The token bucket is only read, so a refusal by the rate below
        // takes nothing from it.
        if let Some(wait) = t.tokens.as_ref().and_then(|b| b.wait(Instant::now())) {
            return Err(Refusal::Tokens(wait));
        }
        match &t.requests {
            Some(limiter) => limiter.check().map_err(Refusal::Requests),
            None => Ok(()),
        }
    }

    /// [`SharedState::remember_nonce`], at once. A user without a window
    /// (not a configured UsernameToken user) has nothing to remember.
    pub(super) fn remember_nonce_now(&self, user: &str, nonce: &[u8]) -> Seen {
        self.nonces
            .get(user)
            .map_or(Seen::Fresh, |w| w.remember(nonce))
    }

    /// [`SharedState::login_refused`], at once.
    pub(super) fn login_refused_now(
        &self,
        user: &str,
        source: Option<IpAddr>,
    ) -> Option<(Key, Duration)> {
        self.throttle.refused(user, source)
    }
}

impl SharedState for Local {
    fn admit(&self, tenant: usize) -> BoxFuture<'_, Result<(), Refusal>> {
        let decided = self.admit_now(tenant);
        Box::pin(std::future::ready(decided))
    }

    fn charge_tokens(&self, tenant: usize, tokens: u64) {
        if let Some(bucket) = self.tenants.get(tenant).and_then(|t| t.tokens.as_ref()) {
            bucket.charge(tokens, Instant::now());
        }
    }

    fn remember_nonce<'a>(
        &'a self,
        user: &'a str,
        nonce: &'a [u8],
    ) -> BoxFuture<'a, Result<Seen, Unavailable>> {
        Box::pin(std::future::ready(Ok(self.remember_nonce_now(user, nonce))))
    }

    fn login_refused<'a>(
        &'a self,
        user: &'a str,
        source: Option<IpAddr>,
    ) -> BoxFuture<'a, Result<Option<(Key, Duration)>, Unavailable>> {
        Box::pin(std::future::ready(Ok(self.login_refused_now(user, source))))
    }

    fn login_failed(&self, user: &str, source: Option<IpAddr>) {
        self.throttle.failed(user, source);
    }

    fn health(&self) -> Option<ClusterHealth> {
        None
    }
}

/// A tenant's tokens per minute in this process: a bucket that holds a
/// minute's worth and drains continuously (GCRA: the time at which it is
/// empty again). A call is let in while there is room for one more token;
/// what the call then reports using is added whatever the level, so one
/// large call can put the tenant in debt for longer than a minute.
#[derive(Debug)]
pub(super) struct TokenBucket {
    /// Time one token takes to drain.
    per_token: Duration,
    /// A full bucket: a minute.
    capacity: Duration,
    /// When the bucket is empty again.
    empty_at: Mutex<Instant>,
}

impl TokenBucket {
    /// `per_minute` is at least 1 (checked with the settings).
    pub(super) fn per_minute(per_minute: u64) -> TokenBucket {
        let capacity = Duration::from_secs(60);
        TokenBucket {
            per_token: capacity.div_f64(per_minute.max(1) as f64),
            capacity,
            empty_at: Mutex::new(Instant::now()),
        }
    }

    /// `None` while one more token fits; else how long until it does.
    pub(super) fn wait(&self, now: Instant) -> Option<Duration> {
        let empty_at = *self.empty_at.lock().unwrap_or_else(|e| e.into_inner());
        let level = empty_at.saturating_duration_since(now);
        (level + self.per_token)
            .checked_sub(self.capacity)
            .filter(|over| !over.is_zero())
    }

    /// Adds `tokens`, however full the bucket is.
    pub(super) fn charge(&self, tokens: u64, now: Instant) {
        let mut empty_at = self.empty_at.lock().unwrap_or_else(|e| e.into_inner());
        let from = (*empty_at).max(now);
        let added = self
            .per_token
            .checked_mul(u32::try_from(tokens).unwrap_or(u32::MAX))
            .unwrap_or(Duration::MAX);
        *empty_at = from
            .checked_add(added)
            .unwrap_or(from + self.capacity * 1000);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_bucket_holds_a_minute_and_goes_into_debt() {
        let b = TokenBucket::per_minute(600); // 10 a second
        let t0 = Instant::now();
        assert_eq!(b.wait(t0), None);
        b.charge(599, t0);
        assert_eq!(b.wait(t0), None, "one more token fits");
        b.charge(1, t0);
        let wait = b.wait(t0).expect("full");
        assert!(
            wait > Duration::from_millis(99) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert_eq!(b.wait(t0 + Duration::from_millis(100)), None);
        // A large call's usage is counted whole: a minute and a half of
        // tokens leaves half a minute of debt.
        let b = TokenBucket::per_minute(600);
        let t1 = Instant::now();
        b.charge(900, t1);
        let wait = b.wait(t1).expect("in debt");
        assert!(
            wait > Duration::from_millis(30_000) && wait <= Duration::from_millis(30_100),
            "{wait:?}"
        );
    }

    #[tokio::test]
    async fn tokens_refuse_before_the_rate_is_taken() {
        let l = Local::new(
            &[Quotas {
                requests: Some((60, 2)),
                tokens_per_minute: Some(100),
            }],
            &[],
            Duration::from_secs(1),
            1,
            1,
            1,
        );
        assert_eq!(l.admit(0).await, Ok(()));
        l.charge_tokens(0, 100);
        assert!(matches!(l.admit(0).await, Err(Refusal::Tokens(_))));
        // The request rate alone: a burst of two, then refusals.
        let l2 = Local::new(
            &[Quotas {
                requests: Some((60, 2)),
                tokens_per_minute: None,
            }],
            &[],
            Duration::from_secs(1),
            1,
            1,
            1,
        );
        assert_eq!(l2.admit(0).await, Ok(()));
        assert_eq!(l2.admit(0).await, Ok(()));
        assert!(matches!(l2.admit(0).await, Err(Refusal::Requests(_))));
        // A tenant without limits, or an unknown index, passes.
        assert_eq!(l2.admit(7).await, Ok(()));
    }
}
