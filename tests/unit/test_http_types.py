"""wasi:http/types called as a guest would: fields and their rules, building
requests and responses, request-options, bodies and their streams, the
trailers' future, http-error-code, and which misuse is an error value and
which a trap."""

from __future__ import annotations

import pytest
import wasmtime
from wasmtime import component as wc

from wasi_tls_host import interfaces
from wasi_tls_host.config import HostConfig
from wasi_tls_host.host import add_to_linker
from wasi_tls_host.http import types
from wasi_tls_host.http.bodies import FutureTrailers, HttpFailed, IncomingBody, OutgoingBody
from wasi_tls_host.http.errors import HttpFailure
from wasi_tls_host.http.fields import FORBIDDEN, MAX_SIZE, Fields
from wasi_tls_host.http.messages import IncomingResponse
from wasi_tls_host.io import streams as io_streams
from wasi_tls_host.io.error import IoError
from wasi_tls_host.runtime.context import WasiCtx
from wasi_tls_host.runtime.errors import ErrorValue, Trap
from wasi_tls_host.runtime.futures import Ready
from wasi_tls_host.runtime.poll import NEVER, WaitSpec
from wasi_tls_host.runtime.resources import Res
from wasi_tls_host.runtime.streams import StreamClosed
from wasi_tls_host.runtime.table import HasChildren
from wasi_tls_host.runtime.values import Case, Child, Err, Ok


@pytest.fixture
def ctx():
    context = WasiCtx(HostConfig())
    yield context
    context.close()


def error_of(call, *args):
    with pytest.raises(ErrorValue) as caught:
        call(*args)
    return caught.value.payload


# -- fields ---------------------------------------------------------------------------

def test_fields_keep_order_and_case_and_compare_without_case(ctx):
    fields = types.fields_from_list(ctx, [("Accept", b"a"), ("X-Two", b"1"), ("accept", b"b")])
    assert types.fields_get(ctx, fields, "ACCEPT") == [b"a", b"b"]
    assert types.fields_has(ctx, fields, "x-two")
    assert not types.fields_has(ctx, fields, "x-three")
    assert types.fields_entries(ctx, fields) == [("Accept", b"a"), ("X-Two", b"1"),
                                                 ("accept", b"b")]
    types.fields_set(ctx, fields, "accept", [b"c"])
    assert types.fields_entries(ctx, fields) == [("X-Two", b"1"), ("accept", b"c")]
    types.fields_append(ctx, fields, "x-two", b"")
    assert types.fields_get(ctx, fields, "X-TWO") == [b"1", b""]
    types.fields_delete(ctx, fields, "X-Two")
    assert types.fields_entries(ctx, fields) == [("accept", b"c")]
    types.fields_set(ctx, fields, "accept", [])
    assert types.fields_entries(ctx, fields) == []


@pytest.mark.parametrize("name", ["", "bad name", "colon:", "ünicode", "a\r\nb", "(paren)"])
def test_invalid_names(ctx, name):
    fields = types.new_fields(ctx)
    assert error_of(types.fields_append, ctx, fields, name, b"v") == Case("invalid-syntax")
    assert error_of(types.fields_set, ctx, fields, name, [b"v"]) == Case("invalid-syntax")
    assert error_of(types.fields_delete, ctx, fields, name) == Case("invalid-syntax")
    assert error_of(types.fields_from_list, ctx, [(name, b"v")]) == Case("invalid-syntax")
    assert types.fields_get(ctx, fields, name) == []
    assert not types.fields_has(ctx, fields, name)


@pytest.mark.parametrize("value", [b"a\r\nInjected: 1", b"nul\x00", b"\x7f", b"\n"])
def test_invalid_values(ctx, value):
    fields = types.new_fields(ctx)
    assert error_of(types.fields_append, ctx, fields, "x", value) == Case("invalid-syntax")
    assert error_of(types.fields_set, ctx, fields, "x", [b"ok", value]) == Case("invalid-syntax")
    assert types.fields_entries(ctx, fields) == []


