"""The host's per-guest socket limit (`HostConfig.max_connections`), called as a
guest would: creating and accepting sockets beyond it is `new-socket-limit`,
a slot comes back when the descriptor closes (not when the resource is
dropped, if a stream is still delivering), and each guest counts alone."""

from __future__ import annotations

import errno
import socket
import threading
import time

import pytest

from wasi_tls_host.config import DEFAULT_MAX_CONNECTIONS, HostConfig, NetRule
from wasi_tls_host.runtime.context import WasiCtx
from wasi_tls_host.runtime.errors import ErrorValue
from wasi_tls_host.runtime.values import Case
from wasi_tls_host.sockets import tcp, tcp_create_socket, udp_create_socket
from wasi_tls_host.sockets.network import Network, guest_network

NET = Network()


def error_code(call, *args) -> str:
    with pytest.raises(ErrorValue) as caught:
        call(*args)
    return caught.value.payload


def guest(limit: int) -> WasiCtx:
    return WasiCtx(HostConfig(allow_net=[NetRule.parse("127.0.0.1")], max_connections=limit))


@pytest.fixture
def ctx():
    context = guest(3)
    yield context
    context.close()


def listen(ctx: WasiCtx) -> tuple[tcp.TcpSocket, int]:
    listener = tcp_create_socket.create_tcp_socket(ctx, "ipv4")
    tcp.start_bind(ctx, listener, NET, Case("ipv4", {"port": 0, "address": (127, 0, 0, 1)}))
    tcp.finish_bind(ctx, listener)
    tcp.start_listen(ctx, listener)
    tcp.finish_listen(ctx, listener)
    return listener, listener.sock.getsockname()[1]


def drop_connection(accepted: tuple) -> None:
    """What the guest's drops do: the streams, then the socket."""
    client, reader, writer = accepted
    reader.obj.close()
    writer.obj.close()
    client.close()


def test_the_default_leaves_room_in_the_usual_descriptor_limit():
    assert HostConfig().max_connections == DEFAULT_MAX_CONNECTIONS == 512
    with pytest.raises(ValueError, match="max_connections must be 0 or more, got -1"):
        HostConfig(max_connections=-1)


def test_tcp_and_udp_sockets_count_until_dropped(ctx):
    made = [tcp_create_socket.create_tcp_socket(ctx, "ipv4"),
            udp_create_socket.create_udp_socket(ctx, "ipv4"),
            tcp_create_socket.create_tcp_socket(ctx, "ipv6")]
    assert guest_network(ctx).open == 3
    assert error_code(tcp_create_socket.create_tcp_socket, ctx, "ipv4") == "new-socket-limit"
    assert error_code(udp_create_socket.create_udp_socket, ctx, "ipv4") == "new-socket-limit"
    made.pop(1).close()
    made.append(udp_create_socket.create_udp_socket(ctx, "ipv4"))
    for sock in made:
        sock.close()
    assert guest_network(ctx).open == 0


def test_accept_beyond_the_limit_leaves_the_client_waiting(ctx):
    listener, port = listen(ctx)
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    first, second = (tcp.accept(ctx, listener) for _ in range(2))
    ctx.wait_for(listener)  # the third client is in the backlog
    assert error_code(tcp.accept, ctx, listener) == "new-socket-limit"
    drop_connection(first)
    third = tcp.accept(ctx, listener)
    assert tcp.remote_address(ctx, third[0]).payload["port"] == clients[2].getsockname()[1]
    assert error_code(tcp.accept, ctx, listener) == "new-socket-limit"
    for accepted in (second, third):
        drop_connection(accepted)
    assert error_code(tcp.accept, ctx, listener) == "would-block"
    assert guest_network(ctx).open == 1  # the listener
    for client in clients:
        client.close()
    listener.close()


