//! Tenants end to end over HTTP, the model being the in-process Converse
//! emulator behind the real SDK: credentials that do not check out
//! (replayed nonce, stale Created, wrong password, none) and operations
//! outside a tenant's allow list are faults and never reach the model
//! (counted at the emulator); a tenant pushed past its rate is throttled
//! while another is not; a day budget used up through one instance is
//! refused by a second instance on the same database (SQLite, PostgreSQL,
//! MariaDB); async jobs and polling-table rows run for their tenant and
//! leave usage rows under it; with no tenants, calls stay anonymous.

use crate::common::db as db_support;
use crate::common::tenant_gateway as tenant_support;

use std::sync::Arc;
use std::time::Duration;

use db_support::{Kind, TestDb};
use soapgate::config::WorkerSettings;
use soapgate::store::NewRequest;
use soapgate::tenants::{CredentialSettings, TenancySettings, Tenants, secret};
use tenant_support::*;

const TRIAGE_ACTION: &str = "http://helpdesk.example.com/SupportDesk/TriageTicket";

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("soapgate.db").display())
}

fn triage() -> String {
    sample("SupportDesk", "TriageTicket")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_that_do_not_check_out_never_reach_the_model() {
    let dir = tempfile::tempdir().expect("tmp");
    let hashed = secret::hash_password("basic-pw").expect("hash");
    let tenants = vec![tenant(
        "acme",
        &["SupportDesk.TriageTicket"],
        vec![
            token_user("erp", "s3cret"),
            CredentialSettings::Basic {
                username: "batch".into(),
                password_hash: hashed,
            },
            CredentialSettings::ApiKey {
                key_hash: secret::hash_api_key("sg_key_1"),
            },
        ],
    )];
    let gw = Gateway::start(tenants, TenancySettings::default(), &sqlite_url(&dir)).await;
    let url = gw.endpoint("SupportDesk");

    // A valid digest token answers.
    let n = nonce();
    let good = with_header(&triage(), &digest_token("erp", "s3cret", &n, &created(0)));
    let a = post(&url, &good, &[("SOAPAction", TRIAGE_ACTION)]).await;
    assert!(a.ok(), "{a:?}");
    assert_eq!(gw.model_calls().await, 1);

    let refused: Vec<Refused> = vec![
        ("replayed nonce", good.clone(), vec![]),
        (
            "stale Created",
            with_header(
                &triage(),
                &digest_token("erp", "s3cret", &nonce(), &created(-301)),
            ),
            vec![],
        ),
        (
            "Created too far ahead",
            with_header(
                &triage(),
                &digest_token("erp", "s3cret", &nonce(), &created(120)),
            ),
            vec![],
        ),
        (
            "wrong digest password",
            with_header(
                &triage(),
                &digest_token("erp", "guess", &nonce(), &created(0)),
            ),
            vec![],
        ),
        (
            "wrong text password",
            with_header(&triage(), &text_token("erp", "guess")),
            vec![],
        ),
        (
            "unknown user",
            with_header(&triage(), &text_token("mallory", "s3cret")),
            vec![],
        ),
        ("no credentials", triage(), vec![]),
        (
            "wrong Basic password",
            triage(),
            vec![("authorization", basic("batch", "nope"))],
        ),
        (
            "unknown API key",
            triage(),
            vec![("x-api-key", "sg_key_2".to_string())],
        ),
    ];
    for (what, envelope, extra) in &refused {
        let headers: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let a = post(&url, envelope, &headers).await;
        assert_eq!(
            a.code().as_deref(),
            Some("AUTHENTICATION_FAILED"),
            "{what}: {a:?}"
        );
        assert!(
            !a.body.contains("s3cret") && !a.body.contains("stale"),
            "{what}: the fault says too much: {}",
            a.body
        );
    }
    // An operation the tenant may not call, with good credentials.
    let summarize = with_header(
        &sample("SupportDesk", "SummarizeTicket"),
        &text_token("erp", "s3cret"),
    );
    let a = post(&url, &summarize, &[]).await;
    assert_eq!(a.code().as_deref(), Some("NOT_AUTHORISED"), "{a:?}");
    assert_eq!(
        gw.model_calls().await,
        1,
        "no refused call may reach the model"
    );

    // Basic and API keys work too; text passwords against the clear one.
    let by_basic = post(
        &url,
        &triage(),
        &[("authorization", &basic("batch", "basic-pw"))],
    )
    .await;
    assert!(by_basic.ok(), "{by_basic:?}");
    let by_key = post(&url, &triage(), &[("x-api-key", "sg_key_1")]).await;
    assert!(by_key.ok(), "{by_key:?}");
    let by_text = post(
        &url,
        &with_header(&triage(), &text_token("erp", "s3cret")),
        &[],
    )
    .await;
    assert!(by_text.ok(), "{by_text:?}");
    assert_eq!(gw.model_calls().await, 4);

    // Every call has its audit row; usage rows only for model calls.
    let audit = gw.store.audit_outcomes().await.expect("audit");
    assert_eq!(audit.len(), 1 + refused.len() + 1 + 3, "{audit:?}");
    let refused_rows = audit
        .iter()
        .filter(|(_, o)| o == "AUTHENTICATION_FAILED")
        .count();
    assert_eq!(refused_rows, refused.len(), "{audit:?}");
    assert!(
        audit
            .iter()
            .any(|(t, o)| t.as_deref() == Some("acme") && o == "NOT_AUTHORISED")
    );
    let usage = gw.store.usage_totals(0, None).await.expect("usage");
    assert_eq!(usage.iter().map(|u| u.calls).sum::<i64>(), 4, "{usage:?}");
    assert!(usage.iter().all(|u| u.tenant == "acme"), "{usage:?}");
}

/// What is wrong, the envelope, extra HTTP headers.
type Refused = (&'static str, String, Vec<(&'static str, String)>);

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_past_its_rate_is_throttled_while_another_is_served() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut a = tenant("a", &["SupportDesk.*"], vec![token_user("a", "pa")]);
    // 60 a minute, 2 at once: pushed with 20 at once, ten times its burst.
    a.requests_per_minute = Some(60);
    a.burst = Some(2);
    let mut b = tenant("b", &["SupportDesk.*"], vec![token_user("b", "pb")]);
    b.requests_per_minute = Some(6000);
    b.burst = Some(100);
    let gw = Gateway::start(vec![a, b], TenancySettings::default(), &sqlite_url(&dir)).await;
    let url = gw.endpoint("SupportDesk");
    let env_a = with_header(&triage(), &text_token("a", "pa"));
    let env_b = with_header(&triage(), &text_token("b", "pb"));
    let mut calls = Vec::new();
    for _ in 0..20 {
        for env in [&env_a, &env_b] {
            let (url, env) = (url.clone(), env.clone());
            calls.push(async move { post(&url, &env, &[]).await });
        }
    }
    let answers = futures_join(calls).await;
    let (mut a_ok, mut a_limited, mut b_ok) = (0, 0, 0);
    for (i, ans) in answers.iter().enumerate() {
        if i % 2 == 0 {
            if ans.ok() {
                a_ok += 1;
            } else {
                assert_eq!(ans.code().as_deref(), Some("RATE_LIMITED"), "{ans:?}");
                assert!(ans.retry_after().is_some_and(|s| s >= 1), "{ans:?}");
                a_limited += 1;
            }
        } else {
            assert!(ans.ok(), "tenant b must be served: {ans:?}");
            b_ok += 1;
        }
    }
    assert_eq!(b_ok, 20);
    // The burst, plus at most what refills while the calls run.
    assert!((2..=6).contains(&a_ok), "a got {a_ok} through");
    assert_eq!(a_ok + a_limited, 20);
    assert_eq!(gw.model_calls().await, (a_ok + b_ok) as u64);
}

