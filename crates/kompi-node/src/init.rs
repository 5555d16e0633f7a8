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
        (ErrorKind::CommandNotFound, "one-shot: bash (on a launcher: its program) cannot be started"),
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
    /// This container's part: the master (where mpiexec runs), a worker, or an MPIJob's launcher (which
    /// runs the command after `--` itself, without a shell, once every worker answers on ssh)
    #[arg(long, value_parser = PossibleValuesParser::new(["master", "worker", "launcher"]).map(|s| role(&s)))]
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
    #[arg(long, value_name = "N", requires = "command")]
    pub one_shot_workers: Option<u32>,

    /// One-shot mode: how long to wait for the workers before giving up
    #[arg(long = "wait-timeout", value_name = "SECONDS", default_value_t = 600)]
    pub wait_timeout_seconds: u64,

    /// One-shot mode on the master: where to leave the command's exit status for the sidecar
    #[arg(long, value_name = "DIR", requires = "one_shot_workers")]
    pub handshake_dir: Option<PathBuf>,

    /// The sshd binary (an absolute path: sshd re-executes itself); default: the first of /usr/sbin/sshd,
    /// /usr/local/sbin/sshd, /sbin/sshd and /usr/bin/sshd that the image has
    #[arg(long, value_name = "PATH")]
    pub sshd: Option<PathBuf>,

    /// Do not run sshd: a launcher that is not one of the job's hosts only connects out
    #[arg(long)]
    pub no_sshd: bool,

    /// One-shot mode: where Kubernetes collects the termination message (written only if it exists)
    #[arg(long, value_name = "PATH", default_value = "/dev/termination-log")]
    pub termination_log: PathBuf,

    /// One-shot mode: the command (after `--`); on the master one argument, run with `bash -c`; on a
    /// launcher the program and its arguments
    #[arg(last = true, value_name = "COMMAND", requires = "one_shot_workers")]
    pub command: Vec<String>,
}

/// How the one-shot command is started.
#[derive(Clone, Debug, PartialEq)]
pub enum Run {
    /// kube-openmpi's `oneShot.command`: `bash -c COMMAND`.
    Shell(String),
    /// An MPIJob launcher's command and arguments, as the pod spec gave them.
    Exec(Vec<String>),
}

/// What one-shot mode runs, and when.
#[derive(Clone, Debug, PartialEq)]
pub struct OneShot {
    pub workers: u32,
    pub wait_timeout: Duration,
    /// The master's: where its sidecar waits for the exit status (a launcher has no sidecar).
    pub handshake_dir: Option<PathBuf>,
    pub run: Run,
    pub termination_log: PathBuf,
}

