//! The operator's metrics, served at `/metrics` in Prometheus' text exposition format (version 0.0.4).
//!
//! Counters count what this process did since it started (Prometheus' `rate()` handles restarts); the
//! job gauges are read from the MPIJob watch at scrape time, so they hold on a standby replica and
//! across restarts alike.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The MPIJob conditions counted, by their type.
pub const CONDITIONS: [&str; 6] = ["Created", "Running", "Restarting", "Succeeded", "Failed", "Suspended"];
/// The watches whose restarts are counted.
pub const WATCHES: [&str; 4] = ["mpijobs", "pods", "services", "configmaps"];
/// Upper bounds (seconds) of the reconcile duration histogram's buckets.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Default)]
pub struct Metrics {
    /// Conditions this process set True on a job, in [`CONDITIONS`]' order.
    transitions: [AtomicU64; CONDITIONS.len()],
    reconciles_ok: AtomicU64,
    reconciles_failed: AtomicU64,
    durations: Mutex<Histogram>,
    /// Relists after the first, in [`WATCHES`]' order: a watch that lost its place and started over.
    watch_restarts: [AtomicU64; WATCHES.len()],
    leader: AtomicBool,
}

#[derive(Default)]
struct Histogram {
    /// Observations per bucket (not cumulative), the last one above every bound.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
}

