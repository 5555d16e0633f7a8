//! StatefulSet NAME-worker: the workers, each `kompi init --role=worker` with sshd behind a readiness
//! probe on the ssh port, named NAME-worker-<i> and resolvable as NAME-worker-<i>.NAME.

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kompi_spec::ClusterSpec;
use kompi_spec::contract::{HOSTFILE, SSH_KEY_DIR, WORKER_CONTAINER};

use crate::command::{InitCommand, Role};
use crate::inject::inject_into_cluster_pod;
use crate::labels::{Component, labels, meta, selector};
use crate::pod::{mpi_container, pod_spec};

pub fn init_command(spec: &ClusterSpec, role: Role) -> InitCommand {
    InitCommand {
        role,
        cluster: spec.name.to_string(),
        ssh_port: spec.ssh_port,
        mpi: spec.mpi,
        key_dir: SSH_KEY_DIR.into(),
        hostfile: HOSTFILE.into(),
        mca: spec.mca_params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        one_shot: None,
    }
}

pub fn stateful_set(spec: &ClusterSpec) -> StatefulSet {
    let pod = &spec.workers.pod;
    let mut pod_spec = pod_spec(spec, pod);
    pod_spec.containers = vec![mpi_container(spec, pod, WORKER_CONTAINER, &init_command(spec, Role::Worker), Vec::new())];
    inject_into_cluster_pod(spec, &mut pod_spec, pod, WORKER_CONTAINER);
    StatefulSet {
        metadata: meta(spec, spec.name.worker_set(), Some(Component::Worker)),
        spec: StatefulSetSpec {
            replicas: Some(spec.workers.count as i32),
            service_name: Some(spec.name.service()),
            pod_management_policy: Some(spec.workers.pod_management_policy.to_string()),
            selector: selector(spec, Some(Component::Worker)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels(spec, Some(Component::Worker))), ..Default::default() }),
                spec: Some(pod_spec),
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::spec;

    #[test]
    fn workers_have_no_token_and_a_probe_on_ssh() {
        let sts = stateful_set(&spec("mpiWorkers:\n  num: 3\n"));
        let s = sts.spec;
        assert_eq!(s.replicas, Some(3));
        assert_eq!(s.service_name.as_deref(), Some("mpi"));
        let pod = s.template.spec.unwrap();
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert!(pod.service_account_name.is_none());
        let c = &pod.containers[0];
        assert_eq!(c.command.as_deref(), Some(&["/usr/local/bin/kompi".to_string()][..]), "the default image is kompi's own: nothing injected");
        assert_eq!(c.args.as_ref().unwrap()[..2], ["init".to_string(), "--role=worker".to_string()]);
        assert!(c.readiness_probe.as_ref().unwrap().tcp_socket.is_some());
        assert!(!c.volume_mounts.as_ref().unwrap().iter().any(|m| m.mount_path.contains("serviceaccount")));
    }
}
