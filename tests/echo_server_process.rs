//! The echo-server binary as a process: how it ends on SIGTERM, with and without clients
//! that hold it up.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use support::EchoServer;

#[tokio::test]
async fn exits_cleanly_on_sigterm_without_an_endpoint() {
    let server = EchoServer::start_with_env(&[]);
    let status = server.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
}

/// One client stuck halfway through its request headers and one idle keep-alive connection
/// must not hold the process past its shutdown grace period.
#[tokio::test]
async fn sigterm_with_stalled_clients_exits_within_the_grace_period() {
    let server = EchoServer::start_with_env(&[("ECHO_SHUTDOWN_GRACE_SECONDS", "1")]);
    let mut half = TcpStream::connect(server.addr).expect("connect");
    half.write_all(b"PUT /v1/echoes/default/x HTTP/1.1\r\nHost: echo\r\n")
        .expect("half a request");
    let mut idle = TcpStream::connect(server.addr).expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: echo\r\n\r\n")
        .expect("request");
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).expect("an answer");
    assert_eq!(&answer, b"HTTP/1.1 200");

    let started = Instant::now();
    let status = server.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "exit took {:?} with a 1 s grace period",
        started.elapsed()
    );
    drop((half, idle));
}

#[tokio::test]
async fn a_second_sigterm_exits_at_once() {
    let server = EchoServer::start_with_env(&[]);
    // A request that would keep a graceful shutdown waiting for 10 s.
    let mut slow = TcpStream::connect(server.addr).expect("connect");
    let body = json!({"message": "m", "delayMs": 10_000}).to_string();
    write!(
        slow,
        "PUT /v1/echoes/default/slow HTTP/1.1\r\nHost: echo\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("request");
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let status = server.terminate(Duration::from_secs(20)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "exit took {:?} after the second signal",
        started.elapsed()
    );
    assert!(
        !status.success(),
        "an abandoned shutdown is not a clean exit: {status:?}"
    );
}
