//! A stand-in echo service written in the test (an axum router), for answers the real
//! echo-server never gives, and an `EchoClient` of it.

use echo_operator::operator::calls::echo_client::{EchoClient, RetryConfig};
use echo_operator::operator::process::leader::Fence;

/// Serves `app` on a loopback port for the rest of the test and returns a client of it
/// (default retries, no extra CA) whose writes ask `fence`.
pub async fn client_of(app: axum::Router, fence: Fence) -> EchoClient {
    echo_operator::tls::install_crypto_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    EchoClient::new(
        format!("http://{addr}").parse().expect("url"),
        &RetryConfig::default(),
        None,
        fence,
    )
    .expect("client")
}
