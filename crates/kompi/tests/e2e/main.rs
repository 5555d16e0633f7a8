//! End-to-end tests on the project's real single-node Kubernetes (testbed/): kube-openmpi's README
//! flow with kompi, RBAC against the API server's authorizer, and every `kompi` lifecycle command.
//!
//! Needs root and a testbed that is up with the kompi image imported (what `.ci/run` arranges:
//! `testbed/testbed.sh up` and `testbed/testbed.sh kompi-image --add examples/bin:/opt/kompi/examples`).
//! Skipped, with the reason printed, only when not root.

mod kube_openmpi;
mod lifecycle;
mod support;
