//! How the libraries' progress is shown: a live line on a terminal, plain lines (only when something
//! changed) otherwise, all on stderr.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    last: String,
}

impl Progress {
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed}] {msg}").expect("valid template"));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { bar, last: String::new() }
    }
}

impl kompi_kube::progress::Progress for Progress {
    fn update(&mut self, line: &str) {
        if line == self.last {
            return;
        }
        self.last = line.to_string();
        match &self.bar {
            Some(bar) => bar.set_message(line.to_string()),
            None => eprintln!("{line}"),
        }
    }

    /// A line that stays (a problem worth reading), above the live line.
    fn note(&mut self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        kompi_kube::progress::Progress::finish(self);
    }
}
