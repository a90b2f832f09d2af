//! Redis for tests: the machine's (at `SOAPGATE_TEST_REDIS_URL`, by default
//! `redis://127.0.0.1:6379/0`), checked with a PING, a missing one skipping
//! the test or failing it under `SOAPGATE_REQUIRE_PEERS=1`; and
//! [`OwnRedis`], a `redis-server` of the test's own on a free port, to
//! stop, freeze and restart while the machine's keeps serving others.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::app::peer_missing;

/// The machine's Redis URL.
pub(crate) fn redis_url() -> String {
    std::env::var("SOAPGATE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

/// Whether Redis at `url` answers a PING within a second.
pub(crate) async fn answers(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let ping = async {
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(Duration::from_secs(1), ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("no answer within 1 s".into()),
    }
}

/// The machine's Redis URL when it answers; `None` (skipped, or a panic
/// under `SOAPGATE_REQUIRE_PEERS=1`) when it does not.
pub(crate) async fn shared_redis(test: &str) -> Option<String> {
    let url = redis_url();
    match answers(&url).await {
        Ok(()) => Some(url),
        Err(e) => {
            peer_missing(test, &format!("Redis at {url} ({e})"));
            None
        }
    }
}

/// How many times Redis at `url` ran each of `commands` since it started
/// (`INFO commandstats`), e.g. `evalsha`.
pub(crate) async fn command_calls(url: &str, commands: &[&str]) -> u64 {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .expect("INFO commandstats");
    let mut total = 0;
    for line in info.lines() {
        for c in commands {
            if let Some(rest) = line.strip_prefix(&format!("cmdstat_{c}:calls=")) {
                total += rest
                    .split(',')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total
}

/// A `redis-server` of the test's own, without persistence, on a loopback
/// port nobody else uses. Killed when dropped.
#[derive(Debug)]
pub(crate) struct OwnRedis {
    pub(crate) port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts one and waits until it answers; `None` when `redis-server`
    /// is not installed (skipped, or a panic under
    /// `SOAPGATE_REQUIRE_PEERS=1`).
    pub(crate) async fn start(test: &str) -> Option<OwnRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut own = OwnRedis { port, child: None };
        if let Err(e) = own.run().await {
            peer_missing(test, &format!("redis-server ({e})"));
            return None;
        }
        Some(own)
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts the server (again) on its port and waits until it answers.
    pub(crate) async fn run(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match answers(&self.url()).await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("redis-server on {} never answered: {e}", self.port));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Kills the server (its data goes with it).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing
    /// answers.
    pub(crate) fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Thaws a frozen server (SIGCONT).
    pub(crate) fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} {pid}");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A frozen server does not die of SIGTERM; SIGKILL does.
            self.kill();
        }
    }
}
