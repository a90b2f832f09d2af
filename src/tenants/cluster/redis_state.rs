//! The tenant state in Redis (or Valkey), shared by every instance that
//! names the same `[cluster] redis_url`.
//!
//! Each decision is one script run on the server, so one round trip and
//! atomic whatever the number of instances: `gcra.lua` for request rates,
//! tokens per minute and failed logins (each a GCRA bucket: a key holding
//! the time at which it is empty again), `nonce.lua` for nonces (`SET NX`
//! with the Created window as its TTL, and a per-user sorted set bounding
//! how many one user holds). Times are the Redis server's clock, so the
//! instances' clocks need not agree. Two things spare round trips without
//! changing a decision: a tenant refused until some instant is refused
//! here until then (a bucket only fills faster as other instances take
//! from it), and a login this instance's own buckets already refuse is
//! refused without asking. Token charges and failed logins are written in
//! the background, off the call's path.
//!
//! Every Redis call has a deadline (`timeout_ms`). A call that fails or
//! misses it marks Redis down (logged once); from then on no call waits
//! for Redis: each limit does what `[cluster.when_unavailable]` says —
//! this instance's own state ([`Local`], kept beside the shared one:
//! failed logins, nonces and tokens are counted in both) or a refusal. A
//! probe task tries a fresh connection every `probe_interval_ms`, and the
//! first answer brings the shared limits back (logged).
//!
//! The only file that names the `redis` crate.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, FromRedisValue, Script, ScriptInvocation};
use sha2::{Digest, Sha256};

use super::super::nonces::Seen;
use super::super::throttle::{Key, address_key};
use super::{
    BoxFuture, ClusterHealth, ClusterSettings, Fallback, Limit, Local, Quotas, Refusal,
    SharedState, Unavailable, WhenUnavailable,
};

/// The rate limits' script (`gcra.lua`).
const GCRA: &str = include_str!("gcra.lua");
/// The nonces' script (`nonce.lua`).
const NONCE: &str = include_str!("nonce.lua");

/// A GCRA bucket's shape, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rate {
    /// What one unit (a request, a token, a failure) takes to drain.
    per_unit_us: f64,
    /// A full bucket.
    capacity_us: f64,
}

impl Rate {
    /// `per_minute` units drain in a minute; `burst` of them fill it.
    fn new(per_minute: u64, burst: u64) -> Rate {
        let per_unit_us = 60_000_000.0 / per_minute.max(1) as f64;
        Rate {
            per_unit_us,
            capacity_us: per_unit_us * burst.max(1) as f64,
        }
    }
}

/// One tenant's buckets.
#[derive(Debug)]
struct TenantKeys {
    requests: Option<(String, Rate)>,
    tokens: Option<(String, Rate)>,
    /// Redis refused this tenant until then, for this reason: until then
    /// it is refused here without a round trip.
    refused: Mutex<Option<(Instant, Refusal)>>,
}

impl TenantKeys {
    /// The refusal still in force at `now`, with the wait left.
    fn still_refused(&self, now: Instant) -> Option<Refusal> {
        let refused = *self.refused.lock().unwrap_or_else(|e| e.into_inner());
        let (until, why) = refused?;
        let left = until.checked_duration_since(now).filter(|d| !d.is_zero())?;
        Some(match why {
            Refusal::Requests(_) => Refusal::Requests(left),
            Refusal::Tokens(_) => Refusal::Tokens(left),
            Refusal::Unavailable(limit) => Refusal::Unavailable(limit),
        })
    }
}

/// Whether Redis answers, as calls and the probe found it.
#[derive(Debug)]
struct Health {
    state: AtomicU8,
    error: Mutex<Option<String>>,
}

const CONNECTING: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

impl Health {
    fn is_up(&self) -> bool {
        self.state.load(Ordering::Acquire) == UP
    }

    fn state_name(&self) -> &'static str {
        match self.state.load(Ordering::Acquire) {
            UP => "up",
            CONNECTING => "connecting",
            _ => "down",
        }
    }
}

/// The state shared through Redis, with this instance's own beside it.
#[derive(Debug)]
pub(in crate::tenants) struct RedisState {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    /// Where Redis is (host and port, no credentials), for the log.
    target: String,
    conn: ArcSwap<ConnectionManager>,
    health: Health,
    local: Local,
    when: WhenUnavailable,
    timeout: Duration,
    connect_timeout: Duration,
    probe_interval: Duration,
    prefix: String,
    tenants: Vec<TenantKeys>,
    gcra: Script,
    nonce: Script,
    nonce_ttl_ms: u64,
    nonce_capacity: u64,
    login: Rate,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("target", &self.target)
            .field("state", &self.health.state_name())
            .field("when_unavailable", &self.when)
            .finish_non_exhaustive()
    }
}

