"""The wasi:http figures of `make bench` (scenario `http`), each next to
wasmtime's own wasi:http in the same run:

* **serve**: requests/s and median latency of a handler's greeting (`GET /`)
  under `wasi-tls-host serve` over HTTPS, at 1 and 2 `--workers`, against
  `wasmtime serve -S cli` over plain HTTP on the same component. The load
  is `wrk` for both (C, one thread, SERVE_CONNECTIONS kept-alive
  connections for SERVE_SECONDS), which needs little CPU of its own on a
  machine whose cores the servers share with it.
* **fetch**: an outgoing GET of FETCH_BYTES by a command component, process
  start to exit: `wasi-tls-host run` over HTTPS against `wasmtime run -S
  http` over plain HTTP, from the same origin in this process; and
  `wasi-tls-host run` over plain HTTP too, to show what TLS adds.

Every component that is built takes part: the componentize-py guests
(`make guests`) always, the JavaScript ones (`make js-guests`) when
build/js has them.

Under `make bench`, run.py is `__main__`; the helpers are taken from the
module that defined the `Bench` handed in, not from a second import of it.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from statistics import median

import loopback

ROOT = Path(__file__).resolve().parent.parent
JS_BUILD = ROOT / "build" / "js"
SERVE_SECONDS = 4
WARM_UP_SECONDS = 1
SERVE_CONNECTIONS = 16
WORKER_COUNTS = (1, 2)
#: How long a server may take to listen: a first start compiles the component.
START_TIMEOUT_S = 180.0
FETCH_BYTES = 16 << 20
MIB = 1 << 20


#: The first line each server prints (ours on stdout, wasmtime's on stderr),
#: with the port it listens on: both are given port 0, so no other process on
#: this shared machine can take the port between a choice and the bind.
_SERVING = re.compile(rb"(?:serving on|Serving HTTP on) (https?://[^/\s]+/)")


@contextlib.contextmanager
def _server(command: list[str]) -> Iterator[str]:
    """Run a server until the block ends; yields the URL it says it serves on."""
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=output)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                output.seek(0)
                serving = _SERVING.search(output.read())
                if serving:
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    output.seek(0)
                    raise RuntimeError(f"{' '.join(command)} did not start serving:\n"
                                       f"{output.read().decode(errors='replace')[-2000:]}")
                time.sleep(0.2)
            yield serving.group(1).decode()
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


_LATENCY_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, seconds: int) -> dict:
    """requests/s, median latency (ms) and failed requests of one wrk run."""
    result = subprocess.run(["wrk", "-t1", f"-c{SERVE_CONNECTIONS}", f"-d{seconds}s",
                             "--latency", url], capture_output=True, text=True, check=True)
    text = result.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    latency = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)$", text, re.MULTILINE)
    if rate is None or latency is None:
        raise RuntimeError(f"wrk {url}: unexpected output:\n{text}\n{result.stderr}")
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", text)
    bad_status = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    failures = sum(int(count) for match in (socket_errors, bad_status) if match
                   for count in match.groups())
    answered = re.search(r"(\d+) requests in", text)
    if answered is None or int(answered.group(1)) == 0:
        raise RuntimeError(f"wrk {url}: no request was answered:\n{text}\n{result.stderr}")
    return {"requests_per_s": float(rate.group(1)),
            "median_ms": float(latency.group(1)) * _LATENCY_UNITS[latency.group(2)],
            "failures": failures}


def _serve_one(runner, bench, name: str, component: Path, credentials) -> None:
    Row = runner.Row
    identity = f"localhost={credentials.cert_file},{credentials.key_file}"
    with contextlib.ExitStack() as servers:
        urls = {f"serve {workers}": servers.enter_context(_server(
            [*runner.HOST_RUN[:-1], "serve", "--addr", "127.0.0.1:0", "--workers",
             str(workers), "--identity", identity, str(component)]))
            for workers in WORKER_COUNTS}
        urls["wasmtime serve"] = servers.enter_context(_server(
            [runner.WASMTIME, "serve", "-S", "cli", "--addr", "127.0.0.1:0", str(component)]))
        for url in urls.values():
            wrk(url, WARM_UP_SECONDS)
        runs = runner.interleaved({variant: functools.partial(wrk, url, SERVE_SECONDS)
                                   for variant, url in urls.items()}, runner.REPEATS)

    def figure(variant: str, key: str) -> float:
        return median(run[key] for run in runs[variant])

    anchor = "wasmtime serve -S cli, plain HTTP"
    failures = {variant: sum(run["failures"] for run in samples)
                for variant, samples in runs.items()}
    for workers in WORKER_COUNTS:
        variant = f"serve {workers}"
        note = ""
        if failures[variant] or failures["wasmtime serve"]:
            note = (f"failed requests: {failures[variant]} "
                    f"(wasmtime serve: {failures['wasmtime serve']})")
        bench.add(
            Row(f"serve over HTTPS, {workers} worker{'s' if workers > 1 else ''}, {name}",
                figure(variant, "requests_per_s"), anchor,
                figure("wasmtime serve", "requests_per_s"), "req/s", better="higher",
                note=note),
            Row(f"serve over HTTPS, {workers} worker{'s' if workers > 1 else ''}, {name}, "
                "median latency", figure(variant, "median_ms"), anchor,
                figure("wasmtime serve", "median_ms"), "ms"))
    bench.details.setdefault("http", {})[f"serve {name}"] = runs


class _Origin(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the server's `body`."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the base class's naming
        body = self.server.body  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def origin(body: bytes, context=None) -> Iterator[int]:
    """An HTTP (or, with `context`, HTTPS) server on 127.0.0.1; yields its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    server.body = body  # type: ignore[attr-defined]
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _fetched(runner, command: list[str]):
    """One fetch, checked: the guest must have received every byte."""
    run = runner.run_process(command)
    if str(FETCH_BYTES) not in run.stdout:
        raise RuntimeError(f"{' '.join(command)}: no {FETCH_BYTES}-byte body in:\n{run.stdout}")
    return run


