"""What guest authors need, shipped inside the package, and the guest build.

The package carries the WIT tree its host implements (`wit/`: the worlds in
`tls.wit`, WASI 0.2 and wasi:tls under `deps/`) and the guest library
`wasi_guest` (`guest_lib/`, data for componentize-py: the host never imports
it). `wasi-tls-host wit DIR` copies the WIT tree out; `wasi-tls-host build`
and the project's `guests/build.py` both componentize through
`build_component`, so a guest built from an installed wheel is built exactly
like the bundled ones.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
WIT_DIR = PACKAGE_DIR / "wit"
#: The directory that holds the `wasi_guest` package (put on the guest's Python path).
GUEST_LIB_DIR = PACKAGE_DIR / "guest_lib"
#: The worlds in wit/tls.wit a guest can target.
WORLDS = tuple(re.findall(r"^world ([a-z0-9-]+) \{", (WIT_DIR / "tls.wit").read_text(), re.M))
#: tls.wit declares the tls-client world, which imports the
#: @unstable(feature = tls) interface; componentize-py rejects the whole WIT
#: directory without the feature, even when building `plain`.
FEATURES = "tls"
#: The module componentize-py wraps unless told otherwise (`app.py`).
DEFAULT_MODULE = "app"

# componentize-py's own console script may not be on PATH (a venv that was
# not activated); its entry point is always importable next to this package.
_COMPONENTIZE_PY = ("import sys; from componentize_py import script; "
                    "sys.argv[0] = 'componentize-py'; sys.exit(script())")


def copy_wit(destination: Path) -> int:
    """Write the complete WIT tree into `destination`; return the number of files."""
    count = 0
    for source in sorted(WIT_DIR.rglob("*.wit")):
        target = destination / source.relative_to(WIT_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        count += 1
    return count


def componentize_command(app_dir: Path, world: str, output: Path, *,
                         module: str = DEFAULT_MODULE,
                         python_path: tuple[Path, ...] = ()) -> list[str]:
    """The componentize-py invocation for one guest app."""
    paths = [app_dir, *python_path, GUEST_LIB_DIR]
    return [sys.executable, "-c", _COMPONENTIZE_PY,
            "-d", str(WIT_DIR), "-w", world, "--features", FEATURES, "componentize",
            *(arg for path in paths for arg in ("-p", str(path))),
            module, "-o", str(output)]


def componentize_environment() -> dict[str, str]:
    """componentize-py bundles third-party packages (h11 for `wasi_guest.http`)
    from $VIRTUAL_ENV's site-packages; point it at the virtualenv this package
    is installed in when none is activated."""
    environment = dict(os.environ)
    if "VIRTUAL_ENV" not in environment and sys.prefix != sys.base_prefix:
        environment["VIRTUAL_ENV"] = sys.prefix
    return environment


@dataclass
class BuildResult:
    ok: bool
    seconds: float
    #: componentize-py's message when the build failed, without its backtraces.
    error: str = ""


def build_component(app_dir: Path, world: str, output: Path, *,
                    module: str = DEFAULT_MODULE,
                    python_path: tuple[Path, ...] = ()) -> BuildResult:
    """Componentize `app_dir` for `world` into `output`, replaced only on success."""
    if world not in WORLDS:
        return BuildResult(False, 0.0, f"unknown world {world!r} "
                                       f"(expected one of {', '.join(WORLDS)})")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
    command = componentize_command(app_dir, world, partial, module=module,
                                   python_path=python_path)
    start = time.monotonic()
    process = subprocess.run(command, capture_output=True, text=True,
                             env=componentize_environment())
    seconds = time.monotonic() - start
    if process.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        message = (_trim_message(process.stderr or process.stdout)
                   or f"componentize-py exited with status {process.returncode}")
        return BuildResult(False, seconds, message)
    os.replace(partial, output)
    return BuildResult(True, seconds)


def _trim_message(text: str) -> str:
    """componentize-py failures end in a long Rust backtrace and start with
    the Python traceback of its wrapper: keep the message between them."""
    lines = text.rstrip().splitlines()
    for index, line in enumerate(lines):
        if line.strip() == "Stack backtrace:":
            lines = lines[:index]
            break
    for index, line in enumerate(lines):
        if line.startswith("AssertionError: "):
            lines = [line.removeprefix("AssertionError: "), *lines[index + 1:]]
            break
    return "\n".join(lines).rstrip()
