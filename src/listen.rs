//! Serving an axum [`Router`] on a TCP listener: HTTP/1.1 and, by prior
//! knowledge, HTTP/2 (h2c); TCP_NODELAY on every connection; on shutdown,
//! no new connections, and the requests in progress finish. [`bind`] makes
//! the listener with a backlog of our choosing.
//!
//! `axum::serve` does the same but keeps hyper's connection settings to
//! itself, and both servers here need one: the facade bounds each
//! connection's read buffer (memory per call in flight), the emulator lets
//! one HTTP/2 connection carry a facade's every call.
//!
//! [`serve_with_limits`] also bounds what connections may hold
//! ([`ConnLimits`]): how many are served at once (beyond that the listener
//! is not accepted from, so new connections wait in its backlog), how long
//! one may stay idle between requests, and how long a request may take to
//! arrive, head and body. A failing `accept` (out of file descriptors, say)
//! is retried after a pause that doubles from 100 ms to 1 s, and logged at
//! most once per [`LOG_EVERY`].
//!
//! [`serve_tls`] serves the same over TLS ([`tls`]): each connection's
//! handshake runs in its own task under a timeout, counts against the
//! connection limit, and is an idle connection for the limits until it is
//! done; HTTP/2 is chosen by ALPN.

pub mod tls;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Version;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream, lookup_host};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep, sleep_until};

pub use tls::{ClientAuth, ClientCertificate, Tls, TlsSettings};

/// hyper's floor for an HTTP/1.1 connection's read buffer, which bounds the
/// request head it can parse.
pub const MIN_HEAD_BYTES: usize = 8 * 1024;

/// Connections the kernel may hold completed for us before we accept them
/// (what nginx and most servers ask for; the kernel caps it at
/// `net.core.somaxconn`). tokio's own `bind` asks for 128: a burst of more
/// new connections than that overflows the queue, and each connection
/// dropped then waits a second for its SYN to be sent again.
pub const DEFAULT_BACKLOG: u32 = 1024;

/// Connections the facade serves at once: nginx's built-in
/// `worker_connections` (512). Envoy sets no limit unless its overload
/// manager is configured, and hyper none at all. Every connection is a file
/// descriptor, and the usual soft limit is 1,024 per process, which the
/// database pool, the model's connections, the listener and the watched
/// folders share: 512 leaves them room, and it is twice the model calls an
/// instance runs at once by default (`bedrock.max_in_flight`, 256), so every
/// call in flight can have its connection with as many idle in a client's
/// pool. Beyond it, new connections wait in the listen backlog.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// How long a connection may wait, with no request in progress, for the
/// first byte of its next one: 120 s. nginx closes idle keep-alive
/// connections after 75 s (`keepalive_timeout`), Envoy after an hour
/// (`idle_timeout`); hyper's HTTP/1.1 `header_read_timeout` (30 s) counts
/// the idle time too, but not before the first request of a connection.
/// A server should not close a pooled connection before its clients do,
/// or a client may send its next call into a connection being closed; the
/// usual SOAP stacks drop idle connections sooner than 120 s (.NET
/// Framework's `ServicePoint` after 100 s, .NET's `SocketsHttpHandler`
/// after 60 s, Java's `HttpURLConnection` after 5 s), and two minutes still
/// frees an abandoned connection soon.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a request may take to arrive, from its first byte to the last
/// byte of its body: 60 s, a total. nginx's 60 s `client_header_timeout`
/// and `client_body_timeout` bound the wait between two reads, so a client
/// sending a byte a minute is never cut off; Envoy sets no request or
/// header timeout by default (its edge recommendation is 300 s for a whole
/// request, response included). A total ends a slow-drip client after 60 s
/// whatever its pace; an honest client sends a SOAP call in far less
/// (10 MiB, the default `max_body_bytes`, takes 60 s at about 1.4 Mbit/s).
pub const DEFAULT_REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The first pause after a failed `accept`; each further failure in a row
/// doubles it, up to [`ACCEPT_RETRY_MAX`].
pub const ACCEPT_RETRY_FIRST: Duration = Duration::from_millis(100);

