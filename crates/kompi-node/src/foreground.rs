//! A command in the foreground: in a process group of its own, so that a signal passed on reaches what it
//! started as well (mpiexec's local ranks, the children of a one-shot job's shell), and every stop request
//! passed on to that group until the command ends.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::{SigHandler, Signal, killpg};
use tracing::{debug, info};

use crate::reaper::{ChildExit, Reaper};

/// Where requests to signal the command come from.
pub trait StopRequests {
    /// The next signal to pass on. Cancel-safe.
    async fn next(&mut self) -> Signal;
}

/// The signals passed on. The command starts with their default actions, even where this process was
/// started with them ignored (as a shell does for background jobs), or passing them on would do nothing.
const PASSED_ON: [Signal; 2] = [Signal::SIGINT, Signal::SIGTERM];

/// Runs `command` until it ends and returns how it did; `Err` only when it cannot start.
pub async fn run(command: &mut Command, reaper: &Reaper, requests: &mut impl StopRequests) -> io::Result<ChildExit> {
    command.process_group(0);
    // SAFETY: runs in the forked child before exec; sigaction(2) is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            for signal in PASSED_ON {
                nix::sys::signal::signal(signal, SigHandler::SigDfl)?;
            }
            Ok(())
        });
    }
    let mut child = reaper.spawn(command)?;
    debug!(pid = child.pid.as_raw(), program = ?command.get_program(), "started");
    loop {
        tokio::select! {
            exit = child.wait() => return Ok(exit),
            signal = requests.next() => {
                info!(%signal, "passing on to the command's process group");
                let _ = killpg(child.pid, signal);
            }
        }
    }
}