impl InitArgs {
    fn one_shot(&self) -> Result<Option<OneShot>, InitError> {
        let usage = |m: &str| Err(InitError::Usage(m.into()));
        if self.no_sshd && self.role != Role::Launcher {
            return usage("--no-sshd is for an MPIJob launcher that is not one of the job's hosts; masters and workers serve ssh");
        }
        let Some(workers) = self.one_shot_workers else {
            if self.role == Role::Launcher {
                return usage("--role=launcher needs --one-shot-workers=N and the job's command after --");
            }
            return Ok(None);
        };
        let run = match self.role {
            Role::Worker => {
                return usage("one-shot mode (--one-shot-workers) runs on the master only (or an MPIJob's launcher); drop it or use --role=master");
            }
            Role::Master => {
                let [command] = self.command.as_slice() else {
                    return usage("the master's one-shot command is one argument after --, run with bash -c (quote it)");
                };
                if self.handshake_dir.is_none() {
                    return usage("one-shot mode on the master needs --handshake-dir, where its hostfile sidecar learns the exit status");
                }
                Run::Shell(command.clone())
            }
            Role::Launcher => Run::Exec(self.command.clone()),
        };
        Ok(Some(OneShot {
            workers,
            wait_timeout: Duration::from_secs(self.wait_timeout_seconds),
            handshake_dir: self.handshake_dir.clone(),
            run,
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
        Err(error) => return fail(&error, None, &args.termination_log, status_of),
    };
    let sshd = match prepare::prepare(args) {
        Ok(sshd) => sshd,
        Err(error) => return fail(&error, one_shot.as_ref(), &args.termination_log, status_of),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(source) => return fail(&InitError::Runtime(source), one_shot.as_ref(), &args.termination_log, status_of),
    };
    runtime.block_on(node::run(args, sshd, one_shot, span.clone(), status_of))
}

/// Reports a setup failure in one line, also as the container's termination message (so whoever
/// watches the pod, the MPIJob operator say, can tell why it ended); in one-shot mode also tells the
/// sidecar, so the pod can finish.
fn fail(error: &InitError, one_shot: Option<&OneShot>, termination_log: &std::path::Path, status_of: ExitStatusOf) -> i32 {
    cli::print_error(error);
    let status = status_of(error.kind());
    let message = format!("kompi init failed: {error}");
    match one_shot {
        Some(job) => one_shot::record_outcome(job, status, &message),
        None => one_shot::write_termination_message(termination_log, &message),
    }
    status
}

fn role(s: &str) -> Role {
    match s {
        "worker" => Role::Worker,
        "launcher" => Role::Launcher,
        _ => Role::Master,
    }
}

/// Checked again here (defence in depth): each parameter becomes one line of mca-params.conf.
fn mca_parameter(s: &str) -> Result<(String, String), String> {
    kompi_spec::mca_parameter(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use kompi_render::command::{InitCommand, JobInitCommand, JobLaunch, OneShotCommand};

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
        assert_eq!(args.sshd, None, "found at the usual paths");
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
        assert_eq!(one_shot.handshake_dir, Some(PathBuf::from(job.handshake_dir)));
        assert_eq!(one_shot.run, Run::Shell(job.command));
    }

    fn job_command(launch: Option<JobLaunch>) -> JobInitCommand {
        JobInitCommand {
            role: if launch.is_some() { Role::Launcher } else { Role::Worker },
            job: "pi".into(),
            ssh_port: 2022,
            mpi: MpiImplementation::OpenMpi,
            key_dir: "/etc/kompi/ssh-key".into(),
            hostfile: "/etc/mpi/hostfile".into(),
            sshd: Some("/usr/local/sbin/sshd".into()),
            launch,
        }
    }

    #[test]
    fn rendered_job_command_lines_parse() {
        let worker = parse(&job_command(None).to_args()).unwrap();
        assert_eq!((worker.role, worker.sshd.clone(), worker.no_sshd), (Role::Worker, Some(PathBuf::from("/usr/local/sbin/sshd")), false));
        assert_eq!(worker.one_shot().unwrap(), None);
        let command = vec!["mpirun".to_string(), "-n".into(), "2".into(), "sh".into(), "-c".into(), "echo $(hostname)".into()];
        let launch = JobLaunch { hosts: 3, wait_timeout_seconds: 30, serve_ssh: false, command: command.clone() };
        let launcher = parse(&job_command(Some(launch.clone())).to_args()).unwrap();
        assert_eq!((launcher.role, launcher.no_sshd, launcher.cluster.as_str()), (Role::Launcher, true, "pi"));
        let one_shot = launcher.one_shot().unwrap().unwrap();
        assert_eq!((one_shot.workers, one_shot.wait_timeout, one_shot.handshake_dir), (3, Duration::from_secs(30), None));
        assert_eq!(one_shot.run, Run::Exec(command));
        let serving = parse(&job_command(Some(JobLaunch { serve_ssh: true, ..launch })).to_args()).unwrap();
        assert!(!serving.no_sshd);
    }

    #[test]
    fn a_launcher_needs_its_command_and_only_it_may_skip_sshd() {
        let mut args = job_command(None).to_args();
        args = args.into_iter().map(|a| if a == "--role=worker" { "--role=launcher".into() } else { a }).collect();
        let error = parse(&args).unwrap().one_shot().unwrap_err();
        assert!(error.to_string().contains("needs --one-shot-workers"), "{error}");
        let mut worker = job_command(None).to_args();
        worker.push("--no-sshd".into());
        let error = parse(&worker).unwrap().one_shot().unwrap_err();
        assert!(error.to_string().contains("--no-sshd is for an MPIJob launcher"), "{error}");
        let mut master = command(Role::Master, None).to_args();
        master.extend(["--one-shot-workers=1".to_string(), "--".into(), "true".into()]);
        let error = parse(&master).unwrap().one_shot().unwrap_err();
        assert!(error.to_string().contains("--handshake-dir"), "{error}");
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
