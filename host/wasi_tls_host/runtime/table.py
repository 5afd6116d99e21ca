"""The per-store resource table.

Every resource handed to the guest lives here under an integer `rep`, tagged
with its resource type. A resource may have a parent (a pollable belongs to
the stream it watches; TLS streams belong to their connection): a parent
cannot be removed while it still has children, which is how the host keeps a
pollable from outliving what it polls.
"""

from __future__ import annotations


class TableError(Exception):
    """A handle that does not fit the table; the call layer turns it into a trap."""


class NotPresent(TableError):
    pass


class WrongType(TableError):
    pass


class HasChildren(TableError):
    pass


class ResourceTable:
    """Entries are plain (object, type id, parent rep) tuples: every host call
    that returns or drops a resource goes through `push` and `delete`. Child
    sets exist only for resources that have children."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[object, int, int | None]] = {}
        self._children: dict[int, set[int]] = {}
        self._rep_by_object: dict[int, int] = {}
        self._next_rep = 1

    def __len__(self) -> int:
        return len(self._entries)

    def push(self, obj: object, type_id: int, parent: object | None = None) -> int:
        """Store `obj`; `parent`, if given, must already be in the table."""
        rep = self._next_rep
        self._next_rep = rep + 1
        parent_rep = None
        if parent is not None:
            parent_rep = self.rep_of(parent)
            self._children.setdefault(parent_rep, set()).add(rep)
        self._entries[rep] = (obj, type_id, parent_rep)
        self._rep_by_object[id(obj)] = rep
        return rep

    def rep_of(self, obj: object) -> int:
        rep = self._rep_by_object.get(id(obj))
        if rep is None:
            raise NotPresent(f"{type(obj).__name__} is not in the resource table")
        return rep

    def get(self, rep: int, type_id: int) -> object:
        return self._entry(rep, type_id)[0]

    def delete(self, rep: int, type_id: int) -> object:
        """Remove and return the resource; refuses while children remain."""
        entry = self._entries.get(rep)
        if entry is None or entry[1] != type_id:
            entry = self._entry(rep, type_id)  # raises, naming what is wrong
        obj, _, parent = entry
        children = self._children.get(rep)
        if children is not None:
            if children:
                raise HasChildren(f"resource {rep} still has {len(children)} child resource(s)")
            del self._children[rep]
        del self._entries[rep]
        self._rep_by_object.pop(id(obj), None)
        if parent is not None:
            siblings = self._children.get(parent)
            if siblings is not None:
                siblings.discard(rep)
        return obj

    def drain(self) -> list[object]:
        """Remove everything, children first; used when the store ends."""
        objects = [self._entries[rep][0] for rep in sorted(self._entries, reverse=True)]
        self._entries.clear()
        self._children.clear()
        self._rep_by_object.clear()
        return objects

    def _entry(self, rep: int, type_id: int) -> tuple[object, int, int | None]:
        entry = self._entries.get(rep)
        if entry is None:
            raise NotPresent(f"unknown handle {rep}")
        if entry[1] != type_id:
            raise WrongType(f"handle {rep} has resource type {entry[1]}, expected {type_id}")
        return entry
