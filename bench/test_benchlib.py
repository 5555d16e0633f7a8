"""Unit tests of benchlib: the counting proxy's request handling against a real local TLS server, the
timeouts of run(), and how a benchmark ends on SIGTERM (a real child process and real signals).

Run from the repository: python3 -m unittest discover -s bench -v (scripts/test.sh does). Standard
library only; the TLS server's certificate is made with the openssl command (without it the proxy
tests are skipped).
"""

import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

TOKEN = "test-token"


class Upstream(BaseHTTPRequestHandler):
    """An HTTP/1.1 server behind TLS that answers with what it received, like an API server would
    answer a request: /echo (method, path, Authorization, body digest), /watch (a chunked stream whose
    first event comes at once and that stays open), /close (answers, then closes the connection)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: "UpstreamServer"

    def body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            data = b""
            while (size := int(self.rfile.readline().split(b";")[0], 16)) != 0:
                data += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() != b"\r\n":  # trailers
                pass
            return data
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def answer(self, payload: dict, close: bool = False) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self) -> None:
        body = self.body()
        with self.server.lock:
            self.server.seen.append((self.command, self.path))
        if self.path.startswith("/watch"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            event = b'{"type":"ADDED"}\n'
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
            self.server.stop.wait(30)  # a watch: open until the server ends
            self.close_connection = True
            return
        self.answer({"method": self.command, "path": self.path, "authorization": self.headers.get("Authorization"),
                     "body_len": len(body), "body_sha256": hashlib.sha256(body).hexdigest()}, close=self.path == "/close")

    do_GET = do_POST = do_PATCH = do_DELETE = handle_any

    def log_message(self, *args) -> None:
        pass


class UpstreamServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cert: str, key: str):
        super().__init__(("127.0.0.1", 0), Upstream)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)  # TLS 1.3 with session tickets, as the API server
        self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str]] = []
        self.stop = threading.Event()


def read_response(sock: socket.socket, buf: bytes = b"") -> tuple[bytes, dict, bytes]:
    """One Content-Length response from sock: (head, JSON body, bytes read beyond it)."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"EOF inside a response head: {buf!r}")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:"))
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("EOF inside a response body")
        rest += data
    return head, json.loads(rest[:length]), rest[length:]


