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

/// `kompi local --state-dir BASE ARGS...`.
fn local_in(base: &Path, args: &[&str]) -> Output {
    kompi().arg("local").arg("--state-dir").arg(base).args(args).output().unwrap()
}

fn netns_names() -> Vec<String> {
    std::fs::read_dir("/run/netns").into_iter().flatten().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
}

fn links() -> Vec<String> {
    std::fs::read_dir("/sys/class/net").unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

/// Nothing of cluster `name` is left on the machine: no namespace, no process in one, no state.
fn assert_nothing_left(name: &str, base: &Path) {
    let left: Vec<String> = netns_names().into_iter().filter(|n| n.starts_with(&format!("{name}-"))).collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    let claims: Vec<String> = std::fs::read_dir("/run/kompi-local/claims")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|c| c.starts_with(&format!("netns.{name}-")))
        .collect();
    assert!(claims.is_empty(), "names still claimed: {claims:?}");
    assert!(!base.join(name).exists(), "the state directory is still there");
}

fn names_that_are_paths_are_refused_and_nothing_is_touched() {
    // The bug this guards against: `kompi local down /tmp/victim` removed the user's directory.
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("state");
    std::fs::create_dir(&base).unwrap();
    let victim = tmp.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("thesis.tex"), "years of work\n").unwrap();
    std::fs::write(tmp.path().join("beside-the-base"), "mine\n").unwrap();
    let victim_path = victim.display().to_string();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    for name in [victim_path.as_str(), "..", "~", home.as_str(), "../victim", ".", "Demo", "a/b", ""] {
        for verb in [&["down", name][..], &["status", name], &["up", name], &["run", name, "--", "true"], &["exec", name, "--", "true"]] {
            let out = local_in(&base, verb);
            assert_eq!(out.status.code(), Some(2), "{verb:?}: {}", err(&out));
            let said = err(&out);
            let lines: Vec<&str> = said.lines().collect();
            assert_eq!(lines.len(), 1, "{verb:?}: one line expected: {said}");
            assert!(lines[0].contains("invalid cluster name"), "{verb:?}: {}", lines[0]);
        }
    }
    let out = local_in(&base, &["status", "../x"]);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
    assert_eq!(std::fs::read_to_string(victim.join("thesis.tex")).unwrap(), "years of work\n");
    assert_eq!(std::fs::read_to_string(tmp.path().join("beside-the-base")).unwrap(), "mine\n");
    assert!(base.is_dir());
}

fn down_removes_only_a_directory_kompi_made() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("demo");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine\n").unwrap();
    let out = local_in(base.path(), &["down", "demo"]);
    assert_eq!(out.status.code(), Some(1), "{}", err(&out));
    assert!(err(&out).contains("refusing to remove") && err(&out).contains("marker"), "{}", err(&out));
    // A cluster.json that is not kompi's, or names another cluster, proves nothing either.
    for json in ["not json", r#"{"plan": {"cluster": "other"}}"#] {
        std::fs::write(dir.join("cluster.json"), json).unwrap();
        let out = local_in(base.path(), &["down", "demo"]);
        assert_eq!(out.status.code(), Some(1), "{json}: {}", err(&out));
        assert!(err(&out).contains("refusing to remove"), "{}", err(&out));
    }
    assert_eq!(std::fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine\n");
    let out = local_in(base.path(), &["up", "demo", "--workers", "1"]);
    assert_eq!(out.status.code(), Some(1), "up must not clear a directory it did not make: {}", err(&out));
    assert!(dir.join("notes.txt").exists());
}

fn a_state_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("state");
    std::fs::create_dir(&base).unwrap();
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).unwrap();
    for verb in [&["up", "lunsafe", "--workers", "1"][..], &["down", "lunsafe"], &["status", "lunsafe"], &["list"], &["exec", "lunsafe", "--", "true"]] {
        let out = local_in(&base, verb);
        assert_eq!(out.status.code(), Some(2), "{verb:?}: {}", err(&out));
        assert!(err(&out).contains("writable by everyone") && err(&out).contains("owned by root"), "{verb:?}: {}", err(&out));
    }
    assert!(!netns_names().iter().any(|n| n.starts_with("lunsafe-")));
    // A cluster's own directory, owned by another user (who could rewrite its cluster.json).
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).unwrap();
    let dir = base.join("lunsafe");
    std::fs::create_dir(&dir).unwrap();
    nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let out = local_in(&base, &["down", "lunsafe"]);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
    assert!(err(&out).contains("owned by uid 65534"), "{}", err(&out));
    assert!(dir.exists());
    // A base that is a symlink.
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&base, &link).unwrap();
    let out = local_in(&link, &["status", "lunsafe"]);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
    assert!(err(&out).contains("symbolic link"), "{}", err(&out));
}

