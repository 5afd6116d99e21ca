"""wasi:http/types: the table from the WIT's functions to the host's objects.

Fields are in `fields`, requests, responses and options in `messages`,
bodies and the trailers' future in `bodies`; a response's future belongs
to the client (`client`). Lifetimes follow the WIT where it is explicit:
a body's stream is its child (`finish` or dropping the body traps while
the stream lives), and so is a future's pollable. Headers and trailers
handed out are immutable copies rather than children, and a body taken
from a received message outlives it, as in wasmtime.
"""

from __future__ import annotations

from ..io.error import IoError
from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.errors import ErrorValue
from ..runtime.futures import Future, subscribe_future
from ..runtime.resources import Res
from ..runtime.values import Case, Child
from .bodies import IncomingBody, OutgoingBody
from .fields import Fields
from .messages import (
    IncomingRequest,
    IncomingResponse,
    OutgoingRequest,
    OutgoingResponse,
    RequestOptions,
    ResponseOutparam,
)

interface = Interface(f"wasi:http/types@{WASI_VERSION}")
#: The resources wasi:http/types defines, by WIT name (outgoing-handler uses some).
RESOURCES = {
    "fields": Res.HTTP_FIELDS,
    "incoming-request": Res.HTTP_INCOMING_REQUEST,
    "outgoing-request": Res.HTTP_OUTGOING_REQUEST,
    "request-options": Res.HTTP_REQUEST_OPTIONS,
    "response-outparam": Res.HTTP_RESPONSE_OUTPARAM,
    "incoming-response": Res.HTTP_INCOMING_RESPONSE,
    "incoming-body": Res.HTTP_INCOMING_BODY,
    "future-trailers": Res.HTTP_FUTURE_TRAILERS,
    "outgoing-response": Res.HTTP_OUTGOING_RESPONSE,
    "outgoing-body": Res.HTTP_OUTGOING_BODY,
    "future-incoming-response": Res.HTTP_FUTURE_INCOMING_RESPONSE,
}
for _name, _res in (*RESOURCES.items(), ("input-stream", Res.INPUT_STREAM),
                    ("output-stream", Res.OUTPUT_STREAM), ("io-error", Res.IO_ERROR),
                    ("pollable", Res.POLLABLE)):
    interface.resource(_name, _res)


@interface.func("http-error-code")
def http_error_code(ctx, error: IoError) -> Case | None:
    return error.http_code  # type: ignore[return-value]


# -- fields ---------------------------------------------------------------------------

@interface.func("[constructor]fields")
def new_fields(ctx) -> Fields:
    return Fields()


@interface.func("[static]fields.from-list")
def fields_from_list(ctx, entries: list[tuple[str, bytes]]) -> Fields:
    return Fields.from_guest(entries)


@interface.func("[method]fields.get")
def fields_get(ctx, fields: Fields, name: str) -> list[bytes]:
    return fields.get(name)


@interface.func("[method]fields.has")
def fields_has(ctx, fields: Fields, name: str) -> bool:
    return fields.has(name)


@interface.func("[method]fields.set")
def fields_set(ctx, fields: Fields, name: str, values: list[bytes]) -> None:
    fields.set(name, values)


@interface.func("[method]fields.delete")
def fields_delete(ctx, fields: Fields, name: str) -> None:
    fields.delete(name)


@interface.func("[method]fields.append")
def fields_append(ctx, fields: Fields, name: str, value: bytes) -> None:
    fields.append(name, value)


@interface.func("[method]fields.entries")
def fields_entries(ctx, fields: Fields) -> list[tuple[str, bytes]]:
    return fields.entries()


@interface.func("[method]fields.clone")
def fields_clone(ctx, fields: Fields) -> Fields:
    return fields.clone()


# -- incoming-request (the server side builds them) -------------------------------

@interface.func("[method]incoming-request.method")
def incoming_request_method(ctx, request: IncomingRequest) -> Case:
    return request.method


@interface.func("[method]incoming-request.path-with-query")
def incoming_request_path(ctx, request: IncomingRequest) -> str | None:
    return request.path_with_query


@interface.func("[method]incoming-request.scheme")
def incoming_request_scheme(ctx, request: IncomingRequest) -> Case | None:
    return request.scheme


@interface.func("[method]incoming-request.authority")
def incoming_request_authority(ctx, request: IncomingRequest) -> str | None:
    return request.authority


@interface.func("[method]incoming-request.headers")
def incoming_request_headers(ctx, request: IncomingRequest) -> Fields:
    return request.headers.frozen()


@interface.func("[method]incoming-request.consume")
def incoming_request_consume(ctx, request: IncomingRequest) -> IncomingBody:
    return request.consume()


# -- outgoing-request ------------------------------------------------------------------

@interface.func("[constructor]outgoing-request")
def new_outgoing_request(ctx, headers: Fields) -> OutgoingRequest:
    return OutgoingRequest(headers)


@interface.func("[method]outgoing-request.body")
def outgoing_request_body(ctx, request: OutgoingRequest) -> OutgoingBody:
    return request.take_body()


@interface.func("[method]outgoing-request.method")
def outgoing_request_method(ctx, request: OutgoingRequest) -> Case:
    return request.method


