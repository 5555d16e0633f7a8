//! From values sources to a `ClusterSpec`: parse each source, check it, merge (later wins), then the
//! checks that need the whole picture. Every problem is reported at once.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Affinity, PodSecurityContext, ResourceRequirements, Toleration, Volume, VolumeMount};

use crate::cluster::{
    AppCode, ClusterName, ClusterSpec, Image, Master, OneShot, PodOptions, PullPolicy, SshKeyPair, Workers, dns1123_label,
};
use crate::contract::{
    DEFAULT_SSH_PORT, HANDSHAKE_DIR, HOSTFILE_DIR, RESERVED_VOLUME_PREFIX, SSH_KEY_DIR, SYNC_SECRET_SUFFIX, SYNC_VOLUME_PREFIX,
};
use crate::error::{Problem, SpecError};
use crate::k8s::GPU_RESOURCE;
use crate::limits::{DNS_LABEL_MAX, FIRST_UNPRIVILEGED_PORT, MAX_APP_CODE_NAME, MAX_SLOTS, NODE_PORT_RANGE};
use crate::schema::{ListPaths, Schema};
use crate::tree::{Layer, Merged, Origin, YamlPath, parse_yaml};
use crate::values::{AnyText, AppCodeValues, Int, NonEmpty, ScalarMap, SshKeyPaths, SshKeyValues, Values, ValuesPaths};
use crate::{quantity, set, sshkey, validate};

/// kompi's defaults: kube-openmpi's chart values plus kompi's own keys.
pub const DEFAULTS_YAML: &str = include_str!("defaults.yaml");

/// One source of values, in the order given on the command line.
#[derive(Clone, Debug)]
pub enum Source {
    /// `-f FILE`: its name (for messages) and its text.
    File { name: String, text: String },
    /// `--set a.b=c,...`
    Set(String),
    /// `--set-string a.b=c,...`
    SetString(String),
}

pub struct Request<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    /// Files first, then flags, as Helm orders them; `load` does not reorder.
    pub sources: &'a [Source],
    /// `template` renders the key Secret, so it needs the key; `up` makes one when none is given.
    pub require_ssh_key: bool,
}

#[derive(Debug)]
pub struct Loaded {
    pub spec: ClusterSpec,
    /// Keys accepted but ignored, unusual settings: worth a line on stderr, not an error.
    pub warnings: Vec<String>,
}

pub fn load(req: &Request) -> Result<Loaded, SpecError> {
    let defaults = Layer { origin: Origin::Defaults, tree: parse_yaml(DEFAULTS_YAML).expect("defaults.yaml parses") };
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut layers = Vec::new();
    for source in req.sources {
        let parsed = match source {
            Source::File { name, text } => parse_yaml(text)
                .map(|tree| Layer { origin: Origin::File(name.clone()), tree })
                .map_err(|e| Problem { origin: Origin::File(name.clone()), path: YamlPath::root(), message: format!("malformed YAML: {e}") }),
            Source::Set(arg) | Source::SetString(arg) => {
                let flag = if matches!(source, Source::Set(_)) { "--set" } else { "--set-string" };
                set::parse_set(arg, matches!(source, Source::SetString(_)))
                    .map(|tree| Layer { origin: Origin::Flag(format!("{flag} {arg}")), tree })
                    .map_err(|e| Problem { origin: Origin::Flag(flag.into()), path: YamlPath::root(), message: e })
            }
        };
        match parsed {
            Ok(layer) => {
                let (p, w) = validate::check_layer(&layer);
                problems.extend(p);
                warnings.extend(w);
                layers.push(layer);
            }
            Err(p) => problems.push(p),
        }
    }
    let name = ClusterName::new(req.name)
        .map_err(|m| Problem { origin: Origin::Argument("NAME"), path: YamlPath::root(), message: format!("invalid cluster name: {m}") });
    if let Err(p) = &name {
        problems.push(p.clone());
    }
    if let Err(m) = dns1123_label(req.namespace) {
        problems.push(Problem { origin: Origin::Argument("--namespace"), path: YamlPath::root(), message: format!("invalid namespace: {m}") });
    }
    if !problems.is_empty() {
        return Err(SpecError(problems));
    }
    let merged = Merged::new(&defaults, &layers);
    let values = read_values(&merged)?;
    let mut b = Builder { merged: &merged, problems: Vec::new(), warnings };
    let spec = b.spec(values, &Values::paths(YamlPath::root()), name.expect("checked above"), req);
    if b.problems.is_empty() { Ok(Loaded { spec, warnings: b.warnings }) } else { Err(SpecError(b.problems)) }
}

