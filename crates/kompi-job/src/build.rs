//! The objects of one job, each a pure function of the [`Job`] and the operator's [`Settings`]: the ssh
//! key Secret, the headless Service, the hostfile ConfigMap, the worker Pods and the launcher Pod.
//!
//! Where they differ from mpi-operator's, on purpose:
//! - The Service publishes not-ready addresses, so a worker's name resolves as soon as it has an IP;
//!   readiness is kompi's gate (the launcher's `kompi init` waits until every host answers on ssh).
//! - kompi is injected (kompi-render's [`inject`]) and the MPI container runs `kompi init`: the worker's
//!   sshd and the launcher's gate. The key is mounted read-only at [`KEY_DIR`], not at
//!   `sshAuthMountPath`: `kompi init` copies it into `~/.kompi` (0700, files 0600), which is what lets
//!   sshd's StrictModes accept it for any user, and writes `~/.ssh/config`, which a Secret mounted over
//!   `~/.ssh` would make impossible.
//! - The launcher is a Pod, not a batch/v1 Job: see [`launcher_pod`].
//! - No pod gets an API token unless its template asks for one.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EnvVar, KeyToPath, Pod, PodDNSConfig, PodSpec, Probe, Secret,
    SecretVolumeSource, Service, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kompi_render::command::{JobInitCommand, JobLaunch, Role};
use kompi_render::hostfile::{HostEntry, hostfile};
use kompi_render::inject::{Injection, inject};
use kompi_spec::sshkey::GeneratedKey;

use crate::api::{API_VERSION, KIND};
use crate::contract::{
    CONFIG_MOUNT_PATH, DISCOVER_HOSTS_KEY, HOSTFILE_KEY, HOSTFILE_PATH, JOB_ROLE_ENV, KEY_DIR, LABEL_JOB_NAME, LABEL_JOB_ROLE,
    LABEL_MANAGED_BY, LABEL_OPERATOR_NAME, LABEL_REPLICA_INDEX, MANAGED_BY, OPERATOR_NAME, RESTART_ANNOTATION, ROLE_LAUNCHER, ROLE_WORKER,
    SSH_PRIVATE_KEY, SSH_PUBLIC_KEY,
};
use crate::env::launcher_env;
use crate::gang::{GangScheduler, join_group};
use crate::job::{Job, Replica};

const KEY_VOLUME: &str = "kompi-ssh-key";
const CONFIG_VOLUME: &str = "mpi-job-config";

/// How the operator runs every job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// kompi's runtime image, from which kompi is injected.
    pub injection: Injection,
    /// sshd's port in the job's pods (kompi's sshd, so any free port: kompi writes both ends).
    pub ssh_port: u16,
    /// How long the launcher waits for every worker to answer, unless the job's annotation says otherwise.
    pub workers_timeout_seconds: u32,
    /// `kompi init`'s exit status when the workers never all answered (the command never ran): the
    /// command line's table of statuses hands it over.
    pub workers_timeout_exit: i32,
    /// The gang scheduler whose PodGroup every job gets (`--gang-scheduling`); none by default.
    pub gang: Option<GangScheduler>,
}

/// The controller reference every object of the job carries: deleting the MPIJob deletes them all.
pub fn owner_reference(job: &Job) -> OwnerReference {
    OwnerReference {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        name: job.names.name.clone(),
        uid: job.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The labels of the job's Service, ConfigMap and Secret.
pub fn object_labels(job: &Job) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (LABEL_JOB_NAME.to_string(), job.names.name.clone()),
    ])
}

/// What selects the job's pods (the Service's selector).
pub fn pod_selector(job: &Job) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_OPERATOR_NAME.to_string(), OPERATOR_NAME.to_string()),
        (LABEL_JOB_NAME.to_string(), job.names.name.clone()),
    ])
}

fn meta(job: &Job, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(job.names.namespace.clone()),
        labels: Some(labels),
        owner_references: Some(vec![owner_reference(job)]),
        ..Default::default()
    }
}

/// The job's ssh key, as mpi-operator stores it (type kubernetes.io/ssh-auth); kompi's is ed25519.
pub fn ssh_secret(job: &Job, key: &GeneratedKey) -> Secret {
    Secret {
        metadata: meta(job, job.names.ssh_secret(), object_labels(job)),
        type_: Some("kubernetes.io/ssh-auth".into()),
        data: Some(BTreeMap::from([
            (SSH_PRIVATE_KEY.to_string(), ByteString(key.private_openssh.clone().into_bytes())),
            (SSH_PUBLIC_KEY.to_string(), ByteString(key.public_openssh.clone().into_bytes())),
        ])),
        ..Default::default()
    }
}

