#!/usr/bin/env python3
"""What `kompi run` costs on a ready cluster, next to typing `kubectl exec NAME-master -- mpiexec ...` by hand.

One cluster (`kompi up kbr --set mpiWorkers.num=W --wait`, default W = 3) in a namespace of this
benchmark's own. Then, alternating run by run (kompi first on even runs, kubectl first on odd ones),
--reps times each after one unrecorded warm-up of each:

kompi run     `kompi run kbr -n NS --np W+1 --npernode 1 -- hostname`: connects, reads the master pod and
              the workers' StatefulSet, watches the pods until the cluster is runnable (here at once),
              execs `kompi launch -- mpiexec ...` in the master and streams its output.
kubectl exec  `kubectl exec kbr-master -c mpi-master -- mpiexec --hostfile /kube-openmpi/generated/hostfile
              --allow-run-as-root --np W+1 --npernode 1 hostname`: the same mpiexec line, by hand.

Each run's output must be the W+1 distinct host names. The table shows the medians, their difference,
and the median of the paired differences (each kompi run minus the kubectl run next to it). mpiexec
itself (ssh to every worker) varies by far more than the difference, so the fixed costs are measured
alone too, alternating, --fixed-reps each:

kompi exec      `kompi exec kbr -n NS -- true`
kubectl exec    `kubectl exec kbr-master -c mpi-master -- true`
kompi launch    `kubectl exec kbr-master -c mpi-master -- kompi launch -- true` (what launch adds in the pod)

Needs the testbed (testbed/testbed.sh up) with kompi/runtime:0.1.0 imported, kubectl and
target/release/kompi.
"""

import argparse
import contextlib
import sys

from benchlib import (header, kompi_bin, loadavg, log, main_guard, median, ms, ratio, run, table, testbed_kube, timed)

CLUSTER = "kbr"
HOSTFILE = "/kube-openmpi/generated/hostfile"


def alternate(reps: int, sides: dict, check) -> dict[str, list[float]]:
    """Runs each side --reps times, taking turns (the order flips every repetition); wall times."""
    names = list(sides)
    times: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(reps):
        for name in (names if rep % 2 == 0 else list(reversed(names))):
            t, p = timed(sides[name], timeout=120)
            check(name, p)
            times[name].append(t)
    return times


def paired(a: list[float], b: list[float]) -> float:
    return median([x - y for x, y in zip(a, b)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=3, help="workers of the cluster (default %(default)s)")
    ap.add_argument("--reps", type=int, default=21, help="runs of each side with mpiexec (default %(default)s)")
    ap.add_argument("--fixed-reps", type=int, default=31, help="runs of each fixed-cost side (default %(default)s)")
    args = ap.parse_args()
    kube = testbed_kube()
    if kube is None:
        print("kube_run: skipped, the testbed's API server does not answer", file=sys.stderr)
        return 2
    kompi = kompi_bin()
    header("kube_run: kompi run against kubectl exec ... mpiexec on a ready cluster")
    with contextlib.ExitStack() as stack:
        ns = kube.create_namespace("kompi-bench-run")
        stack.callback(kube.delete_namespace, ns)
        kc = ["--kubeconfig", kube.kubeconfig]
        stack.callback(lambda: run([kompi, "down", CLUSTER, "-n", ns, *kc], check=False))
        log(f"kompi up {CLUSTER} with {args.workers} workers in {ns}")
        run([kompi, "up", CLUSTER, "-n", ns, "--set", f"mpiWorkers.num={args.workers}", "--wait", "--timeout", "300s", *kc])
        np = str(args.workers + 1)
        kubectl_exec = ["kubectl", *kc, "-n", ns, "exec", f"{CLUSTER}-master", "-c", "mpi-master", "--"]
        with_mpiexec = {
            "kompi run": [kompi, "run", CLUSTER, "-n", ns, *kc, "--np", np, "--npernode", "1", "--", "hostname"],
            "kubectl exec mpiexec": [*kubectl_exec, "mpiexec", "--hostfile", HOSTFILE, "--allow-run-as-root", "--np", np, "--npernode", "1", "hostname"],
        }
        fixed = {
            "kompi exec": [kompi, "exec", CLUSTER, "-n", ns, *kc, "--", "true"],
            "kubectl exec": [*kubectl_exec, "true"],
            "kubectl exec kompi launch": [*kubectl_exec, "kompi", "launch", "--", "true"],
        }

        def check(name, p):
            hosts = sorted(set(p.stdout.split()))
            if p.returncode != 0 or (name in with_mpiexec and len(hosts) != args.workers + 1):
                raise RuntimeError(f"{name}: exit {p.returncode}, hosts {hosts}: {p.stderr.strip()[:300]}")

        log("warm-up")
        alternate(1, with_mpiexec, check)
        alternate(1, fixed, check)
        load_before = loadavg()
        log(f"{args.reps} runs of each with mpiexec, alternating")
        times = alternate(args.reps, with_mpiexec, check)
        log(f"{args.fixed_reps} runs of each fixed cost, alternating")
        fixed_times = alternate(args.fixed_reps, fixed, check)
        load_after = loadavg()

    k, c = times["kompi run"], times["kubectl exec mpiexec"]
    print(f"## kompi run against kubectl exec mpiexec ({args.workers} workers, --np {args.workers + 1} --npernode 1 hostname; "
          f"medians of {args.reps}, alternating; load {load_before} -> {load_after})")
    print()
    print(table(["kompi run", "kubectl exec ... mpiexec", "difference of medians", "median of paired differences", "kompi/kubectl"],
                [[ms(median(k)), ms(median(c)), ms(median(k) - median(c)), ms(paired(k, c)), ratio(median(k), median(c))]]))
    print()
    ke, ce, le = fixed_times["kompi exec"], fixed_times["kubectl exec"], fixed_times["kubectl exec kompi launch"]
    print(f"## fixed costs alone (medians of {args.fixed_reps}, alternating)")
    print()
    print(table(["command", "median", "median of paired differences to kubectl exec true"],
                [["kompi exec -- true", ms(median(ke)), ms(paired(ke, ce))],
                 ["kubectl exec -- true", ms(median(ce)), ""],
                 ["kubectl exec -- kompi launch -- true", ms(median(le)), ms(paired(le, ce))]]))
    print()
    print("every run (s): " + "; ".join(f"{n}: " + " ".join(f"{t:.3f}" for t in ts) for n, ts in {**times, **fixed_times}.items()))
    print()
    print(f"load average at end {loadavg()}")
    return 0


if __name__ == "__main__":
    main_guard(main)
