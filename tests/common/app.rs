//! Shared helpers for integration tests: [`TestApp`] runs the facade
//! in-process on an ephemeral loopback port (dropping it shuts the server
//! down), with the mapping files of a folder and the Bedrock emulator as its
//! model when asked ([`TestApp::start_mapped`]), [`run_with_timeout`] runs an external program with a deadline and
//! captures its output, and [`peer_missing`] applies the project rule for
//! tests that need a peer no one here wrote (fail under
//! `SOAPGATE_REQUIRE_PEERS=1`, otherwise say so and skip).

use std::fmt;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use soapgate::app::{App, Parts, Role};
use soapgate::bedrock::{BedrockClient, BedrockSettings};
use soapgate::config::Settings;
use soapgate::emulator::{EmulatorHandle, Script};
use soapgate::http::AppState;
use soapgate::shutdown::Shutdown;

/// The repository root (where `wsdl/` and `examples/` live).
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The facade, serving the contracts of one folder on `127.0.0.1:<random>`
/// from a thread of its own. Dropping it stops the server and waits for it.
#[derive(Debug)]
pub(crate) struct TestApp {
    pub(crate) addr: SocketAddr,
    /// `http://127.0.0.1:<port>`, also the facade's public URL, so published
    /// WSDLs point back at this instance.
    pub(crate) base_url: String,
    pub(crate) state: AppState,
    /// The Bedrock emulator the app calls, when started with a model.
    pub(crate) emulator: Option<EmulatorHandle>,
    shutdown: Shutdown,
    _no_mappings: tempfile::TempDir,
    thread: Option<JoinHandle<()>>,
}

/// A model for [`TestApp::start_mapped`]: the in-process Bedrock emulator,
/// with an optional script, reached through the real SDK client.
#[derive(Debug, Default)]
pub(crate) struct EmulatedModel {
    pub(crate) script: Option<Script>,
    pub(crate) bedrock: BedrockSettings,
    /// The store's URL; default an in-memory SQLite database.
    pub(crate) database_url: Option<String>,
}

impl TestApp {
    /// Load every contract in `wsdl_dir` (relative paths are taken from the
    /// repository root) and start serving them. Panics with every load error
    /// when the contracts do not load.
    pub(crate) fn start(wsdl_dir: impl AsRef<Path>) -> TestApp {
        TestApp::launch(wsdl_dir.as_ref(), None, None)
    }

    /// Like [`TestApp::start`], with the mapping files of `mappings_dir`
    /// loaded against the contracts and the emulator as the model client.
    /// Panics with every load error when the mappings do not load.
    pub(crate) fn start_mapped(
        wsdl_dir: impl AsRef<Path>,
        mappings_dir: impl AsRef<Path>,
        model: EmulatedModel,
    ) -> TestApp {
        TestApp::launch(wsdl_dir.as_ref(), Some(mappings_dir.as_ref()), Some(model))
    }

