"""The host's own alerts, chosen as the RFCs prescribe and protected as the peer reads them.

OpenSSL sends its own alerts (a certificate it cannot verify, bytes that are
not TLS) through its record layer. Two are the host's: a guest that aborts a
handshake, and a server that cannot have a context for a client's hello.
Python's ``ssl`` has no call to send an alert, and OpenSSL has none that
takes a description, so the host writes the record itself.

Which description: an abort is ``access_denied`` (RFC 8446 §6.2: a valid
peer, refused by the application), except at a server's client-certificate
stop when the client sent none, where the guest aborts because it requires
one: then ``certificate_required`` under TLS 1.3 and ``handshake_failure``
under TLS 1.2, as OpenSSL says itself for a required certificate that did
not come. A server without a context (no identity configured, a CA file gone
since start-up) says ``internal_error``: nothing the client did is wrong.

How it is protected: under the write keys OpenSSL had in force right after
the last record the peer got, which is what OpenSSL would have sent it under
had it failed there. That is not how far OpenSSL got: a handshake stopped at
a point holds what OpenSSL wrote after it, and the abort drops that.
`OwnRecords` counts the records OpenSSL writes (their headers, through
``tls.openssl``'s message observer) and notes where its write keys change:
in TLS 1.3 at each of this side's traffic secrets, as OpenSSL derives them
(``tls.openssl`` reads them from its key log callback); in TLS 1.2 right
after this side's ChangeCipherSpec, with the master secret and both
randoms. The secrets are collected only where they can be needed, for a
server that may stop for the client's certificate: the callback costs each
such handshake a Python call per secret (some 50 µs of CPU under TLS 1.2,
110 µs under 1.3). Records delivered are records written less those
dropped; the keys in force for the next one, and its sequence number,
follow. Per role and stop point (OpenSSL 3.0):

* TLS 1.3 server: plaintext at the ClientHello stop (nothing sent yet). At
  the client-certificate stop its whole flight went out: the alert goes
  under its application traffic secret, sequence 0 (session tickets written
  by then, after a resumed client's Finished, are dropped with the rest).
* TLS 1.3 client: plaintext at both its stops. OpenSSL switches its write
  key only as it starts its second flight (after the middlebox
  ChangeCipherSpec), so its own alerts there (a certificate it cannot
  verify) are plaintext too, and OpenSSL servers take a plaintext alert
  until the client's first protected record.
* TLS 1.2: plaintext at every stop of a full handshake (no ChangeCipherSpec
  of ours has gone out), and under the session keys, sequence 1, when a
  server that resumed a session stops after its Finished.

A record dropped at the stop may have used the sequence number the alert
uses; it never reached the wire, so no nonce is seen twice. When the keys
cannot be had (no key log callback on this Python, a CBC suite in TLS 1.2),
no alert is sent at all: the peer sees the connection end, which is better
than a record it would take for an attack.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .records import AlertDescription, ContentType, alert_record, take_record

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

FATAL = 2
TLS_1_2_RECORD = b"\x03\x03"
TAG_SIZE = 16
TLS13_IV_SIZE = 12


@dataclass(frozen=True)
class _Aead:
    """A cipher suite's record protection: AES-GCM or ChaCha20-Poly1305, its
    key size, the PRF/HKDF hash, and (TLS 1.2) the fixed part of the nonce
    that the key block holds."""

    gcm: bool
    key_size: int
    hash_name: str
    fixed_iv_size: int = TLS13_IV_SIZE


#: The AEAD suites the host's contexts can negotiate (OpenSSL 3's TLS 1.3
#: defaults; Python's TLS 1.2 defaults that need no DH parameters), by IANA code.
SUITES = {
    0x1301: _Aead(True, 16, "sha256"), 0x1302: _Aead(True, 32, "sha384"),
    0x1303: _Aead(False, 32, "sha256"),
    **{code: _Aead(True, 16, "sha256", 4) for code in (0xC02B, 0xC02F)},
    **{code: _Aead(True, 32, "sha384", 4) for code in (0xC02C, 0xC030)},
    **{code: _Aead(False, 32, "sha256") for code in (0xCCA8, 0xCCA9)},
}
TLS13_SUITES = frozenset(range(0x1301, 0x1306))


class OwnRecords:
    """The records this side writes during a handshake and the write keys
    each went under: fed by `tls.openssl`'s observers, asked by `abort_alert`."""

    def __init__(self, server_side: bool) -> None:
        self._write_prefix = "SERVER_" if server_side else "CLIENT_"
        self.server_side = server_side
        #: Whether the key log reaches `secret` (``tls.openssl.observe_secrets``).
        self.keys_observed = True
        self.written = 0
        #: TLS 1.3: (records written before it, this side's traffic secret), in order.
        self._secrets: list[tuple[int, bytes]] = []
        #: TLS 1.2: records written up to and including this side's ChangeCipherSpec.
        self._cipher_change: int | None = None
        #: TLS 1.2: the master secret, then client and server random.
        self._master: tuple[bytes, bytes] | None = None

    def record_written(self, content_type: int) -> None:
        self.written += 1
        if content_type == ContentType.CHANGE_CIPHER_SPEC and self._cipher_change is None:
            self._cipher_change = self.written

    def secret(self, label: str, secret: bytes, randoms: bytes) -> None:
        if label == "CLIENT_RANDOM":
            self._master = (secret, randoms)
        elif label.startswith(self._write_prefix) and "TRAFFIC_SECRET" in label:
            self._secrets.append((self.written, secret))

    def abort_alert(self, *, dropped: bytes, suite: int | None,
                    missing_client_certificate: bool) -> bytes:
        """The alert record of an abort (see the module notes), given the
        bytes dropped unsent (whole records) and the negotiated suite (None
        before OpenSSL knows it); b"" if it cannot be protected."""
        tls13 = suite in TLS13_SUITES
        if not missing_client_certificate:
            description = AlertDescription.ACCESS_DENIED
        elif tls13:
            description = AlertDescription.CERTIFICATE_REQUIRED
        else:
            description = AlertDescription.HANDSHAKE_FAILURE
        delivered = self.written - _count_records(dropped)
        aead = SUITES.get(suite) if suite is not None else None
        if tls13:
            keys = [(start, secret) for start, secret in self._secrets if start <= delivered]
            if not keys and not self.keys_observed and self.server_side and delivered:
                return b""  # its flight is protected from the ServerHello on
            if not keys:
                return alert_record(description)
            start, secret = keys[-1]
            return _protect_tls13(description, secret, aead, delivered - start)
        if self._cipher_change is None or self._cipher_change > delivered:
            return alert_record(description)
        if self._master is None or aead is None:
            return b""  # no key log, or a CBC suite
        return _protect_tls12(description, *self._master, aead, self.server_side,
                              delivered - self._cipher_change)


