//! Leader election through a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it, so
//! that of several operator replicas exactly one reconciles.
//!
//! A candidate reads the Lease every retry period. It takes the Lease when nobody holds it, or when the
//! holder has not renewed it for the lease's duration *as this candidate measured it* (the time since it
//! last saw the Lease change, on its own clock: no clock comparison between nodes). Every write carries
//! the resourceVersion it read, so of two candidates racing for it one wins and the other gets a conflict.
//! The leader renews every retry period; when it has not managed to for the renew deadline (shorter than
//! the lease duration), it gives up at once: the operator stops before any other replica may take over.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tracing::{debug, info, warn};

use crate::error::OperatorError;

/// How leadership is contended for (the operator's `--leader-elect-*` flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    /// Unique per process: the pod's name and a random suffix (a restarted container is a new candidate).
    pub identity: String,
    /// How long a standby waits after the Lease last changed before it takes it.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    pub renew_deadline: Duration,
    /// How often candidates read the Lease and the leader renews it.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// The defaults of controller-runtime (and kube-controller-manager).
    pub const LEASE_DURATION: Duration = Duration::from_secs(15);
    pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
    pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

    /// The ordering client-go requires: the leader must stop before a standby may take over, and must
    /// get more than one renewal attempt within its deadline.
    pub fn check(&self) -> Result<(), String> {
        if self.lease_duration.as_secs() < 1 || self.lease_duration.as_secs() > i32::MAX as u64 {
            return Err("--leader-elect-lease-duration must be at least 1s".into());
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "--leader-elect-renew-deadline ({}s) must be shorter than --leader-elect-lease-duration ({}s)",
                self.renew_deadline.as_secs(),
                self.lease_duration.as_secs()
            ));
        }
        if self.retry_period.is_zero() || self.retry_period.mul_f64(1.2) >= self.renew_deadline {
            return Err(format!(
                "--leader-elect-retry-period ({}s) must be above zero and shorter than --leader-elect-renew-deadline ({}s) by a fifth",
                self.retry_period.as_secs(),
                self.renew_deadline.as_secs()
            ));
        }
        Ok(())
    }
}

/// What a candidate may do with the Lease it just read.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nobody holds it, the candidate holds it already, or its holder let it expire: write it.
    Take,
    /// Someone else holds it and renewed it less than its duration ago.
    Held { holder: String },
}

/// Judges a Lease the candidate `me` has seen unchanged for `unchanged_for`.
pub fn judge(spec: Option<&LeaseSpec>, me: &str, unchanged_for: Duration, default_duration: Duration) -> Verdict {
    let holder = spec.and_then(|s| s.holder_identity.clone()).unwrap_or_default();
    if holder.is_empty() || holder == me {
        return Verdict::Take;
    }
    let duration = spec.and_then(|s| s.lease_duration_seconds).and_then(|s| u64::try_from(s).ok()).map_or(default_duration, Duration::from_secs);
    if unchanged_for >= duration { Verdict::Take } else { Verdict::Held { holder } }
}

/// The Lease's spec once `me` has taken or renewed it at `now`: a change of holder moves the acquire
/// time and counts a transition; a renewal moves only the renew time.
pub fn claimed(spec: Option<&LeaseSpec>, me: &str, duration: Duration, now: Timestamp) -> LeaseSpec {
    let previous = spec.cloned().unwrap_or_default();
    let renewing = previous.holder_identity.as_deref() == Some(me);
    let transitions = previous.lease_transitions.unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: if renewing { previous.acquire_time.clone() } else { Some(MicroTime(now)) },
        renew_time: Some(MicroTime(now)),
        // A first holder is no transition (client-go counts only changes between holders).
        lease_transitions: Some(if renewing || spec.is_none() { transitions } else { transitions + 1 }),
        ..previous
    }
}

/// One candidate's view of the Lease.
pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    /// The Lease as last read or written, and when this candidate saw it change.
    observed: Option<Lease>,
    observed_at: Instant,
}

impl Elector {
    pub fn new(client: Client, settings: LeaseSettings) -> Elector {
        Elector { api: Api::namespaced(client, &settings.namespace), settings, observed: None, observed_at: Instant::now() }
    }

    fn lease_id(&self) -> String {
        format!("Lease {}/{}", self.settings.namespace, self.settings.name)
    }

