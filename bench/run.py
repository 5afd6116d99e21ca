"""`make bench`: speed and memory, as ratios against references measured in
the same run.

* start-up: the WASI probe under this host vs `wasmtime run` (warm caches);
* TCP echo: the same guest echoing 8 MiB under this host vs `wasmtime run`,
  and a native Python socket client doing the same;
* HTTPS download: the https-get guest fetching 32 MiB under this host vs a
  native Python `ssl` client. (`wasmtime run -S tls` cannot take part: its
  trust roots are compiled in and it rejects the local test CA.)
* peak memory (max RSS) of each guest run.

Each figure is the median of several runs. Only loopback is used.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import trustme
import wasmtime_cli

ROOT = Path(__file__).resolve().parent.parent
GUESTS = ROOT / "build" / "guests"
WASMTIME = str(Path(wasmtime_cli.__file__).with_name("wasmtime"))
HOST = [sys.executable, "-m", "wasi_tls_host", "run"]
PAYLOAD = 8 << 20
#: Large enough that the host's start-up (see the first row) is amortised.
HTTPS_PAYLOAD = 32 << 20
REPEATS = 3


def timed(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command} failed: {process.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss


def median_run(command: list[str]) -> tuple[float, int]:
    timed(command)  # warm the compile cache
    runs = [timed(command) for _ in range(REPEATS)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


class EchoServer:
    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            conn, _ = self.listener.accept()
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)


def native_echo(port: int) -> float:
    """A Python client doing what the echo guest does: send and read back concurrently."""
    data = bytes(i % 251 for i in range(PAYLOAD))
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as conn:
        sender = threading.Thread(target=conn.sendall, args=(data,))
        sender.start()
        received = 0
        while received < PAYLOAD:
            received += len(conn.recv(1 << 20))
        sender.join()
    return time.perf_counter() - start


def https_server(ca: trustme.CA, body: bytes) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def native_https(port: int, ca_file: str) -> float:
    import http.client
    context = ssl.create_default_context(cafile=ca_file)
    start = time.perf_counter()
    connection = http.client.HTTPSConnection("localhost", port, context=context)
    connection.request("GET", "/blob")
    digest = hashlib.sha256()
    response = connection.getresponse()
    while chunk := response.read(1 << 16):
        digest.update(chunk)
    connection.close()
    return time.perf_counter() - start


def row(name: str, ours: float, reference: float, reference_name: str, unit: str) -> None:
    print(f"{name:<34} {ours:9.3f} {unit:<5} {reference_name:<16} {reference:9.3f} {unit:<5} "
          f"ours/ref {ours / reference:.3g}x")


def main() -> int:
    for guest in ("wasi-probe", "tcp-echo-client", "https-get"):
        if not (GUESTS / f"{guest}.wasm").exists():
            print(f"missing build/guests/{guest}.wasm: run `make bench`", file=sys.stderr)
            return 2
    mib = PAYLOAD / (1 << 20)
    print(f"wasi-tls-host benchmarks (median of {REPEATS}, loopback)\n")

    probe = str(GUESTS / "wasi-probe.wasm")
    ours_start, ours_start_rss = median_run([*HOST, probe])
    theirs_start, theirs_start_rss = median_run([WASMTIME, "run", probe])
    row("start-up, probe guest", ours_start, theirs_start, "wasmtime run", "s")

    echo = EchoServer()
    echo_guest = str(GUESTS / "tcp-echo-client.wasm")
    target = f"127.0.0.1:{echo.port}"
    ours_echo, ours_echo_rss = median_run(
        [*HOST, "--allow-net", target, echo_guest, target, str(PAYLOAD)])
    theirs_echo, theirs_echo_rss = median_run(
        [WASMTIME, "run", "-S", "inherit-network", echo_guest, target, str(PAYLOAD)])
    native_echo_s = statistics.median(native_echo(echo.port) for _ in range(REPEATS))
    row("TCP echo 8 MiB, guest", ours_echo, theirs_echo, "wasmtime run", "s")
    row("TCP echo 8 MiB, throughput", 2 * mib / ours_echo, 2 * mib / native_echo_s,
        "native python", "MiB/s")

    ca = trustme.CA()
    body = os.urandom(HTTPS_PAYLOAD)
    server = https_server(ca, body)
    port = server.server_address[1]
    with tempfile.TemporaryDirectory() as scratch:
        ca_file = os.path.join(scratch, "ca.pem")
        ca.cert_pem.write_to_path(ca_file)
        ours_https, ours_https_rss = median_run(
            [*HOST, "--ca-file", ca_file, "--allow-net", f"localhost:{port}",
             str(GUESTS / "https-get.wasm"), f"https://localhost:{port}/blob"])
        native_https_s = statistics.median(native_https(port, ca_file) for _ in range(REPEATS))
    server.shutdown()
    https_mib = HTTPS_PAYLOAD / (1 << 20)
    row(f"HTTPS GET {https_mib:.0f} MiB, throughput", https_mib / ours_https,
        https_mib / native_https_s, "native python", "MiB/s")
    print("HTTPS vs `wasmtime run -S tls`: not measurable here (its compiled-in roots "
          "reject the local CA)")

    print()
    row("peak RSS, probe", ours_start_rss / 1024, theirs_start_rss / 1024, "wasmtime run", "MiB")
    row("peak RSS, TCP echo 8 MiB", ours_echo_rss / 1024, theirs_echo_rss / 1024,
        "wasmtime run", "MiB")
    print(f"{f'peak RSS, HTTPS GET {https_mib:.0f} MiB':<34} {ours_https_rss / 1024:9.3f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
