//! The echo-server binary's side of a trace: it continues a caller's valid traceparent,
//! ignores a malformed one, survives hostile tracestate and baggage, and names the trace of
//! a request in its metrics.

mod support;

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::metrics::{assert_exemplar, scrape};
use support::otlp::KIND_SERVER;
use support::{CALLER_SPAN, ECHO, EchoServer, eventually, exported, traceparent};

/// What a PUT answered, as JSON.
async fn json_answer(request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.expect("PUT");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_name_the_trace_of_a_request_as_an_exemplar() {
    let server = EchoServer::start();
    let caller_trace = "5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e";
    let put = server.put("m", &json!({"message": "m"}));
    json_answer(put.header("traceparent", traceparent(caller_trace))).await;
    let text = scrape(&format!("{}/metrics", server.url())).await;
    assert_exemplar(
        &text,
        "echo_server_request_duration_seconds_bucket{",
        "method=\"PUT\",route=\"/v1/echoes/{namespace}/{name}\",status=\"200\"}",
        caller_trace,
    );
    assert!(
        !text.contains("route=\"/metrics\""),
        "scrapes are not measured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_is_continued_and_a_malformed_one_ignored() {
    let server = EchoServer::start();
    let body = json!({"message": "m"});
    let caller_trace = "0af7651916cd43dd8448eb211c80319c";
    let put = server.put("traced", &body);
    let answer = json_answer(put.header("traceparent", traceparent(caller_trace))).await;
    assert_eq!(
        answer["traceId"], caller_trace,
        "the server continued the caller's trace"
    );

    // Each carries the caller's trace id inside a traceparent that must be refused.
    let mut new_traces = HashSet::new();
    for malformed in [
        format!("00-{caller_trace}-{CALLER_SPAN}"),
        format!("ff-{caller_trace}-{CALLER_SPAN}-01"),
        format!("00-{caller_trace}-0000000000000000-01"),
        traceparent(&caller_trace.to_uppercase()),
        format!("{}-extra", traceparent(caller_trace)),
    ] {
        // A malformed traceparent is not an error: `json_answer` asserts a 200.
        let put = server
            .put("traced", &body)
            .header("traceparent", &malformed);
        let answer = json_answer(put).await;
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
    let trace = eventually("the echo server spans")
        .until(async || exported(caller_trace).when(|t| t.0.len() >= 2))
        .await;
    let server_span = trace.0.iter().find(|s| s.kind == KIND_SERVER);
    let server_span = server_span.expect("SERVER span");
    assert_eq!(server_span.parent_span_id.as_deref(), Some(CALLER_SPAN));
    assert_eq!(server_span.resource["service.name"], ECHO);
    trace.assert_parent(trace.one(ECHO, "store write"), server_span);
}

/// `tracestate` and `baggage` a caller controls: 64 KiB of them, or garbage, are neither an
/// error nor a reason to drop the caller's traceparent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_or_malformed_tracestate_and_baggage_still_continue_the_trace() {
    let server = EchoServer::start();
    let huge = |entry: &dyn Fn(usize) -> String| (0..4096).map(entry).collect::<Vec<_>>().join(",");
    let huge_state = huge(&|i| format!("v{i}=abcdefghijkl"));
    let huge_baggage = huge(&|i| format!("k{i}=%E2%82%AC%E2%82%AC"));
    assert!(huge_state.len() > 64 * 1024 && huge_baggage.len() > 64 * 1024);
    let cases = [
        (huge_state.as_str(), "k=v"),
        ("k=v", huge_baggage.as_str()),
        ("%%%,=,,\"x\"=y,UPPER=1", "=;;,=,%zz,k=%FF%FE"),
        (",,,,", "k=v;;;;;;=,=="),
    ];
    for (i, (tracestate, baggage)) in cases.into_iter().enumerate() {
        let caller_trace = format!("{:032x}", 0xabc0_0000_u128 + i as u128);
        let response = server
            .put("hostile", &json!({"message": "m"}))
            .header("traceparent", traceparent(&caller_trace))
            .header("tracestate", tracestate)
            .header("baggage", baggage)
            .send()
            .await
            .expect("PUT");
        assert_eq!(response.status(), StatusCode::OK, "case {i}");
        let answer: Value = response.json().await.expect("json");
        assert_eq!(answer["traceId"], caller_trace.as_str(), "case {i}");
    }
    let health = reqwest::get(format!("{}/healthz", server.url()))
        .await
        .expect("GET /healthz");
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_methods_share_one_metric_series() {
    let server = EchoServer::start();
    let client = reqwest::Client::new();
    let url = format!("{}/v1/echoes/default/hostile", server.url());
    for i in 0..30 {
        let method = reqwest::Method::from_bytes(format!("INVENTED{i}").as_bytes())
            .expect("a token is a valid method");
        let response = client.request(method, &url).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let text = scrape(&format!("{}/metrics", server.url())).await;
    assert!(
        !text.contains("INVENTED"),
        "a client's invented methods must not become label values:\n{text}"
    );
    assert!(
        text.contains("method=\"_OTHER\""),
        "they are counted as _OTHER:\n{text}"
    );
}
