//! sshd's StrictModes, checked before sshd starts: sshd walks up from the AuthorizedKeysFile and refuses
//! every key if a directory on the way is owned by someone other than root or the user, or is writable by
//! group or others (so nothing under /tmp). It stops after the user's passwd home directory, else at `/`.
//! sshd would only say "Authentication refused" in its own log; we name the directory up front.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::error::InitError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirStat {
    pub path: PathBuf,
    pub owner: u32,
    pub mode: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub dir: PathBuf,
    pub problem: String,
    pub fix: String,
}

/// The first directory (walking up) that sshd would object to, for a login as `uid`.
pub fn first_violation(dirs: &[DirStat], uid: u32) -> Option<Violation> {
    dirs.iter().find_map(|d| {
        let shown = d.path.display();
        if d.owner != 0 && d.owner != uid {
            Some(Violation {
                dir: d.path.clone(),
                problem: format!("belongs to uid {}", d.owner),
                fix: format!("set HOME to a directory of uid {uid}, or chown {uid} {shown}"),
            })
        } else if d.mode & 0o022 != 0 {
            Some(Violation {
                dir: d.path.clone(),
                problem: format!("is writable by group or others (mode {:04o})", d.mode & 0o7777),
                fix: format!("chmod go-w {shown}, or set HOME to a directory outside it (never under /tmp)"),
            })
        } else {
            None
        }
    })
}

/// The directories sshd checks for `authorized_keys`, from its own directory upwards.
pub fn dirs_sshd_checks(authorized_keys: &Path, passwd_home: &Path) -> io::Result<Vec<DirStat>> {
    let start = authorized_keys.parent().unwrap_or(Path::new("/")).canonicalize()?;
    let stop = passwd_home.canonicalize().ok();
    let mut dirs = Vec::new();
    for dir in start.ancestors() {
        let meta = std::fs::metadata(dir)?;
        dirs.push(DirStat { path: dir.to_path_buf(), owner: meta.uid(), mode: meta.mode() });
        if stop.as_deref() == Some(dir) {
            break;
        }
    }
    Ok(dirs)
}

pub fn check(authorized_keys: &Path, passwd_home: &Path, uid: u32) -> Result<(), InitError> {
    let dirs = dirs_sshd_checks(authorized_keys, passwd_home)
        .map_err(|e| InitError::file("inspect the directories above", authorized_keys, e))?;
    match first_violation(&dirs, uid) {
        None => Ok(()),
        Some(v) => Err(InitError::StrictModes {
            dir: v.dir,
            problem: v.problem,
            authorized_keys: authorized_keys.to_path_buf(),
            uid,
            fix: v.fix,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(path: &str, owner: u32, mode: u32) -> DirStat {
        DirStat { path: path.into(), owner, mode: 0o040000 | mode }
    }

    #[test]
    fn root_or_own_directories_without_group_write_pass() {
        let dirs = [dir("/home/mpi/.kompi", 1000, 0o700), dir("/home/mpi", 1000, 0o755), dir("/home", 0, 0o755), dir("/", 0, 0o755)];
        assert_eq!(first_violation(&dirs, 1000), None);
    }

    #[test]
    fn tmp_is_refused_with_its_mode() {
        let dirs = [dir("/tmp/h/.kompi", 0, 0o700), dir("/tmp/h", 0, 0o755), dir("/tmp", 0, 0o1777), dir("/", 0, 0o755)];
        let v = first_violation(&dirs, 0).unwrap();
        assert_eq!(v.dir, PathBuf::from("/tmp"));
        assert!(v.problem.contains("mode 1777"), "{v:?}");
        assert!(v.fix.contains("chmod go-w /tmp"), "{v:?}");
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        let dirs = [dir("/data/home/.kompi", 1000, 0o700), dir("/data/home", 2000, 0o755)];
        let v = first_violation(&dirs, 1000).unwrap();
        assert_eq!(v.dir, PathBuf::from("/data/home"));
        assert_eq!(v.problem, "belongs to uid 2000");
        assert!(first_violation(&dirs, 0).is_some(), "a directory of uid 2000 is refused for root too");
    }

    #[test]
    fn group_writable_fs_group_volumes_are_refused() {
        let dirs = [dir("/home/mpi/.kompi", 1000, 0o700), dir("/home/mpi", 0, 0o2775)];
        assert!(first_violation(&dirs, 1000).unwrap().problem.contains("2775"));
    }

    #[test]
    fn the_walk_stops_after_the_passwd_home() {
        let base = tempfile::tempdir().unwrap();
        let home = base.path().join("home");
        std::fs::create_dir_all(home.join(".kompi")).unwrap();
        let dirs = dirs_sshd_checks(&home.join(".kompi/authorized_keys"), &home).unwrap();
        let home = home.canonicalize().unwrap();
        assert_eq!(dirs.iter().map(|d| d.path.clone()).collect::<Vec<_>>(), vec![home.join(".kompi"), home]);
        let to_root = dirs_sshd_checks(&base.path().join("home/.kompi/authorized_keys"), Path::new("/nonexistent")).unwrap();
        assert_eq!(to_root.last().unwrap().path, PathBuf::from("/"));
    }
}
