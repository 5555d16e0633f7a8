#!/usr/bin/env python3
"""Time to a ready MPI cluster on the testbed: kompi, the kubelet alone, and kube-openmpi's flow.

For W = 1, 4, 8, 16, 24 workers, median of --reps, the three flows taking turns (the order rotates from one
repetition to the next), each run in the same namespace of this benchmark's own, each starting on a
node with no pods left from the previous run:

kompi        `kompi up NAME -n NS --set mpiWorkers.num=W --wait` (the clock starts before the
             command), until it returns: it watches for the cluster to be *runnable*, the master pod
             Ready (its readiness gate is the sidecar's condition that every worker the hostfile
             lists answers on ssh from inside the master pod) with the W workers listed, the one
             condition `kompi run` waits for too. Nothing is executed in a pod to find out. After it
             returned, one untimed `kubectl exec` into the master's MPI container checks the claim:
             W workers in /kube-openmpi/generated/hostfile, each answering on port 2022 (bash
             /dev/tcp, from the master); a run whose check fails counts as failed.
plain        the kubelet alone: a Secret and a StatefulSet of W+1 pods of the same image
             (kompi/runtime:0.1.0, IfNotPresent) whose command is sshd itself with a generated host
             key, a tcpSocket readiness probe on 2022 every second (as kompi's), until all W+1 pods
             are Ready in the API (polled every 0.1 s). Created through the API directly.
kube-openmpi its chart's flow, simulated faithfully with the same image for sshd: `kubectl apply` of a
             Secret, the assets ConfigMap (gen_hostfile.sh), a headless Service, the workers'
             StatefulSet and the master Pod. The master's init container (testbed/mpi-kubectl:check,
             kubectl 1.20) runs gen_hostfile.sh, which loops on `kubectl get pod
             --field-selector=status.phase=Running` until W workers are Running; then the master's
             container starts sshd (after generating an RSA host key, as start_sshd.sh does) and
             makes its "magic" `sleep 5`; the hostfile-updater container reruns gen_hostfile.sh
             every 15 s. Ready: the same exec probe as kompi's, plus the end of the sleep 5 (a
             one-shot job's command starts only then). The 15 s updater period does not delay the
             first complete hostfile (the init container writes it); it bounds how stale the
             hostfile gets afterwards (see hostfile_freshness.py).

For every flow the time until all W+1 pods are Ready in the API is reported too.

Needs the testbed (testbed/testbed.sh up) with kompi/runtime:0.1.0 imported, and
testbed/mpi-kubectl:check for the kube-openmpi flow (without it that flow is skipped), kubectl and
target/release/kompi.
"""

import argparse
import contextlib
import datetime
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchlib import (API_TIMEOUT, ApiError, Cleanup, Kube, describe, header, kompi_bin, loadavg, log, main_guard, median, pod_ready, ratio,
                      run, sec, stopping, table, testbed_kube)

IMAGE = "kompi/runtime:0.1.0"
KUBECTL_IMAGE = "testbed/mpi-kubectl:check"
FLOWS = ["kompi", "plain", "kube-openmpi"]

# Run in the master's MPI container: $1 a marker file that must exist (or ""), $2 the workers wanted.
PROBE = r"""
f=/kube-openmpi/generated/hostfile
[ -z "$1" ] || [ -e "$1" ] || { echo "waiting for $1"; exit 3; }
hosts=$(awk 'NF && $1 !~ /^#/ { sub(/:.*/, "", $1); print $1 }' $f 2>/dev/null | grep -e '-worker-')
n=0; for h in $hosts; do n=$((n+1)); done
[ "$n" -eq "$2" ] || { echo "the hostfile lists $n workers"; exit 4; }
for h in $hosts; do timeout 2 bash -c "exec 3<>/dev/tcp/$h/2022" 2>/dev/null || { echo "$h does not answer"; exit 5; }; done
echo ready
"""

