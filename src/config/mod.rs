//! Typed settings, layered: built-in defaults, then the config file
//! (`soapgate.toml` when present, or `--config FILE`), then `SOAPGATE_*`
//! environment variables (`__` separates sections:
//! `SOAPGATE_XML__MAX_DEPTH=50`), then command-line flags.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use crate::bedrock::BedrockSettings;
use crate::listen::TlsSettings;
use crate::live::Sources;
use crate::tenants::{ClusterSettings, TenancySettings, TenantSettings};
use crate::xml::Limits;

mod jobs;

pub use jobs::{
    BatchSettings, QueueKind, QueueSettings, SqsSettings, SqsSetupError, WorkerSettings,
};

pub const DEFAULT_CONFIG_FILE: &str = "soapgate.toml";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address the HTTP server binds.
    pub listen: String,
    /// New connections the kernel may queue before they are accepted
    /// (capped by `net.core.somaxconn`).
    pub listen_backlog: u32,
    /// The URL clients reach this facade at (scheme, host, port, optional
    /// path prefix), used in published WSDLs. When unset, each `?wsdl`
    /// answer is built from the request's Host header.
    pub public_url: Option<String>,
    pub wsdl_dir: PathBuf,
    pub mappings_dir: PathBuf,
    /// Requests with a larger body get HTTP 413 before any parsing.
    pub max_body_bytes: usize,
    /// The largest request head (request line and headers); larger ones
    /// get HTTP 431. At least 8192, which is also the default (Tomcat's):
    /// each connection's read buffer is this size.
    pub max_header_bytes: usize,
    /// Connections served at once; beyond it new connections wait in the
    /// listen backlog until one ends. Default 512, nginx's built-in
    /// `worker_connections`: under the usual 1,024 file descriptors with
    /// room for the rest of the process (see
    /// [`crate::listen::DEFAULT_MAX_CONNECTIONS`]).
    pub max_connections: usize,
    /// How long a connection with no request in progress stays open
    /// waiting for one, in milliseconds. Default 120 000: longer than the
    /// common SOAP clients keep an idle pooled connection (.NET Framework
    /// 100 s), so they close first; nginx says 75 s, Envoy an hour (see
    /// [`crate::listen::DEFAULT_IDLE_TIMEOUT`]).
    pub idle_timeout_ms: u64,
    /// How long a request may take to arrive, from its first byte to the
    /// last byte of its body, in milliseconds; then the connection is
    /// closed. Default 60 000: nginx's 60 s header and body timeouts, as a
    /// total rather than per read, so a client dripping a byte at a time is
    /// cut off too (see [`crate::listen::DEFAULT_REQUEST_READ_TIMEOUT`]).
    pub request_read_timeout_ms: u64,
    /// `[tls]`: serve HTTPS, with client certificates if asked
    /// (docs/tls.md). Unset: plain HTTP, for a load balancer that
    /// terminates TLS in front.
    pub tls: Option<TlsSettings>,
    /// Caps on the structure of request documents.
    pub xml: Limits,
    /// The memory budget for request bodies being parsed at once, in body
    /// bytes (a body's tree may take up to 8 times as much): a large body
    /// that does not fit gets `OVERLOADED` at once, and nothing waits; one
    /// whose Content-Length does not fit is refused before it is read.
    /// Bodies under 16 KiB are parsed in passing and not counted, so
    /// ordinary calls go through while large ones are refused. A body
    /// counts from when it has arrived until it is parsed, and counts at
    /// least 1 MiB (the 8 MiB any tree may take, over 8); a body larger
    /// than the whole budget is parsed alone. Default 64 MiB.
    pub max_parsing_bytes: usize,
    /// `text` (human) or `json` (one object per line) log output.
    pub log_format: LogFormat,
    /// An OpenTelemetry collector's OTLP/HTTP base URL (e.g.
    /// `http://collector:4318`): spans are exported there, protobuf-encoded,
    /// as well as logged. Unset: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` if set, else no export.
    pub otlp_endpoint: Option<String>,
    /// How to reach Amazon Bedrock (region, endpoint, timeouts, retries).
    pub bedrock: BedrockSettings,
    /// Start the built-in Converse emulator and send every model call to it
    /// instead of AWS (for trying soapgate out; never in production).
    pub emulator: bool,
    /// Where jobs and the polling tables live.
    pub database: DatabaseSettings,
    /// Which queue carries jobs to the workers.
    pub queue: QueueSettings,
    /// The job workers (`soapgate worker`, and `soapgate serve` unless
    /// disabled).
    pub worker: WorkerSettings,
    /// `[[tenants]]`: who may call what (docs/tenants.md). None: every
    /// call is anonymous and nothing is limited, as without this section.
    pub tenants: Vec<TenantSettings>,
    /// `[tenancy]`: how tenant credentials are checked, prices, audit.
    pub tenancy: TenancySettings,
    /// `[cluster]`: where tenants' request rates, tokens per minute,
    /// nonces and failed logins are kept — this process (the default) or
    /// a Redis every instance shares (docs/scale-out.md).
    pub cluster: ClusterSettings,
    /// `[record]`: how long recorded calls are kept and how many
    /// (operations choose to record with `record:` in their mapping).
    pub record: crate::record::RecordSettings,
    /// `[batch]`: how operations with `batch:` reach batch inference.
    pub batch: BatchSettings,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://path` (the embedded default), `postgres://…` or
    /// `mysql://…` (also MariaDB). Also `SOAPGATE_DATABASE_URL` or
    /// `--database-url`.
    pub url: String,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: "sqlite://data/soapgate.db".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8080".into(),
            listen_backlog: crate::listen::DEFAULT_BACKLOG,
            public_url: None,
            wsdl_dir: "wsdl".into(),
            mappings_dir: "mappings".into(),
            max_body_bytes: 10 * 1024 * 1024,
            max_header_bytes: crate::listen::MIN_HEAD_BYTES,
            max_connections: crate::listen::DEFAULT_MAX_CONNECTIONS,
            idle_timeout_ms: millis(crate::listen::DEFAULT_IDLE_TIMEOUT),
            request_read_timeout_ms: millis(crate::listen::DEFAULT_REQUEST_READ_TIMEOUT),
            tls: None,
            xml: Limits::default(),
            max_parsing_bytes: 64 * 1024 * 1024,
            log_format: LogFormat::Text,
            otlp_endpoint: None,
            bedrock: BedrockSettings::default(),
            emulator: false,
            database: DatabaseSettings::default(),
            queue: QueueSettings::default(),
            worker: WorkerSettings::default(),
            tenants: Vec::new(),
            tenancy: TenancySettings::default(),
            cluster: ClusterSettings::default(),
            record: crate::record::RecordSettings::default(),
            batch: BatchSettings::default(),
        }
    }
}

