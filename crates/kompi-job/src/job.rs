//! A validated MPIJob: what [`crate::validate`] makes of the API object once mpi-operator's defaults are
//! applied. Its fields are named for what they mean and cannot hold what the object may (an unknown
//! implementation, two launchers): the builders never re-check.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use kompi_spec::MpiImplementation;

use crate::gang::SchedulingPolicy;

/// The names of everything one job makes, as mpi-operator names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobNames {
    pub name: String,
    pub namespace: String,
}

impl JobNames {
    pub fn new(name: &str, namespace: &str) -> JobNames {
        JobNames { name: name.into(), namespace: namespace.into() }
    }
    pub fn launcher(&self) -> String {
        format!("{}-launcher", self.name)
    }
    pub fn worker(&self, index: u32) -> String {
        format!("{}-worker-{index}", self.name)
    }
    /// The headless Service: pods are `<pod>.<name>` within the namespace.
    pub fn service(&self) -> String {
        self.name.clone()
    }
    pub fn ssh_secret(&self) -> String {
        format!("{}-ssh", self.name)
    }
    pub fn config_map(&self) -> String {
        format!("{}-config", self.name)
    }
    /// A pod's name in the hostfile: `<pod>.<job>.<namespace>.svc`, resolvable from any namespace.
    pub fn host(&self, pod: &str) -> String {
        format!("{pod}.{}.{}.svc", self.name, self.namespace)
    }
    /// The worker index of a pod name, if it is one of this job's workers.
    pub fn worker_index(&self, pod: &str) -> Option<u32> {
        let digits = pod.strip_prefix(&self.name)?.strip_prefix("-worker-")?;
        if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
            return None;
        }
        digits.parse().ok()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LauncherCreation {
    /// Launcher and workers are created together; kompi's gate holds the command until the workers answer.
    AtStartup,
    /// The launcher is created once every worker pod is Ready.
    WaitForWorkersReady,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Never,
    OnFailure,
}

impl RestartPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Never => "Never",
            RestartPolicy::OnFailure => "OnFailure",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanPodPolicy {
    /// Keep every pod.
    None,
    /// Delete the pods still running (or pending) once the job finished.
    Running,
    /// Delete every pod once the job finished.
    All,
}

/// One replica type: its pod template and restart policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Replica {
    pub template: PodTemplateSpec,
    pub restart_policy: RestartPolicy,
}

/// `runPolicy`, as far as this version enforces it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPolicy {
    pub clean_pod_policy: CleanPodPolicy,
    pub suspend: bool,
    /// How many times a failed run is started again before the job fails `BackoffLimitExceeded`.
    /// Absent: the first failure is final and the job fails with that failure's own reason.
    pub backoff_limit: Option<u32>,
    /// How long the job may run, counted from `startTime` (which a resume resets, so suspended time is
    /// not counted), before every pod is stopped and the job fails `DeadlineExceeded`.
    pub active_deadline_seconds: Option<u64>,
    /// How long a finished job (and everything it made) is kept before the operator deletes it.
    pub ttl_seconds_after_finished: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub names: JobNames,
    /// The MPIJob's uid, for the owner references of everything it makes.
    pub uid: String,
    pub slots_per_worker: u32,
    pub run_launcher_as_worker: bool,
    pub ssh_auth_mount_path: String,
    pub launcher_creation: LauncherCreation,
    pub mpi: MpiImplementation,
    pub launcher: Replica,
    pub workers: u32,
    /// Absent when the job has no Worker replica spec (a launcher that runs alone).
    pub worker: Option<Replica>,
    pub run_policy: RunPolicy,
    /// `runPolicy.schedulingPolicy`: the PodGroup's settings when the operator gang-schedules.
    pub scheduling: SchedulingPolicy,
    /// How long the launcher waits for every worker to answer on ssh, from the job's annotation.
    pub workers_timeout_seconds: Option<u32>,
}

impl Job {
    /// Whether a failed or lost worker starts the run again (within `backoffLimit`) rather than failing
    /// the job: its restart policy is `OnFailure`.
    pub fn restarts_on_worker_failure(&self) -> bool {
        self.worker.as_ref().is_some_and(|w| w.restart_policy == RestartPolicy::OnFailure)
    }

    /// The hosts of the hostfile, in order: the launcher first when it is also a worker.
    pub fn hosts(&self) -> Vec<String> {
        let launcher = self.run_launcher_as_worker.then(|| self.names.host(&self.names.launcher()));
        launcher.into_iter().chain((0..self.workers).map(|i| self.names.host(&self.names.worker(i)))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_mpi_operator() {
        let n = JobNames::new("pi", "hpc");
        assert_eq!(n.launcher(), "pi-launcher");
        assert_eq!(n.worker(2), "pi-worker-2");
        assert_eq!(n.ssh_secret(), "pi-ssh");
        assert_eq!(n.config_map(), "pi-config");
        assert_eq!(n.service(), "pi");
        assert_eq!(n.host("pi-worker-0"), "pi-worker-0.pi.hpc.svc");
    }

    #[test]
    fn worker_indexes() {
        let n = JobNames::new("pi", "hpc");
        assert_eq!(n.worker_index("pi-worker-12"), Some(12));
        for not_one in ["pi-worker-", "pi-worker-01", "pi-launcher", "pix-worker-1", "pi-worker-1a"] {
            assert_eq!(n.worker_index(not_one), None, "{not_one}");
        }
    }
}
