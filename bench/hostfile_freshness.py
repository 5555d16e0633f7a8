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

Each phase has a time budget, and every command and API request a timeout: a phase that fails or
runs out of time says so under its table, and the next one runs. SIGTERM or Ctrl-C end the run within
seconds, after stopping the sidecars and kubectl and deleting the namespace.

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

from benchlib import (Cleanup, CountingProxy, DirWatch, Kube, Phase, describe, header, kompi_bin, loadavg, log, main_guard, median, ms,
                      p99, proc_memory_kib, run, sec, stop_process, table, testbed_kube)

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
        self.kube, self.args = kube, args
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
                raise TimeoutError(f"pods missing after {timeout:.0f} s: {sorted(set(names) - have)}")
            time.sleep(0.1)

    def sidecar(self, stack: contextlib.ExitStack, cluster: str, workers: int, output: Path, kubeconfig: str, log_name: str) -> subprocess.Popen:
        """`kompi hostfile` with the arguments of the rendered master pod, the output moved here;
        stopped when `stack` ends."""
        pod = self.render(cluster, workers, f"Pod/{cluster}-master")[0]
        container = next(c for c in pod["spec"]["containers"] if c["name"] == "hostfile")
        args = [a for a in container["args"] if not a.startswith("--output=")] + [f"--output={output}"]
        output.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(self.dir / log_name, "w")
        stack.callback(log_file.close)
        p = subprocess.Popen([self.kompi, *args], stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                             env={**os.environ, "KUBECONFIG": kubeconfig, "POD_NAMESPACE": self.ns, "KOMPI_LOG": "info"})
        stack.callback(stop_process, p)
        return p

    def sidecar_log(self, log_name: str, lines: int = 5) -> str:
        return "\n".join((self.dir / log_name).read_text().splitlines()[-lines:])

    def check_running(self, p: subprocess.Popen, log_name: str) -> None:
        if p.poll() is not None:
            raise RuntimeError(f"the sidecar exited with status {p.returncode}\nthe end of its log:\n{self.sidecar_log(log_name)}")

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


def freshness(phase: Phase, b: Bench) -> None:
    """Phase 1: pods turned Ready, unready, deleted; times until the hostfile shows it."""
    f = phase.figures
    f.update(added=[], removed=[], deleted=[], timeouts=0, loads=[loadavg()])
    out = b.dir / "direct" / "hostfile"
    kubeconfig = b.kube.token_kubeconfig(str(b.dir / "sa.kubeconfig"), b.token, b.ns)
    with Cleanup() as stack:
        log_name = "sidecar-direct.log"
        sidecar = b.sidecar(stack, CLUSTER, b.args.workers, out, kubeconfig, log_name)
        watch = DirWatch(str(out.parent))
        stack.callback(watch.close)
        if watch.wait_until(lambda: hosts(out) == [f"{CLUSTER}-master"], phase.timeout(60)) is None:
            b.check_running(sidecar, log_name)
            raise TimeoutError(f"the sidecar wrote no hostfile within 60 s\nthe end of its log:\n{b.sidecar_log(log_name)}")
        host = lambda i: f"{CLUSTER}-worker-{i}.{CLUSTER}"

        def sample(samples: list, change, predicate) -> None:
            t = b.measure(watch, change, predicate, timeout=phase.timeout(60))
            if t is None:
                f["timeouts"] += 1
                b.check_running(sidecar, log_name)
            else:
                samples.append(t)

        for n in range(b.args.changes):
            phase.check(f"turning pods Ready and unready ({n} of {b.args.changes} done)")
            i = n % b.args.workers
            for ready, samples in ((True, f["added"]), (False, f["removed"])):
                sample(samples, lambda: b.set_status(f"{CLUSTER}-worker-{i}", ready), lambda: (host(i) in hosts(out)) == ready)
        f["loads"].append(loadavg())
        for n in range(b.args.deletions):
            phase.check(f"deleting Ready pods ({n} of {b.args.deletions} done)")
            i = n % b.args.workers
            name = f"{CLUSTER}-worker-{i}"
            b.wait_for_pods([name], phase.timeout(60))  # the StatefulSet's replacement of an earlier deletion
            b.set_status(name, True)
            if watch.wait_until(lambda: host(i) in hosts(out), phase.timeout(60)) is None:
                f["timeouts"] += 1
                b.check_running(sidecar, log_name)
                continue
            sample(f["deleted"], lambda: b.kube.delete(f"{b.pods}/{name}"), lambda: host(i) not in hosts(out))
        f["loads"].append(loadavg())
        f["mem"] = proc_memory_kib(sidecar.pid)


