//! kompi's Kubernetes edge: a rendered cluster applied through the API with kube-rs, waited on with a
//! watch, used through exec, scaled, read and removed. The CLI's `up`, `run`, `exec`, `status`, `list`,
//! `scale`, `logs` and `down`.

pub mod apply;
pub mod client;
pub mod cluster;
mod error;
pub mod nodes;
pub mod pods;
pub mod progress;
pub mod remote;
pub mod run;
pub mod wait;

pub use client::{Connection, Target, connect};
pub use error::KubeError;
