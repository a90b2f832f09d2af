//! HTTP/2 with prior knowledge ("h2c") to a plain-http endpoint, for
//! `bedrock.http2_prior_knowledge`.
//!
//! Over https the SDK's own client offers HTTP/2 by ALPN (`h2`, then
//! `http/1.1`), so where the endpoint accepts it, calls to a region share a
//! connection. Over plain http nothing
//! negotiates, the SDK speaks HTTP/1.1, and every call in flight holds a
//! connection of its own, with its buffers and dispatch channel (about
//! 40 KiB each). The emulator speaks h2c; this client lets calls to it
//! multiplex as calls to Bedrock do.
//!
//! It sits on the h2 crate directly: a call is one stream on the shared
//! connection and the future awaiting it, with no task or pool checkout of
//! its own. One connection per client, made on first use and again after
//! it closes (the peer went away, GOAWAY, an idle timeout). Timeouts follow
//! the SDK's connector settings: connect timeout on the TCP connect, read
//! timeout until the response head. Errors are classified as the SDK's own
//! client classifies them, so its retries behave the same.

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use aws_sdk_bedrockruntime::config::http::{HttpRequest, HttpResponse};
use aws_sdk_bedrockruntime::config::{HttpClient, RuntimeComponents};
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use h2::client::SendRequest;
use http::uri::Authority;
use http::{HeaderMap, header};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::net::TcpStream;

/// Flow-control windows for responses: large enough that no answer waits
/// for a window update, as hyper's client defaults.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;

/// The connect and read timeouts a connector was built for.
type Timeouts = (Option<Duration>, Option<Duration>);

/// An [`HttpClient`] speaking HTTP/2 without TLS. One connector (and so one
/// connection) per distinct timeout settings; a client has one.
#[derive(Debug, Default)]
pub(super) struct H2cClient {
    connectors: Mutex<Vec<(Timeouts, SharedHttpConnector)>>,
}

impl HttpClient for H2cClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let timeouts = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, connector)) = connectors.iter().find(|(t, _)| *t == timeouts) {
            return connector.clone();
        }
        let connector = SharedHttpConnector::new(H2cConnector(Arc::new(Inner {
            connect_timeout: timeouts.0,
            read_timeout: timeouts.1,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        })));
        connectors.push((timeouts, connector.clone()));
        connector
    }
}

#[derive(Debug)]
struct H2cConnector(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    /// The connection calls share, once made.
    current: Mutex<Option<Connection>>,
    /// Held while connecting: calls arriving meanwhile wait for that
    /// connection instead of each making one.
    connecting: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Connection {
    authority: Authority,
    sender: SendRequest<Bytes>,
    /// Set when the connection's task ends; the next call reconnects.
    closed: Arc<AtomicBool>,
}

impl HttpConnector for H2cConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let inner = self.0.clone();
        HttpConnectorFuture::new(async move { inner.exchange(request).await })
    }
}

impl Inner {
    async fn exchange(
        &self,
        request: http::Request<SdkBody>,
    ) -> Result<HttpResponse, ConnectorError> {
        let (mut head, body) = request.into_parts();
        let authority = match (head.uri.scheme_str(), head.uri.authority()) {
            (Some("http"), Some(authority)) => authority.clone(),
            _ => {
                let message = "bedrock.http2_prior_knowledge speaks HTTP/2 over plain http \
                               only; over https HTTP/2 is offered without it";
                return Err(ConnectorError::user(message.into()));
            }
        };
        strip_connection_headers(&mut head.headers);
        let body = body
            .collect()
            .await
            .map_err(ConnectorError::user)?
            .to_bytes();

        let sender = self.sender(&authority).await?;
        let mut sender = sender.ready().await.map_err(classify)?;
        let end_of_stream = body.is_empty();
        let (response, mut stream) = sender
            .send_request(http::Request::from_parts(head, ()), end_of_stream)
            .map_err(classify)?;
        if !end_of_stream {
            stream.send_data(body, true).map_err(classify)?;
        }
        let response = match self.read_timeout {
            Some(limit) => tokio::time::timeout(limit, response).await.map_err(|_| {
                ConnectorError::timeout(format!("no response within {limit:?}").into())
            })?,
            None => response.await,
        }
        .map_err(classify)?;
        let response = response.map(|recv| {
            SdkBody::from_body_1_x(RecvBody {
                recv,
                data_done: false,
            })
        });
        HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
    }

    /// A handle on the open connection to `authority`, connecting first if
    /// there is none.
    async fn sender(&self, authority: &Authority) -> Result<SendRequest<Bytes>, ConnectorError> {
        if let Some(sender) = self.open(authority) {
            return Ok(sender);
        }
        let _connecting = self.connecting.lock().await;
        // Another call may have connected while this one waited.
        if let Some(sender) = self.open(authority) {
            return Ok(sender);
        }
        let connection = connect(authority, self.connect_timeout).await?;
        let sender = connection.sender.clone();
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(connection);
        Ok(sender)
    }

    fn open(&self, authority: &Authority) -> Option<SendRequest<Bytes>> {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current
            .as_ref()
            .filter(|c| c.authority == *authority && !c.closed.load(Ordering::Acquire))
            .map(|c| c.sender.clone())
    }
}

async fn connect(
    authority: &Authority,
    timeout: Option<Duration>,
) -> Result<Connection, ConnectorError> {
    // An IPv6 literal comes bracketed in a URL, not in a socket address.
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let connecting = TcpStream::connect((host, port));
    let stream = match timeout {
        Some(limit) => tokio::time::timeout(limit, connecting).await.map_err(|_| {
            ConnectorError::timeout(format!("no connection to {authority} within {limit:?}").into())
        })?,
        None => connecting.await,
    }
    .map_err(|e| ConnectorError::io(e.into()))?;
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set");
    }
    let (sender, connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .handshake::<_, Bytes>(stream)
        .await
        .map_err(classify)?;
    let closed = Arc::new(AtomicBool::new(false));
    let flag = closed.clone();
    let peer = authority.clone();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(%peer, error = %e, "h2c connection ended");
        }
        flag.store(true, Ordering::Release);
    });
    tracing::debug!(%authority, "h2c connection open");
    Ok(Connection {
        authority: authority.clone(),
        sender,
        closed,
    })
}

/// HTTP/2 forbids the connection-specific headers of HTTP/1.1.
fn strip_connection_headers(headers: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::HeaderName::from_static("keep-alive"),
        header::HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
    if headers.get(header::TE).is_some_and(|v| v != "trailers") {
        headers.remove(header::TE);
    }
}

/// The SDK's view of a failed exchange: I/O errors, GOAWAY and refused
/// streams are retried as transient; the rest are not.
fn classify(error: h2::Error) -> ConnectorError {
    let transient =
        error.is_io() || error.is_go_away() || error.reason() == Some(h2::Reason::REFUSED_STREAM);
    let error: Box<dyn StdError + Send + Sync> = error.into();
    if transient {
        ConnectorError::io(error)
    } else {
        ConnectorError::other(error, None)
    }
}

/// A response body read from its stream, giving the window back as the
/// SDK reads.
struct RecvBody {
    recv: h2::RecvStream,
    data_done: bool,
}

impl Body for RecvBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = self.get_mut();
        if !this.data_done {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Only fails once the stream is gone, which the next
                    // poll reports.
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => this.data_done = true,
            }
        }
        match ready!(this.recv.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }
}
