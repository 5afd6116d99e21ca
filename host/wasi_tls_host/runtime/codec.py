"""Moving values between wasmtime's C value cells and the host's Python values.

wasmtime-py converts values by re-reading the function type on every call and
by guessing, per value, whether a variant is "tagged". This module instead
compiles, once per host function, a lift (C -> Python) and a lower
(Python -> C) closure for each parameter and for the result, from the
declared WIT type. `list<u8>` is moved as one block: each element is a
32-byte cell with its kind byte at offset 0 and the byte at offset 8.
Strings are copied straight between their byte vector and Python, once
each way; a string result may also be given as ASCII `bytes` (checked),
which is how `wasi-tls-host:io/bulk` hands stream bytes over without a
decode and re-encode.
"""

from __future__ import annotations

import ctypes
import struct
import threading
from collections.abc import Callable
from ctypes import byref, c_size_t, c_void_p
from typing import Any

from wasmtime import _ffi as ffi
from wasmtime import component as wc

from . import capi
from .errors import Trap
from .table import ResourceTable
from .values import Case, Child, Err, Ok, Some

Val = capi.Val
CELL = ctypes.sizeof(Val)
assert CELL == 32, "wasmtime_component_val_t layout changed; revisit bulk list<u8>"


class CallScope:
    """What lifting and lowering need for one call: the store context, the
    table, and an out-parameter for the resource conversions of the C API
    (one per scope rather than per call; a scope serves one store, which
    runs on one thread at a time)."""

    __slots__ = ("context", "handle", "handle_ref", "table")

    def __init__(self, context: Any, table: ResourceTable):
        self.context = context
        self.table = table
        self.handle = c_void_p()
        self.handle_ref = byref(self.handle)


Lift = Callable[[CallScope, Any], Any]
Lower = Callable[[CallScope, Any, Any], None]
ResourceIds = Callable[[wc.ResourceType], int]


def _kind(name: str) -> int:
    return getattr(ffi, "WASMTIME_COMPONENT_" + name).value


K_LIST = _kind("LIST")
K_U8 = _kind("U8")
K_STRING = _kind("STRING")
K_RECORD = _kind("RECORD")
K_TUPLE = _kind("TUPLE")
K_VARIANT = _kind("VARIANT")
K_ENUM = _kind("ENUM")
K_OPTION = _kind("OPTION")
K_RESULT = _kind("RESULT")
K_FLAGS = _kind("FLAGS")
K_RESOURCE = _kind("RESOURCE")

_SCALARS: dict[type, tuple[str, str, type]] = {
    wc.Bool: ("BOOL", "boolean", bool),
    wc.S8: ("S8", "s8", int),
    wc.U8: ("U8", "u8", int),
    wc.S16: ("S16", "s16", int),
    wc.U16: ("U16", "u16", int),
    wc.S32: ("S32", "s32", int),
    wc.U32: ("U32", "u32", int),
    wc.S64: ("S64", "s64", int),
    wc.U64: ("U64", "u64", int),
    wc.F32: ("F32", "f32", float),
    wc.F64: ("F64", "f64", float),
}

_INT_RANGE = {"u8": (0, 0xFF), "u16": (0, 0xFFFF), "u32": (0, 0xFFFFFFFF),
             "u64": (0, 0xFFFFFFFFFFFFFFFF), "s8": (-0x80, 0x7F),
             "s16": (-0x8000, 0x7FFF), "s32": (-0x80000000, 0x7FFFFFFF),
             "s64": (-0x8000000000000000, 0x7FFFFFFFFFFFFFFF)}


#: Where a value cell's payload starts, and a byte vector's data pointer.
PAYLOAD = capi.PAYLOAD_OFFSET
_VECTOR_DATA: int = ffi.wasm_byte_vec_t.data.offset  # type: ignore[attr-defined]


def _text(vector_address: int) -> str:
    """The UTF-8 text of the byte vector (size, then data) at `vector_address`."""
    size = c_size_t.from_address(vector_address).value
    if not size:
        return ""
    data = c_void_p.from_address(vector_address + _VECTOR_DATA).value or 0
    return ctypes.string_at(data, size).decode()


