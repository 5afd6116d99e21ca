"""The registry against the WIT the package ships: every interface a guest can
import is registered, and every function and resource it declares is defined
by the host (a `use`d resource too, so the types match across interfaces)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from wasi_tls_host import interfaces as registry
from wasi_tls_host.guest_tools import WIT_DIR

#: WIT interfaces the host deliberately does not provide.
NOT_PROVIDED = {
    "wasi:cli/run",  # guests export it
    "wasi:http/incoming-handler",  # guests export it (`serve` calls it)
    "wasi:clocks/timezone",  # @unstable, and no componentize-py guest imports it
}


def blocks(text: str, keyword: str) -> list[tuple[str, str]]:
    """(name, body) of each `keyword NAME { ... }` at this level, braces matched."""
    found = []
    for match in re.finditer(rf"\b{keyword} ([\w-]+) \{{", text):
        depth, end = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        found.append((match.group(1), text[match.end():end - 1]))
    return found


def wit_interfaces() -> dict[str, str]:
    """Unversioned interface name -> its WIT body, for every package shipped."""
    found = {}
    for folder in {path.parent for path in WIT_DIR.rglob("*.wit")}:
        texts = [re.sub(r"//.*", "", path.read_text()) for path in folder.glob("*.wit")]
        package = next(m.group(1) for text in texts
                       if (m := re.search(r"^package ([\w:-]+)", text, re.M)))
        for text in texts:
            for name, body in blocks(text, "interface"):
                found[f"{package}/{name}"] = body
    return found


def declared(body: str, known_resources: set[str]) -> tuple[set[str], set[str]]:
    """(functions as the linker names them, resources) of one interface body."""
    functions, resources = set(), set(re.findall(r"resource ([\w-]+);", body))
    outside = body
    for resource, inner in blocks(body, "resource"):
        resources.add(resource)
        outside = outside.replace(inner, "")
        for name, static in re.findall(r"^\s*%?([\w-]+): (static )?func\(", inner, re.M):
            functions.add(f"[{'static' if static else 'method'}]{resource}.{name}")
        if re.search(r"^\s*constructor\(", inner, re.M):
            functions.add(f"[constructor]{resource}")
    functions |= set(re.findall(r"^\s*([\w-]+): func\(", outside, re.M))
    for names in re.findall(r"use [\w:/.@-]+\.\{([^}]*)\}", body):
        for item in names.split(","):
            original, _, alias = item.strip().partition(" as ")
            if original in known_resources:
                resources.add(alias or original)
    return functions, resources


WIT = wit_interfaces()
RESOURCES = {name for body in WIT.values() for name, _ in blocks(body, "resource")} | {
    name for body in WIT.values() for name in re.findall(r"resource ([\w-]+);", body)}


def test_every_shipped_interface_is_registered():
    assert set(WIT) - NOT_PROVIDED == set(registry.REGISTRY)


@pytest.mark.parametrize("name", sorted(registry.REGISTRY))
def test_every_function_and_resource_is_defined(name):
    functions, resources = declared(WIT[name], RESOURCES)
    (interface,) = registry.load([name])
    assert set(interface.functions) == functions
    assert set(interface.resources) == resources


def test_no_interface_loads_cryptography():
    """`cryptography` costs ~30 ms of start-up; only parsing an identity (a
    guest's or the operator's) needs it, not linking any interface."""
    check = ("import sys; from wasi_tls_host import interfaces; interfaces.load(); "
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'cryptography'))")
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"
