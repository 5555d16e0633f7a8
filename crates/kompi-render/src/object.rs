//! The rendered objects, typed, the kinds a cluster is made of with their API groups and versions, and
//! their output as a YAML stream or a JSON List.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde_json::Value;

use crate::pod::fast_readiness_probe;

/// One rendered Kubernetes object.
#[derive(Clone, PartialEq)]
pub enum Object {
    Secret(Secret),
    Service(Service),
    ServiceAccount(ServiceAccount),
    Role(Role),
    RoleBinding(RoleBinding),
    StatefulSet(StatefulSet),
    Pod(Pod),
    PodDisruptionBudget(PodDisruptionBudget),
    NetworkPolicy(NetworkPolicy),
}

/// A kind of object a cluster is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Secret,
    Service,
    ServiceAccount,
    Role,
    RoleBinding,
    StatefulSet,
    Pod,
    PodDisruptionBudget,
    NetworkPolicy,
}

/// Where the API serves a kind: its group ("" for the core group), version and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiType {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
}

impl ApiType {
    /// `apiVersion` as objects carry it: `v1`, `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }
}

impl Kind {
    /// Every kind, in the order `kompi down` deletes them: the master pod and the workers' StatefulSet
    /// first, so that nothing starts a pod that would miss its Secret or its Role.
    pub const ALL: [Kind; 9] = [
        Kind::Pod,
        Kind::StatefulSet,
        Kind::PodDisruptionBudget,
        Kind::NetworkPolicy,
        Kind::Service,
        Kind::RoleBinding,
        Kind::Role,
        Kind::ServiceAccount,
        Kind::Secret,
    ];

    pub fn name(self) -> &'static str {
        self.api_type(Target::default()).kind
    }

    /// The group and version the given server serves this kind under.
    pub fn api_type(self, target: Target) -> ApiType {
        let (group, version, kind) = match self {
            Kind::Secret => ("", "v1", "Secret"),
            Kind::Service => ("", "v1", "Service"),
            Kind::ServiceAccount => ("", "v1", "ServiceAccount"),
            Kind::Pod => ("", "v1", "Pod"),
            Kind::Role => ("rbac.authorization.k8s.io", "v1", "Role"),
            Kind::RoleBinding => ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
            Kind::StatefulSet => ("apps", "v1", "StatefulSet"),
            Kind::NetworkPolicy => ("networking.k8s.io", "v1", "NetworkPolicy"),
            // policy/v1 arrived in 1.21; for the fields kompi sets, v1beta1 is the same object.
            Kind::PodDisruptionBudget if target.kube_minor.is_some_and(|m| m < 21) => ("policy", "v1beta1", "PodDisruptionBudget"),
            Kind::PodDisruptionBudget => ("policy", "v1", "PodDisruptionBudget"),
        };
        ApiType { group, version, kind }
    }

    /// Whether the values decide if a cluster has objects of this kind at all (the ssh gateway's Service,
    /// the NetworkPolicies, the PodDisruptionBudget): `kompi up` removes those the values no longer ask for.
    /// The other kinds are always there (the key Secret too, even when `up` keeps it rather than renders it).
    pub fn depends_on_values(self) -> bool {
        matches!(self, Kind::Service | Kind::NetworkPolicy | Kind::PodDisruptionBudget)
    }
}

/// A Secret shows its keys, never its data (the cluster's private key).
impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Object::Secret(s) => f
                .debug_struct("Secret")
                .field("metadata", &s.metadata)
                .field("keys", &s.data.iter().flat_map(|d| d.keys()).collect::<Vec<_>>())
                .finish_non_exhaustive(),
            Object::Service(o) => o.fmt(f),
            Object::ServiceAccount(o) => o.fmt(f),
            Object::Role(o) => o.fmt(f),
            Object::RoleBinding(o) => o.fmt(f),
            Object::StatefulSet(o) => o.fmt(f),
            Object::Pod(o) => o.fmt(f),
            Object::PodDisruptionBudget(o) => o.fmt(f),
            Object::NetworkPolicy(o) => o.fmt(f),
        }
    }
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Secret(_) => Kind::Secret,
            Object::Service(_) => Kind::Service,
            Object::ServiceAccount(_) => Kind::ServiceAccount,
            Object::Role(_) => Kind::Role,
            Object::RoleBinding(_) => Kind::RoleBinding,
            Object::StatefulSet(_) => Kind::StatefulSet,
            Object::Pod(_) => Kind::Pod,
            Object::PodDisruptionBudget(_) => Kind::PodDisruptionBudget,
            Object::NetworkPolicy(_) => Kind::NetworkPolicy,
        }
    }

    pub fn name(&self) -> &str {
        let meta = match self {
            Object::Secret(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::ServiceAccount(o) => &o.metadata,
            Object::Role(o) => &o.metadata,
            Object::RoleBinding(o) => &o.metadata,
            Object::StatefulSet(o) => &o.metadata,
            Object::Pod(o) => &o.metadata,
            Object::PodDisruptionBudget(o) => &o.metadata,
            Object::NetworkPolicy(o) => &o.metadata,
        };
        meta.name.as_deref().unwrap_or_default()
    }

    /// `Kind/name`, as `--show-only` takes it.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind().name(), self.name())
    }

    /// A copy whose pods probe readiness every second and have no startup probe (see [`fast_readiness_probe`]).
    fn with_fast_readiness_probe(&self) -> Object {
        let mut object = self.clone();
        let spec = match &mut object {
            Object::Pod(pod) => pod.spec.as_mut(),
            Object::StatefulSet(set) => set.spec.template.spec.as_mut(),
            _ => None,
        };
        if let Some(spec) = spec {
            fast_readiness_probe(spec);
        }
        object
    }

    /// The object as JSON, with apiVersion and kind, for the given server.
    pub fn to_json(&self, target: Target) -> Value {
        let adapted;
        let object = if target.triggers_readiness_after_startup() {
            self
        } else {
            adapted = self.with_fast_readiness_probe();
            &adapted
        };
        let mut value = match object {
            Object::Secret(o) => serde_json::to_value(o),
            Object::Service(o) => serde_json::to_value(o),
            Object::ServiceAccount(o) => serde_json::to_value(o),
            Object::Role(o) => serde_json::to_value(o),
            Object::RoleBinding(o) => serde_json::to_value(o),
            Object::StatefulSet(o) => serde_json::to_value(o),
            Object::Pod(o) => serde_json::to_value(o),
            Object::PodDisruptionBudget(o) => serde_json::to_value(o),
            Object::NetworkPolicy(o) => serde_json::to_value(o),
        }
        .expect("k8s-openapi objects serialize");
        value["apiVersion"] = Value::from(self.kind().api_type(target).api_version());
        value
    }
}

