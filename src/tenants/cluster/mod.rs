//! The tenant state that must hold across instances, behind one trait,
//! [`SharedState`]: each tenant's request rate and tokens per minute, each
//! UsernameToken user's nonces, and the failed-login counts per user name
//! and source address.
//!
//! Two implementations: [`Local`] (`local.rs`), the state of this process
//! alone — the embedded default, and what soapgate always did — and
//! [`RedisState`] (`redis_state.rs`), shared by every instance through one Redis
//! or Valkey (`[cluster] redis_url`), each check one script run on the
//! server (one round trip), with a [`Local`] beside it for the limits
//! configured to fall back to it while Redis does not answer
//! (`[cluster.when_unavailable]`). See docs/scale-out.md.
//!
//! Breakers, caches and the verified-password cache stay per instance:
//! they are not here.

mod local;
mod redis_state;

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(super) use local::Local;
pub(super) use redis_state::{RedisParts, RedisState};

use super::nonces::Seen;
use super::settings::Secret;
use super::throttle::Key;

/// One boxed future per call, as the model client's.
pub(super) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// `[cluster]`: where the state that must hold across instances lives.
/// Without `redis_url`, it is this process's own (each instance limits
/// alone, as without this section).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// `redis://[user:password@]host[:port][/db]` of a Redis or Valkey
    /// primary every instance shares. Unset: limits per instance.
    pub redis_url: Option<Secret>,
    /// Prefix of every key soapgate writes, so several deployments can
    /// share one Redis.
    pub key_prefix: String,
    /// The longest any Redis call may take (the connection's response
    /// timeout, and a deadline around each call); past it Redis counts as
    /// unreachable.
    pub timeout_ms: u64,
    /// The longest a connection attempt may take; at start, how long the
    /// process waits for Redis before serving without it.
    pub connect_timeout_ms: u64,
    /// While Redis is unreachable, how often it is tried again (no call
    /// waits for it meanwhile).
    pub probe_interval_ms: u64,
    /// What each limit does while Redis is unreachable.
    pub when_unavailable: WhenUnavailable,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            redis_url: None,
            key_prefix: "soapgate:".into(),
            timeout_ms: 250,
            connect_timeout_ms: 1000,
            probe_interval_ms: 1000,
            when_unavailable: WhenUnavailable::default(),
        }
    }
}

/// `[cluster.when_unavailable]`: per limit, `local` (fail open: this
/// instance's own limiter decides, as without Redis) or `refuse` (fail
/// closed: the call is refused with `LIMITS_UNAVAILABLE`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WhenUnavailable {
    /// Each tenant's `requests_per_minute`.
    pub requests: Fallback,
    /// Each tenant's `tokens_per_minute`.
    pub tokens: Fallback,
    /// UsernameToken nonces: with `local`, a token replayed to another
    /// instance within its Created window is not caught while Redis is
    /// away.
    pub nonces: Fallback,
    /// Failed-login throttling per user name and source address.
    pub failed_logins: Fallback,
}

impl Default for WhenUnavailable {
    fn default() -> Self {
        WhenUnavailable {
            requests: Fallback::Local,
            tokens: Fallback::Local,
            nonces: Fallback::Refuse,
            failed_logins: Fallback::Local,
        }
    }
}

/// What a limit does while Redis is unreachable.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// Fail open: this instance's own limiter decides.
    Local,
    /// Fail closed: refuse the call (`LIMITS_UNAVAILABLE`).
    Refuse,
}

impl Fallback {
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::Local => "local",
            Fallback::Refuse => "refuse",
        }
    }
}

/// The limits a [`SharedState`] keeps, by name (logs, faults, `/readyz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Requests,
    Tokens,
    Nonces,
    FailedLogins,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Requests => "requests",
            Limit::Tokens => "tokens",
            Limit::Nonces => "nonces",
            Limit::FailedLogins => "failed_logins",
        }
    }
}

/// One tenant's rate limits, as [`SharedState`] enforces them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Quotas {
    /// Requests per minute and the burst let through at once.
    pub(super) requests: Option<(u32, u32)>,
    /// Input plus output tokens per minute (a minute's worth at once).
    pub(super) tokens_per_minute: Option<u64>,
}

impl Quotas {
    pub(super) fn any(&self) -> bool {
        self.requests.is_some() || self.tokens_per_minute.is_some()
    }
}

/// Why [`SharedState::admit`] refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Over the request rate; the wait until one more would be let through.
    Requests(Duration),
    /// The tokens per minute are spent; the wait until there is room.
    Tokens(Duration),
    /// Redis is unreachable and this limit is configured to refuse.
    Unavailable(Limit),
}

/// Redis is unreachable and the limit is configured to refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Unavailable(pub(super) Limit);

/// The shared backend as `/readyz` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClusterHealth {
    /// `redis`.
    pub backend: &'static str,
    /// `up`, `connecting` (not answered since start) or `down`.
    pub state: &'static str,
    /// Why it is `connecting` or `down`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Per limit, what decides now: `shared`, or while Redis is away
    /// `local` or `refuse`.
    pub limits: std::collections::BTreeMap<&'static str, &'static str>,
}

/// The state that must hold across instances. Every method answers within
/// the backend's timeout: an unreachable backend is never waited for.
pub(super) trait SharedState: Send + Sync + fmt::Debug {
    /// Takes one request from tenant `tenant`'s rate (by index), when its
    /// request rate has room and its tokens per minute are not spent.
    fn admit(&self, tenant: usize) -> BoxFuture<'_, Result<(), Refusal>>;

    /// Counts `tokens` (what a call of the tenant reported using) against
    /// its tokens per minute. Returns at once; a shared backend writes in
    /// the background.
    fn charge_tokens(&self, tenant: usize, tokens: u64);

    /// Remembers a genuine UsernameToken's nonce in its user's window.
    fn remember_nonce<'a>(
        &'a self,
        user: &'a str,
        nonce: &'a [u8],
    ) -> BoxFuture<'a, Result<Seen, Unavailable>>;

    /// `Some` (the key and the wait) when an attempt for `user` from
    /// `source` must be refused before any password is checked.
    fn login_refused<'a>(
        &'a self,
        user: &'a str,
        source: Option<IpAddr>,
    ) -> BoxFuture<'a, Result<Option<(Key, Duration)>, Unavailable>>;

    /// Records a failed attempt. Returns at once (it may run in a drop).
    fn login_failed(&self, user: &str, source: Option<IpAddr>);

    /// The shared backend's state; `None` for this process's own.
    fn health(&self) -> Option<ClusterHealth>;
}

/// Where a UsernameToken or Basic user's failed logins and nonces are
/// kept, by user name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UserKind {
    /// A UsernameToken user: nonces and failed logins.
    Token,
    /// An HTTP Basic user: failed logins.
    Basic,
}
