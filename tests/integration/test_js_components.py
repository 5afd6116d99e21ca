"""The JavaScript components (guests/js, ComponentizeJS from npm) on the anchor
host: `wasmtime run -S http,cli` for the fetch command and `wasmtime serve
-S cli` for the incoming handler, answered by curl. These prove the
components themselves work on a host nobody here wrote, before this host's
wasi:http runs them."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from dataclasses import dataclass

import pytest
from js_components import HttpOrigin, JsComponents, build_js_components, pattern

from conftest import run_wasmtime, wasmtime_cli
from peers import free_port

pytestmark = pytest.mark.js

WASMTIME_HTTP = ("-S", "http,cli")


@pytest.fixture(scope="session")
def js_components() -> JsComponents:
    return build_js_components()


@dataclass
class FetchReport:
    """What fetch.wasm printed: status, headers (in order), body size and digest."""

    status: int
    headers: list[tuple[str, str]]
    body_bytes: int
    body_sha256: str | None

    @classmethod
    def parse(cls, stdout: str) -> FetchReport:
        status, headers, size, digest = None, [], None, None
        for line in stdout.splitlines():
            key, _, rest = line.partition(" ")
            if key == "status":
                status = int(rest)
            elif key == "header":
                name, _, value = rest.partition(": ")
                headers.append((name, value))
            elif key == "body-bytes":
                size = int(rest)
            elif key == "body-sha256":
                digest = rest
        assert status is not None and size is not None, stdout
        return cls(status, headers, size, digest)

    def header(self, name: str) -> str:
        return dict(self.headers)[name]


@pytest.fixture
def origin():
    server = HttpOrigin()
    yield server
    server.close()


def fetch(js_components, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return run_wasmtime(js_components.fetch, *args, flags=WASMTIME_HTTP, stdin=stdin)


def test_fetch_reports_status_headers_size_and_digest(js_components, origin):
    run = fetch(js_components, f"{origin.url}/bytes/100000")
    assert run.returncode == 0, run.stderr
    report = FetchReport.parse(run.stdout.decode())
    assert report.status == 200
    assert report.header("content-type") == "application/octet-stream"
    assert report.header("content-length") == "100000"
    assert report.body_bytes == 100000
    assert report.body_sha256 == hashlib.sha256(pattern(100000)).hexdigest()


def test_fetch_sends_method_and_headers(js_components, origin):
    run = fetch(js_components, "-X", "GET", "-H", "x-probe: from-js", f"{origin.url}/headers")
    assert run.returncode == 0, run.stderr
    [request] = origin.received
    assert (request.method, request.path) == ("GET", "/headers")
    assert request.headers["x-probe"] == "from-js"
    assert request.headers["host"] == f"127.0.0.1:{origin.port}"


def test_fetch_streams_stdin_as_a_chunked_request_body(js_components, origin):
    body = os.urandom(3 * 1024 * 1024 + 7)
    run = fetch(js_components, "-X", "POST", "--body-stdin", "-H",
                "content-type: application/octet-stream", f"{origin.url}/sink", stdin=body)
    assert run.returncode == 0, run.stderr
    report = FetchReport.parse(run.stdout.decode())
    assert report.status == 200
    [request] = origin.received
    # No Content-Length was known up front: the body went out as it was read.
    assert request.chunked
    assert request.body_size == len(body)
    assert request.headers["content-type"] == "application/octet-stream"


def test_fetch_without_hash_counts_a_16_mib_body(js_components, origin):
    size = 16 * 1024 * 1024
    run = fetch(js_components, "--no-hash", f"{origin.url}/bytes/{size}")
    assert run.returncode == 0, run.stderr
    report = FetchReport.parse(run.stdout.decode())
    assert (report.status, report.body_bytes, report.body_sha256) == (200, size, None)


def test_fetch_relays_an_error_status_without_failing(js_components, origin):
    run = fetch(js_components, f"{origin.url}/missing")
    assert run.returncode == 0, run.stderr
    assert FetchReport.parse(run.stdout.decode()).status == 404


def test_fetch_failure_exits_non_zero_with_the_message(js_components):
    run = fetch(js_components, f"http://127.0.0.1:{free_port()}/")
    assert run.returncode != 0
    assert run.stdout == b""
    # StarlingMonkey's fetch() rejects with a generic TypeError: the
    # wasi:http error-code does not reach JavaScript.
    assert "fetch.wasm: NetworkError when attempting to fetch resource" in run.stderr.decode()


def test_wasmtime_refuses_an_https_origin_it_cannot_be_told_to_trust(js_components, pki,
                                                                     version):
    """The gap this host fills (wasmtime #8748): `wasmtime run -S http` trusts
    only its built-in roots, so the test CA's server is refused; fetch() over
    https reaches the TLS handshake and no request gets through."""
    origin = HttpOrigin(pki.server_context(pki.leaf("127.0.0.1"), version))
    try:
        run = fetch(js_components, f"{origin.url}/bytes/10")
    finally:
        origin.close()
    assert run.returncode != 0
    assert "fetch.wasm: NetworkError" in run.stderr.decode()
    assert origin.received == []


@pytest.mark.parametrize(("args", "message"), [
    ((), "no URL given"),
    (("--bogus", "http://127.0.0.1/"), "unknown option --bogus"),
    (("-H", "no-colon", "http://127.0.0.1/"), "is not NAME: VALUE"),
])
def test_fetch_usage_errors(js_components, args, message):
    run = fetch(js_components, *args)
    assert run.returncode != 0
    assert message in run.stderr.decode()
    assert "usage: fetch.wasm" in run.stderr.decode()


class WasmtimeServe:
    """`wasmtime serve -S cli` on a free loopback port, up once it said where."""

    def __init__(self, component):
        self.process = subprocess.Popen(
            [wasmtime_cli(), "serve", "-S", "cli", "--addr", "127.0.0.1:0", str(component)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        banner = self.process.stderr.readline()
        if not banner.startswith("Serving HTTP on "):
            self.process.kill()
            raise RuntimeError(
                f"wasmtime serve did not start: {banner}{self.process.stderr.read()}")
        self.url = banner.removeprefix("Serving HTTP on ").strip().rstrip("/")
        self.log: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.process.stderr:
            self.log.append(line)

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture(scope="module")
def served_handler(js_components):
    server = WasmtimeServe(js_components.handler)
    yield server
    server.close()


@dataclass
class CurlResponse:
    status: int
    headers: dict[str, str]  # the final response's, names lower-cased
    body: bytes


def curl(url: str, tmp_path, *args: str) -> CurlResponse:
    body = tmp_path / "body"
    run = subprocess.run(["curl", "-sS", "--http1.1", "-o", str(body), "-w",
                          "%{http_code}\n%{header_json}", *args, url],
                         capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode()
    status, header_json = run.stdout.decode().split("\n", 1)
    headers = {name: values[-1] for name, values in json.loads(header_json).items()}
    return CurlResponse(int(status), headers, body.read_bytes())


def test_handler_greets_with_method_and_path(served_handler, tmp_path):
    response = curl(f"{served_handler.url}/", tmp_path)
    assert response.status == 200
    assert response.body == b"Hello from a JavaScript component: GET /\n"
    assert response.headers["x-received-method"] == "GET"
    assert response.headers["x-received-path"] == "/"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_handler_echoes_a_streamed_body(served_handler, tmp_path, chunked):
    body = os.urandom(3 * 1024 * 1024 + 11)
    (tmp_path / "upload").write_bytes(body)
    framing = ("-H", "transfer-encoding: chunked") if chunked else ()
    response = curl(f"{served_handler.url}/echo", tmp_path, "--data-binary",
                    f"@{tmp_path / 'upload'}", "-H", "content-type: application/x-test", *framing)
    assert response.status == 200
    assert response.headers["content-type"] == "application/x-test"
    assert response.headers["x-received-method"] == "POST"
    assert hashlib.sha256(response.body).digest() == hashlib.sha256(body).digest()


@pytest.mark.parametrize("size", [0, 1, 65536, 5 * 1024 * 1024 + 3])
def test_handler_serves_patterned_bytes(served_handler, tmp_path, size):
    response = curl(f"{served_handler.url}/bytes/{size}", tmp_path)
    assert response.status == 200
    assert response.headers["content-length"] == str(size)
    assert response.body == pattern(size)


def test_handler_shows_the_headers_it_received(served_handler, tmp_path):
    response = curl(f"{served_handler.url}/headers?q=1", tmp_path, "-H", "x-probe: js")
    seen = json.loads(response.body)
    assert seen["method"] == "GET"
    assert seen["url"] == f"{served_handler.url}/headers?q=1"
    assert ["x-probe", "js"] in seen["headers"]
    assert response.headers["x-received-path"] == "/headers?q=1"


def test_handler_proxies_an_outgoing_fetch(served_handler, tmp_path, origin):
    size = 1024 * 1024 + 5
    response = curl(f"{served_handler.url}/fetch?url={origin.url}/bytes/{size}", tmp_path)
    assert response.status == 200
    assert response.headers["x-upstream-status"] == "200"
    assert response.body == pattern(size)
    assert [(r.method, r.path) for r in origin.received] == [("GET", f"/bytes/{size}")]


def test_handler_relays_an_upstream_error_status(served_handler, tmp_path, origin):
    response = curl(f"{served_handler.url}/fetch?url={origin.url}/missing", tmp_path)
    assert response.status == 404
    assert response.headers["x-upstream-status"] == "404"


def test_handler_answers_502_when_the_outgoing_fetch_fails(served_handler, tmp_path):
    target = f"http://127.0.0.1:{free_port()}/"
    response = curl(f"{served_handler.url}/fetch?url={target}", tmp_path)
    assert response.status == 502
    assert response.body.decode().startswith(f"fetch {target} failed: NetworkError")


def test_handler_404s_unknown_routes(served_handler, tmp_path):
    response = curl(f"{served_handler.url}/nowhere", tmp_path, "-X", "DELETE")
    assert response.status == 404
    assert response.body == b"no route for DELETE /nowhere\n"


def test_handler_serves_concurrent_clients(served_handler, tmp_path):
    count, size = 20, 256 * 1024
    outputs = [tmp_path / f"out{i}" for i in range(count)]
    command = ["curl", "-sS", "--http1.1", "--fail", "--parallel", "--parallel-max", str(count)]
    for output in outputs:
        command += ["-o", str(output), f"{served_handler.url}/bytes/{size}"]
    run = subprocess.run(command, capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode()
    assert all(output.read_bytes() == pattern(size) for output in outputs)
