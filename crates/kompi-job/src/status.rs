//! The MPIJob's status as a function of the pods observed: conditions with mpi-operator's types and
//! reasons (kept in its order: the latest transition last, which `kubectl get` shows as the state),
//! `replicaStatuses`, `startTime` and `completionTime`, and one event per transition.
//!
//! A failure names its cause: the launcher's exit code and termination message, or the worker, its node
//! and why it went (deleted, evicted, OOM-killed, failed).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kompi_render::hostfile::is_serving;

use crate::api::{JobCondition, JobStatus, LAUNCHER, ReplicaStatus, WORKER};
use crate::contract::RESTART_ANNOTATION;
use crate::job::{Job, JobNames};
use crate::validate::Invalid;

pub const CREATED: &str = "Created";
pub const RUNNING: &str = "Running";
pub const RESTARTING: &str = "Restarting";
pub const SUCCEEDED: &str = "Succeeded";
pub const FAILED: &str = "Failed";
pub const SUSPENDED: &str = "Suspended";

/// Condition and event reasons (mpi-operator's where it has one).
pub mod reason {
    pub const CREATED: &str = "MPIJobCreated";
    pub const RUNNING: &str = "MPIJobRunning";
    pub const SUCCEEDED: &str = "MPIJobSucceeded";
    pub const SUSPENDED: &str = "MPIJobSuspended";
    pub const RESUMED: &str = "MPIJobResumed";
    pub const EVICTED: &str = "MPIJobEvicted";
    pub const VALIDATION: &str = "ValidationError";
    pub const LAUNCHER_FAILED: &str = "LauncherFailed";
    pub const LAUNCHER_DELETED: &str = "LauncherDeleted";
    pub const WORKERS_UNREACHABLE: &str = "WorkersUnreachable";
    pub const WORKER_FAILED: &str = "WorkerFailed";
    pub const WORKER_DELETED: &str = "WorkerDeleted";
    pub const NOT_ENFORCED: &str = "NotEnforced";
    pub const RESOURCE_EXISTS: &str = "ErrResourceExists";
    /// The run failed once more than `runPolicy.backoffLimit` allows (the batch Job's reason).
    pub const BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
    /// The run outlived `runPolicy.activeDeadlineSeconds` (the batch Job's reason).
    pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
}

/// One event to record on the MPIJob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// The job's pods as observed, by role.
#[derive(Clone, Debug, Default)]
pub struct Observed<'a> {
    pub launcher: Option<&'a Pod>,
    pub workers: BTreeMap<u32, &'a Pod>,
    /// Pods with the job's labels that are neither (a worker index past `replicas`, say).
    pub others: Vec<&'a Pod>,
    /// Pods of an earlier run, set apart by [`Observed::without_leaving`]: deleted and waited for, never
    /// counted as this run's failures.
    pub leaving: Vec<&'a Pod>,
}

impl<'a> Observed<'a> {
    /// Sorts pods (already known to be the job's) by their names.
    pub fn sort(names: &JobNames, pods: impl IntoIterator<Item = &'a Pod>) -> Observed<'a> {
        let mut observed = Observed::default();
        for pod in pods {
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            if name == names.launcher() {
                observed.launcher = Some(pod);
            } else if let Some(index) = names.worker_index(name) {
                observed.workers.insert(index, pod);
            } else {
                observed.others.push(pod);
            }
        }
        observed
    }

    /// Sets apart the pods of an earlier run: a launcher made before the last restart; and, while the run
    /// starts afresh (restarting or resumed), a launcher being deleted and, until the new launcher exists,
    /// workers being deleted or failed. They are the old run's end, not the new run's failures.
    pub fn without_leaving(mut self, status: &JobStatus) -> Observed<'a> {
        let afresh = starting_afresh(status);
        let deleting = |pod: &Pod| pod.metadata.deletion_timestamp.is_some();
        if let Some(launcher) = self.launcher
            && (launcher_restart_count(launcher) < restart_count(status) || (afresh && deleting(launcher)))
        {
            self.leaving.push(launcher);
            self.launcher = None;
        }
        if afresh && self.launcher.is_none() {
            let old: Vec<u32> = self.workers.iter().filter(|(_, p)| deleting(p) || phase(p) == "Failed").map(|(i, _)| *i).collect();
            for index in old {
                self.leaving.extend(self.workers.remove(&index));
            }
        }
        self
    }
}

