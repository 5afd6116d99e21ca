"""wasi:sockets/tcp: the start/finish state machine over non-blocking sockets.

States follow the spec's operational semantics (`lifecycle.TCP_TRANSITIONS`):
unbound -> bind-started -> bound -> listen-started -> listening, or
(unbound|bound) -> connecting -> connected, and closed after a failed
connect or listen. The socket's pollable is ready exactly when the pending
`finish-*`/`accept` would not say would-block.
"""

from __future__ import annotations

import errno
import math
import os
import select
import socket
import threading
import time
from collections.abc import Callable

from ..runtime import background
from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx
from ..runtime.poll import NEVER, READ, WRITE, Pollable, WaitSpec
from ..runtime.resources import Res
from ..runtime.streams import (
    OUTPUT_BUDGET,
    InputStream,
    OutputStream,
    StreamClosed,
    StreamFailed,
    readable_now,
    writable_now,
)
from ..runtime.values import Case, Child
from .lifecycle import (
    TCP_IN_PROGRESS,
    TCP_TRANSITIONS,
    Event,
    HostSocket,
    TcpState,
    socket_option,
)
from .network import (
    Network,
    SocketSlot,
    check_allowed,
    check_remote,
    counted,
    error_code,
    fail,
    guest_network,
    socket_address_value,
    socket_call,
)

interface = Interface(f"wasi:sockets/tcp@{WASI_VERSION}")
for _name, _res in (("tcp-socket", Res.TCP_SOCKET), ("network", Res.NETWORK),
                    ("input-stream", Res.INPUT_STREAM), ("output-stream", Res.OUTPUT_STREAM),
                    ("pollable", Res.POLLABLE)):
    interface.resource(_name, _res)

NS_PER_S = 1_000_000_000
DEFAULT_BACKLOG = 128
#: How long a dropped output stream keeps trying to deliver what it buffered.
LINGER_S = 10.0
#: Dropped output streams delivering at once, in the whole process (each
#: holds at most OUTPUT_BUDGET bytes).
MAX_LINGERING = 256
#: What `shutdown` fails with once the peer has closed or reset the connection.
PEER_GONE = frozenset({errno.ENOTCONN, errno.EPIPE, errno.ECONNRESET})


def _stream_failure(error: OSError) -> StreamFailed:
    code = error_code(error)
    return StreamFailed(f"{code}: {error.strerror or error}", network_code=code)


class SharedSocket:
    """Keeps the fd open until the socket resource and both streams are gone,
    then gives back its slot in the guest's socket count (if it has one).

    The guest may drop the tcp-socket while its streams live on inside a
    TLS connection (the streams were moved there), as wasmtime allows.
    """

    def __init__(self, sock: socket.socket, slot: SocketSlot | None = None):
        self.sock = sock
        self.slot = slot
        self.users = 1
        self._lock = threading.Lock()  # a background sender may release too

    def acquire(self) -> socket.socket:
        with self._lock:
            self.users += 1
        return self.sock

    def release(self) -> None:
        with self._lock:
            self.users -= 1
            last = self.users == 0
        if last:
            self.sock.close()
            if self.slot is not None:
                self.slot.release()


class TcpInput(InputStream):
    def __init__(self, shared: SharedSocket):
        self.shared = shared
        self.sock = shared.acquire()
        self.shut = False
        self.closed = False

    def read(self, max_bytes: int) -> bytes:
        if self.shut:
            raise StreamClosed()
        if max_bytes == 0:
            return b""  # recv(0) would look like the end of the stream
        try:
            data = self.sock.recv(max_bytes)
        except BlockingIOError:
            return b""
        except OSError as error:
            raise _stream_failure(error) from None
        if not data:
            self.shut = True
            raise StreamClosed()
        return data

    def ready(self) -> bool:
        return self.shut or self.sock.fileno() < 0 or readable_now(self.sock.fileno())

    def wait_on(self) -> WaitSpec:
        return WaitSpec(fds=((self.sock.fileno(), READ),))

    def peer_address(self) -> object:
        try:
            return self.sock.getpeername()
        except OSError:  # not connected (any more): no address to match
            return None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.shared.release()


