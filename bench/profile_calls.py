"""profile_calls.py: where the time of a host call goes in the project's call
layer, for bench/README.md. Not part of `make bench` (cProfile slows what it
watches; its shares, not its totals, are the point).

1. cProfile of the tiny guest's loops under the project's call layer: the
   functions with the most own time per call, for the trivial call, the
   resource call + drop, and the 64 KiB blocking-read.
2. A what-if for the optimisation: the same loops with the guest entered
   through ctypes.PyDLL, which keeps the GIL, so that each host call does not
   have to take it again.

    python bench/profile_calls.py
"""

from __future__ import annotations

import cProfile
import pstats
import statistics
import sys
from pathlib import Path

from minimal_hosts import InProcessHosts

ROOT = Path(__file__).resolve().parent.parent
COUNTS = {"now": 20000, "resource": 20000, "read-64k": 200}
REPEATS = 5


def profile(hosts: InProcessHosts, operation: str, count: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    hosts.run_tiny("project", operation, count)
    profiler.disable()
    stats = pstats.Stats(profiler)
    entries = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # own time
    total = sum(entry[1][2] for entry in entries)
    print(f"\n{operation}: {total / count * 1e6:.1f} us per call under cProfile; "
          "own time per call, top functions:")
    for (filename, line, name), (_, calls, own, _, _) in entries[:10]:
        where = Path(filename).name if filename != "~" else ""
        print(f"  {own / count * 1e6:8.2f} us  {own / total:5.1%}  {calls / count:4.1f} calls  "
              f"{name} {where}:{line}")


def gil_what_if(hosts: InProcessHosts) -> None:
    print("\nper call (median of 5, us): guest entered by wasmtime-py (GIL let go) vs "
          "through PyDLL (GIL kept)")
    for host in ("floor", "project"):
        for operation in COUNTS:
            samples: dict[bool, list[float]] = {False: [], True: []}
            count = COUNTS[operation]
            for _ in range(REPEATS):
                for keep_gil in samples:
                    baseline = hosts.run_tiny(host, operation, 0, keep_gil=keep_gil)
                    seconds = hosts.run_tiny(host, operation, count, keep_gil=keep_gil)
                    samples[keep_gil].append((seconds - baseline) / count * 1e6)
            released, kept = (statistics.median(samples[keep]) for keep in (False, True))
            print(f"  {host:<8} {operation:<9} {released:9.2f} -> {kept:9.2f}  "
                  f"({kept / released - 1:+.0%})")


def main() -> int:
    hosts = InProcessHosts(ROOT / "build" / "bench")
    for operation, count in COUNTS.items():
        hosts.run_tiny("project", operation, count)  # compile before profiling
        profile(hosts, operation, count)
    gil_what_if(hosts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
