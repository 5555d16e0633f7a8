//! A local cluster's state: one directory holding everything kompi needs to find, use and remove it.
//!
//! ```text
//! <state>/cluster.json      plan, settings, node pids
//! <state>/hosts             /etc/hosts of every node
//! <state>/hostfile          the MPI hostfile
//! <state>/key/              the cluster key pair (id_rsa, id_rsa.pub, authorized_keys), 0600
//! <state>/nodes/<node>/     the node's private home directories (.ssh, .kompi, .openmpi, .prte) and init.log
//! ```

use std::path::{Path, PathBuf};

use kompi_spec::MpiImplementation;
use serde::{Deserialize, Serialize};

use crate::error::LocalError;
use crate::plan::Plan;
use crate::proc::ProcessId;

/// The home subdirectories each node gets a private copy of (bind-mounted over the user's own), so
/// that ssh, Open MPI and kompi init see per-node settings exactly as in a pod.
pub const PRIVATE_HOME_DIRS: [&str; 4] = [".ssh", ".kompi", ".openmpi", ".prte"];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterState {
    pub plan: Plan,
    pub ssh_port: u16,
    pub mpi: MpiImplementation,
    pub master_slots: u32,
    pub worker_slots: u32,
    /// The `kompi init` process of each node, by node name; filled in as nodes start.
    pub nodes: Vec<(String, ProcessId)>,
}

impl ClusterState {
    pub fn pid_of(&self, node: &str) -> Option<ProcessId> {
        self.nodes.iter().find(|(n, _)| n == node).map(|(_, p)| *p)
    }
}

/// Where one cluster's state lives.
#[derive(Clone, Debug)]
pub struct StateDir {
    pub root: PathBuf,
}

impl StateDir {
    pub fn file(&self) -> PathBuf {
        self.root.join("cluster.json")
    }
    pub fn hosts(&self) -> PathBuf {
        self.root.join("hosts")
    }
    pub fn hostfile(&self) -> PathBuf {
        self.root.join("hostfile")
    }
    pub fn key_dir(&self) -> PathBuf {
        self.root.join("key")
    }
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.root.join("nodes").join(node)
    }
    pub fn node_log(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("init.log")
    }

    pub fn exists(&self) -> bool {
        self.root.exists()
    }

    pub fn load(&self) -> Result<ClusterState, LocalError> {
        let text = std::fs::read_to_string(self.file()).map_err(|e| LocalError::io(format!("reading {}", self.file().display()), e))?;
        serde_json::from_str(&text)
            .map_err(|e| LocalError::Corrupt { path: self.file(), reason: e.to_string() })
    }

    /// Saves atomically, so a crash never leaves a half-written state file.
    pub fn save(&self, state: &ClusterState) -> Result<(), LocalError> {
        let tmp = self.root.join("cluster.json.tmp");
        let text = serde_json::to_string_pretty(state).expect("state serializes");
        std::fs::write(&tmp, text).map_err(|e| LocalError::io(format!("writing {}", tmp.display()), e))?;
        std::fs::rename(&tmp, self.file()).map_err(|e| LocalError::io(format!("writing {}", self.file().display()), e))
    }
}

/// Where clusters live unless `--state-dir` says otherwise: `$XDG_STATE_HOME/kompi` or `~/.local/state/kompi`.
pub fn default_base() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("kompi");
    }
    home_dir().join(".local/state/kompi")
}

/// The running user's home: $HOME, else the passwd entry.
pub fn home_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// Every cluster with a state directory under `base`.
pub fn list(base: &Path) -> Vec<(String, StateDir)> {
    let mut out: Vec<(String, StateDir)> = std::fs::read_dir(base)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("cluster.json").exists())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let dir = StateDir { root: e.path() };
            (name, dir)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Subnet, plan};
    use kompi_spec::ClusterName;

    #[test]
    fn the_mpi_flavour_is_stored_as_its_word_and_checked_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = StateDir { root: dir.path().to_path_buf() };
        let plan = plan(&ClusterName::new("demo").unwrap(), 1, Subnet::parse("10.250.9.0/24").unwrap(), "kompi9").unwrap();
        let state = ClusterState { plan, ssh_port: 2022, mpi: MpiImplementation::Mpich, master_slots: 1, worker_slots: 2, nodes: Vec::new() };
        state_dir.save(&state).unwrap();
        let text = std::fs::read_to_string(state_dir.file()).unwrap();
        assert!(text.contains("\"mpi\": \"mpich\""), "{text}");
        assert_eq!(state_dir.load().unwrap().mpi, MpiImplementation::Mpich);
        std::fs::write(state_dir.file(), text.replace("\"mpich\"", "\"lam\"")).unwrap();
        let error = state_dir.load().unwrap_err().to_string();
        assert!(error.contains("is damaged") && error.contains("expected one of openmpi, mpich, intel"), "{error}");
    }
}
