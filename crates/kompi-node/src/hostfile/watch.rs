//! Following the worker pods through the API's watch (no polling): every settled change is published to
//! the hostfile within moments. The watcher re-lists by itself after errors and expiry; an outage is
//! logged, since the hostfile may be stale until the watch resumes.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kompi_render::hostfile::HostEntry;
use kube::Api;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, DefaultBackoff, Event, watcher};
use tracing::{info, warn};

use super::error::HostfileError;
use super::output::Publisher;
use super::table::PodTable;

/// Returns only with `once` after the first complete hostfile, or on a write error.
pub async fn follow_workers(
    api: Api<Pod>,
    selector: &str,
    entries: impl Fn(&PodTable) -> Vec<HostEntry>,
    publisher: &mut Publisher,
    once: bool,
) -> Result<(), HostfileError> {
    let events = watcher(api, watcher::Config::default().labels(selector));
    let mut events = std::pin::pin!(events);
    let mut table = PodTable::default();
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
        if matches!(event, Event::InitDone | Event::Apply(_) | Event::Delete(_)) {
            backoff.reset();
            if failing {
                info!("the watch of the worker pods resumed");
                failing = false;
            }
        }
        // Only readiness, deletion and the name matter; the rest would only take memory.
        let event = event.modify(|pod| {
            pod.spec = None;
            pod.metadata.managed_fields = None;
            pod.metadata.annotations = None;
        });
        if table.apply(event) {
            publisher.publish(&entries(&table))?;
            if once && publisher.is_complete() {
                info!("the hostfile is complete; no longer following the workers (--once)");
                return Ok(());
            }
        }
    }
    Ok(())
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
        403 => "the cluster's Role (rendered by kompi template) must allow get, list and watch on pods",
        _ => "the API server may be restarting or unreachable; retrying",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    #[test]
    fn refusals_point_at_the_token_or_the_role() {
        let failed = |code| watcher::Error::InitialListFailed(kube::Error::Api(Status::failure("no", "Forbidden").with_code(code).boxed()));
        assert!(hint(&failed(403)).contains("Role"));
        assert!(hint(&failed(401)).contains("token"));
        assert!(hint(&failed(503)).contains("retrying"));
    }
}
