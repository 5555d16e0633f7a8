//! kubeflow's `kubeflow.org/v2beta1` MPIJob, field for field as mpi-operator v0.8 serves it.
//!
//! Everything is optional or defaulted here, so that any object the API server accepts deserializes:
//! a watch that fails on one malformed MPIJob would stall every job. What a field must hold is checked
//! by [`crate::validate`], which turns a bad object into a `Failed` condition naming the field.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::CustomResource;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const GROUP: &str = "kubeflow.org";
pub const VERSION: &str = "v2beta1";
pub const API_VERSION: &str = "kubeflow.org/v2beta1";
pub const KIND: &str = "MPIJob";
pub const PLURAL: &str = "mpijobs";

/// The replica types of `spec.mpiReplicaSpecs` and `status.replicaStatuses`.
pub const LAUNCHER: &str = "Launcher";
pub const WORKER: &str = "Worker";

/// The desired state of an MPIJob.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "kubeflow.org",
    version = "v2beta1",
    kind = "MPIJob",
    plural = "mpijobs",
    singular = "mpijob",
    namespaced,
    status = "JobStatus",
    schema = "disabled",
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.conditions[-1:].type","description":"the latest condition"}"#,
    printcolumn = r#"{"name":"Workers","type":"integer","jsonPath":".spec.mpiReplicaSpecs.Worker.replicas","description":"workers asked for"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.replicaStatuses.Worker.ready","description":"workers whose sshd answers (kompi)"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MPIJobSpec {
    /// Slots of each worker in the hostfile (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots_per_worker: Option<i32>,
    /// List the launcher in the hostfile too, so ranks run there (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_launcher_as_worker: Option<bool>,
    #[serde(default)]
    pub run_policy: RunPolicy,
    /// `Launcher` (exactly one) and `Worker` (one or more).
    #[serde(default)]
    pub mpi_replica_specs: BTreeMap<String, ReplicaSpec>,
    /// Where mpi-operator mounts the ssh key (default /root/.ssh); see [`crate::build`] for kompi's use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_auth_mount_path: Option<String>,
    /// `AtStartup` (default) or `WaitForWorkersReady`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launcher_creation_policy: Option<String>,
    /// `OpenMPI` (default), `Intel` or `MPICH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpi_implementation: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplate>,
    /// `Never`, `OnFailure` (the launcher's default) or, for workers, also `Always` and `ExitCode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
}

/// A pod template kept as the API server stored it (the CRD preserves unknown fields there, as
/// mpi-operator's does); [`PodTemplate::parse`] reads it into its typed form.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(transparent)]
pub struct PodTemplate(pub Value);

impl PodTemplate {
    pub fn parse(&self) -> Result<PodTemplateSpec, String> {
        serde_path_to_error::deserialize(&self.0).map_err(|e| {
            let path = e.path().to_string();
            if path == "." { e.inner().to_string() } else { format!("{path}: {}", e.inner()) }
        })
    }

    pub fn from_typed(template: &PodTemplateSpec) -> PodTemplate {
        PodTemplate(serde_json::to_value(template).unwrap_or_default())
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunPolicy {
    /// `None` (default), `Running` or `All`: which pods are deleted once the job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_pod_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_policy: Option<SchedulingPolicy>,
    /// No pods while true (Kueue's admission contract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// The controller that runs this job; see [`crate::managed`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_resources: Option<BTreeMap<String, Quantity>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_timeout_seconds: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<JobCondition>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replica_statuses: BTreeMap<String, ReplicaStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_time: Option<Time>,
    /// kompi's addition (mpi-operator's launcher Job keeps it in its own status): how many times the run
    /// was started again after a failure, counted against `runPolicy.backoffLimit`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restart_count: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// Pods running. Written even when 0: an all-zero status serialized as `{}` becomes null under
    /// server-side apply on Kubernetes 1.20, which the CRD's schema (an object) rejects.
    #[serde(default)]
    pub active: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub succeeded: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: i32,
    /// kompi's addition (absent under mpi-operator's CRD): pods Ready, for workers sshd answering.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ready: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

impl JobStatus {
    pub fn condition(&self, type_: &str) -> Option<&JobCondition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether the condition is there with status `True`.
    pub fn is(&self, type_: &str) -> bool {
        self.condition(type_).is_some_and(|c| c.status == "True")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_status_of_zeros_is_never_an_empty_object() {
        let json = serde_json::to_value(ReplicaStatus::default()).unwrap();
        assert_eq!(json, serde_json::json!({ "active": 0 }));
    }
}
