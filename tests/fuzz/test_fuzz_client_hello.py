"""Fuzzing the ClientHello parser, which reads a hostile client's first bytes
before OpenSSL sees them.

Whatever arrives, `parse_client_hello` returns a `ClientHello`, returns None
("need more data") or raises `ClientHelloError`; and its answer depends only
on the bytes, not on how the client cut them into records or how many of
them have arrived yet: once it is not None, more bytes never change it.
"""

from __future__ import annotations

import ssl

from hypothesis import given
from hypothesis import strategies as st

from peers import openssl_client_hello
from wasi_tls_host.tls.client_hello import (
    MAX_CLIENT_HELLO,
    ClientHello,
    ClientHelloError,
    parse_client_hello,
)
from wasi_tls_host.tls.records import ContentType, HandshakeType

from .fuzzing import TALLY, fuzz_settings, mutate, mutations, no_hang, split_sizes

#: Real ClientHellos to mutate: TLS 1.3 and 1.2 clients, with and without
#: SNI and ALPN, and one whose ALPN list is so long that OpenSSL spreads the
#: message over two records.
SEEDS = (
    openssl_client_hello(),
    openssl_client_hello(alpn=("h2", "http/1.1"), post_handshake_auth=True),
    openssl_client_hello(server_name=None, maximum=ssl.TLSVersion.TLSv1_2),
    openssl_client_hello(server_name="a" * 63 + "." + "b" * 63, alpn=("x" * 255,) * 80),
)


def outcome(data: bytes) -> ClientHello | tuple[str, str] | None:
    """The parser's answer; an exception other than ClientHelloError escapes."""
    try:
        with no_hang("parse_client_hello"):
            hello = parse_client_hello(data)
    except ClientHelloError as error:
        return ("refused", str(error))
    if hello is not None:
        check_well_formed(hello)
    return hello


def check_well_formed(hello: ClientHello) -> None:
    assert hello.server_name is None or (isinstance(hello.server_name, str)
                                         and hello.server_name.isascii())
    assert all(isinstance(alpn_id, bytes) for alpn_id in hello.alpn_ids)
    for values in (hello.cipher_suites, hello.signature_algorithms, hello.versions):
        assert all(isinstance(value, int) and 0 <= value <= 0xFFFF for value in values)
    assert isinstance(hello.post_handshake_auth, bool)


def records(body: bytes, sizes: list[int], record_version: bytes = b"\x03\x01") -> bytes:
    """`body` (handshake bytes) framed in records whose sizes cycle through `sizes`."""
    framed = bytearray()
    position, index = 0, 0
    while position < len(body):
        chunk = body[position:position + sizes[index % len(sizes)]]
        framed += bytes((ContentType.HANDSHAKE,)) + record_version
        framed += len(chunk).to_bytes(2, "big") + chunk
        position += len(chunk)
        index += 1
    return bytes(framed)


def handshake_body(flight: bytes) -> bytes:
    """The handshake bytes inside a flight of records (its record layer removed)."""
    body = bytearray()
    position = 0
    while position + 5 <= len(flight):
        length = int.from_bytes(flight[position + 3:position + 5], "big")
        body += flight[position + 5:position + 5 + length]
        position += 5 + length
    return bytes(body)


def test_the_seeds_are_read_as_sent():
    hellos = [parse_client_hello(seed) for seed in SEEDS]
    assert [hello.server_name for hello in hellos] == [
        "example.com", "example.com", None, "a" * 63 + "." + "b" * 63]
    assert hellos[1].alpn_ids == (b"h2", b"http/1.1") and hellos[1].post_handshake_auth
    assert hellos[2].versions == (0x0303,)
    assert len(hellos[3].alpn_ids) == 80
    assert SEEDS[3][5 + 16384:5 + 16384 + 1] == bytes((ContentType.HANDSHAKE,))  # two records


@fuzz_settings(200)
@given(seed=st.sampled_from(SEEDS), edits=mutations, cuts=st.lists(st.integers(0, 1 << 16),
                                                                    max_size=4))
