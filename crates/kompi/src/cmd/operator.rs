//! `kompi operator`: run the MPIJob controller (in its Deployment), print its manifests, or install it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use kompi_job::build::Settings;
use kompi_job::gang::GangScheduler;
use kompi_job::managed::Claim;
use kompi_job::manifests::{DEFAULT_NAMESPACE, InstallOptions, NAME, manifests};
use kompi_kube::Target;
use kompi_operator::leader::LeaseSettings;
use kompi_render::inject::Injection;
use kompi_spec::contract::DEFAULT_SSH_PORT;

use crate::cmd::args::parse_duration;
use crate::cmd::kube::{kube, runtime};
use crate::exit::Exit;

/// kompi's runtime image of this version: the operator's, and the one kompi is injected from.
fn default_image() -> String {
    format!("kompi/runtime:{}", env!("CARGO_PKG_VERSION"))
}

/// Run the MPIJob operator (what its Deployment runs), or `manifests` / `install` it.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct OperatorArgs {
    #[command(subcommand)]
    pub command: Option<OperatorCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum OperatorCommand {
    /// Print the CRD, namespace, ServiceAccount, ClusterRole/Binding, the Lease's Role/Binding and the Deployment (for `kubectl apply -f -`)
    Manifests(ManifestsArgs),
    /// Apply the manifests (server-side) and wait until the operator is ready
    Install(InstallArgs),
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The image kompi is injected from into every job pod (kompi at /usr/local/bin/kompi)
    #[arg(long, value_name = "IMAGE", default_value_t = default_image())]
    pub runtime_image: String,
    /// Its imagePullPolicy
    #[arg(long, value_name = "POLICY", default_value = "IfNotPresent")]
    pub runtime_pull_policy: String,
    /// How long a launcher waits for every worker to answer on ssh before the job fails (naming them);
    /// a job's annotation kompi.io/workers-timeout-seconds overrides it
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..))]
    pub workers_timeout: u32,
    /// mpi-operator runs in this cluster too: take only the MPIJobs whose spec.runPolicy.managedBy is
    /// kompi.io/operator (without it, kompi takes every MPIJob that names no other controller)
    #[arg(long)]
    pub beside_mpi_operator: bool,
    #[command(flatten)]
    pub gang: GangFlag,
    /// Serve /metrics (Prometheus), /healthz and /readyz (ready once every watch has listed what exists)
    /// on this port
    #[arg(long, value_name = "PORT")]
    pub http_port: Option<u16>,
    /// Path to the kubeconfig file (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long)]
    pub context: Option<String>,
    #[command(flatten)]
    pub leader: LeaderArgs,
}

/// Leader election, for running several replicas: the flags of kube-controller-manager.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Leader election")]
pub struct LeaderArgs {
    /// Reconcile only while holding a coordination.k8s.io Lease, so that of several replicas one acts
    /// and the others stand by (the installed Deployment runs two)
    #[arg(long)]
    pub leader_elect: bool,
    /// How long a standby waits after the leader last renewed the Lease before it takes over
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// How long the leader keeps trying to renew the Lease before it stops (shorter than the lease duration)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// How often the leader renews the Lease and standbys look at it
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,
    /// The Lease's name
    #[arg(long, value_name = "NAME", default_value = NAME)]
    pub leader_elect_resource_name: String,
    /// The Lease's namespace (default: the operator's own, in a cluster)
    #[arg(long, value_name = "NAMESPACE")]
    pub leader_elect_resource_namespace: Option<String>,
}

/// Where a pod's service account token lives: its namespace is the operator's own.
const IN_CLUSTER_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

impl LeaderArgs {
    fn settings(&self) -> Result<Option<LeaseSettings>, Exit> {
        if !self.leader_elect {
            return Ok(None);
        }
        let namespace = match &self.leader_elect_resource_namespace {
            Some(ns) => ns.clone(),
            None => std::fs::read_to_string(IN_CLUSTER_NAMESPACE).map(|ns| ns.trim().to_string()).map_err(|_| {
                Exit::invalid(format!("--leader-elect outside a cluster needs --leader-elect-resource-namespace (no {IN_CLUSTER_NAMESPACE} to take it from)"))
            })?,
        };
        let pod = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty());
        let pod = pod.unwrap_or_else(|| nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_else(|_| NAME.into()));
        let settings = LeaseSettings {
            name: self.leader_elect_resource_name.clone(),
            namespace,
            identity: kompi_operator::leader::identity(&pod),
            lease_duration: self.leader_elect_lease_duration,
            renew_deadline: self.leader_elect_renew_deadline,
            retry_period: self.leader_elect_retry_period,
        };
        settings.check().map_err(Exit::invalid)?;
        Ok(Some(settings))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ManifestFormat {
    Yaml,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct InstallFlags {
    /// The operator's namespace
    #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// The operator's image (also the one kompi is injected from)
    #[arg(long, default_value_t = default_image())]
    pub image: String,
    #[arg(long, value_name = "POLICY", default_value = "IfNotPresent")]
    pub pull_policy: String,
    /// How long a launcher waits for every worker to answer on ssh before the job fails
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..))]
    pub workers_timeout: u32,
    /// Share the cluster with mpi-operator: keep its CRD, take only MPIJobs with managedBy: kompi.io/operator
    #[arg(long)]
    pub beside_mpi_operator: bool,
    #[command(flatten)]
    pub gang: GangFlag,
}