def _count_records(data: bytes) -> int:
    buffer, count = bytearray(data), 0
    while take_record(buffer) is not None:
        count += 1
    return count


def _cipher(aead: _Aead, key: bytes) -> AESGCM | ChaCha20Poly1305:
    # cryptography is imported here, not at the top: the core is loaded for
    # every TLS client, and only an abort after encryption started needs it.
    from cryptography.hazmat.primitives.ciphers import aead as ciphers
    return ciphers.AESGCM(key) if aead.gcm else ciphers.ChaCha20Poly1305(key)


def _xor_sequence(iv: bytes, sequence: int) -> bytes:
    return (int.from_bytes(iv, "big") ^ sequence).to_bytes(len(iv), "big")


def _expand_label(secret: bytes, label: bytes, length: int, hash_name: str) -> bytes:
    """HKDF-Expand-Label of RFC 8446 §7.1, with an empty context."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
    full_label = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full_label)]) + full_label + b"\x00"
    algorithm = hashes.SHA384() if hash_name == "sha384" else hashes.SHA256()
    return HKDFExpand(algorithm, length, info).derive(secret)


def _protect_tls13(description: AlertDescription, secret: bytes, aead: _Aead | None,
                   sequence: int) -> bytes:
    """A TLSCiphertext of RFC 8446 §5.2 carrying the alert (no padding)."""
    if aead is None:
        return b""
    key = _expand_label(secret, b"key", aead.key_size, aead.hash_name)
    iv = _expand_label(secret, b"iv", TLS13_IV_SIZE, aead.hash_name)
    inner = bytes((FATAL, description, ContentType.ALERT))
    header = (bytes([ContentType.APPLICATION_DATA]) + TLS_1_2_RECORD
              + (len(inner) + TAG_SIZE).to_bytes(2, "big"))
    return header + _cipher(aead, key).encrypt(_xor_sequence(iv, sequence), inner, header)


def _tls12_prf(hash_name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    """P_hash of RFC 5246 §5, the TLS 1.2 PRF."""
    out, chained = b"", seed
    while len(out) < length:
        chained = hmac.digest(secret, chained, hash_name)
        out += hmac.digest(secret, chained + seed, hash_name)
    return out[:length]


def _protect_tls12(description: AlertDescription, master: bytes, randoms: bytes,
                   aead: _Aead, server_side: bool, sequence: int) -> bytes:
    """A GenericAEADCipher of RFC 5246 §6.2.3.3 (RFC 7905 for ChaCha20)."""
    client_random, server_random = randoms[:32], randoms[32:]
    sizes = (aead.key_size, aead.key_size, aead.fixed_iv_size, aead.fixed_iv_size)
    block = _tls12_prf(aead.hash_name, master, b"key expansion" + server_random + client_random,
                       sum(sizes))
    parts, position = [], 0
    for size in sizes:
        parts.append(block[position:position + size])
        position += size
    client_key, server_key, client_iv, server_iv = parts
    key, iv = (server_key, server_iv) if server_side else (client_key, client_iv)
    number = sequence.to_bytes(8, "big")
    alert = bytes((FATAL, description))
    aad = number + bytes([ContentType.ALERT]) + TLS_1_2_RECORD + len(alert).to_bytes(2, "big")
    if aead.gcm:  # the nonce's explicit part goes with the record
        body = number + _cipher(aead, key).encrypt(iv + number, alert, aad)
    else:
        body = _cipher(aead, key).encrypt(_xor_sequence(iv, sequence), alert, aad)
    return bytes([ContentType.ALERT]) + TLS_1_2_RECORD + len(body).to_bytes(2, "big") + body
