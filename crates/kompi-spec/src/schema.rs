//! Every values key kompi accepts: its type and what it means. The defaults live in `defaults.yaml`;
//! this table drives validation (unknown keys, wrong types) and the README's table of keys.

use crate::cluster::{MpiImplementation, PodManagementPolicy, PullPolicy};
use crate::limits::{MAX_SLOTS, MAX_WAIT_SECONDS, MAX_WORKERS};

/// The Kubernetes types that values subtrees are passed through to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum K8sType {
    PodSecurityContext,
    Resources,
    NodeSelector,
    Tolerations,
    Affinity,
    Volumes,
    VolumeMounts,
    PullSecrets,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    /// An integer within the bounds.
    Int { min: i64, max: i64 },
    /// Text; `nonempty` rejects "".
    Str { nonempty: bool },
    /// One of the listed words.
    Enum(&'static [&'static str]),
    /// A number written as a number or as a string of digits (`fetchWaitSecond: "120"`).
    Digits,
    /// A mapping of names to scalar values (stored as text).
    ScalarMap,
    /// A list whose items are mappings described by `PATH[].key` entries.
    List,
    /// A Kubernetes object, checked against its k8s-openapi type.
    K8s(K8sType),
    /// Accepted for compatibility with kube-openmpi and ignored, with a warning saying why.
    Ignored(&'static str),
}

pub struct Entry {
    pub path: &'static str,
    pub kind: Kind,
    pub doc: &'static str,
}

const fn e(path: &'static str, kind: Kind, doc: &'static str) -> Entry {
    Entry { path, kind, doc }
}

const STR: Kind = Kind::Str { nonempty: true };
const ANY_STR: Kind = Kind::Str { nonempty: false };
const PULL_POLICY: Kind = Kind::Enum(PullPolicy::WORDS);
const KUBECTL_IGNORED: &str = "kompi's hostfile watcher is built into the kompi image, so no kubectl image is used";
const PORT: Kind = Kind::Int { min: 1, max: 65535 };
const SLOTS: Kind = Kind::Int { min: 1, max: MAX_SLOTS as i64 };

pub const ENTRIES: &[Entry] = &[
    e("image.repository", STR, "MPI image (master and workers); must contain kompi at /usr/local/bin/kompi, sshd and MPI"),
    e("image.tag", ANY_STR, "its tag (empty: none)"),
    e("image.pullPolicy", PULL_POLICY, "imagePullPolicy of every kompi container"),
    e("image.pullSecrets", Kind::K8s(K8sType::PullSecrets), "imagePullSecrets of both pods (`[{name: secret}]`)"),
    e("kubectlImage.repository", Kind::Ignored(KUBECTL_IGNORED), "ignored (kompi watches the API itself)"),
    e("kubectlImage.tag", Kind::Ignored(KUBECTL_IGNORED), "ignored"),
    e("kubectlImage.pullPolicy", Kind::Ignored(KUBECTL_IGNORED), "ignored"),
    e("gitSyncImage.repository", STR, "git-sync image for `appCodesToSync`"),
    e("gitSyncImage.tag", ANY_STR, "its tag"),
    e("gitSyncImage.pullPolicy", PULL_POLICY, "its imagePullPolicy"),
    e("networkPolicy.enabled", Kind::Bool, "render NetworkPolicies NAME-allow-internal and NAME-allow-from-external"),
    e("sshGateway.enabled", Kind::Bool, "render NodePort Service NAME-ssh-gateway to the master's sshd"),
    e("sshGateway.nodePort", PORT, "its nodePort"),
    e("sshKey.id_rsa", STR, "the cluster's private key (any type; `kompi keygen` writes it)"),
    e("sshKey.id_rsa_pub", STR, "the matching public key"),
    e("mpi.implementation", Kind::Enum(MpiImplementation::WORDS), "kompi: MPI in the image; sets hostfile syntax and launcher defaults"),
    e("mpi.mcaParams", Kind::ScalarMap, "kompi: extra Open MPI MCA parameters for every process"),
    e("ssh.port", PORT, "kompi: sshd port in every MPI container"),
    e(
        "mpiMaster.autoUpdateHostfile.enabled",
        Kind::Bool,
        "keep the hostfile following the workers (false: written once, when all workers are ready)",
    ),
    e(
        "mpiMaster.autoUpdateHostfile.updateEvery",
        Kind::Ignored("kompi's hostfile follows a watch on the API within a second; there is no polling period"),
        "ignored (the hostfile follows a watch, not a poll)",
    ),
    e("mpiMaster.slots", SLOTS, "kompi: slots of the master's hostfile line (default: from its CPU, else 1)"),
    e("mpiMaster.securityContext", Kind::K8s(K8sType::PodSecurityContext), "master pod securityContext (e.g. runAsUser/fsGroup 1000)"),
    e("mpiMaster.oneShot.enabled", Kind::Bool, "run `command` once the cluster is up, then exit with its status"),
    e("mpiMaster.oneShot.autoScaleDownWorkers", Kind::Bool, "scale NAME-worker to 0 when the command succeeds"),
    e("mpiMaster.oneShot.command", STR, "the command, run with `bash -c` on the master"),
    e(
        "mpiMaster.oneShot.waitTimeoutSeconds",
        Kind::Int { min: 1, max: MAX_WAIT_SECONDS as i64 },
        "kompi: how long the one-shot master waits for every worker to answer on ssh",
    ),
    e("mpiMaster.customScheduling.enabled", Kind::Bool, "use `schedulerName` for the master"),
    e("mpiMaster.customScheduling.schedulerName", ANY_STR, "the scheduler"),
    e("mpiMaster.resources", Kind::K8s(K8sType::Resources), "master container resources (`gpu` means nvidia.com/gpu)"),
    e("mpiMaster.nodeSelector", Kind::K8s(K8sType::NodeSelector), "master nodeSelector"),
    e("mpiMaster.tolerations", Kind::K8s(K8sType::Tolerations), "master tolerations"),
    e("mpiMaster.affinity", Kind::K8s(K8sType::Affinity), "master affinity"),
    e("mpiMaster.volumes", Kind::K8s(K8sType::Volumes), "extra volumes of the master pod"),
    e("mpiMaster.volumeMounts", Kind::K8s(K8sType::VolumeMounts), "extra volumeMounts of the master's MPI container"),
    e("mpiWorkers.num", Kind::Int { min: 0, max: MAX_WORKERS as i64 }, "number of workers (StatefulSet replicas)"),
    e("mpiWorkers.slots", SLOTS, "kompi: slots per worker (default: nvidia.com/gpu, else CPU, else 1)"),
    e("mpiWorkers.securityContext", Kind::K8s(K8sType::PodSecurityContext), "worker pod securityContext"),
    e("mpiWorkers.customScheduling.enabled", Kind::Bool, "use `schedulerName` for the workers"),
    e("mpiWorkers.customScheduling.schedulerName", ANY_STR, "the scheduler (e.g. a gang scheduler)"),
    e(
        "mpiWorkers.customScheduling.podDisruptionBudget.enabled",
        Kind::Bool,
        "render PodDisruptionBudget NAME-worker-pdb (minAvailable = num)",
    ),
    e("mpiWorkers.resources", Kind::K8s(K8sType::Resources), "worker container resources (`gpu` means nvidia.com/gpu)"),
    e("mpiWorkers.podManagementPolicy", Kind::Enum(PodManagementPolicy::WORDS), "StatefulSet podManagementPolicy"),
    e("mpiWorkers.nodeSelector", Kind::K8s(K8sType::NodeSelector), "worker nodeSelector"),
    e("mpiWorkers.tolerations", Kind::K8s(K8sType::Tolerations), "worker tolerations"),
    e("mpiWorkers.affinity", Kind::K8s(K8sType::Affinity), "worker affinity"),
    e("mpiWorkers.volumes", Kind::K8s(K8sType::Volumes), "extra volumes of the worker pods"),
    e("mpiWorkers.volumeMounts", Kind::K8s(K8sType::VolumeMounts), "extra volumeMounts of the workers' MPI container"),
    e("appCodesToSync", Kind::List, "git repositories fetched by git-sync init containers into both pods"),
    e("appCodesToSync[].name", STR, "its name (a DNS label)"),
    e("appCodesToSync[].gitRepo", STR, "repository URL"),
    e("appCodesToSync[].gitBranch", STR, "branch (default master)"),
    e("appCodesToSync[].fetchWaitSecond", Kind::Digits, "GIT_SYNC_WAIT (default 0)"),
    e("appCodesToSync[].mountPath", STR, "where the MPI containers see it"),
    e("appCodesToSync[].subPath", STR, "mount only this subdirectory of the checkout"),
    e("appCodesToSync[].gitSecretName", STR, "Secret with key `ssh` (a deploy key) for a private repository"),
];

