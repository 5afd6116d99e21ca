"""The resource table: typed handles, parent/child links, typed errors."""

import pytest

from wasi_tls_host.runtime.table import HasChildren, NotPresent, ResourceTable, WrongType

STREAM, POLLABLE = 3, 1


class Thing:
    pass


def test_push_get_delete_roundtrip():
    table = ResourceTable()
    thing = Thing()
    rep = table.push(thing, STREAM)
    assert table.get(rep, STREAM) is thing
    assert table.rep_of(thing) == rep
    assert table.delete(rep, STREAM) is thing
    assert len(table) == 0


def test_unknown_handle_is_not_present():
    table = ResourceTable()
    with pytest.raises(NotPresent, match="unknown handle 42"):
        table.get(42, STREAM)


def test_wrong_type_names_both_types():
    table = ResourceTable()
    rep = table.push(Thing(), STREAM)
    with pytest.raises(WrongType, match="resource type 3, expected 1"):
        table.get(rep, POLLABLE)


def test_parent_cannot_be_deleted_while_child_lives():
    table = ResourceTable()
    stream = Thing()
    stream_rep = table.push(stream, STREAM)
    pollable_rep = table.push(Thing(), POLLABLE, parent=stream)
    with pytest.raises(HasChildren):
        table.delete(stream_rep, STREAM)
    table.delete(pollable_rep, POLLABLE)
    table.delete(stream_rep, STREAM)
    assert len(table) == 0


def test_deleted_handle_is_gone_and_reps_are_not_reused():
    table = ResourceTable()
    first = table.push(Thing(), STREAM)
    table.delete(first, STREAM)
    with pytest.raises(NotPresent):
        table.delete(first, STREAM)
    assert table.push(Thing(), STREAM) != first


def test_parent_must_be_in_the_table():
    table = ResourceTable()
    with pytest.raises(NotPresent):
        table.push(Thing(), POLLABLE, parent=Thing())


def test_drain_returns_children_before_parents():
    table = ResourceTable()
    parent = Thing()
    table.push(parent, STREAM)
    child = Thing()
    table.push(child, POLLABLE, parent=parent)
    assert table.drain() == [child, parent]
    assert len(table) == 0