/// The longest pause after failed `accept`s.
pub const ACCEPT_RETRY_MAX: Duration = Duration::from_secs(1);

/// At most one log line per this interval for a condition that repeats
/// (failing `accept`s, the connection limit reached).
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Binds `addr` (`host:port`; the first address it resolves to that binds)
/// and listens with `backlog`, with SO_REUSEADDR as tokio's `bind` sets it.
pub async fn bind(addr: &str, backlog: u32) -> io::Result<TcpListener> {
    let mut last = None;
    for sa in lookup_host(addr).await? {
        let socket = if sa.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }?;
        let bound = socket
            .set_reuseaddr(true)
            .and_then(|()| socket.bind(sa))
            .and_then(|()| socket.listen(backlog));
        match bound {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr} resolves to no address"),
        )
    }))
}

/// How each connection is served.
#[derive(Debug, Clone, Copy)]
pub struct ConnSettings {
    /// The largest HTTP/1.1 request head (request line and headers); a
    /// larger one gets 431. Also the most a connection buffers while
    /// reading, so what an idle or waiting connection holds. Raised to
    /// [`MIN_HEAD_BYTES`] if below.
    pub max_head_bytes: usize,
    /// Requests at once on one HTTP/2 connection.
    pub max_concurrent_streams: u32,
}

/// What connections may hold of the process, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections served at once. At the limit the listener is not
    /// accepted from until one ends, so new connections wait in the kernel's
    /// backlog (and are served in turn) instead of being accepted and
    /// closed at once: a client that connected gets its answer late rather
    /// than an error, and the idle and read timeouts keep the wait short.
    pub max_connections: usize,
    /// How long a connection with no request in progress may wait for the
    /// first byte of the next one (before its first request too); then it
    /// is closed. `None`: no limit.
    pub idle_timeout: Option<Duration>,
    /// How long a request may take to arrive, from its first byte (or, for
    /// one already buffered, from when its head was read) to the last byte
    /// of its body. An HTTP/1.1 connection is then closed, whatever its
    /// handler was doing; on HTTP/2 only the body fails (the connection
    /// carries other calls), timed from the stream's head. `None`: no limit.
    pub request_read_timeout: Option<Duration>,
}

impl ConnLimits {
    /// No limit: the emulator's (a facade's one HTTP/2 connection carries
    /// every call it sends, idle or not).
    pub const NONE: ConnLimits = ConnLimits {
        max_connections: usize::MAX,
        idle_timeout: None,
        request_read_timeout: None,
    };

    fn timed(&self) -> bool {
        self.idle_timeout.is_some() || self.request_read_timeout.is_some()
    }
}

/// Serves `router` until `shutdown` completes, then waits for the
/// connections to finish their requests in progress. No [`ConnLimits`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ConnSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with_limits(listener, router, settings, ConnLimits::NONE, shutdown).await
}

/// [`serve`] with at most `limits.max_connections` connections at once,
/// each closed when idle or slow to send a request as `limits` says.
pub async fn serve_with_limits(
    listener: TcpListener,
    router: Router,
    settings: ConnSettings,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_connections(listener, router, settings, limits, None, shutdown).await
}

/// [`serve_with_limits`] over TLS: each connection is a TLS handshake
/// (within `tls`'s handshake timeout, in the connection's task) and then
/// HTTP/2 when ALPN chose it, else HTTP/1.1; the client's certificate, if
/// it presented one, is in each request as a [`ClientCertificate`].
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    settings: ConnSettings,
    limits: ConnLimits,
    tls: Tls,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_connections(listener, router, settings, limits, Some(tls), shutdown).await
}

