//! mpi-operator's defaults and validation, rule by rule, and kompi's additions.

use kompi_job::api::MPIJob;
use kompi_job::job::{CleanPodPolicy, LauncherCreation, RestartPolicy};
use kompi_job::validate::{apply_defaults, validate};
use kompi_spec::MpiImplementation;

const MINIMAL: &str = "
apiVersion: kubeflow.org/v2beta1
kind: MPIJob
metadata: {name: pi}
spec:
  mpiReplicaSpecs:
    Launcher:
      template: {spec: {containers: [{name: l, image: i, command: [mpirun]}]}}
    Worker:
      replicas: 2
      template: {spec: {containers: [{name: w, image: i}]}}
";

fn object(yaml: &str) -> MPIJob {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn problems(yaml: &str) -> String {
    validate(&object(yaml)).expect_err("must be invalid").to_string()
}

#[test]
fn mpi_operators_defaults() {
    let mut job = object(MINIMAL);
    apply_defaults(&mut job);
    let s = &job.spec;
    assert_eq!(s.slots_per_worker, Some(1));
    assert_eq!(s.run_launcher_as_worker, Some(false));
    assert_eq!(s.ssh_auth_mount_path.as_deref(), Some("/root/.ssh"));
    assert_eq!(s.mpi_implementation.as_deref(), Some("OpenMPI"));
    assert_eq!(s.launcher_creation_policy.as_deref(), Some("AtStartup"));
    assert_eq!(s.run_policy.clean_pod_policy.as_deref(), Some("None"));
    assert_eq!(s.run_policy.suspend, Some(false));
    assert_eq!(s.mpi_replica_specs["Launcher"].restart_policy.as_deref(), Some("OnFailure"));
    assert_eq!(s.mpi_replica_specs["Launcher"].replicas, Some(1));
    assert_eq!(s.mpi_replica_specs["Worker"].restart_policy.as_deref(), Some("Never"));

    let valid = validate(&object(MINIMAL)).unwrap();
    assert_eq!((valid.workers, valid.slots_per_worker, valid.mpi), (2, 1, MpiImplementation::OpenMpi));
    assert_eq!((valid.launcher_creation, valid.run_policy.clean_pod_policy), (LauncherCreation::AtStartup, CleanPodPolicy::None));
    assert_eq!(valid.worker.unwrap().restart_policy, RestartPolicy::Never);
    assert_eq!(valid.names.namespace, "default");
}

#[test]
fn exactly_one_launcher() {
    let e = problems(&MINIMAL.replace("    Launcher:\n", "    Launcher:\n      replicas: 2\n"));
    assert!(e.contains("spec.mpiReplicaSpecs[Launcher].replicas: Invalid value: 2: must be 1"), "{e}");
    let e = problems(&MINIMAL.replace("Launcher:", "Leader:"));
    assert!(e.contains("spec.mpiReplicaSpecs[Launcher]: Required value: must have Launcher replica spec"), "{e}");
    assert!(e.contains(r#"spec.mpiReplicaSpecs[Leader]: Unsupported value: "Leader""#), "{e}");
}

#[test]
fn at_least_one_worker_when_there_is_a_worker_spec() {
    let e = problems(&MINIMAL.replace("replicas: 2", "replicas: 0"));
    assert!(e.contains("spec.mpiReplicaSpecs[Worker].replicas: Invalid value: 0: must be greater than or equal to 1"), "{e}");
    let e = problems(&MINIMAL.replace("      replicas: 2\n", ""));
    assert!(e.contains("[Worker].replicas: Invalid value: 0"), "a Worker spec without replicas defaults to 0: {e}");
}

#[test]
fn the_last_workers_name_must_be_a_dns_label() {
    let long = "a".repeat(55);
    let e = problems(&MINIMAL.replace("name: pi}", &format!("name: {long}}}")).replace("replicas: 2", "replicas: 10"));
    assert!(e.contains(&format!("will not able to create pod with invalid DNS label \"{long}-worker-9\"")), "{e}");
    let e = problems(&MINIMAL.replace("name: pi}", "name: 1pi}"));
    assert!(e.contains("metadata.name") && e.contains("must start with a letter"), "{e}");
    let e = problems(&MINIMAL.replace("name: pi}", &format!("name: {}}}", "b".repeat(46))));
    assert!(e.contains("at most 45 characters"), "{e}");
}

#[test]
fn only_known_implementations_policies_and_restart_policies() {
    let e = problems(&MINIMAL.replace("spec:\n  mpiReplicaSpecs", "spec:\n  mpiImplementation: LAM\n  mpiReplicaSpecs"));
    assert!(e.contains(r#"spec.mpiImplementation: Unsupported value: "LAM": supported values: "Intel", "MPICH", "OpenMPI""#), "{e}");
    let e = problems(&MINIMAL.replace("spec:\n  mpiReplicaSpecs", "spec:\n  runPolicy: {cleanPodPolicy: Sometimes}\n  mpiReplicaSpecs"));
    assert!(e.contains("spec.runPolicy.cleanPodPolicy: Unsupported value"), "{e}");
    let e = problems(&MINIMAL.replace("      replicas: 2\n", "      replicas: 2\n      restartPolicy: Always\n"));
    assert!(e.contains("spec.mpiReplicaSpecs[Worker].restartPolicy: Unsupported value: \"Always\""), "{e}");
    let e = problems(&MINIMAL.replace("spec:\n  mpiReplicaSpecs", "spec:\n  launcherCreationPolicy: Later\n  mpiReplicaSpecs"));
    assert!(e.contains("spec.launcherCreationPolicy: Unsupported value"), "{e}");
    for (field, value) in [("ttlSecondsAfterFinished", "-1"), ("activeDeadlineSeconds", "-5"), ("backoffLimit", "-2")] {
        let e = problems(&MINIMAL.replace("spec:\n  mpiReplicaSpecs", &format!("spec:\n  runPolicy: {{{field}: {value}}}\n  mpiReplicaSpecs")));
        assert!(e.contains(&format!("spec.runPolicy.{field}: Invalid value: {value}")), "{e}");
    }
}

#[test]
fn pods_need_containers_and_the_launcher_a_command() {
    let e = problems(&MINIMAL.replace("template: {spec: {containers: [{name: w, image: i}]}}", "template: {spec: {containers: []}}"));
    assert!(e.contains("spec.mpiReplicaSpecs[Worker].template.spec.containers: Required value"), "{e}");
    let e = problems(&MINIMAL.replace(", command: [mpirun]", ""));
    assert!(e.contains("spec.mpiReplicaSpecs[Launcher].template.spec.containers[0].command: Required value"), "{e}");
    let e = problems(&MINIMAL.replace("containers: [{name: w, image: i}]", "containers: [{name: w, image: 3}]"));
    assert!(e.contains("spec.mpiReplicaSpecs[Worker].template: Invalid value") && e.contains("containers[0].image"), "{e}");
}

#[test]
fn every_problem_at_once_in_mpi_operators_words() {
    let e = problems(&MINIMAL.replace("    Launcher:\n", "    Launcher:\n      replicas: 3\n").replace("replicas: 2", "replicas: -1"));
    assert!(e.starts_with("Found validation errors: ["), "{e}");
    assert!(e.contains("[Launcher].replicas") && e.contains("[Worker].replicas"), "{e}");
}

#[test]
fn the_workers_timeout_annotation() {
    let annotated = |v: &str| MINIMAL.replace("metadata: {name: pi}", &format!("metadata: {{name: pi, annotations: {{kompi.io/workers-timeout-seconds: '{v}'}}}}"));
    assert_eq!(validate(&object(&annotated("45"))).unwrap().workers_timeout_seconds, Some(45));
    let e = problems(&annotated("soon"));
    assert!(e.contains("metadata.annotations[kompi.io/workers-timeout-seconds]"), "{e}");
}

#[test]
fn run_policy_fields_are_read() {
    let run_policy = "runPolicy: {backoffLimit: 2, activeDeadlineSeconds: 60, ttlSecondsAfterFinished: 0, schedulingPolicy: {queue: q}}";
    let job = validate(&object(&MINIMAL.replace("spec:\n  mpiReplicaSpecs", &format!("spec:\n  {run_policy}\n  mpiReplicaSpecs")))).unwrap();
    assert!(job.scheduling.given && job.scheduling.queue.as_deref() == Some("q"), "{:?}", job.scheduling);
    assert_eq!((job.run_policy.backoff_limit, job.run_policy.active_deadline_seconds, job.run_policy.ttl_seconds_after_finished), (Some(2), Some(60), Some(0)));
}
