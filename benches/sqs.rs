//! Jobs per second with `queue.kind = sqs`, end to end, beside a bare
//! send/receive/delete loop on the same SQS emulator in the same run.
//!
//! - `bare`: one sender sending N messages in batches of 10 while `POLLERS`
//!   receive loops receive up to 10 and delete them with one
//!   `DeleteMessageBatch`: what the queue itself allows.
//! - `e2e`: N jobs enqueued with their outbox rows in SQLite (not timed, as
//!   in `benches/jobs.rs`), then timed until every job is DONE: the outbox
//!   relay sending them, the SQS consumers (the code `soapgate worker` runs
//!   with `queue.kind = sqs`) receiving, claiming, running the pipeline with
//!   the real Bedrock SDK client against the in-process Converse emulator at
//!   0 ms, writing the fenced result and deleting in batches. The process
//!   is put together as `soapgate worker` puts it for `queue.kind = sqs`:
//!   the relay, the consumers and the polling-table intake
//!   (`WorkerPool::intake_only`), nothing claiming from the jobs table.
//!
//! Each `e2e` run also says which path ran its jobs, so that the figure is
//! an SQS figure: `sqs runs` counts the jobs the SQS consumers handed to
//! their executor (a counter wrapped around the `JobRunner` they are given,
//! which only they call), and `other runs` the model calls the Converse
//! emulator answered beyond those (`GET /_emulator/calls`; every job here
//! makes exactly one model call, whichever path runs it), which is what a
//! database claim loop or any other path would add. In SQS mode `other
//! runs` must be 0; the smoke run asserts that every job went through SQS.
//!
//! Run with `bench/sqs.sh` (starts fauxqs, release build). Settings from the
//! environment: `JOBS` (default 5000), `POLLERS` (default 4), `SQS_URL`
//! (default `http://127.0.0.1:4570`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry};
use soapgate::bedrock::{BedrockClient, BedrockSettings};
use soapgate::config::{SqsSettings, WorkerSettings};
use soapgate::converse::BoxFuture;
use soapgate::jobs::sqs::{self, Consumer, SqsQueue};
use soapgate::jobs::{Admission, Execution, JobExecutor, JobRunner, Route, WorkerPool};
use soapgate::live::{Live, Sources};
use soapgate::pipeline::Tries;
use soapgate::store::{Job, JobSource, NewJob, Store};
use soapgate::xml::Limits;

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

fn client(endpoint: &str) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

async fn create_queue(client: &aws_sdk_sqs::Client, name: &str) -> String {
    client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("CreateQueue")
        .queue_url()
        .expect("queue url")
        .to_owned()
}

async fn bare(client: &aws_sdk_sqs::Client, url: &str, jobs: usize, pollers: usize) -> Duration {
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let sender = {
        let client = client.clone();
        let url = url.to_owned();
        tokio::spawn(async move {
            for chunk in (0..jobs).collect::<Vec<_>>().chunks(10) {
                let entries = chunk
                    .iter()
                    .map(|n| {
                        SendMessageBatchRequestEntry::builder()
                            .id(n.to_string())
                            .message_body(format!("job-{n}"))
                            .build()
                            .expect("entry")
                    })
                    .collect();
                client
                    .send_message_batch()
                    .queue_url(&url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .expect("SendMessageBatch");
            }
        })
    };
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..pollers {
        let client = client.clone();
        let url = url.to_owned();
        let done = done.clone();
        set.spawn(async move {
            while done.load(Ordering::SeqCst) < jobs {
                let out = client
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .visibility_timeout(30)
                    .send()
                    .await
                    .expect("ReceiveMessage");
                let messages = out.messages.unwrap_or_default();
                if messages.is_empty() {
                    continue;
                }
                let entries = messages
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(m.receipt_handle().unwrap_or_default())
                            .build()
                            .expect("entry")
                    })
                    .collect();
                client
                    .delete_message_batch()
                    .queue_url(&url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .expect("DeleteMessageBatch");
                done.fetch_add(messages.len(), Ordering::SeqCst);
            }
        });
    }
    sender.await.expect("sender");
    while set.join_next().await.is_some() {}
    started.elapsed()
}

/// The executor the SQS consumers are given, counting the jobs they hand
/// it: nothing else calls it, so its count is the jobs run by SQS.
struct Counted {
    inner: JobRunner,
    runs: Arc<AtomicUsize>,
}

impl JobExecutor for Counted {
    fn execute<'a>(&'a self, job: &'a Job, tries: Tries) -> BoxFuture<'a, Execution> {
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.inner.execute(job, tries)
    }

    fn route(&self, request: &str, named: Route, correlation_id: &str) -> Admission {
        self.inner.route(request, named, correlation_id)
    }
}

/// Which path ran the jobs of an `e2e` run.
#[derive(Debug, Clone, Copy)]
struct Paths {
    /// Jobs the SQS consumers ran (a job run twice counts twice).
    sqs: usize,
    /// Model calls made by no SQS consumer run: a claim loop's, or any
    /// other path's.
    other: usize,
}

