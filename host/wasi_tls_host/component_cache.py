"""Compiled components on disk, loaded with `Component.deserialize_file`.

wasmtime's own cache (`Config.cache`) hashes the whole component on every
load before it finds the compiled code (about a third of a second for a
componentize-py guest). This cache instead names each compiled entry by
what makes it valid: the SHA-256 of the component's bytes, of the wasmtime
library that compiled it and of the engine's settings; each file is hashed
once per state (an index remembers it). Loading one is a `stat` and an
`mmap`. Entries beyond 1 GiB in all go, least recently used first.

Safety: deserializing bytes that wasmtime did not produce is undefined
behaviour, so an entry is only ever loaded when it is provably the file this
cache wrote. Each entry has a record of the SHA-256 of its bytes and of the
file's identity when it was written and verified (device, inode, size,
modification and change times). The change time cannot be set back by a
process, so any later write to the entry changes it; a mismatch means the
entry is hashed again, and if the hash differs it is rebuilt, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import wasmtime
import wasmtime._ffi
from wasmtime import component as wc

from . import log

#: Total size of the compiled entries kept (wasmtime's own cache defaults
#: to the same); the least recently used go first. Each is tens of MB.
MAX_BYTES = 1 << 30
#: A compile still running after this long is worth a line: a componentize-py
#: guest takes about 5 s, in silence otherwise.
SLOW_COMPILE_S = 1.0

def compile_file(engine: wasmtime.Engine, path: str, *, cached: bool) -> wc.Component:
    """Compile the component at `path`; one that is still compiling after
    SLOW_COMPILE_S is noted (INFO) on the `wasi_tls_host` logger."""
    note = ("compiling %s (cached for next time)" if cached
            else "compiling %s (the cache is off: every run compiles)")
    timer = threading.Timer(SLOW_COMPILE_S, lambda: log.logger().info(note, path))
    timer.daemon = True
    timer.start()
    try:
        return wc.Component.from_file(engine, path)
    finally:
        timer.cancel()


def default_directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "wasi-tls-host" / "components"


def _identity(stat: os.stat_result) -> list[int]:
    return [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 22):
            digest.update(chunk)  # releases the GIL for large chunks
    return digest.hexdigest()


class ComponentCache:
    """One directory of compiled components for one engine configuration."""

    def __init__(self, engine: wasmtime.Engine, settings: str,
                 directory: str | os.PathLike | None = None):
        self.engine = engine
        self.directory = Path(directory) if directory is not None else default_directory()
        self.settings = settings
        self._key_prefix: str | None = None

    def load(self, path: str | os.PathLike) -> wc.Component:
        """The compiled component for the file at `path` (compiling on a miss).

        Raises wasmtime.WasmtimeError for a file that is not a valid component.
        """
        path = os.fspath(path)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError:
            return compile_file(self.engine, path, cached=False)  # no cache, no harm
        if self._key_prefix is None:
            # The compiler is named by its native library's content, so every
            # virtualenv with the same wasmtime build shares the entries.
            library = wasmtime._ffi.dll._name
            self._key_prefix = f"{self._source_digest(library)}\n{self.settings}"
        key = hashlib.sha256(
            f"{self._source_digest(path)}\n{self._key_prefix}".encode()).hexdigest()
        entry = self.directory / f"{key}.cwasm"
        record = entry.with_suffix(".json")
        if self._verified(entry, record):
            try:
                component = wc.Component.deserialize_file(self.engine, str(entry))
            except wasmtime.WasmtimeError:
                pass  # made by another wasmtime or engine: rebuild below
            else:
                try:
                    os.utime(record)  # recently used
                except OSError:
                    pass  # a read-only cache still serves its entries
                return component
        component = compile_file(self.engine, path, cached=True)
        self._store(component, entry, record)
        return component

    def _source_digest(self, path: str) -> str:
        index = self.directory / "sources.json"
        try:
            known = json.loads(index.read_text())
        except (OSError, ValueError):
            known = {}
        real = os.path.realpath(path)
        identity = _identity(os.stat(real))
        cached = known.get(real)
        if cached and cached[0] == identity:
            return cached[1]
        digest = _sha256(Path(real))
        known = {name: value for name, value in known.items() if os.path.exists(name)}
        known[real] = [identity, digest]
        try:
            self._write_atomically(index, json.dumps(known).encode())
        except OSError:
            pass  # hashed again next time
        return digest

    def _verified(self, entry: Path, record: Path) -> bool:
        """Whether `entry` is exactly what this cache wrote (see the module doc)."""
        try:
            written = json.loads(record.read_text())
            identity = _identity(os.stat(entry))
        except (OSError, ValueError):
            return False
        if identity == written.get("identity"):
            return True
        if _sha256(entry) != written.get("sha256"):
            return False
        written["identity"] = identity  # moved or copied, still intact: note where it is now
        try:
            self._write_atomically(record, json.dumps(written).encode())
        except OSError:
            pass  # hashed again next time
        return True

    def _store(self, component: wc.Component, entry: Path, record: Path) -> None:
        try:
            compiled = component.serialize()
            self._write_atomically(entry, compiled)
            written = {"sha256": hashlib.sha256(compiled).hexdigest(),
                       "identity": _identity(os.stat(entry))}
            self._write_atomically(record, json.dumps(written).encode())
            self._prune()
        except OSError:
            pass  # a cache that cannot be written only costs the next start-up

    def _write_atomically(self, target: Path, data: bytes | bytearray) -> None:
        import tempfile  # only a miss writes; a run from the cache need not import it

        descriptor, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
            os.replace(temporary, target)
        except BaseException:
            os.unlink(temporary)
            raise

    def _prune(self) -> None:
        """Drop the least recently used entries beyond `MAX_BYTES` in all."""
        records = [r for r in self.directory.glob("*.json") if r.name != "sources.json"]
        records.sort(key=lambda record: record.stat().st_mtime, reverse=True)
        total = 0
        for record in records:
            entry = record.with_suffix(".cwasm")
            try:
                total += entry.stat().st_size
            except OSError:
                pass
            if total > MAX_BYTES and record is not records[0]:  # keep the newest
                entry.unlink(missing_ok=True)
                record.unlink(missing_ok=True)