/// Top-level keys, so unrelated `SOAPGATE_*` variables (test switches and
/// the like) are not mistaken for settings.
const KEYS: &[&str] = &[
    "listen",
    "listen_backlog",
    "public_url",
    "wsdl_dir",
    "mappings_dir",
    "max_body_bytes",
    "max_header_bytes",
    "max_connections",
    "idle_timeout_ms",
    "request_read_timeout_ms",
    "tls",
    "xml",
    "max_parsing_bytes",
    "log_format",
    "otlp_endpoint",
    "bedrock",
    "emulator",
    "database",
    "queue",
    "worker",
    "tenants",
    "tenancy",
    "cluster",
    "batch",
    "record",
];

/// Command-line values that override the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub wsdl_dir: Option<PathBuf>,
    pub mappings_dir: Option<PathBuf>,
    pub emulator: bool,
    /// `--database-url` or `SOAPGATE_DATABASE_URL` (the documented flat
    /// name; `SOAPGATE_DATABASE__URL` works too).
    pub database_url: Option<String>,
    /// `serve --no-workers`: HTTP only.
    pub no_workers: bool,
}

impl Settings {
    /// Load settings. An explicit `config` file must exist; the default
    /// `soapgate.toml` is read only when present.
    pub fn load(config: Option<&Path>, overrides: Overrides) -> anyhow::Result<Settings> {
        let mut figment = Figment::new();
        match config {
            Some(path) => {
                if !path.is_file() {
                    bail!("{}: config file not found", path.display());
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE));
            }
            None => {}
        }
        figment = figment.merge(Env::prefixed("SOAPGATE_").split("__").filter(|k| {
            let top = k.as_str().split('.').next().unwrap_or_default();
            KEYS.iter().any(|known| known.eq_ignore_ascii_case(top))
        }));
        let mut s: Settings = figment.extract().context("invalid settings")?;
        s.apply(overrides);
        if s.worker.concurrency == 0 {
            bail!("invalid settings: worker.concurrency must be at least 1");
        }
        if s.worker.max_attempts == 0 {
            bail!("invalid settings: worker.max_attempts must be at least 1");
        }
        if s.bedrock.breaker.failure_rate_percent == 0
            || s.bedrock.breaker.failure_rate_percent > 100
        {
            bail!("invalid settings: bedrock.breaker.failure_rate_percent must be 1..=100");
        }
        // Limits under which no SOAP request could be read at all.
        if s.xml.max_depth < 3 {
            bail!(
                "invalid settings: xml.max_depth must be at least 3 (Envelope, Body and the payload)"
            );
        }
        if s.xml.max_children == 0 || s.xml.max_namespace_decls == 0 || s.xml.max_text_bytes == 0 {
            bail!(
                "invalid settings: xml.max_children, xml.max_namespace_decls and xml.max_text_bytes must be at least 1"
            );
        }
        if s.max_connections == 0 {
            bail!("invalid settings: max_connections must be at least 1");
        }
        if s.idle_timeout_ms == 0 || s.request_read_timeout_ms == 0 {
            bail!(
                "invalid settings: idle_timeout_ms and request_read_timeout_ms must be at least 1"
            );
        }
        if s.max_parsing_bytes == 0 {
            bail!("invalid settings: max_parsing_bytes must be at least 1");
        }
        if s.bedrock.max_in_flight == 0 {
            bail!("invalid settings: bedrock.max_in_flight must be at least 1");
        }
        if s.queue.kind == QueueKind::Sqs {
            s.queue.sqs.validate().context("invalid settings")?;
        }
        s.check_tls().context("invalid settings")?;
        if let Some(url) = &mut s.public_url {
            while url.ends_with('/') {
                url.pop();
            }
        }
        Ok(s)
    }

    /// `[tls]` consistent in itself and with the tenants: a tenant known by
    /// its client certificate needs `tls.client_auth` to ask for one.
    /// (The files are read when the listener is made.)
    pub fn check_tls(&self) -> anyhow::Result<()> {
        if let Some(tls) = &self.tls {
            tls.check()?;
        }
        let asks = self
            .tls
            .as_ref()
            .is_some_and(|t| t.client_auth != crate::listen::ClientAuth::None);
        if !asks
            && let Some(t) = self
                .tenants
                .iter()
                .find(|t| t.credentials.iter().any(|c| c.is_certificate()))
        {
            bail!(
                "tenant {}: a certificate credential needs [tls] with client_auth = \"optional\" or \"required\" (client certificates are only seen when soapgate terminates TLS itself)",
                t.name
            );
        }
        Ok(())
    }

    /// Where the contracts and mappings are read from.
    pub fn sources(&self) -> Sources {
        Sources {
            wsdl_dir: self.wsdl_dir.clone(),
            mappings_dir: self.mappings_dir.clone(),
        }
    }

    fn apply(&mut self, o: Overrides) {
        if let Some(v) = o.listen {
            self.listen = v;
        }
        if let Some(v) = o.public_url {
            self.public_url = Some(v);
        }
        if let Some(v) = o.wsdl_dir {
            self.wsdl_dir = v;
        }
        if let Some(v) = o.mappings_dir {
            self.mappings_dir = v;
        }
        if o.emulator {
            self.emulator = true;
        }
        if let Some(v) = o.database_url {
            self.database.url = v;
        }
        if o.no_workers {
            self.worker.enabled = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_layers_win_and_flags_win_last() {
        let dir = std::env::temp_dir().join(format!("soapgate-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("soapgate.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\n[bedrock]\nmax_attempts = 5\n",
        )
        .expect("write");
        // Stands in for the environment layer (tests cannot set variables
        // safely; tests/service/cli.rs sets them on a child process).
        let figment = Figment::new()
            .merge(Toml::file_exact(&file))
            .merge(figment::providers::Serialized::default(
                "bedrock.max_attempts",
                2,
            ))
            .merge(figment::providers::Serialized::default(
                "database.url",
                "postgres://db/x",
            ));
        let mut s: Settings = figment.extract().expect("settings");
        s.apply(Overrides {
            listen: Some("0.0.0.0:1".into()),
            ..Overrides::default()
        });
        assert_eq!(s.listen, "0.0.0.0:1");
        assert_eq!(s.bedrock.max_attempts, 2);
        assert_eq!(s.database.url, "postgres://db/x");
        assert_eq!(s.xml, Limits::default());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn limits_under_which_no_request_could_be_read_are_refused_at_load() {
        let dir = tempfile_dir("limits");
        for (toml, key) in [
            ("[xml]\nmax_depth = 0\n", "xml.max_depth"),
            ("[xml]\nmax_depth = 2\n", "xml.max_depth"),
            ("[xml]\nmax_children = 0\n", "xml.max_children"),
            (
                "[xml]\nmax_namespace_decls = 0\n",
                "xml.max_namespace_decls",
            ),
        ] {
            let file = dir.join("soapgate.toml");
            std::fs::write(&file, toml).expect("write");
            let err = Settings::load(Some(&file), Overrides::default())
                .expect_err(toml)
                .to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
        let file = dir.join("soapgate.toml");
        std::fs::write(&file, "[xml]\nmax_depth = 3\n").expect("write");
        assert!(Settings::load(Some(&file), Overrides::default()).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A fresh folder for one test's config file.
    fn tempfile_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "soapgate-config-{name}-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn every_section_can_come_from_the_environment() {
        for key in [
            "listen",
            "public_url",
            "xml",
            "bedrock",
            "emulator",
            "database",
            "log_format",
            "queue",
            "worker",
            "tenants",
            "tenancy",
            "tls",
            "cluster",
        ] {
            assert!(
                KEYS.contains(&key),
                "{key} must be settable from SOAPGATE_* variables"
            );
        }
    }

    #[test]
    fn the_shipped_config_file_states_the_queue_defaults() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_FILE);
        let s: Settings = Figment::new()
            .merge(Toml::file_exact(&file))
            .extract()
            .expect("soapgate.toml");
        assert_eq!(s.queue, QueueSettings::default());
        assert_eq!(s.bedrock, BedrockSettings::default());
    }

    #[test]
    fn the_shipped_tenant_example_parses_once_uncommented() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_FILE);
        let text = std::fs::read_to_string(&file).expect("soapgate.toml");
        let start = text.find("# [[tenants]]").expect("a tenant example");
        let example: String = text[start..]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let s: Settings = Figment::new()
            .merge(Toml::string(&example))
            .extract()
            .expect("the example is valid settings");
        assert_eq!(s.tenants.len(), 1);
        assert_eq!(s.tenants[0].credentials.len(), 3);
        assert_eq!(s.tenants[0].requests_per_minute, Some(600));
        assert_eq!(s.tenancy.prices.len(), 1);
        assert_eq!(s.tenancy.created_max_age_secs, 300);
        // The [cluster] example states the defaults, with a URL.
        assert!(s.cluster.redis_url.is_some());
        assert_eq!(
            crate::tenants::ClusterSettings {
                redis_url: None,
                ..s.cluster.clone()
            },
            crate::tenants::ClusterSettings::default()
        );
        // So does the [record] example, without a URL.
        assert_eq!(s.record, crate::record::RecordSettings::default());
        let unknown = Figment::new()
            .merge(Toml::string(
                "[[tenants]]\nname = \"a\"\n[[tenants.credentials]]\nscheme = \"basic\"\n\
                 username = \"u\"\npassword_hash = \"h\"\npassword = \"p\"\n",
            ))
            .extract::<Settings>();
        assert!(unknown.is_err(), "unknown credential keys are refused");
    }

    #[test]
    fn the_shipped_tls_example_parses_once_uncommented() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_FILE);
        let text = std::fs::read_to_string(&file).expect("soapgate.toml");
        let block = |from: &str, lines: usize| -> String {
            let start = text.find(from).expect(from);
            text[start..]
                .lines()
                .take(lines)
                .map(|l| l.strip_prefix("# ").unwrap_or(l))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let s: Settings = Figment::new()
            .merge(Toml::string(&block("# [tls]", 6)))
            .extract()
            .expect("the [tls] example is valid settings");
        let tls = s.tls.expect("[tls]");
        assert_eq!(tls.client_auth, crate::listen::ClientAuth::Optional);
        assert!(tls.check().is_ok());
        let tenant = format!(
            "[[tenants]]\nname = \"acme\"\n{}",
            block("# [[tenants.credentials]]\n# scheme = \"certificate\"", 5)
        );
        let s: Settings = Figment::new()
            .merge(Toml::string(&tenant))
            .extract()
            .expect("the certificate credential example is valid settings");
        assert!(s.tenants[0].credentials[0].is_certificate());
    }

    #[test]
    fn connection_limits_default_sanely_and_zero_is_refused() {
        let s = Settings::default();
        assert_eq!(s.max_connections, 512);
        assert_eq!(s.idle_timeout_ms, 120_000);
        assert_eq!(s.request_read_timeout_ms, 60_000);
        let dir = std::env::temp_dir().join(format!("soapgate-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for line in [
            "max_connections = 0",
            "idle_timeout_ms = 0",
            "request_read_timeout_ms = 0",
        ] {
            let file = dir.join("soapgate.toml");
            std::fs::write(&file, format!("{line}\n")).expect("write");
            let err = Settings::load(Some(&file), Overrides::default())
                .expect_err(line)
                .to_string();
            let key = line.split(' ').next().unwrap_or_default();
            assert!(err.contains(key), "{line}: {err}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tls_settings_are_checked_at_load_with_the_key_named() {
        let dir = tempfile_dir("tls");
        let file = dir.join("soapgate.toml");
        for (toml, says) in [
            (
                "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nclient_auth = \"required\"\n",
                "tls.client_ca must name",
            ),
            (
                "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nclient_ca = \"ca.pem\"\n",
                "tls.client_ca is set but tls.client_auth is \"none\"",
            ),
            (
                "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nhandshake_timeout_ms = 0\n",
                "tls.handshake_timeout_ms",
            ),
            ("[tls]\ncert = \"c.pem\"\n", "key"),
            (
                "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nclient_auth = \"maybe\"\n",
                "client_auth",
            ),
            (
                "[[tenants]]\nname = \"acme\"\n[[tenants.credentials]]\nscheme = \"certificate\"\nsha256 = \"ab\"\n",
                "tenant acme: a certificate credential needs [tls] with client_auth",
            ),
        ] {
            std::fs::write(&file, toml).expect("write");
            let err = format!(
                "{:#}",
                Settings::load(Some(&file), Overrides::default()).expect_err(toml)
            );
            assert!(err.contains(says), "{toml}: {err}");
        }
        std::fs::write(
            &file,
            "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nclient_ca = \"ca.pem\"\nclient_auth = \"optional\"\n\
             [[tenants]]\nname = \"acme\"\n[[tenants.credentials]]\nscheme = \"certificate\"\n\
             subject = \"CN=erp\"\nwith_username_token = \"erp\"\n",
        )
        .expect("write");
        let s = Settings::load(Some(&file), Overrides::default()).expect("valid");
        let tls = s.tls.expect("[tls]");
        assert_eq!(tls.client_auth, crate::listen::ClientAuth::Optional);
        assert_eq!(tls.handshake_timeout_ms, 10_000);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_sqs_queue_is_configured_in_its_own_table() {
        let s: Settings = Figment::new()
            .merge(Toml::string(
                "[queue]\nkind = \"sqs\"\n[queue.sqs]\n\
                 request_queue_url = \"http://127.0.0.1:4566/000000000000/requests\"\n\
                 visibility_timeout = 60\n",
            ))
            .extract()
            .expect("settings");
        assert_eq!(s.queue.kind, QueueKind::Sqs);
        assert_eq!(s.queue.sqs.visibility_timeout, 60);
        assert_eq!(s.queue.sqs.wait_time_seconds, 20);
        assert!(s.queue.sqs.validate().is_ok());
    }
}
