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

/// A model's price, in any currency unit, per million tokens: on demand,
/// and in batch inference (unset: half the on-demand price, as Bedrock
/// prices batch inference for the models that support it).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_million: f64,
    pub output_per_million: f64,
    #[serde(default)]
    pub batch_input_per_million: Option<f64>,
    #[serde(default)]
    pub batch_output_per_million: Option<f64>,
}

/// What batch inference costs of the on-demand price when a model's batch
/// price is not given.
pub const BATCH_PRICE_SHARE: f64 = 0.5;

impl Price {
    /// An on-demand price; batch at the default share of it.
    pub fn on_demand(input_per_million: f64, output_per_million: f64) -> Price {
        Price {
            input_per_million,
            output_per_million,
            batch_input_per_million: None,
            batch_output_per_million: None,
        }
    }

    /// The cost of `input_tokens` and `output_tokens` on demand, in
    /// millionths of the price unit.
    pub fn cost_micros(&self, input_tokens: u64, output_tokens: u64) -> i64 {
        micros(
            self.input_per_million,
            self.output_per_million,
            input_tokens,
            output_tokens,
        )
    }

    /// The cost of `input_tokens` and `output_tokens` answered by a batch,
    /// in millionths of the price unit.
    pub fn batch_cost_micros(&self, input_tokens: u64, output_tokens: u64) -> i64 {
        micros(
            self.batch_input_per_million
                .unwrap_or(self.input_per_million * BATCH_PRICE_SHARE),
            self.batch_output_per_million
                .unwrap_or(self.output_per_million * BATCH_PRICE_SHARE),
            input_tokens,
            output_tokens,
        )
    }

    /// The cost of a model call, at batch price when a batch answered it.
    pub fn call_cost_micros(&self, input_tokens: u64, output_tokens: u64, batch: bool) -> i64 {
        if batch {
            self.batch_cost_micros(input_tokens, output_tokens)
        } else {
            self.cost_micros(input_tokens, output_tokens)
        }
    }
}

fn micros(input_per_million: f64, output_per_million: f64, input: u64, output: u64) -> i64 {
    // price per million tokens x tokens = millionths of the unit.
    let micros = input_per_million * input as f64 + output_per_million * output as f64;
    micros.round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Figment;
    use figment::providers::{Format, Toml};

    fn parse(text: &str) -> Result<Price, String> {
        Figment::new()
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn batch_price_defaults_to_half_the_on_demand_price() {
        let price = Price::on_demand(3.0, 15.0);
        // 1000 x 3 + 200 x 15 = 6000 micros on demand.
        assert_eq!(price.cost_micros(1000, 200), 6000);
        assert_eq!(price.batch_cost_micros(1000, 200), 3000);
        assert_eq!(price.call_cost_micros(1000, 200, false), 6000);
        assert_eq!(price.call_cost_micros(1000, 200, true), 3000);
        // Rounded to whole micros, as on demand: 5 x 0.125 + 1 x 0.625.
        assert_eq!(Price::on_demand(0.25, 1.25).batch_cost_micros(5, 1), 1);
    }

    #[test]
    fn a_given_batch_price_is_used_as_is() {
        let price: Price = parse(
            "input_per_million = 3.0\noutput_per_million = 15.0\n\
             batch_input_per_million = 2.0\n",
        )
        .expect("a price");
        assert_eq!(price.batch_input_per_million, Some(2.0));
        // 1000 x 2 (given) + 200 x 7.5 (half of 15).
        assert_eq!(price.batch_cost_micros(1000, 200), 3500);
        assert_eq!(price.cost_micros(1000, 200), 6000);
        let refused =
            parse("input_per_million = 3.0\noutput_per_million = 15.0\nbatch_per_million = 1.0\n");
        assert!(refused.is_err(), "unknown keys are refused");
    }
}
