//! The bundled echo service: the remote REST API the operator calls, a separate process that
//! continues the operator's trace.

pub mod api;
pub mod error;
pub mod http_trace;
pub mod store;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, put};

use store::Store;

/// The whole service. Only the API routes are traced: health probes would bury the traces
/// people look for.
pub fn router(store: Arc<Store>) -> Router {
    let api = Router::new()
        .route(
            "/v1/echoes/{namespace}/{name}",
            put(api::put_echo)
                .get(api::get_echo)
                .delete(api::delete_echo),
        )
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(api::BODY_LIMIT))
        .layer(axum::middleware::from_fn(http_trace::server_span))
        .with_state(store);
    Router::new()
        .route("/healthz", get(api::healthz))
        .merge(api)
        .fallback(api::no_route)
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(Arc::default()))
        .with_graceful_shutdown(shutdown)
        .await
}