# kube-openmpi's updater runs kubectl without a timeout; here each call gets one, so that a call that
# hangs shows as a failure in the idle figures instead of stopping the updater.
KUBECTL_TIMEOUT = 30


class KubeOpenmpiUpdater:
    """kube-openmpi's hostfile-updater container: gen_hostfile.sh with max_try 1, then `sleep 15`,
    with real kubectl calls (a HOME of its own keeps kubectl's discovery cache between calls, as the
    container's does). Stopped, its kubectl included, when `stack` ends."""

    def __init__(self, b: Bench, stack: contextlib.ExitStack, kubeconfig: str, output: Path, period: float = 15):
        self.b, self.kubeconfig, self.output, self.period = b, kubeconfig, output, period
        self.home = b.dir / "kubectl-home"
        self.home.mkdir(exist_ok=True)
        self.stop = threading.Event()
        self.calls: list[float] = []  # time.monotonic() of each kubectl invocation
        self.failures: list[tuple[float, str]] = []  # (when the call started, what went wrong)
        self.thread = threading.Thread(target=self._loop, name="kube-openmpi-updater", daemon=True)
        self.thread.start()
        stack.callback(self.close)

    def kubectl(self, *args: str) -> str | None:
        """kubectl's output, or None when it failed or timed out (noted in `failures`)."""
        started = time.monotonic()
        self.calls.append(started)
        try:
            p = run(["kubectl", "--kubeconfig", self.kubeconfig, "-n", self.b.ns, *args], check=False, timeout=KUBECTL_TIMEOUT,
                    abort=self.stop, env={**os.environ, "HOME": str(self.home)})
        except subprocess.TimeoutExpired as e:
            if not self.stop.is_set():
                self.failures.append((started, describe(e)))
            return None
        if p.returncode != 0:
            self.failures.append((started, p.stderr.strip()[:200] or f"kubectl exited with {p.returncode}"))
            return None
        return p.stdout

    def _loop(self):
        while not self.stop.is_set():
            self.kubectl("get", "statefulsets", f"{CLUSTER}-worker", "-o", "jsonpath={.status.replicas}")
            names = self.kubectl("get", "pod", f"--selector=app.kubernetes.io/instance={CLUSTER},app.kubernetes.io/component=worker",
                                 "--field-selector=status.phase=Running", "-o=jsonpath={.items[*].metadata.name}")
            if names is not None:
                tmp = self.output.with_name(self.output.name + "_new")
                tmp.write_text("".join(f"{n}.{CLUSTER}\n" for n in names.split()))
                tmp.rename(self.output)
            self.stop.wait(self.period)

    def failures_between(self, t0: float, t1: float) -> list[str]:
        return [why for t, why in self.failures if t0 <= t < t1]

    def close(self):
        self.stop.set()  # also stops a kubectl that is running (run's abort)
        self.thread.join(5)


