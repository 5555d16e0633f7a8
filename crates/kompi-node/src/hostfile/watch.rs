//! Following the worker pods through the API's watch (no polling), cached by kube-runtime's reflector:
//! every settled change is published to the hostfile within moments. The watcher re-lists by itself after
//! errors and expiry (the store keeps the old pods until the new list is complete); an outage is logged,
//! since the hostfile may be stale until the watch resumes.

use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kompi_render::hostfile::HostEntry;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, DefaultBackoff, Event, watcher};
use kube::runtime::WatchStreamExt;
use tracing::{info, warn};

use super::error::HostfileError;
use super::output::Publisher;

/// Pods fetched per request of a (re)list: a small page keeps the sidecar's memory low with many workers.
const LIST_PAGE_SIZE: u32 = 100;

/// The watch of the worker pods matching `selector`, each pod cut down to what the hostfile needs.
pub fn worker_events(api: Api<Pod>, selector: &str) -> impl Stream<Item = Result<Event<Pod>, watcher::Error>> + Send + use<> {
    watcher(api, watcher::Config::default().labels(selector).page_size(LIST_PAGE_SIZE)).modify(keep_what_the_hostfile_needs)
}

/// Returns only with `once` after the first complete hostfile, or on a write error.
pub async fn follow_workers(
    events: impl Stream<Item = Result<Event<Pod>, watcher::Error>>,
    membership: impl Fn(&Store<Pod>) -> (Vec<HostEntry>, Vec<String>),
    publisher: &mut Publisher,
    once: bool,
) -> Result<(), HostfileError> {
    let (store, writer) = reflector::store();
    let mut events = std::pin::pin!(reflector::reflector(writer, events));
    // The watcher's own backoff (client-go's parameters), reset only on real progress: `default_backoff()`
    // would reset it on the `Init` that opens every relist attempt, retrying a failing list every second.
    let mut backoff = DefaultBackoff::default();
    let mut failing = false;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                let retry_in = backoff.next().unwrap_or(Duration::from_secs(30));
                warn!(%error, ?retry_in, hint = hint(&error), "watching the worker pods failed; the hostfile may be stale until the watch resumes");
                failing = true;
                tokio::time::sleep(retry_in).await;
                continue;
            }
        };
        // Inside a relist the store still holds the previous pods: nothing new to publish yet.
        if matches!(event, Event::Init | Event::InitApply(_)) {
            continue;
        }
        backoff.reset();
        if failing {
            info!("the watch of the worker pods resumed");
            failing = false;
        }
        let (entries, starting) = membership(&store);
        publisher.publish(&entries, starting)?;
        if once && publisher.is_complete() {
            info!("the hostfile is complete; no longer following the workers (--once)");
            return Ok(());
        }
    }
    Ok(())
}

/// Only the name, the deletion mark and the Ready condition matter; the rest would only take memory.
fn keep_what_the_hostfile_needs(pod: &mut Pod) {
    let metadata = std::mem::take(&mut pod.metadata);
    let ready: Option<Vec<PodCondition>> = pod
        .status
        .take()
        .and_then(|s| s.conditions)
        .map(|conditions| conditions.into_iter().filter(|c| c.type_ == "Ready").collect());
    *pod = Pod {
        metadata: ObjectMeta {
            name: metadata.name,
            namespace: metadata.namespace,
            deletion_timestamp: metadata.deletion_timestamp,
            ..Default::default()
        },
        spec: None,
        status: Some(PodStatus { conditions: ready, ..Default::default() }),
    };
}

