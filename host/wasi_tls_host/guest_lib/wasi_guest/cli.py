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

from .errors import WasiError


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


def split_options(argv, names, flags=()):
    """(arguments, {option: value}) for options that take a value (``names``)
    and ones that do not (``flags``, value True). Raises ValueError for an
    option without its value or one that is not known."""
    arguments, options = [], {}
    words = iter(argv)
    for word in words:
        if word in flags:
            options[word] = True
        elif word in names:
            value = next(words, None)
            if value is None:
                raise ValueError(f"{word} needs a value")
            options[word] = value
        elif word.startswith("--"):
            raise ValueError(f"unknown option {word}")
        else:
            arguments.append(word)
    return arguments, options


def number(text, name, minimum=0, kind=int):
    """An argument that must be a number (``kind``) of at least ``minimum``;
    ValueError naming it (``name``) otherwise."""
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {text!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}")
    return value


def run(main, argv=None):
    """Run ``main(arguments)`` as the guest's program and exit with the status
    it returns. A WasiError or ValueError it raises ends the program with
    ``error: <message>`` on stderr and status 1."""
    try:
        status = main(sys.argv[1:] if argv is None else argv)
    except (WasiError, ValueError) as e:
        flush_stdio()
        eprint(f"error: {e}")
        status = 1
    exit(status)


def facts_text(pairs):
    """(name, value) pairs as text, one ``name: value`` line each."""
    return "".join(f"{name}: {value}\n" for name, value in pairs)


def eprint(*args):
    print(*args, file=sys.stderr, flush=True)


__all__ = ["eprint", "exit", "facts_text", "flush_stdio", "number", "run", "split_options"]