    fn launch(
        wsdl_dir: &Path,
        mappings_dir: Option<&Path>,
        model: Option<EmulatedModel>,
    ) -> TestApp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        listener
            .set_nonblocking(true)
            .expect("making the listener non-blocking");
        let addr = listener.local_addr().expect("reading the bound address");
        let base_url = format!("http://{addr}");
        // Without a mappings folder, an empty one: nothing is mapped.
        let no_mappings = tempfile::tempdir().expect("an empty mappings folder");
        let mut settings = Settings {
            public_url: Some(base_url.clone()),
            wsdl_dir: repo_root().join(wsdl_dir),
            mappings_dir: mappings_dir
                .map_or_else(|| no_mappings.path().to_path_buf(), |m| repo_root().join(m)),
            ..Settings::default()
        };
        // Async and one-way calls are queued in an in-memory SQLite store;
        // tests read and complete its jobs through `state.store`. A mapped
        // app runs its queued jobs with soapgate's own workers, as `serve`
        // does.
        settings.database.url = model
            .as_ref()
            .and_then(|m| m.database_url.clone())
            .unwrap_or_else(|| "sqlite::memory:".into());
        settings.worker.enabled = model.is_some();
        // Built here so the emulator can be started on it before the server
        // thread takes it over; both then run on the runtime's workers.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("building the server runtime");
        let mut emulator = None;
        let mut client: Option<std::sync::Arc<dyn soapgate::converse::ModelClient>> = None;
        if let Some(model) = model {
            let handle = runtime
                .block_on(soapgate::emulator::spawn(model.script))
                .expect("starting the Bedrock emulator");
            let _entered = runtime.enter();
            client = Some(std::sync::Arc::new(BedrockClient::for_endpoint(
                handle.base_url(),
                &model.bedrock,
            )));
            emulator = Some(handle);
        }
        let app = runtime
            .block_on(async {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .expect("handing the listener to tokio");
                let parts = Parts {
                    model: client,
                    listener: Some(listener),
                    ..Parts::default()
                };
                App::build(settings, Role::Serve, parts).await
            })
            .unwrap_or_else(|e| panic!("the test app does not build: {e:#}"));
        let state = app.state().clone();
        let shutdown = Shutdown::new();
        let stopped = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name(format!("soapgate-{addr}"))
            .spawn(move || {
                if let Err(e) = runtime.block_on(app.run_until_stopped(stopped)) {
                    eprintln!("soapgate test server stopped with an error: {e:#}");
                }
            })
            .expect("spawning the server thread");
        let app = TestApp {
            addr,
            base_url,
            state,
            emulator,
            shutdown,
            _no_mappings: no_mappings,
            thread: Some(thread),
        };
        app.wait_healthy();
        app
    }

    /// `GET /soap/{service}?wsdl` as a URL.
    pub(crate) fn wsdl_url(&self, service: &str) -> String {
        format!("{}/soap/{service}?wsdl", self.base_url)
    }

    /// Converse calls the emulator has answered (or failed) so far, from its
    /// `GET /_emulator/calls`; 0 without an emulator.
    pub(crate) fn model_calls(&self) -> u64 {
        let Some(emu) = &self.emulator else {
            return 0;
        };
        let body = http_get(emu.addr(), "/_emulator/calls");
        let json: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("emulator call counts are not JSON ({e}): {body}"));
        json["total"].as_u64().unwrap_or(0)
    }

    /// `POST` target of a service.
    pub(crate) fn endpoint(&self, service: &str) -> String {
        format!("{}/soap/{service}", self.base_url)
    }

    /// The listener is bound before the thread starts, so connections queue
    /// up anyway; this only turns a server that died at start into a clear
    /// panic instead of a client timeout later.
    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
                && self.thread.as_ref().is_some_and(|t| !t.is_finished())
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the soapgate test server on {} did not come up",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A plain HTTP/1.0 GET on loopback, returning the body: enough for the
/// emulator's inspection endpoint without a client runtime.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .expect("connecting to the emulator");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("setting a read timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("sending a GET");
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .expect("reading the emulator's answer");
    match text.split_once("\r\n\r\n") {
        Some((_, body)) => body.to_string(),
        None => text,
    }
}

/// True when the run must have every external peer (`.ci/run` sets it).
pub(crate) fn peers_required() -> bool {
    std::env::var("SOAPGATE_REQUIRE_PEERS").is_ok_and(|v| v.trim() == "1")
}

/// Apply the rule for a missing peer: panic when peers are required,
/// otherwise print a clear skip line. Call it, then return from the test.
pub(crate) fn peer_missing(test: &str, what: &str) {
    if peers_required() {
        panic!("{test}: required peer missing: {what} (SOAPGATE_REQUIRE_PEERS=1)");
    }
    // Straight to the process's stderr: the test harness captures
    // `println!`, and a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "{test}: skipped: {what} missing (set SOAPGATE_REQUIRE_PEERS=1 to make this fail)"
    );
}

