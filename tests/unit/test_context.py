"""The per-store context: drops, misuse messages and cleanup."""

import re
from itertools import count

import pytest
from wasmtime import WasmtimeError

from wasi_tls_host.config import HostConfig
from wasi_tls_host.random.insecure_seed import insecure_seed
from wasi_tls_host.runtime.calls import Destructor, check_error
from wasi_tls_host.runtime.context import WasiCtx
from wasi_tls_host.runtime.poll import Pollable
from wasi_tls_host.runtime.resources import Res
from wasi_tls_host.runtime.streams import Pipe

DROP_INPUT = "wasi:io/streams@0.2.9#[resource-drop]input-stream"
DROP_OUTPUT = "wasi:io/streams@0.2.9#[resource-drop]output-stream"


def drop(ctx, type_id, name, rep):
    """What wasmtime does when the guest drops handle `rep`."""
    check_error(Destructor(ctx, type_id, name).invoke(rep))


def test_dropping_a_stream_with_a_live_pollable_names_the_problem():
    ctx = WasiCtx(HostConfig())
    pipe = Pipe()
    stream_rep = ctx.table.push(pipe.input, Res.INPUT_STREAM)
    ctx.table.push(Pollable(pipe.input), Res.POLLABLE, parent=pipe.input)
    with pytest.raises(WasmtimeError, match=rf"^{re.escape(DROP_INPUT)}: resource {stream_rep} "
                                            r"still has 1 child"):
        drop(ctx, Res.INPUT_STREAM, DROP_INPUT, stream_rep)
    ctx.close()


def test_drop_closes_the_host_object():
    ctx = WasiCtx(HostConfig())
    pipe = Pipe()
    rep = ctx.table.push(pipe.output, Res.OUTPUT_STREAM)
    drop(ctx, Res.OUTPUT_STREAM, DROP_OUTPUT, rep)
    assert pipe.writer_closed
    assert len(ctx.table) == 0


def test_close_releases_everything_the_guest_left_open():
    ctx = WasiCtx(HostConfig())
    pipes = [Pipe() for _ in range(3)]
    for pipe in pipes:
        ctx.table.push(pipe.output, Res.OUTPUT_STREAM)
    ctx.close()
    assert all(pipe.writer_closed for pipe in pipes)
    assert len(ctx.table) == 0


def test_the_insecure_seed_is_drawn_once_per_store():
    draws = count(1)

    def numbered(length):
        return bytes([next(draws)]) * length

    first, second = (WasiCtx(HostConfig(insecure_random=numbered)) for _ in range(2))
    assert first.random.insecure_seed is None
    seed = insecure_seed(first)
    assert seed == (0x0101010101010101, 0x0101010101010101)
    assert insecure_seed(first) == seed and first.random.insecure_seed == b"\x01" * 16
    assert insecure_seed(second) == (0x0202020202020202, 0x0202020202020202)
    first.close()
    second.close()
