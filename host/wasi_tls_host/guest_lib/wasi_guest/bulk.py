"""Stream bytes past the list<u8> wall, where the host offers a way.

    data = bulk.read(stream, 65536)        # as stream.read(65536)
    data = bulk.blocking_read(stream, 65536)
    bulk.write(stream, data)               # as stream.write(data), within check-write
    moved = bulk.forward(source, sink)     # source -> sink inside the host

A host built on wasmtime's C API (wasi-tls-host is one) receives and sends
every byte of a ``list<u8>`` as a value of its own, which caps a stream at
tens of MB/s. This host's worlds ``tls-server`` and ``tls-full-client``
also import ``wasi-tls-host:io/bulk``, which carries the same bytes in a
string: as they are when they are ASCII, else as hex, both encoded and
decoded in C. ``read``, ``blocking_read`` and ``write`` use it when the
world has it and the standard stream methods otherwise, with the same
results and the same errors either way (``Err(stream-error)`` raised, as
the methods raise it), so the same code runs under any host, ``wasmtime
run`` included. ``AVAILABLE`` says which path is taken.

``forward`` moves bytes between two streams without them entering the
guest at all: a download to a file, or a proxy, runs at the host's own
speed (one call of the interface's ``forward`` where the world has it, the
standard ``blocking-splice`` a chunk elsewhere).
"""

import binascii

from componentize_py_types import Err
from wit_world.imports import streams

try:
    from wit_world.imports import bulk as _host
except ImportError:  # a world without it: the standard methods
    _host = None

AVAILABLE = _host is not None

#: Most bytes one splice moves (the host gives at most 64 KiB a call anyway).
FORWARD_CHUNK = 64 * 1024
_NO_LIMIT = 2**64 - 1


def _bytes_of(chunk):
    if isinstance(chunk, _host.Chunk_Ascii):
        return chunk.value.encode("ascii")
    return binascii.a2b_hex(chunk.value)


def _chunk(data):
    if not isinstance(data, (bytes, bytearray)):
        data = bytes(data)
    if data.isascii():
        return _host.Chunk_Ascii(data.decode("ascii"))
    return _host.Chunk_Hex(data.hex())


def read(input_stream, max_bytes):
    """``input_stream.read(max_bytes)``: bytes, b"" when none are there yet."""
    if _host is None:
        return input_stream.read(max_bytes)
    return _bytes_of(_host.read(input_stream, max_bytes))


def blocking_read(input_stream, max_bytes):
    """``input_stream.blocking_read(max_bytes)``: waits for at least one byte."""
    if _host is None:
        return input_stream.blocking_read(max_bytes)
    return _bytes_of(_host.blocking_read(input_stream, max_bytes))


def write(output_stream, data):
    """``output_stream.write(data)``: ``data`` (bytes-like) must fit what the
    last ``check_write`` allowed, or the host traps."""
    if _host is None:
        output_stream.write(bytes(data))
    else:
        _host.write(output_stream, _chunk(data))


def forward(source, sink, limit=None):
    """Move bytes from ``source`` to ``sink`` inside the host until
    ``source`` ends (or ``limit`` bytes have moved), waiting as needed;
    return how many moved. ``Err(stream-error)`` is raised when ``sink``
    closes or either stream fails; what moved before that is not undone.
    One call where the host has `forward`, else a ``blocking-splice`` a
    chunk."""
    if _host is not None:
        return _host.forward(source, sink, _NO_LIMIT if limit is None else limit)
    moved = 0
    while limit is None or moved < limit:
        want = FORWARD_CHUNK if limit is None else min(FORWARD_CHUNK, limit - moved)
        try:
            moved += sink.blocking_splice(source, want)
        except Err as error:
            if not isinstance(error.value, streams.StreamError_Closed):
                raise
            # Closed names neither stream: the sink answers for itself.
            sink.check_write()
            return moved
    return moved


__all__ = ["AVAILABLE", "blocking_read", "forward", "read", "write"]
