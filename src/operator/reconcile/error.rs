//! Why a reconcile failed, and the reason a person reads in the `Ready` condition.

use reqwest::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("echo service at {url} is unreachable: {source}")]
    EchoUnreachable {
        url: String,
        #[source]
        source: reqwest_middleware::Error,
    },
    #[error("echo service answered {status} to {method} {url}: {body}")]
    EchoStatus {
        method: &'static str,
        url: String,
        status: StatusCode,
        body: String,
    },
    #[error("echo service answered {method} {url} with a body that is not an echo: {detail}")]
    EchoBadReply {
        method: &'static str,
        url: String,
        detail: String,
    },
    #[error("cannot {action}: {source}")]
    Kube {
        action: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("cannot build the finalizer patch: {0}")]
    FinalizerPatch(#[source] serde_json::Error),
    #[error("the object has no {0}")]
    IncompleteObject(&'static str),
    #[error("the reconcile did not finish within {0:?}")]
    Timeout(std::time::Duration),
    #[error("stopped before writing: {0}")]
    TermOver(#[from] crate::operator::process::leader::TermOver),
}

impl Error {
    /// CamelCase reason for the `Ready` condition and the Event.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::EchoUnreachable { .. } => "EchoUnreachable",
            Self::EchoStatus { status, .. } if status.is_client_error() => "EchoRejected",
            Self::EchoStatus { .. } => "EchoFailing",
            Self::EchoBadReply { .. } => "EchoBadReply",
            Self::Kube { .. } => "KubernetesApiError",
            Self::FinalizerPatch(_) => "InternalError",
            Self::IncompleteObject(_) => "InvalidObject",
            Self::Timeout(_) => "ReconcileTimeout",
            Self::TermOver(_) => "LeaseLost",
        }
    }

    pub(crate) fn kube(action: &'static str) -> impl FnOnce(kube::Error) -> Self {
        move |source| Self::Kube { action, source }
    }
}
