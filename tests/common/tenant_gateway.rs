//! A facade with tenants for tests: the example contracts and mappings,
//! the in-process Converse emulator behind the real SDK client, a store at
//! a given URL (so two instances can share one database), served on a
//! loopback port from the test's runtime. Plus envelopes with WS-Security
//! UsernameTokens built the way the profile says.

use std::sync::Arc;

use base64::Engine as _;
use soapgate::app::{App, Parts, Role};
use soapgate::bedrock::{BedrockClient, BedrockSettings};
use soapgate::config::Settings;
use soapgate::emulator::EmulatorHandle;
use soapgate::http::AppState;
use soapgate::shutdown::Shutdown;
use soapgate::store::Store;
use soapgate::tenants::{CredentialSettings, Secret, TenancySettings, TenantSettings};

pub(crate) const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
pub(crate) const WSU_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const PROFILE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0";

/// A running facade with tenants.
#[derive(Debug)]
pub(crate) struct Gateway {
    pub(crate) base_url: String,
    pub(crate) emulator: EmulatorHandle,
    pub(crate) store: Store,
    pub(crate) state: AppState,
    stop: Shutdown,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Gateway {
    /// Serves the example contracts with `tenants` (none: tenants off) on a
    /// store at `db_url`.
    pub(crate) async fn start(
        tenants: Vec<TenantSettings>,
        tenancy: TenancySettings,
        db_url: &str,
    ) -> Gateway {
        Gateway::start_scripted(tenants, tenancy, db_url, None).await
    }

    /// [`Gateway::start`] with an emulator script (delays, answers).
    pub(crate) async fn start_scripted(
        tenants: Vec<TenantSettings>,
        tenancy: TenancySettings,
        db_url: &str,
        script: Option<soapgate::emulator::Script>,
    ) -> Gateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let mut settings = Settings {
            public_url: Some(base_url.clone()),
            wsdl_dir: root().join("wsdl"),
            mappings_dir: root().join("mappings"),
            tenants,
            tenancy,
            ..Settings::default()
        };
        settings.database.url = db_url.to_string();
        // Tests run jobs with pools of their own.
        settings.worker.enabled = false;
        let emulator = soapgate::emulator::spawn(script).await.expect("emulator");
        let client = BedrockClient::for_endpoint(emulator.base_url(), &BedrockSettings::default());
        let parts = Parts {
            model: Some(Arc::new(client)),
            listener: Some(listener),
            ..Parts::default()
        };
        let app = App::build(settings, Role::Serve, parts)
            .await
            .unwrap_or_else(|e| panic!("the gateway does not build: {e:#}"));
        let state = app.state().clone();
        let store = state.store.get().cloned().expect("a store");
        let stop = Shutdown::new();
        tokio::spawn(app.run_until_stopped(stop.clone()));
        Gateway {
            base_url,
            emulator,
            store,
            state,
            stop,
        }
    }

    pub(crate) fn endpoint(&self, service: &str) -> String {
        format!("{}/soap/{service}", self.base_url)
    }

    /// The most tokens one call of `service.operation` with this envelope
    /// can use: what a budget must hold for it.
    pub(crate) fn token_ceiling(&self, service: &str, operation: &str, envelope: &str) -> u64 {
        let doc = soapgate::xml::read(envelope.as_bytes(), None, &soapgate::xml::Limits::default())
            .expect("envelope XML");
        let env = soapgate::soap::parse_envelope(doc.root).expect("envelope");
        self.state
            .live
            .snapshot()
            .mappings
            .plan(service, operation)
            .expect("mapped")
            .token_ceiling(soapgate::mapping::request_bytes(&env.body))
    }

    /// Argon2 password verifications this facade has performed.
    pub(crate) fn password_verifications(&self) -> u64 {
        self.state
            .tenants
            .as_ref()
            .expect("tenants configured")
            .password_verifications()
    }

