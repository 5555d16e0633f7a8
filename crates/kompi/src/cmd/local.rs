//! `kompi local ...`: a kompi cluster on this machine (network namespaces instead of pods).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use kompi_local::{Context, LocalError, RunOptions, Subnet, UpOptions};

use crate::cmd::args::{LaunchArgs, parse_duration};
use crate::exit::Exit;
use crate::output::{Format, print_structured};
use crate::values::ValuesArgs;

#[derive(Args, Debug)]
pub struct LocalArgs {
    /// Directory holding the clusters' state
    #[arg(long, global = true, env = "KOMPI_STATE_DIR", value_name = "DIR", default_value_os_t = kompi_local::state::default_base())]
    pub state_dir: PathBuf,
    #[command(subcommand)]
    pub command: LocalCommand,
}

#[derive(Subcommand, Debug)]
pub enum LocalCommand {
    /// Create a cluster: one network namespace per node, each running `kompi init` with sshd (needs root)
    Up(UpArgs),
    /// Run an MPI program across the cluster: mpiexec on the master with the cluster's hostfile
    Run(RunArgs),
    /// Run any command on one node (the master by default)
    Exec(ExecArgs),
    /// Show a cluster's nodes, addresses and readiness
    Status(StatusArgs),
    /// List the local clusters
    List(ListArgs),
    /// Remove a cluster: its processes, namespaces, veth pairs, bridge and state (safe to repeat)
    Down(NameArg),
}

#[derive(Args, Debug)]
pub struct NameArg {
    /// Cluster name
    pub name: String,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Cluster name: nodes are NAME-master and NAME-worker-<i>
    pub name: String,
    /// Number of workers (default: mpiWorkers.num of the values, 4)
    #[arg(short, long)]
    pub workers: Option<u32>,
    #[command(flatten)]
    pub values: ValuesArgs,
    /// The nodes' network (default: the first free 10.250.<i>.0/24)
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// The bridge joining the nodes (default: kompi<i>)
    #[arg(long)]
    pub bridge: Option<String>,
    /// How long to wait for every node's sshd
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Cluster name
    pub name: String,
    #[command(flatten)]
    pub launch: LaunchArgs,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Cluster name
    pub name: String,
    /// The node: master (default), a worker ordinal, worker-<i>, or the full node name
    #[arg(long)]
    pub node: Option<String>,
    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Cluster name
    pub name: String,
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

pub fn run(args: &LocalArgs) -> anyhow::Result<i32> {
    let mut progress = |line: &str| eprintln!("{line}");
    let mut ctx = Context { state_base: Some(args.state_dir.clone()), progress: &mut progress };
    match &args.command {
        LocalCommand::Up(a) => up(&mut ctx, a),
        LocalCommand::Run(a) => {
            let l = &a.launch;
            let opts = RunOptions { name: a.name.clone(), np: l.np, npernode: l.npernode, mca: l.mca.clone(), command: l.command.clone() };
            let outcome = kompi_local::run(&mut ctx, &opts).map_err(local)?;
            for node in &outcome.dead_nodes {
                eprintln!("error: node {node} of cluster {} is down (its kompi init exited): the run failed with it", a.name);
            }
            Ok(outcome.status)
        }
        LocalCommand::Exec(a) => Ok(kompi_local::exec(&mut ctx, &a.name, a.node.as_deref(), &a.command).map_err(local)?.status),
        LocalCommand::Status(a) => {
            let status = kompi_local::status(&mut ctx, &a.name).map_err(local)?;
            if a.output == Format::Table {
                println!("cluster {}  subnet {}  bridge {}  ssh port {}  state {}", status.name, status.subnet, status.bridge, status.ssh_port, status.state_dir);
                println!("{:<24} {:<7} {:<15} {:>8} {:<8} SSH", "NODE", "ROLE", "ADDRESS", "PID", "RUNNING");
                for n in &status.nodes {
                    println!("{:<24} {:<7} {:<15} {:>8} {:<8} {}", n.name, n.role, n.address, n.pid, yes(n.running), yes(n.ssh_ready));
                }
                println!("hostfile:\n{}", status.hostfile.trim_end());
            } else {
                print_structured(&status, a.output)?;
            }
            Ok(0)
        }
        LocalCommand::List(a) => {
            let clusters = kompi_local::list(&ctx).map_err(local)?;
            if a.output == Format::Table {
                println!("{:<24} {:>6} {:>8}  SUBNET", "NAME", "NODES", "RUNNING");
                for c in &clusters {
                    println!("{:<24} {:>6} {:>8}  {}", c.name, c.nodes, c.running, c.subnet);
                }
            } else {
                print_structured(&clusters, a.output)?;
            }
            Ok(0)
        }
        LocalCommand::Down(a) => {
            let removed = kompi_local::down(&mut ctx, &a.name).map_err(local)?;
            if removed.is_empty() {
                println!("nothing to remove: no local cluster {}", a.name);
            } else {
                println!("removed {}: {}", a.name, removed.join(", "));
            }
            Ok(0)
        }
    }
}

fn up(ctx: &mut Context, a: &UpArgs) -> anyhow::Result<i32> {
    let subnet = a.subnet.as_deref().map(Subnet::parse).transpose().map_err(Exit::invalid)?;
    let opts = UpOptions {
        name: a.name.clone(),
        workers: a.workers,
        sources: a.values.sources()?,
        subnet,
        bridge: a.bridge.clone(),
        timeout: a.timeout,
        kompi: std::env::current_exe()?,
    };
    let started = std::time::Instant::now();
    let state = kompi_local::up(ctx, &opts).map_err(local)?;
    println!(
        "local cluster {} is up in {:.1}s: {} + {} workers on {} (bridge {}); ssh port {}",
        a.name,
        started.elapsed().as_secs_f64(),
        state.plan.master().name,
        state.plan.workers().count(),
        state.plan.subnet,
        state.plan.bridge,
        state.ssh_port
    );
    println!("next: kompi local run {} -- hostname", a.name);
    Ok(0)
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn local(e: LocalError) -> anyhow::Error {
    Exit::new(e.kind(), e.to_string()).into()
}
