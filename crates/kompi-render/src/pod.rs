//! What the master pod and the worker pods share: the MPI container, kompi's volumes, git-sync init
//! containers, and the user's scheduling and volume settings.

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, PodSpec, Probe, SecretVolumeSource, TCPSocketAction, Volume, VolumeMount, EmptyDirVolumeSource,
    SecurityContext, PodSecurityContext,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kompi_spec::contract::{HOSTFILE, SSH_KEY_DIR};
use kompi_spec::{AppCode, ClusterSpec, PodOptions, pss};

use crate::command::InitCommand;
use crate::inject::cluster_kompi_bin;
use crate::mca::launcher_env;
use crate::service::SSH_PORT_NAME;

pub const SSH_KEY_VOLUME: &str = "kompi-ssh-key";
/// 0400: only the owner may read the key (kube-openmpi's defaultMode 256).
pub const KEY_FILE_MODE: i32 = 0o400;

pub fn env(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
}

pub fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount { name: volume.into(), mount_path: path.into(), read_only: read_only.then_some(true), ..Default::default() }
}

pub fn empty_dir(name: &str) -> Volume {
    Volume { name: name.into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() }
}

fn secret_volume(name: &str, secret: &str) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource { secret_name: Some(secret.into()), default_mode: Some(KEY_FILE_MODE), ..Default::default() }),
        ..Default::default()
    }
}

/// Every probe of sshd costs it a fork and a re-exec (~15 ms of CPU), for as long as the pod lives. So the
/// kubelet asks every second only until sshd first answers (a cluster is runnable no sooner than its
/// slowest pod is Ready), then every few seconds. The readiness probe runs at once when the startup probe
/// succeeds (kubelet 1.22 and later; older servers get [`fast_readiness_probe`]).
const STARTUP_PROBE_PERIOD_SECONDS: i32 = 1;
/// Ten minutes for sshd to first listen; past that the kubelet restarts the container.
const STARTUP_PROBE_ATTEMPTS: i32 = 600;
const READINESS_PROBE_PERIOD_SECONDS: i32 = 5;
/// A worker whose sshd stops answering leaves the hostfile within two periods.
const READINESS_PROBE_FAILURES: i32 = 2;

