//! `kompi status`, `list`, `scale`, `logs` and `down`.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use kompi_spec::contract::{self, HOSTFILE, LABEL_INSTANCE, SIDECAR_CONTAINER};
use kompi_spec::ClusterName;
use kompi_render::Kind;
use kompi_render::hostfile::is_serving;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams};
use serde::Serialize;

use crate::client::Connection;
use crate::error::KubeError;
use crate::nodes;
use crate::pods::{self, Place, Summary};
use crate::progress::Progress;
use crate::remote;

#[derive(Serialize)]
pub struct PodStatus {
    pub name: String,
    /// The node it was scheduled to.
    pub node: Option<String>,
    pub phase: String,
    pub ready: bool,
    pub restarts: i32,
    pub problem: Option<String>,
}

/// Where a cluster stands, from its pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ClusterPhase {
    /// The master or some desired workers are not ready yet.
    Starting,
    /// The master and every desired worker are ready.
    Ready,
    /// The master is ready but some desired workers are not.
    Degraded,
    /// A one-shot master's command succeeded.
    Completed,
    /// The master pod failed.
    Failed,
}

impl ClusterPhase {
    pub fn of(summary: &Summary) -> Self {
        match summary.master_phase.as_deref() {
            Some("Succeeded") => ClusterPhase::Completed,
            Some("Failed") => ClusterPhase::Failed,
            _ if summary.is_ready() => ClusterPhase::Ready,
            _ if summary.master_ready => ClusterPhase::Degraded,
            _ => ClusterPhase::Starting,
        }
    }
}

impl std::fmt::Display for ClusterPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

#[derive(Serialize)]
pub struct ClusterStatus {
    pub name: String,
    pub namespace: String,
    pub phase: ClusterPhase,
    pub workers_desired: u32,
    pub workers_ready: u32,
    pub pods: Vec<PodStatus>,
    pub hostfile: Vec<String>,
    pub warnings: Vec<String>,
}

async fn cluster_pods(conn: &Connection, name: &ClusterName) -> Result<Vec<Pod>, KubeError> {
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let list = api.list(&ListParams::default().labels(&contract::instance_selector(name.as_str()))).await.map_err(|e| conn.error("listing the cluster's pods", e))?;
    Ok(list.items)
}

async fn desired_workers(conn: &Connection, name: &ClusterName) -> Result<Option<u32>, KubeError> {
    let sets: Api<StatefulSet> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let set = sets.get_opt(&name.worker_set()).await.map_err(|e| conn.error(&format!("reading StatefulSet {}", name.worker_set()), e))?;
    Ok(set.map(|s| s.spec.replicas.unwrap_or(1) as u32))
}

