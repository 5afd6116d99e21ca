"""`make bench`: every speed and memory figure of the host next to its anchor,
measured in the same run, as a table of medians and ratios; the same in
bench/results/latest.json. bench/README.md explains each figure.

    python bench/run.py [--only SCENARIO ...]

Scenarios, in order: startup, calls, network, bulk, load, http. Only loopback is used.
Repeats: REPEATS for anything that starts a process, CALL_REPEATS for the
in-process call figures; variants are interleaved within each repeat, so a
busy machine slows all of them alike.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import datetime
import functools
import http.server
import importlib.metadata
import json
import os
import platform
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median

import bulk_candidates
import http_bench
import loopback
import tiny_guest
import wasmtime_cli
from minimal_hosts import InProcessHosts

from wasi_tls_host.guest_tools import GUEST_LIB_DIR, WIT_DIR

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GUESTS = ROOT / "build" / "guests"
BUILD = ROOT / "build" / "bench"
RESULTS = HERE / "results" / "latest.json"
#: Where a run of only some scenarios (`--only`) writes, leaving the full results alone.
PARTIAL_RESULTS = BUILD / "partial-results.json"
NET_BENCH_APP = HERE / "guests" / "net-bench"
NET_BENCH = BUILD / "net-bench.wasm"
#: The same app built for a world of this host's own (with wasi-tls-host:io/bulk).
NET_BENCH_HOST_WORLD = BUILD / "net-bench-host.wasm"
ECHO_SERVER = GUESTS / "tls-echo-server.wasm"
#: The wasmtime binary itself (not the pip wrapper script, which is Python).
WASMTIME = str(Path(wasmtime_cli.__file__).with_name("wasmtime"))
HOST_RUN = [sys.executable, "-m", "wasi_tls_host", "run"]
NATIVE = [sys.executable, str(HERE / "native_client.py")]
TLS_LOAD = [sys.executable, str(HERE / "tls_load.py")]

REPEATS = 3
#: The call figures are short and this machine is shared: many short
#: interleaved loops give a steadier median than a few long ones.
CALL_REPEATS = 11
#: How long one timed loop of the tiny guest runs: in this process, and
#: under `wasmtime run` (where process start-up noise must be small next to it).
IN_PROCESS_LOOP_S = 0.1
CLI_LOOP_S = 0.5
BULK_BYTES = 16 << 20
#: Issue 16 asks each direction of the bulk path for this much, on the
#: 2-core development machine.
BULK_FLOOR_MB_S = 150.0
#: Seconds each candidate form moves bytes for, per repeat.
BULK_FORM_SECONDS = 0.3
HTTPS_BYTES = 16 << 20
HANDSHAKES = 20
IDLE_CONNECTIONS = 100
LOAD_LEVELS = (1, 50, 200)
#: Handshakes per level, shared by the clients; seconds of echoing per level.
LOAD_HANDSHAKES = 400
LOAD_SECONDS = 3.0
MIB = 1 << 20


# -- rows of the table ----------------------------------------------------------

@dataclass
class Row:
    """One figure next to one anchor. `ratio` is this host / anchor; `target`
    bounds it from above (`lower` is better) or below (`higher`)."""

    figure: str
    ours: float | None
    anchor: str
    reference: float | None
    unit: str
    better: str = "lower"
    target: float | None = None
    note: str = ""
    #: The target also asks for something the ratio cannot show (no errors).
    disqualified: bool = False

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.reference:
            return None
        return self.ours / self.reference

    @property
    def met(self) -> bool | None:
        if self.target is None or self.ratio is None:
            return None
        if self.disqualified:
            return False
        return self.ratio <= self.target if self.better == "lower" else self.ratio >= self.target


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    digits = 3 if value < 10 else 1 if value < 1000 else 0
    return f"{value:.{digits}f} {unit}"


def print_table(rows: list[Row]) -> None:
    header = ("figure", "this host", "anchor", "anchor value", "ratio", "target", "met?")
    cells = [header]
    for row in rows:
        target = "-" if row.target is None else (
            f"{'<=' if row.better == 'lower' else '>='} {row.target:g}x")
        met = "-" if row.met is None else "yes" if row.met else "NO"
        ratio = "-" if row.ratio is None else f"{row.ratio:.3g}x"
        cells.append((row.figure, _value(row.ours, row.unit), row.anchor,
                      _value(row.reference, row.unit), ratio, target, met))
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    for number, line in enumerate(cells):
        print("  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)))
        if number == 0:
            print("  ".join("-" * width for width in widths))
    notes = [f"  {row.figure}: {row.note}" for row in rows if row.note]
    if notes:
        print("\nnotes:")
        print("\n".join(notes))


@dataclass
class Bench:
    rows: list[Row] = field(default_factory=list)
    #: Every sample behind the rows, and figures that are not rows, for the JSON.
    details: dict[str, object] = field(default_factory=dict)
    #: The value-path ceiling (MB/s into the guest), the anchor of the bulk reads.
    ceiling_mb_s: float | None = None

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)


def interleaved(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, list]:
    """Each variant `repeats` times, taking turns."""
    samples: dict[str, list] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, measure in variants.items():
            samples[name].append(measure())
    return samples


# -- processes -----------------------------------------------------------------

@dataclass
class ProcessRun:
    seconds: float
    #: Seconds from the start until the first complete line on stdout.
    first_line: float
    max_rss_mib: float
    stdout: str

    @property
    def result(self) -> dict:
        """The JSON line a bench client prints last."""
        return json.loads(self.stdout.strip().splitlines()[-1])


def run_process(command: list[str], stdin_path: str = os.devnull) -> ProcessRun:
    """Run `command` to its end; its stderr is kept for the error message only."""
    with open(stdin_path, "rb") as stdin, tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr)
        first = process.stdout.readline()
        first_line = time.perf_counter() - start
        rest = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        process.stdout.close()
        if process.returncode != 0:
            stderr.seek(0)
            raise RuntimeError(f"{' '.join(command)} exited {process.returncode}:\n"
                               f"{stderr.read().decode(errors='replace')[-2000:]}")
    return ProcessRun(seconds, first_line, usage.ru_maxrss / 1024, (first + rest).decode())


def vm_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def idle_connections_mib(command: list[str]) -> float:
    """RSS growth of a `hold` client (guest or native) while it holds
    IDLE_CONNECTIONS more TLS connections than its first one."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=stderr)
        try:
            steps = []
            for expected in (b"ready", b"open"):
                line = process.stdout.readline().strip()
                if line != expected:
                    stderr.seek(0)
                    raise RuntimeError(f"{' '.join(command)}: expected {expected!r}, got "
                                       f"{line!r}\n{stderr.read().decode(errors='replace')}")
                steps.append(vm_rss_mib(process.pid))
                process.stdin.write(b"\n")
                process.stdin.flush()
            process.stdin.close()
            process.stdout.read()
        finally:
            process.wait()
    return steps[1] - steps[0]


