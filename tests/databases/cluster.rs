//! Tenant limits shared across instances through Redis (`[cluster]
//! redis_url`): three instances in this process, each with its own
//! tenants, limiters, listener and emulator, sharing one Redis and one
//! database, and nothing in memory.
//!
//! - a tenant limited to 10 calls/s gets 10/s across the three, not 30 (the
//!   figure is printed, beside the same three without Redis in the same
//!   run), and a burst of 3 is one burst across the three (the same three
//!   without Redis let through three);
//! - a UsernameToken nonce accepted by one instance is a replay on another;
//! - failed logins on one instance throttle the user on another;
//! - tokens used through one instance count against the tenant's tokens
//!   per minute on another;
//! - a Redis of the test's own, frozen and then killed mid-run: each limit
//!   does what `[cluster.when_unavailable]` says (this instance's own
//!   limiter, or LIMITS_UNAVAILABLE), no call waits longer than the
//!   timeout, `/readyz` says so, and the shared limits come back when Redis
//!   does.
//!
//! The machine's Redis missing skips (fails under
//! `SOAPGATE_REQUIRE_PEERS=1`); the outage test starts its own on another
//! port, so the machine's keeps serving others.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::db::{Kind, TestDb};
use crate::common::redis_peer::{OwnRedis, shared_redis};
use crate::common::tenant_gateway::{
    Answer, created, digest_token, nonce, post, sample, tenant, token_user, with_header,
};
use soapgate::app::{App, Parts, Role};
use soapgate::bedrock::{BedrockClient, BedrockSettings};
use soapgate::config::Settings;
use soapgate::emulator::EmulatorHandle;
use soapgate::shutdown::Shutdown;
use soapgate::tenants::{
    ClusterSettings, CredentialSettings, Fallback, Secret, TenancySettings, TenantSettings, secret,
};

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One facade instance: its own tenants and limiters, listener and
/// emulator.
#[derive(Debug)]
struct Instance {
    base_url: String,
    emulator: EmulatorHandle,
    stop: Shutdown,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

impl Instance {
    async fn start(
        tenants: &[TenantSettings],
        cluster: Option<&ClusterSettings>,
        db_url: &str,
    ) -> Instance {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let mut settings = Settings {
            public_url: Some(base_url.clone()),
            wsdl_dir: root().join("wsdl"),
            mappings_dir: root().join("mappings"),
            tenants: tenants.to_vec(),
            tenancy: TenancySettings::default(),
            cluster: cluster.cloned().unwrap_or_default(),
            ..Settings::default()
        };
        settings.database.url = db_url.to_string();
        settings.worker.enabled = false;
        let emulator = soapgate::emulator::spawn(None).await.expect("emulator");
        let client = BedrockClient::for_endpoint(emulator.base_url(), &BedrockSettings::default());
        let parts = Parts {
            model: Some(Arc::new(client)),
            listener: Some(listener),
            ..Parts::default()
        };
        let app = App::build(settings, Role::Serve, parts)
            .await
            .unwrap_or_else(|e| panic!("the instance does not build: {e:#}"));
        let stop = Shutdown::new();
        tokio::spawn(app.run_until_stopped(stop.clone()));
        Instance {
            base_url,
            emulator,
            stop,
        }
    }

    fn endpoint(&self) -> String {
        format!("{}/soap/SupportDesk", self.base_url)
    }

    /// `/readyz`: its status and JSON.
    async fn readyz(&self) -> (u16, serde_json::Value) {
        let resp = reqwest::get(format!("{}/readyz", self.base_url))
            .await
            .expect("readyz");
        let status = resp.status().as_u16();
        let body = resp.text().await.expect("body");
        (status, serde_json::from_str(&body).expect("readyz JSON"))
    }

