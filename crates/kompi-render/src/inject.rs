//! kompi brought into a pod whose image may not have it, as Flux Operator brings Flux: an init container
//! of kompi's runtime image copies the `kompi` binary into an emptyDir, which the MPI containers mount
//! read-only and run kompi from. The init container needs no privilege and no API access.

use k8s_openapi::api::core::v1::{Capabilities, Container, PodSpec, SecurityContext};
use kompi_spec::contract::{INJECT_DIR, INJECTED_KOMPI_BIN, KOMPI_BIN};

use crate::pod::{empty_dir, mount};

pub const INJECT_VOLUME: &str = "kompi-bin";
pub const INJECT_CONTAINER: &str = "kompi-inject";

/// The image that holds kompi at [`KOMPI_BIN`], and how to pull it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injection {
    pub image: String,
    pub pull_policy: String,
}

/// The init container's command line: `kompi inject DIR` copies the running binary into DIR.
pub fn inject_args() -> Vec<String> {
    vec!["inject".into(), INJECT_DIR.into()]
}

/// Adds the volume and the init container (first, so that later init containers may use kompi too) and
/// mounts the volume into each named container. `run_as_user` is the uid the pod's MPI container runs as,
/// when known: the init container runs as the same user, which `runAsNonRoot` pods require. Returns
/// where those containers find kompi.
pub fn inject(pod: &mut PodSpec, injection: &Injection, containers: &[&str], run_as_user: Option<i64>) -> &'static str {
    pod.volumes.get_or_insert_with(Vec::new).push(empty_dir(INJECT_VOLUME));
    let init = Container {
        name: INJECT_CONTAINER.into(),
        image: Some(injection.image.clone()),
        image_pull_policy: Some(injection.pull_policy.clone()),
        command: Some(vec![KOMPI_BIN.into()]),
        args: Some(inject_args()),
        volume_mounts: Some(vec![mount(INJECT_VOLUME, INJECT_DIR, false)]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
            run_as_user,
            ..Default::default()
        }),
        ..Default::default()
    };
    pod.init_containers.get_or_insert_with(Vec::new).insert(0, init);
    for container in pod.containers.iter_mut().filter(|c| containers.contains(&c.name.as_str())) {
        container.volume_mounts.get_or_insert_with(Vec::new).push(mount(INJECT_VOLUME, INJECT_DIR, true));
    }
    INJECTED_KOMPI_BIN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> PodSpec {
        PodSpec {
            containers: vec![Container { name: "mpi".into(), ..Default::default() }, Container { name: "other".into(), ..Default::default() }],
            init_containers: Some(vec![Container { name: "users-init".into(), ..Default::default() }]),
            ..Default::default()
        }
    }

    #[test]
    fn the_init_container_fills_a_volume_the_named_containers_mount_read_only() {
        let mut spec = pod();
        let injection = Injection { image: "kompi/runtime:0.1.0".into(), pull_policy: "IfNotPresent".into() };
        let bin = inject(&mut spec, &injection, &["mpi"], Some(1000));
        assert_eq!(bin, "/kompi/kompi");
        let init = spec.init_containers.as_ref().unwrap();
        assert_eq!(init.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["kompi-inject", "users-init"]);
        assert_eq!(init[0].command.as_deref(), Some(&["/usr/local/bin/kompi".to_string()][..]));
        assert_eq!(init[0].args.as_deref(), Some(&["inject".to_string(), "/kompi".to_string()][..]));
        let mounts = init[0].volume_mounts.as_ref().unwrap();
        assert_eq!((mounts[0].mount_path.as_str(), mounts[0].read_only), ("/kompi", None));
        let security = init[0].security_context.as_ref().unwrap();
        assert_eq!((security.run_as_user, security.allow_privilege_escalation, security.read_only_root_filesystem), (Some(1000), Some(false), Some(true)));
        let mpi = spec.containers[0].volume_mounts.as_ref().unwrap();
        assert_eq!((mpi[0].name.as_str(), mpi[0].read_only), ("kompi-bin", Some(true)));
        assert!(spec.containers[1].volume_mounts.is_none(), "only the named containers mount kompi");
        assert!(spec.volumes.as_ref().unwrap().iter().any(|v| v.name == "kompi-bin" && v.empty_dir.is_some()));
    }
}
