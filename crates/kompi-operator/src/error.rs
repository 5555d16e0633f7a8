//! Errors of the operator edge.

use kompi_kube::KubeError;

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("{0}")]
    Kube(#[from] KubeError),
    #[error("{context}: {source}")]
    Api {
        context: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("generating the job's ssh key: {0}")]
    Key(String),
    /// Waiting for something that will happen without us (a garbage collection).
    #[error("{0}")]
    Pending(String),
    #[error("{0}")]
    Stopped(String),
}

impl OperatorError {
    pub fn api(context: impl Into<String>, source: kube::Error) -> Self {
        OperatorError::Api { context: context.into(), source }
    }
}