def test_values_may_be_opaque_bytes(ctx):
    fields = types.fields_from_list(ctx, [("x", b"\xff\tobs-text \x80")])
    assert types.fields_get(ctx, fields, "x") == [b"\xff\tobs-text \x80"]


@pytest.mark.parametrize("name", sorted(FORBIDDEN) + ["Host", "Transfer-Encoding"])
def test_forbidden_names(ctx, name):
    fields = types.new_fields(ctx)
    assert error_of(types.fields_append, ctx, fields, name, b"v") == Case("forbidden")
    assert error_of(types.fields_set, ctx, fields, name, [b"v"]) == Case("forbidden")
    assert error_of(types.fields_delete, ctx, fields, name) == Case("forbidden")
    assert error_of(types.fields_from_list, ctx, [(name, b"v")]) == Case("forbidden")


def test_received_fields_drop_forbidden_names_and_are_immutable():
    fields = Fields.received([("Connection", b"close"), ("X-A", b"1"),
                              ("transfer-encoding", b"chunked"), ("Host", b"h")])
    assert fields.entries() == [("X-A", b"1")]
    for call, args in ((fields.append, ("x-b", b"2")), (fields.set, ("x-a", [b"3"])),
                       (fields.delete, ("x-a",))):
        with pytest.raises(ErrorValue) as caught:
            call(*args)
        assert caught.value.payload == Case("immutable")


def test_clone_is_mutable_and_separate(ctx):
    original = Fields.received([("x", b"1")])
    copy = types.fields_clone(ctx, original)
    types.fields_append(ctx, copy, "y", b"2")
    assert original.entries() == [("x", b"1")]
    assert copy.entries() == [("x", b"1"), ("y", b"2")]


