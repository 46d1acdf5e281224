//! A time bound on every request of the watch's client except the watch itself.
//!
//! The watch is a long poll that must not time out, so its client has no request timeout;
//! but the same client sends the watch's initial LIST (and its re-lists), and kube-client
//! sets no read timeout of its own. An API server (or a proxy) that stalls a LIST would keep
//! the leader un-synced for ever while it holds the Lease: bounded, the LIST fails and the
//! watcher retries with backoff, and a leader that cannot sync fails its liveness.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::FutureExt;
use http::Request;
use tower::{BoxError, Layer, Service};

/// Bounds every request that is not a watch (`watch=true` or `watch=1` in its query).
#[derive(Clone, Copy, Debug)]
pub struct BoundUnlessWatchLayer {
    timeout: Duration,
}

impl BoundUnlessWatchLayer {
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<S> Layer<S> for BoundUnlessWatchLayer {
    type Service = BoundUnlessWatch<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BoundUnlessWatch {
            inner,
            timeout: self.timeout,
        }
    }
}

#[derive(Clone)]
pub struct BoundUnlessWatch<S> {
    inner: S,
    timeout: Duration,
}

/// Whether `query` asks for a watch.
fn is_watch(query: Option<&str>) -> bool {
    query
        .unwrap_or_default()
        .split('&')
        .any(|pair| pair == "watch=true" || pair == "watch=1")
}

/// A request cut at its bound.
#[derive(Debug, thiserror::Error)]
#[error("the API server did not answer within {0:?}")]
pub struct Elapsed(pub Duration);

impl<S, B> Service<Request<B>> for BoundUnlessWatch<S>
where
    S: Service<Request<B>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let watch = is_watch(request.uri().query());
        let future = self.inner.call(request);
        if watch {
            return future.map(|result| result.map_err(Into::into)).boxed();
        }
        let timeout = self.timeout;
        async move {
            match tokio::time::timeout(timeout, future).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(Elapsed(timeout).into()),
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::is_watch;

    #[test]
    fn only_watches_go_unbounded() {
        assert!(is_watch(Some("watch=true&resourceVersion=5")));
        assert!(is_watch(Some("allowWatchBookmarks=true&watch=1")));
        assert!(!is_watch(Some("limit=500")));
        assert!(!is_watch(Some("allowWatchBookmarks=true")));
        assert!(!is_watch(None));
    }
}