/// `status.restartCount`, the number of the current run's restarts.
pub fn restart_count(status: &JobStatus) -> u32 {
    u32::try_from(status.restart_count).unwrap_or(0)
}

/// The `status.restartCount` a launcher pod was made under.
pub fn launcher_restart_count(pod: &Pod) -> u32 {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(RESTART_ANNOTATION)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Whether the run is being started again (after a restart or a resume) and is not running yet.
pub fn starting_afresh(status: &JobStatus) -> bool {
    !status.is(RUNNING) && (status.is(RESTARTING) || status.condition(SUSPENDED).is_some_and(|c| c.status == "False"))
}

/// When the running job passes `activeDeadlineSeconds`, as a Unix time in seconds: counted from
/// `startTime`, which a resume resets (so suspended time never counts, as for mpi-operator and Kueue).
pub fn deadline(job: &Job, status: &JobStatus) -> Option<i64> {
    let limit = i64::try_from(job.run_policy.active_deadline_seconds?).ok()?;
    Some(status.start_time.as_ref()?.0.as_second().saturating_add(limit))
}

/// When a finished job is to be deleted under `ttlSecondsAfterFinished`, as a Unix time in seconds.
pub fn expiry(job: &Job, status: &JobStatus) -> Option<i64> {
    let ttl = i64::try_from(job.run_policy.ttl_seconds_after_finished?).ok()?;
    if !is_finished(status) {
        return None;
    }
    Some(status.completion_time.as_ref()?.0.as_second().saturating_add(ttl))
}

/// Whether the job reached `Succeeded` or `Failed`.
pub fn is_finished(status: &JobStatus) -> bool {
    status.is(SUCCEEDED) || status.is(FAILED)
}

/// Whether the run began: the launcher exists, or the job was Running. From then on a worker that goes
/// away is a failure, not something to recreate.
pub fn run_started(status: &JobStatus, observed: &Observed) -> bool {
    observed.launcher.is_some() || status.is(RUNNING)
}

/// The status of a job that failed validation: `Failed` with every problem, once.
pub fn invalid(current: &JobStatus, problems: &Invalid, now: &Time) -> (JobStatus, Vec<Transition>) {
    failed(current, reason::VALIDATION, &problems.to_string(), now)
}

/// `Failed` for a reason found outside the pods (validation, a conflicting object), unless finished.
pub fn failed(current: &JobStatus, why: &str, message: &str, now: &Time) -> (JobStatus, Vec<Transition>) {
    let mut status = current.clone();
    let mut events = Vec::new();
    if status.conditions.is_empty() {
        set(&mut status, CREATED, true, reason::CREATED, "MPIJob is created.", now, &mut events);
    }
    if !is_finished(&status) {
        set(&mut status, FAILED, true, why, &truncate(message), now, &mut events);
        status.completion_time.get_or_insert_with(|| now.clone());
    }
    (status, events)
}

/// The next status of a valid job, and the events for what changed. `observed` holds every pod of the
/// job (the earlier run's are set apart here).
/// `workers_timeout_exit`: `kompi init`'s exit status when the workers never all answered; its
/// termination message then names them.
pub fn next(job: &Job, current: &JobStatus, observed: &Observed, workers_timeout_exit: i32, now: &Time) -> (JobStatus, Vec<Transition>) {
    let mut status = current.clone();
    let mut events = Vec::new();
    let id = format!("{}/{}", job.names.namespace, job.names.name);
    if status.conditions.is_empty() {
        set(&mut status, CREATED, true, reason::CREATED, &format!("MPIJob {id} is created."), now, &mut events);
    }
    status.replica_statuses = replica_statuses(job, current, observed);
    if is_finished(&status) {
        return (status, events);
    }

    if job.run_policy.suspend {
        set(&mut status, SUSPENDED, true, reason::SUSPENDED, "MPIJob suspended", now, &mut events);
        set(&mut status, RUNNING, false, reason::SUSPENDED, &format!("MPIJob {id} is suspended."), now, &mut events);
        return (status, events);
    }
    if status.is(SUSPENDED) {
        set(&mut status, SUSPENDED, false, reason::RESUMED, "MPIJob resumed", now, &mut events);
        status.start_time = Some(now.clone());
    }
    status.start_time.get_or_insert_with(|| now.clone());
    // Judged without the earlier run's pods, under the status as it now is (a resume just now included).
    let observed = &observed.clone().without_leaving(&status);

    // The launcher's success decides, before any failure: the workers the cleanup deletes next must not
    // fail a job whose success a reconcile, working from a status not yet updated, did not see written.
    if observed.launcher.is_some_and(|p| phase(p) == "Succeeded") {
        let message = format!("MPIJob {id} successfully completed.");
        set(&mut status, SUCCEEDED, true, reason::SUCCEEDED, &message, now, &mut events);
        status.completion_time = Some(now.clone());
        return (status, events);
    }

    if let Some(limit) = job.run_policy.active_deadline_seconds
        && deadline(job, &status).is_some_and(|d| now.0.as_second() >= d)
    {
        let message = format!("MPIJob {id} was active longer than its activeDeadlineSeconds ({limit} s): every pod is stopped");
        set(&mut status, FAILED, true, reason::DEADLINE_EXCEEDED, &message, now, &mut events);
        status.completion_time = Some(now.clone());
        return (status, events);
    }
    if let Some((why, message)) = failure(job, &status, observed, workers_timeout_exit) {
        let restarts = restart_count(&status);
        let launchers = matches!(why, reason::LAUNCHER_FAILED | reason::LAUNCHER_DELETED | reason::WORKERS_UNREACHABLE);
        let restartable = launchers || job.restarts_on_worker_failure();
        match job.run_policy.backoff_limit {
            Some(limit) if restartable && restarts < limit => {
                let attempt = restarts + 1;
                status.restart_count = attempt as i32;
                let message = format!("restart {attempt} of {limit} (backoffLimit) after: {message}");
                set(&mut status, RESTARTING, true, why, &truncate(&message), now, &mut events);
            }
            Some(limit) if restartable => {
                let message = format!("backoffLimit {limit} reached ({restarts} restarts); the last failure: {message}");
                set(&mut status, FAILED, true, reason::BACKOFF_LIMIT_EXCEEDED, &truncate(&message), now, &mut events);
                status.completion_time = Some(now.clone());
            }
            _ => {
                set(&mut status, FAILED, true, why, &truncate(&message), now, &mut events);
                status.completion_time = Some(now.clone());
            }
        }
        return (status, events);
    }
    let workers_running = (0..job.workers).all(|i| observed.workers.get(&i).is_some_and(|p| phase(p) == "Running"));
    if observed.launcher.is_some_and(|p| phase(p) == "Running") && workers_running {
        set(&mut status, RUNNING, true, reason::RUNNING, &format!("MPIJob {id} is running."), now, &mut events);
    }
    (status, events)
}

/// Why the job failed, if it did: the launcher's end, or a worker gone while the run needs it.
fn failure(job: &Job, status: &JobStatus, observed: &Observed, workers_timeout_exit: i32) -> Option<(&'static str, String)> {
    let launcher_name = job.names.launcher();
    match observed.launcher {
        Some(pod) if phase(pod) == "Failed" => {
            let end = pod_end(pod);
            let why = if end.exit_code == Some(workers_timeout_exit) && end.from_kompi() {
                reason::WORKERS_UNREACHABLE
            } else {
                reason::LAUNCHER_FAILED
            };
            return Some((why, format!("launcher {launcher_name}{} {}", on_node(pod), end.describe())));
        }
        Some(pod) if pod.metadata.deletion_timestamp.is_some() && phase(pod) != "Succeeded" => {
            return Some((reason::LAUNCHER_DELETED, format!("launcher {launcher_name}{} was deleted", on_node(pod))));
        }
        None if status.is(RUNNING) => {
            return Some((reason::LAUNCHER_DELETED, format!("launcher {launcher_name} was deleted while the job ran")));
        }
        _ => {}
    }
    let started = run_started(status, observed);
    for index in 0..job.workers {
        let name = job.names.worker(index);
        match observed.workers.get(&index) {
            None if started => return Some((reason::WORKER_DELETED, format!("worker {name} was deleted while the job ran"))),
            None => {}
            Some(pod) if phase(pod) == "Failed" => {
                let end = pod_end(pod);
                let why = if end.evicted { reason::EVICTED } else { reason::WORKER_FAILED };
                return Some((why, format!("worker {name}{} {}", on_node(pod), end.describe())));
            }
            Some(pod) if started && pod.metadata.deletion_timestamp.is_some() => {
                return Some((reason::WORKER_DELETED, format!("worker {name}{} was deleted while the job ran", on_node(pod))));
            }
            Some(_) => {}
        }
    }
    None
}

pub(crate) fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
}

