"""startup_in_process.py COMPONENT

Start-up inside one fresh Python process: the seconds from the start of this
script (before `import wasi_tls_host`) until the guest's first line through
a first `Host.run`, and then, with the same `Host`, from the start of a
second `Host.run` until its first line. Prints them as one JSON line.
"""

from __future__ import annotations

import time

START = time.perf_counter()

import io  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

from wasi_tls_host import Host, HostConfig  # noqa: E402


class FirstLineClock(io.RawIOBase):
    """A stdout that notes when the first complete line arrives."""

    def __init__(self) -> None:
        self.first_line_at: float | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        if self.first_line_at is None and b"\n" in data:
            self.first_line_at = time.perf_counter()
        return len(data)


def seconds_to_first_line(host: Host, component: str, since: float) -> float:
    stdout = FirstLineClock()
    status = host.run(component, args=["startup"], config=HostConfig(stdout=stdout))
    if status != 0 or stdout.first_line_at is None:
        raise SystemExit(f"{component} exited {status} without a line on stdout")
    return stdout.first_line_at - since


def main(component: str) -> None:
    host = Host()
    first = seconds_to_first_line(host, component, START)
    second = seconds_to_first_line(host, component, time.perf_counter())
    print(json.dumps({"first": first, "second": second}))


if __name__ == "__main__":
    main(sys.argv[1])
