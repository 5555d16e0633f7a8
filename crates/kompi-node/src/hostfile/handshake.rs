//! One-shot mode's end: the master leaves its command's exit status in the handshake directory; the sidecar
//! then scales the workers to zero if that was asked and the job succeeded, and exits so the pod can finish.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use kompi_spec::contract::HANDSHAKE_FILE;
use kube::Api;
use kube::api::{Patch, PatchParams};
use tracing::{info, warn};

/// A local file check costs nothing; the API is not touched while waiting.
const POLL: Duration = Duration::from_millis(500);
const SCALE_ATTEMPTS: u32 = 8;
const SCALE_MAX_DELAY: Duration = Duration::from_secs(30);

/// The exit status in `<dir>/exit-status`, once it is there (`None` if it is not a number).
pub async fn wait_for_exit_status(dir: &Path) -> Option<i32> {
    let path = dir.join(HANDSHAKE_FILE);
    loop {
        if let Ok(text) = tokio::fs::read_to_string(&path).await {
            return parse_status(&text);
        }
        tokio::time::sleep(POLL).await;
    }
}

pub fn parse_status(text: &str) -> Option<i32> {
    text.trim().parse().ok()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    ScaleDown,
    KeepWorkers(String),
}

pub fn decide(status: Option<i32>, scale_down_on_success: bool) -> Decision {
    match (status, scale_down_on_success) {
        (Some(0), true) => Decision::ScaleDown,
        (Some(0), false) => Decision::KeepWorkers("the command succeeded; scaling down on success is off".into()),
        (Some(status), _) => Decision::KeepWorkers(format!("the command failed with status {status}; the workers stay for inspection")),
        (None, _) => Decision::KeepWorkers("the exit status left by the master is not a number; the workers stay".into()),
    }
}

/// PATCHes the StatefulSet's scale subresource (the only write the sidecar's Role allows), retrying
/// transient failures with backoff. A StatefulSet that is already gone counts as scaled down.
pub async fn scale_to_zero(api: &Api<StatefulSet>, name: &str) -> Result<(), kube::Error> {
    let patch = Patch::Merge(serde_json::json!({ "spec": { "replicas": 0 } }));
    let mut delay = Duration::from_secs(1);
    let mut attempt = 1;
    loop {
        match api.patch_scale(name, &PatchParams::default(), &patch).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.is_not_found() => {
                info!(statefulset = name, "the workers' StatefulSet is already gone");
                return Ok(());
            }
            Err(e) if is_transient(&e) && attempt < SCALE_ATTEMPTS => {
                warn!(statefulset = name, attempt, error = %e, "scaling the workers down failed; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(SCALE_MAX_DELAY);
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Worth retrying: the API server is busy, restarting, or unreachable for a moment.
pub fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code == 409 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    #[test]
    fn only_a_successful_job_with_scale_down_asked_scales_down() {
        assert_eq!(decide(Some(0), true), Decision::ScaleDown);
        assert!(matches!(decide(Some(0), false), Decision::KeepWorkers(_)));
        assert_eq!(decide(Some(3), true), Decision::KeepWorkers("the command failed with status 3; the workers stay for inspection".into()));
        assert!(matches!(decide(None, true), Decision::KeepWorkers(_)));
    }

    #[test]
    fn statuses_parse_with_or_without_newline() {
        assert_eq!(parse_status("0\n"), Some(0));
        assert_eq!(parse_status(" 137 "), Some(137));
        assert_eq!(parse_status("ok"), None);
        assert_eq!(parse_status(""), None);
    }

    #[test]
    fn busy_or_failing_servers_are_retried_refusals_are_not() {
        let api = |code| kube::Error::Api(Status::failure("x", "y").with_code(code).boxed());
        for code in [429, 409, 500, 503] {
            assert!(is_transient(&api(code)), "{code}");
        }
        for code in [400, 401, 403, 422] {
            assert!(!is_transient(&api(code)), "{code}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_status_is_read_once_it_appears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HANDSHAKE_FILE);
        let writer = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            std::fs::write(&path, "3\n").unwrap();
        };
        let (status, ()) = tokio::join!(wait_for_exit_status(dir.path()), writer);
        assert_eq!(status, Some(3));
    }
}
