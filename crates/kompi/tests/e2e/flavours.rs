//! Open MPI 5 (PRRTE) and MPICH (Hydra) for real: the runtime images built from Debian trixie
//! (`testbed/testbed.sh kompi-image --suite trixie [--mpi mpich]`, with the examples compiled against
//! each MPI by `testbed/testbed.sh examples`), across four pods, as root and as uid 1000, interactive
//! and one-shot, with trixie's OpenSSH 10 under `kompi init`.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::{Namespace, err, fixture, hello_hosts, require_testbed, text};

const EXAMPLES: &str = "/opt/kompi/examples";

/// One runtime image variant and what tells its MPI apart.
struct Flavour {
    /// Cluster and namespace names.
    label: &'static str,
    /// `image.tag`: the workspace version and the suffix `testbed.sh kompi-image` gives the variant.
    tag_suffix: &'static str,
    /// `mpi.implementation`.
    implementation: &'static str,
    /// `testbed.sh kompi-image` arguments that build the image (for the message when it is missing).
    build: &'static str,
    /// A command in the image and what its output must contain: the MPI release the image carries.
    version: (&'static [&'static str], &'static str),
    /// One-shot mode's command: allreduce on 4 pods, one rank each, in this MPI's own syntax.
    one_shot: &'static str,
}

const OPEN_MPI_5: Flavour = Flavour {
    label: "ompi5",
    tag_suffix: "-ompi5",
    implementation: "openmpi",
    build: "--suite trixie",
    version: (&["ompi_info", "--version"], "Open MPI v5."),
    one_shot: "mpiexec --allow-run-as-root -n 4 --npernode 1 /opt/kompi/examples/allreduce",
};

const MPICH: Flavour = Flavour {
    label: "mpich",
    tag_suffix: "-mpich",
    implementation: "mpich",
    build: "--suite trixie --mpi mpich",
    version: (&["mpichversion"], "MPICH Version:      4.2"),
    one_shot: "mpiexec -n 4 -ppn 1 /opt/kompi/examples/allreduce",
};

impl Flavour {
    fn tag(&self) -> String {
        format!("{}{}", env!("CARGO_PKG_VERSION"), self.tag_suffix)
    }

    /// `--set` arguments that point a cluster at this image and MPI, plus `extra`.
    fn set(&self, workers: u32, extra: &[&str]) -> Vec<String> {
        let mut set = vec![format!("image.tag={}", self.tag()), format!("mpi.implementation={}", self.implementation), format!("mpiWorkers.num={workers}")];
        set.extend(extra.iter().map(|s| s.to_string()));
        set.into_iter().flat_map(|s| ["--set".to_string(), s]).collect()
    }

    /// `kompi up` of `cluster` with this image and 3 workers (4 pods), waiting until it is ready.
    fn up(&self, ns: &Namespace, cluster: &str, values: &[&str], extra_set: &[&str]) {
        let mut args: Vec<String> = ["up", cluster, "-n", &ns.name, "--wait", "--timeout", "240s"].iter().map(|s| s.to_string()).collect();
        for v in values {
            args.extend(["-f".to_string(), v.to_string()]);
        }
        args.extend(self.set(3, extra_set));
        let out = ns.kompi(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            out.status.success(),
            "kompi up with kompi/runtime:{}: {}\n(the image comes from testbed/testbed.sh kompi-image {} --add \"$(testbed/testbed.sh examples {})\":{EXAMPLES})",
            self.tag(),
            err(&out),
            self.build,
            self.build
        );
    }
}

/// `kompi run CLUSTER -n NS --np 4 --npernode 1 -- COMMAND…`.
fn run_on_four_pods(ns: &Namespace, cluster: &str, command: &[&str]) -> std::process::Output {
    let mut args = vec!["--np", "4", "--npernode", "1", "--"];
    args.extend_from_slice(command);
    ns.kompi_ns("run", cluster, &args)
}

/// The pods where ranks 1 and up of the ring example ran (rank 0 starts the token and says nothing),
/// and whether the token came round.
fn ring_hosts(output: &str) -> (BTreeSet<String>, bool) {
    let hosts = output.lines().filter_map(|l| l.strip_prefix("ring: rank ")?.split(" on ").nth(1)?.strip_suffix(" passes the token on")).map(str::to_string).collect();
    (hosts, output.contains("ring: the token visited 4 ranks") && output.contains(": OK"))
}

