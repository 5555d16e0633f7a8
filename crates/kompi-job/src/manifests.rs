//! What `kompi operator manifests` prints and `kompi operator install` applies: the CRD, the operator's
//! namespace, ServiceAccount, ClusterRole and ClusterRoleBinding, the Role and RoleBinding of its leader
//! election Lease, and its Deployment (two replicas: one leads, one stands by).
//!
//! The ClusterRole grants exactly what the operator does, nothing more: it reads MPIJobs and writes only
//! their status; it makes and removes the pods of jobs; it applies Services and ConfigMaps; it may create
//! Secrets but never read one (the key is made once, in memory, and mounted by name). Its one Lease, in
//! its own namespace, it may read and update by name. The e2e tests check each verb against the API
//! server's authorizer.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, HTTPGetAction, Namespace, PodSecurityContext, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, SecurityContext, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kompi_spec::contract::KOMPI_BIN;
use serde_json::Value;

use crate::contract::{LABEL_MANAGED_BY, MANAGED_BY};
use crate::crd::crd;
use crate::gang::GangScheduler;
use crate::managed::Claim;

pub const DEFAULT_NAMESPACE: &str = "kompi-system";
pub const NAME: &str = "kompi-operator";
const LABEL_APP: &str = "app.kubernetes.io/name";
/// The uid of the runtime image's unprivileged user (`mpi`); the operator needs no other.
const OPERATOR_UID: i64 = 1000;
/// The operator serves /metrics, /healthz and /readyz here.
pub const HTTP_PORT: u16 = 8080;
/// Replicas of the operator: one leads (holds the Lease named [`NAME`]), the other stands by.
pub const REPLICAS: i32 = 2;

/// How the operator is installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallOptions {
    pub namespace: String,
    /// The operator's image, which is also the image kompi is injected from.
    pub image: String,
    pub pull_policy: String,
    pub claim: Claim,
    pub workers_timeout_seconds: u32,
    /// The gang scheduler whose PodGroups the operator makes (`--gang-scheduling`).
    pub gang: Option<GangScheduler>,
}

/// Every object, in the order they are applied (the CRD and the namespace first).
pub fn manifests(o: &InstallOptions) -> Vec<Value> {
    let json = |v: Result<Value, serde_json::Error>| v.expect("k8s-openapi objects serialize");
    vec![
        json(serde_json::to_value(crd())),
        json(serde_json::to_value(namespace(o))),
        json(serde_json::to_value(service_account(o))),
        json(serde_json::to_value(cluster_role(o.gang.as_ref()))),
        json(serde_json::to_value(cluster_role_binding(o))),
        json(serde_json::to_value(lease_role(o))),
        json(serde_json::to_value(lease_role_binding(o))),
        json(serde_json::to_value(deployment(o))),
    ]
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([(LABEL_APP.to_string(), NAME.to_string()), (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string())])
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: namespace.map(Into::into), labels: Some(labels()), ..Default::default() }
}

fn namespace(o: &InstallOptions) -> Namespace {
    Namespace { metadata: meta(&o.namespace, None), ..Default::default() }
}

fn service_account(o: &InstallOptions) -> ServiceAccount {
    ServiceAccount { metadata: meta(NAME, Some(&o.namespace)), ..Default::default() }
}

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    }
}

/// The operator's permissions: [`RULES`], and with a gang scheduler its PodGroups (of that scheduler's
/// API group only).
pub fn cluster_role(gang: Option<&GangScheduler>) -> ClusterRole {
    let pod_groups = gang.map(|g| rule(g.group(), &[POD_GROUPS], POD_GROUP_VERBS));
    ClusterRole {
        metadata: meta(NAME, None),
        rules: Some(RULES.iter().map(|(group, resources, verbs)| rule(group, resources, verbs)).chain(pod_groups).collect()),
        ..Default::default()
    }
}

const POD_GROUPS: &str = crate::gang::PLURAL;
/// get: only to tell, when a create finds the name taken, whether the PodGroup is the job's.
const POD_GROUP_VERBS: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];

/// (API group, resources, verbs).
pub const RULES: &[(&str, &[&str], &[&str])] = &[
    // delete: only a finished job whose ttlSecondsAfterFinished ran out (Kubernetes 1.20 has no TTL controller).
    ("kubeflow.org", &["mpijobs"], &["get", "list", "watch", "delete"]),
    ("kubeflow.org", &["mpijobs/status"], &["patch"]),
    // Owner references with blockOwnerDeletion need this where OwnerReferencesPermissionEnforcement is on.
    ("kubeflow.org", &["mpijobs/finalizers"], &["update"]),
    // get: only to tell, when a create finds the name taken, whether the object is the job's.
    ("", &["pods"], &["get", "list", "watch", "create", "delete"]),
    ("", &["services", "configmaps"], &["get", "list", "watch", "create", "patch"]),
    ("", &["secrets"], &["create"]),
    ("events.k8s.io", &["events"], &["create", "patch"]),
];