/// What to check when the API refuses the sidecar itself.
fn hint(error: &watcher::Error) -> &'static str {
    let code = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status))
        | watcher::Error::WatchError(status) => status.code,
        _ => 0,
    };
    match code {
        401 => "the API server does not accept the pod's ServiceAccount token",
        403 => "the cluster's Role (rendered by kompi template) must allow list and watch on pods",
        _ => "the API server may be restarting or unreachable; retrying",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kompi_render::hostfile::{entries_of_pods, hostfile};
    use kompi_spec::{ClusterName, MpiImplementation};
    use kube::core::Status;

    #[test]
    fn refusals_point_at_the_token_or_the_role() {
        let failed = |code| watcher::Error::InitialListFailed(kube::Error::Api(Status::failure("no", "Forbidden").with_code(code).boxed()));
        assert!(hint(&failed(403)).contains("Role"));
        assert!(hint(&failed(401)).contains("token"));
        assert!(hint(&failed(503)).contains("retrying"));
    }

    fn pod(name: &str, ready: bool) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "labels": {"a": "b"}, "annotations": {"c": "d"}},
            "spec": {"containers": [{"name": "mpi-worker", "image": "i"}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        }))
        .unwrap()
    }

    fn terminating(mut pod: Pod) -> Pod {
        pod.metadata.deletion_timestamp = Some(Time(Default::default()));
        pod
    }

    #[test]
    fn pods_keep_only_what_the_hostfile_needs() {
        let mut kept = terminating(pod("mpi-worker-0", true));
        keep_what_the_hostfile_needs(&mut kept);
        assert!(kept.spec.is_none() && kept.metadata.labels.is_none() && kept.metadata.annotations.is_none());
        assert_eq!(kept.metadata.name.as_deref(), Some("mpi-worker-0"));
        assert!(kept.metadata.deletion_timestamp.is_some());
        let conditions = kept.status.unwrap().conditions.unwrap();
        assert_eq!(conditions.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(), ["Ready"]);
    }

    /// What the hostfile says after each settled event, for a watch that yields `events`.
    async fn hostfiles(events: Vec<Event<Pod>>) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostfile");
        let cluster = ClusterName::new("mpi").unwrap();
        let mut publisher = Publisher::new(&path, MpiImplementation::Mpich, 100);
        let seen = std::cell::RefCell::new(Vec::new());
        let entries = |store: &Store<Pod>| {
            let pods = store.state();
            let listed = entries_of_pods(&cluster, 1, 1, pods.iter().map(|p| &**p));
            seen.borrow_mut().push(hostfile(MpiImplementation::Mpich, &listed).lines().skip(1).collect::<Vec<_>>().join(" "));
            (listed, Vec::new())
        };
        let stream = futures::stream::iter(events.into_iter().map(Ok));
        follow_workers(stream, entries, &mut publisher, false).await.unwrap();
        seen.into_inner()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn watch_events_follow_scale_up_readiness_and_deletion() {
        let seen = hostfiles(vec![
            Event::Init,
            Event::InitDone,
            Event::Apply(pod("mpi-worker-0", false)),
            Event::Apply(pod("mpi-worker-0", true)),
            Event::Apply(pod("mpi-worker-1", true)),
            Event::Apply(terminating(pod("mpi-worker-1", true))),
            Event::Delete(pod("mpi-worker-0", true)),
        ])
        .await;
        assert_eq!(seen, ["", "", "mpi-worker-0.mpi:1", "mpi-worker-0.mpi:1 mpi-worker-1.mpi:1", "mpi-worker-0.mpi:1", ""]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_relist_forgets_pods_deleted_while_the_watch_was_down() {
        let seen = hostfiles(vec![
            Event::Init,
            Event::InitApply(pod("mpi-worker-0", true)),
            Event::InitApply(pod("mpi-worker-1", true)),
            Event::InitDone,
            // The watch broke; worker 0 was deleted meanwhile. The old state stands until the relist is complete.
            Event::Init,
            Event::InitApply(pod("mpi-worker-1", true)),
            Event::InitDone,
        ])
        .await;
        assert_eq!(seen, ["mpi-worker-0.mpi:1 mpi-worker-1.mpi:1", "mpi-worker-1.mpi:1"]);
    }
}
