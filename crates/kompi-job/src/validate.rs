//! mpi-operator's defaults and validation, then kompi's few extra rules, turning an [`MPIJob`] into a
//! [`Job`] or into every problem at once, each with its field path (as mpi-operator words them).

use std::fmt;

use kompi_spec::{MAX_CLUSTER_NAME, MpiImplementation, dns1035_label, dns1123_label};

use crate::api::{LAUNCHER, MPIJob, ReplicaSpec, WORKER};
use crate::contract::WORKERS_TIMEOUT_ANNOTATION;
use crate::gang::validate_policy;
use crate::job::{CleanPodPolicy, Job, JobNames, LauncherCreation, Replica, RestartPolicy, RunPolicy};

/// mpi-operator's default for `sshAuthMountPath`.
pub const DEFAULT_SSH_AUTH_MOUNT_PATH: &str = "/root/.ssh";

/// One problem, worded like the Kubernetes field errors mpi-operator reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub detail: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.detail)
    }
}

/// Every problem of an invalid MPIJob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid(pub Vec<FieldError>);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let each: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "Found validation errors: [{}]", each.join(", "))
    }
}

impl std::error::Error for Invalid {}

fn required(path: &str, detail: &str) -> FieldError {
    FieldError { path: path.into(), detail: format!("Required value: {detail}") }
}

pub(crate) fn invalid(path: &str, value: impl fmt::Display, detail: &str) -> FieldError {
    FieldError { path: path.into(), detail: format!("Invalid value: {value}: {detail}") }
}

fn unsupported(path: &str, value: &str, supported: &[&str]) -> FieldError {
    let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
    FieldError { path: path.into(), detail: format!("Unsupported value: {value:?}: supported values: {}", list.join(", ")) }
}

/// Applies mpi-operator's defaults (the same as its CRD's and its `SetDefaults_MPIJob`) in place.
pub fn apply_defaults(job: &mut MPIJob) {
    let spec = &mut job.spec;
    spec.slots_per_worker.get_or_insert(1);
    spec.run_launcher_as_worker.get_or_insert(false);
    spec.ssh_auth_mount_path.get_or_insert_with(|| DEFAULT_SSH_AUTH_MOUNT_PATH.into());
    spec.mpi_implementation.get_or_insert_with(|| "OpenMPI".into());
    spec.launcher_creation_policy.get_or_insert_with(|| "AtStartup".into());
    spec.run_policy.clean_pod_policy.get_or_insert_with(|| "None".into());
    spec.run_policy.suspend.get_or_insert(false);
    if let Some(launcher) = spec.mpi_replica_specs.get_mut(LAUNCHER) {
        launcher.restart_policy.get_or_insert_with(|| "OnFailure".into());
        launcher.replicas.get_or_insert(1);
    }
    if let Some(worker) = spec.mpi_replica_specs.get_mut(WORKER) {
        worker.restart_policy.get_or_insert_with(|| "Never".into());
        worker.replicas.get_or_insert(0);
    }
}

