//! kube-openmpi's README, run literally against kompi: keygen, template | kubectl apply, kubectl exec
//! mpiexec, kubectl scale, one-shot, non-root, RBAC, teardown.

use std::time::Duration;

use crate::support::{Namespace, err, fixture, hello_hosts, require_testbed, text};

const HELLO: &[&str] = &["sh", "-c", "echo $(hostname):hello"];

/// `kompi template NAME -n NS -f values.yaml -f ssh-key.yaml [--set ...]`, as text.
fn template(ns: &Namespace, cluster: &str, values: &str, set: &[&str]) -> String {
    std::fs::write(ns.dir.path().join("values.yaml"), values).unwrap();
    if !ns.dir.path().join("ssh-key.yaml").exists() {
        let out = ns.kompi(&["keygen"]);
        assert!(out.status.success(), "{}", err(&out));
    }
    let mut args = vec!["template", cluster, "-n", ns.name.as_str(), "-f", "values.yaml", "-f", "ssh-key.yaml", "--kube-version", "1.20"];
    for s in set {
        args.extend(["--set", s]);
    }
    let out = ns.kompi(&args);
    assert!(out.status.success(), "{}", err(&out));
    text(&out)
}

fn mpiexec_hello(ns: &Namespace, cluster: &str, np: &str) -> std::process::Output {
    let master = format!("{cluster}-master");
    let mut args = vec!["exec", master.as_str(), "-c", "mpi-master", "--", "mpiexec", "--allow-run-as-root", "--hostfile", "/kube-openmpi/generated/hostfile",
        "--display-map", "-n", np, "-npernode", "1"];
    args.extend_from_slice(HELLO);
    ns.k(&args)
}

pub fn the_readme_flow_works_unchanged() {
    require_testbed();
    let ns = Namespace::new("readme");
    let manifests = template(&ns, "mpi", "mpiWorkers:\n  num: 3\n", &[]);
    let out = ns.k_stdin(&["apply", "-f", "-"], &manifests);
    assert!(out.status.success(), "kubectl apply: {}", err(&out));
    ns.wait_ready("mpi", 3);

    // kube-openmpi's own command: one line per node, master and 3 workers.
    let out = mpiexec_hello(&ns, "mpi", "4");
    assert!(out.status.success(), "mpiexec: {}", err(&out));
    assert_eq!(hello_hosts(&text(&out)), ["mpi-master", "mpi-worker-0", "mpi-worker-1", "mpi-worker-2"], "{}", text(&out));

    // Scale down: the hostfile follows within seconds, and 3 processes run.
    let out = ns.k(&["scale", "statefulsets", "mpi-worker", "--replicas=2"]);
    assert!(out.status.success(), "{}", err(&out));
    let took = ns.eventually("the hostfile to drop mpi-worker-2", Duration::from_secs(30), || {
        let hosts = ns.hostfile("mpi");
        hosts.len() == 3 && !hosts.iter().any(|h| h.contains("mpi-worker-2"))
    });
    eprintln!("hostfile dropped the worker {took:?} after kubectl scale");
    let out = mpiexec_hello(&ns, "mpi", "3");
    assert!(out.status.success(), "mpiexec after scale: {}", err(&out));
    assert_eq!(hello_hosts(&text(&out)), ["mpi-master", "mpi-worker-0", "mpi-worker-1"]);

    // Teardown leaves nothing with the instance label.
    let out = ns.k_stdin(&["delete", "-f", "-", "--wait=true"], &manifests);
    assert!(out.status.success(), "kubectl delete: {}", err(&out));
    ns.eventually("every object of the cluster to go", Duration::from_secs(120), || {
        let out = ns.k(&["get", "pods,statefulsets,services,secrets,serviceaccounts,roles,rolebindings,configmaps", "-l", "app.kubernetes.io/instance=mpi", "-o", "name"]);
        out.status.success() && text(&out).trim().is_empty()
    });
}

pub fn one_shot_returns_the_command_status_and_scales_down_only_on_success() {
    require_testbed();
    let ns = Namespace::new("oneshot");
    for (cluster, command) in [("ok", "mpiexec --allow-run-as-root -n 3 -npernode 1 hostname"), ("bad", "mpiexec --allow-run-as-root -n 2 -npernode 1 sh -c 'exit 3'")] {
        let values = format!("mpiWorkers:\n  num: 2\nmpiMaster:\n  oneShot:\n    enabled: true\n    autoScaleDownWorkers: true\n    command: \"{}\"\n", command.replace('"', "\\\""));
        let out = ns.k_stdin(&["apply", "-f", "-"], &template(&ns, cluster, &values, &[]));
        assert!(out.status.success(), "{}", err(&out));
    }
    for (cluster, code) in [("ok", 0), ("bad", 3)] {
        let master = format!("{cluster}-master");
        ns.eventually(&format!("{master} to finish"), Duration::from_secs(180), || {
            let phase = text(&ns.k(&["get", "pod", &master, "-o", "jsonpath={.status.phase}"]));
            phase == "Succeeded" || phase == "Failed"
        });
        let exit = text(&ns.k(&["get", "pod", &master, "-o", "jsonpath={.status.containerStatuses[?(@.name==\"mpi-master\")].state.terminated.exitCode}"]));
        assert_eq!(exit.trim(), code.to_string(), "{master}'s exit code; log: {}", text(&ns.k(&["logs", &master, "-c", "mpi-master"])));
    }
    let replicas = |cluster: &str| text(&ns.k(&["get", "statefulset", &format!("{cluster}-worker"), "-o", "jsonpath={.spec.replicas}"]));
    ns.eventually("ok-worker to be scaled to 0", Duration::from_secs(60), || replicas("ok").trim() == "0");
    assert_eq!(replicas("bad").trim(), "2", "a failed command must leave the workers running");
}

