"""Builds the conformance components into the package before the wheel is made.

`wasi-tls-host conformance` runs two guest components that ship packed in
the package (host/wasi_tls_host/conformance/components/*.wasm.xz, never
committed). A wheel built from a clean clone, with `pip wheel .`, `pip
install .` or `pip install git+URL`, gets them here: guests/build.py builds
them from guests/conformance/ with componentize-py (a build requirement in
pyproject.toml), skipping them when they are up to date. If they cannot be
built, the wheel is not built either, and the message says why. An editable
install skips this: `make guests` builds them in a checkout.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUILD_SCRIPT = ROOT / "guests" / "build.py"
CONFORMANCE_GUESTS = ("conformance-client", "conformance-draft")


def build_conformance_components() -> None:
    if not BUILD_SCRIPT.is_file():
        raise SystemExit(
            "wasi-tls-host: cannot build the conformance components: guests/build.py is not "
            "in this source tree; build the wheel from a checkout of the repository")
    # guests/build.py imports the package from the source tree.
    search_path = [str(ROOT / "host"), *filter(None, [os.environ.get("PYTHONPATH")])]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(search_path)}
    with tempfile.TemporaryDirectory() as scratch:
        built = subprocess.run([sys.executable, str(BUILD_SCRIPT), "--out", scratch,
                                *CONFORMANCE_GUESTS], env=environment)
    if built.returncode != 0:
        raise SystemExit(
            "wasi-tls-host: cannot build the conformance components with componentize-py "
            f"(guests/build.py exited with status {built.returncode}; its messages are "
            "above); the wheel would lack them, so it is not built")


class BuildPyWithConformance(build_py):
    def run(self) -> None:
        if not self.editable_mode:
            build_conformance_components()
        super().run()


setup(cmdclass={"build_py": BuildPyWithConformance})
