"""The peers the cases meet: real TLS and TCP endpoints on loopback, each
started for one case and closed after it.

A peer is chosen by name in the manifest (`PEERS`), with options, and is
built as `Peer(pki, version, **options)`. It offers

* `values`: the placeholders it fills in the guest's arguments, such as
  `{address}` (where it listens) or `{listen}` (where the guest should);
* `close()`, once the guest has ended: the peer finishes and stops;
* `problems(facts)`, after `close()`: what the peer saw that contradicts the
  case, given the facts the guest reported.

Peers are Python `ssl` servers and clients (OpenSSL underneath), plain TCP
services, servers that misbehave on purpose, and `openssl s_server` /
`s_client` where installed. Each connection is served on its own thread and
gives up after `IDLE_S` of silence, so no peer outlives its case.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field

from .pki import Pki

#: A connection that stays silent this long is abandoned by its peer.
IDLE_S = 10.0
#: How long a peer's connections get to finish once the guest has ended.
CLOSE_S = 3.0
TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
LOOPBACK = "127.0.0.1"


def pattern(size: int, seed: int = 0) -> bytes:
    """The byte pattern the guests send and expect (conformance_kit.pattern)."""
    return bytes((index * 7 + seed) % 251 for index in range(size))


def openssl_installed() -> bool:
    return shutil.which("openssl") is not None


def server_context(pki: Pki, certificate: str, version: str | None, *,
                   legacy: bool = False) -> ssl.SSLContext:
    """A Python ssl server context presenting `certificate`, pinned to `version`.

    Truncation must stay visible (OP_IGNORE_UNEXPECTED_EOF off). `legacy`
    serves only TLS 1.0 and 1.1, at security level 0 because OpenSSL refuses
    them at its default level.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    leaf = pki[certificate]
    context.load_cert_chain(leaf.cert_file, leaf.key_file)
    if legacy:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    elif version is not None:
        context.minimum_version = context.maximum_version = TLS_VERSIONS[version]
    return context


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


@dataclass
class Served:
    """What one connection to a server peer did."""

    handshake: bool = False
    received: int = 0
    close_notify: bool = False
    error: str | None = None
    notes: dict = field(default_factory=dict)


class Server:
    """A listener on loopback serving each connection on its own thread."""

    def __init__(self) -> None:
        self.listener = socket.create_server((LOOPBACK, 0), backlog=128)
        self.values = {"address": f"{LOOPBACK}:{self.listener.getsockname()[1]}"}
        self.served: list[Served] = []
        self.closing = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            raw.settimeout(IDLE_S)
            record = Served()
            thread = threading.Thread(target=self._serve, args=(raw, record), daemon=True)
            with self._lock:
                self._sockets.append(raw)
                self.served.append(record)
                self._threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket, record: Served) -> None:
        try:
            self.serve(raw, record)
        except (OSError, ssl.SSLError, ValueError) as error:
            record.error = record.error or describe(error)
        finally:
            raw.close()

    def serve(self, raw: socket.socket, record: Served) -> None:
        raise NotImplementedError

    def problems(self, facts: dict) -> list[str]:
        return []

    def close(self) -> None:
        """Stop listening and let each connection finish what the guest left it
        (the guest has ended); then cut off any that still waits."""
        self.closing.set()
        self.listener.close()
        with self._lock:
            threads, sockets = list(self._threads), list(self._sockets)
        deadline = time.monotonic() + CLOSE_S
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for raw in sockets:
            try:
                raw.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(1.0)


