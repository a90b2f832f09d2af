//! The facade over TLS (`[tls]`), with certificates made here by rcgen: a
//! CA for the server and one for clients, and a client certificate of a
//! CA nobody configured. HTTPS answers calls and publishes `https://`
//! addresses; client certificates are verified in the handshake (a
//! certificate of another CA, or none when required, is refused with a TLS
//! alert) and name tenants, alone or together with a UsernameToken (both
//! must match, else the AUTHENTICATION_FAILED fault); zeep, curl (HTTP/1.1
//! and HTTP/2 by ALPN) and JAX-WS (a Dispatch on the Service made from the
//! WSDL over HTTPS, with a PKCS#12 keystore) call with a client
//! certificate; new
//! certificates, keys and client CAs are taken without a restart (a
//! change in their folder, or SIGHUP for what the watch cannot see, in the
//! real binary) and a broken file keeps the previous set serving;
//! handshakes of garbage or of clients that stall neither panic nor keep
//! other callers waiting, and the connection limits hold over TLS.
//!
//! zeep, curl, Java with JAX-WS and openssl (for the PKCS#12 keystore) are
//! peers no one here wrote: missing, they fail under
//! `SOAPGATE_REQUIRE_PEERS=1` and are skipped otherwise.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use sha2::{Digest, Sha256};
use soapgate::app::{App, Parts, Role};
use soapgate::bedrock::{BedrockClient, BedrockSettings};
use soapgate::config::Settings;
use soapgate::emulator::EmulatorHandle;
use soapgate::listen::{ClientAuth, TlsSettings};
use soapgate::shutdown::Shutdown;
use soapgate::tenants::{CredentialSettings, TenancySettings, TenantSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::common::app::{command_works, peer_missing, repo_root, run_with_timeout};
use crate::common::tenant_gateway::{sample, tenant, text_token, token_user, with_header};

// ---------------------------------------------------------------- PKI

/// A CA that signs certificates.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `sans` with subject `CN=cn,O=Acme`.
    fn issue(&self, cn: &str, sans: &[&str]) -> Identity {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// A certificate and its key.
#[derive(Clone)]
struct Identity {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Identity {
    fn sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.der).into()
    }

    /// Writes `name.pem` and `name-key.pem` into `dir`.
    fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}-key.pem"));
        replace(&cert, &self.cert_pem);
        replace(&key, &self.key_pem);
        (cert, key)
    }
}

/// Writes `path` as an editor or a renewal tool would: a new file renamed
/// over the old one.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension(format!("tmp{}", fastrand::u32(..)));
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// Everything the tests need: the server's CA and certificate, the
/// clients' CA and three client certificates, and one client certificate
/// of a CA nobody configured.
struct Pki {
    dir: tempfile::TempDir,
    server_ca: Ca,
    server: Identity,
    erp: Identity,
    batch: Identity,
    stranger: Identity,
}

