//! The MPIJob operator on the testbed, running in-cluster as its Deployment (installed with
//! `kompi operator install`): kubeflow MPIJobs written as mpi-operator's examples are, their success and
//! failures as conditions and events, the RBAC it needs and no more, `kompi job`, an operator restart
//! mid-job, and the cleanup of everything a job made.

use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use serde_json::Value;

use crate::support::{Namespace, err, kompi_bin, kubeconfig, require_testbed, text};

const IMAGE: &str = "kompi/runtime:0.1.0";
const OPERATOR_NAMESPACE: &str = "kompi-system";
const SA: &str = "system:serviceaccount:kompi-system:kompi-operator";

/// Installs the operator once per build of kompi (so it runs the image imported with that build):
/// the first test to get here installs it afresh; the others find it ready.
pub fn operator(ns: &Namespace) {
    let dir = kubeconfig().parent().unwrap().to_path_buf();
    let lock = File::create(dir.join("e2e-operator.lock")).unwrap();
    let _held = Flock::lock(lock, FlockArg::LockExclusive).map_err(|(_, e)| e).unwrap();
    let built = std::fs::metadata(kompi_bin()).unwrap().modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let marker: PathBuf = dir.join(format!("e2e-operator-{built}"));
    if marker.exists() {
        return;
    }
    // An earlier build's operator (same image tag, so an apply would not roll it) goes first: the
    // install then starts the image imported with this build.
    let out = ns.kubectl(&["-n", OPERATOR_NAMESPACE, "delete", "deployment/kompi-operator", "--ignore-not-found", "--wait", "--timeout=120s"]);
    assert!(out.status.success(), "{}", err(&out));
    let out = ns.kompi(&["operator", "install", "--timeout", "180s"]);
    assert!(out.status.success(), "operator install: {}{}", text(&out), err(&out));
    std::fs::write(&marker, b"").unwrap();
}

/// An MPIJob as mpi-operator's examples write them: a launcher that runs mpirun, workers whose
/// command is sshd.
fn mpijob(name: &str, workers: u32, launcher_command: &str, extra_spec: &str) -> String {
    mpijob_on(IMAGE, name, workers, launcher_command, extra_spec)
}

/// [`mpijob`] with the launcher and the workers on `image`.
pub fn mpijob_on(image: &str, name: &str, workers: u32, launcher_command: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: kubeflow.org/v2beta1
kind: MPIJob
metadata:
  name: {name}
spec:
  slotsPerWorker: 1
{extra_spec}  runPolicy:
    cleanPodPolicy: Running
  mpiReplicaSpecs:
    Launcher:
      replicas: 1
      template:
        spec:
          containers:
          - name: launcher
            image: {image}
            command: ["/bin/sh", "-c"]
            args: [{launcher_command:?}]
    Worker:
      replicas: {workers}
      template:
        spec:
          containers:
          - name: worker
            image: {image}
            command: ["/usr/sbin/sshd"]
            args: ["-De"]
"#
    )
}

pub fn apply(ns: &Namespace, manifest: &str) {
    let out = ns.k_stdin(&["apply", "-f", "-"], manifest);
    assert!(out.status.success(), "kubectl apply: {}", err(&out));
}

