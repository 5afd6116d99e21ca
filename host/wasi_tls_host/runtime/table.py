"""The per-store resource table.

Every resource handed to the guest lives here under an integer `rep`, tagged
with its resource type. A resource may have a parent (a pollable belongs to
the stream it watches; TLS streams belong to their connection): a parent
cannot be removed while it still has children, which is how the host keeps a
pollable from outliving what it polls.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class TableError(Exception):
    """A handle that does not fit the table; the call layer turns it into a trap."""


class NotPresent(TableError):
    pass


class WrongType(TableError):
    pass


class HasChildren(TableError):
    pass


@dataclass
class _Entry:
    obj: object
    type_id: int
    parent: int | None
    children: set[int] = field(default_factory=set)


class ResourceTable:
    def __init__(self) -> None:
        self._entries: dict[int, _Entry] = {}
        self._rep_by_object: dict[int, int] = {}
        self._next_rep = 1

    def __len__(self) -> int:
        return len(self._entries)

    def push(self, obj: object, type_id: int, parent: object | None = None) -> int:
        """Store `obj`; `parent`, if given, must already be in the table."""
        parent_rep = None
        if parent is not None:
            parent_rep = self.rep_of(parent)
            self._entries[parent_rep].children.add(self._next_rep)
        rep = self._next_rep
        self._next_rep += 1
        self._entries[rep] = _Entry(obj, type_id, parent_rep)
        self._rep_by_object[id(obj)] = rep
        return rep

    def rep_of(self, obj: object) -> int:
        rep = self._rep_by_object.get(id(obj))
        if rep is None:
            raise NotPresent(f"{type(obj).__name__} is not in the resource table")
        return rep

    def get(self, rep: int, type_id: int) -> object:
        return self._entry(rep, type_id).obj

    def delete(self, rep: int, type_id: int) -> object:
        """Remove and return the resource; refuses while children remain."""
        entry = self._entry(rep, type_id)
        if entry.children:
            raise HasChildren(
                f"resource {rep} still has {len(entry.children)} child resource(s)"
            )
        del self._entries[rep]
        self._rep_by_object.pop(id(entry.obj), None)
        if entry.parent is not None and entry.parent in self._entries:
            self._entries[entry.parent].children.discard(rep)
        return entry.obj

    def drain(self) -> list[object]:
        """Remove everything, children first; used when the store ends."""
        objects = []
        for rep in sorted(self._entries, reverse=True):
            objects.append(self._entries[rep].obj)
        self._entries.clear()
        self._rep_by_object.clear()
        return objects

    def _entry(self, rep: int, type_id: int) -> _Entry:
        entry = self._entries.get(rep)
        if entry is None:
            raise NotPresent(f"unknown handle {rep}")
        if entry.type_id != type_id:
            raise WrongType(
                f"handle {rep} has resource type {entry.type_id}, expected {type_id}"
            )
        return entry
