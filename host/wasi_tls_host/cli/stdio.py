"""wasi:cli/stdin, stdout, stderr: the guest's standard streams.

Each call hands out a new handle on the same host stream, so dropping one
handle never closes the process's stdio.
"""

from __future__ import annotations

from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.context import WasiCtx
from ..runtime.poll import WaitSpec
from ..runtime.resources import Res
from ..runtime.streams import InputStream, OutputStream, StreamClosed, StreamFailed


class _SharedInput(InputStream):
    def __init__(self, inner: InputStream):
        self.inner = inner

    def read(self, max_bytes: int) -> bytes:
        return self.inner.read(max_bytes)

    def ready(self) -> bool:
        return self.inner.ready()

    def wait_on(self) -> WaitSpec:
        return self.inner.wait_on()


class _SharedOutput(OutputStream):
    def __init__(self, inner: OutputStream):
        self.inner = inner
        self.dropped = False

    def check_write(self) -> int:
        if self.dropped:
            raise StreamClosed()
        return self.inner.check_write()

    def write(self, data: bytes) -> None:
        self.inner.write(data)

    def flush(self) -> None:
        self.inner.flush()

    def ready(self) -> bool:
        return self.inner.ready()

    def wait_on(self) -> WaitSpec:
        return self.inner.wait_on()

    def close(self) -> None:
        self.dropped = True
        try:
            self.inner.flush()
        except (StreamClosed, StreamFailed):
            pass


stdin = Interface(f"wasi:cli/stdin@{WASI_VERSION}")
stdin.resource("input-stream", Res.INPUT_STREAM)
stdout = Interface(f"wasi:cli/stdout@{WASI_VERSION}")
stdout.resource("output-stream", Res.OUTPUT_STREAM)
stderr = Interface(f"wasi:cli/stderr@{WASI_VERSION}")
stderr.resource("output-stream", Res.OUTPUT_STREAM)


@stdin.func("get-stdin")
def get_stdin(ctx: WasiCtx) -> InputStream:
    return _SharedInput(ctx.stdin)


@stdout.func("get-stdout")
def get_stdout(ctx: WasiCtx) -> OutputStream:
    return _SharedOutput(ctx.stdout)


@stderr.func("get-stderr")
def get_stderr(ctx: WasiCtx) -> OutputStream:
    return _SharedOutput(ctx.stderr)


interfaces = [stdin, stdout, stderr]