async fn serve_connections(
    listener: TcpListener,
    router: Router,
    settings: ConnSettings,
    limits: ConnLimits,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size(settings.max_head_bytes.max(MIN_HEAD_BYTES));
    if limits.timed() {
        // hyper's own head timeout starts when a connection goes idle, so
        // it would close idle connections before `idle_timeout`; the
        // connection's watch times both instead.
        builder.http1().header_read_timeout(None);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams);
    // Over TLS every connection has a watch, which carries its client's
    // certificate to the requests.
    let watched = limits.timed() || tls.is_some();
    let router = if watched {
        // HTTP/1.1 connections' watches, found in their task.
        router.layer(from_fn_with_state(None, watch_request))
    } else {
        router
    };
    let max_connections = limits.max_connections.max(1);
    // Dropped at shutdown: every connection then finishes gracefully.
    let (stop, stopping) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut accept_errors = AcceptBackoff::default();
    let mut at_limit = Throttle::default();
    let mut paused_until: Option<Instant> = None;
    // The watches of the connections served, to find an idle one to close
    // when the limit is reached and a new connection is waiting.
    let mut watches: Vec<Weak<Watch>> = Vec::new();
    // The connection accepted last, served at the top of the loop; at the
    // limit it waits there for the room an idle connection's closing makes
    // (or any connection's ending).
    let mut held: Option<(TcpStream, SocketAddr)> = None;
    // While one is held and no connection was idle long enough to close:
    // when to look again.
    let mut look_again: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let room = connections.len() < max_connections;
        if room && let Some((stream, peer)) = held.take() {
            look_again = None;
            spawn_connection(
                &mut connections,
                &mut watches,
                &builder,
                stream,
                peer,
                &router,
                limits,
                tls.as_ref(),
                &stopping,
            );
            if connections.len() >= max_connections
                && let Some(times) = at_limit.tick(Instant::now())
            {
                tracing::warn!(
                    max_connections,
                    times,
                    "connection limit reached: idle connections close for new ones; while all are busy, new connections wait in the listen backlog"
                );
            }
            continue;
        }
        // At the limit, one more is accepted and held if an idle
        // connection can make room for it; the rest wait in the backlog.
        let take = room || (held.is_none() && limits.timed());
        let stream = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = sleep_until(paused_until.unwrap_or_else(Instant::now)), if paused_until.is_some() => {
                paused_until = None;
                continue;
            }
            () = sleep_until(look_again.unwrap_or_else(Instant::now)), if look_again.is_some() => {
                look_again = make_room(&mut watches);
                continue;
            }
            accepted = listener.accept(), if take && paused_until.is_none() => match accepted {
                Ok((stream, peer)) => {
                    accept_errors.succeeded();
                    (stream, peer)
                }
                Err(e) => {
                    // Out of file descriptors and the like: connections
                    // that end free them, so wait and try again.
                    let now = Instant::now();
                    let retry = accept_errors.failed(now);
                    if let Some(failures) = retry.log {
                        tracing::warn!(
                            error = %e,
                            failures,
                            retry_in_ms = u64::try_from(retry.wait.as_millis()).unwrap_or(u64::MAX),
                            "accepting a connection failed"
                        );
                    }
                    paused_until = Some(now + retry.wait);
                    continue;
                }
            },
        };
        let (stream, peer) = stream;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        if !room {
            // Someone is waiting: an idle connection makes room, as nginx
            // reuses its idle keep-alive connections.
            look_again = make_room(&mut watches);
        }
        // Served at the top of the loop, at once when there is room.
        held = Some((stream, peer));
    }
    drop(listener);
    drop(stop);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Starts serving an accepted connection, with a watch when `limits` time
/// connections (kept in `watches` for [`make_room`]).
#[allow(clippy::too_many_arguments)]
fn spawn_connection(
    connections: &mut JoinSet<()>,
    watches: &mut Vec<Weak<Watch>>,
    builder: &Builder<TokioExecutor>,
    stream: TcpStream,
    peer: SocketAddr,
    router: &Router,
    limits: ConnLimits,
    tls: Option<&Tls>,
    stopping: &watch::Receiver<()>,
) {
    let watch =
        (limits.timed() || tls.is_some()).then(|| Arc::new(Watch::new(&limits, Some(peer))));
    if let Some(w) = &watch {
        if watches.len() >= 2 * limits.max_connections.min(1 << 20) {
            watches.retain(|w| w.strong_count() > 0);
        }
        watches.push(Arc::downgrade(w));
    }
    match tls {
        Some(tls) => connections.spawn(serve_tls_connection(
            builder.clone(),
            stream,
            watch,
            router.clone(),
            limits,
            tls.clone(),
            stopping.clone(),
        )),
        None => connections.spawn(serve_connection(
            builder.clone(),
            stream,
            watch,
            router.clone(),
            limits,
            stopping.clone(),
        )),
    };
}

