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
        echo_operator::echo_server::EchoService::default(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_delete_round_trip() {
    // The binary, so that telemetry is on and the answer can name the caller's trace.
    let server = support::EchoServer::start();
    let addr = server.addr;
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = reqwest::Client::new()
        .put(format!("http://{addr}/v1/echoes/default/a"))
        .header(
            "traceparent",
            format!("00-{caller_trace}-00f067aa0ba902b7-01"),
        )
        .json(&json!({"message": "hi", "delayMs": 5}))
        .send()
        .await
        .expect("PUT");
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "hi");
    assert_eq!(body["reply"], "echo: hi");
    assert_eq!(body["delayMs"], 5);
    assert_eq!(
        body["traceId"], caller_trace,
        "the answer names the trace it continued: {body}"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_name_the_trace_of_a_request_as_an_exemplar() {
    let server = support::EchoServer::start();
    let caller_trace = "5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e";
    let response = reqwest::Client::new()
        .put(format!("{}/v1/echoes/default/m", server.url()))
        .header(
            "traceparent",
            format!("00-{caller_trace}-00f067aa0ba902b7-01"),
        )
        .json(&json!({"message": "m"}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(response.status(), StatusCode::OK);
    let metrics = reqwest::get(format!("{}/metrics", server.url()))
        .await
        .expect("GET /metrics");
    assert_eq!(
        metrics.headers()["content-type"],
        echo_operator::metrics::CONTENT_TYPE
    );
    let text = metrics.text().await.expect("body");
    let labels = "method=\"PUT\",route=\"/v1/echoes/{namespace}/{name}\",status=\"200\"}";
    let exemplar = format!("# {{trace_id=\"{caller_trace}\"}}");
    assert!(
        text.lines().any(|l| {
            l.starts_with("echo_server_request_duration_seconds_bucket{")
                && l.contains(labels)
                && l.contains(&exemplar)
        }),
        "a bucket with the caller's trace as exemplar:\n{text}"
    );
    assert!(
        !text.contains("route=\"/metrics\""),
        "scrapes are not measured"
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

    // Found by tests/fuzz.rs: the health route answered a wrong method with an empty 405.
    let (status, answer) = put(addr, "/healthz", "{}").await;
    assert_json_error(
        status,
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
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

    // Each carries the caller's trace id inside a traceparent that must be refused.
    let mut new_traces = std::collections::HashSet::new();
    for malformed in [
        format!("00-{caller_trace}-b7ad6b7169203331"),
        format!("ff-{caller_trace}-b7ad6b7169203331-01"),
        format!("00-{caller_trace}-0000000000000000-01"),
        format!("00-{}-b7ad6b7169203331-01", caller_trace.to_uppercase()),
        format!("00-{caller_trace}-b7ad6b7169203331-01-extra"),
    ] {
        let response = client
            .put(&url)
            .header("traceparent", malformed.as_str())
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
        assert!(
            trace_id.len() == 32
                && trace_id
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                && trace_id.bytes().any(|b| b != b'0'),
            "{trace_id:?} is not a valid trace id"
        );
        assert_ne!(trace_id, caller_trace, "{malformed} must not be continued");
        assert!(
            new_traces.insert(trace_id.to_owned()),
            "each request a new trace"
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

/// `tracestate` and `baggage` a caller controls: 64 KiB of them, or garbage, are neither an
/// error nor a reason to drop the caller's traceparent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_or_malformed_tracestate_and_baggage_still_continue_the_trace() {
    let server = support::EchoServer::start();
    let client = reqwest::Client::new();
    let url = format!("{}/v1/echoes/default/hostile", server.url());
    let huge_state = (0..4096)
        .map(|i| format!("v{i}=abcdefghijkl"))
        .collect::<Vec<_>>()
        .join(",");
    let huge_baggage = (0..4096)
        .map(|i| format!("k{i}=%E2%82%AC%E2%82%AC"))
        .collect::<Vec<_>>()
        .join(",");
    assert!(huge_state.len() > 64 * 1024 && huge_baggage.len() > 64 * 1024);
    let cases = [
        (huge_state.as_str(), "k=v"),
        ("k=v", huge_baggage.as_str()),
        ("%%%,=,,\"x\"=y,UPPER=1", "=;;,=,%zz,k=%FF%FE"),
        (",,,,", "k=v;;;;;;=,=="),
    ];
    for (i, (tracestate, baggage)) in cases.into_iter().enumerate() {
        let caller_trace = format!("{:032x}", 0xabc0_0000_u128 + i as u128);
        let response = client
            .put(&url)
            .header(
                "traceparent",
                format!("00-{caller_trace}-b7ad6b7169203331-01"),
            )
            .header("tracestate", tracestate)
            .header("baggage", baggage)
            .json(&json!({"message": "m"}))
            .send()
            .await
            .expect("PUT");
        assert_eq!(response.status(), StatusCode::OK, "case {i}");
        let answer: Value = response.json().await.expect("json");
        assert_eq!(answer["traceId"], caller_trace.as_str(), "case {i}");
    }
    let health = client
        .get(format!("{}/healthz", server.url()))
        .send()
        .await
        .expect("GET /healthz");
    assert_eq!(health.status(), StatusCode::OK);
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
    // The README promises a flush of at most 5 s; the process may wait 1 s more for the
    // exporter thread to give up.
    assert!(
        started.elapsed() < Duration::from_millis(6_500),
        "shutdown with a silent collector took {:?}, past the 5 s flush budget",
        started.elapsed()
    );
}

/// One client stuck halfway through its request headers and one idle keep-alive connection
/// must not hold the process past its shutdown grace period.
#[test]
fn sigterm_with_stalled_clients_exits_within_the_grace_period() {
    use std::io::{Read, Write};
    let server = support::EchoServer::start_with_env(&[("ECHO_SHUTDOWN_GRACE_SECONDS", "1")]);
    let mut half = std::net::TcpStream::connect(server.addr).expect("connect");
    half.write_all(b"PUT /v1/echoes/default/x HTTP/1.1\r\nHost: echo\r\n")
        .expect("half a request");
    let mut idle = std::net::TcpStream::connect(server.addr).expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: echo\r\n\r\n")
        .expect("request");
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).expect("an answer");
    assert_eq!(&answer, b"HTTP/1.1 200");

    let started = Instant::now();
    let status = server
        .terminate(Duration::from_secs(20))
        .expect("exited after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "exit took {:?} with a 1 s grace period",
        started.elapsed()
    );
    drop((half, idle));
}

#[test]
fn a_second_sigterm_exits_at_once() {
    use std::io::Write;
    let server = support::EchoServer::start_with_env(&[]);
    // A request that would keep a graceful shutdown waiting for 10 s.
    let mut slow = std::net::TcpStream::connect(server.addr).expect("connect");
    let body = json!({"message": "m", "delayMs": 10_000}).to_string();
    write!(
        slow,
        "PUT /v1/echoes/default/slow HTTP/1.1\r\nHost: echo\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("request");
    std::thread::sleep(Duration::from_millis(300));
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let status = server
        .terminate(Duration::from_secs(20))
        .expect("exited after the second SIGTERM");
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
    let server = support::EchoServer::start_with_env(&[("ECHO_MAX_ENTRIES", "1")]);
    let body = || json!({"message": "m"}).to_string();
    let (status, _) = put(server.addr, "/v1/echoes/default/a", body()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = put(server.addr, "/v1/echoes/default/b", body()).await;
    assert_json_error(
        status,
        &answer,
        StatusCode::INSUFFICIENT_STORAGE,
        "store_full",
    );
    let (status, _) = put(server.addr, "/v1/echoes/default/a", body()).await;
    assert_eq!(status, StatusCode::OK, "a known key is still written");
}

/// Spans leave over HTTPS to a collector whose certificate only the CA in
/// `OTEL_EXPORTER_OTLP_CERTIFICATE` vouches for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_https_with_the_configured_ca() {
    let pki = support::tls::TestPki::new();
    let https = pki.terminate_in_front_of(support::receiver().addr());
    let dir = std::env::temp_dir().join(format!("echo-otlp-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca = pki.write_ca(&dir);
    let endpoint = format!("https://localhost:{}", https.port());
    let trusting = support::EchoServer::start_with_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.to_str().expect("path")),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);
    let untrusting = support::EchoServer::start_with_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);
    let client = reqwest::Client::new();
    let traced = |server: &support::EchoServer, trace: &str| {
        client
            .put(format!("{}/v1/echoes/default/tls", server.url()))
            .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
            .json(&json!({"message": "m"}))
            .send()
    };
    let trusted_trace = "7e57ca7e57ca7e57ca7e57ca7e57ca01";
    let untrusted_trace = "7e57ca7e57ca7e57ca7e57ca7e57ca02";
    traced(&trusting, trusted_trace).await.expect("PUT");
    traced(&untrusting, untrusted_trace).await.expect("PUT");

    let spans = support::receiver()
        .wait_for_trace(trusted_trace, "the server span over HTTPS", |spans| {
            spans.iter().any(|s| s.kind == support::otlp::KIND_SERVER)
        })
        .await;
    assert_eq!(spans[0].resource["service.name"], "echo-server");
    // Both exporters run on the same 100 ms schedule: the other one had its chance.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(
        support::receiver()
            .spans_of_trace(untrusted_trace)
            .is_empty(),
        "a collector certificate from an unknown CA must be refused"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The SDK reads `OTEL_TRACES_SAMPLER` and `_ARG` itself: `always_off` records nothing even
/// for a sampled caller, `parentbased_traceidratio` with 0 follows a sampled parent but
/// starts no sampled root, and the default continues the caller's trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sampler_variables_reach_the_sdk() {
    let endpoint = support::receiver().endpoint();
    let with = |sampler: &[(&'static str, &'static str)]| {
        let mut env = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ];
        env.extend_from_slice(sampler);
        support::EchoServer::start_with_env(&env)
    };
    let off = with(&[("OTEL_TRACES_SAMPLER", "always_off")]);
    let ratio = with(&[
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0"),
    ]);
    let default = with(&[]);
    let client = reqwest::Client::new();
    let put = |server: &support::EchoServer, traceparent: Option<String>| {
        let mut request = client
            .put(format!("{}/v1/echoes/default/sampled", server.url()))
            .json(&json!({"message": "m"}));
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        async move {
            let answer: Value = request
                .send()
                .await
                .expect("PUT")
                .json()
                .await
                .expect("json");
            answer["traceId"].as_str().expect("trace id").to_owned()
        }
    };
    let sampled = |trace: &str| Some(format!("00-{trace}-b7ad6b7169203331-01"));
    let dropped_by_off = put(&off, sampled("5a3913ed5a3913ed5a3913ed5a391301")).await;
    let kept_by_parent = put(&ratio, sampled("5a3913ed5a3913ed5a3913ed5a391302")).await;
    let new_root = put(&ratio, None).await;
    let kept_by_default = put(&default, sampled("5a3913ed5a3913ed5a3913ed5a391303")).await;

    for kept in [&kept_by_parent, &kept_by_default] {
        support::receiver()
            .wait_for_trace(kept, "the server span", |spans| !spans.is_empty())
            .await;
    }
    // Every server exports on the same 100 ms schedule: the others had their chance.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for dropped in [&dropped_by_off, &new_root] {
        assert!(
            support::receiver().spans_of_trace(dropped).is_empty(),
            "trace {dropped} should not have been sampled"
        );
    }
}

#[test]
fn operator_refuses_settings_that_would_hot_loop() {
    for (variable, value, says) in [
        ("RESYNC_SECONDS", "0", "resync-seconds"),
        ("ERROR_BACKOFF_SECONDS", "0", "error-backoff-seconds"),
        ("RECONCILE_CONCURRENCY", "0", "concurrency"),
        ("MAX_ERROR_BACKOFF_SECONDS", "2", "must not be below"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_operator"))
            .env(variable, value)
            .env("HEALTH_LISTEN", "127.0.0.1:0")
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .output()
            .expect("run operator");
        assert_eq!(output.status.code(), Some(2), "{variable}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{variable}={value}: {stderr}");
    }
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
