//! Errors of the Kubernetes edge, each with the exit status it ends kompi with.

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Spec(#[from] kompi_spec::SpecError),
    #[error("cannot load the Kubernetes client configuration: {0} (set KUBECONFIG or pass --kubeconfig)")]
    Config(String),
    #[error("cannot reach the Kubernetes API server at {server}: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("namespace {0:?} does not exist (create it with `kubectl create namespace {0}`)")]
    NamespaceNotFound(String),
    #[error("no kompi cluster {name:?} in namespace {namespace:?} (`kompi list` shows the clusters there)")]
    ClusterNotFound { name: String, namespace: String },
    #[error("timed out after {seconds}s {what}")]
    Timeout { seconds: u64, what: String },
    #[error("conflict: {0}; another field manager owns these fields (re-run with --force-conflicts to take them over)")]
    Conflict(String),
    #[error("{program}: command not found in the image of {pod}")]
    CommandNotFound { program: String, pod: String },
    #[error("{0}")]
    Failed(String),
}

impl KubeError {
    /// Distinct statuses for what a script may want to tell apart.
    pub fn exit_code(&self) -> i32 {
        match self {
            KubeError::Invalid(_) | KubeError::Spec(_) | KubeError::Config(_) => 2,
            KubeError::NamespaceNotFound(_) | KubeError::ClusterNotFound { .. } => 3,
            KubeError::Forbidden(_) => 4,
            KubeError::Unreachable { .. } => 5,
            KubeError::Timeout { .. } => 6,
            KubeError::Conflict(_) => 7,
            KubeError::CommandNotFound { .. } => 127,
            KubeError::Failed(_) => 1,
        }
    }
}

/// Names what the API server said in terms of what the user can do about it.
pub fn classify(server: &str, context: &str, error: kube::Error) -> KubeError {
    match error {
        kube::Error::Api(status) => match status.code {
            403 => KubeError::Forbidden(status.message.clone()),
            404 if status.details.as_ref().is_some_and(|d| d.kind == "namespaces") => {
                KubeError::NamespaceNotFound(status.details.as_ref().map(|d| d.name.clone()).unwrap_or_default())
            }
            409 if status.reason == "Conflict" && context.starts_with("applying") => KubeError::Conflict(format!("{context}: {}", status.message)),
            _ => KubeError::Failed(format!("{context}: {} ({})", status.message, status.reason)),
        },
        kube::Error::HyperError(e) => KubeError::Unreachable { server: server.into(), reason: source_chain(&e) },
        kube::Error::Service(e) => KubeError::Unreachable { server: server.into(), reason: source_chain(e.as_ref()) },
        other => KubeError::Failed(format!("{context}: {}", source_chain(&other))),
    }
}

/// An error and its causes on one line: connection errors hide the useful part in a source.
fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = s.source();
    }
    parts.join(": ")
}