    /// Returns once this candidate leads. Errors other than a lost race are logged and retried.
    pub async fn acquire(&mut self) {
        info!(lease = %self.lease_id(), identity = %self.settings.identity, "waiting to lead");
        let mut reported_holder = String::new();
        loop {
            match self.try_take().await {
                Ok(None) => {
                    info!(lease = %self.lease_id(), identity = %self.settings.identity, "became the leader");
                    return;
                }
                Ok(Some(holder)) => {
                    if holder != reported_holder {
                        info!(leader = %holder, "standing by: another replica leads");
                        reported_holder = holder;
                    }
                }
                Err(e) => warn!(error = %e, "cannot take the lease; trying again"),
            }
            // Jittered like client-go's (up to 1.2 × the period), so standbys do not hit the API in step.
            tokio::time::sleep(self.settings.retry_period.mul_f64(1.0 + 0.2 * jitter())).await;
        }
    }

    /// Renews the Lease every retry period; returns why leadership was lost (the operator must stop).
    pub async fn hold(&mut self) -> OperatorError {
        let mut renewed_at = Instant::now();
        loop {
            tokio::time::sleep(self.settings.retry_period).await;
            loop {
                let left = self.settings.renew_deadline.saturating_sub(renewed_at.elapsed());
                if left.is_zero() {
                    return OperatorError::Stopped(format!(
                        "leader election lost: {} not renewed within {}s",
                        self.lease_id(),
                        self.settings.renew_deadline.as_secs()
                    ));
                }
                match tokio::time::timeout(left, self.renew()).await {
                    Ok(Ok(None)) => {
                        renewed_at = Instant::now();
                        break;
                    }
                    Ok(Ok(Some(holder))) => {
                        return OperatorError::Stopped(format!("leader election lost: {} is held by {holder}", self.lease_id()));
                    }
                    Ok(Err(e)) => {
                        warn!(error = %e, "cannot renew the lease; trying again");
                        tokio::time::sleep(self.settings.retry_period.min(left)).await;
                    }
                    Err(_) => {}
                }
            }
        }
    }

    /// Hands the Lease back when the operator stops on a signal, so a standby takes over at once
    /// instead of after the lease duration (client-go's ReleaseOnCancel).
    pub async fn release(&mut self) {
        let Some(mut lease) = self.observed.clone() else { return };
        let mine = lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(self.settings.identity.as_str());
        if !mine {
            return;
        }
        let now = MicroTime(Timestamp::now());
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            renew_time: Some(now.clone()),
            acquire_time: Some(now),
            ..lease.spec.unwrap_or_default()
        });
        match self.api.replace(&self.settings.name, &PostParams::default(), &lease).await {
            Ok(_) => info!(lease = %self.lease_id(), "released the lease"),
            Err(e) => warn!(error = %e, "cannot release the lease; a standby takes over once it expires"),
        }
    }

    /// Reads the Lease and takes it if it may: `None` once this candidate leads, else the holder's name.
    async fn try_take(&mut self) -> Result<Option<String>, OperatorError> {
        let read = self.api.get_opt(&self.settings.name).await.map_err(|e| OperatorError::api(format!("reading {}", self.lease_id()), e))?;
        let Some(lease) = read else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.settings.name.clone()), namespace: Some(self.settings.namespace.clone()), ..Default::default() },
                spec: Some(claimed(None, &self.settings.identity, self.settings.lease_duration, Timestamp::now())),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(created);
                    Ok(None)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Some("another replica (it created the lease first)".into())),
                Err(e) => Err(OperatorError::api(format!("creating {}", self.lease_id()), e)),
            };
        };
        self.observe(lease.clone());
        match judge(lease.spec.as_ref(), &self.settings.identity, self.observed_at.elapsed(), self.settings.lease_duration) {
            Verdict::Held { holder } => Ok(Some(holder)),
            Verdict::Take => self.write(lease).await,
        }
    }

    /// Renews from the Lease as this leader last wrote it: one request per period. A conflict means the
    /// Lease changed behind its back: it is read again and renewed only if still this leader's.
    async fn renew(&mut self) -> Result<Option<String>, OperatorError> {
        let Some(lease) = self.observed.clone() else { return self.try_take().await };
        match self.write(lease).await? {
            None => Ok(None),
            Some(_) => {
                let current = self.api.get(&self.settings.name).await.map_err(|e| OperatorError::api(format!("reading {}", self.lease_id()), e))?;
                let holder = current.spec.as_ref().and_then(|s| s.holder_identity.clone()).unwrap_or_default();
                self.observe(current.clone());
                if holder == self.settings.identity { self.write(current).await } else { Ok(Some(holder)) }
            }
        }
    }

    /// Writes the Lease as this candidate's, with the resourceVersion read as precondition.
    async fn write(&mut self, mut lease: Lease) -> Result<Option<String>, OperatorError> {
        lease.spec = Some(claimed(lease.spec.as_ref(), &self.settings.identity, self.settings.lease_duration, Timestamp::now()));
        match self.api.replace(&self.settings.name, &PostParams::default(), &lease).await {
            Ok(written) => {
                debug!(lease = %self.lease_id(), "lease renewed");
                self.observe(written);
                Ok(None)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Some("another replica (it wrote the lease first)".into())),
            Err(e) => Err(OperatorError::api(format!("writing {}", self.lease_id()), e)),
        }
    }

    fn observe(&mut self, lease: Lease) {
        let changed = self.observed.as_ref().map(|o| &o.metadata.resource_version) != Some(&lease.metadata.resource_version);
        if changed {
            self.observed_at = Instant::now();
        }
        self.observed = Some(lease);
    }
}

