//! Tenants: who may call, what, how often, for how many tokens, and what it
//! cost them. Built once from `[[tenants]]` and `[tenancy]`; absent (no
//! `[[tenants]]`), soapgate behaves as if this module did not exist.
//!
//! A call goes through, in order: [`Tenants::authenticate`] (a WS-Security
//! UsernameToken, HTTP Basic or an API key, `auth.rs` and
//! `username_token.rs`; failed logins counted per user name and source
//! address in `throttle.rs`, Argon2 on the blocking pool, each user's
//! nonces in a window of its own, `nonces.rs`), [`Tenants::authorize`] (the tenant's allow list),
//! [`Tenants::admit`] (its request rate, governor) and
//! its day and month token budgets, in the database
//! ([`Tenants::reserve_budget`] holds the most a call can use before it
//! runs; [`Tenants::check_budget`] refuses a used-up budget before a job is
//! queued); only then may it reach the model or the queue. Afterwards
//! [`Tenants::record`] writes a usage row per model call, charges the
//! budgets, settles the hold and appends the audit row (`usage.rs`).
//!
//! Knows the store's API and the pipeline's `Outcome`, never SQL or HTTP:
//! the HTTP edge hands in the credentials it found in headers.

mod auth;
mod certificate;
mod limits;
mod nonces;
pub mod secret;
pub mod settings;
mod throttle;
mod usage;
pub mod username_token;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};

pub use auth::{Presented, Principal};
pub use settings::{CredentialSettings, Price, Secret, TenancySettings, TenantSettings};
pub use usage::{CallRecord, CallSource, sha256_hex};

use crate::error::GatewayError;

/// The configured tenants and their live state (nonce windows, verified
/// passwords, failed-login counts, rate limiters).
pub struct Tenants {
    tenants: Vec<Tenant>,
    by_name: HashMap<String, usize>,
    auth: auth::Credentials,
    limiters: Vec<Option<limits::Limiter>>,
    settings: TenancySettings,
}

impl std::fmt::Debug for Tenants {
    // Names only: the credential tables hold secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tenants.iter().map(|t| t.name.as_str()).collect();
        f.debug_struct("Tenants")
            .field("tenants", &names)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Tenant {
    name: String,
    allow: Vec<Allow>,
    tokens_per_day: Option<u64>,
    tokens_per_month: Option<u64>,
}

/// One entry of an allow list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allow {
    All,
    Service(String),
    Operation(String, String),
}

impl Allow {
    fn parse(s: &str) -> Option<Allow> {
        let s = s.trim();
        if s == "*" {
            return Some(Allow::All);
        }
        let (service, op) = s.split_once('.')?;
        if service.is_empty() || op.is_empty() {
            return None;
        }
        Some(match op {
            "*" => Allow::Service(service.to_string()),
            _ => Allow::Operation(service.to_string(), op.to_string()),
        })
    }

    fn permits(&self, service: &str, operation: &str) -> bool {
        match self {
            Allow::All => true,
            Allow::Service(s) => s == service,
            Allow::Operation(s, o) => s == service && o == operation,
        }
    }
}

impl Tenants {
    /// The tenants of the settings; `None` when none are configured.
    /// Refuses duplicate names or users, malformed hashes, unknown
    /// environment variables and malformed allow entries, naming the
    /// tenant (never a secret).
    pub fn from_settings(
        list: &[TenantSettings],
        tenancy: &TenancySettings,
    ) -> anyhow::Result<Option<Tenants>> {
        if list.is_empty() {
            return Ok(None);
        }
        let mut tenants = Vec::new();
        let mut by_name = HashMap::new();
        let mut limiters = Vec::new();
        let mut auth = auth::Credentials::new(tenancy)?;
        for (ix, t) in list.iter().enumerate() {
            let name = t.name.trim();
            if name.is_empty() {
                bail!("tenants[{ix}]: name is empty");
            }
            if by_name.insert(name.to_string(), ix).is_some() {
                bail!("tenant {name}: declared twice");
            }
            let mut allow = Vec::new();
            for a in &t.allow {
                allow.push(Allow::parse(a).with_context(|| {
                    format!(
                        "tenant {name}: allow entry {a:?} is not \"Service.Operation\", \"Service.*\" or \"*\""
                    )
                })?);
            }
            if t.credentials.is_empty() {
                bail!("tenant {name}: no credentials");
            }
            for c in &t.credentials {
                auth.add(ix, c).with_context(|| format!("tenant {name}"))?;
            }
            limiters.push(
                limits::Limiter::new(t.requests_per_minute, t.burst)
                    .with_context(|| format!("tenant {name}"))?,
            );
            tenants.push(Tenant {
                name: name.to_string(),
                allow,
                tokens_per_day: t.tokens_per_day,
                tokens_per_month: t.tokens_per_month,
            });
        }
        auth.seal()?;
        Ok(Some(Tenants {
            tenants,
            by_name,
            auth,
            limiters,
            settings: tenancy.clone(),
        }))
    }

