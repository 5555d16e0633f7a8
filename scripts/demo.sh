#!/usr/bin/env bash
# The main job: installs what kompi's local cluster needs (Debian's Open MPI and OpenSSH, iproute2, a C
# compiler), builds kompi and the example MPI programs, brings up a 4-node local kompi cluster (a master
# and 3 workers, each a network namespace running `kompi init` with sshd), runs the ring and allreduce
# examples across it with Open MPI, and tears it down. Run as root on Debian bookworm.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh run
echo "== building kompi (release) and the examples" >&2
cargo build --release --quiet -p kompi
make --quiet -C examples
kompi=$PWD/target/release/kompi
cluster=demo

trap '"$kompi" local down "$cluster" >/dev/null 2>&1 || true' EXIT
"$kompi" local down "$cluster" >/dev/null
echo "== kompi local up $cluster --workers 3" >&2
"$kompi" local up "$cluster" --workers 3
"$kompi" local status "$cluster"
echo "== ring: a token passed through 4 ranks on 4 nodes" >&2
"$kompi" local run "$cluster" --np 4 --npernode 1 -- "$PWD/examples/bin/ring"
echo "== allreduce: a 1 Mi-element sum over 4 ranks, checked" >&2
"$kompi" local run "$cluster" --np 4 --npernode 1 -- "$PWD/examples/bin/allreduce"
echo "== kompi local down $cluster" >&2
"$kompi" local down "$cluster"
trap - EXIT
