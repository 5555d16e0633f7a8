//! PID 1's duty: every process that ends below us (our children, and orphans of ssh sessions and mpiexec,
//! which the kernel reparents to us) is reaped here, by one `waitpid(-1)` loop per SIGCHLD. Nothing else
//! may wait for a child, or the two would race: children are spawned through [`Reaper::spawn`], which
//! hands back a channel that receives the child's exit.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;
use tracing::{debug, warn};

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildExit {
    Exited(i32),
    Signaled(Signal),
    /// The reaper went away before the child ended (only while the runtime shuts down).
    Lost,
}

impl ChildExit {
    /// The status a shell would report: the exit code, or 128 + the signal's number.
    pub fn shell_status(self) -> i32 {
        match self {
            ChildExit::Exited(code) => code,
            ChildExit::Signaled(signal) => 128 + signal as i32,
            ChildExit::Lost => 1,
        }
    }
}

impl fmt::Display for ChildExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildExit::Exited(code) => write!(f, "exit status {code}"),
            ChildExit::Signaled(signal) => write!(f, "killed by {signal}"),
            ChildExit::Lost => f.write_str("exit status unknown"),
        }
    }
}

pub struct TrackedChild {
    pub pid: Pid,
    exit: oneshot::Receiver<ChildExit>,
}

impl TrackedChild {
    /// Cancel-safe: may be polled again after another branch of a `select!` won.
    pub async fn wait(&mut self) -> ChildExit {
        (&mut self.exit).await.unwrap_or(ChildExit::Lost)
    }
}

type Waiters = Arc<Mutex<HashMap<Pid, oneshot::Sender<ChildExit>>>>;

#[derive(Clone)]
pub struct Reaper {
    waiters: Waiters,
}

/// The process's one reaper: a second would take the first one's children.
static STARTED: OnceLock<Reaper> = OnceLock::new();

impl Reaper {
    /// Starts reaping on the current tokio runtime, or hands back the reaper already running. Call before
    /// spawning anything.
    pub fn start() -> io::Result<Reaper> {
        if let Some(reaper) = STARTED.get() {
            return Ok(reaper.clone());
        }
        let mut sigchld = signal(SignalKind::child())?;
        let waiters = Waiters::default();
        // Children that ended before we listened sent their SIGCHLD to no one.
        reap_all(&waiters);
        let reaping = waiters.clone();
        tokio::spawn(async move {
            while sigchld.recv().await.is_some() {
                reap_all(&reaping);
            }
        });
        Ok(STARTED.get_or_init(|| Reaper { waiters }).clone())
    }

    /// Spawns `command` and registers it before the reaper can see it end.
    pub fn spawn(&self, command: &mut Command) -> io::Result<TrackedChild> {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        let child = command.spawn()?;
        let pid = Pid::from_raw(child.id() as i32);
        let (sender, exit) = oneshot::channel();
        waiters.insert(pid, sender);
        // Dropping std's handle neither waits nor kills; the reaper learns of the exit.
        drop(child);
        Ok(TrackedChild { pid, exit })
    }
}

fn reap_all(waiters: &Waiters) {
    loop {
        let (pid, exit) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, ChildExit::Exited(code)),
            Ok(WaitStatus::Signaled(pid, signal, _core)) => (pid, ChildExit::Signaled(signal)),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => {
                warn!(error = %e, "waitpid failed");
                return;
            }
        };
        let waiter = waiters.lock().unwrap_or_else(PoisonError::into_inner).remove(&pid);
        match waiter {
            Some(sender) => {
                let _ = sender.send(exit);
            }
            None => debug!(pid = pid.as_raw(), %exit, "reaped an orphan"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_statuses() {
        assert_eq!(ChildExit::Exited(3).shell_status(), 3);
        assert_eq!(ChildExit::Signaled(Signal::SIGKILL).shell_status(), 137);
        assert_eq!(ChildExit::Signaled(Signal::SIGTERM).to_string(), "killed by SIGTERM");
    }

    // The only test of this crate that spawns processes: waitpid(-1) would reap other tests' children.
    #[tokio::test(flavor = "current_thread")]
    async fn children_are_reaped_with_their_status() {
        let reaper = Reaper::start().unwrap();
        let mut child = reaper.spawn(Command::new("sh").args(["-c", "exit 7"])).unwrap();
        assert_eq!(child.wait().await, ChildExit::Exited(7));
        let mut killed = reaper.spawn(Command::new("sh").args(["-c", "kill -KILL $$"])).unwrap();
        assert_eq!(killed.wait().await, ChildExit::Signaled(Signal::SIGKILL));
    }
}
