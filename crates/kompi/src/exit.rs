//! Exit statuses that tell the truth: the one table from kinds of failure to statuses, the help text
//! made from it, and the error that carries a kind to `main`.

use kompi_spec::{ErrorKind, StatusMeanings};

/// Every kind of failure, in the order the help lists them.
const KINDS: [ErrorKind; 10] = [
    ErrorKind::Failed,
    ErrorKind::InvalidInput,
    ErrorKind::NotFound,
    ErrorKind::Forbidden,
    ErrorKind::Unreachable,
    ErrorKind::TimedOut,
    ErrorKind::Conflict,
    ErrorKind::WorkersNotReady,
    ErrorKind::CommandNotExecutable,
    ErrorKind::CommandNotFound,
];

/// The table: a kind's exit status and what it means.
fn entry(kind: ErrorKind) -> (i32, &'static str) {
    match kind {
        ErrorKind::Failed => (1, "failure"),
        ErrorKind::InvalidInput => (2, "invalid input (values, flags, names: nothing was changed)"),
        ErrorKind::NotFound => (3, "cluster or namespace not found"),
        ErrorKind::Forbidden => (4, "forbidden (RBAC) or not root (local)"),
        ErrorKind::Unreachable => (5, "API server unreachable"),
        ErrorKind::TimedOut => (6, "timed out"),
        ErrorKind::Conflict => (7, "server-side apply conflict (--force-conflicts takes the fields over)"),
        // As GNU timeout(1) reports a command it stopped.
        ErrorKind::WorkersNotReady => (124, "one-shot: the workers did not all answer in time (the command never ran)"),
        // As a shell reports these two.
        ErrorKind::CommandNotExecutable => (126, "command cannot be executed"),
        ErrorKind::CommandNotFound => (127, "command not found"),
    }
}

/// The exit status of a kind of failure.
pub fn status(kind: ErrorKind) -> i32 {
    entry(kind).0
}

/// What a command's exit statuses mean, one a line, with the table's numbers.
pub fn help(meanings: &StatusMeanings) -> String {
    let mut out = format!("Exit status:\n  0    {}\n", meanings.success);
    for (kind, meaning) in meanings.kinds {
        out.push_str(&format!("  {:<4} {meaning}\n", status(*kind)));
    }
    if let Some(otherwise) = meanings.otherwise {
        out.push_str(&format!("  N    {otherwise}\n"));
    }
    out
}

/// What `kompi`'s own exit statuses mean: every kind, in the table's words.
pub fn general_help() -> String {
    let kinds: Vec<(ErrorKind, &str)> = KINDS.iter().map(|k| (*k, entry(*k).1)).collect();
    help(&StatusMeanings { success: "success", kinds: &kinds, otherwise: Some("`run`, `exec` and a one-shot `up --wait`: the command's own status") })
}

/// An error with the kind of failure it ends kompi with.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub kind: ErrorKind,
    pub message: String,
}

impl Exit {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Exit { kind, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Exit::new(ErrorKind::InvalidInput, message)
    }
}

/// The status an error ends kompi with: its kind's if it carries one; invalid values are bad input.
pub fn code_of(error: &anyhow::Error) -> i32 {
    if let Some(exit) = error.downcast_ref::<Exit>() {
        return status(exit.kind);
    }
    if let Some(spec) = error.downcast_ref::<kompi_spec::SpecError>() {
        return status(spec.kind());
    }
    status(ErrorKind::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_status_listed_once_in_order() {
        let statuses: Vec<i32> = KINDS.iter().map(|k| status(*k)).collect();
        assert!(statuses.windows(2).all(|w| w[0] < w[1]), "{statuses:?}");
        assert!(statuses.iter().all(|s| (1..=127).contains(s)));
        let help = general_help();
        assert_eq!(help.lines().count(), KINDS.len() + 3, "{help}");
        assert!(help.contains("\n  124  one-shot"), "{help}");
    }
}
