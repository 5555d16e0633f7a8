//! `kompi run` and `kompi exec`: mpiexec on the master once every worker answers, output streamed,
//! Ctrl-C passed on, the exit status returned, and the worker named when one failed the run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kompi_render::launcher::{Launch, mpiexec};
use kompi_spec::contract::{HOSTFILE, WORKER_CONTAINER};
use kompi_spec::{ClusterName, MpiImplementation, contract};
use kube::api::{Api, ListParams};

use crate::client::Connection;
use crate::error::KubeError;
use crate::cluster;
use crate::pods::{self, Place};
use crate::progress::Progress;
use crate::remote;
use crate::wait;

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

/// The cluster as `run` needs it: its master pod, its MPI, its ssh port, its desired workers.
struct Cluster {
    name: ClusterName,
    master: Pod,
    desired: u32,
}

impl Cluster {
    async fn get(conn: &Connection, name: &ClusterName) -> Result<Cluster, KubeError> {
        let pods: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
        let master = pods
            .get_opt(&name.master_pod())
            .await
            .map_err(|e| conn.error(&format!("reading Pod {}", name.master_pod()), e))?
            .ok_or_else(|| KubeError::ClusterNotFound { name: name.to_string(), namespace: conn.namespace.clone() })?;
        let sets: Api<StatefulSet> = Api::namespaced(conn.client.clone(), &conn.namespace);
        let desired = sets
            .get_opt(&name.worker_set())
            .await
            .map_err(|e| conn.error(&format!("reading StatefulSet {}", name.worker_set()), e))?
            .and_then(|s| s.spec.replicas)
            .unwrap_or(0) as u32;
        Ok(Cluster { name: name.clone(), master, desired })
    }

    /// A `--name=value` argument of the master's `kompi init`.
    fn init_arg(&self, name: &str) -> Option<String> {
        let container = self.master.spec.as_ref()?.containers.iter().find(|c| c.name == pods::MASTER)?;
        container.args.as_ref()?.iter().find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_string))
    }

    fn mpi(&self) -> MpiImplementation {
        self.init_arg("mpi").as_deref().and_then(MpiImplementation::parse).unwrap_or(MpiImplementation::OpenMpi)
    }

    fn ssh_port(&self) -> u16 {
        self.init_arg("ssh-port").and_then(|p| p.parse().ok()).unwrap_or(contract::DEFAULT_SSH_PORT)
    }
}

/// A shell line, run in the master, that prints how many workers the hostfile lists and which of
/// them do not answer on the ssh port.
fn probe_script(port: u16) -> String {
    format!(
        "hosts=$(awk 'NF && $1 !~ /^#/ {{ sub(/:.*/, \"\", $1); print $1 }}' {HOSTFILE} 2>/dev/null | tail -n +2); n=0; missing=; \
         for h in $hosts; do n=$((n+1)); timeout 2 bash -c \"exec 3<>/dev/tcp/$h/{port}\" 2>/dev/null || missing=\"$missing $h\"; done; \
         echo \"$n$missing\""
    )
}

