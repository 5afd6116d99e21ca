"""A wheel built from a clean clone is complete: its `conformance` runs,
also when pip builds it itself for `pip install git+URL`.

The repository is cloned as a user clones it (the committed HEAD: no
build/, no .venv, no packed conformance components), `pip wheel` builds it
(setup.py builds the conformance components with componentize-py from the
build requirements), and the wheel is installed into a fresh virtualenv
whose `wasi-tls-host conformance` runs a few cases from outside any
checkout. Building the components takes a minute or more, so this is under
the `wheel` marker.
"""

from __future__ import annotations

import functools
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import run_outside_venv

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[2]
PACKED = "host/wasi_tls_host/conformance/components"
CASES = ("wasi/poll-mixed", "tls/handshake-python-ssl@tls1.3", "draft-identity/parse-garbage")
#: A wheel build here compiles the conformance components: minutes, not seconds.
run = functools.partial(run_outside_venv, timeout=1800)


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    source = tmp_path_factory.mktemp("clone") / "wasi-tls-host"
    cloned = run(["git", "clone", "--quiet", ROOT, source], cwd=source.parent)
    assert cloned.returncode == 0, cloned.stderr
    assert not list((source / PACKED).glob("*.wasm.xz"))
    return source


@pytest.fixture(scope="module")
def wheel(clone, tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", dist, "."], cwd=clone)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    [wheel_file] = dist.glob("wasi_tls_host-*.whl")
    return wheel_file


def test_no_wheel_when_the_components_cannot_be_built(clone, tmp_path):
    """A conformance guest that does not build stops the wheel build, with a
    message that says so; no wheel without the components."""
    broken = tmp_path / "broken"
    copied = run(["git", "clone", "--quiet", clone, broken], cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    (broken / "guests/conformance/client/app.py").write_text("this is not Python\n")
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", tmp_path / "dist",
                 "."], cwd=broken)
    assert built.returncode != 0
    assert ("wasi-tls-host: cannot build the conformance components with componentize-py"
            in built.stdout + built.stderr)
    assert not list((tmp_path / "dist").glob("*.whl"))


def test_the_wheel_carries_the_conformance_components_and_type_marker(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"wasi_tls_host/conformance/components/client.wasm.xz",
            "wasi_tls_host/conformance/components/draft.wasm.xz",
            "wasi_tls_host/conformance/manifest.toml",
            "wasi_tls_host/py.typed"} <= names


def installed(requirement: str | Path, tmp_path: Path) -> Path:
    """A fresh virtualenv with `pip install REQUIREMENT` done; its bin directory."""
    venv = tmp_path / "env"
    created = run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    done = run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", requirement],
               cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return venv / "bin"


def assert_conformance_runs(bin_dir: Path, cases: tuple[str, ...], cwd: Path) -> None:
    only = [arg for case in cases for arg in ("--only", case)]
    ran = run([bin_dir / "wasi-tls-host", "conformance", *only], cwd=cwd)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"{len(cases)} cases: {len(cases)} passed, 0 failed, 0 not applicable" in ran.stdout


def test_conformance_runs_from_the_installed_wheel(wheel, tmp_path):
    assert_conformance_runs(installed(wheel, tmp_path), CASES, tmp_path)


def test_pip_install_of_a_git_url_builds_the_components_too(clone, tmp_path):
    """`pip install git+URL` builds from a clone of its own (pip's), in a
    temporary directory: the wheel it makes and installs is as complete."""
    bin_dir = installed(f"git+file://{clone}", tmp_path)
    assert_conformance_runs(bin_dir, CASES[:1], tmp_path)
