//! Every attempt to write to the echo service asks the fence first.
//!
//! The retry middleware sleeps between attempts. A leader paused in that sleep past its
//! deadline (SIGSTOP, a frozen VM) would, once resumed, send the next attempt before its
//! controller is dropped. Placed between the retry and the tracing middleware, this check
//! refuses such an attempt before it has a span or a connection; reads go through.

use futures::future::BoxFuture;
use http::Extensions;
use reqwest::{Method, Request, Response};
use reqwest_middleware::Next;
use reqwest_retry::RetryError;

use crate::operator::process::leader::{Fence, TermOver};

/// The middleware: a write attempt past this replica's deadline fails with [`TermOver`],
/// which the retry middleware treats as fatal (a middleware error is never retried).
pub fn fence_writes(
    fence: Fence,
) -> impl for<'a> Fn(
    Request,
    &'a mut Extensions,
    Next<'a>,
) -> BoxFuture<'a, reqwest_middleware::Result<Response>>
+ Send
+ Sync
+ 'static {
    move |request, extensions, next| {
        let refused = if request.method() == Method::GET {
            None
        } else {
            fence.check().err()
        };
        Box::pin(async move {
            match refused {
                Some(over) => Err(reqwest_middleware::Error::middleware(over)),
                None => next.run(request, extensions).await,
            }
        })
    }
}

/// Whether the fence refused the request, rather than the network or the service.
pub fn refused(error: &reqwest_middleware::Error) -> bool {
    let reqwest_middleware::Error::Middleware(source) = error else {
        return false;
    };
    if source.is::<TermOver>() {
        return true;
    }
    // The retry middleware wraps the last attempt's error in its own.
    match source.downcast_ref::<RetryError>() {
        Some(RetryError::WithRetries { err, .. } | RetryError::Error(err)) => refused(err),
        None => false,
    }
}
