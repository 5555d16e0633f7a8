//! kompi's pure core, first half: values in, a validated [`ClusterSpec`] out. No I/O, no Kubernetes
//! client; callers read files and pass their text.

mod build;
pub mod cluster;
pub mod contract;
mod error;
pub mod k8s;
pub mod limits;
pub mod pss;
pub mod quantity;
pub mod schema;
pub mod set;
pub mod sshkey;
pub mod tree;
mod validate;
pub mod values;
mod word;

pub use build::{DEFAULTS_YAML, Loaded, Request, Source, default_slots, load};
pub use cluster::*;
pub use error::{ErrorKind, ExitStatusOf, Problem, SpecError, StatusMeanings};
pub use validate::{check_mca, mca_parameter};
