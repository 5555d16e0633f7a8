#!/usr/bin/env python3
"""Ping-pong latency (8 B) and bandwidth (4 MiB) between two nodes: kompi's local cluster against the
same Open MPI between two network namespaces made by hand, without kompi.

kompi: `kompi local up` with 1 worker, then `kompi local run NAME --np 2 --npernode 1 --
examples/bin/pingpong` (rank 0 on the master, rank 1 on the worker).

plain: two network namespaces on a bridge of their own (the same data path as kompi's: veth pair ->
bridge -> veth pair), each running `/usr/sbin/sshd -D -f <generated config>` with a generated host
key in its own UTS namespace, and mpirun started in the first one with explicit parameters:
`--mca btl tcp,self --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0
--mca orte_keep_fqdn_hostnames true --mca hwloc_base_binding_policy none` (as kompi's defaults; Open
MPI's own default binds each namespace's rank to core 0, the same core, and every message then waits
for a scheduler tick: about 4 ms) and a hostfile of the two IP addresses.

The two setups alternate run by run (--reps each), so changes in machine load hit both alike.
Everything created here is removed at the end, also after a failure or Ctrl-C.

Needs root, Open MPI, sshd, iproute2, util-linux (nsenter/unshare), target/release/kompi and
examples/bin/pingpong (make -C examples).
"""

import argparse
import contextlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import (Cleanup, LocalCluster, Phase, example_bin, header, loadavg, log, main_guard, median, pingpong_table, ratio, require_root,
                      run, stop_process, table)


def parse_pingpong(out: str) -> tuple[float, float]:
    """(one-way latency of 8 B in microseconds, bandwidth at 4 MiB in MB/s) from pingpong's table."""
    rows = pingpong_table(out)
    return rows[8][0], rows[4 << 20][1]


def free_subnet() -> str:
    """The first 10.251.<i>.0/24 that no route on this machine touches (the third octet)."""
    routes = run(["ip", "-4", "route", "show"]).stdout
    for i in range(256):
        if f"10.251.{i}." not in routes:
            return f"10.251.{i}"
    raise RuntimeError("no free 10.251.<i>.0/24")


