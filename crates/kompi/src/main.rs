//! The `kompi` command line: parses arguments and hands each subcommand to the library that does it.

mod cmd;
mod exit;
mod output;
mod progress;
mod terminal;
mod values;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    /// Create or update a cluster in Kubernetes (server-side apply) and wait until it is ready
    Up(cmd::kube::UpArgs),
    /// Run an MPI program across a cluster: mpiexec on the master once every worker answers
    Run(cmd::kube::RunArgs),
    /// Run a command in the master (or a worker, or the sidecar)
    Exec(cmd::kube::ExecArgs),
    /// Show a cluster: phase, pods, hostfile, recent warnings
    Status(cmd::kube::StatusArgs),
    /// List the kompi clusters in a namespace (or all)
    List(cmd::kube::ListArgs),
    /// Change the number of workers
    Scale(cmd::kube::ScaleArgs),
    /// Print the log of the master, the sidecar or a worker
    Logs(cmd::kube::LogsArgs),
    /// Delete everything of a cluster (the ssh key Secret included)
    Down(cmd::kube::DownArgs),
    /// A kompi cluster on this machine, no Kubernetes: try kompi and debug MPI programs locally
    Local(cmd::local::LocalArgs),
    /// Generate the cluster's ssh key pair as a values file (ssh-key.yaml)
    Keygen(cmd::keygen::KeygenArgs),
    /// Render the cluster's Kubernetes objects (drop-in for `helm template` of kube-openmpi's chart)
    Template(cmd::template::TemplateArgs),
    /// Print kompi's default values (every key, with comments)
    Values {
        /// Print the table of keys (as in the README) instead
        #[arg(long)]
        markdown: bool,
    },
    /// Print a shell completion script
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Batch MPI jobs: submit, follow, list, show, read and delete kubeflow MPIJobs run by kompi's operator
    Job(cmd::job::JobArgs),
    /// The MPIJob operator (kubeflow.org/v2beta1, a drop-in for mpi-operator): run, `manifests`, `install`
    Operator(cmd::operator::OperatorArgs),
    /// In the pods: PID 1 of an MPI container (keys, sshd, MPI defaults, one-shot jobs, MPIJob launchers)
    Init(kompi_node::init::InitArgs),
    /// In the pods: copy this kompi into DIR (the init container that brings kompi into any image)
    Inject(kompi_node::inject::InjectArgs),
    /// In the pods: the master's sidecar that keeps the hostfile following the worker pods
    Hostfile(kompi_node::hostfile::HostfileArgs),
    /// In the pods: what `kompi run` starts on the master; runs mpiexec, passing Ctrl-C on to it
    Launch(kompi_node::launch::LaunchArgs),
}

/// The command line with the help texts that come from the exit status table.
fn command() -> clap::Command {
    Cli::command()
        .after_help(format!("{}\nInstalled also as kubectl-kompi, it works as `kubectl kompi ...`.", exit::general_help()))
        .mut_subcommand("init", |c| c.after_long_help(format!("{}\n{}", exit::help(&kompi_node::init::EXIT_STATUSES), kompi_node::init::FILES_HELP)))
        .mut_subcommand("hostfile", |c| {
            let more = c.get_after_long_help().map(ToString::to_string).unwrap_or_default();
            c.after_long_help(format!("{more}\n\n{}", exit::help(&kompi_node::hostfile::EXIT_STATUSES)))
        })
        .mut_subcommand("launch", |c| c.after_long_help(exit::help(&kompi_node::launch::EXIT_STATUSES)))
}

fn main() {
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit());
    init_logging();
    let result = match &cli.command {
        Command::Init(args) => std::process::exit(kompi_node::init::run(args, exit::status)),
        Command::Hostfile(args) => std::process::exit(kompi_node::hostfile::run(args, exit::status)),
        Command::Launch(args) => std::process::exit(kompi_node::launch::run(args, exit::status)),
        Command::Inject(args) => std::process::exit(kompi_node::inject::run(args, exit::status)),
        Command::Job(a) => exit_with(cmd::job::run(a)),
        Command::Operator(a) => exit_with(cmd::operator::run(a)),
        Command::Up(a) => exit_with(cmd::kube::up(a)),
        Command::Run(a) => exit_with(cmd::kube::run(a)),
        Command::Exec(a) => exit_with(cmd::kube::exec(a)),
        Command::Status(a) => exit_with(cmd::kube::status(a)),
        Command::List(a) => exit_with(cmd::kube::list(a)),
        Command::Scale(a) => exit_with(cmd::kube::scale(a)),
        Command::Logs(a) => exit_with(cmd::kube::logs(a)),
        Command::Down(a) => exit_with(cmd::kube::down(a)),
        Command::Local(args) => exit_with(cmd::local::run(args)),
        Command::Keygen(args) => cmd::keygen::run(args),
        Command::Template(args) => cmd::template::run(args),
        Command::Values { markdown: false } => {
            print!("{}", kompi_spec::DEFAULTS_YAML);
            Ok(())
        }
        Command::Values { markdown: true } => {
            print!("{}", kompi_spec::values::markdown_table());
            Ok(())
        }
        Command::Completion { shell } => {
            clap_complete::generate(*shell, &mut command(), "kompi", &mut std::io::stdout());
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

/// Ends kompi with a command's own exit status, or hands its error on.
fn exit_with(result: anyhow::Result<i32>) -> anyhow::Result<()> {
    let code = result?;
    std::process::exit(code)
}

/// Human-readable logs on stderr; RUST_LOG (or KOMPI_LOG) filters them. By default `info`, without
/// kube-rs's own request errors: kompi reports those itself, saying what to do.
fn init_logging() {
    let filter = std::env::var("KOMPI_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,kube_client=off".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // Colours only on a terminal: container logs and files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A closed stderr must not panic `kompi init`, PID 1 of a container (the default reports it with eprintln!).
        .log_internal_errors(false)
        .with_target(false)
        .try_init();
}
