//! The echo service's HTTP contract, served over real TCP on loopback: the round trip, its
//! JSON errors, injected failures, delays and the store's bound.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{EchoServer, traceparent};

/// Serves the echo service in this process until the test ends.
async fn serve() -> SocketAddr {
    echo_operator::tls::install_crypto_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(echo_operator::echo_server::serve(
        listener,
        echo_operator::echo_server::EchoService::default(),
        echo_operator::serve::Limits::default(),
        std::future::pending(),
        Duration::from_secs(1),
    ));
    addr
}

async fn put(addr: SocketAddr, path: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .put(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("PUT");
    answer(response).await
}

/// Any request but a PUT, without a body.
async fn call(method: reqwest::Method, addr: SocketAddr, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(method, format!("http://{addr}{path}"))
        .send()
        .await
        .expect("request")
}

async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

fn assert_json_error((status, body): (StatusCode, Value), expected: StatusCode, kind: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"], kind, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_delete_round_trip() {
    // The binary, so that telemetry is on and the answer can name the caller's trace.
    let server = EchoServer::start();
    let addr = server.addr;
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = server
        .put("a", &json!({"message": "hi", "delayMs": 5}))
        .header("traceparent", traceparent(caller_trace))
        .send()
        .await
        .expect("PUT");
    let (status, body) = answer(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "hi");
    assert_eq!(body["reply"], "echo: hi");
    assert_eq!(body["delayMs"], 5);
    assert_eq!(
        body["traceId"], caller_trace,
        "the answer names the trace it continued: {body}"
    );

    let (status, got) =
        answer(call(reqwest::Method::GET, addr, "/v1/echoes/default/a").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["message"], "hi");

    let deleted = call(reqwest::Method::DELETE, addr, "/v1/echoes/default/a").await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let again = call(reqwest::Method::DELETE, addr, "/v1/echoes/default/a").await;
    assert_eq!(
        again.status(),
        StatusCode::NO_CONTENT,
        "deleting an absent echo is not an error"
    );

    let missing = call(reqwest::Method::GET, addr, "/v1/echoes/default/a").await;
    assert_json_error(answer(missing).await, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn fail_first_answers_503_then_succeeds() {
    let addr = serve().await;
    let body = json!({"message": "flaky", "failFirst": 2}).to_string();
    for _ in 0..2 {
        assert_json_error(
            put(addr, "/v1/echoes/default/f", body.clone()).await,
            StatusCode::SERVICE_UNAVAILABLE,
            "injected_failure",
        );
    }
    let (status, answer) = put(addr, "/v1/echoes/default/f", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["writes"], 3);
}

#[tokio::test]
async fn bad_bodies_get_400_with_a_json_error() {
    let addr = serve().await;
    let cases = [
        ("malformed JSON", "{\"message\": ".to_owned()),
        ("not an object", "[1, 2]".to_owned()),
        ("missing message", json!({"delayMs": 1}).to_string()),
        (
            "message of the wrong type",
            json!({"message": 7}).to_string(),
        ),
        ("empty message", json!({"message": ""}).to_string()),
        ("blank message", json!({"message": "   "}).to_string()),
        (
            "message too long",
            json!({"message": "x".repeat(1025)}).to_string(),
        ),
        (
            "delay too long",
            json!({"message": "m", "delayMs": 10_001}).to_string(),
        ),
        (
            "negative delay",
            json!({"message": "m", "delayMs": -1}).to_string(),
        ),
        (
            "failFirst too large",
            json!({"message": "m", "failFirst": 11}).to_string(),
        ),
    ];
    for (what, body) in cases {
        let (status, answer) = put(addr, "/v1/echoes/default/bad", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
        assert_eq!(answer["error"], "invalid_body", "{what}: {answer}");
    }
    let (status, _) = put(
        addr,
        "/v1/echoes/default/bad",
        json!({"message": "x".repeat(1024)}).to_string(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "1024 characters is the limit, not past it"
    );
}

#[tokio::test]
async fn oversized_body_gets_413_with_a_json_error() {
    let addr = serve().await;
    let huge = format!("{{\"message\": \"{}\"}}", "x".repeat(64 * 1024 + 1));
    assert_json_error(
        put(addr, "/v1/echoes/default/big", huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );
}

#[tokio::test]
async fn bad_paths_and_methods_get_json_errors() {
    let addr = serve().await;
    let valid = json!({"message": "m"}).to_string();
    assert_json_error(
        put(addr, "/v1/echoes/Not_Valid/x", valid).await,
        StatusCode::BAD_REQUEST,
        "invalid_path",
    );
    let post = call(reqwest::Method::POST, addr, "/v1/echoes/default/x").await;
    assert_json_error(
        answer(post).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    let nowhere = call(reqwest::Method::GET, addr, "/v2/elsewhere").await;
    assert_json_error(answer(nowhere).await, StatusCode::NOT_FOUND, "no_route");

    let health = call(reqwest::Method::GET, addr, "/healthz").await;
    assert_eq!(health.status(), StatusCode::OK);
    // Found by tests/fuzz.rs: the health route answered a wrong method with an empty 405.
    assert_json_error(
        put(addr, "/healthz", "{}").await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn a_rejected_attempt_does_not_wait_out_the_delay() {
    let addr = serve().await;
    let body = json!({"message": "m", "delayMs": 2_000, "failFirst": 1}).to_string();
    let started = Instant::now();
    let (status, answer) = put(addr, "/v1/echoes/default/d", body.clone()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the 503 took {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let (status, answer) = put(addr, "/v1/echoes/default/d", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "a stored write still waits delayMs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_answers_507_and_keeps_serving_known_keys() {
    let server = EchoServer::start_with_env(&[("ECHO_MAX_ENTRIES", "1")]);
    let body = || json!({"message": "m"}).to_string();
    let (status, _) = put(server.addr, "/v1/echoes/default/a", body()).await;
    assert_eq!(status, StatusCode::OK);
    assert_json_error(
        put(server.addr, "/v1/echoes/default/b", body()).await,
        StatusCode::INSUFFICIENT_STORAGE,
        "store_full",
    );
    let (status, _) = put(server.addr, "/v1/echoes/default/a", body()).await;
    assert_eq!(status, StatusCode::OK, "a known key is still written");
}