/// Headless, named after the job, publishing pods before they are Ready.
pub fn service(job: &Job) -> Service {
    Service {
        metadata: meta(job, job.names.service(), object_labels(job)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(pod_selector(job)),
            publish_not_ready_addresses: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `hostfile` (every host from the start, with its slots) and `discover_hosts.sh` (the hosts running now,
/// for Horovod's elastic mode), as mpi-operator writes them.
pub fn config_map(job: &Job, running_workers: &[u32]) -> ConfigMap {
    let entries: Vec<HostEntry> = job.hosts().into_iter().map(|host| HostEntry { host, slots: job.slots_per_worker }).collect();
    ConfigMap {
        metadata: meta(job, job.names.config_map(), object_labels(job)),
        data: Some(BTreeMap::from([
            (HOSTFILE_KEY.to_string(), hostfile(job.mpi, &entries)),
            (DISCOVER_HOSTS_KEY.to_string(), discover_hosts(job, running_workers)),
        ])),
        ..Default::default()
    }
}

/// One `echo <host>` line per host that runs: the script mpi-operator's users call.
pub fn discover_hosts(job: &Job, running_workers: &[u32]) -> String {
    let launcher = job.run_launcher_as_worker.then(|| job.names.launcher());
    let hosts = launcher.into_iter().chain(running_workers.iter().map(|i| job.names.worker(*i)));
    std::iter::once("#!/bin/sh\n".to_string()).chain(hosts.map(|pod| format!("echo {}\n", job.names.host(&pod)))).collect()
}

/// Worker `index`: the template's first container runs `kompi init` as its sshd when the template's
/// command is sshd's or left out (mpi-operator's default is `/usr/sbin/sshd -De`); any other command
/// is kept, and must then serve ssh on [`Settings::ssh_port`] itself.
pub fn worker_pod(job: &Job, index: u32, settings: &Settings) -> Option<Pod> {
    let replica = job.worker.as_ref()?;
    let name = job.names.worker(index);
    let mut pod = base_pod(job, replica, &name, ROLE_WORKER, settings);
    pod.metadata.labels.get_or_insert_with(BTreeMap::new).insert(LABEL_REPLICA_INDEX.into(), index.to_string());
    let spec = pod.spec.as_mut()?;
    spec.restart_policy = Some(replica.restart_policy.as_str().into());
    let kompi = injected(spec, settings);
    let container = &mut spec.containers[0];
    if let Some(sshd) = sshd_of(container) {
        let init = JobInitCommand {
            role: Role::Worker,
            job: job.names.name.clone(),
            ssh_port: settings.ssh_port,
            mpi: job.mpi,
            key_dir: KEY_DIR.into(),
            hostfile: HOSTFILE_PATH.into(),
            sshd,
            launch: None,
        };
        container.command = Some(vec![kompi.into()]);
        container.args = Some(init.to_args());
        // The template's probe was for the sshd kompi replaced.
        container.readiness_probe = Some(ssh_probe(settings.ssh_port));
    }
    Some(pod)
}

/// The launcher, a Pod named `<job>-launcher`: its first container's command runs under `kompi init`,
/// which starts it once every host of the hostfile answers on ssh (or fails naming those that did not,
/// after the workers timeout), and exits with its status.
///
/// Why a Pod and not a batch/v1 Job (mpi-operator's choice): on Kubernetes 1.20 a Job can be neither
/// suspended (1.21) nor expired by TTL (beta in 1.21), so the operator has to do both itself either way;
/// a Job would add a second controller between the MPIJob and its pod (a slower start, the Job
/// controller's own retry and backoff rules competing with `runPolicy`, a status to translate), and give
/// the pod a random suffix, while `runLauncherAsWorker` needs a stable host name. A Pod with
/// `restartPolicy: Never` leaves every decision, and the status, to this operator alone.
pub fn launcher_pod(job: &Job, settings: &Settings, restart_count: u32) -> Pod {
    let replica = &job.launcher;
    let mut pod = base_pod(job, replica, &job.names.launcher(), ROLE_LAUNCHER, settings);
    pod.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(RESTART_ANNOTATION.into(), restart_count.to_string());
    let spec = pod.spec.as_mut().expect("base_pod sets a spec");
    spec.restart_policy = Some("Never".into());
    spec.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: CONFIG_VOLUME.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: job.names.config_map(),
            items: Some(vec![
                KeyToPath { key: HOSTFILE_KEY.into(), path: HOSTFILE_KEY.into(), mode: Some(0o444), ..Default::default() },
                KeyToPath { key: DISCOVER_HOSTS_KEY.into(), path: DISCOVER_HOSTS_KEY.into(), mode: Some(0o555), ..Default::default() },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    });
    let runs_as_root = run_as_user(spec).is_none_or(|uid| uid == 0);
    let kompi = injected(spec, settings);
    let container = &mut spec.containers[0];
    add_env(container, &launcher_env(job, runs_as_root));
    container.volume_mounts.get_or_insert_with(Vec::new).push(VolumeMount {
        name: CONFIG_VOLUME.into(),
        mount_path: CONFIG_MOUNT_PATH.into(),
        ..Default::default()
    });
    let command: Vec<String> = container.command.iter().flatten().chain(container.args.iter().flatten()).cloned().collect();
    let init = JobInitCommand {
        role: Role::Launcher,
        job: job.names.name.clone(),
        ssh_port: settings.ssh_port,
        mpi: job.mpi,
        key_dir: KEY_DIR.into(),
        hostfile: HOSTFILE_PATH.into(),
        sshd: None,
        launch: Some(JobLaunch {
            hosts: job.hosts().len() as u32,
            wait_timeout_seconds: job.workers_timeout_seconds.unwrap_or(settings.workers_timeout_seconds),
            serve_ssh: job.run_launcher_as_worker,
            command,
        }),
    };
    container.command = Some(vec![kompi.into()]);
    container.args = Some(init.to_args());
    pod
}

/// The template made into a named pod of the job: labels, host name in the job's Service, the key, no
/// API token by default; in the job's PodGroup when the operator gang-schedules.
fn base_pod(job: &Job, replica: &Replica, name: &str, role: &str, settings: &Settings) -> Pod {
    let template = replica.template.clone();
    let template_meta = template.metadata.unwrap_or_default();
    let mut labels = template_meta.labels.unwrap_or_default();
    labels.extend(pod_selector(job));
    labels.insert(LABEL_JOB_ROLE.into(), role.into());
    labels.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
    let mut spec = template.spec.unwrap_or_default();
    spec.hostname = Some(name.into());
    spec.subdomain = Some(job.names.service());
    if spec.host_network == Some(true) {
        spec.dns_policy = Some("ClusterFirstWithHostNet".into());
    }
    // Short names (`<job>-worker-0`) resolve too, as with mpi-operator's workers.
    let search = format!("{}.{}.svc.cluster.local", job.names.service(), job.names.namespace);
    spec.dns_config.get_or_insert_with(PodDNSConfig::default).searches.get_or_insert_with(Vec::new).push(search);
    spec.automount_service_account_token.get_or_insert(false);
    let mode = key_file_mode(run_as_user(&spec), spec.security_context.as_ref().and_then(|s| s.fs_group));
    spec.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: KEY_VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(job.names.ssh_secret()),
            default_mode: Some(mode),
            items: Some(vec![
                KeyToPath { key: SSH_PRIVATE_KEY.into(), path: "id_rsa".into(), ..Default::default() },
                KeyToPath { key: SSH_PUBLIC_KEY.into(), path: "id_rsa.pub".into(), ..Default::default() },
                KeyToPath { key: SSH_PUBLIC_KEY.into(), path: "authorized_keys".into(), ..Default::default() },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    });
    let container = &mut spec.containers[0];
    add_env(container, &[(JOB_ROLE_ENV.to_string(), role.to_string())]);
    container.volume_mounts.get_or_insert_with(Vec::new).push(VolumeMount {
        name: KEY_VOLUME.into(),
        mount_path: KEY_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    });
    let mut pod = Pod {
        metadata: ObjectMeta { annotations: template_meta.annotations, ..meta(job, name.into(), labels) },
        spec: Some(spec),
        ..Default::default()
    };
    if let Some(gang) = &settings.gang {
        join_group(&mut pod, job, gang);
    }
    pod
}

/// Injects kompi for the first container; returns where it finds kompi.
fn injected(spec: &mut PodSpec, settings: &Settings) -> &'static str {
    let uid = run_as_user(spec);
    let name = spec.containers[0].name.clone();
    inject(spec, &settings.injection, &[&name], uid)
}

/// The uid the first container runs as, when the pod spec says.
fn run_as_user(spec: &PodSpec) -> Option<i64> {
    let container = spec.containers.first().and_then(|c| c.security_context.as_ref()).and_then(|s| s.run_as_user);
    container.or_else(|| spec.security_context.as_ref().and_then(|s| s.run_as_user))
}

/// The key files' mode: readable by the container's user, who may not be the files' owner (root) and
/// has no group unless the pod sets fsGroup. Only `kompi init` reads them, to copy them 0600 into a
/// private directory; sshd and ssh never see these.
pub fn key_file_mode(run_as_user: Option<i64>, fs_group: Option<i64>) -> i32 {
    match (run_as_user, fs_group) {
        (Some(0), _) => 0o400,
        (_, Some(_)) => 0o440,
        _ => 0o444,
    }
}

/// The sshd a worker's command runs (`Some(None)`: the image's default sshd), or `None` when the command
/// is something else.
fn sshd_of(container: &Container) -> Option<Option<String>> {
    match container.command.as_deref() {
        None | Some([]) => Some(None),
        Some([program, ..]) if program.rsplit('/').next() == Some("sshd") => Some(program.starts_with('/').then(|| program.clone())),
        Some(_) => None,
    }
}

fn ssh_probe(port: u16) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(port.into()), ..Default::default() }),
        period_seconds: Some(1),
        failure_threshold: Some(3),
        ..Default::default()
    }
}

