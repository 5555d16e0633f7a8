#!/usr/bin/env bash
# Runs every benchmark in order and prints their figures; progress goes to stderr.
#
#   bench/run-all.sh                 # all six (as root; the last three need the testbed up)
#   bench/run-all.sh > figures.md    # figures only in the file
#   KOMPI=/path/to/kompi bench/run-all.sh
#
# Each script cleans up what it created, also when it fails or is interrupted. A script that fails
# does not stop the others; the exit status is 1 if any failed. The testbed benchmarks exit 2 when the
# API server does not answer (KUBECONFIG, default /tmp/kompi-testbed/kubeconfig): counted as skipped.
set -u
cd "$(dirname "$0")"

scripts=(static_binary.py local_launch.py local_pingpong.py local_up.py hostfile_freshness.py kube_up.py kube_run.py kube_mpi.py)
failed=() skipped=()
for script in "${scripts[@]}"; do
    echo "=== $script (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    python3 "$script"
    status=$?
    case $status in
        0) ;;
        2) skipped+=("$script") ;;
        *) failed+=("$script (exit $status)") ;;
    esac
    echo
    # Ctrl-C ends the whole run, not just the current script (which has cleaned up after itself).
    [[ $status -eq 130 ]] && break
done
[[ ${#skipped[@]} -eq 0 ]] || echo "skipped: ${skipped[*]}" >&2
[[ ${#failed[@]} -eq 0 ]] || { echo "failed: ${failed[*]}" >&2; exit 1; }