/// The merged values as the typed model. Each layer passed the same types' checks, so a failure here
/// is kompi's bug, reported like any problem rather than as a panic.
fn read_values(merged: &Merged) -> Result<Values, SpecError> {
    serde_path_to_error::deserialize(&merged.tree).map_err(|e| {
        let at = e.path().to_string();
        let path = YamlPath::parse(if at == "." { "" } else { &at });
        let message = format!("{} (kompi could not read values its checks accepted; please report this)", e.into_inner());
        SpecError(vec![Problem { origin: merged.origin(&path), path, message }])
    })
}

struct Builder<'a> {
    merged: &'a Merged,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

/// What master and workers share, taken out of either one's values, with the paths of what is checked.
struct PodInput<'a> {
    security_context: Option<PodSecurityContext>,
    scheduler: Option<AnyText>,
    scheduler_at: &'a YamlPath,
    resources: Option<ResourceRequirements>,
    resources_at: &'a YamlPath,
    node_selector: BTreeMap<String, String>,
    tolerations: Vec<Toleration>,
    affinity: Affinity,
    volumes: Vec<Volume>,
    volumes_at: &'a YamlPath,
    volume_mounts: Vec<VolumeMount>,
    volume_mounts_at: &'a YamlPath,
    slots: Option<u32>,
}

/// `mpiMaster` and `mpiWorkers` name their shared keys alike, so one expansion reads either.
macro_rules! pod_input {
    ($values:expr, $at:expr) => {
        PodInput {
            security_context: $values.security_context,
            scheduler: $values.custom_scheduling.enabled.then_some($values.custom_scheduling.scheduler_name),
            scheduler_at: &$at.custom_scheduling.scheduler_name,
            resources: $values.resources.map(|r| r.0),
            resources_at: &$at.resources,
            node_selector: $values.node_selector,
            tolerations: $values.tolerations,
            affinity: $values.affinity,
            volumes: $values.volumes.unwrap_or_default(),
            volumes_at: &$at.volumes,
            volume_mounts: $values.volume_mounts.unwrap_or_default(),
            volume_mounts_at: &$at.volume_mounts,
            slots: $values.slots.map(Int::get),
        }
    };
}