class TcpOutput(OutputStream):
    """Buffers up to OUTPUT_BUDGET bytes and sends as the socket allows."""

    def __init__(self, shared: SharedSocket):
        self.shared = shared
        self.sock = shared.acquire()
        self.closed = False
        self.pending = bytearray()
        self.flushing = False
        self.shut = False
        self.fin_requested = False
        self.fin_sent = False
        self.lingering = False
        self.failure: StreamFailed | None = None

    def _send(self) -> None:
        while self.pending and self.failure is None:
            try:
                sent = self.sock.send(self.pending)
            except BlockingIOError:
                return
            except OSError as error:
                self.failure = _stream_failure(error)
                return
            del self.pending[:sent]
        if not self.pending:
            self.flushing = False

    def _check(self) -> None:
        if self.failure is not None:
            raise self.failure
        if self.shut:
            raise StreamClosed()

    def check_write(self) -> int:
        self._check()
        self._send()
        self._check()
        if self.flushing:
            return 0
        return max(0, OUTPUT_BUDGET - len(self.pending))

    def write(self, data: bytes) -> None:
        self._check()
        self.pending += data
        self._send()
        self._check()

    def flush(self) -> None:
        self._check()
        self.flushing = bool(self.pending)
        self._send()
        self._check()

    def wait_on(self) -> WaitSpec:
        if self.pending and self.sock.fileno() >= 0:
            return WaitSpec(fds=((self.sock.fileno(), WRITE),))
        return NEVER

    def close(self) -> None:
        """Dropping the stream still delivers what the guest wrote, in the background."""
        if self.closed:
            return
        self.closed = True
        try:
            self.finish_sending(shutdown=False)
        except OSError as error:
            if error.errno not in PEER_GONE:  # a gone peer needs no FIN; drops never fail
                raise
        finally:
            self.shared.release()

    def finish_sending(self, *, shutdown: bool) -> None:
        """Stop taking writes; deliver what is buffered without blocking the
        guest, then (if asked) send FIN."""
        self.shut = True
        self.fin_requested = self.fin_requested or shutdown
        self._send()
        if self.lingering:
            return  # the background sender sends FIN when it is done
        if not self.pending or self.failure is not None:
            self.pending.clear()
            if self.fin_requested:
                self.send_fin()
            return
        data = bytes(self.pending)
        self.pending.clear()
        self.shared.acquire()  # the sender's own reference keeps the fd open
        self.lingering = True  # before the sender may end it
        if not DELIVERIES.add(self, data):
            self.lingering = False
            self.shared.release()  # too many deliveries already: the bytes are lost
            if self.fin_requested:
                self.send_fin()

    def send_fin(self) -> None:
        """Shut down the sending side, once: a second shutdown after the peer
        has closed too would fail with ENOTCONN. Raises OSError."""
        if not self.fin_sent:
            self.fin_sent = True
            self.sock.shutdown(socket.SHUT_WR)


class _Delivery:
    """What one dropped output still has to send, until its deadline."""

    def __init__(self, output: TcpOutput, data: bytes):
        self.output = output
        self.unsent = memoryview(data)
        self.deadline = time.monotonic() + LINGER_S

    def step(self) -> bool:
        """Send what the socket takes now; True once delivery is over
        (all sent, the peer gone, or out of time), FIN sent if asked for."""
        sock = self.output.shared.sock
        try:
            while self.unsent:
                self.unsent = self.unsent[sock.send(self.unsent):]
        except BlockingIOError:
            if time.monotonic() < self.deadline:
                return False
        except OSError:
            return True  # the peer is gone: nothing left to deliver to
        self.output.lingering = False
        if self.output.fin_requested and not self.unsent:
            try:
                self.output.send_fin()
            except OSError:
                pass
        return True


