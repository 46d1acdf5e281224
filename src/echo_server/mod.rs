//! The bundled echo service: the remote REST API the operator calls, a separate process that
//! continues the operator's trace.

pub mod api;
pub mod error;
pub mod http_trace;
pub mod store;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

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

/// Serves until `shutdown` resolves, then lets the requests in flight finish for at most
/// `grace`: a client that never completes its request, or an idle keep-alive connection,
/// must not hold the process past the pod's termination grace period.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<Store>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (signalled_tx, signalled) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router(store)).with_graceful_shutdown(async move {
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
