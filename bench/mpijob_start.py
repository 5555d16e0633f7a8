#!/usr/bin/env python3
"""MPIJob created -> first rank running, on the testbed: kompi's operator, the kubelet alone, and
mpi-operator's flow reproduced by hand; then the operator's memory and reconcile latency with 50 jobs.

For W = 1, 4, 8 workers, median of --reps, the flows taking turns (the order rotates from one
repetition to the next), each run in this benchmark's own namespace on a node with no pods left from
the previous run. The clock starts just before the first request; "first rank running" is the
earliest wall-clock time printed by `date +%s.%N` run as the W ranks of `mpirun -n W` (every pod
shares the host's clock), read from the launcher's log once it has finished.

kompi         one POST of an MPIJob (the operator, installed by `kompi operator install`, does the
              rest): workers' command `/usr/sbin/sshd -De`, the launcher's `mpirun -n W date +%s.%N`.
plain         the kubelet alone: a StatefulSet of W+1 pods of the same image running sshd with a
              tcpSocket readiness probe every second, until all are Ready (no MPI at all: a floor).
mpi-operator  mpi-operator v0.8's objects as its controller writes them (pkg/controller/
 AtStartup    mpi_job_controller.go), POSTed by this script acting as the controller: the Secret
              `<job>-ssh` (kubernetes.io/ssh-auth, an ECDSA P-521 key as it makes), the ConfigMap
              `<job>-config` (hostfile with `<pod>.<job>.<ns>.svc slots=1`, discover_hosts.sh), the
              headless Service `<job>` (no publishNotReadyAddresses), the worker Pods (hostname,
              subdomain, the key mounted 0600 at /root/.ssh, the DNS search path it adds) and the
              launcher as a batch/v1 Job (restartPolicy OnFailure, the ConfigMap at /etc/mpi, its
              environment: OMPI_MCA_orte_keep_fqdn_hostnames, orte_default_hostfile,
              plm_rsh_args "-o ConnectionAttempts=10", orte_set_default_slots), created at once.
              What its images add is added here: host keys (ed25519, made at start: the image has
              none), `StrictModes no` and, for the ssh client, StrictHostKeyChecking=no and
              UserKnownHostsFile=/dev/null (its base image's ssh_config), `--allow-run-as-root`.
 WaitForWorkersReady  the same, but the launcher Job is POSTed only once every worker pod is Ready
              (polled every 0.1 s, as its informer would see it); workers get the same tcpSocket
              readiness probe as the plain pods (mpi-operator's examples use one).

Then: 50 MPIJobs created at once with `suspend: true` (no pods; the node could not run 100 more):
the time from each POST to its `Suspended` condition (the operator's reconcile latency, median and
p99), and the operator's RSS (VmRSS of its PID 1) before and after.

Needs the testbed up with kompi/runtime:0.1.0 imported (with the examples) and target/release/kompi.
Installs the operator with `kompi operator install` if it is not running.
"""

import argparse
import contextlib
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchlib import (ApiError, Kube, ensure_operator, header, loadavg, log, main_guard, median, operator_rss_kib, p99, pod_ready,
                      ratio, run, sec, table, testbed_kube)

IMAGE = "kompi/runtime:0.1.0"
FLOWS = ["kompi", "plain", "mpi-operator-atstartup", "mpi-operator-wait"]
MPIJOBS = "/apis/kubeflow.org/v2beta1/namespaces/{ns}/mpijobs"


def secs(x: float | None) -> str:
    return "n/a" if x is None else sec(x)


def rank_command(workers: int) -> list[str]:
    return ["mpirun", "-n", str(workers), "date", "+%s.%N"]


