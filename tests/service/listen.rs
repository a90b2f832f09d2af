//! The facade's HTTP server on a real socket (`http::serve` over
//! `listen::serve`): request heads are bounded by `max_header_bytes`
//! (431 beyond it, the connection's buffer stays that size), keep-alive
//! connections carry several calls, HTTP/2 by prior knowledge is answered
//! too, shutdown lets a call in progress finish, and the listener queues a
//! burst of new connections larger than tokio's default backlog.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use soapgate::config::Settings;
use soapgate::files::load_contracts;
use soapgate::http::AppState;
use tokio::sync::oneshot;

/// A facade for tests/data/http on a free port; dropping the sender stops it.
async fn start(
    settings: Settings,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/http");
    let contracts = load_contracts(&dir).unwrap_or_else(|e| panic!("fixture refused: {e:?}"));
    let backlog = settings.listen_backlog;
    let state = AppState::new(
        contracts,
        soapgate::mapping::MappingSet::default(),
        settings,
    );
    let listener = soapgate::listen::bind("127.0.0.1:0", backlog)
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        soapgate::http::serve(listener, state, async move {
            let _ = stopped.await;
        })
        .await
        .expect("serving");
    });
    (addr, stop, task)
}

/// Sends raw bytes, reads until the peer closes or `until` appears.
fn exchange(addr: SocketAddr, request: &[u8], until: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&seen).contains(until) {
                    break;
                }
            }
            Err(e) => panic!(
                "reading: {e}; got so far: {}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

fn get_with_header(value_len: usize) -> Vec<u8> {
    format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(value_len)
    )
    .into_bytes()
}

#[tokio::test]
async fn heads_beyond_max_header_bytes_get_431_and_smaller_ones_are_served() {
    let (addr, _stop, _task) = start(Settings::default()).await;
    let ok = tokio::task::spawn_blocking(move || exchange(addr, &get_with_header(6_000), "ok\n"))
        .await
        .unwrap();
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let refused =
        tokio::task::spawn_blocking(move || exchange(addr, &get_with_header(9_000), "\r\n\r\n"))
            .await
            .unwrap();
    assert!(refused.starts_with("HTTP/1.1 431"), "{refused}");
}

#[tokio::test]
async fn max_header_bytes_raises_the_limit_but_never_below_8_kib() {
    let (addr, _stop, _task) = start(Settings {
        max_header_bytes: 32 * 1024,
        ..Settings::default()
    })
    .await;
    let ok = tokio::task::spawn_blocking(move || exchange(addr, &get_with_header(20_000), "ok\n"))
        .await
        .unwrap();
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");

    let (addr, _stop, _task) = start(Settings {
        max_header_bytes: 100,
        ..Settings::default()
    })
    .await;
    let ok = tokio::task::spawn_blocking(move || exchange(addr, &get_with_header(6_000), "ok\n"))
        .await
        .unwrap();
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

#[tokio::test]
async fn one_keep_alive_connection_carries_several_requests() {
    let (addr, _stop, _task) = start(Settings::default()).await;
    let two = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let text = tokio::task::spawn_blocking(move || exchange(addr, two, "\u{0}"))
        .await
        .unwrap();
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
}

#[tokio::test]
async fn http2_by_prior_knowledge_is_answered() {
    let (addr, _stop, _task) = start(Settings::default()).await;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::get(format!("http://{addr}/healthz"))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        text.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(text, b"ok\n");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_the_server_ends() {
    let (addr, stop, task) = start(Settings::default()).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the server ends after shutdown")
        .unwrap();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still accepting"
    );
}

/// 300 clients connect at once to a listener that accepts none of them yet:
/// every connection completes in the kernel's queue. With tokio's default
/// backlog (128) the connections beyond it have their SYNs dropped and do
/// not complete while the queue stays full: the timeout only detects that.
#[tokio::test]
async fn a_burst_of_connections_larger_than_128_waits_in_the_backlog() {
    const CLIENTS: usize = 300;
    let listener = soapgate::listen::bind("127.0.0.1:0", soapgate::listen::DEFAULT_BACKLOG)
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let mut connects = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        connects.spawn(tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(addr),
        ));
    }
    let mut clients = Vec::new();
    while let Some(done) = connects.join_next().await {
        let stream = done
            .expect("connect task")
            .expect("a connection was not queued: the backlog overflowed")
            .expect("connect");
        clients.push(stream);
    }
    for _ in 0..CLIENTS {
        listener.accept().await.expect("accept a queued connection");
    }
    assert_eq!(clients.len(), CLIENTS);
}

#[tokio::test]
async fn bind_refuses_an_address_without_a_port() {
    let err = soapgate::listen::bind("127.0.0.1", 16)
        .await
        .expect_err("an address without a port cannot be bound");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
}
