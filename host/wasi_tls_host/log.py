"""The host's logger, ``wasi_tls_host``, with `logging` imported only when
something is logged.

Most runs log nothing, and importing `logging` (with `traceback`, which it
brings) costs a few milliseconds of every start-up. Everything the host logs
goes through `logger()`, which an embedder configures as any logger: by name.
The command line asks for `wasi-tls-host:` lines on stderr
(`print_to_stderr`); the handler for them is attached when the logger is
first used, and writes to whatever `sys.stderr` is at the time.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

NAME = "wasi_tls_host"
_to_stderr = False
_stderr_handler: logging.Handler | None = None


def print_to_stderr() -> None:
    """Have what the host logs at INFO and above printed as `wasi-tls-host:`
    lines on stderr (the command line's choice; an embedder's logging is left
    alone). Once per process is enough; again does no harm."""
    global _to_stderr
    _to_stderr = True
    if "logging" in sys.modules:  # something may have logged already
        logger()


def logger() -> logging.Logger:
    import logging
    global _stderr_handler
    log = logging.getLogger(NAME)
    if _to_stderr and _stderr_handler is None:
        _stderr_handler = _stderr_lines()
        log.addHandler(_stderr_handler)
        log.setLevel(logging.INFO)
    return log


def _stderr_lines() -> logging.Handler:
    import logging

    class StderrLines(logging.StreamHandler):
        # The stream is looked up for each record: a test may have replaced sys.stderr.
        @property
        def stream(self):
            return sys.stderr

        @stream.setter
        def stream(self, value) -> None:
            pass

    handler = StderrLines()
    handler.setFormatter(logging.Formatter("wasi-tls-host: %(message)s"))
    return handler
