"""Ways past the list<u8> wall, measured side by side in one run.

    python bench/bulk_candidates.py [--size BYTES] [--seconds S] [--rounds N]

A componentize-py guest (bench/guests/bulk-candidates) moves the same bytes
into and out of itself in every form wasmtime's C API could carry them in
and the guest could turn back into bytes in C, through the project's call
layer in this process:

* `list<u8>`: what wasi:io does; one 32-byte value cell per byte;
* `list<u64>`: an eighth of the cells; the host packs eight bytes into each
  (this script adds a block lowering and lifting of list<u64> to the codec
  for the purpose), the guest unpacks them with `array`/`memoryview.cast`;
* `string`, as `ascii` (bytes below 0x80 only: the string is the bytes),
  `hex`, `base64`, or `latin-1` (one character per byte, so the UTF-8 of
  the bytes above 0x7f is two bytes long).

The forms take turns within each round; the table gives medians and each
form against list<u8>. `run.py` (`make bench`) runs this as its `bulk`
scenario, and bench/README.md discusses the result; the choice it backs is
in host/wasi_tls_host/io/bulk.py.
"""

from __future__ import annotations

import argparse
import binascii
import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime import component as wc

from wasi_tls_host import interfaces as registry
from wasi_tls_host.config import HostConfig
from wasi_tls_host.guest_tools import componentize_environment, copy_wit
from wasi_tls_host.host import add_to_linker
from wasi_tls_host.runtime import codec
from wasi_tls_host.runtime.calls import Interface, link
from wasi_tls_host.runtime.context import WasiCtx

HERE = Path(__file__).resolve().parent
APP = HERE / "guests" / "bulk-candidates"
BUILD = HERE.parent / "build" / "bench"
GUEST = BUILD / "bulk-candidates.wasm"
WORLD = "wasi-tls-host-bench:candidates/candidates-guest"
COMPONENTIZE_PY = Path(sys.executable).with_name("componentize-py")

SIZE = 64 * 1024
#: The host's bytes: random, and the same masked to ASCII for `ascii`.
BINARY = os.urandom(SIZE)
TEXT = BINARY.translate(bytes(i & 0x7F for i in range(256)))


def build_guest() -> Path:
    """The candidates guest, rebuilt when its app or WIT is newer."""
    sources = [APP / "app.py", APP / "candidates.wit"]
    if GUEST.exists() and GUEST.stat().st_mtime > max(p.stat().st_mtime for p in sources):
        return GUEST
    BUILD.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bulk-candidates-wit-") as wit:
        copy_wit(Path(wit))
        (Path(wit) / "deps" / "candidates").mkdir()
        shutil.copy(APP / "candidates.wit", Path(wit) / "deps" / "candidates")
        subprocess.run([str(COMPONENTIZE_PY), "-d", wit, "-w", WORLD, "--features", "tls",
                        "componentize", "-p", str(APP), "app", "-o", str(GUEST)],
                       check=True, stdout=subprocess.DEVNULL,
                       env=componentize_environment())
    return GUEST


# -- list<u64> in blocks: what the codec would need for this form -------------

K_U64 = ffi.WASMTIME_COMPONENT_U64.value
CELL = codec.CELL


class _WordCells:
    """A reusable buffer of u64 cells, their kind bytes written once."""

    def __init__(self) -> None:
        self.cells = bytearray()
        self.address = 0
        self._view: Any = None

    def holding(self, count: int) -> memoryview:
        if len(self.cells) < count * CELL:
            self.cells = bytearray(count * CELL)
            self.cells[0::CELL] = bytes((K_U64,)) * count
            self._view = (ctypes.c_char * len(self.cells)).from_buffer(self.cells)
            self.address = ctypes.addressof(self._view)
        return memoryview(self.cells).cast("Q")


_WORDS = _WordCells()
_lift_list = codec._LIFT_BUILDERS[wc.ListType]
_lower_list = codec._LOWER_BUILDERS[wc.ListType]


def _lift_words(scope: codec.CallScope, c: Any) -> bytes:
    count = c.of.list.size
    words = _WORDS.holding(count)
    ctypes.memmove(_WORDS.address, c.of.list.data, count * CELL)
    return words[1:count * 4:4].tobytes()


def _lower_words(scope: codec.CallScope, value: bytes, dst: Any) -> None:
    count = len(value) // 8
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(raw, count)
    _WORDS.holding(count)[1:count * 4:4] = memoryview(value).cast("Q")
    ctypes.memmove(raw.data, _WORDS.address, count * CELL)
    dst.kind = codec.K_LIST
    dst.of.list = raw


def _with_block_words() -> None:
    codec._LIFT_BUILDERS[wc.ListType] = lambda ty: (
        _lift_words if isinstance(ty.element, wc.U64) else _lift_list(ty))
    codec._LOWER_BUILDERS[wc.ListType] = lambda ty, ids: (
        _lower_words if isinstance(ty.element, wc.U64) else _lower_list(ty, ids))


