//! Helpers of this crate's unit tests.

use kompi_render::inject::Injection;

use crate::api::MPIJob;
use crate::build::Settings;
use crate::job::Job;

/// A valid job from YAML (panics with the problems otherwise).
pub fn job_from_yaml(yaml: &str) -> Job {
    let job: MPIJob = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    crate::validate::validate(&job).unwrap_or_else(|e| panic!("{e}"))
}

pub fn settings() -> Settings {
    Settings {
        injection: Injection { image: "kompi/runtime:0.1.0".into(), pull_policy: "IfNotPresent".into() },
        ssh_port: 2022,
        workers_timeout_seconds: 600,
        workers_timeout_exit: 124,
        gang: None,
    }
}