def _boxed(raw: Any) -> Any:
    """Copy a stack cell into a heap cell owned by its enclosing value."""
    return ffi.wasmtime_component_val_new(byref(raw))


# -- compiling: one builder per kind of WIT type ------------------------------
#
# `lifter` and `lowerer` look the declared type's wasmtime class up in a
# table of builders; each builder compiles the closure for that kind of type
# (calling back into the table for element and payload types). The tables
# are keyed by exact class: wasmtime-py's type classes are leaves.

LiftBuilder = Callable[[Any], Lift]
LowerBuilder = Callable[[Any, ResourceIds], Lower]
_LIFT_BUILDERS: dict[type, LiftBuilder] = {}
_LOWER_BUILDERS: dict[type, LowerBuilder] = {}


def lifter(ty: wc.ValType) -> Lift:
    build = _LIFT_BUILDERS.get(type(ty))
    if build is None:
        raise TypeError(f"unsupported WIT type in a host function: {ty!r}")
    return build(ty)


def lowerer(ty: wc.ValType, resource_ids: ResourceIds) -> Lower:
    build = _LOWER_BUILDERS.get(type(ty))
    if build is None:
        raise TypeError(f"unsupported WIT type in a host result: {ty!r}")
    return build(ty, resource_ids)


def _lifts(*classes: type) -> Callable[[LiftBuilder], LiftBuilder]:
    def register(build: LiftBuilder) -> LiftBuilder:
        for cls in classes:
            _LIFT_BUILDERS[cls] = build
        return build
    return register


def _lowers(*classes: type) -> Callable[[LowerBuilder], LowerBuilder]:
    def register(build: LowerBuilder) -> LowerBuilder:
        for cls in classes:
            _LOWER_BUILDERS[cls] = build
        return build
    return register


# -- lifting: C cell -> Python ------------------------------------------------

@_lifts(*_SCALARS)
def _lift_scalar(ty: wc.ValType) -> Lift:
    # ctypes already gives a bool, int or float for the union's field.
    field = _SCALARS[type(ty)][1]
    return lambda scope, c: getattr(c.of, field)


@_lifts(wc.Char)
def _lift_char(ty: wc.Char) -> Lift:
    return lambda scope, c: chr(c.of.character)


@_lifts(wc.String)
def _lift_string(ty: wc.String) -> Lift:
    return lambda scope, c: _text(ctypes.addressof(c) + PAYLOAD)


@_lifts(wc.ListType)
def _lift_list(ty: wc.ListType) -> Lift:
    if isinstance(ty.element, wc.U8):
        return _lift_bytes
    lift_element = lifter(ty.element)
    return lambda scope, c: [lift_element(scope, c.of.list.data[i])
                             for i in range(c.of.list.size)]


def _lift_bytes(scope: CallScope, c: Any) -> bytes:
    n = c.of.list.size
    if not n:
        return b""
    cells = _LIFT_CELLS.holding(n)
    ctypes.memmove(_LIFT_CELLS.address, c.of.list.data, n * CELL)
    return bytes(cells[8:n * CELL:CELL])


@_lifts(wc.RecordType)
def _lift_record(ty: wc.RecordType) -> Lift:
    fields = [(name, lifter(fty)) for name, fty in ty.fields]
    return lambda scope, c: {name: lift(scope, c.of.record.data[i].val)
                             for i, (name, lift) in enumerate(fields)}


@_lifts(wc.TupleType)
def _lift_tuple(ty: wc.TupleType) -> Lift:
    elements = [lifter(ety) for ety in ty.elements]
    return lambda scope, c: tuple(lift(scope, c.of.tuple.data[i])
                                  for i, lift in enumerate(elements))


@_lifts(wc.EnumType)
def _lift_enum(ty: wc.EnumType) -> Lift:
    return lambda scope, c: ffi.to_str(c.of.enumeration)