/// The Redis side of a [`RedisState`]: everything but this instance's own
/// state and the tenants' quotas.
#[derive(Debug)]
pub(in crate::tenants) struct RedisParts<'a> {
    pub(in crate::tenants) settings: &'a ClusterSettings,
    /// Tenant names, by index: their keys.
    pub(in crate::tenants) names: &'a [String],
    pub(in crate::tenants) quotas: &'a [Quotas],
    pub(in crate::tenants) nonce_ttl: Duration,
    pub(in crate::tenants) nonce_capacity: u64,
    pub(in crate::tenants) failed_auth_burst: u32,
    pub(in crate::tenants) failed_auth_per_minute: u32,
}

impl RedisState {
    /// The shared state at `settings.redis_url`, with `local` beside it.
    /// Refuses a URL the client does not take; does not wait for Redis:
    /// [`RedisState::first_contact`] does, and a probe task keeps trying
    /// until it answers. Must run inside a tokio runtime.
    pub(in crate::tenants) fn new(parts: RedisParts<'_>, local: Local) -> anyhow::Result<Self> {
        let s = parts.settings;
        let url = s
            .redis_url
            .as_ref()
            .map(|u| u.expose())
            .ok_or_else(|| anyhow::anyhow!("cluster.redis_url is not set"))?;
        if !(url.starts_with("redis://") || url.starts_with("valkey://")) {
            // Said without the URL: it may carry a password.
            anyhow::bail!(
                "cluster.redis_url must be a redis:// URL (TLS to Redis, rediss://, is not built in)"
            );
        }
        let client = Client::open(url).map_err(|e| {
            anyhow::anyhow!("cluster.redis_url is not a Redis URL ({:?})", e.kind())
        })?;
        for (key, ms) in [
            ("timeout_ms", s.timeout_ms),
            ("connect_timeout_ms", s.connect_timeout_ms),
            ("probe_interval_ms", s.probe_interval_ms),
        ] {
            if ms == 0 {
                anyhow::bail!("cluster.{key} must be at least 1");
            }
        }
        let target = client.get_connection_info().addr().to_string();
        let timeout = Duration::from_millis(s.timeout_ms);
        let connect_timeout = Duration::from_millis(s.connect_timeout_ms);
        let conn = manager(&client, timeout, connect_timeout)?;
        let prefix = s.key_prefix.clone();
        let tenants = parts
            .names
            .iter()
            .zip(parts.quotas)
            .map(|(name, q)| TenantKeys {
                requests: q.requests.map(|(per_minute, burst)| {
                    (
                        format!("{prefix}rate:{name}"),
                        Rate::new(u64::from(per_minute), u64::from(burst)),
                    )
                }),
                // A minute's worth of tokens at once.
                tokens: q
                    .tokens_per_minute
                    .map(|tpm| (format!("{prefix}tpm:{name}"), Rate::new(tpm, tpm))),
                refused: Mutex::new(None),
            })
            .collect();
        let inner = Arc::new(Inner {
            client,
            target,
            conn: ArcSwap::from_pointee(conn),
            health: Health {
                state: AtomicU8::new(CONNECTING),
                error: Mutex::new(Some("not contacted yet".into())),
            },
            local,
            when: s.when_unavailable,
            timeout,
            connect_timeout,
            probe_interval: Duration::from_millis(s.probe_interval_ms),
            prefix,
            tenants,
            gcra: Script::new(GCRA),
            nonce: Script::new(NONCE),
            nonce_ttl_ms: u64::try_from(parts.nonce_ttl.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            nonce_capacity: parts.nonce_capacity.max(1),
            login: Rate::new(
                u64::from(parts.failed_auth_per_minute),
                u64::from(parts.failed_auth_burst),
            ),
        });
        tokio::spawn(probe(Arc::downgrade(&inner)));
        Ok(RedisState { inner })
    }

    /// Waits for Redis to answer, at most `connect_timeout_ms`; logs what
    /// came of it. Without an answer the instance serves anyway, each limit
    /// as `when_unavailable` says, until the probe reaches Redis.
    pub(in crate::tenants) async fn first_contact(&self) {
        let inner = &self.inner;
        if inner.recover().await {
            return;
        }
        let error = inner
            .health
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default();
        tracing::warn!(
            redis = %inner.target,
            error = %error,
            requests = inner.when.requests.as_str(),
            tokens = inner.when.tokens.as_str(),
            nonces = inner.when.nonces.as_str(),
            failed_logins = inner.when.failed_logins.as_str(),
            "Redis does not answer at start: serving with the fallback of each limit until it does"
        );
    }
}

/// A connection manager that connects on first use, once per attempt
/// (reconnecting is the probe's), within the timeouts.
fn manager(
    client: &Client,
    timeout: Duration,
    connect_timeout: Duration,
) -> anyhow::Result<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(0)
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(connect_timeout));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
        .map_err(|e| anyhow::anyhow!("making the Redis connection: {:?}", e.kind()))
}

