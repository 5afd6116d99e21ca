"""https-get [--print-body] URL

Fetches URL (https:// over wasi:tls, or http://) with one GET request
(redirects are not followed) and prints to stdout

    HTTP/1.1 200 OK
    <name>: <value>            one line per response header, names lower-case
    body: N bytes sha256=<hex>

The status line uses the response's own HTTP version and reason phrase.  The
body is streamed into the hash, never held in memory as a whole.  Exit 0 for
any HTTP status. With --print-body the body follows the summary line,
decoded as UTF-8 (for text pages; `make demo` uses it).

On failure prints `error: <message>` to stderr and exits 1.  <message> is the
host's TLS io-error debug string verbatim (e.g. `certificate verify failed:
...`), the wasi:sockets error code (e.g. `connection-refused`), the stream's
io-error debug string for a failed plain-TCP stream, or `http: <problem>` for
a bad URL or an HTTP protocol problem reported by h11.
"""

import hashlib
import sys

from wit_world import exports

from wasi_guest import StreamFailed, WasiError, cli, http, tls

USAGE = "usage: https-get [--print-body] URL"
#: --print-body keeps at most this much of the body to show.
MAX_SHOWN = 64 * 1024


def describe(exc) -> str:
    if isinstance(exc, http.HttpError):
        return f"http: {exc}"
    if isinstance(exc, tls.TlsError):
        return exc.message
    if isinstance(exc, StreamFailed) and exc.detail:
        return exc.detail
    return exc.code


def main(argv) -> int:
    print_body = argv[:1] == ["--print-body"]
    if print_body:
        argv = argv[1:]
    if len(argv) != 1:
        cli.eprint(USAGE)
        return 1
    try:
        resp = http.request_stream("GET", argv[0])
    except (http.HttpError, WasiError) as e:
        cli.eprint(f"error: {describe(e)}")
        return 1

    print(resp.status_line)
    for name, value in resp.headers:
        print(f"{name}: {value}")
    digest = hashlib.sha256()
    size = 0
    shown = bytearray()
    try:
        with resp:
            for chunk in resp:
                digest.update(chunk)
                size += len(chunk)
                if print_body and len(shown) < MAX_SHOWN:
                    shown += chunk[: MAX_SHOWN - len(shown)]
    except (http.HttpError, WasiError) as e:
        cli.flush_stdio()
        cli.eprint(f"error: {describe(e)}")
        return 1
    print(f"body: {size} bytes sha256={digest.hexdigest()}")
    if print_body:
        print()
        print(shown.decode("utf-8", errors="replace"))
    return 0


class Run(exports.Run):
    def run(self) -> None:
        cli.exit(main(sys.argv[1:]))
