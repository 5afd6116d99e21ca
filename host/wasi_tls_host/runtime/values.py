"""How WIT values look on the Python side of the host.

The encoding is fixed per WIT type, never guessed from the Python value:

| WIT                | Python                                                  |
|--------------------|---------------------------------------------------------|
| bool, ints, floats | bool, int, float                                        |
| string / char      | str                                                     |
| list<u8>           | bytes (moved in bulk)                                   |
| list<T>            | list                                                    |
| tuple<...>         | tuple                                                   |
| record             | dict keyed by the WIT field names                      |
| enum               | str (the case name)                                     |
| flags              | set of str                                              |
| variant            | Case(tag, payload)                                      |
| option<T>          | None for none; Some(x) or a bare x for some            |
| result<T, E>       | Ok(x) / Err(e); a bare value is ok                      |
| own<R> result      | the host object, or Child(obj, parent)                  |
| own/borrow<R> arg  | the host object looked up in the table                  |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple


@dataclass(frozen=True)
class Case:
    tag: str
    payload: Any = None


@dataclass(frozen=True)
class Some:
    value: Any


@dataclass(frozen=True)
class Ok:
    value: Any = None


@dataclass(frozen=True)
class Err:
    value: Any = None


class Child(NamedTuple):
    """A new resource that must not outlive `parent` (already in the table)."""

    obj: Any
    parent: Any
