//! The command lines of kompi's in-pod processes, as render writes them into pod specs (and the local
//! backend passes them to its nodes, and `kompi run` execs them), and read back from a pod's spec.
//! `kompi init --help`, `kompi hostfile --help` and `kompi launch --help` document them.

use std::collections::BTreeMap;

use kompi_spec::MpiImplementation;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Master,
    Worker,
    /// An MPIJob's launcher: runs the job's command once every host of the hostfile answers on ssh.
    Launcher,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Worker => "worker",
            Role::Launcher => "launcher",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Master, Role::Worker].into_iter().find(|r| r.as_str() == s)
    }
}

/// `kompi init`: PID 1 of every MPI container.
#[derive(Clone, Debug, PartialEq)]
pub struct InitCommand {
    pub role: Role,
    pub cluster: String,
    pub ssh_port: u16,
    pub mpi: MpiImplementation,
    /// Where the cluster key pair is mounted (id_rsa, id_rsa.pub, authorized_keys).
    pub key_dir: String,
    pub hostfile: String,
    /// Extra MCA parameters (`name=value`).
    pub mca: Vec<(String, String)>,
    pub one_shot: Option<OneShotCommand>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OneShotCommand {
    /// Workers the hostfile must list, each answering on ssh, before the command runs.
    pub workers: u32,
    pub wait_timeout_seconds: u32,
    /// Where the exit status is left for the sidecar.
    pub handshake_dir: String,
    /// Run with `bash -c`.
    pub command: String,
}

/// The arguments every `kompi init` line starts with.
fn init_args(role: Role, cluster: &str, ssh_port: u16, mpi: MpiImplementation, key_dir: &str, hostfile: &str) -> Vec<String> {
    vec![
        "init".to_string(),
        format!("--role={}", role.as_str()),
        format!("--cluster={cluster}"),
        format!("--ssh-port={ssh_port}"),
        format!("--mpi={}", mpi.as_str()),
        format!("--key-dir={key_dir}"),
        format!("--hostfile={hostfile}"),
    ]
}

impl InitCommand {
    pub fn to_args(&self) -> Vec<String> {
        let mut args = init_args(self.role, &self.cluster, self.ssh_port, self.mpi, &self.key_dir, &self.hostfile);
        args.extend(self.mca.iter().map(|(k, v)| format!("--mca={k}={v}")));
        if let Some(o) = &self.one_shot {
            args.push(format!("--one-shot-workers={}", o.workers));
            args.push(format!("--wait-timeout={}", o.wait_timeout_seconds));
            args.push(format!("--handshake-dir={}", o.handshake_dir));
            args.push("--".to_string());
            args.push(o.command.clone());
        }
        args
    }

    /// Reads back a command line [`InitCommand::to_args`] wrote (the master's, say, from its pod spec).
    /// Anything else is refused, naming what does not fit: no flag is guessed and no value defaulted.
    pub fn from_args(args: &[String]) -> Result<InitCommand, String> {
        let mut words = args.iter();
        if words.next().map(String::as_str) != Some("init") {
            return Err(format!("{args:?} is not a `kompi init` command line"));
        }
        let mut flags: BTreeMap<&str, &str> = BTreeMap::new();
        let mut mca = Vec::new();
        let mut command = None;
        while let Some(word) = words.next() {
            if word == "--" {
                command = Some(words.next().ok_or("nothing follows `--`")?.clone());
                if let Some(extra) = words.next() {
                    return Err(format!("{extra:?} after the one-shot command"));
                }
                break;
            }
            let (name, value) = word.strip_prefix("--").and_then(|w| w.split_once('=')).ok_or_else(|| format!("{word:?} is not --NAME=VALUE"))?;
            match name {
                "mca" => mca.push(value.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("--mca={value}: not NAME=VALUE"))?),
                "role" | "cluster" | "ssh-port" | "mpi" | "key-dir" | "hostfile" | "one-shot-workers" | "wait-timeout" | "handshake-dir" => {
                    if flags.insert(name, value).is_some() {
                        return Err(format!("--{name} is given twice"));
                    }
                }
                _ => return Err(format!("unknown flag --{name}")),
            }
        }
        let mut take = |name: &str| flags.remove(name).ok_or_else(|| format!("--{name} is missing"));
        let number = |name: &str, value: &str| value.parse::<u32>().map_err(|_| format!("--{name}={value}: not a number"));
        let role = take("role")?;
        let mpi = take("mpi")?;
        let ssh_port = take("ssh-port")?;
        let mut init = InitCommand {
            role: Role::parse(role).ok_or_else(|| format!("--role={role}: neither master nor worker"))?,
            cluster: take("cluster")?.to_string(),
            ssh_port: ssh_port.parse().map_err(|_| format!("--ssh-port={ssh_port}: not a port"))?,
            mpi: MpiImplementation::parse(mpi).ok_or_else(|| format!("--mpi={mpi}: not openmpi, mpich or intel"))?,
            key_dir: take("key-dir")?.to_string(),
            hostfile: take("hostfile")?.to_string(),
            mca,
            one_shot: None,
        };
        if let Some(command) = command {
            let (workers, timeout) = (take("one-shot-workers")?, take("wait-timeout")?);
            init.one_shot = Some(OneShotCommand {
                workers: number("one-shot-workers", workers)?,
                wait_timeout_seconds: number("wait-timeout", timeout)?,
                handshake_dir: take("handshake-dir")?.to_string(),
                command,
            });
        }
        match flags.keys().next() {
            Some(name) => Err(format!("--{name} belongs to one-shot mode, but no command follows `--`")),
            None => Ok(init),
        }
    }
}

