//! SIGTERM (Kubernetes stopping the pod) and SIGINT (Ctrl-C), the two requests to stop.

use std::io;

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};

pub struct Termination {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Termination {
    /// Listens from now on (inside a tokio runtime); the default action, dying, no longer applies.
    pub fn listen() -> io::Result<Self> {
        Ok(Termination { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    /// The next request to stop. Cancel-safe.
    pub async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::SIGTERM,
            _ = self.int.recv() => Signal::SIGINT,
        }
    }
}

impl crate::foreground::StopRequests for Termination {
    async fn next(&mut self) -> Signal {
        Termination::next(self).await
    }
}
