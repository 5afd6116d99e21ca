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

import hashlib
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field

from .pki import TLS_VERSIONS, Pki
from .template import LOOPBACK

#: A connection that stays silent this long is abandoned by its peer.
IDLE_S = 10.0
#: How long a peer's connections get to finish once the guest has ended.
CLOSE_S = 3.0
#: The line the guests echo (conformance_kit.MESSAGE), byte for byte.
MESSAGE = b"conformance ping\n"


def pattern(size: int, seed: int = 0) -> bytes:
    """The byte pattern the guests send and expect (conformance_kit.pattern)."""
    return bytes((index * 7 + seed) % 251 for index in range(size))


def openssl_installed() -> bool:
    return shutil.which("openssl") is not None


def wire_code(protocol: str) -> int:
    """The wire code of a version as ssl names it ("TLSv1.3" -> 0x0304), as
    the draft's protocol-version reports it. Worked out here on purpose: the
    oracle shares no code with the host."""
    return TLS_VERSIONS[protocol.removeprefix("TLSv")].value


def openssl_flag(version: str) -> str:
    """The `openssl s_server`/`s_client` option that pins "1.2"/"1.3"."""
    return f"-tls{version.replace('.', '_')}"


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def digest(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


#: Mirrors tls/core.py's _cipher_codes on purpose: the oracle shares no code with the host.
_CIPHER_CODES: dict[str, int] = {}


def iana_code(cipher_name: str) -> int | None:
    """The IANA code of an OpenSSL cipher name (the low 16 bits of its id)."""
    if not _CIPHER_CODES:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.set_ciphers("ALL:@SECLEVEL=0")
        _CIPHER_CODES.update({c["name"]: c["id"] & 0xFFFF for c in context.get_ciphers()})
    return _CIPHER_CODES.get(cipher_name)


def compare(facts: dict, observed: dict) -> list[str]:
    """Each fact the guest reported that the peer saw otherwise."""
    return [f"the guest reported {key} = {facts[key]!r}; the peer saw {observed[key]!r}"
            for key in sorted(observed) if key in facts and facts[key] != observed[key]]


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
        self.port = self.listener.getsockname()[1]
        self.values = {"address": f"{LOOPBACK}:{self.port}"}
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
        self.context = pki.server_context(pki[certificate], version, legacy=legacy)
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
        with tls:  # the TLS socket now owns the connection: close it, not `raw`
            record.handshake = True
            record.notes.update(version=tls.version(), cipher=tls.cipher()[0])
            try:
                self.session(tls, record)
            except (OSError, ssl.SSLError, ValueError) as error:
                record.error = describe(error)

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


def answer_close_notify(tls: ssl.SSLSocket, record: Served) -> None:
    """Having read the guest's close_notify (recv gave b""), answer with ours."""
    record.close_notify = True
    tls.unwrap()


class TlsEcho(TlsServer):
    """Echoes until the guest's close_notify, then answers it with its own."""

    def session(self, tls: ssl.SSLSocket, record: Served) -> None:
        while data := tls.recv(65536):
            record.received += len(data)
            tls.sendall(data)
        answer_close_notify(tls, record)

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


class TlsObserver(TlsServer):
    """A TLS server for the draft's client cases: echoes (the draft has no
    graceful close, so the end may be a truncation) and notes what it saw,
    for `compare` with the guest's facts. Options: `alpn` ids it accepts;
    `client_auth` "required" asks for a client certificate from the trusted
    CA; `quiet_for` seconds in which the client must not send its hello (a
    suspended handshake); `expect_alert`: the client must abort with an alert
    and send no application data."""

    def __init__(self, pki: Pki, version: str | None, *, alpn: tuple = (),
                 client_auth: str = "none", quiet_for: float = 0.0, expect_alert: bool = False,
                 handshakes: int = 1, certificate: str = "localhost"):
        super().__init__(pki, version, certificate=certificate, handshakes=handshakes,
                         close_notifies=0)
        self.leaf = pki[certificate]
        if alpn:
            self.context.set_alpn_protocols(list(alpn))
        if client_auth == "required":
            self.context.verify_mode = ssl.CERT_REQUIRED
            pki.ca.configure_trust(self.context)
        self.context.sni_callback = self._note_server_name
        self.server_names: list[str | None] = []
        self.quiet_for = quiet_for
        self.expect_alert = expect_alert

    def _note_server_name(self, connection, server_name, context) -> None:
        self.server_names.append(server_name)

    def serve(self, raw: socket.socket, record: Served) -> None:
        started = time.monotonic()
        raw.recv(1, socket.MSG_PEEK)
        record.notes["first byte after"] = round(time.monotonic() - started, 2)
        super().serve(raw, record)

    def session(self, tls: ssl.SSLSocket, record: Served) -> None:
        peer_certificate = tls.getpeercert(binary_form=True)
        record.notes.update(alpn=tls.selected_alpn_protocol(),
                            client_chain=[digest(peer_certificate)] if peer_certificate else None)
        try:
            while data := tls.recv(65536):
                record.received += len(data)
                tls.sendall(data)
            record.close_notify = True
        except ssl.SSLEOFError:
            pass  # the draft's connections end without close_notify

    def problems(self, facts: dict) -> list[str]:
        found = super().problems(facts)
        if not self.served:
            return found + ["peer: the guest never connected"]
        record = self.served[0]
        observed = {"server_chain": [digest(der) for der in self.leaf.chain_der()],
                    "server_name": self.server_names[0] if self.server_names else None}
        if record.handshake:
            observed.update(protocol_version=wire_code(record.notes["version"]),
                            cipher_suite=iana_code(record.notes["cipher"]),
                            alpn=record.notes["alpn"], client_chain=record.notes["client_chain"])
        found += compare(facts, observed)
        quiet = record.notes.get("first byte after", 0.0)
        if quiet < self.quiet_for:
            found.append(f"peer: the hello came {quiet} s after the connection, while the "
                         f"guest held the handshake for {self.quiet_for} s")
        if self.expect_alert:
            if not any("alert" in (r.error or "").lower() for r in self.served):
                found.append(f"peer: no alert from the guest (its errors: "
                             f"{[r.error for r in self.served]})")
            if any(r.received for r in self.served):
                found.append("peer: application data arrived after the guest aborted")
        return found


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
        self.context = pki.server_context(pki["localhost"], version)
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
        self.inner_context = pki.server_context(pki["inner"], version)
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
        answer_close_notify(tls, record)

    def problems(self, facts: dict) -> list[str]:
        found = super().problems(facts)
        if not any(r.notes.get("inner close_notify") for r in self.served):
            errors = [r.error for r in self.served if r.error]
            found.append("peer: the inner connection never received close_notify"
                         + (f" (its errors: {errors})" if errors else ""))
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
             "-key", str(leaf.key_file), "-rev", openssl_flag(version)],
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
    side open until the case ends; `reset` resets the connection once a line
    has come."""

    def __init__(self, pki: Pki, version: str | None, *, mode: str):
        self.mode = mode
        super().__init__()

    def serve(self, raw: socket.socket, record: Served) -> None:
        if self.mode == "echo":
            while data := raw.recv(65536):
                record.received += len(data)
                raw.sendall(data)
        elif self.mode == "reset":
            read_line(raw)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif self.mode == "hold":
            while raw.recv(65536):
                pass
            self.closing.wait()
        elif self.mode == "count":
            while data := raw.recv(65536):
                record.received += len(data)
            raw.sendall(f"received {record.received}\n".encode())
        else:
            line = read_line(raw)
            if not line:
                return
            raw.sendall(pattern(int(line.split()[1])))
            raw.shutdown(socket.SHUT_WR)
            while raw.recv(65536):
                pass


class BioClient:
    """A Python ssl client over memory BIOs on a socket, so the bytes it sends
    can be looked at (its first flight is the ClientHello)."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_name: str):
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=server_name)
        self.first_flight = b""

    def _call(self, operation):
        while True:
            try:
                result = operation()
                self._send()
                return result
            except ssl.SSLWantReadError:
                self._send()
                data = self.sock.recv(65536)
                if data:
                    self.incoming.write(data)
                else:
                    self.incoming.write_eof()

    def _send(self) -> None:
        if data := self.outgoing.read():
            self.first_flight = self.first_flight or data
            self.sock.sendall(data)

    def handshake(self) -> None:
        self._call(self.tls.do_handshake)

    def write(self, data: bytes) -> None:
        self._call(lambda: self.tls.write(data))

    def read_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            wanted = size - len(data)
            chunk = self._call(lambda wanted=wanted: self.tls.read(wanted))
            if not chunk:
                break
            data += chunk
        return data