@_lifts(wc.FlagsType)
def _lift_flags(ty: wc.FlagsType) -> Lift:
    return lambda scope, c: {ffi.to_str(c.of.flags.data[i]) for i in range(c.of.flags.size)}


@_lifts(wc.VariantType)
def _lift_variant(ty: wc.VariantType) -> Lift:
    cases = {name: (lifter(cty) if cty is not None else None) for name, cty in ty.cases}

    def lift_variant(scope: CallScope, c: Any) -> Case:
        tag = _text(ctypes.addressof(c) + PAYLOAD)  # the discriminant leads the payload
        lift = cases[tag]
        return Case(tag, lift(scope, c.of.variant.val.contents) if lift else None)
    return lift_variant


@_lifts(wc.OptionType)
def _lift_option(ty: wc.OptionType) -> Lift:
    lift_payload = lifter(ty.payload)
    nested = isinstance(ty.payload, wc.OptionType)

    def lift_option(scope: CallScope, c: Any) -> Any:
        if not c.of.option:
            return None
        value = lift_payload(scope, c.of.option.contents)
        return Some(value) if nested else value
    return lift_option


@_lifts(wc.ResultType)
def _lift_result(ty: wc.ResultType) -> Lift:
    lift_ok = lifter(ty.ok) if ty.ok is not None else None
    lift_err = lifter(ty.err) if ty.err is not None else None

    def lift_result(scope: CallScope, c: Any) -> Any:
        res = c.of.result
        lift = lift_ok if res.is_ok else lift_err
        value = lift(scope, res.val.contents) if lift else None
        return Ok(value) if res.is_ok else Err(value)
    return lift_result


@_lifts(wc.OwnType)
def _lift_own(ty: wc.OwnType) -> Lift:
    return lambda scope, c: _resource_arg(scope, c, owned=True)


@_lifts(wc.BorrowType)
def _lift_borrow(ty: wc.BorrowType) -> Lift:
    return lambda scope, c: _resource_arg(scope, c, owned=False)


def _resource_arg(scope: CallScope, c: Any, owned: bool) -> Any:
    """Resolve a handle to its host object; this also ends a borrow."""
    error = capi.resource_any_to_host(scope.context, capi.payload_pointer(c), scope.handle_ref)
    if error:
        raise Trap(str(capi.error_from(error)))
    host = scope.handle.value
    rep = capi.resource_host_rep(host)
    type_id = capi.resource_host_type(host)
    capi.resource_host_delete(host)
    if owned:
        return scope.table.delete(rep, type_id)
    return scope.table.get(rep, type_id)


# -- lowering: Python -> C cell -----------------------------------------------

@_lowers(*_SCALARS)
def _lower_scalar(ty: wc.ValType, resource_ids: ResourceIds) -> Lower:
    name, field, convert = _SCALARS[type(ty)]
    kind = _kind(name)
    bounds = _INT_RANGE.get(field)

    def lower_scalar(scope: CallScope, value: Any, dst: Any) -> None:
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            raise ValueError(f"{value} does not fit {field}")
        dst.kind = kind
        setattr(dst.of, field, convert(value))
    return lower_scalar


@_lowers(wc.Char)
def _lower_char(ty: wc.Char, resource_ids: ResourceIds) -> Lower:
    kind = _kind("CHAR")

    def lower_char(scope: CallScope, value: Any, dst: Any) -> None:
        dst.kind = kind
        dst.of.character = ord(value)
    return lower_char


@_lowers(wc.String)
def _lower_string(ty: wc.String, resource_ids: ResourceIds) -> Lower:
    return _lower_text


def _lower_text(scope: CallScope, value: Any, dst: Any) -> None:
    if type(value) is str:
        data = value.encode()
    elif type(value) is bytes and value.isascii():
        data = value  # already what the string's UTF-8 would be
    else:
        # Never hand wasmtime bytes that are not UTF-8: its C API unwraps
        # the check (a panic, not an error).
        what = "bytes that are not ASCII" if type(value) is bytes else type(value).__name__
        raise ValueError(f"a string must be a str or ASCII bytes, got {what}")
    dst.kind = K_STRING
    capi.byte_vec_new(ctypes.addressof(dst) + PAYLOAD, len(data), data)


