//! `kompi job submit | list | status | logs | delete`: MPIJobs (kubeflow.org/v2beta1) run by kompi's
//! operator, handled as kubectl would, with the operator's own validation before anything is applied.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::cmd::args::parse_duration;
use crate::cmd::kube::{KubeArgs, connect, kube, runtime};
use crate::exit::Exit;
use crate::output::{Format, print_structured};

#[derive(Args, Debug)]
pub struct JobArgs {
    #[command(subcommand)]
    pub command: JobCommand,
}

#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// Submit an MPIJob (validated first; applied server-side); with --wait, follow it to its end
    Submit(SubmitArgs),
    /// List MPIJobs: state, workers, workers ready, age
    List(ListArgs),
    /// Show an MPIJob: its conditions and pods (why a pod is stuck, how it ended)
    Status(StatusArgs),
    /// Print the launcher's log (or a worker's)
    Logs(LogsArgs),
    /// Delete an MPIJob and everything it made
    Delete(DeleteArgs),
}

#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// The MPIJob manifest (YAML; - reads stdin)
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Follow the job: progress until the launcher runs, its output, then exit with the job's result
    /// (0 when it succeeded, the launcher's exit code when that failed, 1 for any other failure)
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// List the MPIJobs of every namespace
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The MPIJob's name
    pub name: String,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The MPIJob's name
    pub name: String,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Worker <i>'s log instead of the launcher's
    #[arg(long, value_name = "I")]
    pub worker: Option<u32>,
    /// Keep streaming new lines
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines
    #[arg(long, value_name = "N")]
    pub tail: Option<i64>,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// The MPIJob's name
    pub name: String,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Wait until the job and everything it made are gone
    #[arg(long)]
    pub wait: bool,
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub timeout: Duration,
}

pub fn run(args: &JobArgs) -> anyhow::Result<i32> {
    match &args.command {
        JobCommand::Submit(a) => submit(a),
        JobCommand::List(a) => list(a),
        JobCommand::Status(a) => status(a),
        JobCommand::Logs(a) => logs(a),
        JobCommand::Delete(a) => delete(a),
    }
}

fn submit(a: &SubmitArgs) -> anyhow::Result<i32> {
    let (text, shown) = if a.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| Exit::invalid(format!("reading stdin: {e}")))?;
        (text, "<stdin>".to_string())
    } else {
        let text = std::fs::read_to_string(&a.file).map_err(|e| Exit::invalid(format!("{}: {e}", a.file.display())))?;
        (text, a.file.display().to_string())
    };
    let manifest = kompi_operator::jobs::read_manifest(&text, &shown).map_err(kube)?;
    runtime().block_on(async {
        let mut conn = connect(&a.kube).await.map_err(kube)?;
        let context_namespace = conn.namespace.clone();
        conn.namespace = kompi_operator::jobs::namespace_of(&manifest, a.kube.namespace.as_deref(), &context_namespace).map_err(kube)?;
        kompi_operator::jobs::submit(&conn, &manifest).await.map_err(kube)?;
        eprintln!("mpijob.kubeflow.org/{} submitted to namespace {}", manifest.name, conn.namespace);
        if !a.wait {
            return Ok(0);
        }
        let outcome = kompi_operator::jobs::follow(&conn, &manifest.name, a.timeout, &mut crate::progress::Progress::new()).await.map_err(kube)?;
        eprintln!("MPIJob {} {}: {}", manifest.name, outcome.state, outcome.message);
        Ok(outcome.exit_code)
    })
}

fn list(a: &ListArgs) -> anyhow::Result<i32> {
    runtime().block_on(async {
        let conn = connect(&a.kube).await.map_err(kube)?;
        let jobs = kompi_operator::jobs::list(&conn, a.all_namespaces).await.map_err(kube)?;
        if a.output != Format::Table {
            print_structured(&jobs, a.output)?;
            return Ok(0);
        }
        println!("{:<20} {:<28} {:<10} {:>7} {:>5}  AGE", "NAMESPACE", "NAME", "STATE", "WORKERS", "READY");
        for j in &jobs {
            println!("{:<20} {:<28} {:<10} {:>7} {:>5}  {}", j.namespace, j.name, j.state, j.workers, j.ready, j.age);
        }
        Ok(0)
    })
}

fn status(a: &StatusArgs) -> anyhow::Result<i32> {
    runtime().block_on(async {
        let conn = connect(&a.kube).await.map_err(kube)?;
        let r = kompi_operator::jobs::status(&conn, &a.name).await.map_err(kube)?;
        if a.output != Format::Table {
            print_structured(&r, a.output)?;
            return Ok(0);
        }
        println!("MPIJob {} in namespace {}: {}", r.name, r.namespace, r.state);
        for c in &r.conditions {
            println!("  {:<11} {:<5} {:<20} {}", c.type_, c.status, c.reason, c.message);
        }
        println!("{:<28} {:<9} {:<10} {:<6} {:>8}  {:<12} NOTE", "POD", "ROLE", "PHASE", "READY", "RESTARTS", "NODE");
        for p in &r.pods {
            let ready = if p.ready { "yes" } else { "no" };
            println!("{:<28} {:<9} {:<10} {:<6} {:>8}  {:<12} {}", p.name, p.role, p.phase, ready, p.restarts, p.node, p.note);
        }
        Ok(0)
    })
}

fn logs(a: &LogsArgs) -> anyhow::Result<i32> {
    runtime().block_on(async {
        let conn = connect(&a.kube).await.map_err(kube)?;
        kompi_operator::jobs::logs(&conn, &a.name, a.worker, a.follow, a.tail).await.map_err(kube)?;
        Ok(0)
    })
}

fn delete(a: &DeleteArgs) -> anyhow::Result<i32> {
    runtime().block_on(async {
        let conn = connect(&a.kube).await.map_err(kube)?;
        kompi_operator::jobs::delete(&conn, &a.name, a.wait.then_some(a.timeout)).await.map_err(kube)?;
        let done = if a.wait { "deleted, with everything it made" } else { "deleted (its pods go with it)" };
        eprintln!("mpijob.kubeflow.org/{} {done}", a.name);
        Ok(0)
    })
}

