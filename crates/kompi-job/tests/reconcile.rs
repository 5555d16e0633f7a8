//! The controller's decisions, one reconcile at a time, from made-up pods: which objects and pods a job
//! gets, when its launcher starts, how its status follows the pods, and what a failure says.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodCondition, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kompi_job::api::{JobStatus, MPIJob};
use kompi_job::build::Settings;
use kompi_job::status::{self, CREATED, FAILED, RUNNING, SUCCEEDED, SUSPENDED, reason};
use kompi_job::{Job, Plan, plan, validate};
use kompi_render::inject::Injection;

const JOB: &str = "
apiVersion: kubeflow.org/v2beta1
kind: MPIJob
metadata: {name: pi, namespace: hpc, uid: uid-1}
spec:
  runPolicy: {cleanPodPolicy: Running}
  mpiReplicaSpecs:
    Launcher:
      template:
        spec:
          containers: [{name: launcher, image: kompi/runtime:0.1.0, command: [mpirun, -n, '3', /opt/kompi/examples/allreduce]}]
    Worker:
      replicas: 3
      template:
        spec:
          containers: [{name: worker, image: kompi/runtime:0.1.0, command: [/usr/sbin/sshd, -De]}]
";

fn job(yaml: &str) -> Job {
    let object: MPIJob = serde_saphyr::from_str(yaml).unwrap();
    validate(&object).unwrap_or_else(|e| panic!("{e}"))
}

fn settings() -> Settings {
    Settings {
        injection: Injection { image: "kompi/runtime:0.1.0".into(), pull_policy: "IfNotPresent".into() },
        ssh_port: 2022,
        workers_timeout_seconds: 600,
    }
}

fn at(second: i64) -> Time {
    Time(Timestamp::from_second(1_700_000_000 + second).unwrap())
}

fn pod(name: &str, phase: &str, ready: bool) -> Pod {
    Pod {
        metadata: ObjectMeta { name: Some(name.into()), uid: Some(format!("uid-{name}")), ..Default::default() },
        spec: Some(PodSpec { node_name: Some("node1".into()), ..Default::default() }),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            conditions: Some(vec![PodCondition { type_: "Ready".into(), status: if ready { "True" } else { "False" }.into(), ..Default::default() }]),
            ..Default::default()
        }),
    }
}

fn ended(mut pod: Pod, exit_code: i32, reason: &str, message: &str) -> Pod {
    let status = pod.status.as_mut().unwrap();
    status.container_statuses = Some(vec![ContainerStatus {
        name: "main".into(),
        state: Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code,
                reason: Some(reason.into()),
                message: (!message.is_empty()).then(|| message.into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }]);
    pod
}

fn deleting(mut pod: Pod) -> Pod {
    pod.metadata.deletion_timestamp = Some(at(50));
    pod
}

fn run(job: &Job, status: &JobStatus, pods: &[Pod], second: i64) -> Plan {
    let refs: Vec<&Pod> = pods.iter().collect();
    plan(job, status, &refs, &settings(), &at(second))
}

fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter().map(|p| p.metadata.name.clone().unwrap()).collect()
}

fn workers(phase: &str, ready: bool) -> Vec<Pod> {
    (0..3).map(|i| pod(&format!("pi-worker-{i}"), phase, ready)).collect()
}

fn with(mut pods: Vec<Pod>, extra: Pod) -> Vec<Pod> {
    pods.push(extra);
    pods
}

#[test]
fn a_new_job_gets_its_objects_workers_and_launcher_at_once() {
    let p = run(&job(JOB), &JobStatus::default(), &[], 0);
    assert_eq!(names(&p.create), ["pi-worker-0", "pi-worker-1", "pi-worker-2", "pi-launcher"]);
    assert!(p.needs_secret && p.service.is_some() && p.config_map.is_some());
    assert!(p.status.is(CREATED));
    assert_eq!(p.status.start_time, Some(at(0)));
    assert_eq!(p.events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(), [reason::CREATED]);
}

#[test]
fn wait_for_workers_ready_holds_the_launcher_back() {
    let j = job(&JOB.replace("  runPolicy:", "  launcherCreationPolicy: WaitForWorkersReady\n  runPolicy:"));
    let p = run(&j, &JobStatus::default(), &workers("Running", false), 0);
    assert!(p.create.is_empty(), "{:?}", names(&p.create));
    let p = run(&j, &p.status, &workers("Running", true), 1);
    assert_eq!(names(&p.create), ["pi-launcher"]);
}

