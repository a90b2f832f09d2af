//! Tenants: who may call, what, how often, for how many tokens, and what it
//! cost them. Built once from `[[tenants]]` and `[tenancy]`; absent (no
//! `[[tenants]]`), soapgate behaves as if this module did not exist.
//!
//! A call goes through, in order: [`Tenants::authenticate`] (a WS-Security
//! UsernameToken, HTTP Basic or an API key, `auth.rs` and
//! `username_token.rs`; failed logins counted per user name and source
//! address in `throttle.rs`, Argon2 on the blocking pool, each user's
//! nonces in a window of its own, `nonces.rs`), [`Tenants::authorize`] (the tenant's allow list),
//! [`Tenants::admit`] (its request rate and tokens per minute) and
//! its day and month token budgets, in the database
//! ([`Tenants::reserve_budget`] holds the most a call can use before it
//! runs; [`Tenants::check_budget`] refuses a used-up budget before a job is
//! queued); only then may it reach the model or the queue. Afterwards
//! [`Tenants::record`] writes a usage row per model call, charges the
//! budgets, settles the hold and appends the audit row (`usage.rs`).
//!
//! Request rates, tokens per minute, nonces and failed logins are kept
//! behind one trait (`cluster/`): in this process (the default), or in
//! Redis, shared by every instance (`[cluster] redis_url`).
//!
//! Knows the store's API and the pipeline's `Outcome`, never SQL or HTTP:
//! the HTTP edge hands in the credentials it found in headers.

mod auth;
mod certificate;
mod cluster;
mod limits;
mod nonces;
pub mod secret;
pub mod settings;
mod throttle;
mod usage;
pub mod username_token;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

pub use auth::{Presented, Principal};
pub use cluster::{ClusterHealth, ClusterSettings, Fallback, Limit, WhenUnavailable};
pub use settings::{CredentialSettings, Price, Secret, TenancySettings, TenantSettings};
pub use usage::{CallRecord, CallSource, sha256_hex};

use crate::error::GatewayError;

/// The configured tenants and their live state (nonce windows, verified
/// passwords, failed-login counts, rate limiters).
pub struct Tenants {
    tenants: Vec<Tenant>,
    by_name: HashMap<String, usize>,
    auth: auth::Credentials,
    /// Request rates, tokens per minute, nonces, failed logins: this
    /// process's or every instance's.
    shared: Arc<dyn cluster::SharedState>,
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
    /// Its request rate and tokens per minute, if any.
    quotas: cluster::Quotas,
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
    /// The tenants of the settings, their limits kept in this process;
    /// `None` when none are configured. Refuses duplicate names or users,
    /// malformed hashes, unknown environment variables and malformed allow
    /// entries, naming the tenant (never a secret).
    pub fn from_settings(
        list: &[TenantSettings],
        tenancy: &TenancySettings,
    ) -> anyhow::Result<Option<Tenants>> {
        let Some(plan) = Plan::of(list, tenancy)? else {
            return Ok(None);
        };
        let local = plan.local(tenancy);
        Tenants::build(list, tenancy, plan, Arc::new(local)).map(Some)
    }

    /// [`Tenants::from_settings`], with request rates, tokens per minute,
    /// nonces and failed logins in the Redis of `cluster.redis_url` when it
    /// is set (shared by every instance that names it), each limit falling
    /// back as `cluster.when_unavailable` says while Redis does not answer.
    /// Waits for Redis at most `cluster.connect_timeout_ms`, then serves
    /// without it until it answers. Must run inside a tokio runtime.
    pub async fn with_cluster(
        list: &[TenantSettings],
        tenancy: &TenancySettings,
        cluster: &ClusterSettings,
    ) -> anyhow::Result<Option<Tenants>> {
        if cluster.redis_url.is_none() {
            return Tenants::from_settings(list, tenancy);
        }
        let Some(plan) = Plan::of(list, tenancy)? else {
            return Ok(None);
        };
        let local = plan.local(tenancy);
        let names: Vec<String> = list.iter().map(|t| t.name.trim().to_string()).collect();
        let redis = Arc::new(cluster::RedisState::new(
            cluster::RedisParts {
                settings: cluster,
                names: &names,
                quotas: &plan.quotas,
                nonce_ttl: plan.nonce_ttl,
                nonce_capacity: tenancy.nonce_cache_capacity,
                failed_auth_burst: tenancy.failed_auth_burst,
                failed_auth_per_minute: tenancy.failed_auth_per_minute,
            },
            local,
        )?);
        let tenants = Tenants::build(list, tenancy, plan, redis.clone())?;
        redis.first_contact().await;
        Ok(Some(tenants))
    }