fn a_tampered_state_never_reaches_the_hosts_processes_or_interfaces() {
    let c = Cluster::up("ltamper", 1);
    let file = c.state.path().join("ltamper/cluster.json");
    let original = std::fs::read_to_string(&file).unwrap();
    let mut host = Command::new("sleep").arg("600").spawn().unwrap();
    let host_id = ProcessId::of(host.id() as i32).unwrap();
    // The master's recorded pid now names a process of the host's network namespace.
    let mut state: serde_json::Value = serde_json::from_str(&original).unwrap();
    state["nodes"][0][1] = serde_json::json!({"pid": host_id.pid, "start_time": host_id.start_time});
    std::fs::write(&file, serde_json::to_string(&state).unwrap()).unwrap();
    let out = c.kompi(&["exec", "ltamper", "--", "true"]);
    assert!(!out.status.success(), "exec entered a process that is not the node's: {}", text(&out));
    let out = c.kompi(&["down", "ltamper"]);
    assert!(out.status.success(), "{}", err(&out));
    assert!(host_id.alive(), "down killed a process of the host");
    assert_nothing_left("ltamper", c.state.path());
    let _ = host.kill();
    let _ = host.wait();

    // A bridge and veths renamed consistently to a host bridge (as docker0 would be).
    let c = Cluster::up("ltamper", 1);
    let file = c.state.path().join("ltamper/cluster.json");
    let original = std::fs::read_to_string(&file).unwrap();
    let host = "ktamper9";
    for step in [&["link", "add", host, "type", "bridge"][..], &["addr", "add", "10.251.99.1/24", "dev", host]] {
        assert!(Command::new("ip").args(step).status().unwrap().success(), "ip {step:?}");
    }
    let bridge = serde_json::from_str::<serde_json::Value>(&original).unwrap()["plan"]["bridge"].as_str().unwrap().to_string();
    std::fs::write(&file, original.replace(&format!("\"{bridge}\""), &format!("\"{host}\"")).replace(&format!("\"{bridge}-"), &format!("\"{host}-"))).unwrap();
    let out = c.kompi(&["down", "ltamper"]);
    let host_survived = links().iter().any(|l| l == host);
    let _ = Command::new("ip").args(["link", "delete", host]).status();
    assert!(host_survived, "down deleted a host interface the state named: {}", text(&out));
    // Put the state back so the cluster's real network goes too.
    if c.state.path().join("ltamper").exists() {
        std::fs::write(&file, &original).unwrap();
    } else {
        let _ = Command::new("ip").args(["link", "delete", &bridge]).status();
    }
}

