//! kompi's local backend: a kompi cluster on this machine, each node a `kompi init` in its own network,
//! UTS and mount namespaces (the same bootstrap as in a pod), joined by veth pairs to a bridge. For
//! trying kompi and debugging MPI programs without Kubernetes, and for CI runs of real Open MPI.

mod error;
mod files;
pub mod net;
mod node;
pub mod ops;
pub mod plan;
pub mod proc;
mod signals;
pub mod state;

pub use error::LocalError;
pub use ops::{Context, Outcome, RunOptions, UpOptions, down, exec, list, run, status, up};
pub use plan::Subnet;
