"""native_client.py COMMAND HOST:PORT N SERVER_NAME CA_FILE

The native Python anchor for the network figures: what the net-bench guest
does (same commands, same 64 KiB reads and writes, same JSON line), done by
CPython's socket and ssl modules in a process of its own, so that it has a
core and an interpreter to itself as the guest's host process has.

`hold` prints `ready` after one connection, waits for a line on stdin, opens
N more, prints `open`, waits for another line and closes them all.
`https-get HOST:PORT BYTES NAME CA` is the https-get guest's job: one GET of
/blob with http.client, the body read in 64 KiB pieces and hashed;
`download` is net-bench's: the same GET with the body written to a file.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
import sys
import tempfile
import time

CHUNK = 64 * 1024


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def _connect(address: str, context: ssl.SSLContext | None, server_name: str) -> socket.socket:
    conn = socket.create_connection(_split(address))
    if context is None:
        return conn
    return context.wrap_socket(conn, server_hostname=server_name)


def read(address: str, total: int, context: ssl.SSLContext | None, server_name: str) -> dict:
    conn = _connect(address, context, server_name)
    buffer = bytearray(CHUNK)
    received = calls = 0
    start = time.perf_counter()
    while got := conn.recv_into(buffer):
        received += got
        calls += 1
    elapsed = time.perf_counter() - start
    conn.close()
    if received != total:
        raise RuntimeError(f"received {received} of {total} bytes")
    return {"seconds": elapsed, "bytes": received, "calls": calls}


def write(address: str, total: int, context: ssl.SSLContext | None, server_name: str) -> dict:
    conn = _connect(address, context, server_name)
    block = bytes(CHUNK)
    sent = calls = 0
    start = time.perf_counter()
    while sent < total:
        size = min(CHUNK, total - sent)
        conn.sendall(block[:size])
        sent += size
        calls += 1
    if context is None:
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)  # the peer closes once it has read everything
    else:
        conn = conn.unwrap()  # close_notify, then the peer's answer
    elapsed = time.perf_counter() - start
    conn.close()
    return {"seconds": elapsed, "bytes": sent, "calls": calls}


def handshakes(address: str, count: int, context: ssl.SSLContext, server_name: str) -> dict:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        conn = _connect(address, context, server_name)
        times.append(time.perf_counter() - start)
        conn.close()
    return {"seconds": times}


def resumed_handshakes(address: str, count: int, context: ssl.SSLContext,
                       server_name: str) -> dict:
    """`handshakes`, each connection offering the session the one before it
    ended with, and reading the server's greeting (R: it resumed)."""
    times, resumed, session = [], [], None
    for _ in range(count):
        start = time.perf_counter()
        conn = context.wrap_socket(socket.create_connection(_split(address)),
                                   server_hostname=server_name, session=session)
        times.append(time.perf_counter() - start)
        resumed.append(conn.recv(1) == b"R")  # TLS 1.3: the ticket comes with it
        session = conn.session
        conn.close()
    return {"seconds": times, "resumed": resumed}


def hold(address: str, count: int, context: ssl.SSLContext, server_name: str) -> dict:
    connections = [_connect(address, context, server_name)]
    print("ready", flush=True)
    sys.stdin.readline()
    connections += [_connect(address, context, server_name) for _ in range(count)]
    print("open", flush=True)
    sys.stdin.readline()
    for conn in connections:
        conn.close()
    return {"held": count}


def https_get(address: str, total: int, context: ssl.SSLContext, server_name: str) -> dict:
    start = time.perf_counter()
    connection = http.client.HTTPSConnection(server_name, _split(address)[1], context=context)
    connection.request("GET", "/blob")
    response = connection.getresponse()
    digest = hashlib.sha256()
    received = 0
    while chunk := response.read(CHUNK):
        digest.update(chunk)
        received += len(chunk)
    connection.close()
    if received != total:
        raise RuntimeError(f"received {received} of {total} bytes")
    return {"seconds": time.perf_counter() - start, "bytes": received}


def download(address: str, total: int, context: ssl.SSLContext, server_name: str) -> dict:
    """What `net-bench download` does: GET /blob into a file."""
    start = time.perf_counter()
    connection = http.client.HTTPSConnection(server_name, _split(address)[1], context=context)
    connection.request("GET", "/blob")
    response = connection.getresponse()
    with tempfile.TemporaryFile() as file:
        while chunk := response.read(CHUNK):
            file.write(chunk)
        file.flush()
        received = file.tell()
    connection.close()
    if received != total:
        raise RuntimeError(f"received {received} of {total} bytes")
    return {"seconds": time.perf_counter() - start, "bytes": received}


def main(argv: list[str]) -> int:
    command, address, number, server_name, ca_file = argv
    context = ssl.create_default_context(cafile=ca_file)
    commands = {
        "tcp-read": lambda: read(address, int(number), None, server_name),
        "tcp-write": lambda: write(address, int(number), None, server_name),
        "tls-read": lambda: read(address, int(number), context, server_name),
        "tls-write": lambda: write(address, int(number), context, server_name),
        "handshakes": lambda: handshakes(address, int(number), context, server_name),
        "resumed-handshakes": lambda: resumed_handshakes(address, int(number), context,
                                                         server_name),
        "hold": lambda: hold(address, int(number), context, server_name),
        "https-get": lambda: https_get(address, int(number), context, server_name),
        "download": lambda: download(address, int(number), context, server_name),
    }
    print(json.dumps(commands[command]()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
