"""bulk-probe: bytes through wasi_guest.bulk, for the tests.

  bulk-probe path                     print `bulk` or `standard`: which way
                                      wasi_guest.bulk moves bytes in this world
  bulk-probe read SOURCE SIZES [--blocking]
      read SOURCE to its end with bulk.read (waiting on the stream whenever
      nothing is there) or bulk.blocking_read, asking for the sizes in SIZES
      in turn (comma-separated, repeated), and copy what came to stdout
      with the standard stream methods; then read once more and expect
      `closed` again
  bulk-probe write SINK SIZES
      read all of stdin with the standard methods and write it to SINK with
      bulk.write in pieces of the sizes in SIZES (repeated), each cut to what
      check-write allows; then end SINK (TCP: shut down and wait for the
      peer to close; TLS: close_notify and wait for the peer's)
  bulk-probe read-all SOURCE          the library's way: io.read_all (TLS:
                                      TlsConnection.read_all), copied to stdout
  bulk-probe write-all SINK           the library's way: io.write_all (TLS:
                                      TlsConnection.write_all) of all of stdin
  bulk-probe get URL                  http.get(URL); the body to stdout
  bulk-probe download URL PATH        http.get(URL, to=PATH); `status N` on stderr
  bulk-probe forward SOURCE SINK      bulk.forward until SOURCE ends; `forwarded N` on stderr
  bulk-probe misuse CASE              beyond-permit, odd-hex, bad-hex, non-ascii:
                                      a bulk write to stdout the host must trap

SOURCE is stdin, file:NAME (in the preopened directory /data), tcp:HOST:PORT
or tls:HOST:PORT (server name: HOST). SINK is stdout or one of the others.
A stream error ends the run with `error: closed` or `error: failed: DEBUG`
on stderr and status 1; a broken expectation with `error: ...` likewise.
"""

import itertools
import sys

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import stdin, stdout, streams

from wasi_guest import WasiError, bulk, cli, fs, http, io, net, tls

try:
    from wit_world.imports import bulk as host_bulk
except ImportError:  # a portable world: no misuse to try
    host_bulk = None


class Failure(Exception):
    pass


def stream_failure(error):
    """`error: closed` or `error: failed: DEBUG` for an Err(stream-error)."""
    value = error.value
    if isinstance(value, streams.StreamError_Closed):
        return Failure("closed")
    debug = value.value.to_debug_string()
    value.value.__exit__(None, None, None)
    return Failure(f"failed: {debug.strip().splitlines()[0]}")


def is_closed(error):
    return isinstance(error.value, streams.StreamError_Closed)


class Endpoint:
    """One side of a transfer: its streams and how it ends."""

    def __init__(self, spec, writing):
        self.spec = spec
        self.parts = ()
        kind, _, rest = spec.partition(":")
        if kind == "stdin":
            self.input = stdin.get_stdin()
        elif kind == "stdout":
            self.output = stdout.get_stdout()
        elif kind == "file":
            directory = fs.find_preopen("/data")
            descriptor = fs.open_file(directory, rest, create=writing, truncate=writing,
                                      write=writing)
            if writing:
                self.output = fs.call(descriptor.write_via_stream, 0)
            else:
                self.input = fs.call(descriptor.read_via_stream, 0)
            self.parts = (descriptor, directory)
        elif kind == "tcp":
            self.socket, self.input, self.output = net.connect_tcp(rest)
        elif kind == "tls":
            host, port = net.split_host_port(rest)
            self.connection = tls.connect_tls(host, port)
            self.input, self.output = self.connection.input, self.connection.output
        else:
            raise ValueError(f"unknown stream {spec!r}")
        self.kind = kind

    def end_output(self):
        """Deliver everything written, then tell the other side we are done."""
        if self.kind == "tcp":
            io.flush(self.output)
            net.shutdown(self.socket, "send")
            io.read_all(self.input)  # the peer closes once it has it all
        elif self.kind == "tls":
            self.connection.flush()
            self.connection.close_output()
            self.connection.read_all()
        else:
            io.flush(self.output)

    def close(self):
        if self.kind == "tls":
            self.connection.close()
        elif self.kind == "tcp":
            net.close_connection(self.socket, self.input, self.output)
        else:
            stream = getattr(self, "input", None) or getattr(self, "output", None)
            stream.__exit__(None, None, None)
            for part in self.parts:
                part.__exit__(None, None, None)


def sizes_of(text):
    sizes = [int(size) for size in text.split(",")]
    if not any(sizes) or min(sizes) < 0:
        raise ValueError("SIZES needs a positive size and no negative one")
    return itertools.cycle(sizes)