def test_mutated_hellos_are_read_refused_or_awaited(seed, edits, cuts):
    TALLY["client-hello: mutated real hellos"] += 1
    data = mutate(seed, edits)
    whole = outcome(data)
    for cut in cuts:
        prefix = outcome(data[:cut % (len(data) + 1)])
        assert prefix is None or prefix == whole, "more bytes changed a settled answer"


@fuzz_settings(150)
@given(seed=st.sampled_from(SEEDS), edits=mutations, sizes=split_sizes,
       record_version=st.sampled_from([b"\x03\x01", b"\x03\x03", b"\x03\x00", b"\x03\xff"]))
def test_record_boundaries_do_not_change_the_answer(seed, edits, sizes, record_version):
    TALLY["client-hello: mutated bodies, reframed"] += 1
    body = mutate(handshake_body(seed), edits)[:0xFFFF]
    one_record = outcome(records(body, [len(body) or 1]))
    assert outcome(records(body, sizes, record_version)) == one_record


@fuzz_settings(150)
@given(data=st.one_of(
    st.binary(max_size=4096),
    # Past the record header and the message header, into the fields.
    st.builds(lambda length, body: (b"\x16\x03\x01" + (len(body) + 4).to_bytes(2, "big")
                                    + b"\x01" + length.to_bytes(3, "big") + body),
              st.integers(0, MAX_CLIENT_HELLO + 1), st.binary(max_size=2048)),
))
def test_arbitrary_bytes_are_read_refused_or_awaited(data):
    TALLY["client-hello: arbitrary bytes"] += 1
    outcome(data)


def extension(kind: int, body: bytes) -> bytes:
    return kind.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body


def vector(length_size: int, body: bytes) -> bytes:
    return len(body).to_bytes(length_size, "big") + body


def vectors_of(length_size: int, body: st.SearchStrategy) -> st.SearchStrategy:
    return body.map(lambda value: vector(length_size, value))


#: Bodies for the extensions the parser reads (by type): well-formed ones
#: with random contents, and raw random bytes.
_EXTENSION_BODIES = {
    0: st.lists(st.tuples(st.integers(0, 2), st.binary(max_size=40)), max_size=3).map(
        lambda names: vector(2, b"".join(bytes((kind,)) + vector(2, name)
                                         for kind, name in names))),
    16: st.lists(st.binary(max_size=20), max_size=5).map(
        lambda ids: vector(2, b"".join(vector(1, alpn_id) for alpn_id in ids))),
    13: vectors_of(2, st.binary(max_size=41)),
    43: vectors_of(1, st.binary(max_size=13)),
    49: st.binary(max_size=8),
}
extensions = st.lists(st.one_of(
    *(st.one_of(st.binary(max_size=64), body).map(lambda b, kind=kind: extension(kind, b))
      for kind, body in _EXTENSION_BODIES.items()),
    st.builds(extension, st.integers(0, 0xFFFF), st.binary(max_size=32)),
), max_size=8)


@fuzz_settings(150)
@given(legacy_version=st.integers(0, 0xFFFF), session_id=st.binary(max_size=40),
       suites=st.binary(max_size=40), compression=st.binary(max_size=4),
       extension_list=extensions, trailing=st.binary(max_size=4), sizes=split_sizes)
def test_built_hellos_with_random_extensions(legacy_version, session_id, suites, compression,
                                             extension_list, trailing, sizes):
    """Hellos whose outer structure is sound, so that the extension readers
    themselves meet the random contents."""
    TALLY["client-hello: random extensions"] += 1
    message = (legacy_version.to_bytes(2, "big") + bytes(32) + vector(1, session_id)
               + vector(2, suites) + vector(1, compression)
               + vector(2, b"".join(extension_list)) + trailing)
    body = bytes((HandshakeType.CLIENT_HELLO,)) + vector(3, message)
    answer = outcome(records(body, sizes))
    assert answer is not None  # the whole message is there
    if isinstance(answer, ClientHello):
        assert answer.cipher_suites == tuple(
            int.from_bytes(suites[i:i + 2], "big") for i in range(0, len(suites) - 1, 2))
