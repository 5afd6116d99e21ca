"""http-fetch [OPTIONS] URL

Sends one request through wasi:http/outgoing-handler (the host's HTTP
client: http, or https on the host's TLS policy) and prints to stdout

    HTTP <status>
    <name>: <value>            one line per response header, as received
    body: N bytes sha256=<hex>
    trailer <name>: <value>    one line per trailer, if the response has any

The body is streamed into the hash, never held whole.  Exit 0 for any HTTP
status.

Options:
    -X METHOD                  the method (default GET)
    -H 'Name: value'           a request header (repeatable)
    --data-stdin               stream standard input as the request body
    --trailer 'Name: value'    a request trailer (repeatable; implies a body)
    --connect-timeout S, --first-byte-timeout S, --between-bytes-timeout S
                               request-options, in seconds
    --repeat N                 send the request N times, one after the other,
                               each reported as above (without --data-stdin)

On failure prints `error: <error-code>` to stderr and exits 1.  The code is
spelled as in the WIT (`TLS-certificate-error`, `DNS-error(rcode=...)`,
`TLS-alert-received(alert-id=..., alert-message=...)`); a failure while
streaming a body adds `: <io-error debug string>`; a header the host
refuses is `header-error: <case>`.
"""

import dataclasses
import hashlib
import re
import sys
from urllib.parse import urlsplit

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import outgoing_handler, streams
from wit_world.imports import wasi_http_types as http

from wasi_guest import cli

USAGE = ("usage: http-fetch [-X METHOD] [-H 'Name: value']... [--data-stdin] "
         "[--trailer 'Name: value']... [--connect-timeout S] [--first-byte-timeout S] "
         "[--between-bytes-timeout S] [--repeat N] URL")
READ_SIZE = 64 * 1024
TIMEOUTS = {"--connect-timeout": "set_connect_timeout",
            "--first-byte-timeout": "set_first_byte_timeout",
            "--between-bytes-timeout": "set_between_bytes_timeout"}
METHODS = {"GET": http.Method_Get, "HEAD": http.Method_Head, "POST": http.Method_Post,
           "PUT": http.Method_Put, "DELETE": http.Method_Delete,
           "OPTIONS": http.Method_Options, "PATCH": http.Method_Patch}
_ACRONYMS = {"dns", "ip", "tls", "http", "uri"}


class Failed(Exception):
    """What to print after `error: `."""


def wit_case(value) -> str:
    """A generated variant case as the WIT spells it: ErrorCode_DnsError -> DNS-error."""
    words = re.findall(r"[A-Z][a-z]*", type(value).__name__.split("_", 1)[1])
    name = "-".join(word.upper() if word.lower() in _ACRONYMS else word.lower()
                    for word in words)
    payload = getattr(value, "value", None)
    if dataclasses.is_dataclass(payload):
        fields = ", ".join(f"{field.name.replace('_', '-')}={getattr(payload, field.name)!r}"
                           for field in dataclasses.fields(payload))
        return f"{name}({fields})"
    return name if payload is None else f"{name}({payload!r})"


