//! Errors of the Kubernetes edge, each of a kind the command line can act on.

use kompi_spec::ErrorKind;

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
    /// What a script may want to tell apart.
    pub fn kind(&self) -> ErrorKind {
        match self {
            KubeError::Invalid(_) | KubeError::Spec(_) | KubeError::Config(_) => ErrorKind::InvalidInput,
            KubeError::NamespaceNotFound(_) | KubeError::ClusterNotFound { .. } => ErrorKind::NotFound,
            KubeError::Forbidden(_) => ErrorKind::Forbidden,
            KubeError::Unreachable { .. } => ErrorKind::Unreachable,
            KubeError::Timeout { .. } => ErrorKind::TimedOut,
            KubeError::Conflict(_) => ErrorKind::Conflict,
            KubeError::CommandNotFound { .. } => ErrorKind::CommandNotFound,
            KubeError::Failed(_) => ErrorKind::Failed,
        }
    }
}

/// The request that failed: what it was doing (for the message) and whether it was a server-side
/// apply, the one request whose 409 Conflict means another field manager owns the fields.
#[derive(Clone, Copy, Debug)]
pub enum ApiCall<'a> {
    Apply(&'a str),
    Other(&'a str),
}

/// Names what the API server said in terms of what the user can do about it.
pub fn classify(server: &str, call: ApiCall, error: kube::Error) -> KubeError {
    let (ApiCall::Apply(context) | ApiCall::Other(context)) = call;
    match error {
        kube::Error::Api(status) => match status.code {
            403 => KubeError::Forbidden(status.message.clone()),
            404 if status.details.as_ref().is_some_and(|d| d.kind == "namespaces") => {
                KubeError::NamespaceNotFound(status.details.as_ref().map(|d| d.name.clone()).unwrap_or_default())
            }
            409 if status.reason == "Conflict" && matches!(call, ApiCall::Apply(_)) => KubeError::Conflict(format!("{context}: {}", status.message)),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Box::new(serde_json::from_value(serde_json::json!({"code": code, "reason": reason, "message": "m"})).unwrap()))
    }

    #[test]
    fn a_conflict_is_a_field_manager_conflict_only_when_applying() {
        let applying = classify("https://s", ApiCall::Apply("applying Pod/x"), api(409, "Conflict"));
        assert_eq!(applying.kind(), ErrorKind::Conflict);
        assert!(applying.to_string().contains("--force-conflicts"), "{applying}");
        // What the request says of itself does not matter; only which request it was.
        let other = classify("https://s", ApiCall::Other("applying the scale"), api(409, "Conflict"));
        assert_eq!(other.kind(), ErrorKind::Failed);
        assert_eq!(classify("https://s", ApiCall::Other("x"), api(403, "Forbidden")).kind(), ErrorKind::Forbidden);
    }
}
