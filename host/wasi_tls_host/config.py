"""What a guest is allowed to see and do. Everything is off unless granted."""

from __future__ import annotations

import io
import ipaddress
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, ClassVar

from .tls.policy import TlsPolicy

if TYPE_CHECKING:
    from .tls.identity import PrivateIdentity

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Sockets a guest may hold open at once by default (nginx's default
#: worker_connections): half of the usual 1024 descriptors a process may
#: open, leaving the rest to the host, the guest's files and other guests.
DEFAULT_MAX_CONNECTIONS = 512
#: Seconds a guest may take to finish its connections after SIGTERM (`run`),
#: and requests in flight once a server stops (`serve`).
DEFAULT_GRACE = 10.0


@dataclass(frozen=True)
class Preopen:
    """A host directory the guest sees as `guest_path`."""

    host_path: str
    guest_path: str
    read_only: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "host_path", os.fspath(self.host_path))

    @classmethod
    def parse(cls, spec: str) -> Preopen:
        """`HOST[::GUEST][:ro]`, as on the command line."""
        read_only = spec.endswith(":ro")
        if read_only:
            spec = spec[: -len(":ro")]
        host, sep, guest = spec.partition("::")
        if not os.path.isdir(host):
            raise ValueError(f"--dir {host}: not a directory on the host")
        return cls(os.path.abspath(host), guest if sep else host, read_only)


@dataclass(frozen=True)
class NetRule:
    """Addresses the guest may connect to, bind or send to: one host, any or one port."""

    addresses: frozenset[IpAddress]
    port: int | None
    spec: str

    @classmethod
    def parse(cls, spec: str) -> NetRule:
        """`HOST`, `HOST:PORT`, `[V6]:PORT` or `V6`; names are resolved now."""
        host, port = spec, None
        if spec.startswith("["):
            host, _, rest = spec[1:].partition("]")
            if rest:
                port = _port(rest.removeprefix(":"), spec)
        elif spec.count(":") == 1:
            host, port_text = spec.split(":")
            port = _port(port_text, spec)
        try:
            addresses = frozenset({ipaddress.ip_address(host)})
        except ValueError:
            try:
                infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
            except socket.gaierror as error:
                raise ValueError(f"--allow-net {spec}: cannot resolve {host}: {error}") from None
            addresses = frozenset(ipaddress.ip_address(info[4][0]) for info in infos)
        return cls(addresses, port, spec)

    def allows(self, address: IpAddress, port: int) -> bool:
        return address in self.addresses and (self.port is None or self.port == port)


