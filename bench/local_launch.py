#!/usr/bin/env python3
"""MPI launch time on a local kompi cluster, and kompi's own overhead on top of mpiexec.

1. For N = 2, 4, 8, 16, 32 nodes (`kompi local up` with N-1 workers): the wall time of
   `mpiexec --np N --npernode 1 hostname` started inside the master node (entered as `kompi local
   exec` enters it: nsenter into its network, UTS and mount namespaces), median of --reps, with
   kompi's MCA defaults and with kube-openmpi's `--mca plm_rsh_no_tree_spawn 1` (every orted started
   over ssh by mpiexec itself instead of a tree of ssh sessions). The two settings alternate run by
   run, so drifting machine load hits both alike.
2. kompi's overhead: `kompi local run NAME --np 4 --npernode 1 -- hostname` against the same
   mpiexec line typed inside the master, alternating, median of --overhead-reps each; then the fixed
   cost alone, `kompi local exec NAME -- true` against `nsenter ... true`, which is not drowned in
   mpiexec's own run-to-run spread.

Needs root, Open MPI and sshd (scripts/install-deps.sh), target/release/kompi.
"""

import argparse

from benchlib import LocalCluster, header, kompi_bin, loadavg, log, main_guard, median, ms, require_root, sec, table, timed, p99

TREE = []
NO_TREE = ["--mca", "plm_rsh_no_tree_spawn", "1"]


def launch(cluster: LocalCluster, n: int, extra: list[str]) -> float:
    seconds, p = timed(cluster.in_master(cluster.mpiexec(n, ["hostname"], extra)), timeout=300)
    hosts = p.stdout.split()
    if len(hosts) != n or len(set(hosts)) != n:
        raise RuntimeError(f"expected {n} distinct hostnames, got {hosts}")
    return seconds


def launch_times(sizes: list[int], reps: int) -> None:
    rows = []
    for n in sizes:
        with LocalCluster(f"kbl{n}", n) as cluster:
            launch(cluster, n, TREE)  # warm-up: page cache, first ssh handshakes
            tree, no_tree, loads = [], [], []
            for _ in range(reps):
                tree.append(launch(cluster, n, TREE))
                no_tree.append(launch(cluster, n, NO_TREE))
                loads.append(float(loadavg().split()[0]))
            log(f"N={n}: default {sec(median(tree))}, no_tree_spawn {sec(median(no_tree))}")
            rows.append([n, sec(median(tree)), sec(max(tree)), sec(median(no_tree)), sec(max(no_tree)),
                         f"{median(no_tree) / median(tree):.2f}", f"{min(loads):.1f}-{max(loads):.1f}"])
    print(f"## mpiexec --np N --npernode 1 hostname inside the master (median of {reps}; max beside it)")
    print()
    print(table(["N", "kompi defaults", "max", "plm_rsh_no_tree_spawn 1", "max", "no-tree/default", "load (1 min)"], rows))
    print()


def overhead(reps: int, exec_reps: int) -> None:
    kompi = kompi_bin()
    with LocalCluster("kbo", 4) as cluster:
        via_kompi = cluster.cmd("run", cluster.name, "--np", "4", "--npernode", "1", "--", "hostname")
        by_hand = cluster.in_master(cluster.mpiexec(4, ["hostname"]))
        timed(via_kompi)  # warm-up
        timed(by_hand)
        k, h = [], []
        load0 = loadavg()
        for _ in range(reps):
            k.append(timed(via_kompi)[0])
            h.append(timed(by_hand)[0])
        load1 = loadavg()
        exec_kompi = cluster.cmd("exec", cluster.name, "--", "true")
        exec_hand = cluster.in_master(["true"])
        ek, eh = [], []
        for _ in range(exec_reps):
            ek.append(timed(exec_kompi)[0])
            eh.append(timed(exec_hand)[0])
        load2 = loadavg()
    print(f"## kompi's overhead at N=4 ({kompi})")
    print()
    rows = [
        [f"`kompi local run --np 4 --npernode 1 -- hostname` vs the same mpiexec inside the master ({reps} each, alternating)",
         ms(median(k)), ms(median(h)), ms(median(k) - median(h)), f"{load0} -> {load1}"],
        [f"`kompi local exec -- true` vs `nsenter -t PID -n -u -m -- true` ({exec_reps} each, alternating)",
         ms(median(ek)), ms(median(eh)), ms(median(ek) - median(eh)), f"{load1} -> {load2}"],
    ]
    print(table(["what", "kompi (median)", "by hand (median)", "difference", "load"], rows))
    print()
    paired = median([a - b for a, b in zip(k, h)])
    print(f"median of the paired differences (run i of kompi minus run i by hand): {ms(paired)}; "
          f"exec: {ms(median([a - b for a, b in zip(ek, eh)]))}")
    print(f"spread: kompi local run p99 {ms(p99(k))}, by hand p99 {ms(p99(h))}; kompi local exec p99 {ms(p99(ek))}, nsenter p99 {ms(p99(eh))}")
    print()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2,4,8,16,32", help="cluster sizes N, comma-separated (default %(default)s)")
    ap.add_argument("--reps", type=int, default=5, help="runs per size and setting (default %(default)s)")
    ap.add_argument("--overhead-reps", type=int, default=21, help="runs of each side of the overhead comparison (default %(default)s)")
    ap.add_argument("--exec-reps", type=int, default=51, help="runs of each side of the exec comparison (default %(default)s)")
    ap.add_argument("--skip-overhead", action="store_true")
    args = ap.parse_args()
    require_root()
    header("local_launch: mpiexec launch time on a local kompi cluster")
    launch_times([int(s) for s in args.sizes.split(",")], args.reps)
    if not args.skip_overhead:
        overhead(args.overhead_reps, args.exec_reps)
    print(f"load average at end {loadavg()}")
    return 0


if __name__ == "__main__":
    main_guard(main)
