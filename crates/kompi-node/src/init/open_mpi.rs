//! Which MPI the image carries, asked of the installed binaries at run time: Open MPI 4.x (ORTE reads
//! the launcher parameters), Open MPI 5.x (PRRTE does, and silently ignores ORTE's), or a Hydra launcher
//! (MPICH, Intel MPI).

use std::process::{Command, Stdio};

use tracing::debug;

/// The launcher the image's MPI tools name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Installed {
    OpenMpi { major: u32 },
    /// MPICH's or Intel MPI's process manager.
    Hydra,
}

/// What `ompi_info --version` ("Open MPI v4.1.4"), `mpirun --version` ("mpirun (Open MPI) 5.0.3") or
/// `mpiexec --version` ("mpiexec (OpenRTE) 4.1.4", "HYDRA build details: ...") says.
pub fn classify(output: &str) -> Option<Installed> {
    if output.contains("HYDRA build details") || output.contains("Intel(R) MPI Library") {
        return Some(Installed::Hydra);
    }
    output.lines().find_map(|line| {
        let at = ["Open MPI", "OpenRTE"].iter().find_map(|name| line.find(name).map(|i| i + name.len()))?;
        line[at..].split_whitespace().find_map(|word| {
            let version = word.trim_matches(['(', ')', ':']).trim_start_matches('v');
            Some(Installed::OpenMpi { major: version.split('.').next()?.parse().ok()? })
        })
    })
}

/// Asks `ompi_info`, then `mpirun`, then `mpiexec`; `None` when none is on PATH or none says.
pub fn detect() -> Option<Installed> {
    ["ompi_info", "mpirun", "mpiexec"].into_iter().find_map(|program| {
        let output = Command::new(program).arg("--version").stdin(Stdio::null()).output();
        match output {
            Ok(out) => classify(&format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))),
            Err(e) => {
                debug!(program, error = %e, "cannot ask for the MPI version");
                None
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn major(output: &str) -> Option<u32> {
        match classify(output)? {
            Installed::OpenMpi { major } => Some(major),
            Installed::Hydra => None,
        }
    }

    #[test]
    fn versions_of_both_series_and_each_tool() {
        assert_eq!(major("Open MPI v4.1.4\n\nhttp://www.open-mpi.org/community/help/\n"), Some(4));
        assert_eq!(major("mpirun (Open MPI) 4.1.4\n\nReport bugs to ..."), Some(4));
        assert_eq!(major("mpiexec (OpenRTE) 4.1.4\n\nReport bugs to http://www.open-mpi.org/community/help/\n"), Some(4));
        assert_eq!(major("Open MPI v5.0.7\n\nhttps://www.open-mpi.org/community/help/\n"), Some(5));
        assert_eq!(major("mpirun (Open MPI) 5.0.0rc12\n"), Some(5));
    }

    #[test]
    fn hydra_and_noise_are_not_open_mpi() {
        assert_eq!(classify("HYDRA build details:\n    Version:                                 4.2.1\n"), Some(Installed::Hydra));
        assert_eq!(classify("Intel(R) MPI Library for Linux* OS, Version 2021.6 Build 20220227"), Some(Installed::Hydra));
        assert_eq!(classify(""), None);
        assert_eq!(classify("bash: ompi_info: command not found"), None);
    }
}
