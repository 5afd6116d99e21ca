"""wasi-tls-host: a WASI 0.2 host in Python on wasmtime-py, with wasi:tls.

Embedders use `Host` to run command components, or `add_to_linker` to put
the host's interfaces into their own wasmtime-py component linker (and
`ComponentCache` to load compiled components quickly with their own engine).
"""

from .component_cache import ComponentCache
from .config import HostConfig, NetRule, Preopen
from .host import GuestTrap, Host, HostError, add_to_linker, all_interfaces
from .runtime.context import WasiCtx
from .tls.policy import TlsPolicy

__all__ = [
    "ComponentCache", "GuestTrap", "Host", "HostConfig", "HostError", "NetRule", "Preopen",
    "TlsPolicy", "WasiCtx", "add_to_linker", "all_interfaces",
]