#[test]
fn running_when_the_launcher_and_every_worker_run() {
    let j = job(JOB);
    let s = run(&j, &JobStatus::default(), &with(workers("Pending", false), pod("pi-launcher", "Running", false)), 0).status;
    assert!(!s.is(RUNNING));
    let p = run(&j, &s, &with(workers("Running", true), pod("pi-launcher", "Running", false)), 1);
    assert!(p.status.is(RUNNING));
    assert_eq!(p.status.conditions.last().unwrap().type_, RUNNING, "the latest condition is last: kubectl's State column");
    let w = &p.status.replica_statuses["Worker"];
    assert_eq!((w.active, w.ready), (3, 3));
    assert_eq!(p.status.replica_statuses["Launcher"].active, 1);
    assert!(p.create.is_empty(), "nothing is created once the launcher exists");
}

#[test]
fn the_launchers_success_decides_and_running_pods_are_cleaned() {
    let j = job(JOB);
    let running = run(&j, &JobStatus::default(), &with(workers("Running", true), pod("pi-launcher", "Running", false)), 0).status;
    let p = run(&j, &running, &with(workers("Running", true), ended(pod("pi-launcher", "Succeeded", false), 0, "Completed", "")), 9);
    assert!(p.status.is(SUCCEEDED) && !p.status.is(RUNNING));
    assert_eq!(p.status.completion_time, Some(at(9)));
    assert_eq!(p.delete, ["pi-worker-0", "pi-worker-1", "pi-worker-2"], "cleanPodPolicy Running keeps the finished launcher");
    assert!(p.events.iter().any(|e| e.reason == reason::SUCCEEDED && !e.warning));
}

#[test]
fn a_failing_launcher_fails_the_job_with_its_exit_code() {
    let j = job(JOB);
    let launcher = ended(pod("pi-launcher", "Failed", false), 3, "Error", "3");
    let p = run(&j, &JobStatus::default(), &with(workers("Running", true), launcher), 0);
    let failed = p.status.condition(FAILED).unwrap();
    assert_eq!(failed.reason.as_deref(), Some(reason::LAUNCHER_FAILED));
    assert_eq!(failed.message.as_deref(), Some("launcher pi-launcher on node node1 exited with code 3"));
    assert!(p.events.iter().any(|e| e.warning && e.reason == reason::LAUNCHER_FAILED));
}

#[test]
fn workers_that_never_answer_are_named() {
    let j = job(JOB);
    let message = "the workers were not ready after 30s, so the command never ran: the hostfile lists 3 of 3 workers; not answering on port 2022: pi-worker-2.pi.hpc.svc (connection refused)";
    let launcher = ended(pod("pi-launcher", "Failed", false), status::WORKERS_TIMEOUT_EXIT, "Error", message);
    let p = run(&j, &JobStatus::default(), &with(workers("Running", true), launcher), 0);
    let failed = p.status.condition(FAILED).unwrap();
    assert_eq!(failed.reason.as_deref(), Some(reason::WORKERS_UNREACHABLE));
    assert!(failed.message.as_deref().unwrap().ends_with("pi-worker-2.pi.hpc.svc (connection refused)"), "{failed:?}");
}

#[test]
fn a_worker_deleted_while_the_job_runs_fails_it_by_name() {
    let j = job(JOB);
    let all = with(workers("Running", true), pod("pi-launcher", "Running", false));
    let running = run(&j, &JobStatus::default(), &all, 0).status;
    let mut pods = all.clone();
    pods[1] = deleting(pods[1].clone());
    let p = run(&j, &running, &pods, 5);
    let failed = p.status.condition(FAILED).unwrap();
    assert_eq!(failed.message.as_deref(), Some("worker pi-worker-1 on node node1 was deleted while the job ran"));
    assert!(p.create.is_empty(), "a worker of a started run is not recreated");
    let gone: Vec<Pod> = all.into_iter().filter(|p| p.metadata.name.as_deref() != Some("pi-worker-1")).collect();
    let p = run(&j, &running, &gone, 5);
    assert_eq!(p.status.condition(FAILED).unwrap().reason.as_deref(), Some(reason::WORKER_DELETED));
}

