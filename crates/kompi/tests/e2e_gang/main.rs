//! Gang scheduling on the testbed: the operator installed with `--gang-scheduling volcano` and with
//! `--gang-scheduling scheduler-plugins-scheduler` gives each MPIJob the PodGroup of that scheduler and
//! puts every pod in it, and a job whose launcher waits for its workers (mpi-operator #608) is admitted
//! as one group and succeeds.
//!
//! Neither Volcano nor scheduler-plugins runs on the testbed (neither can be built from Debian's
//! archive): their PodGroup CRDs are installed from `testbed/crds/` (written from their published
//! definitions), and [`GangBinder`], a stand-in for the gang scheduler, binds a group's pods through the
//! `pods/binding` subresource only once `minMember` of them exist, binding none before, as a gang
//! scheduler admits a group. The pods name a scheduler that does not run, so the testbed's own
//! kube-scheduler never touches them.
//!
//! A separate test target, run alone by `scripts/test.sh` after the e2e suite: it reinstalls the
//! operator every other e2e test uses, with other flags.

#[path = "../harness/mod.rs"]
mod harness;
#[path = "../e2e/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use serde_json::{Value, json};

use support::{Namespace, err, kubeconfig, require_testbed, text};

const IMAGE: &str = "kompi/runtime:0.1.0";
const OPERATOR_NAMESPACE: &str = "kompi-system";
const SA: &str = "system:serviceaccount:kompi-system:kompi-operator";
const VOLCANO_PODGROUPS: &str = "podgroups.scheduling.volcano.sh";
const COSCHEDULING_PODGROUPS: &str = "podgroups.scheduling.x-k8s.io";

fn main() {
    harness::main(harness::tests![support::root => [
        with_volcano_a_job_waiting_for_its_workers_gets_its_podgroup_and_is_admitted_as_one,
        with_coscheduling_a_job_gets_its_podgroup_once_resumed_and_is_admitted_as_one,
    ]]);
}

/// The operator, installed with `--gang-scheduling <flag>` for the length of one test (tests take turns:
/// each holds a lock). On drop, the e2e suite's markers go, so its next run installs its own operator.
struct GangOperator {
    _turn: Flock<File>,
    dir: PathBuf,
}

