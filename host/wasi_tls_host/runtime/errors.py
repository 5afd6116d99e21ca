"""The three tiers of failure a host function can produce.

1. An *error value*: the function's declared `result<_, E>` carries `err(E)`.
   Raise `ErrorValue(payload)` (or return `Err(payload)`).
2. A *trap*: the guest misused the interface (unknown handle, a write past
   the `check-write` budget, dropping a resource that still has children).
   Raise `Trap(message)`; the call layer names the function.
3. An *exit*: `wasi:cli/exit` ends the guest with a status.
"""


class Trap(Exception):
    """The guest broke an interface rule; its instance cannot continue."""


class ErrorValue(Exception):
    """An expected failure, returned to the guest as the `err` case of the
    function's top-level result type."""

    def __init__(self, payload: object = None):
        super().__init__(payload)
        self.payload = payload


class Interrupted(Exception):
    """The host was asked to stop (Ctrl-C) while the guest waited in a host call."""


class GuestExit(Exception):
    """The guest asked to exit with `code`."""

    def __init__(self, code: int):
        super().__init__(f"guest exited with status {code}")
        self.code = code
