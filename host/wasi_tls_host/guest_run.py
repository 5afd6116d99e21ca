"""How a guest run ends, and a run on a thread of its own.

A run ends with the guest's exit status, or with a `GuestTrap` whose `kind`
says why: the guest trapped ("trap"), ran out of time ("timeout"), did not
fit in its memory limit ("memory"), burned its fuel ("fuel"), was stopped
("stopped"), or a host function failed ("host-bug"). `ending` decides which
from what the run left behind: the context (an exit, a host defect), the
stop switch (its reason), the store (fuel left) and wasmtime's message,
which it cuts down to the one line a person reads; the wasm backtrace stays
in `GuestTrap.details`.
"""

from __future__ import annotations

import atexit
import re
import threading
from collections.abc import Callable

import wasmtime

from .config import Limits
from .runtime.context import WasiCtx
from .runtime.poll import StopSwitch

#: The exit status of each way a guest ends badly: 134 as `wasmtime run`
#: reports a trap (128 + SIGABRT), 124 for a timeout as coreutils `timeout`,
#: 143 (128 + SIGTERM) for a guest an embedder stopped.
EXIT_STATUSES = {"trap": 134, "memory": 134, "fuel": 134, "host-bug": 134,
                 "timeout": 124, "stopped": 143}


class GuestTrap(Exception):
    """The guest ended without an exit status of its own.

    `kind` is one of "trap", "timeout", "memory", "fuel", "stopped" and
    "host-bug"; `message` is one line for a person; `exit_status` is what the
    command line exits with; `details` is wasmtime's full report, with the
    guest's wasm backtrace (empty when there is none).

    "memory" is reported where the host can tell (the guest cannot even be
    instantiated within `Limits.max_memory`); a guest that turned a refused
    allocation into an exception of its own ends as "trap", and its message
    names the memory limit in force.
    """

    def __init__(self, message: str, kind: str = "trap", details: str = ""):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.exit_status = EXIT_STATUSES[kind]
        self.details = details


def ending(error: wasmtime.WasmtimeError, ctx: WasiCtx, switch: StopSwitch,
           store: wasmtime.Store, limits: Limits) -> int:
    """The exit status of a run that wasmtime ended with `error`, or the
    GuestTrap (or KeyboardInterrupt) that says why it ended otherwise."""
    details = str(error)
    if ctx.interrupted is not None:
        raise ctx.interrupted
    if ctx.exit_code is not None:
        return ctx.exit_code
    if switch.reason is not None:
        raise stopped(switch.reason, limits, details)
    burnt = out_of_fuel(store, limits, details)
    if burnt is not None:
        raise burnt
    if ctx.host_bug is not None:
        raise GuestTrap(f"the guest trapped: {ctx.host_bug}", "host-bug", details)
    panic = " after a panic" if "rust_panic" in details else ""
    raise GuestTrap(f"the guest trapped{panic}: {cause(details)}{memory_note(limits)}", "trap",
                    details)


def stopped(reason: str, limits: Limits, details: str = "") -> BaseException:
    """What a run ends with once its stop switch was set for `reason`."""
    if reason == "interrupted":
        return KeyboardInterrupt()
    if reason == "timeout":
        return GuestTrap(f"the guest ran past its time limit ({limits.describe_timeout()})",
                         "timeout", details)
    if reason == "grace":
        return GuestTrap("the guest was stopped: still running at the end of its grace "
                         "period after SIGTERM", "stopped", details)
    return GuestTrap("the guest was stopped", "stopped", details)


def out_of_fuel(store: wasmtime.Store, limits: Limits, details: str) -> GuestTrap | None:
    """The GuestTrap for a guest that burnt all its fuel, if it did."""
    if limits.fuel is None or store.get_fuel() != 0:
        return None
    return GuestTrap(f"the guest ran out of fuel ({limits.describe_fuel()})", "fuel", details)