/// Defaults, then validates; the job as kompi runs it, or every problem found.
pub fn validate(job: &MPIJob) -> Result<Job, Invalid> {
    let mut job = job.clone();
    apply_defaults(&mut job);
    let mut errors = Vec::new();
    let name = job.metadata.name.clone().unwrap_or_default();
    let namespace = job.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let spec = &job.spec;

    let worker_spec = spec.mpi_replica_specs.get(WORKER);
    let workers = worker_spec.and_then(|w| w.replicas).unwrap_or(0);
    validate_name(&name, workers, &mut errors);

    let slots = spec.slots_per_worker.unwrap_or(1);
    if slots < 0 {
        errors.push(invalid("spec.slotsPerWorker", slots, "must be greater than or equal to 0"));
    }
    if spec.ssh_auth_mount_path.as_deref().unwrap_or_default().is_empty() {
        errors.push(required("spec.sshAuthMountPath", "must have a mount path for SSH credentials"));
    }
    let mpi = match spec.mpi_implementation.as_deref().unwrap_or_default() {
        "OpenMPI" => Some(MpiImplementation::OpenMpi),
        "Intel" => Some(MpiImplementation::Intel),
        "MPICH" => Some(MpiImplementation::Mpich),
        other => {
            errors.push(unsupported("spec.mpiImplementation", other, &["Intel", "MPICH", "OpenMPI"]));
            None
        }
    };
    let launcher_creation = match spec.launcher_creation_policy.as_deref().unwrap_or_default() {
        "AtStartup" => Some(LauncherCreation::AtStartup),
        "WaitForWorkersReady" => Some(LauncherCreation::WaitForWorkersReady),
        other => {
            errors.push(unsupported("spec.launcherCreationPolicy", other, &["AtStartup", "WaitForWorkersReady"]));
            None
        }
    };
    let run_policy = validate_run_policy(&job, &mut errors);

    let launcher = match spec.mpi_replica_specs.get(LAUNCHER) {
        None => {
            errors.push(required("spec.mpiReplicaSpecs[Launcher]", "must have Launcher replica spec"));
            None
        }
        Some(launcher) => {
            let path = "spec.mpiReplicaSpecs[Launcher]";
            if let Some(n) = launcher.replicas.filter(|n| *n != 1) {
                errors.push(invalid(&format!("{path}.replicas"), n, "must be 1"));
            }
            let replica = validate_replica(launcher, path, &mut errors);
            if let Some(r) = &replica {
                let command = r.template.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.command.as_ref());
                if command.is_none_or(|c| c.is_empty()) {
                    errors.push(required(
                        &format!("{path}.template.spec.containers[0].command"),
                        "kompi starts the launcher's command once every worker answers on ssh, so the command must be given \
                         (the image's ENTRYPOINT is not known to the operator)",
                    ));
                }
            }
            replica
        }
    };
    let worker = match worker_spec {
        None => None,
        Some(worker) => {
            let path = "spec.mpiReplicaSpecs[Worker]";
            if workers <= 0 {
                errors.push(invalid(&format!("{path}.replicas"), workers, "must be greater than or equal to 1"));
            }
            validate_replica(worker, path, &mut errors)
        }
    };
    for unknown in spec.mpi_replica_specs.keys().filter(|k| *k != LAUNCHER && *k != WORKER) {
        errors.push(unsupported(&format!("spec.mpiReplicaSpecs[{unknown}]"), unknown, &[LAUNCHER, WORKER]));
    }
    let workers_timeout_seconds = workers_timeout(&job, &mut errors);
    let pods = worker.as_ref().map_or(0, |_| workers.max(0) as u32) + 1;
    let scheduling = validate_policy(&job, pods, &mut errors);

    match (mpi, launcher_creation, run_policy, launcher, errors.is_empty()) {
        (Some(mpi), Some(launcher_creation), Some(run_policy), Some(launcher), true) => Ok(Job {
            names: JobNames::new(&name, &namespace),
            uid: job.metadata.uid.clone().unwrap_or_default(),
            slots_per_worker: slots as u32,
            run_launcher_as_worker: spec.run_launcher_as_worker.unwrap_or(false),
            ssh_auth_mount_path: spec.ssh_auth_mount_path.clone().unwrap_or_default(),
            launcher_creation,
            mpi,
            launcher,
            workers: worker.as_ref().map_or(0, |_| workers as u32),
            worker,
            run_policy,
            scheduling,
            workers_timeout_seconds,
        }),
        _ => Err(Invalid(errors)),
    }
}

