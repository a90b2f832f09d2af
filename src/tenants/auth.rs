//! The credential tables and their checks: UsernameToken (PasswordText
//! against an Argon2id hash or the clear password; PasswordDigest against
//! the clear password, with the Created window and the nonce replay
//! windows), HTTP Basic (Argon2id hash), API keys (SHA-256, looked up by
//! hash) and client certificates (`certificate.rs`), alone or bound to a
//! UsernameToken user.
//!
//! Guessing is made slow and cheap for us, in this order:
//! - a password that checked out is remembered for `verified_cache_secs`
//!   under a keyed SHA-256 of user and password (the key is random per
//!   process), so a client pays the slow hash once per period, and a
//!   client whose password is remembered is never throttled;
//! - failed attempts are counted per user name and per source address
//!   (`throttle.rs`, or shared by every instance: `cluster/`); past
//!   `failed_auth_burst`, attempts are refused before any password is
//!   checked;
//! - Argon2 runs on tokio's blocking pool, at most
//!   `password_checks_at_once` at a time; a call waits up to
//!   `password_check_wait_ms` for a turn, then is refused;
//! - every PasswordText or Basic check that is not remembered costs one
//!   Argon2 verification, whoever the user: against the user's hash, or
//!   against a dummy hash (made at start with the configured hashes'
//!   parameters) for an unknown user or one whose password is configured
//!   in clear. PasswordDigest costs a SHA-1 for every user, known or not.
//!   So the time an answer takes does not say whether a user exists.
//!
//! Nothing here logs or returns a secret.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use super::certificate::{CertMatch, PeerIdentity};
use super::cluster::{SharedState, Unavailable};
use super::nonces::Seen;
use super::secret;
use super::settings::{CredentialSettings, TenancySettings};
use super::throttle::Key;
use super::username_token::{self, TokenError};
use crate::error::GatewayError;
use crate::soap::wsse::{Password, UsernameToken};

/// The credentials a call presented, as the transport found them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Presented<'a> {
    /// The envelope's WS-Security UsernameToken.
    pub token: Option<&'a UsernameToken>,
    /// HTTP Basic user and password.
    pub basic: Option<(&'a str, &'a str)>,
    /// The API key header's value.
    pub api_key: Option<&'a str>,
    /// The client's address, when the transport knows it: failed attempts
    /// are throttled per address as well as per user name.
    pub source: Option<IpAddr>,
    /// The DER of the client certificate the TLS handshake verified.
    pub certificate: Option<&'a [u8]>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    /// Who presented the credentials, for the audit trail: the user name,
    /// or `api-key:` and the first 12 hex digits of the key's hash.
    pub who: String,
}

/// A UsernameToken user.
struct TokenUser {
    tenant: usize,
    hash: Option<Arc<str>>,
    clear: Option<Arc<str>>,
    /// Named by a certificate credential's `with_username_token`: accepted
    /// only together with a certificate of such a credential.
    certificate_bound: bool,
}

/// A `certificate` credential.
struct CertCredential {
    tenant: usize,
    matcher: CertMatch,
    /// The UsernameToken user the certificate must come with.
    with_token: Option<String>,
}

/// What a password is checked against.
enum Against {
    Hash(Arc<str>),
    Clear(Arc<str>),
    /// An unknown user: the dummy hash, and never a match.
    Nobody,
}

/// Why an attempt is refused.
enum Refusal {
    /// The credentials do not check out.
    Token(TokenError),
    /// Too many failures under this key; retry after the wait.
    Throttled(Key, Duration),
    /// No Argon2 turn came within `password_check_wait_ms`.
    Busy,
    /// The user's nonce window is full until the wait has passed.
    NoncesFull(Duration),
    /// The shared state is unreachable and this check fails closed.
    Unavailable(Unavailable),
}

pub(super) struct Credentials {
    token_users: HashMap<String, TokenUser>,
    basic_users: HashMap<String, (usize, Arc<str>)>,
    api_keys: HashMap<String, usize>,
    certificates: Vec<CertCredential>,
    /// Keyed hashes of (scheme, user, password, stored secret) that
    /// checked out.
    verified: Option<moka::sync::Cache<[u8; 32], ()>>,
    verified_key: [u8; 16],
    /// Failed logins and nonce windows: this process's, or every
    /// instance's.
    shared: Arc<dyn SharedState>,
    /// Turns at Argon2.
    checks: Arc<Semaphore>,
    check_wait: Duration,
    /// A hash of a password nobody knows, with the configured hashes'
    /// parameters ([`Credentials::seal`]).
    dummy_hash: Arc<str>,
    /// A clear password nobody knows, for digests of unknown users.
    dummy_clear: String,
    /// Argon2 verifications performed (real and dummy).
    pub(super) verifications: Arc<AtomicU64>,
    nonce_capacity: u64,
    max_age: Duration,
    max_future: Duration,
}

/// Records a failed attempt when dropped armed: a check whose caller went
/// away (the client hung up) still counts once the hash ran.
struct Failure<'a> {
    shared: &'a dyn SharedState,
    user: &'a str,
    source: Option<IpAddr>,
    armed: bool,
}

impl Drop for Failure<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.login_failed(self.user, self.source);
        }
    }
}

