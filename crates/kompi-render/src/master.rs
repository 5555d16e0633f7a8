//! Pod NAME-master: the MPI container (`kompi init --role=master`) and the hostfile sidecar, which alone
//! holds API credentials, through a projected token volume mounted in it only. The pod's readiness gate is
//! the sidecar's condition that every listed worker answers on ssh.

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapProjection, Container, DownwardAPIProjection, DownwardAPIVolumeFile, EnvVar, EnvVarSource, KeyToPath,
    ObjectFieldSelector, Pod, PodReadinessGate, ProjectedVolumeSource, ResourceRequirements, SecurityContext,
    ServiceAccountTokenProjection, Volume, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kompi_spec::{ClusterSpec, pss};
use kompi_spec::contract::{
    HANDSHAKE_DIR, HOSTFILE, HOSTFILE_DIR, KOMPI_BIN, MASTER_CONTAINER, SERVICE_ACCOUNT_DIR, SIDECAR_CONTAINER, WORKERS_REACHABLE_CONDITION,
};

use crate::command::{HostfileCommand, OneShotCommand, Role};
use crate::inject::{cluster_kompi_image, inject_into_cluster_pod};
use crate::labels::{ALLOW_FROM_EXTERNAL, Component, meta};
use crate::pod::{empty_dir, mount, mpi_container, pod_spec};
use crate::worker::init_command;

pub const HOSTFILE_VOLUME: &str = "kompi-hostfile";
pub const HANDSHAKE_VOLUME: &str = "kompi-handshake";
pub const API_TOKEN_VOLUME: &str = "kompi-api-token";
/// The sidecar runs as nobody: it only reads the API and writes the hostfile.
const SIDECAR_UID: i64 = 65534;
const TOKEN_LIFETIME_SECONDS: i64 = 3600;

pub fn master_pod(spec: &ClusterSpec) -> Pod {
    let pod = &spec.master.pod;
    let mut init = init_command(spec, Role::Master);
    init.one_shot = spec.master.one_shot.as_ref().map(|o| OneShotCommand {
        workers: spec.workers.count,
        wait_timeout_seconds: o.wait_timeout_seconds,
        handshake_dir: HANDSHAKE_DIR.into(),
        command: o.command.clone(),
    });
    let mut mounts = vec![mount(HOSTFILE_VOLUME, HOSTFILE_DIR, true)];
    if spec.master.one_shot.is_some() {
        mounts.push(mount(HANDSHAKE_VOLUME, HANDSHAKE_DIR, false));
    }
    let mut pod_spec = pod_spec(spec, pod);
    pod_spec.hostname = Some(spec.name.master_pod());
    pod_spec.subdomain = Some(spec.name.service());
    pod_spec.service_account_name = Some(spec.name.service());
    // A one-shot master must not rerun a command that failed: its exit status is the result.
    pod_spec.restart_policy = Some(if spec.master.one_shot.is_some() { "Never" } else { "OnFailure" }.into());
    // Ready only once the sidecar says every listed worker answers: `kubectl wait` on the master then
    // means the cluster is runnable.
    pod_spec.readiness_gates = Some(vec![PodReadinessGate { condition_type: WORKERS_REACHABLE_CONDITION.into() }]);
    let volumes = pod_spec.volumes.get_or_insert_with(Vec::new);
    volumes.push(empty_dir(HOSTFILE_VOLUME));
    if spec.master.one_shot.is_some() {
        volumes.push(empty_dir(HANDSHAKE_VOLUME));
    }
    volumes.push(api_token_volume());
    pod_spec.containers = vec![mpi_container(spec, pod, MASTER_CONTAINER, &init, mounts), sidecar(spec)];
    inject_into_cluster_pod(spec, &mut pod_spec, pod, MASTER_CONTAINER);
    let mut metadata = meta(spec, spec.name.master_pod(), Some(Component::Master));
    if spec.network_policy {
        metadata.labels.get_or_insert_default().insert(ALLOW_FROM_EXTERNAL.into(), "true".into());
    }
    Pod { metadata, spec: Some(pod_spec), ..Default::default() }
}

