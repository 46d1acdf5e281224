//! Property tests, bounded in count so they run in every `cargo test`: whatever arrives,
//! the echo service answers with a status from its contract and a JSON body (never a panic
//! or a 5xx other than its documented ones), and the traceparent parser accepts exactly the
//! W3C shape: tested on mutations of valid values, where a random string almost never
//! lands.

use axum::body::Body;
use echo_operator::echo_server::{EchoService, router};
use echo_operator::telemetry::propagation::parse_traceparent;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;
use tower::ServiceExt;

/// Cases per property: enough to find shape bugs, few enough for a unit-test budget.
const CASES: u32 = 512;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true) // `delayMs` sleeps take no real time
        .build()
        .expect("runtime")
}

/// The methods HTTP defines, and invented ones (any token is a valid method).
fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::PUT),
        Just(Method::DELETE),
        Just(Method::POST),
        Just(Method::PATCH),
        Just(Method::HEAD),
        Just(Method::OPTIONS),
        "[A-Za-z!#$%&'*+.^_`|~0-9-]{1,16}"
            .prop_filter_map("a token", |m| Method::from_bytes(m.as_bytes()).ok()),
    ]
}

/// A valid traceparent, then one mutation of it (or none): the values a parser must get
/// right are near the valid shape, where random strings almost never land.
fn traceparent_near_valid() -> impl Strategy<Value = String> {
    let valid = (any::<u128>(), any::<u64>(), any::<u8>(), 0u8..4).prop_map(
        |(trace, span, flags, version)| {
            format!("{version:02x}-{trace:032x}-{span:016x}-{flags:02x}")
        },
    );
    let mutation = prop_oneof![
        Just(Mutation::None),
        (any::<usize>(), any::<char>()).prop_map(|(at, c)| Mutation::Replace(at, c)),
        (any::<usize>(), any::<char>()).prop_map(|(at, c)| Mutation::Insert(at, c)),
        any::<usize>().prop_map(Mutation::Remove),
        Just(Mutation::Uppercase),
        ".{0,12}".prop_map(|tail| Mutation::Append(format!("-{tail}"))),
        Just(Mutation::ZeroTrace),
        Just(Mutation::ZeroSpan),
        Just(Mutation::VersionFf),
    ];
    (valid, mutation).prop_map(|(value, mutation)| mutation.apply(value))
}

#[derive(Clone, Debug)]
enum Mutation {
    None,
    Replace(usize, char),
    Insert(usize, char),
    Remove(usize),
    Uppercase,
    Append(String),
    ZeroTrace,
    ZeroSpan,
    VersionFf,
}

impl Mutation {
    fn apply(self, value: String) -> String {
        let mut chars: Vec<char> = value.chars().collect();
        match self {
            Self::None => return value,
            Self::Replace(at, c) => chars[at % value.len()] = c,
            Self::Insert(at, c) => chars.insert(at % (value.len() + 1), c),
            Self::Remove(at) => {
                chars.remove(at % value.len());
            }
            Self::Uppercase => return value.to_uppercase(),
            Self::Append(tail) => return value + &tail,
            Self::ZeroTrace => return format!("{}{}{}", &value[..3], "0".repeat(32), &value[35..]),
            Self::ZeroSpan => return format!("{}{}{}", &value[..36], "0".repeat(16), &value[52..]),
            Self::VersionFf => return format!("ff{}", &value[2..]),
        }
        chars.into_iter().collect()
    }
}

/// The W3C rules, written out on their own: `version-traceid-parentid-flags` in lowercase
/// hex; version `ff` is invalid; version `00` has exactly four parts, a later version may
/// carry more after a dash; all-zero ids are invalid. Surrounding whitespace is tolerated.
fn w3c_valid(value: &str) -> bool {
    let lower_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let parts: Vec<&str> = value.trim().split('-').collect();
    let [version, trace, span, flags, ..] = parts.as_slice() else {
        return false;
    };
    lower_hex(version, 2)
        && *version != "ff"
        && (*version != "00" || parts.len() == 4)
        && lower_hex(trace, 32)
        && lower_hex(span, 16)
        && lower_hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && span.bytes().any(|b| b != b'0')
}