def hello_cipher_suites(flight: bytes) -> list[int]:
    """The cipher suites of the ClientHello that starts `flight`, in its order."""
    offset = 5 + 4 + 2 + 32  # record header, handshake header, version, random
    offset += 1 + flight[offset]  # session id
    length = int.from_bytes(flight[offset:offset + 2], "big")
    return [int.from_bytes(flight[offset + 2 + index:offset + 4 + index], "big")
            for index in range(0, length, 2)]


class TlsClient:
    """A Python ssl client for the draft's server cases. It connects to
    {listen} as soon as the guest listens and runs `script`: "echo" (one line
    out and back) or "post-handshake" ("ping", "pong", then "done", answering
    the server's certificate request in between). Options: `server_name` (SNI
    and the name it verifies), `alpn` ids it offers, `certificate` (a client
    certificate), `expect_refused` (the guest must not serve it)."""

    def __init__(self, pki: Pki, version: str | None, *, server_name: str = "localhost",
                 alpn: tuple = (), certificate: str | None = None, script: str = "echo",
                 expect_refused: bool = False):
        self.port = free_port()
        self.values = {"listen": f"{LOOPBACK}:{self.port}"}
        self.certificate = pki[certificate] if certificate else None
        context = pki.client_context(version, self.certificate)
        if alpn:
            context.set_alpn_protocols(list(alpn))
        self.context, self.server_name, self.alpn = context, server_name, list(alpn)
        self.ca_digest = digest(pki.ca.der())
        self.script, self.expect_refused = script, expect_refused
        self.observed: dict = {}
        self.error: str | None = None
        self.completed = False
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        sock = connect_when_listening(self.port, self.stopping)
        if sock is None:
            self.error = "the guest never listened"
            return
        with sock:
            sock.settimeout(IDLE_S)
            client = BioClient(sock, self.context, self.server_name)
            try:
                client.handshake()
                self._observe(client)
                if self.script == "echo":
                    client.write(MESSAGE)
                    self.completed = client.read_exactly(len(MESSAGE)) == MESSAGE
                else:
                    client.write(b"ping\n")
                    if client.read_exactly(5) == b"pong\n":
                        client.write(b"done\n")
                        self.completed = True
            except (ssl.SSLError, OSError) as error:
                self.error = describe(error)

    def _observe(self, client: BioClient) -> None:
        tls = client.tls
        self.observed.update(
            protocol_version=wire_code(tls.version()), cipher_suite=iana_code(tls.cipher()[0]),
            alpn=tls.selected_alpn_protocol(), server_chain=[digest(tls.getpeercert(True))],
            server_name=self.server_name, hello_server_name=self.server_name,
            hello_alpn=self.alpn, hello_cipher_suites=hello_cipher_suites(client.first_flight))

    def close(self) -> None:
        self.thread.join(CLOSE_S)
        self.stopping.set()
        self.thread.join(CLOSE_S)

    def problems(self, facts: dict) -> list[str]:
        if self.expect_refused:
            return ["peer: the guest served a client it should have refused"] \
                if self.completed else []
        if not self.completed:
            return [f"peer: the exchange did not complete ({self.error or 'no answer'})"]
        return compare(facts, self.observed) + self._client_chain_problems(facts)

    def _client_chain_problems(self, facts: dict) -> list[str]:
        """The chain the guest reports for this client: its leaf first, then at
        most the CA, which OpenSSL adds to what it sends when it can build the
        chain from its trust store."""
        if "client_chain" not in facts:
            return []
        chain = facts["client_chain"]
        leaf = digest(self.certificate.chain_der()[0]) if self.certificate else None
        if leaf is None:
            return [] if chain is None else [f"the guest reported a client chain {chain} for "
                                             "a client without a certificate"]
        if not chain or chain[0] != leaf or not set(chain[1:]) <= {self.ca_digest}:
            return [f"the guest reported client_chain = {chain}; the client's leaf is {leaf}, "
                    f"its CA {self.ca_digest}"]
        return []


