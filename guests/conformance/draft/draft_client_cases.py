"""Cases for the draft's client: suspension, the optional steps, ALPN, client
certificates and the getters. Each takes the peer's address and the server
name; the runner's peer (a Python ssl server) reports what it saw, and the
runner compares that with the facts a case returns."""

from conformance_kit import (
    Failed,
    case,
    check,
    drop,
    echo_line,
    forbidden,
    now_s,
    sleep,
)
from draft_common import (
    Endpoint,
    all_refused,
    alpn_text,
    future_outcome,
    future_value,
    private_digests,
    provisioned,
    public_digests,
    refused,
)
from wit_world.imports import tls

from wasi_guest import net

#: How long a suspended handshake is held before it is resumed.
HOLD_S = 1.0


class Client(Endpoint):
    """A draft client connection over a fresh TCP connection, and its handshake."""

    kind = tls.ClientHandshake

    def __init__(self, address, server_name):
        self.sock, tcp_input, tcp_output = net.connect_tcp(address)
        self.connection = tls.ClientConnection(tcp_input, tcp_output)
        self.handshake = self.connection.connect(server_name)

    def drop(self):
        super().drop(self.sock)


def _alpn_ids(text):
    return [alpn.encode() for alpn in text.split(",") if alpn]


@case("client-suspended")
def client_suspended(address, server_name):
    """A handshake starts out suspended: nothing is sent until the guest resumes
    it (the peer notes when the first byte arrived)."""
    client = Client(address, server_name)
    before = client.connection.protocol_version(), client.connection.cipher_suite()
    check(before == (None, None), f"protocol-version and cipher-suite before the handshake: "
                                  f"{before}")
    sleep(HOLD_S)
    started = now_s()
    client.finish_and_echo()
    client.drop()
    return f"held {HOLD_S:g} s without sending; then finished in {now_s() - started:.1f} s", {
        "held_seconds": HOLD_S}


@case("client-verify-then-abort")
def client_verify_then_abort(address, server_name):
    """verify-server-identity stops with the server's verified chain; abort then
    sends an alert instead of the rest: the peer gets no application data."""
    client = Client(address, server_name)
    chain = public_digests(future_value(client.handshake.verify_server_identity(),
                                        "verify-server-identity"))
    check(chain, "verify-server-identity resolved without a chain")
    client.abort()
    client.drop()
    return "stopped at the server's chain, then aborted", {"server_chain": chain}


@case("client-verify-untrusted")
def client_verify_untrusted(address, server_name):
    """The host verifies before verify-server-identity resolves: a chain from an
    unknown CA makes the step's future an error value, never a chain to judge."""
    client = Client(address, server_name)
    kind, chain = future_outcome(client.handshake.verify_server_identity(),
                                 "verify-server-identity")
    if kind == "ok":
        public_digests(chain)
    client.drop()
    check(kind == "error", "verify-server-identity resolved with an untrusted chain")
    return "error value at verify-server-identity"


@case("client-identity-request")
def client_identity_request(address, server_name, answer):
    """Both optional steps in order: verify-server-identity, then
    receive-client-identity-request. `answer` "respond" expects a request and
    answers with the operator's identity "client"; "none" expects no request."""
    client = Client(address, server_name)
    public_digests(future_value(client.handshake.verify_server_identity(),
                                "verify-server-identity"))
    request = future_value(client.handshake.receive_client_identity_request(),
                           "receive-client-identity-request")
    if answer == "none":
        check(request is None, "the server asked for no certificate, yet a request came")
    else:
        check(request is not None, "the server asked for a certificate; the future said none")
        identities = provisioned()
        tls.ClientIdentityRequest.respond(request, [identities["client"]])
        drop(*identities.values())
    client.finish_and_echo()
    sent = private_digests(client.connection.client_identity())
    client.drop()
    if answer == "none":
        check(sent is None, "client-identity names an identity though none was asked for")
        return "no request; the handshake finished without a certificate"
    check(sent is not None, "client-identity is none after answering the request")
    return "request answered with the operator's identity", {"client_chain": sent}


@case("client-steps-out-of-order")
def client_steps_out_of_order(address, server_name):
    """A step after its point, a step twice, and configuring after resuming are
    error values; the handshake still finishes."""
    client = Client(address, server_name)
    handshake = client.handshake
    future_value(handshake.receive_client_identity_request(),
                 "receive-client-identity-request")
    all_refused({
        "verify-server-identity after receive-client-identity-request":
            handshake.verify_server_identity,
        "receive-client-identity-request twice": handshake.receive_client_identity_request,
        "configure-alpn-ids after the handshake resumed":
            lambda: handshake.configure_alpn_ids([b"http/1.1"]),
    })
    client.finish_and_echo()
    client.drop()
    return "three misplaced calls refused with error values; the handshake finished"