fn on_node(pod: &Pod) -> String {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).map(|n| format!(" on node {n}")).unwrap_or_default()
}

/// How a pod ended, from its status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodEnd {
    pub evicted: bool,
    /// The pod's or the failed container's reason (Evicted, OOMKilled, Error…).
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    /// The pod's message or the container's termination message.
    pub message: Option<String>,
    /// The init container that failed, if one did.
    pub init_container: Option<String>,
}

impl PodEnd {
    /// Whether the message is kompi's own (a number is just the command's status echoed).
    fn from_kompi(&self) -> bool {
        self.message.as_deref().is_some_and(|m| m.parse::<i32>().is_err())
    }

    pub fn describe(&self) -> String {
        let mut text = if self.evicted {
            "was evicted".to_string()
        } else {
            match (self.reason.as_deref(), self.exit_code) {
                (Some("OOMKilled"), Some(code)) => format!("was OOMKilled (exit code {code})"),
                (Some(r), Some(code)) if r != "Error" && r != "Completed" => format!("failed: {r} (exit code {code})"),
                (_, Some(code)) => format!("exited with code {code}"),
                (Some(r), None) => format!("failed: {r}"),
                (None, None) => "failed".to_string(),
            }
        };
        if let Some(init) = &self.init_container {
            text = format!("{text} in init container {init}");
        }
        if let Some(message) = self.message.as_deref().map(str::trim).filter(|m| !m.is_empty() && m.parse::<i32>().is_err()) {
            text = format!("{text}: {message}");
        }
        text
    }
}