def test_fields_past_the_size_limit_trap(ctx):
    fields = types.new_fields(ctx)
    with pytest.raises(Trap, match=str(MAX_SIZE)):
        for _ in range(MAX_SIZE // 1024 + 1):
            types.fields_append(ctx, fields, "x", b"a" * 1024)
    types.fields_delete(ctx, fields, "x")
    types.fields_append(ctx, fields, "x", b"a" * 1024)  # deleting gave the room back


def test_wire_form_drops_surrounding_blanks():
    assert Fields.from_guest([("X", b" \tpadded value\t ")]).wire() == [(b"X", b"padded value")]


# -- requests and responses -----------------------------------------------------------

def test_outgoing_request_defaults_and_setters(ctx):
    headers = types.fields_from_list(ctx, [("x", b"1")])
    request = types.new_outgoing_request(ctx, headers)
    assert types.outgoing_request_method(ctx, request) == Case("get")
    assert types.outgoing_request_path(ctx, request) is None
    assert types.outgoing_request_scheme(ctx, request) is None
    assert types.outgoing_request_authority(ctx, request) is None
    types.outgoing_request_set_method(ctx, request, Case("other", "PURGE"))
    types.outgoing_request_set_path(ctx, request, "/a/b?c=d&e")
    types.outgoing_request_set_scheme(ctx, request, Case("HTTPS"))
    types.outgoing_request_set_authority(ctx, request, "[::1]:8443")
    assert types.outgoing_request_method(ctx, request) == Case("other", "PURGE")
    assert types.outgoing_request_path(ctx, request) == "/a/b?c=d&e"
    assert types.outgoing_request_scheme(ctx, request) == Case("HTTPS")
    assert types.outgoing_request_authority(ctx, request) == "[::1]:8443"


@pytest.mark.parametrize("setter, value", [
    ("outgoing_request_set_method", Case("other", "BAD METHOD")),
    ("outgoing_request_set_method", Case("other", "")),
    ("outgoing_request_set_path", "/with space"),
    ("outgoing_request_set_path", "/frag#ment"),
    ("outgoing_request_set_path", "/ünicode"),
    ("outgoing_request_set_scheme", Case("other", "1http")),
    ("outgoing_request_set_scheme", Case("other", "ht tp")),
    ("outgoing_request_set_authority", "host:port"),
    ("outgoing_request_set_authority", "host:65536"),
    ("outgoing_request_set_authority", "host:"),
    ("outgoing_request_set_authority", "user@host"),
    ("outgoing_request_set_authority", "[not-v6]:80"),
    ("outgoing_request_set_authority", "[::1]x"),
    ("outgoing_request_set_authority", ""),
])
def test_bad_request_parts_are_errors(ctx, setter, value):
    request = types.new_outgoing_request(ctx, types.new_fields(ctx))
    assert error_of(getattr(types, setter), ctx, request, value) is None


def test_a_requests_headers_are_immutable_copies(ctx):
    headers = types.fields_from_list(ctx, [("x", b"1")])
    request = types.new_outgoing_request(ctx, headers)
    given = types.outgoing_request_headers(ctx, request)
    assert given.entries() == [("x", b"1")]
    assert error_of(types.fields_append, ctx, given, "y", b"2") == Case("immutable")
    assert error_of(types.fields_append, ctx, headers, "y", b"2") == Case("immutable")
    assert given is not request.headers


def test_a_body_once(ctx):
    request = types.new_outgoing_request(ctx, types.new_fields(ctx))
    assert isinstance(types.outgoing_request_body(ctx, request), OutgoingBody)
    assert error_of(types.outgoing_request_body, ctx, request) is None
    response = types.new_outgoing_response(ctx, types.new_fields(ctx))
    types.outgoing_response_body(ctx, response)
    assert error_of(types.outgoing_response_body, ctx, response) is None


def test_a_bad_content_length_refuses_the_body(ctx):
    headers = types.fields_from_list(ctx, [("content-length", b"ten")])
    request = types.new_outgoing_request(ctx, headers)
    assert error_of(types.outgoing_request_body, ctx, request) is None


def test_outgoing_response_status(ctx):
    response = types.new_outgoing_response(ctx, types.new_fields(ctx))
    assert types.outgoing_response_status(ctx, response) == 200
    types.outgoing_response_set_status(ctx, response, 404)
    assert types.outgoing_response_status(ctx, response) == 404
    for bad in (0, 99, 1000):
        assert error_of(types.outgoing_response_set_status, ctx, response, bad) is None
    assert types.outgoing_response_status(ctx, response) == 404


def test_request_options(ctx):
    functions = types.interface.functions
    options = types.new_request_options(ctx)
    for name in ("connect-timeout", "first-byte-timeout", "between-bytes-timeout"):
        assert functions[f"[method]request-options.{name}"](ctx, options) is None
        functions[f"[method]request-options.set-{name}"](ctx, options, 5_000_000)
        assert functions[f"[method]request-options.{name}"](ctx, options) == 5_000_000
        functions[f"[method]request-options.set-{name}"](ctx, options, None)
        assert functions[f"[method]request-options.{name}"](ctx, options) is None


def test_informational_responses_are_not_supported(ctx):
    outparam_error = error_of(types.response_outparam_send_informational, ctx, None, 103,
                              types.new_fields(ctx))
    assert outparam_error.tag == "internal-error"


# -- outgoing bodies --------------------------------------------------------------------

class Consumer:
    """Drains a body pipe like a connection that takes `room` bytes per pump."""

    def __init__(self, pipe, room: int):
        self.pipe = pipe
        self.room = room
        self.taken = bytearray()

    def pump(self) -> None:
        self.taken += self.pipe.take(self.room)

    def body_wait_spec(self) -> WaitSpec:
        return WaitSpec(deadline_ns=1)


def test_an_outgoing_body_streams_through_its_pipe(ctx):
    body = OutgoingBody("request", None)
    stream = types.outgoing_body_write(ctx, body)
    assert isinstance(stream, Child) and stream.parent is body
    assert error_of(types.outgoing_body_write, ctx, body) is None
    output = stream.obj
    assert output.wait_on() == NEVER  # no connection yet: nothing can make room
    budget = io_streams.check_write(ctx, output)
    assert budget == body.pipe.capacity
    io_streams.write(ctx, output, b"x" * budget)
    assert io_streams.check_write(ctx, output) == 0
    consumer = Consumer(body.pipe, 1000)
    body.pipe.attach(consumer)
    assert output.wait_on() == WaitSpec(deadline_ns=1)
    assert io_streams.check_write(ctx, output) == 1000
    with pytest.raises(Trap, match="exceeds"):
        io_streams.write(ctx, output, bytes(1001))
    types.outgoing_body_finish(ctx, body, Fields.from_guest([("x-t", b"1")]))
    assert body.pipe.finished and body.pipe.trailers.entries() == [("x-t", b"1")]


def test_content_length_is_checked_both_ways(ctx):
    short = OutgoingBody("request", 5)
    stream = short.write()
    io_streams.check_write(ctx, stream)
    io_streams.write(ctx, stream, b"abc")
    assert error_of(types.outgoing_body_finish, ctx, short, None) == \
        Case("HTTP-request-body-size", 3)
    assert short.pipe.aborted is not None

    long = OutgoingBody("response", 2)
    stream = long.write()
    io_streams.check_write(ctx, stream)
    failure = error_of(io_streams.write, ctx, stream, b"abc")
    assert failure.tag == "last-operation-failed"
    assert types.http_error_code(ctx, failure.payload) == Case("HTTP-response-body-size", 3)
    assert error_of(types.outgoing_body_finish, ctx, long, None) == \
        Case("HTTP-response-body-size", 3)


def test_trailers_need_a_chunked_body(ctx):
    body = OutgoingBody("request", 0)
    code = error_of(types.outgoing_body_finish, ctx, body, Fields.from_guest([("x", b"1")]))
    assert code.tag == "internal-error"


def test_dropping_a_body_unfinished_aborts_it(ctx):
    body = OutgoingBody("request", None)
    body.close()
    assert body.pipe.aborted.code == Case("HTTP-protocol-error")
    finished = OutgoingBody("request", None)
    finished.finish(None)
    finished.close()
    assert finished.pipe.aborted is None


def test_a_request_dropped_unsent_fails_its_bodys_writes(ctx):
    request = types.new_outgoing_request(ctx, types.new_fields(ctx))
    body = types.outgoing_request_body(ctx, request)
    output = types.outgoing_body_write(ctx, body).obj
    request.close()
    failure = error_of(io_streams.check_write, ctx, output)
    assert types.http_error_code(ctx, failure.payload) == Case("HTTP-protocol-error")


def test_a_failed_connection_fails_the_writers_stream(ctx):
    body = OutgoingBody("request", None)
    output = body.write()
    body.pipe.failure = HttpFailure(Case("connection-terminated"), "the peer went away")
    failure = error_of(io_streams.check_write, ctx, output)
    assert failure.payload.message == "the peer went away"
    assert types.http_error_code(ctx, failure.payload) == Case("connection-terminated")


def test_finishing_or_dropping_a_body_with_its_stream_alive_traps(ctx):
    body = OutgoingBody("request", None)
    rep = ctx.table.push(body, Res.HTTP_OUTGOING_BODY)
    stream = types.outgoing_body_write(ctx, body)
    ctx.table.push(stream.obj, Res.OUTPUT_STREAM, stream.parent)
    with pytest.raises(HasChildren):
        ctx.table.delete(rep, Res.HTTP_OUTGOING_BODY)


# -- incoming bodies and the trailers' future -------------------------------------------

class Source:
    """A BodySource over fixed chunks, ending with `end`."""

    def __init__(self, chunks, end):
        self.chunks = list(chunks)
        self.end = end
        self.released = 0

    def read_body(self, max_bytes):
        if self.chunks:
            chunk = self.chunks.pop(0)
            if isinstance(chunk, Exception):
                raise chunk
            return chunk[:max_bytes]
        raise StreamClosed()

    def body_ready(self):
        return True

    def body_wait_spec(self):
        return NEVER

    def trailers(self):
        self.chunks.clear()
        return self.end

    def trailers_wait_spec(self):
        return NEVER

    def release(self):
        self.released += 1


def test_incoming_body_stream_then_trailers(ctx):
    source = Source([b"ab", b"", b"cd"], Ready(Fields.received([("x-t", b"1")])))
    body = IncomingBody(source)
    stream = types.incoming_body_stream(ctx, body)
    assert stream.parent is body
    assert error_of(types.incoming_body_stream, ctx, body) is None
    assert [io_streams.read(ctx, stream.obj, 10) for _ in range(3)] == [b"ab", b"", b"cd"]
    assert error_of(io_streams.read, ctx, stream.obj, 10) == Case("closed")
    future = types.incoming_body_finish(ctx, body)
    assert isinstance(future, FutureTrailers)
    outcome = types.future_trailers_get(ctx, future)
    trailers = outcome.value.value
    assert trailers.entries() == [("x-t", b"1")] and not trailers.mutable
    assert types.future_trailers_get(ctx, future) == Err()
    future.close()
    assert source.released == 1


def test_a_body_stream_failure_carries_the_error_code(ctx):
    failure = HttpFailure(Case("HTTP-response-incomplete"), "cut short")
    source = Source([b"a", failure.stream_error()], Ready(None))
    stream = IncomingBody(source).stream()
    assert io_streams.read(ctx, stream, 10) == b"a"
    error = error_of(io_streams.read, ctx, stream, 10)
    io_error = error.payload
    assert isinstance(io_error, IoError) and io_error.message == "cut short"
    assert types.http_error_code(ctx, io_error) == Case("HTTP-response-incomplete")
    assert types.http_error_code(ctx, IoError("not http")) is None


def test_trailers_future_failure_and_absence(ctx):
    failed = FutureTrailers(Source([], HttpFailed.of(HttpFailure(
        Case("connection-read-timeout"), "slow"))))
    assert types.future_trailers_get(ctx, failed) == Ok(Err(Case("connection-read-timeout")))
    empty = FutureTrailers(Source([], Ready(None)))
    assert types.future_trailers_get(ctx, empty) == Ok(Ok(None))


def test_dropping_an_unfinished_body_releases_the_message(ctx):
    source = Source([b"x"], Ready(None))
    IncomingBody(source).close()
    assert source.released == 1


def test_incoming_body_outlives_its_response(ctx):
    source = Source([b"x"], Ready(None))
    response = IncomingResponse(200, Fields.received([]), IncomingBody(source))
    body = types.incoming_response_consume(ctx, response)
    assert error_of(types.incoming_response_consume, ctx, response) is None
    response.close()
    assert source.released == 0
    assert types.incoming_response_status(ctx, response) == 200
    body.close()
    assert source.released == 1


# -- linking ----------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["0.2.0", "0.2.8", "0.2.12"])
def test_guests_importing_any_0_2_release_link(ctx, version):
    engine = wasmtime.Engine()
    component = wc.Component(engine, f"""
        (component
          (import "wasi:http/types@{version}" (instance
            (export "fields" (type $fields (sub resource)))
            (export "[constructor]fields" (func (result (own $fields))))))
          (import "wasi:http/outgoing-handler@{version}" (instance)))
    """)
    linker = wc.Linker(engine)
    add_to_linker(linker, ctx, interfaces.load(interfaces.imported_by(
        component.type.imports(engine))))
    linker.instantiate(wasmtime.Store(engine), component)
    linker.close()
