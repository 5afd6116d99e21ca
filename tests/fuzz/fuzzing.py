"""What the fuzz and stateful tests share: how hard they try, how real bytes
are mutated, a guard against hangs, the TLS core's contract, and the tally
`make fuzz` reports.

The number of examples each test asks for is what `make test` runs (the whole
directory in well under a minute); `make fuzz` sets $WASI_TLS_HOST_FUZZ_SCALE
to 100 and every test runs a hundred times as many.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from wasi_tls_host.tls import CoreState, ErrorKind, TlsCore, TlsFailure

SCALE_VARIABLE = "WASI_TLS_HOST_FUZZ_SCALE"
SCALE = max(1, int(os.environ.get(SCALE_VARIABLE) or 1))

#: Examples (or state-machine steps) run per test in this session, by name;
#: tests/fuzz/conftest.py prints it at the end of the run.
TALLY: Counter[str] = Counter()

#: Longest any single call into the code under test may take before it counts as a hang.
HANG_SECONDS = 20


def fuzz_settings(examples: int, **overrides) -> settings:
    """`examples` under `make test`, SCALE times as many under `make fuzz`.
    No per-example deadline: the machine is shared and slow examples are not
    failures; `no_hang` catches the ones that never end."""
    return settings(max_examples=examples * SCALE, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large],
                    **overrides)


class Hang(AssertionError):
    """A call into the code under test ran longer than HANG_SECONDS."""


@contextlib.contextmanager
def no_hang(what: str, seconds: float = HANG_SECONDS) -> Iterator[None]:
    """Raise `Hang` inside the block if it runs longer than `seconds` (main
    thread only, where SIGALRM is delivered; elsewhere it only runs the block)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise Hang(f"{what} did not return within {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- mutations of real bytes ---------------------------------------------------
#
# A mutation is drawn without knowing the bytes it will apply to (positions
# are taken modulo the length), so one strategy serves every seed, and
# hypothesis can shrink a failure to the one edit that matters.

#: Values that make length fields interesting: empty, off by one, the
#: largest record (2^14), the largest a 2- or 3-byte length can say.
BOUNDARY_LENGTHS = (0, 1, 2, 3, 4, 5, 0x7F, 0x80, 0xFF, 0x100, 0x3FFF, 0x4000, 0x4001,
                    0x4100, 0x4101, 0x7FFF, 0x8000, 0xFFFF)

_EDITS = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(1, 255)),
    st.tuples(st.just("set"), st.integers(0, 1 << 20), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 20), st.integers(1, 64)),
    st.tuples(st.just("length16"), st.integers(0, 1 << 20), st.sampled_from(BOUNDARY_LENGTHS)),
    st.tuples(st.just("length24"), st.integers(0, 1 << 20),
              st.sampled_from(BOUNDARY_LENGTHS + (0x10000, 0x10001, 0xFFFFFF))),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20), st.just(0)),
)

#: A list of 1 to 6 edits; apply with `mutate`.
mutations = st.lists(_EDITS, min_size=1, max_size=6)


def mutate(data: bytes, edits: list[tuple]) -> bytes:
    """`data` with each edit applied in turn."""
    out = bytearray(data)
    for kind, where, value in edits:
        position = where % (len(out) + 1)
        if kind == "flip" and position < len(out):
            out[position] ^= value
        elif kind == "set" and position < len(out):
            out[position] = value
        elif kind == "insert":
            out[position:position] = value
        elif kind == "delete":
            del out[position:position + value]
        elif kind == "length16":
            out[position:position + 2] = value.to_bytes(2, "big")
        elif kind == "length24":
            out[position:position + 3] = value.to_bytes(3, "big")
        elif kind == "truncate":
            del out[position:]
    return bytes(out)


#: Sizes in which a byte stream is cut before delivery; they cycle.
split_sizes = st.lists(st.integers(1, 2048), min_size=1, max_size=8)


def pieces(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """`data` cut into consecutive pieces whose sizes cycle through `sizes`."""
    position, index = 0, 0
    while position < len(data):
        size = sizes[index % len(sizes)]
        yield data[position:position + size]
        position += size
        index += 1


# -- the TLS core's contract ------------------------------------------------------

#: TlsFailures that report a problem without breaking the connection:
#: truncation (reported once by `read`), use after close, writing after a
#: ragged EOF, a post-handshake request that cannot be made.
NOT_STICKY = {ErrorKind.TRUNCATED, ErrorKind.CLOSED, ErrorKind.EOF, ErrorKind.CONFIGURATION}
#: Calls that must never raise, whatever state the core is in.
NEVER_RAISE = {"ciphertext_to_send", "ciphertext_pending", "wants_ciphertext", "read_ready"}
#: Calls that must raise the sticky error once the core is broken.
RAISE_WHEN_BROKEN = {"handshake", "read", "write"}


class CoreContract:
    """Makes every call on a `TlsCore` and checks the promises of the module doc."""

    def __init__(self, core: TlsCore):
        self.core = core
        self.sticky: TlsFailure | None = None
        self.drained_after_failure = False

    def call(self, name: str, *args):
        """The call's result, or the TlsFailure it raised."""
        was_broken = self.core.error is not None
        try:
            with no_hang(f"TlsCore.{name}"):
                result = getattr(self.core, name)(*args)
        except TlsFailure as failure:
            assert name not in NEVER_RAISE, f"{name} raised {failure!r}"
            self._check_failure(name, failure)
            return failure
        except Exception as other:  # the finding: report it with the call that raised it
            raise AssertionError(f"TlsCore.{name}{args!r} raised {other!r}, not TlsFailure "
                                 f"(state {self.core.state})") from other
        assert not (was_broken and name in RAISE_WHEN_BROKEN), (
            f"{name} on a broken core returned {result!r} instead of raising")
        self._check_sticky()
        if name == "ciphertext_to_send":
            if self.drained_after_failure:
                assert result == b"", "a broken core sent more after its alert"
            if self.sticky is not None:
                self.drained_after_failure = True
        return result

    def _check_failure(self, name: str, failure: TlsFailure) -> None:
        if self.core.error is None:
            assert failure.kind in NOT_STICKY, (
                f"{name} raised {failure!r} ({failure.kind}) without breaking the connection")
        else:
            assert failure is self.core.error, f"{name} raised {failure!r}, not the sticky error"
        self._check_sticky()

    def _check_sticky(self) -> None:
        error = self.core.error
        if self.sticky is None:
            self.sticky = error
        assert error is self.sticky, "the sticky error changed"
        if error is not None:
            assert self.core.state is CoreState.BROKEN

    def final_checks(self) -> None:
        """A broken core answers every operation with its error."""
        if self.core.error is None:
            return
        for name, args in (("handshake", ()), ("read", (100,)), ("write", (b"x",))):
            assert self.call(name, *args) is self.core.error
        self.call("ciphertext_to_send")
        assert self.call("ciphertext_to_send") == b""
