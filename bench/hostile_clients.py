"""What hostile clients cost a guest TLS server: the figures in docs/security.md.

    python bench/hostile_clients.py [--handshakes N] [--seconds S] [--version 1.2|1.3]

Runs the `https-server` guest (build/guests/) under the installed
`wasi-tls-host run` with a fresh test PKI, and measures the host process
from outside (/proc/PID):

- **upload**: a client sends a request body without pause and never reads,
  for S seconds; the host's VmRSS before, and its peak while sampled every
  0.1 s (a second client is served meanwhile, which the fairness tests
  check; here it only shows the server still answers);
- **non-reader**: a client sends pipelined requests without pause and never
  reads a response, for S seconds; the same figures;
- **descriptors**: the number of entries in /proc/PID/fd before and after N
  handshakes (connect, TLS handshake, one request, close; 4 clients at a
  time), once the server has settled.

Prints one JSON object. Loopback only; needs what `make test` needs.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pki import Pki  # noqa: E402  (the tests' PKI)

HOST = str(ROOT / ".venv" / "bin" / "wasi-tls-host")
GUEST = ROOT / "build" / "guests" / "https-server.wasm"
REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
MiB = 1 << 20


def vm_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Server:
    def __init__(self, pki: Pki):
        leaf = pki["localhost"]
        self.process = subprocess.Popen(
            [HOST, "run", "--allow-net", "127.0.0.1",
             "--identity", f"localhost={leaf.cert_file},{leaf.key_file}",
             str(GUEST), "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        banner = self.process.stdout.readline().decode()
        if not banner.startswith("listening on "):
            raise RuntimeError(f"https-server did not start: {banner!r}")
        self.port = int(banner.rsplit(":", 1)[1])
        # The guest prints a line per request: keep its pipe drained.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def connect(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    return context.wrap_socket(raw, server_hostname="localhost")


def one_request(port: int, context: ssl.SSLContext) -> None:
    with connect(port, context) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        while conn.recv(65536):
            pass


def peak_rss_while(pid: int, seconds: float, send_forever) -> dict:
    """Run `send_forever(stop)` on a thread for `seconds`, sampling VmRSS."""
    before = vm_rss(pid)
    stop = threading.Event()
    sent = [0]
    thread = threading.Thread(target=send_forever, args=(stop, sent), daemon=True)
    thread.start()
    peak = before
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        peak = max(peak, vm_rss(pid))
        time.sleep(0.1)
    stop.set()
    return {"rss_before_mib": round(before / MiB, 1), "rss_peak_mib": round(peak / MiB, 1),
            "growth_mib": round((peak - before) / MiB, 1), "client_sent_mib": sent[0] // MiB}


def uploader(port: int, context: ssl.SSLContext):
    def send_forever(stop: threading.Event, sent: list[int]) -> None:
        conn = connect(port, context)
        conn.settimeout(1)
        conn.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Length: 1000000000000\r\n\r\n")
        chunk = bytes(64 * 1024)
        while not stop.is_set():
            try:
                conn.sendall(chunk)
                sent[0] += len(chunk)
            except TimeoutError:
                continue
        conn.close()
    return send_forever


def non_reader(port: int, context: ssl.SSLContext):
    def send_forever(stop: threading.Event, sent: list[int]) -> None:
        conn = connect(port, context)
        conn.settimeout(1)
        burst = REQUEST * 64
        while not stop.is_set():
            try:
                conn.sendall(burst)
                sent[0] += len(burst)
            except (TimeoutError, ssl.SSLWantWriteError):
                continue
            except OSError:
                break  # the server gave up on us
        conn.close()
    return send_forever


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--handshakes", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--version", choices=("1.2", "1.3"), default="1.3")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        pki = Pki(Path(directory))
        context = pki.client_context(options.version)
        server = Server(pki)
        pid = server.process.pid
        try:
            one_request(server.port, context)  # warm: the first request's allocations
            results: dict = {"version": options.version}
            results["upload"] = peak_rss_while(pid, options.seconds,
                                               uploader(server.port, context))
            one_request(server.port, context)
            results["non_reader"] = peak_rss_while(pid, options.seconds,
                                                   non_reader(server.port, context))
            time.sleep(1)
            fds_before = descriptors(pid)
            rss_before = vm_rss(pid)
            started = time.monotonic()
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda _: one_request(server.port, context),
                              range(options.handshakes)))
            took = time.monotonic() - started
            time.sleep(1)
            results["handshakes"] = {
                "count": options.handshakes, "seconds": round(took, 1),
                "fds_before": fds_before, "fds_after": descriptors(pid),
                "rss_before_mib": round(rss_before / MiB, 1),
                "rss_after_mib": round(vm_rss(pid) / MiB, 1)}
        finally:
            server.close()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
