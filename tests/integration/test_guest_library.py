"""The guest library (wasi_guest) as guests built from source meet it.

Its servers (https-server, tls-echo-server) against clients that would take
a careless server down, under TLS 1.2 and 1.3: one that never stops
sending, connections that go idle after the handshake, more connections
than the process has descriptors for. Its task runner, where one task
fails beside others. And the README's server snippet, built and run as
printed.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest
from serving import process_rss

from conftest import HOST, ROOT, GuestServer, run_host
from peers import python_https_get
from wasi_tls_host import Host

#: How long the streaming client keeps sending at most, when nothing stops it.
STREAM_CAP_S = 20.0
MiB = 1 << 20


def https_server(guests, pki, *args: str, prefix: tuple[str, ...] = ()) -> GuestServer:
    leaf = pki["localhost"]
    return GuestServer(guests["https-server"], "127.0.0.1:0", *args, prefix=prefix, flags=(
        "--allow-net", "127.0.0.1", "--identity", f"localhost={leaf.cert_file},{leaf.key_file}"))


def get(server: GuestServer, pki, version: str):
    return python_https_get(server.port, "localhost", "/", pki.client_context(version))


class Streamer(threading.Thread):
    """A client that sends a request body without pause (never reading) until
    told to stop or STREAM_CAP_S has passed."""

    def __init__(self, port: int, context):
        super().__init__(daemon=True)
        self.port, self.context = port, context
        self.streaming = threading.Event()
        self.stop = threading.Event()
        self.capped = False
        self.sent = 0

    def run(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as raw, \
                self.context.wrap_socket(raw, server_hostname="localhost") as conn:
            conn.sendall(b"POST /upload HTTP/1.1\r\nHost: localhost\r\n"
                         b"Content-Length: 1000000000000\r\n\r\n")
            chunk = bytes(64 * 1024)
            started = time.monotonic()
            while not self.stop.is_set():
                conn.sendall(chunk)
                self.sent += len(chunk)
                if self.sent >= 1 << 20:
                    self.streaming.set()
                if time.monotonic() - started > STREAM_CAP_S:
                    self.capped = True
                    return


def test_a_client_that_never_stops_sending_holds_up_no_one(guests, pki, version):
    """While one client streams a request body without pause, a second one
    handshakes and is served: it does not wait for the first to stop."""
    server = https_server(guests, pki)
    try:
        streamer = Streamer(server.port, pki.client_context(version))
        streamer.start()
        assert streamer.streaming.wait(30), "the streaming client never got going"
        started = time.monotonic()
        seen = get(server, pki, version)
        waited = time.monotonic() - started
        capped = streamer.capped
        streamer.stop.set()
        streamer.join(30)
    finally:
        server.close()
    assert seen.status == 200 and seen.protocol == f"TLSv{version}"
    assert not capped, f"the second client was served only when the first stopped ({waited:.1f} s)"
    print(f"second client served in {waited:.2f} s, beside {streamer.sent >> 20} MiB streamed")


#: What a client that never reads may cost the host, however much it sends
#: (bench/hostile_clients.py measured 8.7 MiB for an uploader, 1.9 MiB for a
#: client that never reads its responses, the same over 15 s and 30 s).
HOSTILE_CLIENT_RSS_BOUND = 16 * MiB


class NonReader(Streamer):
    """A client that sends pipelined requests without pause and never reads
    a response, until told to stop or STREAM_CAP_S has passed."""

    def run(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as raw, \
                self.context.wrap_socket(raw, server_hostname="localhost") as conn:
            conn.settimeout(0.5)
            burst = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n" * 64
            started = time.monotonic()
            while not self.stop.is_set() and time.monotonic() - started < STREAM_CAP_S:
                try:
                    conn.sendall(burst)
                except TimeoutError:
                    self.streaming.set()  # held back: the server stopped reading
                    continue
                self.sent += len(burst)


def discard_lines(stream) -> None:
    for _line in stream:
        pass


def test_a_client_that_pipelines_requests_and_never_reads_holds_up_no_one(guests, pki, version):
    """While one client pipelines requests without pause and never reads the
    answers, a second one handshakes and is served."""
    server = https_server(guests, pki)
    # It logs a line per request: unread, its stdout pipe would fill and stop it.
    threading.Thread(target=discard_lines, args=(server.process.stdout,), daemon=True).start()
    try:
        pipeliner = NonReader(server.port, pki.client_context(version))
        pipeliner.start()
        assert pipeliner.streaming.wait(30), "the pipelining client never got going"
        started = time.monotonic()
        seen = get(server, pki, version)
        waited = time.monotonic() - started
        pipeliner.stop.set()
        pipeliner.join(30)
    finally:
        server.close()
    assert seen.status == 200 and seen.protocol == f"TLSv{version}"
    print(f"second client served in {waited:.2f} s, beside {pipeliner.sent >> 10} KiB pipelined")


@pytest.mark.parametrize("client", [Streamer, NonReader], ids=["uploader", "non-reader"])
def test_a_client_that_never_reads_costs_the_host_bounded_memory(guests, pki, version, client):
    """The host's RSS, sampled while one client uploads without pause (or
    pipelines requests) and never reads, grows by less than the bound,
    whatever the client sent by then. (That the uploader holds up no one is
    the test above.)"""
    server = https_server(guests, pki)
    try:
        assert get(server, pki, version).status == 200  # the first request's allocations
        before = peak = process_rss(server.process.pid)
        hostile = client(server.port, pki.client_context(version))
        hostile.start()
        assert hostile.streaming.wait(30), "the client never got going"
        until = time.monotonic() + 5
        while time.monotonic() < until:
            peak = max(peak, process_rss(server.process.pid))
            time.sleep(0.1)
        hostile.stop.set()
        hostile.join(30)
    finally:
        server.close()
    assert peak - before < HOSTILE_CLIENT_RSS_BOUND, (
        f"{(peak - before) / MiB:.1f} MiB held after the client sent {hostile.sent >> 20} MiB")


def idle_connection(port: int, context, first_bytes: bytes) -> bytes:
    """Handshake, send `first_bytes`, then nothing: what arrives until the server hangs up."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as conn:
        conn.sendall(first_bytes)
        received = b""
        while data := conn.recv(65536):  # b"" once the server's close_notify arrives
            received += data
        return received