/// The Kubernetes server the output is for (`--kube-version`); `None` means a current one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Target {
    pub kube_minor: Option<u32>,
}

impl Target {
    /// Whether the kubelet runs a container's readiness probe as soon as its startup probe succeeded
    /// (1.22, kubernetes/kubernetes#101738) rather than at the readiness probe's next period.
    pub fn triggers_readiness_after_startup(self) -> bool {
        self.kube_minor.is_none_or(|minor| minor >= 22)
    }
}

/// A multi-document YAML stream that `kubectl apply -f -` accepts.
pub fn to_yaml_stream(objects: &[Object], target: Target) -> String {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&to_yaml(&object.to_json(target)));
    }
    out
}

/// A `v1` `List` of the objects (what `kubectl apply -f` takes as JSON).
pub fn to_json_list(objects: &[Object], target: Target) -> String {
    let list = serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": objects.iter().map(|o| o.to_json(target)).collect::<Vec<_>>(),
    });
    serde_json::to_string_pretty(&list).expect("JSON values serialize") + "\n"
}

pub fn to_yaml(value: &Value) -> String {
    let mut text = serde_saphyr::to_string(value).expect("JSON values serialize as YAML");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disruption_budget_is_v1beta1_below_1_21() {
        let old = Target { kube_minor: Some(20) };
        assert_eq!(Kind::PodDisruptionBudget.api_type(old).api_version(), "policy/v1beta1");
        assert_eq!(Kind::PodDisruptionBudget.api_type(Target { kube_minor: Some(21) }).api_version(), "policy/v1");
        assert_eq!(Kind::PodDisruptionBudget.api_type(Target::default()).api_version(), "policy/v1");
        assert_eq!(Kind::Pod.api_type(old).api_version(), "v1");
        assert_eq!(Kind::Role.api_type(old).api_version(), "rbac.authorization.k8s.io/v1");
    }

    /// The MPI containers of both pods, as the given server gets them.
    fn mpi_containers(target: Target) -> Vec<Value> {
        let spec = crate::testing::spec("mpiWorkers:\n  num: 2\n");
        let objects = crate::render(&spec);
        let workers = objects.iter().find(|o| o.kind() == Kind::StatefulSet).unwrap().to_json(target);
        let master = objects.iter().find(|o| o.kind() == Kind::Pod).unwrap().to_json(target);
        let mut containers = vec![workers["spec"]["template"]["spec"]["containers"][0].clone()];
        containers.extend(master["spec"]["containers"].as_array().unwrap().iter().filter(|c| c["name"] == "mpi-master").cloned());
        assert_eq!(containers.len(), 2);
        containers
    }

    #[test]
    fn sshd_is_probed_every_second_only_until_it_first_answers() {
        for c in mpi_containers(Target::default()).into_iter().chain(mpi_containers(Target { kube_minor: Some(22) })) {
            assert_eq!(c["startupProbe"]["tcpSocket"]["port"], "ssh", "{c}");
            assert_eq!(c["startupProbe"]["periodSeconds"], 1);
            assert_eq!(c["readinessProbe"]["tcpSocket"]["port"], "ssh");
            assert_eq!(c["readinessProbe"]["periodSeconds"], 5);
        }
    }

    #[test]
    fn kubelets_before_1_22_probe_readiness_every_second_instead() {
        for c in mpi_containers(Target { kube_minor: Some(21) }).into_iter().chain(mpi_containers(Target { kube_minor: Some(20) })) {
            assert!(c.get("startupProbe").is_none(), "{c}");
            assert_eq!(c["readinessProbe"]["tcpSocket"]["port"], "ssh");
            assert_eq!(c["readinessProbe"]["periodSeconds"], 1);
            assert_eq!(c["readinessProbe"]["failureThreshold"], 2);
        }
    }

    #[test]
    fn every_rendered_object_carries_its_kinds_api_version() {
        let spec = crate::testing::spec("networkPolicy:\n  enabled: true\nsshGateway:\n  enabled: true\nmpiWorkers:\n  customScheduling:\n    podDisruptionBudget:\n      enabled: true\n");
        let objects = crate::render(&spec);
        for target in [Target::default(), Target { kube_minor: Some(20) }] {
            for object in &objects {
                assert!(Kind::ALL.contains(&object.kind()), "Kind::ALL lacks {}", object.id());
                let json = object.to_json(target);
                let api = object.kind().api_type(target);
                assert_eq!(json["apiVersion"], api.api_version(), "{}", object.id());
                assert_eq!(json["kind"], api.kind, "{}", object.id());
            }
        }
    }
}
