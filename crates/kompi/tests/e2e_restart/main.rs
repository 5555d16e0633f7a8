//! The hostfile watcher survives an API-server restart: it says the hostfile may be stale while the API
//! is gone, resumes, and the hostfile follows changes made afterwards; an MPIJob running across one
//! succeeds, with nothing lost or made twice. A separate test target, run alone by `scripts/test.sh`,
//! because restarting the API server disturbs every other test.

#[path = "../harness/mod.rs"]
mod harness;
// The operator tests' helpers; this target uses a few of them.
#[allow(dead_code)]
#[path = "../e2e/operations.rs"]
mod operations;
#[allow(dead_code)]
#[path = "../e2e/operator.rs"]
mod operator;
#[path = "../e2e/support.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{Namespace, err, require_testbed, text};

fn main() {
    harness::main(harness::tests![support::root => [
        the_hostfile_follows_the_workers_across_an_api_server_restart,
        an_mpijob_succeeds_across_an_api_server_restart,
    ]]);
}

/// Held for a whole test: the runner may run this target's tests in parallel, and each restarts the
/// API server under the other.
fn alone() -> nix::fcntl::Flock<std::fs::File> {
    let lock = std::fs::File::create(support::kubeconfig().parent().unwrap().join("e2e-restart-apiserver.lock")).unwrap();
    nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| e).unwrap()
}

fn restart_api_server() {
    let testbed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testbed/testbed.sh");
    let out = Command::new(&testbed).arg("restart-apiserver").output().unwrap();
    assert!(out.status.success(), "restarting the API server: {}", err(&out));
}

fn the_hostfile_follows_the_workers_across_an_api_server_restart() {
    require_testbed();
    let _alone = alone();
    let ns = Namespace::new("restart");
    let out = ns.kompi_ns("up", "r", &["--set", "mpiWorkers.num=2", "--wait", "--timeout", "180s"]);
    assert!(out.status.success(), "up: {}", err(&out));

    restart_api_server();

    let out = ns.k(&["scale", "statefulsets", "r-worker", "--replicas=3"]);
    assert!(out.status.success(), "{}", err(&out));
    ns.eventually("the hostfile to list r-worker-2 after the restart", Duration::from_secs(120), || {
        ns.hostfile("r").iter().any(|l| l.starts_with("r-worker-2.r "))
    });
    let log = text(&ns.kompi_ns("logs", "r", &["--sidecar"]));
    assert!(log.contains("the hostfile may be stale until the watch resumes"), "the outage was not reported:\n{log}");
    assert!(log.contains("the watch of the worker pods resumed"), "the recovery was not reported:\n{log}");
    let out = ns.kompi_ns("run", "r", &["--npernode", "1", "--", "hostname"]);
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(text(&out).lines().count(), 4, "{}", text(&out));
}

/// The API server restarts while an MPIJob runs: the operator's watches resume (or, past its renew
/// deadline, a replica restarts and takes the Lease again), the job succeeds, no pod of it is made twice
/// and its success is recorded once.
fn an_mpijob_succeeds_across_an_api_server_restart() {
    require_testbed();
    let _alone = alone();
    let ns = Namespace::new("restart-job");
    operator::operator(&ns);
    let _alone = operations::disrupting_the_operator();
    let watch = operations::PodWatch::start(&ns, "ar");
    operator::apply(&ns, &operator::mpijob_on("kompi/runtime:0.1.0", "ar", 2, "sleep 30; mpirun -n 2 hostname", ""));
    operator::wait_condition(&ns, "ar", "Running", Duration::from_secs(180));
    restart_api_server();
    operator::wait_condition(&ns, "ar", "Succeeded", Duration::from_secs(240));
    let log = text(&ns.k(&["logs", "ar-launcher"]));
    assert_eq!(log.lines().filter(|l| l.starts_with("ar-worker-")).count(), 2, "{log}");
    let added = watch.added();
    assert_eq!(added.keys().collect::<Vec<_>>(), ["ar-launcher", "ar-worker-0", "ar-worker-1"], "{added:?}");
    assert!(added.values().all(|uids| uids.len() == 1), "a pod was made twice: {added:?}");
    let events = text(&ns.k(&["get", "events", "--field-selector", "involvedObject.name=ar", "-o", "custom-columns=REASON:.reason"]));
    assert_eq!(events.matches("MPIJobSucceeded").count(), 1, "{events}");
}