# -- start-up --------------------------------------------------------------------

def startup(bench: Bench) -> None:
    # An installed wheel comes with its bytecode (pip compiles it); the
    # editable install measured here has none while PYTHONDONTWRITEBYTECODE
    # is set, and would compile every module at every start.
    compileall.compile_dir(ROOT / "host" / "wasi_tls_host", quiet=1,
                           rx=re.compile(r"[/\\]guest_lib[/\\]"))
    probe = str(GUESTS / "wasi-probe.wasm")
    commands = {"this host": [*HOST_RUN, probe], "wasmtime run": [WASMTIME, "run", probe]}
    for command in commands.values():
        run_process(command)  # fills the compile caches
    runs = interleaved({name: functools.partial(run_process, command)
                        for name, command in commands.items()}, REPEATS)
    in_process = [run_process([sys.executable, str(HERE / "startup_in_process.py"), probe]).result
                  for _ in range(REPEATS)]
    ours, theirs = runs["this host"], runs["wasmtime run"]
    anchor = median([run.first_line for run in theirs])
    bench.add(
        Row("start-up to first line, CLI (wasi-probe, warm cache)",
            median([run.first_line for run in ours]), "wasmtime run (binary, warm cache)",
            anchor, "s", target=1.0,
            note="CPython in the guest buffers its stdout on a pipe, so the probe's first "
                 "line arrives with the rest of its output when it exits"),
        Row("start-up to first line, in-process first Host.run", median(
            [run["first"] for run in in_process]), "wasmtime run (binary, warm cache)", anchor,
            "s", note="fresh Python process, from before `import wasi_tls_host`"),
        Row("start-up to first line, in-process second Host.run", median(
            [run["second"] for run in in_process]), "wasmtime run (binary, warm cache)", anchor,
            "s", note="same Host, component already loaded"),
        Row("peak RSS, wasi-probe run", max(run.max_rss_mib for run in ours), "wasmtime run",
            max(run.max_rss_mib for run in theirs), "MiB"),
    )
    bench.details["startup"] = {
        name: [asdict(run) | {"stdout": None} for run in samples]
        for name, samples in runs.items()} | {"in_process": in_process}