fn down_after_a_crash_half_way_through_up_removes_what_it_made() {
    // Kill `up` at several points: as soon as its state appears, once namespaces exist, once nodes run.
    for (attempt, wait_for) in ["state", "netns", "node"].into_iter().enumerate() {
        let name = format!("lcrash{attempt}");
        let base = tempfile::tempdir().unwrap();
        let mut up = kompi().arg("local").arg("--state-dir").arg(base.path()).args(["up", &name, "--workers", "2"]).stderr(Stdio::null()).spawn().unwrap();
        let state_file = base.path().join(&name).join("cluster.json");
        let reached = || match wait_for {
            "state" => base.path().join(&name).exists(),
            "netns" => Path::new(&format!("/run/netns/{name}-worker-0")).exists(),
            _ => std::fs::read_to_string(&state_file)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .is_some_and(|state| state["nodes"].as_array().is_some_and(|n| n.len() >= 2)),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !reached() && up.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = up.kill();
        let _ = up.wait();
        let out = local_in(base.path(), &["down", &name]);
        assert!(out.status.success(), "after a crash at {wait_for:?}: {}", err(&out));
        assert_nothing_left(&name, base.path());
    }
}

fn two_ups_of_one_name_at_once_leave_one_working_cluster() {
    for shared_state in [true, false] {
        let name = if shared_state { "lrace" } else { "lrace2" };
        let bases = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let base_of = |i: usize| if shared_state { bases[0].path() } else { bases[i].path() };
        let ups: Vec<_> = (0..2)
            .map(|i| {
                kompi().arg("local").arg("--state-dir").arg(base_of(i)).args(["up", name, "--workers", "1"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
            })
            .collect();
        let outs: Vec<Output> = ups.into_iter().map(|u| u.wait_with_output().unwrap()).collect();
        let winners: Vec<usize> = (0..2).filter(|i| outs[*i].status.success()).collect();
        assert_eq!(winners.len(), 1, "exactly one up must succeed: {:?}", outs.iter().map(err).collect::<Vec<_>>());
        let (winner, loser) = (winners[0], 1 - winners[0]);
        let said = err(&outs[loser]);
        assert!(said.contains("already up") || said.contains(&format!("network namespace {name}-master is taken by the local cluster")), "{said}");
        let run = local_in(base_of(winner), &["run", name, "--np", "2", "--npernode", "1", "--", "hostname"]);
        assert!(run.status.success(), "the first cluster was disturbed: {}", err(&run));
        let mut hosts: Vec<&str> = std::str::from_utf8(&run.stdout).unwrap().lines().collect();
        hosts.sort();
        assert_eq!(hosts, [format!("{name}-master"), format!("{name}-worker-0")]);
        let out = local_in(base_of(winner), &["down", name]);
        assert!(out.status.success(), "{}", err(&out));
        assert_nothing_left(name, base_of(winner));
    }
}

fn a_namespace_name_in_use_is_refused_and_left_alone() {
    let taken = "ltaken-worker-0";
    assert!(Command::new("ip").args(["netns", "add", taken]).status().unwrap().success());
    let base = tempfile::tempdir().unwrap();
    let out = local_in(base.path(), &["up", "ltaken", "--workers", "1"]);
    let kept = netns_names().iter().any(|n| n == taken);
    let _ = Command::new("ip").args(["netns", "delete", taken]).status();
    assert_eq!(out.status.code(), Some(1), "{}", err(&out));
    assert!(err(&out).contains("network namespace ltaken-worker-0 exists already"), "{}", err(&out));
    assert!(kept, "the failing up removed a namespace it had not made");
    assert_nothing_left("ltaken", base.path());
}

fn an_up_that_fails_late_removes_everything_it_made() {
    let base = tempfile::tempdir().unwrap();
    let out = local_in(base.path(), &["up", "llate", "--workers", "1", "--timeout", "0s", "--bridge", "kllate", "--subnet", "10.251.77.0/24"]);
    assert_eq!(out.status.code(), Some(1), "{}", err(&out));
    assert!(err(&out).contains("removing what was created"), "{}", err(&out));
    assert_nothing_left("llate", base.path());
    let left: Vec<String> = links().into_iter().filter(|l| l.starts_with("kllate")).collect();
    assert!(left.is_empty(), "interfaces left behind: {left:?}");
}

fn main() {
    harness::main(harness::tests![harness::root => [hello_prints_every_node_once, allreduce_sum_is_right_and_abort_status_propagates, ranks_on_different_nodes_are_not_pinned_to_the_same_cores, exec_returns_the_command_status, a_killed_sshd_is_restarted_by_the_supervisor, killing_a_worker_node_mid_run_fails_the_run_and_names_the_node, down_leaves_no_namespace_veth_bridge_or_process_behind, without_root_it_says_so, names_that_are_paths_are_refused_and_nothing_is_touched, down_removes_only_a_directory_kompi_made, a_state_directory_others_can_write_is_refused, a_tampered_state_never_reaches_the_hosts_processes_or_interfaces, down_after_a_crash_half_way_through_up_removes_what_it_made, two_ups_of_one_name_at_once_leave_one_working_cluster, a_namespace_name_in_use_is_refused_and_left_alone, an_up_that_fails_late_removes_everything_it_made]]);
}
