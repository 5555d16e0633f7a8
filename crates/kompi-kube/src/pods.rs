//! Reading a cluster's pods: who is ready, what the hostfile lists, and why a pod is stuck. Pure functions
//! of Pod objects; whether a pod serves and which pods the hostfile lists are render's rules.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kompi_render::hostfile::{is_serving, listed_ordinals};
use kompi_spec::ClusterName;
use kompi_spec::contract::{LABEL_COMPONENT, MASTER_CONTAINER, SIDECAR_CONTAINER, WORKERS_REACHABLE_CONDITION, WORKER_CONTAINER};

/// A container of a cluster, as `kompi exec` and `kompi logs` name it.
pub enum Place {
    Master,
    Worker(u32),
    Sidecar,
}

impl Place {
    pub fn pod_and_container(&self, cluster: &ClusterName) -> (String, &'static str) {
        match self {
            Place::Master => (cluster.master_pod(), MASTER),
            Place::Worker(i) => (cluster.worker_pod(*i), WORKER_CONTAINER),
            Place::Sidecar => (cluster.master_pod(), SIDECAR_CONTAINER),
        }
    }
}

pub fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

pub fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
}

pub fn is_worker(pod: &Pod) -> bool {
    pod.metadata.labels.as_ref().and_then(|l| l.get(LABEL_COMPONENT)).is_some_and(|c| c == kompi_spec::contract::COMPONENT_WORKER)
}

/// Whether a container of the pod is running (so commands can be executed in it).
pub fn container_running(pod: &Pod, container: &str) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && container_statuses(pod).any(|c| c.name == container && c.state.as_ref().is_some_and(|s| s.running.is_some()))
}

pub fn restarts(pod: &Pod) -> i32 {
    container_statuses(pod).map(|c| c.restart_count).sum()
}

fn container_statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    let status = pod.status.as_ref();
    status
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .chain(status.and_then(|s| s.container_statuses.as_ref()).into_iter().flatten())
}

/// Why a pod is not getting anywhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stuck {
    pub pod: String,
    pub container: Option<String>,
    pub reason: String,
    pub message: String,
    /// Waiting longer cannot help (the image can never be pulled as written, say).
    pub hopeless: bool,
}

impl std::fmt::Display for Stuck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.container {
            Some(c) => write!(f, "{} ({c}): {}", self.pod, self.reason)?,
            None => write!(f, "{}: {}", self.pod, self.reason)?,
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

const WAITING_PROBLEMS: [&str; 8] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];
const HOPELESS: [&str; 2] = ["ErrImageNeverPull", "InvalidImageName"];

pub fn stuck(pod: &Pod) -> Option<Stuck> {
    let pod_name = name(pod).to_string();
    for c in container_statuses(pod) {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref())
            && let Some(reason) = w.reason.as_deref().filter(|r| WAITING_PROBLEMS.contains(r))
        {
            return Some(Stuck {
                pod: pod_name,
                container: Some(c.name.clone()),
                reason: reason.to_string(),
                message: w.message.clone().unwrap_or_default(),
                hopeless: HOPELESS.contains(&reason),
            });
        }
        if let Some(t) = c.last_state.as_ref().and_then(|s| s.terminated.as_ref())
            && t.reason.as_deref() == Some("OOMKilled")
        {
            return Some(Stuck { pod: pod_name, container: Some(c.name.clone()), reason: "OOMKilled".into(), message: format!("exit {}", t.exit_code), hopeless: false });
        }
    }
    let status = pod.status.as_ref()?;
    let unscheduled = status.conditions.as_ref()?.iter().find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    Some(Stuck {
        pod: pod_name,
        container: None,
        reason: format!("Pending ({})", unscheduled.reason.clone().unwrap_or_else(|| "unschedulable".into())),
        message: unscheduled.message.clone().unwrap_or_default(),
        hopeless: false,
    })
}

/// How a finished container ended: exit code and reason (OOMKilled, Error, Completed).
pub fn terminated(pod: &Pod, container: &str) -> Option<(i32, String)> {
    container_statuses(pod).find(|c| c.name == container).and_then(|c| c.state.as_ref()?.terminated.as_ref()).map(|t| (t.exit_code, t.reason.clone().unwrap_or_default()))
}

/// What the sidecar says, through the master's readiness gate, while the listed workers are not all
/// reachable (who does not answer); `None` when they are, or before it has said anything.
pub fn unreachable_workers(pod: &Pod) -> Option<&str> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let gate = conditions.iter().find(|c| c.type_ == WORKERS_REACHABLE_CONDITION && c.status != "True")?;
    gate.message.as_deref().filter(|m| !m.is_empty())
}

/// What a cluster's pods add up to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub master_phase: Option<String>,
    pub master_ready: bool,
    /// Why the sidecar holds the master back (who does not answer on ssh).
    pub master_waiting_for: Option<String>,
    /// The workers the hostfile lists (the serving worker pods), by ordinal.
    pub listed: Vec<u32>,
    /// Listed workers with ordinals below `desired`.
    pub workers_ready: u32,
    pub workers_present: u32,
    pub desired: u32,
    pub stuck: Vec<Stuck>,
}

