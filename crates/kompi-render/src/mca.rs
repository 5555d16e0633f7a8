//! MPI launcher defaults, written where each MPI reads them by default, so that a plain
//! `kubectl exec NAME-master -- mpiexec ...` gets them too.

use kompi_spec::MpiImplementation;
use kompi_spec::contract::POD_INTERFACE;

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

/// Launcher parameters that Open MPI 4 (ORTE) and Open MPI 5 (PRRTE) name differently, as (ORTE, PRRTE).
/// Each series silently ignores the other's names: `orte_keep_fqdn_hostnames` on 5.x does nothing
/// (mpi-operator's #842). Checked against `ompi_info --all` 4.1.4 and `prte_info --all` 3.0.8.
const LAUNCHER_RENAMES: [(&str, &str); 12] = [
    ("orte_keep_fqdn_hostnames", "prte_keep_fqdn_hostnames"),
    ("orte_set_default_slots", "prte_set_default_slots"),
    ("orte_default_hostfile", "prte_default_hostfile"),
    ("plm_rsh_agent", "plm_ssh_agent"),
    ("plm_rsh_args", "plm_ssh_args"),
    ("plm_rsh_no_tree_spawn", "plm_ssh_no_tree_spawn"),
    ("plm_rsh_num_concurrent", "plm_ssh_num_concurrent"),
    ("oob_tcp_if_include", "prte_if_include"),
    ("oob_tcp_if_exclude", "prte_if_exclude"),
    ("hwloc_base_binding_policy", "hwloc_default_binding_policy"),
    ("rmaps_base_mapping_policy", "rmaps_default_mapping_policy"),
    ("rmaps_base_ranking_policy", "rmaps_default_ranking_policy"),
];

/// PRRTE's frameworks: Open MPI 5 reads their parameters in `~/.prte/mca-params.conf` (or from
/// `mpiexec --mca`), never in `~/.openmpi/mca-params.conf`.
const PRRTE_PREFIXES: [&str; 21] = [
    "prte_", "plm_", "ras_", "rmaps_", "odls_", "oob_", "errmgr_", "ess_", "filem_", "grpcomm_", "iof_", "rml_", "routed_",
    "rtc_", "schizo_", "state_", "prtedl_", "prtereachable_", "prtebacktrace_", "prteinstalldirs_", "hwloc_default_",
];

/// The name Open MPI `major` reads for the parameter `name`: an ORTE name becomes its PRRTE name on
/// 5.x and a PRRTE name its ORTE name on 4.x; every other name is kept.
pub fn name_for_open_mpi(major: u32, name: &str) -> &str {
    let renamed = if major >= 5 {
        LAUNCHER_RENAMES.iter().find(|(orte, _)| *orte == name).map(|(_, prrte)| *prrte)
    } else {
        LAUNCHER_RENAMES.iter().find(|(_, prrte)| *prrte == name).map(|(orte, _)| *orte)
    };
    renamed.unwrap_or(name)
}

/// The other series' name of a launcher parameter that Open MPI 4 and 5 name differently.
pub fn other_series_name(name: &str) -> Option<&'static str> {
    LAUNCHER_RENAMES.iter().find_map(|&(orte, prrte)| if name == orte { Some(prrte) } else if name == prrte { Some(orte) } else { None })
}

