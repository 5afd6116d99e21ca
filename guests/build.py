#!/usr/bin/env python3
"""Build the guest apps under guests/apps/*/ into WebAssembly components.

    python guests/build.py [--out DIR] [--jobs N] [--force] [NAME ...]

Each app directory holds app.py (module ``app`` exporting wasi:cli/run) and a
one-line WORLD file naming the world in the package's wit/tls.wit (``plain``
or ``tls-client``).  Each app is built into DIR/NAME.wasm (default
build/guests/) by the same code as ``wasi-tls-host build APP_DIR -w WORLD -o
OUT``: componentize-py with the package's WIT tree and its guest library
``wasi_guest``.  An app whose output is newer than every file in its
directory, the guest library and the WIT tree is skipped.  Two builds run at
a time; one line is printed per guest.  On failure componentize-py's message
is printed and the exit status is 1.

The conformance guests under guests/conformance/*/ (NAME
``conformance-<dir>``) are built the same way, with guests/conformance/kit
on their path, and packed into the package (wasi_tls_host/conformance/
components/<dir>.wasm.xz) so that the wheel ships them; the uncompressed
component stays in DIR.
"""

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from wasi_tls_host.conformance import components
from wasi_tls_host.guest_tools import GUEST_LIB_DIR, WIT_DIR, WORLDS, build_component

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "guests" / "apps"
CONFORMANCE = ROOT / "guests" / "conformance"
CONFORMANCE_KIT = CONFORMANCE / "kit"
CONFORMANCE_PREFIX = "conformance-"


def newest_mtime(*roots):
    newest = 0.0
    for root in roots:
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


def build_one(name, out_dir, force):
    """Returns (ok, line, message)."""
    conformance = name.startswith(CONFORMANCE_PREFIX)
    app_dir = CONFORMANCE / name.removeprefix(CONFORMANCE_PREFIX) if conformance else APPS / name
    sources = (app_dir, CONFORMANCE_KIT) if conformance else (app_dir,)
    out = out_dir / f"{name}.wasm"
    # A conformance guest is done once it is packed into the package.
    done = components.packed_path(app_dir.name) if conformance else out
    try:
        world = read_world(app_dir)
    except ValueError as e:
        return False, f"{name}: FAILED", str(e)
    if not force and done.is_file() and done.stat().st_mtime > newest_mtime(
        *sources, GUEST_LIB_DIR, WIT_DIR
    ):
        return True, f"{name}: up to date ({out_rel(done)})", ""
    result = build_component(app_dir, world, out, python_path=sources[1:])
    if not result.ok:
        return False, f"{name}: FAILED ({world}, {result.seconds:.1f}s)", result.error
    size = out.stat().st_size
    packed = f", packed into {out_rel(components.pack(out, app_dir.name))}" if conformance else ""
    return (
        True,
        f"{name}: built {out_rel(out)} ({world}, {size / 1e6:.1f} MB, {result.seconds:.1f}s)"
        f"{packed}",
        "",
    )


def out_rel(p):
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Build guest components with componentize-py.")
    ap.add_argument(
        "names",
        nargs="*",
        help="apps to build (default: all under guests/apps and guests/conformance)",
    )
    ap.add_argument(
        "--out",
        default=str(ROOT / "build" / "guests"),
        help="output directory (default build/guests)",
    )
    ap.add_argument("--jobs", "-j", type=int, default=2, help="parallel builds (default 2)")
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = ap.parse_args(argv)

    available = [
        f"{prefix}{p.name}"
        for prefix, root in (("", APPS), (CONFORMANCE_PREFIX, CONFORMANCE))
        if root.is_dir()
        for p in sorted(root.iterdir())
        if (p / "app.py").is_file()
    ]
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
