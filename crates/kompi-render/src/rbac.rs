//! ServiceAccount, Role and RoleBinding NAME: exactly what the hostfile sidecar needs (kube-openmpi forgot
//! them: its issue #24). Listing and watching pods (its watcher never GETs one); setting the readiness
//! condition of NAME-master; scaling NAME-worker only when one-shot scale-down is on.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kompi_spec::ClusterSpec;

use crate::labels::meta;

pub fn service_account(spec: &ClusterSpec) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(spec, spec.name.service(), None),
        // Only the sidecar gets a token, through a projected volume of its own.
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}

pub fn role(spec: &ClusterSpec) -> Role {
    let mut rules = vec![
        PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["pods".into()]),
            verbs: vec!["list".into(), "watch".into()],
            ..Default::default()
        },
        PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["pods/status".into()]),
            resource_names: Some(vec![spec.name.master_pod()]),
            verbs: vec!["patch".into()],
            ..Default::default()
        },
    ];
    if spec.scales_down_workers() {
        rules.push(PolicyRule {
            api_groups: Some(vec!["apps".into()]),
            resources: Some(vec!["statefulsets/scale".into()]),
            resource_names: Some(vec![spec.name.worker_set()]),
            verbs: vec!["patch".into()],
            ..Default::default()
        });
    }
    Role { metadata: meta(spec, spec.name.service(), None), rules: Some(rules) }
}

pub fn role_binding(spec: &ClusterSpec) -> RoleBinding {
    RoleBinding {
        metadata: meta(spec, spec.name.service(), None),
        role_ref: RoleRef { api_group: Some("rbac.authorization.k8s.io".into()), kind: "Role".into(), name: spec.name.service() },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: spec.name.service(),
            namespace: Some(spec.namespace.clone()),
            ..Default::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::spec;

    #[test]
    fn read_pods_and_the_masters_status_only_unless_scaling_down() {
        let rules = role(&spec("")).rules.unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].verbs, vec!["list", "watch"]);
        assert_eq!(rules[1].resources.as_deref(), Some(&["pods/status".to_string()][..]));
        assert_eq!(rules[1].resource_names.as_deref(), Some(&["mpi-master".to_string()][..]));
        assert_eq!(rules[1].verbs, vec!["patch"]);
        let rules = role(&spec("mpiMaster:\n  oneShot:\n    enabled: true\n")).rules.unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[2].resources.as_deref(), Some(&["statefulsets/scale".to_string()][..]));
        assert_eq!(rules[2].resource_names.as_deref(), Some(&["mpi-worker".to_string()][..]));
        assert_eq!(rules[2].verbs, vec!["patch"]);
        let no_scale = role(&spec("mpiMaster:\n  oneShot:\n    enabled: true\n    autoScaleDownWorkers: false\n")).rules.unwrap();
        assert_eq!(no_scale.len(), 2);
    }
}