    /// The HTTP header that carries API keys (lower case).
    pub fn api_key_header(&self) -> &str {
        &self.settings.api_key_header
    }

    /// Whether request and response payloads go to the audit trail.
    pub fn audit_payloads(&self) -> bool {
        self.settings.audit_payloads
    }

    /// Argon2 verifications performed so far, against real and dummy
    /// hashes alike.
    pub fn password_verifications(&self) -> u64 {
        self.auth
            .verifications
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether `name` is a configured tenant.
    pub fn knows(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The tenant the presented credentials belong to. Exactly one scheme
    /// decides: the UsernameToken when there is one, else HTTP Basic, else
    /// the API key, else the client certificate; a failing credential is
    /// never passed over for another. A client certificate that a
    /// `certificate` credential names must agree with the scheme that
    /// decided (same tenant; its `with_username_token` user, if it names
    /// one); one that none names is not a credential.
    ///
    /// A password that is not remembered from an earlier call is checked
    /// on the blocking pool, a bounded number at once; failed attempts are
    /// throttled per user name and source address before any check
    /// (`AuthThrottled`, RATE_LIMITED).
    pub async fn authenticate(&self, presented: &Presented<'_>) -> Result<Principal, GatewayError> {
        let now = time::OffsetDateTime::now_utc();
        self.auth
            .authenticate(presented, now)
            .await
            .map(|(ix, who)| Principal {
                tenant: self.tenants[ix].name.clone(),
                who,
            })
    }

    /// Whether `tenant` may call `service.operation`. A poll
    /// (`Get{Op}Result`, `result_of = Some(Op)`) is allowed with `Op`.
    pub fn authorize(
        &self,
        tenant: &str,
        service: &str,
        operation: &str,
        result_of: Option<&str>,
    ) -> Result<(), GatewayError> {
        let checked = result_of.unwrap_or(operation);
        let allowed = self
            .by_name
            .get(tenant)
            .map(|ix| &self.tenants[*ix])
            .is_some_and(|t| t.allow.iter().any(|a| a.permits(service, checked)));
        if allowed {
            Ok(())
        } else {
            Err(GatewayError::NotAuthorised {
                tenant: tenant.to_string(),
                service: service.to_string(),
                operation: operation.to_string(),
            })
        }
    }

    /// Takes one request from the tenant's rate; over it, `RateLimited`
    /// with the wait until the next request would be let through.
    pub fn admit(&self, tenant: &str) -> Result<(), GatewayError> {
        let Some(limiter) = self
            .by_name
            .get(tenant)
            .and_then(|ix| self.limiters[*ix].as_ref())
        else {
            return Ok(());
        };
        limiter
            .check()
            .map_err(|retry_after: Duration| GatewayError::RateLimited {
                tenant: tenant.to_string(),
                retry_after,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenants(allow: &[&str]) -> Tenants {
        let list = vec![TenantSettings {
            name: "acme".into(),
            credentials: vec![CredentialSettings::ApiKey {
                key_hash: secret::hash_api_key("k"),
            }],
            allow: allow.iter().map(|s| s.to_string()).collect(),
            requests_per_minute: None,
            burst: None,
            tokens_per_day: None,
            tokens_per_month: None,
        }];
        Tenants::from_settings(&list, &TenancySettings::default())
            .expect("valid")
            .expect("some")
    }

    #[test]
    fn allow_lists_match_services_operations_and_polls() {
        let t = tenants(&["Inv.Classify", "Desk.*"]);
        assert!(t.authorize("acme", "Inv", "Classify", None).is_ok());
        assert!(t.authorize("acme", "Inv", "Extract", None).is_err());
        assert!(t.authorize("acme", "Desk", "Anything", None).is_ok());
        assert!(
            t.authorize("acme", "Inv", "GetClassifyResult", Some("Classify"))
                .is_ok()
        );
        assert!(t.authorize("other", "Desk", "Anything", None).is_err());
        let all = tenants(&["*"]);
        assert!(all.authorize("acme", "X", "Y", None).is_ok());
    }

    #[test]
    fn bad_settings_are_refused_with_the_tenant_named() {
        let mut list = vec![TenantSettings {
            name: "acme".into(),
            credentials: vec![CredentialSettings::Basic {
                username: "u".into(),
                password_hash: "plain".into(),
            }],
            allow: vec![],
            requests_per_minute: None,
            burst: None,
            tokens_per_day: None,
            tokens_per_month: None,
        }];
        let err = Tenants::from_settings(&list, &TenancySettings::default()).expect_err("bad hash");
        assert!(format!("{err:#}").contains("tenant acme"), "{err:#}");
        list[0].credentials = vec![CredentialSettings::ApiKey {
            key_hash: secret::hash_api_key("k"),
        }];
        list[0].allow = vec!["Service".into()];
        assert!(Tenants::from_settings(&list, &TenancySettings::default()).is_err());
        assert!(
            Tenants::from_settings(&[], &TenancySettings::default())
                .expect("empty")
                .is_none()
        );
    }
}
