"""The conformance guests as the package ships them.

`guests/build.py` builds each app under `guests/conformance/` with
componentize-py and packs it here as `components/NAME.wasm.xz` (an 18 MB
component is about 4 MB compressed), so an installed wheel needs neither
componentize-py nor a source checkout. The runner unpacks the components
into its own working directory for each run (half a second each): nothing
is left behind to go stale, and the hosts' compilation caches key on the
contents, not the path.
"""

from __future__ import annotations

import lzma
import os
from pathlib import Path

COMPONENTS_DIR = Path(__file__).resolve().parent / "components"
SUFFIX = ".wasm.xz"


class MissingComponent(Exception):
    """A conformance component was never built into this package."""


def packed_path(name: str) -> Path:
    return COMPONENTS_DIR / f"{name}{SUFFIX}"


def pack(wasm: Path, name: str) -> Path:
    """Compress the built component `wasm` into the package; replace atomically."""
    target = packed_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.write_bytes(lzma.compress(wasm.read_bytes()))
    os.replace(partial, target)
    return target


def unpack(name: str, directory: Path) -> Path:
    """The component `name` as a .wasm file in `directory`."""
    packed = packed_path(name)
    try:
        data = packed.read_bytes()
    except FileNotFoundError:
        raise MissingComponent(
            f"the conformance component {name!r} is not in this package ({packed} is "
            "missing); in a source checkout, build it with `python guests/build.py`") from None
    target = directory / f"{name}.wasm"
    target.write_bytes(lzma.decompress(data))
    return target