class _Deliveries:
    """One background thread sends what every dropped TCP output left
    unsent, for all guests of the process: a thread per stream would let a
    guest (or a server's many requests) start threads without bound.

    At most MAX_LINGERING deliveries run at once, each for at most LINGER_S;
    a drop beyond that loses its unsent bytes. The thread ends when no
    delivery is left, and a new drop starts it again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: list[_Delivery] = []
        self._running = False
        self._wake_fd: int | None = None
        self._woken_fd: int | None = None

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._active)

    def add(self, output: TcpOutput, data: bytes) -> bool:
        """Deliver `data` for `output`, which holds a reference on its
        socket for the sender (released when delivery ends); False, with
        nothing taken, when MAX_LINGERING deliveries already run."""
        with self._lock:
            if len(self._active) >= MAX_LINGERING:
                return False
            if self._wake_fd is None:
                self._woken_fd, self._wake_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._active.append(_Delivery(output, data))
            start, self._running = not self._running, True
        if start:
            background.start(self._run, "tcp-linger")
        else:
            try:
                os.write(self._wake_fd, b"!")  # watch the new socket too
            except BlockingIOError:
                pass  # a wake-up is already pending
        return True

    def _run(self) -> None:
        assert self._woken_fd is not None
        while True:
            with self._lock:
                active = list(self._active)
                if not active:
                    self._running = False
                    return
            poller = select.poll()
            poller.register(self._woken_fd, READ)
            for delivery in active:
                poller.register(delivery.output.shared.sock.fileno(), WRITE)
            soonest = min(delivery.deadline for delivery in active)
            poller.poll(max(0, math.ceil((soonest - time.monotonic()) * 1000)))
            try:
                os.read(self._woken_fd, 64)
            except BlockingIOError:
                pass
            done = [delivery for delivery in active if delivery.step()]
            with self._lock:
                for delivery in done:
                    self._active.remove(delivery)
            for delivery in done:
                delivery.output.shared.release()


    def forget(self) -> None:
        """In a forked child: the parent's deliveries and thread are not ours."""
        self._lock = threading.Lock()
        self._active = []
        self._running = False


DELIVERIES = _Deliveries()
os.register_at_fork(after_in_child=DELIVERIES.forget)


class TcpSocket(HostSocket):
    TRANSITIONS = TCP_TRANSITIONS
    IN_PROGRESS = TCP_IN_PROGRESS
    UNADDRESSED = frozenset({TcpState.UNBOUND, TcpState.CLOSED})

    def __init__(self, sock: socket.socket, state: str, slot: SocketSlot | None = None):
        """`slot`: the socket's place in its guest's count (none for a socket
        made outside any guest's count)."""
        super().__init__(sock, TcpState(state))
        self.shared = SharedSocket(sock, slot)
        self.backlog = DEFAULT_BACKLOG
        self.input: TcpInput | None = None
        self.output: TcpOutput | None = None

    @classmethod
    def create(cls, address_family: str, slot: SocketSlot | None = None) -> TcpSocket:
        return cls(cls.open(address_family, socket.SOCK_STREAM), TcpState.UNBOUND, slot)

    # -- readiness (the socket's pollable) ---------------------------------
    def ready(self) -> bool:
        if self.state == TcpState.CONNECTING:
            return writable_now(self.sock.fileno())
        if self.state == TcpState.LISTENING:
            return readable_now(self.sock.fileno())
        return True

    def wait_on(self) -> WaitSpec:
        if self.state == TcpState.CONNECTING:
            return WaitSpec(fds=((self.sock.fileno(), WRITE),))
        if self.state == TcpState.LISTENING:
            return WaitSpec(fds=((self.sock.fileno(), READ),))
        return NEVER

    def close(self) -> None:
        self.shared.release()

    def stop_listening(self) -> None:
        """Close a listener's descriptor for good (its guest drains): the
        kernel refuses new clients and resets those still in the backlog;
        the socket's slot stays taken until the guest drops it."""
        if self.state in (TcpState.LISTEN_STARTED, TcpState.LISTENING):
            self.sock.close()
            self.state = TcpState.CLOSED

    def bind(self, sockaddr: tuple) -> None:
        # A listener can take a port whose earlier connections are in TIME_WAIT.
        socket_call(lambda: self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1))
        super().bind(sockaddr)

    def connected_streams(self) -> tuple[Child, Child]:
        """The input and output streams of a connected socket (children of it)."""
        # The output stream already gathers what the guest writes and sends it
        # in as few segments as the socket takes; Nagle's algorithm on top
        # only delays a TLS handshake's small flights by a delayed ACK (~40 ms).
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # the connection already failed; its streams will say so
        self.input = TcpInput(self.shared)
        self.output = TcpOutput(self.shared)
        return Child(self.input, self), Child(self.output, self)


