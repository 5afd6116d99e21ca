"""The wasmtime C API functions on the call path, declared for speed.

wasmtime-py declares these with typed pointer arguments and results, so
every call boxes each pointer in a ctypes object. The call layer runs them
for every resource a host function returns or receives, so it declares its
own prototypes of the same library functions with plain `c_void_p`
(integers in, integers out), and its own callback types for host functions
and resource destructors. Only the functions the call layer needs are here.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, c_bool, c_char_p, c_size_t, c_uint8, c_uint32, c_uint64, c_void_p

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi

Val = ffi.wasmtime_component_val_t
#: Byte offset of a value cell's payload (after its kind byte and padding).
PAYLOAD_OFFSET = Val.of.offset


def _prototype(name: str, restype, *argtypes):
    return ctypes.CFUNCTYPE(restype, *argtypes)((name, ffi.dll))


resource_host_new = _prototype("wasmtime_component_resource_host_new",
                               c_void_p, c_bool, c_uint32, c_uint32)
resource_host_rep = _prototype("wasmtime_component_resource_host_rep", c_uint32, c_void_p)
resource_host_type = _prototype("wasmtime_component_resource_host_type", c_uint32, c_void_p)
resource_host_delete = _prototype("wasmtime_component_resource_host_delete", None, c_void_p)
#: (store context, resource-any, out resource-host) -> error or NULL
resource_any_to_host = _prototype("wasmtime_component_resource_any_to_host",
                                  c_void_p, c_void_p, c_void_p, POINTER(c_void_p))
#: (store context, resource-host, out resource-any) -> error or NULL
resource_host_to_any = _prototype("wasmtime_component_resource_host_to_any",
                                  c_void_p, c_void_p, c_void_p, POINTER(c_void_p))

#: (out byte vector, size, data): `out` gets a copy of the `size` bytes at `data`.
byte_vec_new = _prototype("wasm_byte_vec_new", None, c_void_p, c_size_t, c_char_p)

#: A host function: (data, store context, function type, args, nargs,
#: results, nresults) -> error or NULL.
HostFunctionCallback = ctypes.CFUNCTYPE(c_void_p, c_void_p, c_void_p, c_void_p, POINTER(Val),
                                        c_size_t, POINTER(Val), c_size_t)
#: A resource destructor: (data, store context, rep) -> error or NULL.
DestructorCallback = ctypes.CFUNCTYPE(c_size_t, c_void_p, c_void_p, c_uint32)
Finalizer = ctypes.CFUNCTYPE(None, c_void_p)

#: What a store does when it reaches its epoch deadline: (store context, data,
#: out ticks to its next deadline, out what to do next) -> error (a trap) or NULL.
EpochDeadlineCallback = ctypes.CFUNCTYPE(c_void_p, c_void_p, c_void_p, POINTER(c_uint64),
                                         POINTER(c_uint8))
#: What to do next, as an EpochDeadlineCallback answers: run on to the new deadline.
EPOCH_DEADLINE_CONTINUE = 0

store_epoch_deadline_callback = _prototype(
    "wasmtime_store_epoch_deadline_callback", None, c_void_p, EpochDeadlineCallback, c_void_p,
    Finalizer)
linker_instance_add_func = _prototype(
    "wasmtime_component_linker_instance_add_func", c_void_p, c_void_p, c_char_p, c_size_t,
    HostFunctionCallback, c_void_p, Finalizer)
linker_instance_add_resource = _prototype(
    "wasmtime_component_linker_instance_add_resource", c_void_p, c_void_p, c_char_p, c_size_t,
    c_void_p, DestructorCallback, c_void_p, Finalizer)


def payload_pointer(cell: Val) -> int:
    """The pointer a cell's payload holds (a resource, a list's data...)."""
    return c_void_p.from_address(ctypes.addressof(cell) + PAYLOAD_OFFSET).value or 0


def error_from(pointer: int) -> WasmtimeError:
    """The WasmtimeError behind a `wasmtime_error_t *` a C API call returned
    (it takes ownership of the error)."""
    return WasmtimeError._from_ptr(ctypes.cast(pointer, POINTER(ffi.wasmtime_error_t)))
