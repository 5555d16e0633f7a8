//! Optional policy objects: the workers' PodDisruptionBudget (gang scheduling) and kube-openmpi's two
//! NetworkPolicies.

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec};
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
/// the ssh port of pods labelled allow_from_external, the master; nothing else of them).
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
                ingress: Some(vec![NetworkPolicyIngressRule {
                    ports: Some(vec![NetworkPolicyPort {
                        port: Some(IntOrString::Int(spec.ssh_port.into())),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }]),
                policy_types: Some(vec!["Ingress".into()]),
                ..Default::default()
            }),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::spec;

    #[test]
    fn outside_reaches_only_the_masters_ssh_port() {
        let [internal, external] = network_policies(&spec("ssh:\n  port: 2200\nnetworkPolicy:\n  enabled: true\n"));
        let rules = external.spec.unwrap().ingress.unwrap();
        assert_eq!(rules.len(), 1);
        assert!(rules[0].from.is_none(), "from anywhere");
        let ports = rules[0].ports.clone().unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!((ports[0].port.clone(), ports[0].protocol.as_deref()), (Some(IntOrString::Int(2200)), Some("TCP")));
        let inside = internal.spec.unwrap().ingress.unwrap();
        assert!(inside[0].ports.is_none(), "the cluster's own pods reach every port (MPI picks its own)");
    }
}