    fn build(
        list: &[TenantSettings],
        tenancy: &TenancySettings,
        plan: Plan,
        shared: Arc<dyn cluster::SharedState>,
    ) -> anyhow::Result<Tenants> {
        let mut tenants = Vec::new();
        let mut by_name = HashMap::new();
        let mut auth = auth::Credentials::new(tenancy, shared.clone())?;
        for ((ix, t), quotas) in list.iter().enumerate().zip(plan.quotas) {
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
            tenants.push(Tenant {
                name: name.to_string(),
                allow,
                quotas,
                tokens_per_day: t.tokens_per_day,
                tokens_per_month: t.tokens_per_month,
            });
        }
        auth.seal()?;
        Ok(Tenants {
            tenants,
            by_name,
            auth,
            shared,
            settings: tenancy.clone(),
        })
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

    /// Takes one request from the tenant's rate, when its request rate
    /// has room and its tokens per minute are not spent; otherwise
    /// `RateLimited` or `TokenRateLimited` with the wait until a request
    /// would be let through, or `LimitsUnavailable` when the shared state
    /// does not answer and the limit is configured to refuse. A tenant
    /// without either limit passes without a look.
    pub async fn admit(&self, tenant: &str) -> Result<(), GatewayError> {
        let Some(ix) = self
            .by_name
            .get(tenant)
            .copied()
            .filter(|ix| self.tenants[*ix].quotas.any())
        else {
            return Ok(());
        };
        self.shared
            .admit(ix)
            .await
            .map_err(|refusal| match refusal {
                cluster::Refusal::Requests(retry_after) => GatewayError::RateLimited {
                    tenant: tenant.to_string(),
                    retry_after,
                },
                cluster::Refusal::Tokens(retry_after) => GatewayError::TokenRateLimited {
                    tenant: tenant.to_string(),
                    retry_after,
                },
                cluster::Refusal::Unavailable(limit) => GatewayError::LimitsUnavailable {
                    limit: limit.as_str(),
                },
            })
    }

    /// Counts the tokens a call reported using (every model call of it)
    /// against its tenant's tokens per minute, with or without a database.
    /// Returns at once.
    pub fn count_tokens(&self, call: &CallRecord<'_>) {
        let Some(ix) = call
            .tenant
            .and_then(|t| self.by_name.get(t))
            .copied()
            .filter(|ix| self.tenants[*ix].quotas.tokens_per_minute.is_some())
        else {
            return;
        };
        let tokens = call.attempts.iter().fold(0u64, |sum, a| {
            sum.saturating_add(a.input_tokens)
                .saturating_add(a.output_tokens)
        });
        if tokens > 0 {
            self.shared.charge_tokens(ix, tokens);
        }
    }

    /// The shared state's backend, as `/readyz` shows it; `None` when the
    /// limits are this process's own.
    pub fn cluster_health(&self) -> Option<ClusterHealth> {
        self.shared.health()
    }
}

/// What the tenant state is built from, read from the settings before the
/// credentials: each tenant's quotas (checked) and every user name.
struct Plan {
    quotas: Vec<cluster::Quotas>,
    users: Vec<(String, cluster::UserKind)>,
    nonce_ttl: Duration,
}

impl Plan {
    fn of(list: &[TenantSettings], tenancy: &TenancySettings) -> anyhow::Result<Option<Plan>> {
        if list.is_empty() {
            return Ok(None);
        }
        let mut quotas = Vec::new();
        let mut users = Vec::new();
        for t in list {
            let name = t.name.trim();
            quotas.push(cluster::Quotas {
                requests: limits::request_quota(t.requests_per_minute, t.burst)
                    .with_context(|| format!("tenant {name}"))?,
                tokens_per_minute: limits::tokens_quota(t.tokens_per_minute)
                    .with_context(|| format!("tenant {name}"))?,
            });
            for c in &t.credentials {
                match c {
                    CredentialSettings::UsernameToken { username, .. } => {
                        users.push((username.clone(), cluster::UserKind::Token));
                    }
                    CredentialSettings::Basic { username, .. } => {
                        users.push((username.clone(), cluster::UserKind::Basic));
                    }
                    _ => {}
                }
            }
        }
        // A nonce must be remembered as long as its Created is acceptable:
        // from max_future ahead to max_age behind.
        let nonce_ttl = Duration::from_secs(
            tenancy
                .created_max_age_secs
                .saturating_add(tenancy.created_max_future_secs),
        );
        Ok(Some(Plan {
            quotas,
            users,
            nonce_ttl,
        }))
    }

    /// This process's own limiters, windows and throttle.
    fn local(&self, tenancy: &TenancySettings) -> cluster::Local {
        cluster::Local::new(
            &self.quotas,
            &self.users,
            self.nonce_ttl,
            tenancy.nonce_cache_capacity,
            tenancy.failed_auth_burst,
            tenancy.failed_auth_per_minute,
        )
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
            tokens_per_minute: None,
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
            tokens_per_minute: None,
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
