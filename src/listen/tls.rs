//! TLS for the facade's listener (`[tls]`): the server's certificate chain
//! and key, and client certificates verified against a CA bundle when
//! `client_auth` asks for them, all from PEM files; rustls on the
//! aws-lc-rs provider the AWS SDK already uses.
//!
//! The files are read again without a restart: on a change in the folders
//! that hold them (the editor's rename, a renewal tool's new symlink,
//! Kubernetes swapping a mounted secret) and on SIGHUP. A set that does not
//! load (a truncated file, a key that is not the certificate's) is refused
//! whole and logged, and the previous one keeps serving; connections take
//! the configuration current when they begin.
//!
//! The handshake runs in the connection's own task under
//! `handshake_timeout_ms`, never in the accept loop. The client's verified
//! end-entity certificate reaches each request of its connection as a
//! [`ClientCertificate`] extension; who it names is the tenants' business.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};

/// How long a TLS handshake may take, from the connection's acceptance:
/// 10 s. A handshake is a few round trips; a client that has not finished
/// one in ten seconds is a stalled or hostile one, and holds a connection
/// slot meanwhile.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The ALPN protocols offered, preferred first: HTTP/2 over TLS needs ALPN
/// (RFC 9113, 3.2), and a client that offers none speaks HTTP/1.1.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// `[tls]`: serve HTTPS instead of plain HTTP.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// The server's certificate chain, PEM, its own certificate first.
    pub cert: PathBuf,
    /// The certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA certificates (PEM, one or more) client certificates must
    /// chain to; needed unless `client_auth` is `none`.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Whether clients present certificates.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// How long a handshake may take, in milliseconds.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
}

fn default_handshake_timeout_ms() -> u64 {
    u64::try_from(DEFAULT_HANDSHAKE_TIMEOUT.as_millis()).unwrap_or(u64::MAX)
}

/// Whether clients present certificates.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// None is asked for.
    #[default]
    None,
    /// One is asked for; a client without one is served (and must
    /// authenticate otherwise), one whose certificate does not chain to
    /// `client_ca` is refused in the handshake.
    Optional,
    /// A client without a certificate chaining to `client_ca` is refused in
    /// the handshake.
    Required,
}

impl TlsSettings {
    /// The settings' own consistency, before any file is read.
    pub fn check(&self) -> anyhow::Result<()> {
        match (self.client_auth, &self.client_ca) {
            (ClientAuth::None, Some(_)) => bail!(
                "tls.client_ca is set but tls.client_auth is \"none\": set client_auth to \"optional\" or \"required\", or remove client_ca"
            ),
            (ClientAuth::Optional | ClientAuth::Required, None) => bail!(
                "tls.client_auth asks for client certificates: tls.client_ca must name the CA bundle they are verified against"
            ),
            _ => {}
        }
        if self.handshake_timeout_ms == 0 {
            bail!("tls.handshake_timeout_ms must be at least 1");
        }
        Ok(())
    }

    fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }
}