/// What a finished (or killed) subprocess left behind.
#[derive(Debug)]
pub(crate) struct RunOutput {
    /// The command line, for messages.
    pub(crate) command: String,
    /// `None` when the process was killed at the deadline.
    pub(crate) status: Option<ExitStatus>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

impl RunOutput {
    pub(crate) fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    pub(crate) fn timed_out(&self) -> bool {
        self.status.is_none()
    }
}

impl fmt::Display for RunOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Some(s) => s.to_string(),
            None => "killed at the deadline".to_string(),
        };
        writeln!(
            f,
            "$ {}\n[{status} after {:.1}s]",
            self.command,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

/// Run `cmd` with stdin closed, capturing stdout and stderr, and kill it
/// (and report so) if it is still running after `timeout`.
pub(crate) fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> RunOutput {
    match try_run_with_timeout(cmd, timeout) {
        Ok(out) => out,
        Err(e) => panic!("cannot start `{}`: {e}", describe(cmd)),
    }
}

/// [`run_with_timeout`], with a failure to start the program as an error.
pub(crate) fn try_run_with_timeout(
    cmd: &mut Command,
    timeout: Duration,
) -> std::io::Result<RunOutput> {
    let command = describe(cmd);
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(25)),
            Err(e) => panic!("waiting for `{command}`: {e}"),
        }
    };
    Ok(RunOutput {
        command,
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    })
}

/// Read a pipe to its end on a thread of its own, so a chatty child never
/// blocks on a full pipe while we wait for it.
fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// True when `program` starts and exits successfully with `args` within
/// 30 seconds.
pub(crate) fn command_works(program: &str, args: &[&str]) -> bool {
    try_run_with_timeout(Command::new(program).args(args), Duration::from_secs(30))
        .is_ok_and(|out| out.success())
}

/// The real binary, `soapgate serve --emulator` (HTTP, workers and the
/// embedded SQLite under `workdir/data/`), on a loopback port it picks;
/// killed when dropped.
pub(crate) struct ServeProcess {
    child: std::process::Child,
    pub(crate) base_url: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl fmt::Debug for ServeProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeProcess")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl ServeProcess {
    pub(crate) fn start(wsdl_dir: &Path, mappings_dir: &Path, workdir: &Path) -> ServeProcess {
        ServeProcess::start_with_env(wsdl_dir, mappings_dir, workdir, &[])
    }

    /// Like [`ServeProcess::start`], with extra environment variables.
    pub(crate) fn start_with_env(
        wsdl_dir: &Path,
        mappings_dir: &Path,
        workdir: &Path,
        env: &[(&str, &str)],
    ) -> ServeProcess {
        use std::sync::{Arc, Mutex, PoisonError};
        let mut child = Command::new(env!("CARGO_BIN_EXE_soapgate"))
            .current_dir(workdir)
            .envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .args(["serve", "--emulator", "--listen", "127.0.0.1:0"])
            .arg("--wsdl-dir")
            .arg(repo_root().join(wsdl_dir))
            .arg("--mappings-dir")
            .arg(repo_root().join(mappings_dir))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting soapgate serve");
        let log = Arc::new(Mutex::new(String::new()));
        let pipes: Vec<Box<dyn Read + Send>> = [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .collect();
        for mut pipe in pipes {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    log.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            let text = log.lock().unwrap_or_else(PoisonError::into_inner).clone();
            let found = text
                .lines()
                .filter(|l| l.contains("soapgate listening"))
                .find_map(|l| l.split("addr=").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_string);
            if let Some(addr) = found {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("soapgate serve exited ({status}):\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "soapgate serve did not come up:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        ServeProcess {
            child,
            base_url: format!("http://{addr}"),
            log,
        }
    }

    pub(crate) fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn wsdl_url(&self, service: &str) -> String {
        format!("{}/soap/{service}?wsdl", self.base_url)
    }

    /// SIGTERM, then waits (at most 30 s) for a graceful exit.
    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for soapgate") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "soapgate did not stop after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
