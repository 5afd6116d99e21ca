"""The wheel as a new user meets it: built from the source tree, installed
into a fresh virtualenv, and used only through that virtualenv's
`wasi-tls-host`, which is never activated and runs outside the repository.

It writes the WIT for componentize-py, builds a small HTTPS guest from an app
directory of its own with the bundled guest library (and h11 from the new
virtualenv), and runs it against a local HTTPS server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from peers import PythonHttps

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[2]
PAGE = b"<p>fetched by a guest built from the installed wheel</p>\n"

#: A guest app written as a guest author would, outside the repository.
FETCH_APP = '''
"""fetch URL: GET the URL with wasi_guest.http; print the status and the body."""

import sys

from wit_world import exports

from wasi_guest import http


class Run(exports.Run):
    def run(self) -> None:
        response = http.get(sys.argv[1])
        print(response.status)
        print(response.body.decode(), end="")
'''


def run(command: list[str | Path], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """As from a shell with no virtualenv activated and nothing of the repository on the path."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([str(part) for part in command], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    # Build from a clean copy: setuptools reuses a build/lib left in the tree.
    source = work / "source"
    shutil.copytree(ROOT / "host", source / "host",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", work / "dist",
                 source], cwd=work)
    assert built.returncode == 0, built.stderr
    [wheel_file] = (work / "dist").glob("wasi_tls_host-*.whl")
    return wheel_file


@pytest.fixture(scope="module")
def command(wheel, tmp_path_factory) -> Path:
    """The `wasi-tls-host` of a fresh virtualenv with the wheel installed."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    created = run([sys.executable, "-m", "venv", venv], cwd=venv.parent)
    assert created.returncode == 0, created.stderr
    installed = run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel],
                    cwd=venv.parent)
    assert installed.returncode == 0, installed.stderr
    return venv / "bin" / "wasi-tls-host"


def test_the_wheel_carries_the_wit_and_the_guest_library(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped_wit = {name.removeprefix("wasi_tls_host/wit/") for name in names
                   if name.startswith("wasi_tls_host/wit/")}
    source_wit = {str(path.relative_to(ROOT / "host/wasi_tls_host/wit"))
                  for path in (ROOT / "host/wasi_tls_host/wit").rglob("*.wit")}
    assert shipped_wit == source_wit
    assert {"tls.wit", "deps/tls/types.wit", "deps/sockets/tcp.wit"} <= shipped_wit
    library = ROOT / "host/wasi_tls_host/guest_lib/wasi_guest"
    assert {f"wasi_tls_host/guest_lib/wasi_guest/{path.name}"
            for path in library.glob("*.py")} <= names


def test_help_and_version(command, tmp_path):
    helped = run([command, "--help"], cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "build" in helped.stdout and "wit" in helped.stdout
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    versioned = run([command, "--version"], cwd=tmp_path)
    assert (versioned.returncode, versioned.stdout) == (0, f"wasi-tls-host {version}\n")


def test_wit_writes_a_tree_componentize_py_accepts(command, tmp_path):
    written = run([command, "wit", tmp_path / "wit"], cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "wit" / "tls.wit").is_file()
    assert (tmp_path / "wit" / "deps" / "tls" / "types.wit").is_file()
    bindings = run([command.with_name("componentize-py"), "-d", tmp_path / "wit",
                    "-w", "tls-client", "--features", "tls", "bindings", tmp_path / "bindings"],
                   cwd=tmp_path)
    assert bindings.returncode == 0, bindings.stderr
    assert (tmp_path / "bindings" / "wit_world" / "imports" / "wasi_tls_types.py").is_file()


def test_build_then_run_a_guest_that_fetches_a_page(command, pki, tmp_path):
    app = tmp_path / "fetch"
    app.mkdir()
    (app / "app.py").write_text(FETCH_APP)
    built = run([command, "build", app, "-w", "tls-client", "-o", tmp_path / "fetch.wasm"],
                cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert built.stdout.startswith(f"built {tmp_path / 'fetch.wasm'} (tls-client, ")

    site = tmp_path / "site"
    site.mkdir()
    (site / "page.html").write_bytes(PAGE)
    server = PythonHttps(pki, site, "1.3")
    try:
        fetched = run([command, "run", "--ca-file", pki.ca_file,
                       "--allow-net", f"localhost:{server.port}", tmp_path / "fetch.wasm",
                       f"https://localhost:{server.port}/page.html"], cwd=tmp_path, timeout=120)
    finally:
        server.close()
    # A first run compiles the new guest, and says so.
    compiled = f"wasi-tls-host: compiling {tmp_path / 'fetch.wasm'} (cached for next time)\n"
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stderr in ("", compiled)
    assert fetched.stdout == f"200\n{PAGE.decode()}"


def test_the_wheel_runs_the_conformance_suite(wheel, command, tmp_path):
    """The conformance guests ship packed in the wheel: a user runs the suite
    with neither componentize-py nor a checkout."""
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"wasi_tls_host/conformance/manifest.toml",
            "wasi_tls_host/conformance/components/client.wasm.xz",
            "wasi_tls_host/conformance/components/draft.wasm.xz"} <= names
    ran = run([command, "conformance", "--only", "wasi/poll-mixed",
               "--only", "draft-identity/parse-garbage"], cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "2 cases: 2 passed, 0 failed, 0 not applicable" in ran.stdout
