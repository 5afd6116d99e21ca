#!/usr/bin/env python3
"""Build the guest apps under guests/apps/*/ into WebAssembly components.

    python guests/build.py [--out DIR] [--jobs N] [--force] [NAME ...]

Each app directory holds app.py (module ``app`` exporting wasi:cli/run) and a
one-line WORLD file naming the world in wit/tls.wit (``plain`` or
``tls-client``).  Apps are built with componentize-py into DIR/NAME.wasm
(default build/guests/), with guests/lib on the Python path.  An app whose
output is newer than every file in its directory, guests/lib and wit/ is
skipped.  Two builds run at a time; one line is printed per guest.  On failure
componentize-py's message is printed and the exit status is 1.

``--features tls`` is passed to every build: wit/tls.wit declares the
tls-client world, which imports the @unstable(feature = tls) interface, and
componentize-py rejects the whole WIT directory without the feature even when
building ``plain`` (the plain world still imports nothing from wasi:tls).
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUESTS = ROOT / "guests"
APPS = GUESTS / "apps"
LIB = GUESTS / "lib"
WIT = ROOT / "wit"
WORLDS = ("plain", "tls-client")
FEATURES = "tls"


def componentize_cmd():
    exe = Path(sys.executable).with_name("componentize-py")
    if exe.is_file() and os.access(exe, os.X_OK):
        return [str(exe)]
    found = shutil.which("componentize-py")
    if found:
        return [found]
    return [sys.executable, "-m", "componentize_py"]


def componentize_env():
    """Environment for componentize-py.  It adds $VIRTUAL_ENV's site-packages
    to the Python path (that is how third-party packages such as h11 get
    bundled), so set VIRTUAL_ENV when build.py runs from a venv that was not
    activated."""
    env = dict(os.environ)
    if "VIRTUAL_ENV" not in env and sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    return env


def newest_mtime(*roots):
    newest = 0.0
    for root in roots:
        if root.is_file():
            newest = max(newest, root.stat().st_mtime)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            newest = max(newest, Path(dirpath).stat().st_mtime)
            for f in filenames:
                if f.endswith(".pyc"):
                    continue
                newest = max(newest, (Path(dirpath) / f).stat().st_mtime)
    return newest


def read_world(app_dir):
    wf = app_dir / "WORLD"
    if not wf.is_file():
        raise ValueError(f"{wf.relative_to(ROOT)} is missing")
    world = wf.read_text().strip()
    if world not in WORLDS:
        raise ValueError(
            f"{wf.relative_to(ROOT)}: unknown world {world!r} (expected one of {', '.join(WORLDS)})"
        )
    return world


def trim_message(text):
    """componentize-py failures end with a long Rust stack backtrace: keep the
    message above it."""
    lines = text.rstrip().splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "Stack backtrace:":
            lines = lines[:i]
            break
    # Drop the wrapper's own Python traceback ("File .../componentize-py ...
    # sys.exit(script())") that precedes the AssertionError carrying the
    # actual message.
    for i, line in enumerate(lines):
        if line.startswith("AssertionError: "):
            lines = [line[len("AssertionError: ") :]] + lines[i + 1 :]
            break
    return "\n".join(lines).rstrip()


def build_one(name, out_dir, force):
    """Returns (ok, line, message)."""
    app_dir = APPS / name
    out = out_dir / f"{name}.wasm"
    try:
        world = read_world(app_dir)
    except ValueError as e:
        return False, f"{name}: FAILED", str(e)
    if not force and out.is_file() and out.stat().st_mtime > newest_mtime(app_dir, LIB, WIT):
        return True, f"{name}: up to date ({out_rel(out)})", ""
    tmp = out.with_name(f".{name}.{os.getpid()}.tmp.wasm")
    cmd = componentize_cmd() + [
        "-d",
        str(WIT),
        "-w",
        world,
        "--features",
        FEATURES,
        "componentize",
        "-p",
        str(app_dir),
        "-p",
        str(LIB),
        "app",
        "-o",
        str(tmp),
    ]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=componentize_env())
    took = time.monotonic() - start
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        msg = (
            trim_message(proc.stderr or proc.stdout)
            or f"componentize-py exited with {proc.returncode}"
        )
        return False, f"{name}: FAILED ({world}, {took:.1f}s)", msg
    os.replace(tmp, out)
    size = out.stat().st_size
    return True, f"{name}: built {out_rel(out)} ({world}, {size / 1e6:.1f} MB, {took:.1f}s)", ""


def out_rel(p):
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Build guest components with componentize-py.")
    ap.add_argument("names", nargs="*", help="apps to build (default: all under guests/apps)")
    ap.add_argument(
        "--out",
        default=str(ROOT / "build" / "guests"),
        help="output directory (default build/guests)",
    )
    ap.add_argument("--jobs", "-j", type=int, default=2, help="parallel builds (default 2)")
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = ap.parse_args(argv)

    available = (
        sorted(p.name for p in APPS.iterdir() if (p / "app.py").is_file()) if APPS.is_dir() else []
    )
    names = args.names or available
    unknown = [n for n in names if n not in available]
    if unknown:
        print(
            f"unknown guest(s): {', '.join(unknown)} (available: {', '.join(available) or 'none'})",
            file=sys.stderr,
        )
        return 2
    if not names:
        print("no guests to build", file=sys.stderr)
        return 0
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    failed = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {n: pool.submit(build_one, n, out_dir, args.force) for n in names}
        for n in names:
            ok, line, msg = futures[n].result()
            print(line, flush=True)
            if not ok:
                failed.append(n)
                print(msg, file=sys.stderr, flush=True)
    if failed:
        print(f"{len(failed)} guest build(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
