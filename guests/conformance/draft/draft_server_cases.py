"""Cases for the draft's server and its identities. A server case listens on
the address the runner gives it ({listen}) and serves one connection to the
runner's client peer (Python ssl, or `openssl s_client`), with the operator's
identities from wasi-tls-host:tls/preopens; the runner compares the facts it
returns with what the client saw."""

import base64

from componentize_py_types import Err
from conformance_kit import (
    Failed,
    case,
    check,
    drop,
    forbidden,
    read_exactly,
    write_all,
)
from draft_common import (
    Endpoint,
    accept_tcp,
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


class Server(Endpoint):
    """One accepted connection under a draft server-connection."""

    kind = tls.ServerHandshake

    def __init__(self, listen_address):
        self.listener, self.sock, tcp_input, tcp_output = accept_tcp(listen_address)
        self.connection = tls.ServerConnection(tcp_input, tcp_output)
        self.handshake = self.connection.accept()
        self.identities = provisioned()

    def serve(self, *names):
        self.handshake.configure_server_identities([self.identities[name] for name in names])

    def facts(self):
        connection = self.connection
        return {"server_name": connection.server_name(), "alpn": alpn_text(connection.alpn_id()),
                "protocol_version": connection.protocol_version(),
                "cipher_suite": connection.cipher_suite(),
                "server_chain": private_digests(connection.server_identity())}

    def drop(self):
        super().drop(self.sock, self.listener, *self.identities.values())


@case("server-getters")
def server_getters(listen_address, identity):
    """Serve the operator's identity; the getters report what was negotiated."""
    server = Server(listen_address)
    server.serve(identity)
    server.finish_and_echo()
    facts = server.facts()
    no_client = server.connection.client_identity() is None
    server.drop()
    check(no_client, "client-identity names a chain though none was asked for")
    return (f"served {identity}; version 0x{facts['protocol_version'] or 0:04x}, suite "
            f"0x{facts['cipher_suite'] or 0:04x}"), facts


@case("server-client-hello")
def server_client_hello(listen_address):
    """receive-client-hello shows the hello as sent; identities and ALPN are
    configured after it, from it (the client's last ALPN id is chosen)."""
    server = Server(listen_address)
    hello = future_value(server.handshake.receive_client_hello(), "receive-client-hello")
    seen = {"hello_server_name": hello.server_name(),
            "hello_alpn": [alpn_text(alpn) for alpn in hello.alpn_ids()],
            "hello_cipher_suites": list(hello.cipher_suites())}
    drop(hello)
    check(seen["hello_alpn"], "the client offered ALPN ids; the hello shows none")
    server.handshake.configure_alpn_ids([seen["hello_alpn"][-1].encode()])
    server.serve("localhost")
    server.finish_and_echo()
    seen["alpn"] = alpn_text(server.connection.alpn_id())
    server.drop()
    return (f"hello: {seen['hello_server_name']}, {len(seen['hello_cipher_suites'])} suites, "
            f"alpn {seen['hello_alpn']}; chose {seen['alpn']}"), seen


@case("server-sni")
def server_sni(listen_address, identities):
    """Offer the comma-separated identities; the host serves the one that
    matches the client's server name (the client verifies it)."""
    server = Server(listen_address)
    server.serve(*identities.split(","))
    server.finish_and_echo()
    facts = server.facts()
    server.drop()
    return f"served the identity for {facts['server_name']}", facts


@case("server-client-identity")
def server_client_identity(listen_address, expect):
    """request-client-identity during the handshake, verified against the
    operator's client CAs. `expect`: "verified" (the client's chain), "none"
    (the client has no certificate), or "refused" (an untrusted one: an error
    value at the step or at finish, never a chain)."""
    server = Server(listen_address)
    server.serve("localhost")
    kind, chain = future_outcome(server.handshake.request_client_identity(),
                                 "request-client-identity")
    if expect == "refused":
        if kind == "ok":
            check(chain is None, "the untrusted client certificate was accepted")
            finished = tls.ServerHandshake.finish(server.handshake)
            server.handshake = None
            kind, _ = future_outcome(finished, "the handshake")
            check(kind == "error", "the handshake finished with an untrusted client "
                                   "certificate and no chain")
        server.drop()
        return "untrusted client certificate refused with an error value"
    check(kind == "ok", "request-client-identity failed (an error value)")
    sent = public_digests(chain)
    server.finish_and_echo()
    kept = public_digests(server.connection.client_identity())
    server.drop()
    if expect == "none":
        check(sent is None and kept is None, "a chain was reported for a client without one")
        return "the client sent no certificate: none"
    check(sent is not None, "the client sent a certificate; the future resolved with none")
    check(kept == sent, "client-identity differs from the chain the step resolved with")
    return "the client's verified chain", {"client_chain": sent}


@case("server-steps-out-of-order")
def server_steps_out_of_order(listen_address):
    """Past the hello (request-client-identity has resolved), receive-client-hello,
    request-client-identity again and configuring are error values; the
    handshake still finishes."""
    server = Server(listen_address)
    server.serve("localhost")
    future_value(server.handshake.request_client_identity(), "request-client-identity")
    handshake, identity = server.handshake, server.identities["alt"]
    all_refused({
        "receive-client-hello after request-client-identity": handshake.receive_client_hello,
        "request-client-identity twice": handshake.request_client_identity,
        "configure-server-identities past the hello":
            lambda: handshake.configure_server_identities([identity]),
        "configure-alpn-ids past the hello": lambda: handshake.configure_alpn_ids([b"http/1.1"]),
    })
    server.finish_and_echo()
    server.drop()
    return "four misplaced calls refused with error values; the handshake finished"


@case("server-post-handshake-identity")
def server_post_handshake_identity(listen_address, expect):
    """server-connection.request-client-identity after the handshake: TLS 1.3
    post-handshake authentication (`expect` "chain"), an error value on
    TLS 1.2 (`expect` "refused"). The client sends "ping", gets "pong",
    sends "done"."""
    server = Server(listen_address)
    server.serve("localhost")
    server.finish()
    check(read_exactly(server.input, 5) == b"ping\n", "the client's first line differs")
    if expect == "refused":
        check(refused(server.connection.request_client_identity),
              "a post-handshake request on TLS 1.2 was not refused")
        write_all(server.output, b"pong\n")
        check(read_exactly(server.input, 5) == b"done\n", "the client's second line differs")
        server.drop()
        return "post-handshake request on TLS 1.2: error value"
    future = server.connection.request_client_identity()
    write_all(server.output, b"pong\n")
    check(read_exactly(server.input, 5) == b"done\n", "the client's second line differs")
    chain = public_digests(future_value(future, "the post-handshake request"))
    check(chain is not None, "the client answered with a certificate; the future said none")
    server.drop()
    return "post-handshake request answered with the client's chain", {"client_chain": chain}


@case("server-abort")
def server_abort(listen_address):
    """abort after the client's hello: an alert instead of the server's flight."""
    server = Server(listen_address)
    drop(future_value(server.handshake.receive_client_hello(), "receive-client-hello"))
    server.abort()
    server.drop()
    return "aborted after the hello"


@case("server-accept-twice")
def server_accept_twice(address):
    """accept "may be called at most once": the second call is an error value."""
    sock, tcp_input, tcp_output = net.connect_tcp(address)
    connection = tls.ServerConnection(tcp_input, tcp_output)
    handshake = connection.accept()
    second_refused = refused(connection.accept)
    drop(handshake, connection, sock)
    check(second_refused, "a second accept was not refused")
    return "second accept: error value"


@case("server-finish-with-live-hello")
def server_finish_with_live_hello(listen_address):
    """The client-hello is a child of the handshake: finish while it lives traps."""
    server = Server(listen_address)
    hello = future_value(server.handshake.receive_client_hello(), "receive-client-hello")
    server.serve("localhost")
    forbidden("finish a server-handshake while its client-hello lives")
    future = tls.ServerHandshake.finish(server.handshake)
    drop(hello, future)
    raise Failed("no trap: finish consumed a handshake whose client-hello lived")


# -- private-identity.parse -------------------------------------------------------------

def _material(text):
    """"KEY:CHAIN1,CHAIN2" in base64 -> (key bytes, [certificate bytes])."""
    key, _, chain = text.partition(":")
    return base64.b64decode(key), [base64.b64decode(item) for item in chain.split(",") if item]


@case("identity-parse")
def identity_parse(material, expect):
    """private-identity.parse of a key and chain: `expect` is "refused" (an
    error value) or the chain's digests (comma-separated) that public-identity
    must give back."""
    key, chain = _material(material)
    try:
        identity = tls.PrivateIdentity.parse(key, chain)
    except Err:
        check(expect == "refused", "parse refused the identity (an error value)")
        return "error value"
    check(expect != "refused", "parse accepted a key that does not fit its certificate "
                               "or is not a key")
    returned = private_digests(identity)
    check(returned == expect.split(","), "public-identity gave back another chain")
    return "parsed; public-identity gives the chain back"


@case("identity-serve-parsed")
def identity_serve_parsed(listen_address, material):
    """A server serves an identity parsed from key and chain bytes."""
    key, chain = _material(material)
    identity = tls.PrivateIdentity.parse(key, chain)
    server = Server(listen_address)
    server.handshake.configure_server_identities([identity])
    server.finish_and_echo()
    facts = server.facts()
    server.drop()
    drop(identity)
    return "served the parsed identity", facts