pub fn entry(pattern: &str) -> Option<&'static Entry> {
    ENTRIES.iter().find(|e| e.path == pattern)
}

/// Whether `pattern` is a key kompi knows: an entry, or a mapping that holds entries.
pub fn is_known(pattern: &str) -> bool {
    ENTRIES.iter().any(|e| {
        e.path == pattern
            || e.path.strip_prefix(pattern).is_some_and(|rest| rest.starts_with('.') || rest.starts_with("[]"))
    })
}

/// The keys allowed directly under the mapping at `pattern` ("" for the top level).
pub fn children(pattern: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for e in ENTRIES {
        let rest = if pattern.is_empty() { Some(e.path) } else { e.path.strip_prefix(pattern).and_then(|r| r.strip_prefix('.')) };
        if let Some(key) = rest.and_then(|r| r.split(['.', '[']).next())
            && !out.contains(&key)
        {
            out.push(key);
        }
    }
    out
}

/// The table of values keys for the README: key, default, meaning.
pub fn markdown_table(defaults: &serde_json::Value) -> String {
    let mut out = String::from("| key | default | meaning |\n|---|---|---|\n");
    for e in ENTRIES {
        let default = crate::tree::get_path(defaults, e.path).map(short_default).unwrap_or_default();
        out.push_str(&format!("| `{}` | {} | {} |\n", e.path, default, e.doc.replace('|', "\\|")));
    }
    out
}

fn short_default(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) if s.contains('\n') => "(see `kompi values`)".into(),
        serde_json::Value::String(s) if s.is_empty() => "`\"\"`".into(),
        serde_json::Value::String(s) => format!("`{s}`"),
        serde_json::Value::Object(m) if m.is_empty() => "`{}`".into(),
        serde_json::Value::Array(a) if a.is_empty() => "`[]`".into(),
        other => format!("`{other}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_children() {
        assert!(is_known("mpiWorkers"));
        assert!(is_known("mpiWorkers.customScheduling.podDisruptionBudget"));
        assert!(is_known("appCodesToSync[].name"));
        assert!(!is_known("mpiWorker"));
        assert!(!is_known("mpiWorkers.nu"));
        assert_eq!(children("sshGateway"), vec!["enabled", "nodePort"]);
        assert!(children("").contains(&"appCodesToSync"));
        assert!(children("appCodesToSync[]").contains(&"gitSecretName"));
    }

    #[test]
    fn every_design_key_is_accepted() {
        // kube-openmpi's values keys, as DESIGN.md lists them.
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
            assert!(entry(key).is_some(), "{key} is missing from the schema");
        }
    }
}