impl Builder<'_> {
    fn problem(&mut self, path: &YamlPath, message: impl Into<String>) {
        self.problems.push(Problem { origin: self.merged.origin(path), message: message.into(), path: path.clone() });
    }

    fn spec(&mut self, v: Values, at: &ValuesPaths, name: ClusterName, req: &Request) -> ClusterSpec {
        let app_codes = self.app_codes(v.app_codes_to_sync.unwrap_or_default(), &at.app_codes_to_sync);
        let one_shot = v.mpi_master.one_shot;
        let master = Master {
            follow_workers: v.mpi_master.auto_update_hostfile.enabled,
            one_shot: one_shot.enabled.then(|| OneShot {
                command: one_shot.command.into_string(),
                scale_down_workers: one_shot.auto_scale_down_workers,
                wait_timeout_seconds: one_shot.wait_timeout_seconds.get(),
            }),
            pod: self.pod_options(pod_input!(v.mpi_master, at.mpi_master), false, &app_codes),
        };
        let workers = Workers {
            count: v.mpi_workers.num.get(),
            pod_management_policy: v.mpi_workers.pod_management_policy,
            disruption_budget: v.mpi_workers.custom_scheduling.pod_disruption_budget.enabled,
            pod: self.pod_options(pod_input!(v.mpi_workers, at.mpi_workers), true, &app_codes),
        };
        let ssh_port = v.ssh.port.get();
        for (pod, security_context) in [(&master.pod, &at.mpi_master.security_context), (&workers.pod, &at.mpi_workers.security_context)] {
            if ssh_port < FIRST_UNPRIVILEGED_PORT && !pod.runs_as_root() {
                self.problem(
                    &at.ssh.port,
                    format!(
                        "port {ssh_port} needs root, but {security_context}.runAsUser is not 0; use a port of {FIRST_UNPRIVILEGED_PORT} or more (the default is {DEFAULT_SSH_PORT})"
                    ),
                );
            }
        }
        ClusterSpec {
            image: image(v.image.repository, v.image.tag, v.image.pull_policy),
            pull_secrets: v.image.pull_secrets.unwrap_or_default(),
            git_sync_image: image(v.git_sync_image.repository, v.git_sync_image.tag, v.git_sync_image.pull_policy),
            mpi: v.mpi.implementation,
            mca_params: self.mca_params(v.mpi.mca_params, &at.mpi.mca_params),
            ssh_port,
            ssh_key: self.ssh_key(v.ssh_key, &at.ssh_key, req.require_ssh_key),
            network_policy: v.network_policy.enabled,
            ssh_gateway: v.ssh_gateway.enabled.then(|| self.ssh_gateway(v.ssh_gateway.node_port.get(), &at.ssh_gateway.node_port)),
            namespace: req.namespace.to_string(),
            name,
            master,
            workers,
            app_codes,
        }
    }

    fn pod_options(&mut self, pod: PodInput, is_worker: bool, app_codes: &[AppCode]) -> PodOptions {
        self.check_quantities(pod.resources_at, pod.resources.as_ref());
        self.check_volumes(&pod, app_codes);
        let scheduler_name = pod.scheduler.map(|name| {
            if name.as_str().is_empty() {
                self.problem(pod.scheduler_at, "is required when customScheduling.enabled is true");
            }
            name.into_string()
        });
        PodOptions {
            security_context: pod.security_context,
            scheduler_name,
            slots: pod.slots.unwrap_or_else(|| default_slots(pod.resources.as_ref(), is_worker)),
            resources: pod.resources,
            node_selector: pod.node_selector,
            tolerations: pod.tolerations,
            affinity: Some(pod.affinity).filter(|a| a != &Affinity::default()),
            volumes: pod.volumes,
            volume_mounts: pod.volume_mounts,
        }
    }

    fn check_quantities(&mut self, path: &YamlPath, resources: Option<&ResourceRequirements>) {
        let Some(r) = resources else { return };
        for (section, map) in [("limits", &r.limits), ("requests", &r.requests)] {
            for (name, q) in map.iter().flatten() {
                if quantity::parse(&q.0).is_none_or(|v| v < 0.0) {
                    let shown = if name == GPU_RESOURCE { "gpu" } else { name };
                    self.problem(&path.key(section).key(shown), format!("{:?} is not a Kubernetes quantity (for example 2, 500m, 1.5Gi)", q.0));
                }
            }
        }
    }

    fn check_volumes(&mut self, pod: &PodInput, app_codes: &[AppCode]) {
        let mut names = BTreeSet::new();
        for (i, v) in pod.volumes.iter().enumerate() {
            let at = pod.volumes_at.index(i).key("name");
            if v.name.starts_with(RESERVED_VOLUME_PREFIX) {
                self.problem(&at, format!("{:?}: names starting with {RESERVED_VOLUME_PREFIX:?} are kompi's own; rename it", v.name));
            } else if !names.insert(v.name.as_str()) {
                self.problem(&at, format!("{:?} appears twice", v.name));
            }
            if let Err(m) = dns1123_label(&v.name) {
                self.problem(&at, m);
            }
        }
        let sync_volumes: Vec<String> = app_codes.iter().map(AppCode::volume).collect();
        for (i, m) in pod.volume_mounts.iter().enumerate() {
            let at = pod.volume_mounts_at.index(i);
            if !names.contains(m.name.as_str()) && !sync_volumes.contains(&m.name) {
                let known = names.iter().copied().collect::<Vec<_>>();
                let hint = validate::did_you_mean(&m.name, &known).map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default();
                self.problem(&at.key("name"), format!("no volume named {:?} in {}{hint}", m.name, pod.volumes_at));
            }
            if !m.mount_path.starts_with('/') {
                self.problem(&at.key("mountPath"), format!("{:?} must be an absolute path", m.mount_path));
            } else if is_kompi_path(&m.mount_path) {
                self.problem(&at.key("mountPath"), format!("{:?} would hide a directory kompi mounts there; choose another path", m.mount_path));
            }
        }
    }

    fn app_codes(&mut self, items: Vec<AppCodeValues>, list: &ListPaths<AppCodeValues>) -> Vec<AppCode> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let at = list.item(i);
            let Some(name) = item.name.map(NonEmpty::into_string) else {
                self.problem(&at.at, "needs a name");
                continue;
            };
            if let Err(m) = dns1123_label(&name) {
                self.problem(&at.name, m);
            } else if name.len() > MAX_APP_CODE_NAME {
                self.problem(
                    &at.name,
                    format!("{name:?} is too long: at most {MAX_APP_CODE_NAME} characters, so that the volume {SYNC_VOLUME_PREFIX}{name}{SYNC_SECRET_SUFFIX} stays within {DNS_LABEL_MAX}"),
                );
            }
            if !seen.insert(name.clone()) {
                self.problem(&at.name, format!("{name:?} appears twice in {}", list.at));
            }
            let git_repo = item.git_repo.map(NonEmpty::into_string).unwrap_or_default();
            if git_repo.is_empty() {
                self.problem(&at.git_repo, "is required: the repository to fetch");
            }
            let mount_path = item.mount_path.map(NonEmpty::into_string).unwrap_or_default();
            if !mount_path.starts_with('/') {
                let got = if mount_path.is_empty() { "nothing".to_string() } else { format!("{mount_path:?}") };
                self.problem(&at.mount_path, format!("is required and must be an absolute path, got {got}"));
            }
            out.push(AppCode {
                git_branch: item.git_branch.map_or_else(|| DEFAULT_GIT_BRANCH.into(), NonEmpty::into_string),
                wait_seconds: item.fetch_wait_second.map_or(0, |s| s.0),
                sub_path: item.sub_path.map(NonEmpty::into_string),
                git_secret: item.git_secret_name.map(NonEmpty::into_string),
                name,
                git_repo,
                mount_path,
            });
        }
        out
    }

    fn mca_params(&mut self, params: ScalarMap, at: &YamlPath) -> BTreeMap<String, String> {
        let mut out = params.0;
        out.retain(|name, _| {
            let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                self.problem(&at.key(name), "an MCA parameter name has only letters, digits and '_'");
            }
            ok
        });
        out
    }

    fn ssh_key(&mut self, values: Option<SshKeyValues>, at: &SshKeyPaths, required: bool) -> Option<SshKeyPair> {
        let (private_key, public_key) = values.map_or((None, None), |k| (k.id_rsa.map(NonEmpty::into_string), k.id_rsa_pub.map(NonEmpty::into_string)));
        match (private_key, public_key) {
            (None, None) => {
                if required {
                    self.problem(&at.at, "no ssh key: run `kompi keygen` and pass its ssh-key.yaml with -f");
                }
                None
            }
            (Some(_), None) => {
                self.problem(&at.id_rsa_pub, HALF_A_KEY);
                None
            }
            (None, Some(_)) => {
                self.problem(&at.id_rsa, HALF_A_KEY);
                None
            }
            (Some(private_key), Some(public_key)) => match sshkey::check_pair(&private_key, &public_key) {
                Ok(()) => Some(SshKeyPair { private_key, public_key }),
                Err(m) => {
                    self.problem(&at.at, m);
                    None
                }
            },
        }
    }

    fn ssh_gateway(&mut self, port: u16, at: &YamlPath) -> u16 {
        if !NODE_PORT_RANGE.contains(&port) {
            self.warnings.push(format!(
                "{}: {at} {port} is outside Kubernetes' default NodePort range {}-{}; the API server may refuse it",
                self.merged.origin(at),
                NODE_PORT_RANGE.start(),
                NODE_PORT_RANGE.end()
            ));
        }
        port
    }
}