impl Credentials {
    pub(super) fn new(
        s: &TenancySettings,
        shared: Arc<dyn SharedState>,
    ) -> anyhow::Result<Credentials> {
        if s.failed_auth_burst == 0 {
            bail!("tenancy.failed_auth_burst must be at least 1");
        }
        if s.failed_auth_per_minute == 0 {
            bail!("tenancy.failed_auth_per_minute must be at least 1");
        }
        let checks = match s.password_checks_at_once {
            Some(0) => bail!("tenancy.password_checks_at_once must be at least 1"),
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
        };
        let max_age = Duration::from_secs(s.created_max_age_secs);
        let max_future = Duration::from_secs(s.created_max_future_secs);
        Ok(Credentials {
            token_users: HashMap::new(),
            basic_users: HashMap::new(),
            api_keys: HashMap::new(),
            certificates: Vec::new(),
            verified: (s.verified_cache_secs > 0).then(|| {
                moka::sync::Cache::builder()
                    .max_capacity(10_000)
                    .time_to_live(Duration::from_secs(s.verified_cache_secs))
                    .build()
            }),
            verified_key: *uuid::Uuid::new_v4().as_bytes(),
            shared,
            checks: Arc::new(Semaphore::new(checks)),
            check_wait: Duration::from_millis(s.password_check_wait_ms),
            dummy_hash: Arc::from(""),
            dummy_clear: uuid::Uuid::new_v4().to_string(),
            verifications: Arc::new(AtomicU64::new(0)),
            nonce_capacity: s.nonce_cache_capacity,
            max_age,
            max_future,
        })
    }

    pub(super) fn add(&mut self, tenant: usize, c: &CredentialSettings) -> anyhow::Result<()> {
        match c {
            CredentialSettings::UsernameToken {
                username,
                password_hash,
                password_env,
                password,
            } => {
                let clear = match (password_env, password) {
                    (Some(_), Some(_)) => {
                        bail!("user {username}: set password_env or password, not both")
                    }
                    (Some(var), None) => Some(std::env::var(var).with_context(|| {
                        format!("user {username}: environment variable {var} is not set")
                    })?),
                    (None, Some(p)) => Some(p.expose().to_string()),
                    (None, None) => None,
                };
                if let Some(h) = password_hash {
                    secret::check_password_hash(h)
                        .map_err(|e| anyhow::anyhow!("user {username}: password_hash: {e}"))?;
                }
                if clear.is_none() && password_hash.is_none() {
                    bail!("user {username}: needs password_hash, password_env or password");
                }
                let user = TokenUser {
                    tenant,
                    hash: password_hash.as_deref().map(Arc::from),
                    clear: clear.map(Arc::from),
                    certificate_bound: false,
                };
                if self.token_users.insert(username.clone(), user).is_some() {
                    bail!("UsernameToken user {username} is declared twice");
                }
            }
            CredentialSettings::Basic {
                username,
                password_hash,
            } => {
                secret::check_password_hash(password_hash)
                    .map_err(|e| anyhow::anyhow!("user {username}: password_hash: {e}"))?;
                if self
                    .basic_users
                    .insert(
                        username.clone(),
                        (tenant, Arc::from(password_hash.as_str())),
                    )
                    .is_some()
                {
                    bail!("Basic user {username} is declared twice");
                }
            }
            CredentialSettings::ApiKey { key_hash } => {
                secret::check_api_key_hash(key_hash)
                    .map_err(|e| anyhow::anyhow!("api_key key_hash: {e}"))?;
                if self
                    .api_keys
                    .insert(key_hash.to_ascii_lowercase(), tenant)
                    .is_some()
                {
                    bail!("an API key is declared twice");
                }
            }
            CredentialSettings::Certificate {
                subject,
                san,
                sha256,
                with_username_token,
            } => {
                let matcher =
                    CertMatch::new(subject.as_deref(), san.as_deref(), sha256.as_deref())?;
                if self.certificates.iter().any(|c| c.matcher == matcher) {
                    bail!("a certificate credential is declared twice");
                }
                self.certificates.push(CertCredential {
                    tenant,
                    matcher,
                    with_token: with_username_token.clone(),
                });
            }
        }
        Ok(())
    }

    /// Once every credential is added: makes the dummy hash, with the
    /// parameters most of the configured hashes have (the defaults when
    /// there are none). One Argon2 hash, at start.
    /// Also binds the UsernameToken users certificate credentials name to
    /// them (each must be a user of the credential's tenant).
    pub(super) fn seal(&mut self) -> anyhow::Result<()> {
        for c in &self.certificates {
            let Some(user) = &c.with_token else { continue };
            match self.token_users.get_mut(user) {
                Some(u) if u.tenant == c.tenant => u.certificate_bound = true,
                _ => bail!(
                    "a certificate credential's with_username_token = {user:?} names no username_token credential of its tenant"
                ),
            }
        }
        let mut by_params: HashMap<String, (usize, &str)> = HashMap::new();
        let hashes = self
            .token_users
            .values()
            .filter_map(|u| u.hash.as_deref())
            .chain(self.basic_users.values().map(|(_, h)| h.as_ref()));
        for hash in hashes {
            if let Ok(parsed) = argon2::PasswordHash::new(hash) {
                let params = format!(
                    "{:?} {} {:?}",
                    parsed.version,
                    parsed.params,
                    parsed.hash.map(|h| h.len())
                );
                by_params.entry(params).or_insert((0, hash)).0 += 1;
            }
        }
        // The most common; of equals, the first in order of their params.
        let mut counted: Vec<(&String, &(usize, &str))> = by_params.iter().collect();
        counted.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
        let like = counted.first().map(|(_, (_, hash))| *hash);
        let dummy = secret::dummy_hash(like)
            .map_err(|e| anyhow::anyhow!("making the dummy password hash: {e}"))?;
        self.dummy_hash = Arc::from(dummy);
        Ok(())
    }

