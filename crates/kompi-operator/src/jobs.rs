//! The client side of `kompi job`: submit an MPIJob (checked first with the operator's own validation,
//! then server-side applied with field manager `kompi`), follow it, list, show, read logs and delete.

use std::time::{Duration, Instant};

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kompi_job::api::{API_VERSION, KIND, WORKER};
use kompi_job::contract::{LABEL_JOB_NAME, LABEL_OPERATOR_NAME, OPERATOR_NAME};
use kompi_job::job::JobNames;
use kompi_job::status::{FAILED, SUCCEEDED, pod_end, reason};
use kompi_job::{MPIJob, validate};
use kompi_kube::pods;
use kompi_kube::progress::Progress;
use kompi_kube::{Connection, KubeError};
use kompi_render::hostfile::is_serving;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PropagationPolicy};
use kube::ResourceExt;
use serde::Serialize;
use serde_json::Value;

use crate::install::FIELD_MANAGER;

/// An MPIJob manifest read and checked: its object as written (applied as is) and its name.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub object: Value,
    pub name: String,
    pub namespace: Option<String>,
}

/// Reads one MPIJob from YAML and validates it as the operator will, so a bad job is refused before
/// anything is applied. `file` names the source in messages.
pub fn read_manifest(text: &str, file: &str) -> Result<Manifest, KubeError> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| KubeError::Invalid(format!("{file}: not YAML: {e}")))?;
    let mut jobs = documents.into_iter().filter(|d| !d.is_null());
    let (Some(object), None) = (jobs.next(), jobs.next()) else {
        return Err(KubeError::Invalid(format!("{file}: expected exactly one MPIJob document")));
    };
    let (api_version, kind) = (object["apiVersion"].as_str().unwrap_or_default(), object["kind"].as_str().unwrap_or_default());
    if api_version != API_VERSION || kind != KIND {
        return Err(KubeError::Invalid(format!("{file}: apiVersion/kind is {api_version:?}/{kind:?}; expected {API_VERSION}/{KIND}")));
    }
    let job: MPIJob = serde_json::from_value(object.clone()).map_err(|e| KubeError::Invalid(format!("{file}: not an MPIJob: {e}")))?;
    let name = job.metadata.name.clone().filter(|n| !n.is_empty()).ok_or_else(|| KubeError::Invalid(format!("{file}: metadata.name is missing")))?;
    if let Err(problems) = validate(&job) {
        let lines: Vec<String> = problems.0.iter().map(|p| format!("{file}: {p}")).collect();
        return Err(KubeError::Invalid(lines.join("\n")));
    }
    Ok(Manifest { namespace: job.metadata.namespace.clone(), object, name })
}

/// The namespace a manifest goes to: its own, which must agree with `-n` when both are given.
pub fn namespace_of(manifest: &Manifest, flag: Option<&str>, default: &str) -> Result<String, KubeError> {
    match (manifest.namespace.as_deref(), flag) {
        (Some(a), Some(b)) if a != b => Err(KubeError::Invalid(format!("the manifest says namespace {a:?} but -n says {b:?}"))),
        (Some(a), _) => Ok(a.to_string()),
        (None, Some(b)) => Ok(b.to_string()),
        (None, None) => Ok(default.to_string()),
    }
}

/// Applies the job. A job of that name that already finished is not run again silently.
pub async fn submit(conn: &Connection, manifest: &Manifest) -> Result<(), KubeError> {
    let api: Api<MPIJob> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let existing = api.get_opt(&manifest.name).await.map_err(|e| job_error(conn, "reading", &manifest.name, e))?;
    if let Some(state) = existing.as_ref().and_then(|j| finished(j)) {
        return Err(KubeError::Invalid(format!(
            "MPIJob {} already ran ({state}): delete it first (`kompi job delete {}`) or give the new one another name",
            manifest.name, manifest.name
        )));
    }
    let mut object = manifest.object.clone();
    object["metadata"]["namespace"] = Value::from(conn.namespace.clone());
    api.patch(&manifest.name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&object))
        .await
        .map_err(|e| job_error(conn, "applying", &manifest.name, e))?;
    Ok(())
}

fn job_error(conn: &Connection, action: &str, name: &str, e: kube::Error) -> KubeError {
    match &e {
        kube::Error::Api(s) if s.code == 404 && s.details.as_ref().is_some_and(|d| d.kind == "mpijobs") && action != "applying" => {
            KubeError::Failed(format!("no MPIJob {name:?} in namespace {:?} (`kompi job list` shows them)", conn.namespace))
        }
        kube::Error::Api(s) if s.code == 404 && s.details.as_ref().is_none_or(|d| d.kind != "namespaces") => KubeError::Failed(format!(
            "{action} MPIJob {name}: the API server does not serve MPIJobs; install the operator first (`kompi operator install`)"
        )),
        _ => conn.error(&format!("{action} MPIJob {name}"), e),
    }
}

