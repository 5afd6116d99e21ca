"""net-bench COMMAND HOST:PORT ARG [SERVER_NAME]

The guest side of `make bench`'s network figures. It times itself with the
monotonic clock, so its start-up is not in the figures, and prints one JSON
line of results.

  tcp-read HOST:PORT BYTES     read BYTES (all the peer sends) in 64 KiB reads
  tcp-write HOST:PORT BYTES    write BYTES in 64 KiB writes, shut down the
                               sending side and wait for the peer to close
  tls-read HOST:PORT BYTES     the same over TLS (to the peer's close_notify)
  tls-write HOST:PORT BYTES    the same over TLS (close_notify, then the peer's)
  read-all HOST:PORT BYTES     one TlsConnection.read_all() of everything
  write-all HOST:PORT BYTES    one TlsConnection.write_all() of BYTES random
                               bytes, then as tls-write
  bulk-read HOST:PORT BYTES    tls-read with wasi_guest.bulk.read (the host's
                               fast path in a world that has it), waiting on
                               the stream when nothing is there
  bulk-write HOST:PORT BYTES   tls-write with check-write and
                               wasi_guest.bulk.write of random bytes
  download HOST:PORT BYTES     http.get("https://NAME:PORT/blob", to=/data/blob):
                               the body into a file (in a preopened /data)
  handshakes HOST:PORT COUNT   COUNT TLS connections one after another, each
                               closed right after its handshake
  resumed-handshakes HOST:PORT COUNT
                               `handshakes`, each connection then reading the
                               server's one-byte greeting (R: the handshake
                               resumed a session, F: a full one) before it is
                               closed; run with --tls-resume, every connection
                               after the first may resume
  hold HOST:PORT COUNT         print `ready` after one TLS connection, wait for
                               a line on stdin, open COUNT more, print `open`,
                               wait for another line, close them all

SERVER_NAME (TLS only) defaults to HOST. Results: {"seconds": S, "bytes": N,
"calls": C} for reads and writes (C read or write calls; 1 for read-all and
write-all), {"seconds": [S, ...]} with one entry per handshake (and
"resumed": [true|false, ...] for resumed-handshakes). tcp-write and
tls-write write zeros, the others random bytes (64 KiB of them, repeated).
Errors: `error: ...` on stderr, exit status 1.
"""

import json
import os
import sys

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import monotonic_clock, stdin, streams

from wasi_guest import WasiError, bulk, cli, http, io, net, tls

CHUNK = 64 * 1024
USAGE = ("usage: net-bench tcp-read|tcp-write|tls-read|tls-write|read-all|write-all|"
         "bulk-read|bulk-write|download|handshakes|resumed-handshakes|hold HOST:PORT N [NAME]")


def seconds_since(start_ns):
    return (monotonic_clock.now() - start_ns) / 1e9


def checked(result, total):
    if result["bytes"] != total:
        raise WasiError("unexpected-eof", f"after {result['bytes']} of {total} bytes")
    return result


def tcp_read(address, total, server_name):
    sock, inp, out = net.connect_tcp(address)
    received = calls = 0
    start = monotonic_clock.now()
    while (data := io.read_some(inp, CHUNK)) is not None:
        received += len(data)
        calls += 1
    elapsed = seconds_since(start)
    net.close_connection(sock, inp, out)
    return checked({"seconds": elapsed, "bytes": received, "calls": calls}, total)


def tcp_write(address, total, server_name):
    sock, inp, out = net.connect_tcp(address)
    chunk = bytes(CHUNK)
    sent = calls = 0
    start = monotonic_clock.now()
    while sent < total:
        size = min(CHUNK, total - sent)
        io.write_all(out, chunk[:size], flush_after=False)
        sent += size
        calls += 1
    io.flush(out)
    net.shutdown(sock, "send")
    # The peer closes once it has read everything: only then is it delivered.
    io.read_all(inp)
    elapsed = seconds_since(start)
    net.close_connection(sock, inp, out)
    return {"seconds": elapsed, "bytes": sent, "calls": calls}


def tls_connect(address, server_name):
    host, port = net.split_host_port(address)
    return tls.connect_tls(host, port, server_name=server_name or host)


def tls_read(address, total, server_name):
    conn = tls_connect(address, server_name)
    received = calls = 0
    start = monotonic_clock.now()
    while data := conn.read(CHUNK):
        received += len(data)
        calls += 1
    elapsed = seconds_since(start)
    conn.close()
    return checked({"seconds": elapsed, "bytes": received, "calls": calls}, total)


def tls_write(address, total, server_name):
    conn = tls_connect(address, server_name)
    chunk = bytes(CHUNK)
    sent = calls = 0
    start = monotonic_clock.now()
    while sent < total:
        size = min(CHUNK, total - sent)
        conn.write_all(chunk[:size], flush=False)
        sent += size
        calls += 1
    conn.flush()
    conn.close_output()
    # The peer answers our close_notify once it has read everything.
    conn.read_all()
    elapsed = seconds_since(start)
    conn.close()
    return {"seconds": elapsed, "bytes": sent, "calls": calls}