def read(source, sizes, blocking):
    console = stdout.get_stdout()
    for size in sizes:
        try:
            data = (bulk.blocking_read if blocking else bulk.read)(source.input, size)
        except Err as error:
            if not is_closed(error):
                raise stream_failure(error) from None
            break
        if len(data) > size:
            raise Failure(f"asked for {size} bytes, got {len(data)}")
        if blocking and size and not data:
            raise Failure(f"a blocking read of {size} bytes returned none")
        if data:
            io.write_all(console, data)
        elif not blocking:
            io.wait_for(source.input)
    try:
        bulk.read(source.input, 1)
        raise Failure("a read after the end did not say closed")
    except Err as error:
        if not is_closed(error):
            raise stream_failure(error) from None
    io.flush(console)
    console.__exit__(None, None, None)


def write(sink, sizes, data):
    view = memoryview(data)
    done = 0
    for size in sizes:
        if done == len(view):
            break
        try:
            permit = sink.output.check_write()
            if permit == 0:
                io.wait_for(sink.output)
                continue
            piece = min(size, permit, len(view) - done)
            bulk.write(sink.output, bytes(view[done:done + piece]))
        except Err as error:
            raise stream_failure(error) from None
        done += piece
    sink.end_output()


def read_all(source):
    if source.kind == "tls":
        return source.connection.read_all()
    return io.read_all(source.input)


def write_all(sink, data):
    if sink.kind == "tls":
        sink.connection.write_all(data, flush=False)
    else:
        io.write_all(sink.output, data, flush_after=False)
    sink.end_output()


def forward(source, sink):
    try:
        moved = bulk.forward(source.input, sink.output)
    except Err as error:
        raise stream_failure(error) from None
    sink.end_output()
    return moved


def misuse(case):
    if host_bulk is None:
        raise Failure("misuse needs wasi-tls-host:io/bulk")
    console = stdout.get_stdout()
    permit = console.check_write()
    if case == "beyond-permit":
        bulk.write(console, b"x" * (permit + 1))
    elif case == "odd-hex":
        host_bulk.write(console, host_bulk.Chunk_Hex("abc"))
    elif case == "bad-hex":
        host_bulk.write(console, host_bulk.Chunk_Hex("zz"))
    elif case == "non-ascii":
        host_bulk.write(console, host_bulk.Chunk_Ascii("caf\u00e9"))
    else:
        raise ValueError(f"unknown misuse {case!r}")
    raise Failure(f"the host took the {case} write")


def main(argv):
    command, arguments = (argv[0], argv[1:]) if argv else ("", [])
    if command == "path" and not arguments:
        print("bulk" if bulk.AVAILABLE else "standard")
    elif command == "read" and len(arguments) in (2, 3):
        blocking = arguments[2:] == ["--blocking"]
        if len(arguments) == 3 and not blocking:
            raise ValueError(f"unknown option {arguments[2]}")
        source = Endpoint(arguments[0], writing=False)
        read(source, sizes_of(arguments[1]), blocking)
        source.close()
    elif command == "write" and len(arguments) == 2:
        data = io.read_all(stdin.get_stdin())
        sink = Endpoint(arguments[0], writing=True)
        write(sink, sizes_of(arguments[1]), data)
        sink.close()
    elif command == "read-all" and len(arguments) == 1:
        source = Endpoint(arguments[0], writing=False)
        io.write_all(stdout.get_stdout(), read_all(source))
        source.close()
    elif command == "write-all" and len(arguments) == 1:
        data = io.read_all(stdin.get_stdin())
        sink = Endpoint(arguments[0], writing=True)
        write_all(sink, data)
        sink.close()
    elif command == "get" and len(arguments) == 1:
        response = http.get(arguments[0])
        if response.status != 200:
            raise Failure(f"status {response.status}")
        io.write_all(stdout.get_stdout(), response.body)
    elif command == "download" and len(arguments) == 2:
        response = http.get(arguments[0], to=arguments[1])
        cli.eprint(f"status {response.status}")
    elif command == "forward" and len(arguments) == 2:
        source = Endpoint(arguments[0], writing=False)
        sink = Endpoint(arguments[1], writing=True)
        moved = forward(source, sink)
        sink.close()
        source.close()
        cli.eprint(f"forwarded {moved}")
    elif command == "misuse" and len(arguments) == 1:
        misuse(arguments[0])
    else:
        cli.eprint(__doc__.strip().splitlines()[0])
        return 1
    return 0


class Run(exports.Run):
    def run(self) -> None:
        try:
            status = main(sys.argv[1:])
        except (Failure, WasiError, ValueError, http.HttpError) as error:
            cli.eprint(f"error: {error}")
            status = 1
        cli.exit(status)