# -- the host side of each form -------------------------------------------------

def _expect(data: bytes, expected: bytes = BINARY) -> None:
    if data != expected[:len(data)]:
        raise ValueError("the guest's bytes arrived changed")


candidates = Interface("wasi-tls-host-bench:candidates/candidates@0.1.0")
candidates.func("read-list-u8")(lambda ctx, n: BINARY[:n])
candidates.func("read-list-u64")(lambda ctx, n: BINARY[:n])
candidates.func("read-ascii")(lambda ctx, n: TEXT[:n])
candidates.func("read-hex")(lambda ctx, n: binascii.b2a_hex(BINARY[:n]))
candidates.func("read-base64")(lambda ctx, n: binascii.b2a_base64(BINARY[:n], newline=False))
candidates.func("read-latin1")(lambda ctx, n: BINARY[:n].decode("latin-1"))
candidates.func("read-nothing")(lambda ctx, n: n)
candidates.func("write-list-u8")(lambda ctx, data: _expect(data))
candidates.func("write-list-u64")(lambda ctx, data: _expect(data))
candidates.func("write-ascii")(lambda ctx, text: _expect(text.encode("ascii"), TEXT))
candidates.func("write-hex")(lambda ctx, text: _expect(binascii.a2b_hex(text)))
candidates.func("write-base64")(lambda ctx, text: _expect(binascii.a2b_base64(text)))
candidates.func("write-latin1")(lambda ctx, text: _expect(text.encode("latin-1")))


def run_guest(size: int, seconds: float, rounds: int) -> dict[str, list[float]]:
    """The guest's JSON line: MB/s per form and round."""
    _with_block_words()
    engine = wasmtime.Engine()
    component = wc.Component.from_file(engine, str(build_guest()))
    out = tempfile.TemporaryFile()
    ctx = WasiCtx(HostConfig(args=["bulk-candidates", str(size), str(seconds), str(rounds)],
                             stdout=out))
    linker = wc.Linker(engine)
    try:
        add_to_linker(linker, ctx, registry.load(registry.imported_by(
            component.type.imports(engine))))
        with linker.root() as root:
            link(root, ctx, [candidates])
        store = wasmtime.Store(engine)
        instance = linker.instantiate(store, component)
        run = instance.get_func(store, instance.get_export_index(
            store, "run", instance.get_export_index(store, "wasi:cli/run@0.2.8")))
        run(store)
    finally:
        ctx.close()
        linker.close()
    if ctx.host_bug:
        raise RuntimeError(ctx.host_bug)
    out.seek(0)
    return json.loads(out.read().decode().strip().splitlines()[-1])


def host_codec_mb_s(seconds: float = 0.2) -> dict[str, float]:
    """The host's own encoding and decoding of SIZE bytes (native CPython)."""
    hex_text, base64_text = binascii.b2a_hex(BINARY), binascii.b2a_base64(BINARY)
    work = {"encode hex": lambda: binascii.b2a_hex(BINARY),
            "decode hex": lambda: binascii.a2b_hex(hex_text),
            "encode base64": lambda: binascii.b2a_base64(BINARY, newline=False),
            "decode base64": lambda: binascii.a2b_base64(base64_text)}
    rates = {}
    for name, step in work.items():
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            step()
            count += 1
        rates[name] = count * SIZE / elapsed / 1e6
    return rates


FORMS = ("list<u8>", "list<u64>", "ascii", "hex", "base64", "latin-1")


def print_table(results: dict[str, list[float]], host: dict[str, float], size: int) -> None:
    mb_s = {name: median(samples) for name, samples in results.items()}
    print(f"{'form':<10}  {'into the guest':>14}  {'x list<u8>':>10}  {'out of it':>10}  "
          f"{'x list<u8>':>10}")
    for form in FORMS:
        into, out = mb_s[f"read {form}"], mb_s[f"write {form}"]
        print(f"{form:<10}  {into:9.1f} MB/s  {into / mb_s['read list<u8>']:9.1f}x  "
              f"{out:5.1f} MB/s  {out / mb_s['write list<u8>']:9.1f}x")
    print(f"  {size} bytes a call; ascii carries only bytes below 0x80, the others random "
          f"bytes; a call that moves none takes {size / mb_s['read nothing']:.1f} us")
    print(f"  the guest decoding alone: hex {mb_s['decode hex']:.0f} MB/s, base64 "
          f"{mb_s['decode base64']:.0f} MB/s; the host (native): "
          + ", ".join(f"{name} {rate:.0f} MB/s" for name, rate in host.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=SIZE, help="bytes per call (default 65536)")
    parser.add_argument("--seconds", type=float, default=0.3,
                        help="seconds per form and round (default 0.3)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    args = parser.parse_args()
    if not 8 <= args.size <= SIZE or args.size % 8:
        parser.error(f"--size must be a multiple of 8 from 8 to {SIZE}")
    results = run_guest(args.size, args.seconds, args.rounds)
    print_table(results, host_codec_mb_s(), args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