class Bench:
    def __init__(self, kube: Kube, stack: contextlib.ExitStack):
        self.kube = kube
        tmp = tempfile.TemporaryDirectory(prefix="kompi-bench-mpijob-")
        stack.callback(tmp.cleanup)
        self.dir = Path(tmp.name)
        self.ns = kube.create_namespace("kompi-bench-mpijob")
        stack.callback(kube.delete_namespace, self.ns)
        stack.callback(self.teardown)
        run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "521", "-m", "PEM", "-N", "", "-C", "", "-f", str(self.dir / "id")])
        self.private, self.public = (self.dir / "id").read_text(), (self.dir / "id.pub").read_text()

    def api(self, kind: str) -> str:
        ns = self.ns
        return {"pods": f"/api/v1/namespaces/{ns}/pods", "secrets": f"/api/v1/namespaces/{ns}/secrets",
                "configmaps": f"/api/v1/namespaces/{ns}/configmaps", "services": f"/api/v1/namespaces/{ns}/services",
                "jobs": f"/apis/batch/v1/namespaces/{ns}/jobs", "statefulsets": f"/apis/apps/v1/namespaces/{ns}/statefulsets",
                "mpijobs": MPIJOBS.format(ns=ns)}[kind]

    # --- the flows ------------------------------------------------------------------------------------

    def kompi(self, name: str, workers: int) -> None:
        job = {"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob", "metadata": {"name": name}, "spec": {
            "slotsPerWorker": 1, "runPolicy": {"cleanPodPolicy": "None"},
            "mpiReplicaSpecs": {
                "Launcher": {"replicas": 1, "template": {"spec": {"containers": [
                    {"name": "launcher", "image": IMAGE, "command": rank_command(workers)}]}}},
                "Worker": {"replicas": workers, "template": {"spec": {"containers": [
                    {"name": "worker", "image": IMAGE, "command": ["/usr/sbin/sshd"], "args": ["-De"]}]}}}}}}
        self.kube.create(self.api("mpijobs"), job)

    def plain(self, name: str, workers: int) -> None:
        labels = {"kompi-bench/run": name}
        self.kube.create(self.api("statefulsets"), {"metadata": {"name": name, "labels": labels}, "spec": {
            "replicas": workers + 1, "podManagementPolicy": "Parallel", "serviceName": name, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"automountServiceAccountToken": False, "containers": [{
                "name": "sshd", "image": IMAGE, "command": ["/bin/sh", "-c", HOST_KEY + "exec /usr/sbin/sshd -De -p 2022"],
                "readinessProbe": {"tcpSocket": {"port": 2022}, "periodSeconds": 1}}]}}}})

    def mpi_operator_objects(self, name: str, workers: int) -> tuple[list[tuple[str, dict]], dict]:
        """Everything mpi-operator's controller creates for a job, in its order, and the launcher Job."""
        ns = self.ns
        job_labels = {"training.kubeflow.org/operator-name": "mpi-operator", "training.kubeflow.org/job-name": name}
        host = lambda pod: f"{pod}.{name}.{ns}.svc"
        workers_names = [f"{name}-worker-{i}" for i in range(workers)]
        ssh_volume = {"name": "ssh-auth", "secret": {"secretName": f"{name}-ssh", "defaultMode": 0o600, "items": [
            {"key": "ssh-privatekey", "path": "id_rsa"}, {"key": "ssh-publickey", "path": "id_rsa.pub"},
            {"key": "ssh-publickey", "path": "authorized_keys"}]}}
        ssh_mount = {"name": "ssh-auth", "mountPath": "/root/.ssh"}
        objects = [
            ("services", {"metadata": {"name": name, "labels": {"app": name}},
                          "spec": {"clusterIP": "None", "selector": job_labels}}),
            ("configmaps", {"metadata": {"name": f"{name}-config", "labels": {"app": name}}, "data": {
                "hostfile": "".join(f"{host(w)} slots=1\n" for w in workers_names),
                "discover_hosts.sh": "#!/bin/sh\n"}}),
            ("secrets", {"metadata": {"name": f"{name}-ssh", "labels": {"app": name}}, "type": "kubernetes.io/ssh-auth",
                         "stringData": {"ssh-privatekey": self.private, "ssh-publickey": self.public}}),
        ]
        for i, pod in enumerate(workers_names):
            objects.append(("pods", {"metadata": {"name": pod, "labels": {
                **job_labels, "training.kubeflow.org/job-role": "worker", "training.kubeflow.org/replica-index": str(i)}}, "spec": {
                "hostname": pod, "subdomain": name, "restartPolicy": "Never",
                "dnsConfig": {"searches": [f"{name}.{ns}.svc.cluster.local"]},
                "volumes": [ssh_volume],
                "containers": [{"name": "worker", "image": IMAGE,
                                "command": ["/bin/sh", "-c", HOST_KEY + "exec /usr/sbin/sshd -De -o StrictModes=no"],
                                "env": [{"name": "K_MPI_JOB_ROLE", "value": "worker"}],
                                "readinessProbe": {"tcpSocket": {"port": 22}, "periodSeconds": 1},
                                "volumeMounts": [ssh_mount]}]}}))
        env = {"K_MPI_JOB_ROLE": "launcher", "OMPI_MCA_orte_keep_fqdn_hostnames": "true",
               "OMPI_MCA_orte_default_hostfile": "/etc/mpi/hostfile",
               "OMPI_MCA_plm_rsh_args": "-o ConnectionAttempts=10 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
               "OMPI_MCA_orte_set_default_slots": "1", "NVIDIA_VISIBLE_DEVICES": "", "NVIDIA_DRIVER_CAPABILITIES": ""}
        launcher = {"metadata": {"name": f"{name}-launcher", "labels": {"app": name}}, "spec": {
            "template": {"metadata": {"labels": {**job_labels, "training.kubeflow.org/job-role": "launcher"}}, "spec": {
                "hostname": f"{name}-launcher", "subdomain": name, "restartPolicy": "OnFailure",
                "volumes": [ssh_volume, {"name": "mpi-job-config", "configMap": {"name": f"{name}-config", "items": [
                    {"key": "hostfile", "path": "hostfile", "mode": 0o444}, {"key": "discover_hosts.sh", "path": "discover_hosts.sh", "mode": 0o555}]}}],
                "containers": [{"name": "launcher", "image": IMAGE,
                                "command": [rank_command(workers)[0], "--allow-run-as-root", *rank_command(workers)[1:]],
                                "env": [{"name": k, "value": v} for k, v in env.items()],
                                "volumeMounts": [ssh_mount, {"name": "mpi-job-config", "mountPath": "/etc/mpi"}]}]}}}}
        return objects, launcher

    def mpi_operator(self, name: str, workers: int, wait_for_workers: bool, t0: float, timeout: float) -> None:
        objects, launcher = self.mpi_operator_objects(name, workers)
        for kind, obj in objects:
            self.kube.create(self.api(kind), obj)
        if wait_for_workers:
            deadline = t0 + timeout
            while True:
                pods = [self.kube.get_opt(f"{self.api('pods')}/{name}-worker-{i}") for i in range(workers)]
                if all(p and pod_ready(p) for p in pods):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("the workers never became Ready")
                time.sleep(0.1)
        self.kube.create(self.api("jobs"), launcher)

    # --- one run --------------------------------------------------------------------------------------

    def one(self, flow: str, workers: int, tag: str, timeout: float) -> dict:
        name = f"kb-{ {'kompi': 'k', 'plain': 'p', 'mpi-operator-atstartup': 'ma', 'mpi-operator-wait': 'mw'}[flow]}-{workers}-{tag}"
        result = {"flow": flow, "workers": workers, "load": loadavg(), "first_rank": None, "failed": None, "restarts": 0}
        t0, t0_wall = time.monotonic(), time.time()
        try:
            if flow == "kompi":
                self.kompi(name, workers)
            elif flow == "plain":
                self.plain(name, workers)
            else:
                self.mpi_operator(name, workers, flow == "mpi-operator-wait", t0, timeout)
            if flow == "plain":
                result["first_rank"] = self.wait_plain(name, workers, t0, timeout)
            else:
                stamps, restarts = self.wait_launcher(name, workers, t0, timeout)
                result["first_rank"] = min(stamps) - t0_wall
                result["restarts"] = restarts
            log(f"{flow} W={workers} {tag}: {secs(result['first_rank'])} (restarts {result['restarts']}) load {result['load']}")
        except (TimeoutError, RuntimeError, ApiError, OSError, subprocess.TimeoutExpired, ValueError) as e:
            log(f"{flow} W={workers} {tag}: FAILED: {e}")
            result["failed"] = str(e) or type(e).__name__
        finally:
            self.teardown()
            time.sleep(2)
        return result

    def wait_plain(self, name: str, workers: int, t0: float, timeout: float) -> float:
        while True:
            pods = [p for p in self.kube.get(self.api("pods"))["items"] if p["metadata"]["name"].startswith(name)]
            if len(pods) == workers + 1 and all(pod_ready(p) for p in pods):
                return time.monotonic() - t0
            if time.monotonic() > t0 + timeout:
                raise TimeoutError("not all pods became Ready")
            time.sleep(0.05)

    def wait_launcher(self, name: str, workers: int, t0: float, timeout: float) -> tuple[list[float], int]:
        """Until the launcher pod has succeeded; the ranks' timestamps from its log, and its restarts."""
        while True:
            pods = [p for p in self.kube.get(self.api("pods"))["items"]
                    if p["metadata"].get("labels", {}).get("training.kubeflow.org/job-role") == "launcher"
                    and p["metadata"].get("labels", {}).get("training.kubeflow.org/job-name") == name]
            done = [p for p in pods if (p.get("status") or {}).get("phase") == "Succeeded"]
            if done:
                pod = done[0]
                break
            failed = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
            if failed and len(pods) > 6:
                raise RuntimeError("the launcher keeps failing")
            if time.monotonic() > t0 + timeout:
                raise TimeoutError("the launcher did not finish")
            time.sleep(0.1)
        restarts = sum(c.get("restartCount", 0) for c in pod["status"].get("containerStatuses", [])) + len(pods) - 1
        out = run(["kubectl", "--kubeconfig", self.kube.kubeconfig, "-n", self.ns, "logs", pod["metadata"]["name"], "-c", "launcher"]).stdout
        # One `date +%s.%N` line per rank; kompi init's own log lines (its command line's `-n W` too) are not stamps.
        stamps = [float(line) for line in out.splitlines() if re.fullmatch(r"\d+\.\d+", line.strip())]
        if len(stamps) != workers:
            raise RuntimeError(f"expected {workers} timestamps in the launcher's log, got: {out[-300:]!r}")
        return stamps, restarts

    def teardown(self) -> None:
        """Removes every run's objects and waits until no pod is left, so the next run starts on a quiet node."""
        try:
            for obj in self.kube.get(self.api("mpijobs"))["items"]:
                self.kube.delete(f"{self.api('mpijobs')}/{obj['metadata']['name']}")
            for kind in ("jobs", "statefulsets", "services", "configmaps", "secrets"):
                for obj in self.kube.get(self.api(kind))["items"]:
                    if obj["metadata"]["name"].startswith("kb-"):
                        self.kube.delete(f"{self.api(kind)}/{obj['metadata']['name']}")
            deadline = time.monotonic() + 180
            while pods := self.kube.get(self.api("pods"))["items"]:
                for p in pods:
                    with contextlib.suppress(ApiError):
                        self.kube.delete(f"{self.api('pods')}/{p['metadata']['name']}", grace=1)
                if time.monotonic() > deadline:
                    log(f"teardown: pods still there after 180 s: {[p['metadata']['name'] for p in pods]}")
                    return
                time.sleep(0.5)
        except (ApiError, OSError) as e:
            log(f"teardown failed: {e}")

    # --- 50 jobs --------------------------------------------------------------------------------------

    def fifty(self, count: int, timeout: float) -> dict:
        rss_before = operator_rss_kib(self.kube)
        created: dict[str, float] = {}
        seen: dict[str, float] = {}
        done = threading.Event()

        def watch():
            while not done.is_set():
                for job in self.kube.get(self.api("mpijobs"))["items"]:
                    n = job["metadata"]["name"]
                    conds = (job.get("status") or {}).get("conditions") or []
                    if n in created and n not in seen and any(c["type"] == "Suspended" and c["status"] == "True" for c in conds):
                        seen[n] = time.monotonic()
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        t0 = time.monotonic()
        for i in range(count):
            name = f"kb-s-{i}"
            job = {"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob", "metadata": {"name": name}, "spec": {
                "runPolicy": {"suspend": True}, "mpiReplicaSpecs": {
                    "Launcher": {"template": {"spec": {"containers": [{"name": "l", "image": IMAGE, "command": ["true"]}]}}},
                    "Worker": {"replicas": 2, "template": {"spec": {"containers": [{"name": "w", "image": IMAGE}]}}}}}}
            self.kube.create(self.api("mpijobs"), job)
            created[name] = time.monotonic()
        submitted = time.monotonic() - t0
        deadline = time.monotonic() + timeout
        while len(seen) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        done.set()
        watcher.join()
        last = max(seen.values()) - t0 if seen else None
        latencies = [seen[n] - created[n] for n in seen]
        rss_after = operator_rss_kib(self.kube)
        self.teardown()
        return {"count": count, "reconciled": len(seen), "submitted": submitted, "last": last,
                "p50": median(latencies) if latencies else None, "p99": p99(latencies) if latencies else None,
                "rss_before": rss_before, "rss_after": rss_after}


