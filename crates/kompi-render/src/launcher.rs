//! The mpiexec command line `kompi run` and `kompi local run` start on the master.

use kompi_spec::MpiImplementation;

use crate::mca::other_series_name;

/// What the user asked of one run.
pub struct Launch<'a> {
    pub np: Option<u32>,
    pub npernode: Option<u32>,
    /// Open MPI MCA parameters for this run.
    pub mca: &'a [(String, String)],
    /// The program and its arguments.
    pub command: &'a [String],
}

/// `mpiexec` with the cluster's hostfile, in the syntax of its MPI. Open MPI gets
/// `--allow-run-as-root`: needed where the containers run as root, harmless elsewhere. The same line
/// serves Open MPI 4 and 5 (both take `--np`, `--npernode` and `--mca`); a launcher parameter the two
/// name differently (ORTE's `plm_rsh_agent`, PRRTE's `plm_ssh_agent`) is passed under both names,
/// since each series silently ignores the other's and the image's series is not known here.
pub fn mpiexec(mpi: MpiImplementation, hostfile: &str, launch: &Launch) -> Result<Vec<String>, String> {
    let open_mpi = mpi == MpiImplementation::OpenMpi;
    if !open_mpi && !launch.mca.is_empty() {
        return Err("--mca applies to Open MPI only; this cluster runs MPICH or Intel MPI".into());
    }
    let (hostfile_flag, np_flag, per_node_flag) = if open_mpi { ("--hostfile", "--np", "--npernode") } else { ("-f", "-n", "-ppn") };
    let mut args = vec!["mpiexec".to_string(), hostfile_flag.to_string(), hostfile.to_string()];
    if open_mpi {
        args.push("--allow-run-as-root".into());
    }
    for (flag, n) in [(np_flag, launch.np), (per_node_flag, launch.npernode)] {
        if let Some(n) = n {
            args.extend([flag.to_string(), n.to_string()]);
        }
    }
    for (k, v) in launch.mca {
        args.extend(["--mca".into(), k.clone(), v.clone()]);
        if let Some(other) = other_series_name(k) {
            args.extend(["--mca".into(), other.to_string(), v.clone()]);
        }
    }
    args.extend(launch.command.iter().cloned());
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_mpi_and_hydra_command_lines() {
        let command = ["hostname".to_string()];
        let mca = [("btl".to_string(), "tcp,self".to_string())];
        let launch = Launch { np: Some(3), npernode: Some(1), mca: &mca, command: &command };
        assert_eq!(
            mpiexec(MpiImplementation::OpenMpi, "/h", &launch).unwrap(),
            ["mpiexec", "--hostfile", "/h", "--allow-run-as-root", "--np", "3", "--npernode", "1", "--mca", "btl", "tcp,self", "hostname"]
        );
        let plain = Launch { mca: &[], ..launch };
        assert_eq!(mpiexec(MpiImplementation::Intel, "/h", &plain).unwrap(), ["mpiexec", "-f", "/h", "-n", "3", "-ppn", "1", "hostname"]);
        assert!(mpiexec(MpiImplementation::Mpich, "/h", &Launch { mca: &mca, ..plain }).unwrap_err().contains("Open MPI only"));
        let bare = Launch { np: None, npernode: None, mca: &[], command: &command };
        assert_eq!(mpiexec(MpiImplementation::OpenMpi, "/h", &bare).unwrap(), ["mpiexec", "--hostfile", "/h", "--allow-run-as-root", "hostname"]);
    }

    #[test]
    fn launcher_parameters_reach_open_mpi_4_and_5() {
        let command = ["hostname".to_string()];
        let mca = [("hwloc_base_binding_policy".to_string(), "core".to_string()), ("prte_keep_fqdn_hostnames".to_string(), "1".to_string())];
        let launch = Launch { np: None, npernode: None, mca: &mca, command: &command };
        let args = mpiexec(MpiImplementation::OpenMpi, "/h", &launch).unwrap();
        assert_eq!(
            args[4..],
            ["--mca", "hwloc_base_binding_policy", "core", "--mca", "hwloc_default_binding_policy", "core", "--mca", "prte_keep_fqdn_hostnames", "1",
                "--mca", "orte_keep_fqdn_hostnames", "1", "hostname"]
        );
    }
}
