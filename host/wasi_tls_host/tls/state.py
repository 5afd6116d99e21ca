"""The life cycle of a `tls.core.TlsCore`, as data.

`CoreState` lists every state, `Event` everything that moves a core from
one to another, and `TRANSITIONS` which event leads where; the core changes
its state only through `next_state`, so an event the table does not allow is
a `TlsFailure` of kind PROTOCOL (a bug in the core, never a peer's doing).
The sets at the end name the groups of states the core asks about.
"""

from __future__ import annotations

import enum

from .errors import ErrorKind, TlsFailure


class CoreState(enum.StrEnum):
    """Life cycle of a `TlsCore`; members compare equal to their values."""

    SUSPENDED = "suspended"  #: the handshake waits for `resume` (see `suspended_at`)
    AWAITING_CLIENT_HELLO = "awaiting-client-hello"  #: server, reading the ClientHello
    HANDSHAKING = "handshaking"
    OPEN = "open"
    WRITE_CLOSED = "write-closed"  #: our close_notify is queued; reading goes on
    READ_CLOSED = "read-closed"  #: the peer's close_notify came; writing goes on
    #: the transport ended without close_notify: reading is over (after one
    #: report) and OpenSSL can no longer write
    TRUNCATED = "truncated"
    CLOSED = "closed"  #: both directions are over
    CLOSED_IN_HANDSHAKE = "closed-in-handshake"  #: closed before the handshake completed
    BROKEN = "broken"  #: a fatal error happened; every operation re-raises it


class Event(enum.StrEnum):
    RESUME = "resume"  #: the caller lets the handshake run further
    AWAIT_HELLO = "await-hello"  #: a server resumed before the ClientHello arrived
    STOP = "stop"  #: the handshake reached the point it may run to
    FINISH = "finish"  #: the handshake completed
    CLOSE = "close"  #: this side ends its sending (close_notify once established)
    PEER_CLOSE = "peer-close"  #: the peer's close_notify arrived
    TRUNCATE = "truncate"  #: the transport ended without the peer's close_notify
    FAIL = "fail"  #: a fatal error


_FAILS = {Event.FAIL: CoreState.BROKEN}  # from every state but BROKEN

TRANSITIONS: dict[CoreState, dict[Event, CoreState]] = {
    CoreState.SUSPENDED: {Event.RESUME: CoreState.HANDSHAKING,
                          Event.AWAIT_HELLO: CoreState.AWAITING_CLIENT_HELLO,
                          Event.CLOSE: CoreState.CLOSED_IN_HANDSHAKE, **_FAILS},
    CoreState.AWAITING_CLIENT_HELLO: {Event.STOP: CoreState.SUSPENDED,
                                      Event.RESUME: CoreState.HANDSHAKING,
                                      Event.CLOSE: CoreState.CLOSED_IN_HANDSHAKE, **_FAILS},
    CoreState.HANDSHAKING: {Event.STOP: CoreState.SUSPENDED, Event.FINISH: CoreState.OPEN,
                            Event.CLOSE: CoreState.CLOSED_IN_HANDSHAKE, **_FAILS},
    CoreState.OPEN: {Event.CLOSE: CoreState.WRITE_CLOSED, Event.PEER_CLOSE: CoreState.READ_CLOSED,
                     Event.TRUNCATE: CoreState.TRUNCATED, **_FAILS},
    CoreState.WRITE_CLOSED: {Event.PEER_CLOSE: CoreState.CLOSED, Event.TRUNCATE: CoreState.CLOSED,
                             **_FAILS},
    CoreState.READ_CLOSED: {Event.CLOSE: CoreState.CLOSED, **_FAILS},
    CoreState.TRUNCATED: {Event.CLOSE: CoreState.CLOSED, **_FAILS},
    CoreState.CLOSED: {**_FAILS},
    CoreState.CLOSED_IN_HANDSHAKE: {**_FAILS},
    CoreState.BROKEN: {},
}


def next_state(state: CoreState, event: Event) -> CoreState:
    """Where `event` leads from `state`; a `TlsFailure` (PROTOCOL) if nowhere."""
    target = TRANSITIONS[state].get(event)
    if target is None:
        raise TlsFailure(f"TLS core: event {event.value!r} is not allowed in state "
                         f"{state.value!r}", kind=ErrorKind.PROTOCOL)
    return target


#: The peer's bytes are still consumed.
RECEIVING = frozenset({CoreState.AWAITING_CLIENT_HELLO, CoreState.HANDSHAKING, CoreState.OPEN,
                       CoreState.WRITE_CLOSED})
#: After the handshake, records are still decrypted.
READING = frozenset({CoreState.OPEN, CoreState.WRITE_CLOSED})
#: The peer's stream has ended.
PEER_ENDED = frozenset({CoreState.READ_CLOSED, CoreState.TRUNCATED, CoreState.CLOSED})
#: This side sends nothing more.
SENDING_CLOSED = frozenset({CoreState.WRITE_CLOSED, CoreState.CLOSED,
                            CoreState.CLOSED_IN_HANDSHAKE})
