"""The conformance guests as the package ships them.

`guests/build.py` builds each app under `guests/conformance/` with
componentize-py and packs it here as `components/NAME.wasm.xz` (an 18 MB
component is about 4 MB compressed). The runner unpacks a component on first
use into a cache directory, under a name that carries the packed file's
digest, so a rebuilt component is never confused with an old one and an
installed wheel needs neither componentize-py nor a source checkout.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import tempfile
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


def cache_directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wasi-tls-host" / "conformance"


def unpack(name: str) -> Path:
    """The component `name` as a .wasm file, unpacked into the cache if needed."""
    packed = packed_path(name)
    try:
        data = packed.read_bytes()
    except FileNotFoundError:
        raise MissingComponent(
            f"the conformance component {name!r} is not in this package ({packed} is "
            "missing); in a source checkout, build it with `python guests/build.py`") from None
    digest = hashlib.sha256(data).hexdigest()[:16]
    for directory in (cache_directory(), Path(tempfile.gettempdir()) / "wasi-tls-host-conformance"):
        target = directory / f"{name}-{digest}.wasm"
        if target.is_file():
            return target
        try:
            directory.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
            partial.write_bytes(lzma.decompress(data))
            os.replace(partial, target)
            return target
        except OSError:
            continue  # an unwritable cache: try the next place
    raise MissingComponent(f"cannot unpack the conformance component {name!r}: no writable "
                           f"cache directory ({cache_directory()}, {tempfile.gettempdir()})")