const HALF_A_KEY: &str = "is missing: sshKey needs both id_rsa and id_rsa_pub (`kompi keygen` writes both)";

/// The branch git-sync fetches when `gitBranch` is not given, as in kube-openmpi.
const DEFAULT_GIT_BRANCH: &str = "master";

fn image(repository: NonEmpty, tag: AnyText, pull_policy: PullPolicy) -> Image {
    let repository = repository.into_string();
    let reference = if tag.as_str().is_empty() { repository } else { format!("{repository}:{}", tag.as_str()) };
    Image { reference, pull_policy }
}

/// Paths under which kompi mounts its own volumes.
fn is_kompi_path(path: &str) -> bool {
    let path = std::path::Path::new(path.trim_end_matches('/'));
    [HOSTFILE_DIR, HANDSHAKE_DIR, SSH_KEY_DIR].iter().map(std::path::Path::new).any(|dir| dir == path || dir.parent() == Some(path))
}

/// Slots when the values give none: GPUs for a worker that has them, else whole CPUs (limit, else
/// request), else 1.
pub fn default_slots(resources: Option<&ResourceRequirements>, count_gpus: bool) -> u32 {
    let amount = |name: &str| {
        let r = resources?;
        let from = |m: &Option<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
            m.as_ref()?.get(name).and_then(|q| quantity::parse(&q.0))
        };
        from(&r.limits).or_else(|| from(&r.requests))
    };
    let gpus = if count_gpus { amount(GPU_RESOURCE) } else { None };
    let n = gpus.or_else(|| amount("cpu")).unwrap_or(1.0).floor();
    if n < 1.0 { 1 } else { n.min(f64::from(MAX_SLOTS)) as u32 }
}

#[cfg(test)]
mod tests;
