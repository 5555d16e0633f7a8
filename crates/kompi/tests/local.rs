//! The local backend with real parts: network namespaces, `kompi init` with a real sshd in each node,
//! Debian's Open MPI across them. Needs root (namespaces); reported as ignored otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kompi_local::proc::{ProcessId, in_network_namespace, namespace_inode};

mod harness;

fn kompi() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kompi"))
}


/// The example programs, built once with mpicc.
fn example(name: &str) -> String {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").canonicalize().unwrap();
        let out = Command::new("make").arg("-C").arg(&examples).output().expect("make is installed");
        assert!(out.status.success(), "building the examples failed: {}", String::from_utf8_lossy(&out.stderr));
        examples.join("bin")
    });
    dir.join(name).display().to_string()
}

/// A local cluster for one test, removed when the test ends (whatever the outcome).
struct Cluster {
    name: String,
    state: tempfile::TempDir,
}

impl Cluster {
    fn up(name: &str, workers: u32) -> Cluster {
        let state = tempfile::tempdir().unwrap();
        let c = Cluster { name: name.to_string(), state };
        let out = c.kompi(&["up", name, "--workers", &workers.to_string()]);
        assert!(out.status.success(), "local up failed: {}", String::from_utf8_lossy(&out.stderr));
        c
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = kompi();
        cmd.arg("local").arg("--state-dir").arg(self.state.path()).args(args);
        cmd
    }

    fn kompi(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut all = vec!["run", self.name.as_str()];
        all.extend_from_slice(args);
        self.kompi(&all)
    }