def random_bytes(total):
    """`total` random bytes: 64 KiB of them, repeated (the guest's random
    source is a host call that returns list<u8>, which would take long)."""
    block = os.urandom(CHUNK)
    return (block * (total // CHUNK + 1))[:total]


def read_all(address, total, server_name):
    conn = tls_connect(address, server_name)
    start = monotonic_clock.now()
    received = len(conn.read_all())
    elapsed = seconds_since(start)
    conn.close()
    return checked({"seconds": elapsed, "bytes": received, "calls": 1}, total)


def write_all(address, total, server_name):
    conn = tls_connect(address, server_name)
    data = random_bytes(total)
    start = monotonic_clock.now()
    conn.write_all(data)
    conn.close_output()
    conn.read_all()
    elapsed = seconds_since(start)
    conn.close()
    return {"seconds": elapsed, "bytes": total, "calls": 1}


def bulk_read(address, total, server_name):
    conn = tls_connect(address, server_name)
    received = calls = 0
    start = monotonic_clock.now()
    while True:
        try:
            data = bulk.read(conn.input, CHUNK)
        except Err as error:
            if isinstance(error.value, streams.StreamError_Closed):
                break
            raise WasiError("io", repr(error.value)) from None
        calls += 1
        if data:
            received += len(data)
        else:
            io.wait_for(conn.input)
    elapsed = seconds_since(start)
    conn.close()
    return checked({"seconds": elapsed, "bytes": received, "calls": calls}, total)


def bulk_write(address, total, server_name):
    conn = tls_connect(address, server_name)
    chunk = random_bytes(CHUNK)
    sent = calls = 0
    start = monotonic_clock.now()
    while sent < total:
        permit = io.check_write(conn.output)
        if permit == 0:
            io.wait_for(conn.output)
            continue
        size = min(permit, CHUNK, total - sent)
        bulk.write(conn.output, chunk[:size])
        sent += size
        calls += 1
    conn.flush()
    conn.close_output()
    conn.read_all()
    elapsed = seconds_since(start)
    conn.close()
    return {"seconds": elapsed, "bytes": sent, "calls": calls}


def download(address, total, server_name):
    host, port = net.split_host_port(address)
    start = monotonic_clock.now()
    response = http.get(f"https://{server_name or host}:{port}/blob", to="/data/blob")
    elapsed = seconds_since(start)
    if response.status != 200:
        raise WasiError("http", f"status {response.status}")
    return {"seconds": elapsed, "bytes": total, "calls": 1}


def handshakes(address, count, server_name):
    times = []
    for _ in range(count):
        start = monotonic_clock.now()
        conn = tls_connect(address, server_name)
        times.append(seconds_since(start))
        conn.close()
    return {"seconds": times}


def resumed_handshakes(address, count, server_name):
    times, resumed = [], []
    for _ in range(count):
        start = monotonic_clock.now()
        conn = tls_connect(address, server_name)
        times.append(seconds_since(start))
        # TLS 1.3: the session ticket comes after the handshake, with this byte.
        resumed.append(conn.read_exactly(1) == b"R")
        conn.close()
    return {"seconds": times, "resumed": resumed}


def wait_for_line(stream):
    while io.read_some(stream, 1) not in (None, b"\n"):
        pass


def hold(address, count, server_name):
    commands = stdin.get_stdin()
    connections = [tls_connect(address, server_name)]
    print("ready", flush=True)
    wait_for_line(commands)
    connections += [tls_connect(address, server_name) for _ in range(count)]
    print("open", flush=True)
    wait_for_line(commands)
    for conn in connections:
        conn.close()
    return {"held": count}


COMMANDS = {
    "tcp-read": tcp_read,
    "tcp-write": tcp_write,
    "tls-read": tls_read,
    "tls-write": tls_write,
    "read-all": read_all,
    "write-all": write_all,
    "bulk-read": bulk_read,
    "bulk-write": bulk_write,
    "download": download,
    "handshakes": handshakes,
    "resumed-handshakes": resumed_handshakes,
    "hold": hold,
}


def main(argv):
    if len(argv) not in (3, 4) or argv[0] not in COMMANDS:
        cli.eprint(USAGE)
        return 1
    command, address, number = argv[:3]
    server_name = argv[3] if len(argv) == 4 else None
    try:
        result = COMMANDS[command](address, int(number), server_name)
    except (WasiError, ValueError, http.HttpError) as error:
        cli.eprint(f"error: {error}")
        return 1
    print(json.dumps(result), flush=True)
    return 0


class Run(exports.Run):
    def run(self) -> None:
        cli.exit(main(sys.argv[1:]))