/// Until the hostfile lists every desired worker and each answers on ssh (from the master, so names
/// resolve as mpiexec will resolve them).
async fn wait_until_runnable(conn: &Connection, cluster: &Cluster, timeout: Duration) -> Result<(), KubeError> {
    let deadline = Instant::now() + timeout;
    // Right after `kompi up --no-wait` the master may still be pulling or starting: exec needs it running.
    wait::master_running(conn, &cluster.name, cluster.desired, timeout).await?;
    let argv = vec!["bash".to_string(), "-c".to_string(), probe_script(cluster.ssh_port())];
    let mut progress = Progress::new();
    loop {
        let out = remote::capture(conn, &cluster.name.master_pod(), pods::MASTER, &argv).await?;
        let mut words = out.stdout.split_whitespace();
        let listed: u32 = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let missing: Vec<&str> = words.collect();
        if listed == cluster.desired && missing.is_empty() {
            return Ok(());
        }
        let state = if missing.is_empty() {
            format!("the hostfile lists {listed} of {} workers", cluster.desired)
        } else {
            format!("the hostfile lists {listed} of {} workers; not answering on port {}: {}", cluster.desired, cluster.ssh_port(), missing.join(" "))
        };
        if Instant::now() >= deadline {
            return Err(KubeError::Timeout { seconds: timeout.as_secs(), what: format!("waiting for cluster {}: {state}", cluster.name) });
        }
        progress.update(&format!("waiting for cluster {}: {state}", cluster.name));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// (uid, restarts) of each worker pod, to tell afterwards what happened to them.
async fn worker_snapshot(conn: &Connection, cluster: &ClusterName) -> Result<BTreeMap<String, Pod>, KubeError> {
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let list = api
        .list(&ListParams::default().labels(&contract::worker_selector(cluster.as_str())))
        .await
        .map_err(|e| conn.error("listing the worker pods", e))?;
    Ok(list.into_iter().map(|p| (pods::name(&p).to_string(), p)).collect())
}

/// What changed for each worker between two snapshots: deleted, replaced, restarted (and why), unready.
pub fn worker_changes(before: &BTreeMap<String, Pod>, after: &BTreeMap<String, Pod>) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, old) in before {
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
        } else if !pods::is_ready(new) {
            problems.push(format!("worker {name} is not ready"));
        }
    }
    problems
}

pub async fn run(conn: &Connection, name: &ClusterName, opts: &RunOptions) -> Result<RunOutcome, KubeError> {
    let cluster = Cluster::get(conn, name).await?;
    let launch = Launch { np: opts.np, npernode: opts.npernode, mca: &opts.mca, command: &opts.command };
    let argv = mpiexec(cluster.mpi(), HOSTFILE, &launch).map_err(KubeError::Invalid)?;
    wait_until_runnable(conn, &cluster, opts.wait_timeout).await?;
    let before = worker_snapshot(conn, name).await?;
    let run_id = format!("{}-{}", std::process::id(), Instant::now().elapsed().as_nanos());
    let pid_file = format!("/tmp/kompi-run-{run_id}.pid");
    // The shell records mpiexec's pid (it execs into it), so Ctrl-C here can become SIGINT there.
    let mut wrapped = vec!["sh".to_string(), "-c".to_string(), format!("echo $$ > {pid_file}; exec \"$@\""), "kompi-run".to_string()];
    wrapped.extend(argv);
    let master = name.master_pod();
    let status = tokio::select! {
        status = remote::stream(conn, &master, pods::MASTER, &wrapped, false, false) => status?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupting mpiexec on {master}");
            let stop = vec!["sh".to_string(), "-c".to_string(), format!("kill -INT $(cat {pid_file}) 2>/dev/null; rm -f {pid_file}")];
            let _ = remote::capture(conn, &master, pods::MASTER, &stop).await;
            130
        }
    };
    let worker_problems = if status == 0 { Vec::new() } else { worker_changes(&before, &worker_snapshot(conn, name).await?) };
    let cleanup = vec!["rm".to_string(), "-f".to_string(), pid_file];
    let _ = remote::capture(conn, &master, pods::MASTER, &cleanup).await;
    Ok(RunOutcome { status, worker_problems })
}

pub async fn exec(conn: &Connection, name: &ClusterName, place: Place, command: &[String], stdin: bool, tty: bool) -> Result<i32, KubeError> {
    let (pod, container) = place.pod_and_container(name);
    let found = cluster::existing_pod(conn, name, &pod).await?;
    if !pods::container_running(&found, container) {
        let why = pods::stuck(&found).map(|s| s.to_string()).unwrap_or_else(|| format!("{pod}: {}", pods::phase(&found)));
        return Err(KubeError::Failed(format!(
            "container {container} of {pod} is not running ({why}); `kompi status {name} -n {ns}` shows the cluster",
            ns = conn.namespace
        )));
    }
    remote::stream(conn, &pod, container, command, stdin, tty).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, uid: &str, restarts: i32, ready: bool) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "uid": uid}, "status": {
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
        let changes = worker_changes(&before, &after);
        assert_eq!(
            changes,
            [
                "worker w-0 was deleted during the run",
                "worker w-1 was deleted during the run (and replaced)",
                "worker w-2 restarted during the run: OOMKilled (exit 137)",
            ]
        );
    }
}
