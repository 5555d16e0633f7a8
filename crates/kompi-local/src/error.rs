use std::path::PathBuf;

use kompi_spec::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("kompi local needs root: it creates network namespaces, a bridge and veth pairs (run it with sudo, or as root)")]
    NotRoot,
    #[error("no local cluster named {name:?} (state directory {} does not exist); `kompi local list` shows the clusters", dir.display())]
    NotFound { name: String, dir: PathBuf },
    #[error("local cluster {name:?} is already up; `kompi local down {name}` removes it first")]
    AlreadyUp { name: String },
    #[error("{0}")]
    InUse(String),
    #[error("{} is {reason}: kompi local acts as root on what it holds, so it must be a directory owned by root and writable only by root (`chown root`, `chmod go-w`, or choose another --state-dir)", path.display())]
    Unsafe { path: PathBuf, reason: String },
    #[error("refusing to remove {}: {reason}; it is not a kompi cluster's state, so remove it yourself if it is yours", dir.display())]
    NotOurs { dir: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{}", .0)]
    Spec(#[from] kompi_spec::SpecError),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("{} is damaged ({reason}); `kompi local down` still removes what it can find", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("`ip {command}` failed: {stderr}")]
    Network { command: String, stderr: String },
    #[error("node {node} did not come up: {reason}")]
    NodeFailed { node: String, reason: String },
    #[error("{program}: command not found on node {node}")]
    CommandNotFound { program: String, node: String },
    #[error("node {node} is not running (its kompi init exited); `kompi local down` then `up` recreates the cluster")]
    NodeDown { node: String },
}

impl LocalError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LocalError::Io { context: context.into(), source }
    }

    /// What a script may want to tell apart.
    pub fn kind(&self) -> ErrorKind {
        match self {
            LocalError::Invalid(_) | LocalError::Spec(_) | LocalError::Unsafe { .. } => ErrorKind::InvalidInput,
            LocalError::NotRoot => ErrorKind::Forbidden,
            LocalError::NotFound { .. } => ErrorKind::NotFound,
            LocalError::CommandNotFound { .. } => ErrorKind::CommandNotFound,
            _ => ErrorKind::Failed,
        }
    }
}
