"""An HTTP handler (the wasi:http/proxy world) for `wasi-tls-host serve`:

    GET  /              a greeting naming the method and path
    POST /echo          the request body streamed back as it arrives
    GET  /bytes/N       N bytes of a pattern, byte i being i % 251, with Content-Length
    GET  /fetch?url=U   an outgoing request to U (wasi:http/outgoing-handler),
                        its status and body relayed as they arrive; 502 if it fails.
                        &times=N: U is fetched N times one after the other, each
                        earlier body read to its end and dropped, the last
                        relayed; x-upstream-status lists every status, in order
    GET  /sleep/MS      the greeting after MS milliseconds (a slow request)
    POST /sleep/MS      the same, reading nothing of the request body
    GET  /compute/N     a sum over N steps, then its result (a request that computes)
    GET  /allocate/MIB  holds MIB MiB at once, then says so (a request that allocates)
    GET  /trap          traps before answering
    GET  /exit          ends the instance with wasi:cli/exit before answering
    GET  /no-response   returns without setting a response

Every response carries x-handler: componentize-py. Anything else is 404.
Bodies stream: a chunk is written once it was read, never the whole body.
"""

import re
from urllib.parse import parse_qs, urlsplit

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import monotonic_clock, outgoing_handler, streams
from wit_world.imports import wasi_http_types as http

from wasi_guest import StreamFailed, cli, io

