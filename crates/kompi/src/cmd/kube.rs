//! The cluster lifecycle against the Kubernetes API: `kompi up / run / exec / status / list / scale /
//! logs / down`, each one command where kube-openmpi needed helm, kubectl and a shell.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use kompi_kube::pods::Place;
use kompi_kube::remote::Streams;
use kompi_kube::run::RunOptions;
use kompi_kube::{Connection, KubeError, Target};
use kompi_spec::ClusterName;
use kompi_spec::limits::MAX_WORKERS;

use crate::cmd::args::{LaunchArgs, parse_duration};
use crate::exit::Exit;
use crate::output::{Format, print_structured};
use crate::progress::Progress;
use crate::values::ValuesArgs;

/// How to reach the cluster, as kubectl takes it.
#[derive(Args, Debug, Clone)]
pub struct KubeArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long)]
    pub context: Option<String>,
    /// Namespace (default: the context's, else "default")
    #[arg(short, long)]
    pub namespace: Option<String>,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Cluster name: pods are NAME-master and NAME-worker-<i>
    pub name: String,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub values: ValuesArgs,
    /// Take over fields another field manager set (server-side apply conflicts)
    #[arg(long)]
    pub force_conflicts: bool,
    /// Wait until the cluster is ready (default on a terminal); a one-shot cluster: until its command ends
    #[arg(long, overrides_with = "no_wait")]
    pub wait: bool,
    /// Return once the objects are applied
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this long
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Cluster name
    pub name: String,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// How long to wait for every worker to answer before running
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The program (as seen in the image) and its arguments
    #[command(flatten)]
    pub launch: LaunchArgs,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Cluster name
    pub name: String,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Run on worker <i> instead of the master
    #[arg(long, value_name = "I", conflicts_with = "sidecar")]
    pub worker: Option<u32>,
    /// Run in the master's hostfile sidecar
    #[arg(long)]
    pub sidecar: bool,
    /// Pass stdin to the command
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a terminal (with -i: an interactive shell)
    #[arg(short, long)]
    pub tty: bool,
    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Cluster name
    pub name: String,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// List the clusters of every namespace
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// Cluster name
    pub name: String,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The number of workers
    #[arg(long, short = 'w')]
    pub workers: u32,
    /// Wait until the hostfile lists exactly that many workers
    #[arg(long)]
    pub wait: bool,
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Cluster name
    pub name: String,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// A worker's log
    #[arg(long, value_name = "I", conflicts_with_all = ["master", "sidecar"])]
    pub worker: Option<u32>,
    /// The master's MPI container (the default)
    #[arg(long)]
    pub master: bool,
    /// The master's hostfile sidecar
    #[arg(long, conflicts_with = "master")]
    pub sidecar: bool,
    /// Keep streaming new lines
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines
    #[arg(long, value_name = "N")]
    pub tail: Option<i64>,
}

#[derive(Args, Debug)]
pub struct DownArgs {
    /// Cluster name
    pub name: String,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Wait until its pods are gone
    #[arg(long)]
    pub wait: bool,
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub timeout: Duration,
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime starts")
}

pub(crate) async fn connect(args: &KubeArgs) -> Result<Connection, KubeError> {
    kompi_kube::connect(&Target { kubeconfig: args.kubeconfig.clone(), context: args.context.clone(), namespace: args.namespace.clone() }).await
}

pub(crate) fn kube(e: KubeError) -> anyhow::Error {
    Exit::new(e.kind(), e.to_string()).into()
}

fn cluster_name(name: &str) -> anyhow::Result<ClusterName> {
    Ok(ClusterName::new(name).map_err(|m| Exit::invalid(format!("invalid cluster name: {m}")))?)
}

pub fn up(a: &UpArgs) -> anyhow::Result<i32> {
    runtime().block_on(async {
        let conn = connect(&a.kube).await.map_err(kube)?;
        let loaded = a.values.load(&a.name, &conn.namespace, false)?;
        let spec = loaded.spec;
        let report = kompi_kube::apply::up(&conn, &spec, a.force_conflicts).await.map_err(|p| Exit::new(p.kind(), p.to_string()))?;
        eprintln!(
            "applied to namespace {}: {}{}{}{}",
            conn.namespace,
            report.applied.join(", "),
            list_suffix("kept", &report.kept),
            list_suffix("recreated", &report.recreated),
            list_suffix("removed", &report.pruned)
        );
        let wait = a.wait || (!a.no_wait && std::io::stderr().is_terminal());
        if !wait {
            return Ok(0);
        }
        let progress = &mut Progress::new();
        if spec.master.one_shot.is_some() {
            let code = kompi_kube::wait::one_shot_done(&conn, &spec.name, spec.workers.count, a.timeout, progress).await.map_err(kube)?;
            eprintln!("the one-shot command of {} exited with {code} (`kompi logs {}` shows its output)", spec.name, spec.name);
            return Ok(code);
        }
        kompi_kube::wait::ready(&conn, &spec.name, spec.workers.count, a.timeout, progress).await.map_err(kube)?;
        eprintln!("cluster {} is ready: master and {} workers; try: kompi run {} -n {} -- hostname", spec.name, spec.workers.count, spec.name, conn.namespace);
        Ok(0)
    })
}

fn list_suffix(label: &str, items: &[String]) -> String {
    if items.is_empty() { String::new() } else { format!("; {label}: {}", items.join(", ")) }
}