/// `kompi launch`: what `kompi run` starts in the master's MPI container: mpiexec, with the client's
/// Ctrl-C passed on to it.
#[derive(Clone, Debug, PartialEq)]
pub struct LaunchCommand {
    /// Read stdin as the client's channel: each ETX byte (Ctrl-C) interrupts the command, the end of input
    /// (the client went away) terminates it. The command itself then reads nothing.
    pub signals_from_stdin: bool,
    /// The program and its arguments.
    pub command: Vec<String>,
}

impl LaunchCommand {
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["launch".to_string()];
        if self.signals_from_stdin {
            args.push("--signals-from-stdin".into());
        }
        args.push("--".into());
        args.extend(self.command.iter().cloned());
        args
    }
}

/// `kompi init` in the pods of an MPIJob, as the operator writes it: a worker serves ssh; the launcher
/// waits until every host of the job's hostfile answers, then runs the job's command itself.
#[derive(Clone, Debug, PartialEq)]
pub struct JobInitCommand {
    /// [`Role::Worker`] or [`Role::Launcher`].
    pub role: Role,
    /// The MPIJob's name (its hosts are `<job>-worker-<i>` and `<job>-launcher`).
    pub job: String,
    pub ssh_port: u16,
    pub mpi: MpiImplementation,
    pub key_dir: String,
    pub hostfile: String,
    /// The image's sshd, when the pod's own command named one.
    pub sshd: Option<String>,
    /// The launcher's part.
    pub launch: Option<JobLaunch>,
}

/// What an MPIJob's launcher runs, and when.
#[derive(Clone, Debug, PartialEq)]
pub struct JobLaunch {
    /// Hosts the hostfile must list, each answering on ssh, before the command starts.
    pub hosts: u32,
    pub wait_timeout_seconds: u32,
    /// Serve ssh too: the launcher is one of the hosts (`runLauncherAsWorker`).
    pub serve_ssh: bool,
    /// The program and its arguments, run without a shell.
    pub command: Vec<String>,
}

impl JobInitCommand {
    pub fn to_args(&self) -> Vec<String> {
        let mut args = init_args(self.role, &self.job, self.ssh_port, self.mpi, &self.key_dir, &self.hostfile);
        if let Some(sshd) = &self.sshd {
            args.push(format!("--sshd={sshd}"));
        }
        if let Some(launch) = &self.launch {
            args.push(format!("--one-shot-workers={}", launch.hosts));
            args.push(format!("--wait-timeout={}", launch.wait_timeout_seconds));
            if !launch.serve_ssh {
                args.push("--no-sshd".to_string());
            }
            args.push("--".to_string());
            args.extend(launch.command.iter().cloned());
        }
        args
    }
}

