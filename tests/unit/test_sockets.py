"""wasi:sockets state machine, options and error codes, called as a guest would."""

import socket

import pytest

from wasi_tls_host.config import HostConfig, NetRule
from wasi_tls_host.runtime.context import WasiCtx
from wasi_tls_host.runtime.errors import ErrorValue
from wasi_tls_host.runtime.values import Case
from wasi_tls_host.sockets import tcp, udp
from wasi_tls_host.sockets.network import Network
from wasi_tls_host.sockets.tcp import TcpSocket
from wasi_tls_host.sockets.udp import UdpSocket

NET = Network()


def v4(address, port):
    return Case("ipv4", {"port": port, "address": address})


def v6(address, port):
    return Case("ipv6", {"port": port, "flow-info": 0, "address": address, "scope-id": 0})


def error_code(call, *args):
    with pytest.raises(ErrorValue) as caught:
        call(*args)
    return caught.value.payload


@pytest.fixture
def ctx():
    context = WasiCtx(HostConfig(allow_net=[NetRule.parse("127.0.0.1"),
                                            NetRule.parse("::1")]))
    yield context
    context.close()


@pytest.fixture
def sock():
    created = TcpSocket.create("ipv4")
    yield created
    created.close()


def test_finish_without_start_is_not_in_progress(ctx, sock):
    assert error_code(tcp.finish_bind, ctx, sock) == "not-in-progress"
    assert error_code(tcp.finish_connect, ctx, sock) == "not-in-progress"
    assert error_code(tcp.finish_listen, ctx, sock) == "not-in-progress"


def test_listen_and_accept_need_the_right_state(ctx, sock):
    assert error_code(tcp.start_listen, ctx, sock) == "invalid-state"
    assert error_code(tcp.accept, ctx, sock) == "invalid-state"
    assert error_code(tcp.local_address, ctx, sock) == "invalid-state"
    assert error_code(tcp.remote_address, ctx, sock) == "invalid-state"
    assert error_code(tcp.shutdown, ctx, sock, "both") == "invalid-state"


def test_bind_listen_accept_cycle(ctx, sock):
    tcp.start_bind(ctx, sock, NET, v4((127, 0, 0, 1), 0))
    assert error_code(tcp.start_bind, ctx, sock, NET, v4((127, 0, 0, 1), 0)) == \
        "concurrency-conflict"
    tcp.finish_bind(ctx, sock)
    tcp.start_listen(ctx, sock)
    tcp.finish_listen(ctx, sock)
    assert tcp.is_listening(ctx, sock)
    assert error_code(tcp.accept, ctx, sock) == "would-block"
    port = tcp.local_address(ctx, sock).payload["port"]
    client = socket.create_connection(("127.0.0.1", port))
    ctx.wait_for(sock)
    accepted, reader, writer = tcp.accept(ctx, sock)
    assert tcp.remote_address(ctx, accepted).payload["port"] == client.getsockname()[1]
    for stream in (reader.obj, writer.obj):
        stream.close()
    accepted.close()
    client.close()


@pytest.mark.parametrize("address,reason", [
    (v4((0, 0, 0, 0), 80), "unspecified address"),
    (v4((127, 0, 0, 1), 0), "port 0"),
    (v4((224, 0, 0, 1), 80), "multicast"),
    (v6((0, 0, 0, 0, 0, 0xFFFF, 0x7F00, 1), 80), "IPv4-mapped IPv6 on an ipv4 socket"),
])
def test_bad_remote_addresses_are_invalid_arguments(ctx, sock, address, reason):
    assert error_code(tcp.start_connect, ctx, sock, NET, address) == "invalid-argument", reason


def test_ipv4_mapped_ipv6_cannot_sidestep_the_allow_list():
    ctx = WasiCtx(HostConfig(allow_net=[NetRule.parse("::1")]))
    sock6 = TcpSocket.create("ipv6")
    mapped = v6((0, 0, 0, 0, 0, 0xFFFF, 0x7F00, 1), 80)
    assert error_code(tcp.start_connect, ctx, sock6, NET, mapped) == "invalid-argument"
    sock6.close()
    ctx.close()


def test_denied_connect_and_bind(sock):
    ctx = WasiCtx(HostConfig())
    assert error_code(tcp.start_connect, ctx, sock, NET, v4((127, 0, 0, 1), 80)) == \
        "access-denied"
    assert error_code(tcp.start_bind, ctx, sock, NET, v4((127, 0, 0, 1), 0)) == "access-denied"
    assert error_code(tcp.start_bind, ctx, sock, NET, v4((0, 0, 0, 0), 0)) == "access-denied"
    ctx.close()


def test_connect_refused_then_closed(ctx, sock):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tcp.start_connect(ctx, sock, NET, v4((127, 0, 0, 1), port))
    ctx.wait_for(sock)
    assert error_code(tcp.finish_connect, ctx, sock) == "connection-refused"
    assert error_code(tcp.start_connect, ctx, sock, NET, v4((127, 0, 0, 1), port)) == \
        "invalid-state"


def test_family_mismatch(ctx, sock):
    assert error_code(tcp.start_bind, ctx, sock, NET, v6((0,) * 7 + (1,), 0)) == \
        "invalid-argument"


