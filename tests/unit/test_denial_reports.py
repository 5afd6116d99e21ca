"""A denied network access is reported through the `wasi_tls_host` logger:
once per guest, operation and address, not once per retry, naming the
address and the flag that would grant it; and a guest scanning for open
doors gets a bounded number of reports."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Iterator

import pytest

from wasi_tls_host.config import HostConfig, NetRule
from wasi_tls_host.runtime.context import WasiCtx
from wasi_tls_host.runtime.errors import ErrorValue
from wasi_tls_host.runtime.values import Case
from wasi_tls_host.sockets import tcp, udp
from wasi_tls_host.sockets.network import DENIALS_REPORTED, Network, check_allowed
from wasi_tls_host.sockets.tcp import TcpSocket
from wasi_tls_host.sockets.udp import UdpSocket

NET = Network()


def v4(address, port):
    return Case("ipv4", {"port": port, "address": address})


def v6(address, port):
    return Case("ipv6", {"port": port, "flow-info": 0, "address": address, "scope-id": 0})


@contextlib.contextmanager
def tcp_socket(family: str) -> Iterator[TcpSocket]:
    sock = TcpSocket.create(family)
    try:
        yield sock
    finally:
        sock.close()


def denied(call, *args) -> None:
    with pytest.raises(ErrorValue) as caught:
        call(*args)
    assert caught.value.payload == "access-denied"


@pytest.fixture
def ctx():
    context = WasiCtx(HostConfig(allow_net=[NetRule.parse("127.0.0.2")]))
    yield context
    context.close()


@pytest.fixture
def reports(caplog):
    caplog.set_level(logging.WARNING, logger="wasi_tls_host")
    return lambda: [(record.levelname, record.getMessage()) for record in caplog.records
                    if record.name == "wasi_tls_host"]


def test_each_operation_and_address_is_reported_once(ctx, reports):
    for _ in range(3):  # a guest retrying
        with tcp_socket("ipv4") as sock:
            denied(tcp.start_connect, ctx, sock, NET, v4((127, 0, 0, 1), 8443))
    with tcp_socket("ipv4") as sock:
        denied(tcp.start_bind, ctx, sock, NET, v4((127, 0, 0, 1), 8443))
    with tcp_socket("ipv6") as sock:
        denied(tcp.start_connect, ctx, sock, NET, v6((0,) * 7 + (1,), 8443))
    with tcp_socket("ipv4") as sock:
        denied(tcp.start_connect, ctx, sock, NET, v4((127, 0, 0, 1), 8444))
    assert reports() == [
        ("WARNING", "denied connect to 127.0.0.1:8443 (no --allow-net grants it)"),
        ("WARNING", "denied bind to 127.0.0.1:8443 (no --allow-net grants it)"),
        ("WARNING", "denied connect to [::1]:8443 (no --allow-net grants it)"),
        ("WARNING", "denied connect to 127.0.0.1:8444 (no --allow-net grants it)"),
    ]


def test_udp_binds_streams_and_sends_are_reported(ctx, reports):
    sock = UdpSocket.create("ipv4")
    denied(udp.start_bind, ctx, sock, NET, v4((127, 0, 0, 1), 5353))
    udp.start_bind(ctx, sock, NET, v4((0, 0, 0, 0), 0))  # a client's bind: allowed
    udp.finish_bind(ctx, sock)
    denied(udp.stream, ctx, sock, v4((127, 0, 0, 1), 53))
    incoming, outgoing = udp.stream(ctx, sock, None)
    assert udp.check_send(ctx, outgoing.obj) > 0
    datagram = {"data": b"x", "remote-address": v4((127, 0, 0, 1), 53)}
    denied(udp.send, ctx, outgoing.obj, [datagram])
    for child in (incoming.obj, outgoing.obj):
        child.close()
    sock.close()
    assert [message for _, message in reports()] == [
        "denied bind to 127.0.0.1:5353 (no --allow-net grants it)",
        "denied connect to 127.0.0.1:53 (no --allow-net grants it)",
        "denied send to 127.0.0.1:53 (no --allow-net grants it)",
    ]


def test_records_carry_the_operation_and_address(ctx, caplog):
    caplog.set_level(logging.WARNING, logger="wasi_tls_host")
    address = ipaddress.ip_address("192.0.2.7")
    denied(check_allowed, ctx, address, 443, "connect")
    record = caplog.records[-1]
    assert (record.operation, record.address, record.port) == ("connect", address, 443)


def test_allowed_access_is_not_reported(ctx, reports):
    check_allowed(ctx, ipaddress.ip_address("127.0.0.2"), 443, "connect")
    assert reports() == []


def test_each_guest_is_reported_on_its_own(reports):
    for _ in range(2):
        guest = WasiCtx(HostConfig())
        denied(check_allowed, guest, ipaddress.ip_address("127.0.0.1"), 80, "connect")
        guest.close()
    assert len(reports()) == 2


def test_a_port_scan_gets_a_bounded_number_of_reports(ctx, reports):
    address = ipaddress.ip_address("127.0.0.1")
    for port in range(1, 1001):
        denied(check_allowed, ctx, address, port, "connect")
    messages = [message for _, message in reports()]
    assert len(messages) == DENIALS_REPORTED + 1
    assert messages[-2] == (f"denied connect to 127.0.0.1:{DENIALS_REPORTED} "
                            "(no --allow-net grants it)")
    assert messages[-1] == "more denied network accesses of this guest are not reported"
