//! The command lines of kompi's in-pod processes, as render writes them into pod specs (and the local
//! backend passes them to its nodes). `kompi init --help` and `kompi hostfile --help` document them.

use kompi_spec::MpiImplementation;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Master,
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Worker => "worker",
        }
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

impl InitCommand {
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "init".to_string(),
            format!("--role={}", self.role.as_str()),
            format!("--cluster={}", self.cluster),
            format!("--ssh-port={}", self.ssh_port),
            format!("--mpi={}", self.mpi.as_str()),
            format!("--key-dir={}", self.key_dir),
            format!("--hostfile={}", self.hostfile),
        ];
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
}

/// `kompi hostfile`: the master's sidecar, the only container with API credentials.
#[derive(Clone, Debug, PartialEq)]
pub struct HostfileCommand {
    pub cluster: String,
    pub workers: u32,
    pub worker_slots: u32,
    pub master_slots: u32,
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
