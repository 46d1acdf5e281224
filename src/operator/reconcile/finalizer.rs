//! The finalizer that makes deletion wait for the echo service's cleanup.
//!
//! Not `kube::runtime::finalizer`: after adding the finalizer it returns and waits for the
//! write to wake the controller again, but our change filter (rightly) ignores the
//! operator's own metadata writes, and a create must stay one reconcile and one trace. So
//! the finalizer is added in the same reconcile that calls the echo service.

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use tracing::Instrument;

use super::error::Error;
use crate::crd::{Echo, FINALIZER};
use crate::operator::calls::written::Written;

pub fn has_finalizer(echo: &Echo) -> bool {
    echo.finalizers().iter().any(|f| f == FINALIZER)
}

/// Adds the finalizer unless it is there; true when it patched the object.
pub async fn ensure(api: &Api<Written<Echo>>, echo: &Echo) -> Result<bool, Error> {
    if has_finalizer(echo) {
        return Ok(false);
    }
    let finalizers = echo.finalizers();
    // The test operation makes the patch fail instead of overwriting a concurrent change.
    let patch = if finalizers.is_empty() {
        serde_json::json!([
            { "op": "test", "path": "/metadata/finalizers", "value": null },
            { "op": "add", "path": "/metadata/finalizers", "value": [FINALIZER] },
        ])
    } else {
        serde_json::json!([
            { "op": "test", "path": "/metadata/finalizers", "value": finalizers },
            { "op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER },
        ])
    };
    let span = tracing::info_span!("add finalizer");
    send(api, echo, patch, span, "add the finalizer").await?;
    Ok(true)
}

/// Removes the finalizer, which lets Kubernetes delete the object; true when it patched it.
pub async fn remove(api: &Api<Written<Echo>>, echo: &Echo) -> Result<bool, Error> {
    let Some(index) = echo.finalizers().iter().position(|f| f == FINALIZER) else {
        return Ok(false);
    };
    let path = format!("/metadata/finalizers/{index}");
    let patch = serde_json::json!([
        { "op": "test", "path": path, "value": FINALIZER },
        { "op": "remove", "path": path },
    ]);
    let span = tracing::info_span!("remove finalizer");
    send(api, echo, patch, span, "remove the finalizer").await?;
    Ok(true)
}

/// Sends a JSON patch of the finalizer list inside `span`; `action` completes the error
/// message ("cannot ...").
async fn send(
    api: &Api<Written<Echo>>,
    echo: &Echo,
    patch: serde_json::Value,
    span: tracing::Span,
    action: &'static str,
) -> Result<(), Error> {
    let patch: json_patch::Patch = serde_json::from_value(patch).map_err(Error::FinalizerPatch)?;
    api.patch(
        &echo.name_any(),
        &PatchParams::default(),
        &Patch::Json::<()>(patch),
    )
    .instrument(span)
    .await
    .map(|_| ())
    .map_err(Error::kube(action))
}