/// `Succeeded` or `Failed` when the job finished.
fn finished(job: &MPIJob) -> Option<&'static str> {
    let status = job.status.as_ref()?;
    if status.is(SUCCEEDED) {
        Some(SUCCEEDED)
    } else if status.is(FAILED) {
        Some(FAILED)
    } else {
        None
    }
}

/// How a followed job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub state: String,
    pub message: String,
    /// The status `kompi job submit --wait` exits with: 0, the launcher's own exit code, or 1.
    pub exit_code: i32,
}

/// Follows a job: progress on stderr until the launcher runs, its output on stdout, then its end.
pub async fn follow(conn: &Connection, name: &str, timeout: Duration, progress: &mut dyn Progress) -> Result<Outcome, KubeError> {
    let jobs: Api<MPIJob> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let pods_api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let names = JobNames::new(name, &conn.namespace);
    let launcher = names.launcher();
    let deadline = Instant::now() + timeout;
    // The launcher whose output was shown: a restart (runPolicy.backoffLimit) makes a new one, shown too.
    let mut streamed: Option<String> = None;
    loop {
        let job = jobs.get(name).await.map_err(|e| job_error(conn, "reading", name, e))?;
        if let Some(outcome) = outcome_of(&job, pods_api.get_opt(&launcher).await.ok().flatten().as_ref()) {
            progress.finish();
            return Ok(outcome);
        }
        let pod = pods_api.get_opt(&launcher).await.map_err(|e| conn.error(&format!("reading Pod {launcher}"), e))?;
        let started = pod.as_ref().is_some_and(|p| launcher_started(p));
        let uid = pod.as_ref().and_then(|p| p.metadata.uid.clone());
        if started && streamed != uid {
            progress.finish();
            stream_log(&pods_api, &launcher, None, true, None).await?;
            streamed = uid;
            continue;
        }
        if streamed.is_none() {
            progress.update(&waiting_line(&job, pod.as_ref()));
        }
        if Instant::now() >= deadline {
            progress.finish();
            return Err(KubeError::Timeout { seconds: timeout.as_secs(), what: format!("waiting for MPIJob {name} to finish") });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn launcher_started(pod: &Pod) -> bool {
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref());
    statuses.into_iter().flatten().any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some() || s.terminated.is_some()))
}

fn waiting_line(job: &MPIJob, launcher: Option<&Pod>) -> String {
    let workers = job.spec.mpi_replica_specs.get(WORKER).and_then(|w| w.replicas).unwrap_or(0);
    let ready = job.status.as_ref().and_then(|s| s.replica_statuses.get(WORKER)).map_or(0, |w| w.ready);
    let stuck = launcher.and_then(pods::stuck).map(|s| format!("; {s}")).unwrap_or_default();
    format!("MPIJob {}: {ready}/{workers} workers ready, launcher {}{stuck}", job.name_any(), launcher.map_or("not created yet", pods::phase))
}

/// The end of a finished job: its last condition, and the exit code the launcher gave.
pub fn outcome_of(job: &MPIJob, launcher: Option<&Pod>) -> Option<Outcome> {
    let state = finished(job)?;
    let condition = job.status.as_ref()?.condition(state)?;
    let message = condition.message.clone().unwrap_or_default();
    let exit_code = match (state, condition.reason.as_deref()) {
        (SUCCEEDED, _) => 0,
        (_, Some(reason::LAUNCHER_FAILED | reason::BACKOFF_LIMIT_EXCEEDED)) => launcher.map(pod_end).and_then(|e| e.exit_code).filter(|c| *c != 0).unwrap_or(1),
        _ => 1,
    };
    Some(Outcome { state: state.to_string(), message, exit_code })
}

/// One line of `kompi job list`.
#[derive(Clone, Debug, Serialize)]
pub struct Listing {
    pub namespace: String,
    pub name: String,
    pub state: String,
    pub workers: i32,
    pub ready: i32,
    pub age: String,
}

pub async fn list(conn: &Connection, all_namespaces: bool) -> Result<Vec<Listing>, KubeError> {
    let api: Api<MPIJob> = if all_namespaces { Api::all(conn.client.clone()) } else { Api::namespaced(conn.client.clone(), &conn.namespace) };
    let jobs = api.list(&ListParams::default()).await.map_err(|e| job_error(conn, "listing", "s", e))?;
    let now = Timestamp::now();
    Ok(jobs
        .items
        .iter()
        .map(|job| Listing {
            namespace: job.namespace().unwrap_or_default(),
            name: job.name_any(),
            state: job.status.as_ref().and_then(|s| s.conditions.last()).map(|c| c.type_.clone()).unwrap_or_else(|| "Pending".into()),
            workers: job.spec.mpi_replica_specs.get(WORKER).and_then(|w| w.replicas).unwrap_or(0),
            ready: job.status.as_ref().and_then(|s| s.replica_statuses.get(WORKER)).map_or(0, |w| w.ready),
            age: job.metadata.creation_timestamp.as_ref().map(|t| age(now, t.0)).unwrap_or_default(),
        })
        .collect())
}

