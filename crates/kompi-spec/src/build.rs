//! From values sources to a `ClusterSpec`: parse each source, check it, merge (later wins), then the
//! checks that need the whole picture. Every problem is reported at once.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Affinity, Container, PodSecurityContext, PodSpec, ResourceRequirements, SecurityContext, Toleration, Volume, VolumeMount,
};

use crate::cluster::{
    AppCode, ClusterName, ClusterSpec, Image, KompiSource, Master, OneShot, PodOptions, PullPolicy, SshKeyPair, Workers, dns1123_label,
};
use crate::contract::{
    DEFAULT_SSH_PORT, HANDSHAKE_DIR, HOSTFILE_DIR, RESERVED_VOLUME_PREFIX, SSH_KEY_DIR, SYNC_SECRET_SUFFIX, SYNC_VOLUME_PREFIX,
    needs_injection,
};
use crate::error::{Problem, SpecError};
use crate::k8s::GPU_RESOURCE;
use crate::limits::{DNS_LABEL_MAX, FIRST_UNPRIVILEGED_PORT, MAX_APP_CODE_NAME, MAX_SLOTS, NODE_PORT_RANGE};
use crate::schema::{ListPaths, Schema};
use crate::tree::{Layer, Merged, Origin, YamlPath, parse_yaml};
use crate::cluster::SecurityProfile;
use crate::values::{AnyText, AppCodeValues, Int, Line, Lines, NonEmpty, ScalarMap, SshKeyPaths, SshKeyValues, Values, ValuesPaths};
use crate::{pss, quantity, set, sshkey, validate};

/// kompi's defaults: kube-openmpi's chart values plus kompi's own keys.
pub const DEFAULTS_YAML: &str = include_str!("defaults.yaml");

/// One source of values, in the order given on the command line.
#[derive(Clone)]
pub enum Source {
    /// `-f FILE`: its name (for messages) and its text.
    File { name: String, text: String },
    /// `--set a.b=c,...`
    Set(String),
    /// `--set-string a.b=c,...`
    SetString(String),
}