/// The hostfile as the sidecar last wrote it (empty if the master cannot be reached).
async fn hostfile(conn: &Connection, name: &ClusterName) -> Vec<String> {
    let argv = vec!["cat".to_string(), HOSTFILE.to_string()];
    match remote::capture(conn, &name.master_pod(), SIDECAR_CONTAINER, &argv).await {
        Ok(out) if out.code == 0 => out.stdout.lines().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

pub async fn status(conn: &Connection, name: &ClusterName) -> Result<ClusterStatus, KubeError> {
    let pods = cluster_pods(conn, name).await?;
    let desired = desired_workers(conn, name).await?;
    if pods.is_empty() && desired.is_none() {
        return Err(KubeError::ClusterNotFound { name: name.to_string(), namespace: conn.namespace.clone() });
    }
    let desired = desired.unwrap_or(0);
    let summary = Summary::of(name, desired, &pods);
    // A pod on a lost node still shows the phase its kubelet last reported: the node is the news.
    let node_problems = nodes::problems_under(conn, &pods).await?;
    let mut pod_status: Vec<PodStatus> = pods
        .iter()
        .map(|p| PodStatus {
            name: pods::name(p).to_string(),
            node: nodes::of(p).map(str::to_string),
            phase: pods::phase(p).to_string(),
            ready: is_serving(p),
            restarts: pods::restarts(p),
            problem: nodes::of(p).and_then(|n| node_problems.get(n).cloned()).or_else(|| pods::stuck(p).map(|s| s.to_string())),
        })
        .collect();
    pod_status.sort_by_key(|p| (p.name != name.master_pod(), name.worker_ordinal(&p.name), p.name.clone()));
    Ok(ClusterStatus {
        name: name.to_string(),
        namespace: conn.namespace.clone(),
        phase: ClusterPhase::of(&summary),
        workers_desired: desired,
        workers_ready: summary.workers_ready,
        hostfile: if summary.master_phase.as_deref() == Some("Running") { hostfile(conn, name).await } else { Vec::new() },
        warnings: warnings(conn, name).await?,
        pods: pod_status,
    })
}

/// The latest Warning events about the cluster's objects.
async fn warnings(conn: &Connection, name: &ClusterName) -> Result<Vec<String>, KubeError> {
    let api: Api<Event> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let events = api.list(&ListParams::default().fields("type=Warning")).await.map_err(|e| conn.error("listing events", e))?;
    let prefix = format!("{}-", name);
    let mut mine: Vec<&Event> = events
        .items
        .iter()
        .filter(|e| e.involved_object.name.as_deref().is_some_and(|n| n == name.as_str() || n.starts_with(&prefix)))
        .collect();
    mine.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
    Ok(mine
        .iter()
        .rev()
        .take(10)
        .rev()
        .map(|e| {
            format!(
                "{}/{}: {}: {}",
                e.involved_object.kind.clone().unwrap_or_default(),
                e.involved_object.name.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default().trim()
            )
        })
        .collect())
}

#[derive(Serialize)]
pub struct ClusterListing {
    pub name: String,
    pub namespace: String,
    pub workers_desired: u32,
    pub workers_ready: u32,
    pub master_phase: String,
}

/// Every kompi cluster in the namespace (or in all of them).
pub async fn list(conn: &Connection, all_namespaces: bool) -> Result<Vec<ClusterListing>, KubeError> {
    let selector = format!("{}={}", contract::LABEL_NAME, contract::APP_NAME);
    let params = ListParams::default().labels(&selector);
    let (sets, pods): (Api<StatefulSet>, Api<Pod>) = if all_namespaces {
        (Api::all(conn.client.clone()), Api::all(conn.client.clone()))
    } else {
        (Api::namespaced(conn.client.clone(), &conn.namespace), Api::namespaced(conn.client.clone(), &conn.namespace))
    };
    let sets = sets.list(&params).await.map_err(|e| conn.error("listing StatefulSets", e))?;
    let pods = pods.list(&params).await.map_err(|e| conn.error("listing pods", e))?;
    let mut out: BTreeMap<(String, String), ClusterListing> = BTreeMap::new();
    for set in &sets {
        let (Some(ns), Some(instance)) = (set.metadata.namespace.clone(), set.metadata.labels.as_ref().and_then(|l| l.get(LABEL_INSTANCE)).cloned()) else {
            continue;
        };
        out.insert(
            (ns.clone(), instance.clone()),
            ClusterListing {
                workers_desired: set.spec.replicas.unwrap_or(1) as u32,
                workers_ready: set.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0) as u32,
                master_phase: "(none)".into(),
                name: instance,
                namespace: ns,
            },
        );
    }
    for pod in &pods {
        let (Some(ns), Some(instance)) = (pod.metadata.namespace.clone(), pod.metadata.labels.as_ref().and_then(|l| l.get(LABEL_INSTANCE)).cloned()) else {
            continue;
        };
        if let Ok(cluster) = ClusterName::new(&instance)
            && pods::name(pod) == cluster.master_pod()
            && let Some(listing) = out.get_mut(&(ns, instance))
        {
            listing.master_phase = format!("{}{}", pods::phase(pod), if is_serving(pod) { ", ready" } else { "" });
        }
    }
    Ok(out.into_values().collect())
}

/// Sets the worker count; with `wait`, until the cluster is runnable with that many workers (the
/// hostfile lists exactly them, and each answers).
pub async fn scale(conn: &Connection, name: &ClusterName, workers: u32, wait: Option<Duration>, progress: &mut dyn Progress) -> Result<(), KubeError> {
    let sets: Api<StatefulSet> = Api::namespaced(conn.client.clone(), &conn.namespace);
    if sets.get_opt(&name.worker_set()).await.map_err(|e| conn.error("reading the workers", e))?.is_none() {
        return Err(KubeError::ClusterNotFound { name: name.to_string(), namespace: conn.namespace.clone() });
    }
    let patch = serde_json::json!({"spec": {"replicas": workers}});
    sets.patch_scale(&name.worker_set(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| conn.error(&format!("scaling StatefulSet {}", name.worker_set()), e))?;
    if let Some(timeout) = wait {
        crate::wait::ready(conn, name, workers, timeout, progress).await?;
    }
    Ok(())
}

/// A pod of the cluster, which must exist.
pub(crate) async fn existing_pod(conn: &Connection, name: &ClusterName, pod: &str) -> Result<Pod, KubeError> {
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    api.get_opt(pod)
        .await
        .map_err(|e| conn.error(&format!("reading Pod {pod}"), e))?
        .ok_or_else(|| KubeError::ClusterNotFound { name: format!("{name} (no pod {pod})"), namespace: conn.namespace.clone() })
}

/// A container's log, line by line to `line`; with `follow`, keeps streaming.
pub async fn logs(conn: &Connection, name: &ClusterName, place: Place, follow: bool, tail: Option<i64>, line: &mut dyn FnMut(&str)) -> Result<(), KubeError> {
    let (pod, container) = place.pod_and_container(name);
    existing_pod(conn, name, &pod).await?;
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let params = LogParams { container: Some(container.to_string()), follow, tail_lines: tail, ..Default::default() };
    let context = format!("reading the log of {pod}/{container}");
    let mut lines = api.log_stream(&pod, &params).await.map_err(|e| conn.error(&context, e))?.lines();
    while let Some(text) = lines.try_next().await.map_err(|e| KubeError::Failed(format!("{context}: {e}")))? {
        line(&text);
    }
    Ok(())
}

/// Deletes everything labelled with the cluster's instance; returns what it removed. With `wait`,
/// until the pods are gone.
pub async fn down(conn: &Connection, name: &ClusterName, wait: Option<Duration>) -> Result<Vec<String>, KubeError> {
    let selector = contract::instance_selector(name.as_str());
    let mut removed = Vec::new();
    for kind in Kind::ALL {
        let api = conn.dynamic_api(kind);
        let list = match api.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list,
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => return Err(conn.error(&format!("listing {}s", kind.name()), e)),
        };
        for object in list {
            let object_name = object.metadata.name.clone().unwrap_or_default();
            // Worker pods belong to the StatefulSet, which removes them.
            if kind == Kind::Pod && object_name != name.master_pod() {
                continue;
            }
            let id = format!("{}/{object_name}", kind.name());
            match api.delete(&object_name, &DeleteParams::default()).await {
                Ok(_) => removed.push(id),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(conn.error(&format!("deleting {id}"), e)),
            }
        }
    }
    if let Some(timeout) = wait {
        let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = api.list(&ListParams::default().labels(&selector)).await.map_err(|e| conn.error("listing the cluster's pods", e))?;
            if left.items.is_empty() {
                break;
            }
            if std::time::Instant::now() > deadline {
                let names: Vec<&str> = left.items.iter().map(pods::name).collect();
                return Err(KubeError::Timeout { seconds: timeout.as_secs(), what: format!("waiting for pods to go: {}", names.join(", ")) });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phase_follows_the_master_then_the_workers() {
        let summary = |master_phase: &str, master_ready: bool, workers_ready: u32| Summary {
            master_phase: Some(master_phase.into()),
            master_ready,
            workers_ready,
            listed: (0..workers_ready).collect(),
            desired: 2,
            ..Summary::default()
        };
        assert_eq!(ClusterPhase::of(&summary("Running", true, 2)), ClusterPhase::Ready);
        assert_eq!(ClusterPhase::of(&summary("Running", true, 1)), ClusterPhase::Degraded);
        assert_eq!(ClusterPhase::of(&summary("Pending", false, 2)), ClusterPhase::Starting);
        assert_eq!(ClusterPhase::of(&summary("Succeeded", false, 0)), ClusterPhase::Completed);
        assert_eq!(ClusterPhase::of(&summary("Failed", false, 2)), ClusterPhase::Failed);
        assert_eq!(serde_json::to_value(ClusterPhase::Degraded).unwrap(), "Degraded");
        assert_eq!(ClusterPhase::Ready.to_string(), "Ready");
    }
}