/// Runs the futures at once and returns their outputs in order.
async fn futures_join<F: std::future::Future<Output = Answer> + Send + 'static>(
    futures: Vec<F>,
) -> Vec<Answer> {
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

async fn budget_holds_across_instances(kind: Kind, test: &str) {
    let Some(db) = TestDb::create(kind, test).await else {
        return;
    };
    let envelope = with_header(&triage(), &text_token("erp", "pw"));
    let probe = Gateway::start(Vec::new(), TenancySettings::default(), "sqlite::memory:").await;
    let ceiling = probe.token_ceiling("SupportDesk", "TriageTicket", &envelope);
    let mut t = tenant("acme", &["SupportDesk.*"], vec![token_user("erp", "pw")]);
    // Room for what one call can use, so any one call uses it up.
    t.tokens_per_day = Some(ceiling);
    let first = Gateway::start(vec![t.clone()], TenancySettings::default(), &db.url).await;
    let second = Gateway::start(vec![t], TenancySettings::default(), &db.url).await;
    let a = post(&first.endpoint("SupportDesk"), &envelope, &[]).await;
    assert!(a.ok(), "{kind:?}: {a:?}");
    let b = post(&second.endpoint("SupportDesk"), &envelope, &[]).await;
    assert_eq!(
        b.code().as_deref(),
        Some("BUDGET_EXHAUSTED"),
        "{kind:?}: {b:?}"
    );
    assert_eq!(second.model_calls().await, 0, "{kind:?}");
    let again = post(&first.endpoint("SupportDesk"), &envelope, &[]).await;
    assert_eq!(
        again.code().as_deref(),
        Some("BUDGET_EXHAUSTED"),
        "{kind:?}"
    );
    assert_eq!(first.model_calls().await, 1, "{kind:?}");
    let day = time::OffsetDateTime::now_utc().date();
    let used = first
        .store
        .budget_used("acme", &[&day.to_string(), &day.to_string()[..7]])
        .await
        .expect("budget");
    assert!(used[0] > 0 && used[0] == used[1], "{kind:?}: {used:?}");
}

/// Fifty calls at once, on two instances, against a day budget that can
/// hold ten: exactly ten reach the model (each slowed so all fifty are in
/// flight together), the other forty are refused before it, and once all
/// are answered every hold is settled and what was charged is within the
/// budget. Checked before spending, fifty would have run.
async fn concurrent_calls_never_hold_more_than_the_budget(kind: Kind, test: &str) {
    let Some(db) = TestDb::create(kind, test).await else {
        return;
    };
    let envelope = with_header(&triage(), &text_token("erp", "pw"));
    let slow = || {
        Some(
            soapgate::emulator::Script::parse("rules:\n  - delay_ms: 1500\n", "slow.yaml")
                .expect("script"),
        )
    };
    let probe = Gateway::start(Vec::new(), TenancySettings::default(), "sqlite::memory:").await;
    let ceiling = probe.token_ceiling("SupportDesk", "TriageTicket", &envelope);
    let mut t = tenant("acme", &["SupportDesk.*"], vec![token_user("erp", "pw")]);
    let budget = 10 * ceiling + ceiling / 2;
    t.tokens_per_day = Some(budget);
    let one =
        Gateway::start_scripted(vec![t.clone()], TenancySettings::default(), &db.url, slow()).await;
    let two = Gateway::start_scripted(vec![t], TenancySettings::default(), &db.url, slow()).await;
    let calls: Vec<_> = (0..50)
        .map(|i| {
            let url = if i % 2 == 0 {
                one.endpoint("SupportDesk")
            } else {
                two.endpoint("SupportDesk")
            };
            let envelope = envelope.clone();
            async move { post(&url, &envelope, &[]).await }
        })
        .collect();
    let answers = futures_join(calls).await;
    let answered = answers.iter().filter(|a| a.ok()).count();
    let refused = answers
        .iter()
        .filter(|a| a.code().as_deref() == Some("BUDGET_EXHAUSTED"))
        .count();
    assert_eq!((answered, refused), (10, 40), "{kind:?}: {answers:?}");
    assert_eq!(
        one.model_calls().await + two.model_calls().await,
        10,
        "{kind:?}"
    );
    assert_eq!(
        one.store.budget_held("acme").await.expect("held"),
        0,
        "{kind:?}"
    );
    let day = time::OffsetDateTime::now_utc().date().to_string();
    let used = one
        .store
        .budget_used("acme", &[&day])
        .await
        .expect("budget");
    assert!(
        used[0] > 0 && u64::try_from(used[0]).unwrap_or(u64::MAX) <= budget,
        "{kind:?}: charged {used:?} of {budget}"
    );
}

/// A hold whose call never settles it (its instance was killed) stops
/// counting when it expires, and the next hold of its tenant deletes it.
async fn holds_of_a_dead_instance_expire(kind: Kind, test: &str) {
    let Some(db) = TestDb::create(kind, test).await else {
        return;
    };
    let store = soapgate::store::Store::connect(&db.url)
        .await
        .expect("store");
    let hold = |id: &str, ttl_ms: i64| soapgate::store::BudgetHold {
        id: id.into(),
        tenant: "acme".into(),
        day: "2026-01-02".into(),
        month: "2026-01".into(),
        tokens: 60,
        ttl_ms,
    };
    let limits = [Some(100), None];
    store
        .hold_budget(&hold("dead", 300), limits)
        .await
        .expect("hold")
        .expect("60 of 100 fit");
    let short = store
        .hold_budget(&hold("next", 60_000), limits)
        .await
        .expect("hold")
        .expect_err("60 more do not fit while the first counts");
    assert_eq!((short.period, short.held), ("day", 60), "{kind:?}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    store
        .hold_budget(&hold("next", 60_000), limits)
        .await
        .expect("hold")
        .expect("the dead call's hold has expired");
    assert_eq!(
        store.budget_held("acme").await.expect("held"),
        60,
        "{kind:?}"
    );
    // Settling charges what was used and drops the hold.
    let usage = Vec::new();
    let audit = soapgate::store::AuditRow {
        at_ms: 0,
        tenant: Some("acme".into()),
        principal: None,
        source: "http".into(),
        service: "S".into(),
        operation: None,
        correlation_id: "c".into(),
        job_id: None,
        outcome: "ok".into(),
        payload_sha256: None,
        request_text: None,
        response_text: None,
        steps: None,
    };
    let charge = soapgate::store::Charge {
        tenant: "acme".into(),
        day: "2026-01-02".into(),
        month: "2026-01".into(),
        tokens: 7,
        hold: Some("next".into()),
    };
    store
        .record_call(&usage, Some(&charge), &audit)
        .await
        .expect("settle");
    assert_eq!(
        store.budget_held("acme").await.expect("held"),
        0,
        "{kind:?}"
    );
    let used = store
        .budget_used("acme", &["2026-01-02"])
        .await
        .expect("used");
    assert_eq!(used, [7], "{kind:?}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_of_a_dead_instance_expire_sqlite() {
    holds_of_a_dead_instance_expire(Kind::Sqlite, "expired holds (sqlite)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_of_a_dead_instance_expire_postgres() {
    holds_of_a_dead_instance_expire(Kind::Postgres, "expired holds (postgres)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_of_a_dead_instance_expire_mariadb() {
    holds_of_a_dead_instance_expire(Kind::MariaDb, "expired holds (mariadb)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_never_hold_more_than_the_budget_sqlite() {
    concurrent_calls_never_hold_more_than_the_budget(Kind::Sqlite, "budget holds (sqlite)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_never_hold_more_than_the_budget_postgres() {
    concurrent_calls_never_hold_more_than_the_budget(Kind::Postgres, "budget holds (postgres)")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_never_hold_more_than_the_budget_mariadb() {
    concurrent_calls_never_hold_more_than_the_budget(Kind::MariaDb, "budget holds (mariadb)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_used_up_on_one_instance_is_refused_on_another_sqlite() {
    budget_holds_across_instances(Kind::Sqlite, "budget (sqlite)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_used_up_on_one_instance_is_refused_on_another_postgres() {
    budget_holds_across_instances(Kind::Postgres, "budget (postgres)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_used_up_on_one_instance_is_refused_on_another_mariadb() {
    budget_holds_across_instances(Kind::MariaDb, "budget (mariadb)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_for_their_tenant_and_unknown_tenants_fail_without_a_model_call() {
    let dir = tempfile::tempdir().expect("tmp");
    let tenants = vec![tenant(
        "acme",
        &["InvoiceService.*", "SupportDesk.TriageTicket"],
        vec![token_user("erp", "pw")],
    )];
    let gw = Gateway::start(
        tenants.clone(),
        TenancySettings::default(),
        &sqlite_url(&dir),
    )
    .await;
    // An async call: the job names its tenant.
    let extract = with_header(
        &sample("InvoiceService", "ExtractInvoiceFields"),
        &text_token("erp", "pw"),
    );
    let a = post(&gw.endpoint("InvoiceService"), &extract, &[]).await;
    assert!(a.ok(), "{a:?}");
    assert_eq!(gw.model_calls().await, 0, "queued, not run");
    // Polling-table rows: one for acme, one for a tenant nobody declared,
    // one for an operation acme may not call.
    let row = |id: &str, tenant: &str, op: &str| NewRequest {
        correlation_id: id.into(),
        service: "SupportDesk".into(),
        operation: op.into(),
        payload: sample("SupportDesk", op),
        tenant: Some(tenant.into()),
    };
    for r in [
        row("row-acme", "acme", "TriageTicket"),
        row("row-ghost", "ghost", "TriageTicket"),
        row("row-denied", "acme", "SummarizeTicket"),
    ] {
        gw.store.insert_request(&r).await.expect("insert");
    }
    let tenants = Tenants::from_settings(&tenants, &TenancySettings::default())
        .expect("settings")
        .map(Arc::new);
    let pool = soapgate::jobs::WorkerPool::new(
        gw.store.clone(),
        gw.state.live.clone(),
        gw.state.model.clone(),
        WorkerSettings {
            poll_interval_ms: 20,
            ..WorkerSettings::default()
        },
        Default::default(),
    )
    .with_tenants(tenants);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let workers = tokio::spawn(pool.run(async {
        let _ = stop_rx.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let c = gw.store.job_counts().await.expect("counts");
        if c.done + c.failed == 4 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs did not finish: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(());
    workers.await.expect("join").expect("workers");

    let acme = gw
        .store
        .get_result("row-acme")
        .await
        .expect("r")
        .expect("row");
    assert_eq!(acme.status.as_str(), "DONE", "{acme:?}");
    let ghost = gw
        .store
        .get_result("row-ghost")
        .await
        .expect("r")
        .expect("row");
    assert_eq!(ghost.fault_code.as_deref(), Some("AUTHENTICATION_FAILED"));
    let denied = gw
        .store
        .get_result("row-denied")
        .await
        .expect("r")
        .expect("row");
    assert_eq!(denied.fault_code.as_deref(), Some("NOT_AUTHORISED"));
    // The async job and acme's row called the model; the others did not.
    assert_eq!(gw.model_calls().await, 2);
    let usage = gw.store.usage_totals(0, Some("acme")).await.expect("usage");
    assert_eq!(usage.iter().map(|u| u.calls).sum::<i64>(), 2, "{usage:?}");
    assert!(
        gw.store
            .usage_totals(0, Some("ghost"))
            .await
            .expect("usage")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tenants_calls_stay_anonymous_and_unrecorded() {
    let dir = tempfile::tempdir().expect("tmp");
    let gw = Gateway::start(Vec::new(), TenancySettings::default(), &sqlite_url(&dir)).await;
    // A mustUnderstand Security header is still not understood: as before.
    let with_token = with_header(&triage(), &digest_token("erp", "pw", &nonce(), &created(0)));
    let a = post(&gw.endpoint("SupportDesk"), &with_token, &[]).await;
    assert_eq!(a.code().as_deref(), Some("MUST_UNDERSTAND"), "{a:?}");
    let a = post(&gw.endpoint("SupportDesk"), &triage(), &[]).await;
    assert!(a.ok(), "{a:?}");
    assert!(gw.store.audit_outcomes().await.expect("audit").is_empty());
    assert!(
        gw.store
            .usage_totals(0, None)
            .await
            .expect("usage")
            .is_empty()
    );
}

async fn accounting_works_on(kind: Kind, test: &str) {
    let Some(db) = TestDb::create(kind, test).await else {
        return;
    };
    let store = soapgate::store::Store::connect(&db.url)
        .await
        .expect("store");
    let usage = soapgate::store::UsageRow {
        at_ms: 1_000,
        tenant: Some("acme".into()),
        service: "S".into(),
        operation: "Op".into(),
        model: "m".into(),
        input_tokens: 3,
        output_tokens: 4,
        cost_micros: 5,
        latency_ms: 6,
        outcome: "ok".into(),
        correlation_id: "c".into(),
        batch: false,
        step: None,
    };
    let audit = soapgate::store::AuditRow {
        at_ms: 1_000,
        tenant: Some("acme".into()),
        principal: None,
        source: "http".into(),
        service: "S".into(),
        operation: None,
        correlation_id: "c".into(),
        job_id: None,
        outcome: "ok".into(),
        payload_sha256: Some("0".repeat(64)),
        request_text: None,
        response_text: None,
        steps: None,
    };
    let charge = soapgate::store::Charge {
        tenant: "acme".into(),
        day: "2026-01-02".into(),
        month: "2026-01".into(),
        tokens: 7,
        hold: None,
    };
    // Concurrent charges all count: the upsert adds in the database.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, usage, audit, charge) =
            (store.clone(), usage.clone(), audit.clone(), charge.clone());
        tasks.push(tokio::spawn(async move {
            store.record_call(&[usage], Some(&charge), &audit).await
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("record");
    }
    let used = store
        .budget_used("acme", &["2026-01-02", "2026-01", "2026-02"])
        .await
        .expect("used");
    assert_eq!(used, vec![56, 56, 0], "{kind:?}");
    let totals = store.usage_totals(0, Some("acme")).await.expect("totals");
    assert_eq!(totals.len(), 1, "{kind:?}");
    assert_eq!(
        (
            totals[0].calls,
            totals[0].input_tokens,
            totals[0].output_tokens,
            totals[0].cost_micros
        ),
        (8, 24, 32, 40),
        "{kind:?}"
    );
    assert!(
        store
            .usage_totals(2_000, None)
            .await
            .expect("totals")
            .is_empty()
    );
    // The audit trail is append-only in the database itself.
    assert_eq!(
        db_support::scalar(&db, "SELECT COUNT(*) FROM soapgate_audit").await,
        8
    );
    // A batch-answered call is kept apart: the totals say how much of the
    // usage batches answered.
    let batched = soapgate::store::UsageRow {
        input_tokens: 10,
        output_tokens: 20,
        cost_micros: 15,
        batch: true,
        ..usage.clone()
    };
    store
        .record_call(&[batched], Some(&charge), &audit)
        .await
        .expect("record a batch call");
    assert_eq!(
        db_support::scalar(&db, "SELECT COUNT(*) FROM soapgate_usage WHERE batch = 1").await,
        1,
        "{kind:?}"
    );
    assert_eq!(
        db_support::scalar(&db, "SELECT COUNT(*) FROM soapgate_usage WHERE batch = 0").await,
        8,
        "{kind:?}"
    );
    let totals = store.usage_totals(0, Some("acme")).await.expect("totals");
    assert_eq!(totals.len(), 1, "{kind:?}");
    let t = &totals[0];
    assert_eq!(
        (t.calls, t.input_tokens, t.output_tokens, t.cost_micros),
        (9, 34, 52, 55),
        "{kind:?}"
    );
    assert_eq!(
        (
            t.batch_calls,
            t.batch_input_tokens,
            t.batch_output_tokens,
            t.batch_cost_micros
        ),
        (1, 10, 20, 15),
        "{kind:?}"
    );
    let url = db.url.clone();
    let refused = match kind {
        Kind::Sqlite => {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(&url).await.expect("conn");
            sqlx::query("UPDATE soapgate_audit SET outcome = 'x'")
                .execute(&mut c)
                .await
                .is_err()
                && sqlx::query("DELETE FROM soapgate_audit")
                    .execute(&mut c)
                    .await
                    .is_err()
        }
        Kind::Postgres => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&url).await.expect("conn");
            sqlx::query("UPDATE soapgate_audit SET outcome = 'x'")
                .execute(&mut c)
                .await
                .is_err()
                && sqlx::query("DELETE FROM soapgate_audit")
                    .execute(&mut c)
                    .await
                    .is_err()
        }
        // No trigger on MySQL/MariaDB (see its migration): privileges
        // enforce it there.
        Kind::MariaDb => true,
    };
    assert!(refused, "{kind:?}: audit rows could be changed");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_on_sqlite() {
    accounting_works_on(Kind::Sqlite, "accounting (sqlite)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_on_postgres() {
    accounting_works_on(Kind::Postgres, "accounting (postgres)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_on_mariadb() {
    accounting_works_on(Kind::MariaDb, "accounting (mariadb)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_consumers_run_jobs_for_their_tenant_too() {
    use soapgate::jobs::{Execution, JobExecutor, JobRunner};
    use soapgate::store::{JobSource, NewJob};
    let dir = tempfile::tempdir().expect("tmp");
    let settings = vec![tenant(
        "acme",
        &["SupportDesk.TriageTicket"],
        vec![token_user("erp", "pw")],
    )];
    let gw = Gateway::start(
        settings.clone(),
        TenancySettings::default(),
        &sqlite_url(&dir),
    )
    .await;
    let tenants = Tenants::from_settings(&settings, &TenancySettings::default())
        .expect("settings")
        .map(Arc::new);
    let executor = JobRunner::new(
        gw.store.clone(),
        gw.state.live.clone(),
        gw.state.model.clone(),
        Default::default(),
    )
    .with_tenants(tenants);
    let mut codes = Vec::new();
    for tenant in [Some("acme"), Some("ghost"), None] {
        let id = gw
            .store
            .enqueue(&NewJob {
                service: "SupportDesk".into(),
                operation: "TriageTicket".into(),
                correlation_id: format!("c-{tenant:?}"),
                payload: triage(),
                idempotency_key: None,
                source: JobSource::Queue,
                tenant: tenant.map(str::to_owned),
            })
            .await
            .expect("enqueue");
        let job = gw.store.get(&id).await.expect("get").expect("job");
        codes.push(
            match executor
                .execute(&job, soapgate::pipeline::Tries::Last)
                .await
            {
                Execution::Done(_) => "ok".to_string(),
                Execution::Failed { failure, .. } => failure.fault_code,
            },
        );
    }
    assert_eq!(
        codes,
        vec!["ok", "AUTHENTICATION_FAILED", "AUTHENTICATION_FAILED"]
    );
    assert_eq!(gw.model_calls().await, 1);
    let usage = gw.store.usage_totals(0, Some("acme")).await.expect("usage");
    assert_eq!(usage.iter().map(|u| u.calls).sum::<i64>(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_sending_the_same_message_id_get_jobs_of_their_own() {
    let dir = tempfile::tempdir().expect("tmp");
    let tenants = vec![
        tenant("a", &["InvoiceService.*"], vec![token_user("ua", "pa")]),
        tenant("b", &["InvoiceService.*"], vec![token_user("ub", "pb")]),
    ];
    let gw = Gateway::start(tenants, TenancySettings::default(), &sqlite_url(&dir)).await;
    let message_id = "<wsa:MessageID xmlns:wsa=\"http://www.w3.org/2005/08/addressing\">\
                      urn:uuid:6b1f0c1e-0000-4000-8000-000000000001</wsa:MessageID>";
    let mut tickets = Vec::new();
    for (user, pw) in [("ua", "pa"), ("ub", "pb"), ("ua", "pa")] {
        let env = with_header(
            &sample("InvoiceService", "ExtractInvoiceFields"),
            &format!("{message_id}{}", text_token(user, pw)),
        );
        let a = post(&gw.endpoint("InvoiceService"), &env, &[]).await;
        assert!(a.ok(), "{a:?}");
        let start = a.body.find("jobId>").expect("a ticket") + "jobId>".len();
        let rest = &a.body[start..];
        tickets.push(rest[..rest.find('<').expect("end")].to_string());
    }
    assert_ne!(
        tickets[0], tickets[1],
        "another tenant's retry is not its job"
    );
    assert_eq!(
        tickets[0], tickets[2],
        "a tenant's own retry is the same job"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_is_throttled_before_the_hash_while_another_tenant_is_served() {
    let dir = tempfile::tempdir().expect("tmp");
    let hashed = secret::hash_password("right").expect("hash");
    let a = tenant(
        "a",
        &["SupportDesk.*"],
        vec![CredentialSettings::Basic {
            username: "alice".into(),
            password_hash: hashed,
        }],
    );
    let b = tenant(
        "b",
        &["SupportDesk.*"],
        vec![CredentialSettings::ApiKey {
            key_hash: secret::hash_api_key("sg_key_b"),
        }],
    );
    let tenancy = TenancySettings {
        password_checks_at_once: Some(2),
        ..TenancySettings::default()
    };
    let gw = Gateway::start(vec![a, b], tenancy, &sqlite_url(&dir)).await;
    let url = gw.endpoint("SupportDesk");
    // An unknown user costs a verification like a known one.
    let before = gw.password_verifications();
    let a = post(
        &url,
        &triage(),
        &[("authorization", &basic("mallory", "x"))],
    )
    .await;
    assert_eq!(a.code().as_deref(), Some("AUTHENTICATION_FAILED"), "{a:?}");
    assert_eq!(gw.password_verifications(), before + 1, "unknown user");

    // 60 wrong passwords for alice at once, and tenant b's calls meanwhile.
    let before = gw.password_verifications();
    let bad = basic("alice", "guess");
    let mut flood = Vec::new();
    for _ in 0..60 {
        let (url, bad) = (url.clone(), bad.clone());
        flood.push(async move { post(&url, &triage(), &[("authorization", bad.as_str())]).await });
    }
    let flood = tokio::spawn(futures_join(flood));
    let mut served = Vec::new();
    for _ in 0..10 {
        let url = url.clone();
        served.push(async move { post(&url, &triage(), &[("x-api-key", "sg_key_b")]).await });
    }
    for answer in futures_join(served).await {
        assert!(answer.ok(), "tenant b must be served: {answer:?}");
    }
    let flood = flood.await.expect("flood");
    let limited = flood
        .iter()
        .filter(|a| a.code().as_deref() == Some("RATE_LIMITED"))
        .count();
    for answer in &flood {
        assert!(
            matches!(
                answer.code().as_deref(),
                Some("AUTHENTICATION_FAILED" | "RATE_LIMITED")
            ),
            "{answer:?}"
        );
        assert!(!answer.body.contains("alice"), "{}", answer.body);
    }
    let done = gw.password_verifications() - before;
    // The default burst of failures (10), plus what was in flight when the
    // last of them was recorded (the permits, at most 2 here).
    assert!(
        done <= 12,
        "{done} Argon2 verifications for 60 wrong passwords ({limited} throttled)"
    );
    assert!(limited >= 60 - 12, "{limited} throttled");
    // The right password, once the burst is spent, is refused too (the
    // user name is throttled) and costs nothing.
    let before = gw.password_verifications();
    let a = post(
        &url,
        &triage(),
        &[("authorization", &basic("alice", "right"))],
    )
    .await;
    assert_eq!(a.code().as_deref(), Some("RATE_LIMITED"), "{a:?}");
    assert!(a.retry_after().is_some_and(|s| s >= 1), "{a:?}");
    assert_eq!(gw.password_verifications(), before);
    assert_eq!(gw.model_calls().await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_token_stays_a_replay_whatever_another_tenant_sends() {
    let dir = tempfile::tempdir().expect("tmp");
    let tenancy = TenancySettings {
        nonce_cache_capacity: 20,
        ..TenancySettings::default()
    };
    let tenants = vec![
        tenant("a", &["SupportDesk.*"], vec![token_user("ua", "pa")]),
        tenant("b", &["SupportDesk.*"], vec![token_user("ub", "pb")]),
    ];
    let gw = Gateway::start(tenants, tenancy, &sqlite_url(&dir)).await;
    let url = gw.endpoint("SupportDesk");
    let captured = with_header(&triage(), &digest_token("ua", "pa", &nonce(), &created(0)));
    let a = post(&url, &captured, &[]).await;
    assert!(a.ok(), "{a:?}");
    // Tenant b sends more genuine tokens than the capacity.
    let mut b_ok = 0;
    for _ in 0..50 {
        let env = with_header(&triage(), &digest_token("ub", "pb", &nonce(), &created(0)));
        let b = post(&url, &env, &[]).await;
        if b.ok() {
            b_ok += 1;
        } else {
            assert_eq!(b.code().as_deref(), Some("RATE_LIMITED"), "{b:?}");
        }
    }
    assert!(b_ok >= 20, "{b_ok}");
    let calls = gw.model_calls().await;
    let replay = post(&url, &captured, &[]).await;
    assert_eq!(
        replay.code().as_deref(),
        Some("AUTHENTICATION_FAILED"),
        "the captured token was accepted again: {replay:?}"
    );
    assert_eq!(gw.model_calls().await, calls);
}

/// The throttle per source address sees the client's address over HTTP: a
/// client trying many user names is refused once its burst of failures is
/// spent, before any password is hashed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_guessing_user_names_is_throttled_by_its_address() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = tenant(
        "a",
        &["SupportDesk.*"],
        vec![CredentialSettings::Basic {
            username: "alice".into(),
            password_hash: secret::hash_password("right").expect("hash"),
        }],
    );
    let gw = Gateway::start(vec![a], TenancySettings::default(), &sqlite_url(&dir)).await;
    let url = gw.endpoint("SupportDesk");
    let burst = TenancySettings::default().failed_auth_burst;
    let mut codes = Vec::new();
    for n in 0..burst + 5 {
        let answer = post(
            &url,
            &triage(),
            &[("authorization", &basic(&format!("user{n}"), "guess"))],
        )
        .await;
        codes.push(answer.code().unwrap_or_default());
    }
    let limited = codes.iter().filter(|c| *c == "RATE_LIMITED").count();
    assert!(
        limited >= 5,
        "every user name was new, so only the address can throttle: {codes:?}"
    );
}

/// The usage rows of a multi-step call name the step of each model call,
/// its audit row the steps that ran, and `soapgate usage --by step` what
/// each step cost: the DocumentIntake example with the example's emulator
/// script, an invoice (classify, extract, three lines) and a receipt
/// (classify, two lines; extract skipped) for a tenant, then the invoice
/// as a job run by a worker.
async fn steps_are_accounted_on(kind: Kind, test: &str) {
    const PROCESS: &str = "urn:example:document-intake/ProcessDocument";
    const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";
    const SONNET: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
    let Some(db) = TestDb::create(kind, test).await else {
        return;
    };
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/DocumentIntake");
    let read = |path: &str| std::fs::read_to_string(root.join(path)).expect("example file");
    let script = soapgate::emulator::Script::parse(&read("emulator.yaml"), "emulator.yaml")
        .expect("the example's script");
    // One micro per input token, two per output token: each row's cost
    // says which tokens it was charged for.
    let mut tenancy = TenancySettings::default();
    for model in [HAIKU, SONNET] {
        tenancy
            .prices
            .insert(model.into(), soapgate::tenants::Price::on_demand(1.0, 2.0));
    }
    let tenants = vec![tenant(
        "acme",
        &["DocumentIntake.*"],
        vec![token_user("erp", "pw")],
    )];
    let gw = Gateway::start_scripted(tenants, tenancy, &db.url, Some(script)).await;
    let url = gw.endpoint("DocumentIntake");
    for sample in [
        "ProcessDocument.xml",
        "branches/ProcessDocument-receipt.xml",
    ] {
        let envelope = with_header(&read(sample), &text_token("erp", "pw"));
        let a = post(&url, &envelope, &[("SOAPAction", PROCESS)]).await;
        assert!(a.ok(), "{kind:?} {sample}: {a:?}");
    }
    assert_eq!(gw.model_calls().await, 2 + 1 + 5, "{kind:?}");

    // One usage row per model call, each with its step.
    let totals = gw
        .store
        .usage_totals_by(0, Some("acme"), soapgate::store::UsageBy::Step)
        .await
        .expect("totals");
    let per_step: Vec<(&str, &str, &str, i64)> = totals
        .iter()
        .map(|t| {
            (
                t.operation.as_str(),
                t.step.as_str(),
                t.model.as_str(),
                t.calls,
            )
        })
        .collect();
    assert_eq!(
        per_step,
        vec![
            ("ProcessDocument", "classify", HAIKU, 2),
            ("ProcessDocument", "extract", SONNET, 1),
            ("ProcessDocument", "lines", SONNET, 5),
        ],
        "{kind:?}: {totals:?}"
    );
    for t in &totals {
        assert_eq!(t.service, "DocumentIntake", "{kind:?}");
        assert!(t.input_tokens > 0, "{kind:?}: {t:?}");
        assert_eq!(
            t.cost_micros,
            t.input_tokens + 2 * t.output_tokens,
            "{kind:?}: {t:?}"
        );
    }
    assert_eq!(
        db_support::scalar(
            &db,
            "SELECT COUNT(*) FROM soapgate_usage WHERE step IS NULL"
        )
        .await,
        0,
        "{kind:?}"
    );
    // The per-model totals are the same calls.
    let by_model = gw
        .store
        .usage_totals(0, Some("acme"))
        .await
        .expect("totals");
    assert_eq!(
        by_model.iter().map(|t| t.calls).sum::<i64>(),
        8,
        "{kind:?}: {by_model:?}"
    );
    assert!(
        by_model.iter().all(|t| t.step.is_empty()),
        "{kind:?}: {by_model:?}"
    );

    // The audit row of each call names its steps.
    let audit: Vec<Option<String>> = gw
        .store
        .audit_steps()
        .await
        .expect("audit")
        .into_iter()
        .map(|(_, steps)| steps)
        .collect();
    assert_eq!(
        audit,
        vec![
            Some("classify, extract, lines\u{d7}3".to_string()),
            Some("classify, lines\u{d7}2; skipped: extract".to_string()),
        ],
        "{kind:?}"
    );

    // `soapgate usage --by step`: a line per operation, step and model.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_soapgate"))
        .args(["usage", "--since", "2020-01-01", "--by", "step"])
        .env("SOAPGATE_DATABASE_URL", &db.url)
        .output()
        .expect("run soapgate usage");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{kind:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0][..6],
        ["TENANT", "OPERATION", "STEP", "MODEL", "CALLS", "INPUT"],
        "{kind:?}: {text}"
    );
    let money = |micros: i64| format!("0.{micros:06}");
    for (line, t) in lines[1..4].iter().zip(&totals) {
        let want = [
            "acme".to_string(),
            "DocumentIntake.ProcessDocument".to_string(),
            t.step.clone(),
            t.model.clone(),
            t.calls.to_string(),
            t.input_tokens.to_string(),
            t.output_tokens.to_string(),
            money(t.cost_micros),
        ];
        assert_eq!(line[..8], want, "{kind:?}: {text}");
    }
    assert_eq!(lines[4][..2], ["TOTAL", "8"], "{kind:?}: {text}");

    // A job of the async twin: its run's usage and audit rows too.
    let envelope = with_header(&read("QueueDocument.xml"), &text_token("erp", "pw"));
    let a = post(
        &url,
        &envelope,
        &[("SOAPAction", "urn:example:document-intake/QueueDocument")],
    )
    .await;
    assert!(a.ok(), "{kind:?}: {a:?}");
    let pool = soapgate::jobs::WorkerPool::new(
        gw.store.clone(),
        gw.state.live.clone(),
        gw.state.model.clone(),
        WorkerSettings {
            poll_interval_ms: 20,
            ..WorkerSettings::default()
        },
        Default::default(),
    )
    .with_tenants(gw.state.tenants.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let workers = tokio::spawn(pool.run(async {
        let _ = stop_rx.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let c = gw.store.job_counts().await.expect("counts");
        if c.done + c.failed == 1 {
            assert_eq!(c.done, 1, "{kind:?}: {c:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{kind:?}: the job did not finish: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(());
    workers.await.expect("join").expect("workers");
    let queued: Vec<(String, i64)> = gw
        .store
        .usage_totals_by(0, Some("acme"), soapgate::store::UsageBy::Step)
        .await
        .expect("totals")
        .into_iter()
        .filter(|t| t.operation == "QueueDocument")
        .map(|t| (t.step, t.calls))
        .collect();
    assert_eq!(
        queued,
        vec![
            ("classify".to_string(), 1),
            ("extract".to_string(), 1),
            ("lines".to_string(), 3),
        ],
        "{kind:?}"
    );
    // The queued call's own row ran no step; the job's run names them.
    let audit: Vec<Option<String>> = gw
        .store
        .audit_steps()
        .await
        .expect("audit")
        .into_iter()
        .skip(2)
        .map(|(_, steps)| steps)
        .collect();
    assert_eq!(
        audit,
        vec![None, Some("classify, extract, lines\u{d7}3".to_string())],
        "{kind:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_are_accounted_on_sqlite() {
    steps_are_accounted_on(Kind::Sqlite, "steps accounted (sqlite)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_are_accounted_on_postgres() {
    steps_are_accounted_on(Kind::Postgres, "steps accounted (postgres)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_are_accounted_on_mariadb() {
    steps_are_accounted_on(Kind::MariaDb, "steps accounted (mariadb)").await;
}