/// While `inner` lives: every `probe_interval`, if Redis is not up, try it
/// again.
async fn probe(inner: Weak<Inner>) {
    loop {
        let Some(interval) = inner.upgrade().map(|i| i.probe_interval) else {
            return;
        };
        tokio::time::sleep(interval).await;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if !strong.health.is_up() {
            strong.recover().await;
        }
    }
}

impl Inner {
    /// Tries a fresh connection (the old one may be stuck on a server that
    /// stopped answering); when Redis answers, it becomes the connection
    /// and the shared limits are back.
    async fn recover(&self) -> bool {
        let conn = match manager(&self.client, self.timeout, self.connect_timeout) {
            Ok(conn) => conn,
            Err(e) => {
                self.still_down(e.to_string());
                return false;
            }
        };
        let mut ping = conn.clone();
        let answered = tokio::time::timeout(
            self.connect_timeout + self.timeout,
            redis::cmd("PING").query_async::<String>(&mut ping),
        )
        .await;
        match answered {
            Ok(Ok(_)) => {
                self.conn.store(Arc::new(conn));
                self.mark_up();
                true
            }
            Ok(Err(e)) => {
                self.still_down(e.to_string());
                false
            }
            Err(_) => {
                self.still_down(format!(
                    "no answer within {} ms",
                    (self.connect_timeout + self.timeout).as_millis()
                ));
                false
            }
        }
    }