    fn status(&self) -> serde_json::Value {
        let out = self.kompi(&["status", &self.name, "-o", "json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn init_pid(&self, node: &str) -> i32 {
        let status = self.status();
        let n = status["nodes"].as_array().unwrap().iter().find(|n| n["name"] == node).unwrap();
        n["pid"].as_i64().unwrap() as i32
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.kompi(&["down", &self.name]);
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Children of a process (from /proc/<pid>/task/*/children).
fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(list.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
    }
    out
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn hello_prints_every_node_once() {
    let c = Cluster::up("lhello", 2);
    let out = c.run(&["--np", "3", "--npernode", "1", "--", &example("hello")]);
    assert!(out.status.success(), "{}", err(&out));
    let mut hosts: Vec<String> = text(&out).lines().map(|l| l.rsplit(' ').next().unwrap().to_string()).collect();
    hosts.sort();
    assert_eq!(hosts, ["lhello-master", "lhello-worker-0", "lhello-worker-1"], "{}", text(&out));
}

fn allreduce_sum_is_right_and_abort_status_propagates() {
    let c = Cluster::up("lsum", 2);
    let out = c.run(&["--np", "3", "--npernode", "1", "--", &example("allreduce")]);
    assert!(out.status.success(), "{}", err(&out));
    assert!(text(&out).contains("allreduce: 3 ranks") && text(&out).contains(": OK"), "{}", text(&out));
    // The rank that aborts runs on the last worker, not where mpiexec runs.
    let out = c.run(&["--np", "3", "--npernode", "1", "--", &example("abort")]);
    assert_eq!(out.status.code(), Some(3), "{}", err(&out));
    let out = c.run(&["--np", "3", "--npernode", "1", "--", &example("abort"), "7"]);
    assert_eq!(out.status.code(), Some(7), "{}", err(&out));
}

fn ranks_on_different_nodes_are_not_pinned_to_the_same_cores() {
    // Every node sees all of this machine's CPUs; Open MPI's per-node binding would put each node's
    // first rank on core 0, all of them together (ping-pong latency then goes from µs to ms).
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let own = own.lines().find(|l| l.starts_with("Cpus_allowed_list:")).unwrap().to_string();
    let c = Cluster::up("lbind", 1);
    let out = c.run(&["--np", "2", "--npernode", "1", "--", "grep", "Cpus_allowed_list:", "/proc/self/status"]);
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(text(&out).lines().collect::<Vec<_>>(), [own.as_str(), own.as_str()], "{}", text(&out));
}

fn exec_returns_the_command_status() {
    let c = Cluster::up("lexec", 1);
    let out = c.kompi(&["exec", "lexec", "--node", "0", "--", "hostname"]);
    assert_eq!(text(&out).trim(), "lexec-worker-0");
    let out = c.kompi(&["exec", "lexec", "--", "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5));
    let out = c.kompi(&["exec", "lexec", "--", "no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(err(&out).contains("no-such-command: command not found on node lexec-master"), "{}", err(&out));
}

fn a_killed_sshd_is_restarted_by_the_supervisor() {
    let c = Cluster::up("lheal", 2);
    let init = c.init_pid("lheal-worker-0");
    let sshd = || children(init).into_iter().find(|p| comm(*p) == "sshd");
    let old = sshd().expect("kompi init runs sshd as its child");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(old), nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_until("a new sshd on lheal-worker-0", Duration::from_secs(30), || sshd().is_some_and(|p| p != old));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = c.run(&["--np", "3", "--npernode", "1", "--", "hostname"]);
        if out.status.success() {
            assert!(text(&out).contains("lheal-worker-0"));
            break;
        }
        assert!(Instant::now() < deadline, "mpiexec still fails after sshd was restarted: {}", err(&out));
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn killing_a_worker_node_mid_run_fails_the_run_and_names_the_node() {
    let c = Cluster::up("lkill", 2);
    let run = c
        .command(&["run", "lkill", "--np", "3", "--npernode", "1", "--", "sleep", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // Wait until the rank on the victim node runs, then kill everything in that node.
    let netns = namespace_inode(Path::new("/run/netns/lkill-worker-1")).unwrap();
    wait_until("the rank on lkill-worker-1", Duration::from_secs(30), || in_network_namespace(netns).iter().any(|p| comm(p.pid) == "sleep"));
    for p in in_network_namespace(netns) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid), nix::sys::signal::Signal::SIGKILL);
    }
    let out = run.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(55), "the run only ended when sleep did");
    assert!(err(&out).contains("node lkill-worker-1 of cluster lkill is down"), "{}", err(&out));
}

fn down_leaves_no_namespace_veth_bridge_or_process_behind() {
    let c = Cluster::up("ldown", 2);
    let status = c.status();
    let bridge = status["bridge"].as_str().unwrap().to_string();
    let pids: Vec<ProcessId> =
        status["nodes"].as_array().unwrap().iter().map(|n| ProcessId::of(n["pid"].as_i64().unwrap() as i32).unwrap()).collect();
    let inodes: Vec<u64> = ["ldown-master", "ldown-worker-0", "ldown-worker-1"]
        .iter()
        .map(|n| namespace_inode(&Path::new("/run/netns").join(n)).unwrap())
        .collect();
    let out = c.kompi(&["down", "ldown"]);
    assert!(out.status.success(), "{}", err(&out));
    assert!(text(&out).contains("bridge"), "{}", text(&out));
    let netns = String::from_utf8(Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).unwrap();
    assert!(!netns.contains("ldown-"), "{netns}");
    let links: Vec<String> = std::fs::read_dir("/sys/class/net").unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!links.iter().any(|l| l == &bridge || l.starts_with(&format!("{bridge}-"))), "{links:?}");
    assert!(pids.iter().all(|p| !p.alive()));
    for inode in inodes {
        assert!(in_network_namespace(inode).is_empty());
    }
    assert!(!c.state.path().join("ldown").exists());
    let again = c.kompi(&["down", "ldown"]);
    assert!(again.status.success());
    assert!(text(&again).contains("nothing to remove"));
}

fn without_root_it_says_so() {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_kompi"), "local", "--state-dir", "/nonexistent", "up", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", err(&out));
    assert!(err(&out).contains("kompi local needs root"), "{}", err(&out));
}

fn main() {
    harness::main(harness::tests![harness::root => [hello_prints_every_node_once, allreduce_sum_is_right_and_abort_status_propagates, ranks_on_different_nodes_are_not_pinned_to_the_same_cores, exec_returns_the_command_status, a_killed_sshd_is_restarted_by_the_supervisor, killing_a_worker_node_mid_run_fails_the_run_and_names_the_node, down_leaves_no_namespace_veth_bridge_or_process_behind, without_root_it_says_so]]);
}