    /// Converse calls the emulator has seen (`GET /_emulator/calls`).
    pub(crate) async fn model_calls(&self) -> u64 {
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

/// A tenant allowed `allow`, with the given credentials and no limits.
pub(crate) fn tenant(
    name: &str,
    allow: &[&str],
    credentials: Vec<CredentialSettings>,
) -> TenantSettings {
    TenantSettings {
        name: name.into(),
        credentials,
        allow: allow.iter().map(|s| s.to_string()).collect(),
        requests_per_minute: None,
        burst: None,
        tokens_per_minute: None,
        tokens_per_day: None,
        tokens_per_month: None,
    }
}

/// A UsernameToken user whose clear password is configured (PasswordText
/// and PasswordDigest both work).
pub(crate) fn token_user(user: &str, password: &str) -> CredentialSettings {
    CredentialSettings::UsernameToken {
        username: user.into(),
        password_hash: None,
        password_env: None,
        password: Some(Secret::new(password)),
    }
}

/// The sample request of an example operation.
pub(crate) fn sample(service: &str, operation: &str) -> String {
    std::fs::read_to_string(root().join(format!("examples/{service}/{operation}.xml")))
        .expect("sample request")
}

/// `envelope` (a sample without a Header, or an empty one) with `header` as its Header's
/// content, in the Body's prefix.
pub(crate) fn with_header(envelope: &str, header: &str) -> String {
    let empty = regex::Regex::new(r"<([A-Za-z_][\w.-]*:)?Header\s*/>").expect("regex");
    let envelope = empty.replace(envelope, "");
    let envelope = envelope.as_ref();
    let re = regex::Regex::new(r"<([A-Za-z_][\w.-]*:)?Body[\s>]").expect("regex");
    let m = re.find(envelope).expect("sample without a Body");
    let prefix = re
        .captures(&envelope[m.start()..])
        .and_then(|c| c.get(1))
        .map_or("", |p| p.as_str());
    format!(
        "{}<{prefix}Header>{header}</{prefix}Header>{}",
        &envelope[..m.start()],
        &envelope[m.start()..]
    )
}

/// The current time as `wsu:Created`, moved by `offset_secs`.
pub(crate) fn created(offset_secs: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(offset_secs);
    t.replace_nanosecond(0)
        .expect("time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

/// A fresh random nonce.
pub(crate) fn nonce() -> Vec<u8> {
    uuid::Uuid::new_v4().as_bytes().to_vec()
}

/// A `wsse:Security` header with a PasswordText token.
pub(crate) fn text_token(user: &str, password: &str) -> String {
    format!(
        "<wsse:Security xmlns:wsse=\"{WSSE_NS}\"><wsse:UsernameToken>\
         <wsse:Username>{user}</wsse:Username>\
         <wsse:Password Type=\"{PROFILE}#PasswordText\">{password}</wsse:Password>\
         </wsse:UsernameToken></wsse:Security>"
    )
}

/// A `wsse:Security` header with a PasswordDigest token.
pub(crate) fn digest_token(user: &str, password: &str, nonce: &[u8], created: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let digest = soapgate::tenants::username_token::password_digest(nonce, created, password);
    format!(
        "<wsse:Security xmlns:wsse=\"{WSSE_NS}\" xmlns:wsu=\"{WSU_NS}\" \
         xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" soap:mustUnderstand=\"1\">\
         <wsse:UsernameToken><wsse:Username>{user}</wsse:Username>\
         <wsse:Password Type=\"{PROFILE}#PasswordDigest\">{}</wsse:Password>\
         <wsse:Nonce>{}</wsse:Nonce><wsu:Created>{created}</wsu:Created>\
         </wsse:UsernameToken></wsse:Security>",
        b64.encode(digest),
        b64.encode(nonce)
    )
}

/// A POST's status, and its soapgate fault code if it is a fault.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: String,
}

impl Answer {
    /// The `sg:Code` of a fault, if any.
    pub(crate) fn code(&self) -> Option<String> {
        let start = self.body.find(":Code>")? + ":Code>".len();
        let rest = &self.body[start..];
        Some(rest[..rest.find('<')?].to_string())
    }

    pub(crate) fn retry_after(&self) -> Option<u64> {
        let start = self.body.find(":RetryAfterSeconds>")? + ":RetryAfterSeconds>".len();
        let rest = &self.body[start..];
        rest[..rest.find('<')?].parse().ok()
    }

    pub(crate) fn ok(&self) -> bool {
        self.status == 200 && !self.body.contains(":Fault")
    }
}

/// POSTs a SOAP 1.1 envelope with `headers`.
pub(crate) async fn post(url: &str, envelope: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "text/xml; charset=utf-8")
        .body(envelope.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("POST");
    let status = resp.status().as_u16();
    Answer {
        status,
        body: resp.text().await.expect("body"),
    }
}
