"""Requests, responses and request options, as the guest builds and sees them.

The setters check syntax as wasmtime does (an `err` for a method that is
not a token, a scheme that is not a scheme, an authority with a bad port,
a path with characters a request target cannot carry, a status outside
100-999); whether a request can be sent at all is decided when it is
(`outgoing-handler.handle`). Headers handed to a request or response
become immutable. A request's or response's headers are given out as
immutable copies, not children, so they may outlive their message (as in
wasmtime); a body taken out of a received message outlives it too.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..runtime.errors import ErrorValue
from ..runtime.values import Case, Err, Ok
from . import errors
from .bodies import IncomingBody, OutgoingBody
from .fields import Fields

#: Methods with a case of their own in the WIT `method` variant.
METHODS = ("get", "head", "post", "put", "delete", "connect", "options", "trace", "patch")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
#: What a request target may carry: visible ASCII, no fragment.
_PATH_AND_QUERY = re.compile(r"[\x21-\x22\x24-\x7e]*")
_REG_NAME = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=%]*")


def method_name(method: Case) -> str:
    """The method as sent on the wire ("GET", or the `other` string as given)."""
    return method.payload if method.tag == "other" else method.tag.upper()


def method_case(name: str) -> Case:
    """A method received on the wire, as the WIT variant."""
    lower = name.lower()
    return Case(lower) if name == lower.upper() and lower in METHODS else Case("other", name)


def scheme_name(scheme: Case) -> str:
    """"http", "https", or the `other` string in lower case."""
    return scheme.payload.lower() if scheme.tag == "other" else scheme.tag.lower()


def scheme_case(name: str) -> Case:
    lower = name.lower()
    return Case(lower.upper()) if lower in ("http", "https") else Case("other", name)


@dataclass(frozen=True)
class Authority:
    """`host[:port]`; an IPv6 host is kept without its brackets."""

    host: str
    port: int | None

    @classmethod
    def parse(cls, text: str) -> Authority | None:
        """None when `text` is not a URI authority this host can connect to
        (user information is refused: nothing here would send it)."""
        if "@" in text:
            return None
        if text.startswith("["):
            host, bracket, rest = text[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                return None
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                return None
            port_text = rest[1:] if rest else None
        else:
            host, colon, port = text.partition(":")
            if not host or not _REG_NAME.fullmatch(host):
                return None
            port_text = port if colon else None
        if port_text is None:
            return cls(host, None)
        if not port_text.isdigit() or not port_text.isascii() or int(port_text) > 65535:
            return None
        return cls(host, int(port_text))

    def with_default_port(self, port: int) -> str:
        """The authority as the Host header carries it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None or self.port == port else f"{host}:{self.port}"


def content_length(headers: Fields) -> int | None:
    """The declared Content-Length; ValueError if it is not one number."""
    values = {value.strip() for value in headers.get("content-length")}
    if not values:
        return None
    if len(values) > 1:
        raise ValueError("conflicting Content-Length values")
    (value,) = values
    if not value.isdigit():
        raise ValueError(f"bad Content-Length {value!r}")
    return int(value)


def _body_of(context: str, headers: Fields) -> OutgoingBody:
    try:
        length = content_length(headers)
    except ValueError:
        raise ErrorValue() from None
    return OutgoingBody(context, length)


class _OutgoingMessage:
    """What an outgoing request and response share: headers the guest can
    no longer change, and a body taken at most once."""

    role: str

    def __init__(self, headers: Fields):
        headers.mutable = False
        self.headers = headers
        self.body: OutgoingBody | None = None

    def take_body(self) -> OutgoingBody:
        if self.body is not None:
            raise ErrorValue()
        self.body = _body_of(self.role, self.headers)
        return self.body


class OutgoingRequest(_OutgoingMessage):
    role = "request"

    def __init__(self, headers: Fields):
        super().__init__(headers)
        self.method = Case("get")
        self.path_with_query: str | None = None
        self.scheme: Case | None = None
        self.authority: str | None = None

    def set_method(self, method: Case) -> None:
        if method.tag == "other" and not _TOKEN.fullmatch(method.payload):
            raise ErrorValue()
        self.method = method

    def set_path_with_query(self, path: str | None) -> None:
        if path is not None and not _PATH_AND_QUERY.fullmatch(path):
            raise ErrorValue()
        self.path_with_query = path

    def set_scheme(self, scheme: Case | None) -> None:
        if scheme is not None and scheme.tag == "other" and not _SCHEME.fullmatch(scheme.payload):
            raise ErrorValue()
        self.scheme = scheme

    def set_authority(self, authority: str | None) -> None:
        if authority is not None and Authority.parse(authority) is None:
            raise ErrorValue()
        self.authority = authority

    def close(self) -> None:
        # A request dropped before it was sent never sends its body either.
        if self.body is not None:
            self.body.abort(errors.failure("HTTP-protocol-error",
                                           "the request was dropped before it was sent"))


@dataclass
class RequestOptions:
    """Timeouts in nanoseconds; None: the host's default."""

    connect_timeout: int | None = None
    first_byte_timeout: int | None = None
    between_bytes_timeout: int | None = None


class _IncomingMessage:
    """What a received request and response share: a body the guest may
    consume once, closed with the message if it never was."""

    body: IncomingBody | None

    def consume(self) -> IncomingBody:
        if self.body is None:
            raise ErrorValue()
        body, self.body = self.body, None
        return body

    def close(self) -> None:
        if self.body is not None:
            self.body.close()


class IncomingResponse(_IncomingMessage):
    """A received response: status, immutable headers, and its body once."""

    def __init__(self, status: int, headers: Fields, body: IncomingBody):
        self.status = status
        self.headers = headers
        self.body: IncomingBody | None = body


@dataclass
class IncomingRequest(_IncomingMessage):
    """A received request (built by the server side). `scheme` and
    `authority` are what the server knows of how it was reached."""

    method: Case
    path_with_query: str | None
    scheme: Case | None
    authority: str | None
    headers: Fields
    body: IncomingBody | None = field(default=None)


class OutgoingResponse(_OutgoingMessage):
    role = "response"

    def __init__(self, headers: Fields):
        super().__init__(headers)
        self.status = 200

    def set_status(self, status: int) -> None:
        if not 100 <= status <= 999:
            raise ErrorValue()
        self.status = status

    def close(self) -> None:
        if self.body is not None:
            self.body.abort(errors.failure("HTTP-protocol-error",
                                           "the response was dropped before it was sent"))


#: What `response-outparam.set` hands to the server: Ok(OutgoingResponse) or Err(error-code).
ResponseResult = Ok | Err


class ResponseOutparam:
    """Where a handler's response goes. `deliver` (the server's) receives
    `set`'s argument, or an `internal-error` when the guest drops the
    outparam without setting it."""

    def __init__(self, deliver: Callable[[ResponseResult], None]):
        self._deliver = deliver
        self.delivered = False

    def set(self, response: ResponseResult) -> None:
        self.delivered = True
        self._deliver(response)

    def close(self) -> None:
        if not self.delivered:
            self.delivered = True
            self._deliver(Err(Case("internal-error",
                                   "the handler dropped its response-outparam without "
                                   "setting a response")))
