//! MPI launcher defaults, written where each MPI reads them by default, so that a plain
//! `kubectl exec NAME-master -- mpiexec ...` gets them too.

use kompi_spec::MpiImplementation;

/// The start of every file [`home_files`] makes; a file that starts otherwise is the user's and left alone.
pub const FILE_MARKER: &str = "# written by kompi init";

/// A file `kompi init` writes, relative to the running user's home directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HomeFile {
    pub path: &'static str,
    pub content: String,
}

pub struct MpiDefaults<'a> {
    pub mpi: MpiImplementation,
    /// Open MPI's major version (4: ORTE reads the parameters; 5: PRRTE launches, Open MPI runs).
    pub open_mpi_major: u32,
    pub interface: &'a str,
    pub hostfile: &'a str,
    pub extra: &'a [(String, String)],
}

/// The files with the cluster's MPI defaults. MPICH and Intel MPI read only the environment, which
/// render puts in the pod spec (see [`launcher_env`]).
pub fn home_files(d: &MpiDefaults) -> Vec<HomeFile> {
    if d.mpi != MpiImplementation::OpenMpi {
        return Vec::new();
    }
    let if_ = d.interface;
    let header = format!("{FILE_MARKER} for Open MPI {}.x\n", d.open_mpi_major);
    // The nodes of a local cluster, and pods that share a Kubernetes node, see the same CPUs; bound
    // per node, each node's first rank would sit on core 0 and they would share it (ms latencies).
    if d.open_mpi_major >= 5 {
        let ompi = [("btl", "tcp,self,sm"), ("btl_tcp_if_include", if_)];
        let prte = [
            ("prte_keep_fqdn_hostnames", "1"),
            ("prte_default_hostfile", d.hostfile),
            ("oob_tcp_if_include", if_),
            ("plm_ssh_agent", "ssh"),
            ("hwloc_default_binding_policy", "none"),
        ];
        vec![
            HomeFile { path: ".openmpi/mca-params.conf", content: params_file(&header, &ompi, d.extra) },
            HomeFile { path: ".prte/mca-params.conf", content: params_file(&header, &prte, &[]) },
        ]
    } else {
        let ompi = [
            ("btl", "tcp,self,vader"),
            ("btl_tcp_if_include", if_),
            ("oob_tcp_if_include", if_),
            // containers usually forbid the cross-memory attach vader would use
            ("btl_vader_single_copy_mechanism", "none"),
            ("orte_keep_fqdn_hostnames", "true"),
            ("orte_default_hostfile", d.hostfile),
            ("plm_rsh_agent", "ssh"),
            ("hwloc_base_binding_policy", "none"),
        ];
        vec![HomeFile { path: ".openmpi/mca-params.conf", content: params_file(&header, &ompi, d.extra) }]
    }
}

/// `key = value` lines: kompi's defaults, except those the user's parameters set, then the user's.
fn params_file(header: &str, defaults: &[(&str, &str)], user: &[(String, String)]) -> String {
    let kept = defaults.iter().filter(|(k, _)| !user.iter().any(|(u, _)| u == k)).map(|&(k, v)| (k, v));
    let lines: String = kept.chain(user.iter().map(|(k, v)| (k.as_str(), v.as_str()))).map(|(k, v)| format!("{k} = {v}\n")).collect();
    format!("{header}{lines}")
}

/// Environment the launcher of MPICH / Intel MPI needs, known when rendering (they have no
/// per-user parameter file), plus Open MPI's consent to run as root where the pod does.
pub fn launcher_env(mpi: MpiImplementation, hostfile: &str, runs_as_root: bool) -> Vec<(String, String)> {
    let mut env = Vec::new();
    match mpi {
        MpiImplementation::OpenMpi if runs_as_root => {
            env.push(("OMPI_ALLOW_RUN_AS_ROOT".to_string(), "1".to_string()));
            env.push(("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM".to_string(), "1".to_string()));
        }
        MpiImplementation::OpenMpi => {}
        MpiImplementation::Mpich => {
            env.push(("HYDRA_HOST_FILE".to_string(), hostfile.to_string()));
            env.push(("HYDRA_LAUNCHER".to_string(), "ssh".to_string()));
        }
        MpiImplementation::Intel => {
            env.push(("I_MPI_HYDRA_HOST_FILE".to_string(), hostfile.to_string()));
            env.push(("I_MPI_HYDRA_BOOTSTRAP".to_string(), "ssh".to_string()));
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults(major: u32) -> Vec<HomeFile> {
        home_files(&MpiDefaults {
            mpi: MpiImplementation::OpenMpi,
            open_mpi_major: major,
            interface: "eth0",
            hostfile: "/kube-openmpi/generated/hostfile",
            extra: &[("btl_tcp_eager_limit".into(), "65536".into())],
        })
    }

    #[test]
    fn open_mpi_4_reads_orte_parameters() {
        let files = defaults(4);
        assert_eq!(files.len(), 1);
        let c = &files[0].content;
        assert!(c.starts_with(FILE_MARKER));
        for l in ["btl = tcp,self,vader", "orte_keep_fqdn_hostnames = true", "orte_default_hostfile = /kube-openmpi/generated/hostfile",
            "btl_tcp_if_include = eth0", "btl_tcp_eager_limit = 65536"] {
            assert!(c.lines().any(|x| x == l), "{l}\n{c}");
        }
    }

    #[test]
    fn open_mpi_5_reads_prrte_parameters() {
        let files = defaults(5);
        assert_eq!(files.iter().map(|f| f.path).collect::<Vec<_>>(), vec![".openmpi/mca-params.conf", ".prte/mca-params.conf"]);
        assert!(files[1].content.contains("prte_keep_fqdn_hostnames = 1"));
        assert!(!files.iter().any(|f| f.content.contains("orte_")));
        assert!(files[1].content.lines().any(|l| l == "hwloc_default_binding_policy = none"));
    }

    #[test]
    fn ranks_are_not_bound_unless_the_user_asks() {
        let c = &defaults(4)[0].content;
        assert!(c.lines().any(|l| l == "hwloc_base_binding_policy = none"), "{c}");
        let user = [("hwloc_base_binding_policy".to_string(), "core".to_string()), ("btl".to_string(), "tcp,self".to_string())];
        let files = home_files(&MpiDefaults { mpi: MpiImplementation::OpenMpi, open_mpi_major: 4, interface: "eth0", hostfile: "/h", extra: &user });
        let c = &files[0].content;
        for (key, value) in [("hwloc_base_binding_policy", "core"), ("btl", "tcp,self")] {
            let set: Vec<&str> = c.lines().filter_map(|l| l.strip_prefix(&format!("{key} = "))).collect();
            assert_eq!(set, [value], "{c}");
        }
    }

    #[test]
    fn hydra_reads_the_environment() {
        assert!(home_files(&MpiDefaults { mpi: MpiImplementation::Mpich, open_mpi_major: 0, interface: "eth0", hostfile: "/h", extra: &[] }).is_empty());
        assert_eq!(launcher_env(MpiImplementation::Mpich, "/h", true)[0], ("HYDRA_HOST_FILE".into(), "/h".into()));
        assert_eq!(launcher_env(MpiImplementation::OpenMpi, "/h", false), vec![]);
        assert_eq!(launcher_env(MpiImplementation::OpenMpi, "/h", true).len(), 2);
    }
}
