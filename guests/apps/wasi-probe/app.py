"""wasi-probe [--stdin] [--dir GUEST_PATH] [--exit N]

Exercises WASI 0.2 CLI-world interfaces and prints one line per step, with
stable text so the stdout of two hosts can be diffed.  Values that vary run to
run (times, random data) are reported only as booleans or lengths.

Steps: arguments, initial-cwd, environment (PROBE_* variables), monotonic
clock, wall clock, random / insecure / insecure-seed, stdin (with --stdin),
filesystem on a preopen (with --dir): write/read/stat probe.txt, list the
directory, mkdir/rmdir a subdirectory, open a missing file.

Exit status: N from --exit N (default 0) when all steps passed, otherwise 1.
Note that stable WASI 0.2 can only report success or failure, so hosts turn
any N != 0 into status 1 (see wasi_guest.cli).
"""

import hashlib
import json
import sys

from wit_world import exports
from wit_world.imports import (
    environment,
    insecure,
    insecure_seed,
    monotonic_clock,
    poll,
    random,
    stdin,
    wall_clock,
)

from wasi_guest import WasiError, cli, close, fs, io

PROBE_CONTENT = b"wasi-probe: hello from the guest\n"
SUBDIR = "probe-subdir"
MISSING = "probe-missing.txt"
U64 = 1 << 64


class Probe:
    def __init__(self):
        self.failures = 0

    def line(self, text):
        print(text)

    def check(self, label, ok, detail=""):
        """Print `label: true|false` (+detail); count false as a failure."""
        if not ok:
            self.failures += 1
        self.line(f"{label}: {'true' if ok else 'false'}{(' ' + detail) if detail else ''}")

    def fail(self, label, exc):
        self.failures += 1
        code = exc.code if isinstance(exc, WasiError) else type(exc).__name__
        self.line(f"{label}: error {code}")


def parse_args(argv):
    opts = {"stdin": False, "dir": None, "exit": 0}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--stdin":
            opts["stdin"] = True
        elif a in ("--dir", "--exit") and i + 1 < len(argv):
            i += 1
            opts[a[2:]] = argv[i] if a == "--dir" else int(argv[i])
        else:
            raise ValueError(f"unexpected argument {a!r}")
        i += 1
    return opts


def probe_cli(p, args):
    p.line(f"args: {json.dumps(args)}")
    cwd = environment.initial_cwd()
    p.line(f"initial-cwd: {cwd if cwd is not None else '<none>'}")
    env = sorted((k, v) for k, v in environment.get_environment() if k.startswith("PROBE_"))
    p.line(f"env-probe-count: {len(env)}")
    for k, v in env:
        p.line(f"env: {k}={v}")


def probe_clocks(p):
    t0 = monotonic_clock.now()
    t1 = monotonic_clock.now()
    p.check("monotonic-now-nondecreasing", t1 >= t0)
    res = monotonic_clock.resolution()
    p.check("monotonic-resolution-positive", res > 0)

    start = monotonic_clock.now()
    with monotonic_clock.subscribe_duration(50_000_000) as sleeper:
        p.check("monotonic-duration-pollable-not-ready-at-once", not sleeper.ready())
        poll.poll([sleeper])
        elapsed = monotonic_clock.now() - start
        p.check("monotonic-duration-ready-after-poll", sleeper.ready())
    p.check("monotonic-sleep-50ms-elapsed-at-least-50ms", elapsed >= 50_000_000)
    p.check("monotonic-sleep-50ms-elapsed-under-5s", elapsed < 5_000_000_000)

    deadline = monotonic_clock.now() + 20_000_000
    with monotonic_clock.subscribe_instant(deadline) as at:
        poll.poll([at])
        p.check("monotonic-instant-ready-after-deadline", monotonic_clock.now() >= deadline)
    # A deadline in the past must resolve at once.  (Only checked through
    # poll: wasmtime's ready() answers false for it until it has been polled.)
    before = monotonic_clock.now()
    with monotonic_clock.subscribe_instant(0) as past:
        poll.poll([past])
        p.check(
            "monotonic-instant-in-past-resolves-at-once",
            monotonic_clock.now() - before < 1_000_000_000,
        )

    now = wall_clock.now()
    p.check("wall-clock-after-2020", now.seconds > 1_577_836_800)
    p.check("wall-clock-nanoseconds-in-range", 0 <= now.nanoseconds < 1_000_000_000)
    wres = wall_clock.resolution()
    p.check(
        "wall-clock-resolution-positive",
        (wres.seconds, wres.nanoseconds) > (0, 0) and 0 <= wres.nanoseconds < 1_000_000_000,
    )


def probe_random(p):
    a = random.get_random_bytes(16)
    b = random.get_random_bytes(16)
    p.line(f"random-bytes-length: {len(a)}")
    p.check("random-bytes-differ", a != b)
    p.line(f"random-bytes-0-length: {len(random.get_random_bytes(0))}")
    u = random.get_random_u64()
    p.check("random-u64-in-range", 0 <= u < U64)
    ia = insecure.get_insecure_random_bytes(16)
    p.line(f"insecure-random-bytes-length: {len(ia)}")
    iu = insecure.get_insecure_random_u64()
    p.check("insecure-random-u64-in-range", 0 <= iu < U64)
    seed = insecure_seed.insecure_seed()
    p.check("insecure-seed-is-pair-of-u64", len(seed) == 2 and all(0 <= x < U64 for x in seed))
    p.check("insecure-seed-stable", tuple(insecure_seed.insecure_seed()) == tuple(seed))


