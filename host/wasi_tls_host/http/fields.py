"""The `fields` resource: HTTP headers and trailers, with wasi:http's rules.

Names compare case-insensitively and keep the case they were given in.
Fields a guest builds (constructor, `from-list`, `clone`) are mutable;
fields the host hands out (a received message's headers, trailers, or a
request's headers once it is built) are immutable: `set`, `append` and
`delete` fail with `header-error.immutable`. A guest cannot name a header
the host owns (`FORBIDDEN`: framing, connection management and `host`,
which the host derives from the authority): that fails with `forbidden`,
and such headers are dropped from what the host receives, as wasmtime does.
A syntactically bad name or value is `invalid-syntax`. The total size of
one `fields` is bounded, so a guest cannot grow host memory without end
through it; going past the bound is a trap, as in wasmtime.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..runtime.errors import ErrorValue, Trap
from ..runtime.values import Case

#: Header names a guest may not set, nor see in what the host received.
FORBIDDEN = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "proxy-connection", "transfer-encoding", "upgrade", "host", "http2-settings",
})
#: Most bytes of names and values (and a little per entry) one `fields` holds.
MAX_SIZE = 128 * 1024
_ENTRY_OVERHEAD = 32

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE_BYTE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def valid_name(name: str) -> bool:
    return name.isascii() and _TOKEN.fullmatch(name.encode()) is not None


def valid_value(value: bytes) -> bool:
    return _BAD_VALUE_BYTE.search(value) is None


def _size(name: str, value: bytes) -> int:
    return len(name) + len(value) + _ENTRY_OVERHEAD


def header_error(case: str) -> ErrorValue:
    return ErrorValue(Case(case))


class Fields:
    """An ordered list of (name, value) entries; see the module doc."""

    def __init__(self, entries: Iterable[tuple[str, bytes]] = (), *, mutable: bool = True):
        self._entries: list[tuple[str, bytes]] = list(entries)
        self.mutable = mutable
        self._bytes = sum(_size(name, value) for name, value in self._entries)

    @classmethod
    def from_guest(cls, entries: Iterable[tuple[str, bytes]]) -> Fields:
        """`from-list`: every entry checked as `append` checks it."""
        fields = cls()
        for name, value in entries:
            fields.append(name, value)
        return fields

    @classmethod
    def received(cls, entries: Iterable[tuple[str, bytes]]) -> Fields:
        """What the host received from a peer: immutable, forbidden names dropped."""
        return cls(((name, value) for name, value in entries
                    if name.lower() not in FORBIDDEN), mutable=False)

    # -- reading ------------------------------------------------------------------
    def get(self, name: str) -> list[bytes]:
        key = name.lower()
        return [value for entry_name, value in self._entries if entry_name.lower() == key]

    def has(self, name: str) -> bool:
        key = name.lower()
        return any(entry_name.lower() == key for entry_name, _ in self._entries)

    def entries(self) -> list[tuple[str, bytes]]:
        return list(self._entries)

    def clone(self) -> Fields:
        return Fields(self._entries)

    def frozen(self) -> Fields:
        """An immutable copy (what a request or response keeps of its headers)."""
        return Fields(self._entries, mutable=False)

    def __len__(self) -> int:
        return len(self._entries)

    # -- writing ------------------------------------------------------------------
    def _check_name(self, name: str) -> str:
        if not valid_name(name):
            raise header_error("invalid-syntax")
        key = name.lower()
        if key in FORBIDDEN:
            raise header_error("forbidden")
        if not self.mutable:
            raise header_error("immutable")
        return key

    def _grow(self, added: int) -> None:
        if self._bytes + added > MAX_SIZE:
            raise Trap(f"fields would hold more than the host's limit of {MAX_SIZE} bytes")
        self._bytes += added

    def set(self, name: str, values: list[bytes]) -> None:
        key = self._check_name(name)
        if not all(valid_value(value) for value in values):
            raise header_error("invalid-syntax")
        self._remove(key)
        self._grow(sum(_size(name, value) for value in values))
        self._entries.extend((name, value) for value in values)

    def append(self, name: str, value: bytes) -> None:
        self._check_name(name)
        if not valid_value(value):
            raise header_error("invalid-syntax")
        self._grow(_size(name, value))
        self._entries.append((name, value))

    def delete(self, name: str) -> None:
        self._remove(self._check_name(name))

    def _remove(self, key: str) -> None:
        kept = [entry for entry in self._entries if entry[0].lower() != key]
        self._bytes -= sum(_size(name, value) for name, value in self._entries
                           if name.lower() == key)
        self._entries = kept

    # -- the wire -----------------------------------------------------------------
    def wire(self) -> list[tuple[bytes, bytes]]:
        """The entries as h11 sends them: a value's surrounding blanks are
        not part of it (RFC 9110 §5.5)."""
        return [(name.encode(), value.strip(b" \t")) for name, value in self._entries]
