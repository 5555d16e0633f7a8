//! One-shot mode of `kompi init` with the real sshd: the command runs only once the listed workers answer,
//! its exit status becomes init's and is handed to Kubernetes and the sidecar, signals reach it, and a
//! worker that never shows up is named when init gives up.

mod harness;
mod node_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use node_support::*;

struct Job {
    sandbox: Sandbox,
    init: Init,
    handshake: PathBuf,
    termination_log: PathBuf,
}

/// A master in one-shot mode whose hostfile holds `hostfile` when it starts.
fn start_job(workers: u32, timeout_s: u32, hostfile: &str, command: &str) -> Job {
    let account = account(Who::Root);
    let sandbox = Sandbox::new(&account);
    let keys = sandbox.key_dir(&cluster_key());
    let hostfile_path = sandbox.write("hostfile", hostfile);
    let handshake = sandbox.home("handshake");
    // Kubernetes provides the file; init only writes into an existing one.
    let termination_log = sandbox.write("termination-log", "");
    let mut args = init_args("master", free_port(), &keys, &hostfile_path);
    args.extend([
        format!("--one-shot-workers={workers}"),
        format!("--wait-timeout={timeout_s}"),
        format!("--handshake-dir={}", handshake.display()),
        format!("--termination-log={}", termination_log.display()),
        "--".into(),
        command.into(),
    ]);
    let init = Init::start(&account, &sandbox.home("master"), &args);
    Job { handshake: handshake.join("exit-status"), termination_log, init, sandbox }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn the_commands_exit_status_reaches_kubernetes_and_the_sidecar() {
    let mut job = start_job(0, 10, "c-master slots=1\n", "echo the job ran; exit 3");
    let status = job.init.wait_exit();
    assert_eq!(status.code(), Some(3), "{}", job.init.log());
    assert_eq!(read(&job.init.stdout), "the job ran\n");
    assert_eq!(read(&job.handshake), "3\n");
    assert_eq!(read(&job.termination_log), "3\n");
    // With no workers to wait for, the command may well end before sshd listens; it is stopped all the same.
    assert!(job.init.log().contains("sshd stopped"), "{}", job.init.log());
    assert!(job.init.sshd_pid().is_none_or(|pid| !alive(pid)), "sshd outlived init");
}

fn a_command_killed_by_a_signal_reports_128_plus_the_signal() {
    let mut job = start_job(0, 10, "c-master slots=1\n", "kill -KILL $$");
    assert_eq!(job.init.wait_exit().code(), Some(137), "{}", job.init.log());
    assert_eq!(read(&job.handshake), "137\n");
}

fn the_command_waits_until_the_listed_workers_answer() {
    // The master's own sshd stands in for the worker: 127.0.0.1 answers on the cluster's ssh port.
    let mut job = start_job(1, 60, "c-master slots=1\n", "touch ran");
    job.init.wait_for_log("waiting for the workers");
    job.init.wait_ready();
    let ran = job.init.home.join("ran");
    std::thread::sleep(Duration::from_secs(1));
    assert!(!ran.exists() && job.init.try_status().is_none(), "the command ran before the hostfile listed a worker");

    let listed = job.sandbox.write("hostfile.new", "c-master slots=1\n127.0.0.1 slots=1\n");
    fs::rename(listed, job.sandbox.path().join("hostfile")).unwrap();
    assert_eq!(job.init.wait_exit().code(), Some(0), "{}", job.init.log());
    assert!(ran.exists(), "{}", job.init.log());
    assert!(job.init.log().contains("every worker answers"), "{}", job.init.log());
}

fn giving_up_names_the_workers_that_never_came() {
    let mut job = start_job(2, 1, "c-master slots=1\n", "touch never");
    let status = job.init.wait_exit();
    assert_eq!(status.code(), Some(124), "{}", job.init.log());
    let log = job.init.log();
    let line = log.lines().find(|l| l.contains("the workers were not ready")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("c-worker-0.c") && line.contains("c-worker-1.c"), "{line}");
    assert_eq!(read(&job.handshake), "124\n");
    assert!(read(&job.termination_log).contains("c-worker-1.c"));
    assert!(!job.init.home.join("never").exists(), "the command must not run");
}

fn sigterm_during_the_job_reaches_the_command_and_its_children() {
    let mut job = start_job(
        0,
        10,
        "c-master slots=1\n",
        "trap 'exit 7' TERM; sleep 600 & echo $! > sleep.pid; mv sleep.pid sleeping.pid; wait",
    );
    let pid_file = job.init.home.join("sleeping.pid");
    let deadline = std::time::Instant::now() + PATIENCE;
    let sleeper = loop {
        if let Ok(pid) = fs::read_to_string(&pid_file) {
            break Pid::from_raw(pid.trim().parse().unwrap());
        }
        assert!(std::time::Instant::now() < deadline, "the command did not start:\n{}", job.init.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    job.init.signal(Signal::SIGTERM);
    assert_eq!(job.init.wait_exit().code(), Some(7), "{}", job.init.log());
    assert_eq!(read(&job.handshake), "7\n");
    assert!(!alive(sleeper), "the command's child (pid {sleeper}) outlived the job");
}

fn a_setup_failure_in_one_shot_mode_still_releases_the_sidecar() {
    let account = account(Who::Root);
    let sandbox = Sandbox::new(&account);
    let keys = sandbox.key_dir(&cluster_key());
    fs::remove_file(keys.join("authorized_keys")).unwrap();
    let handshake = sandbox.home("handshake");
    let mut args = init_args("master", free_port(), &keys, &sandbox.path().join("hostfile"));
    args.extend([
        "--one-shot-workers=1".to_string(),
        format!("--handshake-dir={}", handshake.display()),
        format!("--termination-log={}", sandbox.write("termination-log", "").display()),
        "--".into(),
        "true".into(),
    ]);
    let mut init = Init::start(&account, &sandbox.home("master"), &args);
    assert_eq!(init.wait_exit().code(), Some(1), "{}", init.log());
    assert_eq!(read(&handshake.join("exit-status")), "1\n", "the sidecar must learn the job is over, or the pod never finishes");
    assert!(read(&sandbox.path().join("termination-log")).contains("authorized_keys"));
}

/// An MPIJob launcher (`--role=launcher --no-sshd`) whose command is `command` (run without a shell).
fn start_launcher(sandbox: &Sandbox, account: &Account, keys: &Path, port: u16, hostfile: &str, hosts: u32, command: &[&str]) -> (Init, PathBuf) {
    let name = format!("launcher-{port}");
    let hostfile_path = sandbox.write(&format!("{name}-hostfile"), hostfile);
    let termination_log = sandbox.write(&format!("{name}-termination-log"), "");
    let mut args = init_args("launcher", port, keys, &hostfile_path);
    args.extend([
        format!("--one-shot-workers={hosts}"),
        "--wait-timeout=60".into(),
        "--no-sshd".into(),
        format!("--termination-log={}", termination_log.display()),
        "--".into(),
    ]);
    args.extend(command.iter().map(|s| s.to_string()));
    (Init::start(account, &sandbox.home(&name), &args), termination_log)
}

fn a_launcher_runs_its_command_without_a_shell_once_the_workers_sshd_answers() {
    let account = account(Who::Root);
    let sandbox = Sandbox::new(&account);
    let port = free_port();
    let keys = sandbox.key_dir(&cluster_key());
    let (mut launcher, termination_log) =
        start_launcher(&sandbox, &account, &keys, port, "127.0.0.1 slots=1\n", 1, &["/bin/echo", "no $HOME expansion", "'quoted'"]);
    launcher.wait_for_log("waiting for the workers");
    std::thread::sleep(Duration::from_secs(1));
    assert!(launcher.try_status().is_none(), "the command ran before the worker answered:\n{}", launcher.log());
    assert!(!listening(port), "a launcher that is not a host runs no sshd");

    let mut worker = Init::start(&account, &sandbox.home("worker"), &init_args("worker", port, &keys, &sandbox.path().join("hostfile")));
    worker.wait_ready();
    assert_eq!(launcher.wait_exit().code(), Some(0), "{}", launcher.log());
    assert_eq!(read(&launcher.stdout), "no $HOME expansion 'quoted'\n", "the arguments reach the program as they are");
    assert_eq!(read(&termination_log), "0\n");
    assert!(!launcher.log().contains("sshd ready"), "{}", launcher.log());
    for private in [".kompi/id_cluster", ".ssh/config"] {
        assert!(launcher.home.join(private).exists(), "the launcher's ssh client needs {private}");
    }
}

fn a_launchers_exit_status_is_its_commands() {
    let account = account(Who::Root);
    let sandbox = Sandbox::new(&account);
    let keys = sandbox.key_dir(&cluster_key());
    let (mut launcher, termination_log) = start_launcher(&sandbox, &account, &keys, free_port(), "", 0, &["/bin/sh", "-c", "exit 5"]);
    assert_eq!(launcher.wait_exit().code(), Some(5), "{}", launcher.log());
    assert_eq!(read(&termination_log), "5\n");
    let (mut missing, _) = start_launcher(&sandbox, &account, &keys, free_port(), "", 0, &["/nonexistent/mpirun"]);
    assert_eq!(missing.wait_exit().code(), Some(127), "{}", missing.log());
    assert!(missing.log().contains("cannot start /nonexistent/mpirun"), "{}", missing.log());
}

fn main() {
    harness::main(harness::tests![as_root => [the_commands_exit_status_reaches_kubernetes_and_the_sidecar, a_command_killed_by_a_signal_reports_128_plus_the_signal, the_command_waits_until_the_listed_workers_answer, giving_up_names_the_workers_that_never_came, sigterm_during_the_job_reaches_the_command_and_its_children, a_setup_failure_in_one_shot_mode_still_releases_the_sidecar, a_launcher_runs_its_command_without_a_shell_once_the_workers_sshd_answers, a_launchers_exit_status_is_its_commands]]);
}
