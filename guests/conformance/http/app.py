"""conformance-http CASE ARGS...: the wasi:http outgoing cases, one per run
(see conformance_kit for the result line).

World `http-client`: standard WASI 0.2 plus wasi:http/outgoing-handler, so
any host with WASI 0.2's wasi:http (`wasmtime run -S http`) can run it. The
URL is the peer's; the host's own policy (trust, client certificates, the
network allow-list) decides what the request may do, not the guest.
"""

import hashlib
import sys
from urllib.parse import urlsplit

import conformance_kit
from componentize_py_types import Err
from conformance_kit import Failed, case, check, pattern, resolve, wait_for
from wit_world import exports
from wit_world.imports import outgoing_handler, streams
from wit_world.imports import wasi_http_types as http

CHUNK = 64 * 1024


def code_name(code):
    """An error-code's case, comparable whatever the spelling: the generated
    class ErrorCode_TlsCertificateError and the WIT's TLS-certificate-error
    both become "tlscertificateerror"."""
    return type(code).__name__.removeprefix("ErrorCode_").lower()


def wit_key(name):
    return name.replace("-", "").lower()


class HttpFailed(Exception):
    """The host answered the request with an error-code."""

    def __init__(self, code, where):
        payload = getattr(code, "value", None)
        detail = "" if payload is None else f" {payload!r}"
        super().__init__(f"{where}: error-code {type(code).__name__.removeprefix('ErrorCode_')}"
                         f"{detail}")
        self.code = code


def request_for(url, method):
    parts = urlsplit(url)
    request = http.OutgoingRequest(http.Fields())
    request.set_method(method)
    request.set_scheme(http.Scheme_Https() if parts.scheme == "https" else http.Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query(parts.path or "/")
    return request


def send(request, body=None, upload=b""):
    """Send the request (streaming `upload` as its body if `body`), and wait
    for the response head."""
    try:
        future = outgoing_handler.handle(request, None)
    except Err as error:
        raise HttpFailed(error.value, "handle") from None
    if body is not None:
        stream = body.write()
        conformance_kit.write_all(stream, upload, "request body")
        conformance_kit.drop(stream)
        try:
            http.OutgoingBody.finish(body, None)
        except Err as error:
            raise HttpFailed(error.value, "finishing the request body") from None
    state, value = conformance_kit.outcome(resolve(future, "the response"))
    conformance_kit.drop(future)
    check(state != "taken", "the response future's first get said already taken")
    if state == "error":
        raise HttpFailed(value, "the response")
    return value


def read_body(response):
    """(size, sha256 hex) of the response body, read as it streams."""
    incoming = response.consume()
    stream = incoming.stream()
    digest, size = hashlib.sha256(), 0
    while True:
        try:
            chunk = stream.read(CHUNK)
        except Err as error:
            if isinstance(error.value, streams.StreamError_Closed):
                break
            code = http.http_error_code(error.value.value)
            if code is not None:
                raise HttpFailed(code, f"the body after {size} bytes") from None
            raise Failed(f"the body failed after {size} bytes: "
                         f"{conformance_kit.stream_error_text(error.value)}") from None
        if chunk:
            digest.update(chunk)
            size += len(chunk)
        else:
            wait_for(stream, f"the body after {size} bytes")
    conformance_kit.drop(stream, incoming)
    return size, digest.hexdigest()


def header(response, name):
    headers = response.headers()
    values = headers.get(name)
    conformance_kit.drop(headers)
    return values[0].decode() if values else None


@case("http-get")
def http_get(url, size):
    """GET URL: a 200 whose body is `size` bytes of the pattern."""
    size = int(size)
    try:
        response = send(request_for(url, http.Method_Get()))
        status, subject = response.status(), header(response, "x-client-subject")
        got_size, got_digest = read_body(response)
    except HttpFailed as failure:
        raise Failed(str(failure)) from None
    conformance_kit.drop(response)
    check(status == 200, f"status {status}")
    check((got_size, got_digest) == (size, hashlib.sha256(pattern(size)).hexdigest()),
          f"{got_size} bytes, not the {size} the peer sent (or not its bytes)")
    said = f"200, {size} bytes intact"
    return (said + (f", the server saw client {subject!r}" if subject else ""),
            {"client_subject": subject})


@case("http-put")
def http_put(url, size):
    """PUT URL with `size` bytes streamed as the body (no length given, so
    the host frames it itself); the peer answers with what it read."""
    size = int(size)
    upload = pattern(size, seed=3)
    request = request_for(url, http.Method_Put())
    body = request.body()
    try:
        response = send(request, body, upload)
        status = response.status()
        received, received_digest = header(response, "x-body-size"), header(response,
                                                                              "x-body-sha256")
        read_body(response)
    except HttpFailed as failure:
        raise Failed(str(failure)) from None
    conformance_kit.drop(response)
    check(status == 200, f"status {status}")
    check(received == str(size) and received_digest == hashlib.sha256(upload).hexdigest(),
          f"the peer read {received} bytes (sha256 {received_digest}), the guest sent {size}")
    return f"200; the peer read all {size} bytes intact", {"sent": size}


@case("http-fails")
def http_fails(url, expected):
    """GET URL must fail with the error-code `expected` (as the WIT spells it),
    before the response or while its body streams; never a trap."""
    try:
        response = send(request_for(url, http.Method_Get()))
        status = response.status()
        size, _ = read_body(response)
    except HttpFailed as failure:
        check(code_name(failure.code) == wit_key(expected),
              f"{failure}, not {expected}")
        return str(failure)
    raise Failed(f"no error: status {status}, {size} bytes")


class Run(exports.Run):
    def run(self) -> None:
        conformance_kit.main(sys.argv[1:])
