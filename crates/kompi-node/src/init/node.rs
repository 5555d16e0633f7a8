//! The running phase: reap, supervise sshd, then either wait for a request to stop or run the one-shot
//! job; sshd is stopped before `kompi init` exits.

use kompi_spec::{ErrorKind, ExitStatusOf};
use tokio::sync::watch;
use tracing::{Instrument, Span, error, info};

use crate::reaper::Reaper;
use super::sshd::Sshd;
use crate::gate::Gate;
use super::{InitArgs, OneShot, one_shot, supervisor};
use crate::termination::Termination;

pub async fn run(args: &InitArgs, sshd: Option<Sshd>, job: Option<OneShot>, span: Span, status_of: ExitStatusOf) -> i32 {
    async move {
        // Both listen before any child exists, so no exit and no signal is missed.
        let (reaper, mut termination) = match Reaper::start().and_then(|r| Ok((r, Termination::listen()?))) {
            Ok(started) => started,
            Err(e) => {
                crate::cli::print_error(&format_args!("cannot listen for signals: {e}"));
                return status_of(ErrorKind::Failed);
            }
        };
        let (stop_sshd, stop_requested) = watch::channel(false);
        let supervisor = sshd.map(|sshd| tokio::spawn(supervisor::supervise(reaper.clone(), sshd, stop_requested).in_current_span()));

        let status = match &job {
            None => {
                let signal = termination.next().await;
                info!(%signal, "stopping");
                0
            }
            Some(job) => {
                let gate = Gate {
                    cluster: &args.cluster,
                    workers: job.workers,
                    port: args.ssh_port,
                    hostfile: &args.hostfile,
                    timeout: job.wait_timeout,
                };
                one_shot::run(job, gate, &reaper, &mut termination, status_of).await
            }
        };

        let _ = stop_sshd.send(true);
        if let Some(Err(e)) = match supervisor {
            Some(supervisor) => Some(supervisor.await),
            None => None,
        } {
            error!(error = %e, "the sshd supervisor failed");
        }
        info!(status, "kompi init exits");
        status
    }
    .instrument(span)
    .await
}
