//! The gate between the hostfile and mpiexec: every worker the hostfile lists answers on its ssh port (its
//! name resolves, sshd listens), probed from where mpiexec runs, so mpiexec never races DNS or sshd. The
//! one-shot master waits on it before its command; the sidecar holds the master's readiness on it.

use std::fmt;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kompi_render::hostfile::hosts;
use kompi_spec::ClusterName;
use tokio::net::{TcpStream, lookup_host};
use tracing::info;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const PROBES_AT_ONCE: usize = 16;
/// The pause between rounds: short while few workers are probed (the command starts soon after the last
/// one answers), longer as they grow, so probes stay near 80 a second (each is a name lookup and a TCP
/// connection); never longer than [`MAX_ROUND_PAUSE`].
const PAUSE_PER_WORKER: Duration = Duration::from_micros(12_500);
const MIN_ROUND_PAUSE: Duration = Duration::from_millis(100);
const MAX_ROUND_PAUSE: Duration = Duration::from_secs(2);
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What a TCP connect to a worker's ssh port found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Answered,
    /// The name does not resolve (yet: DNS lags behind new pods).
    NoAddress,
    Refused,
    TimedOut,
    Failed(String),
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::Answered => f.write_str("answers"),
            Probe::NoAddress => f.write_str("name does not resolve yet"),
            Probe::Refused => f.write_str("connection refused"),
            Probe::TimedOut => f.write_str("no answer"),
            Probe::Failed(why) => f.write_str(why),
        }
    }
}

/// The workers in a hostfile: every host but the master (listed first, as `<cluster>-master`).
pub fn listed_workers(hostfile: &str, cluster: &ClusterName) -> Vec<String> {
    let master = cluster.master_pod();
    let is_master = |host: &str| host == master || host.strip_prefix(&master).is_some_and(|rest| rest.starts_with('.'));
    hosts(hostfile).into_iter().filter(|h| !is_master(h)).map(str::to_string).collect()
}

/// Where the wait stands; `describe` names every worker still missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub expected: u32,
    pub listed: usize,
    /// Workers the sidecar has not put in the hostfile yet (by the names it will use).
    pub not_listed: Vec<String>,
    pub not_answering: Vec<(String, Probe)>,
}

impl Progress {
    pub fn new(cluster: &ClusterName, expected: u32, probes: Vec<(String, Probe)>) -> Self {
        let listed = probes.len();
        let not_listed = if listed < expected as usize {
            (0..expected)
                .map(|i| cluster.worker_host(&cluster.worker_pod(i)))
                .filter(|name| !probes.iter().any(|(host, _)| host == name))
                .take(expected as usize - listed)
                .collect()
        } else {
            Vec::new()
        };
        let not_answering = probes.into_iter().filter(|(_, probe)| *probe != Probe::Answered).collect();
        Progress { expected, listed, not_listed, not_answering }
    }

    pub fn is_ready(&self) -> bool {
        self.listed >= self.expected as usize && self.not_answering.is_empty()
    }

    pub fn describe(&self, port: u16) -> String {
        let mut parts = vec![format!("the hostfile lists {} of {} workers", self.listed, self.expected)];
        if !self.not_listed.is_empty() {
            parts.push(format!("not listed yet: {}", self.not_listed.join(", ")));
        }
        if !self.not_answering.is_empty() {
            let each: Vec<String> = self.not_answering.iter().map(|(host, probe)| format!("{host} ({probe})")).collect();
            parts.push(format!("not answering on port {port}: {}", each.join(", ")));
        }
        parts.join("; ")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the workers were not ready after {}s, so the command never ran: {description}", waited.as_secs())]
pub struct WorkersTimeout {
    pub waited: Duration,
    pub description: String,
}

pub struct Gate<'a> {
    pub cluster: &'a ClusterName,
    pub workers: u32,
    pub port: u16,
    pub hostfile: &'a Path,
    pub timeout: Duration,
}

impl Gate<'_> {
    /// Waits until the hostfile lists `workers` workers and every listed worker answers.
    pub async fn wait(&self) -> Result<(), WorkersTimeout> {
        if self.workers == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let mut last_report = started;
        info!(workers = self.workers, timeout_s = self.timeout.as_secs(), "waiting for the workers to answer on port {}", self.port);
        loop {
            let progress = self.round().await;
            if progress.is_ready() {
                info!(workers = progress.listed, "every worker answers on port {}", self.port);
                return Ok(());
            }
            let waited = started.elapsed();
            if waited >= self.timeout {
                return Err(WorkersTimeout { waited, description: progress.describe(self.port) });
            }
            if last_report.elapsed() >= PROGRESS_EVERY {
                last_report = Instant::now();
                info!(waited_s = waited.as_secs(), "still waiting: {}", progress.describe(self.port));
            }
            tokio::time::sleep(round_pause(progress.listed).min(self.timeout - waited)).await;
        }
    }

