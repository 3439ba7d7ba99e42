//! The Matrix appservice listener on its own (no homeserver needed): what
//! it refuses before reading a body, and how it ends slow connections.
//!
//! The bridge starts against a homeserver address where nothing listens; it
//! keeps checking in the background while the listener already serves.

mod common;

use common::*;
use msngate::bridge::matrix::{self, registration};
use msngate::config::{AppserviceLimitsConfig, MatrixConfig};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

struct Listener {
    _server: TestServer,
    _bridge: matrix::MatrixBridge,
    _stop: watch::Sender<bool>,
    addr: SocketAddr,
    hs_token: String,
}

async fn start_listener(limits: AppserviceLimitsConfig) -> Listener {
    let server = start().await;
    let addr = free_port();
    let config = MatrixConfig {
        homeserver_url: format!("http://{}", free_port()),
        server_name: "localhost".into(),
        registration: server.dir.path().join("registration.yaml"),
        listen: addr,
        appservice_url: None,
        ghost_localpart_template: "_msn_{handle}".into(),
        bot_localpart: "_msn_bot".into(),
        appservice_limits: limits,
    };
    let reg = registration::write(&config).expect("registration");
    let (stop, rx) = watch::channel(false);
    let bridge = matrix::start(
        &config,
        server.running.hub.clone(),
        server.running.metrics.clone(),
        rx,
    )
    .await
    .expect("bridge starts");
    Listener {
        _server: server,
        _bridge: bridge,
        _stop: stop,
        addr,
        hs_token: reg.hs_token,
    }
}

/// Sends `head` (request line and headers) and no body, then reads the
/// status line of the reply.
async fn status_after_headers_only(addr: SocketAddr, head: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        while !reply.windows(2).any(|w| w == b"\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(TIMEOUT, read)
        .await
        .expect("a reply before the body was sent");
    let text = String::from_utf8_lossy(&reply);
    text.lines().next().unwrap_or("").to_string()
}

fn put_transaction(addr: SocketAddr, auth: &str, length: usize) -> String {
    format!(
        "PUT /_matrix/app/v1/transactions/1{auth} HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_refused_before_the_body_is_sent() {
    let l = start_listener(AppserviceLimitsConfig::default()).await;
    let big = 200 * 1024 * 1024;
    let wrong_header = put_transaction(l.addr, "", big)
        .replace("\r\n\r\n", "\r\nAuthorization: Bearer wrong\r\n\r\n");
    assert_eq!(
        status_after_headers_only(l.addr, &wrong_header).await,
        "HTTP/1.1 403 Forbidden"
    );
    let wrong_query = put_transaction(l.addr, "?access_token=wrong", big);
    assert_eq!(
        status_after_headers_only(l.addr, &wrong_query).await,
        "HTTP/1.1 403 Forbidden"
    );
    let missing = put_transaction(l.addr, "", big);
    assert_eq!(
        status_after_headers_only(l.addr, &missing).await,
        "HTTP/1.1 401 Unauthorized"
    );
    // A right token with a small body is served as before, both token forms.
    for auth in [format!("?access_token={}", l.hs_token), String::new()] {
        let body = r#"{"events":[]}"#;
        let mut head = put_transaction(l.addr, &auth, body.len());
        if auth.is_empty() {
            head = head.replace(
                "\r\n\r\n",
                &format!("\r\nAuthorization: Bearer {}\r\n\r\n", l.hs_token),
            );
        }
        assert_eq!(
            status_after_headers_only(l.addr, &format!("{head}{body}")).await,
            "HTTP/1.1 200 OK"
        );
    }
}

#[tokio::test]
async fn a_body_above_the_limit_is_refused_413_even_with_the_right_token() {
    let l = start_listener(AppserviceLimitsConfig {
        max_body_bytes: 64 * 1024,
        ..Default::default()
    })
    .await;
    let auth = format!("?access_token={}", l.hs_token);
    // Declared too large: refused from the headers alone.
    assert_eq!(
        status_after_headers_only(l.addr, &put_transaction(l.addr, &auth, 64 * 1024 + 1)).await,
        "HTTP/1.1 413 Payload Too Large"
    );
    // Chunked, with no length to check up front: refused once the limit is passed.
    let mut stream = TcpStream::connect(l.addr).await.expect("connect");
    let head = format!(
        "PUT /_matrix/app/v1/transactions/2{auth} HTTP/1.1\r\nHost: {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        l.addr
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, " ".repeat(16 * 1024));
    for _ in 0..8 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break; // the server may already have answered and closed
        }
    }
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut reply)).await;
    let text = String::from_utf8_lossy(&reply);
    assert_eq!(
        text.lines().next().unwrap_or(""),
        "HTTP/1.1 413 Payload Too Large"
    );
}

#[tokio::test]
async fn connections_that_trickle_headers_or_send_nothing_are_closed() {
    let l = start_listener(AppserviceLimitsConfig {
        header_timeout_secs: 1,
        ..Default::default()
    })
    .await;
    let mut partial = TcpStream::connect(l.addr).await.expect("connect");
    partial
        .write_all(b"PUT /_matrix/app/v1/transactions/3 HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut silent = TcpStream::connect(l.addr).await.expect("connect");
    for stream in [&mut partial, &mut silent] {
        let mut rest = Vec::new();
        // Closed by the server (EOF or reset) well before the harness timeout.
        let closed = tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "connection still open after {TIMEOUT:?}");
    }
}