def option(name):
    return tcp.interface.functions[f"[method]tcp-socket.{name}"]


def test_options_round_trip_and_reject_zero(ctx, sock):
    option("set-keep-alive-enabled")(ctx, sock, True)
    assert option("keep-alive-enabled")(ctx, sock) is True
    option("set-keep-alive-idle-time")(ctx, sock, 30 * 10**9)
    assert option("keep-alive-idle-time")(ctx, sock) == 30 * 10**9
    option("set-keep-alive-interval")(ctx, sock, 1)  # rounds up to one second
    assert option("keep-alive-interval")(ctx, sock) == 10**9
    option("set-keep-alive-count")(ctx, sock, 5)
    assert option("keep-alive-count")(ctx, sock) == 5
    tcp.set_hop_limit(ctx, sock, 42)
    assert tcp.hop_limit(ctx, sock) == 42
    option("set-receive-buffer-size")(ctx, sock, 65536)
    assert option("receive-buffer-size")(ctx, sock) >= 65536
    for name in ("set-keep-alive-idle-time", "set-keep-alive-interval", "set-keep-alive-count",
                 "set-hop-limit", "set-receive-buffer-size", "set-send-buffer-size",
                 "set-listen-backlog-size"):
        assert error_code(option(name), ctx, sock, 0) == "invalid-argument", name
    assert tcp.address_family(ctx, sock) == "ipv4"


def test_udp_stream_rules(ctx):
    sock = UdpSocket.create("ipv4")
    assert error_code(udp.stream, ctx, sock, None) == "invalid-state"
    udp.start_bind(ctx, sock, NET, v4((0, 0, 0, 0), 0))  # the implicit client bind
    udp.finish_bind(ctx, sock)
    incoming, outgoing = udp.stream(ctx, sock, None)
    assert error_code(udp.stream, ctx, sock, None) == "invalid-state"
    assert udp.check_send(ctx, outgoing.obj) > 0
    no_target = {"data": b"x", "remote-address": None}
    assert error_code(udp.send, ctx, outgoing.obj, [no_target]) == "invalid-argument"
    # Loopback, but not on the allow-list (which names 127.0.0.1 only).
    elsewhere = {"data": b"x", "remote-address": v4((127, 0, 0, 2), 53)}
    assert error_code(udp.send, ctx, outgoing.obj, [elsewhere]) == "access-denied"
    assert udp.receive(ctx, incoming.obj, 10) == []
    for child in (incoming.obj, outgoing.obj):
        child.close()
    sock.close()


def test_tcp_bind_on_all_interfaces_needs_its_own_rule(ctx, sock):
    """Listening on 0.0.0.0 is never implied by a rule for one address."""
    assert error_code(tcp.start_bind, ctx, sock, NET, v4((0, 0, 0, 0), 0)) == "access-denied"


def udp_sender(source: str, payload: bytes, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.bind((source, 0))
        sender.sendto(payload, ("127.0.0.1", port))


def received(ctx, incoming) -> list[bytes]:
    ctx.wait_for(incoming)
    return [datagram["data"] for datagram in udp.receive(ctx, incoming, 10)]


def test_udp_client_bind_hears_only_permitted_peers(ctx):
    sock = UdpSocket.create("ipv4")
    udp.start_bind(ctx, sock, NET, v4((0, 0, 0, 0), 0))
    udp.finish_bind(ctx, sock)
    incoming, outgoing = udp.stream(ctx, sock, None)
    port = sock.sock.getsockname()[1]
    udp_sender("127.0.0.2", b"stranger", port)  # not on the allow-list
    udp_sender("127.0.0.1", b"friend", port)
    assert received(ctx, incoming.obj) == [b"friend"]
    for child in (incoming.obj, outgoing.obj):
        child.close()
    sock.close()


def test_udp_stream_none_dissolves_the_association_and_keeps_the_port():
    ctx = WasiCtx(HostConfig(inherit_network=True))
    sock = UdpSocket.create("ipv4")
    udp.start_bind(ctx, sock, NET, v4((0, 0, 0, 0), 0))
    udp.finish_bind(ctx, sock)
    port = sock.sock.getsockname()[1]
    for child in udp.stream(ctx, sock, v4((127, 0, 0, 1), 9)):
        child.obj.close()
    incoming, outgoing = udp.stream(ctx, sock, None)
    assert udp.local_address(ctx, sock).payload["port"] == port
    udp_sender("127.0.0.2", b"anyone", port)
    assert received(ctx, incoming.obj) == [b"anyone"]
    for child in (incoming.obj, outgoing.obj):
        child.close()
    sock.close()
    ctx.close()


def test_large_ipv6_flow_info_is_accepted():
    ctx = WasiCtx(HostConfig(allow_net=[NetRule.parse("::1")]))
    sock6 = TcpSocket.create("ipv6")
    address = Case("ipv6", {"port": 0, "flow-info": 0xFFFFFFFF, "address": (0,) * 7 + (1,),
                            "scope-id": 0})
    tcp.start_bind(ctx, sock6, NET, address)
    tcp.finish_bind(ctx, sock6)
    sock6.close()
    ctx.close()
