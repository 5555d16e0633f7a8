//! `kompi run` and `kompi exec`: mpiexec on the master once the cluster is runnable, output streamed,
//! Ctrl-C passed on, the exit status returned, and the worker named when one failed the run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kompi_render::command::{InitCommand, LaunchCommand};
use kompi_render::hostfile::is_serving;
use kompi_render::launcher::{Launch, mpiexec};
use kompi_spec::contract::{HOSTFILE, KOMPI_BIN, WORKER_CONTAINER};
use kompi_spec::{ClusterName, contract};
use kube::api::{Api, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use tokio::io::AsyncWriteExt;

use crate::client::Connection;
use crate::cluster;
use crate::error::KubeError;
use crate::nodes;
use crate::pods::{self, Place};
use crate::progress::Progress;
use crate::remote::{self, Output, Streams};
use crate::wait;

/// What `kompi launch` reads on its stdin as Ctrl-C (ETX, what a terminal sends for it).
const INTERRUPT: u8 = 0x03;
/// How often the nodes of the workers that turned unready during a run are read.
const NODE_CHECK_EVERY: Duration = Duration::from_secs(2);
/// How long mpiexec has to end after SIGINT once a node under the run is lost; then the connection is
/// closed, which ends it (`kompi launch`: SIGTERM, then SIGKILL).
const ABORT_GRACE: Duration = Duration::from_secs(10);

pub struct RunOptions {
    pub np: Option<u32>,
    pub npernode: Option<u32>,
    pub mca: Vec<(String, String)>,
    pub command: Vec<String>,
    /// How long to wait for the cluster to be ready before running.
    pub wait_timeout: Duration,
}

/// What a run came to: the status of mpiexec and, after a failure, what happened to workers.
pub struct RunOutcome {
    pub status: i32,
    pub worker_problems: Vec<String>,
}

/// The master's `kompi init` command line, as render wrote it into the pod, and the desired workers.
async fn cluster_of(conn: &Connection, name: &ClusterName) -> Result<(InitCommand, String, u32), KubeError> {
    let master = cluster::existing_pod(conn, name, &name.master_pod()).await?;
    let container = master.spec.as_ref().and_then(|s| s.containers.iter().find(|c| c.name == pods::MASTER));
    let args = container.and_then(|c| c.args.clone()).unwrap_or_default();
    // The kompi the MPI container runs (injected or the image's), as the render wrote it.
    let kompi = container.and_then(|c| c.command.as_ref()?.first().cloned()).unwrap_or_else(|| KOMPI_BIN.to_string());
    let init = InitCommand::from_args(&args).map_err(|why| {
        KubeError::Failed(format!("Pod {} was not made by this kompi (its {} container's arguments: {why}); `kompi up` makes it again", name.master_pod(), pods::MASTER))
    })?;
    let sets: Api<StatefulSet> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let desired = sets
        .get_opt(&name.worker_set())
        .await
        .map_err(|e| conn.error(&format!("reading StatefulSet {}", name.worker_set()), e))?
        .and_then(|s| s.spec.replicas)
        .unwrap_or(0) as u32;
    Ok((init, kompi, desired))
}

/// The worker pods now, by name, to tell afterwards what happened to them.
async fn worker_snapshot(conn: &Connection, cluster: &ClusterName) -> Result<BTreeMap<String, Pod>, KubeError> {
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let list = api
        .list(&ListParams::default().labels(&contract::worker_selector(cluster.as_str())))
        .await
        .map_err(|e| conn.error("listing the worker pods", e))?;
    Ok(list.into_iter().map(|p| (pods::name(&p).to_string(), p)).collect())
}

/// What changed for each worker between two snapshots: lost with its node (`node_problems`, by node
/// name), deleted, replaced, restarted (and why), unready.
pub fn worker_changes(before: &BTreeMap<String, Pod>, after: &BTreeMap<String, Pod>, node_problems: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, old) in before {
        if let Some(problem) = nodes::of(old).and_then(|node| node_problems.get(node)) {
            problems.push(format!("worker {name} was lost with its node: {problem}"));
            continue;
        }
        let Some(new) = after.get(name) else {
            problems.push(format!("worker {name} was deleted during the run"));
            continue;
        };
        if new.metadata.uid != old.metadata.uid || new.metadata.deletion_timestamp.is_some() {
            problems.push(format!("worker {name} was deleted during the run (and replaced)"));
        } else if pods::restarts(new) > pods::restarts(old) {
            let why = new
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|c| c.iter().find(|c| c.name == WORKER_CONTAINER))
                .and_then(|c| c.last_state.as_ref()?.terminated.as_ref())
                .map(|t| format!(": {} (exit {})", t.reason.clone().unwrap_or_default(), t.exit_code))
                .unwrap_or_default();
            problems.push(format!("worker {name} restarted during the run{why}"));
        } else if !is_serving(new) {
            problems.push(format!("worker {name} is not ready"));
        }
    }
    problems
}

