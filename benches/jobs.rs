//! Jobs per second through the database queue, end to end, beside a bare
//! claim-and-complete loop on the same database in the same run.
//!
//! For each backend: enqueue N jobs, then time how long it takes to drain
//! them
//! - `bare`: `concurrency` tasks doing `Store::claim` + `Store::complete`
//!   with a fixed result, no pipeline: one job per transaction;
//! - `bare-group`: the same store work grouped as the workers group it:
//!   one loop claiming up to `concurrency` jobs at once
//!   (`Store::claim_many`) and writing their fixed results in one
//!   transaction (`Store::finish_all`), no pipeline;
//! - `e2e`: the `WorkerPool` (the code `soapgate worker` runs) with the
//!   example mappings, the real Bedrock SDK client and the in-process
//!   Converse emulator answering at once (0 ms delay).
//!
//! Run with `bench/jobs.sh` (release build). Settings from the environment:
//! `JOBS` (default 5000), `CONCURRENCY` (default 16), `BACKENDS` (default
//! `sqlite,postgres,mariadb`), `LOOPS` (default `bare,bare-group,e2e`),
//! `SOAPGATE_TEST_POSTGRES_URL`,
//! `SOAPGATE_TEST_MYSQL_URL` (server URLs; a fresh database is created and
//! dropped per measurement).

use std::sync::Arc;
use std::time::{Duration, Instant};

use soapgate::bedrock::{BedrockClient, BedrockSettings};
use soapgate::config::WorkerSettings;
use soapgate::jobs::WorkerPool;
use soapgate::live::{Live, Sources};
use soapgate::store::{JobEnd, JobFinish, JobResult, JobSource, NewJob, Store};
use soapgate::xml::Limits;
use sqlx::{Connection, Executor};

// The allocator the `soapgate` binary runs with.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const INV_NS: &str = "http://erp.example.com/ap/invoice/types/v1";