@interface.func("[method]outgoing-request.set-method")
def outgoing_request_set_method(ctx, request: OutgoingRequest, method: Case) -> None:
    request.set_method(method)


@interface.func("[method]outgoing-request.path-with-query")
def outgoing_request_path(ctx, request: OutgoingRequest) -> str | None:
    return request.path_with_query


@interface.func("[method]outgoing-request.set-path-with-query")
def outgoing_request_set_path(ctx, request: OutgoingRequest, path: str | None) -> None:
    request.set_path_with_query(path)


@interface.func("[method]outgoing-request.scheme")
def outgoing_request_scheme(ctx, request: OutgoingRequest) -> Case | None:
    return request.scheme


@interface.func("[method]outgoing-request.set-scheme")
def outgoing_request_set_scheme(ctx, request: OutgoingRequest, scheme: Case | None) -> None:
    request.set_scheme(scheme)


@interface.func("[method]outgoing-request.authority")
def outgoing_request_authority(ctx, request: OutgoingRequest) -> str | None:
    return request.authority


@interface.func("[method]outgoing-request.set-authority")
def outgoing_request_set_authority(ctx, request: OutgoingRequest, authority: str | None) -> None:
    request.set_authority(authority)


@interface.func("[method]outgoing-request.headers")
def outgoing_request_headers(ctx, request: OutgoingRequest) -> Fields:
    return request.headers.frozen()


# -- request-options -------------------------------------------------------------------

@interface.func("[constructor]request-options")
def new_request_options(ctx) -> RequestOptions:
    return RequestOptions()


def _define_timeout(wit_name: str, attribute: str) -> None:
    def get(ctx, options: RequestOptions) -> int | None:
        return getattr(options, attribute)

    def set_(ctx, options: RequestOptions, duration: int | None) -> None:
        setattr(options, attribute, duration)

    interface.func(f"[method]request-options.{wit_name}")(get)
    interface.func(f"[method]request-options.set-{wit_name}")(set_)


_define_timeout("connect-timeout", "connect_timeout")
_define_timeout("first-byte-timeout", "first_byte_timeout")
_define_timeout("between-bytes-timeout", "between_bytes_timeout")


# -- response-outparam (the server side builds them) ----------------------------------

@interface.func("[static]response-outparam.set")
def response_outparam_set(ctx, outparam: ResponseOutparam, response) -> None:
    outparam.set(response)


@interface.func("[method]response-outparam.send-informational")
def response_outparam_send_informational(ctx, outparam: ResponseOutparam, status: int,
                                         headers: Fields) -> None:
    # The WIT's answer for a host that does not send informational responses.
    raise ErrorValue(Case("internal-error", "informational responses are not supported"))


# -- incoming-response -----------------------------------------------------------------

@interface.func("[method]incoming-response.status")
def incoming_response_status(ctx, response: IncomingResponse) -> int:
    return response.status


@interface.func("[method]incoming-response.headers")
def incoming_response_headers(ctx, response: IncomingResponse) -> Fields:
    return response.headers.frozen()


@interface.func("[method]incoming-response.consume")
def incoming_response_consume(ctx, response: IncomingResponse) -> IncomingBody:
    return response.consume()


# -- incoming-body and future-trailers -------------------------------------------------

@interface.func("[method]incoming-body.stream")
def incoming_body_stream(ctx, body: IncomingBody) -> Child:
    return Child(body.stream(), body)


@interface.func("[static]incoming-body.finish")
def incoming_body_finish(ctx, body: IncomingBody) -> Future:
    return body.finish()


interface.func("[method]future-trailers.subscribe")(subscribe_future)


@interface.func("[method]future-trailers.get")
def future_trailers_get(ctx, future: Future):
    return future.get(lambda failed: failed.code)  # type: ignore[attr-defined]


# -- outgoing-response -----------------------------------------------------------------

@interface.func("[constructor]outgoing-response")
def new_outgoing_response(ctx, headers: Fields) -> OutgoingResponse:
    return OutgoingResponse(headers)


@interface.func("[method]outgoing-response.status-code")
def outgoing_response_status(ctx, response: OutgoingResponse) -> int:
    return response.status


@interface.func("[method]outgoing-response.set-status-code")
def outgoing_response_set_status(ctx, response: OutgoingResponse, status: int) -> None:
    response.set_status(status)


@interface.func("[method]outgoing-response.headers")
def outgoing_response_headers(ctx, response: OutgoingResponse) -> Fields:
    return response.headers.frozen()


@interface.func("[method]outgoing-response.body")
def outgoing_response_body(ctx, response: OutgoingResponse) -> OutgoingBody:
    return response.take_body()


# -- outgoing-body ---------------------------------------------------------------------

@interface.func("[method]outgoing-body.write")
def outgoing_body_write(ctx, body: OutgoingBody) -> Child:
    return Child(body.write(), body)


@interface.func("[static]outgoing-body.finish")
def outgoing_body_finish(ctx, body: OutgoingBody, trailers: Fields | None) -> None:
    body.finish(trailers)


# -- future-incoming-response ----------------------------------------------------------

interface.func("[method]future-incoming-response.subscribe")(subscribe_future)


@interface.func("[method]future-incoming-response.get")
def future_incoming_response_get(ctx, future: Future):
    return future.get(lambda failed: failed.code)  # type: ignore[attr-defined]

