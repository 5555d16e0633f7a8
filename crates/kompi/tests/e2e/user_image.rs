//! A user's own MPI image with no kompi in it, built as mpi-operator's base image is (Debian bullseye,
//! openmpi-bin 4.1.0, openssh-server 8.4, user `mpiuser`, uid 1000): kompi injects itself (its static
//! binary, from kompi's image) and runs a cluster on it. The image comes from
//! `testbed/testbed.sh image kompi-e2e/bullseye-user:1 --suite bullseye --user mpiuser openmpi-bin openssh-server
//! --add "$(testbed/testbed.sh examples --suite bullseye)":/opt/examples`.

use std::time::Duration;

use crate::operator::{apply, mpijob_on, operator, wait_condition};
use crate::support::{Namespace, err, hello_hosts, require_testbed, text};

const IMAGE: (&str, &str) = ("kompi-e2e/bullseye-user", "1");
const ALLREDUCE: &str = "/opt/examples/allreduce";

/// The values of a cluster on that image, as a kube-openmpi user would write them: the image, 3
/// workers, every pod as uid 1000 (the image's mpiuser).
fn values(ns: &Namespace, extra: &str) -> String {
    let path = ns.dir.path().join("values.yaml");
    let pod = "  securityContext:\n    runAsUser: 1000\n    fsGroup: 1000\n";
    std::fs::write(&path, format!("image:\n  repository: {}\n  tag: \"{}\"\nmpiMaster:\n{pod}{extra}mpiWorkers:\n  num: 3\n{pod}", IMAGE.0, IMAGE.1)).unwrap();
    path.to_str().unwrap().to_string()
}

fn up(ns: &Namespace, cluster: &str, values: &str) {
    let out = ns.kompi(&["up", cluster, "-n", &ns.name, "-f", values, "--wait", "--timeout", "300s"]);
    assert!(
        out.status.success(),
        "kompi up on {}:{}: {}\n(the image comes from testbed/testbed.sh image {}:{} --suite bullseye --user mpiuser openmpi-bin openssh-server --add \"$(testbed/testbed.sh examples --suite bullseye)\":/opt/examples)",
        IMAGE.0,
        IMAGE.1,
        err(&out),
        IMAGE.0,
        IMAGE.1
    );
}

pub fn a_bullseye_user_image_without_kompi_runs_allreduce_across_three_workers() {
    require_testbed();
    let ns = Namespace::new("user-image");
    let c = "u";
    up(&ns, c, &values(&ns, ""));

    // The image is the user's: no kompi of its own, Open MPI 4.1.0, and the pods run as its mpiuser.
    let out = ns.kompi_ns("exec", c, &["--worker", "2", "--", "sh", "-c", "test ! -e /usr/local/bin/kompi && ompi_info --version && id -un && echo $HOME"]);
    let said = text(&out);
    assert!(out.status.success() && said.contains("Open MPI v4.1.0") && said.contains("mpiuser\n/home/mpiuser"), "{said}{}", err(&out));

    let out = ns.kompi_ns("run", c, &["--np", "4", "--npernode", "1", "--", ALLREDUCE]);
    assert!(out.status.success(), "allreduce: {}{}", text(&out), err(&out));
    assert!(text(&out).contains("allreduce: 4 ranks") && text(&out).contains(": OK"), "{}", text(&out));

    // kube-openmpi's README line (as non-root: no --allow-run-as-root), through kubectl exec.
    let out = ns.k(&["exec", "u-master", "-c", "mpi-master", "--", "mpiexec", "--hostfile", "/kube-openmpi/generated/hostfile", "--display-map", "-n", "4",
        "-npernode", "1", "sh", "-c", "echo $(hostname):hello"]);
    assert!(out.status.success(), "mpiexec: {}", err(&out));
    assert_eq!(hello_hosts(&text(&out)), ["u-master", "u-worker-0", "u-worker-1", "u-worker-2"], "{}", text(&out));
}

pub fn a_bullseye_user_image_without_kompi_runs_a_one_shot_job() {
    require_testbed();
    let ns = Namespace::new("user-job");
    let one_shot = format!("  oneShot:\n    enabled: true\n    autoScaleDownWorkers: false\n    command: mpiexec -n 4 -npernode 1 {ALLREDUCE}\n");
    up(&ns, "job", &values(&ns, &one_shot));
    let log = text(&ns.k(&["logs", "job-master", "-c", "mpi-master"]));
    assert!(log.contains("allreduce: 4 ranks") && log.contains(": OK"), "{log}");
}

pub fn a_bullseye_user_image_without_kompi_runs_an_mpijob_as_uid_1000() {
    require_testbed();
    let ns = Namespace::new("user-mpijob");
    operator(&ns);
    // As mpi-operator's examples on its openmpi image: runAsUser on the containers, the key in mpiuser's home.
    let image = format!("{}:{}", IMAGE.0, IMAGE.1);
    let manifest = mpijob_on(&image, "ub", 3, &format!("mpirun -n 3 {ALLREDUCE} && id -un"), "  sshAuthMountPath: /home/mpiuser/.ssh\n")
        .replace("            command: [\"/bin/sh\", \"-c\"]", "            securityContext: {runAsUser: 1000}\n            command: [\"/bin/sh\", \"-c\"]")
        .replace("            command: [\"/usr/sbin/sshd\"]", "            securityContext: {runAsUser: 1000}\n            command: [\"/usr/sbin/sshd\"]");
    apply(&ns, &manifest);
    wait_condition(&ns, "ub", "Succeeded", Duration::from_secs(300));
    let log = text(&ns.k(&["logs", "ub-launcher"]));
    assert!(log.contains("allreduce: 3 ranks") && log.contains(": OK") && log.lines().any(|l| l.trim() == "mpiuser"), "{log}");
}
