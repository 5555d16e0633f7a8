//! One reconcile of one job, decided without a client: from the job, its current status and the pods
//! observed, what the operator must apply, create and delete, the status to write and the events to
//! record. The operator only carries this out.

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kompi_render::hostfile::is_serving;

use crate::api::JobStatus;
use crate::build::{Settings, config_map, launcher_pod, service, worker_pod};
use crate::job::{CleanPodPolicy, Job, LauncherCreation};
use crate::status::{self, Observed, Transition, is_finished, phase, run_started};

#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub status: JobStatus,
    pub events: Vec<Transition>,
    /// The Service and the ConfigMap, applied when they differ from what exists.
    pub service: Option<Service>,
    pub config_map: Option<ConfigMap>,
    /// Whether the ssh key Secret must exist (it is made once and never changed).
    pub needs_secret: bool,
    /// Pods to create, workers first, then the launcher.
    pub create: Vec<Pod>,
    /// Names of pods to delete.
    pub delete: Vec<String>,
}

pub fn plan(job: &Job, current: &JobStatus, pods: &[&Pod], settings: &Settings, now: &Time) -> Plan {
    let observed = Observed::sort(&job.names, pods.iter().copied());
    let (status, events) = status::next(job, current, &observed, now);
    let mut plan = Plan { status, events, ..Default::default() };
    let live = |pod: &&Pod| pod.metadata.deletion_timestamp.is_none();
    let name_of = |pod: &Pod| pod.metadata.name.clone().unwrap_or_default();
    let all = || observed.launcher.into_iter().chain(observed.workers.values().copied()).chain(observed.others.iter().copied());

    if is_finished(&plan.status) {
        let doomed = |pod: &Pod| match job.run_policy.clean_pod_policy {
            CleanPodPolicy::None => false,
            CleanPodPolicy::All => true,
            CleanPodPolicy::Running => matches!(phase(pod), "Running" | "Pending"),
        };
        plan.delete = all().filter(live).filter(|p| doomed(p)).map(name_of).collect();
        return plan;
    }
    if job.run_policy.suspend {
        plan.delete = all().filter(live).map(name_of).collect();
        return plan;
    }

    let running: Vec<u32> = observed.workers.iter().filter(|(_, p)| phase(p) == "Running").map(|(i, _)| *i).collect();
    plan.service = Some(service(job));
    plan.config_map = Some(config_map(job, &running));
    plan.needs_secret = true;
    plan.delete = observed.workers.iter().filter(|(i, _)| **i >= job.workers).map(|(_, p)| *p).filter(live).map(name_of).collect();
    if run_started(&plan.status, &observed) {
        return plan;
    }
    let missing = (0..job.workers).filter(|i| !observed.workers.contains_key(i));
    plan.create = missing.filter_map(|i| worker_pod(job, i, settings)).collect();
    let all_ready = (0..job.workers).all(|i| observed.workers.get(&i).is_some_and(|p| is_serving(p)));
    if job.launcher_creation == LauncherCreation::AtStartup || all_ready {
        plan.create.push(launcher_pod(job, settings));
    }
    plan
}