/// Never prints a file's text or a flag that sets the private key.
impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let flag = |arg: &str| if arg.contains("id_rsa") { "<redacted>".to_string() } else { arg.to_string() };
        match self {
            Source::File { name, text } => f.debug_struct("File").field("name", name).field("bytes", &text.len()).finish(),
            Source::Set(arg) => f.debug_tuple("Set").field(&flag(arg)).finish(),
            Source::SetString(arg) => f.debug_tuple("SetString").field(&flag(arg)).finish(),
        }
    }
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
    container_security_context: Option<SecurityContext>,
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
            container_security_context: $values.container_security_context,
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
        let restricted = v.security.profile == SecurityProfile::Restricted;
        let mut master_pod = self.pod_options(pod_input!(v.mpi_master, at.mpi_master), false, &app_codes);
        let mut worker_pod = self.pod_options(pod_input!(v.mpi_workers, at.mpi_workers), true, &app_codes);
        if restricted {
            self.restrict(&at.mpi_master.at, &mut master_pod);
            self.restrict(&at.mpi_workers.at, &mut worker_pod);
        }
        let one_shot = v.mpi_master.one_shot;
        let master = Master {
            pod: master_pod,
            follow_workers: v.mpi_master.auto_update_hostfile.enabled,
            one_shot: one_shot.enabled.then(|| OneShot {
                command: one_shot.command.into_string(),
                scale_down_workers: one_shot.auto_scale_down_workers,
                wait_timeout_seconds: one_shot.wait_timeout_seconds.get(),
            }),
        };
        let workers = Workers {
            pod: worker_pod,
            count: v.mpi_workers.num.get(),
            pod_management_policy: v.mpi_workers.pod_management_policy,
            disruption_budget: v.mpi_workers.custom_scheduling.pod_disruption_budget.enabled,
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
        let pods = [(&at.mpi_master.security_context, &master.pod), (&at.mpi_workers.security_context, &workers.pod)];
        self.check_git_sync_root(&pods, &app_codes, &at.app_codes_to_sync, restricted);
        let mpi_image = image(v.image.repository, v.image.tag, v.image.pull_policy);
        let kompi_image = image(v.kompi_image.repository, v.kompi_image.tag, v.kompi_image.pull_policy);
        let inject = v.kompi_image.inject && needs_injection(&mpi_image.reference, &kompi_image.reference);
        ClusterSpec {
            image: mpi_image,
            kompi: KompiSource { image: kompi_image, inject },
            pull_secrets: v.image.pull_secrets.unwrap_or_default(),
            git_sync_image: image(v.git_sync_image.repository, v.git_sync_image.tag, v.git_sync_image.pull_policy),
            mpi: v.mpi.implementation,
            mca_params: self.mca_params(v.mpi.mca_params, &at.mpi.mca_params),
            ssh_port,
            ssh_key: self.ssh_key(v.ssh_key, &at.ssh_key, req.require_ssh_key),
            network_policy: v.network_policy.enabled,
            restricted,
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
            container_security_context: pod.container_security_context,
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
            if let Some(Err(e)) = m.sub_path.as_deref().map(check_sub_path) {
                self.problem(&at.key("subPath"), e);
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
            let sub_path = item.sub_path.map(NonEmpty::into_string);
            if let Some(Err(e)) = sub_path.as_deref().map(check_sub_path) {
                self.problem(&at.sub_path, e);
            }
            out.push(AppCode {
                git_branch: item.git_branch.map_or_else(|| DEFAULT_GIT_BRANCH.into(), NonEmpty::into_string),
                wait_seconds: item.fetch_wait_second.map_or(0, |s| s.0),
                sub_path,
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
        out.retain(|name, value| {
            let checked = validate::check_mca(name, value);
            let ok = checked.is_ok();
            if let Err(m) = checked {
                self.problem(&at.key(name), m);
            }
            ok
        });
        out
    }

    /// `security.profile: restricted`: kompi's non-root settings where the values leave them open,
    /// then the Pod Security Standards' restricted profile checked on what the values set for this
    /// role (its securityContexts and volumes; kompi's own parts are rendered to comply).
    fn restrict(&mut self, role: &YamlPath, pod: &mut PodOptions) {
        let sc = pod.security_context.get_or_insert_with(Default::default);
        sc.run_as_non_root.get_or_insert(true);
        sc.run_as_user.get_or_insert(pss::NON_ROOT_ID);
        sc.run_as_group.get_or_insert(pss::NON_ROOT_ID);
        sc.fs_group.get_or_insert(pss::NON_ROOT_ID);
        sc.seccomp_profile.get_or_insert_with(pss::runtime_default_seccomp);
        pod.container_security_context = Some(pss::restricted_container(pod.container_security_context.take()));
        let container = "mpi";
        let probe = PodSpec {
            security_context: pod.security_context.clone(),
            containers: vec![Container { name: container.into(), security_context: pod.container_security_context.clone(), ..Default::default() }],
            volumes: Some(pod.volumes.clone()),
            ..Default::default()
        };
        for v in pss::restricted(None, &probe) {
            let field = match v.field.strip_prefix(&format!("containers[{container}].securityContext")) {
                Some(rest) => format!("{role}.containerSecurityContext{rest}"),
                None => format!("{role}.{}", v.field),
            };
            self.problem(
                &YamlPath::parse(&field),
                format!("{} breaks the Pod Security Standards' restricted profile ({}), which security.profile: restricted asks for", v.detail, v.control),
            );
        }
    }

    /// git-sync reads a deploy key as root, which a pod that must not run as root refuses at start.
    fn check_git_sync_root(&mut self, pods: &[(&YamlPath, &PodOptions)], app_codes: &[AppCode], list: &ListPaths<AppCodeValues>, restricted: bool) {
        let non_root = pods.iter().find(|(_, pod)| pod.security_context.as_ref().and_then(|s| s.run_as_non_root) == Some(true));
        let why = match non_root {
            _ if restricted => "security.profile is restricted".to_string(),
            Some((security_context, _)) => format!("{security_context}.runAsNonRoot is true"),
            None => return,
        };
        for (i, a) in app_codes.iter().enumerate().filter(|(_, a)| a.git_secret.is_some()) {
            self.problem(
                &list.item(i).git_secret_name,
                format!("git-sync needs root to read the deploy key of {:?}, but {why}; use a public repository or drop that setting", a.name),
            );
        }
    }

    fn ssh_key(&mut self, values: Option<SshKeyValues>, at: &SshKeyPaths, required: bool) -> Option<SshKeyPair> {
        let (private_key, public_key) = values.map_or((None, None), |k| (k.id_rsa.map(Lines::into_string), k.id_rsa_pub.map(Line::into_string)));
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

/// A subPath stays inside its volume: relative, without `..`.
fn check_sub_path(path: &str) -> Result<(), String> {
    if path.starts_with('/') {
        return Err(format!("{path:?} must be relative to the volume, not an absolute path"));
    }
    if path.split('/').any(|part| part == "..") {
        return Err(format!("{path:?} must not contain '..': it would reach outside the volume"));
    }
    Ok(())
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
