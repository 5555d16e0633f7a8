//! One reconcile of one job, decided without a client: from the job, its current status and the pods
//! observed, what the operator must apply, create and delete, the status to write, the events to
//! record, and when to look again (a deadline or a TTL, which no watch event announces). The operator
//! only carries this out.

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kompi_render::hostfile::is_serving;
use kube::core::DynamicObject;

use crate::api::JobStatus;
use crate::build::{Settings, config_map, launcher_pod, service, worker_pod};
use crate::gang::pod_group;
use crate::job::{CleanPodPolicy, Job, LauncherCreation};
use crate::status::{self, Observed, Transition, deadline, expiry, is_finished, phase, reason, restart_count, run_started};

#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub status: JobStatus,
    pub events: Vec<Transition>,
    /// The Service and the ConfigMap, applied when they differ from what exists.
    pub service: Option<Service>,
    pub config_map: Option<ConfigMap>,
    /// Whether the ssh key Secret must exist (it is made once and never changed).
    pub needs_secret: bool,
    /// The job's PodGroup when the operator gang-schedules, applied before any pod is created.
    pub pod_group: Option<DynamicObject>,
    /// Delete the job's PodGroup: the job is suspended, or finished with a `cleanPodPolicy` that
    /// removes pods (when mpi-operator deletes it too).
    pub delete_pod_group: bool,
    /// Pods to create, workers first, then the launcher.
    pub create: Vec<Pod>,
    /// Names of pods to delete.
    pub delete: Vec<String>,
    /// Delete the MPIJob itself (and, through owner references, all it made): its
    /// `ttlSecondsAfterFinished` ran out.
    pub delete_job: bool,
    /// Reconcile again after this many seconds even if nothing changes: the time left to the active
    /// deadline or to the TTL's end.
    pub requeue_after: Option<u64>,
}

pub fn plan(job: &Job, current: &JobStatus, pods: &[&Pod], settings: &Settings, now: &Time) -> Plan {
    let (status, events) = status::next(job, current, &Observed::sort(&job.names, pods.iter().copied()), settings.workers_timeout_exit, now);
    let mut plan = Plan { status, events, ..Default::default() };
    if current.conditions.is_empty() && job.scheduling.given && settings.gang.is_none() {
        plan.events.push(Transition {
            warning: true,
            reason: reason::NOT_ENFORCED.into(),
            message: "runPolicy.schedulingPolicy is not enforced: the operator runs without --gang-scheduling, so the job gets no PodGroup".into(),
        });
    }
    let gang = settings.gang.as_ref();
    // Sorted again under the new status: a restart decided just now makes the failed run's pods leave.
    let observed = Observed::sort(&job.names, pods.iter().copied()).without_leaving(&plan.status);
    let live = |pod: &&Pod| pod.metadata.deletion_timestamp.is_none();
    let name_of = |pod: &Pod| pod.metadata.name.clone().unwrap_or_default();
    let all = || observed.launcher.into_iter().chain(observed.workers.values().copied()).chain(observed.others.iter().copied()).chain(observed.leaving.iter().copied());
    let seconds_until = |at: i64| u64::try_from(at.saturating_sub(now.0.as_second())).unwrap_or(0);

    if is_finished(&plan.status) {
        let stopped = plan.status.condition(status::FAILED).is_some_and(|c| c.reason.as_deref() == Some(reason::DEADLINE_EXCEEDED));
        let doomed = |pod: &Pod| {
            let running = matches!(phase(pod), "Running" | "Pending");
            match job.run_policy.clean_pod_policy {
                CleanPodPolicy::All => true,
                CleanPodPolicy::Running => running,
                CleanPodPolicy::None => stopped && running,
            }
        };
        plan.delete = all().filter(live).filter(|p| doomed(p)).map(name_of).collect();
        plan.delete_pod_group = gang.is_some() && job.run_policy.clean_pod_policy != CleanPodPolicy::None;
        // Kubernetes 1.20 has no TTL controller for anything but batch Jobs (and that one only as an
        // alpha feature): the operator expires finished MPIJobs itself.
        if let Some(at) = expiry(job, &plan.status) {
            match seconds_until(at) {
                0 => plan.delete_job = true,
                left => plan.requeue_after = Some(left),
            }
        }
        return plan;
    }
    if job.run_policy.suspend {
        plan.delete = all().filter(live).map(name_of).collect();
        plan.delete_pod_group = gang.is_some();
        return plan;
    }
    plan.requeue_after = deadline(job, &plan.status).map(|at| seconds_until(at).max(1));

    let running: Vec<u32> = observed.workers.iter().filter(|(_, p)| phase(p) == "Running").map(|(i, _)| *i).collect();
    plan.service = Some(service(job));
    plan.config_map = Some(config_map(job, &running));
    plan.needs_secret = true;
    plan.pod_group = gang.map(|g| pod_group(job, g));
    let extra = observed.workers.iter().filter(|(i, _)| **i >= job.workers).map(|(_, p)| *p);
    plan.delete = extra.chain(observed.leaving.iter().copied()).filter(live).map(name_of).collect();
    if run_started(&plan.status, &observed) {
        return plan;
    }
    // A name still held by the earlier run's pod is free again once that pod is gone; the new run begins
    // only when none is left, so that no pod of it is mistaken for the old run's.
    if !observed.leaving.is_empty() {
        return plan;
    }
    let missing = (0..job.workers).filter(|i| !observed.workers.contains_key(i));
    plan.create = missing.filter_map(|i| worker_pod(job, i, settings)).collect();
    let all_ready = (0..job.workers).all(|i| observed.workers.get(&i).is_some_and(|p| is_serving(p)));
    // A gang scheduler binds no pod until the whole group exists: the launcher is created with the
    // workers (mpi-operator #608), its gate holding the command until every worker answers.
    if job.launcher_creation == LauncherCreation::AtStartup || gang.is_some() || all_ready {
        plan.create.push(launcher_pod(job, settings, restart_count(&plan.status)));
    }
    plan
}