class TlsServer(Server):
    """A TLS server presenting `certificate`; what it does after the handshake
    is `session` (subclasses), with the connection's record."""

    def __init__(self, pki: Pki, version: str | None, *, certificate: str = "localhost",
                 legacy: bool = False, handshakes: int = 1, close_notifies: int | None = None,
                 delay: float = 0.0):
        self.context = server_context(pki, certificate, version, legacy=legacy)
        #: Seconds to wait before answering the ClientHello (a slow server).
        self.delay = delay
        #: At least this many handshakes must complete, and at least this many
        #: connections must end with the guest's close_notify.
        self.handshakes = handshakes
        self.close_notifies = handshakes if close_notifies is None else close_notifies
        super().__init__()

    def serve(self, raw: socket.socket, record: Served) -> None:
        if self.delay:
            self.closing.wait(self.delay)
        try:
            tls = self.context.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False)
        except (ssl.SSLError, OSError) as error:
            record.error = describe(error)
            return
        record.handshake = True
        record.notes.update(version=tls.version(), cipher=tls.cipher()[0])
        self.session(tls, record)

    def session(self, tls: ssl.SSLSocket, record: Served) -> None:
        raise NotImplementedError

    def problems(self, facts: dict) -> list[str]:
        found = []
        done = [record for record in self.served if record.handshake]
        if len(done) < self.handshakes:
            errors = "; ".join(sorted({r.error for r in self.served if r.error})) or "none"
            found.append(f"peer: {len(done)} handshake(s) completed, expected "
                         f"{self.handshakes} (its errors: {errors})")
        notified = sum(record.close_notify for record in done)
        if notified < self.close_notifies:
            found.append(f"peer: close_notify arrived on {notified} connection(s), expected "
                         f"{self.close_notifies}")
        return found


def await_close_notify(tls: ssl.SSLSocket, record: Served) -> None:
    """Having read the guest's close_notify (recv gave b""), answer with ours."""
    record.close_notify = True
    tls.unwrap()


class TlsEcho(TlsServer):
    """Echoes until the guest's close_notify, then answers it with its own."""

    def session(self, tls: ssl.SSLSocket, record: Served) -> None:
        while data := tls.recv(65536):
            record.received += len(data)
            tls.sendall(data)
        await_close_notify(tls, record)

    def problems(self, facts: dict) -> list[str]:
        found = super().problems(facts)
        sent = facts.get("sent")
        if sent is not None and not any(r.received == sent for r in self.served):
            found.append(f"peer: received {[r.received for r in self.served]} byte(s), "
                         f"the guest sent {sent}")
        return found


class TlsSender(TlsServer):
    """Sends `payload`, then close_notify (`then="close-notify"`) or closes the
    TCP connection without one (`then="truncate"`)."""

    def __init__(self, pki: Pki, version: str | None, *, payload: str, then: str, **options):
        self.payload = payload.encode()
        self.then = then
        super().__init__(pki, version, close_notifies=0, **options)

    def session(self, tls: ssl.SSLSocket, record: Served) -> None:
        tls.sendall(self.payload)
        if self.then == "truncate":
            socket.socket(fileno=tls.detach()).close()
        else:
            tls.unwrap()  # close_notify, then the guest's answer


class Garbage(Server):
    """Answers the ClientHello with an HTTP error: not TLS at all."""

    def __init__(self, pki: Pki, version: str | None):
        super().__init__()

    def serve(self, raw: socket.socket, record: Served) -> None:
        raw.recv(4096)
        raw.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 20)


class CutAfterServerHello(Server):
    """A real TLS server that sends only its first record (the ServerHello),
    then resets the connection (`then="reset"`) or stays silent with it open
    (`then="stall"`) until the case ends."""

    def __init__(self, pki: Pki, version: str | None, *, then: str):
        self.context = server_context(pki, "localhost", version)
        self.then = then
        super().__init__()

    def serve(self, raw: socket.socket, record: Served) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        server = self.context.wrap_bio(incoming, outgoing, server_side=True)
        flight = b""
        while not flight:
            data = raw.recv(65536)
            if not data:
                return
            incoming.write(data)
            try:
                server.do_handshake()
            except ssl.SSLWantReadError:
                pass
            flight = outgoing.read()
        length = struct.unpack("!H", flight[3:5])[0]
        raw.sendall(flight[:5 + length])
        record.notes["sent"] = "ServerHello"
        if self.then == "reset":
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        started = time.monotonic()
        raw.settimeout(None)
        threading.Thread(target=self._note_hang_up, args=(raw, record, started),
                         daemon=True).start()
        self.closing.wait()

    @staticmethod
    def _note_hang_up(raw: socket.socket, record: Served, started: float) -> None:
        try:
            while raw.recv(4096):
                pass
        except OSError:
            pass
        record.notes["client hung up after"] = round(time.monotonic() - started, 1)