/// Returns once a node under the run's workers is lost, with the problems of the lost nodes. Nothing in
/// the pods notices a lost node (its processes answer nothing and no connection to them is reset, so
/// mpiexec would wait forever); Kubernetes does, after the node's grace period, by marking its pods not
/// ready. So the workers are watched, and the node of one that turns unready is read until it is ready again.
async fn until_a_node_is_lost(conn: &Connection, cluster: &ClusterName, running: &BTreeMap<String, Pod>) -> BTreeMap<String, String> {
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let config = watcher::Config::default().labels(&contract::worker_selector(cluster.as_str()));
    let mut workers = watcher::watcher(api, config).default_backoff().applied_objects().boxed();
    let mut suspects: BTreeMap<String, String> = BTreeMap::new();
    let mut tick = tokio::time::interval(NODE_CHECK_EVERY);
    loop {
        tokio::select! {
            Some(event) = workers.next() => {
                let Ok(pod) = event else { continue };
                let name = pods::name(&pod).to_string();
                match (running.contains_key(&name), nodes::of(&pod)) {
                    (true, Some(node)) if !is_serving(&pod) => suspects.insert(name, node.to_string()),
                    _ => suspects.remove(&name),
                };
            }
            _ = tick.tick() => {
                if suspects.is_empty() {
                    continue;
                }
                let names: BTreeSet<String> = suspects.values().cloned().collect();
                if let Ok(lost) = nodes::problems(conn, &names).await && !lost.is_empty() {
                    return lost;
                }
            }
        }
    }
}

/// Waits until the cluster is runnable (the master's Ready condition: every worker the hostfile lists
/// answers on ssh from it, and it lists the desired ones), then runs mpiexec through `kompi launch` in
/// the master. The first Ctrl-C reaches mpiexec as SIGINT and its status is awaited; a second one stops
/// waiting (the closed connection then ends mpiexec with SIGTERM). A node lost under a worker does the
/// same as Ctrl-C, waiting [`ABORT_GRACE`] at most.
pub async fn run(conn: &Connection, name: &ClusterName, opts: &RunOptions, stdout: Output, stderr: Output, progress: &mut dyn Progress) -> Result<RunOutcome, KubeError> {
    let (init, kompi, desired) = cluster_of(conn, name).await?;
    let launch = Launch { np: opts.np, npernode: opts.npernode, mca: &opts.mca, command: &opts.command };
    let argv = mpiexec(init.mpi, HOSTFILE, &launch).map_err(KubeError::Invalid)?;
    let settled = wait::ready(conn, name, desired, opts.wait_timeout, progress).await?;
    let before: BTreeMap<String, Pod> =
        settled.pods.iter().filter(|p| pods::is_worker(p)).map(|p| (pods::name(p).to_string(), (**p).clone())).collect();
    let mut remote_argv = vec![kompi];
    remote_argv.extend(LaunchCommand { signals_from_stdin: true, command: argv }.to_args());
    let master = name.master_pod();
    let (finished, mut control) = remote::start_controlled(conn, &master, pods::MASTER, &remote_argv, stdout, stderr).await?;
    tokio::pin!(finished);
    let status = tokio::select! {
        status = &mut finished => status?,
        _ = tokio::signal::ctrl_c() => {
            progress.note(&format!("interrupting mpiexec on {master} (Ctrl-C again to stop waiting for it)"));
            let _ = control.write_all(&[INTERRUPT]).await;
            let _ = control.flush().await;
            tokio::select! {
                status = &mut finished => status?,
                _ = tokio::signal::ctrl_c() => 130,
            }
        }
        lost = until_a_node_is_lost(conn, name, &before) => {
            let lost: Vec<&str> = lost.values().map(String::as_str).collect();
            progress.note(&format!("{}: stopping mpiexec on {master}, which cannot finish without the workers there", lost.join("; ")));
            let _ = control.write_all(&[INTERRUPT]).await;
            let _ = control.flush().await;
            match tokio::time::timeout(ABORT_GRACE, &mut finished).await {
                Ok(status) => status?.max(1),
                Err(_) => 1,
            }
        }
    };
    let worker_problems = if status == 0 {
        Vec::new()
    } else {
        let node_problems = nodes::problems_under(conn, before.values()).await?;
        worker_changes(&before, &worker_snapshot(conn, name).await?, &node_problems)
    };
    Ok(RunOutcome { status, worker_problems })
}