    /// The tenant index and principal name of the presented credentials:
    /// the scheme that decides (UsernameToken, else Basic, else API key),
    /// and the client certificate, which must agree with it; without
    /// those, the certificate alone.
    pub(super) async fn authenticate(
        &self,
        p: &Presented<'_>,
        now: OffsetDateTime,
    ) -> Result<(usize, String), GatewayError> {
        let peer = p.certificate.map(PeerIdentity::from_der);
        let matched: Vec<&CertCredential> = peer.as_ref().map_or_else(Vec::new, |id| {
            self.certificates
                .iter()
                .filter(|c| c.matcher.matches(id))
                .collect()
        });
        let short = peer
            .as_ref()
            .map_or_else(|| "none".to_string(), PeerIdentity::short);
        if let Some(first) = matched.first()
            && matched.iter().any(|c| c.tenant != first.tenant)
        {
            return Err(GatewayError::Unauthenticated(format!(
                "client certificate {short} matches certificate credentials of more than one tenant"
            )));
        }
        let user = p.token.map(|t| t.username.as_str());
        match self.by_scheme(p, now).await {
            Some(Ok((ix, who))) => {
                self.certificate_agrees(ix, user, &short, &matched)?;
                Ok((ix, who))
            }
            Some(Err(e)) => Err(e),
            None => match (
                matched.iter().find(|c| c.with_token.is_none()),
                matched.first(),
            ) {
                (Some(c), _) => Ok((c.tenant, short)),
                (None, Some(c)) => Err(GatewayError::Unauthenticated(format!(
                    "client certificate {short} needs the UsernameToken of {:?} with it",
                    c.with_token.as_deref().unwrap_or_default()
                ))),
                (None, None) if peer.is_some() => Err(GatewayError::Unauthenticated(format!(
                    "no credentials (client certificate {short} is no tenant's; no UsernameToken, HTTP Basic or API key)"
                ))),
                (None, None) => Err(GatewayError::Unauthenticated(
                    "no credentials (no UsernameToken, HTTP Basic, API key or client certificate)"
                        .into(),
                )),
            },
        }
    }