pub fn hostfile_command(spec: &ClusterSpec) -> HostfileCommand {
    HostfileCommand {
        cluster: spec.name.to_string(),
        workers: spec.workers.count,
        worker_slots: spec.workers.pod.slots,
        master_slots: spec.master.pod.slots,
        ssh_port: spec.ssh_port,
        mpi: spec.mpi,
        output: HOSTFILE.into(),
        once: !spec.master.follow_workers,
        handshake_dir: spec.master.one_shot.as_ref().map(|_| HANDSHAKE_DIR.to_string()),
        scale_down_on_success: spec.scales_down_workers(),
    }
}

fn sidecar(spec: &ClusterSpec) -> Container {
    let mut mounts = vec![mount(HOSTFILE_VOLUME, HOSTFILE_DIR, false), mount(API_TOKEN_VOLUME, SERVICE_ACCOUNT_DIR, true)];
    if spec.master.one_shot.is_some() {
        mounts.push(mount(HANDSHAKE_VOLUME, HANDSHAKE_DIR, true));
    }
    Container {
        name: SIDECAR_CONTAINER.into(),
        image: Some(cluster_kompi_image(spec).reference.clone()),
        image_pull_policy: Some(cluster_kompi_image(spec).pull_policy.to_string()),
        command: Some(vec![KOMPI_BIN.into()]),
        args: Some(hostfile_command(spec).to_args()),
        env: Some(vec![EnvVar {
            name: "POD_NAMESPACE".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector { field_path: "metadata.namespace".into(), ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some([("cpu".to_string(), Quantity("10m".into())), ("memory".to_string(), Quantity("32Mi".into()))].into()),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            run_as_user: Some(SIDECAR_UID),
            run_as_group: Some(SIDECAR_UID),
            run_as_non_root: Some(true),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
            seccomp_profile: Some(pss::runtime_default_seccomp()),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

/// What the API clients expect at the ServiceAccount path: a bound token, the cluster CA, the namespace.
fn api_token_volume() -> Volume {
    Volume {
        name: API_TOKEN_VOLUME.into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".into(),
                        expiration_seconds: Some(TOKEN_LIFETIME_SECONDS),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "kube-root-ca.crt".into(),
                        items: Some(vec![KeyToPath { key: "ca.crt".into(), path: "ca.crt".into(), ..Default::default() }]),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "namespace".into(),
                            field_ref: Some(ObjectFieldSelector { field_path: "metadata.namespace".into(), ..Default::default() }),
                            ..Default::default()
                        }]),
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::spec;

    #[test]
    fn only_the_sidecar_has_credentials() {
        let pod = master_pod(&spec("")).spec.unwrap();
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.service_account_name.as_deref(), Some("mpi"));
        let with_token: Vec<&str> = pod
            .containers
            .iter()
            .filter(|c| c.volume_mounts.iter().flatten().any(|m| m.name == API_TOKEN_VOLUME))
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(with_token, vec![SIDECAR_CONTAINER]);
        assert_eq!(pod.hostname.as_deref(), Some("mpi-master"));
        assert_eq!(pod.subdomain.as_deref(), Some("mpi"));
        assert_eq!(pod.restart_policy.as_deref(), Some("OnFailure"));
    }

    #[test]
    fn the_master_is_ready_only_with_the_sidecars_condition_and_nothing_is_executed_to_probe() {
        let pod = master_pod(&spec("ssh:\n  port: 2222\n")).spec.unwrap();
        let gates: Vec<&str> = pod.readiness_gates.iter().flatten().map(|g| g.condition_type.as_str()).collect();
        assert_eq!(gates, [WORKERS_REACHABLE_CONDITION]);
        assert!(pod.containers.iter().all(|c| c.readiness_probe.as_ref().is_none_or(|p| p.exec.is_none())));
        let sidecar = pod.containers.iter().find(|c| c.name == SIDECAR_CONTAINER).unwrap();
        assert!(sidecar.args.as_ref().unwrap().contains(&"--ssh-port=2222".to_string()));
    }

    #[test]
    fn one_shot_master_runs_the_command_once() {
        let pod = master_pod(&spec("mpiMaster:\n  oneShot:\n    enabled: true\n    command: mpiexec hostname\n")).spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let args = pod.containers[0].args.clone().unwrap();
        assert_eq!(args[args.len() - 2..], ["--".to_string(), "mpiexec hostname".to_string()]);
        let sidecar = pod.containers[1].args.clone().unwrap();
        assert!(sidecar.contains(&format!("--handshake-dir={HANDSHAKE_DIR}")));
        assert!(sidecar.contains(&"--scale-down-on-success".to_string()));
    }
}
