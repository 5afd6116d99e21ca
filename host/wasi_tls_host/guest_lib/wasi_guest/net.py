"""wasi:sockets TCP helpers.

Addresses are strings "HOST:PORT": "127.0.0.1:8080", "[::1]:8080", or (for
connect_tcp / listen_tcp) "localhost:8080", resolved with
wasi:sockets/ip-name-lookup.  Failures raise NetError whose ``code`` is the
wasi:sockets error-code name, e.g. NetError("connection-refused").
"""

import functools
import ipaddress

from componentize_py_types import Err
from wit_world.imports import (
    instance_network,
    ip_name_lookup,
    network,
    tcp,
    tcp_create_socket,
)

from . import close, tasks
from .errors import NetError, code_name
from .io import wait_for

#: Accept failures that pass with time: the process is out of descriptors or
#: memory for now, or a client gave up while it waited in the backlog.
TEMPORARY_ACCEPT_ERRORS = ("new-socket-limit", "out-of-memory", "connection-aborted",
                           "connection-reset")
#: The first and the longest pause before accept tries again after one.
ACCEPT_PAUSES_S = (0.01, 1.0)

ErrorCode = network.ErrorCode

_network = None


def get_network():
    """The instance network (created on first use, then reused)."""
    global _network
    if _network is None:
        _network = instance_network.instance_network()
    return _network


def _net_error(err, what=None):
    value = err.value if isinstance(err, Err) else err
    return NetError(code_name(value), what)


def _is_would_block(err):
    return isinstance(err, Err) and err.value == ErrorCode.WOULD_BLOCK


def _finish(sock, finish):
    """Call a finish-* method until it stops answering would-block, waiting
    on the socket's pollable in between."""
    while True:
        try:
            return finish()
        except Err as e:
            if _is_would_block(e):
                wait_for(sock)
                continue
            raise _net_error(e) from None


# ---------------------------------------------------------------- addresses


def split_host_port(host_port: str):
    """ "h:p" / "[v6]:p" -> (host, port).  Raises ValueError."""
    s = host_port.strip()
    if s.startswith("["):
        end = s.find("]")
        if end < 0 or not s[end + 1 :].startswith(":"):
            raise ValueError(f"bad address {host_port!r}: expected [IPV6]:PORT")
        host, port_s = s[1:end], s[end + 2 :]
    else:
        host, sep, port_s = s.rpartition(":")
        if not sep or not host:
            raise ValueError(f"bad address {host_port!r}: expected HOST:PORT")
        if ":" in host:
            raise ValueError(f"bad address {host_port!r}: IPv6 needs [brackets]")
    if not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise ValueError(f"bad port in {host_port!r}")
    return host, int(port_s)


@functools.lru_cache(maxsize=64)
def _ip_parts(host: str):
    # Kept per text: a client connects to the same few hosts again and
    # again, and the ipaddress module is slow in a guest.
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    b = ip.packed
    if ip.version == 4:
        return 4, tuple(b)
    return 6, tuple((b[i] << 8) | b[i + 1] for i in range(0, 16, 2))


def parse_ip(host: str):
    """IP literal -> wasi IpAddress, or None if ``host`` is not an IP literal."""
    parts = _ip_parts(host)
    if parts is None:
        return None
    version, value = parts
    return network.IpAddress_Ipv4(value) if version == 4 else network.IpAddress_Ipv6(value)


def socket_address(ip, port: int):
    """wasi IpAddress + port -> IpSocketAddress."""
    if isinstance(ip, network.IpAddress_Ipv4):
        return network.IpSocketAddress_Ipv4(network.Ipv4SocketAddress(port, ip.value))
    return network.IpSocketAddress_Ipv6(network.Ipv6SocketAddress(port, 0, ip.value, 0))


def parse_address(host_port: str):
    """ "127.0.0.1:8080" or "[::1]:8080" -> IpSocketAddress.  Raises
    ValueError for malformed input or a host name (use resolve())."""
    host, port = split_host_port(host_port)
    ip = parse_ip(host)
    if ip is None:
        raise ValueError(f"not an IP address: {host!r}")
    return socket_address(ip, port)


def format_ip(ip) -> str:
    if isinstance(ip, network.IpAddress_Ipv4):
        return ".".join(str(x) for x in ip.value)
    packed = b"".join(x.to_bytes(2, "big") for x in ip.value)
    return str(ipaddress.IPv6Address(packed))


def format_address(addr) -> str:
    """IpSocketAddress -> "127.0.0.1:8080" / "[::1]:8080"."""
    v = addr.value
    if isinstance(addr, network.IpSocketAddress_Ipv4):
        return f"{format_ip(network.IpAddress_Ipv4(v.address))}:{v.port}"
    return f"[{format_ip(network.IpAddress_Ipv6(v.address))}]:{v.port}"


def _family(addr):
    if isinstance(addr, network.IpSocketAddress_Ipv4):
        return network.IpAddressFamily.IPV4
    return network.IpAddressFamily.IPV6


def resolve(host: str):
    """Host name or IP literal -> list of wasi IpAddress (in resolver order)."""
    ip = parse_ip(host)
    if ip is not None:
        return [ip]
    out = lookup(host)
    if not out:
        raise NetError("name-unresolvable", host)
    return out