impl Pki {
    fn new() -> Pki {
        let server_ca = Ca::new("soapgate test server CA");
        let server = server_ca.issue("localhost", &["localhost", "127.0.0.1"]);
        let client_ca = Ca::new("soapgate test client CA");
        let erp = client_ca.issue("erp.acme.example", &["erp.acme.example"]);
        let batch = client_ca.issue("batch.acme.example", &["batch.acme.example"]);
        let stranger =
            Ca::new("a CA nobody configured").issue("erp.acme.example", &["erp.acme.example"]);
        let dir = tempfile::tempdir().expect("tmp");
        replace(&dir.path().join("server-ca.pem"), &server_ca.pem);
        replace(&dir.path().join("client-ca.pem"), &client_ca.pem);
        server.write(dir.path(), "server");
        erp.write(dir.path(), "erp");
        batch.write(dir.path(), "batch");
        stranger.write(dir.path(), "stranger");
        Pki {
            dir,
            server_ca,
            server,
            erp,
            batch,
            stranger,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn settings(&self, client_auth: ClientAuth) -> TlsSettings {
        TlsSettings {
            cert: self.path("server.pem"),
            key: self.path("server-key.pem"),
            client_ca: (client_auth != ClientAuth::None).then(|| self.path("client-ca.pem")),
            client_auth,
            handshake_timeout_ms: 10_000,
        }
    }
}

// ---------------------------------------------------------------- server

/// The facade over TLS: the example contracts and mappings, the emulator
/// behind the real SDK, tenants if any.
struct Server {
    addr: SocketAddr,
    _emulator: EmulatorHandle,
    stop: Shutdown,
    _db: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

impl Server {
    async fn start(tls: TlsSettings, tenants: Vec<TenantSettings>) -> Server {
        Server::start_with(tls, tenants, |_| {}).await
    }

    async fn start_with(
        tls: TlsSettings,
        tenants: Vec<TenantSettings>,
        edit: impl FnOnce(&mut Settings),
    ) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let db = tempfile::tempdir().expect("tmp");
        // No public_url: published addresses come from the Host header,
        // with the scheme the listener serves.
        let mut settings = Settings {
            wsdl_dir: repo_root().join("wsdl"),
            mappings_dir: repo_root().join("mappings"),
            tls: Some(tls),
            tenants,
            tenancy: TenancySettings::default(),
            ..Settings::default()
        };
        settings.database.url = format!("sqlite://{}", db.path().join("soapgate.db").display());
        settings.worker.enabled = false;
        edit(&mut settings);
        let emulator = soapgate::emulator::spawn(None).await.expect("emulator");
        let client = BedrockClient::for_endpoint(emulator.base_url(), &BedrockSettings::default());
        let parts = Parts {
            model: Some(Arc::new(client)),
            listener: Some(listener),
            ..Parts::default()
        };
        let app = App::build(settings, Role::Serve, parts)
            .await
            .unwrap_or_else(|e| panic!("the TLS facade does not build: {e:#}"));
        let stop = Shutdown::new();
        tokio::spawn(app.run_until_stopped(stop.clone()));
        Server {
            addr,
            _emulator: emulator,
            stop,
            _db: db,
        }
    }

    fn base(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }
}

// ---------------------------------------------------------------- client

/// A rustls client trusting `ca_pem`, presenting `identity` if given.
fn client(ca_pem: &str, identity: Option<&Identity>, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA pem")).expect("root");
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(id) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(id.der.clone())],
                PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).expect("key"),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// An HTTP/1.1 exchange over TLS.
#[derive(Debug)]
struct Exchange {
    status: u16,
    body: String,
    /// SHA-256 of the server's certificate.
    server_sha256: [u8; 32],
}

impl Exchange {
    fn ok(&self) -> bool {
        self.status == 200 && !self.body.contains(":Fault")
    }

    fn code(&self) -> Option<&str> {
        let start = self.body.find(":Code>")? + ":Code>".len();
        let rest = &self.body[start..];
        Some(&rest[..rest.find('<')?])
    }
}

/// Sends `request` (a whole HTTP/1.1 request that asks to close) over a
/// new TLS connection, reads the answer to its end; an error says what
/// TLS or the socket reported.
async fn exchange(
    addr: SocketAddr,
    connector: &TlsConnector,
    request: &[u8],
) -> Result<Exchange, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").expect("name");
    let run = async {
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let server_sha256: [u8; 32] = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| Sha256::digest(c.as_ref()).into())
            .ok_or("no server certificate")?;
        tls.write_all(request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut raw = Vec::new();
        match tls.read_to_end(&mut raw).await {
            Ok(_) => {}
            // Some servers close without close_notify; what arrived counts.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            Err(e) => return Err(format!("read: {e}")),
        }
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
        let body = text
            .split_once("\r\n\r\n")
            .map_or(String::new(), |(_, b)| b.to_string());
        Ok(Exchange {
            status,
            body,
            server_sha256,
        })
    };
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .map_err(|_| "no answer within 20 s".to_string())?
}

