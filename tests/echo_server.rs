//! The echo service's HTTP contract, served over real TCP on loopback, and the
//! `echo-server` binary's behaviour around telemetry and shutdown.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

/// Serves the echo service in this process until the test ends.
async fn serve() -> SocketAddr {
    echo_operator::tls::install_crypto_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(echo_operator::echo_server::serve(
        listener,
        Default::default(),
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
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

fn assert_json_error(status: StatusCode, body: &Value, expected: StatusCode, kind: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"], kind, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn put_get_delete_round_trip() {
    let addr = serve().await;
    let (status, body) = put(
        addr,
        "/v1/echoes/default/a",
        json!({"message": "hi", "delayMs": 5}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "hi");
    assert_eq!(body["reply"], "echo: hi");
    assert_eq!(body["delayMs"], 5);
    assert!(
        body.get("traceId").is_some(),
        "the answer says which trace it saw: {body}"
    );

    let got = reqwest::get(format!("http://{addr}/v1/echoes/default/a"))
        .await
        .expect("GET");
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.json::<Value>().await.expect("json")["message"], "hi");

    let client = reqwest::Client::new();
    let deleted = client
        .delete(format!("http://{addr}/v1/echoes/default/a"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let again = client
        .delete(format!("http://{addr}/v1/echoes/default/a"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(
        again.status(),
        StatusCode::NO_CONTENT,
        "deleting an absent echo is not an error"
    );

    let missing = reqwest::get(format!("http://{addr}/v1/echoes/default/a"))
        .await
        .expect("GET");
    let status = missing.status();
    assert_json_error(
        status,
        &missing.json().await.expect("json"),
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn fail_first_answers_503_then_succeeds() {
    let addr = serve().await;
    let body = json!({"message": "flaky", "failFirst": 2}).to_string();
    for _ in 0..2 {
        let (status, answer) = put(addr, "/v1/echoes/default/f", body.clone()).await;
        assert_json_error(
            status,
            &answer,
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
    let (status, answer) = put(addr, "/v1/echoes/default/big", huge).await;
    assert_json_error(
        status,
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );
}

#[tokio::test]
async fn bad_paths_and_methods_get_json_errors() {
    let addr = serve().await;
    let (status, answer) = put(
        addr,
        "/v1/echoes/Not_Valid/x",
        json!({"message": "m"}).to_string(),
    )
    .await;
    assert_json_error(status, &answer, StatusCode::BAD_REQUEST, "invalid_path");

    let client = reqwest::Client::new();
    let post = client
        .post(format!("http://{addr}/v1/echoes/default/x"))
        .send()
        .await
        .expect("POST");
    let status = post.status();
    assert_json_error(
        status,
        &post.json().await.expect("json"),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );

    let nowhere = reqwest::get(format!("http://{addr}/v2/elsewhere"))
        .await
        .expect("GET");
    let status = nowhere.status();
    assert_json_error(
        status,
        &nowhere.json().await.expect("json"),
        StatusCode::NOT_FOUND,
        "no_route",
    );

    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .expect("GET");
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_is_continued_and_a_malformed_one_ignored() {
    let server = support::EchoServer::start();
    let client = reqwest::Client::new();
    let url = format!("{}/v1/echoes/default/traced", server.url());
    let caller_trace = "0af7651916cd43dd8448eb211c80319c";
    let answer: Value = client
        .put(&url)
        .header(
            "traceparent",
            format!("00-{caller_trace}-b7ad6b7169203331-01"),
        )
        .json(&json!({"message": "m"}))
        .send()
        .await
        .expect("PUT")
        .json()
        .await
        .expect("json");
    assert_eq!(
        answer["traceId"], caller_trace,
        "the server continued the caller's trace"
    );

    for malformed in [
        "garbage",
        "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
    ] {
        let response = client
            .put(&url)
            .header("traceparent", malformed)
            .json(&json!({"message": "m"}))
            .send()
            .await
            .expect("PUT");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "a malformed traceparent is not an error"
        );
        let answer: Value = response.json().await.expect("json");
        let trace_id = answer["traceId"].as_str().expect("a new trace");
        assert_eq!(trace_id.len(), 32);
        assert!(
            !malformed.contains(trace_id),
            "{malformed} must not be continued"
        );
    }

    // The server span and its internal child reached the collector under the caller's trace.
    let spans = support::receiver()
        .wait_for_trace(caller_trace, "the echo server spans", |spans| {
            spans.len() >= 2
        })
        .await;
    let server_span = spans
        .iter()
        .find(|s| s.kind == support::otlp::KIND_SERVER)
        .expect("SERVER span");
    assert_eq!(
        server_span.parent_span_id.as_deref(),
        Some("b7ad6b7169203331")
    );
    assert_eq!(server_span.resource["service.name"], "echo-server");
    assert!(spans.iter().any(|s| s.name == "store write"
        && s.parent_span_id.as_deref() == Some(server_span.span_id.as_str())));
}

#[test]
fn exits_cleanly_on_sigterm_without_an_endpoint() {
    let server = support::EchoServer::start_with_env(&[]);
    let status = server
        .terminate(Duration::from_secs(10))
        .expect("exited after SIGTERM");
    assert!(status.success(), "{status:?}");
}

/// A collector that accepts connections and never answers must neither slow requests down
/// nor keep the process from exiting.
#[test]
fn a_silent_collector_blocks_neither_requests_nor_shutdown() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", silent.local_addr().expect("addr"));
    let server = support::EchoServer::start_with_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        for i in 0..20 {
            let response = client
                .put(format!("{}/v1/echoes/default/s{i}", server.url()))
                .json(&json!({"message": "m"}))
                .send()
                .await
                .expect("answered despite the silent collector");
            assert_eq!(response.status(), StatusCode::OK);
        }
    });
    let started = Instant::now();
    let status = server
        .terminate(Duration::from_secs(15))
        .expect("exited after SIGTERM");
    assert!(status.success(), "{status:?}");
    eprintln!(
        "shutdown with a silent collector took {:?}",
        started.elapsed()
    );
}

#[test]
fn operator_without_cluster_config_fails_with_a_clear_message() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_operator"))
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("HOME", "/nonexistent")
        .env("HEALTH_LISTEN", "127.0.0.1:0")
        .output()
        .expect("run operator");
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("cannot load a Kubernetes client configuration"),
        "{stdout}"
    );
}