fn payload(n: usize) -> String {
    format!(
        r#"<inv:ClassifyInvoice xmlns:inv="{INV_NS}"><companyCode>1000</companyCode><invoice source="EDI"><invoiceNumber>RE-{n}</invoiceNumber><invoiceDate>2024-11-18</invoiceDate><vendor><vendorId>V{n:07}</vendorId><name>Vendor {n}</name><country>DE</country></vendor><currency>EUR</currency><netAmount>100.00</netAmount><taxAmount>19.00</taxAmount><totalAmount>119.00</totalAmount><lines><line><lineNumber>1</lineNumber><description>Item {n}</description><quantity>1</quantity><unitPrice>100.00</unitPrice><amount>100.00</amount></line></lines></invoice></inv:ClassifyInvoice>"#
    )
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A fresh database; returns its URL and what drops it.
async fn fresh(
    backend: &str,
    dir: &std::path::Path,
    n: usize,
) -> (String, Option<(String, String)>) {
    let name = format!("soapgate_bench_{}", uuid::Uuid::new_v4().simple());
    let base = match backend {
        "sqlite" => {
            return (
                format!("sqlite://{}", dir.join(format!("bench-{n}.db")).display()),
                None,
            );
        }
        "postgres" => std::env::var("SOAPGATE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned()),
        _ => std::env::var("SOAPGATE_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned()),
    };
    admin(backend, &base, &format!("CREATE DATABASE {name}")).await;
    let (prefix, _) = base.rsplit_once('/').expect("server URL has a path");
    (format!("{prefix}/{name}"), Some((base, name)))
}

async fn admin(backend: &str, url: &str, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    if backend == "postgres" {
        let mut c = sqlx::PgConnection::connect(url).await.expect("postgres");
        c.execute(sql).await.expect("admin statement");
    } else {
        let mut c = sqlx::MySqlConnection::connect(url).await.expect("mariadb");
        c.execute(sql).await.expect("admin statement");
    }
}

async fn drop_db(backend: &str, db: Option<(String, String)>) {
    if let Some((base, name)) = db {
        let sql = if backend == "postgres" {
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        } else {
            format!("DROP DATABASE IF EXISTS {name}")
        };
        admin(backend, &base, &sql).await;
    }
}

async fn enqueue_all(store: &Store, jobs: usize) {
    let mut set = tokio::task::JoinSet::new();
    let per = jobs.div_ceil(8);
    for t in 0..8 {
        let store = store.clone();
        set.spawn(async move {
            for n in t * per..((t + 1) * per).min(jobs) {
                store
                    .enqueue(&NewJob {
                        service: "InvoiceService".into(),
                        operation: "ClassifyInvoice".into(),
                        correlation_id: format!("bench-{n}"),
                        payload: payload(n),
                        idempotency_key: None,
                        source: JobSource::Queue,
                        tenant: None,
                    })
                    .await
                    .expect("enqueue");
            }
        });
    }
    while set.join_next().await.is_some() {}
}

/// The result the bare loops record for every job.
fn fixed_result() -> JobResult {
    JobResult {
        payload: "<r/>".into(),
        model: Some("m".into()),
        input_tokens: Some(1),
        output_tokens: Some(1),
        columns: Vec::new(),
    }
}

async fn bare(store: &Store, jobs: usize, concurrency: usize) -> Duration {
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..concurrency {
        let store = store.clone();
        set.spawn(async move {
            let result = fixed_result();
            let worker = format!("bare-{t}");
            while let Some(job) = store
                .claim(&worker, Duration::from_secs(60))
                .await
                .expect("claim")
            {
                store
                    .complete(&job.job.id, job.token, &result)
                    .await
                    .expect("complete");
            }
        });
    }
    while set.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let counts = store.job_counts().await.expect("counts");
    assert_eq!(counts.done as usize, jobs, "{counts:?}");
    elapsed
}

async fn bare_group(store: &Store, jobs: usize, concurrency: usize) -> Duration {
    let started = Instant::now();
    let result = fixed_result();
    loop {
        let claimed = store
            .claim_many("bare-group", Duration::from_secs(60), concurrency)
            .await
            .expect("claim");
        if claimed.is_empty() {
            break;
        }
        let ends: Vec<JobFinish> = claimed
            .into_iter()
            .map(|c| JobFinish {
                id: c.job.id,
                token: c.token,
                end: JobEnd::Done(result.clone()),
                reply_to: None,
            })
            .collect();
        for written in store.finish_all(&ends).await {
            assert!(
                written.expect("finish"),
                "a fresh claim's result is recorded"
            );
        }
    }
    let elapsed = started.elapsed();
    let counts = store.job_counts().await.expect("counts");
    assert_eq!(counts.done as usize, jobs, "{counts:?}");
    elapsed
}

async fn end_to_end(store: &Store, jobs: usize, concurrency: usize) -> Duration {
    let emulator = soapgate::emulator::spawn(None).await.expect("emulator");
    let bedrock = BedrockSettings {
        max_attempts: 1,
        ..BedrockSettings::default()
    };
    let model = Arc::new(soapgate::models::Models::new(
        Arc::new(BedrockClient::for_endpoint(emulator.base_url(), &bedrock)),
        bedrock.model_settings(),
    ));
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let live = Live::load(Sources {
        wsdl_dir: root.join("wsdl"),
        mappings_dir: root.join("mappings"),
    })
    .expect("examples load");
    let settings = WorkerSettings {
        concurrency,
        poll_interval_ms: 10,
        ..WorkerSettings::default()
    };
    let pool = WorkerPool::new(
        store.clone(),
        Arc::new(live),
        Some(model),
        settings,
        Limits::default(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let task = tokio::spawn(pool.run(async move {
        let _ = stopped.await;
    }));
    loop {
        let c = store.job_counts().await.expect("counts");
        if (c.done + c.failed) as usize >= jobs {
            assert_eq!(c.done as usize, jobs, "{c:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    task.await.expect("pool task").expect("pool");
    elapsed
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // once without it, as a smoke test: a few jobs, the same checks.
    let measuring = std::env::args().any(|a| a == "--bench");
    let jobs = env_usize("JOBS", if measuring { 5_000 } else { 100 });
    let concurrency = env_usize("CONCURRENCY", 16);
    let backends = std::env::var("BACKENDS").unwrap_or_else(|_| "sqlite,postgres,mariadb".into());
    let loops = std::env::var("LOOPS").unwrap_or_else(|_| "bare,bare-group,e2e".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    println!("| backend | loop | jobs | concurrency | seconds | jobs/s |");
    println!("|---|---|---|---|---|---|");
    rt.block_on(async {
        for backend in backends.split(',').map(str::trim).filter(|b| !b.is_empty()) {
            for (i, kind) in loops.split(',').map(str::trim).enumerate() {
                let (url, db) = fresh(backend, dir.path(), i).await;
                let store = Store::connect(&url).await.expect("store");
                enqueue_all(&store, jobs).await;
                let elapsed = match kind {
                    "bare" => bare(&store, jobs, concurrency).await,
                    "bare-group" => bare_group(&store, jobs, concurrency).await,
                    _ => end_to_end(&store, jobs, concurrency).await,
                };
                store.close().await;
                drop_db(backend, db).await;
                let secs = elapsed.as_secs_f64();
                println!(
                    "| {backend} | {kind} | {jobs} | {concurrency} | {secs:.2} | {:.0} |",
                    jobs as f64 / secs
                );
            }
        }
    });
}
