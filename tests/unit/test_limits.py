"""Limits, the stop switch, how a trap becomes one line, and the checks
HostConfig makes when it is built; no guest runs here."""

import argparse
import io
import os
import pathlib
import threading
import time

import pytest

from wasi_tls_host import HostConfig, Limits, Preopen
from wasi_tls_host.command_line import CommandLineLimits, _env_pair, _size
from wasi_tls_host.config import format_size
from wasi_tls_host.guest_run import GuestTrap, cause, stopped
from wasi_tls_host.runtime.errors import Interrupted
from wasi_tls_host.runtime.poll import READ, StopSwitch, WaitSpec, wait_any


class Never:
    """A waitable on a pipe nobody writes to: only the stop switch ends the wait."""

    def __init__(self):
        self.read_fd, self.write_fd = os.pipe()

    def ready(self):
        return False

    def wait_on(self):
        return WaitSpec(fds=((self.read_fd, READ),))

    def close(self):
        os.close(self.read_fd)
        os.close(self.write_fd)


@pytest.fixture
def never():
    waitable = Never()
    yield waitable
    waitable.close()


def test_a_request_from_another_thread_ends_a_wait(never):
    woken = []
    switch = StopSwitch(wake=lambda: woken.append(True))
    threading.Timer(0.2, switch.request, ("stopped",)).start()
    with pytest.raises(Interrupted, match="stopped"):
        wait_any(time.monotonic_ns, [never], stop=switch)
    assert woken == [True]
    switch.close()


def test_the_first_reason_stays(never):
    switch = StopSwitch()
    switch.request("timeout")
    switch.request("stopped")
    assert switch.reason == "timeout"
    with pytest.raises(Interrupted, match="timeout"):
        wait_any(time.monotonic_ns, [never], stop=switch)
    switch.close()


def test_request_after_a_delay_and_after_close(never):
    switch = StopSwitch()
    switch.request_after(0.1, "timeout")
    with pytest.raises(Interrupted, match="timeout"):
        wait_any(time.monotonic_ns, [never], stop=switch)
    switch.close()
    switch.request("stopped")  # a late stop() on a finished run: nothing to wake, no error
    assert switch.reason == "timeout"


def test_close_cancels_the_timer():
    switch = StopSwitch()
    switch.request_after(0.1, "timeout")
    switch.close()
    time.sleep(0.3)
    assert switch.reason is None


class Flag:
    """Ready once set; nothing to wait on but the deadline of the test."""

    def __init__(self):
        self.set = False

    def ready(self):
        return self.set

    def wait_on(self):
        return WaitSpec(deadline_ns=time.monotonic_ns() + 60 * 10**9)


def test_a_drain_wakes_a_wait_runs_its_actions_once_then_stops_after_the_grace(never):
    """SIGTERM's drain: the waiting guest's actions run on its own thread
    (here one makes a waitable ready, as a closed listener is), the wait
    goes on without a stop, and the stop follows at the grace's end."""
    switch = StopSwitch()
    listener_closed = Flag()
    ran = []

    def close_listeners():
        ran.append(threading.current_thread())
        listener_closed.set = True

    switch.on_drain.append(close_listeners)
    threading.Timer(0.1, switch.drain, (0.5,)).start()
    started = time.monotonic()
    assert wait_any(time.monotonic_ns, [never, listener_closed], stop=switch) == [1]
    assert ran == [threading.current_thread()]
    switch.drain(0.01)  # a second drain changes nothing
    with pytest.raises(Interrupted, match="grace"):
        wait_any(time.monotonic_ns, [never], stop=switch)
    assert ran == [threading.current_thread()]
    assert 0.5 < time.monotonic() - started < 5
    switch.close()