def host_key(host: str) -> str:
    """A host name as --http-client-identity compares it: without case; an IP
    address in its canonical form, IPv6 without brackets."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return bare.lower()


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise ValueError(f"--allow-net {spec}: bad port {text!r}")
    return int(text)


@dataclass(frozen=True)
class Limits:
    """How far one guest run may go; None is no limit.

    - `timeout`: seconds for the whole run, from instantiation to the end,
      time spent waiting in `poll` or a `blocking-*` call included. The
      guest is ended within about a second of it (`GuestTrap` kind
      "timeout").
    - `max_memory`: bytes each linear memory may grow to (and, at 8 bytes an
      element, each table). A `memory.grow` beyond it returns -1 to the
      guest, which decides what that means (a Python guest raises
      MemoryError); a guest that cannot even be instantiated in it ends with
      kind "memory".
    - `fuel`: units of Wasmtime fuel (about one per WebAssembly instruction)
      the guest may burn; then it traps (kind "fuel"). Guests with a fuel
      limit run on a second engine whose code counts fuel; the others never
      pay for it.
    """

    timeout: float | None = None
    max_memory: int | None = None
    fuel: int | None = None

    #: How messages name each limit; the command line names its options.
    NAMES: ClassVar[dict[str, str]] = {"max_memory": "Limits.max_memory",
                                       "fuel": "Limits.fuel"}

    def __post_init__(self) -> None:
        if self.timeout is not None and not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(f"Limits(timeout={self.timeout!r}): expected a finite number "
                             "of seconds above 0")
        for name in ("max_memory", "fuel"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"Limits({name}={value!r}): expected a whole number above 0")

    def describe_timeout(self) -> str:
        return f"{self.timeout:g} s"

    def describe_memory(self) -> str:
        return f"memory capped at {format_size(self.max_memory or 0)} by {self.NAMES['max_memory']}"

    def describe_fuel(self) -> str:
        return f"{self.fuel} units by {self.NAMES['fuel']}"


_UNITS = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def format_size(size: int) -> str:
    """`size` bytes in the largest binary unit that divides it (64 MiB)."""
    for unit, scale in _UNITS:
        if size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


def _check_stream(name: str, stream: object, method: str) -> None:
    """Refuse what the guest could not use as a byte stream, now rather than
    at its first read or write (where it would read as a host defect)."""
    if stream is None:
        return
    kind = type(stream).__name__
    if isinstance(stream, io.TextIOBase):
        raise TypeError(f"HostConfig({name}=...): {kind} is a text stream; the guest's {name} "
                        "needs a binary file object (io.BytesIO, a file opened in binary mode, "
                        f"or sys.{name}.buffer)")
    if isinstance(stream, io.IOBase):
        try:
            usable = stream.readable() if method == "read" else stream.writable()
        except ValueError:  # closed: the guest will find it closed
            usable = True
    else:
        usable = callable(getattr(stream, method, None))
    if not usable:
        raise TypeError(f"HostConfig({name}=...): {kind} cannot {method}; the guest's {name} "
                        "needs a binary file object it can " + method)


@dataclass
class HostConfig:
    """Everything the host grants one guest run, and how far it may go (`limits`).

    `max_connections` bounds the sockets the guest holds open at once (TCP
    connections it makes or accepts, listeners, UDP sockets); beyond it,
    creating or accepting a socket fails with `new-socket-limit`.

    `sigterm_grace` (None: SIGTERM is left alone) makes SIGTERM drain a
    guest that `Host.run` runs on the main thread: its listeners close, its
    connections may finish, and it is stopped after that many seconds
    (`GuestRun.drain` does the same for a guest on a thread of its own).

    The standard streams are binary file objects (None: the process's own);
    anything else is refused here with a TypeError that names the stream.
    Clocks and randomness are injectable so that tests can pin them. An
    injected monotonic clock must advance with real time for timers to
    fire: the poll loop sleeps in real time until the clock's deadline.
    """

    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    inherit_env: bool = False
    preopens: list[Preopen] = field(default_factory=list)
    allow_net: list[NetRule] = field(default_factory=list)
    inherit_network: bool = False
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    sigterm_grace: float | None = None
    initial_cwd: str | None = None
    tls: TlsPolicy = field(default_factory=TlsPolicy)
    #: Client certificates for wasi:http requests, by server host (keyed by `host_key`).
    http_client_identities: dict[str, PrivateIdentity] = field(default_factory=dict)
    stdin: BinaryIO | None = None
    stdout: BinaryIO | None = None
    stderr: BinaryIO | None = None
    monotonic_ns: Callable[[], int] = time.monotonic_ns
    wall_ns: Callable[[], int] = time.time_ns
    #: The operating system's CSPRNG, as `secrets.token_bytes` (not imported:
    #: its `random` and `hmac` would cost every start-up a millisecond).
    secure_random: Callable[[int], bytes] = os.urandom
    insecure_random: Callable[[int], bytes] = os.urandom
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if self.max_connections < 0:
            raise ValueError(f"max_connections must be 0 or more, got {self.max_connections}")
        if self.sigterm_grace is not None and not self.sigterm_grace >= 0:
            raise ValueError(f"sigterm_grace must be 0 or more seconds, got {self.sigterm_grace}")
        _check_stream("stdin", self.stdin, "read")
        _check_stream("stdout", self.stdout, "write")
        _check_stream("stderr", self.stderr, "write")

    def environment(self) -> dict[str, str]:
        merged = dict(os.environ) if self.inherit_env else {}
        merged.update(self.env)
        return merged

    def network_allows(self, address: IpAddress, port: int) -> bool:
        if self.inherit_network:
            return True
        return any(rule.allows(address, port) for rule in self.allow_net)

    @property
    def has_network(self) -> bool:
        return self.inherit_network or bool(self.allow_net)
