#!/usr/bin/env python3
"""Open MPI 4, Open MPI 5 and MPICH side by side on the testbed: ping-pong between two pods, and the
launch of `hostname` on 8 pods.

One kompi cluster per MPI, each of 8 pods (the master and 7 workers), all in one namespace of this
benchmark's own, made with `kompi up --wait` from the runtime images testbed/testbed.sh builds:

  Open MPI 4.1.4   kompi/runtime:<version>         (Debian bookworm)
  Open MPI 5.0.7   kompi/runtime:<version>-ompi5   (Debian trixie, PRRTE 3.0.8)
  MPICH 4.2.1      kompi/runtime:<version>-mpich   (Debian trixie, Hydra, ch4:ucx)

each with the examples compiled against its own MPI at /opt/kompi/examples. Then --reps rounds; in
each round the MPIs take turns (the order rotates from round to round), each running:

ping-pong  `mpiexec … --np 2 --npernode 1 /opt/kompi/examples/pingpong ITERATIONS` in the master's
           MPI container (`kubectl exec`): rank 0 on the master, rank 1 on a worker, every message
           size from 8 B to 4 MiB (--iters round trips each up to 64 KiB, a tenth above); the
           table shows the 8 B latency, the 64 KiB and 4 MiB bandwidth.
launch     `mpiexec … --np 8 --npernode 1 hostname` there: the wall time of the `kubectl exec`
           (its own overhead, about 0.1 s, is the same for all three), and the output must be the
           8 pods' names.

The mpiexec lines are those `kompi run` builds (`--hostfile`, `--np`, `--npernode` for Open MPI;
`-f`, `-n`, `-ppn` for MPICH), with kompi's defaults: ranks unbound, TCP between the pods.

Needs the testbed up with the three images imported (scripts/test.sh builds them), kubectl, and
target/release/kompi (KOMPI= another one).
"""

import argparse
import contextlib
import re
import subprocess
import time

from benchlib import header, kompi_bin, loadavg, log, main_guard, median, pingpong_table, ratio, run, sec, table, testbed_kube

VERSION = "0.1.0"
HOSTFILE = "/kube-openmpi/generated/hostfile"
EXAMPLES = "/opt/kompi/examples"
PODS = 8


class Mpi:
    def __init__(self, label: str, tag: str, implementation: str, version_cmd: list[str]):
        self.label, self.tag, self.implementation, self.version_cmd = label, tag, implementation, version_cmd
        self.cluster = "kbm-" + re.sub(r"[^a-z0-9]", "", label.lower())
        self.version = ""

    def mpiexec(self, np: int, command: list[str]) -> list[str]:
        """The line kompi's launcher builds for `kompi run --np N --npernode 1 -- COMMAND`."""
        if self.implementation == "openmpi":
            return ["mpiexec", "--hostfile", HOSTFILE, "--allow-run-as-root", "--np", str(np), "--npernode", "1", *command]
        return ["mpiexec", "-f", HOSTFILE, "-n", str(np), "-ppn", "1", *command]


MPIS = [
    Mpi("Open MPI 4", VERSION, "openmpi", ["ompi_info", "--version"]),
    Mpi("Open MPI 5", VERSION + "-ompi5", "openmpi", ["ompi_info", "--version"]),
    Mpi("MPICH", VERSION + "-mpich", "mpich", ["mpichversion"]),
]


