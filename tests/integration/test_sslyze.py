"""sslyze scans a guest TLS server: what a security audit of a deployment would see.

The bundled `https-server` guest runs under the installed `wasi-tls-host run`
with two identities from the test PKI (ECDSA and RSA, so that the suites of
both key types are offered) and serves until the scan is over. sslyze
(through its Python API) tries every protocol version from SSL 2.0 to TLS
1.3 and every suite it knows in each, so one scan covers both TLS versions
the host speaks. The host's policy must show: TLS 1.2 and 1.3 only; only
forward-secret suites of at least 128 bits; no compression; no
client-initiated renegotiation; none of Heartbleed, the OpenSSL CCS
injection or ROBOT; no 0-RTT.
"""

from __future__ import annotations

import pytest
import sslyze

from conftest import GuestServer

LEGACY_VERSIONS = ("ssl_2_0_cipher_suites", "ssl_3_0_cipher_suites", "tls_1_0_cipher_suites",
                   "tls_1_1_cipher_suites")
CURRENT_VERSIONS = ("tls_1_2_cipher_suites", "tls_1_3_cipher_suites")
COMMANDS = {*LEGACY_VERSIONS, *CURRENT_VERSIONS, "tls_compression", "session_renegotiation",
            "heartbleed", "openssl_ccs_injection", "robot", "tls_1_3_early_data"}


@pytest.fixture(scope="module")
def scan(guests, pki):
    """One scan of one server, shared by the assertions below; the results by command name."""
    identities = []
    for name, key_type in (("a.example", "ecdsa"), ("b.example", "rsa")):
        leaf = pki.leaf(name, key_type=key_type)
        identities += ["--identity", f"{name}={leaf.cert_file},{leaf.key_file}"]
    server = GuestServer(guests["https-server"], "127.0.0.1:0",
                         flags=("--allow-net", "127.0.0.1", *identities))
    try:
        # A server name the guest has no identity for: the host offers both
        # identities, and OpenSSL picks by what each probe supports.
        location = sslyze.ServerNetworkLocation("localhost", server.port, ip_address="127.0.0.1")
        request = sslyze.ServerScanRequest(
            server_location=location,
            scan_commands={sslyze.ScanCommand(name) for name in COMMANDS})
        scanner = sslyze.Scanner()
        scanner.queue_scans([request])
        (result,) = list(scanner.get_results())
    finally:
        server.close()
    assert result.scan_status == sslyze.ServerScanStatusEnum.COMPLETED, (
        result.connectivity_error_trace)
    attempts = {}
    for name in COMMANDS:
        attempt = getattr(result.scan_result, name)
        assert attempt.status == sslyze.ScanCommandAttemptStatusEnum.COMPLETED, (
            f"{name}: {attempt.error_reason} {attempt.error_trace}")
        attempts[name] = attempt.result
    return attempts


def test_only_tls_1_2_and_1_3_are_accepted(scan):
    for name in LEGACY_VERSIONS:
        assert scan[name].accepted_cipher_suites == [], name
    for name in CURRENT_VERSIONS:
        assert scan[name].accepted_cipher_suites, f"{name}: nothing accepted"


def test_every_suite_is_forward_secret_and_at_least_128_bit(scan):
    tls_1_2 = scan["tls_1_2_cipher_suites"].accepted_cipher_suites
    for accepted in tls_1_2:
        name = accepted.cipher_suite.name
        assert name.startswith(("TLS_ECDHE_", "TLS_DHE_")), f"{name} is not forward-secret"
        assert accepted.ephemeral_key is not None, f"{name}: no ephemeral key"
    # Both key types are served: suites for ECDSA and for RSA certificates.
    assert {a.cipher_suite.name.split("_WITH_")[0] for a in tls_1_2} >= {"TLS_ECDHE_ECDSA",
                                                                           "TLS_ECDHE_RSA"}
    # TLS 1.3 suites are all (EC)DHE by design; what matters is their strength.
    for accepted in tls_1_2 + scan["tls_1_3_cipher_suites"].accepted_cipher_suites:
        assert not accepted.cipher_suite.is_anonymous, accepted.cipher_suite.name
        assert accepted.cipher_suite.key_size >= 128, accepted.cipher_suite.name


def test_no_compression_and_no_client_renegotiation(scan):
    assert scan["tls_compression"].supports_compression is False
    renegotiation = scan["session_renegotiation"]
    assert renegotiation.is_vulnerable_to_client_renegotiation_dos is False
    assert renegotiation.client_renegotiations_success_count == 0


def test_not_vulnerable_to_heartbleed_ccs_injection_or_robot(scan):
    assert scan["heartbleed"].is_vulnerable_to_heartbleed is False
    assert scan["openssl_ccs_injection"].is_vulnerable_to_ccs_injection is False
    assert scan["robot"].robot_result in (
        sslyze.RobotScanResultEnum.NOT_VULNERABLE_RSA_NOT_SUPPORTED,
        sslyze.RobotScanResultEnum.NOT_VULNERABLE_NO_ORACLE)


def test_no_early_data(scan):
    assert scan["tls_1_3_early_data"].supports_early_data is False