/// The verified end-entity certificate a client presented in the TLS
/// handshake (DER), put in each request of its connection. Absent over
/// plain HTTP and when the client presented none.
#[derive(Debug, Clone)]
pub struct ClientCertificate(pub Arc<CertificateDer<'static>>);

impl ClientCertificate {
    /// The certificate's DER bytes.
    pub fn der(&self) -> &[u8] {
        self.0.as_ref()
    }
}

/// The listener's TLS configuration, swapped whole on reload; cheap to
/// clone.
#[derive(Clone)]
pub struct Tls {
    inner: Arc<Inner>,
}

struct Inner {
    settings: TlsSettings,
    current: ArcSwap<ServerConfig>,
    /// SHA-256 of the files' bytes as last loaded (or refused): a change in
    /// a watched folder that left them as they were reloads nothing.
    seen: Mutex<[u8; 32]>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// The files of one load, read.
struct Files {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl Files {
    fn read(s: &TlsSettings) -> anyhow::Result<Files> {
        let read = |what: &str, path: &Path| {
            std::fs::read(path).with_context(|| format!("tls.{what}: reading {}", path.display()))
        };
        Ok(Files {
            cert: read("cert", &s.cert)?,
            key: read("key", &s.key)?,
            client_ca: s
                .client_ca
                .as_deref()
                .map(|p| read("client_ca", p))
                .transpose()?,
        })
    }

    fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()] {
            let part = part.map_or(&[][..], Vec::as_slice);
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.finalize().into()
    }
}

impl Tls {
    /// Reads and checks the files of `settings`: every error names the
    /// setting and the file.
    pub fn load(settings: &TlsSettings) -> anyhow::Result<Tls> {
        settings.check()?;
        let files = Files::read(settings)?;
        let config = server_config(settings, &files)?;
        Ok(Tls {
            inner: Arc::new(Inner {
                settings: settings.clone(),
                current: ArcSwap::from_pointee(config),
                seen: Mutex::new(files.digest()),
            }),
        })
    }

    /// Whether clients are asked for certificates.
    pub fn client_auth(&self) -> ClientAuth {
        self.inner.settings.client_auth
    }

    pub(super) fn handshake_timeout(&self) -> Duration {
        self.inner.settings.handshake_timeout()
    }

    /// An acceptor on the configuration current now.
    pub(super) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.inner.current.load_full())
    }

    /// Reads the files again and swaps the new configuration in: `Ok(true)`
    /// when it changed, `Ok(false)` when the files are as they were, an
    /// error (the current configuration kept) when they do not load.
    pub fn reload(&self) -> anyhow::Result<bool> {
        let settings = &self.inner.settings;
        let files = Files::read(settings)?;
        let digest = files.digest();
        {
            let mut seen = self
                .inner
                .seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if *seen == digest {
                return Ok(false);
            }
            // Refused or not, this content is not looked at again until it
            // changes: a broken file is logged once, not at every event.
            *seen = digest;
        }
        let config = server_config(settings, &files)?;
        self.inner.current.store(Arc::new(config));
        Ok(true)
    }

    /// [`Tls::reload`], logged: a refused set at ERROR (the operator must
    /// act), with the previous one still serving.
    pub fn reload_and_log(&self, why: &str) {
        match self.reload() {
            Ok(true) => tracing::info!(why, "reloaded the TLS certificate, key and client CAs"),
            Ok(false) => tracing::debug!(why, "TLS files unchanged"),
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                why,
                "TLS reload refused; the previous certificate, key and client CAs keep serving"
            ),
        }
    }

    /// Reloads on every change in the folders of the files (debounced) and
    /// on SIGHUP, until `shutdown` completes.
    pub async fn watch(self, shutdown: impl std::future::Future<Output = ()>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let settings = &self.inner.settings;
        let mut folders: Vec<PathBuf> = [Some(&settings.cert), Some(&settings.key)]
            .into_iter()
            .chain([settings.client_ca.as_ref()])
            .flatten()
            .map(|p| match p.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            })
            .collect();
        folders.sort();
        folders.dedup();
        let watcher = watch_folders(&folders, tx);
        let mut hup = hangup();
        tokio::pin!(shutdown);
        loop {
            let why = tokio::select! {
                () = &mut shutdown => break,
                Some(()) = rx.recv() => "files changed",
                Some(()) = next_hangup(&mut hup) => "SIGHUP",
            };
            // A renewal writes the certificate and the key one after the
            // other: wait for both, then take them at once.
            tokio::time::sleep(Duration::from_millis(250)).await;
            while rx.try_recv().is_ok() {}
            let tls = self.clone();
            let _ = tokio::task::spawn_blocking(move || tls.reload_and_log(why)).await;
        }
        drop(watcher);
    }
}

