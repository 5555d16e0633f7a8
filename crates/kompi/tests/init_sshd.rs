//! `kompi init` with the real sshd on a loopback port, as root and as an unprivileged user: the cluster
//! key logs in and nothing else does, a killed sshd is restarted, SIGTERM stops everything, and bad input
//! stops init before any sshd starts, in one line that names what to fix.

mod harness;
mod node_support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::sys::signal::{Signal, kill};
use node_support::*;

fn start_worker(sandbox: &Sandbox) -> (Init, u16) {
    let keys = sandbox.key_dir(&cluster_key());
    let home = sandbox.home("worker");
    let port = free_port();
    let mut init = Init::start(&sandbox.account, &home, &init_args("worker", port, &keys, &sandbox.path().join("hostfile")));
    init.wait_ready();
    (init, port)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o777
}

fn cluster_key_logs_in_and_nothing_else_does(who: Who) {
    let account = account(who);
    let sandbox = Sandbox::new(&account);
    let (init, port) = start_worker(&sandbox);

    let out = init.ssh("c-worker-0", port, "id -u", &[]);
    assert!(out.status.success(), "ssh with the cluster key failed: {}\n{}", text(&out.stderr), init.log());
    assert_eq!(text(&out.stdout).trim(), account.uid.to_string());

    let private = init.home.join(".kompi");
    assert_eq!(mode(&private), 0o700);
    assert_eq!(fs::metadata(&private).unwrap().uid(), account.uid);
    assert_eq!(mode(&private.join("id_cluster")), 0o600);
    assert_eq!(mode(&private.join(hostname()).join("ssh_host_ed25519_key")), 0o600);

    let foreign = init.home.join("foreign_key");
    fs::write(&foreign, cluster_key().private_openssh).unwrap();
    fs::set_permissions(&foreign, fs::Permissions::from_mode(0o600)).unwrap();
    sandbox.give(&foreign);
    let accepted = init.ssh_with_key_only(&init.home.join(".kompi/id_cluster"), port, "true");
    assert!(accepted.status.success(), "the same command with the cluster key must work: {}", text(&accepted.stderr));
    let refused = init.ssh_with_key_only(&foreign, port, "true");
    let said = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(255), "a foreign key must be refused:\n{said}");
    assert!(said.contains("Permission denied (publickey)"), "{said}");
    // What the server offers: public keys only, no password or keyboard-interactive.
    let offered: Vec<&str> = said.lines().filter_map(|l| l.split("Authentications that can continue: ").nth(1)).collect();
    assert!(!offered.is_empty() && offered.iter().all(|m| *m == "publickey"), "{said}");
}

fn cluster_key_logs_in_and_nothing_else_does_as_root() {
    cluster_key_logs_in_and_nothing_else_does(Who::Root);
}

fn cluster_key_logs_in_and_nothing_else_does_as_an_unprivileged_user() {
    cluster_key_logs_in_and_nothing_else_does(Who::Unprivileged);
}

/// The cluster key logs in, but opens no tunnel: `ssh -W` (what `-L` and ProxyJump use) is refused by
/// sshd, and the target behind it never sees a connection.
fn no_forwarding_through_sshd(who: Who) {
    let account = account(who);
    let sandbox = Sandbox::new(&account);
    let (init, port) = start_worker(&sandbox);
    // A target that hangs up on whoever connects, so that a tunnel (if sshd opened one) ends at once.
    let target = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let to = format!("127.0.0.1:{}", target.local_addr().unwrap().port());
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = reached.clone();
    std::thread::spawn(move || {
        if let Ok(connection) = target.accept() {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            drop(connection);
        }
    });
    let out = init.ssh("c-worker-0", port, "true", &["-o", "LogLevel=INFO", "-W", &to]);
    let said = text(&out.stderr);
    assert!(!reached.load(std::sync::atomic::Ordering::SeqCst), "sshd opened a tunnel to {to}");
    assert!(!out.status.success(), "ssh -W {to} through sshd worked:\n{said}");
    assert!(said.contains("administratively prohibited"), "{said}");
    let shell = init.ssh("c-worker-0", port, "echo still a shell", &[]);
    assert_eq!(text(&shell.stdout).trim(), "still a shell", "{}", text(&shell.stderr));
}

fn no_forwarding_through_sshd_as_root() {
    no_forwarding_through_sshd(Who::Root);
}

fn no_forwarding_through_sshd_as_an_unprivileged_user() {
    no_forwarding_through_sshd(Who::Unprivileged);
}

/// sshd as root trusts the cluster's authorized_keys for whoever asks; only the MPI user may log in.
fn only_the_mpi_user_may_log_in() {
    let root = account(Who::Root);
    let other = account(Who::Unprivileged);
    let sandbox = Sandbox::new(&root);
    let (init, port) = start_worker(&sandbox);
    let out = init.ssh("c-worker-0", port, "id -un", &["-l", &other.name]);
    assert!(!out.status.success(), "{} logged in with the cluster key: {}", other.name, text(&out.stdout));
    let log = init.log();
    assert!(log.contains(&format!("User {} from 127.0.0.1 not allowed because not listed in AllowUsers", other.name)), "{log}");
    assert!(!log.contains(&format!("Accepted publickey for {}", other.name)), "{log}");
    let out = init.ssh("c-worker-0", port, "id -un", &[]);
    assert_eq!(text(&out.stdout).trim(), "root", "{}", text(&out.stderr));
}

