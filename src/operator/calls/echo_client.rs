//! The operator's client for the echo service: reqwest behind retry and tracing middleware.
//!
//! The retry middleware sits outside the tracing middleware, so every attempt is its own
//! CLIENT span inside the reconcile's trace, and each attempt carries its own `traceparent`.
//! Between the two, every write attempt asks the leader's fence first (see `fenced`).

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_retry::RetryTransientMiddleware;
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_tracing::TracingMiddleware;

use super::echo_span::{AttemptCounter, EchoSpanBackend, UrlTemplate};
use super::fenced;
use crate::crd::EchoSpec;
use crate::echo_api::{self, EchoReply, EchoRequest, MAX_REPLY_BYTES};
use crate::operator::process::leader::{Fence, TermOver};
use crate::operator::process::metrics::Metrics;
use crate::operator::reconcile::error::Error;

/// Bounded exponential backoff for transient failures (5xx, connection errors), and how
/// long one attempt may take.
#[derive(Clone, Debug)]
pub struct RetryConfig {
    pub max_retries: u32,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub attempt_timeout: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 3,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            // The echo service may be asked to wait up to 10 s before it answers.
            attempt_timeout: Duration::from_secs(15),
        }
    }
}

#[derive(Clone)]
pub struct EchoClient {
    http: ClientWithMiddleware,
    base: Url,
    /// `url.template` of the echo resource, including the base URL's path.
    template: UrlTemplate,
    metrics: Option<Arc<Metrics>>,
    user_agent: String,
}

const USER_AGENT: &str = concat!("echo-operator/", env!("CARGO_PKG_VERSION"));

impl EchoClient {
    /// `extra_ca` is a PEM bundle trusted for `https://` URLs besides the system's roots;
    /// `fence` refuses every write attempt once this replica's lease term is over.
    pub fn new(
        base: Url,
        retry: &RetryConfig,
        extra_ca: Option<&[u8]>,
        fence: Fence,
    ) -> Result<Self, reqwest::Error> {
        crate::tls::install_crypto_provider();
        let mut http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(retry.attempt_timeout)
            .user_agent(USER_AGENT);
        if let Some(pem) = extra_ca {
            for certificate in reqwest::Certificate::from_pem_bundle(pem)? {
                http = http.add_root_certificate(certificate);
            }
        }
        let http = http.build()?;
        let policy = ExponentialBackoff::builder()
            .retry_bounds(retry.min_backoff, retry.max_backoff)
            .build_with_max_retries(retry.max_retries);
        let http = ClientBuilder::new(http)
            .with(RetryTransientMiddleware::new_with_policy(policy))
            .with(fenced::fence_writes(fence))
            .with(TracingMiddleware::<EchoSpanBackend>::new())
            .build();
        // `Url::join` replaces the last segment unless the base ends in a slash.
        let base = if base.path().ends_with('/') {
            base
        } else {
            let mut base = base;
            base.set_path(&format!("{}/", base.path()));
            base
        };
        let template = UrlTemplate(format!(
            "{}{}",
            base.path().trim_end_matches('/'),
            echo_api::ROUTE
        ));
        Ok(Self {
            http,
            base,
            template,
            metrics: None,
            user_agent: USER_AGENT.to_owned(),
        })
    }

    /// Names the replica in every request's User-Agent (`echo-operator/0.1.0 (pod)`), so the
    /// echo service's spans and logs say which replica called.
    pub fn with_identity(mut self, identity: &str) -> Self {
        self.user_agent = format!("{USER_AGENT} ({identity})");
        self
    }

