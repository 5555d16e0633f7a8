//! Waiting on a cluster through a watch on its pods, cached by kube-runtime's reflector, with live progress
//! and the reason when a pod is stuck.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kompi_spec::{ClusterName, contract};
use kube::api::{Api, LogParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector;
use kube::runtime::watcher::{self, Event};

use crate::client::Connection;
use crate::error::KubeError;
use crate::pods::{self, Summary};
use crate::progress::Progress;

/// The cluster's pods when a wait ended, and what they add up to.
pub struct Settled {
    pub summary: Summary,
    pub pods: Vec<Arc<Pod>>,
}

impl Settled {
    pub fn pod(&self, name: &str) -> Option<&Pod> {
        self.pods.iter().map(|p| &**p).find(|p| pods::name(p) == name)
    }
}

/// Waits until `done` holds for the cluster's pods; fails at the deadline, or at once when a pod can
/// never start. Stuck pods are reported as they appear (with the last log lines of a crashing container).
pub async fn until(
    conn: &Connection,
    cluster: &ClusterName,
    desired: u32,
    timeout: Duration,
    what: &str,
    progress: &mut dyn Progress,
    done: impl Fn(&Summary, &[Arc<Pod>]) -> bool,
) -> Result<Settled, KubeError> {
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let config = watcher::Config::default().labels(&contract::instance_selector(cluster.as_str()));
    let (store, writer) = reflector::store();
    let mut events = reflector::reflector(writer, watcher::watcher(api.clone(), config).default_backoff()).boxed();
    let mut reported = BTreeSet::new();
    let deadline = Instant::now() + timeout;
    let mut synced = false;
    let outcome = loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let event = tokio::select! {
            e = events.next() => e,
            _ = tokio::time::sleep(remaining.min(Duration::from_secs(1))) => None,
        };
        match event {
            Some(Ok(Event::InitDone)) => synced = true,
            Some(Err(e)) => progress.note(&format!("watch interrupted, resuming: {e}")),
            _ => {}
        }
        if !synced {
            if Instant::now() >= deadline {
                break Err(KubeError::Timeout { seconds: timeout.as_secs(), what: format!("{what}: the pod watch never synced") });
            }
            continue;
        }
        let pods = store.state();
        let summary = Summary::of(cluster, desired, pods.iter().map(|p| &**p));
        progress.update(&format!("{what}: {}", summary.line()));
        if let Some(hopeless) = report_stuck(&api, &summary, &mut reported, progress).await {
            break Err(KubeError::Failed(format!("{what}: {hopeless} (this cannot fix itself: correct the values and run `kompi up` again)")));
        }
        if done(&summary, &pods) {
            break Ok(Settled { summary, pods });
        }
        if Instant::now() >= deadline {
            let stuck: Vec<String> = summary.stuck.iter().map(ToString::to_string).collect();
            let why = if stuck.is_empty() { String::new() } else { format!("; {}", stuck.join("; ")) };
            break Err(KubeError::Timeout { seconds: timeout.as_secs(), what: format!("{what} ({}){why}", summary.line()) });
        }
    };
    progress.finish();
    outcome
}

/// Notes each newly stuck pod once; returns the first that can never start.
async fn report_stuck(api: &Api<Pod>, summary: &Summary, reported: &mut BTreeSet<String>, progress: &mut dyn Progress) -> Option<String> {
    for s in &summary.stuck {
        let key = format!("{}/{:?}/{}", s.pod, s.container, s.reason);
        if reported.insert(key) {
            progress.note(&format!("  {s}"));
            if s.reason == "CrashLoopBackOff" {
                for line in last_log_lines(api, &s.pod, s.container.as_deref(), 5).await {
                    progress.note(&format!("    | {line}"));
                }
            }
        }
        if s.hopeless {
            return Some(s.to_string());
        }
    }
    None
}

/// Runnable: the master Ready (every worker the hostfile lists answers on ssh from it) and the hostfile
/// listing exactly the `desired` workers. `kompi up --wait`, `run` and `scale --wait` all wait for this.
pub async fn ready(conn: &Connection, cluster: &ClusterName, desired: u32, timeout: Duration, progress: &mut dyn Progress) -> Result<Settled, KubeError> {
    until(conn, cluster, desired, timeout, &format!("waiting for cluster {cluster}"), progress, |s, _| s.is_ready()).await
}

/// Until the one-shot master has finished; its command's exit status.
pub async fn one_shot_done(conn: &Connection, cluster: &ClusterName, desired: u32, timeout: Duration, progress: &mut dyn Progress) -> Result<i32, KubeError> {
    let what = format!("running the one-shot command of {cluster}");
    let settled = until(conn, cluster, desired, timeout, &what, progress, |s, _| matches!(s.master_phase.as_deref(), Some("Succeeded" | "Failed"))).await?;
    let master = settled.pod(&cluster.master_pod());
    Ok(master.and_then(|p| pods::terminated(p, pods::MASTER)).map(|(code, _)| code).unwrap_or(1))
}

async fn last_log_lines(api: &Api<Pod>, pod: &str, container: Option<&str>, lines: i64) -> Vec<String> {
    let params = LogParams { container: container.map(str::to_string), previous: true, tail_lines: Some(lines), ..Default::default() };
    match api.logs(pod, &params).await {
        Ok(text) => text.lines().map(str::to_string).collect(),
        Err(_) => Vec::new(),
    }
}

/// Until a pod no longer exists.
pub async fn until_gone(conn: &Connection, pod: &str) -> Result<(), KubeError> {
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let timeout = Duration::from_secs(120);
    let deadline = Instant::now() + timeout;
    while api.get_opt(pod).await.map_err(|e| conn.error(&format!("reading Pod {pod}"), e))?.is_some() {
        if Instant::now() > deadline {
            return Err(KubeError::Timeout { seconds: timeout.as_secs(), what: format!("waiting for Pod {pod} to be deleted") });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}
