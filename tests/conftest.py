"""Shared fixtures: guests built from source once per session, the host CLI
in a subprocess, the wasmtime CLI for differential runs, and loopback peers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pki import TLS_VERSIONS, Pki

from wasi_tls_host import Host
from wasi_tls_host.command_line import installed_command
from wasi_tls_host.conformance.peers import TcpService

#: The installed console script, as a user runs it.
HOST = installed_command()

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "guests"


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    """The tests' CAs and certificates (see tests/pki.py)."""
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(params=sorted(TLS_VERSIONS))
def version(request) -> str:
    """Each TLS test once per version: "1.2" and "1.3" (the keys of TLS_VERSIONS,
    the conformance kit's table)."""
    return request.param


@pytest.fixture(scope="session")
def guests() -> dict[str, Path]:
    """Build every guest (up-to-date ones are skipped) and map name -> .wasm.

    Each is compiled into the user's component cache here, as `run` and
    `serve` compile it: a guest run cold prints `wasi-tls-host: compiling
    ...` first, which tests that expect stderr line for line would take for
    a failure (a fresh build of a guest is a cold one)."""
    subprocess.run([sys.executable, str(ROOT / "guests" / "build.py")], check=True,
                   stdout=subprocess.DEVNULL)
    built = {path.stem: path for path in BUILD.glob("*.wasm")}
    warm = Host()
    for path in built.values():
        warm.load(path)
    return built


def run_host(component: Path | str, *args: str, flags: tuple[str, ...] = (),
             timeout: float = 120, stdin: bytes | None = None,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`wasi-tls-host run FLAGS COMPONENT ARGS` in a subprocess."""
    command = [HOST, "run", *flags, str(component), *args]
    return subprocess.run(command, input=stdin if stdin is not None else b"",
                          capture_output=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


class GuestServer:
    """A server guest under `wasi-tls-host run` (behind `prefix`, a command
    such as prlimit that runs the host), up once it printed `listening on
    HOST:PORT`. `finish()` waits for it to exit."""

    def __init__(self, component: Path | str, *args: str, flags: tuple[str, ...] = (),
                 prefix: tuple[str, ...] = ()):
        self.process = subprocess.Popen([*prefix, HOST, "run", *flags, str(component), *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        banner = self.process.stdout.readline().decode()
        if not banner.startswith("listening on "):
            self.process.kill()
            raise RuntimeError(f"{component} did not start: {banner!r} "
                               f"{self.process.stderr.read().decode()}")
        self.port = int(banner.rsplit(":", 1)[1])

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        """(exit status, stdout after the banner, stderr)."""
        try:
            out, err = self.process.communicate(timeout=timeout)
        finally:
            self.process.kill()
        return self.process.returncode, out.decode(), err.decode()

    def stop(self) -> tuple[int, str, str]:
        """Kill it: `finish()`'s (exit status, stdout, stderr)."""
        self.process.kill()
        return self.finish()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


def wasmtime_cli() -> str:
    import wasmtime_cli
    return str(Path(wasmtime_cli.__file__).with_name("wasmtime"))


def run_wasmtime(component: Path | str, *args: str, flags: tuple[str, ...] = (),
                 timeout: float = 120, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    command = [wasmtime_cli(), "run", *flags, str(component), *args]
    return subprocess.run(command, input=stdin if stdin is not None else b"",
                          capture_output=True, timeout=timeout)


@pytest.fixture
def echo_server(pki):
    """A TCP echo server on loopback (the conformance kit's); `served` holds a
    record per connection."""
    server = TcpService(pki, None, mode="echo")
    yield server
    server.close()