PATTERN_PERIOD = 251
CHUNK = 64 * 1024
_PATTERN = bytes(range(PATTERN_PERIOD)) * (CHUNK // PATTERN_PERIOD + 2)


class Failed(Exception):
    """A failed outgoing request or body stream; str() says how."""


def respond(response_out, status: int, headers: list[tuple[str, bytes]]):
    """Send the head; returns the body's output stream and the body."""
    fields = http.Fields.from_list([("x-handler", b"componentize-py"), *headers])
    response = http.OutgoingResponse(fields)
    response.set_status_code(status)
    body = response.body()
    http.ResponseOutparam.set(response_out, Ok(response))
    return body.write(), body


def finish(stream, body) -> None:
    io.flush(stream)
    stream.__exit__(None, None, None)
    http.OutgoingBody.finish(body, None)


def text(response_out, status: int, message: str) -> None:
    data = message.encode()
    stream, body = respond(response_out, status, [
        ("content-type", b"text/plain; charset=utf-8"),
        ("content-length", str(len(data)).encode())])
    io.write_all(stream, data)
    finish(stream, body)


def read_chunks(stream):
    """The body's chunks as they arrive."""
    while True:
        try:
            chunk = stream.read(CHUNK)
        except Err as error:
            if isinstance(error.value, streams.StreamError_Closed):
                return
            raise io.stream_error(error) from None
        if chunk:
            yield chunk
        else:
            io.wait_for(stream)


def echo(request, response_out) -> None:
    incoming = request.consume()
    content_type = request.headers().get("content-type")
    stream, body = respond(response_out, 200, [("content-type", value)
                                               for value in content_type[:1]])
    with incoming.stream() as source:
        for chunk in read_chunks(source):
            io.write_all(stream, chunk, flush_after=False)
    http.IncomingBody.finish(incoming).__exit__(None, None, None)
    finish(stream, body)


def pattern(response_out, length: int) -> None:
    stream, body = respond(response_out, 200, [
        ("content-type", b"application/octet-stream"),
        ("content-length", str(length).encode())])
    sent = 0
    while sent < length:
        size = min(CHUNK, length - sent)
        start = sent % PATTERN_PERIOD
        io.write_all(stream, _PATTERN[start:start + size], flush_after=False)
        sent += size
    finish(stream, body)


def send(url: str):
    """The incoming-response to GET `url`, once its head has come."""
    parts = urlsplit(url)
    request = http.OutgoingRequest(http.Fields())
    request.set_scheme(http.Scheme_Https() if parts.scheme == "https" else http.Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query(parts.path + (f"?{parts.query}" if parts.query else "") or "/")
    try:
        future = outgoing_handler.handle(request, None)
        while (outcome := future.get()) is None:
            io.wait_for(future)
        if isinstance(outcome.value, Err):
            raise Failed(describe(outcome.value.value))
        return outcome.value.value
    except Err as error:
        raise Failed(describe(error.value)) from None


def drain(upstream) -> None:
    """Read `upstream`'s body to its end (so its connection ends whole) and drop it."""
    with upstream:
        incoming = upstream.consume()
        try:
            with incoming.stream() as source:
                for _ in read_chunks(source):
                    pass
        except StreamFailed as failure:
            raise Failed(f"an earlier response's body: {failure.detail}") from None
        http.IncomingBody.finish(incoming).__exit__(None, None, None)


def fetch(response_out, url: str, times: int) -> None:
    statuses = []
    for _ in range(times - 1):
        earlier = send(url)
        statuses.append(str(earlier.status()))
        drain(earlier)
    upstream = send(url)
    statuses.append(str(upstream.status()))
    headers = [(name, value) for name, value in upstream.headers().entries()
               if name.lower() in ("content-type", "content-length")]
    stream, body = respond(response_out, upstream.status(), [
        ("x-upstream-status", ",".join(statuses).encode()), *headers])
    incoming = upstream.consume()
    with incoming.stream() as source:
        for chunk in read_chunks(source):
            io.write_all(stream, chunk, flush_after=False)
    finish(stream, body)


def describe(code) -> str:
    """An error-code as its generated class names it, with its payload."""
    name = type(code).__name__.removeprefix("ErrorCode_")
    payload = getattr(code, "value", None)
    return name if payload is None else f"{name}: {payload}"


def sleep(milliseconds: int) -> None:
    with monotonic_clock.subscribe_duration(milliseconds * 1_000_000) as pollable:
        pollable.block()


def route(request, response_out) -> None:
    method = request.method()
    target = request.path_with_query() or "/"
    path = urlsplit(target).path
    get = isinstance(method, http.Method_Get)
    post = isinstance(method, http.Method_Post)
    if get and path == "/":
        text(response_out, 200, f"Hello from a Python component: GET {target}\n")
    elif post and path == "/echo":
        echo(request, response_out)
    elif get and (match := re.fullmatch(r"/bytes/(\d+)", path)):
        pattern(response_out, int(match.group(1)))
    elif get and path == "/fetch":
        query = parse_qs(urlsplit(target).query)
        url = query.get("url", [""])[0]
        times = query.get("times", ["1"])[0]
        if not url or not times.isdigit() or int(times) < 1:
            text(response_out, 400, "GET /fetch needs ?url= (and &times= a whole number above 0)\n")
            return
        try:
            fetch(response_out, url, int(times))
        except Failed as failure:
            text(response_out, 502, f"fetch {url} failed: {failure}\n")
    elif (get or post) and (match := re.fullmatch(r"/sleep/(\d+)", path)):
        sleep(int(match.group(1)))
        text(response_out, 200, f"Hello from a Python component after {match.group(1)} ms\n")
    elif get and (match := re.fullmatch(r"/compute/(\d+)", path)):
        steps = int(match.group(1))
        total = 0
        for step in range(steps):
            total = (total + step * step) % 1_000_003
        text(response_out, 200, f"computed {steps} steps: {total}\n")
    elif get and (match := re.fullmatch(r"/allocate/(\d+)", path)):
        mebibytes = int(match.group(1))
        held = bytearray(mebibytes << 20)
        text(response_out, 200, f"allocated {len(held) >> 20} MiB\n")
    elif get and path == "/trap":
        raise RuntimeError("asked to trap")
    elif get and path == "/exit":
        cli.exit(1)
    elif get and path == "/no-response":
        return
    else:
        text(response_out, 404, f"no route for {target}\n")


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out) -> None:
        route(request, response_out)
