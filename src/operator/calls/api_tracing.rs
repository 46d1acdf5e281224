//! Traces the operator's calls to the Kubernetes API server and propagates W3C trace context
//! to it, so an API server with tracing enabled adds its spans to the reconcile's trace.
//!
//! kube-client's own request span is a debug-level span with pre-1.0 attribute names, and
//! a layer added through `ClientBuilder::with_layer` runs outside it. This layer therefore
//! opens the CLIENT span itself and injects that span's context. It only does so inside an
//! operation (a reconcile): long-running list and watch calls stay out of the traces.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, FutureExt};
use http::{Request, Response};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::telemetry::http_span::{self, ClientRequest, Side};
use crate::telemetry::propagation;

/// The layer runs before kube-client prefixes the cluster URL, so it is told that URL to
/// report `url.full`, `server.address` and `server.port`.
#[derive(Clone, Debug)]
pub struct ApiTracingLayer {
    cluster_url: http::Uri,
}

impl ApiTracingLayer {
    pub fn new(cluster_url: http::Uri) -> Self {
        Self { cluster_url }
    }
}

impl<S> Layer<S> for ApiTracingLayer {
    type Service = ApiTracing<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiTracing {
            inner,
            cluster_url: self.cluster_url.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ApiTracing<S> {
    inner: S,
    cluster_url: http::Uri,
}

impl<S, B, R> Service<Request<B>> for ApiTracing<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display + 'static,
    R: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if tracing::Span::current().is_none() {
            return self.inner.call(request).boxed();
        }
        let path_and_query = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let base = self.cluster_url.to_string();
        let url_full = format!(
            "{}{}",
            base.trim_end_matches('/'),
            path_and_query.trim_end_matches('?')
        );
        let template = route_template(request.uri().path());
        let span = http_span::client_span(&ClientRequest {
            method: request.method(),
            url_full: &url_full,
            template: Some(&template),
            server_address: self.cluster_url.host().unwrap_or_default(),
            server_port: self
                .cluster_url
                .port_u16()
                .or(match self.cluster_url.scheme_str() {
                    Some("http") => Some(80),
                    _ => Some(443),
                }),
            resend_count: 0,
        });
        propagation::inject_into_headers(&span.context(), request.headers_mut());
        let future: BoxFuture<'static, _> = self.inner.call(request).boxed();
        let record_on = span.clone();
        async move {
            let result = future.await;
            match &result {
                Ok(response) => {
                    http_span::record_status(&record_on, Side::Client, response.status())
                }
                Err(err) => http_span::record_failure(&record_on, &err.to_string()),
            }
            result
        }
        .instrument(span)
        .boxed()
    }
}

/// A low-cardinality span name for an API path: namespace and object names become
/// placeholders, so `PATCH /apis/g/v1/namespaces/{namespace}/echoes/{name}/status` groups
/// every status write together.
pub fn route_template(path: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let prefix = match segments.first() {
        Some(&"api") => 2,  // api/v1
        Some(&"apis") => 3, // apis/group/version
        _ => return path.to_owned(),
    };
    let mut out: Vec<&str> = segments.iter().take(prefix).copied().collect();
    let mut rest = segments.iter().skip(prefix).copied();
    let mut resource = rest.next();
    if resource == Some("namespaces") {
        out.push("namespaces");
        match rest.next() {
            Some(_) => out.push("{namespace}"),
            None => return format!("/{}", out.join("/")),
        }
        resource = rest.next();
    }
    if let Some(resource) = resource {
        out.push(resource);
        if rest.next().is_some() {
            out.push("{name}");
            out.extend(rest); // subresource such as status
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::route_template;

    #[test]
    fn templates() {
        assert_eq!(
            route_template(
                "/apis/tracing.example.com/v1alpha1/namespaces/default/echoes/hello/status"
            ),
            "/apis/tracing.example.com/v1alpha1/namespaces/{namespace}/echoes/{name}/status"
        );
        assert_eq!(
            route_template("/apis/events.k8s.io/v1/namespaces/default/events"),
            "/apis/events.k8s.io/v1/namespaces/{namespace}/events"
        );
        assert_eq!(
            route_template("/api/v1/namespaces/kube-system"),
            "/api/v1/namespaces/{namespace}"
        );
        assert_eq!(route_template("/api/v1/nodes/n1"), "/api/v1/nodes/{name}");
        assert_eq!(route_template("/version"), "/version");
    }
}
