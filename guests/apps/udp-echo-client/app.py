"""udp-echo-client HOST:PORT COUNT

Sends COUNT datagrams (datagram i is b"datagram i") to HOST:PORT through
wasi:sockets/udp: creates a socket of the address's family, binds it to the
unspecified address with port 0, streams it to the remote address, sends with
check-send/send and receives with polling, under a 5 s overall deadline
(wasi:clocks/monotonic-clock subscribe-duration).  Stops as soon as every
datagram has been echoed.  Prints

    sent N received M
    got <payload>              each distinct received payload, in arrival order

M counts every datagram received (duplicates included).  Exit 0 when every
datagram was echoed.  Errors print `error: <error-code>` to stderr and exit 1;
so does a deadline with datagrams missing (`error: timeout`, after the
report above).
"""

import sys

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import monotonic_clock, network, poll, udp, udp_create_socket

from wasi_guest import WasiError, cli, close, code_name, io, net

USAGE = "usage: udp-echo-client HOST:PORT COUNT"
DEADLINE_NS = 5_000_000_000
RECEIVE_BATCH = 64


class UdpFailed(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def _call(fn, *args):
    try:
        return fn(*args)
    except Err as e:
        raise UdpFailed(code_name(e.value)) from None


def bind_unspecified(sock, family):
    if family == network.IpAddressFamily.IPV4:
        local = network.IpSocketAddress_Ipv4(network.Ipv4SocketAddress(0, (0, 0, 0, 0)))
    else:
        local = network.IpSocketAddress_Ipv6(
            network.Ipv6SocketAddress(0, 0, (0, 0, 0, 0, 0, 0, 0, 0), 0)
        )
    _call(sock.start_bind, net.get_network(), local)
    while True:
        try:
            sock.finish_bind()
            return
        except Err as e:
            if e.value != network.ErrorCode.WOULD_BLOCK:
                raise UdpFailed(code_name(e.value)) from None
        io.wait_for(sock)


def exchange(incoming, outgoing, count, deadline):
    """-> (sent, received, distinct payloads in arrival order, timed_out)."""
    sent = 0
    received = 0
    seen = set()
    order = []
    while True:
        # Send as much as the stream permits right now.
        while sent < count:
            permit = _call(outgoing.check_send)
            if permit == 0:
                break
            batch = [
                udp.OutgoingDatagram(f"datagram {i}".encode(), None)
                for i in range(sent, min(count, sent + permit))
            ]
            sent += _call(outgoing.send, batch)
        # Take whatever has arrived.
        for d in _call(incoming.receive, RECEIVE_BATCH):
            received += 1
            if d.data not in seen:
                seen.add(d.data)
                order.append(d.data)
        if sent == count and len(order) >= count:
            return sent, received, order, False
        pollables = [deadline, incoming.subscribe()]
        kinds = ["deadline", "in"]
        if sent < count:
            pollables.append(outgoing.subscribe())
            kinds.append("out")
        try:
            ready = poll.poll(pollables)
        finally:
            close(*pollables[1:])
        if 0 in ready:
            # One last non-blocking look before giving up.
            for d in _call(incoming.receive, RECEIVE_BATCH):
                received += 1
                if d.data not in seen:
                    seen.add(d.data)
                    order.append(d.data)
            return sent, received, order, len(order) < count or sent < count


def main(argv) -> int:
    if len(argv) != 2:
        cli.eprint(USAGE)
        return 1
    try:
        host, port = net.split_host_port(argv[0])
        count = int(argv[1])
        if count < 0:
            raise ValueError("COUNT must be >= 0")
    except ValueError as e:
        cli.eprint(f"error: invalid-argument ({e})")
        cli.eprint(USAGE)
        return 1

    deadline = monotonic_clock.subscribe_duration(DEADLINE_NS)
    sock = incoming = outgoing = None
    try:
        ip = net.resolve(host)[0]
        remote = net.socket_address(ip, port)
        family = (
            network.IpAddressFamily.IPV4
            if isinstance(ip, network.IpAddress_Ipv4)
            else network.IpAddressFamily.IPV6
        )
        sock = _call(udp_create_socket.create_udp_socket, family)
        bind_unspecified(sock, family)
        incoming, outgoing = _call(sock.stream, remote)
        sent, received, order, timed_out = exchange(incoming, outgoing, count, deadline)
    except (UdpFailed, WasiError) as e:
        cli.eprint(f"error: {e.code}")
        return 1
    finally:
        close(incoming, outgoing, sock, deadline)

    print(f"sent {sent} received {received}")
    for payload in order:
        print(f"got {payload.decode('utf-8', 'backslashreplace')}")
    if timed_out:
        cli.flush_stdio()
        cli.eprint("error: timeout")
        return 1
    return 0


class Run(exports.Run):
    def run(self) -> None:
        cli.exit(main(sys.argv[1:]))
