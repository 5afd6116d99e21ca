"""The hosts the tiny guest runs under inside the bench's own process, all on
one engine configured like the project's `Host`, all reading the guest's
stdin from /dev/zero:

* `project`: the project's call layer (`add_to_linker` with a `WasiCtx`);
* `floor`: the least a Python host can do through ctypes: one ctypes
  callback per function that writes its result cells directly, and a dict
  as its resource table;
* `ceiling`: the same functions as C callbacks (ceiling.c and
  listu8-wall/value_callbacks.c), added through the same C API calls: the
  most any C-API embedder can reach;
* `typed`: wasmtime's own WASI (`Linker.add_wasip2`), its typed Rust path.

`run_tiny` links a fresh linker and store each time, instantiates the tiny
guest and times only its `run` call.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from ctypes import byref, c_size_t, c_uint8, c_uint32, c_uint64, c_void_p
from pathlib import Path

import tiny_guest
import wasmtime
from wasmtime import _ffi as ffi
from wasmtime import component as wc

from wasi_tls_host import Host, HostConfig, WasiCtx, add_to_linker

HERE = Path(__file__).resolve().parent
LIBWASMTIME = Path(ffi.filename)
ZERO_DEVICE = "/dev/zero"

#: Our own handle on wasmtime-py's library: the same loaded object, but
#: function objects whose argument types (plain addresses) are ours.
_lib = ctypes.CDLL(str(LIBWASMTIME))


def _c_function(name: str, restype: object, *argtypes: object) -> ctypes._CFuncPtr:
    function = getattr(_lib, name)
    function.restype = restype
    function.argtypes = argtypes
    return function


_add_func = _c_function("wasmtime_component_linker_instance_add_func", c_void_p,
                        c_void_p, ctypes.c_char_p, c_size_t, c_void_p, c_void_p, c_void_p)
_add_resource = _c_function("wasmtime_component_linker_instance_add_resource", c_void_p,
                            c_void_p, ctypes.c_char_p, c_size_t, c_void_p, c_void_p, c_void_p,
                            c_void_p)
_resource_type_new_host = _c_function("wasmtime_component_resource_type_new_host", c_void_p,
                                      c_uint32)
_resource_type_delete = _c_function("wasmtime_component_resource_type_delete", None, c_void_p)
_resource_host_new = _c_function("wasmtime_component_resource_host_new", c_void_p,
                                 ctypes.c_bool, c_uint32, c_uint32)
_resource_host_delete = _c_function("wasmtime_component_resource_host_delete", None, c_void_p)
_resource_host_to_any = _c_function("wasmtime_component_resource_host_to_any", c_void_p,
                                    c_void_p, c_void_p, c_void_p)
_resource_any_to_host = _c_function("wasmtime_component_resource_any_to_host", c_void_p,
                                    c_void_p, c_void_p, c_void_p)
_vallist_new_uninit = _c_function("wasmtime_component_vallist_new_uninit", None,
                                  c_void_p, c_size_t)
_val_new = _c_function("wasmtime_component_val_new", c_void_p, c_void_p)
_byte_vec_new = _c_function("wasm_byte_vec_new", None, c_void_p, c_size_t, ctypes.c_char_p)

#: The same library through ctypes.PyDLL, whose calls keep the GIL: a guest
#: entered this way re-enters Python from its host calls without taking the
#: GIL again (the what-if of bench/profile_calls.py).
_func_call_keeping_gil = ctypes.PyDLL(str(LIBWASMTIME)).wasmtime_component_func_call
_func_call_keeping_gil.restype = c_void_p
_func_call_keeping_gil.argtypes = (c_void_p, c_void_p, c_void_p, c_size_t, c_void_p, c_size_t)

#: wasmtime_component_func_callback_t and ..._resource_destructor_t, with
#: every pointer as a plain address: ctypes builds no pointer objects per call.
FuncCallback = ctypes.CFUNCTYPE(c_size_t, c_void_p, c_void_p, c_void_p, c_void_p, c_size_t,
                                c_void_p, c_size_t)
Destructor = ctypes.CFUNCTYPE(c_size_t, c_void_p, c_void_p, c_uint32)

CELL = ctypes.sizeof(ffi.wasmtime_component_val_t)
K_U8 = ffi.WASMTIME_COMPONENT_U8.value
K_U64 = ffi.WASMTIME_COMPONENT_U64.value
K_LIST = ffi.WASMTIME_COMPONENT_LIST.value
K_VARIANT = ffi.WASMTIME_COMPONENT_VARIANT.value
K_RESULT = ffi.WASMTIME_COMPONENT_RESULT.value
K_RESOURCE = ffi.WASMTIME_COMPONENT_RESOURCE.value
#: The resource type ids, as listu8-wall/value_callbacks.h has them.
POLLABLE, IO_ERROR, INPUT_STREAM = 1, 2, 3
#: A cell holding a scalar or a pointer: the kind byte, padding, the value.
_SCALAR_CELL = struct.Struct("<B7xQ")
#: A result cell: the kind byte, then is_ok and the payload's pointer.
_RESULT_CELL = struct.Struct("<B7x?7xQ")


def _check(error: int | None) -> None:
    if error:
        raise wasmtime.WasmtimeError._from_ptr(
            ctypes.cast(error, ctypes.POINTER(ffi.wasmtime_error_t)))


class RawImports:
    """The tiny guest's imports as raw callbacks (FuncCallback / Destructor
    objects), defined in a linker with the C API's own calls."""

    now: object
    subscribe_duration: object
    get_stdin: object
    blocking_read: object
    drop_pollable: object
    drop_input_stream: object
    drop_error: object

    def define(self, linker: wc.Linker) -> None:
        version = tiny_guest.WASI
        types = {type_id: _resource_type_new_host(type_id)
                 for type_id in (POLLABLE, IO_ERROR, INPUT_STREAM)}
        pollable = ("pollable", types[POLLABLE], self.drop_pollable)
        error = ("error", types[IO_ERROR], self.drop_error)
        input_stream = ("input-stream", types[INPUT_STREAM], self.drop_input_stream)
        interfaces = {
            "wasi:io/poll": ([pollable], {}),
            "wasi:clocks/monotonic-clock": (
                [pollable], {"now": self.now, "subscribe-duration": self.subscribe_duration}),
            "wasi:io/error": ([error], {}),
            "wasi:io/streams": (
                [error, input_stream],
                {"[method]input-stream.blocking-read": self.blocking_read}),
            "wasi:cli/stdin": ([input_stream], {"get-stdin": self.get_stdin}),
        }
        try:
            with linker.root() as root:
                for interface, (resources, functions) in interfaces.items():
                    with root.add_instance(f"{interface}@{version}") as instance:
                        for name, resource_type, destructor in resources:
                            encoded = name.encode()
                            _check(_add_resource(instance.ptr(), encoded, len(encoded),
                                                 resource_type,
                                                 ctypes.cast(destructor, c_void_p), None, None))
                        for name, callback in functions.items():
                            encoded = name.encode()
                            _check(_add_func(instance.ptr(), encoded, len(encoded),
                                             ctypes.cast(callback, c_void_p), None, None))
        finally:
            for resource_type in types.values():
                _resource_type_delete(resource_type)