@pytest.mark.parametrize("first_bytes", [b"", b"GET / HTTP/1.1\r\nHost: loc"],
                         ids=["nothing", "half-a-head"])
def test_a_connection_idle_after_the_handshake_is_closed(guests, pki, version, first_bytes):
    server = https_server(guests, pki, "--idle-timeout", "1")
    try:
        received = idle_connection(server.port, pki.client_context(version), first_bytes)
        seen = get(server, pki, version)
    finally:
        _, _, errors = server.stop()
    assert received == b""
    assert seen.status == 200  # the server goes on
    assert "connection 1: closed: no complete request head within 1 s" in errors


def test_a_request_head_sent_too_slowly_is_cut_off(guests, pki, version):
    """The head has its deadline as a whole: a byte a second does not keep it open."""
    server = https_server(guests, pki, "--idle-timeout", "2")
    head = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
    sent = 0
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw, \
                pki.client_context(version).wrap_socket(raw, server_hostname="localhost") as conn:
            try:
                for byte in head:
                    conn.sendall(bytes([byte]))
                    sent += 1
                    time.sleep(0.5)
                answer = conn.recv(65536)
            except (ConnectionError, OSError):
                answer = b""
    finally:
        server.close()
    assert answer == b"" and sent < len(head)


def test_the_echo_server_closes_an_idle_connection(guests, pki, version):
    leaf = pki["localhost"]
    server = GuestServer(guests["tls-echo-server"], "127.0.0.1:0", "--idle-timeout", "1",
                         flags=("--allow-net", "127.0.0.1",
                                "--identity", f"server={leaf.cert_file},{leaf.key_file}"))
    try:
        received = idle_connection(server.port, pki.client_context(version), b"ping")
    finally:
        _, _, errors = server.stop()
    assert received == b"ping"
    assert "connection 1: closed: idle for 1 s" in errors


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_running_out_of_descriptors_is_waited_out(guests, pki, version):
    """Under a limit of 64 descriptors, 100 idle connections make accept fail
    with new-socket-limit; the server waits until some are gone and serves on."""
    server = https_server(guests, pki, prefix=("prlimit", "--nofile=64"))
    idle = []
    try:
        for _ in range(100):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=30))
        deadline = time.monotonic() + 30
        while open_descriptors(server.process.pid) < 64 and time.monotonic() < deadline:
            time.sleep(0.1)
        at_the_limit = open_descriptors(server.process.pid)
        time.sleep(1)  # accept keeps failing meanwhile
        alive = server.process.poll() is None
        for connection in idle:
            connection.close()
        seen = get(server, pki, version)
    finally:
        for connection in idle:
            connection.close()
        server.close()
    assert at_the_limit == 64 and alive
    assert seen.status == 200