    fn still_down(&self, error: String) {
        *self.health.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    fn mark_up(&self) {
        *self.health.error.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let was = self.health.state.swap(UP, Ordering::AcqRel);
        if was == DOWN {
            tracing::info!(
                redis = %self.target,
                "Redis answers again: request rates, tokens per minute, nonces and failed logins are shared across instances again"
            );
        } else if was == CONNECTING {
            tracing::info!(redis = %self.target, "Redis connected: limits are shared across instances");
        }
    }

    /// A call failed or timed out: Redis is down until the probe reaches
    /// it. Logged once per outage, with what each limit does meanwhile.
    fn mark_down(&self, what: &'static str, error: &str) {
        self.still_down(error.to_string());
        let was = self.health.state.swap(DOWN, Ordering::AcqRel);
        if was != DOWN {
            tracing::warn!(
                redis = %self.target,
                during = what,
                error,
                requests = self.when.requests.as_str(),
                tokens = self.when.tokens.as_str(),
                nonces = self.when.nonces.as_str(),
                failed_logins = self.when.failed_logins.as_str(),
                "Redis unreachable: each limit falls back as configured (local: this instance alone; refuse: LIMITS_UNAVAILABLE) until it answers"
            );
        }
    }

    /// Runs a script invocation within the timeout.
    async fn run<T: FromRedisValue>(&self, invocation: &ScriptInvocation<'_>) -> Result<T, String> {
        let mut conn = (**self.conn.load()).clone();
        match tokio::time::timeout(self.timeout, invocation.invoke_async(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }

    /// A call's admission while Redis is away.
    fn admit_without(&self, tenant: usize) -> Result<(), Refusal> {
        let Some(t) = self.tenants.get(tenant) else {
            return Ok(());
        };
        if t.requests.is_some() && self.when.requests == Fallback::Refuse {
            return Err(Refusal::Unavailable(Limit::Requests));
        }
        if t.tokens.is_some() && self.when.tokens == Fallback::Refuse {
            return Err(Refusal::Unavailable(Limit::Tokens));
        }
        self.local.admit_now(tenant)
    }

    async fn admit(&self, tenant: usize) -> Result<(), Refusal> {
        let Some(t) = self.tenants.get(tenant) else {
            return Ok(());
        };
        if t.requests.is_none() && t.tokens.is_none() {
            return Ok(());
        }
        let now = Instant::now();
        if let Some(refused) = t.still_refused(now) {
            return Err(refused);
        }
        if !self.health.is_up() {
            return self.admit_without(tenant);
        }
        let mut invocation = self.gcra.prepare_invoke();
        invocation.arg("admit");
        for (bucket, take) in [(&t.requests, 1), (&t.tokens, 0)] {
            if let Some((key, rate)) = bucket {
                invocation
                    .key(key)
                    .arg(rate.per_unit_us)
                    .arg(rate.capacity_us)
                    .arg(1)
                    .arg(take);
            }
        }
        match self.run::<(i64, i64)>(&invocation).await {
            Ok((0, _)) => Ok(()),
            Ok((index, wait_us)) => {
                let wait = Duration::from_micros(u64::try_from(wait_us).unwrap_or(0).max(1));
                let refusal = if index == 1 && t.requests.is_some() {
                    Refusal::Requests(wait)
                } else {
                    Refusal::Tokens(wait)
                };
                *t.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some((now + wait, refusal));
                Err(refusal)
            }
            Err(e) => {
                self.mark_down("admitting a call", &e);
                self.admit_without(tenant)
            }
        }
    }

    async fn charge_tokens(&self, tenant: usize, tokens: u64) {
        let Some((key, rate)) = self.tenants.get(tenant).and_then(|t| t.tokens.as_ref()) else {
            return;
        };
        let mut invocation = self.gcra.prepare_invoke();
        invocation
            .arg("charge")
            .key(key)
            .arg(rate.per_unit_us)
            .arg(rate.capacity_us)
            .arg(0)
            .arg(tokens);
        if let Err(e) = self.run::<(i64, i64)>(&invocation).await {
            self.mark_down("counting tokens", &e);
        }
    }

    fn user_key(&self, user: &str) -> String {
        format!(
            "{}login:user:{}",
            self.prefix,
            super::super::secret::hex(&Sha256::digest(user.as_bytes()))
        )
    }

    fn address_key(&self, ip: IpAddr) -> String {
        format!("{}login:addr:{}", self.prefix, address_key(ip))
    }

    /// The login buckets of `user` and `source`, each with four numbers.
    fn login_invocation(
        &self,
        mode: &str,
        user: &str,
        source: Option<IpAddr>,
        need: u64,
        add: u64,
    ) -> ScriptInvocation<'_> {
        let mut invocation = self.gcra.prepare_invoke();
        invocation.arg(mode);
        let keys =
            std::iter::once(self.user_key(user)).chain(source.map(|ip| self.address_key(ip)));
        for key in keys {
            invocation
                .key(key)
                .arg(self.login.per_unit_us)
                .arg(self.login.capacity_us)
                .arg(need)
                .arg(add);
        }
        invocation
    }

    async fn login_refused(
        &self,
        user: &str,
        source: Option<IpAddr>,
    ) -> Result<Option<(Key, Duration)>, Unavailable> {
        // This instance's own failures are counted in Redis too: what they
        // refuse, Redis refuses.
        if let Some(refused) = self.local.login_refused_now(user, source) {
            return Ok(Some(refused));
        }
        if !self.health.is_up() {
            return self.login_refused_without(user, source);
        }
        let invocation = self.login_invocation("admit", user, source, 1, 0);
        match self.run::<(i64, i64)>(&invocation).await {
            Ok((0, _)) => Ok(None),
            Ok((index, wait_us)) => {
                let wait = Duration::from_micros(u64::try_from(wait_us).unwrap_or(0).max(1));
                let key = if index == 1 { Key::User } else { Key::Address };
                Ok(Some((key, wait)))
            }
            Err(e) => {
                self.mark_down("checking failed logins", &e);
                self.login_refused_without(user, source)
            }
        }
    }

    fn login_refused_without(
        &self,
        user: &str,
        source: Option<IpAddr>,
    ) -> Result<Option<(Key, Duration)>, Unavailable> {
        match self.when.failed_logins {
            Fallback::Local => Ok(self.local.login_refused_now(user, source)),
            Fallback::Refuse => Err(Unavailable(Limit::FailedLogins)),
        }
    }

    async fn login_failed(&self, user: &str, source: Option<IpAddr>) {
        let invocation = self.login_invocation("charge", user, source, 0, 1);
        if let Err(e) = self.run::<(i64, i64)>(&invocation).await {
            self.mark_down("counting a failed login", &e);
        }
    }

    async fn remember_nonce(&self, user: &str, nonce: &[u8]) -> Result<Seen, Unavailable> {
        if !self.health.is_up() {
            return self.remember_nonce_without(user, nonce);
        }
        let digest = super::super::secret::hex(&Sha256::digest(nonce));
        let mut invocation = self.nonce.prepare_invoke();
        invocation
            .key(format!("{}nonce:{user}:{digest}", self.prefix))
            .key(format!("{}nonces:{user}", self.prefix))
            .arg(self.nonce_ttl_ms)
            .arg(self.nonce_capacity);
        match self.run::<(i64, i64)>(&invocation).await {
            Ok((0, _)) => {
                // Kept here too, so a replay to this instance is still
                // caught should Redis go away within the window.
                let _ = self.local.remember_nonce_now(user, nonce);
                Ok(Seen::Fresh)
            }
            Ok((1, _)) => Ok(Seen::Replay),
            Ok((_, wait_ms)) => Ok(Seen::Full(Duration::from_millis(
                u64::try_from(wait_ms).unwrap_or(1),
            ))),
            Err(e) => {
                self.mark_down("remembering a nonce", &e);
                self.remember_nonce_without(user, nonce)
            }
        }
    }

    fn remember_nonce_without(&self, user: &str, nonce: &[u8]) -> Result<Seen, Unavailable> {
        match self.when.nonces {
            Fallback::Local => Ok(self.local.remember_nonce_now(user, nonce)),
            Fallback::Refuse => Err(Unavailable(Limit::Nonces)),
        }
    }

    fn health(&self) -> ClusterHealth {
        let up = self.health.is_up();
        let limit = |fallback: Fallback| if up { "shared" } else { fallback.as_str() };
        let error = if up {
            None
        } else {
            self.health
                .error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        };
        ClusterHealth {
            backend: "redis",
            state: self.health.state_name(),
            error,
            limits: [
                (Limit::Requests, self.when.requests),
                (Limit::Tokens, self.when.tokens),
                (Limit::Nonces, self.when.nonces),
                (Limit::FailedLogins, self.when.failed_logins),
            ]
            .into_iter()
            .map(|(l, f)| (l.as_str(), limit(f)))
            .collect(),
        }
    }
}

/// Runs `f` on `inner` in the background when there is a runtime; the
/// call it serves does not wait.
fn in_background<F, Fut>(inner: &Arc<Inner>, f: F)
where
    F: FnOnce(Arc<Inner>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(f(inner.clone()));
    }
}

impl SharedState for RedisState {
    fn admit(&self, tenant: usize) -> BoxFuture<'_, Result<(), Refusal>> {
        Box::pin(self.inner.admit(tenant))
    }

