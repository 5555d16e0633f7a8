//! Which worker pods the hostfile lists, computed from the pods the watch has seen. Pure: no client.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kompi_render::hostfile::HostEntry;
use kompi_spec::ClusterName;
use kube::runtime::watcher::Event;

/// The hostfile's hosts: the master first, then every worker pod that is Ready and not terminating, by ordinal.
/// Pods with other names (another cluster's, a stray pod carrying the labels) are ignored.
pub fn hostfile_entries<'a>(
    cluster: &ClusterName,
    master_slots: u32,
    worker_slots: u32,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Vec<HostEntry> {
    let mut workers: Vec<(u32, &str)> = pods
        .into_iter()
        .filter(|pod| is_serving(pod))
        .filter_map(|pod| {
            let name = pod.metadata.name.as_deref()?;
            Some((cluster.worker_ordinal(name)?, name))
        })
        .collect();
    workers.sort_unstable();
    workers.dedup_by_key(|(ordinal, _)| *ordinal);
    std::iter::once(HostEntry { host: cluster.master_pod(), slots: master_slots })
        .chain(workers.into_iter().map(|(_, pod)| HostEntry { host: cluster.worker_host(pod), slots: worker_slots }))
        .collect()
}

/// Ready (its sshd answers, per the readiness probe) and not being deleted.
fn is_serving(pod: &Pod) -> bool {
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    ready && pod.metadata.deletion_timestamp.is_none()
}

/// The worker pods as the watch last reported them. A relist (after a restart of the watch, or when the
/// API server expired it) replaces the whole set, so pods deleted meanwhile do not linger.
#[derive(Default)]
pub struct PodTable {
    pods: BTreeMap<String, Pod>,
    relisting: Option<BTreeMap<String, Pod>>,
}

impl PodTable {
    /// Applies one watch event; `true` when the table is settled (not in the middle of a relist).
    pub fn apply(&mut self, event: Event<Pod>) -> bool {
        match event {
            Event::Init => {
                self.relisting = Some(BTreeMap::new());
                false
            }
            Event::InitApply(pod) => {
                if let Some(relisting) = &mut self.relisting {
                    insert(relisting, pod);
                }
                false
            }
            Event::InitDone => {
                if let Some(listed) = self.relisting.take() {
                    self.pods = listed;
                }
                true
            }
            Event::Apply(pod) => {
                insert(&mut self.pods, pod);
                true
            }
            Event::Delete(pod) => {
                if let Some(name) = &pod.metadata.name {
                    self.pods.remove(name);
                }
                true
            }
        }
    }

    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.values()
    }
}

fn insert(pods: &mut BTreeMap<String, Pod>, pod: Pod) {
    if let Some(name) = pod.metadata.name.clone() {
        pods.insert(name, pod);
    }
}

/// Hosts added and removed between two hostfiles, for the log.
pub fn changes<'a>(before: &[&'a str], after: &[&'a str]) -> (Vec<&'a str>, Vec<&'a str>) {
    let added = after.iter().filter(|h| !before.contains(h)).copied().collect();
    let removed = before.iter().filter(|h| !after.contains(h)).copied().collect();
    (added, removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use kompi_render::hostfile::hostfile;
    use kompi_spec::MpiImplementation;

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

    fn hosts(pods: &[Pod]) -> Vec<String> {
        hostfile_entries(&cluster(), 1, 1, pods).into_iter().map(|e| e.host).collect()
    }

    #[test]
    fn master_first_then_ready_workers_by_ordinal() {
        let pods = [pod("mpi-worker-10", true), pod("mpi-worker-2", true), pod("mpi-worker-0", true)];
        assert_eq!(hosts(&pods), vec!["mpi-master", "mpi-worker-0.mpi", "mpi-worker-2.mpi", "mpi-worker-10.mpi"]);
    }

    #[test]
    fn unready_and_terminating_workers_are_left_out() {
        let no_status = Pod { metadata: ObjectMeta { name: Some("mpi-worker-3".into()), ..Default::default() }, ..Default::default() };
        let pods = [pod("mpi-worker-0", false), terminating(pod("mpi-worker-1", true)), pod("mpi-worker-2", true), no_status];
        assert_eq!(hosts(&pods), vec!["mpi-master", "mpi-worker-2.mpi"]);
    }

    #[test]
    fn foreign_pods_are_ignored() {
        let pods = [pod("mpi-master", true), pod("other-worker-0", true), pod("mpi-worker-01", true), pod("mpi-worker-x", true), pod("mpi-worker-1", true)];
        assert_eq!(hosts(&pods), vec!["mpi-master", "mpi-worker-1.mpi"]);
    }

    #[test]
    fn slots_in_each_mpis_syntax() {
        let entries = hostfile_entries(&cluster(), 2, 4, &[pod("mpi-worker-0", true)]);
        assert_eq!(hostfile(MpiImplementation::OpenMpi, &entries), "mpi-master slots=2\nmpi-worker-0.mpi slots=4\n");
        assert_eq!(hostfile(MpiImplementation::Mpich, &entries), "mpi-master:2\nmpi-worker-0.mpi:4\n");
        assert_eq!(hostfile(MpiImplementation::Intel, &entries), "mpi-master:2\nmpi-worker-0.mpi:4\n");
    }

    fn names(table: &PodTable) -> Vec<String> {
        hostfile_entries(&cluster(), 1, 1, table.pods()).into_iter().skip(1).map(|e| e.host).collect()
    }

    #[test]
    fn watch_events_follow_scale_up_readiness_and_deletion() {
        let mut table = PodTable::default();
        assert!(table.apply(Event::Apply(pod("mpi-worker-0", false))));
        assert!(names(&table).is_empty());
        table.apply(Event::Apply(pod("mpi-worker-0", true)));
        table.apply(Event::Apply(pod("mpi-worker-1", true)));
        assert_eq!(names(&table), vec!["mpi-worker-0.mpi", "mpi-worker-1.mpi"]);
        table.apply(Event::Apply(terminating(pod("mpi-worker-1", true))));
        assert_eq!(names(&table), vec!["mpi-worker-0.mpi"]);
        table.apply(Event::Delete(pod("mpi-worker-0", true)));
        assert!(names(&table).is_empty());
    }

    #[test]
    fn a_relist_forgets_pods_deleted_while_the_watch_was_down() {
        let mut table = PodTable::default();
        table.apply(Event::Apply(pod("mpi-worker-0", true)));
        table.apply(Event::Apply(pod("mpi-worker-1", true)));
        assert!(!table.apply(Event::Init));
        assert!(!table.apply(Event::InitApply(pod("mpi-worker-1", true))));
        assert_eq!(names(&table).len(), 2, "the old state stands until the relist is complete");
        assert!(table.apply(Event::InitDone));
        assert_eq!(names(&table), vec!["mpi-worker-1.mpi"]);
    }

    #[test]
    fn changes_name_added_and_removed_hosts() {
        assert_eq!(changes(&["m", "a", "b"], &["m", "b", "c"]), (vec!["c"], vec!["a"]));
        assert_eq!(changes(&["m"], &["m"]), (vec![], vec![]));
    }
}
