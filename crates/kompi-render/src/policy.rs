//! Optional policy objects: the workers' PodDisruptionBudget (gang scheduling) and kube-openmpi's two
//! NetworkPolicies.

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicySpec};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kompi_spec::ClusterSpec;

use crate::labels::{ALLOW_FROM_EXTERNAL, Component, meta, selector, selector_labels};

/// NAME-worker-pdb: all workers must stay, as a gang scheduler expects.
pub fn disruption_budget(spec: &ClusterSpec) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(spec, spec.name.disruption_budget(), Some(Component::Worker)),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(spec.workers.count as i32)),
            selector: Some(selector(spec, Some(Component::Worker))),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// NAME-allow-internal (the cluster's pods reach each other) and NAME-allow-from-external (anyone reaches
/// pods labelled allow_from_external, the master).
pub fn network_policies(spec: &ClusterSpec) -> [NetworkPolicy; 2] {
    let cluster = selector(spec, None);
    let mut external = selector_labels(spec, None);
    external.insert(ALLOW_FROM_EXTERNAL.into(), "true".into());
    [
        NetworkPolicy {
            metadata: meta(spec, format!("{}-allow-internal", spec.name), None),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(cluster.clone()),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer { pod_selector: Some(cluster), ..Default::default() }]),
                    ..Default::default()
                }]),
                policy_types: Some(vec!["Ingress".into()]),
                ..Default::default()
            }),
        },
        NetworkPolicy {
            metadata: meta(spec, format!("{}-allow-from-external", spec.name), None),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector { match_labels: Some(external), ..Default::default() }),
                ingress: Some(vec![NetworkPolicyIngressRule::default()]),
                policy_types: Some(vec!["Ingress".into()]),
                ..Default::default()
            }),
        },
    ]
}
