"""Fuzzing the record framing and the plaintext handshake scanner the core
runs on a peer's bytes before OpenSSL judges them.

`take_record` must cut any byte stream into exactly the records its headers
announce and leave the rest; `HandshakeScanner` must name the same handshake
messages however they are spread over records, ignore records of other
types in between, and never fail on junk.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wasi_tls_host.tls.records import HEADER_SIZE, ContentType, HandshakeScanner, take_record

from .fuzzing import TALLY, fuzz_settings, no_hang


def all_records(data: bytes) -> tuple[list[bytes], bytearray]:
    """Every complete record `take_record` takes from `data`, and what is left."""
    buffer = bytearray(data)
    taken = []
    with no_hang("take_record"):
        while (record := take_record(buffer)) is not None:
            taken.append(record)
    return taken, buffer


@fuzz_settings(200)
@given(data=st.one_of(
    st.binary(max_size=2048),
    # Streams of plausible headers with short bodies, so that many records are whole.
    st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40), st.integers(-3, 3)),
             max_size=20).map(lambda parts: b"".join(
                 bytes((kind, 3, 3)) + max(0, len(body) + skew).to_bytes(2, "big") + body
                 for kind, body, skew in parts)),
))
def test_take_record_cuts_exactly_what_headers_announce(data):
    TALLY["records: take_record"] += 1
    taken, rest = all_records(data)
    assert b"".join(taken) + rest == data
    for record in taken:
        assert len(record) == HEADER_SIZE + int.from_bytes(record[3:5], "big")
    if len(rest) >= HEADER_SIZE:
        assert len(rest) < HEADER_SIZE + int.from_bytes(rest[3:5], "big")


def record(kind: int, body: bytes) -> bytes:
    return bytes((kind, 3, 3)) + len(body).to_bytes(2, "big") + body


handshake_messages = st.lists(
    st.tuples(st.integers(0, 255), st.binary(max_size=300)), min_size=1, max_size=10)
#: Records that carry no handshake bytes, which a peer may put between
#: handshake records (an empty handshake record among them).
interleaved = st.sampled_from([
    record(ContentType.HANDSHAKE, b""),
    record(ContentType.CHANGE_CIPHER_SPEC, b"\x01"),
    record(ContentType.ALERT, b"\x01\x00"),
    record(ContentType.APPLICATION_DATA, b"junk"),
])


@fuzz_settings(200)
@given(messages=handshake_messages, sizes=st.lists(st.integers(1, 400), min_size=1, max_size=6),
       others=st.lists(st.tuples(st.integers(0, 50), interleaved), max_size=4))
def test_scanner_names_each_message_however_it_is_framed(messages, sizes, others):
    TALLY["records: handshake scanner, reframed"] += 1
    stream = b"".join(bytes((kind,)) + len(body).to_bytes(3, "big") + body
                      for kind, body in messages)
    framed: list[bytes] = []
    position, index = 0, 0
    while position < len(stream):
        size = sizes[index % len(sizes)]
        framed.append(record(ContentType.HANDSHAKE, stream[position:position + size]))
        position += size
        index += 1
    for where, other in others:
        framed.insert(where % (len(framed) + 1), other)
    scanner = HandshakeScanner()
    seen = []
    with no_hang("HandshakeScanner.message_types"):
        for each in framed:
            seen += scanner.message_types(each)
    assert seen == [kind for kind, _ in messages]


@fuzz_settings(200)
@given(data=st.binary(max_size=4096), kinds=st.lists(st.integers(0, 255), max_size=8))
def test_scanner_takes_junk_records_without_failing(data, kinds):
    TALLY["records: handshake scanner, junk"] += 1
    # Junk framed as records; some given handshake type so that the scanner reads them.
    junk = b"".join(record(ContentType.HANDSHAKE if kind % 2 else kind,
                           data[kind * 7 % (len(data) + 1):][:kind * 13]) for kind in kinds)
    scanner = HandshakeScanner()
    taken, _ = all_records(junk + data)
    with no_hang("HandshakeScanner.message_types"):
        for each in taken:
            types = scanner.message_types(each)
            assert all(0 <= kind <= 255 for kind in types)