fn a_killed_sshd_is_restarted(who: Who) {
    let account = account(who);
    let sandbox = Sandbox::new(&account);
    let (mut init, port) = start_worker(&sandbox);
    let first = init.sshd_pid().expect("sshd writes its pid file");

    kill(first, Signal::SIGKILL).unwrap();
    init.wait_for_log("sshd ready again on port");
    let out = init.ssh("c-worker-0", port, "echo back", &[]);
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), init.log());
    assert_eq!(text(&out.stdout).trim(), "back");
    assert_ne!(init.sshd_pid(), Some(first));
    assert!(init.log().contains("killed by SIGKILL"), "the restart names how sshd ended:\n{}", init.log());
}

fn a_killed_sshd_is_restarted_as_root() {
    a_killed_sshd_is_restarted(Who::Root);
}

fn a_killed_sshd_is_restarted_as_an_unprivileged_user() {
    a_killed_sshd_is_restarted(Who::Unprivileged);
}

fn sigterm_stops_init_and_its_sshd() {
    let account = account(Who::Root);
    let sandbox = Sandbox::new(&account);
    let (mut init, port) = start_worker(&sandbox);
    let sshd = init.sshd_pid().unwrap();
    assert!(alive(sshd));

    init.signal(Signal::SIGTERM);
    let status = init.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", init.log());
    assert!(!alive(sshd), "sshd (pid {sshd}) outlived kompi init");
    assert!(!listening(port));
    assert!(init.log().contains("sshd stopped"), "{}", init.log());
}

/// Starts init on a prepared sandbox and expects it to fail in one line containing every `needles`, with no sshd.
fn expect_setup_failure(sandbox: &Sandbox, home: &Path, args: &[String], needles: &[&str]) -> String {
    let mut init = Init::start(&sandbox.account, home, args);
    let status = init.wait_exit();
    let errors = init.error_lines();
    assert_eq!(status.code(), Some(1), "{}", init.log());
    assert_eq!(errors.len(), 1, "exactly one error line:\n{}", init.log());
    for needle in needles {
        assert!(errors[0].contains(needle), "{needle:?} not in {:?}", errors[0]);
    }
    assert!(!init.log().contains("Server listening"), "no sshd may start:\n{}", init.log());
    assert!(init.sshd_pid().is_none(), "no sshd may start");
    errors[0].clone()
}