# The kompi image carries no host keys (each container makes its own); mpi-operator's images have them.
HOST_KEY = "ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && "


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,4,8", help="worker counts W, comma-separated (default %(default)s)")
    ap.add_argument("--reps", type=int, default=3, help="runs per flow and W (default %(default)s)")
    ap.add_argument("--flows", default=",".join(FLOWS), help="flows to run (default %(default)s)")
    ap.add_argument("--jobs", type=int, default=50, help="suspended MPIJobs for the reconcile figures (0: skip; default %(default)s)")
    ap.add_argument("--timeout", type=float, default=300, help="give up on a run after this many seconds (default %(default)s)")
    args = ap.parse_args()
    kube = testbed_kube()
    if kube is None:
        print("mpijob_start: skipped, the testbed's API server does not answer", file=sys.stderr)
        return 2
    images = run(["ctr", "-n", "k8s.io", "images", "ls", "-q"], check=False).stdout
    if f"docker.io/{IMAGE}" not in images:
        sys.exit(f"{IMAGE} is not imported on the testbed (testbed/testbed.sh kompi-image --add examples/bin:/opt/kompi/examples)")
    ensure_operator(kube)
    flows = args.flows.split(",")
    sizes = [int(w) for w in args.workers.split(",")]
    header("mpijob_start: MPIJob created -> first rank running, on the testbed")
    results: dict[tuple[str, int], list[dict]] = {}
    with contextlib.ExitStack() as stack:
        b = Bench(kube, stack)
        log("warm-up: one unrecorded W=1 run of each flow")
        for flow in flows:
            b.one(flow, 1, "warm", args.timeout)
        for w in sizes:
            for rep in range(args.reps):
                order = flows[rep % len(flows):] + flows[:rep % len(flows)]
                for flow in order:
                    results.setdefault((flow, w), []).append(b.one(flow, w, str(rep), args.timeout))
        fifty = b.fifty(args.jobs, args.timeout) if args.jobs else None

    def first(flow, w):
        xs = [r["first_rank"] for r in results.get((flow, w), []) if r["first_rank"] is not None]
        return median(xs) if xs else None

    headers = ["W", "kompi", "plain sshd pods Ready", "kompi / plain", "mpi-operator AtStartup", "restarts",
               "mpi-operator WaitForWorkersReady", "kompi / mpi-operator best"]
    rows = []
    for w in sizes:
        k, p, ma, mw = (first(f, w) for f in FLOWS)
        restarts = [r["restarts"] for r in results.get(("mpi-operator-atstartup", w), [])]
        best = min((x for x in (ma, mw) if x is not None), default=None)
        rows.append([w, secs(k), secs(p), ratio(k, p) if k and p else "-", secs(ma), ",".join(map(str, restarts)) or "-", secs(mw),
                     ratio(k, best) if k and best else "-"])
    print(table(headers, rows))
    failures = [f"{r['flow']} W={r['workers']}: {r['failed']}" for rs in results.values() for r in rs if r["failed"]]
    print(f"\n{args.reps} runs per cell, medians; flows alternated run by run. Load during the runs: "
          + ", ".join(sorted({r['load'] for rs in results.values() for r in rs})[:3]) + " ...")
    if failures:
        print("failed runs: " + "; ".join(failures))
    if fifty:
        print()
        print(table(["MPIJobs (suspended)", "reconciled", "submit all", "last reconciled", "latency p50", "latency p99",
                     "operator RSS before", "operator RSS after"],
                    [[fifty["count"], fifty["reconciled"], secs(fifty["submitted"]), secs(fifty["last"]),
                      secs(fifty["p50"]), secs(fifty["p99"]),
                      f"{fifty['rss_before'] / 1024:.1f} MiB" if fifty["rss_before"] else "-",
                      f"{fifty['rss_after'] / 1024:.1f} MiB" if fifty["rss_after"] else "-"]]))
    return 0


if __name__ == "__main__":
    main_guard(main)
