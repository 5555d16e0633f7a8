//! The standard labels every object carries, and the selectors built from them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kompi_spec::ClusterSpec;
use kompi_spec::contract::{
    APP_NAME, COMPONENT_MASTER, COMPONENT_WORKER, LABEL_COMPONENT, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME,
};

/// kube-openmpi's label on pods that the allow-from-external NetworkPolicy opens to everyone.
pub const ALLOW_FROM_EXTERNAL: &str = "allow_from_external";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Master,
    Worker,
}

impl Component {
    fn as_str(self) -> &'static str {
        match self {
            Component::Master => COMPONENT_MASTER,
            Component::Worker => COMPONENT_WORKER,
        }
    }
}

/// The labels that select a cluster's pods (of one component, if given).
pub fn selector_labels(spec: &ClusterSpec, component: Option<Component>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (LABEL_NAME.to_string(), APP_NAME.to_string()),
        (LABEL_INSTANCE.to_string(), spec.name.to_string()),
    ]);
    if let Some(c) = component {
        labels.insert(LABEL_COMPONENT.to_string(), c.as_str().to_string());
    }
    labels
}

/// Selector labels plus `managed-by`.
pub fn labels(spec: &ClusterSpec, component: Option<Component>) -> BTreeMap<String, String> {
    let mut labels = selector_labels(spec, component);
    labels.insert(LABEL_MANAGED_BY.to_string(), APP_NAME.to_string());
    labels
}

pub fn selector(spec: &ClusterSpec, component: Option<Component>) -> LabelSelector {
    LabelSelector { match_labels: Some(selector_labels(spec, component)), ..Default::default() }
}

/// Name, namespace and labels of a top-level object.
pub fn meta(spec: &ClusterSpec, name: String, component: Option<Component>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(spec.namespace.clone()),
        labels: Some(labels(spec, component)),
        ..Default::default()
    }
}
