"""A denied network access, as a user meets it: the installed command prints
one `wasi-tls-host:` line per address naming the operation, the address and
the flag that would grant it, before the guest's own report; an embedder
who configured no logging still sees the denial on stderr."""

from __future__ import annotations

import socket
import subprocess
import sys

from conftest import run_host


def denial(operation: str, where: str) -> str:
    return f"wasi-tls-host: denied {operation} to {where} (no --allow-net grants it)"


def test_a_denied_connect_names_the_address_and_the_flag(guests):
    result = run_host(guests["tcp-echo-client"], "127.0.0.1:8443")
    assert (result.returncode, result.stderr.decode()) == (
        1, f"{denial('connect', '127.0.0.1:8443')}\nerror: access-denied\n")


def test_one_line_per_address_of_a_name(guests):
    """The guest tries every address of `localhost` in turn; each is named once."""
    addresses = {info[4][0] for info in socket.getaddrinfo("localhost", None,
                                                           proto=socket.IPPROTO_TCP)}
    result = run_host(guests["tcp-echo-client"], "localhost:8443",
                      flags=("--allow-net", "127.0.0.2"))
    lines = result.stderr.decode().splitlines()
    expected = {denial("connect", f"[{address}]:8443" if ":" in address else f"{address}:8443")
                for address in addresses}
    assert result.returncode == 1
    assert sorted(lines[:-1]) == sorted(expected) and lines[-1] == "error: access-denied"


def test_a_denied_bind_of_a_listener(guests):
    result = run_host(guests["tcp-echo-server"], "127.0.0.1:0")
    assert result.returncode == 1
    assert result.stderr.decode() == f"{denial('bind', '127.0.0.1:0')}\nerror: access-denied\n"


def test_a_denied_udp_peer(guests):
    result = run_host(guests["udp-echo-client"], "127.0.0.1:9", "1",
                      flags=("--allow-net", "127.0.0.2"))
    assert result.returncode == 1
    assert result.stderr.decode().startswith(f"{denial('connect', '127.0.0.1:9')}\n")
    assert "error: access-denied" in result.stderr.decode()


def test_an_embedder_without_logging_still_sees_the_denial(guests):
    """Python's last-resort handler prints the WARNING, bare, on stderr."""
    program = (
        "import sys\n"
        "from wasi_tls_host import Host, HostConfig\n"
        "status = Host().run(sys.argv[1], config=HostConfig(args=['client', '127.0.0.1:8443']))\n"
        "print(status)\n")
    result = subprocess.run([sys.executable, "-c", program, str(guests["tcp-echo-client"])],
                            capture_output=True, timeout=120)
    assert result.stdout.decode() == "1\n"
    assert result.stderr.decode() == ("denied connect to 127.0.0.1:8443 (no --allow-net grants "
                                      "it)\nerror: access-denied\n")