@case("client-connect-twice")
def client_connect_twice(address, server_name):
    """connect "may be called at most once": the second call is an error value."""
    client = Client(address, server_name)
    check(refused(lambda: client.connection.connect(server_name)),
          "a second connect was not refused")
    client.drop()
    return "second connect: error value"


@case("client-alpn")
def client_alpn(address, server_name, offered, expected):
    """Offer the comma-separated ALPN ids; the agreed one (or "none") is expected."""
    client = Client(address, server_name)
    client.handshake.configure_alpn_ids(_alpn_ids(offered))
    client.finish()
    agreed = alpn_text(client.connection.alpn_id())
    echo_line(client.input, client.output)
    client.drop()
    check(agreed == (None if expected == "none" else expected),
          f"alpn-id is {agreed!r}, expected {expected}")
    return f"offered {offered}; agreed {agreed or 'none'}", {"alpn": agreed}


@case("client-alpn-invalid-ids")
def client_alpn_invalid_ids(address, server_name):
    """ALPN ids "are between 1 and 255 bytes long": an empty id, or one of 256
    bytes, makes configure-alpn-ids an error value; valid ids still work."""
    client = Client(address, server_name)
    for bad in ([b""], [b"h2", b"x" * 256]):
        check(refused(lambda bad=bad: client.handshake.configure_alpn_ids(bad)),
              f"configure-alpn-ids accepted an id of {min(map(len, bad))} or "
              f"{max(map(len, bad))} bytes")
    client.handshake.configure_alpn_ids([b"http/1.1"])
    client.finish()
    agreed = alpn_text(client.connection.alpn_id())
    echo_line(client.input, client.output)
    client.drop()
    check(agreed == "http/1.1", f"alpn-id is {agreed!r} after the invalid ids were refused")
    return "empty and 256-byte ids: error values; http/1.1 then agreed", {"alpn": agreed}


@case("client-getters")
def client_getters(address, server_name):
    """After the handshake the getters report what was negotiated (the runner
    compares them with the peer's view)."""
    client = Client(address, server_name)
    client.handshake.configure_alpn_ids([b"http/1.1"])
    client.finish()
    connection = client.connection
    facts = {"server_name": connection.server_name(), "alpn": alpn_text(connection.alpn_id()),
             "protocol_version": connection.protocol_version(),
             "cipher_suite": connection.cipher_suite(),
             "server_chain": public_digests(connection.server_identity())}
    no_identity = connection.client_identity() is None
    echo_line(client.input, client.output)
    client.drop()
    check(no_identity, "client-identity names an identity though none was asked for")
    check(facts["server_name"] == server_name, f"server-name is {facts['server_name']!r}")
    return (f"version 0x{facts['protocol_version'] or 0:04x}, suite "
            f"0x{facts['cipher_suite'] or 0:04x}, alpn {facts['alpn']}"), facts


@case("client-finish-twice")
def client_finish_twice(address, server_name):
    """finish consumes the handshake: handing the same one in again must trap."""
    client = Client(address, server_name)
    handshake = client.handshake
    first = tls.ClientHandshake.finish(handshake)
    forbidden("finish a client-handshake that finish already consumed")
    second = tls.ClientHandshake.finish(handshake)
    drop(second, first)
    raise Failed("no trap: finish took the consumed handshake again")


@case("client-drop-connection-first")
def client_drop_connection_first(address, server_name):
    """The handshake is a child of the connection: dropping the connection first traps."""
    client = Client(address, server_name)
    forbidden("drop a client-connection while its handshake lives")
    drop(client.connection)
    raise Failed("no trap: the connection went before its handshake")


@case("client-drop-connection-before-finish-future")
def client_drop_connection_before_finish_future(address, server_name):
    """finish's future is a child of the connection: dropping the connection
    while it lives traps."""
    client = Client(address, server_name)
    future = tls.ClientHandshake.finish(client.handshake)
    client.handshake = None
    forbidden("drop a client-connection while its finish future lives")
    drop(client.connection)
    drop(future)
    raise Failed("no trap: the connection went before its finish future")


@case("client-finish-with-live-step")
def client_finish_with_live_step(address, server_name):
    """A step's future is a child of the handshake: finish (which consumes the
    handshake) while it lives traps."""
    client = Client(address, server_name)
    step = client.handshake.verify_server_identity()
    forbidden("finish a client-handshake while its verify-server-identity future lives")
    future = tls.ClientHandshake.finish(client.handshake)
    drop(step, future)
    raise Failed("no trap: finish consumed a handshake whose step future lived")


