#!/usr/bin/env python3
"""Many MPIJobs submitted at once to kompi's operator on the testbed, each run to its end.

--jobs MPIJobs (default 50) of --workers workers each (default 2) are POSTed back to back, all with
`runPolicy.suspend: true`: the 2-core node cannot run 150 pods at once, so this script acts as the
queue (as Kueue would): it resumes the jobs in submission order, at most --parallel at a time, the next
one as soon as one finishes. Each job's launcher runs `mpirun -n W hostname` across its workers.

Reported:
- jobs Succeeded / Failed / never finished, and pods created per job (every pod uid the job's label
  ever showed: launcher + W workers; more is a duplicate);
- the operator's reconcile latency: POST -> `Suspended` condition, p50 and p99;
- run time per job (resumed -> Succeeded), and the time from the last job submitted to the last job
  finished;
- the operator's RSS (VmRSS of its PID 1) before, at its peak (sampled every 5 s) and after;
- the operator's API requests, total and per job by verb, from the API server's audit log
  (testbed/testbed.sh logs the requests of kompi-system's service accounts there).

Needs the testbed up with kompi/runtime:0.1.0 imported and target/release/kompi (KOMPI= another one);
installs the operator with `kompi operator install` if it is not running.
"""

import argparse
import contextlib
import os
import sys
import threading
import time

from benchlib import (AUDIT_LOG, ApiError, audited_requests, ensure_operator, header, loadavg, log, main_guard, median, operator_rss_kib, p99,
                      sec, table, testbed_kube)

IMAGE = "kompi/runtime:0.1.0"
JOB_LABEL = "training.kubeflow.org/job-name"


def mpijob(name: str, workers: int) -> dict:
    return {"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob", "metadata": {"name": name}, "spec": {
        "slotsPerWorker": 1, "runPolicy": {"suspend": True, "cleanPodPolicy": "All"},
        "mpiReplicaSpecs": {
            "Launcher": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "launcher", "image": IMAGE, "command": ["mpirun", "-n", str(workers), "hostname"]}]}}},
            "Worker": {"replicas": workers, "template": {"spec": {"containers": [
                {"name": "worker", "image": IMAGE, "command": ["/usr/sbin/sshd"], "args": ["-De"]}]}}}}}}


def condition(job: dict, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in (job.get("status") or {}).get("conditions") or [])


class Observer:
    """Polls the namespace's MPIJobs and pods: when each job was first Suspended and first finished, and
    every pod uid each job ever had."""

    def __init__(self, kube, ns: str):
        self.kube, self.ns = kube, ns
        self.suspended: dict[str, float] = {}
        self.finished: dict[str, tuple[float, str]] = {}
        self.pods: dict[str, set[str]] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            now = time.monotonic()
            try:
                jobs = self.kube.get(f"/apis/kubeflow.org/v2beta1/namespaces/{self.ns}/mpijobs")["items"]
                pods = self.kube.get(f"/api/v1/namespaces/{self.ns}/pods?labelSelector={JOB_LABEL}")["items"]
            except (ApiError, OSError) as e:
                log(f"observing failed, retrying: {e}")
                time.sleep(1)
                continue
            with self.lock:
                for job in jobs:
                    name = job["metadata"]["name"]
                    if condition(job, "Suspended"):
                        self.suspended.setdefault(name, now)
                    for end in ("Succeeded", "Failed"):
                        if condition(job, end) and name not in self.finished:
                            self.finished[name] = (now, end)
                for pod in pods:
                    self.pods.setdefault(pod["metadata"]["labels"][JOB_LABEL], set()).add(pod["metadata"]["uid"])
            time.sleep(0.25)

    def close(self):
        self.stop.set()
        self.thread.join()


class RssSampler:
    def __init__(self, kube):
        self.kube = kube
        self.samples: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.wait(5):
            rss = operator_rss_kib(self.kube)
            if rss:
                self.samples.append(rss)

    def close(self):
        self.stop.set()
        self.thread.join()


def audit_offset() -> int:
    try:
        return os.path.getsize(AUDIT_LOG)
    except OSError:
        return 0


def audit_since(offset: int) -> dict[str, int] | None:
    try:
        with open(AUDIT_LOG, encoding="utf-8", errors="replace") as f:
            f.seek(offset)
            return audited_requests(f)
    except OSError:
        return None


