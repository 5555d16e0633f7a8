//! Where `kompi init` keeps the running user's private files. Per-node files live in a directory named
//! for the host, so pods that share a home directory (NFS) do not overwrite each other's.

use std::path::{Path, PathBuf};

use kompi_render::ssh::SshdFiles;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `$HOME/.kompi`, 0700.
    pub private_dir: PathBuf,
    /// The cluster's private key, 0600.
    pub identity: PathBuf,
    pub authorized_keys: PathBuf,
    /// `$HOME/.kompi/<hostname>`, 0700.
    pub node_dir: PathBuf,
    pub host_key: PathBuf,
    pub sshd_config: PathBuf,
    pub pid_file: PathBuf,
    pub ssh_dir: PathBuf,
    pub ssh_config: PathBuf,
}

impl Layout {
    pub fn new(home: &Path, hostname: &str) -> Self {
        let private_dir = home.join(".kompi");
        let node = match hostname.trim() {
            "" | "." | ".." => "node",
            name => name,
        };
        let node_dir = private_dir.join(node.replace('/', "_"));
        Layout {
            identity: private_dir.join("id_cluster"),
            authorized_keys: private_dir.join("authorized_keys"),
            host_key: node_dir.join("ssh_host_ed25519_key"),
            sshd_config: node_dir.join("sshd_config"),
            pid_file: node_dir.join("sshd.pid"),
            ssh_dir: home.join(".ssh"),
            ssh_config: home.join(".ssh").join("config"),
            node_dir,
            private_dir,
        }
    }

    pub fn sshd_files(&self) -> SshdFiles {
        SshdFiles {
            host_key: self.host_key.display().to_string(),
            authorized_keys: self.authorized_keys.display().to_string(),
            pid_file: self.pid_file.display().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_private_is_under_dot_kompi() {
        let l = Layout::new(Path::new("/home/mpi"), "c-worker-0");
        assert_eq!(l.identity, PathBuf::from("/home/mpi/.kompi/id_cluster"));
        assert_eq!(l.authorized_keys, PathBuf::from("/home/mpi/.kompi/authorized_keys"));
        assert_eq!(l.host_key, PathBuf::from("/home/mpi/.kompi/c-worker-0/ssh_host_ed25519_key"));
        assert_eq!(l.sshd_files().pid_file, "/home/mpi/.kompi/c-worker-0/sshd.pid");
        assert_eq!(l.ssh_config, PathBuf::from("/home/mpi/.ssh/config"));
    }

    #[test]
    fn odd_hostnames_stay_inside_dot_kompi() {
        for name in ["", "..", "a/b"] {
            let l = Layout::new(Path::new("/h"), name);
            assert_eq!(l.node_dir.parent(), Some(Path::new("/h/.kompi")), "{name:?}");
            assert_ne!(l.node_dir, PathBuf::from("/h/.kompi/.."), "{name:?}");
        }
    }
}
