"""`future<T>` for the guest: pending, then ready, then consumed by the one `get`.

Every future resource of every interface (the TLS handshakes of both TLS
interfaces, and the wasi:http responses and bodies) is a `Future` whose
`settle` callback says how the operation ended; `subscribe_future` makes its
pollable. The WIT's `get` shape (none while pending, err after the value was
taken, ok(err) or ok(ok) once) is spelled once, in `Future.get`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .poll import NEVER, Pollable, WaitSpec
from .values import Child, Err, Ok

if TYPE_CHECKING:
    from .context import WasiCtx


class FutureState(enum.Enum):
    PENDING = "pending"
    READY = "ready"
    CONSUMED = "consumed"


@dataclass(frozen=True)
class Ready:
    """A future's outcome when the operation succeeded."""

    value: object


@dataclass(frozen=True)
class Failed:
    """A future's outcome when the operation failed; `message` says why."""

    message: str


class AlreadyTaken(Exception):
    """`get` after the one that returned the value."""


class Future:
    """`future<T>` for the guest.

    `settle()` returns None while pending, then a `Ready` or a `Failed`
    once the operation is over; it may pump. `take()` returns None while
    pending, the outcome exactly once, then raises AlreadyTaken.
    `on_drop` runs if the guest drops the future before taking its value.
    """

    def __init__(self, settle: Callable[[], Ready | Failed | None],
                 wait_on: Callable[[], WaitSpec] = lambda: NEVER,
                 on_drop: Callable[[], None] | None = None):
        self._settle = settle
        self._wait_on = wait_on
        self._on_drop = on_drop
        self.state = FutureState.PENDING
        self._outcome: Ready | Failed | None = None

    @classmethod
    def resolved(cls, outcome: Ready | Failed) -> Future:
        future = cls(lambda: outcome)
        future.ready()
        return future

    def ready(self) -> bool:
        if self.state is FutureState.PENDING:
            outcome = self._settle()
            if outcome is None:
                return False
            self._outcome = outcome
            self.state = FutureState.READY
        return True

    def wait_on(self) -> WaitSpec:
        return self._wait_on() if self.state is FutureState.PENDING else NEVER

    def take(self) -> Ready | Failed | None:
        if self.state is FutureState.CONSUMED:
            raise AlreadyTaken()
        if not self.ready():
            return None
        self.state = FutureState.CONSUMED
        outcome, self._outcome = self._outcome, None
        return outcome

    def get(self, failure: Callable[[Failed], object] = lambda failed: None,
            success: Callable[[object], object] = lambda value: value) -> object:
        """`get` as the WIT spells it for `future<T>`: none while pending, err
        once the value was taken, ok(err(failure)) or ok(ok(success(value)))."""
        try:
            outcome = self.take()
        except AlreadyTaken:
            return Err()
        if outcome is None:
            return None
        if isinstance(outcome, Failed):
            return Ok(Err(failure(outcome)))
        return Ok(Ok(success(outcome.value)))

    def close(self) -> None:
        if self.state is not FutureState.CONSUMED and self._on_drop is not None:
            self._on_drop()


def subscribe_future(ctx: WasiCtx, future: Future) -> Child:
    """`subscribe` for every future of both interfaces: a pollable, child of the future."""
    return Child(Pollable(future), future)
