//! The controller's decisions, one reconcile at a time, from made-up pods: which objects and pods a job
//! gets, when its launcher starts, how its status follows the pods, and what a failure says.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodCondition, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kompi_job::api::{JobStatus, MPIJob};
use kompi_job::build::Settings;
use kompi_job::gang::GangScheduler;
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
        workers_timeout_exit: 124,
        gang: None,
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
fn the_launchers_success_wins_over_the_cleanups_deleted_workers() {
    // A reconcile from a status that does not show the success yet, while the cleanup deletes the workers.
    let j = job(JOB);
    let running = run(&j, &JobStatus::default(), &with(workers("Running", true), pod("pi-launcher", "Running", false)), 0).status;
    let pods = with(workers("Running", true).into_iter().map(deleting).collect(), ended(pod("pi-launcher", "Succeeded", false), 0, "Completed", ""));
    let p = run(&j, &running, &pods, 9);
    assert!(p.status.is(SUCCEEDED) && !p.status.is(FAILED), "{:?}", p.status.conditions);
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
    let launcher = ended(pod("pi-launcher", "Failed", false), settings().workers_timeout_exit, "Error", message);
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

fn restarts_at(mut pod: Pod, restart_count: u32) -> Pod {
    pod.metadata.annotations = Some([("kompi.io/restart-count".to_string(), restart_count.to_string())].into());
    pod
}

fn with_policy(run_policy: &str) -> Job {
    job(&JOB.replace("runPolicy: {cleanPodPolicy: Running}", &format!("runPolicy: {{{run_policy}}}")))
}

#[test]
fn a_failed_launcher_restarts_the_run_up_to_the_backoff_limit() {
    let j = with_policy("cleanPodPolicy: Running, backoffLimit: 2");
    let running = run(&j, &JobStatus::default(), &with(workers("Running", true), pod("pi-launcher", "Running", false)), 0).status;
    let failed_launcher = |n| restarts_at(ended(pod("pi-launcher", "Failed", false), 3, "Error", "3"), n);

    let p = run(&j, &running, &with(workers("Running", true), failed_launcher(0)), 5);
    let restarting = p.status.condition(status::RESTARTING).unwrap();
    assert_eq!(restarting.reason.as_deref(), Some(reason::LAUNCHER_FAILED));
    assert_eq!(restarting.message.as_deref(), Some("restart 1 of 2 (backoffLimit) after: launcher pi-launcher on node node1 exited with code 3"));
    assert!(!p.status.is(RUNNING) && !p.status.is(FAILED) && p.status.restart_count == 1);
    assert!(p.events.iter().any(|e| e.warning && e.reason == reason::LAUNCHER_FAILED && e.message.starts_with("restart 1 of 2")));
    assert_eq!(p.delete, ["pi-launcher"], "the failed launcher goes; the workers stay");
    assert!(p.create.is_empty(), "the new launcher waits for the name");

    // The failed launcher seen again (deleting, or not yet): it is the earlier run's, never counted twice.
    for stale in [failed_launcher(0), deleting(failed_launcher(0))] {
        let again = run(&j, &p.status, &with(workers("Running", true), stale), 6);
        assert_eq!(again.status.restart_count, 1);
        assert!(again.events.is_empty() && again.create.is_empty(), "{:?}", again.events);
    }
    let p = run(&j, &p.status, &workers("Running", true), 7);
    assert_eq!(names(&p.create), ["pi-launcher"], "the healthy workers are kept");
    assert_eq!(p.create[0].metadata.annotations.as_ref().unwrap()["kompi.io/restart-count"], "1");
    let p = run(&j, &p.status, &with(workers("Running", true), restarts_at(pod("pi-launcher", "Running", false), 1)), 8);
    assert!(p.status.is(RUNNING) && p.status.condition(status::RESTARTING).is_none(), "Running replaces Restarting");

    let p = run(&j, &p.status, &with(workers("Running", true), failed_launcher(1)), 9);
    assert_eq!(p.status.restart_count, 2);
    assert!(p.status.condition(status::RESTARTING).unwrap().message.as_deref().unwrap().starts_with("restart 2 of 2"));
    let p = run(&j, &p.status, &with(workers("Running", true), failed_launcher(2)), 20);
    let failed = p.status.condition(FAILED).unwrap();
    assert_eq!(failed.reason.as_deref(), Some(reason::BACKOFF_LIMIT_EXCEEDED));
    assert_eq!(failed.message.as_deref(), Some("backoffLimit 2 reached (2 restarts); the last failure: launcher pi-launcher on node node1 exited with code 3"));
    assert_eq!(p.status.completion_time, Some(at(20)));
}

#[test]
fn without_a_backoff_limit_the_first_failure_is_final() {
    let p = run(&job(JOB), &JobStatus::default(), &with(workers("Running", true), ended(pod("pi-launcher", "Failed", false), 3, "Error", "3")), 0);
    assert_eq!(p.status.condition(FAILED).unwrap().reason.as_deref(), Some(reason::LAUNCHER_FAILED));
    let p = run(&with_policy("backoffLimit: 0"), &JobStatus::default(), &with(workers("Running", true), ended(pod("pi-launcher", "Failed", false), 3, "Error", "3")), 0);
    assert_eq!(p.status.condition(FAILED).unwrap().reason.as_deref(), Some(reason::BACKOFF_LIMIT_EXCEEDED));
}

#[test]
fn a_lost_worker_restarts_the_run_only_when_its_restart_policy_is_on_failure() {
    let all = with(workers("Running", true), pod("pi-launcher", "Running", false));
    let mut lost = all.clone();
    lost[1] = deleting(lost[1].clone());

    let never = with_policy("backoffLimit: 3");
    let running = run(&never, &JobStatus::default(), &all, 0).status;
    let failed = run(&never, &running, &lost, 5).status.condition(FAILED).cloned().unwrap();
    assert_eq!(failed.reason.as_deref(), Some(reason::WORKER_DELETED), "restartPolicy Never: the job fails");

    let on_failure = job(&JOB.replace("runPolicy: {cleanPodPolicy: Running}", "runPolicy: {backoffLimit: 3}").replace("      replicas: 3\n", "      replicas: 3\n      restartPolicy: OnFailure\n"));
    let running = run(&on_failure, &JobStatus::default(), &all, 0).status;
    let p = run(&on_failure, &running, &lost, 5);
    assert!(!p.status.is(FAILED));
    assert_eq!(p.status.condition(status::RESTARTING).unwrap().reason.as_deref(), Some(reason::WORKER_DELETED));
    assert_eq!(p.delete, ["pi-launcher"], "the running launcher goes; the deleted worker is already going");
    // Until the old run's pods are gone nothing is made; then the worker and a launcher are.
    let mut leaving = lost.clone();
    leaving[3] = deleting(leaving[3].clone());
    let p = run(&on_failure, &p.status, &leaving, 6);
    assert!(p.create.is_empty() && !p.status.is(FAILED) && p.status.restart_count == 1);
    let rest: Vec<Pod> = vec![all[0].clone(), all[2].clone()];
    let p = run(&on_failure, &p.status, &rest, 7);
    assert_eq!(names(&p.create), ["pi-worker-1", "pi-launcher"]);
}

#[test]
fn past_the_active_deadline_every_running_pod_is_stopped() {
    let j = with_policy("cleanPodPolicy: None, activeDeadlineSeconds: 60");
    let mut all = with(workers("Running", true), pod("pi-launcher", "Running", false));
    let p = run(&j, &JobStatus::default(), &all, 0);
    assert_eq!(p.requeue_after, Some(60), "the controller looks again when the deadline falls due");
    let p = run(&j, &p.status, &all, 45);
    assert_eq!(p.requeue_after, Some(15));
    all[0] = ended(pod("pi-worker-0", "Succeeded", false), 0, "Completed", "");
    let p = run(&j, &p.status, &all, 60);
    let failed = p.status.condition(FAILED).unwrap();
    assert_eq!(failed.reason.as_deref(), Some(reason::DEADLINE_EXCEEDED));
    assert_eq!(failed.message.as_deref(), Some("MPIJob hpc/pi was active longer than its activeDeadlineSeconds (60 s): every pod is stopped"));
    assert_eq!(p.delete, ["pi-launcher", "pi-worker-1", "pi-worker-2"], "stopped even under cleanPodPolicy None");
    assert_eq!(p.requeue_after, None);
}

#[test]
fn suspended_time_does_not_count_toward_the_deadline() {
    let j = with_policy("activeDeadlineSeconds: 60");
    let started = run(&j, &JobStatus::default(), &[], 0).status;
    let suspended = run(&with_policy("activeDeadlineSeconds: 60, suspend: true"), &started, &[], 10).status;
    let p = run(&j, &suspended, &[], 500);
    assert!(!p.status.is(FAILED), "{:?}", p.status.conditions);
    assert_eq!((p.status.start_time, p.requeue_after), (Some(at(500)), Some(60)));
}

#[test]
fn a_finished_job_is_deleted_once_its_ttl_ran_out() {
    let j = with_policy("ttlSecondsAfterFinished: 30");
    let done = run(&j, &JobStatus::default(), &with(workers("Running", true), ended(pod("pi-launcher", "Succeeded", false), 0, "Completed", "")), 100);
    assert!(done.status.is(SUCCEEDED) && !done.delete_job);
    assert_eq!(done.requeue_after, Some(30));
    let later = run(&j, &done.status, &[], 129);
    assert_eq!((later.delete_job, later.requeue_after), (false, Some(1)));
    let expired = run(&j, &done.status, &[], 130);
    assert!(expired.delete_job);
    assert!(!run(&job(JOB), &done.status, &[], 10_000).delete_job, "no TTL, kept for ever");
}

#[test]
fn clean_pod_policy_applies_to_launcher_and_workers_alike() {
    let ended_pods = || {
        let mut pods = workers("Running", true);
        pods[0] = ended(pod("pi-worker-0", "Failed", false), 1, "Error", "");
        with(pods, ended(pod("pi-launcher", "Failed", false), 3, "Error", "3"))
    };
    let deleted = |policy: &str| {
        let j = with_policy(&format!("cleanPodPolicy: {policy}"));
        let done = run(&j, &JobStatus::default(), &ended_pods(), 0).status;
        run(&j, &done, &ended_pods(), 1).delete
    };
    assert_eq!(deleted("All"), ["pi-launcher", "pi-worker-0", "pi-worker-1", "pi-worker-2"]);
    assert_eq!(deleted("Running"), ["pi-worker-1", "pi-worker-2"]);
    assert!(deleted("None").is_empty());
}

#[test]
fn suspended_mid_run_its_pods_go_and_on_resume_the_old_ones_are_waited_for() {
    let j = job(JOB);
    let suspended_job = with_policy("cleanPodPolicy: Running, suspend: true");
    let all = with(workers("Running", true), pod("pi-launcher", "Running", false));
    let running = run(&j, &JobStatus::default(), &all, 0).status;
    let p = run(&suspended_job, &running, &all, 10);
    assert!(p.status.is(SUSPENDED) && !p.status.is(RUNNING) && !p.status.is(FAILED));
    assert_eq!(p.delete, ["pi-launcher", "pi-worker-0", "pi-worker-1", "pi-worker-2"]);
    assert_eq!(p.status.start_time, Some(at(0)), "kept while suspended, as mpi-operator does");
    let gone = run(&suspended_job, &p.status, &[], 20).status;
    assert!(gone.replica_statuses.values().all(|r| r.active == 0), "Kueue waits for no active replica: {:?}", gone.replica_statuses);
    // Resumed while the old pods are still terminating: no failure, nothing made yet.
    let terminating: Vec<Pod> = all.iter().cloned().map(deleting).collect();
    let p = run(&j, &p.status, &terminating, 30);
    assert!(!p.status.is(FAILED) && !p.status.is(SUSPENDED) && p.create.is_empty(), "{:?}", p.status.conditions);
    assert_eq!(p.status.start_time, Some(at(30)));
    let p = run(&j, &p.status, &[], 31);
    assert_eq!(p.create.len(), 4);
}

fn run_gang(job: &Job, status: &JobStatus, pods: &[Pod], second: i64) -> Plan {
    let refs: Vec<&Pod> = pods.iter().collect();
    let gang = Settings { gang: Some(GangScheduler::Volcano), ..settings() };
    plan(job, status, &refs, &gang, &at(second))
}

/// mpi-operator #608: a gang scheduler binds no pod before the whole group exists, so a launcher
/// created only once the workers are Ready would never be created. With a gang scheduler kompi makes
/// the PodGroup and then the launcher together with the workers, whatever launcherCreationPolicy says.
#[test]
fn with_gang_scheduling_the_group_and_all_its_pods_are_made_at_once() {
    let j = job(&JOB.replace("  runPolicy:", "  launcherCreationPolicy: WaitForWorkersReady\n  runPolicy:"));
    let p = run_gang(&j, &JobStatus::default(), &[], 0);
    let group = p.pod_group.expect("a PodGroup");
    assert_eq!((group.metadata.name.as_deref(), &group.data["spec"]["minMember"]), (Some("pi"), &serde_json::json!(4)));
    assert_eq!(names(&p.create), ["pi-worker-0", "pi-worker-1", "pi-worker-2", "pi-launcher"]);
    assert!(p.create.iter().all(|pod| pod.spec.as_ref().unwrap().scheduler_name.as_deref() == Some("volcano")));
    assert!(!p.delete_pod_group);
    // Pending and unbound, the pods stay as they are: nothing is created twice, the group is kept.
    let pending = with(workers("Pending", false), pod("pi-launcher", "Pending", false));
    let p = run_gang(&j, &p.status, &pending, 1);
    assert!(p.create.is_empty() && p.delete.is_empty() && p.pod_group.is_some(), "{:?}", names(&p.create));
}

#[test]
fn the_group_goes_when_the_job_is_suspended_or_cleaned_up_as_in_mpi_operator() {
    let suspended = with_policy("cleanPodPolicy: Running, suspend: true");
    let p = run_gang(&suspended, &JobStatus::default(), &[], 0);
    assert!(p.delete_pod_group && p.pod_group.is_none() && p.create.is_empty());
    let succeeded = with(workers("Running", true), ended(pod("pi-launcher", "Succeeded", false), 0, "Completed", ""));
    for (policy, deleted) in [("Running", true), ("All", true), ("None", false)] {
        let j = with_policy(&format!("cleanPodPolicy: {policy}"));
        let done = run_gang(&j, &JobStatus::default(), &succeeded, 0);
        assert!(done.status.is(SUCCEEDED), "{policy}");
        assert_eq!((done.delete_pod_group, done.pod_group.is_some()), (deleted, false), "{policy}");
    }
    // Without a gang scheduler there is no group to delete.
    assert!(!run(&suspended, &JobStatus::default(), &[], 0).delete_pod_group);
}

#[test]
fn a_scheduling_policy_without_a_gang_scheduler_is_named_once_as_not_enforced() {
    let j = with_policy("cleanPodPolicy: Running, schedulingPolicy: {minAvailable: 2}");
    let p = run(&j, &JobStatus::default(), &[], 0);
    assert!(p.pod_group.is_none());
    let warning = p.events.iter().find(|e| e.reason == reason::NOT_ENFORCED).expect("a NotEnforced event");
    assert!(warning.warning && warning.message.contains("without --gang-scheduling"), "{}", warning.message);
    assert!(run(&j, &p.status, &[], 1).events.iter().all(|e| e.reason != reason::NOT_ENFORCED), "once");
    assert!(run_gang(&j, &JobStatus::default(), &[], 0).events.iter().all(|e| e.reason != reason::NOT_ENFORCED));
}