fn ssh_probe(period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction { port: IntOrString::String(SSH_PORT_NAME.into()), ..Default::default() }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

/// For kubelets older than 1.22, which run the readiness probe only at its next period after the startup
/// probe succeeded: the startup probe goes, and the readiness probe takes its one-second period.
pub fn fast_readiness_probe(pod: &mut PodSpec) {
    for container in &mut pod.containers {
        if let Some(startup) = container.startup_probe.take() {
            let readiness = container.readiness_probe.get_or_insert_with(|| startup.clone());
            readiness.period_seconds = startup.period_seconds;
        }
    }
}

/// The MPI container of either role: `kompi init` as PID 1, sshd on the named ssh port, the key mounted
/// read-only, the user's resources and mounts.
pub fn mpi_container(spec: &ClusterSpec, pod: &PodOptions, name: &str, init: &InitCommand, extra_mounts: Vec<VolumeMount>) -> Container {
    let mut env_vars = vec![env("HOSTFILE", HOSTFILE)];
    env_vars.extend(launcher_env(spec.mpi, HOSTFILE, pod.runs_as_root()).iter().map(|(k, v)| env(k, v)));
    let mut mounts = vec![mount(SSH_KEY_VOLUME, SSH_KEY_DIR, true)];
    mounts.extend(extra_mounts);
    mounts.extend(spec.app_codes.iter().map(|a| VolumeMount {
        name: a.volume(),
        mount_path: a.mount_path.clone(),
        sub_path: a.sub_path.clone(),
        ..Default::default()
    }));
    mounts.extend(pod.volume_mounts.iter().cloned());
    Container {
        name: name.into(),
        image: Some(spec.image.reference.clone()),
        image_pull_policy: Some(spec.image.pull_policy.to_string()),
        command: Some(vec![cluster_kompi_bin(spec).into()]),
        args: Some(init.to_args()),
        env: Some(env_vars),
        ports: Some(vec![ContainerPort {
            name: Some(SSH_PORT_NAME.into()),
            container_port: spec.ssh_port.into(),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        startup_probe: Some(ssh_probe(STARTUP_PROBE_PERIOD_SECONDS, STARTUP_PROBE_ATTEMPTS)),
        readiness_probe: Some(ssh_probe(READINESS_PROBE_PERIOD_SECONDS, READINESS_PROBE_FAILURES)),
        resources: pod.resources.clone(),
        security_context: pod.container_security_context.clone(),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

/// git-sync init containers (kube-openmpi's `<name>-fetch`), one per repository.
pub fn git_sync_containers(spec: &ClusterSpec) -> Vec<Container> {
    spec.app_codes
        .iter()
        .map(|a: &AppCode| {
            let mut env_vars = vec![
                env("GIT_SYNC_REPO", &a.git_repo),
                env("GIT_SYNC_BRANCH", &a.git_branch),
                env("GIT_SYNC_DEST", &a.name),
                env("GIT_SYNC_ONE_TIME", "true"),
                env("GIT_SYNC_WAIT", &a.wait_seconds.to_string()),
            ];
            let mut mounts = vec![mount(&a.volume(), "/git", false)];
            // The restricted profile refuses a deploy key (root) earlier, in the spec.
            let mut security_context = spec.restricted.then(|| pss::restricted_container(None));
            if a.git_secret.is_some() {
                env_vars.push(env("GIT_SYNC_SSH", "true"));
                env_vars.push(env("GIT_KNOWN_HOSTS", "false"));
                mounts.push(mount(&a.secret_volume(), "/etc/git-secret", true));
                // git-sync reads the deploy key as root, as kube-openmpi documented.
                security_context = Some(SecurityContext { run_as_user: Some(0), ..Default::default() });
            }
            Container {
                name: a.init_container(),
                image: Some(spec.git_sync_image.reference.clone()),
                image_pull_policy: Some(spec.git_sync_image.pull_policy.to_string()),
                env: Some(env_vars),
                volume_mounts: Some(mounts),
                security_context,
                ..Default::default()
            }
        })
        .collect()
}

/// Volumes both pods have: the key Secret, git-sync checkouts (and deploy keys), then the user's.
pub fn common_volumes(spec: &ClusterSpec, pod: &PodOptions) -> Vec<Volume> {
    let mut volumes = vec![secret_volume(SSH_KEY_VOLUME, &spec.name.ssh_secret())];
    for a in &spec.app_codes {
        volumes.push(empty_dir(&a.volume()));
        if let Some(secret) = &a.git_secret {
            volumes.push(secret_volume(&a.secret_volume(), secret));
        }
    }
    volumes.extend(pod.volumes.iter().cloned());
    volumes
}

/// The pod-level settings from the values, with no API token mounted anywhere by default.
pub fn pod_spec(spec: &ClusterSpec, pod: &PodOptions) -> PodSpec {
    let init_containers = git_sync_containers(spec);
    PodSpec {
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        scheduler_name: pod.scheduler_name.clone(),
        security_context: pod.security_context.clone().filter(|s| s != &PodSecurityContext::default()),
        image_pull_secrets: (!spec.pull_secrets.is_empty()).then(|| spec.pull_secrets.clone()),
        node_selector: (!pod.node_selector.is_empty()).then(|| pod.node_selector.clone()),
        tolerations: (!pod.tolerations.is_empty()).then(|| pod.tolerations.clone()),
        affinity: pod.affinity.clone(),
        init_containers: (!init_containers.is_empty()).then_some(init_containers),
        volumes: Some(common_volumes(spec, pod)),
        ..Default::default()
    }
}
