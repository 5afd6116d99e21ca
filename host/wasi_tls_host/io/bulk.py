"""wasi-tls-host:io/bulk: the bytes of wasi:io streams, carried in strings.

Theory of operation. wasmtime's C API, the only way a host that is not
written in Rust can define a function, hands each byte of a `list<u8>`
over as a 32-byte value cell that wasmtime lowers on its own (wasmtime
issue 11617): about 40 MB/s at best into a guest, whatever the host does.
A `string` crosses the same API as one byte vector, copied as a block. So
this interface carries stream bytes in strings, in one of two forms
chosen per call by whoever has the bytes:

* `ascii`: bytes that are all below 0x80 are valid UTF-8 as they are, so
  the string *is* the bytes: no encoding on either side, only copies.
  Text (HTTP heads, JSON, HTML) usually goes this way.
* `hex`: any bytes, two hexadecimal digits each. Twice the size, but
  CPython encodes and decodes it in C on both sides (`binascii`'s
  hexlify and unhexlify), and in a componentize-py guest that beats every
  other form measured in `bench/bulk_candidates.py`: base64 (a quarter
  smaller but decoded at half the speed), latin-1 characters (non-ASCII
  UTF-8 becomes a Python str slowly in the guest) and `list<u64>` (a
  quarter of the cells, but the guest builds a list of Python ints).

Everything else is the wasi:io function of the same name: the functions
here call `io.streams` for the read or the write itself, so lengths,
permits, waiting and errors cannot drift from the standard methods, and a
guest may mix the two on one stream. A chunk that does not decode is the
guest's misuse: a trap naming the function.

`forward` needs no representation at all: it is `blocking-splice` until the
source ends, in one call, for a guest that only passes bytes on (a download
into a file, a proxy).
"""

from __future__ import annotations

import binascii

from ..runtime.calls import Interface
from ..runtime.context import WasiCtx
from ..runtime.errors import ErrorValue, Trap
from ..runtime.resources import Res
from ..runtime.streams import InputStream, OutputStream
from ..runtime.values import Case
from . import streams

interface = Interface("wasi-tls-host:io/bulk@0.1.0")
interface.resource("input-stream", Res.INPUT_STREAM)
interface.resource("output-stream", Res.OUTPUT_STREAM)


def chunk(data: bytes) -> Case:
    """The `chunk` carrying `data`: as it is when it is ASCII, else in hex."""
    if type(data) is not bytes:  # an embedder's file may read into other buffers
        data = bytes(data)
    if data.isascii():
        return Case("ascii", data)
    return Case("hex", binascii.b2a_hex(data))


def bytes_of(contents: Case) -> bytes:
    """The bytes a guest's `chunk` carries; a trap if it does not decode."""
    text = contents.payload
    if contents.tag == "ascii":
        try:
            return text.encode("ascii")
        except UnicodeEncodeError as error:
            raise Trap(f"an ascii chunk holds {text[error.start]!r} at {error.start}, "
                       "which is above 0x7f") from None
    try:
        return binascii.a2b_hex(text)
    except (binascii.Error, ValueError) as error:
        raise Trap(f"a hex chunk does not decode: {error}") from None


@interface.func("read")
def read(ctx: WasiCtx, source: InputStream, length: int) -> Case:
    return chunk(streams.read(ctx, source, length))


@interface.func("blocking-read")
def blocking_read(ctx: WasiCtx, source: InputStream, length: int) -> Case:
    return chunk(streams.blocking_read(ctx, source, length))


@interface.func("write")
def write(ctx: WasiCtx, sink: OutputStream, contents: Case) -> None:
    streams.write(ctx, sink, bytes_of(contents))


@interface.func("forward")
def forward(ctx: WasiCtx, source: InputStream, sink: OutputStream, length: int) -> int:
    moved = 0
    while moved < length:
        # A copy between streams that are always ready never waits, and
        # only a wait notices a stop request by itself.
        if ctx.stop is not None:
            ctx.stop.check()
        try:
            moved += streams.blocking_splice(ctx, sink, source, length - moved)
        except ErrorValue as error:
            if error.payload != Case("closed"):
                raise
            # `closed` names neither stream: the sink answers for itself.
            streams.check_write(ctx, sink)
            return moved
    return moved