/// Mostly paths near the API's shape, some of them anything at all.
fn path() -> impl Strategy<Value = String> {
    let segment = "[a-zA-Z0-9._%~-]{0,70}";
    prop_oneof![
        (segment, segment).prop_map(|(ns, name)| format!("/v1/echoes/{ns}/{name}")),
        "/[ -~]{0,80}".prop_map(|p| p.replace(' ', "%20")),
        Just("/healthz".to_owned()),
    ]
}

/// JSON bodies with fields of every type and size, and raw bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        Just(serde_json::Value::Null),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
        (0usize..2000).prop_map(|n| serde_json::Value::from("é".repeat(n))),
    ];
    prop_oneof![
        (value.clone(), value.clone(), value).prop_map(|(m, d, f)| {
            serde_json::to_vec(&serde_json::json!({"message": m, "delayMs": d, "failFirst": f}))
                .expect("json")
        }),
        proptest::collection::vec(any::<u8>(), 0..512),
    ]
}

fn allowed(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 204 | 400 | 404 | 405 | 413 | 503 | 507
    )
}

proptest! {
    // No regression files written into the source tree (CI runs on a clean checkout):
    // a failure prints its minimal input, which becomes a named test.
    #![proptest_config(ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_echo_service_answers_every_request_within_its_contract(
        requests in proptest::collection::vec((method(), path(), body(), ".{0,200}"), 1..6)
    ) {
        let app = router(EchoService::default());
        runtime().block_on(async move {
            for (method, path, body, traceparent) in requests {
                let head = method == Method::HEAD;
                let mut request = Request::builder()
                    .method(method)
                    .uri(path.as_str())
                    .header("content-type", "application/json");
                if let Ok(value) = http::HeaderValue::from_str(&traceparent) {
                    request = request.header("traceparent", value);
                }
                let Ok(request) = request.body(Body::from(body)) else {
                    continue; // not a valid HTTP request at all: nothing to send
                };
                let response = app.clone().oneshot(request).await.expect("infallible");
                let status = response.status();
                prop_assert!(allowed(status), "{path}: {status}");
                let bytes = response.into_body().collect().await.expect("body").to_bytes();
                // A HEAD answer has no body, by HTTP's rules; every other error is JSON.
                if (status.is_client_error() || status.is_server_error()) && !head {
                    let error: serde_json::Value = serde_json::from_slice(&bytes)
                        .map_err(|e| TestCaseError::fail(format!("{path}: not JSON: {e}")))?;
                    prop_assert!(error["error"].is_string() && error["message"].is_string());
                }
            }
            Ok(())
        })?;
    }

    #[test]
    fn traceparent_parsing_accepts_exactly_the_w3c_shape(value in traceparent_near_valid()) {
        let parsed = parse_traceparent(&value);
        prop_assert_eq!(parsed.is_some(), w3c_valid(&value), "{:?}", value);
        if let Some(context) = parsed {
            let parts: Vec<&str> = value.trim().split('-').collect();
            prop_assert_eq!(parts[1], context.trace_id().to_string());
            prop_assert_eq!(parts[2], context.span_id().to_string());
        }
    }

    #[test]
    fn random_text_is_never_a_traceparent_unless_valid(value in ".{0,80}") {
        prop_assert_eq!(parse_traceparent(&value).is_some(), w3c_valid(&value));
    }

    #[test]
    fn valid_traceparents_round_trip(trace in 1u128.., span in 1u64.., sampled: bool) {
        let value = format!("00-{trace:032x}-{span:016x}-{:02x}", u8::from(sampled));
        let context = parse_traceparent(&value).expect("valid");
        prop_assert_eq!(context.trace_id().to_string(), format!("{trace:032x}"));
        prop_assert_eq!(context.is_sampled(), sampled);
    }
}
