"""wasi:sockets/udp and ip-name-lookup through guests, against loopback peers."""

import socket
import threading

import pytest

from conftest import run_host, run_wasmtime


class UdpEcho:
    def __init__(self, family=socket.AF_INET):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = []
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            try:
                data, sender = self.sock.recvfrom(65535)
            except OSError:
                return
            self.received.append(data)
            self.sock.sendto(data, sender)

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"),
                                         (socket.AF_INET6, "[::1]")], ids=["ipv4", "ipv6"])
def test_datagrams_round_trip(guests, family, host):
    echo = UdpEcho(family)
    try:
        result = run_host(guests["udp-echo-client"], f"{host}:{echo.port}", "5",
                          flags=("--allow-net", f"{host}:{echo.port}"))
    finally:
        echo.close()
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "sent 5 received 5" in out
    assert [line for line in out.splitlines() if line.startswith("got ")] == [
        f"got datagram {i}" for i in range(5)]


def test_udp_without_permission_is_access_denied(guests):
    echo = UdpEcho()
    try:
        result = run_host(guests["udp-echo-client"], f"127.0.0.1:{echo.port}", "1")
    finally:
        echo.close()
    assert result.returncode == 1
    assert "error: access-denied" in result.stderr.decode()
    assert echo.received == []


def test_name_lookup_matches_wasmtime(guests):
    names = ("localhost", "127.0.0.1", "::1")
    ours = run_host(guests["name-lookup"], *names, flags=("--inherit-network",))
    theirs = run_wasmtime(guests["name-lookup"], *names,
                          flags=("-S", "inherit-network", "-S", "allow-ip-name-lookup"))
    assert ours.returncode == 0, ours.stderr.decode()
    assert "localhost: " in ours.stdout.decode() and "127.0.0.1" in ours.stdout.decode()
    assert sorted(ours.stdout.decode().split()) == sorted(theirs.stdout.decode().split())


def test_malformed_names_and_literals_match_wasmtime(guests):
    # Only names that need no DNS: an unknown name would query a resolver
    # off this machine.
    names = ("bad name!", "exa mple.com", "[::1]", "fe80::1%1", "::1")
    ours = run_host(guests["name-lookup"], *names, flags=("--inherit-network",))
    theirs = run_wasmtime(guests["name-lookup"], *names,
                          flags=("-S", "inherit-network", "-S", "allow-ip-name-lookup"))
    assert ours.stdout.decode() == theirs.stdout.decode()
    assert ours.returncode == theirs.returncode == 1
    assert "bad name!: error invalid-argument" in ours.stdout.decode()


def test_name_lookup_denied_without_network(guests):
    result = run_host(guests["name-lookup"], "localhost")
    assert result.returncode == 1
    assert "localhost: error access-denied" in result.stdout.decode()
