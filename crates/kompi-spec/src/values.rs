//! The values file as Rust types: one struct per mapping, named and typed as kube-openmpi's chart (and
//! kompi's own keys) spell them. The builder reads these fields, so a misspelt key does not compile;
//! the schema, the validation and `kompi values --markdown` come from the same declarations.
//!
//! ```
//! fn workers(values: &kompi_spec::values::Values) -> u32 {
//!     values.mpi_workers.num.get()
//! }
//! ```
//!
//! A misspelt key is a compile error, in the values and in their paths alike:
//!
//! ```compile_fail,E0609
//! fn workers(values: &kompi_spec::values::Values) -> u32 {
//!     values.mpi_workers.nmu.get()
//! }
//! ```
//!
//! ```compile_fail,E0609
//! fn where_the_workers_are(at: &kompi_spec::values::ValuesPaths) -> &kompi_spec::tree::YamlPath {
//!     &at.mpi_workers.nmu
//! }
//! ```

mod leaf;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, LocalObjectReference, PodSecurityContext, SecurityContext, Toleration, Volume, VolumeMount};

pub use leaf::{AnyText, Ignored, Int, Line, Lines, NonEmpty, Reason, Resources, ScalarMap, Seconds, Text};

use crate::cluster::{MpiImplementation, PodManagementPolicy, PullPolicy, SecurityProfile};
use crate::limits::{MAX_SLOTS, MAX_WAIT_SECONDS, MAX_WORKERS};
use crate::schema::section;

/// A TCP port.
pub type Port = Int<u16, 1, 65535>;
/// Slots of a hostfile line.
pub type Slots = Int<u32, 1, { MAX_SLOTS as i64 }>;

/// Why the `kubectlImage` keys are ignored.
pub struct NoKubectl;
impl Reason for NoKubectl {
    const WHY: &'static str = "kompi's hostfile watcher is built into the kompi image, so no kubectl image is used";
}

/// Why `updateEvery` is ignored.
pub struct NoPolling;
impl Reason for NoPolling {
    const WHY: &'static str = "kompi's hostfile follows a watch on the API within a second; there is no polling period";
}

section! {
    /// Every values key kompi accepts. The defaults are `defaults.yaml`, so a key without a default is an `Option`.
    pub struct Values, paths ValuesPaths {
        image: ImageValues = "image",
        kompi_image: KompiImageValues = "kompiImage",
        kubectl_image: KubectlImageValues = "kubectlImage",
        git_sync_image: GitSyncImageValues = "gitSyncImage",
        network_policy: NetworkPolicyValues = "networkPolicy",
        ssh_gateway: SshGatewayValues = "sshGateway",
        ssh_key: Option<SshKeyValues> = "sshKey",
        mpi: MpiValues = "mpi",
        ssh: SshValues = "ssh",
        security: SecurityValues = "security",
        mpi_master: MasterValues = "mpiMaster",
        mpi_workers: WorkersValues = "mpiWorkers",
        /// git repositories fetched by git-sync init containers into both pods
        app_codes_to_sync: Option<Vec<AppCodeValues>> = "appCodesToSync",
    }
}

section! {
    pub struct ImageValues, paths ImagePaths {
        /// MPI image (master and workers): any image with sshd and an MPI (kompi is injected; see `kompiImage.inject`)
        repository: NonEmpty = "repository",
        /// its tag (empty: none)
        tag: AnyText = "tag",
        /// its imagePullPolicy
        pull_policy: PullPolicy = "pullPolicy",
        /// imagePullSecrets of both pods (`[{name: secret}]`)
        pull_secrets: Option<Vec<LocalObjectReference>> = "pullSecrets",
    }
}

section! {
    pub struct KompiImageValues, paths KompiImagePaths {
        /// kompi: kompi's runtime image, where kompi comes from (and the hostfile sidecar's image)
        repository: NonEmpty = "repository",
        /// kompi: its tag
        tag: AnyText = "tag",
        /// kompi: its imagePullPolicy
        pull_policy: PullPolicy = "pullPolicy",
        /// kompi: an init container copies kompi from this image into the MPI pods, which run it from there (false, or `image` is this image: `image` has kompi at /usr/local/bin/kompi)
        inject: bool = "inject",
    }
}

section! {
    pub struct KubectlImageValues, paths KubectlImagePaths {
        /// ignored (kompi watches the API itself)
        repository: Ignored<NoKubectl> = "repository",
        /// ignored
        tag: Ignored<NoKubectl> = "tag",
        /// ignored
        pull_policy: Ignored<NoKubectl> = "pullPolicy",
    }
}

section! {
    pub struct GitSyncImageValues, paths GitSyncImagePaths {
        /// git-sync image for `appCodesToSync`
        repository: NonEmpty = "repository",
        /// its tag
        tag: AnyText = "tag",
        /// its imagePullPolicy
        pull_policy: PullPolicy = "pullPolicy",
    }
}