def test_a_socket_that_cannot_be_made_gives_its_slot_back(ctx, monkeypatch):
    def out_of_descriptors(*args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")
    monkeypatch.setattr(socket, "socket", out_of_descriptors)
    for _ in range(5):
        assert error_code(tcp_create_socket.create_tcp_socket, ctx, "ipv4") == \
            "new-socket-limit"
    assert guest_network(ctx).open == 0


def test_a_dropped_connection_counts_while_it_still_delivers(ctx):
    """The descriptor stays open while a dropped output stream sends what the
    guest wrote, so its slot does too; it comes back once delivery ends."""
    listener, port = listen(ctx)
    client = socket.create_connection(("127.0.0.1", port))
    ctx.wait_for(listener)
    accepted, reader, writer = tcp.accept(ctx, listener)
    written = 0
    # The client reads nothing yet: write until the socket and the stream are full.
    while budget := writer.obj.check_write():
        writer.obj.write(b"x" * budget)
        written += budget
    assert writer.obj.pending
    drop_connection((accepted, reader, writer))
    assert guest_network(ctx).open == 2  # still delivering in the background
    received = 0
    client.settimeout(10)
    while data := client.recv(1 << 20):
        received += len(data)
    deadline = time.monotonic() + 10
    while guest_network(ctx).open != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (received, guest_network(ctx).open) == (written, 1)
    client.close()
    listener.close()


def test_each_guest_counts_its_own_sockets():
    full, other = guest(1), guest(1)
    held = tcp_create_socket.create_tcp_socket(full, "ipv4")
    assert error_code(tcp_create_socket.create_tcp_socket, full, "ipv4") == "new-socket-limit"
    tcp_create_socket.create_tcp_socket(other, "ipv4").close()
    held.close()
    for context in (full, other):
        context.close()


def test_a_limit_of_zero_allows_no_socket():
    nothing = guest(0)
    assert error_code(tcp_create_socket.create_tcp_socket, nothing, "ipv4") == \
        "new-socket-limit"
    nothing.close()


def fill_and_drop(ctx: WasiCtx, listener: tcp.TcpSocket, port: int) -> tuple[socket.socket, int]:
    """A connection whose client reads nothing yet, dropped by the guest with
    bytes still buffered: the client and how many bytes the guest wrote.
    Fixed small buffers keep the kernel from taking the rest as it tunes them."""
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    client.connect(("127.0.0.1", port))
    ctx.wait_for(listener)
    accepted, reader, writer = tcp.accept(ctx, listener)
    accepted.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    written = 0
    while budget := writer.obj.check_write():
        writer.obj.write(b"x" * budget)
        written += budget
    assert writer.obj.pending
    drop_connection((accepted, reader, writer))
    return client, written


def linger_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "tcp-linger"]


def wait_until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def read_to_end(client: socket.socket) -> int:
    client.settimeout(10)
    received = 0
    while data := client.recv(1 << 20):
        received += len(data)
    client.close()
    return received


def test_dropped_connections_share_one_sender_thread():
    ctx = guest(40)
    listener, port = listen(ctx)
    dropped = [fill_and_drop(ctx, listener, port) for _ in range(20)]
    assert (len(linger_threads()), tcp.DELIVERIES.count) == (1, 20)
    assert guest_network(ctx).open == 21
    assert [read_to_end(client) for client, _ in dropped] == [written for _, written in dropped]
    assert wait_until(lambda: not linger_threads())  # the thread ends with its work
    assert guest_network(ctx).open == 1
    listener.close()
    ctx.close()


def test_a_delivery_to_a_client_that_never_reads_ends_at_its_deadline(monkeypatch):
    monkeypatch.setattr(tcp, "LINGER_S", 0.5)
    ctx = guest(3)
    listener, port = listen(ctx)
    client, _ = fill_and_drop(ctx, listener, port)
    started = time.monotonic()
    assert wait_until(lambda: guest_network(ctx).open == 1)
    assert 0.4 < time.monotonic() - started < 5
    assert wait_until(lambda: not linger_threads())
    client.close()
    listener.close()
    ctx.close()


def test_drops_beyond_the_cap_lose_their_unsent_bytes_at_once(monkeypatch):
    monkeypatch.setattr(tcp, "MAX_LINGERING", 2)
    ctx = guest(10)
    listener, port = listen(ctx)
    dropped = [fill_and_drop(ctx, listener, port) for _ in range(3)]
    assert tcp.DELIVERIES.count == 2
    assert guest_network(ctx).open == 3  # the listener and the two delivering
    last_client, last_written = dropped[-1]
    assert read_to_end(last_client) < last_written  # what the kernel had, then the end
    assert [read_to_end(client) for client, _ in dropped[:2]] == \
        [written for _, written in dropped[:2]]
    assert wait_until(lambda: guest_network(ctx).open == 1 and not linger_threads())
    listener.close()
    ctx.close()
