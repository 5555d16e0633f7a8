#!/usr/bin/env python3
"""The `kompi hostfile` sidecar against the testbed's API server: how fresh the hostfile is, how many
API requests the sidecar makes while nothing changes (next to kube-openmpi's kubectl updater), and its
memory with 1000 worker pods.

Setup, in a namespace of its own (deleted at the end): the ServiceAccount, Role and RoleBinding that
`kompi template` renders (so the sidecar runs with exactly the rendered least privilege), a token of
that ServiceAccount (TokenRequest), and a StatefulSet of --workers worker-labelled pods that no kubelet
runs. The sidecar is `target/release/kompi hostfile` on this host, with the arguments the rendered
master pod gives it. Unlike crates/kompi/tests/hostfile_api.rs, the pods are not bound to a node that
does not exist: the controller-manager's pod GC force-deletes such orphans 40 to 60 s after their
creation, which a run of several minutes would see. They name a scheduler that does not exist instead,
so they stay unscheduled and untouched, and their Ready condition is set through pods/status.

1. Freshness: the time from the API acknowledging a change (the pods/status PATCH or the DELETE
   returned) to the hostfile showing it, detected with inotify on the hostfile's directory (the file
   is replaced by rename). --changes pods turned Ready (added), --changes turned unready (removed),
   --deletions Ready pods deleted (removed; the StatefulSet makes a new, unready pod).
2. Idle API requests: a second sidecar talks to the API through a counting proxy (plain HTTP in,
   HTTPS out, watch streams relayed as they come); so does kube-openmpi's hostfile updater as its chart
   runs it (gen_hostfile.sh with max_try 1 every 15 s: `kubectl get statefulsets` for the size and
   `kubectl get pod --selector=... --field-selector=status.phase=Running -o jsonpath=...`), with real
   kubectl calls through a second proxy. Requests are counted over --idle-minutes with no change.
3. kube-openmpi's freshness, a small sample (--kube-openmpi-changes): the same changes seen in the
   hostfile that updater writes (pods turned Running are added, deleted pods removed).
4. Memory: VmRSS and VmHWM (peak) of a sidecar following --big pods (created directly, one of them
   Ready), after its initial list and after all of them were turned Ready.

Needs the testbed (testbed/testbed.sh up; KUBECONFIG defaults to /tmp/kompi-testbed/kubeconfig),
kubectl, target/release/kompi.
"""

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchlib import (CountingProxy, DirWatch, Kube, header, kompi_bin, loadavg, log, main_guard, median, ms, p99,
                      proc_memory_kib, run, sec, stop_process, table, testbed_kube)

CLUSTER = "hf"
COLUMNS = ["change", "samples", "median", "p99", "max", "median from request", "p99 from request"]
BIG = "big"
NO_SCHEDULER = "kompi-bench-no-such-scheduler"


def worker_labels(cluster: str) -> dict:
    return {"app.kubernetes.io/name": "kompi", "app.kubernetes.io/instance": cluster, "app.kubernetes.io/component": "worker"}


def pod_spec() -> dict:
    return {"schedulerName": NO_SCHEDULER, "automountServiceAccountToken": False, "enableServiceLinks": False,
            "containers": [{"name": "mpi-worker", "image": "kompi/never-pulled:0"}]}


