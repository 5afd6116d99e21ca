"""What the draft's client and server cases share: a connection's handshake
and streams (`Endpoint`), the operator's identities, chains as digests (the
runner compares them with what the peer saw), the futures' values."""

import hashlib

from componentize_py_types import Err
from conformance_kit import (
    Failed,
    check,
    drop,
    echo_line,
    outcome,
    resolve,
    wait_for,
    wait_ready,
)
from wit_world.imports import network
from wit_world.imports import wasi_tls_host_tls_preopens as preopens

from wasi_guest import net

#: A handshake or one of its steps with a peer on loopback.
STEP_S = 20.0


class Endpoint:
    """A draft connection (`connection`) and its handshake (`handshake`) until
    finish or abort consumes it; then its plaintext streams. `kind` is the
    handshake's resource type, whose static finish and abort take it."""

    kind = None
    input = output = None

    def finish(self):
        """Run the handshake to the end: the plaintext streams."""
        future = self.kind.finish(self.handshake)
        self.handshake = None
        self.input, self.output = future_value(future, "the handshake")
        return self.input, self.output

    def finish_and_echo(self):
        self.finish()
        echo_line(self.input, self.output)

    def abort(self):
        """Abort the handshake; Failed unless the alert has left in time."""
        alert = self.kind.abort(self.handshake)
        self.handshake = None
        sent = wait_ready(alert, STEP_S)
        drop(alert)
        check(sent, "abort's pollable never became ready")

    def drop(self, *parents):
        """Drop the streams, the handshake, the connection, then `parents`."""
        drop(self.input, self.output, self.handshake, self.connection, *parents)


def all_refused(calls):
    """Each call of {what: call} must return the error value; Failed names the
    first that did not."""
    for what, call in calls.items():
        check(refused(call), f"{what} was not refused")


def provisioned():
    """The operator's identities by the names they were given."""
    return {name: identity for identity, name in preopens.get_identities()}


def digests(chain):
    return [hashlib.sha256(certificate).hexdigest() for certificate in chain]


def public_digests(public_identity):
    """The chain of a public-identity as digests (the identity is dropped)."""
    if public_identity is None:
        return None
    try:
        return digests(public_identity.export_x509_chain())
    finally:
        drop(public_identity)


def private_digests(private_identity):
    if private_identity is None:
        return None
    try:
        return public_digests(private_identity.public_identity())
    finally:
        drop(private_identity)


def future_value(future, what, seconds=STEP_S):
    """The value a draft future resolves with; Failed if it resolved with an
    error. The future is dropped."""
    try:
        kind, value = outcome(resolve(future, what, seconds))
    finally:
        drop(future)
    check(kind != "taken", f"{what}: the first get said the value was already taken")
    if kind == "error":
        raise Failed(f"{what} failed (an error value)")
    return value


def future_outcome(future, what, seconds=STEP_S):
    """("ok", value) or ("error", None) for a draft future; dropped after."""
    try:
        kind, value = outcome(resolve(future, what, seconds))
    finally:
        drop(future)
    check(kind != "taken", f"{what}: the first get said the value was already taken")
    return kind, value


def refused(call):
    """Whether `call()` returned the error value (raised Err)."""
    try:
        value = call()
    except Err:
        return True
    drop(value)
    return False


def alpn_text(alpn_id):
    return None if alpn_id is None else bytes(alpn_id).decode("ascii", "replace")


def accept_tcp(listen_address, seconds=STEP_S):
    """Listen on the address and accept one connection: (listener, socket, in, out)."""
    listener = net.listen_tcp(listen_address)
    while True:
        try:
            sock, tcp_input, tcp_output = listener.accept()
            return listener, sock, tcp_input, tcp_output
        except Err as failure:
            if failure.value != network.ErrorCode.WOULD_BLOCK:
                raise Failed(f"accept failed: {failure.value}") from None
            wait_for(listener, "waiting for the peer to connect", seconds)