def probe_stdin(p):
    stream = stdin.get_stdin()
    try:
        data = io.read_all(stream)
        p.line(f"stdin: {len(data)} bytes sha256={hashlib.sha256(data).hexdigest()}")
    except WasiError as e:
        p.fail("stdin", e)
    finally:
        close(stream)


def probe_fs(p, guest_path):
    try:
        d = fs.find_preopen(guest_path)
    except WasiError as e:
        p.fail(f"fs-preopen {guest_path}", e)
        return
    p.line(f"fs-preopen {guest_path}: found")
    try:
        _probe_fs_steps(p, d)
    finally:
        close(d)


def _step(p, label, fn):
    """Run one filesystem step; print its result or its error code."""
    try:
        result = fn()
    except WasiError as e:
        p.fail(label, e)
        return None
    p.line(f"{label}: {result}")
    return result


def _probe_fs_steps(p, d):
    _step(p, "fs-dir-type", lambda: fs.type_name(fs.call(d.get_type)))
    n = len(PROBE_CONTENT)
    _step(p, "fs-write probe.txt", lambda: f"{fs.write_file(d, 'probe.txt', PROBE_CONTENT)} bytes")

    def read_back():
        data = fs.read_file(d, "probe.txt")
        return f"{len(data)} bytes match={'true' if data == PROBE_CONTENT else 'false'}"

    r = _step(p, "fs-read probe.txt", read_back)
    if r is not None and not r.endswith("match=true"):
        p.failures += 1

    def stat_file():
        f = fs.open_file(d, "probe.txt")
        try:
            st = fs.call(f.stat)
        finally:
            close(f)
        return f"type={fs.type_name(st.type)} size={st.size}"

    s = _step(p, "fs-stat probe.txt", stat_file)
    if s is not None and s != f"type=regular-file size={n}":
        p.failures += 1

    def stat_at():
        st = fs.call(d.stat_at, fs.PathFlags.SYMLINK_FOLLOW, "probe.txt")
        has_mtime = "true" if st.data_modification_timestamp is not None else "false"
        return f"type={fs.type_name(st.type)} size={st.size} mtime-present={has_mtime}"

    _step(p, "fs-stat-at probe.txt", stat_at)

    def pread():
        f = fs.open_file(d, "probe.txt")
        try:
            data, eof = fs.call(f.read, 5, 0)
        finally:
            close(f)
        return f"{data.decode()!r} eof={'true' if eof else 'false'}"

    _step(p, "fs-read-at-offset-0-len-5", pread)

    _step(
        p,
        "fs-list",
        lambda: ", ".join(f"{name}:{t}" for name, t in fs.list_directory(d)) or "<empty>",
    )

    def mkdir():
        fs.call(d.create_directory_at, SUBDIR)
        st = fs.call(d.stat_at, fs.PathFlags(0), SUBDIR)
        return f"ok type={fs.type_name(st.type)}"

    _step(p, f"fs-mkdir {SUBDIR}", mkdir)

    def mkdir_again():
        try:
            fs.call(d.create_directory_at, SUBDIR)
        except WasiError as e:
            return f"error {e.code}"
        return "unexpected-success"

    _step(p, f"fs-mkdir-existing {SUBDIR}", mkdir_again)

    def rmdir():
        fs.call(d.remove_directory_at, SUBDIR)
        try:
            fs.call(d.stat_at, fs.PathFlags(0), SUBDIR)
        except WasiError as e:
            return f"ok stat-after=error {e.code}"
        return "ok stat-after=still-exists"

    _step(p, f"fs-rmdir {SUBDIR}", rmdir)

    def open_missing():
        try:
            f = fs.open_file(d, MISSING)
        except WasiError as e:
            return f"error {e.code}"
        close(f)
        return "unexpected-success"

    res = _step(p, f"fs-open-missing {MISSING}", open_missing)
    if res != "error no-entry":
        p.failures += 1


def main(argv) -> int:
    try:
        opts = parse_args(argv)
    except ValueError as e:
        cli.eprint(f"error: invalid-argument ({e})")
        cli.eprint("usage: wasi-probe [--stdin] [--dir GUEST_PATH] [--exit N]")
        return 1
    p = Probe()
    p.line("probe: start")
    probe_cli(p, argv)
    probe_clocks(p)
    probe_random(p)
    if opts["stdin"]:
        probe_stdin(p)
    if opts["dir"] is not None:
        probe_fs(p, opts["dir"])
    p.line(f"probe: done failures={p.failures}")
    status = opts["exit"] if p.failures == 0 else 1
    p.line(f"exit: {status}")
    return status


class Run(exports.Run):
    def run(self) -> None:
        cli.exit(main(sys.argv[1:]))
