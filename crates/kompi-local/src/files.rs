//! Files and directories root writes for a local cluster, made so that a symbolic link planted where
//! one of them goes is replaced, never followed: new files are created exclusively (`O_EXCL`, which
//! does not follow a final symlink) and renamed into place, new log files opened `O_NOFOLLOW`.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::error::LocalError;

/// Replaces `path` with a new file holding `content` (node's atomic write: a temporary file beside it,
/// renamed over it): whatever was at `path`, a symlink included, is replaced and its target left alone.
pub fn replace(path: &Path, content: &[u8], mode: u32) -> Result<(), LocalError> {
    kompi_node::atomic_file::write_atomically(path, content, mode).map_err(|e| LocalError::io(format!("writing {}", path.display()), e))
}

/// A new file for writing (a node's log): refused if anything, a symlink included, is already there.
pub fn create_new(path: &Path, mode: u32) -> Result<File, LocalError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| LocalError::io(format!("creating {}", path.display()), e))
}

/// A new directory (mode 0700); refused if anything is already there.
pub fn create_dir(path: &Path) -> Result<(), LocalError> {
    std::fs::DirBuilder::new().mode(0o700).create(path).map_err(|e| LocalError::io(format!("creating {}", path.display()), e))
}

/// Moves `from` to `to`, refused if anything (an empty directory included) is at `to`.
pub fn rename_no_replace(from: &Path, to: &Path) -> Result<(), LocalError> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE)
        .map_err(|e| LocalError::io(format!("moving {} to {}", from.display(), to.display()), e.into()))
}

/// Refuses a directory that anyone but root could change: root would act on what it holds (kill
/// the processes and delete the interfaces it names), so it must be root's alone.
pub fn check_root_only(path: &Path) -> Result<(), LocalError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| LocalError::io(format!("inspecting {}", path.display()), e))?;
    let unsafe_because = |reason: String| Err(LocalError::Unsafe { path: path.to_path_buf(), reason });
    if meta.file_type().is_symlink() {
        return unsafe_because("a symbolic link".into());
    }
    if !meta.is_dir() {
        return unsafe_because("not a directory".into());
    }
    if meta.uid() != 0 {
        return unsafe_because(format!("owned by uid {}, not root", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return unsafe_because(format!("writable by {} (mode {:o})", if meta.mode() & 0o002 != 0 { "everyone" } else { "its group" }, meta.mode() & 0o7777));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::Permissions;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn a_planted_symlink_is_replaced_and_its_target_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let path = dir.path().join("cluster.json");
        symlink(&victim, &path).unwrap();
        replace(&path, b"{}", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no temporary file may remain: {names:?}");
    }

    #[test]
    fn a_log_is_never_opened_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let log = dir.path().join("init.log");
        symlink(&victim, &log).unwrap();
        assert!(create_new(&log, 0o600).is_err());
        let dangling = dir.path().join("dangling.log");
        symlink(dir.path().join("would-be-created"), &dangling).unwrap();
        assert!(create_new(&dangling, 0o600).is_err());
        assert!(!dir.path().join("would-be-created").exists());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    }

    #[test]
    fn only_root_only_directories_pass() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to own the directories");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        check_root_only(dir.path()).unwrap();
        std::fs::set_permissions(dir.path(), Permissions::from_mode(0o777)).unwrap();
        assert!(check_root_only(dir.path()).unwrap_err().to_string().contains("writable by everyone (mode 777)"));
        std::fs::set_permissions(dir.path(), Permissions::from_mode(0o770)).unwrap();
        assert!(check_root_only(dir.path()).unwrap_err().to_string().contains("writable by its group"));
        std::fs::set_permissions(dir.path(), Permissions::from_mode(0o700)).unwrap();
        nix::unistd::chown(dir.path(), Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        assert!(check_root_only(dir.path()).unwrap_err().to_string().contains("owned by uid 65534"));
        let link = dir.path().with_extension("link");
        symlink(dir.path(), &link).unwrap();
        assert!(check_root_only(&link).unwrap_err().to_string().contains("symbolic link"));
        std::fs::remove_file(&link).unwrap();
    }
}
