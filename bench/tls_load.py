"""The TLS server load figures' two native halves, each in a process of its own.

    tls_load.py serve HOST:PORT CERT KEY
        An asyncio ssl echo server (the anchor), with the tls-echo-server
        guest's contract: prints `listening on HOST:PORT`, then echoes each
        connection until its client closes. Port 0 picks a free port.

    tls_load.py handshakes HOST:PORT CONNECTIONS TOTAL CA_FILE
    tls_load.py bulk HOST:PORT CONNECTIONS SECONDS CA_FILE
        A native client pool of CONNECTIONS concurrent clients. `handshakes`:
        each client connects, completes the handshake, has 16 bytes echoed,
        closes, and starts over, until TOTAL handshakes are done between
        them (or HANDSHAKES_CAP_S has passed); timing a fixed amount of work
        rather than counting in a window, because concurrent clients finish
        their handshakes in waves (200 clients: 200 at once, about once a
        second), which a window of a few seconds would round badly. `bulk`:
        each client connects once, then has 64 KiB blocks echoed one after
        another for SECONDS. Prints one JSON line: handshakes per second,
        echoed MB per second (10^6 bytes, counted once) and the number of
        failed connections.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time

BLOCK = 64 * 1024
MESSAGE = b"0123456789abcdef"
#: A connection that makes no progress for this long counts as failed.
TIMEOUT_S = 10.0
#: The handshake figure stops here even if TOTAL is not reached.
HANDSHAKES_CAP_S = 15.0
SERVER_NAME = "localhost"


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


async def serve(address: str, cert_file: str, key_file: str) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(BLOCK):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass  # the client's failure, counted by the client
        finally:
            writer.close()

    host, port = _split(address)
    server = await asyncio.start_server(echo, host, port, ssl=context, backlog=1024)
    print(f"listening on {host}:{server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


class Tally:
    """What the clients completed before `deadline` (perf_counter seconds).

    The clients stop by themselves at the deadline rather than being
    cancelled: Python 3.11's wait_for can swallow a cancellation that races
    with its result, which left a busy client running forever."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.handshakes = 0
        self.last_handshake_at = 0.0
        self.echoed = 0
        self.errors = 0

    def running(self) -> bool:
        return time.perf_counter() < self.deadline


async def _connect(address: str, context: ssl.SSLContext) -> tuple[asyncio.StreamReader,
                                                                   asyncio.StreamWriter]:
    host, port = _split(address)
    return await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=context, server_hostname=SERVER_NAME),
        TIMEOUT_S)


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                data: bytes) -> None:
    writer.write(data)
    await writer.drain()
    await asyncio.wait_for(reader.readexactly(len(data)), TIMEOUT_S)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), TIMEOUT_S)
    except (TimeoutError, ConnectionError, ssl.SSLError):
        pass  # the echo already succeeded; how the goodbye went is not measured


#: What makes one client's connection count as failed.
FAILURES = (OSError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError)


async def _handshake_client(address: str, context: ssl.SSLContext, tally: Tally,
                            quota: int) -> None:
    for _ in range(quota):
        if not tally.running():
            return
        try:
            reader, writer = await _connect(address, context)
            await _echo(reader, writer, MESSAGE)
        except FAILURES:
            tally.errors += 1
            continue
        if tally.running():
            tally.handshakes += 1
            tally.last_handshake_at = time.perf_counter()
        await _close(writer)


async def _bulk_client(address: str, context: ssl.SSLContext, tally: Tally,
                       everyone_connected: asyncio.Barrier) -> None:
    try:
        reader, writer = await _connect(address, context)
    except FAILURES:
        tally.errors += 1
        await everyone_connected.wait()
        return
    await everyone_connected.wait()
    block = bytes(BLOCK)
    try:
        while tally.running():
            await _echo(reader, writer, block)
            if tally.running():
                tally.echoed += BLOCK
    except FAILURES:
        tally.errors += 1
    writer.transport.abort()


async def handshakes(address: str, connections: int, total: int, ca_file: str) -> dict:
    context = ssl.create_default_context(cafile=ca_file)
    start = time.perf_counter()
    tally = Tally(start + HANDSHAKES_CAP_S)
    quota = -(-total // connections)
    await asyncio.gather(*(_handshake_client(address, context, tally, quota)
                           for _ in range(connections)))
    seconds = tally.last_handshake_at - start
    return {"connections": connections, "seconds": seconds, "handshakes": tally.handshakes,
            "handshakes_per_s": tally.handshakes / seconds if seconds > 0 else 0.0,
            "errors": tally.errors}


async def bulk(address: str, connections: int, seconds: float, ca_file: str) -> dict:
    context = ssl.create_default_context(cafile=ca_file)
    # Everyone connects first: the bulk figure is about moving data.
    tally = Tally(float("inf"))
    everyone_connected = asyncio.Barrier(connections + 1)
    clients = asyncio.gather(*(_bulk_client(address, context, tally, everyone_connected)
                               for _ in range(connections)))
    await everyone_connected.wait()
    tally.deadline = time.perf_counter() + seconds
    await clients
    return {"connections": connections, "seconds": seconds,
            "mb_per_s": tally.echoed / seconds / 1e6, "errors": tally.errors}


def main(argv: list[str]) -> int:
    if argv[0] == "serve":
        try:
            asyncio.run(serve(*argv[1:]))
        except KeyboardInterrupt:
            pass
        return 0
    mode, address, connections, amount, ca_file = argv
    if mode == "handshakes":
        result = handshakes(address, int(connections), int(amount), ca_file)
    else:
        result = bulk(address, int(connections), float(amount), ca_file)
    print(json.dumps(asyncio.run(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
