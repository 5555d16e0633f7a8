//! End-to-end tests on the project's real single-node Kubernetes (testbed/): kube-openmpi's README
//! flow with kompi, RBAC against the API server's authorizer, every `kompi` lifecycle command, and
//! Open MPI 5 and MPICH from the Debian trixie images.
//!
//! Needs root and a testbed that is up with the kompi image imported (what `.ci/run` arranges:
//! `testbed/testbed.sh up`, `testbed/testbed.sh kompi-image --add examples/bin:/opt/kompi/examples` and the
//! same for `--suite trixie` and `--suite trixie --mpi mpich` with `testbed/testbed.sh examples`' binaries).
//! Skipped, with the reason printed, only when not root.

mod flavours;
mod kube_openmpi;
mod lifecycle;
mod support;