impl Metrics {
    /// A condition of a job turned True (this process wrote it).
    pub fn transition(&self, condition: &str) {
        if let Some(i) = CONDITIONS.iter().position(|c| *c == condition) {
            self.transitions[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn reconciled(&self, ok: bool, took: Duration) {
        let counter = if ok { &self.reconciles_ok } else { &self.reconciles_failed };
        counter.fetch_add(1, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        let mut h = self.durations.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(BUCKETS.len());
        h.counts[bucket] += 1;
        h.sum += seconds;
    }

    pub fn watch_restarted(&self, watch: &str) {
        if let Some(i) = WATCHES.iter().position(|w| *w == watch) {
            self.watch_restarts[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// The exposition text; `jobs` counts the MPIJobs that now have each of [`CONDITIONS`] True.
    pub fn render(&self, jobs: &[u64; CONDITIONS.len()]) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        header(&mut out, "kompi_mpijobs", "gauge", "MPIJobs whose condition of this type is True now.");
        for (condition, n) in CONDITIONS.iter().zip(jobs) {
            let _ = writeln!(out, "kompi_mpijobs{{condition=\"{condition}\"}} {n}");
        }
        header(&mut out, "kompi_mpijob_transitions_total", "counter", "MPIJob conditions this operator set True, by type.");
        for (condition, n) in CONDITIONS.iter().zip(&self.transitions) {
            let _ = writeln!(out, "kompi_mpijob_transitions_total{{condition=\"{condition}\"}} {}", load(n));
        }
        header(&mut out, "kompi_reconciles_total", "counter", "Reconciles of MPIJobs, by result.");
        let _ = writeln!(out, "kompi_reconciles_total{{result=\"ok\"}} {}", load(&self.reconciles_ok));
        let _ = writeln!(out, "kompi_reconciles_total{{result=\"error\"}} {}", load(&self.reconciles_failed));
        header(&mut out, "kompi_reconcile_duration_seconds", "histogram", "How long reconciles of MPIJobs took.");
        let h = self.durations.lock().unwrap_or_else(PoisonError::into_inner);
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(&h.counts) {
            cumulative += n;
            let _ = writeln!(out, "kompi_reconcile_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += h.counts[BUCKETS.len()];
        let _ = writeln!(out, "kompi_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "kompi_reconcile_duration_seconds_sum {}", h.sum);
        let _ = writeln!(out, "kompi_reconcile_duration_seconds_count {cumulative}");
        drop(h);
        header(&mut out, "kompi_watch_restarts_total", "counter", "Watches that lost their place and listed everything again.");
        for (watch, n) in WATCHES.iter().zip(&self.watch_restarts) {
            let _ = writeln!(out, "kompi_watch_restarts_total{{resource=\"{watch}\"}} {}", load(n));
        }
        header(&mut out, "kompi_leader", "gauge", "1 while this replica leads (reconciles), 0 while it stands by.");
        let _ = writeln!(out, "kompi_leader {}", u8::from(self.leader.load(Ordering::Relaxed)));
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The samples of one metric family: (labels, value) as written.
    fn samples<'a>(text: &'a str, name: &str) -> Vec<(&'a str, &'a str)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(' '))
            .filter(|(key, _)| key.split('{').next() == Some(name))
            .map(|(key, value)| (key.split_once('{').map_or("", |(_, labels)| labels.trim_end_matches('}')), value))
            .collect()
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples_and_each_line_parses() {
        let m = Metrics::default();
        m.reconciled(true, Duration::from_millis(3));
        let text = m.render(&[0; 6]);
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                declared.push(name.to_string());
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
            assert!(value.parse::<f64>().is_ok(), "value of {line}");
            let name = key.split('{').next().unwrap();
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
            let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).filter(|f| declared.iter().any(|d| d == f));
            assert!(declared.iter().any(|d| d == name) || family.is_some(), "sample before its # TYPE: {line}");
            if let Some(labels) = key.strip_prefix(name) {
                assert!(labels.is_empty() || (labels.starts_with('{') && labels.ends_with("\"}") && labels.contains("=\"")), "{line}");
            }
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn counters_count_by_label() {
        let m = Metrics::default();
        m.transition("Created");
        m.transition("Succeeded");
        m.transition("Succeeded");
        m.transition("NotACondition");
        m.reconciled(false, Duration::from_millis(1));
        m.watch_restarted("pods");
        m.set_leader(true);
        let text = m.render(&[0, 2, 0, 5, 1, 0]);
        let transitions = samples(&text, "kompi_mpijob_transitions_total");
        assert!(transitions.contains(&("condition=\"Created\"", "1")) && transitions.contains(&("condition=\"Succeeded\"", "2")), "{text}");
        assert!(transitions.contains(&("condition=\"Failed\"", "0")), "{text}");
        assert_eq!(samples(&text, "kompi_reconciles_total"), [("result=\"ok\"", "0"), ("result=\"error\"", "1")]);
        assert!(samples(&text, "kompi_watch_restarts_total").contains(&("resource=\"pods\"", "1")));
        let jobs = samples(&text, "kompi_mpijobs");
        assert!(jobs.contains(&("condition=\"Running\"", "2")) && jobs.contains(&("condition=\"Succeeded\"", "5")), "{text}");
        assert_eq!(samples(&text, "kompi_leader"), [("", "1")]);
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_the_count() {
        let m = Metrics::default();
        for ms in [0.5, 4.0, 4.0, 300.0, 9000.0] {
            m.reconciled(true, Duration::from_secs_f64(ms / 1000.0));
        }
        let text = m.render(&[0; 6]);
        let buckets = samples(&text, "kompi_reconcile_duration_seconds_bucket");
        let at = |le: &str| buckets.iter().find(|(l, _)| *l == format!("le=\"{le}\"")).unwrap().1;
        assert_eq!((at("0.001"), at("0.005"), at("0.25"), at("0.5"), at("5"), at("+Inf")), ("1", "3", "3", "4", "4", "5"));
        let counts: Vec<u64> = buckets.iter().map(|(_, v)| v.parse().unwrap()).collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        assert_eq!(samples(&text, "kompi_reconcile_duration_seconds_count"), [("", "5")]);
        let sum: f64 = samples(&text, "kompi_reconcile_duration_seconds_sum")[0].1.parse().unwrap();
        assert!((sum - 9.3085).abs() < 1e-9, "{sum}");
    }
}