class TlsNestedEcho(TlsServer):
    """A TLS server whose plaintext carries a second TLS server (certificate
    `inner`, same version) that echoes; records both close_notifies."""

    def __init__(self, pki: Pki, version: str | None):
        self.inner_context = server_context(pki, "inner", version)
        super().__init__(pki, version)

    def session(self, tls: ssl.SSLSocket, record: Served) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        inner = self.inner_context.wrap_bio(incoming, outgoing, server_side=True)
        handshaken = False
        while True:
            data = tls.recv(65536)
            if not data:
                break
            incoming.write(data)
            try:
                if not handshaken:
                    inner.do_handshake()
                    handshaken = True
                    record.notes["inner handshake"] = True
                while plain := inner.read(65536):
                    inner.write(plain)
                # An empty read is the inner close_notify (an SSLObject does not raise).
                record.notes["inner close_notify"] = True
                inner.unwrap()
            except ssl.SSLWantReadError:
                pass
            if pending := outgoing.read():
                tls.sendall(pending)
        await_close_notify(tls, record)

    def problems(self, facts: dict) -> list[str]:
        found = super().problems(facts)
        if not any(r.notes.get("inner close_notify") for r in self.served):
            found.append("peer: the inner connection never received close_notify")
        return found


class OpenSslReverse:
    """`openssl s_server -rev`: answers each line reversed; pinned to `version`."""

    def __init__(self, pki: Pki, version: str | None):
        leaf = pki["localhost"]
        port = free_port()
        self.values = {"address": f"{LOOPBACK}:{port}"}
        self.version = version
        self.process = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"{LOOPBACK}:{port}", "-cert", str(leaf.cert_file),
             "-key", str(leaf.key_file), "-rev", f"-tls{version.replace('.', '_')}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wait_for_port(port, self.process)

    def problems(self, facts: dict) -> list[str]:
        output = self.process.stdout.read().decode(errors="replace")
        if f"Protocol version: TLSv{self.version}" not in output:
            return [f"peer: openssl s_server did not report a TLS {self.version} connection"]
        return []

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class TcpService(Server):
    """Plain TCP: `echo` until end of stream; `send-on-request` answers a line
    "send N" with N pattern bytes and then ends its side; `count` reads to the
    end and answers "received N"; `hold` reads to the end and keeps its own
    side open until the case ends."""

    def __init__(self, pki: Pki, version: str | None, *, mode: str):
        self.mode = mode
        super().__init__()

    def serve(self, raw: socket.socket, record: Served) -> None:
        if self.mode == "echo":
            while data := raw.recv(65536):
                record.received += len(data)
                raw.sendall(data)
        elif self.mode == "hold":
            while raw.recv(65536):
                pass
            self.closing.wait()
        elif self.mode == "count":
            while data := raw.recv(65536):
                record.received += len(data)
            raw.sendall(f"received {record.received}\n".encode())
        else:
            line = b""
            while not line.endswith(b"\n"):
                chunk = raw.recv(1)
                if not chunk:
                    return
                line += chunk
            raw.sendall(pattern(int(line.split()[1])))
            raw.shutdown(socket.SHUT_WR)
            while raw.recv(65536):
                pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the peer exited at once: {process.stdout.read().decode()}")
        try:
            socket.create_connection((LOOPBACK, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"the peer is not listening on port {port}")


class NoPeer:
    """For cases that need nobody on the other end."""

    values: dict = {}

    def __init__(self, pki: Pki, version: str | None):
        pass

    def problems(self, facts: dict) -> list[str]:
        return []

    def close(self) -> None:
        pass


PEERS = {
    "none": NoPeer,
    "tls-echo": TlsEcho,
    "tls-sender": TlsSender,
    "garbage": Garbage,
    "cut-after-server-hello": CutAfterServerHello,
    "tls-nested-echo": TlsNestedEcho,
    "openssl-reverse": OpenSslReverse,
    "tcp": TcpService,
}