/// mpi-operator's `--gang-scheduling`, for the operator and its install alike.
#[derive(Args, Debug, Clone)]
pub struct GangFlag {
    /// Gang-schedule every MPIJob: give it a PodGroup (from runPolicy.schedulingPolicy) and put its pods in
    /// it. `volcano` for Volcano; any other name is the scheduler that runs scheduler-plugins' coscheduling
    /// (e.g. scheduler-plugins-scheduler), as with mpi-operator. That scheduler's PodGroup CRD must be installed
    #[arg(long = "gang-scheduling", value_name = "SCHEDULER", default_value = kompi_job::gang::NONE, value_parser = parse_gang)]
    // Spelt out so that clap does not take it for an optional flag: `none` is a value, and the default.
    pub scheduler: ::std::option::Option<GangScheduler>,
}

fn parse_gang(value: &str) -> Result<Option<GangScheduler>, String> {
    GangScheduler::from_flag(value)
}

impl InstallFlags {
    fn options(&self) -> InstallOptions {
        InstallOptions {
            namespace: self.namespace.clone(),
            image: self.image.clone(),
            pull_policy: self.pull_policy.clone(),
            claim: if self.beside_mpi_operator { Claim::KompiOnly } else { Claim::Every },
            workers_timeout_seconds: self.workers_timeout,
            gang: self.gang.scheduler.clone(),
        }
    }
}

#[derive(Args, Debug)]
pub struct ManifestsArgs {
    #[command(flatten)]
    pub flags: InstallFlags,
    #[arg(short, long, value_enum, default_value_t = ManifestFormat::Yaml)]
    pub output: ManifestFormat,
}

#[derive(Args, Debug)]
pub struct InstallArgs {
    #[command(flatten)]
    pub flags: InstallFlags,
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long)]
    pub context: Option<String>,
    /// How long to wait for the operator to be ready
    #[arg(long, default_value = "3m", value_parser = parse_duration)]
    pub timeout: Duration,
}

pub fn run(args: &OperatorArgs) -> anyhow::Result<i32> {
    match &args.command {
        Some(OperatorCommand::Manifests(a)) => print_manifests(a),
        Some(OperatorCommand::Install(a)) => install(a),
        None => run_operator(&args.run),
    }
}

fn print_manifests(a: &ManifestsArgs) -> anyhow::Result<i32> {
    let objects = manifests(&a.flags.options());
    match a.output {
        ManifestFormat::Yaml => {
            for object in &objects {
                print!("---\n{}", kompi_render::to_yaml(object));
            }
        }
        ManifestFormat::Json => {
            let list = serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": objects });
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
    }
    Ok(0)
}

fn install(a: &InstallArgs) -> anyhow::Result<i32> {
    let options = a.flags.options();
    runtime().block_on(async {
        let target = Target { kubeconfig: a.kubeconfig.clone(), context: a.context.clone(), namespace: Some(options.namespace.clone()) };
        let conn = kompi_kube::connect(&target).await.map_err(kube)?;
        let mut say = |line: &str| eprintln!("{line}");
        let report = kompi_operator::install::install(&conn, &options, a.timeout, &mut say).await.map_err(kube)?;
        for kept in &report.kept {
            eprintln!("kept {kept}");
        }
        eprintln!("kompi operator is ready in namespace {}; submit a job with: kompi job submit -f mpijob.yaml --wait", options.namespace);
        Ok(0)
    })
}

fn run_operator(a: &RunArgs) -> anyhow::Result<i32> {
    if a.runtime_image.trim().is_empty() {
        return Err(Exit::invalid("--runtime-image must name an image").into());
    }
    let config = kompi_operator::controller::Config {
        claim: if a.beside_mpi_operator { Claim::KompiOnly } else { Claim::Every },
        settings: Settings {
            injection: Injection { image: a.runtime_image.clone(), pull_policy: a.runtime_pull_policy.clone() },
            ssh_port: DEFAULT_SSH_PORT,
            workers_timeout_seconds: a.workers_timeout,
            workers_timeout_exit: crate::exit::status(kompi_spec::ErrorKind::WorkersNotReady),
            gang: a.gang.scheduler.clone(),
        },
        http_port: a.http_port,
        leader: a.leader.settings()?,
    };
    runtime().block_on(async {
        let target = Target { kubeconfig: a.kubeconfig.clone(), context: a.context.clone(), namespace: None };
        let conn = kompi_kube::connect(&target).await.map_err(kube)?;
        kompi_operator::controller::run(conn.client, config).await.map_err(|e| Exit::new(kompi_spec::ErrorKind::Failed, e.to_string()))?;
        Ok(0)
    })
}