class Bench:
    def __init__(self, kube: Kube, stack: contextlib.ExitStack, args):
        self.kube, self.stack, self.args = kube, stack, args
        self.kompi = kompi_bin()
        tmp = tempfile.TemporaryDirectory(prefix="kompi-bench-hf-")
        stack.callback(tmp.cleanup)
        self.dir = Path(tmp.name)
        self.ns = kube.create_namespace("kompi-bench-hf")
        stack.callback(kube.delete_namespace, self.ns)
        self.pods = f"/api/v1/namespaces/{self.ns}/pods"

    # --- setup ------------------------------------------------------------------------------------

    def render(self, cluster: str, workers: int, *show: str) -> list[dict]:
        key = self.dir / "ssh-key.yaml"
        if not key.exists():
            run([self.kompi, "keygen", "-o", str(key)])
        cmd = [self.kompi, "template", cluster, "-n", self.ns, "-f", str(key), "--set", f"mpiWorkers.num={workers}", "-o", "json"]
        for s in show:
            cmd += ["--show-only", s]
        return json.loads(run(cmd).stdout)["items"]

    def create_rbac(self) -> None:
        ns = self.ns
        paths = {"ServiceAccount": f"/api/v1/namespaces/{ns}/serviceaccounts",
                 "Role": f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
                 "RoleBinding": f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"}
        for obj in self.render(CLUSTER, self.args.workers, f"ServiceAccount/{CLUSTER}", f"Role/{CLUSTER}", f"RoleBinding/{CLUSTER}"):
            self.kube.create(paths[obj["kind"]], obj)
        self.token = self.kube.issue_token(ns, CLUSTER)
        # kube-openmpi's chart rendered no ServiceAccount (its issue #24): users bound a Role by hand.
        # This one allows what its gen_hostfile.sh calls: get statefulsets, list pods.
        self.kube.create(paths["ServiceAccount"], {"metadata": {"name": "kube-openmpi"}})
        self.kube.create(paths["Role"], {"metadata": {"name": "kube-openmpi"}, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
            {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get"]}]})
        self.kube.create(paths["RoleBinding"], {"metadata": {"name": "kube-openmpi"},
                                                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kube-openmpi"},
                                                "subjects": [{"kind": "ServiceAccount", "name": "kube-openmpi", "namespace": ns}]})
        self.openmpi_token = self.kube.issue_token(ns, "kube-openmpi")

    def create_workers(self) -> None:
        labels = worker_labels(CLUSTER)
        self.kube.create(f"/apis/apps/v1/namespaces/{self.ns}/statefulsets", {
            "metadata": {"name": f"{CLUSTER}-worker", "labels": labels},
            "spec": {"replicas": self.args.workers, "podManagementPolicy": "Parallel", "serviceName": CLUSTER,
                     "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod_spec()}}})
        self.wait_for_pods([f"{CLUSTER}-worker-{i}" for i in range(self.args.workers)])

    def wait_for_pods(self, names: list[str], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            items = self.kube.get(f"{self.pods}?labelSelector=app.kubernetes.io/component=worker")["items"]
            have = {p["metadata"]["name"] for p in items if not p["metadata"].get("deletionTimestamp")}
            if all(n in have for n in names):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"pods missing after {timeout} s: {sorted(set(names) - have)}")
            time.sleep(0.1)

    def sidecar(self, cluster: str, workers: int, output: Path, kubeconfig: str, log_name: str) -> subprocess.Popen:
        """`kompi hostfile` with the arguments of the rendered master pod, the output moved here."""
        pod = self.render(cluster, workers, f"Pod/{cluster}-master")[0]
        container = next(c for c in pod["spec"]["containers"] if c["name"] == "hostfile")
        args = [a for a in container["args"] if not a.startswith("--output=")] + [f"--output={output}"]
        output.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(self.dir / log_name, "w")
        self.stack.callback(log_file.close)
        p = subprocess.Popen([self.kompi, *args], stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                             env={**os.environ, "KUBECONFIG": kubeconfig, "POD_NAMESPACE": self.ns, "KOMPI_LOG": "info"})
        self.stack.callback(stop_process, p)
        return p

    # --- changes ----------------------------------------------------------------------------------

    def set_status(self, pod: str, ready: bool, phase: str = "Running") -> None:
        status = "True" if ready else "False"
        self.kube.merge_patch(f"{self.pods}/{pod}/status", {"status": {"phase": phase, "conditions": [{"type": "Ready", "status": status}]}})

    def measure(self, watch: DirWatch, change, predicate, timeout: float = 60) -> tuple[float, float] | None:
        """Seconds until `predicate()` holds, counted from just before `change()` sent its request and
        from the API's answer to it; None when it timed out. A change the hostfile showed before the
        answer was read counts 0 from the answer."""
        watch.drain()
        sent = time.monotonic()
        change()
        acked = time.monotonic()
        seen = watch.wait_until(predicate, timeout)
        return None if seen is None else (seen - sent, seen - acked)


def hosts(path: Path) -> list[str]:
    try:
        return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def freshness(b: Bench) -> dict:
    """Phase 1: pods turned Ready, unready, deleted; times until the hostfile shows it."""
    out = b.dir / "direct" / "hostfile"
    kubeconfig = b.kube.token_kubeconfig(str(b.dir / "sa.kubeconfig"), b.token, b.ns)
    sidecar = b.sidecar(CLUSTER, b.args.workers, out, kubeconfig, "sidecar-direct.log")
    watch = DirWatch(str(out.parent))
    b.stack.callback(watch.close)
    if watch.wait_until(lambda: hosts(out) == [f"{CLUSTER}-master"], 60) is None:
        raise RuntimeError(f"the sidecar wrote no hostfile; its log:\n{(b.dir / 'sidecar-direct.log').read_text()}")
    host = lambda i: f"{CLUSTER}-worker-{i}.{CLUSTER}"
    added, removed, deleted, timeouts = [], [], [], 0
    load0 = loadavg()
    for n in range(b.args.changes):
        i = n % b.args.workers
        for ready, samples in ((True, added), (False, removed)):
            t = b.measure(watch, lambda: b.set_status(f"{CLUSTER}-worker-{i}", ready), lambda: (host(i) in hosts(out)) == ready)
            if t is None:
                timeouts += 1
            else:
                samples.append(t)
    load1 = loadavg()
    for n in range(b.args.deletions):
        i = n % b.args.workers
        name = f"{CLUSTER}-worker-{i}"
        b.wait_for_pods([name])  # the StatefulSet's replacement of an earlier deletion
        b.set_status(name, True)
        if watch.wait_until(lambda: host(i) in hosts(out), 60) is None:
            timeouts += 1
            continue
        t = b.measure(watch, lambda: b.kube.delete(f"{b.pods}/{name}"), lambda: host(i) not in hosts(out))
        if t is None:
            timeouts += 1
        else:
            deleted.append(t)
    load2 = loadavg()
    mem = proc_memory_kib(sidecar.pid)
    stop_process(sidecar)
    return {"added": added, "removed": removed, "deleted": deleted, "timeouts": timeouts, "loads": (load0, load1, load2), "mem": mem}


class KubeOpenmpiUpdater:
    """kube-openmpi's hostfile-updater container: gen_hostfile.sh with max_try 1, then `sleep 15`,
    with real kubectl calls (a HOME of its own keeps kubectl's discovery cache between calls, as the
    container's does)."""

    def __init__(self, b: Bench, kubeconfig: str, output: Path, period: float = 15):
        self.b, self.kubeconfig, self.output, self.period = b, kubeconfig, output, period
        self.home = b.dir / "kubectl-home"
        self.home.mkdir()
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.calls: list[float] = []  # time.monotonic() of each kubectl invocation
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        b.stack.callback(self.close)

    def kubectl(self, *args: str) -> str:
        self.calls.append(time.monotonic())
        p = run(["kubectl", "--kubeconfig", self.kubeconfig, "-n", self.b.ns, *args], check=False, env={**os.environ, "HOME": str(self.home)})
        if p.returncode != 0:
            self.errors.append(p.stderr.strip())
        return p.stdout

    def _loop(self):
        while not self.stop.is_set():
            self.kubectl("get", "statefulsets", f"{CLUSTER}-worker", "-o", "jsonpath={.status.replicas}")
            names = self.kubectl("get", "pod", f"--selector=app.kubernetes.io/instance={CLUSTER},app.kubernetes.io/component=worker",
                                 "--field-selector=status.phase=Running", "-o=jsonpath={.items[*].metadata.name}").split()
            tmp = self.output.with_name(self.output.name + "_new")
            tmp.write_text("".join(f"{n}.{CLUSTER}\n" for n in names))
            tmp.rename(self.output)
            self.stop.wait(self.period)

    def close(self):
        self.stop.set()
        self.thread.join(60)


def idle_requests(b: Bench) -> dict:
    """Phase 2: requests of an idle sidecar and of kube-openmpi's updater, through counting proxies."""
    kompi_proxy = CountingProxy(b.kube.host, b.kube.port, b.kube.ca_file)
    b.stack.callback(kompi_proxy.close)
    openmpi_proxy = CountingProxy(b.kube.host, b.kube.port, b.kube.ca_file, token=b.openmpi_token)
    b.stack.callback(openmpi_proxy.close)
    out = b.dir / "proxied" / "hostfile"
    kubeconfig = b.kube.token_kubeconfig(str(b.dir / "sa-proxied.kubeconfig"), b.token, b.ns, server=kompi_proxy.url)
    t_start = time.monotonic()
    sidecar = b.sidecar(CLUSTER, b.args.workers, out, kubeconfig, "sidecar-proxied.log")
    (b.dir / "kube-openmpi").mkdir()
    openmpi_out = b.dir / "kube-openmpi" / "hostfile"
    updater = KubeOpenmpiUpdater(b, b.kube.token_kubeconfig(str(b.dir / "openmpi.kubeconfig"), b.openmpi_token, b.ns, server=openmpi_proxy.url), openmpi_out)
    deadline = time.monotonic() + 60
    while not (out.exists() and openmpi_out.exists()):
        if time.monotonic() > deadline or sidecar.poll() is not None:
            raise RuntimeError(f"no hostfile through the proxy; sidecar log:\n{(b.dir / 'sidecar-proxied.log').read_text()}\nkubectl: {updater.errors}")
        time.sleep(0.1)
    time.sleep(2)
    t0 = time.monotonic()
    load0 = loadavg()
    log(f"counting API requests for {b.args.idle_minutes} idle minutes")
    time.sleep(b.args.idle_minutes * 60)
    t1 = time.monotonic()
    calls = len([c for c in updater.calls if t0 <= c < t1])
    return {"calls": calls, "kompi_startup": kompi_proxy.since(t_start, t0), "kompi": kompi_proxy.since(t0, t1),
            "openmpi_startup": openmpi_proxy.since(t_start, t0), "openmpi": openmpi_proxy.since(t0, t1),
            "minutes": (t1 - t0) / 60, "loads": (load0, loadavg()), "sidecar": sidecar, "updater": updater,
            "openmpi_out": openmpi_out}


def openmpi_freshness(b: Bench, updater: KubeOpenmpiUpdater, out: Path, count: int) -> dict:
    """Phase 3: the same kind of changes, seen in the hostfile kube-openmpi's updater writes."""
    watch = DirWatch(str(out.parent))
    b.stack.callback(watch.close)
    added, removed, timeouts = [], [], 0
    for n in range(count):
        i = n % b.args.workers
        name = f"{CLUSTER}-worker-{i}"
        line = f"{name}.{CLUSTER}"
        # Delete (removal sample), then turn the StatefulSet's replacement Running (addition sample).
        if line not in hosts(out):
            b.set_status(name, True)
            watch.wait_until(lambda: line in hosts(out), 60)
        for samples, change, predicate in (
            # The updater writes every 15 s: a change made right after one of its writes would always
            # wait a whole period. A random pause samples the phase uniformly, as real changes do.
            (removed, lambda: b.kube.delete(f"{b.pods}/{name}"), lambda: line not in hosts(out)),
            (added, lambda: (b.wait_for_pods([name]), b.set_status(name, True)), lambda: line in hosts(out)),
        ):
            time.sleep(random.uniform(0, updater.period))
            t = b.measure(watch, change, predicate, timeout=60)
            if t is None:
                timeouts += 1
            else:
                samples.append(t)
    return {"added": added, "removed": removed, "timeouts": timeouts}


def memory(b: Bench, count: int) -> dict:
    """Phase 4: a sidecar following `count` worker pods."""
    labels = worker_labels(BIG)
    t = time.monotonic()
    for i in range(count):
        b.kube.create(b.pods, {"metadata": {"name": f"{BIG}-worker-{i}", "labels": labels}, "spec": pod_spec()})
    log(f"created {count} pods in {time.monotonic() - t:.1f} s")
    b.set_status(f"{BIG}-worker-0", True)
    out = b.dir / "big" / "hostfile"
    kubeconfig = b.kube.token_kubeconfig(str(b.dir / "sa.kubeconfig"), b.token, b.ns)
    sidecar = b.sidecar(BIG, count, out, kubeconfig, "sidecar-big.log")
    watch = DirWatch(str(out.parent))  # the directory exists: sidecar() made it
    b.stack.callback(watch.close)
    t_start = time.monotonic()
    if watch.wait_until(lambda: f"{BIG}-worker-0.{BIG}" in hosts(out), 120) is None:
        raise RuntimeError(f"initial list not reflected; log:\n{(b.dir / 'sidecar-big.log').read_text()}")
    t_synced = time.monotonic() - t_start
    time.sleep(2)
    after_list = proc_memory_kib(sidecar.pid)
    t = time.monotonic()
    for i in range(1, count):
        b.set_status(f"{BIG}-worker-{i}", True)
    last_ack = time.monotonic()
    flip_seconds = last_ack - t
    seen = watch.wait_until(lambda: len(hosts(out)) == count + 1, 300)
    time.sleep(2)
    after_ready = proc_memory_kib(sidecar.pid)
    stop_process(sidecar)
    return {"count": count, "synced": t_synced, "after_list": after_list, "after_ready": after_ready,
            "flip_seconds": flip_seconds, "lag_after_last": None if seen is None else seen - last_ack}


def summarize(samples: list[tuple[float, float]]) -> list[str]:
    """samples, then median, p99 and max from the API's answer, then median and p99 from the request."""
    acked = [a for _, a in samples]
    sent = [s for s, _ in samples]
    return [str(len(samples)), ms(median(acked)), ms(p99(acked)), ms(max(acked)) if acked else "n/a", ms(median(sent)), ms(p99(sent))]


def print_freshness(f: dict, args) -> None:
    print(f"## freshness: API acknowledgement -> hostfile changed ({args.workers} worker pods, `kompi hostfile` on the host)")
    print()
    print(table(COLUMNS, [
        ["pod turned Ready -> listed", *summarize(f["added"])],
        ["pod turned unready -> removed", *summarize(f["removed"])],
        ["Ready pod deleted -> removed", *summarize(f["deleted"])],
    ]))
    print()
    print(f"timeouts: {f['timeouts']}; load before, between, after: {' | '.join(f['loads'])}; "
          f"sidecar memory after it all: VmRSS {f['mem'].get('VmRSS')} KiB, VmHWM {f['mem'].get('VmHWM')} KiB")
    print(flush=True)


def print_idle(idle: dict, b: Bench) -> None:
    mins = idle["minutes"]
    print(f"## API requests while idle ({mins:.1f} minutes, no pod changes)")
    print()
    k, o = idle["kompi"], idle["openmpi"]
    print(table(["client", "requests", "per minute", "at startup (before the window)"], [
        ["kompi hostfile (watch)", len(k), f"{len(k) / mins:.2f}", len(idle["kompi_startup"])],
        ["kube-openmpi updater (2 kubectl calls every 15 s)", len(o), f"{len(o) / mins:.2f}", len(idle["openmpi_startup"])],
    ]))
    print()
    print(f"kube-openmpi's kubectl invocations in the window: {idle['calls']} ({idle['calls'] / mins:.2f} per minute); "
          "each also asks for /version, and the first one runs discovery (the requests at startup)")
    print()
    print("kompi's requests: " + ("; ".join(f"{method} {path[:110]}" for _, method, path in idle["kompi_startup"] + k) or "none"))
    paths = {}
    for _, method, path in o:
        key = f"{method} {path.split('?')[0]}"
        paths[key] = paths.get(key, 0) + 1
    print("kube-openmpi's requests in the window, by path: " + "; ".join(f"{n}x {p}" for p, n in sorted(paths.items())))
    print(f"load during the window: {idle['loads'][0]} -> {idle['loads'][1]}")
    # An API server restart (the testbed cycled) makes both clients reconnect: not an idle figure.
    if "watching the worker pods failed" in (b.dir / "sidecar-proxied.log").read_text() or idle["updater"].errors:
        print("WARNING: the API server did not answer during the window (sidecar warnings or kubectl errors): these counts are disturbed")
    print(flush=True)


def print_openmpi(of: dict) -> None:
    print("## kube-openmpi's updater (kubectl every 15 s), same measurement, small sample")
    print()
    print(table(COLUMNS, [
        ["pod turned Running -> listed", *summarize(of["added"])],
        ["pod deleted -> removed", *summarize(of["removed"])],
    ]))
    print()
    print(f"timeouts: {of['timeouts']} (expected: uniform over the 15 s period plus the kubectl calls, median about 7.5 s)")
    print(flush=True)


def print_memory(m: dict) -> None:
    print(f"## memory of kompi hostfile following {m['count']} worker pods")
    print()
    print(table(["moment", "VmRSS", "VmHWM (peak)"], [
        [f"after the initial list ({sec(m['synced'])} from start to hostfile)", f"{m['after_list']['VmRSS'] / 1024:.1f} MiB", f"{m['after_list']['VmHWM'] / 1024:.1f} MiB"],
        [f"after all {m['count']} turned Ready", f"{m['after_ready']['VmRSS'] / 1024:.1f} MiB", f"{m['after_ready']['VmHWM'] / 1024:.1f} MiB"],
    ]))
    print()
    lag = "n/a (timed out)" if m["lag_after_last"] is None else ms(m["lag_after_last"])
    print(f"{m['count'] - 1} PATCHes took {sec(m['flip_seconds'])}; the hostfile listed all {m['count']} workers {lag} after the last one was acknowledged")
    print(flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=10, help="worker pods of the freshness StatefulSet (default %(default)s)")
    ap.add_argument("--changes", type=int, default=100, help="pods turned Ready, and as many turned unready (default %(default)s)")
    ap.add_argument("--deletions", type=int, default=50, help="Ready pods deleted (default %(default)s)")
    ap.add_argument("--idle-minutes", type=float, default=5, help="idle window for counting API requests (default %(default)s)")
    ap.add_argument("--kube-openmpi-changes", type=int, default=5, help="deletions and additions seen by kube-openmpi's updater (default %(default)s)")
    ap.add_argument("--big", type=int, default=1000, help="pods for the memory figure (default %(default)s)")
    args = ap.parse_args()
    kube = testbed_kube()
    if kube is None:
        print("hostfile_freshness: skipped, the testbed's API server does not answer", file=sys.stderr)
        return 2
    header("hostfile_freshness: kompi hostfile against the testbed's API server")
    with contextlib.ExitStack() as stack:
        # Each phase's figures are printed as soon as it ends: a testbed going down later loses only the rest.
        b = Bench(kube, stack, args)
        b.create_rbac()
        b.create_workers()
        log("phase 1: freshness")
        print_freshness(freshness(b), args)
        log("phase 2: idle API requests")
        idle = idle_requests(b)
        print_idle(idle, b)
        if args.kube_openmpi_changes:
            log("phase 3: kube-openmpi's freshness")
            print_openmpi(openmpi_freshness(b, idle["updater"], idle["openmpi_out"], args.kube_openmpi_changes))
        stop_process(idle["sidecar"])
        idle["updater"].close()
        if args.big:
            log("phase 4: memory")
            print_memory(memory(b, args.big))
    print(f"load average at end {loadavg()}")
    return 0


if __name__ == "__main__":
    main_guard(main)