/// How long a connection must have been idle before it may be closed to
/// make room: a connection just accepted may have its request in the
/// socket unread, and a pooled client's connection between two calls is
/// idle for milliseconds. New connections wait at most about this long
/// for room while idle connections hold the limit.
const IDLE_BEFORE_CLOSING: Duration = Duration::from_secs(1);
/// How often to look again while nothing could be closed.
const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// Asks an idle connection (no request in progress, none arriving, for at
/// least [`IDLE_BEFORE_CLOSING`]) to close: one that never sent a request
/// if there is one, else the one idle the longest. `None` when one was
/// asked; else when to look again.
fn make_room(watches: &mut Vec<Weak<Watch>>) -> Option<Instant> {
    watches.retain(|w| w.strong_count() > 0);
    let now = Instant::now();
    let candidate = watches
        .iter()
        .filter_map(Weak::upgrade)
        .filter_map(|w| w.idle_since().map(|since| (since, w)))
        .filter(|((_, since), _)| now.saturating_duration_since(*since) >= IDLE_BEFORE_CLOSING)
        .min_by_key(|(since, _)| *since);
    match candidate {
        Some((_, watch)) if watch.close_if_idle() => {
            tracing::debug!("connection limit: an idle connection closes for a new one");
            None
        }
        _ => Some(now + LOOK_AGAIN),
    }
}

tokio::task_local! {
    /// The watch of the HTTP/1.1 connection whose task this is: the
    /// router's middleware finds it here, so the router is shared by every
    /// connection instead of layered for each (4 KiB and 40-odd
    /// allocations a connection). An HTTP/2 connection runs its requests in
    /// tasks of their own, so its router carries its watch instead.
    static CONNECTION: Arc<Watch>;
}

/// Serves one connection until it ends, the client is too slow or idle
/// for `limits`, or (after `stopping` changes) its requests in progress
/// are done. `router` has [`watch_request`] in front when `limits` time.
async fn serve_connection(
    builder: Builder<TokioExecutor>,
    stream: TcpStream,
    watch: Option<Arc<Watch>>,
    router: Router,
    limits: ConnLimits,
    stopping: watch::Receiver<()>,
) {
    let Some(watch) = watch else {
        return run_connection(builder, stream, router, None, limits, stopping).await;
    };
    let http2 = tokio::select! {
        http2 = starts_like_http2(&stream, &watch) => http2,
        why = watch.expired() => return log_expired(why, &limits),
    };
    if http2 {
        let router = router.layer(from_fn_with_state(Some(watch.clone()), watch_request));
        run_connection(builder, stream, router, Some(watch), limits, stopping).await;
    } else {
        let serve = run_connection(
            builder,
            stream,
            router,
            Some(watch.clone()),
            limits,
            stopping,
        );
        CONNECTION.scope(watch, serve).await;
    }
}