class OpenSslClient:
    """`openssl s_client` for the draft's server cases: sends one line and
    expects it back, verifying the guest's certificate for localhost."""

    def __init__(self, pki: Pki, version: str | None):
        self.port = free_port()
        self.values = {"listen": f"{LOOPBACK}:{self.port}"}
        self.version = version
        self.command = ["openssl", "s_client", "-connect", f"{LOOPBACK}:{self.port}",
                        "-servername", "localhost", "-verify_hostname", "localhost",
                        "-CAfile", str(pki.ca_file), "-verify_return_error", "-brief",
                        "-ign_eof", openssl_flag(version)]
        self.output = ""
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 30
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                process = subprocess.run(self.command, input=MESSAGE, capture_output=True,
                                         timeout=30)
            except subprocess.TimeoutExpired:
                self.output = "openssl s_client did not finish"
                return
            self.output = process.stdout.decode(errors="replace") + \
                process.stderr.decode(errors="replace")
            if "errno=111" not in self.output and "Connection refused" not in self.output:
                return
            self.stopping.wait(0.1)

    def close(self) -> None:
        self.thread.join(CLOSE_S)
        self.stopping.set()
        self.thread.join(CLOSE_S)

    def problems(self, facts: dict) -> list[str]:
        found = []
        if MESSAGE.decode() not in self.output:
            found.append("peer: openssl s_client did not get its line back")
        if "Verification: OK" not in self.output:
            found.append("peer: openssl s_client did not verify the guest's certificate")
        if f"Protocol version: TLSv{self.version}" not in self.output:
            found.append(f"peer: openssl s_client did not report TLS {self.version}")
        for line in self.output.splitlines():
            if line.startswith("Ciphersuite: "):
                found += compare(facts, {"cipher_suite": iana_code(line.split(": ", 1)[1])})
        return found


