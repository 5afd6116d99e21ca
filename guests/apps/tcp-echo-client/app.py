"""tcp-echo-client [--shutdown] HOST:PORT [MESSAGE_BYTES]

Connects, sends MESSAGE_BYTES (default 1024) bytes of the pattern
bytes(i % 251 for i in range(N)) while reading the echo back (does not rely on
shutdown: it reads back exactly N bytes), verifies it and prints

    echoed N bytes sha256=<hex>

With --shutdown it makes a request the way a one-shot client does instead:
sends all N bytes, shuts down its sending side, reads the echo until the
peer closes, then drops the streams and the socket (so N must fit in the
socket buffers).  Same output.

Exit 0 on success.  On a WASI error prints `error: <error-code>` (and the
host's detail, if any) to stderr and exits 1 (also for a short or mismatched
echo and for bad arguments).
"""

import hashlib

from wit_world import exports

from wasi_guest import cli, io, net

USAGE = "usage: tcp-echo-client [--shutdown] HOST:PORT [MESSAGE_BYTES]"


def pattern(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def request_then_shutdown(inp, out, sock, data) -> bytes:
    """Send everything, shut down the sending side, read to end of stream."""
    io.write_all(out, data)
    net.shutdown(sock, "send")
    return io.read_all(inp)


def main(argv) -> int:
    argv, options = cli.split_options(argv, (), flags=("--shutdown",))
    if not 1 <= len(argv) <= 2:
        raise ValueError(USAGE)
    n = cli.number(argv[1], "MESSAGE_BYTES") if len(argv) > 1 else 1024
    data = pattern(n)
    sock, inp, out = net.connect_tcp(argv[0])
    try:
        if "--shutdown" in options:
            echoed = request_then_shutdown(inp, out, sock, data)
        else:
            echoed = io.duplex(inp, out, data, n)
    finally:
        net.close_connection(sock, inp, out)
    if echoed != data:
        if len(echoed) != n:
            cli.eprint(f"error: data-mismatch (got {len(echoed)} of {n} bytes)")
            return 1
        bad = next(i for i in range(n) if echoed[i] != data[i])
        cli.eprint(f"error: data-mismatch (first difference at byte {bad})")
        return 1
    print(f"echoed {n} bytes sha256={hashlib.sha256(echoed).hexdigest()}")
    return 0


class Run(exports.Run):
    def run(self) -> None:
        cli.run(main)