section! {
    pub struct NetworkPolicyValues, paths NetworkPolicyPaths {
        /// render NetworkPolicies NAME-allow-internal and NAME-allow-from-external
        enabled: bool = "enabled",
    }
}

section! {
    pub struct SshGatewayValues, paths SshGatewayPaths {
        /// render NodePort Service NAME-ssh-gateway to the master's sshd
        enabled: bool = "enabled",
        /// its nodePort
        node_port: Port = "nodePort",
    }
}

section! {
    pub struct SshKeyValues, paths SshKeyPaths {
        /// the cluster's private key (any type; `kompi keygen` writes it)
        id_rsa: Option<Lines> = "id_rsa",
        /// the matching public key
        id_rsa_pub: Option<Line> = "id_rsa_pub",
    }
}

section! {
    pub struct MpiValues, paths MpiPaths {
        /// kompi: MPI in the image; sets hostfile syntax and launcher defaults
        implementation: MpiImplementation = "implementation",
        /// kompi: extra Open MPI MCA parameters for every process
        mca_params: ScalarMap = "mcaParams",
    }
}

section! {
    pub struct SshValues, paths SshPaths {
        /// kompi: sshd port in every MPI container
        port: Port = "port",
    }
}

section! {
    pub struct SecurityValues, paths SecurityPaths {
        /// kompi: `restricted` renders pods meeting the Pod Security Standards' restricted profile (uid 1000, no capabilities, no privilege escalation, seccomp RuntimeDefault)
        profile: SecurityProfile = "profile",
    }
}

section! {
    pub struct MasterValues, paths MasterPaths {
        auto_update_hostfile: AutoUpdateValues = "autoUpdateHostfile",
        /// kompi: slots of the master's hostfile line (default: from its CPU, else 1)
        slots: Option<Slots> = "slots",
        /// master pod securityContext (e.g. runAsUser/fsGroup 1000)
        security_context: Option<PodSecurityContext> = "securityContext",
        /// kompi: securityContext of the master's MPI container
        container_security_context: Option<SecurityContext> = "containerSecurityContext",
        one_shot: OneShotValues = "oneShot",
        custom_scheduling: MasterSchedulingValues = "customScheduling",
        /// master container resources (`gpu` means nvidia.com/gpu)
        resources: Option<Resources> = "resources",
        /// master nodeSelector
        node_selector: BTreeMap<String, String> = "nodeSelector",
        /// master tolerations
        tolerations: Vec<Toleration> = "tolerations",
        /// master affinity
        affinity: Affinity = "affinity",
        /// extra volumes of the master pod
        volumes: Option<Vec<Volume>> = "volumes",
        /// extra volumeMounts of the master's MPI container
        volume_mounts: Option<Vec<VolumeMount>> = "volumeMounts",
    }
}

section! {
    pub struct AutoUpdateValues, paths AutoUpdatePaths {
        /// keep the hostfile following the workers (false: written once, when all workers are ready)
        enabled: bool = "enabled",
        /// ignored (the hostfile follows a watch, not a poll)
        update_every: Ignored<NoPolling> = "updateEvery",
    }
}

section! {
    pub struct OneShotValues, paths OneShotPaths {
        /// run `command` once the cluster is up, then exit with its status
        enabled: bool = "enabled",
        /// scale NAME-worker to 0 when the command succeeds
        auto_scale_down_workers: bool = "autoScaleDownWorkers",
        /// the command, run with `bash -c` on the master
        command: Lines = "command",
        /// kompi: how long the one-shot master waits for every worker to answer on ssh
        wait_timeout_seconds: Int<u32, 1, { MAX_WAIT_SECONDS as i64 }> = "waitTimeoutSeconds",
    }
}

section! {
    pub struct MasterSchedulingValues, paths MasterSchedulingPaths {
        /// use `schedulerName` for the master
        enabled: bool = "enabled",
        /// the scheduler
        scheduler_name: AnyText = "schedulerName",
    }
}

section! {
    pub struct WorkersValues, paths WorkersPaths {
        /// number of workers (StatefulSet replicas)
        num: Int<u32, 0, { MAX_WORKERS as i64 }> = "num",
        /// kompi: slots per worker (default: nvidia.com/gpu, else CPU, else 1)
        slots: Option<Slots> = "slots",
        /// worker pod securityContext
        security_context: Option<PodSecurityContext> = "securityContext",
        /// kompi: securityContext of the workers' MPI container
        container_security_context: Option<SecurityContext> = "containerSecurityContext",
        custom_scheduling: WorkersSchedulingValues = "customScheduling",
        /// worker container resources (`gpu` means nvidia.com/gpu)
        resources: Option<Resources> = "resources",
        /// StatefulSet podManagementPolicy
        pod_management_policy: PodManagementPolicy = "podManagementPolicy",
        /// worker nodeSelector
        node_selector: BTreeMap<String, String> = "nodeSelector",
        /// worker tolerations
        tolerations: Vec<Toleration> = "tolerations",
        /// worker affinity
        affinity: Affinity = "affinity",
        /// extra volumes of the worker pods
        volumes: Option<Vec<Volume>> = "volumes",
        /// extra volumeMounts of the workers' MPI container
        volume_mounts: Option<Vec<VolumeMount>> = "volumeMounts",
    }
}

