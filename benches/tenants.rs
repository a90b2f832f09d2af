//! What tenants cost per call: the same SOAP call
//! (`SupportDesk.TriageTicket`, the example sample) through the facade's
//! router, in one run,
//! - `off`: no tenants (anonymous, nothing recorded);
//! - `text`: a UsernameToken with PasswordText checked against an
//!   Argon2id hash (remembered after the first call), the tenant's rate
//!   limiter, a budget hold taken before the call, and the usage row,
//!   budget charge (settling the hold) and audit row written after it
//!   (SQLite file, WAL);
//! - `digest`: the same with PasswordDigest and a fresh nonce per call
//!   (SHA-1 digest, Created window, nonce cache insert);
//! - `text_redis`, `digest_redis`: the same with the limits shared through
//!   Redis (`[cluster] redis_url`, the machine's Redis on loopback): the
//!   request rate (and, for `digest_redis`, the nonce) is one script run
//!   on Redis per call.
//!
//! The model is the in-process Converse emulator behind the real SDK
//! client, answering at once; the router is called in process (no socket
//! on the SOAP side), so the difference between the variants is the
//! tenant work. `tenant_steps` times each step alone (authentication,
//! allow list and rate, the budget read, the budget hold, the usage and
//! audit write) to say where the difference goes; `admit_local` and
//! `admit_redis` time the rate check alone, against `redis_ping`, one bare
//! Redis round trip (PING) on a connection of the same client, in the same
//! run: the cost of the shared limiter per call in round trips. Without a
//! Redis at `SOAPGATE_TEST_REDIS_URL` (default `redis://127.0.0.1:6379/0`)
//! the Redis variants are left out, and said so. Reproduce: `cargo bench
//! --bench tenants`.

use std::sync::Arc;

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use soapgate::bedrock::{BedrockClient, BedrockSettings};
use soapgate::config::Settings;
use soapgate::http::AppState;
use soapgate::soap::wsse::{Password, UsernameToken};
use soapgate::store::Store;
use soapgate::tenants::{
    CallRecord, ClusterSettings, CredentialSettings, Presented, Secret, TenancySettings,
    TenantSettings, Tenants, secret,
};
use tower::ServiceExt;

const WSSE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const WSU: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const PROFILE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0";

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sample() -> String {
    std::fs::read_to_string(root().join("examples/SupportDesk/TriageTicket.xml")).expect("sample")
}

fn with_header(envelope: &str, header: &str) -> String {
    envelope.replacen(
        "<soap:Body>",
        &format!("<soap:Header>{header}</soap:Header><soap:Body>"),
        1,
    )
}

fn text_header() -> String {
    format!(
        "<wsse:Security xmlns:wsse=\"{WSSE}\"><wsse:UsernameToken><wsse:Username>erp</wsse:Username>\
         <wsse:Password Type=\"{PROFILE}#PasswordText\">s3cret</wsse:Password>\
         </wsse:UsernameToken></wsse:Security>"
    )
}

fn digest_header() -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let nonce = uuid::Uuid::new_v4();
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    let digest =
        soapgate::tenants::username_token::password_digest(nonce.as_bytes(), &created, "s3cret");
    format!(
        "<wsse:Security xmlns:wsse=\"{WSSE}\" xmlns:wsu=\"{WSU}\"><wsse:UsernameToken>\
         <wsse:Username>erp-digest</wsse:Username>\
         <wsse:Password Type=\"{PROFILE}#PasswordDigest\">{}</wsse:Password>\
         <wsse:Nonce>{}</wsse:Nonce><wsu:Created>{created}</wsu:Created>\
         </wsse:UsernameToken></wsse:Security>",
        b64.encode(digest),
        b64.encode(nonce.as_bytes())
    )
}