/// Serves one TLS connection: the handshake (ended by the handshake
/// timeout, the connection's watch — idle for the limits meanwhile, so it
/// may be closed to make room — or shutdown), then HTTP/2 if ALPN chose
/// it, else HTTP/1.1, as [`serve_connection`] does.
async fn serve_tls_connection(
    builder: Builder<TokioExecutor>,
    stream: TcpStream,
    watch: Option<Arc<Watch>>,
    router: Router,
    limits: ConnLimits,
    tls: Tls,
    mut stopping: watch::Receiver<()>,
) {
    let timeout = tls.handshake_timeout();
    let handshake = tokio::time::timeout(timeout, tls.acceptor().accept(stream).into_fallible());
    let expired = async {
        match &watch {
            Some(w) => w.expired().await,
            None => std::future::pending().await,
        }
    };
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err((e, stream))) => {
                // The client's doing (a wrong certificate, garbage, a
                // client that gave up): debug, as other client errors.
                tracing::debug!(error = %e, "TLS handshake failed");
                return linger(stream).await;
            }
            Err(_) => {
                tracing::debug!(
                    handshake_timeout_ms = timeout.as_millis(),
                    "connection closed: TLS handshake not finished in time"
                );
                return;
            }
        },
        why = expired => return log_expired(why, &limits),
        _ = stopping.changed() => return,
    };
    let (_, session) = stream.get_ref();
    let http2 = session.alpn_protocol() == Some(b"h2".as_slice());
    if let (Some(w), Some(cert)) = (&watch, session.peer_certificates().and_then(|c| c.first())) {
        let _ = w
            .certificate
            .set(ClientCertificate(Arc::new(cert.clone().into_owned())));
    }
    if http2 {
        let router = match &watch {
            Some(w) => router.layer(from_fn_with_state(Some(w.clone()), watch_request)),
            None => router,
        };
        run_connection(
            builder.http2_only(),
            stream,
            router,
            watch,
            limits,
            stopping,
        )
        .await;
    } else {
        let builder = builder.http1_only();
        match watch {
            Some(w) => {
                let serve =
                    run_connection(builder, stream, router, Some(w.clone()), limits, stopping);
                CONNECTION.scope(w, serve).await;
            }
            None => run_connection(builder, stream, router, None, limits, stopping).await,
        }
    }
}

async fn run_connection<S>(
    builder: Builder<TokioExecutor>,
    stream: S,
    router: Router,
    watch: Option<Arc<Watch>>,
    limits: ConnLimits,
    mut stopping: watch::Receiver<()>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(WatchedIo {
        io: stream,
        watch: watch.clone(),
    });
    let connection = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(router));
    tokio::pin!(connection);
    let expired = async {
        match &watch {
            Some(w) => w.expired().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);
    tokio::select! {
        result = connection.as_mut() => return log_end(result),
        why = expired.as_mut() => return log_expired(why, &limits),
        _ = stopping.changed() => {}
    }
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        result = connection => log_end(result),
        why = expired => log_expired(why, &limits),
    }
}

/// How long a connection whose handshake failed is read from, at most,
/// before it is closed ([`linger`]).
const LINGER: Duration = Duration::from_secs(1);

