//! sshd: checked before it ever starts (binary, port, `sshd -t`), so that it is never half-configured, and
//! the command line the supervisor runs.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kompi_render::ssh::OpenSshVersion;
use tracing::{info, warn};

use super::error::InitError;

#[derive(Clone, Debug)]
pub struct Sshd {
    pub binary: PathBuf,
    pub config: PathBuf,
    pub port: u16,
    /// What `sshd -V` said it is (`None` when it did not say).
    pub openssh: Option<OpenSshVersion>,
}

impl Sshd {
    /// In the foreground (so it stays our child), logging to stderr (the container's log). Its own process
    /// group keeps signals sent to ours (Ctrl-C in a terminal) from stopping it behind the supervisor's back.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.args(["-D", "-e", "-f"]).arg(&self.config).stdin(Stdio::null()).process_group(0);
        command
    }

    /// sshd listens on every address, IPv4 and (where the kernel has it) IPv6.
    pub fn check_port_free(&self) -> Result<(), InitError> {
        let port = self.port;
        match TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => return Err(InitError::PortInUse { port }),
            Err(source) => return Err(InitError::PortUnavailable { port, source }),
        }
        match TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(InitError::PortInUse { port }),
            _ => Ok(()),
        }
    }

    /// `sshd -t`. As root, sshd also needs its privilege separation directory, which images built without
    /// a service manager often lack; it is made here when sshd names it.
    pub fn check_config(&self, running_as_root: bool) -> Result<(), InitError> {
        let detail = match self.test_config()? {
            None => return Ok(()),
            Some(detail) => detail,
        };
        let missing_dir = detail.split("Missing privilege separation directory: ").nth(1).map(|rest| rest.split(';').next().unwrap_or(rest).trim());
        if let (true, Some(dir)) = (running_as_root, missing_dir) {
            create_privsep_dir(Path::new(dir))?;
            if let Some(detail) = self.test_config()? {
                return Err(InitError::SshdConfigRejected { config: self.config.clone(), detail });
            }
            return Ok(());
        }
        Err(InitError::SshdConfigRejected { config: self.config.clone(), detail })
    }

    /// `None` when sshd accepts the config, else what it said, on one line.
    fn test_config(&self) -> Result<Option<String>, InitError> {
        let output = Command::new(&self.binary)
            .args(["-t", "-f"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| InitError::Spawn { what: format!("{} -t", self.binary.display()), source })?;
        if output.status.success() {
            return Ok(None);
        }
        let said = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = said.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        Ok(Some(if lines.is_empty() { format!("sshd -t failed ({})", output.status) } else { lines.join("; ") }))
    }
}

/// `sshd -V`: the release decides which options its config may use and what its log looks like.
pub fn version(binary: &Path) -> Option<OpenSshVersion> {
    let said = match Command::new(binary).arg("-V").stdin(Stdio::null()).output() {
        Ok(out) => format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout)),
        Err(e) => format!("{e}"),
    };
    let version = OpenSshVersion::parse(&said);
    match version {
        Some(v) => info!(binary = %binary.display(), "sshd is {v}"),
        None => warn!(
            binary = %binary.display(),
            said = said.trim(),
            "cannot tell the OpenSSH release from `sshd -V`; writing only options every release knows"
        ),
    }
    version
}

/// Where images put sshd, tried in this order when `--sshd` is not given (Debian and Ubuntu, a
/// source build's prefix, distributions without a merged /usr, Arch).
pub const USUAL_SSHD_PATHS: &[&str] = &["/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd", "/usr/bin/sshd"];

/// The sshd to run: `--sshd` when given (checked), else the first executable among `candidates`.
pub fn locate(given: Option<&Path>, candidates: &[&str]) -> Result<PathBuf, InitError> {
    if let Some(path) = given {
        check_binary(path)?;
        return Ok(path.to_path_buf());
    }
    candidates.iter().map(PathBuf::from).find(|p| check_binary(p).is_ok()).ok_or_else(|| InitError::SshdNotFound { looked: candidates.join(", ") })
}

/// sshd must be an executable file at an absolute path (it re-executes itself from there).
pub fn check_binary(binary: &Path) -> Result<(), InitError> {
    if !binary.is_absolute() {
        return Err(InitError::SshdRelative { path: binary.to_path_buf() });
    }
    match std::fs::metadata(binary) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => Ok(()),
        _ => Err(InitError::SshdMissing { path: binary.to_path_buf() }),
    }
}

fn create_privsep_dir(dir: &Path) -> Result<(), InitError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| InitError::file("create sshd's privilege separation directory", dir, e))?;
    info!(dir = %dir.display(), "created sshd's privilege separation directory");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sshd(binary: &str, port: u16) -> Sshd {
        Sshd { binary: binary.into(), config: "/nonexistent/sshd_config".into(), port, openssh: None }
    }

    #[test]
    fn sshd_is_the_first_executable_at_the_usual_paths_or_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let (missing, plain, found) = (dir.path().join("sbin/sshd"), dir.path().join("plain"), dir.path().join("sshd"));
        std::fs::write(&plain, "").unwrap();
        std::fs::write(&found, "").unwrap();
        std::fs::set_permissions(&found, std::fs::Permissions::from_mode(0o755)).unwrap();
        let paths = [missing.to_str().unwrap(), plain.to_str().unwrap(), found.to_str().unwrap()];
        assert_eq!(locate(None, &paths).unwrap(), found, "a missing and a non-executable file are passed over");
        let e = locate(None, &paths[..2]).unwrap_err().to_string();
        assert!(e.contains(&format!("looked at {}, {}", paths[0], paths[1])) && e.contains("install openssh-server"), "{e}");
        let e = locate(Some(&missing), &paths).unwrap_err().to_string();
        assert!(e.contains("sshd not found at"), "a given --sshd is not replaced by another: {e}");
    }

    #[test]
    fn the_binary_must_exist_at_an_absolute_path() {
        let e = check_binary(Path::new("/nonexistent/sshd")).unwrap_err().to_string();
        assert_eq!(e, "sshd not found at /nonexistent/sshd: install openssh-server in the image (or pass --sshd PATH)");
        assert!(check_binary(Path::new("sshd")).unwrap_err().to_string().contains("not an absolute path"));
        assert!(check_binary(Path::new("/etc")).is_err(), "a directory is no sshd");
        assert!(check_binary(Path::new("/etc/passwd")).is_err(), "a file that is not executable is no sshd");
    }

    #[test]
    fn a_taken_port_is_named() {
        let taken = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let e = sshd("/usr/sbin/sshd", port).check_port_free().unwrap_err().to_string();
        assert!(e.starts_with(&format!("port {port} is already in use")), "{e}");
        drop(taken);
        sshd("/usr/sbin/sshd", port).check_port_free().unwrap();
    }
}