pub fn non_root_clusters_run_the_same_hello() {
    require_testbed();
    let ns = Namespace::new("nonroot");
    let values = std::fs::read_to_string(fixture("non-root.yaml")).unwrap();
    let out = ns.k_stdin(&["apply", "-f", "-"], &template(&ns, "nr", &values, &["mpiWorkers.num=2"]));
    assert!(out.status.success(), "{}", err(&out));
    ns.wait_ready("nr", 2);
    let out = ns.k(&["exec", "nr-master", "-c", "mpi-master", "--", "id", "-u"]);
    assert_eq!(text(&out).trim(), "1000");
    let mut args = vec!["exec", "nr-master", "-c", "mpi-master", "--", "mpiexec", "--hostfile", "/kube-openmpi/generated/hostfile", "-n", "3", "-npernode", "1"];
    args.extend_from_slice(HELLO);
    let out = ns.k(&args);
    assert!(out.status.success(), "mpiexec as uid 1000: {}", err(&out));
    assert_eq!(hello_hosts(&text(&out)), ["nr-master", "nr-worker-0", "nr-worker-1"]);
}

/// `kubectl auth can-i VERB RESOURCE --as the cluster's ServiceAccount`.
fn can_i(ns: &Namespace, cluster: &str, verb: &str, resource: &str) -> bool {
    let who = format!("system:serviceaccount:{}:{cluster}", ns.name);
    let out = ns.k(&["auth", "can-i", verb, resource, "--as", &who]);
    text(&out).trim() == "yes"
}

pub fn rbac_grants_exactly_what_the_sidecar_needs_and_mpi_containers_have_no_token() {
    require_testbed();
    let ns = Namespace::new("rbac");
    let plain = template(&ns, "plain", "mpiWorkers:\n  num: 1\n", &[]);
    let scaling = template(&ns, "job", "mpiWorkers:\n  num: 1\nmpiMaster:\n  oneShot:\n    enabled: true\n    command: sleep 600\n", &[]);
    for manifests in [&plain, &scaling] {
        let out = ns.k_stdin(&["apply", "-f", "-"], manifests);
        assert!(out.status.success(), "{}", err(&out));
    }
    for (verb, resource) in [("list", "pods"), ("watch", "pods")] {
        assert!(can_i(&ns, "plain", verb, resource), "plain may not {verb} {resource}");
        assert!(can_i(&ns, "job", verb, resource), "job may not {verb} {resource}");
    }
    let denied = [
        ("get", "pods"), ("list", "secrets"), ("get", "secrets"), ("create", "pods"), ("delete", "pods"), ("create", "pods/exec"), ("patch", "pods"),
        ("get", "configmaps"), ("list", "statefulsets"), ("patch", "statefulsets"), ("delete", "statefulsets"), ("create", "roles"),
        ("list", "nodes"), ("get", "services"),
    ];
    for (verb, resource) in denied {
        assert!(!can_i(&ns, "plain", verb, resource), "plain may {verb} {resource}");
        assert!(!can_i(&ns, "job", verb, resource), "job may {verb} {resource}");
    }
    // The scale subresource: only the job's own workers, only with scale-down on.
    let can_patch = |cluster: &str, object: &str, subresource: &str| {
        let who = format!("system:serviceaccount:{}:{cluster}", ns.name);
        text(&ns.k(&["auth", "can-i", "patch", object, &format!("--subresource={subresource}"), "--as", &who])).trim() == "yes"
    };
    assert!(can_patch("job", "statefulsets.apps/job-worker", "scale"));
    assert!(!can_patch("job", "statefulsets.apps/plain-worker", "scale"));
    assert!(!can_patch("plain", "statefulsets.apps/plain-worker", "scale"));
    // The status subresource: only the cluster's own master pod (its readiness condition).
    assert!(can_patch("plain", "pods/plain-master", "status"));
    assert!(!can_patch("plain", "pods/plain-worker-0", "status"));
    assert!(!can_patch("plain", "pods/job-master", "status"));

    ns.wait_ready("plain", 1);
    let token_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    for (pod, container) in [("plain-master", "mpi-master"), ("plain-worker-0", "mpi-worker")] {
        let out = ns.k(&["exec", pod, "-c", container, "--", "ls", token_dir]);
        assert!(!out.status.success(), "{pod}/{container} has {token_dir}: {}", text(&out));
        let out = ns.k(&["exec", pod, "-c", container, "--", "sh", "-c", "kompi hostfile --cluster plain --workers 0 --slots 1 --master-slots 1 --ssh-port 2022 --mpi openmpi --output /tmp/h --once --namespace x"]);
        assert!(!out.status.success(), "{pod}/{container} reached the API without a token");
    }
    let out = ns.k(&["exec", "plain-master", "-c", "hostfile", "--", "/usr/local/bin/kompi", "--version"]);
    assert!(out.status.success());
    let out = ns.k(&["exec", "plain-master", "-c", "hostfile", "--", "sh", "-c", &format!("test -s {token_dir}/token && echo token")]);
    assert_eq!(text(&out).trim(), "token", "the sidecar has no token: {}", err(&out));
}

