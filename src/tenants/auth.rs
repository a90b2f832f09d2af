//! The credential tables and their checks: UsernameToken (PasswordText
//! against an Argon2id hash or the clear password; PasswordDigest against
//! the clear password, with the Created window and nonce replay cache),
//! HTTP Basic (Argon2id hash) and API keys (SHA-256, looked up by hash).
//!
//! A password that checked out against its hash is remembered for
//! `verified_cache_secs` under a keyed SHA-256 of user and password (the
//! key is random per process), so the slow hash is paid once per client
//! and period, not per call. Nothing here logs or returns a secret.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::secret;
use super::settings::{CredentialSettings, TenancySettings};
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
    hash: Option<String>,
    clear: Option<String>,
}

pub(super) struct Credentials {
    token_users: HashMap<String, TokenUser>,
    basic_users: HashMap<String, (usize, String)>,
    api_keys: HashMap<String, usize>,
    /// Nonces seen within the Created window, per user.
    nonces: moka::sync::Cache<(String, Vec<u8>), ()>,
    /// Keyed hashes of (scheme, user, password) that checked out.
    verified: Option<moka::sync::Cache<[u8; 32], ()>>,
    verified_key: [u8; 16],
    max_age: Duration,
    max_future: Duration,
}

impl Credentials {
    pub(super) fn new(s: &TenancySettings) -> Credentials {
        let max_age = Duration::from_secs(s.created_max_age_secs);
        let max_future = Duration::from_secs(s.created_max_future_secs);
        Credentials {
            token_users: HashMap::new(),
            basic_users: HashMap::new(),
            api_keys: HashMap::new(),
            // A nonce must be remembered as long as its Created is
            // acceptable: from max_future ahead to max_age behind.
            nonces: moka::sync::Cache::builder()
                .max_capacity(s.nonce_cache_capacity.max(1))
                .time_to_live(max_age + max_future)
                .build(),
            verified: (s.verified_cache_secs > 0).then(|| {
                moka::sync::Cache::builder()
                    .max_capacity(10_000)
                    .time_to_live(Duration::from_secs(s.verified_cache_secs))
                    .build()
            }),
            verified_key: *uuid::Uuid::new_v4().as_bytes(),
            max_age,
            max_future,
        }
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
                    hash: password_hash.clone(),
                    clear,
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
                    .insert(username.clone(), (tenant, password_hash.clone()))
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
        }
        Ok(())
    }

    /// The tenant index and principal name of the presented credentials.
    pub(super) fn authenticate(
        &self,
        p: &Presented<'_>,
        now: OffsetDateTime,
    ) -> Result<(usize, String), GatewayError> {
        if let Some(token) = p.token {
            return self
                .token(token, now)
                .map(|ix| (ix, token.username.clone()))
                .map_err(|e| {
                    GatewayError::Unauthenticated(format!(
                        "UsernameToken of {:?}: {e}",
                        token.username
                    ))
                });
        }
        if let Some((user, password)) = p.basic {
            let Some((ix, hash)) = self.basic_users.get(user) else {
                return Err(GatewayError::Unauthenticated(format!(
                    "HTTP Basic user {user:?}: unknown user"
                )));
            };
            if self.password_ok("basic", user, password, hash) {
                return Ok((*ix, user.to_string()));
            }
            return Err(GatewayError::Unauthenticated(format!(
                "HTTP Basic user {user:?}: wrong password"
            )));
        }
        if let Some(key) = p.api_key {
            let hash = secret::hash_api_key(key.trim());
            let short = format!("api-key:{}", &hash["sha256:".len().."sha256:".len() + 12]);
            return match self.api_keys.get(&hash) {
                Some(ix) => Ok((*ix, short)),
                None => Err(GatewayError::Unauthenticated(format!(
                    "unknown API key ({short})"
                ))),
            };
        }
        Err(GatewayError::Unauthenticated(
            "no credentials (no UsernameToken, HTTP Basic or API key)".into(),
        ))
    }

    fn token(&self, token: &UsernameToken, now: OffsetDateTime) -> Result<usize, TokenError> {
        let user = self
            .token_users
            .get(&token.username)
            .ok_or(TokenError::UnknownUser)?;
        // The window applies whenever Created is sent (WSS4J does the same
        // for PasswordText), and a digest cannot do without it.
        if let Some(created) = &token.created {
            username_token::check_created(created, now, self.max_age, self.max_future)?;
        }
        match &token.password {
            None => return Err(TokenError::NoPassword),
            Some(Password::Digest(_)) => {
                let clear = user
                    .clear
                    .as_deref()
                    .ok_or(TokenError::DigestNotConfigured)?;
                username_token::digest_matches(token, clear)?;
            }
            Some(Password::Text(sent)) => {
                let ok = match (&user.clear, &user.hash) {
                    (Some(clear), _) => bool::from(clear.as_bytes().ct_eq(sent.as_bytes())),
                    (None, Some(hash)) => self.password_ok("wsse", &token.username, sent, hash),
                    (None, None) => false,
                };
                if !ok {
                    return Err(TokenError::WrongPassword);
                }
            }
        }
        // Remembered only once the token is genuine, so junk cannot fill
        // the cache; of two concurrent copies, only the first insert is
        // fresh.
        if let Some(nonce) = &token.nonce {
            let entry = self
                .nonces
                .entry((token.username.clone(), nonce.clone()))
                .or_insert(());
            if !entry.is_fresh() {
                return Err(TokenError::Replay);
            }
        }
        Ok(user.tenant)
    }

    /// Checks a password against its Argon2id hash, through the cache of
    /// recently verified ones.
    fn password_ok(&self, scheme: &str, user: &str, password: &str, hash: &str) -> bool {
        let key: [u8; 32] = {
            let mut h = Sha256::new();
            h.update(self.verified_key);
            for part in [scheme, user, password, hash] {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part.as_bytes());
            }
            h.finalize().into()
        };
        if let Some(cache) = &self.verified
            && cache.contains_key(&key)
        {
            return true;
        }
        let ok = secret::verify_password(password, hash);
        if ok && let Some(cache) = &self.verified {
            cache.insert(key, ());
        }
        ok
    }
}