    /// Whether the client certificate (`short`, the `matched` credentials)
    /// agrees with the scheme that found tenant `ix` (a UsernameToken of
    /// `user`, or another): a certificate-bound user needs its
    /// certificate, and a certificate that names a tenant must name this
    /// one, alone or with this user.
    fn certificate_agrees(
        &self,
        ix: usize,
        user: Option<&str>,
        short: &str,
        matched: &[&CertCredential],
    ) -> Result<(), GatewayError> {
        if let Some(u) = user
            && self.token_users.get(u).is_some_and(|t| t.certificate_bound)
            && !matched.iter().any(|c| c.with_token.as_deref() == Some(u))
        {
            return Err(GatewayError::Unauthenticated(format!(
                "UsernameToken user {u:?} is accepted only with its client certificate (presented: {short})"
            )));
        }
        let Some(first) = matched.first() else {
            return Ok(());
        };
        if first.tenant != ix {
            return Err(GatewayError::Unauthenticated(format!(
                "client certificate {short} is another tenant's than the credentials presented with it"
            )));
        }
        if !matched
            .iter()
            .any(|c| c.with_token.is_none() || c.with_token.as_deref() == user)
        {
            return Err(GatewayError::Unauthenticated(format!(
                "client certificate {short} needs the UsernameToken of {:?} with it",
                first.with_token.as_deref().unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// The tenant index and principal name of the scheme that decides:
    /// the UsernameToken, else HTTP Basic, else the API key; `None` when
    /// the call presents none of them.
    async fn by_scheme(
        &self,
        p: &Presented<'_>,
        now: OffsetDateTime,
    ) -> Option<Result<(usize, String), GatewayError>> {
        if let Some(token) = p.token {
            let user = &token.username;
            return Some(
                self.token(token, p.source, now)
                    .await
                    .map(|ix| (ix, user.clone()))
                    .map_err(|r| self.refused(&format!("UsernameToken of {user:?}"), r)),
            );
        }
        if let Some((user, password)) = p.basic {
            let known = self.basic_users.get(user);
            let against = known.map_or(Against::Nobody, |(_, hash)| Against::Hash(hash.clone()));
            let checked = self
                .check_password("basic", user, password, against, p.source)
                .await;
            return Some(
                match (known, checked) {
                    (Some((ix, _)), Ok(())) => Ok((*ix, user.to_string())),
                    (None, Ok(()) | Err(Refusal::Token(_))) => {
                        Err(Refusal::Token(TokenError::UnknownUser))
                    }
                    (_, Err(r)) => Err(r),
                }
                .map_err(|r| self.refused(&format!("HTTP Basic user {user:?}"), r)),
            );
        }
        if let Some(key) = p.api_key {
            let hash = secret::hash_api_key(key.trim());
            let short = format!("api-key:{}", &hash["sha256:".len().."sha256:".len() + 12]);
            return Some(match self.api_keys.get(&hash) {
                Some(ix) => Ok((*ix, short)),
                None => Err(GatewayError::Unauthenticated(format!(
                    "unknown API key ({short})"
                ))),
            });
        }
        None
    }

    /// The error of a refusal; `who` names the scheme and user, for the log.
    fn refused(&self, who: &str, r: Refusal) -> GatewayError {
        match r {
            Refusal::Token(e) => GatewayError::Unauthenticated(format!("{who}: {e}")),
            Refusal::Throttled(key, wait) => GatewayError::AuthThrottled {
                detail: format!("{who}: too many failed attempts from this {}", key.as_str()),
                retry_after: wait,
            },
            Refusal::Busy => GatewayError::AuthThrottled {
                detail: format!(
                    "{who}: no password check free within {} ms",
                    self.check_wait.as_millis()
                ),
                retry_after: Duration::from_secs(1),
            },
            Refusal::Unavailable(Unavailable(limit)) => GatewayError::LimitsUnavailable {
                limit: limit.as_str(),
            },
            Refusal::NoncesFull(wait) => GatewayError::AuthThrottled {
                detail: format!(
                    "{who}: {} nonces within the Created window already",
                    self.nonce_capacity
                ),
                retry_after: wait,
            },
        }
    }

    async fn token(
        &self,
        token: &UsernameToken,
        source: Option<IpAddr>,
        now: OffsetDateTime,
    ) -> Result<usize, Refusal> {
        let name = token.username.as_str();
        let user = self.token_users.get(name);
        // The window applies whenever Created is sent (WSS4J does the same
        // for PasswordText), and a digest cannot do without it.
        if let Some(created) = &token.created {
            username_token::check_created(created, now, self.max_age, self.max_future)
                .map_err(Refusal::Token)?;
        }
        match &token.password {
            None => return Err(Refusal::Token(TokenError::NoPassword)),
            Some(Password::Digest(_)) => {
                self.throttled(name, source).await?;
                // The same SHA-1 whoever the user is.
                let clear = user.and_then(|u| u.clear.as_deref());
                let matches =
                    username_token::digest_matches(token, clear.unwrap_or(&self.dummy_clear));
                let checked = match (user, clear) {
                    (None, _) => Err(TokenError::UnknownUser),
                    (Some(_), None) => Err(TokenError::DigestNotConfigured),
                    (Some(_), Some(_)) => matches,
                };
                if let Err(e) = checked {
                    self.shared.login_failed(name, source);
                    return Err(Refusal::Token(e));
                }
            }
            Some(Password::Text(sent)) => {
                let against = match user {
                    Some(TokenUser {
                        clear: Some(clear), ..
                    }) => Against::Clear(clear.clone()),
                    Some(TokenUser {
                        hash: Some(hash), ..
                    }) => Against::Hash(hash.clone()),
                    _ => Against::Nobody,
                };
                self.check_password("wsse", name, sent, against, source)
                    .await
                    .map_err(|r| match (user, r) {
                        (None, Refusal::Token(_)) => Refusal::Token(TokenError::UnknownUser),
                        (_, r) => r,
                    })?;
            }
        }
        let Some(user) = user else {
            return Err(Refusal::Token(TokenError::UnknownUser));
        };
        // Remembered only once the token is genuine, so junk cannot fill
        // the window; in the user's own window, so nobody else's tokens
        // can push it out.
        if let Some(nonce) = &token.nonce {
            match self
                .shared
                .remember_nonce(name, nonce)
                .await
                .map_err(Refusal::Unavailable)?
            {
                Seen::Fresh => {}
                Seen::Replay => return Err(Refusal::Token(TokenError::Replay)),
                Seen::Full(wait) => return Err(Refusal::NoncesFull(wait)),
            }
        }
        Ok(user.tenant)
    }

    async fn throttled(&self, user: &str, source: Option<IpAddr>) -> Result<(), Refusal> {
        match self
            .shared
            .login_refused(user, source)
            .await
            .map_err(Refusal::Unavailable)?
        {
            Some((key, wait)) => Err(Refusal::Throttled(key, wait)),
            None => Ok(()),
        }
    }

    fn verified_key(&self, scheme: &str, user: &str, password: &str, stored: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.verified_key);
        for part in [scheme, user, password, stored] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }

    fn remembered(&self, key: Option<&[u8; 32]>) -> bool {
        key.zip(self.verified.as_ref())
            .is_some_and(|(k, cache)| cache.contains_key(k))
    }

    /// Checks a PasswordText or Basic password: through the cache of
    /// recently verified ones, then, unless failures from this user name
    /// or address are over the burst, one Argon2 verification on the
    /// blocking pool (against the dummy hash for an unknown user or a clear
    /// password, so every user costs the same).
    async fn check_password(
        &self,
        scheme: &str,
        user: &str,
        password: &str,
        against: Against,
        source: Option<IpAddr>,
    ) -> Result<(), Refusal> {
        let key = match &against {
            Against::Hash(stored) | Against::Clear(stored) => {
                Some(self.verified_key(scheme, user, password, stored))
            }
            Against::Nobody => None,
        };
        if self.remembered(key.as_ref()) {
            return Ok(());
        }
        self.throttled(user, source).await?;
        let permit = tokio::time::timeout(self.check_wait, self.checks.clone().acquire_owned())
            .await
            .map_err(|_| Refusal::Busy)?
            .map_err(|_| Refusal::Busy)?;
        // While this call waited for its turn, another may have checked the
        // same password, or failures may have piled up.
        if self.remembered(key.as_ref()) {
            return Ok(());
        }
        self.throttled(user, source).await?;
        debug_assert!(!self.dummy_hash.is_empty(), "Credentials::seal not called");
        let mut failure = Failure {
            shared: self.shared.as_ref(),
            user,
            source,
            armed: true,
        };
        let dummy = self.dummy_hash.clone();
        let count = self.verifications.clone();
        let password = password.to_string();
        // The turn goes with the hash and comes back with its result, so it
        // is held until the hash is done even if this call has gone away
        // meanwhile (then the failure guard has counted it already).
        let checked = tokio::task::spawn_blocking(move || {
            count.fetch_add(1, Ordering::Relaxed);
            let verified = match against {
                Against::Hash(hash) => secret::verify_password(&password, &hash),
                Against::Clear(clear) => {
                    let _ = secret::verify_password(&password, &dummy);
                    bool::from(clear.as_bytes().ct_eq(password.as_bytes()))
                }
                Against::Nobody => {
                    let _ = secret::verify_password(&password, &dummy);
                    false
                }
            };
            (verified, permit)
        })
        .await;
        let (verified, permit) = match checked {
            Ok(checked) => checked,
            Err(e) => {
                tracing::error!(error = %e, "a password check panicked");
                return Err(Refusal::Token(TokenError::WrongPassword));
            }
        };
        // The failure is counted, or the password remembered, before the
        // turn is given back: whoever gets it next sees the outcome.
        if verified {
            failure.armed = false;
            if let (Some(key), Some(cache)) = (key, &self.verified) {
                cache.insert(key, ());
            }
        }
        drop(failure);
        drop(permit);
        if verified {
            Ok(())
        } else {
            Err(Refusal::Token(TokenError::WrongPassword))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::super::{TenantSettings, Tenants};
    use super::*;

    fn tenant(name: &str, credentials: Vec<CredentialSettings>) -> TenantSettings {
        TenantSettings {
            name: name.into(),
            credentials,
            allow: vec!["*".into()],
            requests_per_minute: None,
            burst: None,
            tokens_per_minute: None,
            tokens_per_day: None,
            tokens_per_month: None,
        }
    }

    /// Tenant `a`: Basic user `alice` and UsernameToken user `tom`, both
    /// hashed ("right"); tenant `b`: UsernameToken users `bob` and `ben`
    /// with clear passwords ("pb").
    fn tenants(tenancy: &TenancySettings) -> Tenants {
        let hash = secret::hash_password("right").expect("hash");
        let list = vec![
            tenant(
                "a",
                vec![
                    CredentialSettings::Basic {
                        username: "alice".into(),
                        password_hash: hash.clone(),
                    },
                    CredentialSettings::UsernameToken {
                        username: "tom".into(),
                        password_hash: Some(hash),
                        password_env: None,
                        password: None,
                    },
                ],
            ),
            tenant(
                "b",
                ["bob", "ben"]
                    .into_iter()
                    .map(|u| CredentialSettings::UsernameToken {
                        username: u.into(),
                        password_hash: None,
                        password_env: None,
                        password: Some(super::super::Secret::new("pb")),
                    })
                    .collect(),
            ),
        ];
        Tenants::from_settings(&list, tenancy)
            .expect("valid")
            .expect("some")
    }

    fn text(user: &str, password: &str) -> UsernameToken {
        UsernameToken {
            username: user.into(),
            password: Some(Password::Text(password.into())),
            nonce: None,
            created: None,
        }
    }

    fn digest(user: &str, password: &str) -> UsernameToken {
        let nonce = uuid::Uuid::new_v4().as_bytes().to_vec();
        let created = OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .expect("time");
        UsernameToken {
            username: user.into(),
            password: Some(Password::Digest(username_token::password_digest(
                &nonce, &created, password,
            ))),
            nonce: Some(nonce),
            created: Some(created),
        }
    }

    fn code(r: &Result<crate::tenants::Principal, GatewayError>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(e) => e.code().as_str(),
        }
    }

    #[tokio::test]
    async fn unknown_users_cost_a_password_verification_too() {
        let t = tenants(&TenancySettings::default());
        let before = t.password_verifications();
        let r = t
            .authenticate(&Presented {
                basic: Some(("alice", "wrong")),
                ..Presented::default()
            })
            .await;
        assert_eq!(code(&r), "AUTHENTICATION_FAILED");
        assert_eq!(t.password_verifications(), before + 1, "known Basic user");
        let r = t
            .authenticate(&Presented {
                basic: Some(("mallory", "wrong")),
                ..Presented::default()
            })
            .await;
        assert_eq!(code(&r), "AUTHENTICATION_FAILED");
        assert_eq!(t.password_verifications(), before + 2, "unknown Basic user");
        let token = text("mallory", "wrong");
        let r = t
            .authenticate(&Presented {
                token: Some(&token),
                ..Presented::default()
            })
            .await;
        assert_eq!(code(&r), "AUTHENTICATION_FAILED");
        assert_eq!(
            t.password_verifications(),
            before + 3,
            "unknown UsernameToken user"
        );
    }

    #[tokio::test]
    async fn failures_for_one_user_are_refused_before_the_hash() {
        let t = tenants(&TenancySettings::default());
        let before = t.password_verifications();
        let mut codes = Vec::new();
        for _ in 0..30 {
            let r = t
                .authenticate(&Presented {
                    basic: Some(("alice", "guess")),
                    ..Presented::default()
                })
                .await;
            codes.push(code(&r));
        }
        let done = t.password_verifications() - before;
        assert!(
            done <= 10,
            "{done} Argon2 verifications for 30 wrong passwords: {codes:?}"
        );
        assert_eq!(codes.last(), Some(&"RATE_LIMITED"), "{codes:?}");
    }

    #[test]
    fn password_checks_leave_the_runtime_free() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let t = Arc::new(tenants(&TenancySettings::default()));
            let ticks = Arc::new(AtomicU64::new(0));
            let ticker = {
                let ticks = ticks.clone();
                tokio::spawn(async move {
                    loop {
                        ticks.fetch_add(1, Ordering::Relaxed);
                        tokio::task::yield_now().await;
                    }
                })
            };
            tokio::task::yield_now().await;
            let before = ticks.load(Ordering::Relaxed);
            let r = t
                .authenticate(&Presented {
                    basic: Some(("alice", "wrong")),
                    ..Presented::default()
                })
                .await;
            let during = ticks.load(Ordering::Relaxed) - before;
            ticker.abort();
            assert_eq!(code(&r), "AUTHENTICATION_FAILED");
            assert_eq!(t.password_verifications(), 1);
            assert!(
                during > 0,
                "the runtime thread ran nothing else while Argon2 ran"
            );
        });
    }

    #[tokio::test]
    async fn another_users_tokens_cannot_flush_a_captured_nonce() {
        let tenancy = TenancySettings {
            nonce_cache_capacity: 16,
            ..TenancySettings::default()
        };
        let t = tenants(&tenancy);
        let captured = digest("bob", "pb");
        let first = t
            .authenticate(&Presented {
                token: Some(&captured),
                ..Presented::default()
            })
            .await;
        assert_eq!(code(&first), "ok");
        for _ in 0..200 {
            let other = digest("ben", "pb");
            let _ = t
                .authenticate(&Presented {
                    token: Some(&other),
                    ..Presented::default()
                })
                .await;
        }
        let replay = t
            .authenticate(&Presented {
                token: Some(&captured),
                ..Presented::default()
            })
            .await;
        assert_eq!(
            code(&replay),
            "AUTHENTICATION_FAILED",
            "a captured token was accepted again after another user's traffic"
        );
    }

    #[tokio::test]
    async fn a_user_over_its_nonce_bound_is_refused_rather_than_forgetting() {
        let tenancy = TenancySettings {
            nonce_cache_capacity: 16,
            ..TenancySettings::default()
        };
        let t = tenants(&tenancy);
        let first = digest("ben", "pb");
        let r = t
            .authenticate(&Presented {
                token: Some(&first),
                ..Presented::default()
            })
            .await;
        assert_eq!(code(&r), "ok");
        let mut codes = Vec::new();
        for _ in 0..40 {
            let next = digest("ben", "pb");
            codes.push(code(
                &t.authenticate(&Presented {
                    token: Some(&next),
                    ..Presented::default()
                })
                .await,
            ));
        }
        assert_eq!(
            codes.iter().filter(|c| **c == "ok").count(),
            15,
            "{codes:?}"
        );
        assert!(
            codes[15..].iter().all(|c| *c == "RATE_LIMITED"),
            "{codes:?}"
        );
        let replay = t
            .authenticate(&Presented {
                token: Some(&first),
                ..Presented::default()
            })
            .await;
        assert_eq!(code(&replay), "AUTHENTICATION_FAILED");
    }

    #[tokio::test]
    async fn failures_from_one_address_are_refused_whatever_the_user_name() {
        let t = tenants(&TenancySettings {
            failed_auth_burst: 3,
            ..TenancySettings::default()
        });
        let here: IpAddr = "192.0.2.10".parse().expect("ip");
        let there: IpAddr = "198.51.100.10".parse().expect("ip");
        for user in ["u1", "u2", "u3"] {
            let r = t
                .authenticate(&Presented {
                    basic: Some((user, "guess")),
                    source: Some(here),
                    ..Presented::default()
                })
                .await;
            assert_eq!(code(&r), "AUTHENTICATION_FAILED");
        }
        let before = t.password_verifications();
        let r = t
            .authenticate(&Presented {
                basic: Some(("alice", "right")),
                source: Some(here),
                ..Presented::default()
            })
            .await;
        assert_eq!(code(&r), "RATE_LIMITED", "the address is spent");
        assert_eq!(t.password_verifications(), before, "refused unchecked");
        // Digests are refused from there too, before the SHA-1.
        let d = digest("bob", "pb");
        let r = t
            .authenticate(&Presented {
                token: Some(&d),
                source: Some(here),
                ..Presented::default()
            })
            .await;
        assert_eq!(code(&r), "RATE_LIMITED");
        // From elsewhere, alice gets in.
        let r = t
            .authenticate(&Presented {
                basic: Some(("alice", "right")),
                source: Some(there),
                ..Presented::default()
            })
            .await;
        assert_eq!(code(&r), "ok");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_concurrent_flood_runs_the_hash_a_bounded_number_of_times() {
        let t = Arc::new(tenants(&TenancySettings {
            failed_auth_burst: 3,
            failed_auth_per_minute: 1,
            password_checks_at_once: Some(2),
            ..TenancySettings::default()
        }));
        let mut flood = Vec::new();
        for _ in 0..40 {
            let t = t.clone();
            flood.push(tokio::spawn(async move {
                let token = text("tom", "guess");
                let r = t
                    .authenticate(&Presented {
                        token: Some(&token),
                        ..Presented::default()
                    })
                    .await;
                code(&r)
            }));
        }
        let mut codes = Vec::new();
        for f in flood {
            codes.push(f.await.expect("join"));
        }
        let done = t.password_verifications();
        // The burst, plus what was already verifying when it was spent.
        assert!(done <= 3 + 2, "{done} verifications: {codes:?}");
        assert!(
            codes.iter().filter(|c| **c == "RATE_LIMITED").count() >= 40 - 5,
            "{codes:?}"
        );
        assert!(
            codes
                .iter()
                .all(|c| matches!(*c, "RATE_LIMITED" | "AUTHENTICATION_FAILED")),
            "{codes:?}"
        );
    }

    #[tokio::test]
    async fn a_remembered_password_gets_in_while_its_user_name_is_throttled() {
        let t = tenants(&TenancySettings {
            failed_auth_burst: 2,
            ..TenancySettings::default()
        });
        let right = Presented {
            basic: Some(("alice", "right")),
            ..Presented::default()
        };
        assert_eq!(code(&t.authenticate(&right).await), "ok");
        for _ in 0..5 {
            let r = t
                .authenticate(&Presented {
                    basic: Some(("alice", "guess")),
                    ..Presented::default()
                })
                .await;
            assert_ne!(code(&r), "ok");
        }
        let before = t.password_verifications();
        assert_eq!(code(&t.authenticate(&right).await), "ok");
        assert_eq!(t.password_verifications(), before, "remembered");
    }

    #[tokio::test]
    async fn digests_cost_no_hash_known_or_not_and_failures_count() {
        let t = tenants(&TenancySettings {
            failed_auth_burst: 2,
            ..TenancySettings::default()
        });
        let mut codes = Vec::new();
        for user in ["bob", "nobody", "tom"] {
            let d = digest(user, "wrong");
            codes.push(code(
                &t.authenticate(&Presented {
                    token: Some(&d),
                    ..Presented::default()
                })
                .await,
            ));
        }
        assert_eq!(codes, ["AUTHENTICATION_FAILED"; 3]);
        assert_eq!(t.password_verifications(), 0);
        for _ in 0..2 {
            let d = digest("nobody", "wrong");
            codes.push(code(
                &t.authenticate(&Presented {
                    token: Some(&d),
                    ..Presented::default()
                })
                .await,
            ));
        }
        assert_eq!(codes[4], "RATE_LIMITED", "{codes:?}");
    }

    #[tokio::test]
    async fn no_free_turn_at_the_hash_within_the_wait_is_refused() {
        let t = tenants(&TenancySettings {
            password_checks_at_once: Some(1),
            password_check_wait_ms: 20,
            ..TenancySettings::default()
        });
        let held = t.auth.checks.clone().acquire_owned().await.expect("permit");
        let r = t
            .authenticate(&Presented {
                basic: Some(("alice", "right")),
                ..Presented::default()
            })
            .await;
        assert_eq!(code(&r), "RATE_LIMITED");
        let fault = r.expect_err("refused").to_fault("c");
        assert!(!fault.message.contains("alice"), "{}", fault.message);
        assert_eq!(fault.retry_after_secs, Some(1));
        assert_eq!(t.password_verifications(), 0);
        drop(held);
        let r = t
            .authenticate(&Presented {
                basic: Some(("alice", "right")),
                ..Presented::default()
            })
            .await;
        assert_eq!(code(&r), "ok");
    }

    #[test]
    fn throttle_and_check_settings_must_be_positive() {
        for bad in [
            TenancySettings {
                failed_auth_burst: 0,
                ..TenancySettings::default()
            },
            TenancySettings {
                failed_auth_per_minute: 0,
                ..TenancySettings::default()
            },
            TenancySettings {
                password_checks_at_once: Some(0),
                ..TenancySettings::default()
            },
        ] {
            let local = super::super::cluster::Local::new(&[], &[], Duration::ZERO, 1, 1, 1);
            assert!(Credentials::new(&bad, Arc::new(local)).is_err(), "{bad:?}");
        }
    }

    /// A self-signed certificate for `cn` (its DER), with `cn` as its DNS
    /// subjectAltName.
    fn cert(cn: &str) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    fn certificate(san: &str, with_token: Option<&str>) -> CredentialSettings {
        CredentialSettings::Certificate {
            subject: None,
            san: Some(san.into()),
            sha256: None,
            with_username_token: with_token.map(str::to_string),
        }
    }

    fn clear_user(user: &str) -> CredentialSettings {
        CredentialSettings::UsernameToken {
            username: user.into(),
            password_hash: None,
            password_env: None,
            password: Some(super::super::Secret::new("pw")),
        }
    }

    /// Tenant `a`: certificate `a.example` alone, UsernameToken user `ann`;
    /// tenant `b`: certificate `b.example` only with user `bea`, and user
    /// `bob`; tenant `c`: user `cat`, no certificate.
    fn cert_tenants() -> Tenants {
        let list = vec![
            tenant("a", vec![certificate("a.example", None), clear_user("ann")]),
            tenant(
                "b",
                vec![
                    clear_user("bea"),
                    certificate("b.example", Some("bea")),
                    clear_user("bob"),
                ],
            ),
            tenant("c", vec![clear_user("cat")]),
        ];
        Tenants::from_settings(&list, &TenancySettings::default())
            .expect("valid")
            .expect("some")
    }

    async fn who(
        t: &Tenants,
        cert: Option<&[u8]>,
        user: Option<&str>,
    ) -> Result<crate::tenants::Principal, GatewayError> {
        let token = user.map(|u| text(u, "pw"));
        t.authenticate(&Presented {
            token: token.as_ref(),
            certificate: cert,
            ..Presented::default()
        })
        .await
    }

    #[tokio::test]
    async fn a_certificate_alone_names_its_tenant() {
        let t = cert_tenants();
        let a = cert("a.example");
        let p = who(&t, Some(&a), None).await.expect("certificate alone");
        assert_eq!(p.tenant, "a");
        assert!(p.who.starts_with("cert:"), "{}", p.who);
        // With a UsernameToken of the same tenant: both check out.
        let p = who(&t, Some(&a), Some("ann")).await.expect("both");
        assert_eq!((p.tenant.as_str(), p.who.as_str()), ("a", "ann"));
        // With another tenant's: refused, whoever decides.
        assert_eq!(
            code(&who(&t, Some(&a), Some("cat")).await),
            "AUTHENTICATION_FAILED"
        );
        // A certificate no credential names is no credential...
        let other = cert("other.example");
        assert_eq!(
            code(&who(&t, Some(&other), None).await),
            "AUTHENTICATION_FAILED"
        );
        // ...and does not stand in the way of one.
        assert_eq!(
            who(&t, Some(&other), Some("cat"))
                .await
                .expect("token")
                .tenant,
            "c"
        );
        // A wrong password is not made good by a certificate.
        let token = text("ann", "wrong");
        let r = t
            .authenticate(&Presented {
                token: Some(&token),
                certificate: Some(&a),
                ..Presented::default()
            })
            .await;
        assert_eq!(code(&r), "AUTHENTICATION_FAILED");
    }

    #[tokio::test]
    async fn a_certificate_bound_to_a_user_needs_that_users_token_and_the_user_needs_it() {
        let t = cert_tenants();
        let b = cert("b.example");
        assert_eq!(
            who(&t, Some(&b), Some("bea")).await.expect("both").tenant,
            "b"
        );
        // The certificate alone, or with another user of its tenant: no.
        assert_eq!(
            code(&who(&t, Some(&b), None).await),
            "AUTHENTICATION_FAILED"
        );
        assert_eq!(
            code(&who(&t, Some(&b), Some("bob")).await),
            "AUTHENTICATION_FAILED"
        );
        // The user alone, or with another certificate: no.
        assert_eq!(
            code(&who(&t, None, Some("bea")).await),
            "AUTHENTICATION_FAILED"
        );
        let a = cert("a.example");
        assert_eq!(
            code(&who(&t, Some(&a), Some("bea")).await),
            "AUTHENTICATION_FAILED"
        );
        let other = cert("other.example");
        assert_eq!(
            code(&who(&t, Some(&other), Some("bea")).await),
            "AUTHENTICATION_FAILED"
        );
        // Users not bound to a certificate are as before.
        assert_eq!(who(&t, None, Some("bob")).await.expect("bob").tenant, "b");
    }

    #[tokio::test]
    async fn a_certificate_two_tenants_name_is_refused() {
        let list = vec![
            tenant(
                "a",
                vec![CredentialSettings::Certificate {
                    subject: Some("CN=shared.example".into()),
                    san: None,
                    sha256: None,
                    with_username_token: None,
                }],
            ),
            tenant("b", vec![certificate("shared.example", None)]),
        ];
        let t = Tenants::from_settings(&list, &TenancySettings::default())
            .expect("valid")
            .expect("some");
        let shared = cert("shared.example");
        assert_eq!(
            code(&who(&t, Some(&shared), None).await),
            "AUTHENTICATION_FAILED"
        );
    }

    #[test]
    fn certificate_credentials_are_checked_at_start() {
        let build = |list: Vec<TenantSettings>| {
            Tenants::from_settings(&list, &TenancySettings::default())
                .map(|_| ())
                .map_err(|e| format!("{e:#}"))
        };
        let err = build(vec![tenant(
            "a",
            vec![certificate("x.example", Some("nobody"))],
        )])
        .expect_err("unknown user");
        assert!(err.contains("with_username_token = \"nobody\""), "{err}");
        let err = build(vec![
            tenant("a", vec![clear_user("ann")]),
            tenant("b", vec![certificate("x.example", Some("ann"))]),
        ])
        .expect_err("another tenant's user");
        assert!(err.contains("\"ann\""), "{err}");
        let err = build(vec![
            tenant("a", vec![certificate("x.example", None)]),
            tenant("b", vec![certificate("X.example", None)]),
        ])
        .expect_err("twice");
        assert!(
            err.contains("tenant b") && err.contains("declared twice"),
            "{err}"
        );
        let err = build(vec![tenant(
            "a",
            vec![CredentialSettings::Certificate {
                subject: None,
                san: None,
                sha256: Some("12:34".into()),
                with_username_token: None,
            }],
        )])
        .expect_err("short fingerprint");
        assert!(err.contains("tenant a") && err.contains("sha256"), "{err}");
    }
}
