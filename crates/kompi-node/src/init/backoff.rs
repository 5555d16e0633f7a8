//! How long to wait before restarting sshd: doubling after each quick death, back to the start once it
//! has run stably, so a crash loop does not spin and a rare crash heals fast.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct RestartBackoff {
    initial: Duration,
    max: Duration,
    stable_after: Duration,
    next: Duration,
}

impl RestartBackoff {
    pub fn new(initial: Duration, max: Duration, stable_after: Duration) -> Self {
        RestartBackoff { initial, max, stable_after, next: initial }
    }

    /// The pause before the next start, given how long the process that just ended had run.
    pub fn delay_after_run(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.stable_after {
            self.next = self.initial;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }
}

impl Default for RestartBackoff {
    fn default() -> Self {
        RestartBackoff::new(Duration::from_millis(500), Duration::from_secs(30), Duration::from_secs(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets_after_a_stable_run() {
        let mut b = RestartBackoff::new(Duration::from_secs(1), Duration::from_secs(5), Duration::from_secs(60));
        let quick = Duration::from_millis(10);
        let delays: Vec<u64> = (0..5).map(|_| b.delay_after_run(quick).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 5, 5]);
        assert_eq!(b.delay_after_run(Duration::from_secs(61)), Duration::from_secs(1));
        assert_eq!(b.delay_after_run(quick), Duration::from_secs(2));
    }
}
