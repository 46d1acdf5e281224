//! TLS for every outgoing connection (the echo service, OTLP over HTTP and gRPC): rustls
//! with the ring provider, the one kube already links.

use std::path::Path;

/// Makes ring rustls's process-wide provider. reqwest is built without a provider of its
/// own, so this must run before the first TLS client is built; calling it again is harmless.
pub fn install_crypto_provider() {
    // An error only means a provider is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read the CA bundle {path}: {source}")]
pub struct CaBundleError {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

/// Reads a PEM bundle of extra certificate authorities to trust besides the system's.
pub fn read_ca_bundle(path: &Path) -> Result<Vec<u8>, CaBundleError> {
    std::fs::read(path).map_err(|source| CaBundleError {
        path: path.display().to_string(),
        source,
    })
}