impl Summary {
    pub fn of<'a>(cluster: &ClusterName, desired: u32, pods: impl IntoIterator<Item = &'a Pod> + Clone) -> Self {
        let listed = listed_ordinals(cluster, pods.clone());
        let mut s = Summary { desired, workers_ready: listed.iter().filter(|o| **o < desired).count() as u32, listed, ..Default::default() };
        let master_name = cluster.master_pod();
        for pod in pods {
            if name(pod) == master_name {
                s.master_phase = Some(phase(pod).to_string());
                s.master_ready = is_serving(pod);
                s.master_waiting_for = unreachable_workers(pod).map(str::to_string);
            } else if is_worker(pod) {
                s.workers_present += 1;
            } else {
                continue;
            }
            s.stuck.extend(stuck(pod));
        }
        s
    }

    /// Runnable: the master is Ready (every worker the hostfile lists answers on ssh from it) and the
    /// hostfile lists exactly the desired workers, 0 to desired-1.
    pub fn is_ready(&self) -> bool {
        self.master_ready && self.listed.len() == self.desired as usize && self.workers_ready == self.desired
    }

    pub fn line(&self) -> String {
        let master = match (&self.master_phase, self.master_ready, &self.master_waiting_for) {
            (None, _, _) => "not created".to_string(),
            (Some(p), true, _) => format!("{p}, ready"),
            (Some(p), false, Some(why)) => format!("{p}, not ready ({why})"),
            (Some(p), false, None) => format!("{p}, not ready"),
        };
        let extra = self.listed.len() as u32 - self.workers_ready;
        let beyond = if extra > 0 { format!(" ({extra} more listed)") } else { String::new() };
        format!("master: {master} | workers ready: {}/{}{beyond}", self.workers_ready, self.desired)
    }
}

/// The container of the master that runs MPI (for exec and logs).
pub const MASTER: &str = MASTER_CONTAINER;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn worker(name: &str, ready: bool) -> Pod {
        pod(json!({"metadata": {"name": name, "labels": {"app.kubernetes.io/component": "worker"}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}}))
    }

    fn master(ready: bool, gate_message: Option<&str>) -> Pod {
        let mut conditions = vec![json!({"type": "Ready", "status": if ready {"True"} else {"False"}})];
        if let Some(message) = gate_message {
            conditions.push(json!({"type": WORKERS_REACHABLE_CONDITION, "status": "False", "message": message}));
        }
        pod(json!({"metadata": {"name": "c-master"}, "status": {"phase": "Running", "conditions": conditions}}))
    }

    #[test]
    fn summary_counts_ready_workers_below_the_desired_count() {
        let c = ClusterName::new("c").unwrap();
        let pods = [master(true, None), worker("c-worker-0", true), worker("c-worker-1", false), worker("c-worker-2", true)];
        let s = Summary::of(&c, 2, &pods);
        assert_eq!((s.master_ready, s.workers_ready, s.workers_present), (true, 1, 3));
        assert_eq!(s.listed, [0, 2]);
        assert!(!s.is_ready());
        assert_eq!(s.line(), "master: Running, ready | workers ready: 1/2 (1 more listed)");
        let s = Summary::of(&c, 3, &pods[..1]);
        assert_eq!(s.workers_ready, 0);
    }

    #[test]
    fn runnable_means_a_ready_master_and_exactly_the_desired_workers_listed() {
        let c = ClusterName::new("c").unwrap();
        let two = [master(true, None), worker("c-worker-0", true), worker("c-worker-1", true)];
        assert!(Summary::of(&c, 2, &two).is_ready());
        assert!(!Summary::of(&c, 1, &two).is_ready(), "worker 1 is still listed after a scale-down to 1");
        assert!(!Summary::of(&c, 3, &two).is_ready());
        let waiting = [master(false, Some("not answering on port 2022: c-worker-1.c (connection refused)")), worker("c-worker-0", true), worker("c-worker-1", true)];
        let s = Summary::of(&c, 2, &waiting);
        assert!(!s.is_ready());
        assert_eq!(s.line(), "master: Running, not ready (not answering on port 2022: c-worker-1.c (connection refused)) | workers ready: 2/2");
    }

    #[test]
    fn stuck_pods_say_why() {
        let p = pod(json!({"metadata": {"name": "c-worker-0"}, "status": {"phase": "Pending", "containerStatuses": [
            {"name": "mpi-worker", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
             "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"nope:1\""}}}]}}));
        let s = stuck(&p).unwrap();
        assert_eq!(s.to_string(), "c-worker-0 (mpi-worker): ImagePullBackOff: Back-off pulling image \"nope:1\"");
        assert!(!s.hopeless);
        let p = pod(json!({"metadata": {"name": "m"}, "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient cpu."}]}}));
        assert_eq!(stuck(&p).unwrap().to_string(), "m: Pending (Unschedulable): 0/1 nodes are available: 1 Insufficient cpu.");
        assert!(stuck(&worker("w", true)).is_none());
    }
}