@_lowers(wc.EnumType)
def _lower_enum(ty: wc.EnumType, resource_ids: ResourceIds) -> Lower:
    names = set(ty.names)

    def lower_enum(scope: CallScope, value: Any, dst: Any) -> None:
        if value not in names:
            raise ValueError(f"{value!r} is not a case of enum {sorted(names)}")
        dst.kind = K_ENUM
        dst.of.enumeration = ffi.str_to_capi(value)
    return lower_enum


@_lowers(wc.FlagsType)
def _lower_flags(ty: wc.FlagsType, resource_ids: ResourceIds) -> Lower:
    names = set(ty.names)

    def lower_flags(scope: CallScope, value: Any, dst: Any) -> None:
        unknown = set(value) - names
        if unknown:
            raise ValueError(f"unknown flags {sorted(unknown)}")
        raw = ffi.wasmtime_component_valflags_t()
        ffi.wasmtime_component_valflags_new_uninit(raw, len(value))
        for i, name in enumerate(sorted(value)):
            raw.data[i] = ffi.str_to_capi(name)
        dst.kind = K_FLAGS
        dst.of.flags = raw
    return lower_flags


@_lowers(wc.ListType)
def _lower_list(ty: wc.ListType, resource_ids: ResourceIds) -> Lower:
    if isinstance(ty.element, wc.U8):
        return _lower_bytes
    lower_element = lowerer(ty.element, resource_ids)

    def lower_list(scope: CallScope, value: Any, dst: Any) -> None:
        raw = ffi.wasmtime_component_vallist_t()
        ffi.wasmtime_component_vallist_new_uninit(raw, len(value))
        for i, item in enumerate(value):
            lower_element(scope, item, raw.data[i])
        dst.kind = K_LIST
        dst.of.list = raw
    return lower_list


@_lowers(wc.RecordType)
def _lower_record(ty: wc.RecordType, resource_ids: ResourceIds) -> Lower:
    fields = [(name, lowerer(fty, resource_ids)) for name, fty in ty.fields]

    def lower_record(scope: CallScope, value: Any, dst: Any) -> None:
        raw = ffi.wasmtime_component_valrecord_t()
        ffi.wasmtime_component_valrecord_new_uninit(raw, len(fields))
        for i, (name, lower) in enumerate(fields):
            raw.data[i].name = ffi.str_to_capi(name)
            lower(scope, value[name], raw.data[i].val)
        dst.kind = K_RECORD
        dst.of.record = raw
    return lower_record


@_lowers(wc.TupleType)
def _lower_tuple(ty: wc.TupleType, resource_ids: ResourceIds) -> Lower:
    elements = [lowerer(ety, resource_ids) for ety in ty.elements]

    def lower_tuple(scope: CallScope, value: Any, dst: Any) -> None:
        if len(value) != len(elements):
            raise ValueError(f"expected a {len(elements)}-tuple, got {len(value)} items")
        raw = ffi.wasmtime_component_valtuple_t()
        ffi.wasmtime_component_valtuple_new_uninit(raw, len(elements))
        for i, (lower, item) in enumerate(zip(elements, value, strict=True)):
            lower(scope, item, raw.data[i])
        dst.kind = K_TUPLE
        dst.of.tuple = raw
    return lower_tuple


@_lowers(wc.VariantType)
def _lower_variant(ty: wc.VariantType, resource_ids: ResourceIds) -> Lower:
    cases = {name: (lowerer(cty, resource_ids) if cty is not None else None)
             for name, cty in ty.cases}

    def lower_variant(scope: CallScope, value: Any, dst: Any) -> None:
        if not isinstance(value, Case) or value.tag not in cases:
            raise ValueError(f"expected Case with a tag in {sorted(cases)}, got {value!r}")
        lower = cases[value.tag]
        dst.kind = K_VARIANT
        dst.of.variant.discriminant = ffi.str_to_capi(value.tag)
        dst.of.variant.val = _payload(scope, lower, value.payload)
    return lower_variant