# -- host calls: the tiny guest ------------------------------------------------

def _calibrated_count(seconds_of: Callable[[int], float], loop_seconds: float,
                      start: int) -> int:
    """A loop count for which the loop takes about `loop_seconds`."""
    count = start
    while (elapsed := seconds_of(count) - seconds_of(0)) < loop_seconds / 10:
        count *= 10
    return max(1, round(count * loop_seconds / elapsed))


def _wasmtime_run_seconds(directory: Path, operation: str, count: int) -> float:
    component = tiny_guest.component_file(directory, operation, count)
    return run_process([WASMTIME, "run", str(component)], stdin_path="/dev/zero").seconds


def _wasmtime_run_per_call(operation: str, start: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="tiny-guests-") as directory:
        seconds = functools.partial(_wasmtime_run_seconds, Path(directory), operation)
        count = _calibrated_count(seconds, CLI_LOOP_S, start)
        per_call = []
        for _ in range(REPEATS):
            baseline = seconds(0)
            per_call.append((seconds(count) - baseline) / count)
    return per_call


def calls(bench: Bench) -> None:
    hosts = InProcessHosts(BUILD)
    starts = {"now": 1000, "resource": 1000, "read-64k": 10}
    counts = {(host, operation): _calibrated_count(
        functools.partial(hosts.run_tiny, host, operation), IN_PROCESS_LOOP_S, start)
        for host in hosts.NAMES for operation, start in starts.items()}
    ceiling_split_ns = []

    def per_call(host: str, operation: str) -> float:
        count = counts[host, operation]
        baseline = hosts.run_tiny(host, operation, 0)
        before = hosts.ceiling.read_split_ns()
        seconds = hosts.run_tiny(host, operation, count)
        if (host, operation) == ("ceiling", "read-64k"):
            after = hosts.ceiling.read_split_ns()
            ceiling_split_ns.append([(b - a) / count for a, b in zip(before, after, strict=True)])
        return (seconds - baseline) / count

    samples = interleaved({f"{host} {operation}": functools.partial(per_call, host, operation)
                           for host, operation in counts}, CALL_REPEATS)
    samples |= {f"wasmtime-run {operation}": _wasmtime_run_per_call(operation, start)
                for operation, start in starts.items()}
    us = {name: median(values) * 1e6 for name, values in samples.items()}
    mb_s = {name: 65536 / value for name, value in us.items() if name.endswith("read-64k")}
    bench.ceiling_mb_s = mb_s["ceiling read-64k"]
    bench.add(
        Row("trivial host call (monotonic-clock.now)", us["project now"],
            "Python floor (raw ctypes host, same process)", us["floor now"], "us", target=1.2),
        Row("trivial host call (monotonic-clock.now)", us["project now"],
            "wasmtime run (binary)", us["wasmtime-run now"], "us"),
        Row("call returning a resource, plus its drop", us["project resource"],
            "Python floor (raw ctypes host, same process)", us["floor resource"], "us",
            target=1.3, note="monotonic-clock.subscribe-duration, then resource.drop"),
        Row("64 KiB list<u8> into the guest", mb_s["project read-64k"],
            "value-path ceiling (C callbacks, same C API)", bench.ceiling_mb_s, "MB/s",
            better="higher",
            note="input-stream.blocking-read of 64 KiB from stdin on /dev/zero"),
    )
    read_us, allocate_us, cells_us = (median([split[part] / 1e3 for split in ceiling_split_ns])
                                      for part in range(3))
    bench.details["calls"] = {
        "loop_counts": {f"{host} {operation}": count
                        for (host, operation), count in counts.items()},
        "per_call_seconds": samples,
        "median_us": us,
        "read_64k_mb_s": mb_s,
        "ceiling_read_64k_split_us": {
            "read": read_us, "allocate": allocate_us, "cells": cells_us,
            "lowering": us["ceiling read-64k"] - read_us - allocate_us - cells_us},
    }


