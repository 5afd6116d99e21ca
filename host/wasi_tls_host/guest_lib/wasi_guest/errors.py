"""Exception types for wasi_guest.  Each carries ``code``: the WIT name of the
WASI error (e.g. ``"access-denied"``, ``"no-entry"``), which is also str(exc)
unless a detail was given."""


def code_name(value) -> str:
    """WIT spelling of a generated enum member: ErrorCode.ACCESS_DENIED ->
    "access-denied".  Anything else falls back to str()."""
    name = getattr(value, "name", None)
    if isinstance(name, str):
        return name.lower().replace("_", "-")
    return str(value)


class WasiError(Exception):
    """Base class: a WASI call failed with error ``code``."""

    code = "unknown"

    def __init__(self, code=None, detail=None):
        if code is not None:
            self.code = code
        self.detail = detail
        super().__init__(self.code if detail is None else f"{self.code}: {detail}")


class NetError(WasiError):
    """A wasi:sockets call failed; ``code`` is a wasi:sockets/network
    error-code name such as "connection-refused"."""


class FsError(WasiError):
    """A wasi:filesystem call failed; ``code`` is a wasi:filesystem/types
    error-code name such as "no-entry"."""


class StreamClosed(WasiError):
    """The stream was closed (end of input / peer gone)."""

    code = "closed"


class UnexpectedEof(StreamClosed):
    """The input stream ended before the expected number of bytes arrived.
    ``data`` holds what was read."""

    code = "unexpected-eof"

    def __init__(self, data=b"", expected=None):
        self.data = bytes(data)
        self.expected = expected
        super().__init__(detail=f"got {len(self.data)} of {expected} bytes")


class Timeout(WasiError):
    """A wait passed its deadline (see `tasks.Until`); ``detail`` says what
    was being waited for."""

    code = "timeout"


class StreamFailed(WasiError):
    """The last stream operation failed (wasi:io/streams last-operation-failed).
    ``detail`` holds the host's debug string for the wasi:io/error."""

    code = "last-operation-failed"
