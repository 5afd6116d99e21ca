"""Message bodies: what the guest reads from and writes into, for either role.

Both directions are wasi:io streams over bounded buffers, so a body is
streamed and never held whole.

Incoming (`incoming-body`, its `input-stream`, `future-trailers`): the
protocol side that receives the message is a `BodySource`; the client's
exchange is one (a response body), the server's connection another (a
request body). The resources here only hand the guest's calls on to it.

Outgoing (`outgoing-body`, its `output-stream`): the guest writes into a
`BodyPipe`, which the protocol side drains once it has a connection to
send on (`attach`). Until then writes wait in the pipe, up to its capacity,
as in wasmtime: a guest that writes more than that before handing over its
request waits for ever (`poll` reports it as a trap instead of hanging).
`finish` checks the length against a declared Content-Length; dropping the
body unfinished aborts the message (the peer sees a broken connection).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..runtime.errors import ErrorValue
from ..runtime.futures import Failed, Future, Ready
from ..runtime.poll import NEVER, WaitSpec
from ..runtime.streams import OUTPUT_BUDGET, InputStream, OutputStream
from ..runtime.values import Case
from . import errors
from .errors import HttpFailure
from .fields import Fields


@dataclass(frozen=True)
class HttpFailed(Failed):
    """A failed HTTP future: `code` is the error-code the guest gets."""

    code: Case = Case("internal-error", None)

    @classmethod
    def of(cls, failure: HttpFailure) -> HttpFailed:
        return cls(failure.message, failure.code)


def take_front(buffer: bytearray, max_bytes: int) -> bytes:
    """Remove and return up to `max_bytes` from the front of `buffer`."""
    data = bytes(buffer[:max_bytes])
    del buffer[:max_bytes]
    return data


# -- incoming -----------------------------------------------------------------------

class BodySource(Protocol):
    """The receiving side of one message, as the body resources see it."""

    def read_body(self, max_bytes: int) -> bytes:
        """Up to `max_bytes` of the body, b"" while none has arrived; raises
        StreamClosed at its end and HttpStreamFailed when it cannot be had."""

    def body_ready(self) -> bool: ...

    def body_wait_spec(self) -> WaitSpec: ...

    def trailers(self) -> Ready | HttpFailed | None:
        """Once the whole message is in (any body not read is skipped):
        Ready(Fields or None), or why it failed; None until then."""

    def trailers_wait_spec(self) -> WaitSpec: ...

    def release(self) -> None:
        """The guest holds nothing of this message any more."""


class IncomingBodyStream(InputStream):
    """The body's contents, a child of the `incoming-body`."""

    def __init__(self, source: BodySource):
        self.source = source

    def read(self, max_bytes: int) -> bytes:
        return self.source.read_body(max_bytes)

    def ready(self) -> bool:
        return self.source.body_ready()

    def wait_on(self) -> WaitSpec:
        return self.source.body_wait_spec()


class IncomingBody:
    """`incoming-body`: its stream can be had once; `finish` turns it into
    the trailers' future; dropping it gives the message up."""

    def __init__(self, source: BodySource):
        self.source = source
        self.stream_taken = False

    def stream(self) -> IncomingBodyStream:
        if self.stream_taken:
            raise ErrorValue()
        self.stream_taken = True
        return IncomingBodyStream(self.source)

    def finish(self) -> FutureTrailers:
        return FutureTrailers(self.source)

    def close(self) -> None:
        self.source.release()


class FutureTrailers(Future):
    """`future-trailers`; dropping it gives the message up."""

    def __init__(self, source: BodySource):
        super().__init__(source.trailers, source.trailers_wait_spec)
        self.source = source

    def close(self) -> None:
        self.source.release()


# -- outgoing -----------------------------------------------------------------------

class Consumer(Protocol):
    """The protocol side that drains a `BodyPipe` onto a connection."""

    def pump(self) -> None: ...

    def body_wait_spec(self) -> WaitSpec:
        """What could make room in the pipe (the connection's readiness)."""


