#!/usr/bin/env bash
# Installs what the tests need and runs every test: unit tests of the benchmarks' helpers; unit, golden
# and property tests of the pure core;
# real sshd, Open MPI and network namespaces (kompi init, the local cluster); then, on the project's
# own single-node Kubernetes (testbed/), the hostfile watcher against a real API server and the
# end-to-end suite; last, with the testbed grown to three nodes, the node faults (e2e_nodes). Run as
# root on Debian bookworm. Slow setup is cached, so a warm run is quick: the Kubernetes binaries and
# image root filesystems under ~/.cache/kompi, cargo's build directory under
# /var/cache/kompi (outside root's private home: tests run kompi as an unprivileged user too).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  export CARGO_TARGET_DIR=/var/cache/kompi/target
  install -d -m 0755 /var/cache/kompi "$CARGO_TARGET_DIR"
fi
started=$SECONDS
step() { echo "== [$((SECONDS - started))s] $*" >&2; }

step "installing dependencies (Debian packages, the testbed's Kubernetes binaries, a test user)"
scripts/install-deps.sh test

step "unit tests of the benchmarks' helpers (counting proxy, timeouts, signals)"
python3 -m unittest discover -s bench -p 'test_*.py'

step "building the static kompi (for the runtime image, which injects it into other images) and the example MPI programs"
scripts/static-kompi.sh >/dev/null
make --quiet -C examples

step "building the runtime images with the examples (bookworm's Open MPI 4; trixie's Open MPI 5 and MPICH), starting the testbed"
testbed/testbed.sh kompi-image --add examples/bin:/opt/kompi/examples
for mpi in openmpi mpich; do   # the examples compiled against each image's own MPI, in a chroot of its suite
  examples=$(testbed/testbed.sh examples --suite trixie --mpi $mpi)
  testbed/testbed.sh kompi-image --suite trixie --mpi $mpi --add "$examples:/opt/kompi/examples"
done
step "a user's own image without kompi: Debian bullseye (Open MPI 4.1.0, glibc 2.31) as mpi-operator's base image is built"
examples=$(testbed/testbed.sh examples --suite bullseye)
testbed/testbed.sh image kompi-e2e/bullseye-user:1 --suite bullseye --user mpiuser openmpi-bin openssh-server --add "$examples:/opt/examples"
testbed/testbed.sh kompi-rootfs >/dev/null   # the static binary's test runs kompi in it (and in the bullseye rootfs)
trap 'step "stopping the testbed"; testbed/testbed.sh down' EXIT
testbed/testbed.sh up

step "doc tests of the values model (a misspelt values key must not compile)"
cargo test --quiet --doc -p kompi-spec

step "running every test (the e2e suite included)"
# This machine has all that the tests need (root, the test user, the testbed): a test that finds a need
# unmet fails instead of being reported as ignored, so the run ends with 0 skipped or fails.
export KOMPI_TESTS_REQUIRE_ALL=1
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --features kompi/e2e --no-fail-fast --test-threads 2 -E 'not binary(e2e_restart) and not binary(e2e_nodes) and not binary(e2e_gang)'
  step "gang scheduling: PodGroups for Volcano and scheduler-plugins (alone: it reinstalls the operator the e2e suite uses)"
  cargo nextest run -p kompi --features e2e --test e2e_gang
  step "restarting the API server under a running cluster (alone: it disturbs every other test)"
  cargo nextest run -p kompi --features e2e --test e2e_restart
  step "three nodes: node loss, a killed rank, sshd killed, a drain (one at a time: a fault hits every pod of its node)"
  testbed/testbed.sh up --nodes 3
  cargo nextest run -p kompi --features e2e --test e2e_nodes --no-capture   # one at a time, printing each fault's figures
else
  node_tests=(a_cluster_spread a_node_stopped a_node_cut_off a_rank_killed sshd_killed a_drain_is_blocked)   # e2e_nodes' tests
  cargo test --workspace --features kompi/e2e --no-fail-fast -- --skip across_an_api_server_restart "${node_tests[@]/#/--skip=}" \
    --skip with_volcano_a_job --skip with_coscheduling_a_job
  cargo test -p kompi --features e2e --test e2e_gang
  cargo test -p kompi --features e2e --test e2e_restart
  testbed/testbed.sh up --nodes 3
  cargo test -p kompi --features e2e --test e2e_nodes -- --test-threads 1 --nocapture
fi
step "all tests passed"