    /// Records every call's duration and outcome in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn url(&self, namespace: &str, name: &str) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(echo_api::path_segments(namespace, name));
        }
        url
    }

    /// Stores the spec in the echo service and returns its answer. Each call counts its
    /// attempts in `attempts`.
    pub async fn put(
        &self,
        namespace: &str,
        name: &str,
        spec: &EchoSpec,
        attempts: &AttemptCounter,
    ) -> Result<EchoReply, Error> {
        let url = self.url(namespace, name);
        let body = EchoRequest::from(spec);
        let request = self
            .http
            .put(url.clone())
            .with_extension(self.template.clone())
            .with_extension(attempts.clone())
            .json(&body);
        let response = self.send(request, &url, "PUT").await?;
        reply_of(response, "PUT", &url).await
    }

    /// The echo as the service holds it, or `None` when it holds none.
    pub async fn get(
        &self,
        namespace: &str,
        name: &str,
        attempts: &AttemptCounter,
    ) -> Result<Option<EchoReply>, Error> {
        let url = self.url(namespace, name);
        let request = self
            .http
            .get(url.clone())
            .with_extension(self.template.clone())
            .with_extension(attempts.clone());
        let response = self.send(request, &url, "GET").await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        reply_of(response, "GET", &url).await.map(Some)
    }

    /// Removes the echo; an echo that is already gone counts as removed.
    pub async fn delete(
        &self,
        namespace: &str,
        name: &str,
        attempts: &AttemptCounter,
    ) -> Result<(), Error> {
        let url = self.url(namespace, name);
        let request = self
            .http
            .delete(url.clone())
            .with_extension(self.template.clone())
            .with_extension(attempts.clone());
        let response = self.send(request, &url, "DELETE").await?;
        let status = response.status();
        if status.is_success() || status == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        let body = read_limited(response, "DELETE", &url).await?;
        Err(Error::EchoStatus {
            method: "DELETE",
            url: url.to_string(),
            status,
            body,
        })
    }
}

impl EchoClient {
    /// Sends a request through the middleware stack; failing to get any answer (after the
    /// retries) means the echo service is unreachable.
    async fn send(
        &self,
        request: reqwest_middleware::RequestBuilder,
        url: &Url,
        method: &'static str,
    ) -> Result<reqwest::Response, Error> {
        let started = std::time::Instant::now();
        let result = request
            .header(reqwest::header::USER_AGENT, &self.user_agent)
            .send()
            .await;
        if let Err(source) = &result
            && fenced::refused(source)
        {
            // Not a call to the echo service: nothing went out.
            return Err(TermOver.into());
        }
        if let Some(metrics) = &self.metrics {
            let status = match &result {
                Ok(response) => response.status().as_str().to_owned(),
                Err(_) => "error".to_owned(),
            };
            metrics.echo_call(method, status, started.elapsed(), &tracing::Span::current());
        }
        result.map_err(|source| Error::EchoUnreachable {
            url: url.to_string(),
            source,
        })
    }
}

/// The echo in a successful answer; any other answer is the service's error.
async fn reply_of(
    response: reqwest::Response,
    method: &'static str,
    url: &Url,
) -> Result<EchoReply, Error> {
    let status = response.status();
    let text = read_limited(response, method, url).await?;
    if !status.is_success() {
        return Err(Error::EchoStatus {
            method,
            url: url.to_string(),
            status,
            body: text,
        });
    }
    serde_json::from_str(&text).map_err(|err| Error::EchoBadReply {
        method,
        url: url.to_string(),
        detail: err.to_string(),
    })
}

/// The body as text, refusing answers over `MAX_REPLY_BYTES` instead of buffering them.
async fn read_limited(
    mut response: reqwest::Response,
    method: &'static str,
    url: &Url,
) -> Result<String, Error> {
    let bad_reply = |detail: String| Error::EchoBadReply {
        method,
        url: url.to_string(),
        detail,
    };
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_REPLY_BYTES {
                    return Err(bad_reply(format!(
                        "the answer is larger than {MAX_REPLY_BYTES} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(err) => return Err(bad_reply(format!("cannot read the answer: {err}"))),
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_base_path() {
        for base in [
            "http://echo:8080",
            "http://echo:8080/",
            "http://gw/prefix",
            "http://gw/prefix/",
        ] {
            let client = EchoClient::new(
                Url::parse(base).expect("url"),
                &RetryConfig::default(),
                None,
                Fence::always_open(),
            )
            .expect("client");
            let url = client.url("default", "hello");
            assert!(
                url.as_str().ends_with("/v1/echoes/default/hello"),
                "{base} -> {url}"
            );
            assert!(
                url.as_str().starts_with(base.trim_end_matches('/')),
                "{base} -> {url}"
            );
        }
    }
}