def idle_requests(phase: Phase, b: Bench, stack: contextlib.ExitStack) -> None:
    """Phase 2: requests of an idle sidecar and of kube-openmpi's updater, through counting proxies.
    The sidecar and the updater keep running until `stack` ends (phase 3 uses the updater)."""
    f = phase.figures
    kompi_proxy = CountingProxy(b.kube.host, b.kube.port, b.kube.ca_file)
    stack.callback(kompi_proxy.close)
    openmpi_proxy = CountingProxy(b.kube.host, b.kube.port, b.kube.ca_file, token=b.openmpi_token)
    stack.callback(openmpi_proxy.close)
    out = b.dir / "proxied" / "hostfile"
    kubeconfig = b.kube.token_kubeconfig(str(b.dir / "sa-proxied.kubeconfig"), b.token, b.ns, server=kompi_proxy.url)
    t_start = time.monotonic()
    log_name = "sidecar-proxied.log"
    sidecar = b.sidecar(stack, CLUSTER, b.args.workers, out, kubeconfig, log_name)
    (b.dir / "kube-openmpi").mkdir(exist_ok=True)
    openmpi_out = b.dir / "kube-openmpi" / "hostfile"
    openmpi_kubeconfig = b.kube.token_kubeconfig(str(b.dir / "openmpi.kubeconfig"), b.openmpi_token, b.ns, server=openmpi_proxy.url)
    updater = KubeOpenmpiUpdater(b, stack, openmpi_kubeconfig, openmpi_out)
    f.update(updater=updater, openmpi_out=openmpi_out)
    deadline = time.monotonic() + phase.timeout(60)
    while not (out.exists() and openmpi_out.exists()):
        b.check_running(sidecar, log_name)
        if time.monotonic() > deadline:
            missing = " and ".join(n for n, p in (("the sidecar's", out), ("kube-openmpi's", openmpi_out)) if not p.exists())
            raise TimeoutError(f"no hostfile through the proxies within 60 s: {missing} is missing\n"
                               f"the end of the sidecar's log:\n{b.sidecar_log(log_name)}\nkubectl's last failures: {[w for _, w in updater.failures][-3:]}")
        time.sleep(0.1)
    phase.sleep(2)
    t0 = time.monotonic()
    f["loads"] = [loadavg()]
    log(f"counting API requests for {b.args.idle_minutes} idle minutes")
    while (left := t0 + b.args.idle_minutes * 60 - time.monotonic()) > 0:
        phase.sleep(min(1.0, left))
        b.check_running(sidecar, log_name)
        if not updater.thread.is_alive():
            raise RuntimeError("kube-openmpi's updater stopped")
    t1 = time.monotonic()
    f.update(calls=len([c for c in updater.calls if t0 <= c < t1]), failed_calls=updater.failures_between(t0, t1),
             kompi_startup=kompi_proxy.since(t_start, t0), kompi=kompi_proxy.since(t0, t1),
             openmpi_startup=openmpi_proxy.since(t_start, t0), openmpi=openmpi_proxy.since(t0, t1),
             minutes=(t1 - t0) / 60)
    f["loads"].append(loadavg())
    # An API server restart (the testbed cycled) makes both clients reconnect: not an idle figure.
    watch_failed = "watching the worker pods failed" in (b.dir / log_name).read_text()
    if f["failed_calls"] or watch_failed:
        raise RuntimeError(f"the API server did not always answer during the window ({len(f['failed_calls'])} kubectl calls failed"
                           + (f", the first with: {f['failed_calls'][0]}" if f["failed_calls"] else "")
                           + ("; the sidecar logged a failed watch" if watch_failed else "") + "): these counts are disturbed")


def openmpi_freshness(phase: Phase, b: Bench, updater: KubeOpenmpiUpdater, out: Path, count: int) -> None:
    """Phase 3: the same kind of changes, seen in the hostfile kube-openmpi's updater writes."""
    f = phase.figures
    f.update(added=[], removed=[], timeouts=0)
    with Cleanup() as stack:
        watch = DirWatch(str(out.parent))
        stack.callback(watch.close)
        for n in range(count):
            phase.check(f"{n} of {count} changes done")
            if not updater.thread.is_alive():
                raise RuntimeError("kube-openmpi's updater stopped")
            i = n % b.args.workers
            name = f"{CLUSTER}-worker-{i}"
            line = f"{name}.{CLUSTER}"
            if not out.exists():
                raise RuntimeError("kube-openmpi's updater has written no hostfile")
            # Delete (removal sample), then turn the StatefulSet's replacement Running (addition sample).
            if line not in hosts(out):
                b.set_status(name, True)
                if watch.wait_until(lambda: line in hosts(out), phase.timeout(60)) is None:
                    f["timeouts"] += 1  # a removal of a pod that is not listed would measure nothing
                    continue
            for samples, change, predicate in (
                (f["removed"], lambda: b.kube.delete(f"{b.pods}/{name}"), lambda: line not in hosts(out)),
                (f["added"], lambda: (b.wait_for_pods([name], phase.timeout(60)), b.set_status(name, True)), lambda: line in hosts(out)),
            ):
                # The updater writes every 15 s: a change made right after one of its writes would always
                # wait a whole period. A random pause samples the phase uniformly, as real changes do.
                phase.sleep(random.uniform(0, updater.period))
                t = b.measure(watch, change, predicate, timeout=phase.timeout(60))
                if t is None:
                    f["timeouts"] += 1
                else:
                    samples.append(t)
        f["failed_calls"] = len(updater.failures)


