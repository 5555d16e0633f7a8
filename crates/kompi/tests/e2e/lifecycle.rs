//! The `kompi` lifecycle commands against the API: up, run, exec, status, list, scale, logs, down, and
//! their failures.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{Namespace, err, kubeconfig, require_testbed, text};

fn hosts(output: &str) -> Vec<String> {
    let mut h: Vec<String> = output.lines().map(str::to_string).collect();
    h.sort();
    h
}

pub fn up_run_update_scale_and_down() {
    require_testbed();
    let ns = Namespace::new("life");
    let out = ns.kompi_ns("up", "life", &["--set", "mpiWorkers.num=3", "--wait", "--timeout", "180s"]);
    assert!(out.status.success(), "up: {}", err(&out));
    // `up --wait` returned on the master's Ready condition, whose gate is the sidecar's word that every
    // listed worker answers: nothing was executed in a pod to find out.
    let gate = ns.k(&["get", "pod", "life-master", "-o", "jsonpath={.status.conditions[?(@.type==\"kompi.io/workers-reachable\")].message}"]);
    assert_eq!(text(&gate), "all 3 listed workers answer on port 2022", "{}", err(&gate));
    let out = ns.kompi_ns("run", "life", &["--", "hostname"]);
    assert!(out.status.success(), "run: {}", err(&out));
    assert_eq!(hosts(&text(&out)), ["life-master", "life-worker-0", "life-worker-1", "life-worker-2"]);

    // Changed values update the cluster in place (the key Secret is kept).
    let key_before = text(&ns.k(&["get", "secret", "life-ssh-key", "-o", "jsonpath={.data.id_rsa\\.pub}"]));
    let out = ns.kompi_ns("up", "life", &["--set", "mpiWorkers.num=2", "--wait", "--timeout", "180s"]);
    assert!(out.status.success(), "second up: {}", err(&out));
    assert!(err(&out).contains("kept: Secret/life-ssh-key"), "{}", err(&out));
    assert_eq!(text(&ns.k(&["get", "secret", "life-ssh-key", "-o", "jsonpath={.data.id_rsa\\.pub}"])), key_before);
    let out = ns.kompi_ns("run", "life", &["--", "hostname"]);
    assert_eq!(hosts(&text(&out)), ["life-master", "life-worker-0", "life-worker-1"], "{}", err(&out));

    for workers in [3u32, 1] {
        let out = ns.kompi_ns("scale", "life", &["--workers", &workers.to_string(), "--wait", "--timeout", "180s"]);
        assert!(out.status.success(), "scale {workers}: {}", err(&out));
        let out = ns.kompi_ns("run", "life", &["--npernode", "1", "--", "hostname"]);
        assert!(out.status.success(), "run after scale {workers}: {}", err(&out));
        assert_eq!(text(&out).lines().count(), workers as usize + 1, "{}", text(&out));
    }

    // A failing rank's status comes back; so does a missing command's.
    let out = ns.kompi_ns("run", "life", &["--np", "2", "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", err(&out));
    let out = ns.kompi_ns("exec", "life", &["--", "no-such-command"]);
    assert_eq!(out.status.code(), Some(127), "{}", err(&out));
    let out = ns.kompi_ns("exec", "life", &["--worker", "0", "--", "hostname"]);
    assert_eq!(text(&out).trim(), "life-worker-0");

    let out = ns.kompi_ns("status", "life", &["-o", "json"]);
    assert!(out.status.success(), "{}", err(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["phase"], "Ready");
    assert_eq!(status["workers_ready"], 1);
    assert_eq!(status["hostfile"].as_array().unwrap().len(), 2, "{status}");
    let out = ns.kompi(&["list", "-n", &ns.name]);
    assert!(text(&out).contains("life"), "{}", text(&out));
    let out = ns.kompi_ns("logs", "life", &["--sidecar"]);
    assert!(out.status.success() && text(&out).contains("hostfile"), "{}{}", text(&out), err(&out));

    let out = ns.kompi_ns("down", "life", &["--wait"]);
    assert!(out.status.success(), "{}", err(&out));
    assert!(text(&out).contains("Secret/life-ssh-key"), "{}", text(&out));
    let left = ns.k(&["get", "pods,statefulsets,services,secrets,serviceaccounts,roles,rolebindings", "-l", "app.kubernetes.io/instance=life", "-o", "name"]);
    assert_eq!(text(&left).trim(), "", "left behind");
    let out = ns.kompi_ns("down", "life", &[]);
    assert!(out.status.success() && text(&out).contains("nothing to remove"));
    let out = ns.kompi_ns("status", "life", &[]);
    assert_eq!(out.status.code(), Some(3));
}

/// `kompi run CLUSTER --npernode 1 -- sleep 60`, started.
fn sleep_a_minute(ns: &Namespace, cluster: &str) -> std::process::Child {
    ns.kompi_command(&["run", cluster, "-n", &ns.name, "--npernode", "1", "--", "sleep", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `sleep` processes in a pod's MPI container.
fn sleeps(ns: &Namespace, pod: &str, container: &str) -> String {
    text(&ns.k(&["exec", pod, "-c", container, "--", "sh", "-c", "pgrep -x sleep || true"])).trim().to_string()
}

pub fn a_worker_deleted_during_a_run_fails_it_and_is_named() {
    require_testbed();
    let ns = Namespace::new("victim");
    let out = ns.kompi_ns("up", "v", &["--set", "mpiWorkers.num=2", "--wait", "--timeout", "180s"]);
    assert!(out.status.success(), "up: {}", err(&out));
    let run = sleep_a_minute(&ns, "v");
    let start = Instant::now();
    ns.eventually("the rank on v-worker-1", Duration::from_secs(60), || !sleeps(&ns, "v-worker-1", "mpi-worker").is_empty());
    let out = ns.k(&["delete", "pod", "v-worker-1", "--grace-period=0", "--force"]);
    assert!(out.status.success(), "{}", err(&out));
    let out = run.wait_with_output().unwrap();
    assert!(!out.status.success(), "run succeeded though a worker was deleted");
    assert!(start.elapsed() < Duration::from_secs(58), "run only ended when sleep did");
    assert!(err(&out).contains("worker v-worker-1 was deleted during the run"), "{}", err(&out));
}


pub fn ctrl_c_and_a_vanished_client_end_the_run_everywhere() {
    require_testbed();
    let ns = Namespace::new("interrupt");
    let out = ns.kompi_ns("up", "i", &["--set", "mpiWorkers.num=1", "--wait", "--timeout", "180s"]);
    assert!(out.status.success(), "up: {}", err(&out));
    let start_run = || {
        let run = sleep_a_minute(&ns, "i");
        ns.eventually("the ranks on both pods", Duration::from_secs(60), || {
            !sleeps(&ns, "i-worker-0", "mpi-worker").is_empty() && !sleeps(&ns, "i-master", "mpi-master").is_empty()
        });
        run
    };
    let all_gone = |what: &str| {
        ns.eventually(what, Duration::from_secs(30), || sleeps(&ns, "i-worker-0", "mpi-worker").is_empty() && sleeps(&ns, "i-master", "mpi-master").is_empty());
    };

    // Ctrl-C: SIGINT reaches mpiexec through `kompi launch`, which ends the job; run reports how it ended.
    let run = start_run();
    let started = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(run.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let out = run.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(45), "run only ended when sleep did");
    assert!(!out.status.success(), "an interrupted run reported success");
    assert!(err(&out).contains("interrupting mpiexec on i-master"), "{}", err(&out));
    all_gone("no rank left after Ctrl-C");

    // The client vanishes (killed, or its connection lost): launch reads the end of its stdin and ends mpiexec.
    let mut run = start_run();
    run.kill().unwrap();
    run.wait().unwrap();
    all_gone("no rank left after the client was killed");
}

pub fn a_broken_image_is_reported_within_the_timeout() {
    require_testbed();
    let ns = Namespace::new("broken");
    let start = Instant::now();
    let out = ns.kompi_ns("up", "b", &["--set", "mpiWorkers.num=1,image.repository=registry.invalid/none", "--wait", "--timeout", "60s"]);
    assert!(!out.status.success());
    assert!(start.elapsed() < Duration::from_secs(90));
    let stderr = err(&out);
    assert!(stderr.contains("ImagePullBackOff") || stderr.contains("ErrImagePull"), "{stderr}");

    // `run` on such a cluster names the same reason at its deadline instead of failing to exec.
    let out = ns.kompi_ns("run", "b", &["--timeout", "15s", "--", "true"]);
    assert_eq!(out.status.code(), Some(6), "{}", err(&out));
    let stderr = err(&out);
    assert!(stderr.contains("ImagePullBackOff") || stderr.contains("ErrImagePull"), "{stderr}");
    // `exec` does not wait: it says at once that the container is not running, and why.
    let out = ns.kompi_ns("exec", "b", &["--worker", "0", "--", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", err(&out));
    let stderr = err(&out);
    assert!(stderr.contains("container mpi-worker of b-worker-0 is not running"), "{stderr}");
    assert!(stderr.contains("ImagePullBackOff") || stderr.contains("ErrImagePull"), "{stderr}");
}

pub fn run_right_after_up_without_wait_waits_for_the_cluster() {
    require_testbed();
    let ns = Namespace::new("eager");
    let out = ns.kompi_ns("up", "e", &["--set", "mpiWorkers.num=2", "--no-wait"]);
    assert!(out.status.success(), "up: {}", err(&out));
    let out = ns.kompi_ns("run", "e", &["--timeout", "180s", "--npernode", "1", "--", "hostname"]);
    assert!(out.status.success(), "run: {}", err(&out));
    assert_eq!(hosts(&text(&out)), ["e-master", "e-worker-0", "e-worker-1"]);
}

pub fn bad_targets_get_one_clear_line_and_distinct_statuses() {
    require_testbed();
    let ns = Namespace::new("errors");
    // Nothing listens on port 1.
    let dead = ns.dir.path().join("dead.kubeconfig");
    std::fs::write(
        &dead,
        "apiVersion: v1\nkind: Config\nclusters: [{name: x, cluster: {server: \"https://127.0.0.1:1\", insecure-skip-tls-verify: true}}]\n\
         users: [{name: x, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: x, user: x}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let out = ns.kompi(&["status", "c", "--kubeconfig", dead.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5), "{}", err(&out));
    assert!(err(&out).contains("cannot reach the Kubernetes API server at https://127.0.0.1:1"), "{}", err(&out));

    let out = ns.kompi(&["up", "c", "-n", "no-such-namespace", "--no-wait"]);
    assert_eq!(out.status.code(), Some(3), "{}", err(&out));
    assert!(err(&out).contains("namespace \"no-such-namespace\" does not exist"), "{}", err(&out));

    let out = ns.kompi_ns("run", "ghost", &["--", "hostname"]);
    assert_eq!(out.status.code(), Some(3), "{}", err(&out));
    let out = ns.kompi_ns("run", "ghost", &["--np", "0", "--", "hostname"]);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
    let out = ns.kompi_ns("up", "c", &["--set", "mpiWorkers.num=-1"]);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));

    // A user who may only read: `up` is refused, says which permission is missing, and what was applied.
    let out = ns.k(&["create", "serviceaccount", "reader"]);
    assert!(out.status.success(), "{}", err(&out));
    let out = ns.k(&["create", "rolebinding", "reader", "--clusterrole=view", &format!("--serviceaccount={}:reader", ns.name)]);
    assert!(out.status.success(), "{}", err(&out));
    ns.eventually("the reader's token", Duration::from_secs(30), || {
        !text(&ns.k(&["get", "serviceaccount", "reader", "-o", "jsonpath={.secrets[0].name}"])).is_empty()
    });
    let secret = text(&ns.k(&["get", "serviceaccount", "reader", "-o", "jsonpath={.secrets[0].name}"]));
    let token = text(&ns.k(&["get", "secret", &secret, "-o", "go-template={{.data.token | base64decode}}"]));
    let admin = std::fs::read_to_string(kubeconfig()).unwrap();
    let ca = admin.lines().find_map(|l| l.split("certificate-authority: \"").nth(1)).and_then(|s| s.split('"').next()).expect("the testbed kubeconfig names its CA file");
    let reader = ns.dir.path().join("reader.kubeconfig");
    std::fs::write(
        &reader,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: t, cluster: {{server: \"https://127.0.0.1:6443\", certificate-authority: \"{ca}\"}}}}]\n\
             users: [{{name: r, user: {{token: \"{token}\"}}}}]\ncontexts: [{{name: r, context: {{cluster: t, user: r, namespace: {}}}}}]\ncurrent-context: r\n",
            ns.name
        ),
    )
    .unwrap();
    let out = ns.kompi(&["up", "c", "--kubeconfig", reader.to_str().unwrap(), "--no-wait"]);
    assert_eq!(out.status.code(), Some(4), "{}", err(&out));
    let stderr = err(&out);
    assert!(stderr.contains("forbidden") && stderr.contains("cannot"), "{stderr}");
    assert!(stderr.contains("not applied:"), "{stderr}");
}

pub fn kubectl_runs_kompi_as_a_plugin() {
    require_testbed();
    let ns = Namespace::new("plugin");
    let bin = ns.dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(crate::support::kompi_bin(), bin.join("kubectl-kompi")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = std::process::Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig())
        .env("PATH", path)
        .args(["kompi", "list", "-n", &ns.name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", err(&out));
    assert!(text(&out).starts_with("NAMESPACE"), "{}", text(&out));
}
