//! HTTP/2 with prior knowledge ("h2c") to a plain-http endpoint, for
//! `bedrock.http2_prior_knowledge`.
//!
//! Over https the SDK's own client offers HTTP/2 by ALPN and Bedrock takes
//! it, so all calls to a region share a connection or two. Over plain http
//! nothing negotiates, the SDK speaks HTTP/1.1, and every call in flight
//! holds a connection of its own, with its buffers and dispatch channel
//! (about 40 KiB each). The emulator speaks h2c; this client lets calls to
//! it multiplex like calls to Bedrock do.
//!
//! Timeouts follow the SDK's connector settings: connect timeout on the TCP
//! connect, read timeout until the response head. Errors are classified as
//! the SDK's own client classifies them, so its retries behave the same.

use std::error::Error as StdError;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use aws_sdk_bedrockruntime::config::http::{HttpRequest, HttpResponse};
use aws_sdk_bedrockruntime::config::{HttpClient, RuntimeComponents};
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

type BoxError = Box<dyn StdError + Send + Sync>;

/// The connect and read timeouts a connector was built for.
type Timeouts = (Option<Duration>, Option<Duration>);

/// An [`HttpClient`] speaking HTTP/2 without TLS. One connector (and so one
/// connection pool) per distinct timeout settings; a client has one.
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
        let connector = SharedHttpConnector::new(H2cConnector::new(timeouts));
        connectors.push((timeouts, connector.clone()));
        connector
    }
}

#[derive(Debug)]
struct H2cConnector {
    client: Client<TcpConnector, SdkBody>,
    read_timeout: Option<Duration>,
}

impl H2cConnector {
    fn new((connect_timeout, read_timeout): Timeouts) -> Self {
        let mut tcp = TcpConnector::new();
        tcp.set_connect_timeout(connect_timeout);
        tcp.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_only(true)
            .build(tcp);
        H2cConnector {
            client,
            read_timeout,
        }
    }
}

impl HttpConnector for H2cConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        if request.uri().scheme_str() != Some("http") {
            let message = "bedrock.http2_prior_knowledge speaks HTTP/2 over plain http only; \
                           over https HTTP/2 is negotiated without it";
            return HttpConnectorFuture::ready(Err(ConnectorError::user(message.into())));
        }
        let response = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                Some(limit) => tokio::time::timeout(limit, response).await.map_err(|_| {
                    ConnectorError::timeout(format!("no response within {limit:?}").into())
                })?,
                None => response.await,
            };
            let response = response.map_err(classify)?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// The SDK's view of a failed exchange: I/O errors and refused or
/// abandoned streams are retried as transient, the rest are not.
fn classify(error: hyper_util::client::legacy::Error) -> ConnectorError {
    let transient = error.is_connect()
        || source::<std::io::Error>(&error).is_some()
        || source::<h2::Error>(&error).is_some_and(|e| {
            e.is_go_away() || e.reason() == Some(h2::Reason::REFUSED_STREAM)
        });
    let hyper_error = source::<hyper::Error>(&error);
    let timeout = hyper_error.is_some_and(hyper::Error::is_timeout);
    let closed = hyper_error.is_some_and(|e| e.is_closed() || e.is_canceled());
    let incomplete = hyper_error.is_some_and(hyper::Error::is_incomplete_message);
    let error: BoxError = error.into();
    if timeout {
        ConnectorError::timeout(error)
    } else if transient || closed {
        ConnectorError::io(error)
    } else if incomplete {
        ConnectorError::other(error, Some(ErrorKind::TransientError))
    } else {
        ConnectorError::other(error, None)
    }
}

/// The first error of type `E` in `error`'s chain, `error` included.
fn source<'a, E: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    std::iter::successors(Some(error), |&e| e.source()).find_map(|e| e.downcast_ref::<E>())
}
