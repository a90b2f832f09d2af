//! Serving an axum [`Router`] on a TCP listener: HTTP/1.1 and, by prior
//! knowledge, HTTP/2 (h2c); TCP_NODELAY on every connection; on shutdown,
//! no new connections, and the requests in progress finish. [`bind`] makes
//! the listener with a backlog of our choosing.
//!
//! `axum::serve` does the same but keeps hyper's connection settings to
//! itself, and both servers here need one: the facade bounds each
//! connection's read buffer (memory per call in flight), the emulator lets
//! one HTTP/2 connection carry a facade's every call.

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket, lookup_host};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// hyper's floor for an HTTP/1.1 connection's read buffer, which bounds the
/// request head it can parse.
pub const MIN_HEAD_BYTES: usize = 8 * 1024;

/// Connections the kernel may hold completed for us before we accept them
/// (what nginx and most servers ask for; the kernel caps it at
/// `net.core.somaxconn`). tokio's own `bind` asks for 128: a burst of more
/// new connections than that overflows the queue, and each connection
/// dropped then waits a second for its SYN to be sent again.
pub const DEFAULT_BACKLOG: u32 = 1024;

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

/// Serves `router` until `shutdown` completes, then waits for the
/// connections to finish their requests in progress.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ConnSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let service = TowerToHyperService::new(router);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size(settings.max_head_bytes.max(MIN_HEAD_BYTES));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams);
    // Dropped at shutdown: every connection then finishes gracefully.
    let (stop, stopping) = watch::channel(());
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: connections
                    // that end free them, so wait a little and go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let builder = builder.clone();
        let service = service.clone();
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => return log_end(result),
                _ = stopping.changed() => {}
            }
            connection.as_mut().graceful_shutdown();
            log_end(connection.await);
        });
    }
    drop(listener);
    drop(stop);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// A connection that ended in an error (a client that went away, a
/// malformed request head) says so at debug level: it is the client's.
fn log_end(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended");
    }
}
