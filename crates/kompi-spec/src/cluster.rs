//! The validated domain model every later stage works from. Fields are named for what they mean; the
//! constructors in `build` are the only way in, so a `ClusterSpec` is always consistent.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, PodSecurityContext, ResourceRequirements, SecurityContext, Toleration, Volume, VolumeMount,
};

use crate::contract;
use crate::word::word_enum;
use crate::limits::DNS_LABEL_MAX;
/// Kept here too, where `ClusterName` users have always found it.
pub use crate::limits::MAX_CLUSTER_NAME;

/// A cluster name: a DNS-1035 label short enough that every derived name is valid
/// (`NAME-worker-<ordinal>` pods and the `NAME-worker-<revision hash>` label the StatefulSet controller adds).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterName(String);

impl ClusterName {
    pub fn new(name: &str) -> Result<Self, String> {
        dns1035_label(name)?;
        if name.len() > MAX_CLUSTER_NAME {
            return Err(format!(
                "{name:?} is {} characters; at most {MAX_CLUSTER_NAME} fit, so that {name}-worker-<revision hash> stays within {DNS_LABEL_MAX}",
                name.len()
            ));
        }
        Ok(ClusterName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The headless Service, ServiceAccount, Role and RoleBinding.
    pub fn service(&self) -> String {
        self.0.clone()
    }
    pub fn master_pod(&self) -> String {
        format!("{}-master", self.0)
    }
    pub fn worker_set(&self) -> String {
        format!("{}-worker", self.0)
    }
    pub fn worker_pod(&self, ordinal: u32) -> String {
        format!("{}-worker-{ordinal}", self.0)
    }
    /// A worker's name in the hostfile: `<pod>.<service>`, resolvable through the headless Service.
    pub fn worker_host(&self, pod: &str) -> String {
        format!("{pod}.{}", self.0)
    }
    pub fn ssh_secret(&self) -> String {
        format!("{}-ssh-key", self.0)
    }
    pub fn ssh_gateway(&self) -> String {
        format!("{}-ssh-gateway", self.0)
    }
    pub fn disruption_budget(&self) -> String {
        format!("{}-worker-pdb", self.0)
    }
    /// The worker ordinal of a pod name of this cluster, `None` for any other name.
    pub fn worker_ordinal(&self, pod: &str) -> Option<u32> {
        let rest = pod.strip_prefix(&self.0)?.strip_prefix("-worker-")?;
        if rest.len() > 1 && rest.starts_with('0') {
            return None;
        }
        rest.parse().ok()
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An RFC 1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric, at most 63.
pub fn dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > DNS_LABEL_MAX {
        return Err(format!("{s:?} is {} characters; a DNS label has at most {DNS_LABEL_MAX}", s.len()));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if let Some(bad) = s.chars().find(|c| !ok_char(*c)) {
        return Err(format!("{s:?} contains {bad:?}; use lower-case letters, digits and '-' (a DNS-1123 label)"));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(format!("{s:?} must start and end with a letter or digit (a DNS-1123 label)"));
    }
    Ok(())
}

/// An RFC 1035 label (Service names): a DNS-1123 label that starts with a letter.
pub fn dns1035_label(s: &str) -> Result<(), String> {
    dns1123_label(s)?;
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!("{s:?} must start with a letter (it names a Service, a DNS-1035 label)"));
    }
    Ok(())
}

word_enum! {
    /// The MPI in the image: it decides the hostfile syntax and the launcher's defaults.
    pub enum MpiImplementation {
        OpenMpi = "openmpi",
        Mpich = "mpich",
        Intel = "intel",
    }
}

word_enum! {
    /// A container's imagePullPolicy.
    pub enum PullPolicy {
        Always = "Always",
        IfNotPresent = "IfNotPresent",
        Never = "Never",
    }
}

word_enum! {
    /// `security.profile`: `restricted` renders every pod to the Pod Security Standards' restricted profile.
    pub enum SecurityProfile {
        Default = "default",
        Restricted = "restricted",
    }
}

word_enum! {
    /// The worker StatefulSet's podManagementPolicy.
    pub enum PodManagementPolicy {
        Parallel = "Parallel",
        OrderedReady = "OrderedReady",
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// `repository:tag`, or the repository alone when the tag is empty.
    pub reference: String,
    pub pull_policy: PullPolicy,
}

/// Where the MPI containers' kompi comes from: kompi's runtime image, copied into each MPI pod by an init
/// container (`inject`), or the MPI image itself.
#[derive(Clone, Debug, PartialEq)]
pub struct KompiSource {
    pub image: Image,
    pub inject: bool,
}

/// The ssh key pair every MPI container trusts; `id_rsa`/`id_rsa_pub` in the values whatever its type.
#[derive(Clone, PartialEq)]
pub struct SshKeyPair {
    pub private_key: String,
    pub public_key: String,
}

impl fmt::Debug for SshKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshKeyPair").field("public_key", &self.public_key).finish_non_exhaustive()
    }
}

/// What both kinds of pod accept from the values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodOptions {
    pub security_context: Option<PodSecurityContext>,
    /// The MPI container's own securityContext.
    pub container_security_context: Option<SecurityContext>,
    pub scheduler_name: Option<String>,
    pub resources: Option<ResourceRequirements>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub affinity: Option<Affinity>,
    pub volumes: Vec<Volume>,
    pub volume_mounts: Vec<VolumeMount>,
    /// Slots of this pod's hostfile line.
    pub slots: u32,
}

