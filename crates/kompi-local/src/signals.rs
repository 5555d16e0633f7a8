//! Running a command in the foreground: Ctrl-C and termination signals reach it, and kompi waits to
//! report how it ended.

use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill, sigaction};
use nix::unistd::Pid;

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signal: i32) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0
        && let Ok(signal) = Signal::try_from(signal)
    {
        // kill(2) is async-signal-safe.
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// Runs the program with inherited stdio and returns its exit status (128 + signal number if a
/// signal ended it). SIGINT, SIGTERM and SIGHUP sent to kompi are passed on to it.
pub fn run_forwarding(program: &str, args: &[String]) -> std::io::Result<i32> {
    let mut child = Command::new(program).args(args).spawn()?;
    CHILD.store(child.id() as i32, Ordering::SeqCst);
    let action = SigAction::new(SigHandler::Handler(forward), SaFlags::SA_RESTART, SigSet::empty());
    let mut previous = Vec::new();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only reads an atomic and calls kill(2).
        if let Ok(old) = unsafe { sigaction(signal, &action) } {
            previous.push((signal, old));
        }
    }
    let status = child.wait();
    CHILD.store(0, Ordering::SeqCst);
    for (signal, old) in previous {
        // SAFETY: restores the disposition saved above.
        let _ = unsafe { sigaction(signal, &old) };
    }
    Ok(exit_code(status?))
}

pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_and_signals() {
        assert_eq!(run_forwarding("sh", &["-c".into(), "exit 3".into()]).unwrap(), 3);
        assert_eq!(run_forwarding("sh", &["-c".into(), "kill -TERM $$".into()]).unwrap(), 128 + 15);
        assert!(run_forwarding("/nonexistent/program", &[]).is_err());
    }
}
