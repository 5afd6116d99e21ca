"""wasi-tls-host: a WASI 0.2 host in Python on wasmtime-py, with wasi:tls.

Embedders use `Host` to run command components (`run`, `start` for a
`GuestRun` on its own thread, `run_async`), bounded by `Limits`, or
`add_to_linker` to put the host's interfaces into their own wasmtime-py
component linker (and `ComponentCache` to load compiled components quickly
with their own engine).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .component_cache import ComponentCache
from .config import HostConfig, Limits, NetRule, Preopen
from .guest_run import GuestRun, GuestTrap
from .host import Host, HostError, add_to_linker, all_interfaces
from .runtime.context import WasiCtx
from .tls.policy import TlsPolicy

if TYPE_CHECKING:
    from .tls.identity import PrivateIdentity

__all__ = [
    "ComponentCache", "GuestRun", "GuestTrap", "Host", "HostConfig", "HostError", "Limits",
    "NetRule", "Preopen", "PrivateIdentity", "TlsPolicy", "WasiCtx", "add_to_linker",
    "all_interfaces",
]


def __getattr__(name: str) -> object:
    # PrivateIdentity brings in `cryptography`, tens of milliseconds that
    # every start of the command would pay: imported when first asked for.
    if name == "PrivateIdentity":
        from .tls.identity import PrivateIdentity
        return PrivateIdentity
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
