//! Serving HTTP with the bounds `axum::serve` leaves out. It gives hyper no timer, so
//! hyper's header read timeout never fires, and it accepts every connection; hundreds of
//! clients that open a connection and send half a request would each hold a task and a read
//! buffer for ever. Both servers (the echo service, the operator's health port) go through
//! [`serve`]: a cap on open connections, a small read buffer, a header read timeout, and the
//! shutdown grace of [`crate::shutdown`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// What one client may hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A request's headers must arrive within this, or the connection is closed.
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 256,
        }
    }
}

/// Bytes hyper buffers per connection while it reads (its default is about 400 KB). Request
/// bodies are streamed past it, so this bounds headers: 256 connections hold 16 MiB at most.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Serves `router` until `shutdown` resolves, then lets the requests in flight finish for at
/// most `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) {
    let (shutdown, grace) = crate::shutdown::with_grace(shutdown, grace);
    let connections = GracefulShutdown::new();
    accept_until(&listener, &router, limits, &connections, shutdown).await;
    drop(listener);
    grace.bound("connections", connections.shutdown()).await;
}

/// Accepts and serves connections, at most `limits.max_connections` at once, until `stop`.
async fn accept_until(
    listener: &TcpListener,
    router: &Router,
    limits: Limits,
    connections: &GracefulShutdown,
    stop: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(READ_BUFFER_BYTES);
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            () = &mut stop => return,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return, // never closed
            },
        };
        let stream = tokio::select! {
            () = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = connections.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // An error here is the client's: a reset, a timeout, a malformed request.
            let _ = connection.await;
            drop(permit);
        });
    }
}
