"""Value encoding, compiled from declared WIT types taken from real guests.

Each case lowers a Python value into wasmtime's C value cell and lifts it
back; list<u8> is also checked against wasmtime-py's own per-element decoder
so the bulk cell layout cannot drift unnoticed.
"""

from concurrent.futures import ThreadPoolExecutor
from ctypes import byref

import pytest
import wasmtime
from wasmtime import _ffi as ffi
from wasmtime import component as wc

from wasi_tls_host.config import HostConfig
from wasi_tls_host.runtime import codec
from wasi_tls_host.runtime.context import WasiCtx
from wasi_tls_host.runtime.table import HasChildren
from wasi_tls_host.runtime.values import Case, Child, Err, Ok, Some


class Resource:
    pass


@pytest.fixture(scope="module")
def engine():
    config = wasmtime.Config()
    config.cache = True
    return wasmtime.Engine(config)


def import_types(engine, path):
    component = wc.Component.from_file(engine, str(path))
    return {name: extern.ty for name, extern in component.type.imports(engine).items()}


@pytest.fixture(scope="module")
def signatures(engine, guests):
    """Look up a function's declared result type in the guests' imports."""
    types = import_types(engine, guests["tcp-echo-client"])
    types.update(import_types(engine, guests["https-get"]))

    def result_of(interface_prefix, function):
        for name, item in types.items():
            if name.startswith(interface_prefix):
                return item.exports(engine)[function].ty.result
        raise LookupError(interface_prefix)
    return result_of


@pytest.fixture
def scope():
    ctx = WasiCtx(HostConfig())
    store = wasmtime.Store(wasmtime.Engine())
    yield codec.CallScope(store._context(), ctx.table), ctx
    ctx.close()


# Uninstantiated import types carry the guest's abstract resource types, not
# the host's ResourceType.host(id), so the tests give every resource one id.
TEST_RESOURCE = 2


def any_resource(resource_type):
    return TEST_RESOURCE


def roundtrip(scope_and_ctx, ty, value):
    scope, ctx = scope_and_ctx
    cell = codec.Val()
    codec.lowerer(ty, any_resource)(scope, value, cell)
    try:
        return codec.lifter(ty)(scope, cell)
    finally:
        ffi.wasmtime_component_val_delete(byref(cell))


def test_result_unit_and_stream_error_is_tagged_by_type(signatures, scope):
    ty = signatures("wasi:io/streams", "[method]output-stream.write")
    assert roundtrip(scope, ty, None) == Ok(None)
    assert roundtrip(scope, ty, Err(Case("closed"))) == Err(Case("closed"))
    error = Resource()
    lifted = roundtrip(scope, ty, Err(Case("last-operation-failed", error)))
    assert lifted == Err(Case("last-operation-failed", error))
    assert len(scope[1].table) == 0  # the own<error> went through the table and out again


def test_result_bytes_or_stream_error(signatures, scope):
    ty = signatures("wasi:io/streams", "[method]input-stream.read")
    assert roundtrip(scope, ty, b"") == Ok(b"")
    assert roundtrip(scope, ty, Ok(b"\x00\xffabc")) == Ok(b"\x00\xffabc")
    assert roundtrip(scope, ty, Err(Case("closed"))) == Err(Case("closed"))


@pytest.mark.parametrize("size", [1, 31, 32, 33, 65536, 1 << 20])
def test_bulk_bytes_match_wasmtime_py_decoder(signatures, scope, size):
    ty = signatures("wasi:io/streams", "[method]input-stream.read").ok
    data = bytes((i * 7 + 3) % 256 for i in range(size))
    assert roundtrip(scope, ty, data) == data
    if size <= 65536:
        cell = codec.Val()
        codec.lowerer(ty, any_resource)(scope[0], data, cell)
        assert ty.convert_from_c(cell) == data  # wasmtime-py's element-by-element path