class Bench:
    def __init__(self, kube, kompi: str, ns: str):
        self.kube, self.kompi, self.ns = kube, kompi, ns

    def kubectl(self, *args: str, timeout: float = 600) -> tuple[float, subprocess.CompletedProcess]:
        t0 = time.monotonic()
        p = run(["kubectl", "--kubeconfig", self.kube.kubeconfig, "-n", self.ns, *args], check=False, timeout=timeout)
        return time.monotonic() - t0, p

    def in_master(self, mpi: Mpi, argv: list[str]) -> tuple[float, str]:
        took, p = self.kubectl("exec", f"{mpi.cluster}-master", "-c", "mpi-master", "--", *argv)
        if p.returncode != 0:
            raise RuntimeError(f"{mpi.label}: {' '.join(argv)} exited with {p.returncode}: {p.stdout[-500:]}{p.stderr[-2000:]}")
        return took, p.stdout

    def up(self, mpi: Mpi) -> None:
        log(f"kompi up {mpi.cluster} ({mpi.label}, kompi/runtime:{mpi.tag}, {PODS} pods)")
        run([self.kompi, "up", mpi.cluster, "-n", self.ns, "--kubeconfig", self.kube.kubeconfig, "--wait", "--timeout", "300s",
             "--set", f"image.tag={mpi.tag}", "--set", f"mpi.implementation={mpi.implementation}", "--set", f"mpiWorkers.num={PODS - 1}"],
            timeout=360)
        _, out = self.in_master(mpi, mpi.version_cmd)
        mpi.version = next((l.strip() for l in out.splitlines() if l.strip()), "?")
        self.in_master(mpi, ["test", "-x", f"{EXAMPLES}/pingpong"])

    def pingpong(self, mpi: Mpi, iters: int) -> dict[int, tuple[float, float]]:
        """Latency (µs) and bandwidth (MB/s) by message size."""
        _, out = self.in_master(mpi, mpi.mpiexec(2, [f"{EXAMPLES}/pingpong", str(iters)]))
        return pingpong_table(out)

    def launch(self, mpi: Mpi) -> float:
        took, out = self.in_master(mpi, mpi.mpiexec(PODS, ["hostname"]))
        hosts = sorted(out.split())
        wanted = sorted([f"{mpi.cluster}-master"] + [f"{mpi.cluster}-worker-{i}" for i in range(PODS - 1)])
        if hosts != wanted:
            raise RuntimeError(f"{mpi.label}: hostname on {PODS} pods printed {hosts}")
        return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5, help="rounds; each runs every MPI once (default %(default)s)")
    ap.add_argument("--iters", type=int, default=200, help="ping-pong round trips per message size up to 64 KiB (default %(default)s)")
    args = ap.parse_args()
    kube = testbed_kube()
    if kube is None:
        return 2
    kompi = kompi_bin()
    header("Open MPI 4, Open MPI 5 and MPICH across pods (testbed)")
    with contextlib.ExitStack() as stack:
        ns = kube.create_namespace("kompi-bench-mpi")
        stack.callback(kube.delete_namespace, ns)
        bench = Bench(kube, kompi, ns)
        for mpi in MPIS:
            stack.callback(run, [kompi, "down", mpi.cluster, "-n", ns, "--kubeconfig", kube.kubeconfig, "--wait"], check=False)
            bench.up(mpi)
        pp = {m.label: [] for m in MPIS}
        launches = {m.label: [] for m in MPIS}
        failures = {m.label: [] for m in MPIS}
        loads = []

        def attempt(mpi: Mpi, what: str, measure, into: list | None) -> None:
            """One measurement; a failure (an ssh handshake timing out on a loaded machine, say) is
            counted and shown, not fatal."""
            try:
                result = measure()
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                failures[mpi.label].append(what)
                log(f"{mpi.label}: {what} FAILED: {str(e)[-300:]}")
                return
            if into is not None:
                into.append(result)

        log("warm-up: one unrecorded ping-pong and launch of each")
        for mpi in MPIS:
            attempt(mpi, "warm-up ping-pong", lambda: bench.pingpong(mpi, args.iters), None)
            attempt(mpi, "warm-up launch", lambda: bench.launch(mpi), None)
        for rep in range(args.reps):
            order = MPIS[rep % len(MPIS):] + MPIS[:rep % len(MPIS)]
            for mpi in order:
                loads.append(loadavg().split()[0])
                attempt(mpi, "ping-pong", lambda: bench.pingpong(mpi, args.iters), pp[mpi.label])
                attempt(mpi, "launch", lambda: bench.launch(mpi), launches[mpi.label])
                last_pp = f"8 B {pp[mpi.label][-1][8][0]:.2f} µs, 4 MiB {pp[mpi.label][-1][4 << 20][1]:.0f} MB/s" if pp[mpi.label] else "no ping-pong yet"
                last_launch = sec(launches[mpi.label][-1]) if launches[mpi.label] else "none yet"
                log(f"round {rep + 1}/{args.reps} {mpi.label}: last {last_pp}, launch {last_launch} (load {loads[-1]})")

    base = MPIS[0].label
    print(f"Medians of {args.reps} rounds, the MPIs taking turns; ping-pong {args.iters} round trips per size up to 64 KiB; "
          f"load average (1 min) {min(loads, key=float)}–{max(loads, key=float)}.")
    print()
    rows = []
    for m in MPIS:
        lat = median([r[8][0] for r in pp[m.label]])
        bw64 = median([r[65536][1] for r in pp[m.label]])
        bw4 = median([r[4 << 20][1] for r in pp[m.label]])
        rows.append([m.label, m.version, f"{lat:.2f} µs", f"{bw64:.0f} MB/s", f"{bw4:.0f} MB/s", sec(median(launches[m.label])),
                     f"{len(pp[m.label])} / {len(launches[m.label])}", ", ".join(failures[m.label]) or "none"])
    print(table(["MPI", "version", "latency 8 B", "bandwidth 64 KiB", "bandwidth 4 MiB", f"hostname on {PODS} pods", "runs (pp / launch)",
                 "failed"], rows))
    print()
    ratios = []
    for m in MPIS[1:]:
        lat = lambda label: median([r[8][0] for r in pp[label]])
        bw = lambda label: median([r[4 << 20][1] for r in pp[label]])
        ratios.append([f"{m.label} / {base}", ratio(lat(m.label), lat(base)), ratio(bw(m.label), bw(base)),
                       ratio(median(launches[m.label]), median(launches[base]))])
    print(table(["ratio", "latency 8 B", "bandwidth 4 MiB", "launch"], ratios))
    return 0


if __name__ == "__main__":
    main_guard(main)
