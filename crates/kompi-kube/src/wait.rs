//! Waiting on a cluster through a watch on its pods, with live progress and the reason when a pod is stuck.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kompi_spec::{ClusterName, contract};
use kube::api::{Api, LogParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;

use crate::client::Connection;
use crate::error::KubeError;
use crate::pods::{self, Summary};
use crate::progress::Progress;

/// Waits until `done` holds for the cluster's pods; fails at the deadline, or at once when a pod can
/// never start. Stuck pods are reported as they appear (with the last log lines of a crashing container).
pub async fn until(
    conn: &Connection,
    cluster: &ClusterName,
    desired: u32,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Summary, &BTreeMap<String, Pod>) -> bool,
) -> Result<Summary, KubeError> {
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let config = watcher::Config::default().labels(&contract::instance_selector(cluster.as_str()));
    let mut events = watcher::watcher(api.clone(), config).default_backoff().boxed();
    let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
    let mut initial: BTreeMap<String, Pod> = BTreeMap::new();
    let mut progress = Progress::new();
    let mut reported = BTreeSet::new();
    let deadline = Instant::now() + timeout;
    let mut synced = false;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let event = tokio::select! {
            e = events.next() => e,
            _ = tokio::time::sleep(remaining.min(Duration::from_secs(1))) => None,
        };
        match event {
            Some(Ok(Event::Apply(p) | Event::InitApply(p))) => {
                let target = if synced { &mut pods } else { &mut initial };
                target.insert(pods::name(&p).to_string(), p);
            }
            Some(Ok(Event::Delete(p))) => {
                pods.remove(pods::name(&p));
            }
            Some(Ok(Event::Init)) => initial.clear(),
            Some(Ok(Event::InitDone)) => {
                pods = std::mem::take(&mut initial);
                synced = true;
            }
            Some(Err(e)) => progress.note(&format!("watch interrupted, resuming: {e}")),
            None => {}
        }
        if !synced {
            if Instant::now() >= deadline {
                return Err(KubeError::Timeout { seconds: timeout.as_secs(), what: format!("{what}: the pod watch never synced") });
            }
            continue;
        }
        let summary = Summary::of(cluster, desired, pods.values());
        progress.update(&format!("{what}: {}", summary.line()));
        for s in &summary.stuck {
            let key = format!("{}/{:?}/{}", s.pod, s.container, s.reason);
            if reported.insert(key) {
                progress.note(&format!("  {s}"));
                if s.reason == "CrashLoopBackOff" {
                    for line in last_log_lines(&api, &s.pod, s.container.as_deref(), 5).await {
                        progress.note(&format!("    | {line}"));
                    }
                }
            }
            if s.hopeless {
                progress.finish();
                return Err(KubeError::Failed(format!("{what}: {s} (this cannot fix itself: correct the values and run `kompi up` again)")));
            }
        }
        if done(&summary, &pods) {
            progress.finish();
            return Ok(summary);
        }
        if Instant::now() >= deadline {
            progress.finish();
            let stuck: Vec<String> = summary.stuck.iter().map(ToString::to_string).collect();
            let why = if stuck.is_empty() { String::new() } else { format!("; {}", stuck.join("; ")) };
            return Err(KubeError::Timeout { seconds: timeout.as_secs(), what: format!("{what} ({}){why}", summary.line()) });
        }
    }
}

/// Ready: the master (sshd up and every initial worker in the hostfile) and `desired` workers.
pub async fn ready(conn: &Connection, cluster: &ClusterName, desired: u32, timeout: Duration) -> Result<Summary, KubeError> {
    until(conn, cluster, desired, timeout, &format!("waiting for cluster {cluster}"), |s, _| s.is_ready()).await
}

/// Until the master's MPI container runs, so commands can be executed in it.
pub async fn master_running(conn: &Connection, cluster: &ClusterName, desired: u32, timeout: Duration) -> Result<(), KubeError> {
    let master = cluster.master_pod();
    until(conn, cluster, desired, timeout, &format!("waiting for the master of cluster {cluster}"), |_, pods| {
        pods.get(&master).is_some_and(|p| pods::container_running(p, pods::MASTER))
    })
    .await
    .map(drop)
}

/// Until the one-shot master has finished; its command's exit status.
pub async fn one_shot_done(conn: &Connection, cluster: &ClusterName, desired: u32, timeout: Duration) -> Result<i32, KubeError> {
    let master = cluster.master_pod();
    until(conn, cluster, desired, timeout, &format!("running the one-shot command of {cluster}"), |s, _| {
        matches!(s.master_phase.as_deref(), Some("Succeeded" | "Failed"))
    })
    .await?;
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let pod = api.get(&master).await.map_err(|e| conn.error(&format!("reading Pod {master}"), e))?;
    Ok(pods::terminated(&pod, pods::MASTER).map(|(code, _)| code).unwrap_or(1))
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