    /// Converse calls this instance's emulator has seen.
    async fn model_calls(&self) -> u64 {
        let body = reqwest::get(format!("{}/_emulator/calls", self.emulator.base_url()))
            .await
            .expect("emulator counts")
            .text()
            .await
            .expect("body");
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        json["total"].as_u64().expect("total")
    }
}

/// The shared state at `url`, under a key prefix of this test's own, with
/// short timeouts.
fn cluster(url: &str) -> ClusterSettings {
    ClusterSettings {
        redis_url: Some(Secret::new(url)),
        key_prefix: format!("soapgate-test-{}:", uuid::Uuid::new_v4().simple()),
        timeout_ms: 200,
        connect_timeout_ms: 1000,
        probe_interval_ms: 100,
        ..ClusterSettings::default()
    }
}

const TRIAGE_ACTION: &str = "http://helpdesk.example.com/SupportDesk/TriageTicket";

fn triage() -> String {
    sample("SupportDesk", "TriageTicket")
}

async fn by_key(instance: &Instance, key: &str) -> Answer {
    post(
        &instance.endpoint(),
        &triage(),
        &[("x-api-key", key), ("SOAPAction", TRIAGE_ACTION)],
    )
    .await
}

async fn by_digest(instance: &Instance, envelope: &str) -> Answer {
    post(
        &instance.endpoint(),
        envelope,
        &[("SOAPAction", TRIAGE_ACTION)],
    )
    .await
}

fn digest_envelope(user: &str, password: &str) -> String {
    with_header(
        &triage(),
        &digest_token(user, password, &nonce(), &created(0)),
    )
}

/// A tenant `acme` of the API key `k-acme` and the UsernameToken user
/// `erp`, at `per_minute` requests a minute (burst: a second's worth).
fn acme(per_minute: Option<u32>) -> TenantSettings {
    let mut t = tenant(
        "acme",
        &["SupportDesk.*"],
        vec![
            CredentialSettings::ApiKey {
                key_hash: secret::hash_api_key("k-acme"),
            },
            token_user("erp", "s3cret"),
        ],
    );
    t.requests_per_minute = per_minute;
    t
}

/// What a paced run let through.
#[derive(Debug)]
struct Paced {
    ok: usize,
    limited: usize,
    secs: f64,
}

const EXTRACT_ACTION: &str = "http://erp.example.com/ap/invoice/v1/ExtractInvoiceFields";

/// Every instance sends `per_instance_per_sec` calls a second (each on a
/// timer, none waiting for another) for `secs`; counts what was let
/// through and what was refused RATE_LIMITED. The calls are
/// InvoiceService.ExtractInvoiceFields, an async operation: an admitted
/// call records a job (the same one each time: its idempotency key is the
/// sample's documentId) and answers its ticket, so what is measured is the
/// limiter, not the model.
async fn paced(instances: &[Instance], per_instance_per_sec: u64, secs: u64) -> Paced {
    let started = Instant::now();
    let mut calls = Vec::new();
    for instance in instances {
        let url = format!("{}/soap/InvoiceService", instance.base_url);
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / per_instance_per_sec));
        let n = per_instance_per_sec * secs;
        let envelope = sample("InvoiceService", "ExtractInvoiceFields");
        calls.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for _ in 0..n {
                tick.tick().await;
                let (url, envelope) = (url.clone(), envelope.clone());
                sent.push(tokio::spawn(async move {
                    post(
                        &url,
                        &envelope,
                        &[("x-api-key", "k-acme"), ("SOAPAction", EXTRACT_ACTION)],
                    )
                    .await
                }));
            }
            let mut answers = Vec::new();
            for s in sent {
                answers.push(s.await.expect("call"));
            }
            answers
        }));
    }
    let (mut ok, mut limited) = (0, 0);
    for c in calls {
        for a in c.await.expect("client") {
            if a.ok() {
                ok += 1;
            } else {
                assert_eq!(a.code().as_deref(), Some("RATE_LIMITED"), "{a:?}");
                assert!(a.retry_after().is_some_and(|s| s >= 1), "{a:?}");
                limited += 1;
            }
        }
    }
    Paced {
        ok,
        limited,
        secs: started.elapsed().as_secs_f64(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_one_request_rate() {
    let test = "three_instances_share_one_request_rate";
    let Some(url) = shared_redis(test).await else {
        return;
    };
    let Some(db) = TestDb::create(Kind::Postgres, test).await else {
        return;
    };
    // 10 calls a second, 10 at once; each of three instances offered 15 a
    // second (45 in all) for 4 s.
    let mut t = acme(Some(600));
    t.allow.push("InvoiceService.*".into());
    let tenants = vec![t];
    let (rate, burst, secs, per_instance) = (10.0, 10.0, 4, 15);
    let mut shared = cluster(&url);
    // This test measures the shared limiter, which a loaded machine must
    // not push into its fallback.
    shared.timeout_ms = 2000;
    let instances = [
        Instance::start(&tenants, Some(&shared), &db.url).await,
        Instance::start(&tenants, Some(&shared), &db.url).await,
        Instance::start(&tenants, Some(&shared), &db.url).await,
    ];
    let run = paced(&instances, per_instance, secs).await;
    for i in &instances {
        let (_, ready) = i.readyz().await;
        assert_eq!(
            ready["cluster"]["state"], "up",
            "Redis stayed up through the run: {ready}"
        );
    }
    drop(instances);
    let local = [
        Instance::start(&tenants, None, &db.url).await,
        Instance::start(&tenants, None, &db.url).await,
        Instance::start(&tenants, None, &db.url).await,
    ];
    let alone = paced(&local, per_instance, secs).await;
    let shared_rate = (run.ok as f64 - burst) / run.secs;
    let alone_rate = (alone.ok as f64 - 3.0 * burst) / alone.secs;
    eprintln!(
        "{test}: a tenant at 10 calls/s (burst 10), three instances offered {} calls/s for {secs} s: \
         sharing Redis {} let through ({} refused) in {:.2} s = {shared_rate:.1} calls/s after the burst, \
         each instance alone {} let through ({} refused) = \
         {alone_rate:.1} calls/s",
        3 * per_instance,
        run.ok,
        run.limited,
        run.secs,
        alone.ok,
        alone.limited,
    );
    // What one limiter of 10/s can let through in a run: the burst and the
    // rate over the run (from the first call sent to the last answer, which
    // spans every admission), give or take a call in flight at either end.
    let one_limiter = |secs: f64| burst + rate * secs + 2.0;
    assert!(
        (run.ok as f64) <= one_limiter(run.secs),
        "shared: {} let through in {:.2} s, at most {:.0} fit 10/s",
        run.ok,
        run.secs,
        one_limiter(run.secs)
    );
    // However slow the machine, the burst gets through.
    assert!(
        (run.ok as f64) >= burst,
        "shared: only {} let through",
        run.ok
    );
}

/// Each instance sends `n` calls at once; how many were let through.
async fn at_once(instances: &[Instance], n: usize) -> usize {
    let mut calls = Vec::new();
    for instance in instances {
        for _ in 0..n {
            let url = format!("{}/soap/InvoiceService", instance.base_url);
            let envelope = sample("InvoiceService", "ExtractInvoiceFields");
            calls.push(tokio::spawn(async move {
                post(
                    &url,
                    &envelope,
                    &[("x-api-key", "k-acme"), ("SOAPAction", EXTRACT_ACTION)],
                )
                .await
            }));
        }
    }
    let mut ok = 0;
    for c in calls {
        let a = c.await.expect("call");
        if a.ok() {
            ok += 1;
        } else {
            assert_eq!(a.code().as_deref(), Some("RATE_LIMITED"), "{a:?}");
        }
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_one_burst() {
    let test = "three_instances_share_one_burst";
    let Some(url) = shared_redis(test).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let db_url = format!("sqlite://{}", dir.path().join("soapgate.db").display());
    // A burst of 3, refilled at one call every 10 s: however slow the
    // machine, what gets through is the burst.
    let mut t = acme(Some(6));
    t.burst = Some(3);
    t.allow.push("InvoiceService.*".into());
    let tenants = vec![t];
    let mut shared = cluster(&url);
    shared.timeout_ms = 2000;
    let instances = [
        Instance::start(&tenants, Some(&shared), &db_url).await,
        Instance::start(&tenants, Some(&shared), &db_url).await,
        Instance::start(&tenants, Some(&shared), &db_url).await,
    ];
    let ok = at_once(&instances, 5).await;
    assert_eq!(ok, 3, "three instances sharing Redis let through one burst");
    drop(instances);
    let alone = [
        Instance::start(&tenants, None, &db_url).await,
        Instance::start(&tenants, None, &db_url).await,
        Instance::start(&tenants, None, &db_url).await,
    ];
    let ok = at_once(&alone, 5).await;
    assert_eq!(ok, 9, "without Redis each instance lets through a burst");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_accepted_on_one_instance_is_a_replay_on_another() {
    let test = "a_nonce_accepted_on_one_instance_is_a_replay_on_another";
    let Some(url) = shared_redis(test).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let db_url = format!("sqlite://{}", dir.path().join("soapgate.db").display());
    let tenants = vec![acme(None)];
    let shared = cluster(&url);
    let one = Instance::start(&tenants, Some(&shared), &db_url).await;
    let two = Instance::start(&tenants, Some(&shared), &db_url).await;
    let envelope = digest_envelope("erp", "s3cret");
    let first = by_digest(&one, &envelope).await;
    assert!(first.ok(), "{first:?}");
    let replay = by_digest(&two, &envelope).await;
    assert_eq!(
        replay.code().as_deref(),
        Some("AUTHENTICATION_FAILED"),
        "a nonce accepted on instance 1 must be a replay on instance 2: {replay:?}"
    );
    assert_eq!(two.model_calls().await, 0);
    // And on the first instance itself.
    let again = by_digest(&one, &envelope).await;
    assert_eq!(again.code().as_deref(), Some("AUTHENTICATION_FAILED"));

    // Without Redis, each instance has its own window: the same replay
    // gets through another instance (what the shared state is for).
    let alone_one = Instance::start(&tenants, None, &db_url).await;
    let alone_two = Instance::start(&tenants, None, &db_url).await;
    let envelope = digest_envelope("erp", "s3cret");
    assert!(by_digest(&alone_one, &envelope).await.ok());
    assert!(by_digest(&alone_two, &envelope).await.ok());
}

/// Polls `check` every 20 ms for up to `within`; whether it came true.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_on_one_instance_throttle_the_user_on_another() {
    let test = "failed_logins_on_one_instance_throttle_the_user_on_another";
    let Some(url) = shared_redis(test).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let db_url = format!("sqlite://{}", dir.path().join("soapgate.db").display());
    let tenants = vec![acme(None)];
    let shared = cluster(&url);
    let one = Instance::start(&tenants, Some(&shared), &db_url).await;
    let two = Instance::start(&tenants, Some(&shared), &db_url).await;
    // The default burst is 10 failures.
    for _ in 0..10 {
        let a = by_digest(&one, &digest_envelope("erp", "guess")).await;
        assert_eq!(a.code().as_deref(), Some("AUTHENTICATION_FAILED"), "{a:?}");
    }
    // The failures are written in the background: instance 2 refuses the
    // user (even with the right password) once they land.
    let throttled = eventually(Duration::from_secs(2), || async {
        let a = by_digest(&two, &digest_envelope("erp", "s3cret")).await;
        a.code().as_deref() == Some("RATE_LIMITED")
    })
    .await;
    assert!(
        throttled,
        "ten failures on instance 1 must throttle erp on instance 2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_used_through_one_instance_count_on_another() {
    let test = "tokens_used_through_one_instance_count_on_another";
    let Some(url) = shared_redis(test).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let db_url = format!("sqlite://{}", dir.path().join("soapgate.db").display());
    let mut t = acme(None);
    // One token a minute: the first call's usage spends minutes of it.
    t.tokens_per_minute = Some(1);
    let tenants = vec![t];
    let shared = cluster(&url);
    let one = Instance::start(&tenants, Some(&shared), &db_url).await;
    let two = Instance::start(&tenants, Some(&shared), &db_url).await;
    let first = by_key(&one, "k-acme").await;
    assert!(first.ok(), "{first:?}");
    // The usage is written in the background: poll until it has landed.
    let deadline = Instant::now() + Duration::from_secs(2);
    let last = loop {
        let a = by_key(&two, "k-acme").await;
        if a.code().as_deref() == Some("RATE_LIMITED") || Instant::now() > deadline {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        last.code().as_deref(),
        Some("RATE_LIMITED"),
        "the tokens used on instance 1 must count on instance 2: {last:?}"
    );
    assert!(last.body.contains("Tokens-per-minute"), "{}", last.body);
    assert!(
        last.retry_after().is_some_and(|s| s > 60),
        "a call's usage at one token a minute takes minutes to drain: {last:?}"
    );
}

/// The answer of `call`, which must come within `bound`.
async fn each_within(bound: Duration, call: impl std::future::Future<Output = Answer>) -> Answer {
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call hung");
    let took = started.elapsed();
    assert!(took <= bound, "a call took {took:?} (bound {bound:?})");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_away_falls_back_as_configured_and_the_shared_limits_come_back() {
    let test = "redis_away_falls_back_as_configured_and_the_shared_limits_come_back";
    let Some(mut redis) = OwnRedis::start(test).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let db_url = format!("sqlite://{}", dir.path().join("soapgate.db").display());
    // acme's calls (by API key) meet the request rate; plain's (by
    // UsernameToken with nonces) meet none, only the nonces.
    let tenants = vec![
        acme(Some(6000)),
        tenant("plain", &["SupportDesk.*"], vec![token_user("tok", "pw")]),
    ];
    // Instances 1 and 2 keep the defaults (requests: local, nonces:
    // refuse); instance 3 the other way round.
    let defaults = cluster(&redis.url());
    let mut reversed = defaults.clone();
    reversed.when_unavailable.requests = Fallback::Refuse;
    reversed.when_unavailable.nonces = Fallback::Local;
    let one = Instance::start(&tenants, Some(&defaults), &db_url).await;
    let two = Instance::start(&tenants, Some(&defaults), &db_url).await;
    let three = Instance::start(&tenants, Some(&reversed), &db_url).await;
    // No call waits for Redis beyond the timeout (200 ms), whatever it does.
    let bound = Duration::from_millis(200 + 800);

    let (status, ready) = one.readyz().await;
    assert_eq!(status, 200);
    assert_eq!(ready["cluster"]["state"], "up", "{ready}");
    assert_eq!(ready["cluster"]["limits"]["requests"], "shared", "{ready}");
    let envelope = digest_envelope("tok", "pw");
    assert!(by_digest(&one, &envelope).await.ok());
    assert_eq!(
        by_digest(&two, &envelope).await.code().as_deref(),
        Some("AUTHENTICATION_FAILED")
    );

    // Frozen: connections open, nothing answers.
    redis.freeze();
    for instance in [&one, &two, &three] {
        // The first call finds out (after the timeout), the rest do not ask.
        let a = each_within(bound, by_key(instance, "k-acme")).await;
        let expected = if std::ptr::eq(instance, &three) {
            Some("LIMITS_UNAVAILABLE")
        } else {
            None
        };
        assert_eq!(a.code().as_deref(), expected, "{a:?}");
    }
    for _ in 0..5 {
        let a = each_within(bound, by_key(&one, "k-acme")).await;
        assert!(a.ok(), "requests fall back to the local limiter: {a:?}");
        let a = each_within(bound, by_digest(&one, &digest_envelope("tok", "pw"))).await;
        assert_eq!(
            a.code().as_deref(),
            Some("LIMITS_UNAVAILABLE"),
            "nonces refuse while Redis is away: {a:?}"
        );
        assert_eq!(a.status, 500, "a Server fault");
        let a = each_within(bound, by_digest(&three, &digest_envelope("tok", "pw"))).await;
        assert!(a.ok(), "instance 3 keeps nonces locally: {a:?}");
        let a = each_within(bound, by_digest(&three, &digest_envelope("erp", "s3cret"))).await;
        assert_eq!(
            a.code().as_deref(),
            Some("LIMITS_UNAVAILABLE"),
            "acme's rate refuses there: {a:?}"
        );
        let a = each_within(bound, by_key(&three, "k-acme")).await;
        assert_eq!(a.code().as_deref(), Some("LIMITS_UNAVAILABLE"), "{a:?}");
    }
    let (status, ready) = one.readyz().await;
    assert_eq!(status, 200, "Redis away does not make an instance unready");
    assert_eq!(ready["cluster"]["state"], "down", "{ready}");
    assert_eq!(ready["cluster"]["limits"]["requests"], "local", "{ready}");
    assert_eq!(ready["cluster"]["limits"]["nonces"], "refuse", "{ready}");
    assert!(ready["cluster"]["error"].is_string(), "{ready}");
    let (_, ready) = three.readyz().await;
    assert_eq!(ready["cluster"]["limits"]["requests"], "refuse", "{ready}");
    assert_eq!(ready["cluster"]["limits"]["nonces"], "local", "{ready}");

    // Thawed: the probe finds it, and the limits are shared again.
    redis.thaw();
    for instance in [&one, &two, &three] {
        let up = eventually(Duration::from_secs(5), || async {
            instance.readyz().await.1["cluster"]["state"] == "up"
        })
        .await;
        assert!(up, "the shared limits must come back when Redis answers");
    }
    let envelope = digest_envelope("tok", "pw");
    assert!(by_digest(&two, &envelope).await.ok());
    assert_eq!(
        by_digest(&three, &envelope).await.code().as_deref(),
        Some("AUTHENTICATION_FAILED"),
        "a replay across instances is caught again"
    );
    assert!(by_key(&three, "k-acme").await.ok());

    // Killed: connections refused.
    redis.kill();
    for _ in 0..5 {
        let a = each_within(bound, by_key(&one, "k-acme")).await;
        assert!(a.ok(), "{a:?}");
        let a = each_within(bound, by_digest(&two, &digest_envelope("tok", "pw"))).await;
        assert_eq!(a.code().as_deref(), Some("LIMITS_UNAVAILABLE"), "{a:?}");
    }
    assert_eq!(one.readyz().await.1["cluster"]["state"], "down");

    // Back, empty: shared again.
    redis.run().await.expect("redis-server again");
    for instance in [&one, &two, &three] {
        let up = eventually(Duration::from_secs(5), || async {
            instance.readyz().await.1["cluster"]["state"] == "up"
        })
        .await;
        assert!(up, "the shared limits must come back after a restart");
    }
    let envelope = digest_envelope("tok", "pw");
    assert!(by_digest(&one, &envelope).await.ok());
    assert_eq!(
        by_digest(&two, &envelope).await.code().as_deref(),
        Some("AUTHENTICATION_FAILED")
    );
}
