//! Names and paths that users, images and every part of kompi rely on (the compatibility contract in
//! ARCHITECTURE.md).

/// The hostfile kube-openmpi users pass to mpiexec.
pub const HOSTFILE: &str = "/kube-openmpi/generated/hostfile";
/// Its directory, an emptyDir shared by the master's containers.
pub const HOSTFILE_DIR: &str = "/kube-openmpi/generated";
/// Created by the hostfile sidecar once every initial worker is in the hostfile (it survives a restart of
/// the sidecar, which then knows the cluster came up once).
pub const HOSTFILE_COMPLETE_MARKER: &str = "/kube-openmpi/generated/.complete";
/// The master pod's readiness gate, a condition the sidecar sets: True once every initial worker has been
/// in the hostfile and every worker it lists answers on the ssh port from the master. The master is Ready
/// only with it, so `kubectl wait --for=condition=Ready pod/NAME-master` means the cluster is runnable.
pub const WORKERS_REACHABLE_CONDITION: &str = "kompi.io/workers-reachable";
/// Where the ssh key Secret is mounted (read-only, 0400), as in kube-openmpi.
pub const SSH_KEY_DIR: &str = "/ssh-key/openmpi";
/// The emptyDir through which the one-shot master tells the sidecar its exit status.
pub const HANDSHAKE_DIR: &str = "/kube-openmpi/handshake";
/// The file the master writes there (its command's exit status), kube-openmpi's "guillotine".
pub const HANDSHAKE_FILE: &str = "exit-status";
/// kompi inside the image.
pub const KOMPI_BIN: &str = "/usr/local/bin/kompi";
/// Where Kubernetes clients look for in-cluster credentials; only the sidecar has them.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
pub const DEFAULT_SSH_PORT: u16 = 2022;
/// The pod interface MPI traffic uses (Kubernetes pods and kompi's local nodes both call it eth0).
pub const POD_INTERFACE: &str = "eth0";

pub const MASTER_CONTAINER: &str = "mpi-master";
pub const WORKER_CONTAINER: &str = "mpi-worker";
pub const SIDECAR_CONTAINER: &str = "hostfile";

/// Volumes kompi adds to the pods; user volumes may not use the prefix.
pub const RESERVED_VOLUME_PREFIX: &str = "kompi-";
pub const SYNC_VOLUME_PREFIX: &str = "kompi-sync-";
/// The git-sync volume of a private repository's deploy key: `kompi-sync-<name>-secret`.
pub const SYNC_SECRET_SUFFIX: &str = "-secret";

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const APP_NAME: &str = "kompi";
pub const COMPONENT_MASTER: &str = "master";
pub const COMPONENT_WORKER: &str = "worker";

/// The label selector of every object of one cluster.
pub fn instance_selector(cluster: &str) -> String {
    format!("{LABEL_NAME}={APP_NAME},{LABEL_INSTANCE}={cluster}")
}

/// The label selector of one cluster's worker pods.
pub fn worker_selector(cluster: &str) -> String {
    format!("{},{LABEL_COMPONENT}={COMPONENT_WORKER}", instance_selector(cluster))
}

/// Where kompi is injected into pods whose image may lack it: an emptyDir that kompi's init container
/// fills and the MPI containers mount read-only.
pub const INJECT_DIR: &str = "/kompi";
/// kompi's binary there.
pub const INJECTED_KOMPI_BIN: &str = "/kompi/kompi";

/// Whether a container of `image` needs kompi injected from `kompi_image`: not when it is that very image,
/// which has kompi at [`KOMPI_BIN`] (an init container copying it would only cost the pod a container start).
pub fn needs_injection(image: &str, kompi_image: &str) -> bool {
    image != kompi_image
}