@interface.func("[method]tcp-socket.start-bind")
def start_bind(ctx: WasiCtx, tcp: TcpSocket, network: Network, local_address: Case) -> None:
    tcp.check(Event.START_BIND)
    address, sockaddr = tcp.address_from(local_address)
    check_allowed(ctx, address, sockaddr[1], "bind")
    tcp.bind(sockaddr)


@interface.func("[method]tcp-socket.finish-bind")
def finish_bind(ctx: WasiCtx, tcp: TcpSocket) -> None:
    tcp.transition(Event.FINISH_BIND)


@interface.func("[method]tcp-socket.start-connect")
def start_connect(ctx: WasiCtx, tcp: TcpSocket, network: Network, remote_address: Case) -> None:
    tcp.check(Event.START_CONNECT)
    address, sockaddr = tcp.address_from(remote_address)
    check_remote(address, sockaddr[1])
    check_allowed(ctx, address, sockaddr[1], "connect")
    result = tcp.sock.connect_ex(sockaddr)
    if result not in (0, errno.EINPROGRESS):
        tcp.transition(Event.FAIL)
        raise fail(error_code(OSError(result, "connect")))
    tcp.transition(Event.START_CONNECT)


@interface.func("[method]tcp-socket.finish-connect")
def finish_connect(ctx: WasiCtx, tcp: TcpSocket) -> tuple[Child, Child]:
    tcp.check(Event.FINISH_CONNECT)
    if not writable_now(tcp.sock.fileno()):
        raise fail("would-block")
    status = tcp.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if status:
        tcp.transition(Event.FAIL)
        raise fail(error_code(OSError(status, "connect")))
    tcp.transition(Event.FINISH_CONNECT)
    return tcp.connected_streams()


@interface.func("[method]tcp-socket.start-listen")
def start_listen(ctx: WasiCtx, tcp: TcpSocket) -> None:
    tcp.check(Event.START_LISTEN)
    try:
        tcp.sock.listen(tcp.backlog)
    except OSError as error:
        tcp.transition(Event.FAIL)  # as the operational semantics say
        raise fail(error_code(error)) from None
    tcp.transition(Event.START_LISTEN)
    sockets = guest_network(ctx)
    sockets.listeners.add(tcp)
    if sockets.draining:
        tcp.stop_listening()


@interface.func("[method]tcp-socket.finish-listen")
def finish_listen(ctx: WasiCtx, tcp: TcpSocket) -> None:
    tcp.transition(Event.FINISH_LISTEN)


@interface.func("[method]tcp-socket.accept")
def accept(ctx: WasiCtx, tcp: TcpSocket) -> tuple[TcpSocket, Child, Child]:
    """Beyond the guest's socket limit: `new-socket-limit`, and the client waits
    in the listen backlog until the guest has closed a socket. Once the
    guest drains, `invalid-state` (the listener has closed)."""
    if guest_network(ctx).draining:
        tcp.stop_listening()
    tcp.require(TcpState.LISTENING)
    client = counted(ctx, lambda slot: _accept(tcp, slot))
    input_stream, output_stream = client.connected_streams()
    return client, input_stream, output_stream


