//! The `kompi` command line: parses arguments and hands each subcommand to the library that does it.

mod cmd;
mod exit;
mod values;

use clap::{CommandFactory, Parser, Subcommand};

/// Open MPI clusters and MPI jobs on Kubernetes: a successor to kube-openmpi.
///
/// kube-openmpi's flow works unchanged (keygen, template | kubectl apply, kubectl exec mpiexec);
/// the same binary also runs inside the MPI pods.
#[derive(Parser, Debug)]
#[command(name = "kompi", version, propagate_version = true, max_term_width = 110)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate the cluster's ssh key pair as a values file (ssh-key.yaml)
    Keygen(cmd::keygen::KeygenArgs),
    /// Render the cluster's Kubernetes objects (drop-in for `helm template` of kube-openmpi's chart)
    Template(cmd::template::TemplateArgs),
    /// Print kompi's default values (every key, with comments)
    Values,
    /// Run as PID 1 of an MPI container: keys, sshd, MPI defaults, one-shot jobs (inside pods and local nodes)
    Init(kompi_node::init::InitArgs),
    /// Keep the hostfile following the worker pods (the master pod's sidecar)
    Hostfile(kompi_node::hostfile::HostfileArgs),
    /// Print a shell completion script
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() {
    let cli = Cli::parse();
    init_logging();
    let result = match &cli.command {
        Command::Init(args) => std::process::exit(kompi_node::init::run(args)),
        Command::Hostfile(args) => std::process::exit(kompi_node::hostfile::run(args)),
        Command::Keygen(args) => cmd::keygen::run(args),
        Command::Template(args) => cmd::template::run(args),
        Command::Values => {
            print!("{}", kompi_spec::DEFAULTS_YAML);
            Ok(())
        }
        Command::Completion { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "kompi", &mut std::io::stdout());
            Ok(())
        }
    };
    if let Err(error) = result {
        for line in format!("{error:#}").lines() {
            eprintln!("error: {line}");
        }
        std::process::exit(exit::code_of(&error));
    }
}

/// Human-readable logs on stderr; RUST_LOG (or KOMPI_LOG) filters them, `info` by default.
fn init_logging() {
    let filter = std::env::var("KOMPI_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
