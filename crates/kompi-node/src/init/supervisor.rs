//! Keeps sshd running: restarts it with backoff whenever it dies, says when it accepts connections, and
//! stops it (SIGTERM, then SIGKILL after a grace period) when asked.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{Instrument, error, info, info_span, warn};

use super::backoff::RestartBackoff;
use crate::reaper::{Reaper, TrackedChild};
use super::sshd::Sshd;

const STOP_GRACE: Duration = Duration::from_secs(5);
const LISTEN_POLL: Duration = Duration::from_millis(100);

/// Runs until `stop` turns true; sshd is stopped when this returns.
pub async fn supervise(reaper: Reaper, sshd: Sshd, mut stop: watch::Receiver<bool>) {
    let mut backoff = RestartBackoff::default();
    for attempt in 1u32.. {
        let span = info_span!("sshd", attempt);
        let started = Instant::now();
        let ended = match spawn_logged(&reaper, &sshd) {
            Ok(child) => run_once(child, &sshd, attempt, &mut stop).instrument(span.clone()).await,
            Err(e) => {
                span.in_scope(|| error!(binary = %sshd.binary.display(), error = %e, "cannot start sshd"));
                true
            }
        };
        if !ended {
            return;
        }
        let delay = backoff.delay_after_run(started.elapsed());
        span.in_scope(|| info!("restarting sshd in {delay:?}"));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop_requested(&mut stop) => return,
        }
    }
}

/// Starts sshd with its stderr going through the probe filter.
fn spawn_logged(reaper: &Reaper, sshd: &Sshd) -> std::io::Result<TrackedChild> {
    let (reader, writer) = std::io::pipe()?;
    let mut command = sshd.command();
    command.stderr(writer);
    let child = reaper.spawn(&mut command);
    // Our copy of the write end must close, or the forwarder never sees sshd's end of the log.
    drop(command);
    super::sshd_log::forward(reader, sshd.openssh);
    child
}

/// Supervises one sshd process; `true` if it ended on its own, `false` if it was stopped on request.
async fn run_once(mut child: TrackedChild, sshd: &Sshd, attempt: u32, stop: &mut watch::Receiver<bool>) -> bool {
    let port = sshd.port;
    let listening = wait_until_listening(port);
    tokio::pin!(listening);
    let mut announced = false;
    loop {
        tokio::select! {
            exit = child.wait() => {
                warn!(pid = child.pid.as_raw(), %exit, "sshd exited");
                return true;
            }
            () = &mut listening, if !announced => {
                announced = true;
                if attempt == 1 {
                    info!(port, "sshd ready on port {port}");
                } else {
                    info!(port, "sshd ready again on port {port}");
                }
            }
            () = stop_requested(stop) => {
                stop_child(&mut child).await;
                return false;
            }
        }
    }
}

async fn stop_child(child: &mut TrackedChild) {
    let _ = kill(child.pid, Signal::SIGTERM);
    let exit = match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(exit) => exit,
        Err(_) => {
            warn!(pid = child.pid.as_raw(), "sshd ignored SIGTERM for {STOP_GRACE:?}; killing it");
            let _ = kill(child.pid, Signal::SIGKILL);
            child.wait().await
        }
    };
    info!(%exit, "sshd stopped");
}

async fn wait_until_listening(port: u16) {
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        tokio::time::sleep(LISTEN_POLL).await;
    }
}

/// Returns once `stop` is true (or its sender is gone).
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
