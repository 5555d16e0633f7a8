//! `kompi hostfile` against a real API server: the project's testbed (testbed/testbed.sh), when it is up.
//! The sidecar runs as the real binary with the token of the ServiceAccount `kompi template` renders, so
//! the rendered least-privilege Role is proved sufficient. A real StatefulSet makes the worker pods; they
//! are bound to a node that does not exist, so no kubelet runs them, and the test flips their Ready
//! condition through pods/status to drive the watch.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::json;

mod harness;

const TESTBED_KUBECONFIG: &str = "/tmp/kompi-testbed/kubeconfig";
const CLUSTER: &str = "hf";
const NOWHERE: &str = "kompi-test-no-such-node";
const PATIENCE: Duration = Duration::from_secs(60);

/// An admin client of the testbed, or why there is none.
async fn testbed() -> Result<(Client, Kubeconfig), String> {
    if !Path::new(TESTBED_KUBECONFIG).exists() {
        return Err(format!("no testbed ({TESTBED_KUBECONFIG} is absent; testbed/testbed.sh up starts one)"));
    }
    let kubeconfig = Kubeconfig::read_from(TESTBED_KUBECONFIG).map_err(|e| format!("{TESTBED_KUBECONFIG}: {e}"))?;
    let config = Config::from_custom_kubeconfig(kubeconfig.clone(), &KubeConfigOptions::default()).await.map_err(|e| e.to_string())?;
    let client = Client::try_from(config).map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(5), client.apiserver_version()).await {
        Ok(Ok(_)) => Ok((client, kubeconfig)),
        Ok(Err(e)) => Err(format!("the testbed's API server does not answer ({e})")),
        Err(_) => Err("the testbed's API server does not answer within 5 s".into()),
    }
}

/// The need of these tests: a testbed whose API server answers.
fn testbed_up() -> Result<(), String> {
    runtime().block_on(testbed()).map(drop)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A namespace of this test's own, deleted (with everything in it) when dropped.
struct TestNamespace {
    client: Client,
    name: String,
}

impl TestNamespace {
    async fn create(client: &Client) -> TestNamespace {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("kompi-hostfile-{}-{nanos}", std::process::id());
        let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.unwrap();
        TestNamespace { client: client.clone(), name }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let (client, name) = (self.client.clone(), self.name.clone());
        // Drop cannot await; a thread of its own runs the deletion.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let _ = Api::<Namespace>::all(client).delete(&name, &DeleteParams::default()).await;
            });
        })
        .join();
    }
}

async fn eventually<F, Fut>(what: &str, mut check: F, log: &Path)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}; sidecar log:\n{}", read(log));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn kompi(args: &[&str], dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kompi")).args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "kompi {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The ServiceAccount, Role and RoleBinding `kompi template` renders for a one-shot cluster that scales down.
fn rendered_rbac(namespace: &str, dir: &Path) -> (ServiceAccount, Role, RoleBinding) {
    kompi(&["keygen", "-o", "ssh-key.yaml"], dir);
    std::fs::write(
        dir.join("values.yaml"),
        "mpiWorkers:\n  num: 2\nmpiMaster:\n  oneShot:\n    enabled: true\n    autoScaleDownWorkers: true\n    command: 'true'\n",
    )
    .unwrap();
    let stream = kompi(&["template", CLUSTER, "-n", namespace, "-f", "values.yaml", "-f", "ssh-key.yaml"], dir);
    let objects: Vec<serde_json::Value> = stream
        .split("\n---\n")
        .map(|doc| doc.trim_start_matches("---\n"))
        .filter(|doc| !doc.trim().is_empty())
        .map(|doc| serde_saphyr::from_str(doc).unwrap())
        .collect();
    let of_kind = |kind: &str| objects.iter().find(|o| o["kind"] == kind).cloned().unwrap_or_else(|| panic!("no {kind} in\n{stream}"));
    (
        serde_json::from_value(of_kind("ServiceAccount")).unwrap(),
        serde_json::from_value(of_kind("Role")).unwrap(),
        serde_json::from_value(of_kind("RoleBinding")).unwrap(),
    )
}