@pytest.mark.parametrize("kwargs, problem", [
    ({"timeout": 0}, "Limits(timeout=0): expected a finite number of seconds above 0"),
    ({"timeout": float("inf")}, "Limits(timeout=inf)"),
    ({"max_memory": 0}, "Limits(max_memory=0): expected a whole number above 0"),
    ({"max_memory": 1.5}, "Limits(max_memory=1.5)"),
    ({"fuel": -1}, "Limits(fuel=-1): expected a whole number above 0"),
])
def test_limits_refuse_what_cannot_be_a_limit(kwargs, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        Limits(**kwargs)


def test_limits_name_themselves_for_the_api_and_the_command_line():
    api = Limits(timeout=2.5, max_memory=64 << 20, fuel=1000)
    assert api.describe_timeout() == "2.5 s"
    assert api.describe_memory() == "memory capped at 64 MiB by Limits.max_memory"
    assert api.describe_fuel() == "1000 units by Limits.fuel"
    flags = CommandLineLimits(max_memory=64 << 20, fuel=1000)
    assert flags.describe_memory() == "memory capped at 64 MiB by --max-memory"
    assert flags.describe_fuel() == "1000 units by --fuel"


@pytest.mark.parametrize("size, text", [
    (1 << 30, "1 GiB"), (3 << 20, "3 MiB"), (1536 << 10, "1536 KiB"), (1000, "1000 bytes"),
])
def test_format_size(size, text):
    assert format_size(size) == text


@pytest.mark.parametrize("text, size", [
    ("4096", 4096), ("512K", 512 << 10), ("64M", 64 << 20), ("64m", 64 << 20),
    ("2G", 2 << 30), ("64MiB", 64 << 20), ("64MB", 64 << 20),
])
def test_sizes_on_the_command_line(text, size):
    assert _size(text) == size


@pytest.mark.parametrize("text", ["0", "0M", "-1M", "12X", "M", "1.5G", ""])
def test_bad_sizes_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected a size above 0"):
        _size(text)


def test_env_name_alone_takes_the_hosts_value(monkeypatch):
    monkeypatch.setenv("FROM_HOST", "yes")
    monkeypatch.delenv("NOT_SET", raising=False)
    assert _env_pair("FROM_HOST") == ("FROM_HOST", "yes")
    assert _env_pair("NOT_SET") == ("NOT_SET", None)
    assert _env_pair("K=") == ("K", "")
    with pytest.raises(argparse.ArgumentTypeError):
        _env_pair("=value")


BACKTRACE = """error while executing at wasm backtrace:
    0: 0x112d765 - componentize_py_runtime.wasm!std::process::abort
    1: 0x11599c9 - <unknown>!wasi:cli/run@0.2.8#run

Caused by:
    wasm trap: wasm `unreachable` instruction executed
"""


def test_cause_is_the_line_under_caused_by():
    assert cause(BACKTRACE) == "wasm `unreachable` instruction executed"
    assert cause("error while executing at wasm backtrace:\n    0: 0x1 - f\n\nCaused by:\n"
                 "    0: wasi:io/poll@0.2.9#poll: the list is empty\n"
                 "    1: wasm trap: error while executing\n") == "error while executing"
    assert cause("memory minimum size of 197 pages exceeds memory limits") == \
        "memory minimum size of 197 pages exceeds memory limits"
    assert cause("") == "unknown trap"


def test_what_a_stop_reason_ends_with():
    limits = Limits(timeout=2)
    timeout = stopped("timeout", limits)
    assert isinstance(timeout, GuestTrap)
    assert (timeout.kind, timeout.exit_status, timeout.message) == (
        "timeout", 124, "the guest ran past its time limit (2 s)")
    stop = stopped("stopped", limits)
    assert (stop.kind, stop.exit_status, stop.message) == ("stopped", 143, "the guest was stopped")
    assert isinstance(stopped("interrupted", limits), KeyboardInterrupt)


@pytest.mark.parametrize("name", ["stdin", "stdout", "stderr"])
def test_a_text_stream_for_stdio_is_a_type_error_naming_it(name):
    with pytest.raises(TypeError, match=rf"HostConfig\({name}=...\): StringIO is a text stream"):
        HostConfig(**{name: io.StringIO()})


def test_stdio_needs_the_method_the_guest_uses():
    with pytest.raises(TypeError, match=r"HostConfig\(stdin=...\): BufferedWriter cannot read"):
        HostConfig(stdin=open(os.devnull, "wb"))  # noqa: SIM115 - refused before it is used
    with pytest.raises(TypeError, match=r"HostConfig\(stdout=...\): object cannot write"):
        HostConfig(stdout=object())
    HostConfig(stdin=io.BytesIO(), stdout=io.BytesIO(), stderr=io.BytesIO())


def test_preopen_takes_a_path(tmp_path):
    preopen = Preopen(tmp_path, "/data")
    assert preopen.host_path == str(tmp_path)
    assert isinstance(Preopen(pathlib.Path("."), ".").host_path, str)
