//! Files in the user's home that other programs read at their default paths: `~/.ssh/config` (ssh between
//! the pods) and the MPI defaults (a `kubectl exec ... mpiexec` does not inherit PID 1's environment).
//! Each carries a marker on its first line; a file without it is the user's own and is never overwritten.

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use kompi_render::mca::{self, HomeFile};
use kompi_render::ssh::{CLIENT_CONFIG_MARKER, client_config};
use tracing::{info, warn};

use super::error::InitError;
use super::layout::Layout;
use crate::atomic_file::write_atomically;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Written,
    Unchanged,
    /// The file is the user's own.
    LeftAlone,
}

/// What to do with a file given its current content: kompi owns it if it is absent or starts with `marker`.
pub fn decide(existing: Option<&str>, wanted: &str, marker: &str) -> Outcome {
    match existing {
        None => Outcome::Written,
        Some(text) if !text.starts_with(marker) => Outcome::LeftAlone,
        Some(text) if text == wanted => Outcome::Unchanged,
        Some(_) => Outcome::Written,
    }
}

pub fn write_if_ours(path: &Path, content: &str, marker: &str, mode: u32) -> Result<Outcome, InitError> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        // Unreadable or not text: certainly not a file kompi wrote.
        Err(_) => Some(String::new()),
    };
    let outcome = decide(existing.as_deref(), content, marker);
    if outcome == Outcome::Written {
        write_atomically(path, content.as_bytes(), mode).map_err(|e| InitError::file("write", path, e))?;
    }
    Ok(outcome)
}

fn create_dir(path: &Path, mode: u32) -> Result<(), InitError> {
    DirBuilder::new().recursive(true).mode(mode).create(path).map_err(|e| InitError::file("create directory", path, e))
}

/// `~/.ssh/config` with the cluster's port and key.
pub fn write_ssh_config(layout: &Layout, cluster: &str, port: u16) -> Result<(), InitError> {
    let content = client_config(cluster, port, &layout.identity.display().to_string());
    create_dir(&layout.ssh_dir, 0o700)?;
    if write_if_ours(&layout.ssh_config, &content, CLIENT_CONFIG_MARKER, 0o600)? == Outcome::LeftAlone {
        let needed: Vec<&str> = content.lines().skip(1).map(str::trim).collect();
        warn!(
            path = %layout.ssh_config.display(),
            "your own ssh config is left alone; for ssh between the cluster's pods it needs: {}",
            needed.join("; ")
        );
    }
    Ok(())
}

/// The MPI defaults under `home`.
pub fn write_mpi_defaults(home: &Path, files: &[HomeFile]) -> Result<(), InitError> {
    for file in files {
        let path = home.join(file.path);
        if let Some(dir) = path.parent() {
            create_dir(dir, 0o755)?;
        }
        match write_if_ours(&path, &file.content, mca::FILE_MARKER, 0o644)? {
            Outcome::Written => info!(path = %path.display(), "wrote MPI defaults"),
            Outcome::Unchanged => {}
            Outcome::LeftAlone => warn!(
                path = %path.display(),
                "your own MPI parameter file is left alone; kompi's defaults would be: {}",
                file.content.lines().skip(1).collect::<Vec<_>>().join("; ")
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absent_or_marked_files_are_written() {
        assert_eq!(decide(None, "# kompi: x", "# kompi:"), Outcome::Written);
        assert_eq!(decide(Some("# kompi: old"), "# kompi: x", "# kompi:"), Outcome::Written);
        assert_eq!(decide(Some("# kompi: x"), "# kompi: x", "# kompi:"), Outcome::Unchanged);
        assert_eq!(decide(Some("Host *\n"), "# kompi: x", "# kompi:"), Outcome::LeftAlone);
        assert_eq!(decide(Some(""), "# kompi: x", "# kompi:"), Outcome::LeftAlone);
    }

    #[test]
    fn a_users_own_ssh_config_survives() {
        use std::os::unix::fs::MetadataExt;
        let home = tempfile::tempdir().unwrap();
        let layout = Layout::new(home.path(), "n");
        write_ssh_config(&layout, "c", 2022).unwrap();
        let ours = std::fs::read_to_string(&layout.ssh_config).unwrap();
        assert!(ours.starts_with(CLIENT_CONFIG_MARKER) && ours.contains("Port 2022"), "{ours}");
        assert_eq!(std::fs::metadata(&layout.ssh_config).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&layout.ssh_dir).unwrap().mode() & 0o777, 0o700);
        write_ssh_config(&layout, "c", 2222).unwrap();
        assert!(std::fs::read_to_string(&layout.ssh_config).unwrap().contains("Port 2222"), "kompi's own file follows the port");
        std::fs::write(&layout.ssh_config, "Host *\n  User me\n").unwrap();
        write_ssh_config(&layout, "c", 2022).unwrap();
        assert_eq!(std::fs::read_to_string(&layout.ssh_config).unwrap(), "Host *\n  User me\n");
    }
}