def _accept(listener: TcpSocket, slot: SocketSlot) -> TcpSocket:
    try:
        sock, _ = listener.sock.accept()
    except BlockingIOError:
        raise fail("would-block") from None
    except OSError as error:
        raise fail(error_code(error)) from None
    sock.setblocking(False)
    return TcpSocket(sock, TcpState.CONNECTED, slot)


@interface.func("[method]tcp-socket.local-address")
def local_address(ctx: WasiCtx, tcp: TcpSocket) -> Case:
    return tcp.local_address()


@interface.func("[method]tcp-socket.remote-address")
def remote_address(ctx: WasiCtx, tcp: TcpSocket) -> Case:
    tcp.require(TcpState.CONNECTED)
    return socket_call(lambda: socket_address_value(tcp.sock.getpeername()))


@interface.func("[method]tcp-socket.is-listening")
def is_listening(ctx: WasiCtx, tcp: TcpSocket) -> bool:
    return tcp.state == TcpState.LISTENING


@interface.func("[method]tcp-socket.address-family")
def address_family(ctx: WasiCtx, tcp: TcpSocket) -> str:
    return tcp.address_family()


@interface.func("[method]tcp-socket.set-listen-backlog-size")
def set_listen_backlog_size(ctx: WasiCtx, tcp: TcpSocket, value: int) -> None:
    if value == 0:
        raise fail("invalid-argument")
    if tcp.state in (TcpState.CONNECTING, TcpState.CONNECTED, TcpState.CLOSED):
        raise fail("invalid-state")
    tcp.backlog = min(value, 0x7FFFFFFF)
    if tcp.state == TcpState.LISTENING:
        socket_call(lambda: tcp.sock.listen(tcp.backlog))


def _define_option(wit_name: str, getter: Callable[..., object],
                   setter: Callable[..., None]) -> None:
    interface.func(f"[method]tcp-socket.{wit_name}")(getter)
    interface.func(f"[method]tcp-socket.set-{wit_name}")(setter)


_keepalive_get, _keepalive_set = socket_option(socket.SOL_SOCKET, socket.SO_KEEPALIVE,
                                               positive=False)
_define_option("keep-alive-enabled",
               lambda ctx, tcp: bool(_keepalive_get(ctx, tcp)),
               lambda ctx, tcp, value: _keepalive_set(ctx, tcp, int(value)))
_define_option("keep-alive-idle-time", *socket_option(
    socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, scale=NS_PER_S, limit=32767))
_define_option("keep-alive-interval", *socket_option(
    socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, scale=NS_PER_S, limit=32767))
_define_option("keep-alive-count",
               *socket_option(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, limit=127))
_define_option("receive-buffer-size", *socket_option(socket.SOL_SOCKET, socket.SO_RCVBUF))
_define_option("send-buffer-size", *socket_option(socket.SOL_SOCKET, socket.SO_SNDBUF))


@interface.func("[method]tcp-socket.hop-limit")
def hop_limit(ctx: WasiCtx, tcp: TcpSocket) -> int:
    return tcp.hop_limit()


@interface.func("[method]tcp-socket.set-hop-limit")
def set_hop_limit(ctx: WasiCtx, tcp: TcpSocket, value: int) -> None:
    tcp.set_hop_limit(value)


@interface.func("[method]tcp-socket.subscribe")
def subscribe(ctx: WasiCtx, tcp: TcpSocket) -> Child:
    return Child(Pollable(tcp), tcp)


@interface.func("[method]tcp-socket.shutdown")
def shutdown(ctx: WasiCtx, tcp: TcpSocket, shutdown_type: str) -> None:
    tcp.require(TcpState.CONNECTED)
    try:
        if shutdown_type in ("send", "both") and tcp.output is not None:
            # FIN goes out after what the guest already wrote.
            tcp.output.finish_sending(shutdown=True)
        if shutdown_type != "send":
            tcp.sock.shutdown(socket.SHUT_RD)
    except OSError as error:
        raise fail(error_code(error)) from None
    if shutdown_type in ("receive", "both") and tcp.input is not None:
        tcp.input.shut = True
