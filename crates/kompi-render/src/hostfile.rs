//! The hostfile: which hosts it lists (the master first, then every serving worker by ordinal) and its
//! text, with slots in the syntax of the chosen MPI. The sidecar writes it from the worker pods, the local
//! backend from its nodes, and `kompi status / scale / run` compute from the pods what it lists.

use k8s_openapi::api::core::v1::Pod;
use kompi_spec::{ClusterName, MpiImplementation};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEntry {
    pub host: String,
    pub slots: u32,
}

/// Whether a pod serves: Ready (for a worker, its sshd answers the readiness probe) and not being deleted.
pub fn is_serving(pod: &Pod) -> bool {
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    ready && pod.metadata.deletion_timestamp.is_none()
}

/// The hosts of a cluster whose workers are the named pods: the master first, then each worker once, by
/// ordinal, as `<pod>.<cluster>`. Names that are not the cluster's workers (another cluster's, a stray
/// pod carrying the labels) are left out.
pub fn entries<'a>(cluster: &ClusterName, master_slots: u32, worker_slots: u32, workers: impl IntoIterator<Item = &'a str>) -> Vec<HostEntry> {
    let mut workers: Vec<(u32, &str)> = workers.into_iter().filter_map(|pod| Some((cluster.worker_ordinal(pod)?, pod))).collect();
    workers.sort_unstable();
    workers.dedup_by_key(|(ordinal, _)| *ordinal);
    std::iter::once(HostEntry { host: cluster.master_pod(), slots: master_slots })
        .chain(workers.into_iter().map(|(_, pod)| HostEntry { host: cluster.worker_host(pod), slots: worker_slots }))
        .collect()
}

/// The hosts the sidecar lists for these pods: the master, then every serving worker pod.
pub fn entries_of_pods<'a>(cluster: &ClusterName, master_slots: u32, worker_slots: u32, pods: impl IntoIterator<Item = &'a Pod>) -> Vec<HostEntry> {
    let serving = pods.into_iter().filter(|pod| is_serving(pod)).filter_map(|pod| pod.metadata.name.as_deref());
    entries(cluster, master_slots, worker_slots, serving)
}

/// The cluster's worker pods that exist and are not being deleted but do not serve yet, by ordinal: the
/// hostfile will list them once they do (a scale-up in progress, a restarting worker).
pub fn starting_workers<'a>(cluster: &ClusterName, pods: impl IntoIterator<Item = &'a Pod>) -> Vec<String> {
    let mut starting: Vec<(u32, &str)> = pods
        .into_iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none() && !is_serving(pod))
        .filter_map(|pod| {
            let name = pod.metadata.name.as_deref()?;
            Some((cluster.worker_ordinal(name)?, name))
        })
        .collect();
    starting.sort_unstable();
    starting.into_iter().map(|(_, name)| name.to_string()).collect()
}

/// The ordinals of the workers a hostfile of these pods lists, ascending.
pub fn listed_ordinals<'a>(cluster: &ClusterName, pods: impl IntoIterator<Item = &'a Pod>) -> Vec<u32> {
    let mut ordinals: Vec<u32> = pods
        .into_iter()
        .filter(|pod| is_serving(pod))
        .filter_map(|pod| cluster.worker_ordinal(pod.metadata.name.as_deref()?))
        .collect();
    ordinals.sort_unstable();
    ordinals.dedup();
    ordinals
}

/// One line per host: `host slots=N` for Open MPI, `host:N` for MPICH and Intel MPI.
pub fn hostfile(mpi: MpiImplementation, entries: &[HostEntry]) -> String {
    entries
        .iter()
        .map(|e| match mpi {
            MpiImplementation::OpenMpi => format!("{} slots={}\n", e.host, e.slots),
            MpiImplementation::Mpich | MpiImplementation::Intel => format!("{}:{}\n", e.host, e.slots),
        })
        .collect()
}

/// The host names in a hostfile of either syntax, skipping blank lines and comments.
pub fn hosts(text: &str) -> Vec<&str> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.split([' ', '\t', ':']).next().unwrap_or(l))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn cluster() -> ClusterName {
        ClusterName::new("mpi").unwrap()
    }

    fn pod(name: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            status: Some(PodStatus {
                conditions: Some(vec![
                    PodCondition { type_: "PodScheduled".into(), status: "True".into(), ..Default::default() },
                    PodCondition { type_: "Ready".into(), status: if ready { "True" } else { "False" }.into(), ..Default::default() },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn terminating(mut pod: Pod) -> Pod {
        pod.metadata.deletion_timestamp = Some(Time(Default::default()));
        pod
    }

    fn hosts_of(pods: &[Pod]) -> Vec<String> {
        entries_of_pods(&cluster(), 1, 1, pods).into_iter().map(|e| e.host).collect()
    }

    #[test]
    fn master_first_then_serving_workers_by_ordinal() {
        let pods = [pod("mpi-worker-10", true), pod("mpi-worker-2", true), pod("mpi-worker-0", true)];
        assert_eq!(hosts_of(&pods), vec!["mpi-master", "mpi-worker-0.mpi", "mpi-worker-2.mpi", "mpi-worker-10.mpi"]);
        assert_eq!(listed_ordinals(&cluster(), &pods), vec![0, 2, 10]);
    }

    #[test]
    fn unready_and_terminating_workers_are_left_out() {
        let no_status = Pod { metadata: ObjectMeta { name: Some("mpi-worker-3".into()), ..Default::default() }, ..Default::default() };
        let pods = [pod("mpi-worker-0", false), terminating(pod("mpi-worker-1", true)), pod("mpi-worker-2", true), no_status];
        assert_eq!(hosts_of(&pods), vec!["mpi-master", "mpi-worker-2.mpi"]);
        assert!(!is_serving(&terminating(pod("mpi-master", true))));
        assert_eq!(starting_workers(&cluster(), &pods), ["mpi-worker-0", "mpi-worker-3"], "terminating pods are not starting");
    }

    #[test]
    fn foreign_pods_are_ignored() {
        let pods = [pod("mpi-master", true), pod("other-worker-0", true), pod("mpi-worker-01", true), pod("mpi-worker-x", true), pod("mpi-worker-1", true)];
        assert_eq!(hosts_of(&pods), vec!["mpi-master", "mpi-worker-1.mpi"]);
        assert_eq!(listed_ordinals(&cluster(), &pods), vec![1]);
    }

    #[test]
    fn named_workers_with_their_slots() {
        let listed = super::entries(&cluster(), 2, 4, ["mpi-worker-1", "mpi-worker-0", "mpi-worker-1"]);
        assert_eq!(hostfile(MpiImplementation::OpenMpi, &listed), "mpi-master slots=2\nmpi-worker-0.mpi slots=4\nmpi-worker-1.mpi slots=4\n");
    }

    fn entries() -> Vec<HostEntry> {
        vec![HostEntry { host: "c-master".into(), slots: 1 }, HostEntry { host: "c-worker-0.c".into(), slots: 4 }]
    }

    #[test]
    fn open_mpi_and_hydra_syntax() {
        assert_eq!(hostfile(MpiImplementation::OpenMpi, &entries()), "c-master slots=1\nc-worker-0.c slots=4\n");
        assert_eq!(hostfile(MpiImplementation::Mpich, &entries()), "c-master:1\nc-worker-0.c:4\n");
        assert_eq!(hostfile(MpiImplementation::Intel, &[]), "");
    }

    #[test]
    fn hosts_of_either_syntax() {
        assert_eq!(hosts("a slots=1\n# c\n\nb:2\nc\n"), vec!["a", "b", "c"]);
    }
}
