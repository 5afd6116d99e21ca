"""tcp-echo-server HOST:PORT [MAX_CONNECTIONS]

Listens on HOST:PORT (port 0 picks a free port), prints
`listening on HOST:PORT` (the bound address) once ready, and echoes every
connection back to its sender.  All connections are served concurrently from a
single wasi:io/poll call per loop iteration (listener pollable plus each
connection's input/output pollables).  A connection is closed once its peer
has shut down its sending side (EOF) and everything received has been written
and flushed.  Exits 0 after MAX_CONNECTIONS (default 1) connections finished.

Per-connection events are logged to stderr; errors print `error: <code>`
(`error: <message>` for bad arguments and a failed listen, exit 1).
"""


from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import poll

from wasi_guest import WasiError, cli, close, io, net

USAGE = "usage: tcp-echo-server HOST:PORT [MAX_CONNECTIONS]"

# Stop reading from a connection while this much received data is still
# waiting to be written back (back-pressure).
MAX_PENDING = 256 * 1024


class Conn:
    def __init__(self, ident, sock, inp, out):
        self.ident = ident
        self.sock = sock
        self.inp = inp
        self.out = out
        self.pending = bytearray()
        self.eof = False
        self.flushing = False
        self.total = 0
        self.done = False

    def close(self):
        net.close_connection(self.sock, self.inp, self.out)
        self.done = True

    def on_readable(self):
        try:
            data = self.inp.read(io.READ_CHUNK)
        except Err as e:
            exc = io.stream_error(e)
            if isinstance(exc, io.StreamClosed):
                self.eof = True
                return
            raise exc from None
        self.pending += data
        self.total += len(data)

    def on_writable(self):
        budget = io.check_write(self.out)
        if budget == 0:
            return
        if self.flushing:
            # The flush we started has completed.
            self.flushing = False
        if self.pending:
            n = min(budget, io.WRITE_CHUNK, len(self.pending))
            try:
                self.out.write(bytes(self.pending[:n]))
                del self.pending[:n]
                if not self.pending:
                    self.out.flush()
                    self.flushing = True
            except Err as e:
                raise io.stream_error(e) from None

    def finished(self):
        return self.eof and not self.pending and not self.flushing


def serve(listener, max_conns: int) -> int:
    conns = []
    accepted = 0
    finished = 0
    failures = 0
    while finished < max_conns:
        pollables, targets = _interests(listener, accepted < max_conns, conns)
        try:
            ready = poll.poll(pollables)
        finally:
            # Pollables are children of the streams/sockets: drop them first.
            close(*pollables)

        for i in ready:
            kind, c = targets[i]
            if kind == "accept":
                accepted = _accept(listener, conns, accepted, max_conns)
                if not listener.is_listening():
                    max_conns = accepted  # the host drains us: finish these
            elif not c.done and not _step(c, kind):
                failures += 1
                finished += 1

        for c in conns:
            if not c.done and c.finished():
                cli.eprint(f"conn {c.ident}: closed after echoing {c.total} bytes")
                c.close()
                finished += 1
        conns = [c for c in conns if not c.done]
    return failures


def _interests(listener, accepting, conns):
    """The pollables to wait on, and for each its (kind, conn) target."""
    pollables = []
    targets = []
    if accepting:
        pollables.append(listener.subscribe())
        targets.append(("accept", None))
    for c in conns:
        if not c.eof and len(c.pending) < MAX_PENDING:
            pollables.append(c.inp.subscribe())
            targets.append(("read", c))
        if c.pending or c.flushing:
            pollables.append(c.out.subscribe())
            targets.append(("write", c))
    return pollables, targets


def _accept(listener, conns, accepted, max_conns):
    """Accept every waiting connection (up to `max_conns` in all) into
    `conns`; the new count of accepted connections."""
    while accepted < max_conns:
        try:
            got = net.accept(listener, block=False)
        except WasiError as e:
            cli.eprint(f"error: accept: {e.code}")
            break
        if got is None:
            break
        accepted += 1
        conn = Conn(accepted, *got)
        conns.append(conn)
        cli.eprint(f"conn {accepted}: accepted from {_peer(conn.sock)}")
    return accepted


def _step(c, kind):
    """Read or write once on `c`; False if that failed (logged, and `c` closed)."""
    try:
        if kind == "read":
            c.on_readable()
        else:
            c.on_writable()
    except WasiError as e:
        cli.eprint(f"conn {c.ident}: error: {e.code}" + (f" ({e.detail})" if e.detail else ""))
        c.close()
        return False
    return True


def _peer(sock):
    try:
        return net.remote_address(sock)
    except WasiError:
        return "?"


def main(argv) -> int:
    if not 1 <= len(argv) <= 2:
        raise ValueError(USAGE)
    max_conns = cli.number(argv[1], "MAX_CONNECTIONS", minimum=1) if len(argv) > 1 else 1
    listener = net.listen_tcp(argv[0], backlog=max(16, max_conns))
    print(f"listening on {net.local_address(listener)}", flush=True)
    try:
        failures = serve(listener, max_conns)
    finally:
        close(listener)
    cli.eprint(f"served {max_conns} connection(s), {failures} failed")
    return 0


class Run(exports.Run):
    def run(self) -> None:
        cli.run(main)