/// The rustls configuration of `files`.
fn server_config(s: &TlsSettings, files: &Files) -> anyhow::Result<ServerConfig> {
    let chain =
        certificates(&files.cert).with_context(|| format!("tls.cert {}", s.cert.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&files.key).map_err(|e| {
        anyhow::anyhow!(
            "tls.key {}: no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            s.key.display()
        )
    })?;
    let provider = Arc::new(aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match (&files.client_ca, s.client_auth) {
        (Some(pem), ClientAuth::Optional | ClientAuth::Required) => {
            let path = s.client_ca.as_deref().unwrap_or(Path::new("?"));
            let roots =
                client_roots(pem).with_context(|| format!("tls.client_ca {}", path.display()))?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match s.client_auth {
                ClientAuth::Optional => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier
                .build()
                .with_context(|| format!("tls.client_ca {}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).with_context(|| {
        format!(
            "tls.key {} is not the key of tls.cert {}",
            s.key.display(),
            s.cert.display()
        )
    })?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The certificates of a PEM file: at least one, every one well-formed.
fn certificates(pem: &[u8]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        bail!("no PEM certificate in it");
    }
    Ok(certs)
}

/// The CA certificates client certificates are verified against.
fn client_roots(pem: &[u8]) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(pem)? {
        roots.add(cert).map_err(|e| {
            anyhow::anyhow!("a CA certificate is not usable as a trust anchor: {e}")
        })?;
    }
    Ok(roots)
}

fn watch_folders(
    folders: &[PathBuf],
    tx: tokio::sync::mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    let handler = move |event: notify::Result<notify::Event>| {
        if let Ok(e) = event
            && !e.kind.is_access()
        {
            let _ = tx.send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the TLS files; reload them with SIGHUP");
            return None;
        }
    };
    for dir in folders {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the TLS files' folder; reload them with SIGHUP");
        }
    }
    Some(watcher)
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup() -> Hangup {
    None
}

#[cfg(unix)]
async fn next_hangup(s: &mut Hangup) -> Option<()> {
    match s {
        Some(sig) => sig.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangup) -> Option<()> {
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for localhost and its key, as PEM.
    fn pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    fn settings(dir: &Path, client_auth: ClientAuth) -> TlsSettings {
        TlsSettings {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            client_ca: (client_auth != ClientAuth::None).then(|| dir.join("ca.pem")),
            client_auth,
            handshake_timeout_ms: 1000,
        }
    }

    fn error(s: &TlsSettings) -> String {
        format!("{:#}", Tls::load(s).expect_err("refused"))
    }

    #[test]
    fn files_that_do_not_load_are_refused_naming_the_setting_and_the_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        let s = settings(d, ClientAuth::Required);
        assert!(error(&s).contains("tls.cert: reading"), "{}", error(&s));
        let (cert, key) = pair();
        let (other_cert, _) = pair();
        std::fs::write(d.join("cert.pem"), &cert).expect("write");
        std::fs::write(d.join("key.pem"), "not a key").expect("write");
        std::fs::write(d.join("ca.pem"), &other_cert).expect("write");
        assert!(error(&s).contains("tls.key"), "{}", error(&s));
        std::fs::write(d.join("key.pem"), &key).expect("write");
        std::fs::write(d.join("ca.pem"), "").expect("write");
        assert!(error(&s).contains("tls.client_ca"), "{}", error(&s));
        std::fs::write(d.join("ca.pem"), &other_cert).expect("write");
        assert!(Tls::load(&s).is_ok());
        std::fs::write(d.join("cert.pem"), &other_cert).expect("write");
        let e = error(&s);
        assert!(e.contains("is not the key of tls.cert"), "{e}");
        std::fs::write(d.join("cert.pem"), "-----BEGIN CERTIFICATE-----\n!!\n").expect("write");
        assert!(error(&s).contains("tls.cert"), "{}", error(&s));
    }

    #[test]
    fn a_reload_that_does_not_load_keeps_the_current_configuration() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        let s = settings(d, ClientAuth::None);
        let (cert, key) = pair();
        std::fs::write(d.join("cert.pem"), &cert).expect("write");
        std::fs::write(d.join("key.pem"), &key).expect("write");
        let tls = Tls::load(&s).expect("loads");
        let before = tls.inner.current.load_full();
        assert!(
            !tls.reload().expect("unchanged"),
            "same files: nothing to do"
        );
        std::fs::write(d.join("cert.pem"), "garbage").expect("write");
        assert!(tls.reload().is_err());
        assert!(Arc::ptr_eq(&before, &tls.inner.current.load_full()));
        // Refused once, not again until the files change.
        assert!(!tls.reload().expect("seen"));
        let (cert, key) = pair();
        std::fs::write(d.join("cert.pem"), &cert).expect("write");
        std::fs::write(d.join("key.pem"), &key).expect("write");
        assert!(tls.reload().expect("new pair"));
        assert!(!Arc::ptr_eq(&before, &tls.inner.current.load_full()));
        assert_eq!(
            tls.inner.current.load().alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
