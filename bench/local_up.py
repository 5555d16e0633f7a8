#!/usr/bin/env python3
"""How long `kompi local up` takes to a ready cluster, and `kompi local down` to remove it.

For N = 4, 16, 32 nodes (--workers N-1), median of --reps: the wall time of `kompi local up`, which
returns once every node's sshd answers on its port and the hostfile is written (a failure removes
everything and exits non-zero), checked afterwards with `kompi local status -o json` (every node
running and answering on ssh); then the wall time of `kompi local down` (processes, namespaces,
veths, bridge, state directory). Each run uses a fresh state directory.

Needs root and target/release/kompi.
"""

import argparse

from benchlib import LocalCluster, Phase, header, loadavg, log, main_guard, median, require_root, sec, table


def up_and_down(phase: Phase, n: int, reps: int) -> None:
    f = phase.figures
    f.update(ups=[], downs=[], loads=[])
    for rep in range(reps):
        phase.check()
        cluster = LocalCluster(f"kbu{n}", n)
        with cluster:
            up = cluster.up_seconds
            # Timed here, inside the block; the block's own exit then finds nothing left to remove.
            down = cluster.down()
        f["ups"].append(up)
        f["downs"].append(down)
        f["loads"].append(loadavg().split()[0])
        log(f"N={n} run {rep + 1}: up {sec(up)}, down {sec(down)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="4,16,32", help="cluster sizes N, comma-separated (default %(default)s)")
    ap.add_argument("--reps", type=int, default=3, help="runs per size (default %(default)s)")
    args = ap.parse_args()
    require_root()
    header("local_up: kompi local up / down")
    rows, notes = [], []
    for n in [int(s) for s in args.sizes.split(",")]:
        phase = Phase(f"N={n}", args.reps * (60 + 5 * n)).run(up_and_down, n, args.reps)
        ups, downs = phase.figures["ups"], phase.figures["downs"]
        rows.append([n, sec(median(ups)), sec(max(ups, default=float("nan"))), sec(median(downs)), sec(max(downs, default=float("nan"))),
                     ", ".join(phase.figures["loads"])])
        if phase.error:
            notes.append(f"N={n}: {phase.note()}")
    print(f"## kompi local up (to every sshd answering) and down, median of {args.reps}")
    print()
    print(table(["N nodes", "up", "up max", "down", "down max", "load (1 min) after each run"], rows))
    for note in notes:
        print()
        print(note)
    print()
    print(f"load average at end {loadavg()}")
    return 1 if notes else 0


if __name__ == "__main__":
    main_guard(main)