/// What a failed pod's status says about its end: eviction, then a failed init container, then the
/// first container that ended with a non-zero code.
pub fn pod_end(pod: &Pod) -> PodEnd {
    let Some(status) = pod.status.as_ref() else { return PodEnd::default() };
    if status.reason.as_deref() == Some("Evicted") {
        return PodEnd { evicted: true, reason: status.reason.clone(), message: status.message.clone(), ..Default::default() };
    }
    let ended = |c: &ContainerStatus| {
        let state = c.state.as_ref().and_then(|s| s.terminated.as_ref());
        let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        state.or(last).filter(|t| t.exit_code != 0).map(|t| (c.name.clone(), t.clone()))
    };
    let init = status.init_container_statuses.iter().flatten().find_map(ended);
    let main = status.container_statuses.iter().flatten().find_map(ended);
    match (init, main) {
        (Some((name, t)), _) => PodEnd {
            reason: t.reason.clone(),
            exit_code: Some(t.exit_code),
            message: t.message.clone(),
            init_container: Some(name),
            ..Default::default()
        },
        (None, Some((_, t))) => PodEnd { reason: t.reason.clone(), exit_code: Some(t.exit_code), message: t.message.clone(), ..Default::default() },
        (None, None) => PodEnd { reason: status.reason.clone(), message: status.message.clone(), ..Default::default() },
    }
}

