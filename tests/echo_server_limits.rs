//! Hostile clients against the echo-server binary: connections that send half a request and
//! stall are capped and closed after the header read timeout, and real requests still get
//! through.

mod support;

use std::time::{Duration, Instant};

use support::{EchoServer, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CAP: usize = 20;
const STALLED: usize = 60;

/// Opens a connection and sends the start of a request that never ends.
async fn stall(server: &EchoServer) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"PUT /v1/echoes/default/stalled HTTP/1.1\r\nHost: echo\r\nX-Slow: ")
        .await
        .expect("half a request");
    stream
}

/// True once the server has closed `stream` (end of file or a reset).
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            // A 408 or 400 answer before the close is fine; keep reading to the end.
            Ok(_) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_are_capped_and_timed_out_and_real_requests_still_succeed() {
    let server = EchoServer::start_with_env(&[
        ("ECHO_HEADER_READ_TIMEOUT_SECONDS", "2"),
        ("ECHO_MAX_CONNECTIONS", &CAP.to_string()),
    ]);
    let idle_sockets = server.open_sockets();
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        stalled.push(stall(&server).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = server.open_sockets() - idle_sockets;
    assert!(
        held <= CAP,
        "{held} connections held open by {STALLED} stalled clients; the cap is {CAP}"
    );

    let started = Instant::now();
    let health = eventually("a real request gets through")
        .within(Duration::from_secs(20))
        .until(async || {
            let answer = reqwest::Client::new()
                .get(format!("{}/healthz", server.url()))
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            answer.ok().map(|response| response.status())
        })
        .await;
    assert_eq!(health, reqwest::StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "real requests waited {:?}",
        started.elapsed()
    );

    // Every stalled client is let go: capped ones wait their turn, then time out too.
    let deadline = Duration::from_secs(3 * (STALLED / CAP) as u64 + 10);
    for stream in &mut stalled {
        let closed = tokio::time::timeout(deadline, closed_by_server(stream)).await;
        assert!(
            closed.is_ok(),
            "a stalled connection still open after {deadline:?}"
        );
    }
}