impl GangOperator {
    fn install(ns: &Namespace, flag: &str) -> GangOperator {
        let dir = kubeconfig().parent().unwrap().to_path_buf();
        let lock = File::create(dir.join("e2e-gang.lock")).unwrap();
        let turn = Flock::lock(lock, FlockArg::LockExclusive).map_err(|(_, e)| e).unwrap();
        let operator = GangOperator { _turn: turn, dir };
        operator.forget_the_suites_operator();
        let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testbed/crds");
        let out = ns.kubectl(&["apply", "-f", crds.to_str().unwrap()]);
        assert!(out.status.success(), "installing the PodGroup CRDs: {}", err(&out));
        let out = ns.kubectl(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/{VOLCANO_PODGROUPS}"),
            &format!("crd/{COSCHEDULING_PODGROUPS}"),
            "--timeout=60s",
        ]);
        assert!(out.status.success(), "{}", err(&out));
        // Its pod starts afresh, from the image imported with this build.
        let out = ns.kubectl(&["-n", OPERATOR_NAMESPACE, "delete", "deployment/kompi-operator", "--ignore-not-found", "--wait", "--timeout=120s"]);
        assert!(out.status.success(), "{}", err(&out));
        let out = ns.kompi(&["operator", "install", "--gang-scheduling", flag, "--timeout", "180s"]);
        assert!(out.status.success(), "operator install --gang-scheduling {flag}: {}{}", text(&out), err(&out));
        operator
    }

    /// The e2e suite installs its operator once per build and marks it done: that mark is wrong now.
    fn forget_the_suites_operator(&self) {
        for entry in std::fs::read_dir(&self.dir).unwrap().flatten() {
            if entry.file_name().to_string_lossy().starts_with("e2e-operator-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

impl Drop for GangOperator {
    fn drop(&mut self) {
        self.forget_the_suites_operator();
    }
}

/// How the group of a pod is named: Volcano's annotation or coscheduling's label.
#[derive(Clone, Copy)]
enum GroupMark {
    Annotation(&'static str),
    Label(&'static str),
}

impl GroupMark {
    fn of(self, pod: &Value) -> Option<String> {
        let (field, key) = match self {
            GroupMark::Annotation(key) => ("annotations", key),
            GroupMark::Label(key) => ("labels", key),
        };
        pod["metadata"][field][key].as_str().map(str::to_string)
    }
}

/// One admission: the group's pods that existed, and those bound then.
#[derive(Debug)]
struct Admission {
    existing: Vec<String>,
    bound: Vec<String>,
}

/// A test stand-in for a gang scheduler (not a scheduler: it only decides when, and binds every pod of
/// its scheduler name to the one node): a group's unbound pods are bound through `pods/binding` only
/// once the group has at least its PodGroup's `minMember` pods, none before.
struct GangBinder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Admission>>>,
}

impl GangBinder {
    fn start(namespace: &str, scheduler: &'static str, mark: GroupMark, pod_groups: &'static str) -> GangBinder {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let namespace = namespace.to_string();
        let thread = std::thread::spawn(move || {
            let kubectl = |args: &[&str]| std::process::Command::new("kubectl").env("KUBECONFIG", kubeconfig()).args(args).output().unwrap();
            let node = text(&kubectl(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"])).trim().to_string();
            let mut admissions = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(300));
                let out = kubectl(&["-n", &namespace, "get", "pods", "-o", "json"]);
                let Ok(list) = serde_json::from_slice::<Value>(&out.stdout) else { continue };
                let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
                for pod in list["items"].as_array().into_iter().flatten() {
                    if pod["spec"]["schedulerName"] == scheduler
                        && pod["metadata"]["deletionTimestamp"].is_null()
                        && let Some(group) = mark.of(pod)
                    {
                        groups.entry(group).or_default().push(pod.clone());
                    }
                }
                for (group, pods) in groups {
                    let unbound: Vec<String> = pods
                        .iter()
                        .filter(|p| p["spec"]["nodeName"].is_null())
                        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
                        .collect();
                    if unbound.is_empty() {
                        continue;
                    }
                    // No PodGroup, no admission: a gang scheduler waits for the group to be declared.
                    let out = kubectl(&["-n", &namespace, "get", pod_groups, &group, "-o", "jsonpath={.spec.minMember}"]);
                    let Ok(min_member) = text(&out).trim().parse::<usize>() else { continue };
                    if pods.len() < min_member {
                        continue;
                    }
                    for pod in &unbound {
                        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod}, "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
                        let file = std::env::temp_dir().join(format!("kompi-e2e-binding-{namespace}-{pod}.json"));
                        std::fs::write(&file, binding.to_string()).unwrap();
                        let out = kubectl(&[
                            "create",
                            "--raw",
                            &format!("/api/v1/namespaces/{namespace}/pods/{pod}/binding"),
                            "-f",
                            file.to_str().unwrap(),
                        ]);
                        let _ = std::fs::remove_file(&file);
                        assert!(out.status.success(), "binding {pod}: {}", err(&out));
                    }
                    let mut existing: Vec<String> = pods.iter().map(|p| p["metadata"]["name"].as_str().unwrap().to_string()).collect();
                    existing.sort();
                    admissions.push(Admission { existing, bound: unbound });
                }
            }
            admissions
        });
        GangBinder { stop, thread: Some(thread) }
    }

    fn stop(mut self) -> Vec<Admission> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("the binder thread")
    }
}

impl Drop for GangBinder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn mpijob(name: &str, spec_lines: &str, run_policy_lines: &str, resources: &str) -> String {
    format!(
        r#"apiVersion: kubeflow.org/v2beta1
kind: MPIJob
metadata:
  name: {name}
spec:
  slotsPerWorker: 1
{spec_lines}  runPolicy:
    cleanPodPolicy: Running
{run_policy_lines}  mpiReplicaSpecs:
    Launcher:
      replicas: 1
      template:
        spec:
          containers:
          - name: launcher
            image: {IMAGE}
            command: ["/bin/sh", "-c"]
            args: ["mpirun -n 2 /opt/kompi/examples/allreduce"]
{resources}    Worker:
      replicas: 2
      template:
        spec:
          containers:
          - name: worker
            image: {IMAGE}
            command: ["/usr/sbin/sshd"]
            args: ["-De"]
{resources}"#
    )
}

fn json_of(ns: &Namespace, args: &[&str]) -> Option<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = ns.k(&all);
    out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn condition(job: &Value, type_: &str) -> bool {
    job["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == type_ && c["status"] == "True")
}

fn wait_condition(ns: &Namespace, name: &str, type_: &str, timeout: Duration) {
    ns.eventually(&format!("MPIJob {name} to be {type_}"), timeout, || {
        let job = json_of(ns, &["get", "mpijob", name]).unwrap();
        assert!(type_ == "Failed" || !condition(&job, "Failed"), "MPIJob {name} failed: {}", job["status"]);
        condition(&job, type_)
    });
}

fn pods_of(ns: &Namespace, name: &str) -> Vec<Value> {
    let list = json_of(ns, &["get", "pods", "-l", &format!("training.kubeflow.org/job-name={name}")]).unwrap();
    list["items"].as_array().unwrap().clone()
}

/// The PodGroup is the job's: its controller owner is the MPIJob, and it carries the operator's label.
fn assert_owned_by_the_job(ns: &Namespace, group: &Value, job: &str) {
    let uid = json_of(ns, &["get", "mpijob", job]).unwrap()["metadata"]["uid"].clone();
    let owner = &group["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["name"], &owner["uid"], &owner["controller"]),
        (&json!("MPIJob"), &json!(job), &uid, &json!(true)),
        "{}",
        group["metadata"]
    );
    assert_eq!(group["metadata"]["labels"]["app.kubernetes.io/managed-by"], "kompi-operator", "{}", group["metadata"]);
}

/// Every admission bound the whole group at once: the launcher with the workers.
fn assert_admitted_as_one(admissions: &[Admission], job: &str) {
    let group = [format!("{job}-launcher"), format!("{job}-worker-0"), format!("{job}-worker-1")];
    let first = admissions.first().unwrap_or_else(|| panic!("the binder never admitted {job}'s group"));
    let mut bound = first.bound.clone();
    bound.sort();
    assert_eq!((first.existing.as_slice(), bound.as_slice()), (&group[..], &group[..]), "{admissions:?}");
    assert_eq!(admissions.len(), 1, "one admission, of the whole group: {admissions:?}");
}

pub fn with_volcano_a_job_waiting_for_its_workers_gets_its_podgroup_and_is_admitted_as_one() {
    require_testbed();
    let ns = Namespace::new("gang-volcano");
    let _operator = GangOperator::install(&ns, "volcano");
    let can = |verb: &str, resource: &str| text(&ns.kubectl(&["auth", "can-i", "--as", SA, "-n", &ns.name, verb, resource])).trim() == "yes";
    assert!(can("create", VOLCANO_PODGROUPS) && can("delete", VOLCANO_PODGROUPS) && can("watch", VOLCANO_PODGROUPS));
    assert!(!can("create", COSCHEDULING_PODGROUPS) && !can("update", VOLCANO_PODGROUPS), "only the chosen scheduler's PodGroups");

    let binder = GangBinder::start(&ns.name, "volcano", GroupMark::Annotation("scheduling.k8s.io/group-name"), VOLCANO_PODGROUPS);
    // mpi-operator #608: with WaitForWorkersReady and a gang scheduler, mpi-operator's launcher waits for
    // workers that wait for the launcher. kompi's launcher gates its command itself.
    let resources = "            resources: {requests: {cpu: 10m, memory: 16Mi}}\n";
    let manifest = mpijob(
        "vg",
        "  launcherCreationPolicy: WaitForWorkersReady\n",
        "    schedulingPolicy: {queue: research, priorityClass: high-priority}\n",
        resources,
    );
    let out = ns.k_stdin(&["apply", "-f", "-"], &manifest);
    assert!(out.status.success(), "{}", err(&out));

    let mut group = None;
    ns.eventually("the job's PodGroup", Duration::from_secs(60), || {
        group = json_of(&ns, &["get", VOLCANO_PODGROUPS, "vg"]);
        group.is_some()
    });
    let group = group.unwrap();
    let expected =
        json!({"minMember": 3, "queue": "research", "priorityClassName": "high-priority", "minResources": {"cpu": "30m", "memory": "48Mi"}});
    assert_eq!(group["spec"], expected);
    assert_owned_by_the_job(&ns, &group, "vg");

    wait_condition(&ns, "vg", "Succeeded", Duration::from_secs(240));
    let admissions = binder.stop();
    assert_admitted_as_one(&admissions, "vg");
    let log = text(&ns.k(&["logs", "vg-launcher"]));
    assert!(log.contains("allreduce: 2 ranks") && log.contains(": OK"), "launcher log:\n{log}");
    for pod in pods_of(&ns, "vg") {
        assert_eq!(pod["spec"]["schedulerName"], "volcano", "{}", pod["metadata"]["name"]);
        assert_eq!(pod["metadata"]["annotations"]["scheduling.k8s.io/group-name"], "vg", "{}", pod["metadata"]["name"]);
    }
    // cleanPodPolicy Running: the group goes with the running pods, as mpi-operator deletes it.
    ns.eventually("the PodGroup to be deleted after the job", Duration::from_secs(60), || json_of(&ns, &["get", VOLCANO_PODGROUPS, "vg"]).is_none());
}

pub fn with_coscheduling_a_job_gets_its_podgroup_once_resumed_and_is_admitted_as_one() {
    require_testbed();
    let ns = Namespace::new("gang-cosched");
    let _operator = GangOperator::install(&ns, "scheduler-plugins-scheduler");
    let policy = "    suspend: true\n    schedulingPolicy: {minAvailable: 3, scheduleTimeoutSeconds: 90, minResources: {cpu: '1'}}\n";

    // Refused before anything is applied, naming the field: a group larger than the job is never complete.
    let file = ns.dir.path().join("too-big.yaml");
    std::fs::write(&file, mpijob("big", "", &policy.replace("minAvailable: 3", "minAvailable: 4"), "")).unwrap();
    let out = ns.kompi(&["job", "submit", "-f", file.to_str().unwrap(), "-n", &ns.name]);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
    assert!(err(&out).contains("too-big.yaml: spec.runPolicy.schedulingPolicy.minAvailable: Invalid value: 4"), "{}", err(&out));

    let binder =
        GangBinder::start(&ns.name, "scheduler-plugins-scheduler", GroupMark::Label("scheduling.x-k8s.io/pod-group"), COSCHEDULING_PODGROUPS);
    let out = ns.k_stdin(&["apply", "-f", "-"], &mpijob("cs", "", policy, ""));
    assert!(out.status.success(), "{}", err(&out));
    // Suspended: no PodGroup and no pod, as mpi-operator.
    wait_condition(&ns, "cs", "Suspended", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    assert!(json_of(&ns, &["get", COSCHEDULING_PODGROUPS, "cs"]).is_none(), "a suspended job has no PodGroup");
    assert!(pods_of(&ns, "cs").is_empty());

    let out = ns.k(&["patch", "mpijob", "cs", "--type", "merge", "-p", r#"{"spec": {"runPolicy": {"suspend": false}}}"#]);
    assert!(out.status.success(), "{}", err(&out));
    let mut group = None;
    ns.eventually("the job's PodGroup once resumed", Duration::from_secs(60), || {
        group = json_of(&ns, &["get", COSCHEDULING_PODGROUPS, "cs"]);
        group.is_some()
    });
    let group = group.unwrap();
    assert_eq!(
        group["spec"],
        json!({"minMember": 3, "minResources": {"cpu": "1"}, "scheduleTimeoutSeconds": 90}),
        "no queue or priority class: coscheduling has none"
    );
    assert_owned_by_the_job(&ns, &group, "cs");

    wait_condition(&ns, "cs", "Succeeded", Duration::from_secs(240));
    assert_admitted_as_one(&binder.stop(), "cs");
    for pod in pods_of(&ns, "cs") {
        assert_eq!(pod["spec"]["schedulerName"], "scheduler-plugins-scheduler", "{}", pod["metadata"]["name"]);
        assert_eq!(pod["metadata"]["labels"]["scheduling.x-k8s.io/pod-group"], "cs", "{}", pod["metadata"]["name"]);
    }
}
