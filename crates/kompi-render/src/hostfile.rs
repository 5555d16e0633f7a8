//! Hostfile text: the master first, then each worker, with slots in the syntax of the chosen MPI.

use kompi_spec::MpiImplementation;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEntry {
    pub host: String,
    pub slots: u32,
}

/// One line per host: `host slots=N` for Open MPI, `host:N` for MPICH and Intel MPI.
pub fn hostfile(mpi: MpiImplementation, entries: &[HostEntry]) -> String {
    entries
        .iter()
        .map(|e| match mpi {
            MpiImplementation::OpenMpi => format!("{} slots={}\n", e.host, e.slots),
            MpiImplementation::Mpich | MpiImplementation::Intel => format!("{}:{}\n", e.host, e.slots),
        })
        .collect()
}

/// The host names in a hostfile of either syntax, skipping blank lines and comments.
pub fn hosts(text: &str) -> Vec<&str> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.split([' ', '\t', ':']).next().unwrap_or(l))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<HostEntry> {
        vec![HostEntry { host: "c-master".into(), slots: 1 }, HostEntry { host: "c-worker-0.c".into(), slots: 4 }]
    }

    #[test]
    fn open_mpi_and_hydra_syntax() {
        assert_eq!(hostfile(MpiImplementation::OpenMpi, &entries()), "c-master slots=1\nc-worker-0.c slots=4\n");
        assert_eq!(hostfile(MpiImplementation::Mpich, &entries()), "c-master:1\nc-worker-0.c:4\n");
        assert_eq!(hostfile(MpiImplementation::Intel, &[]), "");
    }

    #[test]
    fn hosts_of_either_syntax() {
        assert_eq!(hosts("a slots=1\n# c\n\nb:2\nc\n"), vec!["a", "b", "c"]);
    }
}
