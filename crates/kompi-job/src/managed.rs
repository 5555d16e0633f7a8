//! Which controller runs an MPIJob: `spec.runPolicy.managedBy`.
//!
//! mpi-operator (v0.6 and later) reconciles an MPIJob only when the field is absent or holds its own
//! name, and skips every other value without looking further (before it even validates the job). So a
//! job that says `managedBy: kompi.io/operator` is left alone by an installed mpi-operator and run by
//! kompi; Kueue's MultiKueue value belongs to Kueue, which copies the job to a worker cluster.

/// kompi's value: the job is kompi's even where mpi-operator is installed.
pub const KOMPI: &str = "kompi.io/operator";
/// mpi-operator's own value (the same as leaving the field out).
pub const MPI_OPERATOR: &str = "kubeflow.org/mpi-operator";
/// Kueue's MultiKueue: the job is dispatched to another cluster; no controller here runs it.
pub const MULTIKUEUE: &str = "kueue.x-k8s.io/multikueue";

/// Which MPIJobs this operator takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// No mpi-operator in the cluster: every MPIJob that is not another controller's.
    Every,
    /// mpi-operator runs beside kompi: only the jobs that name kompi.
    KompiOnly,
}

/// Whether the operator runs a job with this `managedBy`.
pub fn is_ours(managed_by: Option<&str>, claim: Claim) -> bool {
    match managed_by {
        Some(KOMPI) => true,
        None | Some(MPI_OPERATOR) => claim == Claim::Every,
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alone_kompi_takes_what_mpi_operator_would() {
        for value in [None, Some(MPI_OPERATOR), Some(KOMPI)] {
            assert!(is_ours(value, Claim::Every), "{value:?}");
        }
        assert!(!is_ours(Some(MULTIKUEUE), Claim::Every));
        assert!(!is_ours(Some("example.com/other"), Claim::Every));
    }

    #[test]
    fn beside_mpi_operator_kompi_takes_only_its_own() {
        assert!(is_ours(Some(KOMPI), Claim::KompiOnly));
        for value in [None, Some(MPI_OPERATOR), Some(MULTIKUEUE)] {
            assert!(!is_ours(value, Claim::KompiOnly), "{value:?}");
        }
    }
}