@unittest.skipUnless(shutil.which("openssl"), "the openssl command is missing (scripts/install-deps.sh test installs it)")
class CountingProxyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory(prefix="kompi-bench-test-")
        cert, key = f"{cls.dir.name}/cert.pem", f"{cls.dir.name}/key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=30)
        cls.cert = cert
        cls.server = UpstreamServer(cert, key)
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop.set()
        cls.server.shutdown()
        cls.server.server_close()
        cls.dir.cleanup()

    def proxy(self, token=None) -> benchlib.CountingProxy:
        p = benchlib.CountingProxy("127.0.0.1", self.server.server_address[1], self.cert, token=token)
        self.addCleanup(p.close)
        return p

    def connect(self, proxy) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        self.addCleanup(s.close)
        return s

    def test_every_request_on_fresh_connections_is_answered(self):
        # As kubectl calls do: a new connection, two requests on it. With each direction of a TLS
        # connection in a thread of its own, a few requests in a hundred never reached the server.
        proxy = self.proxy()
        before = len(self.server.seen)
        connections = 150
        for i in range(connections):
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
                for path in (f"/version?c={i}", f"/api/v1/pods?c={i}"):
                    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                    try:
                        _, answer, _ = read_response(s)
                    except TimeoutError:
                        self.fail(f"connection {i}: no answer to GET {path} within 5 s")
                    self.assertEqual(answer["path"], path)
        self.assertEqual(len(proxy.since(0)), 2 * connections)
        self.assertEqual(len(self.server.seen) - before, 2 * connections)

    def test_bodies_and_pipelined_requests_sent_in_small_pieces(self):
        proxy = self.proxy()
        big = os.urandom(200_000)
        chunks = [b"hello ", b"chunked ", b"world"]
        wire = (b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big)
                + b"PATCH /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\nX-Trailer: t\r\n\r\n"
                + b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
        s = self.connect(proxy)
        for i in range(0, len(wire), 7919):  # request boundaries fall inside the pieces
            s.sendall(wire[i:i + 7919])
        rest = b""
        answers = []
        for _ in range(3):
            _, answer, rest = read_response(s, rest)
            answers.append(answer)
        self.assertEqual([(a["method"], a["path"]) for a in answers], [("POST", "/a"), ("PATCH", "/b"), ("GET", "/c")])
        self.assertEqual(answers[0]["body_sha256"], hashlib.sha256(big).hexdigest())
        self.assertEqual(answers[1]["body_sha256"], hashlib.sha256(b"".join(chunks)).hexdigest())
        self.assertEqual([(m, p) for _, m, p in proxy.since(0)], [("POST", "/a"), ("PATCH", "/b"), ("GET", "/c")])

    def test_token_is_added_only_to_requests_without_one(self):
        proxy = self.proxy(token=TOKEN)
        s = self.connect(proxy)
        s.sendall(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
        _, first, rest = read_response(s)
        s.sendall(b"GET /two HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer own\r\n\r\n")
        _, second, _ = read_response(s, rest)
        self.assertEqual(first["authorization"], f"Bearer {TOKEN}")
        self.assertEqual(second["authorization"], "Bearer own")

    def test_a_watch_streams_through_and_close_ends_it_at_once(self):
        proxy = self.proxy()
        s = self.connect(proxy)
        s.sendall(b"GET /watch?watch=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while b"ADDED" not in got:  # the first event arrives while the response is still open
            data = s.recv(65536)
            self.assertTrue(data, "the watch ended before its first event")
            got += data
        t = time.monotonic()
        proxy.close()
        self.assertLess(time.monotonic() - t, 3)
        self.assertEqual(s.recv(65536), b"", "the client's connection stays open after close()")
        self.assertEqual(len(proxy.since(0)), 1)

    def test_the_server_closing_a_connection_reaches_the_client(self):
        proxy = self.proxy()
        s = self.connect(proxy)
        s.sendall(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n")
        _, answer, rest = read_response(s)
        self.assertEqual(answer["path"], "/close")
        self.assertEqual(rest + s.recv(65536), b"")


class RunTest(unittest.TestCase):
    def test_a_command_past_its_timeout_is_stopped(self):
        with tempfile.TemporaryDirectory() as d:
            pidfile = Path(d) / "pid"
            t = time.monotonic()
            with self.assertRaises(subprocess.TimeoutExpired):
                benchlib.run(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 30"], timeout=0.5)
            self.assertLess(time.monotonic() - t, 4)
            self.assertFalse(Path(f"/proc/{pidfile.read_text().strip()}").exists(), "the timed-out child is still running")

    def test_abort_stops_a_command_from_another_thread(self):
        abort = threading.Event()
        threading.Timer(0.3, abort.set).start()
        t = time.monotonic()
        with self.assertRaises(subprocess.TimeoutExpired) as caught:
            benchlib.run(["sleep", "30"], abort=abort)
        self.assertLess(time.monotonic() - t, 4)
        self.assertIn("was stopped", benchlib.describe(caught.exception))


SCRIPT = """
import sys, time
sys.path.insert(0, {bench!r})
from benchlib import Cleanup, main_guard, run

def cleanup():
    open({marks!r}, "a").write("cleanup started\\n")
    time.sleep(1.5)  # a second signal arrives meanwhile: it must not cut this short
    open({marks!r}, "a").write("cleanup done\\n")

def main():
    with Cleanup() as stack:
        stack.callback(cleanup)
        run(["sh", "-c", "echo $$ > {pidfile}; exec sleep 60"], timeout=60)
    return 0

main_guard(main)
"""


class SignalTest(unittest.TestCase):
    def test_sigterm_ends_a_benchmark_after_its_whole_cleanup(self):
        with tempfile.TemporaryDirectory() as d:
            marks, pidfile = Path(d) / "marks", Path(d) / "child.pid"
            script = Path(d) / "bench.py"
            script.write_text(textwrap.dedent(SCRIPT).format(bench=str(Path(benchlib.__file__).parent), marks=str(marks), pidfile=pidfile))
            p = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)
            self.addCleanup(p.stderr.close)
            self.addCleanup(lambda: p.poll() is None and p.kill())
            deadline = time.monotonic() + 10
            while not (pidfile.exists() and pidfile.read_text().strip()):
                self.assertLess(time.monotonic(), deadline, "the benchmark did not start its command")
                time.sleep(0.05)
            child = pidfile.read_text().strip()
            t = time.monotonic()
            p.send_signal(signal.SIGTERM)
            while not marks.exists():
                self.assertLess(time.monotonic() - t, 5, "no cleanup after SIGTERM")
                time.sleep(0.05)
            p.send_signal(signal.SIGTERM)  # during the cleanup
            status = p.wait(10)
            self.assertLess(time.monotonic() - t, 6)
            self.assertEqual(status, 130, p.stderr.read())
            self.assertEqual(marks.read_text(), "cleanup started\ncleanup done\n")
            self.assertFalse(Path(f"/proc/{child}").exists(), "the benchmark's command outlived it")


if __name__ == "__main__":
    unittest.main()


class AuditedRequestsTest(unittest.TestCase):
    def event(self, audit_id, verb, user=benchlib.OPERATOR_USER, stage="ResponseComplete"):
        return json.dumps({"kind": "Event", "auditID": audit_id, "stage": stage, "verb": verb, "user": {"username": user}})

    def test_counts_each_request_of_the_user_once_by_verb(self):
        lines = [
            self.event("a", "watch", stage="ResponseStarted"),
            self.event("a", "watch"),  # the same watch, ended
            self.event("b", "create"),
            self.event("c", "patch"),
            self.event("d", "patch"),
            self.event("e", "get", user="system:serviceaccount:kompi-system:other"),
            '{"kind": "Event", "auditID": "f", "ver',  # cut by rotation
        ]
        self.assertEqual(benchlib.audited_requests(lines), {"watch": 1, "create": 1, "patch": 2})

    def test_nothing_counted_without_the_users_events(self):
        self.assertEqual(benchlib.audited_requests([self.event("a", "get", user="admin")]), {})