def test_bulk_bytes_on_several_threads_do_not_mix(signatures):
    """The reused cell buffers are per thread: stores may run on several
    threads, and copying a megabyte of cells releases the GIL."""
    ty = signatures("wasi:io/streams", "[method]input-stream.read").ok
    lower, lift = codec.lowerer(ty, any_resource), codec.lifter(ty)
    mixed = []

    def roundtrips(fill: int) -> None:
        ctx = WasiCtx(HostConfig())
        scope = codec.CallScope(None, ctx.table)  # list<u8> needs no store
        data = bytes([fill]) * (1 << 20)
        try:
            for _ in range(20):
                cell = codec.Val()
                lower(scope, data, cell)
                try:
                    if lift(scope, cell) != data:
                        mixed.append(fill)
                finally:
                    ffi.wasmtime_component_val_delete(byref(cell))
        finally:
            ctx.close()

    fills = (1, 2, 3)
    # One worker per fill so the three run at once; list() re-raises what a
    # worker raised, which a bare Thread would only print.
    with ThreadPoolExecutor(max_workers=len(fills)) as pool:
        list(pool.map(roundtrips, fills))
    assert mixed == []


def test_option_result_result_tuple_of_resources(signatures, scope):
    ty = signatures("wasi:tls/types", "[method]future-client-streams.get")
    assert roundtrip(scope, ty, None) is None
    assert roundtrip(scope, ty, Err()) == Err(None)
    conn, reader, writer = Resource(), Resource(), Resource()
    lifted = roundtrip(scope, ty, Ok(Ok((conn, reader, writer))))
    assert lifted == Ok(Ok((conn, reader, writer)))
    failure = Resource()
    assert roundtrip(scope, ty, Some(Ok(Err(failure)))) == Ok(Err(failure))


def test_child_resources_are_linked_to_their_parent(signatures, scope):
    ty = signatures("wasi:io/streams", "[method]input-stream.subscribe")
    scope_, ctx = scope
    parent = Resource()
    ctx.table.push(parent, TEST_RESOURCE)
    cell = codec.Val()
    codec.lowerer(ty, any_resource)(scope_, Child(Resource(), parent), cell)
    with pytest.raises(HasChildren):
        ctx.table.delete(ctx.table.rep_of(parent), TEST_RESOURCE)
    ffi.wasmtime_component_val_delete(byref(cell))


def test_records_variants_and_enums(signatures, scope):
    ty = signatures("wasi:sockets/tcp", "[method]tcp-socket.local-address")
    v4 = Case("ipv4", {"port": 8080, "address": (127, 0, 0, 1)})
    assert roundtrip(scope, ty, v4) == Ok(v4)
    v6 = Case("ipv6", {"port": 1, "flow-info": 0, "address": (0, 0, 0, 0, 0, 0, 0, 1),
                       "scope-id": 0})
    assert roundtrip(scope, ty, v6) == Ok(v6)
    assert roundtrip(scope, ty, Err("access-denied")) == Err("access-denied")
    with pytest.raises(ValueError, match="not a case of enum"):
        roundtrip(scope, ty, Err("no-such-code"))


def test_out_of_range_integers_are_refused(signatures, scope):
    ty = signatures("wasi:io/streams", "[method]output-stream.check-write")
    with pytest.raises(ValueError, match="does not fit u64"):
        roundtrip(scope, ty, -1)


@pytest.mark.parametrize(("ty", "value"), [
    (wc.Bool(), True), (wc.S8(), -128), (wc.U8(), 255), (wc.S16(), -32768),
    (wc.U16(), 65535), (wc.S32(), -2**31), (wc.U32(), 2**32 - 1), (wc.S64(), -2**63),
    (wc.U64(), 2**64 - 1), (wc.F32(), 0.5), (wc.F64(), -1.25), (wc.Char(), "é"),
    (wc.String(), "naïve"),
])
def test_every_scalar_type_has_a_lift_and_a_lower(scope, ty, value):
    assert roundtrip(scope, ty, value) == value


def test_a_type_the_host_does_not_support_is_refused_when_compiling():
    with pytest.raises(TypeError, match="unsupported WIT type in a host function"):
        codec.lifter(wc.ErrorContext())
    with pytest.raises(TypeError, match="unsupported WIT type in a host result"):
        codec.lowerer(wc.ErrorContext(), any_resource)
