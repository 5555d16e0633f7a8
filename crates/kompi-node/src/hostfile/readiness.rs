//! The master's readiness gate. The sidecar shares the master pod's network and resolver, so it probes
//! every worker the hostfile lists on the ssh port as mpiexec will reach it, and sets the condition
//! `kompi.io/workers-reachable` on the master pod: True once every initial worker has been listed, every
//! worker pod there is (not being deleted) is listed, and every listed worker answers. The pod is Ready
//! only with it, and the kubelet turns it Ready as soon as the condition is set (no probe period to wait
//! for), so `kompi up --wait`, `kompi run` and `kubectl wait --for=condition=Ready` watch one condition and
//! never exec into the pod. A scale-up makes the master unready as soon as the new pods exist, long
//! before they can be listed, so a watcher never takes the old readiness for the new workers'.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kompi_spec::ClusterName;
use kompi_spec::contract::WORKERS_REACHABLE_CONDITION;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::gate::{self, Probe};

/// Retries of workers that do not answer yet start quickly (a name resolves moments after the pod is
/// listed) and slow down to this.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);
/// While the condition stays False, its message (who does not answer) is refreshed at most this often.
const MESSAGE_EVERY: Duration = Duration::from_secs(2);

/// What the hostfile lists now, as the publisher announces it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// The listed workers' host names.
    pub workers: Vec<String>,
    /// Worker pods that exist but are not listed yet (they do not serve).
    pub starting: Vec<String>,
    /// Every initial worker has been listed once.
    pub complete: bool,
    /// How many workers the cluster started with.
    pub initial: u32,
}

/// The condition's status and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub reachable: bool,
    pub message: String,
}

/// Keeps the master's condition true to the listings, until their sender goes away.
pub async fn hold(pods: Api<Pod>, cluster: ClusterName, port: u16, mut listings: watch::Receiver<Listing>) {
    let master = cluster.master_pod();
    let mut answered = BTreeSet::new();
    let mut said: Option<Verdict> = None;
    let mut last_said = Instant::now();
    let mut retry = FIRST_RETRY;
    // The last failure to set the condition, said once rather than at every retry.
    let mut failing: Option<String> = None;
    loop {
        let listing = listings.borrow_and_update().clone();
        let verdict = judge(&listing, port, &mut answered).await;
        let transition = said.as_ref().is_none_or(|s| s.reachable != verdict.reachable);
        if said.as_ref() != Some(&verdict) && (transition || last_said.elapsed() >= MESSAGE_EVERY) {
            match set_condition(&pods, &master, &verdict, transition).await {
                Ok(()) => {
                    info!(reachable = verdict.reachable, "{}", verdict.message);
                    said = Some(verdict.clone());
                    last_said = Instant::now();
                    failing = None;
                }
                Err(e) if failing.as_deref() != Some(&e.to_string()) => {
                    warn!(pod = master, error = %e, hint = hint(&e), "cannot set the master's readiness condition; retrying");
                    failing = Some(e.to_string());
                }
                Err(_) => {}
            }
        }
        // Only unanswered probes are worth retrying; anything else changes with the next listing.
        let settled = said.as_ref() == Some(&verdict) && (verdict.reachable || !listing.complete || !listing.starting.is_empty());
        if settled {
            retry = FIRST_RETRY;
            if listings.changed().await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            changed = listings.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(retry) => retry = (retry * 2).min(LAST_RETRY),
        }
    }
}