def connect_when_listening(port: int, stopping: threading.Event,
                           timeout: float = 30.0) -> socket.socket | None:
    """Connect as soon as the guest listens (it is still starting up)."""
    deadline = time.monotonic() + timeout
    while not stopping.is_set() and time.monotonic() < deadline:
        try:
            return socket.create_connection((LOOPBACK, port), timeout=1)
        except OSError:
            stopping.wait(0.05)
    return None


def read_line(raw: socket.socket) -> bytes:
    """One line from the connection (b"" if it ends first)."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = raw.recv(1)
        if not chunk:
            return b""
        line += chunk
    return line


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Wait until the peer `process` listens on `port`; RuntimeError with what
    it printed (its stderr, else its stdout) if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stderr or process.stdout
            said = output.read().decode(errors="replace") if output else ""
            raise RuntimeError(f"the peer exited at once: {said}")
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
    "tls-observer": TlsObserver,
    "tls-client": TlsClient,
    "openssl-client": OpenSslClient,
    "tls-echo": TlsEcho,
    "tls-sender": TlsSender,
    "garbage": Garbage,
    "cut-after-server-hello": CutAfterServerHello,
    "tls-nested-echo": TlsNestedEcho,
    "openssl-reverse": OpenSslReverse,
    "tcp": TcpService,
}