    fn charge_tokens(&self, tenant: usize, tokens: u64) {
        let inner = &self.inner;
        let limited = inner
            .tenants
            .get(tenant)
            .is_some_and(|t| t.tokens.is_some());
        if !limited || tokens == 0 {
            return;
        }
        inner.local.charge_tokens(tenant, tokens);
        if inner.health.is_up() {
            in_background(inner, move |inner| async move {
                inner.charge_tokens(tenant, tokens).await;
            });
        }
    }

    fn remember_nonce<'a>(
        &'a self,
        user: &'a str,
        nonce: &'a [u8],
    ) -> BoxFuture<'a, Result<Seen, Unavailable>> {
        Box::pin(self.inner.remember_nonce(user, nonce))
    }

    fn login_refused<'a>(
        &'a self,
        user: &'a str,
        source: Option<IpAddr>,
    ) -> BoxFuture<'a, Result<Option<(Key, Duration)>, Unavailable>> {
        Box::pin(self.inner.login_refused(user, source))
    }

    fn login_failed(&self, user: &str, source: Option<IpAddr>) {
        let inner = &self.inner;
        inner.local.login_failed(user, source);
        if inner.health.is_up() {
            let user = user.to_string();
            in_background(inner, move |inner| async move {
                inner.login_failed(&user, source).await;
            });
        }
    }

    fn health(&self) -> Option<ClusterHealth> {
        Some(self.inner.health())
    }
}