fn read_by_prrte(name: &str) -> bool {
    PRRTE_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// The files with the cluster's MPI defaults. MPICH and Intel MPI read only the environment, which
/// render puts in the pod spec (see [`launcher_env`]). The user's parameters (`extra`) take the names
/// the detected Open MPI reads, and on 5.x go to the file of the part that reads them.
pub fn home_files(d: &MpiDefaults) -> Vec<HomeFile> {
    if d.mpi != MpiImplementation::OpenMpi {
        return Vec::new();
    }
    let if_ = d.interface;
    let header = format!("{FILE_MARKER} for Open MPI {}.x\n", d.open_mpi_major);
    let extra: Vec<(String, String)> = d.extra.iter().map(|(k, v)| (name_for_open_mpi(d.open_mpi_major, k).to_string(), v.clone())).collect();
    // The nodes of a local cluster, and pods that share a Kubernetes node, see the same CPUs; bound
    // per node, each node's first rank would sit on core 0 and they would share it (ms latencies).
    if d.open_mpi_major >= 5 {
        let ompi = [("btl", "tcp,self,sm"), ("btl_tcp_if_include", if_)];
        let prte = [
            ("prte_keep_fqdn_hostnames", "1"),
            ("prte_default_hostfile", d.hostfile),
            ("prte_if_include", if_),
            ("plm_ssh_agent", "ssh"),
            ("hwloc_default_binding_policy", "none"),
        ];
        let (prte_extra, ompi_extra): (Vec<_>, Vec<_>) = extra.into_iter().partition(|(k, _)| read_by_prrte(k));
        vec![
            HomeFile { path: ".openmpi/mca-params.conf", content: params_file(&header, &ompi, &ompi_extra) },
            HomeFile { path: ".prte/mca-params.conf", content: params_file(&header, &prte, &prte_extra) },
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
        vec![HomeFile { path: ".openmpi/mca-params.conf", content: params_file(&header, &ompi, &extra) }]
    }
}

/// `key = value` lines: kompi's defaults, except those the user's parameters set, then the user's.
fn params_file(header: &str, defaults: &[(&str, &str)], user: &[(String, String)]) -> String {
    let kept = defaults.iter().filter(|(k, _)| !user.iter().any(|(u, _)| u == k)).map(|&(k, v)| (k, v));
    let lines: String = kept.chain(user.iter().map(|(k, v)| (k.as_str(), v.as_str()))).map(|(k, v)| format!("{k} = {v}\n")).collect();
    format!("{header}{lines}")
}

/// Environment the launcher of MPICH / Intel MPI needs, known when rendering (they have no
/// per-user parameter file), plus Open MPI's consent to run as root where the pod does. Hydra's
/// proxies on the workers call mpiexec back at the master's host name unless told the interface: the
/// name (`NAME-master`) resolves only on the master, so they get its `eth0` address instead.
pub fn launcher_env(mpi: MpiImplementation, hostfile: &str, runs_as_root: bool) -> Vec<(String, String)> {
    let pairs: &[(&str, &str)] = match mpi {
        MpiImplementation::OpenMpi if runs_as_root => &[("OMPI_ALLOW_RUN_AS_ROOT", "1"), ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")],
        MpiImplementation::OpenMpi => &[],
        MpiImplementation::Mpich => &[("HYDRA_HOST_FILE", hostfile), ("HYDRA_LAUNCHER", "ssh"), ("HYDRA_IFACE", POD_INTERFACE)],
        MpiImplementation::Intel => &[("I_MPI_HYDRA_HOST_FILE", hostfile), ("I_MPI_HYDRA_BOOTSTRAP", "ssh"), ("I_MPI_HYDRA_IFACE", POD_INTERFACE)],
    };
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
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
        for l in ["prte_keep_fqdn_hostnames = 1", "prte_default_hostfile = /kube-openmpi/generated/hostfile", "prte_if_include = eth0",
            "plm_ssh_agent = ssh", "hwloc_default_binding_policy = none"] {
            assert!(files[1].content.lines().any(|x| x == l), "{l}\n{}", files[1].content);
        }
        assert!(files[0].content.lines().any(|l| l == "btl_tcp_eager_limit = 65536"), "{}", files[0].content);
        // Neither ORTE's names nor the deprecated oob_tcp_if_include synonym.
        assert!(!files.iter().any(|f| f.content.contains("orte_") || f.content.contains("oob_tcp")), "{files:?}");
    }

    #[test]
    fn the_users_parameters_take_the_names_of_the_detected_series() {
        let user = [
            ("hwloc_base_binding_policy".to_string(), "core".to_string()),
            ("plm_rsh_no_tree_spawn".to_string(), "1".to_string()),
            ("rmaps_default_mapping_policy".to_string(), "node".to_string()),
            ("btl_tcp_eager_limit".to_string(), "65536".to_string()),
        ];
        let files = |major| home_files(&MpiDefaults { mpi: MpiImplementation::OpenMpi, open_mpi_major: major, interface: "eth0", hostfile: "/h", extra: &user });
        let lines = |text: &str, key: &str| text.lines().filter(|l| l.starts_with(&format!("{key} = "))).map(str::to_string).collect::<Vec<_>>();
        let five = files(5);
        let (ompi, prte) = (&five[0].content, &five[1].content);
        assert_eq!(lines(prte, "hwloc_default_binding_policy"), ["hwloc_default_binding_policy = core"], "{prte}");
        assert_eq!(lines(prte, "plm_ssh_no_tree_spawn"), ["plm_ssh_no_tree_spawn = 1"], "{prte}");
        assert_eq!(lines(prte, "rmaps_default_mapping_policy"), ["rmaps_default_mapping_policy = node"], "{prte}");
        assert_eq!(lines(ompi, "btl_tcp_eager_limit"), ["btl_tcp_eager_limit = 65536"], "{ompi}");
        assert!(!ompi.contains("hwloc") && !ompi.contains("plm_") && !prte.contains("btl"), "{ompi}\n{prte}");
        let four = &files(4)[0].content;
        assert_eq!(lines(four, "hwloc_base_binding_policy"), ["hwloc_base_binding_policy = core"], "{four}");
        assert_eq!(lines(four, "plm_rsh_no_tree_spawn"), ["plm_rsh_no_tree_spawn = 1"], "{four}");
        assert_eq!(lines(four, "rmaps_base_mapping_policy"), ["rmaps_base_mapping_policy = node"], "{four}");
        assert!(!four.contains("hwloc_default_") && !four.contains("rmaps_default_"), "{four}");
    }

    #[test]
    fn renamed_parameters_pair_up_both_ways() {
        assert_eq!(name_for_open_mpi(5, "orte_keep_fqdn_hostnames"), "prte_keep_fqdn_hostnames");
        assert_eq!(name_for_open_mpi(4, "prte_keep_fqdn_hostnames"), "orte_keep_fqdn_hostnames");
        assert_eq!(name_for_open_mpi(5, "prte_keep_fqdn_hostnames"), "prte_keep_fqdn_hostnames");
        assert_eq!(name_for_open_mpi(5, "btl"), "btl");
        assert_eq!(other_series_name("plm_rsh_agent"), Some("plm_ssh_agent"));
        assert_eq!(other_series_name("plm_ssh_agent"), Some("plm_rsh_agent"));
        assert_eq!(other_series_name("btl_tcp_if_include"), None);
        for (orte, prrte) in LAUNCHER_RENAMES {
            assert!(read_by_prrte(prrte) && !orte.starts_with("prte_"), "{orte} -> {prrte}");
        }
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
        assert!(launcher_env(MpiImplementation::Mpich, "/h", false).contains(&("HYDRA_IFACE".into(), "eth0".into())));
        assert!(launcher_env(MpiImplementation::Intel, "/h", false).contains(&("I_MPI_HYDRA_IFACE".into(), "eth0".into())));
        assert_eq!(launcher_env(MpiImplementation::OpenMpi, "/h", false), vec![]);
        assert_eq!(launcher_env(MpiImplementation::OpenMpi, "/h", true).len(), 2);
    }
}
