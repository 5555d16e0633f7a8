//! One-shot mode (kube-openmpi's `mpiMaster.oneShot`): wait for the workers, run the command once, and
//! leave its exit status where Kubernetes (termination log) and the sidecar (handshake file) find it.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use kompi_spec::contract::HANDSHAKE_FILE;
use kompi_spec::{ErrorKind, ExitStatusOf};
use tracing::{error, info, warn};

use super::{OneShot, Run};
use crate::atomic_file::write_atomically;
use crate::foreground;
use crate::gate::Gate;
use crate::reaper::Reaper;
use crate::termination::Termination;

/// Runs the job to its end and returns the status `kompi init` exits with.
pub async fn run(job: &OneShot, gate: Gate<'_>, reaper: &Reaper, termination: &mut Termination, status_of: ExitStatusOf) -> i32 {
    let ready = tokio::select! {
        ready = gate.wait() => ready,
        signal = termination.next() => {
            let status = 128 + signal as i32;
            warn!(%signal, "stopped before the workers were ready; the command never ran");
            record_outcome(job, status, &format!("stopped by {signal} before the command ran"));
            return status;
        }
    };
    if let Err(timeout) = ready {
        error!("{timeout}");
        let status = status_of(ErrorKind::WorkersNotReady);
        record_outcome(job, status, &timeout.to_string());
        return status;
    }
    let status = match run_command(job, reaper, termination).await {
        Some(status) => status,
        None => status_of(ErrorKind::CommandNotFound),
    };
    record_outcome(job, status, &status.to_string());
    status
}

/// The command's exit status, `None` when its program (bash, or a launcher's) cannot be started.
async fn run_command(job: &OneShot, reaper: &Reaper, termination: &mut Termination) -> Option<i32> {
    let (mut command, shown) = match &job.run {
        Run::Shell(text) => {
            let mut bash = Command::new("bash");
            bash.arg("-c").arg(text);
            (bash, text.clone())
        }
        Run::Exec(argv) => {
            let Some((program, args)) = argv.split_first() else {
                error!("no command to run");
                return None;
            };
            let mut exec = Command::new(program);
            exec.args(args);
            (exec, argv.join(" "))
        }
    };
    info!(command = %shown, "running the one-shot command");
    // A signal to init reaches mpiexec too, not only bash.
    match foreground::run(&mut command, reaper, termination).await {
        Ok(exit) => {
            info!(%exit, "the one-shot command finished");
            Some(exit.shell_status())
        }
        Err(e) => {
            let program = command.get_program().to_string_lossy().into_owned();
            error!(error = %e, "cannot start {program} for the one-shot command: is it installed in the image (and on PATH)?");
            None
        }
    }
}

/// The container's termination message: Kubernetes mounts this file; outside a pod it does not exist
/// and is not created. Best effort.
pub fn write_termination_message(path: &Path, message: &str) {
    if let Ok(mut log) = std::fs::OpenOptions::new().write(true).truncate(true).open(path) {
        let _ = writeln!(log, "{message}");
    }
}

/// The pod's termination message, and (on the master) the handshake file the sidecar waits for (so the pod
/// can finish). Both are best effort: failing to write them must not change the job's status.
pub fn record_outcome(job: &OneShot, status: i32, message: &str) {
    write_termination_message(&job.termination_log, message);
    let Some(dir) = &job.handshake_dir else { return };
    let handshake = dir.join(HANDSHAKE_FILE);
    match write_atomically(&handshake, format!("{status}\n").as_bytes(), 0o644) {
        Ok(()) => info!(path = %handshake.display(), status, "left the exit status for the sidecar"),
        Err(e) => warn!(path = %handshake.display(), error = %e, "cannot leave the exit status for the sidecar, which keeps waiting (the pod will not finish)"),
    }
}
