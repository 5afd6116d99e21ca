"""tls-echo-client [--shutdown-first] [--names NAME,...] HOST:PORT [BYTES] [SERVER_NAME]

Opens a TLS connection (server name SERVER_NAME, default HOST), sends BYTES
(default 1024) bytes of the pattern bytes(i % 251 for i in range(N)) while
reading the echo back concurrently (one poll per iteration), verifies it, then
sends close_notify and reads until the peer's close_notify (clean end of
stream).  Prints

    echoed N bytes sha256=<hex>
    closed cleanly

With --names it does all that once per NAME, in order, each connection
closed before the next opens, with NAME as the server name (repeat connections
in one run, for the host's session resumption).

With --shutdown-first it shuts down the TCP connection's sending side and
waits for the peer to close before the handshake, which therefore cannot
send its first message: a guest mistake the host must report as an error.

Exit 0 on success.  On failure prints `error: <message>` to stderr and exits 1:
the host's TLS io-error debug string verbatim, or the wasi:sockets error code
(also `error: data-mismatch ...`, and `error: usage: ...` for bad arguments).
"""

import hashlib

from wit_world import exports

from wasi_guest import cli, close, io, net, tls

USAGE = ("usage: tls-echo-client [--shutdown-first] [--names NAME,...] HOST:PORT [BYTES] "
         "[SERVER_NAME]")


def pattern(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def connect_after_shutdown(host_port: str, server_name: str):
    """TCP connect, shut down the sending side, wait for the peer's close,
    then hand the streams to a TLS handshake."""
    sock, inp, out = net.connect_tcp(host_port)
    try:
        net.shutdown(sock, "send")
        io.wait_for(inp)
        connection, tls_in, tls_out = tls.handshake(server_name, inp, out)
    except BaseException:
        close(sock)
        raise
    return tls.TlsConnection(sock, connection, tls_in, tls_out)


def main(argv) -> int:
    argv, options = cli.split_options(argv, ("--names",), flags=("--shutdown-first",))
    if not 1 <= len(argv) <= 3:
        raise ValueError(USAGE)
    n = cli.number(argv[1], "BYTES") if len(argv) > 1 else 1024
    host, port = net.split_host_port(argv[0])
    names = options["--names"].split(",") if "--names" in options else [
        argv[2] if len(argv) > 2 else host]
    for server_name in names:
        status = echo(argv[0], server_name, n, "--shutdown-first" in options)
        if status:
            return status
    return 0


def echo(host_port, server_name, n, shutdown_first) -> int:
    data = pattern(n)
    if shutdown_first:
        conn = connect_after_shutdown(host_port, server_name)
    else:
        host, port = net.split_host_port(host_port)
        conn = tls.connect_tls(host, port, server_name=server_name)
    with conn:
        echoed = conn.duplex(data, n)
        if echoed != data:
            bad = next(i for i in range(n) if echoed[i] != data[i])
            cli.eprint(f"error: data-mismatch (first difference at byte {bad})")
            return 1
        print(f"echoed {n} bytes sha256={hashlib.sha256(echoed).hexdigest()}", flush=True)
        conn.close_output()
        extra = len(conn.read_all())
        if extra:
            cli.eprint(f"error: data-mismatch ({extra} unexpected bytes after the echo)")
            return 1
        print("closed cleanly")
    return 0


class Run(exports.Run):
    def run(self) -> None:
        cli.run(main)
