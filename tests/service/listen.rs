//! The facade's HTTP server on a real socket (`http::serve` over
//! `listen::serve`): request heads are bounded by `max_header_bytes`
//! (431 beyond it, the connection's buffer stays that size), keep-alive
//! connections carry several calls, HTTP/2 by prior knowledge is answered
//! too, shutdown lets a call in progress finish, and the listener queues a
//! burst of new connections larger than tokio's default backlog. What a
//! connection may hold: idle ones are closed after `idle_timeout_ms` (before
//! their first request too), requests sent too slowly (head or body) after
//! `request_read_timeout_ms`, no more than `max_connections` are served at
//! once (a new one makes the longest idle connection close, or waits until
//! one ends while all are busy), and answers given without reading
//! the body say `Connection: close`. Those tests run on tokio's paused
//! clock: the timeouts are virtual seconds, and the assertions are on when
//! (in that clock) the server closed, never on how fast it ran.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use soapgate::config::Settings;
use soapgate::files::load_contracts;
use soapgate::http::AppState;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

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

/// Reads until the peer closes the connection (end of stream, or a reset
/// when it closed with bytes unread), at most `within`; what was read
/// until then (a response, say) is returned either way.
async fn closed_within(
    stream: &mut (impl AsyncRead + Unpin),
    within: Duration,
) -> Result<String, String> {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    return;
                }
                Err(e) => panic!("reading: {e}"),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&seen).into_owned();
    match read {
        Ok(()) => Ok(text),
        Err(_) => Err(format!("still open after {within:?}; read {text:?}")),
    }
}

