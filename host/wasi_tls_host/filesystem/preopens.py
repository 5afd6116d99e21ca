"""wasi:filesystem/preopens: the host directories granted with `HostConfig.preopens`.

Each directory is opened once per store, on the first `get-directories`, and
kept in `ctx.filesystem.preopens`; every call hands out new descriptors on those same open
directories (as wasmtime does), so a guest dropping one never closes another.
The store's own reference is released when the context is garbage-collected;
the host directory itself closes once the last descriptor on it is dropped too.
"""

from __future__ import annotations

import weakref

from ..config import Preopen
from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx
from ..runtime.errors import Trap
from ..runtime.resources import Res
from .sandbox import Descriptor, SharedFd, open_preopen, preopen_descriptor

interface = Interface(f"wasi:filesystem/preopens@{WASI_VERSION}")
interface.resource("descriptor", Res.DESCRIPTOR)


@interface.func("get-directories")
def get_directories(ctx: WasiCtx) -> list[tuple[Descriptor, str]]:
    opened = ctx.filesystem.preopens
    if opened is None:
        opened = _open_all(ctx)
    return [(preopen_descriptor(handle, preopen.read_only), preopen.guest_path)
            for preopen, handle in opened]


def _open_all(ctx: WasiCtx) -> list[tuple[Preopen, SharedFd]]:
    opened: list[tuple[Preopen, SharedFd]] = []
    for preopen in ctx.config.preopens:
        try:
            handle = open_preopen(preopen.host_path)
        except OSError as error:
            _release([handle for _, handle in opened])
            raise Trap(f"cannot open the preopened directory {preopen.host_path!r}: "
                       f"{error.strerror or error}") from None
        opened.append((preopen, handle))
    ctx.filesystem.preopens = opened
    weakref.finalize(ctx, _release, [handle for _, handle in opened])
    return opened


def _release(handles: list[SharedFd]) -> None:
    for handle in handles:
        handle.release()