def lookup(host: str):
    """Ask the host's ip-name-lookup about ``host`` (literals included) ->
    list of wasi IpAddress, possibly empty.  Raises NetError."""
    try:
        stream = ip_name_lookup.resolve_addresses(get_network(), host)
    except Err as e:
        raise _net_error(e, host) from None
    out = []
    try:
        while True:
            try:
                ip = stream.resolve_next_address()
            except Err as e:
                if _is_would_block(e):
                    wait_for(stream)
                    continue
                raise _net_error(e, host) from None
            if ip is None:
                break
            out.append(ip)
    finally:
        close(stream)
    return out


def _addresses(host, port):
    return [socket_address(ip, port) for ip in resolve(host)]


# ---------------------------------------------------------------- TCP


def create_tcp_socket(family):
    try:
        return tcp_create_socket.create_tcp_socket(family)
    except Err as e:
        raise _net_error(e) from None


def connect_address(addr):
    """Connect to one IpSocketAddress -> (socket, input-stream, output-stream)."""
    sock = create_tcp_socket(_family(addr))
    try:
        try:
            sock.start_connect(get_network(), addr)
        except Err as e:
            raise _net_error(e) from None
        inp, out = _finish(sock, sock.finish_connect)
    except BaseException:
        close(sock)
        raise
    return sock, inp, out


def connect_host(host, port: int):
    """Connect to ``host`` (IP literal or host name; each resolved address is
    tried in turn until one connects) on ``port`` -> (socket, input-stream,
    output-stream); the last address's NetError if none connects.

    Drop in the order input, output, socket (see close_connection)."""
    addresses = _addresses(host, port)
    for addr in addresses[:-1]:
        try:
            return connect_address(addr)
        except NetError:
            pass
    return connect_address(addresses[-1])


def connect_tcp(host_port: str):
    """connect_host for "HOST:PORT"."""
    return connect_host(*split_host_port(host_port))


def listen_tcp(addr: str, backlog: int = 128):
    """Bind and listen on "HOST:PORT" (port 0 picks a free port; see
    local_address) -> listening socket."""
    sa = _addresses(*split_host_port(addr))[0]
    sock = create_tcp_socket(_family(sa))
    try:
        try:
            sock.set_listen_backlog_size(backlog)
        except Err as e:
            if e.value != ErrorCode.NOT_SUPPORTED:
                raise _net_error(e) from None
        try:
            sock.start_bind(get_network(), sa)
        except Err as e:
            raise _net_error(e) from None
        _finish(sock, sock.finish_bind)
        try:
            sock.start_listen()
        except Err as e:
            raise _net_error(e) from None
        _finish(sock, sock.finish_listen)
    except BaseException:
        close(sock)
        raise
    return sock


def accept_task(listener):
    """Task: the next connection -> (socket, input, output), or None once the
    listener has closed (the host does that when it drains the guest, on
    SIGTERM): a server's accept loop ends there and lets its connections
    finish. A temporary failure (TEMPORARY_ACCEPT_ERRORS) is waited out:
    the task pauses, 10 ms at first and twice as long each time after, up to
    a second, and tries again; others raise NetError."""
    pause, longest = ACCEPT_PAUSES_S
    while True:
        try:
            return listener.accept()
        except Err as e:
            code = code_name(e.value)
            if code == "invalid-state" and not listener.is_listening():
                return None
            if code != "would-block" and code not in TEMPORARY_ACCEPT_ERRORS:
                raise _net_error(e) from None
        if code == "would-block":
            yield listener
        else:
            yield from tasks.sleep_task(pause)
            pause = min(2 * pause, longest)


def accept(listener, block: bool = True):
    """Accept one connection -> (socket, input, output), or None once the
    listener has closed.  With block=False, also None instead of waiting
    when no connection is pending."""
    steps = accept_task(listener)
    if block:
        return tasks.run(steps)
    try:
        next(steps)
    except StopIteration as accepted:
        return accepted.value
    steps.close()
    return None


def local_address(sock) -> str:
    try:
        return format_address(sock.local_address())
    except Err as e:
        raise _net_error(e) from None


def remote_address(sock) -> str:
    try:
        return format_address(sock.remote_address())
    except Err as e:
        raise _net_error(e) from None


_SHUTDOWN_TYPES = {
    "send": tcp.ShutdownType.SEND,
    "receive": tcp.ShutdownType.RECEIVE,
    "both": tcp.ShutdownType.BOTH,
}


def shutdown(sock, how="send"):
    """Shut down a connection's sending side ("send": the peer reads end of
    stream after what was written), its receiving side ("receive"), or
    "both".  Raises NetError."""
    try:
        sock.shutdown(_SHUTDOWN_TYPES[how])
    except Err as e:
        raise _net_error(e) from None


def close_connection(sock, inp=None, out=None):
    """Drop a connection's streams, then its socket (child resources first)."""
    close(inp, out, sock)


__all__ = [
    "ACCEPT_PAUSES_S",
    "TEMPORARY_ACCEPT_ERRORS",
    "ErrorCode",
    "accept",
    "accept_task",
    "close_connection",
    "connect_address",
    "connect_host",
    "connect_tcp",
    "create_tcp_socket",
    "format_address",
    "format_ip",
    "get_network",
    "listen_tcp",
    "local_address",
    "parse_address",
    "parse_ip",
    "remote_address",
    "resolve",
    "shutdown",
    "socket_address",
    "split_host_port",
    "tcp",
]
