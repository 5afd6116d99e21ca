"""wasi:io/error: the `error` resource carried by a failed stream operation."""

from __future__ import annotations

from dataclasses import dataclass

from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx
from ..runtime.resources import Res

interface = Interface(f"wasi:io/error@{WASI_VERSION}")
interface.resource("error", Res.IO_ERROR)


@dataclass
class IoError:
    message: str
    network_code: str | None = None
    filesystem_code: str | None = None
    #: The wasi:http `error-code` (a `Case`) of a failed HTTP body stream.
    http_code: object = None


@interface.func("[method]error.to-debug-string")
def to_debug_string(ctx: WasiCtx, error: IoError) -> str:
    return error.message
