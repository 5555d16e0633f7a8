//! Operating the operator on the testbed: two replicas with leader election (the installed Deployment),
//! the leader killed mid-job, the standby taking over; the Lease's RBAC; the probes and `/metrics`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use serde_json::Value;

use crate::operator::{apply, mpijob_on, operator, wait_condition};
use crate::support::{Namespace, err, kubeconfig, require_testbed, text};

const OPERATOR_NAMESPACE: &str = "kompi-system";
const LEASE: &str = "kompi-operator";
const SA: &str = "system:serviceaccount:kompi-system:kompi-operator";

/// Held by the tests that kill operator pods, so that two of them never disturb each other's view of
/// which replica leads (the other operator tests only see their jobs paused for a takeover).
pub fn disrupting_the_operator() -> Flock<File> {
    let lock = File::create(kubeconfig().parent().unwrap().join("e2e-operator-disrupt.lock")).unwrap();
    Flock::lock(lock, FlockArg::LockExclusive).map_err(|(_, e)| e).unwrap()
}

/// The operator's pods that are not being deleted, by name.
fn operator_pods(ns: &Namespace) -> Vec<Value> {
    let out = ns.kubectl(&["-n", OPERATOR_NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/name=kompi-operator", "-o", "json"]);
    assert!(out.status.success(), "{}", err(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    list["items"].as_array().unwrap().iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).cloned().collect()
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn name(pod: &Value) -> String {
    pod["metadata"]["name"].as_str().unwrap().to_string()
}

/// The Lease's holder: `pod_random`, one per process.
fn holder(ns: &Namespace) -> String {
    let out = ns.kubectl(&["-n", OPERATOR_NAMESPACE, "get", "lease", LEASE, "-o", "jsonpath={.spec.holderIdentity}"]);
    text(&out).trim().to_string()
}

/// The pod whose replica holds the Lease, if any.
fn leader(ns: &Namespace) -> Option<String> {
    holder(ns).rsplit_once('_').map(|(pod, _)| pod.to_string())
}

/// Kills the operator process of a pod with SIGKILL, as a crash would: no chance to hand the Lease
/// back. The testbed's one node is this machine, so its containers' processes are ours to see.
fn kill_9(pod: &str) {
    let hostname = format!("HOSTNAME={pod}");
    let pids: Vec<i32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            cmdline.starts_with(b"/usr/local/bin/kompi\0operator\0") && environ.split(|b| *b == 0).any(|v| v == hostname.as_bytes())
        })
        .collect();
    assert_eq!(pids.len(), 1, "the operator process of {pod}: {pids:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pids[0]), nix::sys::signal::Signal::SIGKILL).unwrap();
}

/// A replica's `/metrics`, through the API server's pod proxy (as Prometheus would scrape the pod).
fn metrics(ns: &Namespace, pod: &str) -> String {
    let out = ns.kubectl(&["get", "--raw", &format!("/api/v1/namespaces/{OPERATOR_NAMESPACE}/pods/{pod}:8080/proxy/metrics")]);
    assert!(out.status.success(), "/metrics of {pod}: {}", err(&out));
    text(&out)
}

/// The value of one sample (`name{labels}` exactly as exposed).
fn sample(metrics: &str, key: &str) -> f64 {
    let line = metrics.lines().find(|l| l.rsplit_once(' ').is_some_and(|(k, _)| k == key));
    line.and_then(|l| l.rsplit_once(' ')).and_then(|(_, v)| v.parse().ok()).unwrap_or_else(|| panic!("no sample {key} in:\n{metrics}"))
}

fn reconciles(metrics: &str) -> f64 {
    sample(metrics, "kompi_reconciles_total{result=\"ok\"}") + sample(metrics, "kompi_reconciles_total{result=\"error\"}")
}

/// Every pod ever added for the job, from a watch started before the job: name → uids.
pub struct PodWatch {
    child: std::process::Child,
    output: std::path::PathBuf,
}

impl PodWatch {
    pub fn start(ns: &Namespace, job: &str) -> PodWatch {
        let output = ns.dir.path().join(format!("{job}-pods.json"));
        let child = Command::new("kubectl")
            .env("KUBECONFIG", kubeconfig())
            .args(["-n", &ns.name, "get", "pods", "-l", &format!("training.kubeflow.org/job-name={job}"), "--watch", "--output-watch-events", "-o", "json"])
            .stdout(File::create(&output).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        PodWatch { child, output }
    }

    pub fn added(mut self) -> BTreeMap<String, BTreeSet<String>> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let written = std::fs::read_to_string(&self.output).unwrap();
        let mut pods: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for event in serde_json::Deserializer::from_str(&written).into_iter::<Value>() {
            let event = event.unwrap();
            if event["type"] == "ADDED" {
                let meta = &event["object"]["metadata"];
                pods.entry(meta["name"].as_str().unwrap().into()).or_default().insert(meta["uid"].as_str().unwrap().into());
            }
        }
        pods
    }
}

/// The operator's two replicas: one leads and reconciles, the other stands by (ready, zero reconciles).
/// The leader's process is killed (SIGKILL) while a job runs: the standby takes the Lease once it
/// expires, the job succeeds, and no pod of it was ever created twice; the new leader's counters show
/// the job's end.
pub fn the_standby_takes_over_a_running_job_when_the_leader_is_killed() {
    require_testbed();
    let ns = Namespace::new("op-ha");
    operator(&ns);
    let _alone = disrupting_the_operator();
    ns.eventually("two ready operator replicas, one of them holding the Lease", Duration::from_secs(180), || {
        let pods = operator_pods(&ns);
        pods.len() == 2 && pods.iter().all(ready) && leader(&ns).is_some_and(|l| pods.iter().any(|p| name(p) == l))
    });
    let first_identity = holder(&ns);
    let first = leader(&ns).unwrap();
    let standby = operator_pods(&ns).iter().map(name).find(|p| *p != first).unwrap();
    let standby_before = reconciles(&metrics(&ns, &standby));

    let watch = PodWatch::start(&ns, "ha");
    apply(&ns, &mpijob_on("kompi/runtime:0.1.0", "ha", 2, "sleep 40; mpirun -n 2 hostname", ""));
    wait_condition(&ns, "ha", "Running", Duration::from_secs(180));
    let standby_metrics = metrics(&ns, &standby);
    let leader_metrics = metrics(&ns, &first);
    assert_eq!(reconciles(&standby_metrics), standby_before, "the standby {standby} reconciled while {first} led:\n{standby_metrics}");
    assert!(reconciles(&leader_metrics) > 0.0, "{leader_metrics}");
    assert_eq!(sample(&standby_metrics, "kompi_leader"), 0.0, "{standby_metrics}");
    assert_eq!(sample(&leader_metrics, "kompi_leader"), 1.0, "{leader_metrics}");

    let killed = Instant::now();
    kill_9(&first);
    // The killed container restarts in its pod as a new candidate; the standby, which saw the Lease's
    // last renewal, finds it expired first.
    let takeover = ns.eventually("the standby to take the Lease", Duration::from_secs(60), || holder(&ns) != first_identity && !holder(&ns).is_empty());
    assert_eq!(leader(&ns).as_deref(), Some(standby.as_str()), "the Lease went to {}, not to the standby", holder(&ns));
    ns.eventually("the new leader's first reconcile", Duration::from_secs(30), || reconciles(&metrics(&ns, &standby)) > standby_before);
    let first_reconcile = killed.elapsed();
    wait_condition(&ns, "ha", "Succeeded", Duration::from_secs(240));
    let succeeded = killed.elapsed();
    eprintln!(
        "takeover: kill -> lease taken {:.1}s, -> first reconcile {:.1}s, -> job Succeeded {:.1}s",
        takeover.as_secs_f64(),
        first_reconcile.as_secs_f64(),
        succeeded.as_secs_f64()
    );

    let log = text(&ns.k(&["logs", "ha-launcher"]));
    assert_eq!(log.lines().filter(|l| l.starts_with("ha-worker-")).count(), 2, "{log}");
    let added = watch.added();
    let names: Vec<&String> = added.keys().collect();
    assert_eq!(names, ["ha-launcher", "ha-worker-0", "ha-worker-1"], "{added:?}");
    assert!(added.values().all(|uids| uids.len() == 1), "a pod was created twice: {added:?}");

    // The counters moved on the new leader: it wrote the job's success.
    let after = metrics(&ns, &standby);
    assert_eq!(sample(&after, "kompi_leader"), 1.0, "{after}");
    assert!(sample(&after, "kompi_mpijob_transitions_total{condition=\"Succeeded\"}") >= 1.0, "{after}");
    assert!(sample(&after, "kompi_mpijobs{condition=\"Succeeded\"}") >= 1.0, "{after}");
    assert!(sample(&after, "kompi_reconcile_duration_seconds_count") >= 1.0, "{after}");
    let events = text(&ns.k(&["get", "events", "--field-selector", "involvedObject.name=ha", "-o", "custom-columns=REASON:.reason"]));
    assert_eq!(events.matches("MPIJobSucceeded").count(), 1, "{events}");
    // The probes passed all along on the survivor: ready, and never restarted by its liveness probe.
    let survivor = operator_pods(&ns).into_iter().find(|p| name(p) == standby).unwrap();
    assert!(ready(&survivor), "{survivor}");
    assert_eq!(survivor["status"]["containerStatuses"][0]["restartCount"], 0, "{survivor}");
}

/// The Lease's permissions: its one Lease by name, in the operator's namespace only.
pub fn the_operator_may_only_read_and_renew_its_own_lease() {
    require_testbed();
    let ns = Namespace::new("op-lease");
    operator(&ns);
    let can = |args: &[&str]| text(&ns.kubectl(&[&["auth", "can-i", "--as", SA][..], args].concat())).trim() == "yes";
    for allowed in [
        &["get", "leases.coordination.k8s.io/kompi-operator", "-n", OPERATOR_NAMESPACE][..],
        &["update", "leases.coordination.k8s.io/kompi-operator", "-n", OPERATOR_NAMESPACE],
        &["create", "leases.coordination.k8s.io", "-n", OPERATOR_NAMESPACE],
    ] {
        assert!(can(allowed), "the operator must be allowed to {allowed:?}");
    }
    for denied in [
        &["get", "leases.coordination.k8s.io/kube-scheduler", "-n", OPERATOR_NAMESPACE][..],
        &["update", "leases.coordination.k8s.io/other", "-n", OPERATOR_NAMESPACE],
        &["delete", "leases.coordination.k8s.io/kompi-operator", "-n", OPERATOR_NAMESPACE],
        &["list", "leases.coordination.k8s.io", "-n", OPERATOR_NAMESPACE],
        &["get", "leases.coordination.k8s.io/kompi-operator", "-n", "kube-system"],
        &["create", "leases.coordination.k8s.io", "-n", &ns.name],
    ] {
        assert!(!can(denied), "the operator must not be allowed to {denied:?}");
    }
}
