//! kompi brought into a pod whose image may not have it, as Flux Operator brings Flux: an init container
//! of kompi's runtime image copies the `kompi` binary into an emptyDir, which the MPI containers mount
//! read-only and run kompi from. The init container needs no privilege and no API access.

use k8s_openapi::api::core::v1::{Capabilities, Container, PodSpec, SecurityContext};
use kompi_spec::contract::{INJECT_DIR, INJECTED_KOMPI_BIN, KOMPI_BIN, needs_injection};
use kompi_spec::{ClusterSpec, Image, KompiSource, PodOptions};

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
/// where those containers find kompi. Containers that all run kompi's image already have it: nothing is
/// added for them.
pub fn inject(pod: &mut PodSpec, injection: &Injection, containers: &[&str], run_as_user: Option<i64>) -> &'static str {
    let named = || pod.containers.iter().filter(|c| containers.contains(&c.name.as_str()));
    if named().all(|c| !needs_injection(c.image.as_deref().unwrap_or_default(), &injection.image)) {
        return KOMPI_BIN;
    }
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

impl From<&KompiSource> for Injection {
    fn from(source: &KompiSource) -> Self {
        Injection { image: source.image.reference.clone(), pull_policy: source.image.pull_policy.to_string() }
    }
}

/// Where a cluster's MPI containers find kompi: injected (`kompiImage.inject`), or in the MPI image.
pub fn cluster_kompi_bin(spec: &ClusterSpec) -> &'static str {
    if spec.kompi.inject { INJECTED_KOMPI_BIN } else { KOMPI_BIN }
}

/// The image that runs kompi alone (the hostfile sidecar): kompi's own when it is injected, else the MPI image.
pub fn cluster_kompi_image(spec: &ClusterSpec) -> &Image {
    if spec.kompi.inject { &spec.kompi.image } else { &spec.image }
}

/// Injects kompi into a master or worker pod when the values ask for it, for its MPI container.
pub fn inject_into_cluster_pod(spec: &ClusterSpec, pod: &mut PodSpec, options: &PodOptions, mpi_container: &str) {
    if spec.kompi.inject {
        inject(pod, &Injection::from(&spec.kompi), &[mpi_container], options.run_as_user());
    }
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

    #[test]
    fn containers_of_kompis_own_image_run_its_kompi_and_get_nothing_injected() {
        let injection = Injection { image: "kompi/runtime:0.1.0".into(), pull_policy: "IfNotPresent".into() };
        let mut spec = pod();
        spec.containers[0].image = Some("kompi/runtime:0.1.0".into());
        let untouched = spec.clone();
        assert_eq!(inject(&mut spec, &injection, &["mpi"], None), "/usr/local/bin/kompi");
        assert_eq!(spec, untouched);
        spec.containers[1].image = Some("mpioperator/openmpi:0.5.0".into());
        assert_eq!(inject(&mut spec, &injection, &["mpi", "other"], None), "/kompi/kompi", "one container without kompi: injected");
    }

    #[test]
    fn a_cluster_of_kompis_own_image_has_nothing_injected() {
        let spec = crate::testing::spec("");
        assert!(!spec.kompi.inject, "the default MPI image is kompi's own");
        let master = crate::master::master_pod(&spec).spec.unwrap();
        assert!(master.init_containers.unwrap_or_default().iter().all(|c| c.name != INJECT_CONTAINER));
        assert_eq!(cluster_kompi_bin(&spec), "/usr/local/bin/kompi");
    }

    fn mpi_and_sidecar(pod: &PodSpec) -> (&Container, Option<&Container>) {
        (&pod.containers[0], pod.containers.get(1))
    }

    #[test]
    fn a_cluster_with_its_own_mpi_image_runs_the_kompi_injected_from_kompis_image() {
        let spec = crate::testing::spec("image:\n  repository: everpeace/kube-openmpi\n  tag: 0.7.0\nmpiWorkers:\n  securityContext: {runAsUser: 1000}\n");
        let master = crate::master::master_pod(&spec).spec.unwrap();
        let workers = crate::worker::stateful_set(&spec).spec.template.spec.unwrap();
        for (pod, uid) in [(&master, None), (&workers, Some(1000))] {
            let init = &pod.init_containers.as_ref().expect("an init container")[0];
            assert_eq!((init.name.as_str(), init.image.as_deref()), (INJECT_CONTAINER, Some("kompi/runtime:0.1.0")));
            assert_eq!(init.security_context.as_ref().unwrap().run_as_user, uid, "the init container runs as the MPI container's user");
            let (mpi, _) = mpi_and_sidecar(pod);
            assert_eq!(mpi.image.as_deref(), Some("everpeace/kube-openmpi:0.7.0"));
            assert_eq!(mpi.command.as_deref(), Some(&[INJECTED_KOMPI_BIN.to_string()][..]));
            assert!(mpi.volume_mounts.as_ref().unwrap().iter().any(|m| m.name == INJECT_VOLUME && m.mount_path == INJECT_DIR));
        }
        let sidecar = mpi_and_sidecar(&master).1.unwrap();
        assert_eq!((sidecar.image.as_deref(), sidecar.command.as_deref()), (Some("kompi/runtime:0.1.0"), Some(&[KOMPI_BIN.to_string()][..])));
    }

    #[test]
    fn the_injection_image_is_a_value_and_inject_false_runs_the_mpi_images_own_kompi() {
        let chosen = crate::testing::spec("kompiImage:\n  repository: registry.local/kompi\n  tag: \"9\"\n  pullPolicy: Always\n");
        let master = crate::master::master_pod(&chosen).spec.unwrap();
        let init = &master.init_containers.as_ref().unwrap()[0];
        assert_eq!((init.image.as_deref(), init.image_pull_policy.as_deref()), (Some("registry.local/kompi:9"), Some("Always")));

        let inside = crate::testing::spec("image:\n  repository: my/mpi-with-kompi\nkompiImage:\n  inject: false\n");
        let master = crate::master::master_pod(&inside).spec.unwrap();
        assert!(master.init_containers.is_none() && !master.volumes.iter().flatten().any(|v| v.name == INJECT_VOLUME));
        let (mpi, sidecar) = mpi_and_sidecar(&master);
        assert_eq!(mpi.command.as_deref(), Some(&[KOMPI_BIN.to_string()][..]));
        assert_eq!(sidecar.unwrap().image.as_deref(), Some("my/mpi-with-kompi:0.1.0"));
        let workers = crate::worker::stateful_set(&inside).spec.template.spec.unwrap();
        assert!(workers.init_containers.is_none());
        assert_eq!(workers.containers[0].command.as_deref(), Some(&[KOMPI_BIN.to_string()][..]));
    }
}