fn examples_run_across_four_pods(f: &Flavour) {
    let ns = Namespace::new(f.label);
    let c = f.label;
    f.up(&ns, c, &[], &[]);

    // What the image really carries: this MPI, and OpenSSH 10 under kompi init.
    let (command, expected) = f.version;
    let mut exec = vec!["--"];
    exec.extend_from_slice(command);
    let out = ns.kompi_ns("exec", c, &exec);
    assert!(text(&out).contains(expected), "{command:?}: {}{}", text(&out), err(&out));
    let out = ns.kompi_ns("exec", c, &["--worker", "2", "--", "/usr/sbin/sshd", "-V"]);
    assert!(err(&out).contains("OpenSSH_10."), "sshd -V: {}", err(&out));

    let out = run_on_four_pods(&ns, c, &[&format!("{EXAMPLES}/allreduce")]);
    assert!(out.status.success(), "allreduce: {}{}", text(&out), err(&out));
    assert!(text(&out).contains("allreduce: 4 ranks") && text(&out).contains(": OK"), "{}", text(&out));

    let out = run_on_four_pods(&ns, c, &[&format!("{EXAMPLES}/ring")]);
    assert!(out.status.success(), "ring: {}{}", text(&out), err(&out));
    let (hosts, ok) = ring_hosts(&text(&out));
    // Rank 0 on the master (first in the hostfile), ranks 1 to 3 one on each worker.
    let workers: BTreeSet<String> = (0..3).map(|i| format!("{c}-worker-{i}")).collect();
    assert_eq!(hosts, workers, "one rank on each pod: {}", text(&out));
    assert!(ok, "{}", text(&out));

    // A rank that fails ends the run with its status, wherever it ran (the abort example: the last
    // rank, on the last worker, calls MPI_Abort with 3).
    let out = run_on_four_pods(&ns, c, &[&format!("{EXAMPLES}/abort")]);
    assert_eq!(out.status.code(), Some(3), "{}{}", text(&out), err(&out));
    let out = run_on_four_pods(&ns, c, &["sh", "-c", &format!("[ $(hostname) != {c}-worker-1 ] || exit 7")]);
    assert_eq!(out.status.code(), Some(7), "{}{}", text(&out), err(&out));

    // kubelet and kompi's readiness checks connect without authenticating. OpenSSH 10 penalises each
    // such connection by a second and, past 15 s, refuses its source for minutes; 40 of them from the
    // master would lock mpiexec out of the worker unless kompi's sshd_config waives that penalty.
    let probes = format!("for i in $(seq 40); do (exec 3<>/dev/tcp/{c}-worker-0.{c}/2022); done");
    let out = ns.kompi_ns("exec", c, &["--", "bash", "-c", &probes]);
    assert!(out.status.success(), "{}", err(&out));
    let out = run_on_four_pods(&ns, c, &["hostname"]);
    assert!(out.status.success(), "after 40 probes of {c}-worker-0: {}", err(&out));
}

pub fn open_mpi_5_runs_the_examples_across_four_pods() {
    require_testbed();
    examples_run_across_four_pods(&OPEN_MPI_5);
}

pub fn mpich_runs_the_examples_across_four_pods() {
    require_testbed();
    examples_run_across_four_pods(&MPICH);
}