def field(text: str) -> tuple[str, bytes]:
    name, colon, value = text.partition(":")
    if not colon:
        raise Failed(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip().encode()


def fields(pairs):
    try:
        return http.Fields.from_list(pairs)
    except Err as error:
        raise Failed(f"header-error: {wit_case(error.value)}") from None


def parse(argv):
    options = {"method": "GET", "headers": [], "trailers": [], "data": False, "timeouts": {},
               "repeat": 1}
    args = list(argv)
    url = None
    while args:
        arg = args.pop(0)
        if arg in ("-X", "-H", "--trailer", "--repeat", *TIMEOUTS) and not args:
            raise Failed(USAGE)
        if arg == "-X":
            options["method"] = args.pop(0)
        elif arg == "-H":
            options["headers"].append(field(args.pop(0)))
        elif arg == "--trailer":
            options["trailers"].append(field(args.pop(0)))
        elif arg == "--data-stdin":
            options["data"] = True
        elif arg == "--repeat":
            count = args.pop(0)
            if not count.isdigit() or int(count) < 1:
                raise Failed(f"--repeat needs a whole number above 0, not {count!r}")
            options["repeat"] = int(count)
        elif arg in TIMEOUTS:
            options["timeouts"][TIMEOUTS[arg]] = int(float(args.pop(0)) * 1e9)
        elif url is None and not arg.startswith("-"):
            url = arg
        else:
            raise Failed(USAGE)
    if url is None:
        raise Failed(USAGE)
    return url, options


def build_request(url: str, options):
    parts = urlsplit(url)
    request = http.OutgoingRequest(fields(options["headers"]))
    method = options["method"].upper()
    request.set_method(METHODS[method]() if method in METHODS
                       else http.Method_Other(options["method"]))
    scheme = {"http": http.Scheme_Http(), "https": http.Scheme_Https()}.get(
        parts.scheme, http.Scheme_Other(parts.scheme))
    request.set_scheme(scheme)
    request.set_authority(parts.netloc)
    path = parts.path or "/"
    request.set_path_with_query(f"{path}?{parts.query}" if parts.query else path)
    return request


def wait(pollable_owner) -> None:
    with pollable_owner.subscribe() as pollable:
        pollable.block()


def stream_failure(error: Err) -> Failed:
    """A body stream's failure, with the http error-code the host attached."""
    if isinstance(error.value, streams.StreamError_Closed):
        return Failed("the body stream closed early")
    io_error = error.value.value
    code = http.http_error_code(io_error)
    described = wit_case(code) if code is not None else "(no http error-code)"
    return Failed(f"{described}: {io_error.to_debug_string()}")


def write_all(stream, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            permit = stream.check_write()
            if permit == 0:
                wait(stream)
                continue
            stream.write(bytes(view[:permit]))
        except Err as error:
            raise stream_failure(error) from None
        view = view[permit:]


def send_body(body, trailers) -> None:
    stream = body.write()
    with stream:
        while chunk := sys.stdin.buffer.read(READ_SIZE):
            write_all(stream, chunk)
    try:
        http.OutgoingBody.finish(body, fields(trailers) if trailers else None)
    except Err as error:
        raise Failed(wit_case(error.value)) from None


def await_response(future):
    while (outcome := future.get()) is None:
        wait(future)
    inner = outcome.value  # the outer result is ok on the first get
    if isinstance(inner, Err):
        raise Failed(wit_case(inner.value))
    return inner.value


def read_body(response):
    """(size, sha256 hex, trailers) of the response body."""
    body = response.consume()
    digest = hashlib.sha256()
    size = 0
    with body.stream() as stream:
        while True:
            try:
                chunk = stream.read(READ_SIZE)
            except Err as error:
                if isinstance(error.value, streams.StreamError_Closed):
                    break
                raise stream_failure(error) from None
            if not chunk:
                wait(stream)
                continue
            digest.update(chunk)
            size += len(chunk)
    with http.IncomingBody.finish(body) as future:
        while (outcome := future.get()) is None:
            wait(future)
    inner = outcome.value
    if isinstance(inner, Err):
        raise Failed(wit_case(inner.value))
    trailers = inner.value
    return size, digest.hexdigest(), trailers.entries() if trailers is not None else []


def fetch(argv) -> None:
    url, options = parse(argv)
    for _ in range(options["repeat"]):
        fetch_once(url, options)


def fetch_once(url, options) -> None:
    request = build_request(url, options)
    body = request.body() if options["data"] or options["trailers"] else None
    request_options = http.RequestOptions()
    for setter, nanoseconds in options["timeouts"].items():
        getattr(request_options, setter)(nanoseconds)
    try:
        future = outgoing_handler.handle(request, request_options)
    except Err as error:
        raise Failed(wit_case(error.value)) from None
    with future:
        if body is not None:
            send_body(body, options["trailers"])
        response = await_response(future)
    with response:
        print(f"HTTP {response.status()}")
        with response.headers() as headers:
            for name, value in headers.entries():
                print(f"{name}: {value.decode('latin-1')}")
        size, sha256, trailers = read_body(response)
    print(f"body: {size} bytes sha256={sha256}")
    for name, value in trailers:
        print(f"trailer {name}: {value.decode('latin-1')}")


def main(argv) -> int:
    try:
        fetch(argv)
    except Failed as failure:
        cli.flush_stdio()
        cli.eprint(f"error: {failure}")
        return 1
    return 0


class Run(exports.Run):
    def run(self) -> None:
        cli.exit(main(sys.argv[1:]))