class BodyPipe:
    """Bytes the guest wrote that the connection has not taken yet, and how
    the body ended: `finished` (with `trailers`) or `aborted` (the failure
    the peer should see). `failure` is set by the protocol side when the
    connection cannot take the body any more; the guest's writes then fail."""

    def __init__(self, capacity: int = OUTPUT_BUDGET):
        self.capacity = capacity
        self.buffer = bytearray()
        self.finished = False
        self.trailers: Fields | None = None
        self.aborted: HttpFailure | None = None
        self.failure: HttpFailure | None = None
        self.consumer: Consumer | None = None

    def attach(self, consumer: Consumer) -> None:
        self.consumer = consumer

    def pump(self) -> None:
        if self.consumer is not None:
            self.consumer.pump()

    def take(self, max_bytes: int) -> bytes:
        return take_front(self.buffer, max_bytes)

    @property
    def ended(self) -> bool:
        """Finished, and everything written has been taken."""
        return self.finished and not self.buffer

    @property
    def closed(self) -> bool:
        return self.finished or self.aborted is not None


class OutgoingBodyStream(OutputStream):
    """The `output-stream` of an `outgoing-body` (its child)."""

    def __init__(self, body: OutgoingBody):
        self.body = body
        self.pipe = body.pipe

    def _check(self) -> None:
        failure = self.pipe.failure or self.pipe.aborted
        if failure is not None:
            raise failure.stream_error()

    def check_write(self) -> int:
        self._check()
        self.pipe.pump()
        self._check()
        return max(0, self.pipe.capacity - len(self.pipe.buffer))

    def write(self, data: bytes) -> None:
        self._check()
        self.body.count(len(data))
        self.pipe.buffer += data
        self.pipe.pump()

    def flush(self) -> None:
        self._check()
        self.pipe.pump()

    def wait_on(self) -> WaitSpec:
        consumer = self.pipe.consumer
        return consumer.body_wait_spec() if consumer is not None else NEVER


class OutgoingBody:
    """`outgoing-body` of a request or a response (`context`), with the
    Content-Length its headers declared, if any."""

    def __init__(self, context: str, content_length: int | None):
        self.context = context
        self.content_length = content_length
        self.pipe = BodyPipe()
        self.written = 0
        self.overflow: HttpFailure | None = None
        self.stream_taken = False

    def write(self) -> OutgoingBodyStream:
        if self.stream_taken:
            raise ErrorValue()
        self.stream_taken = True
        return OutgoingBodyStream(self)

    def count(self, length: int) -> None:
        """Account for `length` more bytes; past the declared length the
        write fails, as `HTTP-{context}-body-size`."""
        self.written += length
        if self.content_length is not None and self.written > self.content_length:
            self.overflow = errors.HttpFailure(
                errors.body_size(self.context, self.written),
                f"the {self.context} body is longer than its Content-Length "
                f"({self.content_length} bytes)")
            self.pipe.aborted = self.overflow
            self.pipe.pump()
            raise self.overflow.stream_error()

    def finish(self, trailers: Fields | None) -> None:
        """`finish`: raises ErrorValue(error-code) if the body cannot end well."""
        failure = self._finish_failure(trailers)
        if failure is not None:
            self.abort(failure)
            raise failure.error_value()
        self.pipe.finished = True
        self.pipe.trailers = trailers if trailers else None
        self.pipe.pump()

    def _finish_failure(self, trailers: Fields | None) -> HttpFailure | None:
        if self.overflow is not None:
            return self.overflow
        if self.content_length is not None and self.written != self.content_length:
            return errors.HttpFailure(
                errors.body_size(self.context, self.written),
                f"the {self.context} body has {self.written} of the {self.content_length} "
                f"bytes its Content-Length declared")
        if trailers and self.content_length is not None:
            return errors.internal_error("trailers cannot follow a body with a Content-Length "
                                         "(HTTP/1.1 sends trailers only with chunked bodies)")
        return None

    def abort(self, failure: HttpFailure) -> None:
        if not self.pipe.closed:
            self.pipe.aborted = failure
            self.pipe.pump()

    def close(self) -> None:
        """Dropped without `finish`: the message must not look complete."""
        self.abort(errors.failure("HTTP-protocol-error",
                                  f"the guest dropped the {self.context} body before "
                                  "finishing it"))