/// Whether the listing is runnable. Workers that answered stay trusted while they are listed (a worker
/// whose sshd dies fails the kubelet's probe and leaves the hostfile); the others are probed now.
pub async fn judge(listing: &Listing, port: u16, answered: &mut BTreeSet<String>) -> Verdict {
    answered.retain(|host| listing.workers.contains(host));
    if !listing.complete {
        let message = format!("the hostfile lists {} of the {} initial workers", listing.workers.len(), listing.initial);
        return Verdict { reachable: false, message };
    }
    if !listing.starting.is_empty() {
        let message = format!("{} workers are starting and not listed yet: {}", listing.starting.len(), listing.starting.join(", "));
        return Verdict { reachable: false, message };
    }
    let unknown: Vec<String> = listing.workers.iter().filter(|h| !answered.contains(*h)).cloned().collect();
    let mut silent = Vec::new();
    for (host, probe) in gate::probe_all(unknown, port).await {
        match probe {
            Probe::Answered => {
                answered.insert(host);
            }
            other => silent.push(format!("{host} ({other})")),
        }
    }
    let listed = listing.workers.len();
    if silent.is_empty() {
        return Verdict { reachable: true, message: format!("all {listed} listed workers answer on port {port}") };
    }
    Verdict { reachable: false, message: format!("{} of {listed} listed workers do not answer on port {port}: {}", silent.len(), silent.join(", ")) }
}

/// Sets the condition through the pods/status subresource (a strategic merge: the kubelet's conditions
/// stay); the transition time changes only with the status.
async fn set_condition(pods: &Api<Pod>, master: &str, verdict: &Verdict, transition: bool) -> Result<(), kube::Error> {
    let (status, reason) = if verdict.reachable { ("True", "WorkersReachable") } else { ("False", "WorkersUnreachable") };
    let mut condition = json!({"type": WORKERS_REACHABLE_CONDITION, "status": status, "reason": reason, "message": verdict.message});
    if transition {
        condition["lastTransitionTime"] = serde_json::to_value(Time(Timestamp::now())).expect("times serialize");
    }
    let patch = json!({"status": {"conditions": [condition]}});
    pods.patch_status(master, &PatchParams::default(), &Patch::Strategic(patch)).await.map(drop)
}

fn hint(error: &kube::Error) -> &'static str {
    match error {
        kube::Error::Api(status) if status.code == 403 => "the cluster's Role (rendered by kompi template) must allow patch on pods/status of the master",
        kube::Error::Api(status) if status.code == 404 => "the master pod does not exist (is this sidecar running in it?)",
        _ => "the API server may be restarting or unreachable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(workers: &[&str], complete: bool) -> Listing {
        Listing { workers: workers.iter().map(|w| w.to_string()).collect(), starting: vec![], complete, initial: 2 }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn runnable_once_complete_and_every_listed_worker_answers() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut answered = BTreeSet::new();
        let verdict = judge(&listing(&["127.0.0.1"], false), port, &mut answered).await;
        assert_eq!(verdict, Verdict { reachable: false, message: "the hostfile lists 1 of the 2 initial workers".into() });
        let verdict = judge(&listing(&["127.0.0.1"], true), port, &mut answered).await;
        assert_eq!(verdict, Verdict { reachable: true, message: format!("all 1 listed workers answer on port {port}") });
        assert!(answered.contains("127.0.0.1"));

        // Nothing listens on 127.0.0.2 (the listener is bound to 127.0.0.1 only).
        let verdict = judge(&listing(&["127.0.0.1", "127.0.0.2"], true), port, &mut answered).await;
        assert!(!verdict.reachable);
        assert_eq!(verdict.message, format!("1 of 2 listed workers do not answer on port {port}: 127.0.0.2 (connection refused)"));

        // A worker pod that exists but is not listed yet holds the master back: a scale-up in progress.
        let scaling = Listing { starting: vec!["c-worker-2".into()], ..listing(&["127.0.0.1"], true) };
        assert_eq!(judge(&scaling, port, &mut answered).await, Verdict { reachable: false, message: "1 workers are starting and not listed yet: c-worker-2".into() });

        // Trusted while listed, probed again once it was dropped and is listed anew.
        drop(listener);
        assert!(judge(&listing(&["127.0.0.1"], true), port, &mut answered).await.reachable);
        assert!(judge(&listing(&[], true), port, &mut answered).await.reachable, "no workers: nothing to wait for");
        let verdict = judge(&listing(&["127.0.0.1"], true), port, &mut answered).await;
        assert_eq!(verdict.message, format!("1 of 1 listed workers do not answer on port {port}: 127.0.0.1 (connection refused)"));
    }
}