class PlainPair:
    """Two network namespaces with sshd, joined by a bridge: Open MPI without kompi."""

    def __init__(self, stack: contextlib.ExitStack):
        tag = os.getpid() % 100000
        self.stack = stack
        self.netns = [f"kbpp-{tag}-a", f"kbpp-{tag}-b"]
        self.hostnames = ["plain-a", "plain-b"]
        self.bridge = f"kbppbr{tag}"
        self.veths = [f"kbppv{tag}a", f"kbppv{tag}b"]
        net = free_subnet()
        self.gateway = f"{net}.1"
        self.addrs = [f"{net}.2", f"{net}.3"]
        tmp = tempfile.TemporaryDirectory(prefix="kompi-bench-plain-")
        stack.callback(tmp.cleanup)
        self.dir = Path(tmp.name)
        self.sshd: list[subprocess.Popen] = []

    def ip(self, *args: str, ns: str | None = None) -> None:
        run(["ip", *(["-n", ns] if ns else []), *args])

    def create(self) -> None:
        for ns in self.netns:
            self.ip("netns", "add", ns)
            self.stack.callback(self._remove_netns, ns)
        self.ip("link", "add", self.bridge, "type", "bridge")
        self.stack.callback(lambda: run(["ip", "link", "delete", self.bridge], check=False))
        self.ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        self.ip("link", "set", self.bridge, "up")
        for ns, veth, addr in zip(self.netns, self.veths, self.addrs):
            self.ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self.stack.callback(lambda v=veth: run(["ip", "link", "delete", v], check=False))
            self.ip("link", "set", veth, "master", self.bridge, "up")
            self.ip("link", "set", "lo", "up", ns=ns)
            self.ip("addr", "add", f"{addr}/24", "dev", "eth0", ns=ns)
            self.ip("link", "set", "eth0", "up", ns=ns)
        self._keys()
        for ns, name in zip(self.netns, self.hostnames):
            self._start_sshd(ns, name)
        self._wait_for_sshd()

    def _remove_netns(self, ns: str) -> None:
        # Our sshds are stopped first (they are registered later, so their callbacks run earlier);
        # anything else still in the namespace would be a leftover of ours too: list it by pid.
        pids = run(["ip", "netns", "pids", ns], check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), 15)
        run(["ip", "netns", "delete", ns], check=False)

    def _keys(self) -> None:
        d = self.dir
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kompi-bench", "-f", str(d / "id_ed25519")])
        (d / "authorized_keys").write_text((d / "id_ed25519.pub").read_text())
        for name in self.hostnames:
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(d / f"host_{name}")])
            # StrictModes would refuse keys below /tmp (world-writable); the directory is ours, 0700.
            (d / f"sshd_{name}.conf").write_text(
                f"Port 2022\nHostKey {d}/host_{name}\nPidFile none\nAuthorizedKeysFile {d}/authorized_keys\n"
                "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nUseDNS no\nPrintMotd no\n"
                "X11Forwarding no\nMaxStartups 100:30:300\n"
            )
        (d / "ssh_config").write_text(
            f"Host *\n    Port 2022\n    IdentityFile {d}/id_ed25519\n    IdentitiesOnly yes\n    BatchMode yes\n"
            "    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n    ConnectTimeout 10\n"
        )
        (d / "hostfile").write_text("".join(f"{a} slots=1\n" for a in self.addrs))

    def _start_sshd(self, ns: str, hostname: str) -> None:
        log_file = open(self.dir / f"sshd_{hostname}.log", "w")
        self.stack.callback(log_file.close)
        # `ip netns exec` and `unshare` exec in turn, and the shell execs sshd: the pid is sshd's own.
        p = subprocess.Popen(
            ["ip", "netns", "exec", ns, "unshare", "--uts", "sh", "-c",
             f"hostname {hostname} && exec /usr/sbin/sshd -D -e -f {self.dir}/sshd_{hostname}.conf"],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
        self.stack.callback(stop_process, p)
        self.sshd.append(p)

    def _wait_for_sshd(self) -> None:
        deadline = time.monotonic() + 30
        for addr in self.addrs:
            while run(["ip", "netns", "exec", self.netns[0], "bash", "-c", f"exec 3<>/dev/tcp/{addr}/2022"], check=False).returncode != 0:
                if time.monotonic() > deadline or any(p.poll() is not None for p in self.sshd):
                    logs = "".join(p.read_text() for p in self.dir.glob("sshd_*.log"))
                    raise RuntimeError(f"sshd on {addr} did not come up:\n{logs}")
                time.sleep(0.05)

    def mpirun(self, program: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns[0], "unshare", "--uts", "sh", "-c",
                f'hostname {self.hostnames[0]} && exec "$@"', "mpirun",
                "mpirun", "--allow-run-as-root", "--hostfile", str(self.dir / "hostfile"), "--np", "2", "--npernode", "1",
                "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "eth0", "--mca", "oob_tcp_if_include", "eth0",
                "--mca", "orte_keep_fqdn_hostnames", "true", "--mca", "plm_rsh_agent", f"ssh -F {self.dir}/ssh_config",
                # Without it each namespace's rank is bound to core 0, the same core (about 4 ms per
                # message); kompi's defaults leave ranks unbound for that reason.
                "--mca", "hwloc_base_binding_policy", "none",
                *program]


# One run covers every message size from 8 B to 4 MiB: one to two minutes on this loaded machine.
RUN_TIMEOUT = 600


def alternate(phase: Phase, commands: dict[str, list[str]], reps: int) -> None:
    results, loads = phase.figures["results"], phase.figures["loads"]
    for rep in range(reps):
        for setup in ("kompi", "plain"):
            phase.check()
            t0 = time.monotonic()
            out = run(commands[setup], timeout=RUN_TIMEOUT).stdout
            lat, bw = parse_pingpong(out)
            results[setup].append((lat, bw))
            loads.append(loadavg())
            log(f"run {rep + 1}/{reps} {setup}: 8 B {lat:.2f} us, 4 MiB {bw:.1f} MB/s ({time.monotonic() - t0:.0f} s, load {loads[-1]})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5, help="runs of each setup (default %(default)s)")
    args = ap.parse_args()
    require_root()
    pingpong = example_bin("pingpong")
    if Path("/root/.openmpi/mca-params.conf").exists():
        log("warning: /root/.openmpi/mca-params.conf exists on the host; the plain setup's orted reads it too")
    header("local_pingpong: ping-pong between two nodes, kompi local vs plain network namespaces")
    phase = Phase("ping-pong runs, alternating", 2 * args.reps * RUN_TIMEOUT)
    phase.figures.update(results={"kompi": [], "plain": []}, loads=[])
    with Cleanup() as stack:
        cluster = stack.enter_context(LocalCluster("kbpp", 2))
        plain = PlainPair(stack)
        plain.create()
        commands = {
            "kompi": cluster.cmd("run", cluster.name, "--np", "2", "--npernode", "1", "--", pingpong),
            "plain": plain.mpirun([pingpong]),
        }
        phase.run(alternate, commands, args.reps)
    results, loads = phase.figures["results"], phase.figures["loads"]
    lat = {s: median([r[0] for r in results[s]]) for s in results}
    bw = {s: median([r[1] for r in results[s]]) for s in results}
    print(f"## pingpong, --np 2 --npernode 1, median of {args.reps} runs each (alternating)")
    print()
    print(table(["", "kompi local", "plain netns + sshd", "kompi/plain"], [
        ["latency 8 B (one way)", f"{lat['kompi']:.2f} us", f"{lat['plain']:.2f} us", ratio(lat["kompi"], lat["plain"])],
        ["bandwidth 4 MiB", f"{bw['kompi']:.1f} MB/s", f"{bw['plain']:.1f} MB/s", ratio(bw["kompi"], bw["plain"])],
    ]))
    if phase.error:
        print()
        print(phase.note())
    print()
    print("every run (latency us / bandwidth MB/s):")
    for s in results:
        print(f"  {s}: " + ", ".join(f"{a:.2f}/{b:.1f}" for a, b in results[s]))
    print(f"load average (1, 5, 15 min) after each run: {'; '.join(loads)}")
    return 1 if phase.error else 0


if __name__ == "__main__":
    main_guard(main)