/// Adds each variable the container does not set itself: the user's value wins.
fn add_env(container: &mut Container, vars: &[(String, String)]) {
    let env = container.env.get_or_insert_with(Vec::new);
    for (name, value) in vars {
        if !env.iter().any(|e| &e.name == name) {
            env.push(EnvVar { name: name.clone(), value: Some(value.clone()), ..Default::default() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{job_from_yaml, settings};

    const JOB: &str = "
apiVersion: kubeflow.org/v2beta1
kind: MPIJob
metadata: {name: pi, namespace: hpc, uid: u-1}
spec:
  slotsPerWorker: 2
  mpiReplicaSpecs:
    Launcher:
      replicas: 1
      template:
        spec:
          containers:
          - name: launcher
            image: example/mpi
            command: [mpirun, -n, '4']
            args: [/home/mpiuser/pi]
    Worker:
      replicas: 2
      template:
        metadata: {labels: {team: a}}
        spec:
          containers:
          - name: worker
            image: example/mpi
            command: [/usr/sbin/sshd, -De, -f, /home/mpiuser/.sshd_config]
            readinessProbe: {tcpSocket: {port: 2222}}
            securityContext: {runAsUser: 1000}
";

    #[test]
    fn workers_run_kompis_sshd_from_the_injected_binary() {
        let job = job_from_yaml(JOB);
        let pod = worker_pod(&job, 1, &settings()).unwrap();
        let labels = pod.metadata.labels.as_ref().unwrap();
        for (k, v) in [(LABEL_JOB_NAME, "pi"), (LABEL_JOB_ROLE, "worker"), (LABEL_REPLICA_INDEX, "1"), ("team", "a")] {
            assert_eq!(labels.get(k).map(String::as_str), Some(v), "{k}");
        }
        let spec = pod.spec.unwrap();
        assert_eq!((spec.hostname.as_deref(), spec.subdomain.as_deref()), (Some("pi-worker-1"), Some("pi")));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.automount_service_account_token, Some(false));
        let c = &spec.containers[0];
        assert_eq!(c.command.as_deref(), Some(&["/kompi/kompi".to_string()][..]));
        let args = c.args.as_ref().unwrap();
        for a in ["--role=worker", "--cluster=pi", "--key-dir=/etc/kompi/ssh-key", "--sshd=/usr/sbin/sshd", "--ssh-port=2022"] {
            assert!(args.contains(&a.to_string()), "{a} in {args:?}");
        }
        let probe = c.readiness_probe.as_ref().unwrap().tcp_socket.as_ref().unwrap();
        assert_eq!(probe.port, IntOrString::Int(2022));
        let init = &spec.init_containers.as_ref().unwrap()[0];
        assert_eq!((init.name.as_str(), init.security_context.as_ref().unwrap().run_as_user), ("kompi-inject", Some(1000)));
        let key = spec.volumes.as_ref().unwrap().iter().find(|v| v.name == KEY_VOLUME).unwrap().secret.clone().unwrap();
        assert_eq!((key.secret_name.as_deref(), key.default_mode), (Some("pi-ssh"), Some(0o444)));
    }

    #[test]
    fn pods_of_kompis_own_image_run_its_kompi_without_an_init_container() {
        let job = job_from_yaml(&JOB.replace("image: example/mpi", "image: kompi/runtime:0.1.0"));
        for spec in [worker_pod(&job, 0, &settings()).unwrap().spec.unwrap(), launcher_pod(&job, &settings(), 0).spec.unwrap()] {
            assert_eq!(spec.containers[0].command.as_deref(), Some(&["/usr/local/bin/kompi".to_string()][..]));
            assert!(spec.init_containers.is_none());
        }
    }

    #[test]
    fn a_worker_command_that_is_not_sshd_is_kept() {
        let job = job_from_yaml(&JOB.replace("[/usr/sbin/sshd, -De, -f, /home/mpiuser/.sshd_config]", "[/start.sh]"));
        let spec = worker_pod(&job, 0, &settings()).unwrap().spec.unwrap();
        assert_eq!(spec.containers[0].command.as_deref(), Some(&["/start.sh".to_string()][..]));
        assert!(spec.init_containers.is_some(), "kompi is still injected");
    }

    #[test]
    fn the_launcher_runs_its_command_under_kompis_gate() {
        let job = job_from_yaml(JOB);
        let pod = launcher_pod(&job, &settings(), 0);
        assert_eq!(pod.metadata.name.as_deref(), Some("pi-launcher"));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        let c = &spec.containers[0];
        let args = c.args.clone().unwrap();
        let tail: Vec<&str> = args.iter().skip_while(|a| *a != "--").skip(1).map(String::as_str).collect();
        assert_eq!(tail, ["mpirun", "-n", "4", "/home/mpiuser/pi"]);
        for a in ["--role=launcher", "--one-shot-workers=2", "--wait-timeout=600", "--no-sshd", "--hostfile=/etc/mpi/hostfile"] {
            assert!(args.contains(&a.to_string()), "{a} in {args:?}");
        }
        let env: BTreeMap<String, String> = c.env.iter().flatten().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect();
        assert_eq!(env["K_MPI_JOB_ROLE"], "launcher");
        assert_eq!(env["OMPI_MCA_orte_default_hostfile"], "/etc/mpi/hostfile");
        assert_eq!(env["PRTE_MCA_prte_default_hostfile"], "/etc/mpi/hostfile");
        let mounts: Vec<&str> = c.volume_mounts.iter().flatten().map(|m| m.mount_path.as_str()).collect();
        assert_eq!(mounts, ["/etc/kompi/ssh-key", "/kompi", "/etc/mpi"]);
    }

    #[test]
    fn a_launcher_that_is_also_a_worker_serves_ssh_and_is_in_the_hostfile() {
        let job = job_from_yaml(&JOB.replace("slotsPerWorker: 2", "slotsPerWorker: 2\n  runLauncherAsWorker: true"));
        let args = launcher_pod(&job, &settings(), 0).spec.unwrap().containers[0].args.clone().unwrap();
        assert!(args.contains(&"--one-shot-workers=3".to_string()) && !args.contains(&"--no-sshd".to_string()), "{args:?}");
        let data = config_map(&job, &[1]).data.unwrap();
        assert_eq!(data["hostfile"], "pi-launcher.pi.hpc.svc slots=2\npi-worker-0.pi.hpc.svc slots=2\npi-worker-1.pi.hpc.svc slots=2\n");
        assert_eq!(data["discover_hosts.sh"], "#!/bin/sh\necho pi-launcher.pi.hpc.svc\necho pi-worker-1.pi.hpc.svc\n");
    }

    #[test]
    fn hydra_hostfiles_use_colons() {
        let job = job_from_yaml(&JOB.replace("slotsPerWorker: 2", "slotsPerWorker: 2\n  mpiImplementation: MPICH"));
        assert_eq!(config_map(&job, &[]).data.unwrap()["hostfile"], "pi-worker-0.pi.hpc.svc:2\npi-worker-1.pi.hpc.svc:2\n");
    }

    #[test]
    fn the_service_publishes_pods_before_they_are_ready() {
        let s = service(&job_from_yaml(JOB)).spec.unwrap();
        assert_eq!((s.cluster_ip.as_deref(), s.publish_not_ready_addresses), (Some("None"), Some(true)));
        assert_eq!(s.selector.unwrap()[LABEL_JOB_NAME], "pi");
    }

    #[test]
    fn key_modes_let_only_the_container_user_read() {
        assert_eq!(key_file_mode(Some(0), None), 0o400);
        assert_eq!(key_file_mode(Some(1000), Some(1000)), 0o440);
        assert_eq!(key_file_mode(Some(1000), None), 0o444);
    }

    #[test]
    fn every_object_is_owned_by_the_job() {
        let job = job_from_yaml(JOB);
        let owner = owner_reference(&job);
        assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("MPIJob", "u-1", Some(true)));
        assert_eq!(service(&job).metadata.owner_references, Some(vec![owner.clone()]));
        assert_eq!(launcher_pod(&job, &settings(), 0).metadata.owner_references, Some(vec![owner]));
    }
}