/// mpi-operator's rule (the last worker's and the launcher's names are DNS labels), the Service's
/// (a DNS-1035 label), and kompi's in-pod runtime's (which takes the job's name as its cluster's).
fn validate_name(name: &str, workers: i32, errors: &mut Vec<FieldError>) {
    let path = "metadata.name";
    let last_worker = format!("{name}-worker-{}", workers.max(1) - 1);
    for pod in [last_worker, format!("{name}-launcher")] {
        if let Err(why) = dns1123_label(&pod) {
            errors.push(invalid(path, name, &format!("will not able to create pod with invalid DNS label {pod:?}: {why}")));
            return;
        }
    }
    if let Err(why) = dns1035_label(name) {
        errors.push(invalid(path, name, &format!("the job's Service is named after it: {why}")));
    } else if name.len() > MAX_CLUSTER_NAME {
        let detail = format!("kompi runs MPIJobs of at most {MAX_CLUSTER_NAME} characters (its in-pod runtime names the hosts after the job)");
        errors.push(invalid(path, name, &detail));
    }
}

fn validate_replica(spec: &ReplicaSpec, path: &str, errors: &mut Vec<FieldError>) -> Option<Replica> {
    let restart_policy = match spec.restart_policy.as_deref().unwrap_or_default() {
        "Never" => Some(RestartPolicy::Never),
        "OnFailure" => Some(RestartPolicy::OnFailure),
        other => {
            errors.push(unsupported(&format!("{path}.restartPolicy"), other, &["Never", "OnFailure"]));
            None
        }
    };
    let template = match spec.template.as_ref().map(|t| t.parse()) {
        None => Some(Default::default()),
        Some(Ok(template)) => Some(template),
        Some(Err(why)) => {
            errors.push(invalid(&format!("{path}.template"), "(pod template)", &format!("not a pod template: {why}")));
            None
        }
    };
    if let Some(t) = &template
        && t.spec.as_ref().is_none_or(|s| s.containers.is_empty())
    {
        errors.push(required(&format!("{path}.template.spec.containers"), "must define at least one container"));
        return None;
    }
    Some(Replica { template: template?, restart_policy: restart_policy? })
}

fn validate_run_policy(job: &MPIJob, errors: &mut Vec<FieldError>) -> Option<RunPolicy> {
    let policy = &job.spec.run_policy;
    let path = "spec.runPolicy";
    let clean_pod_policy = match policy.clean_pod_policy.as_deref().unwrap_or_default() {
        "None" => Some(CleanPodPolicy::None),
        "Running" => Some(CleanPodPolicy::Running),
        "All" => Some(CleanPodPolicy::All),
        other => {
            errors.push(unsupported(&format!("{path}.cleanPodPolicy"), other, &["All", "None", "Running"]));
            None
        }
    };
    let non_negative = [
        ("ttlSecondsAfterFinished", policy.ttl_seconds_after_finished.map(i64::from)),
        ("activeDeadlineSeconds", policy.active_deadline_seconds),
        ("backoffLimit", policy.backoff_limit.map(i64::from)),
    ];
    for (field, value) in non_negative {
        if let Some(v) = value.filter(|v| *v < 0) {
            errors.push(invalid(&format!("{path}.{field}"), v, "must be greater than or equal to 0"));
        }
    }
    let non_negative = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    Some(RunPolicy {
        clean_pod_policy: clean_pod_policy?,
        suspend: policy.suspend.unwrap_or(false),
        backoff_limit: non_negative(policy.backoff_limit.map(i64::from)).map(|v| v as u32),
        active_deadline_seconds: non_negative(policy.active_deadline_seconds),
        ttl_seconds_after_finished: non_negative(policy.ttl_seconds_after_finished.map(i64::from)),
    })
}

fn workers_timeout(job: &MPIJob, errors: &mut Vec<FieldError>) -> Option<u32> {
    let value = job.metadata.annotations.as_ref()?.get(WORKERS_TIMEOUT_ANNOTATION)?;
    match value.trim().parse::<u32>() {
        Ok(seconds) if seconds > 0 => Some(seconds),
        _ => {
            errors.push(invalid(
                &format!("metadata.annotations[{WORKERS_TIMEOUT_ANNOTATION}]"),
                format!("{value:?}"),
                "must be a whole number of seconds, at least 1",
            ));
            None
        }
    }
}
