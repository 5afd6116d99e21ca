"""The JavaScript components built from npm, and a plain origin server to test
them against.

`build_js_components()` builds guests/js with ComponentizeJS through
guests/js/build.mjs (see there: npm ci from the lock file, cached under
build/js/ by a hash of the inputs, so later calls only check the hash) and
skips the calling test when node or npm is missing. A test module wraps it
in a fixture::

    from js_components import JsComponents, build_js_components

    pytestmark = pytest.mark.js

    @pytest.fixture(scope="session")
    def js_components() -> JsComponents:
        return build_js_components()

    def test_something(js_components):
        js_components.fetch    # Path of fetch.wasm (exports wasi:cli/run)
        js_components.handler  # Path of handler.wasm (wasi:http/proxy)

What the components do is described atop guests/js/src/fetch.js and
guests/js/src/handler.js. `HttpOrigin` is the server their requests go to.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "guests" / "js" / "build.mjs"
JS_BUILD = ROOT / "build" / "js"

#: Byte i of every patterned body, here and in handler.js, is i % PATTERN_PERIOD.
PATTERN_PERIOD = 251


def pattern(length: int) -> bytes:
    """The deterministic body of `GET /bytes/LENGTH` (origin and handler.js alike)."""
    period = bytes(range(PATTERN_PERIOD))
    whole, rest = divmod(length, PATTERN_PERIOD)
    return period * whole + period[:rest]


@dataclass(frozen=True)
class JsComponents:
    fetch: Path
    handler: Path


@functools.cache
def build_js_components() -> JsComponents:
    """Build (or find up to date) build/js/fetch.wasm and build/js/handler.wasm,
    once per process."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to build the JavaScript components")
    result = subprocess.run(["node", str(BUILD_SCRIPT)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"building the JavaScript components failed:\n{result.stdout}{result.stderr}")
    return JsComponents(fetch=JS_BUILD / "fetch.wasm", handler=JS_BUILD / "handler.wasm")


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body_size: int
    chunked: bool


class HttpOrigin:
    """An HTTP/1.1 server on loopback (HTTPS when given a server context):

    - ``GET /bytes/N``: N bytes of `pattern`, with Content-Length;
    - ``POST /sink``: reads the body (Content-Length or chunked) and answers
      JSON ``{"bytes": N, "sha256": HEX, "chunked": BOOL}``;
    - ``GET /headers``: the request's method, path and headers as JSON;
    - anything else: 404.

    Every request it read is appended to `received`.
    """

    def __init__(self, context: ssl.SSLContext | None = None):
        self.received: list[ReceivedRequest] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _origin_handler(self))
        self.server.daemon_threads = True
        if context is not None:
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"{'https' if context else 'http'}://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _origin_handler(origin: HttpOrigin) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass

        def do_GET(self):
            self._record(body_size=0, chunked=False)
            if self.path.startswith("/bytes/") and self.path[7:].isdigit():
                self._answer(200, "application/octet-stream", pattern(int(self.path[7:])))
            elif self.path == "/headers":
                seen = {"method": self.command, "path": self.path,
                        "headers": [[k.lower(), v] for k, v in self.headers.items()]}
                self._answer(200, "application/json", json.dumps(seen).encode())
            else:
                self._answer(404, "text/plain", b"not found\n")

        def do_POST(self):
            chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
            digest, size = hashlib.sha256(), 0
            for piece in _read_chunked(self.rfile) if chunked else _read_sized(
                    self.rfile, int(self.headers.get("content-length", 0))):
                digest.update(piece)
                size += len(piece)
            self._record(body_size=size, chunked=chunked)
            if self.path == "/sink":
                answer = {"bytes": size, "sha256": digest.hexdigest(), "chunked": chunked}
                self._answer(200, "application/json", json.dumps(answer).encode())
            else:
                self._answer(404, "text/plain", b"not found\n")

        def _record(self, *, body_size: int, chunked: bool) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            origin.received.append(ReceivedRequest(self.command, self.path, headers,
                                                   body_size, chunked))

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _read_sized(stream, length: int):
    while length > 0:
        piece = stream.read(min(length, 65536))
        if not piece:
            raise ConnectionError("request body ended early")
        length -= len(piece)
        yield piece


def _read_chunked(stream):
    """The pieces of a chunked request body (trailers are read and dropped)."""
    while True:
        size = int(stream.readline().split(b";")[0].strip(), 16)
        if size == 0:
            while stream.readline() not in (b"\r\n", b"\n", b""):
                pass
            return
        yield from _read_sized(stream, size)
        stream.readline()