fn bad_keys_stop_init_in_one_line_naming_the_file() {
    let account = account(Who::Root);

    let sandbox = Sandbox::new(&account);
    let keys = sandbox.key_dir(&cluster_key());
    fs::remove_file(keys.join("id_rsa.pub")).unwrap();
    let args = init_args("worker", free_port(), &keys, &sandbox.path().join("hostfile"));
    expect_setup_failure(&sandbox, &sandbox.home("h"), &args, &[&keys.join("id_rsa.pub").display().to_string(), "no such file", "Secret"]);

    let sandbox = Sandbox::new(&account);
    let keys = sandbox.key_dir(&cluster_key());
    fs::set_permissions(keys.join("id_rsa"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(keys.join("id_rsa"), "this is not a key\n").unwrap();
    let args = init_args("worker", free_port(), &keys, &sandbox.path().join("hostfile"));
    expect_setup_failure(&sandbox, &sandbox.home("h"), &args, &[&keys.display().to_string(), "not a private key", "kompi keygen"]);
}

fn a_key_the_user_cannot_read_asks_for_fs_group() {
    let account = account(Who::Unprivileged);
    let sandbox = Sandbox::new(&account);
    let keys = sandbox.key_dir(&cluster_key());
    // As Kubernetes mounts the Secret without an fsGroup: root's, mode 0400.
    for name in ["id_rsa", "id_rsa.pub", "authorized_keys"] {
        nix::unistd::chown(&keys.join(name), Some(0.into()), Some(0.into())).unwrap();
        fs::set_permissions(keys.join(name), fs::Permissions::from_mode(0o400)).unwrap();
    }
    let args = init_args("worker", free_port(), &keys, &sandbox.path().join("hostfile"));
    expect_setup_failure(&sandbox, &sandbox.home("h"), &args, &["id_rsa", "permission denied", "fsGroup"]);
}

fn a_port_in_use_is_named() {
    let account = account(Who::Root);
    let sandbox = Sandbox::new(&account);
    let keys = sandbox.key_dir(&cluster_key());
    let taken = std::net::TcpListener::bind(("0.0.0.0", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let args = init_args("worker", port, &keys, &sandbox.path().join("hostfile"));
    expect_setup_failure(&sandbox, &sandbox.home("h"), &args, &[&format!("port {port} is already in use")]);
}

fn a_missing_sshd_says_to_install_openssh_server() {
    let account = account(Who::Root);
    let sandbox = Sandbox::new(&account);
    let keys = sandbox.key_dir(&cluster_key());
    let mut args = init_args("worker", free_port(), &keys, &sandbox.path().join("hostfile"));
    args.push("--sshd=/nonexistent/sbin/sshd".into());
    expect_setup_failure(&sandbox, &sandbox.home("h"), &args, &["sshd not found at /nonexistent/sbin/sshd", "install openssh-server"]);
}

fn a_home_sshd_would_refuse_is_named_up_front() {
    let account = account(Who::Root);
    let sandbox = Sandbox::new(&account);
    let keys = sandbox.key_dir(&cluster_key());
    let shared = sandbox.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let home = shared.join("home");
    fs::create_dir(&home).unwrap();
    let args = init_args("worker", free_port(), &keys, &sandbox.path().join("hostfile"));
    expect_setup_failure(&sandbox, &home, &args, &[&shared.display().to_string(), "writable by group or others", "chmod go-w"]);
}

fn a_users_own_ssh_config_is_left_alone() {
    let account = account(Who::Root);
    let sandbox = Sandbox::new(&account);
    let keys = sandbox.key_dir(&cluster_key());
    let home = sandbox.home("h");
    fs::create_dir(home.join(".ssh")).unwrap();
    fs::write(home.join(".ssh/config"), "Host github.com\n  User git\n").unwrap();
    let mut init = Init::start(&account, &home, &init_args("worker", free_port(), &keys, &sandbox.path().join("hostfile")));
    init.wait_ready();
    assert_eq!(fs::read_to_string(home.join(".ssh/config")).unwrap(), "Host github.com\n  User git\n");
    let log = init.log();
    assert!(log.contains("your own ssh config is left alone") && log.contains("Host c-master c-master.* c-worker-*"), "{log}");
    // Open MPI 4 reads the default hostfile from ~/.openmpi, 5 from ~/.prte.
    let defaults: String = [".openmpi/mca-params.conf", ".prte/mca-params.conf"]
        .iter()
        .filter_map(|f| fs::read_to_string(home.join(f)).ok())
        .collect();
    assert!(defaults.contains(&format!("_default_hostfile = {}", sandbox.path().join("hostfile").display())), "{defaults}");
}

fn a_closed_stderr_does_not_bring_init_down() {
    let account = account(Who::Root);
    let sandbox = Sandbox::new(&account);
    let keys = sandbox.key_dir(&cluster_key());
    let home = sandbox.home("h");
    let port = free_port();
    let mut child = std::process::Command::new(KOMPI)
        .args(init_args("worker", port, &keys, &sandbox.path().join("hostfile")))
        .env("HOME", &home)
        .env("KOMPI_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    let pid_file = home.join(".kompi").join(hostname()).join("sshd.pid");
    // sshd listens before it writes its pid file: wait for both
    while !(listening(port) && pid_file.exists()) {
        assert!(std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none(), "init did not start sshd");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(child.stderr.take()); // whoever read the log is gone; every log line now fails to write
    let sshd: nix::unistd::Pid = nix::unistd::Pid::from_raw(fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap());
    kill(nix::unistd::Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "init did not exit");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "init must stop cleanly, not panic on a failed log write");
    assert!(!alive(sshd), "sshd outlived init");
}

/// State and parent of a process, from /proc; `None` once it is gone (reaped).
fn state_and_parent(pid: i32) -> Option<(char, i32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.next()?.parse().ok()?))
}

fn orphans_of_ssh_sessions_are_reaped_by_init() {
    let account = account(Who::Root);
    let sandbox = Sandbox::new(&account);
    let (init, port) = start_worker(&sandbox);
    let out = init.ssh("c-worker-0", port, "sleep 2 </dev/null >/dev/null 2>&1 & echo $!", &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let orphan: i32 = text(&out.stdout).trim().parse().unwrap();

    // Its shell is gone, so the kernel hands it to init (a child subreaper, PID 1 in a pod).
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut adopted = false;
    while let Some((state, parent)) = state_and_parent(orphan) {
        adopted |= parent == init.pid().as_raw();
        assert!(std::time::Instant::now() < deadline, "the orphan (pid {orphan}) was not reaped: state {state}, parent {parent}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(adopted, "the orphan was never reparented to init");
}

fn main() {
    harness::main(harness::tests![
        as_root => [cluster_key_logs_in_and_nothing_else_does_as_root, a_killed_sshd_is_restarted_as_root, sigterm_stops_init_and_its_sshd, bad_keys_stop_init_in_one_line_naming_the_file, a_port_in_use_is_named, a_missing_sshd_says_to_install_openssh_server, a_home_sshd_would_refuse_is_named_up_front, a_users_own_ssh_config_is_left_alone, a_closed_stderr_does_not_bring_init_down, orphans_of_ssh_sessions_are_reaped_by_init, no_forwarding_through_sshd_as_root],
        as_test_user => [cluster_key_logs_in_and_nothing_else_does_as_an_unprivileged_user, a_killed_sshd_is_restarted_as_an_unprivileged_user, a_key_the_user_cannot_read_asks_for_fs_group, no_forwarding_through_sshd_as_an_unprivileged_user, only_the_mpi_user_may_log_in],
    ]);
}
