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

from benchlib import LocalCluster, Phase, header, kompi_bin, loadavg, log, main_guard, median, ms, p99, require_root, sec, table, timed

TREE = []
NO_TREE = ["--mca", "plm_rsh_no_tree_spawn", "1"]


# An mpiexec of 32 nodes takes about 7 s on this 2-core machine; one that takes minutes is stuck.
LAUNCH_TIMEOUT = 120


def launch(cluster: LocalCluster, n: int, extra: list[str]) -> float:
    seconds, p = timed(cluster.in_master(cluster.mpiexec(n, ["hostname"], extra)), timeout=LAUNCH_TIMEOUT)
    hosts = p.stdout.split()
    if len(hosts) != n or len(set(hosts)) != n:
        raise RuntimeError(f"expected {n} distinct hostnames, got {hosts}")
    return seconds


def launch_size(phase: Phase, n: int, reps: int) -> None:
    f = phase.figures
    f.update(tree=[], no_tree=[], loads=[])
    with LocalCluster(f"kbl{n}", n) as cluster:
        launch(cluster, n, TREE)  # warm-up: page cache, first ssh handshakes
        for _ in range(reps):
            phase.check()
            f["tree"].append(launch(cluster, n, TREE))
            f["no_tree"].append(launch(cluster, n, NO_TREE))
            f["loads"].append(float(loadavg().split()[0]))
    log(f"N={n}: default {sec(median(f['tree']))}, no_tree_spawn {sec(median(f['no_tree']))}")


def launch_times(sizes: list[int], reps: int) -> bool:
    """Prints the table; False if a size failed."""
    rows, notes = [], []
    for n in sizes:
        # Budget: the cluster's up and down, then 2 * reps + 1 launches of a few seconds each.
        phase = Phase(f"N={n}", 600 + (2 * reps + 1) * 10 * n).run(launch_size, n, reps)
        tree, no_tree, loads = phase.figures["tree"], phase.figures["no_tree"], phase.figures["loads"]
        rows.append([n, sec(median(tree)), sec(max(tree, default=float("nan"))), sec(median(no_tree)), sec(max(no_tree, default=float("nan"))),
                     f"{median(no_tree) / median(tree):.2f}" if tree and no_tree else "n/a",
                     f"{min(loads):.1f}-{max(loads):.1f}" if loads else "n/a", len(tree)])
        if phase.error:
            notes.append(f"N={n}: {phase.note()}")
    print(f"## mpiexec --np N --npernode 1 hostname inside the master (median of {reps}; max beside it)")
    print()
    print(table(["N", "kompi defaults", "max", "plm_rsh_no_tree_spawn 1", "max", "no-tree/default", "load (1 min)", "runs"], rows))
    for note in notes:
        print()
        print(note)
    print(flush=True)
    return not notes


def measure_overhead(phase: Phase, reps: int, exec_reps: int) -> None:
    f = phase.figures
    f.update(k=[], h=[], ek=[], eh=[], loads=[])
    with LocalCluster("kbo", 4) as cluster:
        via_kompi = cluster.cmd("run", cluster.name, "--np", "4", "--npernode", "1", "--", "hostname")
        by_hand = cluster.in_master(cluster.mpiexec(4, ["hostname"]))
        timed(via_kompi, timeout=LAUNCH_TIMEOUT)  # warm-up
        timed(by_hand, timeout=LAUNCH_TIMEOUT)
        f["loads"].append(loadavg())
        for _ in range(reps):
            phase.check()
            f["k"].append(timed(via_kompi, timeout=LAUNCH_TIMEOUT)[0])
            f["h"].append(timed(by_hand, timeout=LAUNCH_TIMEOUT)[0])
        f["loads"].append(loadavg())
        exec_kompi = cluster.cmd("exec", cluster.name, "--", "true")
        exec_hand = cluster.in_master(["true"])
        for _ in range(exec_reps):
            phase.check()
            f["ek"].append(timed(exec_kompi, timeout=30)[0])
            f["eh"].append(timed(exec_hand, timeout=30)[0])
        f["loads"].append(loadavg())


def overhead(reps: int, exec_reps: int) -> bool:
    """Prints the table; False if the phase failed."""
    phase = Phase("kompi's overhead", 600 + 30 * reps + 5 * exec_reps).run(measure_overhead, reps, exec_reps)
    f = phase.figures
    k, h, ek, eh = f["k"], f["h"], f["ek"], f["eh"]
    loads = f["loads"] + ["n/a"] * (3 - len(f["loads"]))
    print(f"## kompi's overhead at N=4 ({kompi_bin()})")
    print()
    rows = [
        [f"`kompi local run --np 4 --npernode 1 -- hostname` vs the same mpiexec inside the master ({len(k)} each, alternating)",
         ms(median(k)), ms(median(h)), ms(median(k) - median(h)), f"{loads[0]} -> {loads[1]}"],
        [f"`kompi local exec -- true` vs `nsenter -t PID -n -u -m -- true` ({len(ek)} each, alternating)",
         ms(median(ek)), ms(median(eh)), ms(median(ek) - median(eh)), f"{loads[1]} -> {loads[2]}"],
    ]
    print(table(["what", "kompi (median)", "by hand (median)", "difference", "load"], rows))
    if phase.error:
        print()
        print(phase.note())
    print()
    paired = median([a - b for a, b in zip(k, h)])
    print(f"median of the paired differences (run i of kompi minus run i by hand): {ms(paired)}; "
          f"exec: {ms(median([a - b for a, b in zip(ek, eh)]))}")
    print(f"spread: kompi local run p99 {ms(p99(k))}, by hand p99 {ms(p99(h))}; kompi local exec p99 {ms(p99(ek))}, nsenter p99 {ms(p99(eh))}")
    print(flush=True)
    return phase.error is None


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
    ok = launch_times([int(s) for s in args.sizes.split(",")], args.reps)
    if not args.skip_overhead:
        ok = overhead(args.overhead_reps, args.exec_reps) and ok
    print(f"load average at end {loadavg()}")
    return 0 if ok else 1


if __name__ == "__main__":
    main_guard(main)