# kube-openmpi's image: start_sshd.sh (ephemeral RSA host key, keys copied with private modes, sshd
# restarted forever) in the background, then init.sh's `sleep 5`. OpenSSH 9 has no DSA, so only the
# RSA key of the two. $MARKER, if set, is created when the sleep is over.
OPENMPI_SSHD = r"""
mkdir -p /.sshd/host_keys /.sshd/user_keys/root && chmod 700 /.sshd/host_keys /.sshd/user_keys/root
ssh-keygen -q -f /.sshd/host_keys/host_rsa_key -C '' -N '' -t rsa
cp /ssh-key/openmpi/* /.sshd/user_keys/root/ && chmod 600 /.sshd/user_keys/root/*
cat > /.sshd/sshd_config <<EOT
Port 2022
HostKey /.sshd/host_keys/host_rsa_key
PermitRootLogin prohibit-password
StrictModes yes
PubkeyAuthentication yes
AuthorizedKeysFile /.sshd/user_keys/%u/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitUserEnvironment yes
PrintMotd no
EOT
(while true; do /usr/sbin/sshd -eD -f /.sshd/sshd_config; sleep 1; done) &
# magic sleep for waiting sshd being up
sleep 5
[ -z "$MARKER" ] || touch "$MARKER"
exec sleep infinity
"""

# kube-openmpi's gen_hostfile.sh (chart/templates/configmap.yaml), for cluster __NAME__ in __NS__.
GEN_HOSTFILE = r"""set -xev

target=$1
max_try=$2

trap "rm -f ${target}_new" EXIT TERM INT KILL

cluster_size=$(kubectl -n __NS__ get statefulsets __NAME__-worker -o jsonpath='{.status.replicas}')
echo "Cluster size: ${cluster_size}"

tried=0
until [ "$(wc -l < ${target}_new)" -eq $cluster_size ]; do
  pod_names=$(kubectl -n __NS__ get pod \
    --selector=app=kube-openmpi,release=__NAME__,role=worker \
    --field-selector=status.phase=Running \
    -o=jsonpath='{.items[*].metadata.name}')

  if [ -f "${target}_new" ]; then
    rm -f ${target}_new
  fi
  for p in ${pod_names}; do
    echo "${p}.__NAME__" >> ${target}_new
  done

  tried=$(expr $tried + 1)
  if [ -n "$max_try" ] && [ $max_try -ge $tried ]; then
    break
  fi
done

if [ -e ${target}_new ]; then
  mv ${target}_new ${target}
fi
"""