pub async fn exec(conn: &Connection, name: &ClusterName, place: Place, command: &[String], streams: Streams) -> Result<i32, KubeError> {
    let (pod, container) = place.pod_and_container(name);
    let found = cluster::existing_pod(conn, name, &pod).await?;
    if !pods::container_running(&found, container) {
        let why = pods::stuck(&found).map(|s| s.to_string()).unwrap_or_else(|| format!("{pod}: {}", pods::phase(&found)));
        return Err(KubeError::Failed(format!(
            "container {container} of {pod} is not running ({why}); `kompi status {name} -n {ns}` shows the cluster",
            ns = conn.namespace
        )));
    }
    remote::stream(conn, &pod, container, command, streams).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, uid: &str, restarts: i32, ready: bool) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "uid": uid}, "spec": {"nodeName": format!("node-of-{name}"), "containers": []}, "status": {
            "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}],
            "containerStatuses": [{"name": "mpi-worker", "ready": ready, "restartCount": restarts, "image": "i", "imageID": "",
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}}))
        .unwrap()
    }

    #[test]
    fn worker_changes_name_the_worker_and_the_reason() {
        let before: BTreeMap<String, Pod> =
            [("w-0", "a"), ("w-1", "b"), ("w-2", "c"), ("w-3", "d")].iter().map(|(n, u)| (n.to_string(), pod(n, u, 0, true))).collect();
        let mut after = before.clone();
        after.remove("w-0");
        after.insert("w-1".into(), pod("w-1", "b2", 0, true));
        after.insert("w-2".into(), pod("w-2", "c", 1, true));
        after.insert("w-3".into(), pod("w-3", "d", 0, false));
        let changes = worker_changes(&before, &after, &BTreeMap::new());
        assert_eq!(
            changes,
            [
                "worker w-0 was deleted during the run",
                "worker w-1 was deleted during the run (and replaced)",
                "worker w-2 restarted during the run: OOMKilled (exit 137)",
                "worker w-3 is not ready",
            ]
        );
    }

    #[test]
    fn workers_on_a_lost_node_are_named_with_it() {
        let before: BTreeMap<String, Pod> = [("w-0", "a"), ("w-1", "b")].iter().map(|(n, u)| (n.to_string(), pod(n, u, 0, true))).collect();
        let mut after = before.clone();
        after.insert("w-1".into(), pod("w-1", "b", 0, false));
        let lost = BTreeMap::from([("node-of-w-1".to_string(), "node node-of-w-1 is unreachable (NodeStatusUnknown)".to_string())]);
        assert_eq!(worker_changes(&before, &after, &lost), ["worker w-1 was lost with its node: node node-of-w-1 is unreachable (NodeStatusUnknown)"]);
        assert_eq!(worker_changes(&before, &after, &BTreeMap::new()), ["worker w-1 is not ready"]);
    }
}
