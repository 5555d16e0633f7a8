//! Which Open MPI the image carries: 4.x (ORTE reads the launcher parameters) or 5.x (PRRTE does, and
//! silently ignores ORTE's), asked of the installed binaries at run time.

use std::process::{Command, Stdio};

use tracing::debug;

/// The major version in `ompi_info --version` ("Open MPI v4.1.4") or `mpirun --version` ("mpirun (Open MPI) 5.0.3").
pub fn major_version(output: &str) -> Option<u32> {
    output.lines().find_map(|line| {
        let after = &line[line.find("Open MPI")? + "Open MPI".len()..];
        after.split_whitespace().find_map(|word| {
            let version = word.trim_matches(['(', ')', ':']).trim_start_matches('v');
            version.split('.').next()?.parse().ok()
        })
    })
}

/// Asks `ompi_info`, then `mpirun`; `None` when neither is on PATH or neither says.
pub fn detect_major_version() -> Option<u32> {
    ["ompi_info", "mpirun"].into_iter().find_map(|program| {
        let output = Command::new(program).arg("--version").stdin(Stdio::null()).output();
        match output {
            Ok(out) => major_version(&String::from_utf8_lossy(&out.stdout)),
            Err(e) => {
                debug!(program, error = %e, "cannot ask for the Open MPI version");
                None
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_both_series_and_both_tools() {
        assert_eq!(major_version("Open MPI v4.1.4\n\nhttp://www.open-mpi.org/community/help/\n"), Some(4));
        assert_eq!(major_version("mpirun (Open MPI) 4.1.4\n\nReport bugs to ..."), Some(4));
        assert_eq!(major_version("Open MPI v5.0.3\n"), Some(5));
        assert_eq!(major_version("mpirun (Open MPI) 5.0.0rc12\n"), Some(5));
    }

    #[test]
    fn other_mpis_and_noise_are_not_open_mpi() {
        assert_eq!(major_version("HYDRA build details:\n    Version: 4.0.2\n"), None);
        assert_eq!(major_version("Intel(R) MPI Library for Linux* OS, Version 2021.6"), None);
        assert_eq!(major_version(""), None);
    }
}
