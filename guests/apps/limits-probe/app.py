"""limits-probe MODE [ARG]: a guest that runs into the host's limits on purpose.

Each mode prints `limits-probe: MODE` first (so a test knows the guest got
going), then:

- `spin`: computes forever, never calling the host.
- `block`: waits in poll for an hour on a monotonic-clock timer.
- `allocate MIB`: keeps MIB MiB at a time until an allocation fails, prints
  `allocated N MiB, then MemoryError`, and exits 0; with no MIB, 1 MiB.
- `hog`: keeps 1 MiB at a time and lets the MemoryError end it.
- `read`: reads stdin to its end (a blocking read), prints how much it got.
- `raise`: prints a line on stderr and raises an exception out of `run`.
- `count N`: computes N loop iterations, prints `counted N`, exits 0.
"""

import sys

from wit_world import exports
from wit_world.imports import monotonic_clock, poll

HOUR_NS = 3600 * 10**9


def spin() -> None:
    turns = 0
    while True:
        turns += 1


def block() -> None:
    timer = monotonic_clock.subscribe_duration(HOUR_NS)
    poll.poll([timer])
    print("limits-probe: the hour passed")


def allocate(step_mib: int) -> None:
    kept = []
    try:
        while True:
            kept.append(bytearray(step_mib << 20))
    except MemoryError:
        allocated = len(kept) * step_mib
        kept.clear()
        print(f"allocated {allocated} MiB, then MemoryError")


def hog() -> None:
    kept = []
    while True:
        kept.append(bytearray(1 << 20))


def read() -> None:
    data = sys.stdin.buffer.read()
    print(f"read {len(data)} bytes")


def count(turns: int) -> None:
    total = 0
    for turn in range(turns):
        total += turn
    print(f"counted {turns}")


class Run(exports.Run):
    def run(self) -> None:
        mode, *rest = sys.argv[1:] or ["missing"]
        print(f"limits-probe: {mode}", flush=True)
        if mode == "spin":
            spin()
        elif mode == "block":
            block()
        elif mode == "allocate":
            allocate(int(rest[0]) if rest else 1)
        elif mode == "hog":
            hog()
        elif mode == "read":
            read()
        elif mode == "raise":
            print("about to fail", file=sys.stderr, flush=True)
            raise RuntimeError("the probe failed on purpose")
        elif mode == "count":
            count(int(rest[0]))
        else:
            print(f"unknown mode {mode!r}", file=sys.stderr)
            sys.exit(2)
