//! The tenant settings: `[[tenants]]` (who, with which credentials, may
//! call what, how often, for how many tokens) and `[tenancy]` (how
//! credentials are checked, prices, what the audit trail keeps). See
//! docs/tenants.md.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// A secret from the config file. Its Debug never shows it, so settings
/// can be logged whole.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One `[[tenants]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// The tenant's name, as usage rows, audit rows, jobs and polling-table
    /// rows name it.
    pub name: String,
    /// Every way this tenant may authenticate.
    #[serde(default)]
    pub credentials: Vec<CredentialSettings>,
    /// What the tenant may call: `"Service.Operation"`, `"Service.*"` or
    /// `"*"`. Empty: nothing. Allowing an async operation allows its
    /// `Get{Operation}Result` too.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Sustained request rate; unset: unlimited.
    pub requests_per_minute: Option<u32>,
    /// Requests that may arrive at once; default: one second's worth (at
    /// least 1).
    pub burst: Option<u32>,
    /// Input plus output tokens per UTC day; unset: unlimited.
    pub tokens_per_day: Option<u64>,
    /// Input plus output tokens per UTC month; unset: unlimited.
    pub tokens_per_month: Option<u64>,
}

/// A credential of a tenant, by scheme.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "scheme", rename_all = "snake_case", deny_unknown_fields)]
pub enum CredentialSettings {
    /// A WS-Security UsernameToken in the SOAP header. `password_hash`
    /// (from `soapgate hash-secret`) accepts PasswordText only;
    /// PasswordDigest needs the clear password, from `password_env` (the
    /// name of an environment variable) or `password`.
    UsernameToken {
        username: String,
        password_hash: Option<String>,
        password_env: Option<String>,
        password: Option<Secret>,
    },
    /// HTTP Basic authentication.
    Basic {
        username: String,
        password_hash: String,
    },
    /// An API key in the `tenancy.api_key_header` HTTP header; the hash is
    /// `soapgate hash-secret --api-key`'s.
    ApiKey { key_hash: String },
}

/// `[tenancy]`: how tenants are checked and what is recorded about them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TenancySettings {
    /// The HTTP header carrying API keys.
    pub api_key_header: String,
    /// A UsernameToken's `Created` may be at most this old...
    pub created_max_age_secs: u64,
    /// ...and at most this far ahead of our clock.
    pub created_max_future_secs: u64,
    /// Nonces remembered (for `created_max_age_secs +
    /// created_max_future_secs`) to refuse replays; the oldest are dropped
    /// beyond this many.
    pub nonce_cache_capacity: u64,
    /// How long a password that checked out against its (deliberately
    /// slow) hash is remembered, so a busy client does not pay the hash on
    /// every call. 0: check every time.
    pub verified_cache_secs: u64,
    /// Keep each call's request and response payloads in the audit trail
    /// (they may hold personal data: off by default).
    pub audit_payloads: bool,
    /// Price per million tokens by model id, for the usage rows' cost.
    pub prices: BTreeMap<String, Price>,
}

impl Default for TenancySettings {
    fn default() -> Self {
        TenancySettings {
            api_key_header: "x-api-key".into(),
            created_max_age_secs: 300,
            created_max_future_secs: 60,
            nonce_cache_capacity: 100_000,
            verified_cache_secs: 300,
            audit_payloads: false,
            prices: BTreeMap::new(),
        }
    }
}

/// A model's price, in any currency unit, per million tokens.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_million: f64,
    pub output_per_million: f64,
}
