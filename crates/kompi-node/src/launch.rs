//! `kompi launch`: what `kompi run` starts in the master's MPI container. It runs the command (mpiexec) in
//! the foreground and passes on its own SIGINT and SIGTERM and, with --signals-from-stdin, the client's:
//! an ETX byte on stdin (the client's Ctrl-C) as SIGINT, the end of stdin (the client went away: Ctrl-C
//! twice, a killed `kompi run`, a lost connection) as SIGTERM, then SIGKILL if the command outlives a
//! grace period. No pid files, no shell.

use std::io;
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::Args;
use kompi_spec::{ErrorKind, ExitStatusOf, StatusMeanings};
use nix::sys::signal::Signal;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use crate::cli;
use crate::foreground::{self, StopRequests};
use crate::reaper::{ChildExit, Reaper};
use crate::termination::Termination;

/// What the client sends for Ctrl-C (what a terminal sends for it).
pub const INTERRUPT: u8 = 0x03;
/// How long the command may outlive its client before SIGKILL.
const ORPHAN_GRACE: Duration = Duration::from_secs(10);
/// What `kompi launch`'s exit statuses mean; the command line's table gives their numbers.
pub const EXIT_STATUSES: StatusMeanings<'static> = StatusMeanings {
    success: "the command succeeded",
    kinds: &[
        (ErrorKind::Failed, "kompi launch itself cannot start"),
        (ErrorKind::CommandNotExecutable, "the command cannot be executed"),
        (ErrorKind::CommandNotFound, "the command is not found"),
    ],
    otherwise: Some("the command's own exit status (128+S when a signal S ended it)"),
};

/// Arguments of `kompi launch`, as `kompi run` passes them.
#[derive(Args, Debug, Clone)]
pub struct LaunchArgs {
    /// Read stdin as the client's channel: ETX (Ctrl-C) sends SIGINT to the command, the end of input
    /// SIGTERM (then SIGKILL after 10 s); the command itself reads nothing
    #[arg(long)]
    pub signals_from_stdin: bool,

    /// The command and its arguments (after `--`)
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Runs `kompi launch` to the end and returns the process exit status; `status_of` numbers its failures.
pub fn run(args: &LaunchArgs, status_of: ExitStatusOf) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            cli::print_error(&format_args!("cannot start the async runtime: {e}"));
            return status_of(ErrorKind::Failed);
        }
    };
    let control = args.signals_from_stdin.then(tokio::io::stdin);
    let outcome = runtime.block_on(launch(&args.command, control));
    // The read of stdin runs on a blocking thread until the client closes it; dropping the runtime
    // would wait for it.
    runtime.shutdown_background();
    match outcome {
        Ok(exit) => exit.shell_status(),
        Err(e) => {
            let program = args.command.first().map(String::as_str).unwrap_or_default();
            cli::print_error(&format_args!("cannot run {program}: {e}"));
            status_of(match e.kind() {
                io::ErrorKind::NotFound => ErrorKind::CommandNotFound,
                io::ErrorKind::PermissionDenied => ErrorKind::CommandNotExecutable,
                _ => ErrorKind::Failed,
            })
        }
    }
}

/// Runs `command` until it ends, passing on this process's SIGINT and SIGTERM and the requests read from
/// `control` (see [`LaunchArgs::signals_from_stdin`]); the command reads nothing when there is a control.
pub async fn launch(command: &[String], control: Option<impl AsyncRead + Unpin + Send + 'static>) -> io::Result<ChildExit> {
    let (program, args) = command.split_first().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command given"))?;
    let reaper = Reaper::start()?;
    let mut requests = Requests { termination: Termination::listen()?, client: control.map(read_client) };
    let mut child = Command::new(program);
    child.args(args);
    if requests.client.is_some() {
        child.stdin(Stdio::null());
    }
    foreground::run(&mut child, &reaper, &mut requests).await
}

/// This process's stop signals and the client's.
struct Requests {
    termination: Termination,
    client: Option<mpsc::Receiver<Signal>>,
}

impl StopRequests for Requests {
    async fn next(&mut self) -> Signal {
        let Some(client) = &mut self.client else { return self.termination.next().await };
        tokio::select! {
            signal = self.termination.next() => signal,
            asked = client.recv() => match asked {
                Some(signal) => signal,
                None => {
                    self.client = None;
                    std::future::pending().await
                }
            },
        }
    }
}

/// The client's requests, read from `control` as they come.
fn read_client(mut control: impl AsyncRead + Unpin + Send + 'static) -> mpsc::Receiver<Signal> {
    let (requests, received) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut buffer = [0u8; 64];
        loop {
            match control.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    for _ in buffer[..n].iter().filter(|b| **b == INTERRUPT) {
                        if requests.send(Signal::SIGINT).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        // The client is gone: nobody will see the output or stop the command any more.
        if requests.send(Signal::SIGTERM).await.is_ok() {
            tokio::time::sleep(ORPHAN_GRACE).await;
            let _ = requests.send(Signal::SIGKILL).await;
        }
    });
    received
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use kompi_render::command::LaunchCommand;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        launch: LaunchArgs,
    }

    #[test]
    fn the_command_line_kompi_run_sends_parses() {
        for signals_from_stdin in [true, false] {
            let sent = LaunchCommand { signals_from_stdin, command: vec!["mpiexec".into(), "--np".into(), "2".into(), "--".into(), "x".into()] };
            let args = sent.to_args();
            assert_eq!(args[0], "launch");
            let parsed = Cli::try_parse_from(std::iter::once("kompi-launch").chain(args[1..].iter().map(String::as_str))).unwrap().launch;
            assert_eq!((parsed.signals_from_stdin, parsed.command), (sent.signals_from_stdin, sent.command));
        }
    }
}