fn replica_statuses(job: &Job, current: &JobStatus, observed: &Observed) -> BTreeMap<String, ReplicaStatus> {
    let count = |pods: &mut dyn Iterator<Item = &Pod>| {
        let mut s = ReplicaStatus::default();
        for pod in pods {
            match phase(pod) {
                "Running" => s.active += 1,
                "Succeeded" => s.succeeded += 1,
                "Failed" => s.failed += 1,
                _ => {}
            }
            s.ready += i32::from(is_serving(pod));
        }
        s
    };
    let mut out = BTreeMap::new();
    let launcher = match observed.launcher {
        Some(pod) => Some(count(&mut std::iter::once(pod))),
        // Removed (by the clean-pod policy, a suspension, a restart): what it ended as is still the truth,
        // but it is no longer active (Kueue waits for no replica to be active before it lets a job go).
        None => current.replica_statuses.get(LAUNCHER).map(|s| ReplicaStatus { active: 0, ready: 0, ..s.clone() }),
    };
    if let Some(launcher) = launcher {
        out.insert(LAUNCHER.to_string(), launcher);
    }
    if job.worker.is_some() {
        out.insert(WORKER.to_string(), count(&mut observed.workers.values().copied()));
    }
    out
}

/// Sets a condition as mpi-operator does: nothing changes when type, status, reason and message are the same;
/// the transition time stays when only the reason changes; the condition moves to the end; Running and
/// Restarting replace each other; a finished job is no longer Running. Records an event when the
/// condition turned true (or the job resumed).
fn set(status: &mut JobStatus, type_: &str, value: bool, why: &str, message: &str, now: &Time, events: &mut Vec<Transition>) {
    let value_text = if value { "True" } else { "False" };
    let existing = status.condition(type_).cloned();
    let same = |c: &JobCondition| c.status == value_text && c.reason.as_deref() == Some(why) && c.message.as_deref() == Some(message);
    if existing.as_ref().is_some_and(same) {
        return;
    }
    let transition_time = match &existing {
        Some(c) if c.status == value_text => c.last_transition_time.clone(),
        _ => Some(now.clone()),
    };
    let finishing = value && (type_ == FAILED || type_ == SUCCEEDED);
    let mut kept: Vec<JobCondition> = Vec::new();
    for mut c in std::mem::take(&mut status.conditions) {
        let replaced = c.type_ == type_ || (type_ == RUNNING && c.type_ == RESTARTING) || (type_ == RESTARTING && c.type_ == RUNNING);
        if replaced {
            continue;
        }
        if finishing && c.type_ == RUNNING {
            c.status = "False".into();
        }
        kept.push(c);
    }
    kept.push(JobCondition {
        type_: type_.into(),
        status: value_text.into(),
        reason: Some(why.into()),
        message: Some(message.into()),
        last_update_time: Some(now.clone()),
        last_transition_time: transition_time,
    });
    status.conditions = kept;
    if value || why == reason::RESUMED {
        events.push(Transition { warning: type_ == FAILED || type_ == RESTARTING, reason: why.into(), message: message.into() });
    }
}

/// Event messages are limited to 1 KiB; conditions get the same cut so both read alike.
fn truncate(message: &str) -> String {
    const LIMIT: usize = 1024;
    if message.len() <= LIMIT {
        return message.to_string();
    }
    let mut end = LIMIT - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}