def print_breakdown(bench: Bench) -> None:
    details = bench.details.get("calls")
    if not details:
        return
    us, split = details["median_us"], details["ceiling_read_64k_split_us"]
    print("\nwhere the time goes, per call (medians, us; each step adds to the one before):")
    for operation, label in (("now", "trivial call"), ("resource", "resource call + drop"),
                             ("read-64k", "64 KiB blocking-read")):
        typed, ceiling, floor, project = (us[f"{host} {operation}"]
                                          for host in ("typed", "ceiling", "floor", "project"))
        print(f"  {label:<22} wasmtime typed host {typed:8.2f} | C API value path "
              f"{ceiling - typed:+9.2f} = {ceiling:8.2f} | ctypes + least Python "
              f"{floor - ceiling:+9.2f} = {floor:8.2f} | call layer {project - floor:+9.2f} "
              f"= {project:8.2f}")
    print(f"  the ceiling's 64 KiB read: read(2) {split['read']:.1f} + "
          f"wasmtime_component_vallist_new_uninit {split['allocate']:.1f} + writing the cells "
          f"{split['cells']:.1f} + wasmtime lowering them {split['lowering']:.1f} us")


# -- network ---------------------------------------------------------------------

def ensure_net_bench_guests() -> None:
    """net-bench for the portable world tls-client (it also runs under
    `wasmtime run`) and for tls-full-client, a world of this host's own."""
    sources = [NET_BENCH_APP, GUEST_LIB_DIR, WIT_DIR]
    newest = max(path.stat().st_mtime for root in sources for path in root.rglob("*")
                 if "__pycache__" not in path.parts)
    BUILD.mkdir(parents=True, exist_ok=True)
    builds = [subprocess.Popen([sys.executable, "-m", "wasi_tls_host", "build",
                                str(NET_BENCH_APP), "-w", world, "-o", str(output)])
              for output, world in ((NET_BENCH, "tls-client"),
                                    (NET_BENCH_HOST_WORLD, "tls-full-client"))
              if not output.exists() or output.stat().st_mtime <= newest]
    for build in builds:
        if build.wait() != 0:
            raise RuntimeError("building net-bench failed")