/// A kubeconfig that authenticates as the ServiceAccount `name`, as the projected token does in the pod.
async fn service_account_kubeconfig(client: &Client, admin: &Kubeconfig, namespace: &str, name: &str, dir: &Path) -> PathBuf {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec { expiration_seconds: Some(3600), ..Default::default() }),
        ..Default::default()
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let issued: TokenRequest = accounts.create_subresource("token", name, &PostParams::default(), &request).await.unwrap();
    let token = issued.status.and_then(|s| s.token).expect("the API server issues a token");
    let cluster = admin.clusters[0].cluster.clone().unwrap();
    let ca = match (&cluster.certificate_authority, &cluster.certificate_authority_data) {
        (Some(path), _) => format!("certificate-authority: {path:?}"),
        (None, Some(data)) => format!("certificate-authority-data: {data:?}"),
        (None, None) => "insecure-skip-tls-verify: true".to_string(),
    };
    let path = dir.join("service-account.kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: testbed, cluster: {{server: {:?}, {ca}}}}}]\n\
             users: [{{name: sa, user: {{token: {token:?}}}}}]\n\
             contexts: [{{name: sa, context: {{cluster: testbed, user: sa, namespace: {namespace:?}}}}}]\ncurrent-context: sa\n",
            cluster.server.unwrap()
        ),
    )
    .unwrap();
    path
}

fn worker_labels() -> serde_json::Value {
    json!({ "app.kubernetes.io/name": "kompi", "app.kubernetes.io/instance": CLUSTER, "app.kubernetes.io/component": "worker" })
}

/// The workers' StatefulSet, its pods bound to a node that does not exist.
fn worker_set(replicas: i32) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": { "name": format!("{CLUSTER}-worker") },
        "spec": {
            "replicas": replicas,
            "podManagementPolicy": "Parallel",
            "serviceName": CLUSTER,
            "selector": { "matchLabels": worker_labels() },
            "template": {
                "metadata": { "labels": worker_labels() },
                "spec": {
                    "nodeName": NOWHERE,
                    "automountServiceAccountToken": false,
                    "containers": [{ "name": "mpi-worker", "image": "kompi/never-pulled:0" }]
                }
            }
        }
    }))
    .unwrap()
}

