//! The bundled echo service: the remote REST API the operator calls, a separate process that
//! continues the operator's trace.

pub mod api;
pub mod error;
pub mod http_trace;
pub mod metrics;
pub mod store;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, put};

use metrics::EchoMetrics;
use store::Store;

/// What the service keeps between requests.
#[derive(Clone, Default)]
pub struct EchoService {
    pub store: Arc<Store>,
    pub metrics: Arc<EchoMetrics>,
}

/// The whole service on one port: the API and the operations routes. Only the API routes
/// are traced and measured: health probes and scrapes would bury the traces people look for.
pub fn router(service: EchoService) -> Router {
    let ops = ops_router(&service.metrics);
    let api = Router::new()
        .route(
            "/v1/echoes/{namespace}/{name}",
            put(api::put_echo)
                .get(api::get_echo)
                .delete(api::delete_echo),
        )
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(api::BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            service.metrics.clone(),
            http_trace::server_span,
        ))
        .with_state(service.store);
    ops.merge(api).fallback(api::no_route)
}

/// `/healthz` and `/metrics`, for the kubelet and Prometheus. Also served alone on a port of
/// their own (`--metrics-listen`), so that a NetworkPolicy can open it to scrapers while the
/// API stays reachable only from the operator.
pub fn ops_router(metrics: &Arc<EchoMetrics>) -> Router {
    let registry = metrics.registry();
    Router::new()
        .route("/healthz", get(api::healthz))
        // Without it, a wrong method on /healthz or /metrics gets axum's empty 405.
        .method_not_allowed_fallback(api::method_not_allowed)
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move { crate::metrics::render(&registry) }
            }),
        )
        .fallback(api::no_route)
}

/// Serves until `shutdown` resolves, then lets the requests in flight finish for at most
/// `grace`: a client that never completes its request, or an idle keep-alive connection,
/// must not hold the process past the pod's termination grace period.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: EchoService,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (signalled_tx, signalled) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router(service)).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = signalled_tx.send(());
    });
    let deadline = async move {
        match signalled.await {
            Ok(()) => tokio::time::sleep(grace).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        result = server.into_future() => result,
        () = deadline => {
            tracing::warn!(
                grace_ms = grace.as_millis() as i64,
                "connections still open after the shutdown grace period; closing them"
            );
            Ok(())
        }
    }
}