@contextlib.contextmanager
def https_server(credentials: loopback.Credentials, body: bytes) -> Iterator[int]:
    """An HTTPS server on 127.0.0.1 answering every GET with `body`; yields its port."""
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = credentials.server_context().wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def network(bench: Bench) -> None:
    ensure_net_bench_guests()
    credentials = loopback.Credentials()
    tls = credentials.server_context()
    servers = {"tcp-read": loopback.Peer(loopback.source(BULK_BYTES)),
               "tcp-write": loopback.Peer(loopback.sink),
               "tls-read": loopback.Peer(loopback.source(BULK_BYTES), tls),
               "tls-write": loopback.Peer(loopback.sink, tls),
               "handshakes": loopback.Peer(loopback.idle, tls),
               "resumed-handshakes": loopback.Peer(loopback.greet, tls)}
    ca = str(credentials.ca_file)

    def guest(command: str, number: int, *flags: str) -> list[str]:
        return [*HOST_RUN, "--ca-file", ca, "--allow-net", "127.0.0.1", *flags, str(NET_BENCH),
                command, servers[command].address, str(number), "localhost"]

    def native(command: str, number: int) -> list[str]:
        return [*NATIVE, command, servers[command].address, str(number), "localhost", ca]

    def wasmtime_run(command: str, number: int) -> list[str]:
        return [WASMTIME, "run", "-S", "inherit-network,tls", str(NET_BENCH), command,
                servers[command].address, str(number)]

    variants: dict[str, list[str]] = {}
    for command in ("tcp-read", "tcp-write", "tls-read", "tls-write"):
        variants[f"guest {command}"] = guest(command, BULK_BYTES)
        variants[f"native {command}"] = native(command, BULK_BYTES)
    for command in ("tcp-read", "tcp-write"):
        variants[f"wasmtime-run {command}"] = wasmtime_run(command, BULK_BYTES)
    variants["guest handshakes"] = guest("handshakes", HANDSHAKES)
    variants["native handshakes"] = native("handshakes", HANDSHAKES)
    variants["guest resumed-handshakes"] = guest("resumed-handshakes", HANDSHAKES + 1,
                                                 "--tls-resume")
    variants["native resumed-handshakes"] = native("resumed-handshakes", HANDSHAKES + 1)
    run_process(guest("tcp-read", BULK_BYTES))  # fills the compile caches
    run_process(wasmtime_run("tcp-read", BULK_BYTES))
    runs = interleaved({name: functools.partial(run_process, command)
                        for name, command in variants.items()}, REPEATS)

    def mb_s(name: str) -> float:
        return median([run.result["bytes"] / run.result["seconds"] / 1e6 for run in runs[name]])

    def handshake_ms(name: str) -> float:
        return median([1e3 * median(run.result["seconds"]) for run in runs[name]])

    def resumed_ms(name: str) -> float | None:
        """The median resumed handshake (None if none resumed: the row shows -)."""
        per_run = [[seconds for seconds, resumed in zip(run.result["seconds"],
                                                        run.result["resumed"], strict=True)
                    if resumed] for run in runs[name]]
        return median([1e3 * median(times) for times in per_run if times]) if any(
            per_run) else None

    def resumed_count(name: str) -> str:
        return (f"{sum(sum(run.result['resumed']) for run in runs[name])} of "
                f"{sum(len(run.result['resumed']) for run in runs[name])}")

    ceiling = "value-path ceiling (64 KiB list<u8>)"
    bench.add(
        Row("TCP read by a guest, 64 KiB reads", mb_s("guest tcp-read"), ceiling,
            bench.ceiling_mb_s, "MB/s", better="higher", target=0.9),
        Row("TCP read by a guest, 64 KiB reads", mb_s("guest tcp-read"), "native Python socket",
            mb_s("native tcp-read"), "MB/s", better="higher"),
        Row("TCP read by a guest, 64 KiB reads", mb_s("guest tcp-read"),
            "wasmtime run, same guest", mb_s("wasmtime-run tcp-read"), "MB/s", better="higher"),
        Row("TCP write by a guest, 64 KiB writes", mb_s("guest tcp-write"),
            "native Python socket", mb_s("native tcp-write"), "MB/s", better="higher"),
        Row("TCP write by a guest, 64 KiB writes", mb_s("guest tcp-write"),
            "wasmtime run, same guest", mb_s("wasmtime-run tcp-write"), "MB/s", better="higher"),
        Row("TLS read by a guest, 64 KiB reads", mb_s("guest tls-read"), ceiling,
            bench.ceiling_mb_s, "MB/s", better="higher", target=0.9),
        Row("TLS read by a guest, 64 KiB reads", mb_s("guest tls-read"), "native Python ssl",
            mb_s("native tls-read"), "MB/s", better="higher"),
        Row("TLS write by a guest, 64 KiB writes", mb_s("guest tls-write"),
            "native Python ssl", mb_s("native tls-write"), "MB/s", better="higher"),
        Row("one TLS handshake, warm instance", handshake_ms("guest handshakes"),
            "native Python ssl (sockets on loopback)", handshake_ms("native handshakes"), "ms",
            target=1.2, note=f"median of {HANDSHAKES} handshakes in a row, connect included; "
                             "the same Python ssl server"),
        Row("one TLS handshake resumed (--tls-resume)",
            resumed_ms("guest resumed-handshakes"), "native Python ssl resuming too",
            resumed_ms("native resumed-handshakes"), "ms",
            note=f"median of the resumed ones of {HANDSHAKES + 1} connections in a row, each "
                 "reading the server's one-byte greeting (TLS 1.3: the ticket) before the "
                 f"next; resumed: guest {resumed_count('guest resumed-handshakes')}, native "
                 f"{resumed_count('native resumed-handshakes')}"),
        Row("peak RSS, TCP read run", max(run.max_rss_mib for run in runs["guest tcp-read"]),
            "wasmtime run", max(run.max_rss_mib for run in runs["wasmtime-run tcp-read"]), "MiB"),
        Row("peak RSS, TLS read run", max(run.max_rss_mib for run in runs["guest tls-read"]),
            "native Python ssl", max(run.max_rss_mib for run in runs["native tls-read"]), "MiB"),
    )
    for server in servers.values():
        server.close()

    idle = loopback.Peer(loopback.idle, tls)
    hold = {"guest": [*HOST_RUN, "--ca-file", ca, "--allow-net", "127.0.0.1", str(NET_BENCH),
                      "hold", idle.address, str(IDLE_CONNECTIONS), "localhost"],
            "native": [*NATIVE, "hold", idle.address, str(IDLE_CONNECTIONS), "localhost", ca]}
    idle_mib = interleaved({name: functools.partial(idle_connections_mib, command)
                            for name, command in hold.items()}, REPEATS)
    idle.close()
    bench.add(Row(f"RSS per {IDLE_CONNECTIONS} idle TLS connections",
                  median(idle_mib["guest"]), "native Python ssl", median(idle_mib["native"]),
                  "MiB", note="growth of the client process's VmRSS while it holds them"))

    body = os.urandom(HTTPS_BYTES)
    with https_server(credentials, body) as port:
        fetch = {"guest": [*HOST_RUN, "--ca-file", ca, "--allow-net", f"localhost:{port}",
                           str(GUESTS / "https-get.wasm"), f"https://localhost:{port}/blob"],
                 "native": [*NATIVE, "https-get", f"127.0.0.1:{port}", str(HTTPS_BYTES),
                            "localhost", ca]}
        run_process(fetch["guest"])  # fills the compile cache
        https = interleaved({name: functools.partial(run_process, command)
                             for name, command in fetch.items()}, REPEATS)
    credentials.close()
    bench.add(
        Row(f"HTTPS GET {HTTPS_BYTES // MIB} MiB end to end", median(
            [run.seconds for run in https["guest"]]), "native Python (http.client, ssl)",
            median([run.seconds for run in https["native"]]), "s", target=3.0,
            note="process start to exit, https-get guest vs a Python process doing the same"),
        Row(f"HTTPS GET {HTTPS_BYTES // MIB} MiB end to end", median(
            [run.seconds for run in https["guest"]]), "wasmtime run -S tls", None, "s",
            note="n/a for wasmtime run: its trust roots are compiled in, so it rejects the "
                 "local test CA"),
        Row(f"peak RSS, HTTPS GET {HTTPS_BYTES // MIB} MiB", max(
            run.max_rss_mib for run in https["guest"]), "native Python",
            max(run.max_rss_mib for run in https["native"]), "MiB"),
    )
    bench.details["network"] = {
        "bytes": BULK_BYTES, "handshakes": HANDSHAKES,
        "runs": {name: [run.result for run in samples] for name, samples in runs.items()},
        "idle_connections_mib": idle_mib,
        "https_seconds": {name: [run.seconds for run in samples]
                          for name, samples in https.items()},
    }


