//! Two `kompi init` nodes of one cluster on loopback (their own homes and ports, one cluster key): each
//! logs in to the other with the key it was given, and mpirun on the master starts processes through the
//! worker's sshd, as root and as an unprivileged user.

mod harness;
mod node_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use node_support::*;

struct Cluster {
    sandbox: Sandbox,
    master: Init,
    master_port: u16,
    worker: Init,
    worker_port: u16,
}

fn start_cluster(who: Who) -> Cluster {
    let account = account(who);
    let sandbox = Sandbox::new(&account);
    let keys = sandbox.key_dir(&cluster_key());
    let hostfile = sandbox.path().join("hostfile");
    let (master_port, worker_port) = (free_port(), free_port());
    let mut master = Init::start(&account, &sandbox.home("master"), &init_args("master", master_port, &keys, &hostfile));
    let mut worker = Init::start(&account, &sandbox.home("worker"), &init_args("worker", worker_port, &keys, &hostfile));
    master.wait_ready();
    worker.wait_ready();
    Cluster { sandbox, master, master_port, worker, worker_port }
}

fn nodes_of_one_cluster_log_in_to_each_other(who: Who) {
    let c = start_cluster(who);
    // Each side uses the client config its own init wrote, aimed at the other's loopback port.
    let out = c.master.ssh("c-worker-0.c", c.worker_port, "echo on the worker", &[]);
    assert!(out.status.success(), "master -> worker: {}\n{}", text(&out.stderr), c.worker.log());
    assert_eq!(text(&out.stdout).trim(), "on the worker");
    assert!(c.worker.log().contains(&format!("Accepted publickey for {}", c.sandbox.account.name)), "{}", c.worker.log());

    let out = c.worker.ssh("c-master", c.master_port, "echo on the master", &[]);
    assert!(out.status.success(), "worker -> master: {}\n{}", text(&out.stderr), c.master.log());
    assert_eq!(text(&out.stdout).trim(), "on the master");
}

fn nodes_of_one_cluster_log_in_to_each_other_as_root() {
    nodes_of_one_cluster_log_in_to_each_other(Who::Root);
}

fn nodes_of_one_cluster_log_in_to_each_other_as_an_unprivileged_user() {
    nodes_of_one_cluster_log_in_to_each_other(Who::Unprivileged);
}

/// mpirun in the master's home (so it reads the defaults init wrote) launching on both nodes through ssh.
/// On loopback the two sshds differ by port, so the hosts are numeric loopback addresses (no DNS) that an
/// ssh config maps to each port; Open MPI's traffic is kept on `lo`.
fn mpirun_starts_processes_through_each_nodes_sshd(who: Who) {
    let c = start_cluster(who);
    let identity = c.master.home.join(".kompi/id_cluster");
    let config = c.sandbox.write(
        "ssh_config",
        &format!(
            "Host 127.0.0.2\n  Port {}\nHost 127.0.0.3\n  Port {}\nHost *\n  IdentityFile {}\n  IdentitiesOnly yes\n  BatchMode yes\n  \
             StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n",
            c.master_port,
            c.worker_port,
            identity.display()
        ),
    );
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).unwrap();
    let mut mpirun = c.sandbox.account.command("mpirun");
    if c.sandbox.account.is_root() {
        mpirun.arg("--allow-run-as-root");
    }
    let out = mpirun
        .args(["-np", "2", "--host", "127.0.0.2:1,127.0.0.3:1", "sh", "-c", "echo via $SSH_CONNECTION"])
        .env("HOME", &c.master.home)
        .env("OMPI_MCA_plm_rsh_agent", format!("ssh -F {}", config.display()))
        .env("OMPI_MCA_oob_tcp_if_include", "lo")
        .env("OMPI_MCA_btl_tcp_if_include", "lo")
        .current_dir(&c.master.home)
        .stdin(Stdio::null())
        .output()
        .expect("mpirun (openmpi-bin) is installed");
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "mpirun failed:\n{said}\nmaster:\n{}\nworker:\n{}", c.master.log(), c.worker.log());
    let mut ports: Vec<String> = text(&out.stdout).lines().filter_map(|l| l.split_whitespace().last().map(str::to_string)).collect();
    ports.sort();
    let mut expected = vec![c.master_port.to_string(), c.worker_port.to_string()];
    expected.sort();
    assert_eq!(ports, expected, "one process through each node's sshd:\n{said}");
}

fn mpirun_starts_processes_through_each_nodes_sshd_as_root() {
    mpirun_starts_processes_through_each_nodes_sshd(Who::Root);
}

fn mpirun_starts_processes_through_each_nodes_sshd_as_an_unprivileged_user() {
    mpirun_starts_processes_through_each_nodes_sshd(Who::Unprivileged);
}

fn main() {
    harness::main(harness::tests![
        as_root => [nodes_of_one_cluster_log_in_to_each_other_as_root, mpirun_starts_processes_through_each_nodes_sshd_as_root],
        as_test_user => [nodes_of_one_cluster_log_in_to_each_other_as_an_unprivileged_user, mpirun_starts_processes_through_each_nodes_sshd_as_an_unprivileged_user],
    ]);
}