pub fn open_mpi_5_takes_kube_openmpis_command_and_prrtes_parameters() {
    require_testbed();
    let ns = Namespace::new("prrte");
    OPEN_MPI_5.up(&ns, "p", &[], &["mpi.mcaParams.plm_rsh_no_tree_spawn=1"]);

    // kube-openmpi's README line, unchanged: PRRTE reads the hostfile and keeps its FQDNs (kompi writes
    // prte_keep_fqdn_hostnames; ORTE's orte_keep_fqdn_hostnames would be ignored and ssh would fail).
    let out = ns.k(&["exec", "p-master", "-c", "mpi-master", "--", "mpiexec", "--allow-run-as-root", "--hostfile", "/kube-openmpi/generated/hostfile",
        "--display-map", "-n", "4", "-npernode", "1", "sh", "-c", "echo $(hostname):hello"]);
    assert!(out.status.success(), "mpiexec: {}", err(&out));
    assert_eq!(hello_hosts(&text(&out)), ["p-master", "p-worker-0", "p-worker-1", "p-worker-2"], "{}", text(&out));

    // Binding: unbound by kompi's default (PRRTE's hwloc_default_binding_policy; with two ranks Open MPI 5
    // would bind each to a core), and bound when asked with ORTE's name, which kompi run passes on
    // under PRRTE's name too.
    let cpus = |mca: &[&str]| {
        let mut args = vec!["--np", "2", "--npernode", "1"];
        for m in mca {
            args.extend(["--mca", m]);
        }
        args.extend(["--", "grep", "Cpus_allowed_list", "/proc/self/status"]);
        let out = ns.kompi_ns("run", "p", &args);
        assert!(out.status.success(), "{}", err(&out));
        text(&out).lines().map(|l| l.split_whitespace().last().unwrap_or_default().to_string()).collect::<BTreeSet<_>>()
    };
    let all = text(&ns.kompi_ns("exec", "p", &["--", "grep", "Cpus_allowed_list", "/proc/self/status"]));
    let all = all.split_whitespace().last().unwrap_or_default().to_string();
    assert_eq!(cpus(&[]), [all.clone()].into(), "ranks must be unbound by default");
    let bound = cpus(&["hwloc_base_binding_policy=core"]);
    assert!(!bound.contains(&all) && bound.len() == 1, "bound to one core: {bound:?} (all: {all})");

    // mpi.mcaParams with ORTE's name lands in ~/.prte/mca-params.conf under PRRTE's, next to kompi's defaults.
    let out = ns.kompi_ns("exec", "p", &["--", "cat", "/root/.prte/mca-params.conf"]);
    for line in ["plm_ssh_no_tree_spawn = 1", "prte_keep_fqdn_hostnames = 1", "hwloc_default_binding_policy = none"] {
        assert!(text(&out).lines().any(|l| l == line), "{line}: {}{}", text(&out), err(&out));
    }
}

fn one_shot_job_runs_and_reports(f: &Flavour) {
    let ns = Namespace::new(&format!("{}-job", f.label));
    let values = ns.dir.path().join("job.yaml");
    std::fs::write(&values, format!("mpiMaster:\n  oneShot:\n    enabled: true\n    autoScaleDownWorkers: true\n    command: {}\n", f.one_shot)).unwrap();
    // A one-shot `kompi up --wait` waits for the command and exits with its status.
    f.up(&ns, "job", &[values.to_str().unwrap()], &[]);
    let log = text(&ns.k(&["logs", "job-master", "-c", "mpi-master"]));
    assert!(log.contains("allreduce: 4 ranks") && log.contains(": OK"), "{log}");
    let replicas = || text(&ns.k(&["get", "statefulset", "job-worker", "-o", "jsonpath={.spec.replicas}"]));
    ns.eventually("the workers to be scaled to 0 after success", Duration::from_secs(60), || replicas().trim() == "0");
}

pub fn open_mpi_5_one_shot_job_runs_and_reports() {
    require_testbed();
    one_shot_job_runs_and_reports(&OPEN_MPI_5);
}

pub fn mpich_one_shot_job_runs_and_reports() {
    require_testbed();
    one_shot_job_runs_and_reports(&MPICH);
}

fn non_root_cluster_runs_the_ring(f: &Flavour) {
    let ns = Namespace::new(&format!("{}-nr", f.label));
    let c = "nr";
    f.up(&ns, c, &[fixture("non-root.yaml").to_str().unwrap()], &[]);
    let out = ns.kompi_ns("exec", c, &["--worker", "1", "--", "id", "-u"]);
    assert_eq!(text(&out).trim(), "1000", "{}", err(&out));
    let out = run_on_four_pods(&ns, c, &[&format!("{EXAMPLES}/ring")]);
    assert!(out.status.success(), "ring as uid 1000: {}{}", text(&out), err(&out));
    let (hosts, ok) = ring_hosts(&text(&out));
    assert_eq!(hosts.len(), 3, "ranks 1 to 3 one on each worker: {}", text(&out));
    assert!(ok, "{}", text(&out));
}

pub fn open_mpi_5_runs_as_uid_1000() {
    require_testbed();
    non_root_cluster_runs_the_ring(&OPEN_MPI_5);
}

pub fn mpich_runs_as_uid_1000() {
    require_testbed();
    non_root_cluster_runs_the_ring(&MPICH);
}