# -- the task runner ----------------------------------------------------------------

RUNNER_APP = """
from wit_world import exports
from wit_world.imports import monotonic_clock, stdout

from wasi_guest import Timeout, cli, close, io, tasks


def failing():
    raise ValueError("one task's own failure")
    yield  # a generator, as every task is


def counting(log):
    for number in range(3):
        yield from tasks.sleep_task(0.01)
        log.append(number)


def writing(name, console):
    for number in range(3):
        yield from io.write_all_task(console, f"{name}{number} ".encode())


def waiting_past_a_deadline():
    long_timer = monotonic_clock.subscribe_duration(10 * tasks.NS_PER_S)
    try:
        yield tasks.Until(long_timer, tasks.deadline_in(0.01), "the long timer")
    except Timeout as timeout:
        return f"timed out: {timeout.detail}"
    finally:
        close(long_timer)
    return "not timed out"


def one_task():
    yield  # nothing to wait for: it goes on at once
    yield from tasks.sleep_task(0.01)
    short_timer = monotonic_clock.subscribe_duration(1000)
    try:
        yield tasks.Until(short_timer, tasks.deadline_in(5))  # ready long before it
    finally:
        close(short_timer)
    return (yield from waiting_past_a_deadline())


def main(argv):
    mode, log = argv[0], []
    if mode == "run":  # one task, without a runner of one's own
        print(tasks.run(one_task()))
        try:
            tasks.run(failing())
        except ValueError as error:
            print(f"run raised: {error}")
        return 0
    runner = tasks.Runner()
    if mode == "writes":  # stdout never makes a writer wait
        console = stdout.get_stdout()
        runner.spawn(writing("a", console))
        runner.spawn(writing("b", console))
        runner.run()
        return 0
    on_error = (lambda error: print(f"on_error took: {error}")) if mode == "on-error" else None
    runner.spawn(failing(), on_error, fatal=mode == "fatal")
    runner.spawn(counting(log))
    try:
        runner.run()
    except ValueError as error:
        print(f"run raised: {error}")
    print(f"the other task counted to {len(log)}")
    return 0


class Run(exports.Run):
    def run(self):
        cli.run(main)
"""


