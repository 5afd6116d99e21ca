"""Every interface the host provides, registered in this one place.

`REGISTRY` maps each WIT interface (without its version) to the module that
implements it; the module's `interface` (or `interfaces`, for a module that
serves several) carries the version and the functions. Adding an interface
means one new module and one line here: linking, the host's messages about
what it provides, and the checks of what a component imports all read this.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from .runtime.calls import Interface

REGISTRY: dict[str, str] = {
    "wasi:io/error": "io.error",
    "wasi:io/poll": "io.poll",
    "wasi:io/streams": "io.streams",
    "wasi-tls-host:io/bulk": "io.bulk",
    "wasi:clocks/monotonic-clock": "clocks.monotonic_clock",
    "wasi:clocks/wall-clock": "clocks.wall_clock",
    "wasi:random/random": "random.random",
    "wasi:random/insecure": "random.insecure",
    "wasi:random/insecure-seed": "random.insecure_seed",
    "wasi:cli/environment": "cli.environment",
    "wasi:cli/exit": "cli.exit",
    "wasi:cli/stdin": "cli.stdio",
    "wasi:cli/stdout": "cli.stdio",
    "wasi:cli/stderr": "cli.stdio",
    "wasi:cli/terminal-input": "cli.terminal",
    "wasi:cli/terminal-output": "cli.terminal",
    "wasi:cli/terminal-stdin": "cli.terminal",
    "wasi:cli/terminal-stdout": "cli.terminal",
    "wasi:cli/terminal-stderr": "cli.terminal",
    "wasi:filesystem/types": "filesystem.types",
    "wasi:filesystem/preopens": "filesystem.preopens",
    "wasi:sockets/network": "sockets.network",
    "wasi:sockets/instance-network": "sockets.instance_network",
    "wasi:sockets/tcp": "sockets.tcp",
    "wasi:sockets/tcp-create-socket": "sockets.tcp_create_socket",
    "wasi:sockets/udp": "sockets.udp",
    "wasi:sockets/udp-create-socket": "sockets.udp_create_socket",
    "wasi:sockets/ip-name-lookup": "sockets.ip_name_lookup",
    "wasi:tls/types": "wasi_tls.types",
    "wasi-tls-host:tls/tls": "wasi_tls.tls",
    "wasi-tls-host:tls/preopens": "wasi_tls.preopens",
    "wasi:http/types": "http.types",
    "wasi:http/outgoing-handler": "http.outgoing_handler",
}


def load(names: Iterable[str] = REGISTRY) -> list[Interface]:
    """The interfaces registered under `names` (unversioned), each once."""
    found: dict[str, Interface] = {}
    for name in names:
        module = importlib.import_module(f"{__package__}.{REGISTRY[name]}")
        for interface in getattr(module, "interfaces", None) or [module.interface]:
            if interface.unversioned == name:
                found[name] = interface
    return list(found.values())


def imported_by(import_names: Iterable[str]) -> list[str]:
    """The registered interfaces among a component's imports ("wasi:io/poll@0.2.0")."""
    return [name for name in (full.split("@", 1)[0] for full in import_names) if name in REGISTRY]


def summary() -> str:
    """What the host provides, by package: "wasi:io/{error,poll,streams}, ..."."""
    packages: dict[str, list[str]] = {}
    for name in REGISTRY:
        package, _, interface = name.partition("/")
        packages.setdefault(package, []).append(interface)
    return ", ".join(f"{package}/{{{','.join(names)}}}" if len(names) > 1
                     else f"{package}/{names[0]}" for package, names in packages.items())
