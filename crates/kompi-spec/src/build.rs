//! From values sources to a `ClusterSpec`: parse each source, check it, merge (later wins), then the
//! checks that need the whole picture. Every problem is reported at once.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{PodSecurityContext, ResourceRequirements};
use serde_json::Value;

use crate::cluster::{
    AppCode, ClusterName, ClusterSpec, Image, Master, MpiImplementation, OneShot, PodManagementPolicy, PodOptions, PullPolicy,
    SshKeyPair, Workers, dns1123_label,
};
use crate::contract::{DEFAULT_SSH_PORT, RESERVED_VOLUME_PREFIX, SSH_KEY_DIR, SYNC_SECRET_SUFFIX, SYNC_VOLUME_PREFIX};
use crate::error::{Problem, SpecError};
use crate::k8s::{self, GPU_RESOURCE};
use crate::limits::{DNS_LABEL_MAX, FIRST_UNPRIVILEGED_PORT, MAX_APP_CODE_NAME, MAX_SLOTS, NODE_PORT_RANGE};
use crate::tree::{Layer, Merged, Origin, YamlPath, describe, parse_yaml};
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
    let mut b = Builder { merged: &merged, problems: Vec::new(), warnings };
    let spec = b.spec(name.expect("checked above"), req);
    if b.problems.is_empty() { Ok(Loaded { spec, warnings: b.warnings }) } else { Err(SpecError(b.problems)) }
}

struct Builder<'a> {
    merged: &'a Merged,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

