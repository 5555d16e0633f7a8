//! End-to-end tests on the project's real single-node Kubernetes (testbed/): kube-openmpi's README
//! flow with kompi, RBAC against the API server's authorizer, every `kompi` lifecycle command, Open MPI 5
//! and MPICH from the Debian trixie images, the MPIJob operator running in-cluster, and a user's bullseye
//! image without kompi (injected).
//!
//! Needs root and a testbed that is up with the kompi image imported (what `.ci/run` arranges:
//! `testbed/testbed.sh up`, `testbed/testbed.sh kompi-image --add examples/bin:/opt/kompi/examples` and the
//! same for `--suite trixie` and `--suite trixie --mpi mpich` with `testbed/testbed.sh examples`' binaries).
//! Reported as ignored only when not root.

mod flavours;
#[path = "../harness/mod.rs"]
mod harness;
mod kube_openmpi;
mod lifecycle;
mod operations;
mod operator;
mod support;
mod user_image;

use flavours::*;
use kube_openmpi::*;
use lifecycle::*;
use operations::*;
use operator::*;
use user_image::*;

fn main() {
    harness::main(harness::tests![support::root => [
        the_readme_flow_works_unchanged,
        one_shot_returns_the_command_status_and_scales_down_only_on_success,
        non_root_clusters_run_the_same_hello,
        rbac_grants_exactly_what_the_sidecar_needs_and_mpi_containers_have_no_token,
        allreduce_from_the_examples_runs_across_the_pods,
        a_restricted_cluster_meets_the_profile_and_runs_allreduce_across_its_pods,
        every_golden_fixture_passes_the_api_servers_validation,
        up_run_update_scale_and_down,
        a_worker_deleted_during_a_run_fails_it_and_is_named,
        ctrl_c_and_a_vanished_client_end_the_run_everywhere,
        a_broken_image_is_reported_within_the_timeout,
        run_right_after_up_without_wait_waits_for_the_cluster,
        bad_targets_get_one_clear_line_and_distinct_statuses,
        kubectl_runs_kompi_as_a_plugin,
        open_mpi_5_runs_the_examples_across_four_pods,
        mpich_runs_the_examples_across_four_pods,
        open_mpi_5_takes_kube_openmpis_command_and_prrtes_parameters,
        open_mpi_5_one_shot_job_runs_and_reports,
        mpich_one_shot_job_runs_and_reports,
        open_mpi_5_runs_as_uid_1000,
        mpich_runs_as_uid_1000,
        install_gives_the_operator_exactly_the_permissions_it_uses,
        an_mpijob_runs_allreduce_across_three_workers,
        a_failing_launcher_fails_the_job_with_its_exit_code,
        a_worker_deleted_mid_run_fails_the_job_naming_it,
        a_non_root_job_succeeds,
        invalid_mpijobs_fail_with_the_validation_message_and_no_pods,
        job_submit_wait_follows_the_job_and_exits_with_its_result,
        the_job_finishes_correctly_across_an_operator_restart,
        deleting_the_mpijob_removes_everything_it_made,
        workers_that_never_answer_fail_the_job_naming_them,
        an_open_mpi_5_mpijob_runs_its_ranks_on_the_workers,
        an_mpich_mpijob_runs_its_ranks_on_the_workers,
        a_bullseye_user_image_without_kompi_runs_allreduce_across_three_workers,
        a_bullseye_user_image_without_kompi_runs_a_one_shot_job,
        a_bullseye_user_image_without_kompi_runs_an_mpijob_as_uid_1000,
        a_failed_launcher_restarts_the_run_until_the_backoff_limit,
        past_its_active_deadline_a_job_is_stopped_and_fails,
        a_finished_job_and_all_it_made_are_deleted_after_its_ttl,
        clean_pod_policy_all_and_none_apply_to_launcher_and_workers_alike,
        kueue_suspends_admits_preempts_and_readmits_an_mpijob,
        the_standby_takes_over_a_running_job_when_the_leader_is_killed,
        the_operator_may_only_read_and_renew_its_own_lease,
    ]]);
}
