//! The hostfile watcher survives an API-server restart: it says the hostfile may be stale while the API
//! is gone, resumes, and the hostfile follows changes made afterwards. A separate test target, run
//! alone by `scripts/test.sh`, because restarting the API server disturbs every other test.

#[path = "../harness/mod.rs"]
mod harness;
#[path = "../e2e/support.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{Namespace, err, require_testbed, text};

fn main() {
    harness::main(harness::tests![support::root => [the_hostfile_follows_the_workers_across_an_api_server_restart]]);
}

fn the_hostfile_follows_the_workers_across_an_api_server_restart() {
    require_testbed();
    let ns = Namespace::new("restart");
    let out = ns.kompi_ns("up", "r", &["--set", "mpiWorkers.num=2", "--wait", "--timeout", "180s"]);
    assert!(out.status.success(), "up: {}", err(&out));

    let testbed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testbed/testbed.sh");
    let out = Command::new(&testbed).arg("restart-apiserver").output().unwrap();
    assert!(out.status.success(), "restarting the API server: {}", err(&out));

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
