"""The fuzz and stateful tests report how much they tried (the figures in docs/security.md)."""

from __future__ import annotations

from .fuzzing import SCALE, SCALE_VARIABLE, TALLY


def pytest_terminal_summary(terminalreporter) -> None:
    if not TALLY:
        return
    terminalreporter.section(f"fuzzing ({SCALE_VARIABLE}={SCALE})")
    for name, count in sorted(TALLY.items()):
        terminalreporter.write_line(f"{name}: {count}")