pub fn run(a: &RunArgs) -> anyhow::Result<i32> {
    let name = cluster_name(&a.name)?;
    runtime().block_on(async {
        let conn = connect(&a.kube).await.map_err(kube)?;
        let l = &a.launch;
        let opts = RunOptions { np: l.np, npernode: l.npernode, mca: l.mca.clone(), command: l.command.clone(), wait_timeout: a.timeout };
        let (stdout, stderr) = (Box::new(tokio::io::stdout()), Box::new(tokio::io::stderr()));
        let outcome = kompi_kube::run::run(&conn, &name, &opts, stdout, stderr, &mut Progress::new()).await.map_err(kube)?;
        for problem in &outcome.worker_problems {
            eprintln!("error: {problem}");
        }
        Ok(outcome.status)
    })
}

/// `--worker I` or `--sidecar`, else the master.
fn place(worker: Option<u32>, sidecar: bool) -> Place {
    match (worker, sidecar) {
        (Some(i), _) => Place::Worker(i),
        (None, true) => Place::Sidecar,
        (None, false) => Place::Master,
    }
}

pub fn exec(a: &ExecArgs) -> anyhow::Result<i32> {
    let name = cluster_name(&a.name)?;
    let place = place(a.worker, a.sidecar);
    let _raw = (a.tty && a.interactive).then(crate::terminal::RawMode::enable).transpose()?;
    runtime().block_on(async {
        let conn = connect(&a.kube).await.map_err(kube)?;
        let streams = Streams {
            stdout: Box::new(tokio::io::stdout()),
            stderr: (!a.tty).then(|| Box::new(tokio::io::stderr()) as _),
            stdin: a.interactive.then(|| Box::new(tokio::io::stdin()) as _),
        };
        kompi_kube::run::exec(&conn, &name, place, &a.command, streams).await.map_err(kube)
    })
}

pub fn status(a: &StatusArgs) -> anyhow::Result<i32> {
    let name = cluster_name(&a.name)?;
    runtime().block_on(async {
        let conn = connect(&a.kube).await.map_err(kube)?;
        let s = kompi_kube::cluster::status(&conn, &name).await.map_err(kube)?;
        if a.output != Format::Table {
            print_structured(&s, a.output)?;
            return Ok(0);
        }
        println!("cluster {} in namespace {}: {} (workers ready {}/{})", s.name, s.namespace, s.phase, s.workers_ready, s.workers_desired);
        println!("{:<28} {:<16} {:<10} {:<6} {:>8}  PROBLEM", "POD", "NODE", "PHASE", "READY", "RESTARTS");
        for p in &s.pods {
            let node = p.node.as_deref().unwrap_or("-");
            println!("{:<28} {:<16} {:<10} {:<6} {:>8}  {}", p.name, node, p.phase, if p.ready { "yes" } else { "no" }, p.restarts, p.problem.clone().unwrap_or_default());
        }
        println!("hostfile ({} hosts):", s.hostfile.len());
        for line in &s.hostfile {
            println!("  {line}");
        }
        if !s.warnings.is_empty() {
            println!("recent warnings:");
            for w in &s.warnings {
                println!("  {w}");
            }
        }
        Ok(0)
    })
}

pub fn list(a: &ListArgs) -> anyhow::Result<i32> {
    runtime().block_on(async {
        let conn = connect(&a.kube).await.map_err(kube)?;
        let clusters = kompi_kube::cluster::list(&conn, a.all_namespaces).await.map_err(kube)?;
        if a.output != Format::Table {
            print_structured(&clusters, a.output)?;
            return Ok(0);
        }
        println!("{:<20} {:<24} {:>8} {:>8}  MASTER", "NAMESPACE", "NAME", "WORKERS", "READY");
        for c in &clusters {
            println!("{:<20} {:<24} {:>8} {:>8}  {}", c.namespace, c.name, c.workers_desired, c.workers_ready, c.master_phase);
        }
        Ok(0)
    })
}

pub fn scale(a: &ScaleArgs) -> anyhow::Result<i32> {
    let name = cluster_name(&a.name)?;
    if a.workers > MAX_WORKERS {
        return Err(Exit::invalid(format!("--workers {}: at most {MAX_WORKERS}", a.workers)).into());
    }
    runtime().block_on(async {
        let conn = connect(&a.kube).await.map_err(kube)?;
        kompi_kube::cluster::scale(&conn, &name, a.workers, a.wait.then_some(a.timeout), &mut Progress::new()).await.map_err(kube)?;
        eprintln!("cluster {name}: {} workers{}", a.workers, if a.wait { ", all in the hostfile" } else { " requested" });
        Ok(0)
    })
}

pub fn logs(a: &LogsArgs) -> anyhow::Result<i32> {
    let name = cluster_name(&a.name)?;
    let place = place(a.worker, a.sidecar);
    runtime().block_on(async {
        let conn = connect(&a.kube).await.map_err(kube)?;
        kompi_kube::cluster::logs(&conn, &name, place, a.follow, a.tail, &mut |line| println!("{line}")).await.map_err(kube)?;
        Ok(0)
    })
}

pub fn down(a: &DownArgs) -> anyhow::Result<i32> {
    let name = cluster_name(&a.name)?;
    runtime().block_on(async {
        let conn = connect(&a.kube).await.map_err(kube)?;
        let removed = kompi_kube::cluster::down(&conn, &name, a.wait.then_some(a.timeout)).await.map_err(kube)?;
        if removed.is_empty() {
            println!("nothing to remove: no objects of cluster {name} in namespace {}", conn.namespace);
        } else {
            println!("removed from namespace {}: {}", conn.namespace, removed.join(", "));
        }
        Ok(0)
    })
}
