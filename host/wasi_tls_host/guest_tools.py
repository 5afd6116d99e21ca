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


_PACKAGE = re.compile(r"^\s*package\s+([a-z0-9-]+:[a-z0-9-]+)(@[^\s;]+)?\s*;", re.M)
#: The package of wit/tls.wit, whose worlds `build` knows by their bare names.
OWN_PACKAGE = _PACKAGE.search((WIT_DIR / "tls.wit").read_text()).group(1)  # type: ignore[union-attr]


def wit_package(wit_dir: Path) -> tuple[str, str] | None:
    """(name, "@version" or "") of the package the .wit files at the top of
    `wit_dir` declare, if any does."""
    for path in sorted(wit_dir.glob("*.wit")):
        match = _PACKAGE.search(path.read_text(errors="replace"))
        if match:
            return match.group(1), match.group(2) or ""
    return None


def qualified_world(wit_dir: Path, world: str) -> str:
    """`world` as componentize-py finds it among several packages: a bare
    name is taken to be in the package `wit_dir` declares."""
    package = wit_package(wit_dir)
    if ":" in world or package is None:
        return world
    name, version = package
    return f"{name}/{world}{version}"


def wit_paths(wit_dir: Path | None) -> list[Path]:
    """The WIT trees componentize-py reads: the host's, and the guest
    author's own (whose worlds may include the host's, such as
    `wasi-tls-host:guests/plain`), unless that one is a copy of the host's."""
    if wit_dir is None:
        return [WIT_DIR]
    package = wit_package(wit_dir)
    if package is not None and package[0] == OWN_PACKAGE:
        return [wit_dir]
    return [WIT_DIR, wit_dir]


def componentize_command(app_dir: Path, world: str, output: Path, *,
                         module: str = DEFAULT_MODULE,
                         python_path: tuple[Path, ...] = (),
                         wit_dir: Path | None = None) -> list[str]:
    """The componentize-py invocation for one guest app."""
    paths = [app_dir, *python_path, GUEST_LIB_DIR]
    if wit_dir is not None:
        world = qualified_world(wit_dir, world)
    return [sys.executable, "-c", _COMPONENTIZE_PY,
            *(arg for path in wit_paths(wit_dir) for arg in ("-d", str(path))),
            "-w", world, "--features", FEATURES, "componentize",
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
                    python_path: tuple[Path, ...] = (),
                    wit_dir: Path | None = None) -> BuildResult:
    """Componentize `app_dir` for `world` into `output`, replaced only on
    success. `world` is one of WORLDS, or with `wit_dir` (a WIT tree of the
    guest author's) one of its worlds."""
    if wit_dir is None and world not in WORLDS:
        return BuildResult(False, 0.0, f"unknown world {world!r} "
                                       f"(expected one of {', '.join(WORLDS)})")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
    command = componentize_command(app_dir, world, partial, module=module,
                                   python_path=python_path, wit_dir=wit_dir)
    import subprocess  # `wasi-tls-host run` never needs it: ~4 ms of every start-up

    start = time.monotonic()
    process = subprocess.run(command, capture_output=True, text=True,
                             env=componentize_environment())
    seconds = time.monotonic() - start
    if process.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        output_text = process.stderr or process.stdout
        message = (_host_call_at_import(output_text, module) or _trim_message(output_text)
                   or f"componentize-py exited with status {process.returncode}")
        return BuildResult(False, seconds, message)
    os.replace(partial, output)
    return BuildResult(True, seconds)


#: In componentize-py's backtrace: the guest's Python called an import (the
#: host), and the adapter of the function it called.
_CALL_IMPORT = "__pyfunction_call_import"
_ADAPTER = re.compile(r"!adapter ([a-z0-9-]+)")


def _host_call_at_import(text: str, module: str) -> str | None:
    """The one line for an app that calls the host as it is imported.

    componentize-py imports the app at build time to snapshot it, where no
    host exists: such a call aborts the build with a Rust panic and a long
    backtrace that says nothing of the cause.
    """
    if _CALL_IMPORT not in text:
        return None
    called = _ADAPTER.search(text)
    what = f" ({called.group(1)})" if called else ""
    return (f"{module} calls the host while it is being imported{what}, but componentize-py "
            "imports it at build time, where there is no host: move the work into Run.run")


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