/// Model calls the Converse emulator answered, over every path.
async fn model_calls(emulator: &soapgate::emulator::EmulatorHandle) -> usize {
    let body = reqwest::get(format!("{}/_emulator/calls", emulator.base_url()))
        .await
        .expect("GET /_emulator/calls")
        .text()
        .await
        .expect("calls body");
    let json: serde_json::Value = serde_json::from_str(&body).expect("calls JSON");
    json["total"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .expect("a total")
}

async fn end_to_end(endpoint: &str, url: &str, jobs: usize, pollers: usize) -> (Duration, Paths) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))
    .await
    .expect("store")
    .with_outbox(true);
    for n in 0..jobs {
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
    let live = Arc::new(
        Live::load(Sources {
            wsdl_dir: root.join("wsdl"),
            mappings_dir: root.join("mappings"),
        })
        .expect("examples load"),
    );
    let settings = SqsSettings {
        request_queue_url: Some(url.to_owned()),
        wait_time_seconds: 1,
        pollers: u32::try_from(pollers).unwrap_or(4),
        ..SqsSettings::default()
    };
    let queue = SqsQueue::for_endpoint(endpoint, &settings).expect("settings");
    let sqs_runs = Arc::new(AtomicUsize::new(0));
    let executor = Arc::new(Counted {
        inner: JobRunner::new(store.clone(), live.clone(), Some(model), Limits::default()),
        runs: sqs_runs.clone(),
    });
    let consumer = Arc::new(Consumer::new(
        store.clone(),
        queue.clone(),
        executor,
        Limits::default(),
    ));
    // What `soapgate worker` runs beside the consumers in SQS mode: the
    // polling-table intake, which must claim nothing from the jobs table.
    let intake = WorkerPool::intake_only(
        store.clone(),
        live,
        WorkerSettings::default(),
        Limits::default(),
    );
    let stop = soapgate::shutdown::Shutdown::new();
    let started = Instant::now();
    let relay = tokio::spawn(sqs::relay(store.clone(), queue, stop.clone()));
    let consumers = tokio::spawn(consumer.run(stop.clone()));
    let intake = tokio::spawn(intake.run(stop.wait()));
    loop {
        let c = store.job_counts().await.expect("counts");
        if (c.done + c.failed) as usize >= jobs {
            assert_eq!(c.done as usize, jobs, "{c:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    stop.trigger();
    let _ = relay.await;
    let _ = consumers.await;
    let _ = intake.await;
    let sqs = sqs_runs.load(Ordering::SeqCst);
    let calls = model_calls(&emulator).await;
    store.close().await;
    (
        elapsed,
        Paths {
            sqs,
            other: calls.saturating_sub(sqs),
        },
    )
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // once without it, as a smoke test: a few jobs against moto (fauxqs is
    // what bench/sqs.sh measures with) unless SQS_URL names an endpoint.
    let measuring = std::env::args().any(|a| a == "--bench");
    let jobs = env_usize("JOBS", if measuring { 5_000 } else { 50 });
    let pollers = env_usize("POLLERS", 4);
    let _moto;
    let (endpoint, queue) = match std::env::var("SQS_URL") {
        // bench/sqs.sh names the emulator it started in SQS_NAME.
        Ok(url) => (url, "sqs"),
        Err(_) if measuring => ("http://127.0.0.1:4570".into(), "sqs"),
        Err(_) => match Moto::start() {
            Some(moto) => {
                let url = moto.url.clone();
                _moto = moto;
                (url, "sqs (moto)")
            }
            None => return,
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let name = std::env::var("SQS_NAME").unwrap_or_default();
    let queue = if name.is_empty() {
        queue.to_owned()
    } else {
        format!("sqs ({name})")
    };
    println!(
        "| queue | loop | jobs | pollers x batch | seconds | jobs/s | sqs runs | other runs |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    rt.block_on(async {
        let client = client(&endpoint);
        let run = uuid::Uuid::new_v4().simple().to_string();
        for kind in ["bare", "e2e"] {
            let url = create_queue(&client, &format!("bench-{kind}-{run}")).await;
            let (elapsed, paths) = if kind == "bare" {
                (bare(&client, &url, jobs, pollers).await, None)
            } else {
                let (elapsed, paths) = end_to_end(&endpoint, &url, jobs, pollers).await;
                (elapsed, Some(paths))
            };
            let _ = client.delete_queue().queue_url(&url).send().await;
            let secs = elapsed.as_secs_f64();
            let (sqs_runs, other_runs) =
                paths.map_or(("-".into(), "-".into()), |p| (p.sqs.to_string(), p.other.to_string()));
            println!(
                "| {queue} | {kind} | {jobs} | {pollers} x 10 | {secs:.2} | {:.0} | {sqs_runs} | {other_runs} |",
                jobs as f64 / secs
            );
            if let Some(paths) = paths {
                // Every model call was made by an SQS consumer's run; the
                // smoke run also wants each job run exactly once.
                assert_eq!(paths.other, 0, "jobs run outside SQS: {paths:?}");
                if !measuring {
                    assert_eq!(paths.sqs, jobs, "every job run by the SQS consumers: {paths:?}");
                }
            }
        }
    });
}

/// A moto server for the smoke run; killed on drop.
struct Moto {
    child: std::process::Child,
    url: String,
}

impl Moto {
    /// `None` when moto is not installed and peers are optional; a panic
    /// when `SOAPGATE_REQUIRE_PEERS=1`.
    fn start() -> Option<Moto> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if std::env::var("SOAPGATE_REQUIRE_PEERS").as_deref() == Ok("1") => {
                panic!("moto_server ({e}) is required: pip install 'moto[server]'")
            }
            Err(e) => {
                eprintln!("bench sqs: skipped, no moto_server ({e})");
                return None;
            }
        };
        let mut moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "moto_server did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
