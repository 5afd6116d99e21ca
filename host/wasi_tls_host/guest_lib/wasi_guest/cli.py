"""Process-level helpers: exit status, stderr.

Exit status under WASI 0.2 (stable) can only be success or failure:
wasi:cli/exit.exit(result) maps to status 0 or 1.  exit-with-code is
@unstable(feature = cli-exit-with-code) and cannot be enabled with
componentize-py 0.25.1 (its runtime imports wasi:cli/exit@0.2.9 without that
function and the merge fails), so exit(n) with n != 0 yields status 1 unless
the bindings provide exit_with_code.

Likewise `sys.exit(n)` / raising SystemExit from run(): 0 -> status 0, any
other value -> status 1; an uncaught exception traps (wasmtime: status 134).
"""

import sys

from componentize_py_types import Err, Ok
from wit_world.imports import exit as _exit


def flush_stdio():
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:
            pass


def exit(code: int = 0):
    """Flush Python's stdio buffers and exit the component now.

    Status 0 -> ok; otherwise exit-with-code when available, else err
    (which hosts report as status 1)."""
    flush_stdio()
    code = int(code)
    if code == 0:
        _exit.exit(Ok(None))
    elif hasattr(_exit, "exit_with_code") and 0 < code < 256:
        _exit.exit_with_code(code)
    else:
        _exit.exit(Err(None))
    raise SystemExit(code)  # not reached: exit does not return


def eprint(*args):
    print(*args, file=sys.stderr, flush=True)


__all__ = ["eprint", "exit", "flush_stdio"]