pub fn allreduce_from_the_examples_runs_across_the_pods() {
    require_testbed();
    let ns = Namespace::new("allreduce");
    let out = ns.k_stdin(&["apply", "-f", "-"], &template(&ns, "ar", "mpiWorkers:\n  num: 3\n", &[]));
    assert!(out.status.success(), "{}", err(&out));
    ns.wait_ready("ar", 3);
    let out = ns.k(&["exec", "ar-master", "-c", "mpi-master", "--", "test", "-x", "/opt/kompi/examples/allreduce"]);
    assert!(out.status.success(), "the image lacks the examples: build it with testbed/testbed.sh kompi-image --add examples/bin:/opt/kompi/examples");
    let out = ns.k(&["exec", "ar-master", "-c", "mpi-master", "--", "mpiexec", "--allow-run-as-root", "--hostfile", "/kube-openmpi/generated/hostfile", "-n", "4",
        "-npernode", "1", "/opt/kompi/examples/allreduce"]);
    assert!(out.status.success(), "{}", err(&out));
    assert!(text(&out).contains("allreduce: 4 ranks") && text(&out).contains(": OK"), "{}", text(&out));
}

pub fn every_golden_fixture_passes_the_api_servers_validation() {
    require_testbed();
    let ns = Namespace::new("dryrun");
    let key = fixture("ssh-key.yaml");
    let mut fixtures: Vec<_> = std::fs::read_dir(fixture("")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.file_name().unwrap() != "ssh-key.yaml").collect();
    fixtures.sort();
    // A dry run creates nothing, so the master Pod would miss its ServiceAccount: create that one for real.
    let out = ns.k(&["create", "serviceaccount", "mpi"]);
    assert!(out.status.success(), "{}", err(&out));
    for f in fixtures {
        let out = ns.kompi(&["template", "mpi", "-n", &ns.name, "-f", f.to_str().unwrap(), "-f", key.to_str().unwrap(), "--kube-version", "1.20"]);
        assert!(out.status.success(), "{}: {}", f.display(), err(&out));
        let applied = ns.k_stdin(&["apply", "--dry-run=server", "-f", "-"], &text(&out));
        assert!(applied.status.success(), "the API server rejects {}: {}", f.display(), err(&applied));
    }
}

pub fn a_restricted_cluster_meets_the_profile_and_runs_allreduce_across_its_pods() {
    require_testbed();
    let ns = Namespace::new("restricted");
    let out = ns.k_stdin(&["apply", "-f", "-"], &template(&ns, "rs", "security:\n  profile: restricted\nmpiWorkers:\n  num: 2\n", &[]));
    assert!(out.status.success(), "{}", err(&out));
    ns.wait_ready("rs", 2);
    // The pods as the API server stored them, defaults filled in, every container included.
    for pod in ["rs-master", "rs-worker-0", "rs-worker-1"] {
        let out = ns.k(&["get", "pod", pod, "-o", "json"]);
        assert!(out.status.success(), "{}", err(&out));
        let stored: k8s_openapi::api::core::v1::Pod = serde_json::from_slice(&out.stdout).unwrap();
        let violations = kompi_spec::pss::restricted(stored.metadata.annotations.as_ref(), stored.spec.as_ref().unwrap());
        assert!(violations.is_empty(), "{pod} breaks the restricted profile: {violations:?}");
    }
    for (pod, container) in [("rs-master", "mpi-master"), ("rs-master", "hostfile"), ("rs-worker-1", "mpi-worker")] {
        let out = ns.k(&["exec", pod, "-c", container, "--", "sh", "-c", "id -u; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status"]);
        let said = text(&out);
        assert!(out.status.success(), "{pod}/{container}: {}", err(&out));
        assert_ne!(said.lines().next(), Some("0"), "{pod}/{container} runs as root");
        for line in ["CapEff:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"] {
            assert!(said.lines().any(|l| l == line), "{pod}/{container} lacks {line:?}:\n{said}");
        }
    }
    let out = ns.k(&["exec", "rs-master", "-c", "mpi-master", "--", "mpiexec", "--hostfile", "/kube-openmpi/generated/hostfile", "-n", "3", "-npernode", "1",
        "/opt/kompi/examples/allreduce"]);
    assert!(out.status.success(), "allreduce in a restricted cluster: {}", err(&out));
    assert!(text(&out).contains("allreduce: 3 ranks") && text(&out).contains(": OK"), "{}", text(&out));
}
