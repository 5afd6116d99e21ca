"""Coverage-guided fuzzing (atheris, i.e. libFuzzer) of what reads a peer's bytes, for `make fuzz`.

    python tests/fuzz/atheris_harness.py TARGET [LIBFUZZER OPTIONS]

TARGET is one of:

  client-hello   `parse_client_hello`: a ClientHello, None or ClientHelloError
  records        `take_record` and `HandshakeScanner` over the records it cuts
  core           a `TlsCore` server or client (by the input's first byte)
                 fed the rest of the input as the peer's bytes, in pieces
                 (the second byte sets their size); `fuzzing.CoreContract`
                 judges every call

The hypothesis tests beside this file check the same contracts with
structured inputs; this harness lets libFuzzer's coverage feedback find
inputs nobody thought of. It starts from real OpenSSL flights (written to a
temporary corpus directory) and stops at the first input that breaks a
contract, which libFuzzer writes to ./crash-<sha1>: turn it into a regression
test in tests/fuzz/. `-runs=N` or `-max_total_time=S` bound a run.
"""

from __future__ import annotations

import ssl
import sys
import tempfile
from pathlib import Path

import atheris

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

with atheris.instrument_imports(include=["wasi_tls_host"]):
    from fuzzing import CoreContract, pieces
    from lockstep import PlainSSLPeer
    from pki import Pki

    from wasi_tls_host.tls import TlsCore
    from wasi_tls_host.tls.client_hello import ClientHelloError, parse_client_hello
    from wasi_tls_host.tls.records import HandshakeScanner, take_record

SERVER, CLIENT = 0, 1


def client_hello(data: bytes) -> None:
    try:
        parse_client_hello(data)
    except ClientHelloError:
        pass


def records(data: bytes) -> None:
    buffer = bytearray(data)
    scanner = HandshakeScanner()
    while (record := take_record(buffer)) is not None:
        scanner.message_types(record)


class Core:
    """The core target, with the contexts every input reuses."""

    def __init__(self, pki: Pki):
        leaf = pki.leaf("localhost")
        self.server_context = pki.server_context(leaf)
        self.client_context = pki.policy().client_context()
        self.peer_client_context = pki.client_context()

    def __call__(self, data: bytes) -> None:
        if len(data) < 2:
            return
        role, size, peer_bytes = data[0] % 2, data[1] + 1, data[2:]
        if role == SERVER:
            core = TlsCore(lambda hello: self.server_context, server_side=True)
        else:
            core = TlsCore(self.client_context, server_hostname="localhost")
        contract = CoreContract(core)
        contract.call("handshake")
        contract.call("ciphertext_to_send")
        for piece in pieces(peer_bytes, [size]):
            contract.call("receive_ciphertext", piece)
            contract.call("handshake")
            contract.call("read", 16384)
            contract.call("ciphertext_to_send")
        contract.call("receive_eof")
        contract.call("read", 16384)
        contract.final_checks()

    def seeds(self) -> list[bytes]:
        """Real first flights: ClientHellos for the server, server flights for the client."""
        found = []
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            client_context.check_hostname = False
            client_context.verify_mode = ssl.CERT_NONE
            client_context.maximum_version = version
            client = PlainSSLPeer(client_context, server_side=False, server_hostname="localhost")
            server = PlainSSLPeer(self.server_context, server_side=True)
            client.handshake()
            hello = client.ciphertext_to_send()
            server.receive_ciphertext(hello)
            server.handshake()
            found += [bytes((SERVER, 255)) + hello,
                      bytes((CLIENT, 255)) + server.ciphertext_to_send()]
        return found


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("client-hello", "records", "core"):
        sys.exit(__doc__)
    target_name, options = sys.argv[1], sys.argv[2:]
    corpus = Path(tempfile.mkdtemp(prefix=f"atheris-{target_name}-"))
    core = Core(Pki(Path(tempfile.mkdtemp(prefix="atheris-pki-"))))
    target = {"client-hello": client_hello, "records": records, "core": core}[target_name]
    for index, seed in enumerate(core.seeds()):
        (corpus / f"seed-{index}").write_bytes(seed if target is core else seed[2:])
    atheris.Setup([sys.argv[0], *options, str(corpus)], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
