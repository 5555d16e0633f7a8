//! Test "pods" on this machine: a home directory, the cluster key laid out as the Secret mounts it, a free
//! loopback port, and the real `kompi init` (with the real sshd) running as root or as an unprivileged user.
//! These tests of kompi-node's processes live here, not in kompi-node, because they run the real `kompi`
//! binary as a pod runs it, and Cargo builds that binary only for this crate's tests.
#![allow(dead_code)] // each test file uses its own part of this module

use std::fs::{self, Permissions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use kompi_spec::sshkey::{GeneratedKey, KeyType, generate};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User, chown};
use ssh_key::rand_core::OsRng;

pub const KOMPI: &str = env!("CARGO_BIN_EXE_kompi");
pub const CLUSTER: &str = "c";
/// The unprivileged user `scripts/test-user.sh` creates.
pub const TEST_USER: &str = "kompi-test";
/// Only guards against hangs; no test asserts on how long anything takes.
pub const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl Account {
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Runs `command` as this account (dropping root's groups), unless that is who we are.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        if nix::unistd::geteuid().as_raw() != self.uid {
            command.uid(self.uid).gid(self.gid);
        }
        command
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Who {
    Root,
    Unprivileged,
}

/// The account to run as; the harness has checked with [`can_run_as`] that it is usable here.
pub fn account(who: Who) -> Account {
    can_run_as(who).unwrap_or_else(|reason| panic!("cannot run here: {reason}"));
    match who {
        Who::Root => Account { name: "root".into(), uid: 0, gid: 0 },
        Who::Unprivileged => {
            let user = User::from_name(TEST_USER).ok().flatten().expect("checked by can_run_as");
            Account { name: user.name, uid: user.uid.as_raw(), gid: user.gid.as_raw() }
        }
    }
}

/// Whether `kompi init` and sshd can run as `who` here; `Err` says what is missing.
pub fn can_run_as(who: Who) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err(format!("needs root (to run sshd as root, or to switch to {TEST_USER})"));
    }
    if let Some(reason) = unusable_for_sshd(Path::new(env!("CARGO_TARGET_TMPDIR"))) {
        return Err(reason);
    }
    if let Who::Unprivileged = who {
        if !matches!(User::from_name(TEST_USER), Ok(Some(_))) {
            return Err(format!("user {TEST_USER} does not exist; create it with scripts/test-user.sh"));
        }
        if let Some(reason) = [KOMPI, env!("CARGO_TARGET_TMPDIR")].iter().find_map(|p| private_parent(Path::new(p))) {
            return Err(format!("{reason}, so {TEST_USER} cannot reach the kompi binary or its home (scripts/test.sh builds under /var/cache/kompi)"));
        }
    }
    Ok(())
}

/// Harness needs: the tests that run as root, and those that run as the unprivileged test user.
pub fn as_root() -> Result<(), String> {
    can_run_as(Who::Root)
}

pub fn as_test_user() -> Result<(), String> {
    can_run_as(Who::Unprivileged)
}

/// A directory above `path` that others may not enter (such as /root, mode 0700).
fn private_parent(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    path.ancestors().skip(1).find_map(|d| {
        let mode = fs::metadata(d).ok()?.mode();
        (mode & 0o001 == 0).then(|| format!("{} has mode {:o}", d.display(), mode & 0o777))
    })
}

/// sshd's StrictModes refuses keys below directories writable by group or others.
fn unusable_for_sshd(dir: &Path) -> Option<String> {
    let dir = dir.canonicalize().ok()?;
    dir.ancestors().find_map(|d| {
        let meta = fs::metadata(d).ok()?;
        (meta.uid() != 0 || meta.mode() & 0o022 != 0)
            .then(|| format!("{} (above CARGO_TARGET_TMPDIR) is not root's or is group/world-writable, which sshd refuses", d.display()))
    })
}

/// One test's directory under the target dir (never /tmp: StrictModes), readable by the test user.
pub struct Sandbox {
    dir: tempfile::TempDir,
    pub account: Account,
}