class FloorImports(RawImports):
    """The Python floor: what any Python host must at least do per call."""

    def __init__(self) -> None:
        # Each handle's object, as a host's resource table would keep it.
        objects: dict[int, object] = {}
        reps = iter(range(1, 1 << 32))
        zero = os.open(ZERO_DEVICE, os.O_RDONLY)
        now_ns = time.monotonic_ns
        pack_scalar = _SCALAR_CELL.pack
        pack_result = _RESULT_CELL.pack
        memmove = ctypes.memmove
        u8_kinds = bytes((K_U8,))

        def new_handle(context: int, obj: object, type_id: int, results: int) -> int:
            rep = next(reps)
            objects[rep] = obj
            host = _resource_host_new(True, rep, type_id)
            handle = c_void_p()
            error = _resource_host_to_any(context, host, byref(handle))
            _resource_host_delete(host)
            if error:
                return error
            memmove(results, pack_scalar(K_RESOURCE, handle.value), CELL // 2)
            return 0

        @FuncCallback
        def now(data, context, ty, args, nargs, results, nresults):  # noqa: ANN001, ANN202
            memmove(results, pack_scalar(K_U64, now_ns()), CELL // 2)
            return 0

        @FuncCallback
        def subscribe_duration(data, context, ty, args, nargs, results, nresults):  # noqa: ANN001, ANN202
            deadline = now_ns() + c_uint64.from_address(args + 8).value
            return new_handle(context, deadline, POLLABLE, results)

        @FuncCallback
        def get_stdin(data, context, ty, args, nargs, results, nresults):  # noqa: ANN001, ANN202
            return new_handle(context, zero, INPUT_STREAM, results)

        @FuncCallback
        def blocking_read(data, context, ty, args, nargs, results, nresults):  # noqa: ANN001, ANN202
            # Resolving the borrowed handle is what ends the borrow.
            host = c_void_p()
            error = _resource_any_to_host(context, c_void_p.from_address(args + 8).value,
                                          byref(host))
            if error:
                return error
            _resource_host_delete(host)
            payload = os.read(zero, c_uint64.from_address(args + CELL + 8).value)
            cell = (c_uint8 * CELL)()
            if payload:
                length = len(payload)
                _vallist_new_uninit(ctypes.addressof(cell) + 8, length)
                cells = bytearray(length * CELL)
                cells[0::CELL] = u8_kinds * length
                cells[8::CELL] = payload
                memmove(c_void_p.from_buffer(cell, 16).value,
                        (ctypes.c_char * len(cells)).from_buffer(cells), len(cells))
                cell[0] = K_LIST
            else:
                _byte_vec_new(ctypes.addressof(cell) + 8, len(b"closed"), b"closed")
                cell[0] = K_VARIANT
            memmove(results, pack_result(K_RESULT, bool(payload), _val_new(cell)), 24)
            return 0

        @Destructor
        def drop(data, context, rep):  # noqa: ANN001, ANN202
            del objects[rep]
            return 0

        self.now = now
        self.subscribe_duration = subscribe_duration
        self.get_stdin = get_stdin
        self.blocking_read = blocking_read
        self.drop_pollable = self.drop_input_stream = self.drop_error = drop


class CeilingImports(RawImports):
    """The C ceiling: ceiling.c and listu8-wall/value_callbacks.c, compiled
    now against the wheel's libwasmtime and loaded into this process."""

    SOURCES = (HERE / "ceiling.c", HERE / "listu8-wall" / "value_callbacks.c")

    def __init__(self, build_dir: Path) -> None:
        library = build_dir / "libceiling.so"
        newest_source = max(path.stat().st_mtime for path in HERE.rglob("*.[ch]"))
        if not library.exists() or library.stat().st_mtime < newest_source:
            if shutil.which("gcc") is None:
                raise RuntimeError("the value-path ceiling is C compiled now: install gcc")
            build_dir.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["gcc", "-O2", "-shared", "-fPIC", "-Wall", "-Wno-unused-parameter",
                 "-I", str(HERE), "-o", str(library), *map(str, self.SOURCES),
                 "-L", str(LIBWASMTIME.parent), f"-l:{LIBWASMTIME.name}",
                 f"-Wl,-rpath,{LIBWASMTIME.parent}"],
                check=True)
        self.library = ctypes.CDLL(str(library))
        ctypes.c_int.in_dll(self.library, "value_input_fd").value = os.open(
            ZERO_DEVICE, os.O_RDONLY)
        self.now = FuncCallback(("ceiling_now", self.library))
        self.subscribe_duration = FuncCallback(("ceiling_subscribe_duration", self.library))
        self.get_stdin = FuncCallback(("value_get_stdin", self.library))
        self.blocking_read = FuncCallback(("value_blocking_read", self.library))
        self.drop_pollable = self.drop_input_stream = self.drop_error = Destructor(
            ("value_forget", self.library))

    def read_split_ns(self) -> tuple[int, int, int]:
        """Nanoseconds blocking-read has spent so far in read(2), in
        wasmtime_component_vallist_new_uninit and in writing result cells
        (what remains of its calls is wasmtime lowering the cells)."""
        return tuple(c_uint64.in_dll(self.library, f"value_{part}_ns").value
                     for part in ("read", "allocate", "cells"))


#: Sets up one store and linker for a run; what it yields must outlive the run.
Linking = Callable[[wasmtime.Store, wc.Linker], Iterator[None]]


@contextmanager
def _project_host(store: wasmtime.Store, linker: wc.Linker) -> Iterator[None]:
    with open(ZERO_DEVICE, "rb") as zero:
        ctx = WasiCtx(HostConfig(args=["tiny"], stdin=zero))
        add_to_linker(linker, ctx)
        try:
            yield
        finally:
            ctx.close()


def _raw_host(imports: RawImports) -> Linking:
    @contextmanager
    def link(store: wasmtime.Store, linker: wc.Linker) -> Iterator[None]:
        imports.define(linker)
        yield
    return link


@contextmanager
def _typed_host(store: wasmtime.Store, linker: wc.Linker) -> Iterator[None]:
    wasi = wasmtime.WasiConfig()
    wasi.stdin_file = ZERO_DEVICE
    store.set_wasi(wasi)
    linker.add_wasip2()
    yield


class InProcessHosts:
    """The four hosts on one engine; `run_tiny(host, operation, count)`."""

    NAMES = ("project", "floor", "ceiling", "typed")

    def __init__(self, build_dir: Path) -> None:
        # The project's own engine configuration (epoch interruption on).
        self.engine = Host().engine
        self.ceiling = CeilingImports(build_dir)
        self._linking: dict[str, Linking] = {
            "project": _project_host,
            "floor": _raw_host(FloorImports()),
            "ceiling": _raw_host(self.ceiling),
            "typed": _typed_host,
        }
        self._components: dict[tuple[str, int], wc.Component] = {}

    def run_tiny(self, host: str, operation: str, count: int, *,
                 keep_gil: bool = False) -> float:
        """Seconds of one `run` call of the tiny guest doing `operation` `count`
        times; entered through wasmtime-py (which lets go of the GIL for the
        call, as the project's `Host` does), or with `keep_gil` through PyDLL."""
        key = (operation, count)
        if key not in self._components:
            self._components[key] = wc.Component(
                self.engine, tiny_guest.component_bytes(operation, count))
        store = wasmtime.Store(self.engine)
        store.set_epoch_deadline(1)
        linker = wc.Linker(self.engine)
        try:
            with self._linking[host](store, linker):
                instance = linker.instantiate(store, self._components[key])
                interface = instance.get_export_index(store, f"wasi:cli/run@{tiny_guest.WASI}")
                run = instance.get_func(store, instance.get_export_index(store, "run", interface))
                if keep_gil:
                    outcome = ffi.wasmtime_component_val_t()
                    start = time.perf_counter()
                    _check(_func_call_keeping_gil(
                        ctypes.addressof(run._func), ctypes.cast(store._context(), c_void_p),
                        None, 0, ctypes.addressof(outcome), 1))
                else:
                    start = time.perf_counter()
                    run(store)
                run.post_return(store)
                return time.perf_counter() - start
        finally:
            linker.close()
