"""wasi:cli/exit: end the guest with a status (recorded, then unwound as a trap)."""

from __future__ import annotations

from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx
from ..runtime.errors import GuestExit
from ..runtime.values import Err, Ok

interface = Interface(f"wasi:cli/exit@{WASI_VERSION}")


@interface.func("exit")
def exit_(ctx: WasiCtx, status: Ok | Err) -> None:
    raise GuestExit(0 if isinstance(status, Ok) else 1)


@interface.func("exit-with-code")
def exit_with_code(ctx: WasiCtx, status_code: int) -> None:
    raise GuestExit(status_code)