impl Sandbox {
    pub fn new(account: &Account) -> Sandbox {
        let dir = tempfile::Builder::new().prefix("node-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).unwrap();
        Sandbox { dir, account: account.clone() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A directory owned by the account.
    pub fn home(&self, name: &str) -> PathBuf {
        let home = self.path().join(name);
        fs::create_dir(&home).unwrap();
        fs::set_permissions(&home, Permissions::from_mode(0o755)).unwrap();
        self.give(&home);
        home
    }

    pub fn give(&self, path: &Path) {
        chown(path, Some(self.account.uid.into()), Some(self.account.gid.into())).unwrap();
    }

    /// The key as the Secret volume holds it: root's files, mode 0400, or 0440 with the account's group
    /// (what the pod's fsGroup does) when the account is not root.
    pub fn key_dir(&self, key: &GeneratedKey) -> PathBuf {
        let dir = self.path().join("ssh-key");
        fs::create_dir(&dir).unwrap();
        for (name, text) in [("id_rsa", &key.private_openssh), ("id_rsa.pub", &key.public_openssh), ("authorized_keys", &key.public_openssh)] {
            let path = dir.join(name);
            fs::write(&path, text).unwrap();
            let mode = if self.account.is_root() { 0o400 } else { 0o440 };
            chown(&path, Some(0.into()), Some(self.account.gid.into())).unwrap();
            fs::set_permissions(&path, Permissions::from_mode(mode)).unwrap();
        }
        dir
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        fs::write(&path, text).unwrap();
        self.give(&path);
        path
    }
}

pub fn cluster_key() -> GeneratedKey {
    generate(KeyType::Ed25519, "kompi-test", &mut OsRng).unwrap()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("0.0.0.0", 0)).unwrap().local_addr().unwrap().port()
}

pub fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

pub fn hostname() -> String {
    nix::unistd::gethostname().unwrap().to_string_lossy().into_owned()
}

/// `kompi init`'s arguments as `kompi template` renders them.
pub fn init_args(role: &str, port: u16, key_dir: &Path, hostfile: &Path) -> Vec<String> {
    vec![
        "init".into(),
        format!("--role={role}"),
        format!("--cluster={CLUSTER}"),
        format!("--ssh-port={port}"),
        "--mpi=openmpi".into(),
        format!("--key-dir={}", key_dir.display()),
        format!("--hostfile={}", hostfile.display()),
    ]
}

/// A running (or finished) `kompi init`; stopped on drop so a failing test leaves no sshd behind.
pub struct Init {
    child: Child,
    status: Option<ExitStatus>,
    log: PathBuf,
    pub stdout: PathBuf,
    pub home: PathBuf,
    pub account: Account,
}

impl Init {
    pub fn start(account: &Account, home: &Path, args: &[String]) -> Init {
        let name = home.file_name().unwrap().to_string_lossy().into_owned();
        let log = home.with_file_name(format!("{name}.log"));
        let stdout = home.with_file_name(format!("{name}.stdout"));
        let child = account
            .command(KOMPI)
            .args(args)
            .env("HOME", home)
            .env("KOMPI_LOG", "info")
            // The one-shot command runs where init runs: keep its files in the sandbox.
            .current_dir(home)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Init { child, status: None, log, stdout, home: home.to_path_buf(), account: account.clone() }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Its stderr, without colours.
    pub fn log(&self) -> String {
        strip_ansi(&fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// The lines saying what went wrong.
    pub fn error_lines(&self) -> Vec<String> {
        self.log().lines().filter(|l| l.starts_with("error:")).map(str::to_string).collect()
    }

    pub fn wait_for_log(&mut self, needle: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.log().contains(needle) {
            if let Some(status) = self.try_status() {
                panic!("kompi init ended ({status}) before logging {needle:?}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "kompi init did not log {needle:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_ready(&mut self) {
        self.wait_for_log("sshd ready on port");
    }

    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.try_status() {
                return status;
            }
            assert!(Instant::now() < deadline, "kompi init did not exit:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap();
    }

    pub fn pid_file(&self) -> PathBuf {
        self.home.join(".kompi").join(hostname()).join("sshd.pid")
    }

    pub fn sshd_pid(&self) -> Option<Pid> {
        fs::read_to_string(self.pid_file()).ok()?.trim().parse().ok().map(Pid::from_raw)
    }

    /// ssh as this node's user with its generated client config, to `alias` at 127.0.0.1:`port`.
    pub fn ssh(&self, alias: &str, port: u16, remote: &str, extra: &[&str]) -> Output {
        self.account
            .command("ssh")
            .arg("-F")
            .arg(self.home.join(".ssh/config"))
            .args(["-o", "HostName=127.0.0.1", "-p", &port.to_string()])
            .args(extra)
            .args([alias, remote])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// ssh as this node's user with nothing but `key` (no kompi config), verbosely.
    pub fn ssh_with_key_only(&self, key: &Path, port: u16, remote: &str) -> Output {
        self.account
            .command("ssh")
            .args(["-F", "/dev/null", "-v", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null", "-p", &port.to_string(), "-i"])
            .arg(key)
            .args(["127.0.0.1", remote])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Init {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = kill(self.pid(), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.try_status().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if self.try_status().is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        // An init that failed its test may have left its sshd behind; only ours carries our config path.
        if let Some(pid) = self.sshd_pid() {
            let config = self.pid_file().with_file_name("sshd_config");
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&*config.to_string_lossy()) {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
    }
}

pub fn alive(pid: Pid) -> bool {
    kill(pid, None).is_ok()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