def memory_note(limits: Limits) -> str:
    return f" ({limits.describe_memory()})" if limits.max_memory is not None else ""


#: How wasmtime says a store's limits refused an instantiation.
_BEYOND_LIMITS = re.compile(r"exceeds (memory|table) limits")


def instantiation_refused(error: wasmtime.WasmtimeError, limits: Limits) -> GuestTrap | None:
    """The GuestTrap for an instantiation the memory limit refused, if it was that."""
    if limits.max_memory is None or not _BEYOND_LIMITS.search(str(error)):
        return None
    return GuestTrap(f"the guest does not fit in its memory limit: {cause(str(error))}"
                     f"{memory_note(limits)}", "memory", str(error))


def cause(details: str) -> str:
    """The line of wasmtime's report that says what happened, without the
    backtrace: the last line under "Caused by:", else the first line."""
    lines = [line.strip() for line in details.strip().splitlines()]
    if "Caused by:" in lines:
        causes = [line for line in lines[lines.index("Caused by:") + 1:] if line]
        if causes:
            line = re.sub(r"^\d+: ", "", causes[-1])
            return line.removeprefix("wasm trap: ")
    return lines[0] if lines else "unknown trap"


class GuestRun:
    """A guest running on a thread of its own (`Host.start`).

    `stop()` may be called from any thread, any number of times: the guest
    ends within about a second, whether computing or waiting in `poll`, and
    `wait()` then raises GuestTrap with kind "stopped". Other guests on the
    same Host go on untouched.
    """

    def __init__(self, body: Callable[[], int], switch: StopSwitch, name: str):
        self._switch = switch
        self._finished = threading.Event()
        self._status: int | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._on_done: list[Callable[[], None]] = []
        # A daemon thread: a guest left running does not keep the program
        # alive; `_stop_the_rest` ends it before the interpreter goes.
        self._thread = threading.Thread(target=self._main, args=(body,), name=name, daemon=True)
        with _RUNNING_LOCK:
            _RUNNING.add(self)
        self._thread.start()

    def _main(self, body: Callable[[], int]) -> None:
        try:
            self._status = body()
        except BaseException as error:  # handed to whoever waits
            self._error = error
        finally:
            with self._lock:
                self._finished.set()
                callbacks, self._on_done = self._on_done, []
            with _RUNNING_LOCK:
                _RUNNING.discard(self)
            for callback in callbacks:
                callback()

    def stop(self) -> None:
        """End the guest (thread-safe; nothing happens once it has ended)."""
        self._switch.request("stopped")

    def drain(self, grace: float) -> None:
        """Wind the guest down, as SIGTERM does under `wasi-tls-host run`
        (thread-safe; only the first call counts): its listeners close at
        its next wait, so its servers stop accepting while its connections
        go on; if it has not ended `grace` seconds later, it is stopped and
        `wait()` raises GuestTrap with kind "stopped"."""
        self._switch.drain(grace)

    def wait(self, timeout: float | None = None) -> int:
        """The guest's exit status, once it has ended; raises its GuestTrap
        (or HostError), or TimeoutError when `timeout` seconds pass first."""
        if not self._finished.wait(timeout):
            raise TimeoutError(f"the guest is still running after {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._status is not None
        return self._status

    @property
    def done(self) -> bool:
        """Whether the guest has ended."""
        return self._finished.is_set()

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call `callback()` once the guest has ended (at once if it has), on
        the guest's thread; it must not block."""
        with self._lock:
            if not self._finished.is_set():
                self._on_done.append(callback)
                return
        callback()


_RUNNING: set[GuestRun] = set()
_RUNNING_LOCK = threading.Lock()
#: How long the interpreter's exit waits for the guests it stopped.
EXIT_WAIT_S = 2.0


@atexit.register
def _stop_the_rest() -> None:
    """Stop guests still running when the program exits, so that none runs
    while the interpreter is torn down."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for run in running:
        run.stop()
    for run in running:
        run._finished.wait(EXIT_WAIT_S)
