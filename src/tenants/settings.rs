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
    /// Input plus output tokens per minute, counted from the usage each
    /// call reports: a call is let in while the last minute's tokens are
    /// under it (a minute's worth may be used at once); unset: unlimited.
    /// With `[cluster] redis_url`, counted across every instance.
    pub tokens_per_minute: Option<u64>,
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
    /// A client certificate presented in the TLS handshake (which verified
    /// it against `tls.client_ca`), named by its subject, a
    /// subjectAltName or its SHA-256 fingerprint: every one given must
    /// match (docs/tls.md).
    Certificate {
        /// The whole subject, in RFC 4514 form (`CN=erp.acme.example,O=Acme`,
        /// as `openssl x509 -noout -subject -nameopt RFC2253` prints it) or
        /// OpenSSL's `CN = erp.acme.example, O = Acme`: the same
        /// attributes, in any order, values compared without regard to
        /// case.
        subject: Option<String>,
        /// One of the certificate's subjectAltNames: a DNS name, an e-mail
        /// address, a URI or an IP address, optionally with OpenSSL's
        /// prefix (`DNS:`, `email:`, `URI:`, `IP Address:` or `IP:`).
        san: Option<String>,
        /// The SHA-256 fingerprint of the certificate (of its DER bytes),
        /// hex, colons allowed (`openssl x509 -noout -fingerprint -sha256`).
        sha256: Option<String>,
        /// Set: the certificate alone is not enough, the call must also
        /// carry this user's UsernameToken (a `username_token` credential
        /// of the same tenant), and that user is accepted only with this
        /// certificate.
        with_username_token: Option<String>,
    },
}

impl CredentialSettings {
    /// Whether this credential is a client certificate.
    pub fn is_certificate(&self) -> bool {
        matches!(self, CredentialSettings::Certificate { .. })
    }
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
    /// Nonces remembered per UsernameToken user (each for
    /// `created_max_age_secs + created_max_future_secs`) to refuse
    /// replays. A user who sends more genuine tokens with nonces within
    /// that window is refused (RATE_LIMITED) until its oldest expire: a
    /// nonce is never forgotten while its token could still be accepted,
    /// and no user's traffic touches another user's nonces.
    pub nonce_cache_capacity: u64,
    /// How long a password that checked out against its (deliberately
    /// slow) hash is remembered, so a busy client does not pay the hash on
    /// every call. 0: check every time.
    pub verified_cache_secs: u64,
    /// Failed authentications let through at once, per user name and per
    /// source address; beyond them an attempt is refused (RATE_LIMITED)
    /// before any password is checked.
    pub failed_auth_burst: u32,
    /// How fast failed authentications are forgotten, per minute.
    pub failed_auth_per_minute: u32,
    /// Argon2 verifications running at once, on tokio's blocking pool;
    /// unset: half the CPUs, at least one, so a flood of guesses cannot
    /// take every core from the other calls.
    pub password_checks_at_once: Option<u32>,
    /// How long a call waits for one of those to be free before it is
    /// refused (RATE_LIMITED).
    pub password_check_wait_ms: u64,
    /// Keep each call's request and response payloads in the audit trail
    /// (they may hold personal data: off by default).
    pub audit_payloads: bool,
    /// How long a call's budget hold counts when the call never settles it
    /// (its instance died): longer than any call or job run takes.
    pub budget_hold_secs: u64,
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
            failed_auth_burst: 10,
            failed_auth_per_minute: 10,
            password_checks_at_once: None,
            password_check_wait_ms: 2000,
            audit_payloads: false,
            budget_hold_secs: 900,
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

impl Price {
    /// The cost of `input_tokens` and `output_tokens` in millionths of the
    /// price unit.
    pub fn cost_micros(&self, input_tokens: u64, output_tokens: u64) -> i64 {
        // price per million tokens x tokens = millionths of the unit.
        let micros = self.input_per_million * input_tokens as f64
            + self.output_per_million * output_tokens as f64;
        micros.round() as i64
    }
}