/// Closes a connection whose TLS handshake failed so that the alert
/// rustls wrote reaches the client: our side is shut down, and what the
/// client still sends (its request, sent before it read the alert) is
/// read and dropped until it closes too, for [`LINGER`] and 64 KiB at
/// most. Closed at once with unread bytes, the socket would send a reset,
/// and the client would see "connection reset" instead of "certificate
/// required" or "unknown CA".
async fn linger(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut left = 64 * 1024usize;
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Whether the client's first bytes are HTTP/2's preface (`PRI * HTTP/2.0`),
/// looked at without taking them (their arrival begins a request for
/// `watch`); what ends the connection (the peer closing, an error) is left
/// to hyper to find.
async fn starts_like_http2(stream: &TcpStream, watch: &Watch) -> bool {
    const PRI: &[u8] = b"PRI";
    let mut first = [0u8; 3];
    let mut pause = Duration::from_millis(1);
    loop {
        let peeked = stream.peek(&mut first).await;
        if let Ok(1..) = peeked {
            watch.bytes_read();
        }
        match peeked {
            Ok(0) | Err(_) => return false,
            Ok(n) if first[..n] != PRI[..n] => return false,
            Ok(n) if n == PRI.len() => return true,
            // "P" or "PR" so far: a peek returns at once while bytes wait
            // unread, so look again a little later.
            Ok(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// A connection that ended in an error (a client that went away, a
/// malformed request head) says so at debug level: it is the client's.
fn log_end(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended");
    }
}

/// A connection closed by its watch: the client's doing, at debug level
/// (a slow-drip attack would otherwise write a line per connection).
fn log_expired(why: Expired, limits: &ConnLimits) {
    match why {
        Expired::Idle => tracing::debug!(
            idle_timeout_ms = limits.idle_timeout.map_or(0, |d| d.as_millis()),
            "idle connection closed"
        ),
        Expired::Request => tracing::debug!(
            request_read_timeout_ms = limits.request_read_timeout.map_or(0, |d| d.as_millis()),
            "connection closed: request not received in time"
        ),
        Expired::Evicted => {
            tracing::debug!("idle connection closed to make room for a new one");
        }
    }
}

/// What the accept loop does after a failed `accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Retry {
    /// Accept nothing for this long.
    wait: Duration,
    /// Log now, saying this many failures happened since the last line
    /// (this one included); `None`: not yet.
    log: Option<u64>,
}

/// Failed `accept`s in a row: each waits twice as long as the one before,
/// from [`ACCEPT_RETRY_FIRST`] up to [`ACCEPT_RETRY_MAX`], so a process out
/// of file descriptors neither spins nor stops accepting for long; one log
/// line per [`LOG_EVERY`] at most.
#[derive(Debug, Default)]
struct AcceptBackoff {
    /// Failures since the last accepted connection.
    in_a_row: u32,
    log: Throttle,
}

impl AcceptBackoff {
    fn failed(&mut self, now: Instant) -> Retry {
        self.in_a_row = self.in_a_row.saturating_add(1);
        let doublings = (self.in_a_row - 1).min(16);
        let wait = ACCEPT_RETRY_FIRST
            .saturating_mul(1 << doublings)
            .min(ACCEPT_RETRY_MAX);
        Retry {
            wait,
            log: self.log.tick(now),
        }
    }

    fn succeeded(&mut self) {
        self.in_a_row = 0;
    }
}

/// One log line per [`LOG_EVERY`] for a condition that repeats: the first
/// time at once, then the next time after the interval, with the count.
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    /// Times since the last line, not yet logged.
    unlogged: u64,
}

impl Throttle {
    /// The condition happened at `now`: `Some(times since the last line)`
    /// when a line is due.
    fn tick(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < LOG_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

/// Why a connection's watch closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    /// No request for `idle_timeout`.
    Idle,
    /// A request head or (HTTP/1.1) body not received within
    /// `request_read_timeout`.
    Request,
    /// Idle when the connection limit was reached and a new connection
    /// was waiting.
    Evicted,
}

/// One connection's requests as its IO, its request middleware and its
/// task see them: what may time out, and since when.
#[derive(Debug)]
struct Watch {
    /// The client's address: handed to each request as
    /// `ConnectInfo<SocketAddr>` (per-address throttles read it).
    peer: Option<SocketAddr>,
    /// The client's certificate once a TLS handshake verified it: handed to
    /// each request as a [`ClientCertificate`].
    certificate: std::sync::OnceLock<ClientCertificate>,
    idle_timeout: Option<Duration>,
    request_read_timeout: Option<Duration>,
    state: Mutex<WatchState>,
    /// A deadline may have come closer: the task looks again.
    changed: Notify,
}

#[derive(Debug)]
struct WatchState {
    /// Requests whose response has not been written yet.
    in_flight: u32,
    /// Of those, requests whose body is still being read.
    bodies: u32,
    /// HTTP/2: requests are streams, and only bodies time out.
    h2: bool,
    /// When the connection was accepted or its last response written.
    idle_since: Instant,
    /// When the request being read began (its first byte, or its head
    /// when it was already buffered); `None` while idle.
    request_since: Option<Instant>,
    /// Asked to close while idle, to make room for a new connection.
    evicted: bool,
    /// Whether a request has been answered on this connection.
    served: bool,
}

impl Watch {
    fn new(limits: &ConnLimits, peer: Option<SocketAddr>) -> Watch {
        Watch {
            peer,
            certificate: std::sync::OnceLock::new(),
            idle_timeout: limits.idle_timeout,
            request_read_timeout: limits.request_read_timeout,
            state: Mutex::new(WatchState {
                in_flight: 0,
                bodies: 0,
                h2: false,
                idle_since: Instant::now(),
                request_since: None,
                evicted: false,
                served: false,
            }),
            changed: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the connection is to be closed as things stand, and why.
    fn deadline(&self) -> Option<(Instant, Expired)> {
        let s = self.state();
        let reading = |since: Instant| {
            self.request_read_timeout
                .map(|d| (since + d, Expired::Request))
        };
        if s.in_flight == 0 {
            match s.request_since {
                Some(since) => reading(since),
                None if s.evicted => Some((Instant::now(), Expired::Evicted)),
                None => self.idle_timeout.map(|d| (s.idle_since + d, Expired::Idle)),
            }
        } else if s.bodies > 0 && !s.h2 {
            s.request_since.and_then(reading)
        } else {
            // The handler has the whole request: its own deadlines apply.
            None
        }
    }

    /// Whether the connection has ever been answered, and since when it
    /// has been idle (no request in progress and none arriving); `None`
    /// while busy (or already closing). Ordered so that the connection to
    /// close first comes first: one that never sent a request (it loses
    /// nothing by closing), then the one idle the longest.
    fn idle_since(&self) -> Option<(bool, Instant)> {
        let s = self.state();
        (s.in_flight == 0 && s.request_since.is_none() && !s.evicted)
            .then_some((s.served, s.idle_since))
    }

    /// Closes the connection if it is still idle; `false` if a request
    /// began meanwhile.
    fn close_if_idle(&self) -> bool {
        let mut s = self.state();
        if s.in_flight != 0 || s.request_since.is_some() {
            return false;
        }
        s.evicted = true;
        drop(s);
        self.changed.notify_one();
        true
    }

    /// Completes when the connection has been idle, or has been reading a
    /// request, for too long.
    async fn expired(&self) -> Expired {
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        loop {
            match self.deadline() {
                Some((at, why)) if at <= Instant::now() => return why,
                Some((at, _)) => {
                    sleep.as_mut().reset(at);
                    tokio::select! {
                        () = sleep.as_mut() => {}
                        () = self.changed.notified() => {}
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }

    /// Bytes came from the client: the first ones after an idle spell
    /// begin a request (HTTP/1.1; an HTTP/2 connection also reads frames
    /// that are no request).
    fn bytes_read(&self) {
        let mut s = self.state();
        if s.in_flight == 0 && s.request_since.is_none() && !s.h2 {
            s.request_since = Some(Instant::now());
            drop(s);
            self.changed.notify_one();
        }
    }

    /// A request's head was read; its body is still to come if `body`.
    fn request_started(self: &Arc<Self>, h2: bool, body: bool) -> (InFlight, Option<BodyGuard>) {
        let mut s = self.state();
        s.in_flight += 1;
        s.h2 |= h2;
        let mut sooner = false;
        if !h2 && s.request_since.is_none() {
            // Read from the buffer without a new read from the socket.
            s.request_since = Some(Instant::now());
            sooner = true;
        }
        if body {
            s.bodies += 1;
        }
        drop(s);
        if sooner {
            self.changed.notify_one();
        }
        let guard = body.then(|| BodyGuard(self.clone()));
        (InFlight(self.clone()), guard)
    }
}

/// A request whose response is not written yet; dropped with the response
/// body (or the handler, if the connection ends first).
#[derive(Debug)]
struct InFlight(Arc<Watch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.0.state();
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.in_flight == 0 {
            s.idle_since = Instant::now();
            s.request_since = None;
            s.served = true;
            drop(s);
            self.0.changed.notify_one();
        }
    }
}

/// A request body still being read; dropped at its end, or with it.
#[derive(Debug)]
struct BodyGuard(Arc<Watch>);

impl Drop for BodyGuard {
    fn drop(&mut self) {
        let mut s = self.0.state();
        s.bodies = s.bodies.saturating_sub(1);
    }
}

/// The middleware in front of a watched connection's router: tells the
/// connection's watch (`conn`, else the one of the task's connection; none:
/// a request passed on untouched) when each request starts, when its body
/// has been read and when its response has been written.
async fn watch_request(
    State(conn): State<Option<Arc<Watch>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(watch) = conn.or_else(|| CONNECTION.try_with(Arc::clone).ok()) else {
        return next.run(request).await;
    };
    let mut request = request;
    if let Some(peer) = watch.peer {
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
    }
    if let Some(cert) = watch.certificate.get() {
        request.extensions_mut().insert(cert.clone());
    }
    let h2 = request.version() == Version::HTTP_2;
    let has_body = !http_body::Body::is_end_stream(request.body());
    let (in_flight, body) = watch.request_started(h2, has_body);
    let request = match body {
        Some(guard) => {
            // HTTP/2: the connection carries other calls, so a late body
            // fails alone instead of closing it.
            let deadline = match (h2, watch.request_read_timeout) {
                (true, Some(d)) => Some(Box::pin(sleep_until(Instant::now() + d))),
                _ => None,
            };
            request.map(|inner| {
                Body::new(WatchedBody {
                    inner,
                    guard: Some(guard),
                    deadline,
                })
            })
        }
        None => request,
    };
    let response = next.run(request).await;
    response.map(|inner| {
        Body::new(WrittenBody {
            inner,
            _in_flight: in_flight,
        })
    })
}

/// A request body that tells the watch when it has been read, and on
/// HTTP/2 fails when it is late.
struct WatchedBody {
    inner: Body,
    guard: Option<BodyGuard>,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl http_body::Body for WatchedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) if !this.inner.is_end_stream() => {}
            Poll::Ready(_) => this.guard = None,
            Poll::Pending => {
                if let Some(deadline) = &mut this.deadline
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    this.guard = None;
                    this.deadline = None;
                    return Poll::Ready(Some(Err(axum::Error::new(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request body not received within request_read_timeout",
                    )))));
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that tells the watch, when dropped, that its request
/// is done.
struct WrittenBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for WrittenBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's socket (or its TLS stream: the bytes counted are the
/// decrypted ones), telling its watch (if any) when bytes arrive.
#[derive(Debug)]
struct WatchedIo<S> {
    io: S,
    watch: Option<Arc<Watch>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for WatchedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(watch)) = (&polled, &this.watch)
            && buf.filled().len() > before
        {
            watch.bytes_read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WatchedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn failed_accepts_wait_from_100_ms_doubling_to_1_s_and_start_over_after_a_success() {
        let start = Instant::now();
        let mut backoff = AcceptBackoff::default();
        let waits: Vec<Duration> = (0..7).map(|_| backoff.failed(start).wait).collect();
        assert_eq!(
            waits,
            [
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1000),
                ms(1000),
                ms(1000)
            ]
        );
        for _ in 0..100 {
            assert_eq!(backoff.failed(start).wait, ACCEPT_RETRY_MAX);
        }
        backoff.succeeded();
        assert_eq!(backoff.failed(start).wait, ms(100));
    }

    #[test]
    fn failed_accepts_are_logged_once_per_interval_with_the_count() {
        let start = Instant::now();
        let mut backoff = AcceptBackoff::default();
        assert_eq!(backoff.failed(start).log, Some(1), "the first is logged");
        // A failure every 50 ms for a whole interval: no line.
        let mut at = start;
        for _ in 0..(LOG_EVERY.as_millis() / 50 - 1) {
            at += ms(50);
            assert_eq!(backoff.failed(at).log, None, "at {:?}", at - start);
        }
        // The interval over: one line for all of them.
        let logged = backoff.failed(start + LOG_EVERY).log;
        assert_eq!(
            logged,
            Some(u64::try_from(LOG_EVERY.as_millis() / 50).unwrap())
        );
        // A success does not reset the interval: a flapping error still
        // writes one line per interval.
        backoff.succeeded();
        assert_eq!(backoff.failed(start + LOG_EVERY + ms(10)).log, None);
        assert_eq!(backoff.failed(start + LOG_EVERY * 2).log, Some(2));
    }
}