/// `kompi hostfile`: the master's sidecar, the only container with API credentials.
#[derive(Clone, Debug, PartialEq)]
pub struct HostfileCommand {
    pub cluster: String,
    pub workers: u32,
    pub worker_slots: u32,
    pub master_slots: u32,
    /// The port each listed worker must answer on before the master is Ready.
    pub ssh_port: u16,
    pub mpi: MpiImplementation,
    pub output: String,
    /// Write the hostfile once, when all workers are ready, then stop following them.
    pub once: bool,
    /// One-shot mode: the directory where the master leaves its command's exit status; the sidecar
    /// exits once it is there.
    pub handshake_dir: Option<String>,
    /// With `handshake_dir`: scale the workers to 0 when that status is 0.
    pub scale_down_on_success: bool,
}

impl HostfileCommand {
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "hostfile".to_string(),
            format!("--cluster={}", self.cluster),
            format!("--workers={}", self.workers),
            format!("--slots={}", self.worker_slots),
            format!("--master-slots={}", self.master_slots),
            format!("--ssh-port={}", self.ssh_port),
            format!("--mpi={}", self.mpi.as_str()),
            format!("--output={}", self.output),
        ];
        if self.once {
            args.push("--once".to_string());
        }
        if let Some(dir) = &self.handshake_dir {
            args.push(format!("--handshake-dir={dir}"));
        }
        if self.scale_down_on_success {
            args.push("--scale-down-on-success".to_string());
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(role: Role, one_shot: Option<OneShotCommand>) -> InitCommand {
        InitCommand {
            role,
            cluster: "mpi".into(),
            ssh_port: 2022,
            mpi: MpiImplementation::Intel,
            key_dir: "/ssh-key/openmpi".into(),
            hostfile: "/kube-openmpi/generated/hostfile".into(),
            mca: vec![("btl".into(), "tcp,self".into()), ("x".into(), "a=b".into())],
            one_shot,
        }
    }

    fn job() -> OneShotCommand {
        OneShotCommand { workers: 3, wait_timeout_seconds: 90, handshake_dir: "/h".into(), command: "mpiexec -- a && exit 3".into() }
    }

    #[test]
    fn init_command_lines_read_back_as_written() {
        for command in [init(Role::Master, None), init(Role::Worker, None), init(Role::Master, Some(job()))] {
            assert_eq!(InitCommand::from_args(&command.to_args()), Ok(command.clone()));
        }
    }

    #[test]
    fn anything_else_is_refused_and_named() {
        let written = init(Role::Master, Some(job())).to_args();
        let with = |change: &dyn Fn(&mut Vec<String>)| {
            let mut args = written.clone();
            change(&mut args);
            InitCommand::from_args(&args).unwrap_err()
        };
        assert!(with(&|a| a[0] = "hostfile".into()).contains("not a `kompi init`"));
        assert_eq!(with(&|a| a.retain(|w| !w.starts_with("--mpi="))), "--mpi is missing");
        assert_eq!(with(&|a| a.retain(|w| !w.starts_with("--ssh-port="))), "--ssh-port is missing");
        assert_eq!(with(&|a| a[4] = "--mpi=lam".into()), "--mpi=lam: not openmpi, mpich or intel");
        assert_eq!(with(&|a| a.insert(1, "--ssh-port=22".into())), "--ssh-port is given twice");
        assert_eq!(with(&|a| a.insert(1, "--ssh-prt=22".into())), "unknown flag --ssh-prt");
        assert_eq!(with(&|a| a.insert(1, "--mca".into())), "\"--mca\" is not --NAME=VALUE");
        assert_eq!(with(&|a| a.push("extra".into())), "\"extra\" after the one-shot command");
        assert_eq!(with(&|a| a.truncate(a.len() - 2)), "--handshake-dir belongs to one-shot mode, but no command follows `--`");
    }

    #[test]
    fn launch_puts_the_command_after_a_double_dash() {
        let launch = LaunchCommand { signals_from_stdin: true, command: vec!["mpiexec".into(), "--np".into(), "2".into()] };
        assert_eq!(launch.to_args(), ["launch", "--signals-from-stdin", "--", "mpiexec", "--np", "2"]);
    }
}
