//! `kompi hostfile`: the master pod's sidecar, the only container with API credentials. It watches the
//! worker pods and keeps the hostfile current (replacing kube-openmpi's 15-second kubectl polling), holds
//! the master's readiness until every listed worker answers on ssh, and in one-shot mode scales the
//! workers down after a successful job.

mod error;
mod handshake;
mod output;
mod readiness;
mod watch;

use std::path::PathBuf;

use clap::Args;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kompi_render::hostfile::{self, entries_of_pods, starting_workers};
use kompi_spec::contract::worker_selector;
use kompi_spec::{ClusterName, ErrorKind, ExitStatusOf, MpiImplementation, StatusMeanings};
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use tracing::{Instrument, error, info, info_span};

pub use error::HostfileError;
use handshake::Decision;
pub use output::write_hostfile;
use output::Publisher;

use crate::cli;
use crate::termination::Termination;

const HOSTFILE_HELP: &str = "\
The hostfile lists the master first (<CLUSTER>-master), then every worker pod that is Ready and not
terminating as <pod>.<CLUSTER>, by ordinal. It is replaced atomically, only when it changes.

The master pod's readiness gate, the condition kompi.io/workers-reachable, is True once every initial
worker has been listed, every worker pod (not being deleted) is listed, and every listed worker answers
on --ssh-port from this pod; the pod is Ready only with it.

API requests: list and watch pods (label selector of the cluster's workers), a PATCH of
pods/<CLUSTER>-master/status when the condition changes and, with --scale-down-on-success, one PATCH of
statefulsets/<CLUSTER>-worker/scale. API errors are logged and retried, never fatal.";

/// What `kompi hostfile`'s exit statuses mean; the command line's table gives their numbers.
pub const EXIT_STATUSES: StatusMeanings<'static> = StatusMeanings {
    success: "stopped by SIGTERM or SIGINT, or after the one-shot handshake",
    kinds: &[(ErrorKind::Failed, "the hostfile cannot be written or the Kubernetes client cannot be configured")],
    otherwise: None,
};

/// Arguments of `kompi hostfile`, as `kompi template` writes them into the master pod.
#[derive(Args, Debug, Clone)]
#[command(after_long_help = HOSTFILE_HELP)]
pub struct HostfileArgs {
    /// The cluster's name; its worker pods are <CLUSTER>-worker-<i>
    #[arg(long, value_parser = cli::cluster_name)]
    pub cluster: ClusterName,

    /// Workers the cluster starts with; once the hostfile lists this many, `.complete` is created beside it,
    /// and only from then on can the master be Ready
    #[arg(long, value_name = "N")]
    pub workers: u32,

    /// Slots on each worker's line
    #[arg(long, value_name = "N")]
    pub slots: u32,

    /// Slots on the master's line
    #[arg(long, value_name = "N")]
    pub master_slots: u32,

    /// The workers' ssh port, which each listed worker must answer on before the master is Ready
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub ssh_port: u16,

    /// Hostfile syntax: `host slots=N` for openmpi, `host:N` for mpich and intel
    #[arg(long, value_parser = cli::mpi_implementation())]
    pub mpi: MpiImplementation,

    /// The hostfile to keep current
    #[arg(long, value_name = "PATH")]
    pub output: PathBuf,

    /// Stop following the workers once the hostfile is complete (kube-openmpi's autoUpdateHostfile.enabled=false)
    #[arg(long)]
    pub once: bool,

    /// One-shot mode: wait for the master's exit status in DIR/exit-status, then exit
    #[arg(long, value_name = "DIR")]
    pub handshake_dir: Option<PathBuf>,

    /// One-shot mode: scale the workers' StatefulSet to 0 when that status is 0
    #[arg(long, requires = "handshake_dir")]
    pub scale_down_on_success: bool,