impl PodOptions {
    /// Whether the MPI container runs as root (no runAsUser, or runAsUser 0; the container's wins).
    pub fn runs_as_root(&self) -> bool {
        self.run_as_user().unwrap_or(0) == 0
    }

    /// The uid the MPI container runs as, when the values say (the container's securityContext wins).
    pub fn run_as_user(&self) -> Option<i64> {
        let container = self.container_security_context.as_ref().and_then(|s| s.run_as_user);
        container.or_else(|| self.security_context.as_ref().and_then(|s| s.run_as_user))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct OneShot {
    pub command: String,
    pub scale_down_workers: bool,
    pub wait_timeout_seconds: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Master {
    pub pod: PodOptions,
    /// Keep the hostfile following the workers; false writes it once, when all workers are ready.
    pub follow_workers: bool,
    pub one_shot: Option<OneShot>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Workers {
    pub pod: PodOptions,
    pub count: u32,
    pub pod_management_policy: PodManagementPolicy,
    pub disruption_budget: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AppCode {
    pub name: String,
    pub git_repo: String,
    pub git_branch: String,
    pub wait_seconds: u64,
    pub mount_path: String,
    pub sub_path: Option<String>,
    /// A Secret with key `ssh` for a private repository.
    pub git_secret: Option<String>,
}

impl AppCode {
    pub fn volume(&self) -> String {
        format!("{}{}", contract::SYNC_VOLUME_PREFIX, self.name)
    }
    pub fn secret_volume(&self) -> String {
        format!("{}{}{}", contract::SYNC_VOLUME_PREFIX, self.name, contract::SYNC_SECRET_SUFFIX)
    }
    pub fn init_container(&self) -> String {
        format!("{}-fetch", self.name)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSpec {
    pub name: ClusterName,
    pub namespace: String,
    pub image: Image,
    pub kompi: KompiSource,
    pub pull_secrets: Vec<LocalObjectReference>,
    pub git_sync_image: Image,
    pub mpi: MpiImplementation,
    pub mca_params: BTreeMap<String, String>,
    pub ssh_port: u16,
    pub ssh_key: Option<SshKeyPair>,
    pub network_policy: bool,
    /// `security.profile: restricted`: every pod meets the Pod Security Standards' restricted profile.
    pub restricted: bool,
    /// The NodePort of the ssh gateway Service, when enabled.
    pub ssh_gateway: Option<u16>,
    pub master: Master,
    pub workers: Workers,
    pub app_codes: Vec<AppCode>,
}

impl ClusterSpec {
    /// Whether the master's sidecar needs to scale the workers (and so the permission to).
    pub fn scales_down_workers(&self) -> bool {
        self.master.one_shot.as_ref().is_some_and(|o| o.scale_down_workers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ordinals() {
        let n = ClusterName::new("mpi").unwrap();
        assert_eq!(n.worker_pod(3), "mpi-worker-3");
        assert_eq!(n.worker_host("mpi-worker-3"), "mpi-worker-3.mpi");
        assert_eq!(n.worker_ordinal("mpi-worker-12"), Some(12));
        assert_eq!(n.worker_ordinal("mpi-worker-012"), None);
        assert_eq!(n.worker_ordinal("mpi-master"), None);
        assert_eq!(n.worker_ordinal("other-worker-1"), None);
    }

    #[test]
    fn name_rules() {
        assert!(ClusterName::new("a").is_ok());
        assert!(ClusterName::new(&"a".repeat(MAX_CLUSTER_NAME)).is_ok());
        assert!(ClusterName::new(&"a".repeat(MAX_CLUSTER_NAME + 1)).unwrap_err().contains("at most 45"));
        assert!(ClusterName::new("1abc").unwrap_err().contains("start with a letter"));
        assert!(ClusterName::new("My_Cluster").unwrap_err().contains("'M'"));
        assert!(ClusterName::new("abc-").unwrap_err().contains("end"));
        assert!(ClusterName::new("").is_err());
    }
}
