//! How long operations report where they stand. kube prints nothing itself: the CLI decides how progress
//! is shown (a live line on a terminal, plain lines otherwise).

/// Where a wait, a run or a log reports to.
pub trait Progress {
    /// How the wait stands now; replaces the previous state (a live line on a terminal).
    fn update(&mut self, line: &str);
    /// Something worth keeping: a stuck pod, an interrupted watch, a log line.
    fn note(&mut self, line: &str);
    /// The wait is over: the live line, if any, goes away.
    fn finish(&mut self) {}
}

/// Progress nobody watches (tests, callers that only want the result).
pub struct Silent;

impl Progress for Silent {
    fn update(&mut self, _: &str) {}
    fn note(&mut self, _: &str) {}
}
