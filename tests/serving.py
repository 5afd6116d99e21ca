"""`wasi-tls-host serve` for the tests, and a client to talk to it.

`Served` starts the installed command in a subprocess (`--addr
127.0.0.1:0`), waits for its first line, `serving on URL`, and keeps
reading its output, so that a chatty server never blocks on a full pipe.

`HttpClient` is one HTTP/1.1 connection (TLS with a context) on h11 that
sends a request body while it reads the response, in one select loop: a
handler that echoes as it reads needs a client that reads as it sends. A
`Reply` keeps the status, the headers and the body's size and SHA-256 (and
the body itself up to `KEEP` bytes), so bodies of any size can be checked.
"""

from __future__ import annotations

import hashlib
import os
import select
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h11

from conftest import HOST

#: Bytes of a body a Reply keeps (the rest is only counted and hashed).
KEEP = 1 << 20
CHUNK = 64 * 1024
#: Byte i of a patterned body is i % PATTERN_PERIOD (both handlers agree).
PATTERN_PERIOD = 251


def pattern(length: int) -> bytes:
    period = bytes(range(PATTERN_PERIOD))
    whole, rest = divmod(length, PATTERN_PERIOD)
    return period * whole + period[:rest]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def random_chunks(size: int, seed: int = 1) -> tuple[list[bytes], str]:
    """`size` bytes in CHUNK-sized pieces that do not repeat, and their SHA-256."""
    chunks, digest, made = [], hashlib.sha256(), 0
    while made < size:
        piece = hashlib.shake_256(f"{seed}:{made}".encode()).digest(min(CHUNK, size - made))
        chunks.append(piece)
        digest.update(piece)
        made += len(piece)
    return chunks, digest.hexdigest()


class Served:
    """`wasi-tls-host serve FLAGS COMPONENT` on a free loopback port."""

    def __init__(self, component: Path | str, *flags: str, addr: str = "127.0.0.1:0",
                 startup_timeout: float = 120):
        self.process = subprocess.Popen(
            [HOST, "serve", "--addr", addr, *flags, str(component)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._stdout: list[bytes] = []
        self._stderr: list[bytes] = []
        self._first_line = threading.Event()
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self._stdout, True),
                             daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self._stderr, False),
                             daemon=True)]
        for reader in self._readers:
            reader.start()
        if not self._first_line.wait(startup_timeout) or not self.banner.startswith(
                "serving on "):
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"serve did not start: {self.banner!r} {self.stderr}")
        self.url = self.banner.split()[-1]
        self.port = int(self.url.rstrip("/").rsplit(":", 1)[1])

    def _read(self, stream, into: list[bytes], announce: bool) -> None:
        for line in iter(stream.readline, b""):
            into.append(line)
            if announce:
                self._first_line.set()
        self._first_line.set()  # it ended without a banner

    @property
    def banner(self) -> str:
        return self._stdout[0].decode().strip() if self._stdout else ""

    @property
    def stdout(self) -> str:
        return b"".join(self._stdout[1:]).decode(errors="replace")

    @property
    def stderr(self) -> str:
        return b"".join(self._stderr).decode(errors="replace")

    def send_signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send `signum` and wait for the exit status."""
        self.send_signal(signum)
        return self.wait(timeout)

    def wait(self, timeout: float = 60) -> int:
        status = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(10)
        return status

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    size: int = 0
    sha256: str = ""
    body: bytes = b""
    #: How the response ended: "complete", or why not ("closed", "reset", ...).
    ending: str = "complete"
    informational: list[int] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class HttpClient:
    """One connection to 127.0.0.1:`port` (or on the connected socket
    `raw`), over TLS with `context`: the handshake is done here."""

    def __init__(self, port: int, context: ssl.SSLContext | None = None, *,
                 server_name: str = "localhost", timeout: float = 60,
                 raw: socket.socket | None = None):
        self.timeout = timeout
        if raw is None:
            raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock: socket.socket = (context.wrap_socket(raw, server_hostname=server_name)
                                    if context is not None else raw)
        self.conn = h11.Connection(h11.CLIENT)

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def request(self, method: str = "GET", target: str = "/", *,
                body: bytes | Iterable[bytes] | None = None,
                headers: Iterable[tuple[str, str]] = ()) -> Reply:
        """Send the request (a body of bytes with Content-Length, an iterable
        chunked) while reading the response; the Reply once it has ended."""
        head = [("host", "localhost"), *headers]
        if isinstance(body, bytes):
            head.append(("content-length", str(len(body))))
            pieces: Iterator[bytes] = iter([body])
        elif body is not None:
            head.append(("transfer-encoding", "chunked"))
            pieces = iter(body)
        else:
            pieces = iter(())
        outgoing = bytearray(self.conn.send(h11.Request(method=method, target=target,
                                                          headers=head)))
        sending = True
        reply: Reply | None = None
        digest = hashlib.sha256()
        deadline = time.monotonic() + self.timeout
        self.sock.setblocking(False)
        try:
            while True:
                while sending and len(outgoing) < CHUNK:
                    piece = next(pieces, None)
                    if piece is None:
                        outgoing += self.conn.send(h11.EndOfMessage())
                        sending = False
                    elif piece:
                        outgoing += self.conn.send(h11.Data(data=piece))
                event = self.conn.next_event()
                if event is h11.NEED_DATA:
                    data = self._exchange_bytes(outgoing, deadline)
                    if data is None:
                        continue
                    self.conn.receive_data(data)
                    if not data and reply is not None:
                        reply.ending = "closed"
                        return reply
                    continue
                if isinstance(event, h11.InformationalResponse):
                    continue
                if isinstance(event, h11.Response):
                    reply = Reply(event.status_code, {
                        name.decode(): value.decode("latin-1") for name, value in event.headers})
                elif isinstance(event, h11.Data):
                    assert reply is not None
                    reply.size += len(event.data)
                    digest.update(event.data)
                    if len(reply.body) < KEEP:
                        reply.body += event.data[:KEEP - len(reply.body)]
                    reply.sha256 = digest.hexdigest()
                elif isinstance(event, h11.EndOfMessage):
                    assert reply is not None
                    reply.sha256 = digest.hexdigest()
                    if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
                        self.conn.start_next_cycle()
                    return reply
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionError("the server closed the connection")
        except (ConnectionResetError, BrokenPipeError) as error:
            if reply is None:
                raise
            reply.ending = type(error).__name__
            return reply
        except h11.RemoteProtocolError:
            if reply is None:
                raise
            reply.ending = "incomplete"
            return reply
        finally:
            self.sock.setblocking(True)

    def _exchange_bytes(self, outgoing: bytearray, deadline: float) -> bytes | None:
        """Send what can be sent; return what arrived (b"" at the end), or
        None when only sending moved."""
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return sock.recv(CHUNK)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no response in time")
        readable, writable, _ = select.select([sock], [sock] if outgoing else [], [],
                                              remaining)
        if writable:
            try:
                sent = sock.send(outgoing[:CHUNK])
                del outgoing[:sent]
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                pass
        if readable:
            try:
                return sock.recv(CHUNK)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return None
        return None


def get(port: int, target: str = "/", context: ssl.SSLContext | None = None,
        **options) -> Reply:
    """One GET on a connection of its own."""
    with HttpClient(port, context, **options) as client:
        return client.request("GET", target)


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closes `sock` within `timeout` seconds (reading and
    dropping whatever it sends first)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sock.recv(CHUNK):
                return True
    except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
        return True
    except TimeoutError:
        return False
    return False


def process_rss(pid: int) -> int:
    """Resident memory of process `pid`, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found
