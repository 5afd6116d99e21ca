"""The wire-format readers the core relies on: the ClientHello parser and the
plaintext handshake scanner, fed real OpenSSL output, re-framed records and junk."""

from __future__ import annotations

import ssl

import pytest

from peers import openssl_client_hello
from wasi_tls_host.tls.client_hello import (
    MAX_CLIENT_HELLO,
    ClientHelloError,
    parse_client_hello,
)
from wasi_tls_host.tls.records import (
    HandshakeScanner,
    HandshakeType,
    certificate_list_is_empty,
    take_record,
)


def reframe(records: bytes, size: int) -> bytes:
    """The same handshake bytes in records of at most `size` body bytes."""
    body = bytearray()
    while (record := take_record(bytearray(records))) is not None:
        body += record[5:]
        records = records[len(record):]
    return b"".join(b"\x16\x03\x01" + len(body[i:i + size]).to_bytes(2, "big") + body[i:i + size]
                    for i in range(0, len(body), size))


def test_openssl_client_hello_is_read_exactly():
    hello = parse_client_hello(openssl_client_hello(alpn=("h2", "http/1.1"),
                                                  post_handshake_auth=True))
    assert hello.server_name == "example.com"
    assert hello.alpn_ids == (b"h2", b"http/1.1")
    assert hello.versions[:2] == (0x0304, 0x0303)
    assert hello.post_handshake_auth
    assert 0x1302 in hello.cipher_suites and 0xC02F in hello.cipher_suites
    assert 0x0403 in hello.signature_algorithms  # ecdsa_secp256r1_sha256


def test_tls_1_2_client_without_sni_or_alpn():
    hello = parse_client_hello(openssl_client_hello(server_name=None,
                                                  maximum=ssl.TLSVersion.TLSv1_2))
    assert hello.server_name is None and hello.alpn_ids == ()
    assert hello.versions == (0x0303,) and not hello.post_handshake_auth


@pytest.mark.parametrize("size", [1, 7, 100])
def test_a_hello_spread_over_many_records(size):
    whole = openssl_client_hello(alpn=("h2",))
    assert parse_client_hello(reframe(whole, size)) == parse_client_hello(whole)


def test_need_more_data_is_a_value():
    whole = openssl_client_hello()
    for cut in (0, 3, 5, 20, len(whole) - 1):
        assert parse_client_hello(whole[:cut]) is None


@pytest.mark.parametrize("junk", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x02\x00\x00\x05hello",  # not version 3
    b"\x17\x03\x03\x00\x05hello",  # application data first
    b"\x16\x03\x01\x00\x04\x02\x00\x00\x00",  # a ServerHello
    b"\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\x00\x00",  # cut inside the random
])
def test_junk_is_refused(junk):
    with pytest.raises(ClientHelloError):
        parse_client_hello(junk)


def test_an_oversized_hello_is_refused_before_it_is_buffered():
    length = MAX_CLIENT_HELLO + 1
    header = b"\x16\x03\x01\x00\x04\x01" + length.to_bytes(3, "big")
    with pytest.raises(ClientHelloError, match="too large"):
        parse_client_hello(header)


def test_scanner_finds_messages_across_record_boundaries():
    messages = (bytes([HandshakeType.CERTIFICATE]) + (10).to_bytes(3, "big") + bytes(10)
                + bytes([HandshakeType.CERTIFICATE_REQUEST]) + (2).to_bytes(3, "big") + bytes(2)
                + bytes([HandshakeType.SERVER_HELLO_DONE]) + bytes(3))
    records = bytearray(reframe(b"\x16\x03\x03" + len(messages).to_bytes(2, "big") + messages, 6))
    scanner = HandshakeScanner()
    seen = []
    while (record := take_record(records)) is not None:
        seen += scanner.message_types(record)
    assert seen == [11, 13, 14]
    assert scanner.message_types(b"\x17\x03\x03\x00\x01x") == []


@pytest.mark.parametrize(("message", "version", "empty"), [
    (bytes.fromhex("0b000003" "000000"), 0x0303, True),  # TLS 1.2: an empty list
    (bytes.fromhex("0b000004" "00" "000000"), 0x0304, True),  # TLS 1.3: no context, empty list
    (bytes.fromhex("0b000006" "02abcd" "000000"), 0x0304, True),  # a post-handshake context
    (bytes.fromhex("0b00000a" "000007" "000004" "30020500"), 0x0303, False),
    (bytes.fromhex("0b00000b" "00" "000007" "000004" "30020500"), 0x0304, False),
    (bytes.fromhex("0b000000"), 0x0303, False),  # too short to say: OpenSSL judges it
    (bytes.fromhex("0b000000"), 0x0304, False),
])
def test_an_empty_certificate_message_is_told_apart(message, version, empty):
    assert certificate_list_is_empty(message, version) is empty
