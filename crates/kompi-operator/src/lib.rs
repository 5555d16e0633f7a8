//! kompi's MPIJob operator, the edge: the controller that carries out what `kompi-job` decides (it
//! watches MPIJobs and the objects they own, creates and server-side applies them with field manager
//! `kompi-operator`, writes the status and records events), its installation, and the client side of
//! `kompi job`. It is the only holder of API credentials; the jobs' pods get none.

pub mod controller;
mod error;
mod http;
pub mod install;
pub mod jobs;
mod podgroup;
pub mod leader;
pub mod metrics;

pub use error::OperatorError;