fn job_json(ns: &Namespace, name: &str) -> Value {
    let out = ns.k(&["get", "mpijob", name, "-o", "json"]);
    assert!(out.status.success(), "{}", err(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The condition of that type with status True, if any.
fn condition(job: &Value, type_: &str) -> Option<Value> {
    job["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_ && c["status"] == "True").cloned()
}

pub fn wait_condition(ns: &Namespace, name: &str, type_: &str, timeout: Duration) -> Value {
    let mut found = None;
    ns.eventually(&format!("MPIJob {name} to be {type_}"), timeout, || {
        let job = job_json(ns, name);
        for end in ["Succeeded", "Failed"] {
            if end != type_ && condition(&job, end).is_some() {
                panic!("MPIJob {name} is {end}, not {type_}: {}\nlauncher log:\n{}", job["status"], text(&ns.k(&["logs", &format!("{name}-launcher")])));
            }
        }
        found = condition(&job, type_);
        found.is_some()
    });
    found.unwrap()
}

fn pods_of(ns: &Namespace, name: &str) -> Vec<Value> {
    let out = ns.k(&["get", "pods", "-l", &format!("training.kubeflow.org/job-name={name}"), "-o", "json"]);
    assert!(out.status.success(), "{}", err(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    list["items"].as_array().unwrap().clone()
}

fn events_of(ns: &Namespace, name: &str) -> String {
    text(&ns.k(&["get", "events", "--field-selector", &format!("involvedObject.name={name}"), "-o", "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message"]))
}

pub fn install_gives_the_operator_exactly_the_permissions_it_uses() {
    require_testbed();
    let ns = Namespace::new("op-rbac");
    operator(&ns);
    let can = |args: &[&str]| {
        let mut all = vec!["auth", "can-i", "--as", SA, "-n", ns.name.as_str()];
        all.extend_from_slice(args);
        text(&ns.kubectl(&all)).trim() == "yes"
    };
    for allowed in [
        &["get", "mpijobs.kubeflow.org"][..],
        &["list", "mpijobs.kubeflow.org"],
        &["watch", "mpijobs.kubeflow.org"],
        &["delete", "mpijobs.kubeflow.org"],
        &["patch", "mpijobs.kubeflow.org", "--subresource=status"],
        &["update", "mpijobs.kubeflow.org", "--subresource=finalizers"],
        &["create", "pods"],
        &["delete", "pods"],
        &["get", "pods"],
        &["watch", "pods"],
        &["create", "services"],
        &["patch", "configmaps"],
        &["create", "secrets"],
        &["create", "events.events.k8s.io"],
    ] {
        assert!(can(allowed), "the operator must be allowed to {allowed:?}");
    }
    for denied in [
        &["get", "secrets"][..],
        &["list", "secrets"],
        &["patch", "mpijobs.kubeflow.org"],
        &["update", "mpijobs.kubeflow.org"],
        &["update", "pods"],
        &["patch", "pods"],
        &["create", "pods", "--subresource=exec"],
        &["get", "pods", "--subresource=log"],
        &["delete", "services"],
        &["create", "deployments.apps"],
        &["create", "jobs.batch"],
        &["create", "roles.rbac.authorization.k8s.io"],
        &["get", "nodes"],
    ] {
        assert!(!can(denied), "the operator must not be allowed to {denied:?}");
    }
    let out = ns.kubectl(&["get", "crd", "mpijobs.kubeflow.org", "-o", "jsonpath={.spec.versions[0].additionalPrinterColumns[*].name}"]);
    assert_eq!(text(&out).trim(), "State Workers Ready Age");
}

pub fn an_mpijob_runs_allreduce_across_three_workers() {
    require_testbed();
    let ns = Namespace::new("op-ok");
    operator(&ns);
    apply(&ns, &mpijob("ar", 3, "mpirun -n 3 /opt/kompi/examples/allreduce", ""));
    let done = wait_condition(&ns, "ar", "Succeeded", Duration::from_secs(240));
    assert_eq!(done["reason"], "MPIJobSucceeded");
    let log = text(&ns.k(&["logs", "ar-launcher"]));
    assert!(log.contains("allreduce: 3 ranks") && log.contains(": OK"), "launcher log:\n{log}");
    let job = job_json(&ns, "ar");
    assert!(job["status"]["startTime"].is_string() && job["status"]["completionTime"].is_string(), "{}", job["status"]);
    assert_eq!(job["status"]["replicaStatuses"]["Launcher"]["succeeded"], 1, "{}", job["status"]);
    let events = events_of(&ns, "ar");
    for reason in ["MPIJobCreated", "MPIJobRunning", "MPIJobSucceeded"] {
        assert!(events.contains(reason), "no {reason} event:\n{events}");
    }
    let table = text(&ns.k(&["get", "mpijobs"]));
    assert!(table.lines().next().unwrap().split_whitespace().eq(["NAME", "STATE", "WORKERS", "READY", "AGE"]), "{table}");
    assert!(table.lines().nth(1).unwrap().split_whitespace().take(3).eq(["ar", "Succeeded", "3"]), "{table}");
    // What the job was made of: mpi-operator's names and labels, and no API credentials anywhere.
    for object in ["service/ar", "configmap/ar-config", "secret/ar-ssh"] {
        assert!(ns.k(&["get", object]).status.success(), "{object} is missing");
    }
    let hostfile = text(&ns.k(&["get", "configmap", "ar-config", "-o", "jsonpath={.data.hostfile}"]));
    assert_eq!(hostfile, format!("ar-worker-0.ar.{n}.svc slots=1\nar-worker-1.ar.{n}.svc slots=1\nar-worker-2.ar.{n}.svc slots=1\n", n = ns.name));
    // cleanPodPolicy Running: the operator deletes the workers, the finished launcher stays. How long the
    // kubelet then takes to remove them is its own business (a loaded node takes a while): waited for apart.
    let undeleted_workers = || pods_of(&ns, "ar").iter().filter(|p| p["metadata"]["labels"]["training.kubeflow.org/job-role"] == "worker" && p["metadata"]["deletionTimestamp"].is_null()).count();
    ns.eventually("the operator to delete the workers", Duration::from_secs(60), || undeleted_workers() == 0);
    ns.eventually("the kubelet to remove the deleted workers", Duration::from_secs(180), || pods_of(&ns, "ar").len() == 1);
    // The status follows the cleanup (no worker active any more).
    ns.eventually("no worker active in the status", Duration::from_secs(30), || job_json(&ns, "ar")["status"]["replicaStatuses"]["Worker"]["active"] == 0);
    let pods = pods_of(&ns, "ar");
    let launcher = &pods[0];
    assert_eq!(launcher["metadata"]["labels"]["training.kubeflow.org/job-role"], "launcher");
    assert_eq!(launcher["spec"]["automountServiceAccountToken"], false);
    let mounts = launcher["spec"]["containers"][0]["volumeMounts"].to_string();
    assert!(!mounts.contains("serviceaccount"), "{mounts}");
}

pub fn a_failing_launcher_fails_the_job_with_its_exit_code() {
    require_testbed();
    let ns = Namespace::new("op-fail");
    operator(&ns);
    apply(&ns, &mpijob("bad", 1, "mpirun -n 1 hostname && exit 3", ""));
    let failed = wait_condition(&ns, "bad", "Failed", Duration::from_secs(180));
    assert_eq!(failed["reason"], "LauncherFailed");
    let message = failed["message"].as_str().unwrap();
    assert!(message.contains("launcher bad-launcher") && message.contains("exited with code 3"), "{message}");
    let events = events_of(&ns, "bad");
    assert!(events.lines().any(|l| l.starts_with("Warning") && l.contains("LauncherFailed") && l.contains("code 3")), "{events}");
}

pub fn a_worker_deleted_mid_run_fails_the_job_naming_it() {
    require_testbed();
    let ns = Namespace::new("op-del");
    operator(&ns);
    apply(&ns, &mpijob("dw", 2, "mpirun -n 2 sleep 600", ""));
    wait_condition(&ns, "dw", "Running", Duration::from_secs(180));
    let out = ns.k(&["delete", "pod", "dw-worker-1", "--wait=false"]);
    assert!(out.status.success(), "{}", err(&out));
    let failed = wait_condition(&ns, "dw", "Failed", Duration::from_secs(60));
    let message = failed["message"].as_str().unwrap();
    assert!(message.contains("worker dw-worker-1 on node node1 was deleted"), "{message}");
    let events = events_of(&ns, "dw");
    assert!(events.contains("WorkerDeleted") && events.contains("dw-worker-1"), "{events}");
    // cleanPodPolicy Running: the rest of the job is stopped, not left running.
    ns.eventually("the job's pods to be cleaned", Duration::from_secs(60), || pods_of(&ns, "dw").iter().all(|p| p["metadata"]["deletionTimestamp"].is_string()));
}

pub fn a_non_root_job_succeeds() {
    require_testbed();
    let ns = Namespace::new("op-user");
    operator(&ns);
    // As mpi-operator's pi example: runAsUser on the containers, the key path in the user's home.
    let manifest = mpijob("nr", 2, "mpirun -n 2 /opt/kompi/examples/allreduce && id -u", "  sshAuthMountPath: /home/mpi/.ssh\n")
        .replace("            command: [\"/bin/sh\", \"-c\"]", "            securityContext: {runAsUser: 1000}\n            command: [\"/bin/sh\", \"-c\"]")
        .replace("            command: [\"/usr/sbin/sshd\"]", "            securityContext: {runAsUser: 1000}\n            command: [\"/usr/sbin/sshd\"]");
    apply(&ns, &manifest);
    wait_condition(&ns, "nr", "Succeeded", Duration::from_secs(240));
    let log = text(&ns.k(&["logs", "nr-launcher"]));
    assert!(log.contains("allreduce: 2 ranks") && log.contains(": OK") && log.lines().any(|l| l.trim() == "1000"), "{log}");
}

pub fn invalid_mpijobs_fail_with_the_validation_message_and_no_pods() {
    require_testbed();
    let ns = Namespace::new("op-inv");
    operator(&ns);
    let long = format!("x{}", "y".repeat(53));
    let cases = [
        ("two-launchers", mpijob("two-launchers", 1, "true", "").replace("    Launcher:\n      replicas: 1", "    Launcher:\n      replicas: 2"), "spec.mpiReplicaSpecs[Launcher].replicas: Invalid value: 2: must be 1".to_string()),
        ("no-workers", mpijob("no-workers", 0, "true", ""), "spec.mpiReplicaSpecs[Worker].replicas: Invalid value: 0: must be greater than or equal to 1".to_string()),
        (long.as_str(), mpijob(&long, 12, "true", ""), format!("invalid DNS label \"{long}-worker-11\"")),
        ("lam", mpijob("lam", 1, "true", "  mpiImplementation: LAM\n"), "spec.mpiImplementation: Unsupported value: \"LAM\"".to_string()),
    ];
    for (_, manifest, _) in &cases {
        apply(&ns, manifest);
    }
    for (name, _, expected) in &cases {
        let failed = wait_condition(&ns, name, "Failed", Duration::from_secs(60));
        assert_eq!(failed["reason"], "ValidationError", "{name}");
        assert!(failed["message"].as_str().unwrap().contains(expected.as_str()), "{name}: {failed}");
        let events = events_of(&ns, name);
        assert!(events.lines().any(|l| l.starts_with("Warning") && l.contains("ValidationError")), "{name}: {events}");
        assert!(pods_of(&ns, name).is_empty(), "{name} got pods");
    }
}

pub fn job_submit_wait_follows_the_job_and_exits_with_its_result() {
    require_testbed();
    let ns = Namespace::new("op-cli");
    operator(&ns);
    let file = ns.dir.path().join("ok.yaml");
    std::fs::write(&file, mpijob("cli-ok", 2, "mpirun -n 2 /opt/kompi/examples/allreduce", "")).unwrap();
    let out = ns.kompi(&["job", "submit", "-f", file.to_str().unwrap(), "-n", &ns.name, "--wait", "--timeout", "5m"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out), err(&out));
    assert!(text(&out).contains("allreduce: 2 ranks") && err(&out).contains("MPIJob cli-ok Succeeded"), "{}{}", text(&out), err(&out));

    std::fs::write(&file, mpijob("cli-bad", 1, "mpirun -n 1 hostname && exit 3", "")).unwrap();
    let out = ns.kompi(&["job", "submit", "-f", file.to_str().unwrap(), "-n", &ns.name, "--wait", "--timeout", "5m"]);
    assert_eq!(out.status.code(), Some(3), "the launcher's exit code: {}{}", text(&out), err(&out));
    assert!(err(&out).contains("MPIJob cli-bad Failed: launcher cli-bad-launcher"), "{}", err(&out));

    std::fs::write(&file, mpijob("cli-inv", 1, "true", "").replace("    Launcher:\n      replicas: 1", "    Launcher:\n      replicas: 2")).unwrap();
    let out = ns.kompi(&["job", "submit", "-f", file.to_str().unwrap(), "-n", &ns.name, "--wait"]);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
    assert!(err(&out).contains("ok.yaml: spec.mpiReplicaSpecs[Launcher].replicas: Invalid value: 2: must be 1"), "{}", err(&out));
    assert!(!ns.k(&["get", "mpijob", "cli-inv"]).status.success(), "nothing is applied when the job is invalid");

    let out = ns.kompi(&["job", "list", "-n", &ns.name]);
    assert!(text(&out).lines().any(|l| l.split_whitespace().take(3).eq([ns.name.as_str(), "cli-ok", "Succeeded"])), "{}", text(&out));
    let out = ns.kompi(&["job", "status", "cli-bad", "-n", &ns.name]);
    assert!(text(&out).contains("Failed") && text(&out).contains("exited with code 3"), "{}", text(&out));
    let out = ns.kompi(&["job", "logs", "cli-ok", "-n", &ns.name]);
    assert!(text(&out).contains("allreduce: 2 ranks"), "{}", text(&out));
}

pub fn the_job_finishes_correctly_across_an_operator_restart() {
    require_testbed();
    let ns = Namespace::new("op-restart");
    operator(&ns);
    let _alone = crate::operations::disrupting_the_operator();
    apply(&ns, &mpijob("rs", 2, "sleep 25; mpirun -n 2 hostname", ""));
    wait_condition(&ns, "rs", "Running", Duration::from_secs(180));
    let uids = |ns: &Namespace| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = pods_of(ns, "rs")
            .iter()
            .map(|p| (p["metadata"]["name"].as_str().unwrap().to_string(), p["metadata"]["uid"].as_str().unwrap().to_string()))
            .collect();
        v.sort();
        v
    };
    let before = uids(&ns);
    assert_eq!(before.len(), 3, "{before:?}");
    let out = ns.kubectl(&["-n", OPERATOR_NAMESPACE, "delete", "pod", "-l", "app.kubernetes.io/name=kompi-operator", "--wait=false"]);
    assert!(out.status.success(), "{}", err(&out));
    wait_condition(&ns, "rs", "Succeeded", Duration::from_secs(240));
    let log = text(&ns.k(&["logs", "rs-launcher"]));
    assert_eq!(log.lines().filter(|l| l.starts_with("rs-worker-")).count(), 2, "{log}");
    let after: Vec<(String, String)> = uids(&ns);
    assert!(after.iter().all(|p| before.contains(p)), "no pod was recreated or duplicated: before {before:?}, after {after:?}");
    let events = events_of(&ns, "rs");
    assert_eq!(events.matches("MPIJobSucceeded").count(), 1, "{events}");
}

pub fn deleting_the_mpijob_removes_everything_it_made() {
    require_testbed();
    let ns = Namespace::new("op-gc");
    operator(&ns);
    let manifest = mpijob("gc", 2, "sleep 600", "").replace("cleanPodPolicy: Running", "cleanPodPolicy: None");
    apply(&ns, &manifest);
    wait_condition(&ns, "gc", "Running", Duration::from_secs(180));
    let out = ns.kompi(&["job", "delete", "gc", "-n", &ns.name, "--wait", "--timeout", "120s"]);
    assert!(out.status.success(), "{}", err(&out));
    for kind in ["pods", "services", "configmaps", "secrets"] {
        let out = ns.k(&["get", kind, "-l", "training.kubeflow.org/job-name=gc", "-o", "name"]);
        assert!(text(&out).trim().is_empty(), "{kind} left behind: {}", text(&out));
    }
    for object in ["service/gc", "configmap/gc-config", "secret/gc-ssh", "pod/gc-launcher", "pod/gc-worker-0"] {
        assert!(!ns.k(&["get", object]).status.success(), "{object} is still there");
    }
}

pub fn workers_that_never_answer_fail_the_job_naming_them() {
    require_testbed();
    let ns = Namespace::new("op-gate");
    operator(&ns);
    // Worker 0's command is not sshd, so nothing answers on its ssh port.
    let manifest = mpijob("gate", 2, "mpirun -n 2 hostname", "")
        .replace("metadata:\n  name: gate", "metadata:\n  name: gate\n  annotations:\n    kompi.io/workers-timeout-seconds: \"15\"")
        .replace("command: [\"/usr/sbin/sshd\"]\n            args: [\"-De\"]", "command: [\"sleep\"]\n            args: [\"3600\"]");
    apply(&ns, &manifest);
    let failed = wait_condition(&ns, "gate", "Failed", Duration::from_secs(180));
    assert_eq!(failed["reason"], "WorkersUnreachable", "{failed}");
    let message = failed["message"].as_str().unwrap();
    assert!(message.contains(&format!("gate-worker-0.gate.{}.svc", ns.name)) && message.contains("not answering"), "{message}");
    assert!(message.contains("the command never ran"), "{message}");
}

/// One MPIJob per flavour, `mpiImplementation` set, on the trixie images: Open MPI 5 reads only the
/// PRRTE names of the launcher's settings (mpi-operator #842: with the ORTE names alone its mpirun finds
/// no hostfile and runs every rank on the launcher), MPICH's Hydra reads its own variables and hostfile syntax.
fn a_flavours_mpijob_runs_allreduce(tag_suffix: &str, implementation: &str, name: &str) {
    require_testbed();
    let ns = Namespace::new(&format!("op-{name}"));
    operator(&ns);
    let image = format!("{IMAGE}{tag_suffix}");
    // Each rank prints the host it runs on: the ranks must be on the workers, none on the launcher.
    let command = "mpirun -n 3 /opt/kompi/examples/allreduce && mpirun -n 3 hostname";
    apply(&ns, &mpijob_on(&image, name, 3, command, &format!("  mpiImplementation: {implementation}\n")));
    wait_condition(&ns, name, "Succeeded", Duration::from_secs(240));
    let log = text(&ns.k(&["logs", &format!("{name}-launcher")]));
    assert!(log.contains("allreduce: 3 ranks") && log.contains(": OK"), "launcher log:\n{log}");
    let mut hosts: Vec<&str> = log.lines().filter(|l| l.starts_with(&format!("{name}-")) && !l.contains(' ')).collect();
    hosts.sort();
    assert_eq!(hosts, [format!("{name}-worker-0"), format!("{name}-worker-1"), format!("{name}-worker-2")], "launcher log:\n{log}");
}

pub fn an_open_mpi_5_mpijob_runs_its_ranks_on_the_workers() {
    a_flavours_mpijob_runs_allreduce("-ompi5", "OpenMPI", "ompi5");
}

pub fn an_mpich_mpijob_runs_its_ranks_on_the_workers() {
    a_flavours_mpijob_runs_allreduce("-mpich", "MPICH", "mpich");
}

/// The manifest with `runPolicy` replaced by these lines (each indented under it).
fn run_policy(manifest: &str, lines: &[&str]) -> String {
    let policy: String = lines.iter().map(|l| format!("    {l}\n")).collect();
    manifest.replace("    cleanPodPolicy: Running\n", &policy)
}

fn merge_patch(ns: &Namespace, name: &str, patch: &str) {
    let out = ns.k(&["patch", "mpijob", name, "--type", "merge", "-p", patch]);
    assert!(out.status.success(), "kubectl patch {patch}: {}", err(&out));
}

fn undeleted(pods: &[Value]) -> usize {
    pods.iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).count()
}

pub fn a_failed_launcher_restarts_the_run_until_the_backoff_limit() {
    require_testbed();
    let ns = Namespace::new("op-backoff");
    operator(&ns);
    apply(&ns, &run_policy(&mpijob("bo", 1, "mpirun -n 1 hostname && exit 3", ""), &["cleanPodPolicy: Running", "backoffLimit: 2"]));
    // Each restart's Restarting condition lasts until its new launcher runs (seconds): watched closely.
    let mut restarts = std::collections::BTreeSet::new();
    ns.eventually("MPIJob bo to fail past its backoffLimit", Duration::from_secs(300), || {
        let job = job_json(&ns, "bo");
        restarts.extend(condition(&job, "Restarting").and_then(|c| c["message"].as_str().map(str::to_string)));
        condition(&job, "Failed").is_some()
    });
    let failed = condition(&job_json(&ns, "bo"), "Failed").unwrap();
    assert_eq!(failed["reason"], "BackoffLimitExceeded", "{failed}");
    let message = failed["message"].as_str().unwrap();
    assert!(message.contains("backoffLimit 2 reached (2 restarts)") && message.contains("launcher bo-launcher on node node1 exited with code 3"), "{message}");
    let job = job_json(&ns, "bo");
    assert_eq!(job["status"]["restartCount"], 2, "{}", job["status"]);
    // A Restarting condition on each restart, naming the cause and the attempt, with a Warning event (the
    // event recorder folds the second into the first's series: same reason, same object).
    let cause = "(backoffLimit) after: launcher bo-launcher on node node1 exited with code 3";
    assert_eq!(restarts.into_iter().collect::<Vec<_>>(), [format!("restart 1 of 2 {cause}"), format!("restart 2 of 2 {cause}")]);
    let events = events_of(&ns, "bo");
    assert!(events.lines().any(|l| l.starts_with("Warning") && l.contains("LauncherFailed") && l.contains("restart 1 of 2")), "{events}");
    // Each run had a launcher pod of its own: the one left is the third.
    let launcher = pods_of(&ns, "bo").into_iter().find(|p| p["metadata"]["name"] == "bo-launcher").expect("the finished launcher is kept");
    assert_eq!(launcher["metadata"]["annotations"]["kompi.io/restart-count"], "2", "{}", launcher["metadata"]);
    let log = text(&ns.k(&["logs", "bo-launcher"]));
    assert!(log.contains("bo-worker-0"), "the third run ran mpirun too:\n{log}");
}

pub fn past_its_active_deadline_a_job_is_stopped_and_fails() {
    require_testbed();
    let ns = Namespace::new("op-deadline");
    operator(&ns);
    // cleanPodPolicy None: the deadline stops the pods all the same. Nothing happens at the deadline
    // itself (every pod just runs), so only the controller's own timer can end the job.
    apply(&ns, &run_policy(&mpijob("dl", 2, "sleep 600", ""), &["cleanPodPolicy: None", "activeDeadlineSeconds: 30"]));
    let failed = wait_condition(&ns, "dl", "Failed", Duration::from_secs(180));
    assert_eq!(failed["reason"], "DeadlineExceeded", "{failed}");
    assert!(failed["message"].as_str().unwrap().contains("activeDeadlineSeconds (30 s)"), "{failed}");
    let job = job_json(&ns, "dl");
    let seconds = |field: &str| job["status"][field].as_str().unwrap().parse::<k8s_openapi::jiff::Timestamp>().unwrap().as_second();
    let ran = seconds("completionTime") - seconds("startTime");
    assert!((30..60).contains(&ran), "failed {ran} s after its start, the deadline being 30 s");
    ns.eventually("every pod of the job to be stopped", Duration::from_secs(60), || undeleted(&pods_of(&ns, "dl")) == 0);
    let events = events_of(&ns, "dl");
    assert!(events.lines().any(|l| l.starts_with("Warning") && l.contains("DeadlineExceeded")), "{events}");
}

pub fn a_finished_job_and_all_it_made_are_deleted_after_its_ttl() {
    require_testbed();
    let ns = Namespace::new("op-ttl");
    operator(&ns);
    apply(&ns, &run_policy(&mpijob("ttl", 1, "mpirun -n 1 hostname", ""), &["cleanPodPolicy: None", "ttlSecondsAfterFinished: 15"]));
    wait_condition(&ns, "ttl", "Succeeded", Duration::from_secs(240));
    let finished = std::time::Instant::now();
    ns.eventually("the MPIJob to be deleted after its TTL", Duration::from_secs(120), || !ns.k(&["get", "mpijob", "ttl"]).status.success());
    assert!(finished.elapsed() >= Duration::from_secs(5), "deleted {:?} after it was seen finished: before its TTL", finished.elapsed());
    for kind in ["pods", "services", "configmaps", "secrets"] {
        let out = ns.k(&["get", kind, "-l", "training.kubeflow.org/job-name=ttl", "-o", "name"]);
        assert!(text(&out).trim().is_empty(), "{kind} left behind: {}", text(&out));
    }
}

pub fn clean_pod_policy_all_and_none_apply_to_launcher_and_workers_alike() {
    require_testbed();
    let ns = Namespace::new("op-clean");
    operator(&ns);
    apply(&ns, &run_policy(&mpijob("all", 2, "mpirun -n 2 hostname", ""), &["cleanPodPolicy: All"]));
    apply(&ns, &run_policy(&mpijob("none", 2, "mpirun -n 2 hostname", ""), &["cleanPodPolicy: None"]));
    wait_condition(&ns, "all", "Succeeded", Duration::from_secs(240));
    wait_condition(&ns, "none", "Succeeded", Duration::from_secs(240));
    // All: the finished launcher goes too (mpi-operator #643 keeps it).
    ns.eventually("the operator to delete every pod of the All job", Duration::from_secs(60), || undeleted(&pods_of(&ns, "all")) == 0);
    ns.eventually("the kubelet to remove them", Duration::from_secs(180), || pods_of(&ns, "all").is_empty());
    // None: by now the All job's cleanup is long done; nothing of the None job was touched.
    let pods = pods_of(&ns, "none");
    assert_eq!(pods.len(), 3, "{pods:?}");
    assert_eq!(undeleted(&pods), 3, "cleanPodPolicy None deletes nothing");
    let running_workers = pods.iter().filter(|p| p["metadata"]["labels"]["training.kubeflow.org/job-role"] == "worker" && p["status"]["phase"] == "Running").count();
    assert_eq!(running_workers, 2, "the None job's workers are left running");
}

/// What Kueue does to an MPIJob (its `RunWithPodSetsInfo` and `Suspend`): created suspended, admitted by
/// one update that clears `suspend` and merges the flavour's node selector and tolerations into every
/// replica's template, preempted by setting `suspend` again (then it waits until no replica is active and
/// restores the templates), admitted again later.
pub fn kueue_suspends_admits_preempts_and_readmits_an_mpijob() {
    require_testbed();
    let ns = Namespace::new("op-kueue");
    operator(&ns);
    let manifest = run_policy(&mpijob("kq", 2, "sleep 20; mpirun -n 2 hostname", ""), &["cleanPodPolicy: Running", "suspend: true"]);
    apply(&ns, &manifest);
    let suspended = wait_condition(&ns, "kq", "Suspended", Duration::from_secs(60));
    assert_eq!(suspended["reason"], "MPIJobSuspended");
    std::thread::sleep(Duration::from_secs(3));
    assert!(pods_of(&ns, "kq").is_empty(), "a job created suspended gets no pods at all (mpi-operator #615)");
    assert!(job_json(&ns, "kq")["status"]["startTime"].is_null(), "a job that never ran has no startTime");

    let placement = r#"{"nodeSelector": {"kubernetes.io/os": "linux"}, "tolerations": [{"key": "kompi.io/flavour", "operator": "Exists", "effect": "NoSchedule"}]}"#;
    let admit = format!(r#"{{"spec": {{"runPolicy": {{"suspend": false}}, "mpiReplicaSpecs": {{"Launcher": {{"template": {{"spec": {placement}}}}}, "Worker": {{"template": {{"spec": {placement}}}}}}}}}}}"#);
    merge_patch(&ns, "kq", &admit);
    wait_condition(&ns, "kq", "Running", Duration::from_secs(180));
    let pods = pods_of(&ns, "kq");
    assert_eq!(pods.len(), 3);
    for pod in &pods {
        assert_eq!(pod["spec"]["nodeSelector"]["kubernetes.io/os"], "linux", "{}", pod["metadata"]["name"]);
        assert!(pod["spec"]["tolerations"].to_string().contains("kompi.io/flavour"), "{}", pod["metadata"]["name"]);
    }
    let first_start = job_json(&ns, "kq")["status"]["startTime"].as_str().unwrap().to_string();

    // Preempted: every pod goes, the job's objects stay, and no replica is counted active (Kueue waits for that).
    merge_patch(&ns, "kq", r#"{"spec": {"runPolicy": {"suspend": true}}}"#);
    wait_condition(&ns, "kq", "Suspended", Duration::from_secs(60));
    ns.eventually("every pod of the suspended job to be gone", Duration::from_secs(180), || pods_of(&ns, "kq").is_empty());
    ns.eventually("no replica active", Duration::from_secs(30), || {
        let job = job_json(&ns, "kq");
        job["status"]["replicaStatuses"].as_object().unwrap().values().all(|r| r["active"] == 0)
    });
    let job = job_json(&ns, "kq");
    assert!(condition(&job, "Failed").is_none() && condition(&job, "Running").is_none(), "{}", job["status"]);
    for object in ["service/kq", "configmap/kq-config", "secret/kq-ssh"] {
        assert!(ns.k(&["get", object]).status.success(), "{object} was not kept while suspended");
    }
    let restore = r#"{"spec": {"mpiReplicaSpecs": {"Launcher": {"template": {"spec": {"nodeSelector": null, "tolerations": null}}}, "Worker": {"template": {"spec": {"nodeSelector": null, "tolerations": null}}}}}}"#;
    merge_patch(&ns, "kq", restore);

    // Admitted again: the run starts afresh, with a new startTime, and finishes.
    merge_patch(&ns, "kq", &admit);
    wait_condition(&ns, "kq", "Succeeded", Duration::from_secs(240));
    let job = job_json(&ns, "kq");
    assert!(job["status"]["startTime"].as_str().unwrap() > first_start.as_str(), "startTime is reset on resume: {}", job["status"]);
    let log = text(&ns.k(&["logs", "kq-launcher"]));
    assert_eq!(log.lines().filter(|l| l.starts_with("kq-worker-")).count(), 2, "{log}");
    let events = events_of(&ns, "kq");
    for reason in ["MPIJobSuspended", "MPIJobResumed", "MPIJobSucceeded"] {
        assert!(events.contains(reason), "no {reason} event:\n{events}");
    }
}
