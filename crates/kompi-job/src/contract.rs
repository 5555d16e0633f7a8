//! The names, labels and paths of kompi's MPIJobs: mpi-operator's where users and tools rely on them,
//! kompi's own for what it adds.

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "kompi-operator";

/// mpi-operator's labels on the job's pods (Kueue, dashboards and `kubectl -l` select them).
pub const LABEL_OPERATOR_NAME: &str = "training.kubeflow.org/operator-name";
pub const LABEL_JOB_NAME: &str = "training.kubeflow.org/job-name";
pub const LABEL_JOB_ROLE: &str = "training.kubeflow.org/job-role";
pub const LABEL_REPLICA_INDEX: &str = "training.kubeflow.org/replica-index";
/// The value of [`LABEL_OPERATOR_NAME`] on kompi's pods (mpi-operator writes `mpi-operator`).
pub const OPERATOR_NAME: &str = "kompi-operator";
pub const ROLE_LAUNCHER: &str = "launcher";
pub const ROLE_WORKER: &str = "worker";
/// On every object the operator makes; its watches select on it.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "kompi-operator";

/// The job's ConfigMap, mounted in the launcher as mpi-operator mounts it.
pub const CONFIG_MOUNT_PATH: &str = "/etc/mpi";
pub const HOSTFILE_KEY: &str = "hostfile";
pub const DISCOVER_HOSTS_KEY: &str = "discover_hosts.sh";
pub const HOSTFILE_PATH: &str = "/etc/mpi/hostfile";

/// The ssh key Secret's keys (type kubernetes.io/ssh-auth, as mpi-operator makes it).
pub const SSH_PRIVATE_KEY: &str = "ssh-privatekey";
pub const SSH_PUBLIC_KEY: &str = "ssh-publickey";
/// Where kompi mounts the job's key (read-only); `kompi init` copies it into ~/.kompi, 0700/0600.
pub const KEY_DIR: &str = "/etc/kompi/ssh-key";

/// Per-job override of how long the launcher waits for every worker to answer on ssh.
pub const WORKERS_TIMEOUT_ANNOTATION: &str = "kompi.io/workers-timeout-seconds";

/// `K_MPI_JOB_ROLE`, set by mpi-operator in both roles' first container.
pub const JOB_ROLE_ENV: &str = "K_MPI_JOB_ROLE";

/// On the launcher pod: the job's `status.restartCount` when it was made, so that a failure of an
/// earlier run's launcher (still being deleted) is never counted against `backoffLimit` again.
pub const RESTART_ANNOTATION: &str = "kompi.io/restart-count";