async fn set_ready(pods: &Api<Pod>, name: &str, ready: bool) {
    let status = if ready { "True" } else { "False" };
    let patch = json!({ "status": { "phase": "Running", "conditions": [{ "type": "Ready", "status": status }] } });
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

/// The master's readiness condition as the sidecar set it: (status, message).
async fn reachable_condition(pods: &Api<Pod>) -> Option<(String, String)> {
    let master = pods.get_opt(&format!("{CLUSTER}-master")).await.ok().flatten()?;
    let conditions = master.status?.conditions?;
    let c = conditions.into_iter().find(|c| c.type_ == "kompi.io/workers-reachable")?;
    Some((c.status, c.message.unwrap_or_default()))
}

async fn exists(pods: &Api<Pod>, name: &str) -> bool {
    pods.get_opt(name).await.ok().flatten().is_some()
}

async fn scale(sets: &Api<StatefulSet>, replicas: i32) {
    let patch = json!({ "spec": { "replicas": replicas } });
    sets.patch(&format!("{CLUSTER}-worker"), &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

fn hostfile_of(workers: &[u32]) -> String {
    let mut text = format!("{CLUSTER}-master slots=1\n");
    for i in workers {
        text.push_str(&format!("{CLUSTER}-worker-{i}.{CLUSTER} slots=2\n"));
    }
    text
}

struct Sidecar(Child);

impl Sidecar {
    async fn exit_code(&mut self, log: &Path) -> Option<i32> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the sidecar did not exit:\n{}", read(log));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A namespace with the rendered RBAC, the workers' StatefulSet, and the files the master pod shares.
struct Fixture {
    ns: TestNamespace,
    dir: tempfile::TempDir,
    sidecar_kubeconfig: PathBuf,
    sets: Api<StatefulSet>,
    pods: Api<Pod>,
    hostfile: PathBuf,
    complete: PathBuf,
    handshake: PathBuf,
    log: PathBuf,
}

impl Fixture {
    async fn new(workers: i32) -> Fixture {
        let (admin, kubeconfig) = testbed().await.unwrap_or_else(|why| panic!("cannot run here: {why}"));
        let ns = TestNamespace::create(&admin).await;
        let dir = tempfile::tempdir().unwrap();
        let (generated, handshake) = (dir.path().join("generated"), dir.path().join("handshake"));
        std::fs::create_dir_all(&generated).unwrap();
        std::fs::create_dir_all(&handshake).unwrap();
        let log = dir.path().join("sidecar.log");

        let (account, role, binding) = rendered_rbac(&ns.name, dir.path());
        let pp = PostParams::default();
        Api::<ServiceAccount>::namespaced(admin.clone(), &ns.name).create(&pp, &account).await.unwrap();
        Api::<Role>::namespaced(admin.clone(), &ns.name).create(&pp, &role).await.unwrap();
        Api::<RoleBinding>::namespaced(admin.clone(), &ns.name).create(&pp, &binding).await.unwrap();
        let sidecar_kubeconfig = service_account_kubeconfig(&admin, &kubeconfig, &ns.name, CLUSTER, dir.path()).await;

        // Pods need the namespace's default ServiceAccount, which the controller-manager creates shortly.
        let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns.name);
        eventually("the default ServiceAccount", || async { accounts.get_opt("default").await.ok().flatten().is_some() }, &log).await;
        let sets: Api<StatefulSet> = Api::namespaced(admin.clone(), &ns.name);
        sets.create(&pp, &worker_set(workers)).await.unwrap();
        // The master pod whose readiness condition the sidecar sets; no kubelet runs it.
        let master: Pod = serde_json::from_value(json!({
            "metadata": { "name": format!("{CLUSTER}-master") },
            "spec": {
                "nodeName": NOWHERE,
                "automountServiceAccountToken": false,
                "readinessGates": [{ "conditionType": "kompi.io/workers-reachable" }],
                "containers": [{ "name": "mpi-master", "image": "kompi/never-pulled:0" }]
            }
        }))
        .unwrap();
        Api::<Pod>::namespaced(admin.clone(), &ns.name).create(&pp, &master).await.unwrap();
        Fixture {
            pods: Api::namespaced(admin.clone(), &ns.name),
            sets,
            sidecar_kubeconfig,
            hostfile: generated.join("hostfile"),
            complete: generated.join(".complete"),
            handshake,
            log,
            ns,
            dir,
        }
    }

    /// `kompi hostfile` as the master pod runs it, with the ServiceAccount's token.
    fn start_sidecar(&self, workers: u32, extra: &[&str]) -> Sidecar {
        let mut args = vec![
            "hostfile".to_string(),
            format!("--cluster={CLUSTER}"),
            format!("--workers={workers}"),
            "--slots=2".into(),
            "--master-slots=1".into(),
            "--ssh-port=2022".into(),
            "--mpi=openmpi".into(),
            format!("--output={}", self.hostfile.display()),
            format!("--namespace={}", self.ns.name),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        Sidecar(
            Command::new(env!("CARGO_BIN_EXE_kompi"))
                .args(&args)
                .env("KUBECONFIG", &self.sidecar_kubeconfig)
                .env("KOMPI_LOG", "info")
                .env_remove("POD_NAMESPACE")
                .current_dir(self.dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&self.log).unwrap())
                .spawn()
                .unwrap(),
        )
    }

    async fn wait_for_hostfile(&self, what: &str, workers: &[u32]) {
        let expected = hostfile_of(workers);
        eventually(what, || async { read(&self.hostfile) == expected }, &self.log).await;
    }

    async fn wait_for_pods(&self, names: &[&str]) {
        eventually(&format!("pods {names:?}"), || async {
            for name in names {
                if !exists(&self.pods, name).await {
                    return false;
                }
            }
            true
        }, &self.log)
        .await;
    }
}

fn hostfile_follows_a_real_statefulset_and_scales_it_down_after_success() {
    runtime().block_on(follows_a_real_statefulset_and_scales_it_down_after_success());
}

async fn follows_a_real_statefulset_and_scales_it_down_after_success() {
    let f = Fixture::new(2).await;
    let handshake_arg = format!("--handshake-dir={}", f.handshake.display());
    let mut sidecar = f.start_sidecar(2, &[&handshake_arg, "--scale-down-on-success"]);
    let (pods, sets, hostfile, complete, log) = (&f.pods, &f.sets, &f.hostfile, &f.complete, &f.log);
    let pp = PostParams::default();

    f.wait_for_hostfile("the master-only hostfile at start", &[]).await;
    f.wait_for_pods(&["hf-worker-0", "hf-worker-1"]).await;
    assert_eq!(read(hostfile), hostfile_of(&[]), "pods that are not Ready are not listed");
    let waiting = (String::from("False"), String::from("the hostfile lists 0 of the 2 initial workers"));
    eventually("the master held back", || async { reachable_condition(pods).await == Some(waiting.clone()) }, log).await;

    set_ready(pods, "hf-worker-1", true).await;
    f.wait_for_hostfile("worker 1 listed once Ready", &[1]).await;
    assert!(!complete.exists(), "one of two workers is not complete");

    // A Ready pod with the worker labels but not a worker's name (say, a debugging pod) stays out.
    let stray: Pod = serde_json::from_value(json!({
        "metadata": { "name": "hf-debug", "labels": worker_labels() },
        "spec": { "nodeName": NOWHERE, "automountServiceAccountToken": false, "containers": [{ "name": "c", "image": "kompi/never-pulled:0" }] }
    }))
    .unwrap();
    pods.create(&pp, &stray).await.unwrap();
    set_ready(pods, "hf-debug", true).await;
    set_ready(pods, "hf-worker-0", true).await;
    f.wait_for_hostfile("both workers listed, by ordinal", &[0, 1]).await;
    eventually("the .complete marker", || async { complete.exists() }, log).await;
    // Listed, but their names do not resolve here on the host: the master stays unready, saying why.
    eventually("the master held back by unreachable workers", || async {
        reachable_condition(pods).await.is_some_and(|(status, message)| status == "False" && message.contains("2 of 2 listed workers do not answer on port 2022: hf-worker-0.hf ("))
    }, log).await;

    scale(sets, 3).await;
    f.wait_for_pods(&["hf-worker-2"]).await;
    set_ready(pods, "hf-worker-2", true).await;
    f.wait_for_hostfile("scale-up followed", &[0, 1, 2]).await;

    // The controller deletes workers 2 and 1 gracefully; with no kubelet they stay Terminating, and leave the hostfile at once.
    scale(sets, 1).await;
    f.wait_for_hostfile("scale-down followed", &[0]).await;
    set_ready(pods, "hf-worker-0", false).await;
    f.wait_for_hostfile("an unready worker dropped", &[]).await;
    assert!(complete.exists(), "the marker stays once set");
    // A worker pod that exists but does not serve (a restart, a scale-up) holds the master back.
    let starting = (String::from("False"), String::from("1 workers are starting and not listed yet: hf-worker-0"));
    eventually("the master held back by a starting worker", || async { reachable_condition(pods).await == Some(starting.clone()) }, log).await;
    // Being deleted (it stays Terminating with no kubelet), it no longer does.
    pods.delete("hf-worker-0", &DeleteParams::default()).await.unwrap();
    let runnable = (String::from("True"), String::from("all 0 listed workers answer on port 2022"));
    eventually("the master released", || async { reachable_condition(pods).await == Some(runnable.clone()) }, log).await;

    // A successful job: the sidecar scales the workers to 0 through the scale subresource, with the
    // rendered Role's one extra permission.
    std::fs::write(f.handshake.join("exit-status"), "0\n").unwrap();
    assert_eq!(sidecar.exit_code(log).await, Some(0), "{}", read(log));
    let replicas = sets.get(&format!("{CLUSTER}-worker")).await.unwrap().spec.replicas;
    let said = read(log);
    assert_eq!(replicas, Some(0), "the successful job scales the workers down:\n{said}");
    assert!(said.contains("workers scaled to 0"), "{said}");
    assert!(!said.contains("watching the worker pods failed"), "the rendered Role must allow every request:\n{said}");
}

fn once_stops_following_after_the_first_complete_hostfile_and_sigterm_stops_it() {
    runtime().block_on(once_stops_following_and_sigterm_stops_it());
}

async fn once_stops_following_and_sigterm_stops_it() {
    let f = Fixture::new(1).await;
    let mut sidecar = f.start_sidecar(1, &["--once"]);
    f.wait_for_pods(&["hf-worker-0"]).await;
    set_ready(&f.pods, "hf-worker-0", true).await;
    f.wait_for_hostfile("the complete hostfile", &[0]).await;
    eventually("the end of following", || async { read(&f.log).contains("no longer following") }, &f.log).await;
    assert!(f.complete.exists());

    set_ready(&f.pods, "hf-worker-0", false).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(read(&f.hostfile), hostfile_of(&[0]), "--once keeps the first complete hostfile");
    assert!(sidecar.0.try_wait().unwrap().is_none(), "the sidecar stays up (the pod stays ready):\n{}", read(&f.log));

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(sidecar.0.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(sidecar.exit_code(&f.log).await, Some(0), "{}", read(&f.log));
}

fn main() {
    harness::main(harness::tests![testbed_up => [
        hostfile_follows_a_real_statefulset_and_scales_it_down_after_success,
        once_stops_following_after_the_first_complete_hostfile_and_sigterm_stops_it,
    ]]);
}