def _fetch_one(runner, bench, name: str, component: Path, arguments: list[str],
               credentials, https_port: int, http_port: int) -> None:
    Row = runner.Row
    ca = str(credentials.ca_file)
    commands = {
        "run https": [*runner.HOST_RUN, "--ca-file", ca, "--allow-net", f"localhost:{https_port}",
                      str(component), *arguments, f"https://localhost:{https_port}/blob"],
        "run http": [*runner.HOST_RUN, "--allow-net", f"127.0.0.1:{http_port}",
                     str(component), *arguments, f"http://127.0.0.1:{http_port}/blob"],
        "wasmtime run": [runner.WASMTIME, "run", "-S", "http", str(component), *arguments,
                         f"http://127.0.0.1:{http_port}/blob"],
    }
    for command in commands.values():
        _fetched(runner, command)  # fills the compile caches
    runs = runner.interleaved({variant: functools.partial(_fetched, runner, command)
                               for variant, command in commands.items()}, runner.REPEATS)
    seconds = {variant: median(run.seconds for run in samples)
               for variant, samples in runs.items()}
    anchor = "wasmtime run -S http, plain HTTP"
    size = f"{FETCH_BYTES // MIB} MiB"
    bench.add(
        Row(f"outgoing GET {size} over HTTPS, {name}", seconds["run https"], anchor,
            seconds["wasmtime run"], "s", note="process start to exit"),
        Row(f"outgoing GET {size} over HTTP, {name}", seconds["run http"], anchor,
            seconds["wasmtime run"], "s"),
        Row(f"peak RSS, outgoing GET {size} over HTTPS, {name}",
            max(run.max_rss_mib for run in runs["run https"]), anchor,
            max(run.max_rss_mib for run in runs["wasmtime run"]), "MiB"),
    )
    bench.details.setdefault("http", {})[f"fetch {name}"] = {
        variant: [run.seconds for run in samples] for variant, samples in runs.items()}


def http_figures(bench) -> None:
    """The `http` scenario: serve, then fetch, for every built component."""
    runner = sys.modules[type(bench).__module__]
    handlers = {"JS handler": JS_BUILD / "handler.wasm",
                "http-proxy (componentize-py)": runner.GUESTS / "http-proxy.wasm"}
    fetchers = {"JS fetch()": (JS_BUILD / "fetch.wasm", ["--no-hash"]),
                "http-fetch (componentize-py)": (runner.GUESTS / "http-fetch.wasm", [])}
    missing = [str(path.relative_to(ROOT)) for path in
               [*handlers.values(), *(path for path, _ in fetchers.values())]
               if not path.exists()]
    if missing:
        print(f"http: not built, left out: {', '.join(missing)}", file=sys.stderr)
    credentials = loopback.Credentials()
    try:
        if shutil.which("wrk") is None:
            bench.add(runner.Row("serve over HTTPS", None, "wasmtime serve -S cli", None,
                                 "req/s", note="blocked: wrk is not installed "
                                               "(apt-get install wrk)"))
        else:
            for name, component in handlers.items():
                if component.exists():
                    _serve_one(runner, bench, name, component, credentials)
        body = os.urandom(FETCH_BYTES)
        with origin(body, credentials.server_context()) as https_port, \
                origin(body) as http_port:
            for name, (component, arguments) in fetchers.items():
                if component.exists():
                    _fetch_one(runner, bench, name, component, arguments, credentials,
                               https_port, http_port)
    finally:
        credentials.close()