@_lowers(wc.OptionType)
def _lower_option(ty: wc.OptionType, resource_ids: ResourceIds) -> Lower:
    lower_payload = lowerer(ty.payload, resource_ids)

    def lower_option(scope: CallScope, value: Any, dst: Any) -> None:
        dst.kind = K_OPTION
        if value is None:
            dst.of.option = None
            return
        if isinstance(value, Some):
            value = value.value
        dst.of.option = _payload(scope, lower_payload, value)
    return lower_option


@_lowers(wc.ResultType)
def _lower_result(ty: wc.ResultType, resource_ids: ResourceIds) -> Lower:
    lower_ok = lowerer(ty.ok, resource_ids) if ty.ok is not None else None
    lower_err = lowerer(ty.err, resource_ids) if ty.err is not None else None

    def lower_result(scope: CallScope, value: Any, dst: Any) -> None:
        is_ok = not isinstance(value, Err)
        if isinstance(value, (Ok, Err)):
            value = value.value
        dst.kind = K_RESULT
        dst.of.result.is_ok = is_ok
        dst.of.result.val = _payload(scope, lower_ok if is_ok else lower_err, value)
    return lower_result


@_lowers(wc.OwnType)
def _lower_own(ty: wc.OwnType, resource_ids: ResourceIds) -> Lower:
    type_id = resource_ids(ty.ty)

    def lower_own(scope: CallScope, value: Any, dst: Any) -> None:
        obj, parent = value if isinstance(value, Child) else (value, None)
        rep = scope.table.push(obj, type_id, parent)
        host = capi.resource_host_new(True, rep, type_id)
        error = capi.resource_host_to_any(scope.context, host, scope.handle_ref)
        capi.resource_host_delete(host)
        if error:
            raise Trap(str(capi.error_from(error)))
        _RESOURCE_CELL.pack_into(dst, 0, K_RESOURCE, scope.handle.value or 0)
    return lower_own


#: A resource cell: its kind byte, then the resource pointer as its payload;
#: packed in one step, where setting the two fields through ctypes takes three.
_RESOURCE_CELL = struct.Struct(f"@B{PAYLOAD - 1}xP")


def _payload(scope: CallScope, lower: Lower | None, value: Any) -> Any:
    if lower is None:
        return None
    raw = Val()
    lower(scope, value, raw)
    return _boxed(raw)


class _CellBuffer(threading.local):
    """One reusable buffer of list<u8> cells, each with its kind byte written
    once. Moving a 64 KiB list takes 2 MiB of cells; allocating that afresh
    per call cost an mmap and hundreds of page faults every time (glibc maps
    large blocks directly), which halved the throughput of stream writes.
    Each thread has its own: an embedder may run stores on several threads,
    and `memmove` releases the GIL."""

    def __init__(self) -> None:
        self.cells = bytearray()
        self.address = 0
        self._view: Any = None  # keeps `address` valid

    def holding(self, n: int) -> bytearray:
        """The buffer, with room for at least `n` cells."""
        if len(self.cells) < n * CELL:
            cells = bytearray(max(n, 2 * len(self.cells) // CELL) * CELL)
            cells[0::CELL] = bytes((K_U8,)) * (len(cells) // CELL)
            self._view = (ctypes.c_char * len(cells)).from_buffer(cells)
            self.cells, self.address = cells, ctypes.addressof(self._view)
        return self.cells


_LIFT_CELLS = _CellBuffer()
_LOWER_CELLS = _CellBuffer()


def _lower_bytes(scope: CallScope, value: Any, dst: Any) -> None:
    n = len(value)
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(raw, n)
    if n:
        cells = _LOWER_CELLS.holding(n)
        cells[8:n * CELL:CELL] = value
        ctypes.memmove(raw.data, _LOWER_CELLS.address, n * CELL)
    dst.kind = K_LIST
    dst.of.list = raw