impl Builder<'_> {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        let path = YamlPath::parse(path);
        self.problems.push(Problem { origin: self.merged.origin(&path), message: message.into(), path });
    }

    fn get(&self, path: &str) -> Option<&Value> {
        self.merged.get(path)
    }

    fn str(&self, path: &str) -> String {
        match self.get(path) {
            Some(Value::String(s)) => s.clone(),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
            _ => String::new(),
        }
    }

    fn bool(&self, path: &str) -> bool {
        self.get(path).and_then(Value::as_bool).unwrap_or(false)
    }

    fn int(&self, path: &str) -> Option<i64> {
        self.get(path).and_then(Value::as_i64)
    }

    fn spec(&mut self, name: ClusterName, req: &Request) -> ClusterSpec {
        let ssh_port = self.int("ssh.port").and_then(|p| u16::try_from(p).ok()).unwrap_or(DEFAULT_SSH_PORT);
        let master = Master {
            pod: self.pod_options("mpiMaster", false),
            follow_workers: self.bool("mpiMaster.autoUpdateHostfile.enabled"),
            one_shot: self.bool("mpiMaster.oneShot.enabled").then(|| OneShot {
                command: self.str("mpiMaster.oneShot.command"),
                scale_down_workers: self.bool("mpiMaster.oneShot.autoScaleDownWorkers"),
                wait_timeout_seconds: self.int("mpiMaster.oneShot.waitTimeoutSeconds").unwrap_or(600) as u32,
            }),
        };
        let workers = Workers {
            pod: self.pod_options("mpiWorkers", true),
            count: self.int("mpiWorkers.num").unwrap_or(0) as u32,
            pod_management_policy: PodManagementPolicy::parse(&self.str("mpiWorkers.podManagementPolicy")).unwrap_or(PodManagementPolicy::Parallel),
            disruption_budget: self.bool("mpiWorkers.customScheduling.podDisruptionBudget.enabled"),
        };
        for (role, pod) in [("mpiMaster", &master.pod), ("mpiWorkers", &workers.pod)] {
            if ssh_port < FIRST_UNPRIVILEGED_PORT && !pod.runs_as_root() {
                self.problem(
                    "ssh.port",
                    format!(
                        "port {ssh_port} needs root, but {role}.securityContext.runAsUser is not 0; use a port of {FIRST_UNPRIVILEGED_PORT} or more (the default is {DEFAULT_SSH_PORT})"
                    ),
                );
            }
        }
        let app_codes = self.app_codes();
        for (role, pod) in [("mpiMaster", &master.pod), ("mpiWorkers", &workers.pod)] {
            self.check_volumes(role, pod, &app_codes);
        }
        ClusterSpec {
            image: self.image("image"),
            pull_secrets: k8s::read(self.get("image.pullSecrets")).unwrap_or_default(),
            git_sync_image: self.image("gitSyncImage"),
            mpi: MpiImplementation::parse(&self.str("mpi.implementation")).unwrap_or(MpiImplementation::OpenMpi),
            mca_params: self.mca_params(),
            ssh_port,
            ssh_key: self.ssh_key(req.require_ssh_key),
            network_policy: self.bool("networkPolicy.enabled"),
            ssh_gateway: self.ssh_gateway(),
            namespace: req.namespace.to_string(),
            name,
            master,
            workers,
            app_codes,
        }
    }

    fn image(&self, prefix: &str) -> Image {
        let repository = self.str(&format!("{prefix}.repository"));
        let tag = self.str(&format!("{prefix}.tag"));
        let reference = if tag.is_empty() { repository } else { format!("{repository}:{tag}") };
        // The schema allows only its words.
        let pull_policy = PullPolicy::parse(&self.str(&format!("{prefix}.pullPolicy"))).unwrap_or(PullPolicy::IfNotPresent);
        Image { reference, pull_policy }
    }

    fn pod_options(&mut self, role: &str, is_worker: bool) -> PodOptions {
        let at = |key: &str| format!("{role}.{key}");
        let scheduler_name = if self.bool(&at("customScheduling.enabled")) {
            let name = self.str(&at("customScheduling.schedulerName"));
            if name.is_empty() {
                self.problem(&at("customScheduling.schedulerName"), "is required when customScheduling.enabled is true");
            }
            Some(name)
        } else {
            None
        };
        let resources: Option<ResourceRequirements> =
            self.get(&at("resources")).map(k8s::normalize_resources).and_then(|v| serde_json::from_value(v).ok());
        self.check_quantities(&at("resources"), resources.as_ref());
        let slots = match self.int(&at("slots")) {
            Some(n) => n as u32,
            None => default_slots(resources.as_ref(), is_worker),
        };
        PodOptions {
            security_context: k8s::read::<PodSecurityContext>(self.get(&at("securityContext"))),
            scheduler_name,
            resources,
            node_selector: k8s::read(self.get(&at("nodeSelector"))).unwrap_or_default(),
            tolerations: k8s::read(self.get(&at("tolerations"))).unwrap_or_default(),
            affinity: k8s::read(self.get(&at("affinity"))).filter(|a| a != &Default::default()),
            volumes: k8s::read(self.get(&at("volumes"))).unwrap_or_default(),
            volume_mounts: k8s::read(self.get(&at("volumeMounts"))).unwrap_or_default(),
            slots,
        }
    }

    fn check_quantities(&mut self, path: &str, resources: Option<&ResourceRequirements>) {
        let Some(r) = resources else { return };
        for (section, map) in [("limits", &r.limits), ("requests", &r.requests)] {
            for (name, q) in map.iter().flatten() {
                if quantity::parse(&q.0).is_none_or(|v| v < 0.0) {
                    let shown = if name == GPU_RESOURCE { "gpu".to_string() } else { name.clone() };
                    self.problem(
                        &format!("{path}.{section}.{shown}"),
                        format!("{:?} is not a Kubernetes quantity (for example 2, 500m, 1.5Gi)", q.0),
                    );
                }
            }
        }
    }

    fn check_volumes(&mut self, role: &str, pod: &PodOptions, app_codes: &[AppCode]) {
        let mut names = BTreeSet::new();
        for (i, v) in pod.volumes.iter().enumerate() {
            if v.name.starts_with(RESERVED_VOLUME_PREFIX) {
                self.problem(&format!("{role}.volumes[{i}].name"), format!("{:?}: names starting with {RESERVED_VOLUME_PREFIX:?} are kompi's own; rename it", v.name));
            } else if !names.insert(v.name.as_str()) {
                self.problem(&format!("{role}.volumes[{i}].name"), format!("{:?} appears twice", v.name));
            }
            if let Err(m) = dns1123_label(&v.name) {
                self.problem(&format!("{role}.volumes[{i}].name"), m);
            }
        }
        let sync_volumes: Vec<String> = app_codes.iter().map(AppCode::volume).collect();
        for (i, m) in pod.volume_mounts.iter().enumerate() {
            if !names.contains(m.name.as_str()) && !sync_volumes.contains(&m.name) {
                let known = names.iter().copied().collect::<Vec<_>>();
                let hint = validate::did_you_mean(&m.name, &known).map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default();
                self.problem(&format!("{role}.volumeMounts[{i}].name"), format!("no volume named {:?} in {role}.volumes{hint}", m.name));
            }
            if !m.mount_path.starts_with('/') {
                self.problem(&format!("{role}.volumeMounts[{i}].mountPath"), format!("{:?} must be an absolute path", m.mount_path));
            } else if is_kompi_path(&m.mount_path) {
                self.problem(&format!("{role}.volumeMounts[{i}].mountPath"), format!("{:?} would hide a directory kompi mounts there; choose another path", m.mount_path));
            }
        }
    }

    fn app_codes(&mut self) -> Vec<AppCode> {
        let Some(Value::Array(items)) = self.get("appCodesToSync").cloned() else { return Vec::new() };
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = |key: &str| format!("appCodesToSync[{i}].{key}");
            let text = |key: &str| match item.get(key) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(v @ Value::Number(_)) => Some(v.to_string()),
                _ => None,
            };
            let Some(name) = text("name") else {
                self.problem(&format!("appCodesToSync[{i}]"), "needs a name");
                continue;
            };
            if let Err(m) = dns1123_label(&name) {
                self.problem(&at("name"), m);
            } else if name.len() > MAX_APP_CODE_NAME {
                self.problem(
                    &at("name"),
                    format!("{name:?} is too long: at most {MAX_APP_CODE_NAME} characters, so that the volume {SYNC_VOLUME_PREFIX}{name}{SYNC_SECRET_SUFFIX} stays within {DNS_LABEL_MAX}"),
                );
            }
            if !seen.insert(name.clone()) {
                self.problem(&at("name"), format!("{name:?} appears twice in appCodesToSync"));
            }
            let git_repo = text("gitRepo").unwrap_or_default();
            if git_repo.is_empty() {
                self.problem(&at("gitRepo"), "is required: the repository to fetch");
            }
            let mount_path = text("mountPath").unwrap_or_default();
            if !mount_path.starts_with('/') {
                self.problem(&at("mountPath"), format!("is required and must be an absolute path, got {}", item.get("mountPath").map(describe).unwrap_or_else(|| "nothing".into())));
            }
            out.push(AppCode {
                git_branch: text("gitBranch").unwrap_or_else(|| "master".into()),
                wait_seconds: text("fetchWaitSecond").and_then(|s| s.parse().ok()).unwrap_or(0),
                sub_path: text("subPath"),
                git_secret: text("gitSecretName"),
                name,
                git_repo,
                mount_path,
            });
        }
        out
    }

    fn mca_params(&mut self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(Value::Object(map)) = self.get("mpi.mcaParams").cloned() {
            for (k, v) in map {
                if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    self.problem(&format!("mpi.mcaParams.{k}"), "an MCA parameter name has only letters, digits and '_'");
                    continue;
                }
                let value = match v {
                    Value::String(s) => s,
                    Value::Null => continue,
                    other => other.to_string(),
                };
                out.insert(k, value);
            }
        }
        out
    }

    fn ssh_key(&mut self, required: bool) -> Option<SshKeyPair> {
        let private_key = self.str("sshKey.id_rsa");
        let public_key = self.str("sshKey.id_rsa_pub");
        match (private_key.is_empty(), public_key.is_empty()) {
            (true, true) if required => {
                self.problem("sshKey", "no ssh key: run `kompi keygen` and pass its ssh-key.yaml with -f");
                None
            }
            (true, true) => None,
            (true, false) | (false, true) => {
                let missing = if private_key.is_empty() { "sshKey.id_rsa" } else { "sshKey.id_rsa_pub" };
                self.problem(missing, "is missing: sshKey needs both id_rsa and id_rsa_pub (`kompi keygen` writes both)");
                None
            }
            (false, false) => match sshkey::check_pair(&private_key, &public_key) {
                Ok(()) => Some(SshKeyPair { private_key, public_key }),
                Err(m) => {
                    self.problem("sshKey", m);
                    None
                }
            },
        }
    }

    fn ssh_gateway(&mut self) -> Option<u16> {
        if !self.bool("sshGateway.enabled") {
            return None;
        }
        let port = self.int("sshGateway.nodePort").and_then(|p| u16::try_from(p).ok()).unwrap_or(30220);
        if !NODE_PORT_RANGE.contains(&port) {
            self.warnings.push(format!(
                "{}: sshGateway.nodePort {port} is outside Kubernetes' default NodePort range {}-{}; the API server may refuse it",
                self.merged.origin(&YamlPath::parse("sshGateway.nodePort")),
                NODE_PORT_RANGE.start(),
                NODE_PORT_RANGE.end()
            ));
        }
        Some(port)
    }
}

/// Paths under which kompi mounts its own volumes.
fn is_kompi_path(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    ["/kube-openmpi", "/kube-openmpi/generated", "/kube-openmpi/handshake", SSH_KEY_DIR, "/ssh-key"].contains(&path)
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
