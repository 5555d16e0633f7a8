//! `kompi init`: PID 1 of every MPI container. Prepares the running user's private ssh files, the MPI
//! defaults and sshd's config (all checked before anything starts), then supervises sshd, reaps orphans,
//! and in one-shot mode runs the job once the workers answer.

mod backoff;
mod error;
mod home_files;
mod identity;
mod keys;
mod layout;
mod node;
mod one_shot;
mod open_mpi;
mod prepare;
mod sshd;
mod sshd_log;
mod strict_modes;
mod supervisor;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use kompi_render::command::Role;
use kompi_spec::{ClusterName, ErrorKind, ExitStatusOf, MpiImplementation, StatusMeanings};
use tracing::info_span;

use crate::cli;

pub use error::InitError;

/// What `kompi init`'s exit statuses mean; the command line's table gives their numbers.
pub const EXIT_STATUSES: StatusMeanings<'static> = StatusMeanings {
    success: "stopped by SIGTERM or SIGINT (sshd was stopped first)",
    kinds: &[
        (ErrorKind::Failed, "setup failed; the one line on stderr names the file, directory, port or binary and the fix"),
        (ErrorKind::InvalidInput, "invalid arguments"),
        (ErrorKind::WorkersNotReady, "one-shot: the workers did not all answer within --wait-timeout (the command never ran)"),
        (ErrorKind::CommandNotFound, "one-shot: bash cannot be started"),
    ],
    otherwise: Some("one-shot: the command's own exit status (128+S when a signal S ended it)"),
};

/// The files `kompi init` makes, for its long help.
pub const FILES_HELP: &str = "\
Files, all owned by the running user ($HOME, else the passwd home):
  ~/.kompi/              0700: id_cluster and authorized_keys, copied from --key-dir
  ~/.kompi/<hostname>/   0700: ephemeral host key, sshd_config, sshd.pid
  ~/.ssh/config          ssh settings for the cluster's hosts (your own file is left alone)
  ~/.openmpi/, ~/.prte/  Open MPI defaults, so `kubectl exec ... mpiexec` gets them too";

/// Arguments of `kompi init`, as `kompi template` writes them into the pod specs.
#[derive(Args, Debug, Clone)]
pub struct InitArgs {
    /// This container's part: the master (where mpiexec runs) or a worker
    #[arg(long, value_parser = PossibleValuesParser::new(["master", "worker"]).map(|s| role(&s)))]
    pub role: Role,

    /// The cluster's name (the master is <CLUSTER>-master, workers <CLUSTER>-worker-<i>)
    #[arg(long, value_parser = cli::cluster_name)]
    pub cluster: ClusterName,

    /// Port sshd listens on, in this container and in every other of the cluster
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub ssh_port: u16,

    /// The MPI implementation in the image (decides which default files are written)
    #[arg(long, value_parser = cli::mpi_implementation())]
    pub mpi: MpiImplementation,

    /// Directory holding the cluster key: id_rsa, id_rsa.pub and authorized_keys (read, never modified)
    #[arg(long, value_name = "DIR")]
    pub key_dir: PathBuf,

    /// The hostfile mpiexec reads (written by the master's `kompi hostfile` sidecar)
    #[arg(long, value_name = "PATH")]
    pub hostfile: PathBuf,

    /// An extra Open MPI MCA parameter written into the defaults file (repeatable)
    #[arg(long = "mca", value_name = "NAME=VALUE", value_parser = mca_parameter)]
    pub mca: Vec<(String, String)>,

    /// One-shot mode: run COMMAND once the hostfile lists this many workers and each answers on its ssh port
    #[arg(long, value_name = "N", requires_all = ["handshake_dir", "command"])]
    pub one_shot_workers: Option<u32>,

    /// One-shot mode: how long to wait for the workers before giving up
    #[arg(long = "wait-timeout", value_name = "SECONDS", default_value_t = 600)]
    pub wait_timeout_seconds: u64,

    /// One-shot mode: where to leave the command's exit status for the sidecar
    #[arg(long, value_name = "DIR", requires = "one_shot_workers")]
    pub handshake_dir: Option<PathBuf>,

    /// The sshd binary (an absolute path: sshd re-executes itself)
    #[arg(long, value_name = "PATH", default_value = "/usr/sbin/sshd")]
    pub sshd: PathBuf,

    /// One-shot mode: where Kubernetes collects the termination message (written only if it exists)
    #[arg(long, value_name = "PATH", default_value = "/dev/termination-log")]
    pub termination_log: PathBuf,

    /// One-shot mode: the command, run with `bash -c` (after `--`)
    #[arg(last = true, value_name = "COMMAND", requires = "one_shot_workers")]
    pub command: Option<String>,
}

/// What one-shot mode runs, and when.
#[derive(Clone, Debug, PartialEq)]
pub struct OneShot {
    pub workers: u32,
    pub wait_timeout: Duration,
    pub handshake_dir: PathBuf,
    pub command: String,
    pub termination_log: PathBuf,
}

impl InitArgs {
    fn one_shot(&self) -> Result<Option<OneShot>, InitError> {
        let (Some(workers), Some(handshake_dir), Some(command)) = (self.one_shot_workers, &self.handshake_dir, &self.command) else {
            return Ok(None);
        };
        if self.role != Role::Master {
            return Err(InitError::Usage("one-shot mode (--one-shot-workers) runs on the master only; drop it or use --role=master".into()));
        }
        Ok(Some(OneShot {
            workers,
            wait_timeout: Duration::from_secs(self.wait_timeout_seconds),
            handshake_dir: handshake_dir.clone(),
            command: command.clone(),
            termination_log: self.termination_log.clone(),
        }))
    }
}

