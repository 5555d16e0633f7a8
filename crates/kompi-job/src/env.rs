//! The launcher's environment: what mpi-operator sets for each implementation, with Open MPI's settings
//! under both the ORTE names (Open MPI 4) and the PRRTE names (Open MPI 5, which ignores `orte_*`: the
//! hostfile, FQDN host names and the ssh agent would silently not apply, mpi-operator #842). Which
//! parameters Open MPI 5 renames, and what Hydra and a root Open MPI need, is render's (`mca`), as for
//! kompi's clusters.

use kompi_render::mca::{launcher_env as mpi_launcher_env, other_series_name};
use kompi_spec::MpiImplementation;

use crate::contract::HOSTFILE_PATH;
use crate::job::Job;

/// Variables for the launcher's first container; those the user sets keep the user's value.
pub fn launcher_env(job: &Job, runs_as_root: bool) -> Vec<(String, String)> {
    let slots = job.slots_per_worker.to_string();
    let mut env: Vec<(String, String)> = Vec::new();
    match job.mpi {
        MpiImplementation::OpenMpi => {
            let params = [("orte_keep_fqdn_hostnames", "true"), ("orte_default_hostfile", HOSTFILE_PATH), ("plm_rsh_agent", "ssh"), ("orte_set_default_slots", &slots)];
            for (name, value) in params {
                env.push((format!("OMPI_MCA_{name}"), value.to_string()));
                env.extend(other_series_name(name).map(|prrte| (format!("PRTE_MCA_{prrte}"), value.to_string())));
            }
        }
        // As mpi-operator: Intel MPI places `slotsPerWorker` ranks on each host.
        MpiImplementation::Intel => env.push(("I_MPI_PERHOST".into(), slots)),
        MpiImplementation::Mpich => {}
    }
    env.extend(mpi_launcher_env(job.mpi, HOSTFILE_PATH, runs_as_root));
    if !job.run_launcher_as_worker {
        // As mpi-operator: a launcher that runs no ranks must not take GPUs by mistake.
        env.push(("NVIDIA_VISIBLE_DEVICES".into(), String::new()));
        env.push(("NVIDIA_DRIVER_CAPABILITIES".into(), String::new()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::job_from_yaml;

    fn job(extra: &str) -> Job {
        job_from_yaml(&format!(
            "metadata: {{name: pi, namespace: hpc}}\nspec:\n  slotsPerWorker: 4\n{extra}  mpiReplicaSpecs:\n    Launcher:\n      template: {{spec: {{containers: [{{name: l, command: [mpirun]}}]}}}}\n"
        ))
    }

    fn get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn open_mpi_4_and_5_both_find_their_settings() {
        let env = launcher_env(&job(""), false);
        for (orte, prrte) in [
            ("OMPI_MCA_orte_keep_fqdn_hostnames", "PRTE_MCA_prte_keep_fqdn_hostnames"),
            ("OMPI_MCA_orte_default_hostfile", "PRTE_MCA_prte_default_hostfile"),
            ("OMPI_MCA_plm_rsh_agent", "PRTE_MCA_plm_ssh_agent"),
            ("OMPI_MCA_orte_set_default_slots", "PRTE_MCA_prte_set_default_slots"),
        ] {
            assert!(get(&env, orte).is_some() && get(&env, orte) == get(&env, prrte), "{orte} / {prrte}");
        }
        assert_eq!(get(&env, "OMPI_MCA_orte_set_default_slots"), Some("4"));
        assert_eq!(get(&env, "OMPI_ALLOW_RUN_AS_ROOT"), None);
        assert_eq!(get(&launcher_env(&job(""), true), "OMPI_ALLOW_RUN_AS_ROOT"), Some("1"));
        assert_eq!(get(&env, "NVIDIA_VISIBLE_DEVICES"), Some(""));
    }

    #[test]
    fn hydra_gets_its_variables() {
        let intel = launcher_env(&job("  mpiImplementation: Intel\n"), true);
        assert_eq!(get(&intel, "I_MPI_HYDRA_HOST_FILE"), Some("/etc/mpi/hostfile"));
        assert_eq!(get(&intel, "I_MPI_PERHOST"), Some("4"));
        let mpich = launcher_env(&job("  mpiImplementation: MPICH\n  runLauncherAsWorker: true\n"), true);
        assert_eq!(get(&mpich, "HYDRA_HOST_FILE"), Some("/etc/mpi/hostfile"));
        assert_eq!(get(&mpich, "NVIDIA_VISIBLE_DEVICES"), None, "a launcher that is a worker may use GPUs");
        assert_eq!(get(&mpich, "OMPI_ALLOW_RUN_AS_ROOT"), None);
    }
}