@pytest.fixture(scope="module")
def runner_app(tmp_path_factory):
    """RUNNER_APP built with `wasi-tls-host build` (world plain), and
    compiled into the user's cache, so that its first run's stderr is the
    guest's alone (no `compiling ...` note)."""
    directory = tmp_path_factory.mktemp("runner-app")
    (directory / "app.py").write_text(RUNNER_APP)
    component = directory / "runner-app.wasm"
    built = subprocess.run([HOST, "build", directory, "-w", "plain", "-o", component],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    Host().load(component)  # compiled now, so that no "compiling" note leads its stderr
    return component


def test_a_task_that_fails_is_reported_and_the_others_go_on(runner_app):
    result = run_host(runner_app, "default")
    stderr = result.stderr.decode()
    assert (result.returncode, result.stdout.decode()) == (0, "the other task counted to 3\n")
    assert stderr.startswith("task failing failed:\nTraceback")
    assert stderr.rstrip().endswith("ValueError: one task's own failure")


def test_a_task_whose_failure_on_error_takes_reports_nothing(runner_app):
    result = run_host(runner_app, "on-error")
    assert (result.returncode, result.stdout.decode(), result.stderr.decode()) == (
        0, "on_error took: one task's own failure\nthe other task counted to 3\n", "")


def test_a_fatal_task_ends_the_run(runner_app):
    result = run_host(runner_app, "fatal")
    assert (result.returncode, result.stdout.decode(), result.stderr.decode()) == (
        0, "run raised: one task's own failure\nthe other task counted to 0\n", "")


def test_one_task_run_alone_waits_times_out_and_fails_like_under_a_runner(runner_app):
    result = run_host(runner_app, "run")
    assert (result.returncode, result.stdout.decode(), result.stderr.decode()) == (
        0, "timed out: the long timer\nrun raised: one task's own failure\n", "")


def test_tasks_that_write_without_waiting_take_turns(runner_app):
    """Each write_all_task lets the other tasks step, even when the output
    never makes it wait (a server answering pipelined requests out of one
    read must not keep the other connections waiting until it has answered
    them all)."""
    result = run_host(runner_app, "writes")
    assert (result.returncode, result.stdout.decode(), result.stderr.decode()) == (
        0, "a0 b0 a1 b1 a2 b2 ", "")


# -- the README's server -------------------------------------------------------------

def readme_server_snippet() -> str:
    """The Python block after "With the guest library a server is a few lines"."""
    text = (ROOT / "README.md").read_text()
    after = text[text.index("With the guest library a server is a few lines"):]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


#: Run in the snippet's own network namespace (it listens on 127.0.0.1:8443,
#: as printed): start the guest, let one client fail its handshake, then echo
#: a line for another; print what happened as JSON.
DRIVER = r"""
import json, socket, ssl, subprocess, sys, time
host, component, cert, key, ca = sys.argv[1:]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
guest = subprocess.Popen([host, "run", "--allow-net", "127.0.0.1:8443",
                          "--identity", f"server={cert},{key}", component],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", 8443), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
with socket.create_connection(("127.0.0.1", 8443), timeout=30) as junk:
    junk.sendall(b"not TLS at all\r\n\r\n")
    junk.recv(100)
context = ssl.create_default_context(cafile=ca)
echoed = None
with socket.create_connection(("127.0.0.1", 8443), timeout=30) as raw, \
        context.wrap_socket(raw, server_hostname="localhost") as conn:
    conn.sendall(b"hello, snippet\n")
    echoed = conn.recv(100).decode()
time.sleep(0.5)
running = guest.poll() is None
guest.kill()
out, err = guest.communicate()
print(json.dumps({"echoed": echoed, "running": running, "stderr": err}))
"""


def test_the_readme_server_snippet_builds_and_serves_as_printed(pki, tmp_path):
    app = tmp_path / "snippet"
    app.mkdir()
    (app / "app.py").write_text(readme_server_snippet())
    component = tmp_path / "snippet.wasm"
    built = subprocess.run([HOST, "build", app, "-w", "tls-server", "-o", component],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, f"the README's server snippet does not build:\n{built.stderr}"
    leaf = pki["localhost"]
    driver = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", DRIVER, HOST, str(component),
         str(leaf.cert_file), str(leaf.key_file), str(pki.ca_file)],
        capture_output=True, text=True, timeout=300)
    assert driver.returncode == 0, driver.stderr
    seen = json.loads(driver.stdout)
    assert seen["echoed"] == "hello, snippet\n"
    assert seen["running"], seen["stderr"]
    assert "task echo failed: TlsError:" in seen["stderr"]
