use std::fmt;

use crate::tree::{Origin, YamlPath};

/// One thing wrong with the values: where it came from, where in the YAML, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub origin: Origin,
    pub path: YamlPath,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.origin, self.path, self.message)
    }
}

/// The values could not become a cluster spec. Displays one line per problem.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct SpecError(pub Vec<Problem>);

impl SpecError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}

/// What kind of failure an error is, for whoever must tell failures apart. Libraries say which kind
/// an error is; only the command line turns a kind into an exit status (its table in `exit.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Anything that failed at run time and is none of the kinds below.
    Failed,
    /// Bad input: values, flags, arguments, names. Nothing was changed.
    InvalidInput,
    /// The cluster, namespace or node named does not exist.
    NotFound,
    /// Not allowed: RBAC forbids it, or `kompi local` runs without root.
    Forbidden,
    /// The Kubernetes API server cannot be reached.
    Unreachable,
    /// A wait ran out of time.
    TimedOut,
    /// Server-side apply: another field manager owns the fields.
    Conflict,
    /// One-shot: the workers did not all answer in time, so the command never ran.
    WorkersNotReady,
    /// The program to run exists where it was to run but cannot be executed (not executable, a directory).
    CommandNotExecutable,
    /// The program to run does not exist where it was to run.
    CommandNotFound,
}

/// How a process turns a kind of failure into its exit status: the command line's table, handed to
/// the in-pod commands (`kompi init`, `kompi hostfile`) that must record or return a status themselves.
pub type ExitStatusOf = fn(ErrorKind) -> i32;

/// What a command's exit statuses mean, by kind of failure; the command line's table adds the numbers.
pub struct StatusMeanings<'a> {
    /// Status 0.
    pub success: &'a str,
    pub kinds: &'a [(ErrorKind, &'a str)],
    /// Any other status (a command's own), if there can be one.
    pub otherwise: Option<&'a str>,
}