    /// Namespace of the cluster (default: $POD_NAMESPACE, else the client's default namespace)
    #[arg(long, env = "POD_NAMESPACE", value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

/// Runs the sidecar to its end and returns the process exit status; `status_of` numbers its failure.
pub fn run(args: &HostfileArgs, status_of: ExitStatusOf) -> i32 {
    let span = info_span!("hostfile", cluster = %args.cluster);
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Name lookups of the readiness gate run on blocking threads: a few are enough, and each thread
        // would cost memory (its stack, an allocator arena) with a thousand workers to probe.
        .max_blocking_threads(4)
        .build()
        .map_err(HostfileError::Runtime)
        .and_then(|runtime| runtime.block_on(sidecar(args).instrument(span)));
    match result {
        Ok(()) => 0,
        Err(error) => {
            cli::print_error(&error);
            status_of(error.kind())
        }
    }
}

async fn sidecar(args: &HostfileArgs) -> Result<(), HostfileError> {
    let mut termination = Termination::listen().map_err(HostfileError::Signals)?;
    let membership = |store: &Store<Pod>| {
        let pods = store.state();
        let pods = pods.iter().map(|p| &**p);
        (entries_of_pods(&args.cluster, args.master_slots, args.slots, pods.clone()), starting_workers(&args.cluster, pods))
    };
    let mut publisher = Publisher::new(&args.output, args.mpi, args.workers);
    publisher.start(&hostfile::entries(&args.cluster, args.master_slots, args.slots, []))?;

    let client = Client::try_default().await.map_err(HostfileError::Client)?;
    let namespace = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    info!(namespace, output = %args.output.display(), workers = args.workers, "following the worker pods");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let readiness = tokio::spawn(readiness::hold(pods.clone(), args.cluster.clone(), args.ssh_port, publisher.listings()));

    let following = async {
        if !(args.once && publisher.is_complete()) {
            let events = watch::worker_events(pods, &worker_selector(args.cluster.as_str()));
            watch::follow_workers(events, membership, &mut publisher, args.once).await?;
        }
        // Done following (--once): stay up, so the pod stays ready, until told to stop.
        std::future::pending::<Result<(), HostfileError>>().await
    };
    let handshake = async {
        match &args.handshake_dir {
            Some(dir) => handshake::wait_for_exit_status(dir).await,
            None => std::future::pending().await,
        }
    };

    let status = tokio::select! {
        failed = following => return failed,
        status = handshake => status,
        signal = termination.next() => {
            info!(%signal, "stopping");
            return Ok(());
        }
    };
    readiness.abort();
    tokio::select! {
        () = finish_one_shot(args, status, client, &namespace) => {}
        signal = termination.next() => info!(%signal, "stopping before the one-shot job's end was handled"),
    }
    Ok(())
}

async fn finish_one_shot(args: &HostfileArgs, status: Option<i32>, client: Client, namespace: &str) {
    let workers = args.cluster.worker_set();
    match handshake::decide(status, args.scale_down_on_success) {
        Decision::KeepWorkers(why) => info!(statefulset = workers, "one-shot job over: {why}"),
        Decision::ScaleDown => {
            info!(statefulset = workers, "one-shot job succeeded: scaling the workers to 0");
            let sets: Api<StatefulSet> = Api::namespaced(client, namespace);
            match handshake::scale_to_zero(&sets, &workers).await {
                Ok(()) => info!(statefulset = workers, "workers scaled to 0"),
                Err(e) => error!(
                    statefulset = workers,
                    error = %e,
                    "cannot scale the workers down; they keep running: kubectl -n {namespace} scale statefulset {workers} --replicas=0"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use kompi_render::command::HostfileCommand;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        hostfile: HostfileArgs,
    }

    fn parse(args: &[String]) -> Result<HostfileArgs, clap::Error> {
        assert_eq!(args[0], "hostfile");
        Cli::try_parse_from(std::iter::once("kompi-hostfile").chain(args[1..].iter().map(String::as_str))).map(|c| c.hostfile)
    }

    fn command(once: bool, handshake_dir: Option<&str>, scale_down_on_success: bool) -> HostfileCommand {
        HostfileCommand {
            cluster: "mpi".into(),
            workers: 4,
            worker_slots: 8,
            master_slots: 2,
            ssh_port: 2222,
            mpi: MpiImplementation::Intel,
            output: "/kube-openmpi/generated/hostfile".into(),
            once,
            handshake_dir: handshake_dir.map(str::to_string),
            scale_down_on_success,
        }
    }

    #[test]
    fn rendered_command_lines_parse() {
        for c in [command(false, None, false), command(true, None, false), command(false, Some("/kube-openmpi/handshake"), true)] {
            let args = parse(&c.to_args()).unwrap_or_else(|e| panic!("{:?} does not parse: {e}", c.to_args()));
            assert_eq!(args.cluster.as_str(), c.cluster);
            assert_eq!((args.workers, args.slots, args.master_slots, args.ssh_port), (c.workers, c.worker_slots, c.master_slots, c.ssh_port));
            assert_eq!(args.mpi, c.mpi);
            assert_eq!(args.output, PathBuf::from(&c.output));
            assert_eq!(args.once, c.once);
            assert_eq!(args.handshake_dir, c.handshake_dir.as_ref().map(PathBuf::from));
            assert_eq!(args.scale_down_on_success, c.scale_down_on_success);
        }
    }

    #[test]
    fn scale_down_needs_the_handshake() {
        let mut args = command(false, None, false).to_args();
        args.push("--scale-down-on-success".into());
        assert!(parse(&args).is_err());
    }
}