# -- bulk data past the list<u8> wall ---------------------------------------------

def bulk(bench: Bench) -> None:
    """The forms bytes could cross in (bulk_candidates.py), then 16 MiB of
    random bytes over TLS each way through `wasi_guest`: the same app in a
    world of this host's own, which has wasi-tls-host:io/bulk, and in the
    portable world, where the library falls back to the list<u8> methods;
    once with TlsConnection's read_all/write_all, once by hand with 64 KiB
    calls of `wasi_guest.bulk` (what the library adds is the difference).
    Last, an HTTPS download into a file, which needs no guest at all
    (`http.get(url, to=path)`), in both worlds against native Python."""
    candidates = bulk_candidates.run_guest(bulk_candidates.SIZE, BULK_FORM_SECONDS, REPEATS)
    ensure_net_bench_guests()
    credentials = loopback.Credentials()
    tls = credentials.server_context()
    source = loopback.Peer(loopback.source(BULK_BYTES, os.urandom(loopback.CHUNK)), tls)
    sink = loopback.Peer(loopback.sink, tls)
    servers = {"read-all": source, "write-all": sink, "bulk-read": source, "bulk-write": sink}
    worlds = {"host world": NET_BENCH_HOST_WORLD, "portable world": NET_BENCH}
    variants = {f"{world} {command}": [
        *HOST_RUN, "--ca-file", str(credentials.ca_file), "--allow-net", "127.0.0.1",
        str(guest), command, server.address, str(BULK_BYTES), "localhost"]
        for world, guest in worlds.items() for command, server in servers.items()}
    run_process(variants["host world bulk-read"])  # fills the compile cache
    run_process(variants["portable world bulk-read"])
    runs = interleaved({name: functools.partial(run_process, command)
                        for name, command in variants.items()}, REPEATS)
    source.close()
    sink.close()
    downloads = _downloads(credentials)
    credentials.close()

    def mb_s(name: str) -> float:
        return median([run.result["bytes"] / run.result["seconds"] / 1e6 for run in runs[name]])

    form = {name: median(samples) for name, samples in candidates.items()}
    size_kib = bulk_candidates.SIZE // 1024
    bench.add(
        Row(f"{size_kib} KiB into a guest as hex (io/bulk)", form["read hex"],
            "list<u8> (wasi:io), same guest", form["read list<u8>"], "MB/s", better="higher",
            note="random bytes; every form side by side below the table"),
        Row(f"{size_kib} KiB out of a guest as hex (io/bulk)", form["write hex"],
            "list<u8> (wasi:io), same guest", form["write list<u8>"], "MB/s", better="higher"),
    )
    portable = "the same app in the portable world (tls-client)"
    for direction in ("read", "write"):
        figure = f"TLS {direction} {BULK_BYTES // MIB} MiB, conn.{direction}_all(), host world"
        ours = mb_s(f"host world {direction}-all")
        raw = f"TLS {direction} {BULK_BYTES // MIB} MiB, 64 KiB bulk.{direction} calls, host world"
        bench.add(
            Row(figure, ours, portable, mb_s(f"portable world {direction}-all"), "MB/s",
                better="higher", target=3.0,
                note="random bytes through wasi_guest's TlsConnection; the guest times itself"),
            Row(figure, ours, "issue 16's floor on this machine", BULK_FLOOR_MB_S, "MB/s",
                better="higher", target=1.0),
            Row(figure, ours, "the same by hand, 64 KiB bulk calls (host world)",
                mb_s(f"host world bulk-{direction}"), "MB/s", better="higher",
                note="the guest library's own cost: 1x is none"),
            Row(raw, mb_s(f"host world bulk-{direction}"), portable,
                mb_s(f"portable world bulk-{direction}"), "MB/s", better="higher"))
    native_download = median(run.result["seconds"] for run in downloads["native"])
    for world in ("host world", "portable world"):
        bench.add(Row(
            f"HTTPS GET {HTTPS_BYTES // MIB} MiB into a file, http.get(to=), {world}",
            median(run.result["seconds"] for run in downloads[world]),
            "native Python (http.client into a file)", native_download, "s",
            note="the body goes from the TLS stream to the file inside the host "
                 "(blocking-splice); request to file closed, timed by each client"))
    bench.details["bulk"] = {
        "downloads": {name: [run.result for run in samples]
                      for name, samples in downloads.items()},
        "candidates_mb_s": candidates, "host_codec_mb_s": bulk_candidates.host_codec_mb_s(),
        "bytes": BULK_BYTES,
        "runs": {name: [run.result for run in samples] for name, samples in runs.items()}}