def memory(phase: Phase, b: Bench, count: int) -> None:
    """Phase 4: a sidecar following `count` worker pods."""
    f = phase.figures
    f["count"] = count
    labels = worker_labels(BIG)
    t = time.monotonic()
    for i in range(count):
        if i % 50 == 0:
            phase.check(f"creating pods ({i} of {count} created)")
        b.kube.create(b.pods, {"metadata": {"name": f"{BIG}-worker-{i}", "labels": labels}, "spec": pod_spec()})
    log(f"created {count} pods in {time.monotonic() - t:.1f} s")
    b.set_status(f"{BIG}-worker-0", True)
    out = b.dir / "big" / "hostfile"
    kubeconfig = b.kube.token_kubeconfig(str(b.dir / "sa.kubeconfig"), b.token, b.ns)
    with Cleanup() as stack:
        log_name = "sidecar-big.log"
        sidecar = b.sidecar(stack, BIG, count, out, kubeconfig, log_name)
        watch = DirWatch(str(out.parent))  # the directory exists: sidecar() made it
        stack.callback(watch.close)
        t_start = time.monotonic()
        if watch.wait_until(lambda: f"{BIG}-worker-0.{BIG}" in hosts(out), phase.timeout(120)) is None:
            b.check_running(sidecar, log_name)
            raise TimeoutError(f"the initial list was not in the hostfile within 120 s\nthe end of the sidecar's log:\n{b.sidecar_log(log_name)}")
        f["synced"] = time.monotonic() - t_start
        phase.sleep(2)
        f["after_list"] = proc_memory_kib(sidecar.pid)
        t = time.monotonic()
        for i in range(1, count):
            if i % 50 == 0:
                phase.check(f"turning pods Ready ({i - 1} of {count - 1} done)")
            b.set_status(f"{BIG}-worker-{i}", True)
        last_ack = time.monotonic()
        f["flip_seconds"] = last_ack - t
        seen = watch.wait_until(lambda: len(hosts(out)) == count + 1, phase.timeout(300))
        f["lag_after_last"] = None if seen is None else seen - last_ack
        phase.sleep(2)
        b.check_running(sidecar, log_name)
        f["after_ready"] = proc_memory_kib(sidecar.pid)


def summarize(samples: list[tuple[float, float]]) -> list[str]:
    """samples, then median, p99 and max from the API's answer, then median and p99 from the request."""
    acked = [a for _, a in samples]
    sent = [s for s, _ in samples]
    return [str(len(samples)), ms(median(acked)), ms(p99(acked)), ms(max(acked)) if acked else "n/a", ms(median(sent)), ms(p99(sent))]


def print_note(phase: Phase) -> None:
    if phase.note():
        print()
        print(phase.note())


def print_freshness(phase: Phase, args) -> None:
    f = phase.figures
    print(f"## freshness: API acknowledgement -> hostfile changed ({args.workers} worker pods, `kompi hostfile` on the host)")
    print()
    print(table(COLUMNS, [
        ["pod turned Ready -> listed", *summarize(f.get("added", []))],
        ["pod turned unready -> removed", *summarize(f.get("removed", []))],
        ["Ready pod deleted -> removed", *summarize(f.get("deleted", []))],
    ]))
    print_note(phase)
    print()
    mem = f.get("mem", {})
    print(f"changes not seen within 60 s: {f.get('timeouts', 0)}; load before, between, after: {' | '.join(f.get('loads', []))}; "
          f"sidecar memory after it all: VmRSS {mem.get('VmRSS', 'n/a')} KiB, VmHWM {mem.get('VmHWM', 'n/a')} KiB")
    print(flush=True)


