"""wasi:sockets/ip-name-lookup: resolve names off the main thread.

`getaddrinfo` can block, and no host call may block outside `poll`, so each
lookup runs on a worker thread that signals completion through a pipe the
poll loop can wait on.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
from typing import Any

from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx
from ..runtime.poll import READ, Pollable, WaitSpec
from ..runtime.resources import Res
from ..runtime.values import Case, Child
from .network import error_code, fail, ip_address_value

interface = Interface(f"wasi:sockets/ip-name-lookup@{WASI_VERSION}")
for _name, _res in (("resolve-address-stream", Res.RESOLVE_ADDRESS_STREAM),
                    ("network", Res.NETWORK), ("pollable", Res.POLLABLE)):
    interface.resource(_name, _res)

#: getaddrinfo failures by EAI code (a gaierror may carry none).
_GAI_CODES: dict[int | None, str] = {
    socket.EAI_NONAME: "name-unresolvable",
    socket.EAI_AGAIN: "temporary-resolver-failure",
}


class ResolveAddressStream:
    def __init__(self, name: str):
        self.addresses: list[Any] | None = None
        self.error: str | None = None
        self._read_fd, self._write_fd = os.pipe()
        self._lock = threading.Lock()
        self._dropped = False
        self._done = False
        self._thread = threading.Thread(target=self._resolve, args=(name,), daemon=True)
        self._thread.start()

    def _resolve(self, name: str) -> None:
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
            unique: list[Any] = []
            for info in infos:
                address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
                if address not in unique:
                    unique.append(address)
            self.addresses = unique
        except socket.gaierror as error:
            self.error = _GAI_CODES.get(error.errno, "permanent-resolver-failure")
        except (UnicodeError, ValueError):
            self.error = "invalid-argument"
        finally:
            with self._lock:
                self._done = True
                if self._dropped:  # nobody waits any more: clean up here
                    self._close_pipe()
                else:
                    os.write(self._write_fd, b"x")

    def ready(self) -> bool:
        return self._done

    def wait_on(self) -> WaitSpec:
        return WaitSpec(fds=((self._read_fd, READ),))

    def close(self) -> None:
        """Never waits for the resolver: a lookup still running cleans up after itself."""
        with self._lock:
            self._dropped = True
            if self._done:
                self._close_pipe()

    def _close_pipe(self) -> None:
        os.close(self._read_fd)
        os.close(self._write_fd)


#: Code points a host name may not contain (the URL standard's forbidden
#: domain code points, which is what wasmtime applies).
_FORBIDDEN = set("\x00\t\n\r #%/:<>?@[\\]^|\x7f") | {chr(c) for c in range(0x20)}


def _lookup_target(name: str) -> str | None:
    """The name or address to resolve, or None if the name is malformed.

    Like wasmtime: `[v6]` is accepted as an IPv6 literal, a zone (`%eth0`) is
    not, and other names fail only at resolution (name-unresolvable).
    """
    literal = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    if "%" in literal:
        return None
    try:
        return str(ipaddress.ip_address(literal))
    except ValueError:
        pass
    if not name or _FORBIDDEN & set(name):
        return None
    return name


@interface.func("resolve-addresses")
def resolve_addresses(ctx: WasiCtx, network: Any, name: str) -> ResolveAddressStream:
    if not ctx.config.has_network:
        raise fail("access-denied")
    target = _lookup_target(name)
    if target is None:
        raise fail("invalid-argument")
    try:
        return ResolveAddressStream(target)
    except OSError as error:  # no file descriptor left for its wake-up pipe
        raise fail(error_code(error)) from None


@interface.func("[method]resolve-address-stream.resolve-next-address")
def resolve_next_address(ctx: WasiCtx, stream: ResolveAddressStream) -> Case | None:
    if not stream.ready():
        raise fail("would-block")
    if stream.error is not None:
        raise fail(stream.error)
    if stream.addresses:
        return ip_address_value(stream.addresses.pop(0))
    return None


@interface.func("[method]resolve-address-stream.subscribe")
def subscribe(ctx: WasiCtx, stream: ResolveAddressStream) -> Child:
    return Child(Pollable(stream), stream)