#[test]
fn before_the_run_a_missing_worker_is_just_created() {
    let j = job(&JOB.replace("  runPolicy:", "  launcherCreationPolicy: WaitForWorkersReady\n  runPolicy:"));
    let pods = vec![pod("pi-worker-0", "Running", true), pod("pi-worker-2", "Running", true)];
    let p = run(&j, &JobStatus::default(), &pods, 0);
    assert!(!p.status.is(FAILED));
    assert_eq!(names(&p.create), ["pi-worker-1"]);
}

#[test]
fn an_oom_killed_or_evicted_worker_is_named_with_its_node_and_reason() {
    let j = job(JOB);
    let mut pods = with(workers("Running", true), pod("pi-launcher", "Running", false));
    pods[2] = ended(pod("pi-worker-2", "Failed", false), 137, "OOMKilled", "");
    let failed = run(&j, &JobStatus::default(), &pods, 0).status.condition(FAILED).cloned().unwrap();
    assert_eq!(failed.message.as_deref(), Some("worker pi-worker-2 on node node1 was OOMKilled (exit code 137)"));
    let mut evicted = pod("pi-worker-0", "Failed", false);
    let s = evicted.status.as_mut().unwrap();
    s.reason = Some("Evicted".into());
    s.message = Some("The node was low on resource: memory.".into());
    pods[2] = pod("pi-worker-2", "Running", true);
    pods[0] = evicted;
    let failed = run(&j, &JobStatus::default(), &pods, 0).status.condition(FAILED).cloned().unwrap();
    assert_eq!(failed.reason.as_deref(), Some(reason::EVICTED));
    assert_eq!(failed.message.as_deref(), Some("worker pi-worker-0 on node node1 was evicted: The node was low on resource: memory."));
}

#[test]
fn a_finished_job_stays_finished() {
    let j = job(JOB);
    let done = run(&j, &JobStatus::default(), &with(workers("Running", true), ended(pod("pi-launcher", "Failed", false), 1, "Error", "1")), 0).status;
    let again = run(&j, &done, &[], 60);
    assert_eq!(again.status.conditions, done.conditions);
    assert!(again.events.is_empty() && again.create.is_empty());
}

#[test]
fn a_suspended_job_gets_no_pods_and_resumes_with_a_new_start_time() {
    let suspended = job(&JOB.replace("runPolicy: {cleanPodPolicy: Running}", "runPolicy: {cleanPodPolicy: Running, suspend: true}"));
    let p = run(&suspended, &JobStatus::default(), &[], 0);
    assert!(p.create.is_empty() && p.status.is(SUSPENDED) && !p.status.is(RUNNING));
    assert_eq!(p.status.start_time, None, "a job that never ran has no start time");
    let p2 = run(&suspended, &p.status, &workers("Running", true), 1);
    assert_eq!(p2.delete, ["pi-worker-0", "pi-worker-1", "pi-worker-2"]);
    let resumed = run(&job(JOB), &p.status, &[], 30);
    assert!(!resumed.status.is(SUSPENDED));
    assert_eq!(resumed.status.condition(SUSPENDED).unwrap().reason.as_deref(), Some(reason::RESUMED));
    assert_eq!(resumed.status.start_time, Some(at(30)));
    assert_eq!(resumed.create.len(), 4);
}

#[test]
fn an_invalid_job_fails_once_with_every_problem() {
    let object: MPIJob = serde_saphyr::from_str(&JOB.replace("replicas: 3", "replicas: 0").replace("Launcher:\n", "Launcher:\n      replicas: 2\n")).unwrap();
    let problems = validate(&object).unwrap_err();
    let (s, events) = status::invalid(&JobStatus::default(), &problems, &at(0));
    let message = s.condition(FAILED).unwrap().message.clone().unwrap();
    assert!(message.contains("spec.mpiReplicaSpecs[Launcher].replicas: Invalid value: 2: must be 1"), "{message}");
    assert!(message.contains("spec.mpiReplicaSpecs[Worker].replicas: Invalid value: 0: must be greater than or equal to 1"), "{message}");
    assert_eq!(events.iter().filter(|e| e.warning).count(), 1);
    let (again, events) = status::invalid(&s, &problems, &at(9));
    assert_eq!(again, s);
    assert!(events.is_empty());
}