    async fn round(&self) -> Progress {
        // Absent until the sidecar first writes it: then it lists no one yet.
        let text = tokio::fs::read_to_string(self.hostfile).await.unwrap_or_default();
        let workers = listed_workers(&text, self.cluster);
        Progress::new(self.cluster, self.workers, probe_all(workers, self.port).await)
    }
}

fn round_pause(workers: usize) -> Duration {
    PAUSE_PER_WORKER.saturating_mul(u32::try_from(workers).unwrap_or(u32::MAX)).clamp(MIN_ROUND_PAUSE, MAX_ROUND_PAUSE)
}

/// Probes every host, a bounded number at a time (a thousand name lookups at once would each take a thread).
pub async fn probe_all(hosts: Vec<String>, port: u16) -> Vec<(String, Probe)> {
    let probing = hosts.clone().into_iter().map(|host| async move { probe(&host, port).await });
    let probes: Vec<Probe> = futures::stream::iter(probing).buffered(PROBES_AT_ONCE).collect().await;
    hosts.into_iter().zip(probes).collect()
}

async fn probe(host: &str, port: u16) -> Probe {
    let addresses = match tokio::time::timeout(PROBE_TIMEOUT, lookup_host((host, port))).await {
        Ok(Ok(addresses)) => addresses.collect::<Vec<_>>(),
        Ok(Err(_)) => return Probe::NoAddress,
        Err(_) => return Probe::TimedOut,
    };
    let mut found = Probe::NoAddress;
    for address in addresses {
        found = match tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(_)) => return Probe::Answered,
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Probe::Refused,
            Ok(Err(e)) => Probe::Failed(e.to_string()),
            Err(_) => Probe::TimedOut,
        };
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> ClusterName {
        ClusterName::new("c").unwrap()
    }

    #[test]
    fn rounds_slow_down_as_workers_grow_keeping_probes_near_80_a_second() {
        let pauses: Vec<u128> = [0, 1, 8, 40, 160, 10_000].map(|w| round_pause(w).as_millis()).into();
        assert_eq!(pauses, [100, 100, 100, 500, 2000, 2000]);
    }

    #[test]
    fn the_master_is_not_a_worker() {
        let text = "c-master slots=2\nc-worker-0.c slots=1\nc-master.c.ns.svc slots=1\nc-masterful slots=1\n";
        assert_eq!(listed_workers(text, &cluster()), vec!["c-worker-0.c", "c-masterful"]);
        assert_eq!(listed_workers("c-master:1\nc-worker-1.c:4\n", &cluster()), vec!["c-worker-1.c"]);
        assert!(listed_workers("", &cluster()).is_empty());
    }

    #[test]
    fn progress_names_every_missing_worker() {
        let p = Progress::new(&cluster(), 3, vec![("c-worker-0.c".into(), Probe::Answered), ("c-worker-2.c".into(), Probe::NoAddress)]);
        assert!(!p.is_ready());
        assert_eq!(p.not_listed, vec!["c-worker-1.c"]);
        assert_eq!(
            p.describe(2022),
            "the hostfile lists 2 of 3 workers; not listed yet: c-worker-1.c; not answering on port 2022: c-worker-2.c (name does not resolve yet)"
        );
    }

    #[test]
    fn ready_when_enough_are_listed_and_all_answer() {
        let answered = |h: &str| (h.to_string(), Probe::Answered);
        assert!(Progress::new(&cluster(), 1, vec![answered("c-worker-0.c")]).is_ready());
        assert!(Progress::new(&cluster(), 1, vec![answered("c-worker-0.c"), answered("c-worker-1.c")]).is_ready());
        let one_down = Progress::new(&cluster(), 1, vec![answered("c-worker-0.c"), ("c-worker-1.c".into(), Probe::Refused)]);
        assert!(!one_down.is_ready(), "mpiexec uses every listed host, so every one must answer");
        assert!(!Progress::new(&cluster(), 2, vec![answered("127.0.0.1")]).is_ready());
    }
}
