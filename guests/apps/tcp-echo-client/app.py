"""tcp-echo-client HOST:PORT [MESSAGE_BYTES]

Connects, sends MESSAGE_BYTES (default 1024) bytes of the pattern
bytes(i % 251 for i in range(N)) while reading the echo back (does not rely on
shutdown: it reads back exactly N bytes), verifies it and prints

    echoed N bytes sha256=<hex>

Exit 0 on success.  On a WASI error prints `error: <error-code>` to stderr and
exits 1 (also for a short or mismatched echo and for bad arguments).
"""

import hashlib
import sys

from wit_world import exports

from wasi_guest import WasiError, cli, io, net

USAGE = "usage: tcp-echo-client HOST:PORT [MESSAGE_BYTES]"


def pattern(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def main(argv) -> int:
    if not 1 <= len(argv) <= 2:
        cli.eprint(USAGE)
        return 1
    try:
        n = int(argv[1]) if len(argv) > 1 else 1024
        if n < 0:
            raise ValueError
        net.split_host_port(argv[0])
    except ValueError as e:
        cli.eprint(f"error: invalid-argument ({e or 'MESSAGE_BYTES'})")
        cli.eprint(USAGE)
        return 1

    data = pattern(n)
    try:
        sock, inp, out = net.connect_tcp(argv[0])
    except WasiError as e:
        cli.eprint(f"error: {e.code}")
        return 1
    try:
        echoed = io.duplex(inp, out, data, n)
    except WasiError as e:
        cli.eprint(f"error: {e.code}")
        if e.detail:
            cli.eprint(f"detail: {e.detail}")
        return 1
    finally:
        net.close_connection(sock, inp, out)
    if echoed != data:
        bad = next(i for i in range(n) if echoed[i] != data[i])
        cli.eprint(f"error: data-mismatch (first difference at byte {bad})")
        return 1
    print(f"echoed {n} bytes sha256={hashlib.sha256(echoed).hexdigest()}")
    return 0


class Run(exports.Run):
    def run(self) -> None:
        cli.exit(main(sys.argv[1:]))
