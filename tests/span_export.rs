//! How the echo-server binary exports its spans: over HTTPS to a collector only a
//! configured CA vouches for, through the sampler the OTEL_TRACES_SAMPLER variables choose,
//! and without a collector that never answers holding anything up.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::otlp::KIND_SERVER;
use support::{ECHO, EchoServer, eventually, exported, receiver, traceparent};

/// PUTs an echo, in the caller's trace `parent` if any, and returns the trace id answered.
async fn put_in_trace(server: &EchoServer, parent: Option<&str>) -> String {
    let mut request = server.put("sampled", &json!({"message": "m"}));
    if let Some(parent) = parent {
        request = request.header("traceparent", traceparent(parent));
    }
    let answer: Value = request
        .send()
        .await
        .expect("PUT")
        .json()
        .await
        .expect("json");
    answer["traceId"].as_str().expect("trace id").to_owned()
}

/// Every server exports on the same 100 ms schedule: after 1.5 s, what has not arrived
/// never will.
async fn assert_never_exported(traces: &[&str], why: &str) {
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for trace in traces {
        assert!(
            receiver().spans_of_trace(trace).is_empty(),
            "trace {trace}: {why}"
        );
    }
}

/// Spans leave over HTTPS to a collector whose certificate only the CA in
/// `OTEL_EXPORTER_OTLP_CERTIFICATE` vouches for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_https_with_the_configured_ca() {
    let pki = support::tls::TestPki::new();
    let https = pki.terminate_in_front_of(receiver().addr());
    let dir = std::env::temp_dir().join(format!("echo-otlp-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca = pki.write_ca(&dir);
    let endpoint = format!("https://localhost:{}", https.port());
    let ca_variable = ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.to_str().expect("path"));
    let trusting = EchoServer::exporting_to(&endpoint, &[ca_variable]);
    let untrusting = EchoServer::exporting_to(&endpoint, &[]);
    let trusted_trace = "7e57ca7e57ca7e57ca7e57ca7e57ca01";
    let untrusted_trace = "7e57ca7e57ca7e57ca7e57ca7e57ca02";
    put_in_trace(&trusting, Some(trusted_trace)).await;
    put_in_trace(&untrusting, Some(untrusted_trace)).await;

    let trace = eventually("the server span over HTTPS")
        .until(async || exported(trusted_trace).when(|t| t.0.iter().any(|s| s.kind == KIND_SERVER)))
        .await;
    assert_eq!(trace.0[0].resource["service.name"], ECHO);
    assert_never_exported(
        &[untrusted_trace],
        "a collector certificate from an unknown CA must be refused",
    )
    .await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The SDK reads `OTEL_TRACES_SAMPLER` and `_ARG` itself: `always_off` records nothing even
/// for a sampled caller, `parentbased_traceidratio` with 0 follows a sampled parent but
/// starts no sampled root, and the default continues the caller's trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sampler_variables_reach_the_sdk() {
    let endpoint = receiver().endpoint();
    let off = EchoServer::exporting_to(&endpoint, &[("OTEL_TRACES_SAMPLER", "always_off")]);
    let ratio = EchoServer::exporting_to(
        &endpoint,
        &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ],
    );
    let default = EchoServer::exporting_to(&endpoint, &[]);
    let dropped_by_off = put_in_trace(&off, Some("5a3913ed5a3913ed5a3913ed5a391301")).await;
    let kept_by_parent = put_in_trace(&ratio, Some("5a3913ed5a3913ed5a3913ed5a391302")).await;
    let new_root = put_in_trace(&ratio, None).await;
    let kept_by_default = put_in_trace(&default, Some("5a3913ed5a3913ed5a3913ed5a391303")).await;

    for kept in [&kept_by_parent, &kept_by_default] {
        eventually(format!("the server span of trace {kept}"))
            .until(async || exported(kept).when(|t| !t.0.is_empty()))
            .await;
    }
    assert_never_exported(
        &[&dropped_by_off, &new_root],
        "should not have been sampled",
    )
    .await;
}

/// A collector that accepts connections and never answers must neither slow requests down
/// nor keep the process from exiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_collector_blocks_neither_requests_nor_shutdown() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", silent.local_addr().expect("addr"));
    let server = EchoServer::exporting_to(&endpoint, &[("OTEL_BSP_SCHEDULE_DELAY", "50")]);
    for i in 0..20 {
        let response = server
            .put(&format!("s{i}"), &json!({"message": "m"}))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("answered despite the silent collector");
        assert_eq!(response.status(), StatusCode::OK);
    }
    let started = Instant::now();
    let status = server.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
    // The README promises a flush of at most 5 s; the process may wait 1 s more for the
    // exporter thread to give up.
    assert!(
        started.elapsed() < Duration::from_millis(6_500),
        "shutdown with a silent collector took {:?}, past the 5 s flush budget",
        started.elapsed()
    );
}
