"""Shared helpers of kompi's benchmarks (Python 3.11 standard library only).

Statistics and tables, the machine's load, commands with timeouts and their timing, phases (parts of
a benchmark with a time budget, that may fail without ending the run), cleanup that also runs, to its
end, on SIGTERM and Ctrl-C, a minimal Kubernetes API client (the testbed's admin kubeconfig, read
through `kubectl config view`), and a request-counting HTTP -> HTTPS proxy for the API server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import ctypes.util
import http.client
import json
import math
import os
import select
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TESTBED_KUBECONFIG = "/tmp/kompi-testbed/kubeconfig"
# Seconds an API request may wait for each read or write.
API_TIMEOUT = 30


# --- output -------------------------------------------------------------------------------------

def log(msg: str) -> None:
    """Progress goes to stderr, figures to stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` shows them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> str:
    mem_kib = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
    return f"{os.cpu_count()} CPUs, {mem_kib / 2**20:.0f} GiB, kernel {os.uname().release}"


def header(title: str) -> None:
    print(f"# {title}")
    print(f"date {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {machine()}; load average at start {loadavg()}")
    print()


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def p99(xs):
    """Nearest-rank 99th percentile (with fewer than 100 samples: the maximum)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[max(0, math.ceil(0.99 * len(s)) - 1)]


def ms(seconds: float) -> str:
    return "n/a" if seconds != seconds else f"{seconds * 1000:.1f} ms"


def sec(seconds: float) -> str:
    return "n/a" if seconds != seconds else f"{seconds:.2f} s"


def ratio(a: float, b: float) -> str:
    return "n/a" if not b or a != a or b != b else f"{a / b:.2f}x"


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table, its columns padded so it also reads well in a terminal."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    out = [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def pingpong_table(out: str) -> dict[int, tuple[float, float]]:
    """examples/pingpong's table: message size in bytes -> (one-way latency in µs, bandwidth in MB/s)."""
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit():
            rows[int(parts[0])] = (float(parts[1]), float(parts[2]))
    if 8 not in rows or 4 << 20 not in rows:
        raise RuntimeError(f"unexpected pingpong output:\n{out[-2000:]}")
    return rows


# --- processes ----------------------------------------------------------------------------------

def require_root() -> None:
    if os.geteuid() != 0:
        sys.exit("this benchmark needs root (network namespaces, sshd)")


def kompi_bin() -> str:
    path = os.environ.get("KOMPI") or str(REPO / "target/release/kompi")
    if not os.access(path, os.X_OK):
        sys.exit(f"{path} is missing: run `cargo build --release -p kompi` (or set KOMPI=/path/to/kompi)")
    return path


def example_bin(name: str) -> str:
    path = REPO / "examples/bin" / name
    if not os.access(path, os.X_OK):
        sys.exit(f"{path} is missing: run `make -C examples`")
    return str(path)


# Every command a benchmark runs gets a timeout: this one unless it says otherwise.
COMMAND_TIMEOUT = 120


def run(cmd: list[str], *, check: bool = True, timeout: float = COMMAND_TIMEOUT, input: str | None = None,
        abort: threading.Event | None = None, **kw) -> subprocess.CompletedProcess:
    """Runs cmd with its output captured. After `timeout` seconds, or as soon as `abort` is set (by
    another thread), the child gets SIGTERM (SIGKILL 2 s later) and subprocess.TimeoutExpired is
    raised; so it is when the benchmark is interrupted, which then carries on. On failure (check)
    raises with what it printed."""
    deadline = time.monotonic() + timeout
    stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
    with subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw) as p:
        try:
            while True:
                # communicate() may be called again after a timeout without losing output: short
                # slices let `abort` be noticed.
                left = deadline - time.monotonic()
                try:
                    out, err = p.communicate(input, timeout=max(0.0, min(left, 0.2) if abort else left))
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() >= deadline or (abort is not None and abort.is_set()):
                        raise
        except BaseException as e:
            stop_process(p, grace=2)
            if isinstance(e, subprocess.TimeoutExpired):
                why = "was stopped" if abort is not None and abort.is_set() else f"timed out after {timeout:g} s"
                raise subprocess.TimeoutExpired(cmd, timeout, output=f"{os.path.basename(cmd[0])} {' '.join(cmd[1:3])} … {why}") from None
            raise
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {p.returncode}:\n{out}{err}")
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def timed(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    """Wall time of cmd from just before fork to its exit (output captured)."""
    t0 = time.monotonic()
    p = run(cmd, **kw)
    return time.monotonic() - t0, p


def stop_process(p: subprocess.Popen, grace: float = 5) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds: only the process we started, by its pid."""
    with cleanup_section():
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# --- ending on SIGTERM, SIGHUP and Ctrl-C ---------------------------------------------------------
#
# The first signal raises KeyboardInterrupt in the main thread, so every `finally`, ExitStack and
# `with` block cleans up. Cleanup itself is not cut short: a signal that arrives inside a cleanup
# section (and every later signal) is only noted, and the interruption is raised when it ends.

_stopping = threading.Event()
_signal_name = ""
_cleanup_depth = 0


def stopping() -> bool:
    """True once a signal asked the benchmark to end: cleanup then skips what only a next run needs."""
    return _stopping.is_set()


def _note(msg: str) -> None:
    # os.write, not print: a signal handler may run while the main thread is inside a print.
    os.write(2, f"[{time.strftime('%H:%M:%S')}] {msg}\n".encode())


def _on_signal(signum, _frame):
    global _signal_name
    name = signal.Signals(signum).name
    if _stopping.is_set():
        _note(f"{name}: already ending, cleaning up")
        return
    _signal_name = name
    _stopping.set()
    if _cleanup_depth == 0:
        raise KeyboardInterrupt(name)
    _note(f"{name}: ending once this cleanup step is done")


def install_signal_handlers() -> None:
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, _on_signal)


@contextlib.contextmanager
def cleanup_section():
    """A block that a signal does not cut short; the interruption is raised when the outermost such
    block ends (unless it ends with an exception already, which then carries on)."""
    global _cleanup_depth
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are handled in the main thread only
        return
    _cleanup_depth += 1
    try:
        yield
    finally:
        _cleanup_depth -= 1
    if _cleanup_depth == 0 and _stopping.is_set():
        raise KeyboardInterrupt(_signal_name)


class Cleanup(contextlib.ExitStack):
    """An ExitStack whose callbacks all run to their end, even when a signal arrives meanwhile."""

    def __exit__(self, *exc):
        with cleanup_section():
            return super().__exit__(*exc)


def main_guard(main) -> None:
    """Runs main(); interrupted or failed, the cleanup registered in it has run by the time we exit."""
    install_signal_handlers()
    try:
        status = main()
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); cleaned up")
        sys.exit(130)
    sys.exit(status)


# --- phases: parts of a benchmark with a time budget, that may fail without ending the run ---------

class PhaseTimeout(TimeoutError):
    pass


class Phase:
    """One part of a benchmark. Its figures accumulate in `figures` as they are measured, so a phase
    that runs out of time or fails still prints what it measured and says why it stopped (`note()`),
    and the benchmark goes on with its next phase."""

    def __init__(self, title: str, budget: float):
        self.title, self.budget = title, budget
        self.figures: dict = {}
        self.error: str | None = None
        self.deadline = float("inf")

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def timeout(self, seconds: float) -> float:
        """A wait of at most `seconds` that also ends with the phase's budget."""
        return max(0.0, min(seconds, self.left()))

    def check(self, doing: str = "") -> None:
        if self.left() <= 0:
            raise PhaseTimeout(f"out of its {self.budget:.0f} s budget" + (f" while {doing}" if doing else ""))

    def sleep(self, seconds: float) -> None:
        time.sleep(self.timeout(seconds))
        self.check()

    def run(self, fn, *args) -> "Phase":
        """fn(self, *args). An exception ends the phase, not the benchmark (an interruption does)."""
        log(self.title)
        self.deadline = time.monotonic() + self.budget
        try:
            fn(self, *args)
        except Exception as e:  # noqa: BLE001 - reported under the phase's table; the next phase runs
            timed_out = isinstance(e, (TimeoutError, subprocess.TimeoutExpired))
            self.error = f"{'timed out' if timed_out else 'failed'}: {describe(e)}"
            details = str(e).strip().split("\n", 1)[1:]  # e.g. a log's last lines: stderr only
            log(f"{self.title} {self.error}" + "".join(f"\n{d}" for d in details))
        return self

    def skip(self, why: str) -> "Phase":
        self.error = f"not run: {why}"
        return self

    def note(self) -> str:
        """The line under the phase's table when it did not finish, else ""."""
        return "" if self.error is None else f"**{self.error}** (any figures above were measured before it stopped)"


def describe(e: BaseException) -> str:
    """One line that says what went wrong."""
    if isinstance(e, subprocess.TimeoutExpired) and isinstance(e.output, str) and e.output:
        return e.output
    text = (str(e) or type(e).__name__).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def proc_memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


# --- file change detection (inotify through ctypes, polling as a fallback) -----------------------

class DirWatch:
    """Wakes up when a file in a directory is written or renamed into place (atomic replacement)."""

    IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x8, 0x80, 0x100

    def __init__(self, directory: str):
        self.fd = -1
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name, use_errno=True) if name else None
        if libc is not None and hasattr(libc, "inotify_init1"):
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            mask = self.IN_CLOSE_WRITE | self.IN_MOVED_TO | self.IN_CREATE
            if fd >= 0 and libc.inotify_add_watch(fd, directory.encode(), mask) >= 0:
                self.fd = fd
            elif fd >= 0:
                os.close(fd)

    def wait_until(self, predicate, timeout: float) -> float | None:
        """Returns time.monotonic() of the first moment predicate() holds, or None after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if predicate():
                return now
            if now >= deadline:
                return None
            if self.fd >= 0:
                r, _, _ = select.select([self.fd], [], [], min(0.5, deadline - now))
                if r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.fd, 65536)
            else:
                time.sleep(0.001)

    def drain(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(BlockingIOError):
                while os.read(self.fd, 65536):
                    pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# --- Kubernetes API -----------------------------------------------------------------------------

class ApiError(RuntimeError):
    def __init__(self, method, path, status, body):
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")
        self.status = status


class Kube:
    """A small API client: one keep-alive HTTPS connection per thread, JSON in and out."""

    def __init__(self, kubeconfig: str = TESTBED_KUBECONFIG):
        self.kubeconfig = kubeconfig
        cfg = json.loads(run(["kubectl", "config", "view", "--raw", "-o", "json", "--kubeconfig", kubeconfig]).stdout)
        ctx_name = cfg["current-context"]
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        self.server = cluster["server"]
        url = urllib.parse.urlsplit(self.server)
        self.host, self.port = url.hostname, url.port or 443
        self._files = tempfile.TemporaryDirectory(prefix="kompi-bench-kube-")
        self.ca_file = self._file(cluster, "certificate-authority", "ca.crt")
        self.ctx = ssl.create_default_context(cafile=self.ca_file)
        self.token = user.get("token")
        if "client-certificate" in user or "client-certificate-data" in user:
            self.ctx.load_cert_chain(self._file(user, "client-certificate", "client.crt"), self._file(user, "client-key", "client.key"))
        self._local = threading.local()

    def _file(self, section: dict, key: str, name: str) -> str:
        if key in section:
            return section[key]
        path = os.path.join(self._files.name, name)
        Path(path).write_bytes(base64.b64decode(section[f"{key}-data"]))
        os.chmod(path, 0o600)
        return path

    def _conn(self, timeout: float) -> http.client.HTTPSConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)
            self._local.conn = conn
        conn.timeout = timeout  # for the next connect
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def request(self, method: str, path: str, body=None, content_type: str = "application/json", ok=(200, 201, 202),
                timeout: float = API_TIMEOUT):
        """One request; each read and write waits at most `timeout` seconds (then TimeoutError)."""
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            conn = self._conn(timeout)
            try:
                conn.request(method, path, data, headers)
                resp = conn.getresponse()
                text = resp.read().decode()
                break
            except (http.client.HTTPException, OSError) as e:
                conn.close()
                self._local.conn = None
                if isinstance(e, TimeoutError):
                    raise TimeoutError(f"{method} {path}: the API server did not answer within {timeout:g} s") from None
                if attempt == 2:
                    raise
                # else a keep-alive connection the server had closed: reconnect once.
        if ok is not None and resp.status not in ok:
            raise ApiError(method, path, resp.status, text)
        return resp.status, (json.loads(text) if text.startswith("{") else text)

    def get(self, path: str):
        return self.request("GET", path)[1]

    def get_opt(self, path: str):
        status, obj = self.request("GET", path, ok=(200, 404))
        return obj if status == 200 else None

    def create(self, path: str, obj: dict):
        return self.request("POST", path, obj)[1]

    def delete(self, path: str, grace: int | None = None, propagation: str | None = "Background", timeout: float = API_TIMEOUT):
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace is not None:
            body["gracePeriodSeconds"] = grace
        if propagation:
            body["propagationPolicy"] = propagation
        return self.request("DELETE", path, body, ok=(200, 202, 404), timeout=timeout)[0] != 404

    def merge_patch(self, path: str, patch: dict):
        return self.request("PATCH", path, patch, content_type="application/merge-patch+json")[1]

    def alive(self, timeout: float = 5) -> bool:
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)
        try:
            conn.request("GET", "/readyz")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    # Namespaces: every benchmark works in namespaces of its own and deletes them at the end.
    def create_namespace(self, prefix: str) -> str:
        name = f"{prefix}-{os.getpid()}-{int(time.time()) % 100000}"
        self.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"kompi-bench": "1"}}})
        # Pods need the namespace's default ServiceAccount, which the controller-manager adds shortly.
        try:
            deadline = time.monotonic() + 60
            while self.get_opt(f"/api/v1/namespaces/{name}/serviceaccounts/default") is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"namespace {name}: no default ServiceAccount after 60 s")
                time.sleep(0.2)
        except BaseException:
            self.delete_namespace(name)
            raise
        return name

    def delete_namespace(self, name: str) -> None:
        log(f"deleting namespace {name} (the namespace controller finishes in the background)")
        with cleanup_section():
            try:
                self.delete(f"/api/v1/namespaces/{name}", propagation=None, timeout=10)
            except Exception as e:  # noqa: BLE001 - the run's figures still count; say what is left behind
                log(f"could not delete namespace {name} ({describe(e)}): `kubectl delete namespace {name}` removes it")

    def issue_token(self, namespace: str, account: str, seconds: int = 7200) -> str:
        req = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": seconds}}
        return self.create(f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", req)["status"]["token"]

    def token_kubeconfig(self, path: str, token: str, namespace: str, server: str | None = None) -> str:
        """A kubeconfig authenticating with a bearer token (server: this API server, or e.g. a proxy).
        Written as JSON, which is YAML too."""
        cluster = {"server": server or self.server}
        if cluster["server"].startswith("https"):
            cluster["certificate-authority"] = self.ca_file
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": cluster}],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": namespace}}],
            "current-context": "x",
        }
        Path(path).write_text(json.dumps(config, indent=1))
        os.chmod(path, 0o600)
        return path


def testbed_kube() -> Kube | None:
    """The testbed's admin client, or None (after saying why) when the API server does not answer."""
    path = os.environ.get("KUBECONFIG", TESTBED_KUBECONFIG).split(":")[0]
    if not Path(path).exists():
        log(f"no kubeconfig at {path}: is the testbed up? (testbed/testbed.sh up)")
        return None
    try:
        kube = Kube(path)
    except Exception as e:  # noqa: BLE001 - any failure means: no usable API
        log(f"cannot read {path}: {e}")
        return None
    if not kube.alive():
        log(f"the API server at {kube.server} does not answer /readyz")
        return None
    return kube


# --- kompi's MPIJob operator on the testbed ---------------------------------------------------------

OPERATOR_NS = "kompi-system"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NS}:kompi-operator"
AUDIT_LOG = "/tmp/kompi-testbed/audit.log"


def ensure_operator(kube: Kube) -> None:
    """Installs the operator with `kompi operator install` unless it runs."""
    deploy = kube.get_opt(f"/apis/apps/v1/namespaces/{OPERATOR_NS}/deployments/kompi-operator")
    if deploy and (deploy.get("status") or {}).get("availableReplicas"):
        return
    log("installing the operator (kompi operator install)")
    run([kompi_bin(), "operator", "install", "--kubeconfig", kube.kubeconfig, "--timeout", "180s"], timeout=240)


def operator_rss_kib(kube: Kube) -> int | None:
    """VmRSS of the operator's PID 1 (of one of its pods), or None."""
    out = run(["kubectl", "--kubeconfig", kube.kubeconfig, "-n", OPERATOR_NS, "exec", "deploy/kompi-operator", "--",
               "cat", "/proc/1/status"], check=False).stdout
    for line in out.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def audited_requests(lines, user: str = OPERATOR_USER) -> dict[str, int]:
    """Requests per verb made by `user`, from API-server audit log lines (JSON, one event each: a
    request's ResponseStarted and ResponseComplete events share its auditID, so it counts once)."""
    seen: set[str] = set()
    verbs: dict[str, int] = {}
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut by rotation
        if (event.get("user") or {}).get("username") != user or event.get("auditID") in seen:
            continue
        seen.add(event.get("auditID"))
        verbs[event.get("verb", "?")] = verbs.get(event.get("verb", "?"), 0) + 1
    return verbs


def pod_ready(pod: dict) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


# --- a request-counting proxy ---------------------------------------------------------------------

class CountingProxy:
    """Plain HTTP in, HTTPS out to the API server; logs every request's time, method and path.

    Each client connection gets one upstream TLS connection. Bytes from the API server are relayed as
    they come, so chunked watch responses stream through unchanged; the client -> server direction is
    parsed only to find where each request starts (request head, then a Content-Length or chunked
    body, trailers included; after an `Upgrade` request the rest is relayed as it comes).

    Everything runs on one asyncio event loop in a thread of its own: a TLS connection is only ever
    used from that one thread. (The first version relayed each direction in a thread of its own on one
    blocking ssl.SSLSocket. OpenSSL does not allow SSL_read and SSL_write on one SSL object from two
    threads at once: when the request was written while the other thread read the server's TLS 1.3
    session tickets, a few requests in a hundred never reached the server, and their client waited
    forever.)

    kubectl (client-go) does not send a bearer token over plain HTTP; with `token`, the proxy adds
    `Authorization: Bearer <token>` to requests that carry none."""

    HEAD_LIMIT = 1 << 20  # a longer request head is refused (the connection is closed)

    def __init__(self, upstream_host: str, upstream_port: int, ca_file: str, token: str | None = None, connect_timeout: float = 10):
        self.upstream = (upstream_host, upstream_port)
        self.token = token
        self.connect_timeout = connect_timeout
        self.ctx = ssl.create_default_context(cafile=ca_file)
        self.requests: list[tuple[float, str, str]] = []  # (time.monotonic(), method, path)
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(lambda _loop, _context: None)  # a client gone mid-way is no news
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),), name=f"proxy-{self.port}", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the counting proxy did not start")

    async def _main(self):
        self._stop = asyncio.Event()
        self._conns: set[asyncio.Task] = set()
        server = await asyncio.start_server(self._serve, sock=self.sock, limit=self.HEAD_LIMIT)
        self._started.set()
        await self._stop.wait()
        server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        await asyncio.sleep(0)  # lets the aborted transports finish closing their sockets

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter):
        task = asyncio.current_task()
        self._conns.add(task)
        upstream_out = None
        try:
            upstream_in, upstream_out = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream, ssl=self.ctx, server_hostname=self.upstream[0], limit=self.HEAD_LIMIT),
                self.connect_timeout)
            directions = [asyncio.create_task(self._requests(client_in, upstream_out)),
                          asyncio.create_task(self._relay(upstream_in, client_out))]
            # Either side closing ends the connection (HTTP clients do not half-close).
            _, pending = await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
            for d in pending:
                d.cancel()
            await asyncio.gather(*directions, return_exceptions=True)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writers = [w for w in (client_out, upstream_out) if w is not None]
            for w in writers:
                w.close()  # sends what is still buffered, then TLS's close_notify upstream
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.gather(*(w.wait_closed() for w in writers)), 2)
            for w in writers:
                w.transport.abort()  # no-op for those already closed
            self._conns.discard(task)

    @staticmethod
    async def _relay(src: asyncio.StreamReader, dst: asyncio.StreamWriter):
        while chunk := await src.read(65536):
            dst.write(chunk)
            await dst.drain()

    async def _requests(self, client: asyncio.StreamReader, upstream: asyncio.StreamWriter):
        async def copy(n: int):
            while n > 0:
                data = await client.read(min(n, 65536))
                if not data:
                    raise asyncio.IncompleteReadError(b"", n)
                upstream.write(data)
                n -= len(data)

        while True:
            try:
                head = await client.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # the client closed its connection (between requests, or inside a head)
            lines = head.decode("latin-1").split("\r\n")
            method, path = (lines[0].split(" ") + ["", ""])[:2]
            with self.lock:
                self.requests.append((time.monotonic(), method, path))
            headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
            if self.token and "authorization" not in headers:
                head = head[:-2] + f"Authorization: Bearer {self.token}\r\n\r\n".encode()
            upstream.write(head)
            if "upgrade" in headers:
                await self._relay(client, upstream)  # after 101 Switching Protocols, no more HTTP
                return
            if "chunked" in headers.get("transfer-encoding", "").lower():
                while True:  # chunk-size line, data, CRLF; a 0-size chunk, trailers and a blank line end it
                    line = await client.readuntil(b"\r\n")
                    upstream.write(line)
                    size = int(line.split(b";")[0], 16)
                    if size == 0:
                        while (trailer := await client.readuntil(b"\r\n")) != b"\r\n":
                            upstream.write(trailer)
                        upstream.write(b"\r\n")
                        break
                    await copy(size + 2)
            else:
                await copy(int(headers.get("content-length", "0") or 0))
            await upstream.drain()

    def since(self, t0: float, t1: float | None = None) -> list[tuple[float, str, str]]:
        with self.lock:
            return [r for r in self.requests if r[0] >= t0 and (t1 is None or r[0] < t1)]

    def close(self, timeout: float = 5):
        """Closes the listening socket and every connection; returns within `timeout` seconds."""
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()


# --- kompi local clusters -------------------------------------------------------------------------

class LocalCluster:
    """`kompi local up NAME --workers N-1` in a private state directory; `down` (and the directory's
    removal) when the `with` block ends, however it ends."""

    def __init__(self, name: str, nodes: int, state_dir: str | None = None):
        self.kompi = kompi_bin()
        self.name, self.nodes = name, nodes
        self._tmp = None if state_dir else tempfile.TemporaryDirectory(prefix="kompi-bench-state-")
        self.state_dir = state_dir or self._tmp.name
        self.up_seconds = float("nan")

    def cmd(self, *args: str) -> list[str]:
        return [self.kompi, "local", "--state-dir", self.state_dir, *args]

    def __enter__(self) -> "LocalCluster":
        try:
            self.up_seconds, _ = timed(self.cmd("up", self.name, "--workers", str(self.nodes - 1)))
            self.status = json.loads(run(self.cmd("status", self.name, "-o", "json")).stdout)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        not_ready = [n["name"] for n in self.status["nodes"] if not (n["running"] and n["ssh_ready"])]
        if not_ready:
            self.__exit__(None, None, None)
            raise RuntimeError(f"kompi local up {self.name}: nodes not ready: {not_ready}")
        return self

    def down(self) -> float:
        """Removes the cluster; returns how long `kompi local down` took (NaN if it failed)."""
        try:
            seconds, _ = timed(self.cmd("down", self.name))
            return seconds
        except Exception as e:  # noqa: BLE001 - reported, and the state dir is removed below anyway
            log(f"kompi local down {self.name} failed: {e}")
            return float("nan")

    def __exit__(self, *exc) -> None:
        with cleanup_section():
            self.down()
            if self._tmp is not None:
                self._tmp.cleanup()

    @property
    def master_pid(self) -> int:
        return next(n["pid"] for n in self.status["nodes"] if n["role"] == "master")

    @property
    def hostfile(self) -> str:
        return os.path.join(self.status["state_dir"], "hostfile")

    def in_master(self, argv: list[str]) -> list[str]:
        """argv run inside the master node, entered as `kompi local exec` does: its network, UTS and
        mount namespaces (the mount namespace holds the node's private ~/.ssh and ~/.openmpi)."""
        return ["nsenter", "-t", str(self.master_pid), "-n", "-u", "-m", "--", *argv]

    def mpiexec(self, np: int, command: list[str], extra: list[str] = ()) -> list[str]:
        """The mpiexec line `kompi local run NAME --np np --npernode 1` builds (kompi-render's launcher::mpiexec)."""
        return ["mpiexec", "--hostfile", self.hostfile, "--allow-run-as-root", "--np", str(np), "--npernode", "1", *extra, *command]