class Run:
    """One cluster start: the clock, the API poller and (for kompi and kube-openmpi) the exec probe."""

    def __init__(self, b: "Bench", flow: str, workers: int, name: str):
        self.b, self.flow, self.workers, self.name = b, flow, workers, name
        self.t0 = 0.0  # time.monotonic() just before the flow's first command or request
        self.t0_wall = 0.0  # the same moment on the wall clock, to place the sidecar's log lines
        self.start_cmd = None  # seconds the starting command (kubectl apply, the POSTs; kompi up's apply) took
        self.process = None  # kompi: the running `kompi up --wait`
        self.pod_ready: dict[str, float] = {}  # pod -> seconds until first seen Ready in the API
        self.all_ready = None  # seconds until all W+1 pods were Ready in the API
        self.runnable = None  # seconds until the exec probe succeeded (kompi: until `kompi up --wait` returned)
        self.hostfile_complete = None  # kompi: seconds until the sidecar logged the complete hostfile
        self.probes = 0
        self.probe_seconds = None  # how long the successful exec probe took
        self.last_refusal = ""  # what the last failed probe said
        self.failed = None
        self.load = ""

    def start_clock(self) -> None:
        self.t0, self.t0_wall = time.monotonic(), time.time()

    def poll_api(self) -> None:
        pods = self.b.kube.get(f"/api/v1/namespaces/{self.b.ns}/pods")["items"]
        now = time.monotonic() - self.t0
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        for p in live:
            if pod_ready(p):
                self.pod_ready.setdefault(p["metadata"]["name"], now)
        if len(live) == self.workers + 1 and all(pod_ready(p) for p in live):
            self.all_ready = now

    def master_running(self) -> bool:
        pod = self.b.kube.get_opt(f"/api/v1/namespaces/{self.b.ns}/pods/{self.name}-master")
        statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
        return any(c["name"] == "mpi-master" and "running" in (c.get("state") or {}) for c in statuses)

    def wait(self, timeout: float) -> None:
        """Polls until ready by this flow's definition and until all pods are Ready in the API."""
        marker = "/kube-openmpi/generated/.magic-sleep-done" if self.flow == "kube-openmpi" else ""
        probe = ["kubectl", "--kubeconfig", self.b.kube.kubeconfig, "-n", self.b.ns, "exec", f"{self.name}-master", "-c", "mpi-master",
                 "--", "bash", "-c", PROBE, "probe", marker, str(self.workers)]
        done = threading.Event()
        errors = []

        def api_poller():
            try:
                while not done.is_set() and self.all_ready is None:
                    self.poll_api()
                    time.sleep(0.1)
            except Exception as e:  # noqa: BLE001 - re-raised by the main thread
                errors.append(e)

        poller = threading.Thread(target=api_poller, daemon=True)
        poller.start()
        deadline = self.t0 + timeout
        try:
            if self.flow == "kompi":
                self.wait_for_kompi_up(deadline)
                # Untimed: is the cluster runnable, as `kompi up` said?
                p = subprocess.run(probe, capture_output=True, text=True, timeout=30)
                if p.returncode != 0:
                    raise RuntimeError(f"kompi up returned, but the exec check says: {(p.stdout + p.stderr).strip()[:200]}")
            elif self.flow != "plain":
                # Probing only once the container runs: each exec costs CPU the pods' start needs too.
                while not self.master_running():
                    if time.monotonic() > deadline:
                        raise TimeoutError("the master's container did not start")
                    time.sleep(0.1)
                while self.runnable is None:
                    self.probes += 1
                    t = time.monotonic()
                    p = run(probe, check=False, timeout=30)
                    if p.returncode == 0:
                        self.runnable = time.monotonic() - self.t0
                        self.probe_seconds = time.monotonic() - t
                    elif time.monotonic() > deadline:
                        raise TimeoutError(f"the exec probe never succeeded: {(p.stdout + p.stderr).strip()[:200]}")
                    else:
                        self.last_refusal = (p.stdout + p.stderr).strip()[:100]
                        time.sleep(0.2)
            while self.all_ready is None and not errors:
                if time.monotonic() > deadline:
                    raise TimeoutError("not all pods became Ready")
                time.sleep(0.05)
        finally:
            done.set()
            poller.join(API_TIMEOUT + 5)
        if errors:
            raise errors[0]
        if self.flow == "kompi":
            self.hostfile_complete = self.sidecar_complete()

    def wait_for_kompi_up(self, deadline: float) -> None:
        """Until `kompi up --wait` returns; its "applied" line marks the end of the apply."""
        lines = []

        def read_stderr():
            for line in self.process.stderr:
                if line.startswith("applied to namespace") and self.start_cmd is None:
                    self.start_cmd = time.monotonic() - self.t0
                lines.append(line.rstrip())

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        try:
            code = self.process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise TimeoutError("kompi up --wait did not return")
        self.runnable = time.monotonic() - self.t0
        reader.join(5)
        if code != 0:
            raise RuntimeError(f"kompi up --wait exited with {code}: {' | '.join(lines[-3:])[:200]}")

    def sidecar_complete(self) -> float | None:
        """When the sidecar logged that the hostfile lists every initial worker (its own clock line)."""
        out = run(["kubectl", "--kubeconfig", self.b.kube.kubeconfig, "-n", self.b.ns, "logs", f"{self.name}-master", "-c", "hostfile"], check=False).stdout
        for line in out.splitlines():
            if "lists every initial worker" in line:
                stamp = re.sub(r"\x1b\[[0-9;]*m", "", line).split()[0]  # 2026-11-29T08:47:31.512850Z
                when = datetime.datetime.strptime(stamp[:26].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
                return when.timestamp() - self.t0_wall
        return None

    @property
    def workers_ready(self) -> float | None:
        if self.flow == "plain":  # W+1 alike pods, no master
            return None
        times = [t for n, t in self.pod_ready.items() if not n.endswith("-master")]
        return max(times) if len(times) >= self.workers else None

    @property
    def ready(self) -> float | None:
        return self.all_ready if self.flow == "plain" else self.runnable


class Bench:
    def __init__(self, kube: Kube, stack: contextlib.ExitStack):
        self.kube = kube
        self.kompi = kompi_bin()
        self.kompi_clusters: list[str] = []  # for `kompi down` at teardown
        tmp = tempfile.TemporaryDirectory(prefix="kompi-bench-kube-up-")
        stack.callback(tmp.cleanup)
        self.dir = Path(tmp.name)
        self.ns = kube.create_namespace("kompi-bench-up")
        stack.callback(kube.delete_namespace, self.ns)
        stack.callback(self.teardown)  # runs before the namespace's deletion: no pods left behind
        self.keys()
        # kube-openmpi's chart has no ServiceAccount (its issue #24); its kubectl containers run as the
        # namespace's default account, which users had to allow these reads by hand.
        rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/" + self.ns
        kube.create(f"{rbac}/roles", {"metadata": {"name": "kube-openmpi"}, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get", "list"]}]})
        kube.create(f"{rbac}/rolebindings", {"metadata": {"name": "kube-openmpi"},
                                            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kube-openmpi"},
                                            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": self.ns}]})

    def keys(self) -> None:
        d = self.dir
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kompi-bench", "-f", str(d / "id")])
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "host", "-f", str(d / "host")])
        self.private, self.public = (d / "id").read_text(), (d / "id.pub").read_text()
        self.host_key = (d / "host").read_text()

    # --- the three flows ----------------------------------------------------------------------------

    def start_kompi(self, r: Run) -> None:
        r.start_clock()
        r.process = subprocess.Popen([self.kompi, "up", r.name, "-n", self.ns, "--set", f"mpiWorkers.num={r.workers}", "--wait",
                                      "--timeout", "300s", "--kubeconfig", self.kube.kubeconfig],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def start_plain(self, r: Run) -> None:
        labels = {"kompi-bench/run": r.name}
        secret = {"metadata": {"name": f"{r.name}-ssh", "labels": labels}, "stringData": {
            "sshd_config": "Port 2022\nHostKey /etc/plain-ssh/ssh_host_ed25519_key\nAuthorizedKeysFile /etc/plain-ssh/authorized_keys\n"
                           "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUsePAM no\nStrictModes yes\nPrintMotd no\n",
            "ssh_host_ed25519_key": self.host_key, "authorized_keys": self.public}}
        sts = {"metadata": {"name": r.name, "labels": labels}, "spec": {
            "replicas": r.workers + 1, "podManagementPolicy": "Parallel", "serviceName": r.name,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {
                "automountServiceAccountToken": False, "enableServiceLinks": False,
                "volumes": [{"name": "ssh", "secret": {"secretName": f"{r.name}-ssh", "defaultMode": 0o400}}],
                "containers": [{
                    "name": "sshd", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                    "command": ["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/plain-ssh/sshd_config"],
                    "ports": [{"containerPort": 2022, "name": "ssh"}],
                    "readinessProbe": {"tcpSocket": {"port": 2022}, "periodSeconds": 1, "timeoutSeconds": 1},
                    "volumeMounts": [{"name": "ssh", "mountPath": "/etc/plain-ssh", "readOnly": True}]}]}}}}
        r.start_clock()
        self.kube.create(f"/api/v1/namespaces/{self.ns}/secrets", secret)
        self.kube.create(f"/apis/apps/v1/namespaces/{self.ns}/statefulsets", sts)

    def openmpi_objects(self, name: str, workers: int) -> dict:
        """kube-openmpi's chart (mpi-cluster.yaml, configmap.yaml, secrets.yaml, service.yaml) for our images."""
        labels = {"app": "kube-openmpi", "release": name}
        sshd = lambda marker: {"name": "mpi-master" if marker else "mpi-worker", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                               "command": ["bash", "-c", OPENMPI_SSHD], "env": [{"name": "MARKER", "value": marker}],
                               "ports": [{"containerPort": 2022}]}
        kubectl = lambda name_, script: {"name": name_, "image": KUBECTL_IMAGE, "imagePullPolicy": "IfNotPresent",
                                         "command": ["sh", "-c", script], "env": [{"name": "HOSTFILE_DIR", "value": "/kube-openmpi/generated"}],
                                         "volumeMounts": [{"name": "kube-openmpi-hostfile-dir", "mountPath": "/kube-openmpi/generated"},
                                                          {"name": "kube-openmpi-utils", "mountPath": "/kube-openmpi/utils"}]}
        utils = {"name": "kube-openmpi-utils", "configMap": {"name": f"{name}-assets", "items": [{"key": "gen_hostfile.sh", "path": "gen_hostfile.sh", "mode": 0o555}]}}
        key = {"name": "kube-openmpi-ssh-key", "secret": {"secretName": f"{name}-ssh-key", "defaultMode": 0o400}}
        key_mount = {"name": "kube-openmpi-ssh-key", "mountPath": "/ssh-key/openmpi"}
        master_sshd = sshd("/kube-openmpi/generated/.magic-sleep-done")
        master_sshd["volumeMounts"] = [key_mount, {"name": "kube-openmpi-hostfile-dir", "mountPath": "/kube-openmpi/generated/"}]
        worker_sshd = sshd("")
        worker_sshd["volumeMounts"] = [key_mount]
        items = [
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{name}-ssh-key", "labels": labels},
             "stringData": {"id_rsa": self.private, "id_rsa.pub": self.public, "authorized_keys": self.public}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-assets", "labels": labels},
             "data": {"gen_hostfile.sh": GEN_HOSTFILE.replace("__NS__", self.ns).replace("__NAME__", name), "hostfile_update_every": "15"}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
             "spec": {"clusterIP": "None", "selector": labels, "ports": [{"name": "ssh", "port": 2022}]}},
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": f"{name}-worker", "labels": {**labels, "role": "worker"}},
             "spec": {"replicas": workers, "podManagementPolicy": "Parallel", "serviceName": name,
                      "selector": {"matchLabels": {**labels, "role": "worker"}},
                      "template": {"metadata": {"labels": {**labels, "role": "worker"}},
                                   "spec": {"volumes": [key, utils], "containers": [worker_sshd]}}}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-master", "labels": {**labels, "role": "master"}},
             "spec": {"restartPolicy": "OnFailure", "hostname": f"{name}-master", "subdomain": name,
                      "volumes": [{"name": "kube-openmpi-hostfile-dir", "emptyDir": {}}, utils, key],
                      "initContainers": [kubectl("hostfile-initializer", "/kube-openmpi/utils/gen_hostfile.sh $HOSTFILE_DIR/hostfile")],
                      "containers": [master_sshd, kubectl("hostfile-updater",
                                     "while true; do /kube-openmpi/utils/gen_hostfile.sh $HOSTFILE_DIR/hostfile 1; sleep ${SLEEP:-15}; done")]}},
        ]
        return {"apiVersion": "v1", "kind": "List", "items": items}

    def start_openmpi(self, r: Run) -> None:
        manifest = json.dumps(self.openmpi_objects(r.name, r.workers))
        r.start_clock()
        run(["kubectl", "--kubeconfig", self.kube.kubeconfig, "-n", self.ns, "apply", "-f", "-"], input=manifest)

    # --- between runs ---------------------------------------------------------------------------------

    def teardown(self) -> None:
        """Removes every run's objects and waits until the kubelet has stopped all pods, so the next
        run starts on a quiet node. Pods get a 1 s grace period (kompi's init and sshd stop at once).
        Interrupted, the benchmark skips this: deleting its namespace removes them all."""
        if stopping():
            return
        try:
            self._teardown()
        except (ApiError, OSError, RuntimeError, subprocess.TimeoutExpired) as e:
            log(f"teardown failed: {describe(e)}")

    def _teardown(self) -> None:
        ns = self.ns
        for name in self.kompi_clusters:
            run([self.kompi, "down", name, "-n", ns, "--kubeconfig", self.kube.kubeconfig], check=False)
        self.kompi_clusters.clear()
        for path in (f"/apis/apps/v1/namespaces/{ns}/statefulsets", f"/api/v1/namespaces/{ns}/secrets",
                     f"/api/v1/namespaces/{ns}/configmaps", f"/api/v1/namespaces/{ns}/services"):
            for obj in self.kube.get(path)["items"]:
                if obj["metadata"]["name"].startswith("kb-"):
                    self.kube.delete(f"{path}/{obj['metadata']['name']}")
        deadline = time.monotonic() + 180
        while not stopping() and (pods := self.kube.get(f"/api/v1/namespaces/{ns}/pods")["items"]):
            for p in pods:
                with contextlib.suppress(ApiError):
                    self.kube.delete(f"/api/v1/namespaces/{ns}/pods/{p['metadata']['name']}", grace=1)
            if time.monotonic() > deadline:
                log(f"teardown: pods still there after 180 s: {[p['metadata']['name'] for p in pods]}")
                return
            time.sleep(0.5)

    def one(self, flow: str, workers: int, tag: str, timeout: float) -> Run:
        name = f"kb-{flow.replace('kube-openmpi', 'ko')}-{workers}-{tag}"
        r = Run(self, flow, workers, name)
        r.load = loadavg()
        try:
            if flow == "kompi":
                self.kompi_clusters.append(name)
                self.start_kompi(r)
            elif flow == "plain":
                self.start_plain(r)
            else:
                self.start_openmpi(r)
            if r.start_cmd is None and flow != "kompi":
                r.start_cmd = time.monotonic() - r.t0
            r.wait(timeout)
            log(f"{flow} W={workers} {tag}: ready {sec(r.ready)} (all pods Ready {sec(r.all_ready)}, {r.probes} probes, "
                f"last refusal {r.last_refusal!r}) load {r.load}")
        except (TimeoutError, RuntimeError, ApiError, OSError, subprocess.TimeoutExpired) as e:
            r.failed = describe(e)
            log(f"{flow} W={workers} {tag}: FAILED: {r.failed}")
        finally:
            if r.process is not None and r.process.poll() is None:
                r.process.kill()
                r.process.wait()
            if not stopping():
                t = time.monotonic()
                self.teardown()
                log(f"teardown took {time.monotonic() - t:.1f} s")
                time.sleep(2)
        return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,4,8,16,24", help="worker counts W, comma-separated (default %(default)s)")
    ap.add_argument("--reps", type=int, default=3, help="runs per flow and W (default %(default)s)")
    ap.add_argument("--flows", default=",".join(FLOWS), help="flows to run (default %(default)s)")
    ap.add_argument("--timeout", type=float, default=300, help="give up on a run after this many seconds (default %(default)s)")
    ap.add_argument("--no-warmup", action="store_true", help="skip the unrecorded W=1 run of each flow")
    args = ap.parse_args()
    kube = testbed_kube()
    if kube is None:
        print("kube_up: skipped, the testbed's API server does not answer", file=sys.stderr)
        return 2
    flows = args.flows.split(",")
    images = run(["ctr", "-n", "k8s.io", "images", "ls", "-q"], check=False).stdout
    if f"docker.io/{IMAGE}" not in images:
        sys.exit(f"{IMAGE} is not imported on the testbed (testbed/testbed.sh kompi-image)")
    if "kube-openmpi" in flows and f"docker.io/{KUBECTL_IMAGE}" not in images:
        log(f"{KUBECTL_IMAGE} is not imported (testbed/testbed.sh check builds it): skipping the kube-openmpi flow")
        flows.remove("kube-openmpi")
    header("kube_up: time to a ready cluster on the testbed")
    results: dict[tuple[str, int], list[Run]] = {}
    with Cleanup() as stack:
        b = Bench(kube, stack)
        if not args.no_warmup:
            for flow in flows:
                b.one(flow, 1, "warm", args.timeout)
        plan = [(workers, rep, flow) for workers in [int(w) for w in args.workers.split(",")] for rep in range(args.reps)
                for flow in flows[rep % len(flows):] + flows[:rep % len(flows)]]
        for workers, rep, flow in plan:
            r = b.one(flow, workers, f"r{rep}", args.timeout)
            results.setdefault((flow, workers), []).append(r)
            if r.failed is not None and not kube.alive():
                log("the API server does not answer any more (the testbed went down?): stopping; figures so far follow")
                print("WARNING: the API server went away during the run; the figures below are partial\n")
                break

    def figure(flow: str, workers: int, attr: str = "ready") -> float:
        values = [getattr(r, attr) for r in results.get((flow, workers), []) if r.failed is None]
        return median([v for v in values if v is not None])

    sizes = sorted({w for _, w in results})
    print(f"## time to a ready cluster, median of {args.reps} (kompi: `kompi up --wait` returned, runnable; kube-openmpi: runnable per the exec probe; plain: all pods Ready)")
    print()
    rows = []
    for w in sizes:
        k, p, o = figure("kompi", w), figure("plain", w), figure("kube-openmpi", w)
        failed = sum(r.failed is not None for (f, ww), runs in results.items() if ww == w for r in runs)
        rows.append([w, sec(k), sec(p), sec(o), ratio(k, p), ratio(k, o), failed])
    print(table(["W", "kompi", "plain sshd pods", "kube-openmpi", "kompi/plain", "kompi/kube-openmpi", "failed runs"], rows))
    print()
    print("## where the time goes (medians, seconds from the start)")
    print()
    rows = []
    for w in sizes:
        rows.append([w, "kompi", sec(figure("kompi", w, "start_cmd")), sec(figure("kompi", w, "workers_ready")),
                     sec(figure("kompi", w, "hostfile_complete")), sec(figure("kompi", w, "all_ready")), sec(figure("kompi", w, "runnable")),
                     "(none)"])
        rows.append([w, "plain", sec(figure("plain", w, "start_cmd")), sec(figure("plain", w, "workers_ready")), "",
                     sec(figure("plain", w, "all_ready")), "", ""])
        rows.append([w, "kube-openmpi", sec(figure("kube-openmpi", w, "start_cmd")), sec(figure("kube-openmpi", w, "workers_ready")), "",
                     sec(figure("kube-openmpi", w, "all_ready")), sec(figure("kube-openmpi", w, "runnable")),
                     sec(figure("kube-openmpi", w, "probe_seconds"))])
    print(table(["W", "flow", "start command (kompi: apply)", "workers Ready", "hostfile complete (sidecar log)", "all pods Ready", "runnable (kompi: up returned; others: probe returned)",
                 "successful probe's own time"], rows))
    print()
    print("kompi/plain with all pods Ready on both sides: " +
          ", ".join(f"W={w} {ratio(figure('kompi', w, 'all_ready'), figure('plain', w))}" for w in sizes))
    print()
    print("every run (ready s / all pods Ready s / load at start):")
    for (flow, w), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        cells = [f"{r.ready:.2f}/{r.all_ready:.2f}/{r.load.split()[0]}" if r.failed is None else f"FAILED ({r.failed[:80]})" for r in runs]
        print(f"  W={w} {flow}: " + ", ".join(cells))
    print()
    print(f"load average at end {loadavg()}")
    return 1 if any(r.failed is not None for runs in results.values() for r in runs) else 0


if __name__ == "__main__":
    main_guard(main)