/// A number in [0, 1) that differs between processes and calls.
fn jitter() -> f64 {
    use ssh_key::rand_core::{OsRng, RngCore};
    f64::from(OsRng.next_u32()) / (f64::from(u32::MAX) + 1.0)
}

/// A candidate's identity: `pod_random`, unique even for a container restarted in the same pod.
pub fn identity(pod: &str) -> String {
    use ssh_key::rand_core::{OsRng, RngCore};
    format!("{pod}_{:08x}", OsRng.next_u32())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S15: Duration = Duration::from_secs(15);

    fn held_by(holder: &str, seconds: i32) -> LeaseSpec {
        LeaseSpec { holder_identity: Some(holder.into()), lease_duration_seconds: Some(seconds), lease_transitions: Some(3), ..Default::default() }
    }

    #[test]
    fn a_lease_nobody_holds_is_taken() {
        assert_eq!(judge(None, "b", Duration::ZERO, S15), Verdict::Take);
        assert_eq!(judge(Some(&LeaseSpec::default()), "b", Duration::ZERO, S15), Verdict::Take);
        // A released lease: holder emptied.
        assert_eq!(judge(Some(&held_by("", 1)), "b", Duration::ZERO, S15), Verdict::Take);
    }

    #[test]
    fn anothers_lease_is_taken_only_once_unchanged_for_its_duration() {
        let spec = held_by("a", 15);
        assert_eq!(judge(Some(&spec), "b", Duration::from_secs(14), S15), Verdict::Held { holder: "a".into() });
        assert_eq!(judge(Some(&spec), "b", Duration::from_secs(15), S15), Verdict::Take);
        // The holder's duration counts, not the candidate's own setting.
        assert_eq!(judge(Some(&held_by("a", 60)), "b", Duration::from_secs(30), S15), Verdict::Held { holder: "a".into() });
    }

    #[test]
    fn the_holder_renews_its_own_lease() {
        assert_eq!(judge(Some(&held_by("b", 15)), "b", Duration::ZERO, S15), Verdict::Take);
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_keeps_the_acquire_time() {
        let t0: Timestamp = "2026-12-02T01:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-12-02T01:00:02Z".parse().unwrap();
        let first = claimed(None, "a", S15, t0);
        assert_eq!((first.holder_identity.as_deref(), first.lease_transitions, first.lease_duration_seconds), (Some("a"), Some(0), Some(15)));
        let renewed = claimed(Some(&first), "a", S15, t1);
        assert_eq!(renewed.acquire_time, Some(MicroTime(t0)));
        assert_eq!(renewed.renew_time, Some(MicroTime(t1)));
        assert_eq!(renewed.lease_transitions, Some(0));
        let taken = claimed(Some(&renewed), "b", S15, t1);
        assert_eq!(taken.acquire_time, Some(MicroTime(t1)));
        assert_eq!(taken.lease_transitions, Some(1));
    }

    #[test]
    fn the_leader_must_give_up_before_a_standby_may_take_over() {
        let settings = |lease, renew, retry| LeaseSettings {
            name: "kompi-operator".into(),
            namespace: "kompi-system".into(),
            identity: "a".into(),
            lease_duration: Duration::from_secs(lease),
            renew_deadline: Duration::from_secs(renew),
            retry_period: Duration::from_secs(retry),
        };
        assert_eq!(settings(15, 10, 2).check(), Ok(()));
        assert!(settings(10, 10, 2).check().unwrap_err().contains("--leader-elect-renew-deadline (10s) must be shorter"));
        assert!(settings(15, 10, 9).check().unwrap_err().contains("--leader-elect-retry-period (9s)"));
        assert!(settings(15, 10, 0).check().is_err());
        assert!(settings(0, 0, 0).check().unwrap_err().contains("--leader-elect-lease-duration"));
    }

    #[test]
    fn identities_differ_between_candidates_of_one_pod() {
        let (a, b) = (identity("kompi-operator-1"), identity("kompi-operator-1"));
        assert!(a.starts_with("kompi-operator-1_") && a != b, "{a} {b}");
    }
}
