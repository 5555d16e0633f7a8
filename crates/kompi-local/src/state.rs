//! A local cluster's state: one directory holding everything kompi needs to find, use and remove it.
//!
//! ```text
//! <state>/.kompi-local      the marker `up` writes first: this directory is kompi's
//! <state>/cluster.json      plan, settings, node pids
//! <state>/hosts             /etc/hosts of every node
//! <state>/hostfile          the MPI hostfile
//! <state>/key/              the cluster key pair (id_rsa, id_rsa.pub, authorized_keys), 0600
//! <state>/nodes/<node>/     the node's private home directories (.ssh, .kompi, .openmpi, .prte) and init.log
//! ```
//!
//! Root acts on what the state names (it kills processes, deletes interfaces), so the base and each
//! state directory must be root's alone, and what is read back is checked against what kompi would
//! have made for that cluster name.

use std::path::{Path, PathBuf};

use kompi_spec::{ClusterName, MpiImplementation};
use serde::{Deserialize, Serialize};

use crate::error::LocalError;
use crate::files;
use crate::plan::{Plan, plan};
use crate::proc::ProcessId;

/// The home subdirectories each node gets a private copy of (bind-mounted over the user's own), so
/// that ssh, Open MPI and kompi init see per-node settings exactly as in a pod.
pub const PRIVATE_HOME_DIRS: [&str; 4] = [".ssh", ".kompi", ".openmpi", ".prte"];

const MARKER: &str = ".kompi-local";

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

    /// Checks what was read back against what kompi makes for `name`: the names of nodes, bridge
    /// and veths, and that every recorded pid is one of this plan's nodes'.
    pub fn verify(&self, name: &ClusterName) -> Result<(), String> {
        let p = &self.plan;
        if p.cluster != name.as_str() {
            return Err(format!("it names cluster {:?}, not {name}", p.cluster));
        }
        let workers = p.nodes.len().checked_sub(1).ok_or("it lists no nodes")?;
        let expected = plan(name, workers as u32, p.subnet, &p.bridge)?;
        if &expected != p {
            return Err(format!("its node, bridge or veth names are not those kompi makes for {name} on bridge {:?}", p.bridge));
        }
        if let Some((node, _)) = self.nodes.iter().find(|(n, _)| p.node(n).is_none()) {
            return Err(format!("it records a process for {node:?}, which is not a node of {name}"));
        }
        Ok(())
    }
}

/// Where one cluster's state lives: `<base>/<name>`, built only from a valid cluster name.
#[derive(Clone, Debug)]
pub struct StateDir {
    pub root: PathBuf,
}

impl StateDir {
    pub fn new(base: &Path, name: &ClusterName) -> Self {
        StateDir { root: base.join(name.as_str()) }
    }
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
    fn marker(&self) -> PathBuf {
        self.root.join(MARKER)
    }

    /// Anything there, a dangling symlink included.
    pub fn exists(&self) -> bool {
        std::fs::symlink_metadata(&self.root).is_ok()
    }

    /// Makes the directory already marked as this cluster's: it is built as `.<name>.creating`
    /// beside its place and renamed there, refused if anything is there, so a crash never leaves a
    /// directory `down` cannot prove is kompi's. A `.creating` left by a crash is replaced.
    pub fn create(&self, name: &ClusterName) -> Result<(), LocalError> {
        let base = self.root.parent().expect("a state directory has a base");
        let building = StateDir { root: base.join(format!(".{name}.creating")) };
        if building.exists() {
            files::check_root_only(&building.root)?;
            if !building.is_marked(name) {
                return Err(LocalError::NotOurs { dir: building.root, reason: "it is not marked as kompi's".into() });
            }
            std::fs::remove_dir_all(&building.root).map_err(|e| LocalError::io(format!("removing {}", building.root.display()), e))?;
        }
        files::create_dir(&building.root)?;
        files::replace(&building.marker(), marker_text(name).as_bytes(), 0o600)?;
        files::rename_no_replace(&building.root, &self.root)
    }

    /// Whether `up` marked this directory as the state of `name`.
    pub fn is_marked(&self, name: &ClusterName) -> bool {
        std::fs::read_to_string(self.marker()).is_ok_and(|t| t == marker_text(name))
    }

    /// The state, checked to be `name`'s (see [`ClusterState::verify`]).
    pub fn load(&self, name: &ClusterName) -> Result<ClusterState, LocalError> {
        let state = self.read()?;
        state.verify(name).map_err(|reason| LocalError::Corrupt { path: self.file(), reason })?;
        Ok(state)
    }

    /// The state as written, unchecked.
    pub fn read(&self) -> Result<ClusterState, LocalError> {
        let text = std::fs::read_to_string(self.file()).map_err(|e| LocalError::io(format!("reading {}", self.file().display()), e))?;
        serde_json::from_str(&text).map_err(|e| LocalError::Corrupt { path: self.file(), reason: e.to_string() })
    }

    /// Saves atomically, so a crash never leaves a half-written state file.
    pub fn save(&self, state: &ClusterState) -> Result<(), LocalError> {
        let text = serde_json::to_string_pretty(state).expect("state serializes");
        files::replace(&self.file(), text.as_bytes(), 0o600)
    }
}

fn marker_text(name: &ClusterName) -> String {
    format!("kompi local cluster {name}\n")
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

/// Every cluster with a state directory under `base` (entries whose names are no cluster names are skipped).
pub fn list(base: &Path) -> Vec<(ClusterName, StateDir)> {
    let mut out: Vec<(ClusterName, StateDir)> = std::fs::read_dir(base)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| ClusterName::new(e.file_name().to_str()?).ok())
        .map(|name| {
            let dir = StateDir::new(base, &name);
            (name, dir)
        })
        .filter(|(_, dir)| dir.file().exists())
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
        let name = ClusterName::new("demo").unwrap();
        let plan = plan(&name, 1, Subnet::parse("10.250.9.0/24").unwrap(), "kompi9").unwrap();
        let state = ClusterState { plan, ssh_port: 2022, mpi: MpiImplementation::Mpich, master_slots: 1, worker_slots: 2, nodes: Vec::new() };
        state_dir.save(&state).unwrap();
        let text = std::fs::read_to_string(state_dir.file()).unwrap();
        assert!(text.contains("\"mpi\": \"mpich\""), "{text}");
        assert_eq!(state_dir.load(&name).unwrap().mpi, MpiImplementation::Mpich);
        std::fs::write(state_dir.file(), text.replace("\"mpich\"", "\"lam\"")).unwrap();
        let error = state_dir.load(&name).unwrap_err().to_string();
        assert!(error.contains("is damaged") && error.contains("expected one of openmpi, mpich, intel"), "{error}");
    }
}