/// Runs `kompi init` to the end and returns the process exit status; `status_of` numbers its failures.
pub fn run(args: &InitArgs, status_of: ExitStatusOf) -> i32 {
    let span = info_span!("init", cluster = %args.cluster, role = args.role.as_str());
    let _entered = span.enter();
    let one_shot = match args.one_shot() {
        Ok(one_shot) => one_shot,
        Err(error) => return fail(&error, None, status_of),
    };
    let sshd = match prepare::prepare(args) {
        Ok(sshd) => sshd,
        Err(error) => return fail(&error, one_shot.as_ref(), status_of),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(source) => return fail(&InitError::Runtime(source), one_shot.as_ref(), status_of),
    };
    runtime.block_on(node::run(args, sshd, one_shot, span.clone(), status_of))
}

/// Reports a setup failure in one line; in one-shot mode also tells the sidecar, so the pod can finish.
fn fail(error: &InitError, one_shot: Option<&OneShot>, status_of: ExitStatusOf) -> i32 {
    cli::print_error(error);
    let status = status_of(error.kind());
    if let Some(job) = one_shot {
        one_shot::record_outcome(job, status, &format!("kompi init failed: {error}"));
    }
    status
}

fn role(s: &str) -> Role {
    if s == "worker" { Role::Worker } else { Role::Master }
}

/// Checked again here (defence in depth): each parameter becomes one line of mca-params.conf.
fn mca_parameter(s: &str) -> Result<(String, String), String> {
    kompi_spec::mca_parameter(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use kompi_render::command::{InitCommand, OneShotCommand};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        init: InitArgs,
    }

    fn parse(args: &[String]) -> Result<InitArgs, clap::Error> {
        assert_eq!(args[0], "init");
        Cli::try_parse_from(std::iter::once("kompi-init").chain(args[1..].iter().map(String::as_str))).map(|c| c.init)
    }

    fn command(role: Role, one_shot: Option<OneShotCommand>) -> InitCommand {
        InitCommand {
            role,
            cluster: "mpi".into(),
            ssh_port: 2022,
            mpi: MpiImplementation::Mpich,
            key_dir: "/ssh-key/openmpi".into(),
            hostfile: "/kube-openmpi/generated/hostfile".into(),
            mca: vec![("btl_tcp_eager_limit".into(), "65536".into()), ("pml".into(), "ob1".into())],
            one_shot,
        }
    }

    fn assert_round_trip(c: &InitCommand) -> InitArgs {
        let args = parse(&c.to_args()).unwrap_or_else(|e| panic!("{:?} does not parse: {e}", c.to_args()));
        assert_eq!(args.role, c.role);
        assert_eq!(args.cluster.as_str(), c.cluster);
        assert_eq!(args.ssh_port, c.ssh_port);
        assert_eq!(args.mpi, c.mpi);
        assert_eq!(args.key_dir, PathBuf::from(&c.key_dir));
        assert_eq!(args.hostfile, PathBuf::from(&c.hostfile));
        assert_eq!(args.mca, c.mca);
        assert_eq!(args.sshd, PathBuf::from("/usr/sbin/sshd"));
        args
    }

    #[test]
    fn rendered_master_and_worker_command_lines_parse() {
        for role in [Role::Master, Role::Worker] {
            let args = assert_round_trip(&command(role, None));
            assert_eq!(args.one_shot().unwrap(), None);
        }
    }

    #[test]
    fn rendered_one_shot_command_line_parses() {
        let job = OneShotCommand {
            workers: 3,
            wait_timeout_seconds: 90,
            handshake_dir: "/kube-openmpi/handshake".into(),
            command: "mpiexec -n 4 sh -c 'echo $(hostname)' && exit 3".into(),
        };
        let args = assert_round_trip(&command(Role::Master, Some(job.clone())));
        let one_shot = args.one_shot().unwrap().unwrap();
        assert_eq!(one_shot.workers, 3);
        assert_eq!(one_shot.wait_timeout, Duration::from_secs(90));
        assert_eq!(one_shot.handshake_dir, PathBuf::from(job.handshake_dir));
        assert_eq!(one_shot.command, job.command);
    }

    #[test]
    fn one_shot_needs_its_companions_and_the_master_role() {
        let mut args = command(Role::Master, None).to_args();
        args.push("--one-shot-workers=2".into());
        assert!(parse(&args).is_err(), "--one-shot-workers without a command must be refused");
        let worker = command(
            Role::Worker,
            Some(OneShotCommand { workers: 1, wait_timeout_seconds: 1, handshake_dir: "/h".into(), command: "true".into() }),
        );
        let error = parse(&worker.to_args()).unwrap().one_shot().unwrap_err();
        assert!(error.to_string().contains("master only"), "{error}");
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn bad_values_are_refused() {
        let good = command(Role::Master, None).to_args();
        for (bad, why) in [
            ("--role=boss", "role"),
            ("--mpi=lam", "mpi"),
            ("--ssh-port=0", "port"),
            ("--cluster=My_Cluster", "cluster"),
            ("--mca=novalue", "mca"),
            ("--mca=btl_tcp_if_include=eth0\nplm_rsh_agent = /tmp/evil", "mca line break"),
            ("--mca=bad name=1", "mca name"),
        ] {
            let name = bad.split('=').next().unwrap();
            let args: Vec<String> =
                good.iter().map(|a| if a.starts_with(&format!("{name}=")) { bad.to_string() } else { a.clone() }).collect();
            assert!(args.iter().any(|a| a == bad), "{why}: the test must put {bad} in place");
            assert!(parse(&args).is_err(), "{why}: {bad} must be refused");
        }
    }
}
