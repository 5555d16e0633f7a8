//! The rendered objects, typed, and their output as a YAML stream or a JSON List.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde_json::Value;

/// One rendered Kubernetes object.
#[derive(Clone, Debug, PartialEq)]
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

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Secret(_) => "Secret",
            Object::Service(_) => "Service",
            Object::ServiceAccount(_) => "ServiceAccount",
            Object::Role(_) => "Role",
            Object::RoleBinding(_) => "RoleBinding",
            Object::StatefulSet(_) => "StatefulSet",
            Object::Pod(_) => "Pod",
            Object::PodDisruptionBudget(_) => "PodDisruptionBudget",
            Object::NetworkPolicy(_) => "NetworkPolicy",
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
        format!("{}/{}", self.kind(), self.name())
    }

    /// The object as JSON, with apiVersion and kind, for the given server.
    pub fn to_json(&self, target: Target) -> Value {
        let mut value = match self {
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
        if matches!(self, Object::PodDisruptionBudget(_)) && target.kube_minor.is_some_and(|m| m < 21) {
            // policy/v1 arrived in 1.21; for these fields v1beta1 is the same object.
            value["apiVersion"] = Value::from("policy/v1beta1");
        }
        value
    }
}

/// The Kubernetes server the output is for (`--kube-version`); `None` means a current one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Target {
    pub kube_minor: Option<u32>,
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