def _downloads(credentials: loopback.Credentials) -> dict[str, list[ProcessRun]]:
    """net-bench `download` in both worlds and its native anchor, each
    checked to have saved the whole body."""
    body = os.urandom(HTTPS_BYTES)
    ca = str(credentials.ca_file)
    with https_server(credentials, body) as port, \
            tempfile.TemporaryDirectory(prefix="bulk-download-") as directory:
        saved = Path(directory) / "blob"

        def guest(wasm: Path) -> Callable[[], ProcessRun]:
            def fetch() -> ProcessRun:
                saved.unlink(missing_ok=True)
                run = run_process([*HOST_RUN, "--ca-file", ca, "--allow-net",
                                   f"localhost:{port}", "--dir", f"{directory}::/data",
                                   str(wasm), "download", f"127.0.0.1:{port}",
                                   str(HTTPS_BYTES), "localhost"])
                if saved.read_bytes() != body:
                    raise RuntimeError(f"{wasm.name} download saved something else")
                return run
            return fetch
        variants = {"host world": guest(NET_BENCH_HOST_WORLD),
                    "portable world": guest(NET_BENCH),
                    "native": functools.partial(run_process, [
                        *NATIVE, "download", f"127.0.0.1:{port}", str(HTTPS_BYTES),
                        "localhost", ca])}
        return interleaved(variants, REPEATS)


def print_candidates(bench: Bench) -> None:
    details = bench.details.get("bulk")
    if details:
        print("\nforms bytes can cross wasmtime's C API in, into and out of a "
              "componentize-py guest (medians):")
        bulk_candidates.print_table(details["candidates_mb_s"], details["host_codec_mb_s"],
                                    bulk_candidates.SIZE)


# -- a guest TLS server under load ----------------------------------------------