fn the_operator(o: &InstallOptions) -> Option<Vec<Subject>> {
    Some(vec![Subject { kind: "ServiceAccount".into(), name: NAME.into(), namespace: Some(o.namespace.clone()), ..Default::default() }])
}

fn cluster_role_binding(o: &InstallOptions) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(NAME, None),
        role_ref: RoleRef { api_group: Some("rbac.authorization.k8s.io".into()), kind: "ClusterRole".into(), name: NAME.into() },
        subjects: the_operator(o),
    }
}

/// The leader election Lease, in the operator's namespace only: it reads and renews that one Lease by
/// name; `create` cannot be limited to a name (the authorizer sees none on a create), hence its own rule.
fn lease_role(o: &InstallOptions) -> Role {
    let leases = |verbs: &[&str], names: Option<Vec<String>>| PolicyRule { resource_names: names, ..rule("coordination.k8s.io", &["leases"], verbs) };
    Role { metadata: meta(NAME, Some(&o.namespace)), rules: Some(vec![leases(&["create"], None), leases(&["get", "update"], Some(vec![NAME.into()]))]) }
}

fn lease_role_binding(o: &InstallOptions) -> RoleBinding {
    RoleBinding {
        metadata: meta(NAME, Some(&o.namespace)),
        role_ref: RoleRef { api_group: Some("rbac.authorization.k8s.io".into()), kind: "Role".into(), name: NAME.into() },
        subjects: the_operator(o),
    }
}

/// The command line of the operator's container.
pub fn operator_args(o: &InstallOptions) -> Vec<String> {
    let mut args = vec![
        "operator".to_string(),
        format!("--runtime-image={}", o.image),
        format!("--runtime-pull-policy={}", o.pull_policy),
        format!("--workers-timeout={}", o.workers_timeout_seconds),
        format!("--http-port={HTTP_PORT}"),
        "--leader-elect".to_string(),
        format!("--leader-elect-resource-name={NAME}"),
        format!("--leader-elect-resource-namespace={}", o.namespace),
    ];
    if o.claim == Claim::KompiOnly {
        args.push("--beside-mpi-operator".into());
    }
    if let Some(gang) = &o.gang {
        args.push(format!("--gang-scheduling={}", gang.flag()));
    }
    args
}

