//! A PostgreSQL stop/start in the middle of a run costs retries, not
//! results: `soapgate worker` rides out the outage and every job still gets
//! exactly one result.
//!
//! The machine's shared PostgreSQL serves other tests, so this test starts
//! a private instance (`initdb` into a temporary directory, `pg_ctl` on a
//! free port; as the `postgres` user when run as root) and stops it with
//! `pg_ctl stop -m fast` (connections cut) while jobs are in flight. Missing
//! PostgreSQL server binaries skip, or fail under `SOAPGATE_REQUIRE_PEERS=1`.

use crate::common::worker_process as worker_support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use soapgate::emulator::{self, Script};
use soapgate::store::{JobSource, NewJob, Store};
use sqlx::Connection;
use worker_support::{emulator_calls, log_tail, payload, start_worker, wait_for};

const JOBS: usize = 300;

fn require_peers() -> bool {
    std::env::var("SOAPGATE_REQUIRE_PEERS").is_ok_and(|v| v.trim() == "1")
}

/// The directory of `initdb` and `pg_ctl`, newest version first.
fn server_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A private PostgreSQL cluster; stopped and removed on drop.
struct PrivatePg {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    root: bool,
}

impl PrivatePg {
    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.root {
            // PostgreSQL refuses to run as root.
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn init(bin: PathBuf) -> PrivatePg {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = is_root();
        if root {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the cluster directory failed");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let pg = PrivatePg {
            bin,
            dir,
            port,
            root,
        };
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(pg.data())
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-o", &options, "-l"])
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl start");
        assert!(status.success(), "pg_ctl start failed");
    }

    fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn count(url: &str, sql: &str) -> i64 {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("postgres");
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .expect("query");
    let _ = conn.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stop_start_mid_run_loses_no_result() {
    let Some(bin) = server_bin() else {
        assert!(
            !require_peers(),
            "PostgreSQL server binaries (initdb, pg_ctl) missing under /usr/lib/postgresql (SOAPGATE_REQUIRE_PEERS=1)"
        );
        eprintln!("skipped: no PostgreSQL server binaries under /usr/lib/postgresql");
        return;
    };
    let pg = PrivatePg::init(bin);
    pg.start();
    let url = pg.url();

    let script = Script::parse("rules:\n  - delay_ms: 20\n", "restart.yaml").expect("script");
    let emulator = emulator::spawn(Some(script)).await.expect("emulator");
    let store = Store::connect(&url).await.expect("store");
    for n in 0..JOBS {
        store
            .enqueue(&NewJob {
                service: "InvoiceService".into(),
                operation: "ClassifyInvoice".into(),
                correlation_id: format!("restart-{n:04}"),
                payload: payload(n),
                idempotency_key: None,
                source: JobSource::Queue,
                tenant: None,
            })
            .await
            .expect("enqueue");
    }
    store.close().await;

    let logs = tempfile::tempdir().expect("log dir");
    let log = logs.path().join("worker.log");
    let mut worker = start_worker(&url, logs.path(), emulator.base_url(), &log, 3_000);
    wait_for("the first results", &mut worker, &log, || async {
        count(&url, "SELECT COUNT(*) FROM soapgate_results").await >= 50
    })
    .await;
    pg.stop();
    // Work in flight keeps running; its writes, heartbeats and claims fail.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        worker.try_wait().expect("worker status").is_none(),
        "the worker must survive the outage:\n{}",
        log_tail(&log)
    );
    pg.start();
    wait_for("every job to finish", &mut worker, &log, || async {
        count(
            &url,
            "SELECT COUNT(*) FROM soapgate_jobs WHERE status IN ('DONE', 'FAILED')",
        )
        .await
            == JOBS as i64
    })
    .await;
    let term = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let status = worker.wait().expect("worker exit");
    assert!(
        status.success(),
        "worker exit {status}:\n{}",
        log_tail(&log)
    );

    let jobs = JOBS as i64;
    assert_eq!(
        count(
            &url,
            "SELECT COUNT(*) FROM soapgate_jobs WHERE status = 'DONE'"
        )
        .await,
        jobs
    );
    assert_eq!(
        count(&url, "SELECT COUNT(*) FROM soapgate_results").await,
        jobs
    );
    assert_eq!(
        count(
            &url,
            "SELECT COUNT(DISTINCT correlation_id) FROM soapgate_results WHERE status = 'DONE'"
        )
        .await,
        jobs
    );
    let calls = emulator_calls(emulator.base_url()).await;
    assert!(calls >= jobs, "{calls} model calls for {jobs} jobs");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!(
        "{calls} model calls for {jobs} jobs; {} store errors logged during the outage",
        text.lines().filter(|l| l.contains("failed")).count()
    );
}
