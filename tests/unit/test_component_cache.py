"""The compiled-component cache: a hit loads without compiling, and an entry
that is not exactly what the cache wrote is rebuilt, never loaded."""

from __future__ import annotations

import os

import pytest
import wasmtime
from wasmtime import component as wc

from wasi_tls_host import component_cache
from wasi_tls_host.component_cache import ComponentCache

COMPONENT = wasmtime.wat2wasm("""
    (component
      (core module $m (func (export "answer") (result i32) i32.const 42))
      (core instance $i (instantiate $m))
      (func (export "answer") (result s32) (canon lift (core func $i "answer"))))""")


@pytest.fixture
def engine():
    return wasmtime.Engine()


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "answer.wasm"
    path.write_bytes(COMPONENT)
    return str(path)


@pytest.fixture
def compiles(monkeypatch):
    """Counts real compilations."""
    count = []
    compile_file = wc.Component.from_file

    def counting(engine, path):
        count.append(path)
        return compile_file(engine, path)
    monkeypatch.setattr(wc.Component, "from_file", staticmethod(counting))
    return count


def answer(engine, component) -> int:
    store = wasmtime.Store(engine)
    instance = wc.Linker(engine).instantiate(store, component)
    return instance.get_func(store, "answer")(store)


def entry_of(directory):
    (entry,) = directory.glob("*.cwasm")
    return entry


def test_a_hit_loads_without_compiling(engine, source, tmp_path, compiles):
    cache_dir = tmp_path / "cache"
    assert answer(engine, ComponentCache(engine, "test", cache_dir).load(source)) == 42
    assert len(compiles) == 1
    assert answer(engine, ComponentCache(engine, "test", cache_dir).load(source)) == 42
    assert len(compiles) == 1


@pytest.mark.parametrize("damage", ["flipped bytes, same size and times", "truncated",
                                    "emptied record"])
def test_a_damaged_entry_is_rebuilt_not_loaded(engine, source, tmp_path, compiles, damage):
    cache_dir = tmp_path / "cache"
    ComponentCache(engine, "test", cache_dir).load(source)
    entry = entry_of(cache_dir)
    stat = os.stat(entry)
    if damage == "truncated":
        with open(entry, "r+b") as file:
            file.truncate(stat.st_size // 2)
    elif damage == "emptied record":
        entry.with_suffix(".json").write_text("")
    else:
        data = bytearray(entry.read_bytes())
        middle = len(data) // 2
        data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
        entry.write_bytes(bytes(data))
        os.utime(entry, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # hide it from mtime
    assert answer(engine, ComponentCache(engine, "test", cache_dir).load(source)) == 42
    assert len(compiles) == 2  # rebuilt
    ComponentCache(engine, "test", cache_dir).load(source)
    assert len(compiles) == 2  # and the rebuilt entry is trusted again


def test_a_copied_entry_that_is_intact_is_still_used(engine, source, tmp_path, compiles):
    cache_dir = tmp_path / "cache"
    ComponentCache(engine, "test", cache_dir).load(source)
    entry = entry_of(cache_dir)
    data = entry.read_bytes()
    entry.unlink()
    entry.write_bytes(data)  # another inode, same bytes
    ComponentCache(engine, "test", cache_dir).load(source)
    assert len(compiles) == 1


def test_other_settings_or_another_component_are_other_entries(engine, source, tmp_path,
                                                               compiles):
    cache_dir = tmp_path / "cache"
    ComponentCache(engine, "test", cache_dir).load(source)
    ComponentCache(engine, "other settings", cache_dir).load(source)
    assert len(compiles) == 2
    with open(source, "wb") as file:
        file.write(wasmtime.wat2wasm("(component)"))
    ComponentCache(engine, "test", cache_dir).load(source)
    assert len(compiles) == 3
    assert len(list(cache_dir.glob("*.cwasm"))) == 3


def test_an_unwritable_cache_only_costs_compiling(engine, source, tmp_path, compiles):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    cache = ComponentCache(engine, "test", blocked / "cache")
    assert answer(engine, cache.load(source)) == 42
    assert answer(engine, cache.load(source)) == 42
    assert len(compiles) == 2


def test_a_cache_that_can_no_longer_be_written_still_serves_its_entries(
        engine, source, tmp_path, compiles, monkeypatch):
    """A cache made read-only after it was filled (a shared or packaged one):
    noting an entry's use, or where a copied entry now is, may fail; the hit
    must not."""
    cache_dir = tmp_path / "cache"
    ComponentCache(engine, "test", cache_dir).load(source)
    entry = entry_of(cache_dir)
    data = entry.read_bytes()
    entry.unlink()
    entry.write_bytes(data)  # moved: the cache wants to rewrite its record

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(component_cache.os, "utime", refuse)
    monkeypatch.setattr(ComponentCache, "_write_atomically", refuse)
    assert answer(engine, ComponentCache(engine, "test", cache_dir).load(source)) == 42
    assert len(compiles) == 1


def test_the_least_recently_used_entries_go_beyond_the_size_bound(engine, tmp_path, compiles,
                                                                   monkeypatch):
    cache_dir = tmp_path / "cache"
    first, second = tmp_path / "first.wasm", tmp_path / "second.wasm"
    first.write_bytes(COMPONENT)
    second.write_bytes(wasmtime.wat2wasm("(component)"))
    cache = ComponentCache(engine, "test", cache_dir)
    cache.load(str(first))
    monkeypatch.setattr(component_cache, "MAX_BYTES", entry_of(cache_dir).stat().st_size)
    os.utime(entry_of(cache_dir).with_suffix(".json"), (1, 1))  # long unused
    cache.load(str(second))  # room for one entry: the first goes
    cache.load(str(second))
    assert len(compiles) == 2
    cache.load(str(first))  # compiled again; now the second goes
    assert len(compiles) == 3
    assert len(list(cache_dir.glob("*.cwasm"))) == 1


def test_entries_do_not_depend_on_where_wasmtime_is_installed(engine, source, tmp_path,
                                                               compiles, monkeypatch):
    """Two virtualenvs with the same wasmtime build share the compiled code."""
    cache_dir = tmp_path / "cache"
    ComponentCache(engine, "test", cache_dir).load(source)
    library = wasmtime._ffi.dll._name
    elsewhere = tmp_path / "other-venv" / os.path.basename(library)
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(open(library, "rb").read())
    monkeypatch.setattr(wasmtime._ffi.dll, "_name", str(elsewhere))
    ComponentCache(engine, "test", cache_dir).load(source)
    assert len(compiles) == 1