fn tenants() -> Vec<TenantSettings> {
    vec![TenantSettings {
        name: "acme".into(),
        credentials: vec![
            CredentialSettings::UsernameToken {
                username: "erp".into(),
                password_hash: Some(secret::hash_password("s3cret").expect("hash")),
                password_env: None,
                password: None,
            },
            CredentialSettings::UsernameToken {
                username: "erp-digest".into(),
                password_hash: None,
                password_env: None,
                password: Some(soapgate::tenants::Secret::new("s3cret")),
            },
        ],
        allow: vec!["SupportDesk.*".into()],
        // High enough never to refuse here: the limiter is still consulted.
        requests_per_minute: Some(100_000_000),
        burst: Some(1_000_000),
        tokens_per_minute: None,
        tokens_per_day: Some(u64::MAX / 2),
        tokens_per_month: Some(u64::MAX / 2),
    }]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tmp");
    let contracts = soapgate::files::load_contracts(&root().join("wsdl")).expect("contracts");
    let mappings =
        soapgate::files::load_mappings(&root().join("mappings"), &contracts).expect("mappings");
    let contracts = soapgate::files::publish_contracts(contracts, &mappings).expect("published");
    let (emulator, state_off, state_on, state_shared, redis) = rt.block_on(async {
        let emulator = soapgate::emulator::spawn(None).await.expect("emulator");
        let client = Arc::new(BedrockClient::for_endpoint(
            emulator.base_url(),
            &BedrockSettings::default(),
        ));
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let store = Store::connect(&url).await.expect("store");
        let off = AppState::new(contracts, mappings, Settings::default())
            .with_model(client.clone())
            .with_store(store.clone());
        let tenants = Tenants::from_settings(&tenants(), &TenancySettings::default())
            .expect("settings")
            .expect("tenants");
        let on = off.clone().with_tenants(Arc::new(tenants));
        let redis = redis_url().await.map(|url| {
            let cluster = ClusterSettings {
                redis_url: Some(Secret::new(url.clone())),
                key_prefix: format!("soapgate-bench-{}:", uuid::Uuid::new_v4().simple()),
                ..ClusterSettings::default()
            };
            (url, cluster)
        });
        let shared = match &redis {
            Some((url, cluster)) => {
                let shared =
                    Tenants::with_cluster(&self::tenants(), &TenancySettings::default(), cluster)
                        .await
                        .expect("settings")
                        .expect("tenants");
                assert!(
                    shared.cluster_health().is_some_and(|h| h.state == "up"),
                    "Redis at {url} answers"
                );
                Some(off.clone().with_tenants(Arc::new(shared)))
            }
            None => None,
        };
        (emulator, off, on, shared, redis.map(|(url, _)| url))
    });
    let call = |state: &AppState, envelope: String| {
        let router = soapgate::http::router(state.clone());
        rt.block_on(async move {
            let req = axum::http::Request::post("/soap/SupportDesk")
                .header("content-type", "text/xml; charset=utf-8")
                .body(axum::body::Body::from(envelope))
                .expect("request");
            let resp = router.oneshot(req).await.expect("response");
            assert_eq!(resp.status(), 200, "the bench call must succeed");
        })
    };
    let plain = sample();
    let text = with_header(&plain, &text_header());

    let mut group = c.benchmark_group("tenants");
    group.sample_size(30);
    group.bench_function("off", |b| b.iter(|| call(&state_off, plain.clone())));
    group.bench_function("text", |b| b.iter(|| call(&state_on, text.clone())));
    group.bench_function("digest", |b| {
        b.iter(|| call(&state_on, with_header(&plain, &digest_header())))
    });
    if let Some(shared) = &state_shared {
        group.bench_function("text_redis", |b| b.iter(|| call(shared, text.clone())));
        group.bench_function("digest_redis", |b| {
            b.iter(|| call(shared, with_header(&plain, &digest_header())))
        });
    }
    group.finish();

    // Where the difference goes: the tenant steps alone, on the same
    // tenants and database.
    let tenants = state_on.tenants.clone().expect("tenants");
    let store = state_on.store.get().cloned().expect("store");
    let mut parts = c.benchmark_group("tenant_steps");
    parts.sample_size(30);
    let text_token = UsernameToken {
        username: "erp".into(),
        password: Some(Password::Text("s3cret".into())),
        nonce: None,
        created: None,
    };
    parts.bench_function("authenticate_text_cached", |b| {
        b.iter(|| {
            rt.block_on(tenants.authenticate(&Presented {
                token: Some(&text_token),
                ..Presented::default()
            }))
            .is_ok()
        })
    });
    parts.bench_function("authenticate_digest", |b| {
        b.iter_batched(
            || {
                let nonce = uuid::Uuid::new_v4().as_bytes().to_vec();
                let created = time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .expect("time");
                let digest =
                    soapgate::tenants::username_token::password_digest(&nonce, &created, "s3cret");
                UsernameToken {
                    username: "erp-digest".into(),
                    password: Some(Password::Digest(digest)),
                    nonce: Some(nonce),
                    created: Some(created),
                }
            },
            |token| {
                rt.block_on(tenants.authenticate(&Presented {
                    token: Some(&token),
                    ..Presented::default()
                }))
                .is_ok()
            },
            criterion::BatchSize::SmallInput,
        )
    });
    parts.bench_function("authorize_and_admit", |b| {
        b.iter(|| {
            tenants
                .authorize("acme", "SupportDesk", "TriageTicket", None)
                .is_ok()
                && rt.block_on(tenants.admit("acme")).is_ok()
        })
    });
    parts.bench_function("admit_local", |b| {
        b.iter(|| rt.block_on(tenants.admit("acme")).is_ok())
    });
    if let (Some(shared), Some(url)) = (&state_shared, &redis) {
        let shared = shared.tenants.clone().expect("tenants");
        parts.bench_function("admit_redis", |b| {
            b.iter(|| rt.block_on(shared.admit("acme")).is_ok())
        });
        let mut conn = rt.block_on(async {
            redis::Client::open(url.as_str())
                .expect("url")
                .get_multiplexed_async_connection()
                .await
                .expect("connection")
        });
        parts.bench_function("redis_ping", |b| {
            b.iter(|| {
                rt.block_on(redis::cmd("PING").query_async::<String>(&mut conn))
                    .expect("PONG")
            })
        });
    }
    parts.bench_function("check_budget", |b| {
        b.iter(|| {
            rt.block_on(tenants.check_budget(Some(&store), "acme"))
                .is_ok()
        })
    });
    let attempts = vec![soapgate::pipeline::Attempt {
        model: "anthropic.claude-3-haiku-20240307-v1:0".into(),
        region: None,
        input_tokens: 120,
        output_tokens: 40,
        latency: std::time::Duration::from_millis(3),
        result: soapgate::pipeline::AttemptEnd::Answered,
        batch: false,
        step: None,
    }];
    let sha = soapgate::tenants::sha256_hex(plain.as_bytes());
    parts.bench_function("reserve_budget", |b| {
        // Each hold is settled (without usage) before the next, as calls
        // settle theirs, so the tenant's live holds stay few.
        b.iter(|| {
            let hold = rt
                .block_on(tenants.reserve_budget(Some(&store), "acme", 10_000))
                .expect("a budget that fits");
            let call = CallRecord {
                tenant: Some("acme"),
                principal: None,
                source: soapgate::tenants::CallSource::Http,
                service: "SupportDesk",
                operation: Some("TriageTicket"),
                correlation_id: "urn:uuid:bench-hold",
                job_id: None,
                outcome: "ok",
                payload_sha256: None,
                request: None,
                response: None,
                attempts: &[],
                hold: hold.as_deref(),
                steps: None,
            };
            rt.block_on(tenants.record(Some(&store), &call));
        })
    });
    parts.bench_function("record_usage_and_audit", |b| {
        b.iter(|| {
            let call = CallRecord {
                tenant: Some("acme"),
                principal: Some("erp"),
                source: soapgate::tenants::CallSource::Http,
                service: "SupportDesk",
                operation: Some("TriageTicket"),
                correlation_id: "urn:uuid:bench",
                job_id: None,
                outcome: "ok",
                payload_sha256: Some(&sha),
                request: None,
                response: None,
                attempts: &attempts,
                hold: None,
                steps: None,
            };
            rt.block_on(tenants.record(Some(&store), &call))
        })
    });
    parts.finish();
    drop(emulator);
}

/// The machine's Redis URL when it answers; the Redis variants are left
/// out (and said so) when it does not.
async fn redis_url() -> Option<String> {
    let url = std::env::var("SOAPGATE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
    let ping = async {
        let mut conn = redis::Client::open(url.as_str())
            .ok()?
            .get_multiplexed_async_connection()
            .await
            .ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    match tokio::time::timeout(std::time::Duration::from_secs(1), ping).await {
        Ok(Some(_)) => Some(url),
        _ => {
            eprintln!("no Redis answers at {url}: the shared-limit variants are left out");
            None
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
