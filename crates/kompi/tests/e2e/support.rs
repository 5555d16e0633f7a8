//! Shared pieces of the e2e tests: the testbed's kubeconfig, a namespace per test, kubectl and kompi.
//! Both e2e test targets include this file and each uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where the testbed writes its admin kubeconfig (KOMPI_TESTBED_DIR as in testbed/testbed.sh).
pub fn kubeconfig() -> PathBuf {
    let dir = std::env::var_os("KOMPI_TESTBED_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp/kompi-testbed"));
    dir.join("kubeconfig")
}

/// The e2e tests' need: root (the testbed runs containers). Without it they are reported as ignored.
pub fn root() -> Result<(), String> {
    if nix::unistd::geteuid().is_root() { Ok(()) } else { Err("the e2e tests need root (the testbed runs containers)".into()) }
}

/// Fails, never skips, when the testbed is not up: with the e2e feature on, the suite must prove something.
pub fn require_testbed() {
    let out = Command::new("kubectl").env("KUBECONFIG", kubeconfig()).args(["get", "--raw", "/readyz"]).output().expect("kubectl is installed");
    assert!(
        out.status.success(),
        "the testbed is not up ({}): run testbed/testbed.sh up and testbed/testbed.sh kompi-image --add examples/bin:/opt/kompi/examples",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

pub fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn err(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn kompi_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kompi")
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kompi-render/tests/fixtures").join(name)
}

/// A namespace of one test, deleted when the test ends.
pub struct Namespace {
    pub name: String,
    pub dir: tempfile::TempDir,
}

impl Namespace {
    pub fn new(prefix: &str) -> Namespace {
        let name = format!("e2e-{prefix}-{}", std::process::id() % 100_000);
        let ns = Namespace { name, dir: tempfile::tempdir().unwrap() };
        let _ = ns.kubectl(&["delete", "namespace", &ns.name, "--ignore-not-found", "--wait=true", "--timeout=120s"]);
        let out = ns.kubectl(&["create", "namespace", &ns.name]);
        assert!(out.status.success(), "{}", err(&out));
        // 1.20 creates the default ServiceAccount's token asynchronously; pods need it to exist.
        ns.eventually("the default ServiceAccount", Duration::from_secs(30), || {
            ns.kubectl(&["-n", &ns.name, "get", "serviceaccount", "default"]).status.success()
        });
        ns
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl").env("KUBECONFIG", kubeconfig()).args(args).output().unwrap()
    }

    /// kubectl in this namespace.
    pub fn k(&self, args: &[&str]) -> Output {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        self.kubectl(&all)
    }

    /// `kubectl -n NS apply -f -` (or another verb) fed with text.
    pub fn k_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .env("KUBECONFIG", kubeconfig())
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// The kompi binary with the testbed's kubeconfig, run in the test's directory.
    pub fn kompi(&self, args: &[&str]) -> Output {
        self.kompi_command(args).output().unwrap()
    }

    pub fn kompi_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(kompi_bin());
        cmd.env("KUBECONFIG", kubeconfig()).current_dir(self.dir.path()).args(args);
        cmd
    }

    /// `kompi <verb> <cluster> -n NS <rest>`.
    pub fn kompi_ns(&self, verb: &str, cluster: &str, rest: &[&str]) -> Output {
        let mut args = vec![verb, cluster, "-n", self.name.as_str()];
        args.extend_from_slice(rest);
        self.kompi(&args)
    }

    pub fn eventually(&self, what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> Duration {
        let start = Instant::now();
        while !ok() {
            assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what} (namespace {})", self.name);
            std::thread::sleep(Duration::from_millis(100));
        }
        start.elapsed()
    }

    /// The hostfile in the master, as a user would read it.
    pub fn hostfile(&self, cluster: &str) -> Vec<String> {
        let out = self.k(&["exec", &format!("{cluster}-master"), "-c", "mpi-master", "--", "cat", "/kube-openmpi/generated/hostfile"]);
        text(&out).lines().map(str::to_string).collect()
    }

    pub fn wait_ready(&self, cluster: &str, workers: u32) {
        self.eventually(&format!("{workers} ready workers of {cluster}"), Duration::from_secs(180), || {
            let out = self.k(&["get", "statefulset", &format!("{cluster}-worker"), "-o", "jsonpath={.status.readyReplicas}"]);
            text(&out).trim().parse::<u32>().unwrap_or(0) == workers || (workers == 0 && text(&out).trim().is_empty() && out.status.success())
        });
        let out = self.k(&["wait", "--for=condition=Ready", &format!("pod/{cluster}-master"), "--timeout=180s"]);
        assert!(out.status.success(), "master of {cluster} not ready: {}", err(&out));
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
    }
}

/// Host names from `mpiexec ... sh -c 'echo $(hostname):hello'` output, sorted.
pub fn hello_hosts(output: &str) -> Vec<String> {
    let mut hosts: Vec<String> = output.lines().filter_map(|l| l.strip_suffix(":hello")).map(str::to_string).collect();
    hosts.sort();
    hosts
}
