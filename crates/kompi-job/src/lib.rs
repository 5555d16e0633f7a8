//! kompi's MPIJob core, pure: kubeflow's `kubeflow.org/v2beta1` MPIJob as mpi-operator v0.8 serves it
//! (types, CRD, defaults, validation), the objects of one job, its status as a function of the pods
//! observed, and one reconcile's plan. No I/O and no client: `kompi-operator` carries out what this
//! crate decides.
//!
//! MPIJob ─► [`validate`] ─► [`Job`] ─► [`plan`] (objects from [`build`], status from [`status`]) ─► operator

pub mod api;
pub mod build;
pub mod contract;
pub mod crd;
pub mod env;
pub mod gang;
pub mod job;
pub mod managed;
pub mod manifests;
pub mod plan;
pub mod quantity;
pub mod status;
#[cfg(test)]
mod testing;
pub mod validate;

pub use api::{JobStatus, MPIJob, MPIJobSpec};
pub use job::Job;
pub use plan::{Plan, plan};
pub use validate::{Invalid, validate};