fn age(now: Timestamp, then: Timestamp) -> String {
    let seconds = now.duration_since(then).as_secs().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// `kompi job status`: the job's conditions and pods.
#[derive(Clone, Debug, Serialize)]
pub struct JobReport {
    pub name: String,
    pub namespace: String,
    pub state: String,
    pub conditions: Vec<ConditionLine>,
    pub pods: Vec<PodLine>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConditionLine {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct PodLine {
    pub name: String,
    pub role: String,
    pub phase: String,
    pub ready: bool,
    pub restarts: i32,
    pub node: String,
    /// Why it is stuck, or how it ended.
    pub note: String,
}

pub async fn status(conn: &Connection, name: &str) -> Result<JobReport, KubeError> {
    let api: Api<MPIJob> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let job = api.get(name).await.map_err(|e| job_error(conn, "reading", name, e))?;
    let pods_api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let selector = format!("{LABEL_JOB_NAME}={name},{LABEL_OPERATOR_NAME}={OPERATOR_NAME}");
    let mut list = pods_api.list(&ListParams::default().labels(&selector)).await.map_err(|e| conn.error("listing the job's pods", e))?.items;
    list.sort_by_key(|p| (p.name_any() != JobNames::new(name, &conn.namespace).launcher(), p.name_any()));
    let status = job.status.clone().unwrap_or_default();
    Ok(JobReport {
        name: name.to_string(),
        namespace: conn.namespace.clone(),
        state: status.conditions.last().map(|c| c.type_.clone()).unwrap_or_else(|| "Pending".into()),
        conditions: status
            .conditions
            .iter()
            .map(|c| ConditionLine {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone().unwrap_or_default(),
                message: c.message.clone().unwrap_or_default(),
            })
            .collect(),
        pods: list
            .iter()
            .map(|p| PodLine {
                name: p.name_any(),
                role: p.labels().get("training.kubeflow.org/job-role").cloned().unwrap_or_default(),
                phase: pods::phase(p).to_string(),
                ready: is_serving(p),
                restarts: pods::restarts(p),
                node: p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
                note: match pods::phase(p) {
                    "Failed" => pod_end(p).describe(),
                    _ => pods::stuck(p).map(|s| s.to_string()).unwrap_or_default(),
                },
            })
            .collect(),
    })
}

/// Which pod's log: the launcher's, or worker `i`'s.
pub async fn logs(conn: &Connection, name: &str, worker: Option<u32>, follow: bool, tail: Option<i64>) -> Result<(), KubeError> {
    let names = JobNames::new(name, &conn.namespace);
    let pod = worker.map_or_else(|| names.launcher(), |i| names.worker(i));
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    if api.get_opt(&pod).await.map_err(|e| conn.error(&format!("reading Pod {pod}"), e))?.is_none() {
        let jobs: Api<MPIJob> = Api::namespaced(conn.client.clone(), &conn.namespace);
        jobs.get(name).await.map_err(|e| job_error(conn, "reading", name, e))?;
        return Err(KubeError::Failed(format!("MPIJob {name} has no pod {pod} (not created yet, or removed by its clean-pod policy)")));
    }
    stream_log(&api, &pod, None, follow, tail).await
}

async fn stream_log(api: &Api<Pod>, pod: &str, container: Option<&str>, follow: bool, tail: Option<i64>) -> Result<(), KubeError> {
    let params = LogParams { container: container.map(str::to_string), follow, tail_lines: tail, ..Default::default() };
    let context = format!("reading the log of {pod}");
    let stream = api.log_stream(pod, &params).await.map_err(|e| KubeError::Failed(format!("{context}: {e}")))?;
    let mut lines = stream.lines();
    while let Some(line) = lines.try_next().await.map_err(|e| KubeError::Failed(format!("{context}: {e}")))? {
        println!("{line}");
    }
    Ok(())
}

/// Deletes the job; its pods, Service, ConfigMap and Secret go with it (owner references). With `wait`,
/// returns once all of them are gone.
pub async fn delete(conn: &Connection, name: &str, wait: Option<Duration>) -> Result<(), KubeError> {
    let api: Api<MPIJob> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let params = DeleteParams { propagation_policy: Some(PropagationPolicy::Foreground), ..Default::default() };
    api.delete(name, &params).await.map_err(|e| job_error(conn, "deleting", name, e))?;
    let Some(timeout) = wait else { return Ok(()) };
    let deadline = Instant::now() + timeout;
    // Foreground deletion: the MPIJob goes last, once everything it owns is deleted.
    while api.get_opt(name).await.map_err(|e| job_error(conn, "reading", name, e))?.is_some() {
        if Instant::now() >= deadline {
            return Err(KubeError::Timeout { seconds: timeout.as_secs(), what: format!("waiting for MPIJob {name} and its pods to be deleted") });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}