@contextlib.contextmanager
def serving(command: list[str], stop: signal.Signals) -> Iterator[str]:
    """Start a server that prints `listening on HOST:PORT`; yield HOST:PORT."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr,
                                   stdin=subprocess.DEVNULL)
        try:
            line = process.stdout.readline().decode().strip()
            if not line.startswith("listening on "):
                stderr.seek(0)
                raise RuntimeError(f"{' '.join(command)}: expected `listening on HOST:PORT`, "
                                   f"got {line!r}\n{stderr.read().decode(errors='replace')}")
            yield line.removeprefix("listening on ")
        finally:
            process.send_signal(stop)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _load(address: str, ca: str) -> dict[str, dict]:
    results = {}
    for connections in LOAD_LEVELS:
        for mode, amount in (("handshakes", LOAD_HANDSHAKES), ("bulk", LOAD_SECONDS)):
            run = run_process([*TLS_LOAD, mode, address, str(connections), str(amount), ca])
            results[f"{mode} {connections}"] = run.result
    return results


def tls_server_load(bench: Bench) -> None:
    credentials = loopback.Credentials()
    ca = str(credentials.ca_file)
    with serving([*TLS_LOAD, "serve", "127.0.0.1:0", str(credentials.cert_file),
                  str(credentials.key_file)], signal.SIGTERM) as address:
        anchor = _load(address, ca)
    blocked = None if ECHO_SERVER.exists() else "blocked: tls-echo-server guest not built yet"
    ours: dict[str, dict] = {}
    if blocked is None:
        with serving([*HOST_RUN, "--allow-net", "127.0.0.1", "--identity",
                      f"server={credentials.cert_file},{credentials.key_file}",
                      str(ECHO_SERVER), "127.0.0.1:0"], signal.SIGINT) as address:
            ours = _load(address, ca)
    credentials.close()
    for connections in LOAD_LEVELS:
        for mode, key, unit in (("handshakes", "handshakes_per_s", "hs/s"),
                                ("bulk", "mb_per_s", "MB/s")):
            theirs = anchor[f"{mode} {connections}"]
            result = ours.get(f"{mode} {connections}")
            errors = result["errors"] if result else 0
            note = blocked or ""
            if errors or theirs["errors"]:
                note = f"failed connections: {errors} (asyncio: {theirs['errors']})"
            bench.add(Row(
                f"guest TLS server, {connections} concurrent clients, {mode}",
                result[key] if result else None, "asyncio ssl echo server", theirs[key], unit,
                better="higher", note=note, disqualified=errors > 0,
                target=0.5 if (mode, connections) == ("handshakes", 200) else None))
    bench.details["load"] = {"handshakes": LOAD_HANDSHAKES, "bulk_seconds": LOAD_SECONDS,
                             "asyncio": anchor, "guest": ours, "blocked": blocked}


# -- the run ---------------------------------------------------------------------

SCENARIOS: dict[str, Callable[[Bench], None]] = {
    "startup": startup, "calls": calls, "network": network, "bulk": bulk,
    "load": tls_server_load, "http": http_bench.http_figures,
}


def _version(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True).stdout.strip()


def environment() -> dict:
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "platform": platform.platform(),
                    "cpu": next((line.split(":", 1)[1].strip()
                                 for line in Path("/proc/cpuinfo").read_text().splitlines()
                                 if line.startswith("model name")), platform.machine()),
                    "load_average_at_start": os.getloadavg()},
        "versions": {
            "python": platform.python_version(), "openssl": ssl.OPENSSL_VERSION,
            "wasmtime-py": importlib.metadata.version("wasmtime"),
            "wasmtime-cli": _version([WASMTIME, "--version"]),
            "wasi-tls-host": importlib.metadata.version("wasi-tls-host"),
            "componentize-py": importlib.metadata.version("componentize-py"),
            "commit": _version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        },
        "repeats": {"processes": REPEATS, "in_process_calls": CALL_REPEATS},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS),
                        help="run only these scenarios (default: all)")
    args = parser.parse_args()
    for guest in ("wasi-probe", "https-get"):
        if not (GUESTS / f"{guest}.wasm").exists():
            print(f"missing build/guests/{guest}.wasm: run `make bench`", file=sys.stderr)
            return 2
    started = time.perf_counter()
    run = environment()
    print(f"wasi-tls-host benchmarks, {run['date']}, {run['machine']['nproc']} cores, load "
          f"{run['machine']['load_average_at_start'][0]:.2f}; medians of {REPEATS} runs "
          f"(in-process calls: {CALL_REPEATS}); ratio = this host / anchor\n", flush=True)
    bench = Bench()
    for name in args.only:
        SCENARIOS[name](bench)
    print_table(bench.rows)
    print_breakdown(bench)
    print_candidates(bench)
    run["machine"]["load_average_at_end"] = os.getloadavg()
    run["seconds"] = time.perf_counter() - started
    run["rows"] = [asdict(row) | {"ratio": row.ratio, "met": row.met} for row in bench.rows]
    run["details"] = bench.details
    results = RESULTS if set(args.only) == set(SCENARIOS) else PARTIAL_RESULTS
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(run, indent=1) + "\n")
    print(f"\n{run['seconds']:.0f} s; written to {results.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