section! {
    pub struct WorkersSchedulingValues, paths WorkersSchedulingPaths {
        /// use `schedulerName` for the workers
        enabled: bool = "enabled",
        /// the scheduler (e.g. a gang scheduler)
        scheduler_name: AnyText = "schedulerName",
        pod_disruption_budget: DisruptionBudgetValues = "podDisruptionBudget",
    }
}

section! {
    pub struct DisruptionBudgetValues, paths DisruptionBudgetPaths {
        /// render PodDisruptionBudget NAME-worker-pdb (minAvailable = num)
        enabled: bool = "enabled",
    }
}

section! {
    /// One item of `appCodesToSync`; the builder says which keys are required.
    pub struct AppCodeValues, paths AppCodePaths {
        /// its name (a DNS label)
        name: Option<NonEmpty> = "name",
        /// repository URL
        git_repo: Option<NonEmpty> = "gitRepo",
        /// branch (default master)
        git_branch: Option<NonEmpty> = "gitBranch",
        /// GIT_SYNC_WAIT (default 0, at most 86400)
        fetch_wait_second: Option<Seconds> = "fetchWaitSecond",
        /// where the MPI containers see it
        mount_path: Option<NonEmpty> = "mountPath",
        /// mount only this subdirectory of the checkout (relative, no `..`)
        sub_path: Option<NonEmpty> = "subPath",
        /// Secret with key `ssh` (a deploy key) for a private repository; git-sync then runs as root
        git_secret_name: Option<NonEmpty> = "gitSecretName",
    }
}

/// The README's table of values keys (`kompi values --markdown`): every key, its default and its meaning.
pub fn markdown_table() -> String {
    let defaults = crate::tree::parse_yaml(crate::DEFAULTS_YAML).expect("defaults.yaml parses");
    crate::schema::markdown_table(<Values as crate::schema::Section>::FIELDS, &defaults)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Schema, Section, rows};
    use crate::tree::YamlPath;

    fn documented_keys() -> Vec<String> {
        rows("", Values::FIELDS).into_iter().map(|(path, _)| path).collect()
    }

    #[test]
    fn every_design_key_is_accepted() {
        // kube-openmpi's values keys, as ARCHITECTURE.md's compatibility contract names them.
        let keys = documented_keys();
        for key in [
            "image.repository", "image.tag", "image.pullPolicy", "image.pullSecrets", "kubectlImage.repository",
            "gitSyncImage.repository", "networkPolicy.enabled", "sshGateway.enabled", "sshGateway.nodePort",
            "sshKey.id_rsa", "sshKey.id_rsa_pub", "mpiMaster.autoUpdateHostfile.enabled",
            "mpiMaster.autoUpdateHostfile.updateEvery", "mpiMaster.securityContext", "mpiMaster.oneShot.enabled",
            "mpiMaster.oneShot.autoScaleDownWorkers", "mpiMaster.oneShot.command", "mpiMaster.customScheduling.enabled",
            "mpiMaster.customScheduling.schedulerName", "mpiMaster.resources", "mpiMaster.nodeSelector",
            "mpiMaster.tolerations", "mpiMaster.affinity", "mpiMaster.volumes", "mpiMaster.volumeMounts",
            "mpiWorkers.num", "mpiWorkers.securityContext", "mpiWorkers.customScheduling.enabled",
            "mpiWorkers.customScheduling.schedulerName", "mpiWorkers.customScheduling.podDisruptionBudget.enabled",
            "mpiWorkers.resources", "mpiWorkers.podManagementPolicy", "mpiWorkers.nodeSelector", "mpiWorkers.tolerations",
            "mpiWorkers.affinity", "mpiWorkers.volumes", "mpiWorkers.volumeMounts", "appCodesToSync[].name",
            "appCodesToSync[].gitRepo", "appCodesToSync[].gitBranch", "appCodesToSync[].fetchWaitSecond",
            "appCodesToSync[].mountPath", "appCodesToSync[].subPath", "appCodesToSync[].gitSecretName",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} is missing from the values model");
        }
    }

    #[test]
    fn every_key_is_documented_and_paths_follow_the_yaml() {
        for (path, field) in rows("", Values::FIELDS) {
            assert!(!field.doc.trim().is_empty(), "{path} has no meaning in the table");
        }
        let at = Values::paths(YamlPath::root());
        assert_eq!(at.mpi_workers.custom_scheduling.pod_disruption_budget.enabled.as_str(), "mpiWorkers.customScheduling.podDisruptionBudget.enabled");
        assert_eq!(at.app_codes_to_sync.item(2).fetch_wait_second.as_str(), "appCodesToSync[2].fetchWaitSecond");
        assert_eq!(at.ssh_key.at.as_str(), "sshKey");
    }
}
