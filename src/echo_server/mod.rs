//! The bundled echo service: the remote REST API the operator calls, a separate process that
//! continues the operator's trace.

pub mod api;
pub mod error;
pub mod http_trace;
pub mod metrics;
pub mod store;

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
            crate::echo_api::ROUTE,
            put(api::put_echo)
                .get(api::get_echo)
                .delete(api::delete_echo),
        )
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(crate::echo_api::MAX_REQUEST_BYTES))
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
/// `grace` (an idle keep-alive connection or a stalled client must not hold the process).
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: EchoService,
    limits: crate::serve::Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) {
    crate::serve::serve(listener, router(service), limits, shutdown, grace).await;
}
