//! What stops the sidecar. Everything else (API errors, a failed scale-down) is logged and survived.

use std::io;
use std::path::PathBuf;

use kompi_spec::ErrorKind;
use kompi_spec::contract::SERVICE_ACCOUNT_DIR;

#[derive(Debug, thiserror::Error)]
pub enum HostfileError {
    #[error("cannot write {}: {source}; its directory must be writable by the sidecar (the emptyDir it shares with the master)", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "cannot configure the Kubernetes client: {0}; in the master pod it reads the ServiceAccount token mounted at \
         {SERVICE_ACCOUNT_DIR}, elsewhere set KUBECONFIG"
    )]
    Client(#[source] kube::Error),

    #[error("cannot listen for signals: {0}")]
    Signals(#[source] io::Error),

    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] io::Error),
}

impl HostfileError {
    /// Every error that stops the sidecar is a run-time failure.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Failed
    }
}