fn post_request(addr: SocketAddr, envelope: &str) -> Vec<u8> {
    format!(
        "POST /soap/SupportDesk HTTP/1.1\r\nHost: localhost:{}\r\n\
         Content-Type: text/xml; charset=utf-8\r\nSOAPAction: \"\"\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{envelope}",
        addr.port(),
        envelope.len()
    )
    .into_bytes()
}

fn get_request(addr: SocketAddr, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
        addr.port()
    )
    .into_bytes()
}

/// The example TriageTicket call, with `header` in its SOAP Header.
fn triage(header: &str) -> String {
    let envelope = sample("SupportDesk", "TriageTicket");
    if header.is_empty() {
        envelope
    } else {
        with_header(&envelope, header)
    }
}

/// A certificate credential.
fn certificate(
    subject: Option<&str>,
    san: Option<&str>,
    sha256: Option<&str>,
    with_username_token: Option<&str>,
) -> CredentialSettings {
    CredentialSettings::Certificate {
        subject: subject.map(str::to_string),
        san: san.map(str::to_string),
        sha256: sha256.map(str::to_string),
        with_username_token: with_username_token.map(str::to_string),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Tenant `certonly`: the erp certificate alone (by subject); tenant
/// `paired`: the batch certificate (by SAN) only with user `batch`'s
/// UsernameToken, and user `desk` alone; tenant `plain`: user `plain`.
fn tenants(pki: &Pki) -> Vec<TenantSettings> {
    let allow = ["SupportDesk.*"];
    vec![
        tenant(
            "certonly",
            &allow,
            vec![certificate(
                Some("CN=erp.acme.example,O=Acme"),
                None,
                None,
                None,
            )],
        ),
        tenant(
            "paired",
            &allow,
            vec![
                token_user("batch", "b4tch"),
                certificate(
                    None,
                    Some("DNS:batch.acme.example"),
                    Some(&hex(&pki.batch.sha256())),
                    Some("batch"),
                ),
                token_user("desk", "d3sk"),
            ],
        ),
        tenant("plain", &allow, vec![token_user("plain", "pl4in")]),
    ]
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn https_answers_calls_and_publishes_https_addresses() {
    let pki = Pki::new();
    let server = Server::start(pki.settings(ClientAuth::None), vec![]).await;
    let connector = client(&pki.server_ca.pem, None, &[b"http/1.1"]);
    let wsdl = exchange(
        server.addr,
        &connector,
        &get_request(server.addr, "/soap/SupportDesk?wsdl"),
    )
    .await
    .expect("?wsdl over TLS");
    assert_eq!(wsdl.status, 200, "{wsdl:?}");
    let address = format!("location=\"{}/soap/SupportDesk\"", server.base());
    assert!(
        wsdl.body.contains(&address),
        "{address} not in the WSDL:\n{}",
        wsdl.body
    );
    assert_eq!(wsdl.server_sha256, pki.server.sha256());
    let call = exchange(
        server.addr,
        &connector,
        &post_request(server.addr, &triage("")),
    )
    .await
    .expect("call over TLS");
    assert!(call.ok(), "{call:?}");
    // Plain HTTP to the TLS port is not served.
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    tcp.write_all(&get_request(server.addr, "/healthz"))
        .await
        .expect("write");
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw)).await;
    assert!(!String::from_utf8_lossy(&raw).contains("200 OK"), "{raw:?}");
}

#[tokio::test]
async fn client_certificates_name_tenants_alone_or_with_a_username_token() {
    let pki = Pki::new();
    let server = Server::start(pki.settings(ClientAuth::Optional), tenants(&pki)).await;
    let ca = &pki.server_ca.pem;
    let erp = client(ca, Some(&pki.erp), &[]);
    let batch = client(ca, Some(&pki.batch), &[]);
    let anonymous = client(ca, None, &[]);
    let cases: [(&str, &TlsConnector, String, Option<&str>); 9] = [
        ("certificate alone", &erp, triage(""), None),
        (
            "certificate + its token",
            &batch,
            triage(&text_token("batch", "b4tch")),
            None,
        ),
        (
            "bound certificate without its token",
            &batch,
            triage(""),
            Some("AUTHENTICATION_FAILED"),
        ),
        (
            "bound certificate with another user of its tenant",
            &batch,
            triage(&text_token("desk", "d3sk")),
            Some("AUTHENTICATION_FAILED"),
        ),
        (
            "bound user without its certificate",
            &anonymous,
            triage(&text_token("batch", "b4tch")),
            Some("AUTHENTICATION_FAILED"),
        ),
        (
            "bound user with another tenant's certificate",
            &erp,
            triage(&text_token("batch", "b4tch")),
            Some("AUTHENTICATION_FAILED"),
        ),
        (
            "certificate with another tenant's token",
            &erp,
            triage(&text_token("plain", "pl4in")),
            Some("AUTHENTICATION_FAILED"),
        ),
        (
            "no certificate, a token (optional)",
            &anonymous,
            triage(&text_token("plain", "pl4in")),
            None,
        ),
        (
            "no credentials at all",
            &anonymous,
            triage(""),
            Some("AUTHENTICATION_FAILED"),
        ),
    ];
    for (what, connector, envelope, fault) in cases {
        let answer = exchange(
            server.addr,
            connector,
            &post_request(server.addr, &envelope),
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        match fault {
            None => assert!(answer.ok(), "{what}: {answer:?}"),
            Some(code) => assert_eq!(answer.code(), Some(code), "{what}: {answer:?}"),
        }
    }
    // A certificate of a CA nobody configured never gets to HTTP.
    let stranger = client(ca, Some(&pki.stranger), &[]);
    let refused = exchange(
        server.addr,
        &stranger,
        &post_request(server.addr, &triage("")),
    )
    .await
    .expect_err("a certificate of another CA");
    assert!(
        refused.contains("UnknownCA") || refused.contains("BadCertificate"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_missing_or_foreign_certificate_is_refused_by_a_tls_alert_when_required() {
    let pki = Pki::new();
    let server = Server::start(pki.settings(ClientAuth::Required), tenants(&pki)).await;
    let ca = &pki.server_ca.pem;
    let request = post_request(server.addr, &triage(""));
    let missing = exchange(server.addr, &client(ca, None, &[]), &request)
        .await
        .expect_err("no certificate");
    assert!(missing.contains("CertificateRequired"), "{missing}");
    let foreign = exchange(server.addr, &client(ca, Some(&pki.stranger), &[]), &request)
        .await
        .expect_err("another CA's certificate");
    assert!(
        foreign.contains("UnknownCA") || foreign.contains("BadCertificate"),
        "{foreign}"
    );
    let answer = exchange(server.addr, &client(ca, Some(&pki.erp), &[]), &request)
        .await
        .expect("a good certificate");
    assert!(answer.ok(), "{answer:?}");
}

#[tokio::test]
async fn curl_calls_with_a_client_certificate() {
    if !command_works("curl", &["--version"]) {
        return peer_missing("curl_calls_with_a_client_certificate", "curl");
    }
    let pki = Pki::new();
    let server = Server::start(pki.settings(ClientAuth::Required), tenants(&pki)).await;
    let body = pki.path("triage.xml");
    std::fs::write(&body, triage("")).expect("body");
    let batch_body = pki.path("triage-batch.xml");
    std::fs::write(&batch_body, triage(&text_token("batch", "b4tch"))).expect("body");
    let url = format!("{}/soap/SupportDesk", server.base());
    let resolve = format!("localhost:{}:127.0.0.1", server.addr.port());
    let curl = |identity: Option<&str>, body: &Path, extra: &[&str]| {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "30", "--resolve", &resolve, "--cacert"])
            .arg(pki.path("server-ca.pem"));
        if let Some(name) = identity {
            cmd.arg("--cert")
                .arg(pki.path(&format!("{name}.pem")))
                .arg("--key")
                .arg(pki.path(&format!("{name}-key.pem")));
        }
        cmd.args([
            "-H",
            "Content-Type: text/xml; charset=utf-8",
            "-H",
            "SOAPAction: \"\"",
        ])
        .args(extra)
        .args(["-w", "\n%{http_code} %{http_version}", "--data-binary"])
        .arg(format!("@{}", body.display()))
        .arg(&url);
        cmd
    };
    for (what, identity, body, extra) in [
        (
            "HTTP/1.1, certificate alone",
            Some("erp"),
            &body,
            &["--http1.1"][..],
        ),
        (
            "HTTP/2 by ALPN, certificate alone",
            Some("erp"),
            &body,
            &["--http2"][..],
        ),
        (
            "certificate + UsernameToken, HTTP/2 by default",
            Some("batch"),
            &batch_body,
            &[][..],
        ),
    ] {
        let out = run(curl(identity, body, extra)).await;
        assert!(out.success(), "{what}: {out}");
        // curl offers h2 by ALPN unless told otherwise.
        let version = if extra.contains(&"--http1.1") {
            "1.1"
        } else {
            "2"
        };
        assert!(
            out.stdout.ends_with(&format!("\n200 {version}")),
            "{what}: {out}"
        );
        assert!(out.stdout.contains("TriageTicketResponse"), "{what}: {out}");
    }
    let out = run(curl(Some("batch"), &body, &[])).await;
    assert!(
        out.stdout.contains("AUTHENTICATION_FAILED"),
        "bound certificate alone: {out}"
    );
    let out = run(curl(None, &body, &[])).await;
    assert!(!out.success(), "no certificate: {out}");
    assert!(
        out.stderr.contains("certificate required"),
        "no certificate: {out}"
    );
    let out = run(curl(Some("stranger"), &body, &[])).await;
    assert!(!out.success(), "another CA's certificate: {out}");
    assert!(
        out.stderr.contains("unknown ca") || out.stderr.contains("bad certificate"),
        "{out}"
    );
}

#[tokio::test]
async fn zeep_calls_with_a_client_certificate() {
    if !command_works("python3", &["-c", "import zeep, requests"]) {
        return peer_missing("zeep_calls_with_a_client_certificate", "python3 with zeep");
    }
    let pki = Pki::new();
    let server = Server::start(pki.settings(ClientAuth::Required), tenants(&pki)).await;
    let script = repo_root().join("tests/service/zeep_tls.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(server.base())
        .arg(pki.path("server-ca.pem"))
        .arg(pki.dir.path())
        .args([
            "erp::ok",
            "batch:batch/b4tch:ok",
            "batch::AUTHENTICATION_FAILED",
            "erp:plain/pl4in:AUTHENTICATION_FAILED",
        ]);
    let out = run(cmd).await;
    println!("{out}");
    assert!(out.success(), "{out}");
    assert_eq!(
        out.stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        4,
        "{out}"
    );
}

#[tokio::test]
async fn jaxws_calls_with_a_client_certificate() {
    let test = "jaxws_calls_with_a_client_certificate";
    let jaxws = [
        "/usr/share/java/jaxws-rt.jar",
        "/usr/share/java/javax.activation.jar",
    ];
    for (program, args) in [
        ("java", &["-version"][..]),
        ("keytool", &["-help"][..]),
        ("openssl", &["version"][..]),
    ] {
        if !command_works(program, args) {
            return peer_missing(
                test,
                &format!("{program} (apt-get install default-jdk openssl)"),
            );
        }
    }
    if !Path::new(jaxws[0]).is_file() {
        return peer_missing(
            test,
            "/usr/share/java/jaxws-rt.jar (apt-get install libjaxws-java)",
        );
    }
    let pki = Pki::new();
    let server = Server::start(pki.settings(ClientAuth::Required), tenants(&pki)).await;
    // The legacy Java way: a PKCS#12 keystore with the client's key and
    // certificate, and a truststore with the server's CA.
    let trust = pki.path("trust.p12");
    let mut keytool = Command::new("keytool");
    keytool
        .args([
            "-importcert",
            "-noprompt",
            "-alias",
            "ca",
            "-storetype",
            "PKCS12",
        ])
        .args(["-storepass", "changeit", "-file"])
        .arg(pki.path("server-ca.pem"))
        .arg("-keystore")
        .arg(&trust);
    let out = run(keytool).await;
    assert!(out.success(), "{out}");
    let requests = [
        ("alone.xml", triage("")),
        ("with-token.xml", triage(&text_token("batch", "b4tch"))),
    ];
    for (name, envelope) in &requests {
        std::fs::write(pki.path(name), envelope).expect("request");
    }
    for (identity, cases) in [
        ("erp", vec![("alone.xml", "ok")]),
        (
            "batch",
            vec![
                ("with-token.xml", "ok"),
                ("alone.xml", "AUTHENTICATION_FAILED"),
            ],
        ),
    ] {
        let keystore = pki.path(&format!("{identity}.p12"));
        let mut openssl = Command::new("openssl");
        openssl
            .args(["pkcs12", "-export", "-passout", "pass:changeit", "-in"])
            .arg(pki.path(&format!("{identity}.pem")))
            .arg("-inkey")
            .arg(pki.path(&format!("{identity}-key.pem")))
            .arg("-out")
            .arg(&keystore);
        let out = run(openssl).await;
        assert!(out.success(), "{out}");
        let mut java = Command::new("java");
        java.arg(format!("-Djavax.net.ssl.keyStore={}", keystore.display()))
            .args([
                "-Djavax.net.ssl.keyStoreType=PKCS12",
                "-Djavax.net.ssl.keyStorePassword=changeit",
            ])
            .arg(format!("-Djavax.net.ssl.trustStore={}", trust.display()))
            .args([
                "-Djavax.net.ssl.trustStoreType=PKCS12",
                "-Djavax.net.ssl.trustStorePassword=changeit",
                "-cp",
            ])
            .arg(jaxws.join(":"))
            .arg(repo_root().join("tests/service/JaxwsTls.java"))
            .arg(format!("{}/soap/SupportDesk?wsdl", server.base()))
            .args(
                cases
                    .iter()
                    .map(|(file, expect)| format!("{}:{expect}", pki.path(file).display())),
            );
        let out = run(java).await;
        println!("{out}");
        assert!(out.success(), "{identity}: {out}");
        assert_eq!(
            out.stdout.lines().filter(|l| l.starts_with("ok ")).count(),
            cases.len(),
            "{identity}: {out}"
        );
    }
}

/// Runs a client program off the runtime (the server runs on it), with a
/// deadline.
async fn run(mut cmd: Command) -> crate::common::app::RunOutput {
    tokio::task::spawn_blocking(move || run_with_timeout(&mut cmd, Duration::from_secs(120)))
        .await
        .expect("client task")
}

/// Polls `check` every 100 ms for up to 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match check().await {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test]
async fn certificates_and_client_cas_are_reloaded_without_a_restart() {
    let pki = Pki::new();
    let server = Server::start(pki.settings(ClientAuth::Required), vec![]).await;
    let ca = pki.server_ca.pem.clone();
    let request = post_request(server.addr, &triage(""));
    let erp = client(&ca, Some(&pki.erp), &[]);
    let first = exchange(server.addr, &erp, &request).await.expect("first");
    assert!(
        first.ok() && first.server_sha256 == pki.server.sha256(),
        "{first:?}"
    );

    // A renewed server certificate and key, written as a renewal does.
    let renewed = pki.server_ca.issue("localhost", &["localhost"]);
    renewed.write(pki.dir.path(), "server");
    eventually("the renewed certificate", || async {
        let e = exchange(server.addr, &erp, &request).await?;
        (e.server_sha256 == renewed.sha256() && e.ok())
            .then_some(())
            .ok_or_else(|| format!("{e:?}"))
    })
    .await;

    // A broken certificate file is refused; the renewed one keeps serving.
    replace(
        &pki.path("server.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64\n",
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let e = exchange(server.addr, &erp, &request)
        .await
        .expect("after a broken file");
    assert!(e.ok() && e.server_sha256 == renewed.sha256(), "{e:?}");
    // So is a certificate that is not the key's.
    let other = pki.server_ca.issue("localhost", &["localhost"]);
    replace(&pki.path("server.pem"), &other.cert_pem);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let e = exchange(server.addr, &erp, &request)
        .await
        .expect("after a mismatched key");
    assert!(e.ok() && e.server_sha256 == renewed.sha256(), "{e:?}");
    // Put right again: the set loads once more.
    replace(&pki.path("server.pem"), &renewed.cert_pem);

    // A new client CA: its clients get in, the old CA's no longer do.
    let new_ca = Ca::new("the next client CA");
    let successor = new_ca.issue("erp.acme.example", &["erp.acme.example"]);
    replace(&pki.path("client-ca.pem"), &new_ca.pem);
    let next = client(&ca, Some(&successor), &[]);
    eventually("the new client CA", || async {
        let e = exchange(server.addr, &next, &request).await?;
        e.ok().then_some(()).ok_or_else(|| format!("{e:?}"))
    })
    .await;
    let old = exchange(server.addr, &erp, &request)
        .await
        .expect_err("the old CA's client");
    assert!(
        old.contains("UnknownCA") || old.contains("BadCertificate"),
        "{old}"
    );
}

#[tokio::test]
async fn sighup_reloads_the_binarys_certificate_where_the_watch_cannot_see() {
    let pki = Pki::new();
    // The configured paths are symlinks in `live/` to files in `store/`: a
    // file rewritten in place in `store/` makes no event in `live/`.
    let live = pki.path("live");
    let store = pki.path("store");
    std::fs::create_dir_all(&live).expect("live");
    std::fs::create_dir_all(&store).expect("store");
    pki.server.write(&store, "server");
    for name in ["server.pem", "server-key.pem"] {
        std::os::unix::fs::symlink(store.join(name), live.join(name)).expect("symlink");
    }
    let work = tempfile::tempdir().expect("workdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_soapgate"))
        .current_dir(work.path())
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .env("SOAPGATE_TLS__CERT", live.join("server.pem"))
        .env("SOAPGATE_TLS__KEY", live.join("server-key.pem"))
        .args([
            "serve",
            "--emulator",
            "--no-workers",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--wsdl-dir")
        .arg(repo_root().join("wsdl"))
        .arg("--mappings-dir")
        .arg(repo_root().join("mappings"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("soapgate serve");
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut pipe = pipe;
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                log.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let text = || {
        log.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr: SocketAddr = loop {
        if let Some(addr) = text()
            .lines()
            .filter(|l| l.contains("soapgate listening (HTTPS)"))
            .find_map(|l| l.split("addr=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
        {
            break addr;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("soapgate serve exited ({status}):\n{}", text());
        }
        assert!(
            Instant::now() < deadline,
            "soapgate serve did not come up:\n{}",
            text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let pid = child.id().to_string();
    let _child = Kill(child);
    let connector = client(&pki.server_ca.pem, None, &[]);
    let request = get_request(addr, "/healthz");
    let first = exchange(addr, &connector, &request).await.expect("first");
    assert_eq!(first.server_sha256, pki.server.sha256(), "{}", text());

    let renewed = pki.server_ca.issue("localhost", &["localhost"]);
    std::fs::write(store.join("server.pem"), &renewed.cert_pem).expect("in place");
    std::fs::write(store.join("server-key.pem"), &renewed.key_pem).expect("in place");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let unseen = exchange(addr, &connector, &request)
        .await
        .expect("before SIGHUP");
    assert_eq!(
        unseen.server_sha256,
        pki.server.sha256(),
        "no event, no reload"
    );

    let sent = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill -HUP");
    assert!(sent.success());
    eventually("the certificate after SIGHUP", || async {
        let e = exchange(addr, &connector, &request).await?;
        (e.server_sha256 == renewed.sha256())
            .then_some(())
            .ok_or_else(|| "still the old certificate".to_string())
    })
    .await;
    assert!(
        text().contains("reloaded the TLS certificate"),
        "{}",
        text()
    );
}

#[tokio::test]
async fn garbage_and_stalled_handshakes_neither_panic_nor_keep_others_waiting() {
    let pki = Pki::new();
    let mut tls = pki.settings(ClientAuth::Optional);
    tls.handshake_timeout_ms = 500;
    let server = Server::start(tls, vec![]).await;
    let addr = server.addr;
    // Stalled: connected and silent, or a ClientHello cut short.
    let mut stalled = Vec::new();
    for i in 0..20 {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        if i % 2 == 1 {
            tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])
                .await
                .expect("partial hello");
        }
        stalled.push(tcp);
    }
    // Garbage: plain HTTP, random bytes, a record header claiming 16 MiB.
    for junk in [
        get_request(addr, "/healthz"),
        (0..4096).map(|_| fastrand::u8(..)).collect(),
        vec![0x16, 0x03, 0x03, 0xff, 0xff, 0x01, 0xff, 0xff, 0xff],
    ] {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let _ = tcp.write_all(&junk).await;
        let mut sink = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut sink)).await;
        assert!(read.is_ok(), "a garbage handshake was not closed");
    }
    // Meanwhile an honest caller is served at once.
    let started = Instant::now();
    let connector = client(&pki.server_ca.pem, Some(&pki.erp), &[]);
    let answer = exchange(addr, &connector, &post_request(addr, &triage("")))
        .await
        .expect("an honest call");
    assert!(answer.status == 200, "{answer:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // And the stalled ones are closed after the handshake timeout.
    for mut tcp in stalled {
        let mut sink = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut sink)).await;
        assert!(read.is_ok(), "a stalled handshake was not closed");
    }
}

#[tokio::test]
async fn connection_limits_idle_timeouts_and_header_limits_hold_over_tls() {
    let pki = Pki::new();
    let server = Server::start_with(pki.settings(ClientAuth::None), vec![], |s| {
        s.max_connections = 2;
        s.idle_timeout_ms = 3_000;
    })
    .await;
    let addr = server.addr;
    let connector = client(&pki.server_ca.pem, None, &[]);
    let name = || ServerName::try_from("localhost").expect("name");
    // An oversized head over TLS: 431.
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "x".repeat(10_000)
    );
    let e = exchange(addr, &connector, big.as_bytes())
        .await
        .expect("big head");
    assert_eq!(e.status, 431, "{e:?}");
    // Two handshaken, idle connections hold the limit...
    let mut idle = Vec::new();
    for _ in 0..2 {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        idle.push(connector.connect(name(), tcp).await.expect("handshake"));
    }
    // ...a third caller is served all the same: an idle one closes for it.
    let started = Instant::now();
    let e = exchange(addr, &connector, &get_request(addr, "/healthz"))
        .await
        .expect("a call at the limit");
    assert_eq!(e.status, 200, "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The idle connections are closed (to make room, or when idle too
    // long), over TLS as over plain TCP.
    for mut tls in idle {
        let mut sink = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut sink)).await;
        assert!(read.is_ok(), "an idle TLS connection was not closed");
    }
}