/// Reads until `until` has arrived; panics if the connection ends first.
async fn read_until(stream: &mut TcpStream, until: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(until) {
        let n = stream.read(&mut buf).await.expect("reading");
        assert!(
            n > 0,
            "closed before {until:?}: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

/// Sends one keep-alive `GET /healthz` and reads its answer.
async fn healthz(stream: &mut TcpStream) {
    stream.write_all(HEALTHZ).await.unwrap();
    let answer = read_until(stream, "ok\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

fn elapsed_between(elapsed: Duration, low: u64, high: u64) -> bool {
    elapsed >= Duration::from_secs(low) && elapsed < Duration::from_secs(high)
}

/// A facade whose connections are closed after `idle_ms` idle and
/// `read_ms` reading a request.
async fn start_timed(
    idle_ms: u64,
    read_ms: u64,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    start(Settings {
        idle_timeout_ms: idle_ms,
        request_read_timeout_ms: read_ms,
        ..Settings::default()
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_never_sends_a_byte_is_closed_after_idle_timeout() {
    let (addr, _stop, _task) = start_timed(2_000, 60_000).await;
    // hyper waits for the first bytes (to tell HTTP/1.1 from HTTP/2) with
    // no timeout of its own.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let connected = Instant::now();
    closed_within(&mut silent, Duration::from_secs(300))
        .await
        .expect("a connection that sends nothing is closed");
    let after = connected.elapsed();
    assert!(elapsed_between(after, 2, 3), "closed after {after:?}");
}

#[tokio::test(start_paused = true)]
async fn a_kept_alive_connection_is_closed_after_idle_timeout_and_not_before() {
    let (addr, _stop, _task) = start_timed(40_000, 60_000).await;
    let mut kept = TcpStream::connect(addr).await.unwrap();
    healthz(&mut kept).await;
    // Idle for less than the timeout (longer than hyper's own 30 s head
    // timeout): still usable.
    tokio::time::sleep(Duration::from_secs(35)).await;
    healthz(&mut kept).await;
    let answered = Instant::now();
    closed_within(&mut kept, Duration::from_secs(300))
        .await
        .expect("an idle keep-alive connection is closed");
    let after = answered.elapsed();
    assert!(elapsed_between(after, 40, 41), "closed after {after:?}");
}

const SLOW_HEAD: &str = "POST /soap/Helpdesk HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n\
                         Content-Length: 120\r\n\r\n";

/// Writes `bytes` one a second from another task until the peer closes.
fn drip(
    mut write: tokio::net::tcp::OwnedWriteHalf,
    bytes: Vec<u8>,
) -> tokio::task::JoinHandle<tokio::net::tcp::OwnedWriteHalf> {
    tokio::spawn(async move {
        for b in bytes {
            if write.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        write
    })
}

#[tokio::test(start_paused = true)]
async fn a_request_head_sent_a_byte_a_second_is_cut_off_after_request_read_timeout() {
    let (addr, _stop, _task) = start_timed(60_000, 2_000).await;
    let (mut read, write) = TcpStream::connect(addr).await.unwrap().into_split();
    let started = Instant::now();
    let dripping = drip(write, SLOW_HEAD.as_bytes().to_vec());
    closed_within(&mut read, Duration::from_secs(20))
        .await
        .expect("a head dripping a byte a second is cut off");
    let after = started.elapsed();
    assert!(elapsed_between(after, 2, 3), "closed after {after:?}");
    drop(dripping.await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_request_body_sent_a_byte_a_second_is_cut_off_after_request_read_timeout() {
    let (addr, _stop, _task) = start_timed(60_000, 2_000).await;
    let (mut read, mut write) = TcpStream::connect(addr).await.unwrap().into_split();
    let started = Instant::now();
    write.write_all(SLOW_HEAD.as_bytes()).await.unwrap();
    let dripping = drip(write, vec![b' '; 120]);
    let seen = closed_within(&mut read, Duration::from_secs(300))
        .await
        .expect("a body dripping a byte a second is cut off");
    let after = started.elapsed();
    assert!(elapsed_between(after, 2, 3), "closed after {after:?}");
    assert!(
        seen.is_empty(),
        "no answer to a request never received: {seen}"
    );
    drop(dripping.await.unwrap());

    // A request sent in time is answered, and the deadline starts again
    // with the next one on the same connection, however long it was idle.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    healthz(&mut kept).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    healthz(&mut kept).await;
}

/// HTTP/2 carries other calls on the connection: a late body fails its
/// own stream (the handler answers), and the connection goes on.
#[tokio::test(start_paused = true)]
async fn an_http2_body_sent_too_slowly_fails_its_stream_and_the_connection_goes_on() {
    let (addr, _stop, _task) = start_timed(60_000, 2_000).await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::post(format!("http://{addr}/soap/Helpdesk"))
        .header("content-type", "text/xml")
        .body(())
        .unwrap();
    let started = Instant::now();
    // The body is never sent nor ended.
    let (response, _body) = client.send_request(request, false).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(300), response)
        .await
        .expect("the stream is answered once its body is late");
    let after = started.elapsed();
    assert!(
        elapsed_between(after, 2, 3),
        "answered after {after:?}: {response:?}"
    );

    let mut client = client.ready().await.expect("the connection goes on");
    let request = http::Request::get(format!("http://{addr}/healthz"))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn at_the_connection_limit_the_longest_idle_connection_makes_room() {
    let (addr, _stop, _task) = start(Settings {
        max_connections: 2,
        ..Settings::default()
    })
    .await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    healthz(&mut first).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut second = TcpStream::connect(addr).await.unwrap();
    healthz(&mut second).await;

    // Two idle kept-alive connections fill the limit: a third is served at
    // once, and the one idle the longest is closed to make room for it.
    let mut third = TcpStream::connect(addr).await.unwrap();
    third.write_all(HEALTHZ).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(1), read_until(&mut third, "ok\n"))
        .await
        .expect("the third connection is served without waiting for an idle one to time out");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    closed_within(&mut first, Duration::from_secs(1))
        .await
        .expect("the longest idle connection made room");
    healthz(&mut second).await;
}

/// A connection that never sent a request goes before a client's pooled
/// connection, however long that one has been idle: opening connections
/// and sending nothing cannot push other clients' connections out.
#[tokio::test(start_paused = true)]
async fn at_the_limit_a_connection_that_never_sent_a_request_goes_first() {
    let (addr, _stop, _task) = start(Settings {
        max_connections: 2,
        ..Settings::default()
    })
    .await;
    let mut pooled = TcpStream::connect(addr).await.unwrap();
    healthz(&mut pooled).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut third = TcpStream::connect(addr).await.unwrap();
    third.write_all(HEALTHZ).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(1), read_until(&mut third, "ok\n"))
        .await
        .expect("the third connection is served at once");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    closed_within(&mut silent, Duration::from_secs(1))
        .await
        .expect("the connection that never sent a request made room");
    healthz(&mut pooled).await;
}

/// A connection idle for less than a second is not closed for a new one:
/// it may be a pooled client's between two calls, or one whose request is
/// still unread. The new connection waits until one has been idle that
/// long.
#[tokio::test(start_paused = true)]
async fn a_connection_idle_for_less_than_a_second_is_not_closed_for_a_new_one() {
    let (addr, _stop, _task) = start(Settings {
        max_connections: 2,
        ..Settings::default()
    })
    .await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    healthz(&mut first).await;
    let mut second = TcpStream::connect(addr).await.unwrap();
    healthz(&mut second).await;
    let started = Instant::now();
    let mut third = TcpStream::connect(addr).await.unwrap();
    third.write_all(HEALTHZ).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), read_until(&mut third, "ok\n"))
        .await
        .expect("served once an idle connection has been idle a second");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(1500),
        "waited {waited:?}"
    );
    closed_within(&mut first, Duration::from_secs(1))
        .await
        .expect("the connection idle the longest made room");
    healthz(&mut second).await;
}

#[tokio::test(start_paused = true)]
async fn connections_beyond_max_connections_wait_while_every_connection_is_busy() {
    let (addr, _stop, _task) = start(Settings {
        max_connections: 2,
        ..Settings::default()
    })
    .await;
    // Both connections are sending a request: neither is idle.
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(SLOW_HEAD.as_bytes()).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    second.write_all(SLOW_HEAD.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The kernel completes the third connection (it waits in the backlog),
    // but nothing reads its request while two are busy.
    let mut third = TcpStream::connect(addr).await.unwrap();
    third.write_all(HEALTHZ).await.unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_secs(10), third.read(&mut byte)).await;
    assert!(
        early.is_err(),
        "the third connection was served while two were busy: {early:?}"
    );

    drop(first);
    let answer = tokio::time::timeout(Duration::from_secs(10), read_until(&mut third, "ok\n"))
        .await
        .expect("the third connection is served once one of the two closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(second);
}

/// Answers given before the body is read (or instead of reading it) say
/// `Connection: close`, and the connection is closed after them; an
/// ordinary answer keeps the connection.
#[tokio::test]
async fn early_answers_say_connection_close_and_close() {
    let (addr, _stop, _task) = start(Settings::default()).await;
    let envelope = "<x/>";
    let cases = [
        (
            "404 unknown service",
            format!(
                "POST /soap/NoSuchService HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n\
                 Content-Length: {}\r\n\r\n{envelope}",
                envelope.len()
            ),
            "HTTP/1.1 404",
        ),
        (
            "404 unknown path",
            format!(
                "POST /elsewhere HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n\
                 Content-Length: {}\r\n\r\n{envelope}",
                envelope.len()
            ),
            "HTTP/1.1 404",
        ),
        (
            "405",
            format!(
                "PUT /soap/Helpdesk HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n\
                 Content-Length: {}\r\n\r\n{envelope}",
                envelope.len()
            ),
            "HTTP/1.1 405",
        ),
        (
            "413 by Content-Length, body not sent",
            "POST /soap/Helpdesk HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n\
             Content-Length: 20000000\r\n\r\n"
                .to_string(),
            "HTTP/1.1 413",
        ),
        (
            "415",
            "POST /soap/Helpdesk HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\n\r\n{}"
                .to_string(),
            "HTTP/1.1 415",
        ),
    ];
    for (case, request, status) in cases {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let answer =
            tokio::time::timeout(Duration::from_secs(10), read_until(&mut stream, "\r\n\r\n"))
                .await
                .unwrap_or_else(|_| panic!("{case}: no answer"));
        assert!(answer.starts_with(status), "{case}: {answer}");
        let head = answer[..answer.find("\r\n\r\n").unwrap()].to_ascii_lowercase();
        assert!(
            head.lines().any(|l| l == "connection: close"),
            "{case}: no Connection: close in\n{head}"
        );
        closed_within(&mut stream, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
    }

    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(HEALTHZ).await.unwrap();
    let answer = read_until(&mut stream, "ok\n").await;
    assert!(
        !answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    healthz(&mut stream).await;
}

/// The timeouts are for receiving requests and waiting for them: a call
/// whose request arrived in time may take longer to answer, over HTTP/1.1
/// and HTTP/2 alike, and the idle time is counted from its answer.
#[tokio::test(start_paused = true)]
async fn a_call_answered_after_longer_than_the_timeouts_is_not_cut_off() {
    use axum::routing::post;
    let router = axum::Router::new().route(
        "/slow",
        post(|body: String| async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            format!("done {body}")
        }),
    );
    let listener = soapgate::listen::bind("127.0.0.1:0", 16).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = soapgate::listen::ConnLimits {
        max_connections: 4,
        idle_timeout: Some(Duration::from_secs(2)),
        request_read_timeout: Some(Duration::from_secs(2)),
    };
    let settings = soapgate::listen::ConnSettings {
        max_head_bytes: 8192,
        max_concurrent_streams: 16,
    };
    tokio::spawn(soapgate::listen::serve_with_limits(
        listener,
        router,
        settings,
        limits,
        std::future::pending(),
    ));

    let mut h1 = TcpStream::connect(addr).await.unwrap();
    let sent = Instant::now();
    h1.write_all(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nh1")
        .await
        .unwrap();
    let answer = read_until(&mut h1, "done h1").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(sent.elapsed() >= Duration::from_secs(10));
    let answered = Instant::now();
    closed_within(&mut h1, Duration::from_secs(60))
        .await
        .unwrap();
    let after = answered.elapsed();
    assert!(elapsed_between(after, 2, 3), "closed after {after:?}");

    let stream = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::post(format!("http://{addr}/slow"))
        .body(())
        .unwrap();
    let sent = Instant::now();
    let (response, mut body) = client.send_request(request, false).unwrap();
    body.send_data(bytes::Bytes::from_static(b"h2"), true)
        .unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let mut text = Vec::new();
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        text.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(text, b"done h2");
    assert!(sent.elapsed() >= Duration::from_secs(10));
    let answered = Instant::now();
    // The client keeps its handle: only the server ends the connection.
    let _client = client;
    tokio::time::timeout(Duration::from_secs(60), connection)
        .await
        .expect("the idle HTTP/2 connection is closed")
        .unwrap()
        .ok();
    let after = answered.elapsed();
    assert!(elapsed_between(after, 2, 3), "closed after {after:?}");
}

/// A client that hangs up before its body is complete is the client's
/// doing: the call is counted under its own outcome, `REQUEST_INCOMPLETE`,
/// never as an internal error of ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_mid_body_is_not_counted_as_an_internal_error() {
    let (addr, _stop, _task) = start(Settings::default()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(SLOW_HEAD.as_bytes()).await.unwrap();
    stream.write_all(b"<soap:Envelope").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    drop(stream);
    let counted = |metrics: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with("soapgate_requests_total{") && l.contains("Helpdesk"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // The handler records the call after the connection has gone: wait for
    // the line to appear.
    let mut lines = Vec::new();
    for _ in 0..200 {
        let metrics = exchange(
            addr,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "# EOF",
        );
        lines = counted(&metrics);
        if !lines.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("outcome=\"REQUEST_INCOMPLETE\""),
        "{lines:?}"
    );
}