fn deployment(o: &InstallOptions) -> Deployment {
    let selector = BTreeMap::from([(LABEL_APP.to_string(), NAME.to_string())]);
    let quantity = |q: &str| Quantity(q.into());
    let container = Container {
        name: "operator".into(),
        image: Some(o.image.clone()),
        image_pull_policy: Some(o.pull_policy.clone()),
        command: Some(vec![KOMPI_BIN.into()]),
        args: Some(operator_args(o)),
        env: Some(vec![EnvVar { name: "RUST_LOG".into(), value: Some("info".into()), ..Default::default() }]),
        ports: Some(vec![ContainerPort { name: Some("http".into()), container_port: HTTP_PORT.into(), ..Default::default() }]),
        // Ready once its watches have listed everything, leader and standby alike.
        readiness_probe: Some(Probe { period_seconds: Some(2), ..http_get("/readyz") }),
        liveness_probe: Some(Probe { period_seconds: Some(10), failure_threshold: Some(3), ..http_get("/healthz") }),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([("cpu".to_string(), quantity("50m")), ("memory".to_string(), quantity("32Mi"))])),
            limits: Some(BTreeMap::from([("memory".to_string(), quantity("256Mi"))])),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    Deployment {
        metadata: meta(NAME, Some(&o.namespace)),
        spec: DeploymentSpec {
            replicas: Some(REPLICAS),
            // The Lease keeps it to one acting operator at a time, so a rollout may overlap old and new.
            strategy: Some(DeploymentStrategy { type_: Some("RollingUpdate".into()), ..Default::default() }),
            selector: LabelSelector { match_labels: Some(selector.clone()), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels()), annotations: Some(scrape_annotations()), ..Default::default() }),
                spec: Some(PodSpec {
                    service_account_name: Some(NAME.into()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(OPERATOR_UID),
                        run_as_group: Some(OPERATOR_UID),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

fn http_get(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction { path: Some(path.into()), port: IntOrString::String("http".into()), ..Default::default() }),
        ..Default::default()
    }
}

/// The annotations Prometheus' usual Kubernetes pod discovery configuration scrapes by.
fn scrape_annotations() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("prometheus.io/scrape".to_string(), "true".to_string()),
        ("prometheus.io/port".to_string(), HTTP_PORT.to_string()),
        ("prometheus.io/path".to_string(), "/metrics".to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(claim: Claim) -> InstallOptions {
        InstallOptions {
            namespace: "kompi-system".into(),
            image: "kompi/runtime:0.1.0".into(),
            pull_policy: "IfNotPresent".into(),
            claim,
            workers_timeout_seconds: 600,
            gang: None,
        }
    }

    #[test]
    fn crd_first_then_namespace_rbac_and_the_deployment() {
        let kinds: Vec<String> = manifests(&options(Claim::Every)).iter().map(|m| m["kind"].as_str().unwrap().to_string()).collect();
        assert_eq!(
            kinds,
            ["CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment"]
        );
    }

    #[test]
    fn two_replicas_elect_a_leader_through_their_one_lease() {
        let o = options(Claim::Every);
        let args = operator_args(&o);
        for arg in ["--leader-elect", "--leader-elect-resource-name=kompi-operator", "--leader-elect-resource-namespace=kompi-system", "--http-port=8080"] {
            assert!(args.contains(&arg.to_string()), "{arg} in {args:?}");
        }
        let d = serde_json::to_value(deployment(&o)).unwrap();
        assert_eq!(d["spec"]["replicas"], 2);
        let container = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
        let role = serde_json::to_value(lease_role(&o)).unwrap();
        assert_eq!(role["metadata"]["namespace"], "kompi-system");
        let rules = role["rules"].as_array().unwrap();
        assert!(rules.iter().all(|r| r["apiGroups"] == serde_json::json!(["coordination.k8s.io"]) && r["resources"] == serde_json::json!(["leases"])));
        assert_eq!(rules[0]["verbs"], serde_json::json!(["create"]));
        assert_eq!((&rules[1]["verbs"], &rules[1]["resourceNames"]), (&serde_json::json!(["get", "update"]), &serde_json::json!(["kompi-operator"])));
    }

    #[test]
    fn the_operator_never_reads_secrets_and_writes_only_job_status() {
        let role = serde_json::to_value(cluster_role(None)).unwrap();
        let rules = role["rules"].as_array().unwrap();
        let verbs_of = |resource: &str| -> Vec<String> {
            rules
                .iter()
                .filter(|r| r["resources"].as_array().unwrap().iter().any(|x| x == resource))
                .flat_map(|r| r["verbs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()))
                .collect()
        };
        assert_eq!(verbs_of("secrets"), ["create"]);
        assert_eq!(verbs_of("mpijobs"), ["get", "list", "watch", "delete"]);
        assert_eq!(verbs_of("mpijobs/status"), ["patch"]);
        assert!(rules.iter().all(|r| !r["verbs"].as_array().unwrap().iter().any(|v| v == "*")));
    }

    #[test]
    fn a_gang_scheduler_adds_its_podgroups_and_no_other() {
        let groups_of = |gang: Option<&GangScheduler>| -> Vec<(String, Vec<String>)> {
            let role = serde_json::to_value(cluster_role(gang)).unwrap();
            let rules = role["rules"].as_array().unwrap().clone();
            rules
                .iter()
                .filter(|r| r["resources"].as_array().unwrap().iter().any(|x| x == "podgroups"))
                .map(|r| (r["apiGroups"][0].as_str().unwrap().to_string(), r["verbs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()))
                .collect()
        };
        assert!(groups_of(None).is_empty());
        let verbs: Vec<String> = POD_GROUP_VERBS.iter().map(|v| v.to_string()).collect();
        assert_eq!(groups_of(Some(&GangScheduler::Volcano)), [("scheduling.volcano.sh".to_string(), verbs.clone())]);
        let plugins = GangScheduler::Coscheduling { scheduler_name: "scheduler-plugins-scheduler".into() };
        assert_eq!(groups_of(Some(&plugins)), [("scheduling.x-k8s.io".to_string(), verbs)]);
        let mut o = options(Claim::Every);
        assert!(!operator_args(&o).iter().any(|a| a.starts_with("--gang-scheduling")));
        o.gang = Some(plugins);
        assert!(operator_args(&o).contains(&"--gang-scheduling=scheduler-plugins-scheduler".to_string()));
    }

    #[test]
    fn beside_mpi_operator_the_operator_is_told_so() {
        assert!(!operator_args(&options(Claim::Every)).contains(&"--beside-mpi-operator".to_string()));
        assert!(operator_args(&options(Claim::KompiOnly)).contains(&"--beside-mpi-operator".to_string()));
    }
}