def mib(kib: int | None) -> str:
    return f"{kib / 1024:.1f} MiB" if kib else "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=50, help="MPIJobs submitted at once (default %(default)s)")
    ap.add_argument("--workers", type=int, default=2, help="workers per job (default %(default)s)")
    ap.add_argument("--parallel", type=int, default=4, help="jobs resumed at a time (default %(default)s)")
    ap.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds (default %(default)s)")
    args = ap.parse_args()
    kube = testbed_kube()
    if kube is None:
        print("mpijob_load: skipped, the testbed's API server does not answer", file=sys.stderr)
        return 2
    if not os.path.exists(AUDIT_LOG):
        log(f"no audit log at {AUDIT_LOG} (a testbed started before testbed.sh wrote one): API requests not counted")
    ensure_operator(kube)
    header(f"mpijob_load: {args.jobs} MPIJobs of {args.workers} workers, at most {args.parallel} running")
    with contextlib.ExitStack() as stack:
        ns = kube.create_namespace("kompi-bench-load")
        stack.callback(kube.delete_namespace, ns)
        path = f"/apis/kubeflow.org/v2beta1/namespaces/{ns}/mpijobs"
        rss_before = operator_rss_kib(kube)
        offset = audit_offset()
        observer = Observer(kube, ns)
        stack.callback(observer.close)
        rss = RssSampler(kube)
        stack.callback(rss.close)
        names = [f"load-{i}" for i in range(args.jobs)]
        created: dict[str, float] = {}
        t0 = time.monotonic()
        for name in names:
            kube.create(path, mpijob(name, args.workers))
            created[name] = time.monotonic()
        last_submitted = time.monotonic()
        log(f"{args.jobs} jobs submitted in {sec(last_submitted - t0)}; resuming {args.parallel} at a time")
        resumed: dict[str, float] = {}
        queue = list(names)
        deadline = t0 + args.timeout
        loads, last_load = [loadavg()], time.monotonic()
        while time.monotonic() < deadline:
            with observer.lock:
                finished = dict(observer.finished)
            if len(finished) == len(names):
                break
            running = [n for n in resumed if n not in finished]
            while queue and len(running) < args.parallel:
                name = queue.pop(0)
                kube.merge_patch(f"{path}/{name}", {"spec": {"runPolicy": {"suspend": False}}})
                resumed[name] = time.monotonic()
                running.append(name)
            if time.monotonic() - last_load > 30:
                loads.append(loadavg())
                last_load = time.monotonic()
            time.sleep(0.2)
        end = time.monotonic()
        time.sleep(1)  # one more observation of the last pods
        observer.close()
        rss.close()
        rss_after = operator_rss_kib(kube)
        requests = audit_since(offset)

    succeeded = [n for n, (_, how) in observer.finished.items() if how == "Succeeded"]
    failed = [n for n, (_, how) in observer.finished.items() if how == "Failed"]
    lost = [n for n in names if n not in observer.finished]
    pods_per_job = [len(observer.pods.get(n, ())) for n in names]
    duplicated = [n for n in names if len(observer.pods.get(n, ())) > args.workers + 1]
    latencies = [observer.suspended[n] - created[n] for n in names if n in observer.suspended]
    runs = [observer.finished[n][0] - resumed[n] for n in names if n in observer.finished and n in resumed]
    last_finished = max((t for t, _ in observer.finished.values()), default=None)
    print(table(["jobs", "Succeeded", "Failed", "never finished", "pods per job (min-max)", "jobs with duplicate pods"],
                [[args.jobs, len(succeeded), len(failed), len(lost), f"{min(pods_per_job)}-{max(pods_per_job)}", len(duplicated)]]))
    print()
    print(table(["reconcile latency p50", "p99", "run per job (median)", "last submitted -> last finished", "operator RSS before",
                 "peak", "after"],
                [[sec(median(latencies)) if latencies else "-", sec(p99(latencies)) if latencies else "-",
                  sec(median(runs)) if runs else "-",
                  sec(last_finished - last_submitted) if last_finished else f"> {sec(end - last_submitted)}",
                  mib(rss_before), mib(max(rss.samples, default=0)), mib(rss_after)]]))
    if requests is not None:
        total = sum(requests.values())
        print()
        print(table(["operator API requests", "per job"] + sorted(requests),
                    [[total, f"{total / args.jobs:.1f}"] + [f"{requests[v] / args.jobs:.1f}" for v in sorted(requests)]]))
    print(f"\nload every 30 s: {'; '.join(loads)}")
    for what, which in (("failed", failed), ("never finished", lost), ("duplicate pods", duplicated)):
        if which:
            print(f"{what}: {', '.join(which)}")
    return 0 if len(succeeded) == args.jobs and not duplicated else 1


if __name__ == "__main__":
    main_guard(main)
