//! `kompi inject DIR`: the init container that brings kompi into a pod whose image may lack it. It copies
//! the running binary into DIR (an emptyDir the MPI containers mount read-only), executable by every
//! user, atomically: a container never starts a half-written kompi.

use std::path::{Path, PathBuf};

use clap::Args;
use kompi_spec::{ErrorKind, ExitStatusOf};
use tracing::info;

use crate::atomic_file::write_atomically;
use crate::cli::print_error;

/// Arguments of `kompi inject`, as kompi-render writes them into the init container.
#[derive(Args, Debug, Clone)]
pub struct InjectArgs {
    /// The directory to copy kompi into (it must exist; the copy is DIR/kompi, mode 0755)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Copies the running binary; returns the exit status (0, or `status_of` a failure, with one line on stderr).
pub fn run(args: &InjectArgs, status_of: ExitStatusOf) -> i32 {
    match copy_self(&args.dir) {
        Ok(target) => {
            info!(path = %target.display(), "kompi copied");
            0
        }
        Err(message) => {
            print_error(&message);
            status_of(ErrorKind::Failed)
        }
    }
}

fn copy_self(dir: &Path) -> Result<PathBuf, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory: mount the volume kompi is copied into there", dir.display()));
    }
    let source = std::env::current_exe().map_err(|e| format!("cannot tell where this kompi binary is: {e}"))?;
    let binary = std::fs::read(&source).map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    let target = dir.join("kompi");
    write_atomically(&target, &binary, 0o755).map_err(|e| format!("cannot write {}: {e} (is the volume writable by this user?)", target.display()))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn copies_this_binary_executable_by_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let target = copy_self(dir.path()).unwrap();
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), me);
        assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o777, 0o755);
    }

    #[test]
    fn a_missing_directory_is_named() {
        let e = copy_self(Path::new("/nonexistent/kompi-inject")).unwrap_err();
        assert!(e.contains("/nonexistent/kompi-inject is not a directory"), "{e}");
    }
}