def print_idle(phase: Phase, idle_minutes: float) -> None:
    f = phase.figures
    done = "minutes" in f
    mins = f.get("minutes", float("nan"))
    print(f"## API requests while idle ({mins if done else idle_minutes:.1f} minutes, no pod changes)")
    print()
    count = lambda key: len(f[key]) if done else "n/a"
    per_minute = lambda key: f"{len(f[key]) / mins:.2f}" if done else "n/a"
    print(table(["client", "requests", "per minute", "at startup (before the window)"], [
        ["kompi hostfile (watch)", count("kompi"), per_minute("kompi"), count("kompi_startup")],
        ["kube-openmpi updater (2 kubectl calls every 15 s)", count("openmpi"), per_minute("openmpi"), count("openmpi_startup")],
    ]))
    print_note(phase)
    print()
    if not done:
        print(flush=True)
        return
    failed = f["failed_calls"]
    print(f"kube-openmpi's kubectl invocations in the window: {f['calls']} ({f['calls'] / mins:.2f} per minute), "
          f"{len(failed)} of them failed or timed out; each also asks for /version, and the first one runs discovery "
          "(the requests at startup)")
    print()
    print("kompi's requests: " + ("; ".join(f"{method} {path[:110]}" for _, method, path in f["kompi_startup"] + f["kompi"]) or "none"))
    paths = {}
    for _, method, path in f["openmpi"]:
        key = f"{method} {path.split('?')[0]}"
        paths[key] = paths.get(key, 0) + 1
    print("kube-openmpi's requests in the window, by path: " + "; ".join(f"{n}x {p}" for p, n in sorted(paths.items())))
    print(f"load during the window: {f['loads'][0]} -> {f['loads'][1]}")
    print(flush=True)


def print_openmpi(phase: Phase) -> None:
    f = phase.figures
    print("## kube-openmpi's updater (kubectl every 15 s), same measurement, small sample")
    print()
    print(table(COLUMNS, [
        ["pod turned Running -> listed", *summarize(f.get("added", []))],
        ["pod deleted -> removed", *summarize(f.get("removed", []))],
    ]))
    print_note(phase)
    print()
    print(f"changes not seen within 60 s: {f.get('timeouts', 0)} (expected: uniform over the 15 s period plus the kubectl "
          f"calls, median about 7.5 s); kubectl calls failed or timed out so far: {f.get('failed_calls', 'n/a')}")
    print(flush=True)


def print_memory(phase: Phase) -> None:
    f = phase.figures
    count = f.get("count", "?")
    mib = lambda key, field: f"{f[key][field] / 1024:.1f} MiB" if key in f else "n/a"
    print(f"## memory of kompi hostfile following {count} worker pods")
    print()
    print(table(["moment", "VmRSS", "VmHWM (peak)"], [
        [f"after the initial list ({sec(f.get('synced', float('nan')))} from start to hostfile)", mib("after_list", "VmRSS"), mib("after_list", "VmHWM")],
        [f"after all {count} turned Ready", mib("after_ready", "VmRSS"), mib("after_ready", "VmHWM")],
    ]))
    print_note(phase)
    print()
    if "flip_seconds" in f:
        lag = "n/a (not within 300 s)" if f.get("lag_after_last") is None else ms(f["lag_after_last"])
        print(f"{count - 1} PATCHes took {sec(f['flip_seconds'])}; the hostfile listed all {count} workers {lag} after the last one was acknowledged")
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
    # Each phase has a time budget (generous: a few times what it takes on a loaded testbed); one that
    # fails or runs out of it says so under its table, and the next phase runs. Each phase's figures
    # are printed as soon as it ends: a testbed going down later loses only the rest.
    phases = []
    with Cleanup() as stack:
        b = Bench(kube, stack, args)
        b.create_rbac()
        b.create_workers()
        phases.append(Phase("phase 1: freshness", 120 + 3 * (2 * args.changes + args.deletions)).run(freshness, b))
        print_freshness(phases[-1], args)
        with Cleanup() as idle_stack:  # phase 2's sidecar and kube-openmpi's updater, which phase 3 watches
            idle = Phase("phase 2: idle API requests", args.idle_minutes * 60 + 120).run(idle_requests, b, idle_stack)
            phases.append(idle)
            print_idle(idle, args.idle_minutes)
            if args.kube_openmpi_changes:
                openmpi = Phase("phase 3: kube-openmpi's freshness", 120 + args.kube_openmpi_changes * 2 * (15 + 60))
                if "updater" in idle.figures:
                    openmpi.run(openmpi_freshness, b, idle.figures["updater"], idle.figures["openmpi_out"], args.kube_openmpi_changes)
                else:
                    openmpi.skip("phase 2 did not start kube-openmpi's updater")
                phases.append(openmpi)
                print_openmpi(openmpi)
        if args.big:
            phases.append(Phase("phase 4: memory", 300 + args.big).run(memory, b, args.big))
            print_memory(phases[-1])
    print(f"load average at end {loadavg()}")
    return 1 if any(p.error for p in phases) else 0


if __name__ == "__main__":
    main_guard(main)
