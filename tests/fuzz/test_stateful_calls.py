"""Random sequences of guest calls through the real call layer: the host must never crash.

A hypothesis state machine drives the `call-script` guest (guests/apps/
call-script), which makes each raw WASI call the test sends it through its
generated bindings: wasi:io streams and pollables, wasi:sockets TCP (to a
loopback echo peer, a TLS peer, a hostile TLS peer, and the guest's own
listener) and the upstream wasi:tls client. The calls include the ones
careful guests never make: a second finish, use of a resource already
dropped or given away, drops in every order (children before parents and
after), writes past the check-write permit, reads of 2^64-1 bytes, and polls
over thousands of pollables.

The guest runs in this process through the embedding API (`Host.run` in a
thread, commands on a pipe as its stdin), so that a Python exception
escaping the host is seen as such. What counts as a crash: an exception
other than `GuestTrap` out of `Host.run`, a trap reported as an internal
host error, a trap whose message names no host function, or a call that
does not answer within `fuzzing.HANG_SECONDS` (a segfault takes the test run
down with it). A trap naming the function the guest misused is the host
doing its job: the machine notes it and starts a new guest.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import ssl
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from pki import Pki

from wasi_tls_host import GuestTrap, Host
from wasi_tls_host.config import HostConfig, NetRule
from wasi_tls_host.tls import TlsPolicy

from .fuzzing import HANG_SECONDS, TALLY, fuzz_settings

#: A trap the host raised on purpose: "Caused by:" then the WIT function.
NAMED_TRAP = re.compile(r"Caused by:\s+(?P<function>[a-z-]+:[a-z-]+/[a-z-]+@[0-9.a-z-]+"
                        r"#\S+?): (?P<message>.*)", re.S)
#: Wasmtime's own check of a handle the guest passes (one it dropped or gave
#: away): the call never reaches the host.
HANDLE_CHECK = re.compile(r"Caused by:\s+(?P<message>unknown handle index \d+"
                          r"|handle index \d+ used with the wrong type)")
#: How long the machine lets a TLS handshake take: short, so that a blocking
#: call on a handshake nobody answers ends well before HANG_SECONDS.
HANDSHAKE_TIMEOUT_S = 2.0
#: What each peer echoes of a connection before it only reads: enough to
#: exercise reads, little enough that a guest that never reads cannot fill
#: the socket buffers and make a blocking flush wait for ever.
ECHO_LIMIT = 64 * 1024

#: Which handle a rule uses: an index into the candidates, and a roll for a stale one.
PICK = st.tuples(st.integers(0, 1 << 16), st.integers(0, 19))
SIZES = st.sampled_from([0, 1, 100, 4096, 4097, 65536, 65537, 1 << 20, 1 << 31, (1 << 64) - 1])


# -- peers ---------------------------------------------------------------------------


class DrainingEcho:
    """A loopback peer that reads everything and echoes the first ECHO_LIMIT
    bytes of each connection; with a context, over TLS."""

    def __init__(self, context: ssl.SSLContext | None = None):
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        echoed = 0
        try:
            if self.context is not None:
                connection.settimeout(HANDSHAKE_TIMEOUT_S * 5)
                connection = self.context.wrap_socket(connection, server_side=True)
                connection.settimeout(None)
            while data := connection.recv(65536):
                if echoed < ECHO_LIMIT:
                    connection.sendall(data[:ECHO_LIMIT - echoed])
                    echoed += len(data)
        except OSError:
            pass  # ssl.SSLError included: the guest's TLS may be anything
        finally:
            connection.close()

    def close(self) -> None:
        self.listener.close()


class HostileTlsPeer:
    """A loopback peer that answers a TLS client badly, a different way on
    each connection in turn: a real server flight with one byte flipped,
    junk, a plain HTTP answer, a reset, or a good handshake followed by a
    forged application record."""

    BEHAVIOURS = ("flipped", "junk", "http", "reset", "forged-record")

    def __init__(self, context: ssl.SSLContext):
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.count = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            behaviour = self.BEHAVIOURS[self.count % len(self.BEHAVIOURS)]
            self.count += 1
            threading.Thread(target=self._serve, args=(connection, behaviour),
                             daemon=True).start()

    def _serve(self, connection: socket.socket, behaviour: str) -> None:
        connection.settimeout(HANDSHAKE_TIMEOUT_S * 5)
        try:
            if behaviour == "reset":
                # Linger on, for 0 s: closing sends a reset.
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif behaviour == "junk":
                connection.recv(65536)
                connection.sendall(bytes(range(256)) * 4)
            elif behaviour == "http":
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            else:
                self._speak_tls(connection, flip=behaviour == "flipped")
        except OSError:
            pass
        finally:
            connection.close()

    def _speak_tls(self, connection: socket.socket, *, flip: bool) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        server = self.context.wrap_bio(incoming, outgoing, server_side=True)
        while True:
            try:
                server.do_handshake()
                break
            except ssl.SSLWantReadError:
                flight = outgoing.read()
                if flight:
                    if flip:
                        flight = flight[:len(flight) // 2] + bytes(
                            (flight[len(flight) // 2] ^ 0x20,)) + flight[len(flight) // 2 + 1:]
                    connection.sendall(flight)
                data = connection.recv(65536)
                if not data:
                    return
                incoming.write(data)
            except ssl.SSLError:
                connection.sendall(outgoing.read())
                return
        connection.sendall(outgoing.read() + b"\x17\x03\x03\x00\x20" + bytes(32))
        while connection.recv(65536):
            pass

    def close(self) -> None:
        self.listener.close()


# -- the guest -------------------------------------------------------------------------


@dataclass
class Outcome:
    """How a guest run ended."""

    status: int | None = None
    trap: str | None = None
    escaped: BaseException | None = None


class ScriptedGuest:
    """The call-script guest in a thread of this process, fed one call at a time."""

    def __init__(self, host: Host, component, config: HostConfig):
        command_read, command_write = os.pipe()
        answer_read, answer_write = os.pipe()
        config.stdin = open(command_read, "rb", buffering=0)  # noqa: SIM115 - closed by `end`
        config.stdout = open(answer_write, "wb", buffering=0)  # noqa: SIM115
        self._commands = open(command_write, "wb", buffering=0)  # noqa: SIM115
        self._answers = answer_read
        self._pending = bytearray()
        self._config = config
        self.outcome = Outcome()
        self._thread = threading.Thread(target=self._run, args=(host, component), daemon=True)
        self._thread.start()

    def _run(self, host: Host, component) -> None:
        try:
            self.outcome.status = host.run(component, ["call-script"], config=self._config)
        except GuestTrap as trap:
            # The one-line message, then wasmtime's report ("Caused by: ...").
            self.outcome.trap = f"{trap}\n{trap.details}"
        except BaseException as escaped:  # the finding this test exists for
            self.outcome.escaped = escaped
        finally:
            self._config.stdout.close()
            self._config.stdin.close()

    def call(self, *command) -> dict | None:
        """The guest's answer, or None once it has ended (the outcome says how)."""
        TALLY["stateful: host calls sent"] += 1
        try:
            self._commands.write(json.dumps(command).encode() + b"\n")
        except BrokenPipeError:
            return None
        line = self._next_line(command)
        if not line:
            self._thread.join(HANG_SECONDS)
            assert not self._thread.is_alive(), "the guest ended its output but not its run"
            return None
        return json.loads(line)

    def _next_line(self, command: tuple) -> bytes:
        """One line from the guest's stdout; b"" at its end."""
        while b"\n" not in self._pending:
            ready, _, _ = select.select([self._answers], [], [], HANG_SECONDS)
            assert ready, f"the host did not answer {command!r} within {HANG_SECONDS} s"
            chunk = os.read(self._answers, 65536)
            if not chunk:
                return b""
            self._pending += chunk
        line, _, rest = bytes(self._pending).partition(b"\n")
        self._pending[:] = rest
        return line

    def end(self) -> Outcome:
        """Close the guest's stdin and wait for it to finish."""
        try:
            self._commands.close()
        except BrokenPipeError:
            pass
        self._thread.join(HANG_SECONDS + 15)  # closing may linger to deliver TLS goodbyes
        assert not self._thread.is_alive(), "the guest did not end after its stdin closed"
        os.close(self._answers)
        return self.outcome


def check_outcome(outcome: Outcome) -> None:
    """A guest run may end with a status, a trap naming a host function, or
    wasmtime refusing a stale handle; nothing else."""
    if outcome.escaped is not None:
        raise AssertionError(f"an exception escaped the host: {outcome.escaped!r}") \
            from outcome.escaped
    if outcome.trap is None:
        return
    assert "internal host error" not in outcome.trap, outcome.trap
    named = NAMED_TRAP.search(outcome.trap)
    if named:
        message = re.sub(r"\d+", "N", named.group("message").strip())
        TALLY[f"stateful: trap in {named.group('function')}: {message}"] += 1
        return
    stale = HANDLE_CHECK.search(outcome.trap)
    assert stale, f"a trap that names no host function: {outcome.trap}"
    TALLY["stateful: stale handles refused by wasmtime"] += 1


# -- the model ------------------------------------------------------------------------------


@dataclass
class Handle:
    """A resource id the guest gave out, with what the test knows of it."""

    id: int
    kind: str
    #: An output whose far end reads everything (a blocking flush cannot wait for ever).
    drains: bool = False
    live: bool = True


class GuestCalls(RuleBasedStateMachine):
    """The rules: one WASI call each (some a short sequence a real guest makes)."""

    def __init__(self, environment: Environment):
        super().__init__()
        TALLY["stateful: state-machine runs"] += 1
        self.environment = environment
        self.checked = False
        self._start_guest()

    def _start_guest(self) -> None:
        self.guest = self.environment.start()
        self.handles: list[Handle] = []
        self.network = self._new(self.guest.call("network"), "network")

    # -- bookkeeping -----------------------------------------------------------------
    def _call(self, *command) -> dict | None:
        """Make one call; when the guest ended, judge how and start another."""
        answer = self.guest.call(*command)
        if answer is None:
            check_outcome(self.guest.end())
            self._start_guest()
            return None
        TALLY[f"stateful: answers {next(iter(answer))}"] += 1
        return answer

    def _new(self, answer: dict | None, kind: str, drains: bool = False) -> Handle | None:
        if answer is None or "ok" not in answer:
            return None
        handle = Handle(answer["ok"], kind, drains)
        self.handles.append(handle)
        return handle

    def _keep_error(self, answer: dict | None) -> None:
        error = answer.get("err") if answer else None
        if isinstance(error, list):  # ["failed", error id]
            self.handles.append(Handle(error[1], "error"))

    def _pick(self, choice: tuple[int, int], *kinds: str,
              live_only: bool = False) -> Handle | None:
        """A handle of one of `kinds` (by a drawn `choice`), usually a live
        one, one time in twenty one already gone. What a rule draws never
        depends on the model, which depends on the real host's timing."""
        index, stale_roll = choice
        candidates = [h for h in self.handles if h.kind in kinds]
        live = [h for h in candidates if h.live]
        if live_only or (live and stale_roll > 0):
            candidates = live
        return candidates[index % len(candidates)] if candidates else None

    def _pick_or_make(self, choice: tuple[int, int], *kinds: str,
                      live_only: bool = False) -> Handle | None:
        """`_pick`, after making a resource of the first kind if there is
        none: every rule acts, whatever the example has made so far."""
        handle = self._pick(choice, *kinds, live_only=live_only)
        if handle is None:
            self._make(kinds[0])
            handle = self._pick(choice, *kinds, live_only=live_only)
        return handle

    def _make(self, kind: str) -> None:
        if kind in ("input", "output"):
            self._connect(self.environment.echo.port, drains=True)
        elif kind == "listener":
            self._listen()
        elif kind == "socket":
            self._new(self._call("tcp", "ipv4"), "socket")
        elif kind == "pollable":
            self.timers(1, 10**9)
        elif kind == "handshake":
            streams = self._connect(self.environment.tls_peer.port, drains=True)
            if streams is not None:
                self._give_to_tls("localhost", *streams)
        elif kind == "future":
            handshake = self._make_and_pick("handshake")
            if handshake is not None:
                self._finish(handshake)
        elif kind == "connection":
            self.tls_connect("localhost", None)
        # an error comes only from a failure

    def _make_and_pick(self, kind: str) -> Handle | None:
        self._make(kind)
        return self._pick((len(self.handles), 1), kind, live_only=True)

    def _give_to_tls(self, name: str, source: Handle, sink: Handle) -> Handle | None:
        handshake = self._new(self._call("tls_handshake", name, source.id, sink.id), "handshake")
        if handshake is not None:
            source.live = sink.live = False  # given to the handshake
        return handshake

    def _finish(self, handshake: Handle) -> Handle | None:
        future = self._new(self._call("tls_finish", handshake.id), "future")
        if future is not None:
            handshake.live = False
        return future

    def _connect(self, port: int, drains: bool) -> tuple[Handle, Handle] | None:
        sock = self._new(self._call("tcp", "ipv4"), "socket")
        if sock is None or self._call("start_connect", sock.id, self.network.id, "ipv4",
                                      port) is None:
            return None
        waiting = self._new(self._call("subscribe", sock.id), "pollable")
        if waiting is None or self._call("poll", [waiting.id], 2000) is None:
            return None
        self._drop(waiting)
        streams = self._call("finish_connect", sock.id)
        if streams is None or "ok" not in streams:
            return None
        source, sink = streams["ok"]
        self.handles += [Handle(source, "input"), Handle(sink, "output", drains)]
        return self.handles[-2], self.handles[-1]

    def _drop(self, handle: Handle) -> None:
        if self._call("drop", handle.id) is not None:
            handle.live = False

    # -- sockets ----------------------------------------------------------------------------
    @rule(peer_name=st.sampled_from(["echo", "tls-peer"]))
    def connect_to_a_peer(self, peer_name):
        peer = self.environment.echo if peer_name == "echo" else self.environment.tls_peer
        self._connect(peer.port, drains=True)

    def _listen(self) -> Handle | None:
        sock = self._new(self._call("tcp", "ipv4"), "listener")
        for command in (("start_bind", sock.id, self.network.id, "ipv4", 0),
                        ("finish_bind", sock.id), ("start_listen", sock.id),
                        ("finish_listen", sock.id)) if sock else ():
            if self._call(*command) is None:
                return None
        return sock

    @rule(choice=PICK)
    def connect_to_own_listener(self, choice):
        """A listener of the guest's own (made first if there is none), and a
        connection to it that nobody reads unless the guest does."""
        listener = self._pick_or_make(choice, "listener", live_only=True)
        if listener is None:
            return
        port = self._call("local_port", listener.id)
        if port is not None and isinstance(port.get("ok"), int):
            self._connect(port["ok"], drains=False)

    @rule(choice=PICK)
    def accept(self, choice):
        listener = self._pick_or_make(choice, "listener")
        if listener is None:
            return
        answer = self._call("accept", listener.id)
        if answer is not None and "ok" in answer:
            sock, source, sink = answer["ok"]
            self.handles += [Handle(sock, "socket"), Handle(source, "input"),
                             Handle(sink, "output")]

    @rule(choice=PICK, operation=st.sampled_from(
        ["start_connect", "finish_connect", "start_bind", "finish_bind", "start_listen",
         "finish_listen", "accept", "shutdown"]), to_echo=st.booleans(),
        how=st.sampled_from(["receive", "send", "both"]))
    def socket_call_in_any_state(self, choice, operation, to_echo, how):
        sock = self._pick_or_make(choice, "socket", "listener")
        if sock is None:
            return
        if operation in ("start_connect", "start_bind"):
            port = self.environment.echo.port if to_echo else 0
            answer = self._call(operation, sock.id, self.network.id, "ipv4", port)
        elif operation == "shutdown":
            answer = self._call(operation, sock.id, how)
        else:
            answer = self._call(operation, sock.id)
        if answer is not None and "ok" in answer and isinstance(answer["ok"], list):
            kinds = ["input", "output"] if len(answer["ok"]) == 2 else ["socket", "input",
                                                                        "output"]
            self.handles += [Handle(i, kind) for i, kind in zip(answer["ok"], kinds, strict=True)]

    # -- streams ------------------------------------------------------------------------------
    @rule(choice=PICK, size=SIZES, skip=st.booleans())
    def read(self, choice, size, skip):
        source = self._pick_or_make(choice, "input")
        if source is not None:
            self._keep_error(self._call("skip" if skip else "read", source.id, size))

    @rule(choice=PICK, size=SIZES, ask_first=st.booleans(), zeroes=st.booleans())
    def write(self, choice, size, ask_first, zeroes):
        """With or without asking check-write first; any size, so also past the permit."""
        sink = self._pick_or_make(choice, "output")
        if sink is None:
            return
        if ask_first:
            permit = self._call("check_write", sink.id)
            self._keep_error(permit)
            if permit is None or "ok" not in permit:
                return
            size = min(size, permit["ok"])
        self._keep_error(self._call("write_zeroes" if zeroes else "write", sink.id, size))

    @rule(sink_choice=PICK, source_choice=PICK, size=st.sampled_from([1, 1000, 20_000]))
    def round_trip(self, sink_choice, source_choice, size):
        """What a well-behaved guest does: write what is permitted, flush, wait
        for input, read it."""
        sink = self._pick_or_make(sink_choice, "output", live_only=True)
        source = self._pick_or_make(source_choice, "input", live_only=True)
        if sink is None or source is None:
            return
        permit = self._call("check_write", sink.id)
        if permit is None or not isinstance(permit.get("ok"), int):
            return
        for command in (("write", sink.id, min(size, permit["ok"])), ("flush", sink.id)):
            if self._call(*command) is None:
                return
        waiting = self._new(self._call("subscribe", source.id), "pollable")
        if waiting is None or self._call("poll", [waiting.id], 200) is None:
            return
        self._drop(waiting)
        self._keep_error(self._call("read", source.id, 65536))

    @rule(choice=PICK, blocking=st.booleans())
    def flush(self, choice, blocking):
        sink = self._pick_or_make(choice, "output")
        if sink is None:
            return
        if blocking and sink.drains and sink.live:
            self._keep_error(self._call("blocking_flush", sink.id))
        else:
            self._keep_error(self._call("flush", sink.id))

    @rule(choice=PICK, size=st.sampled_from([0, 100, 4096, 4097]))
    def blocking_write_and_flush(self, choice, size):
        sink = self._pick_or_make(choice, "output", live_only=True)
        if sink is not None and sink.drains:
            self._keep_error(self._call("blocking_write_and_flush", sink.id, size))

    @rule(sink_choice=PICK, source_choice=PICK, size=SIZES)
    def splice(self, sink_choice, source_choice, size):
        sink = self._pick_or_make(sink_choice, "output")
        source = self._pick_or_make(source_choice, "input")
        if sink is not None and source is not None:
            self._keep_error(self._call("splice", sink.id, source.id, size))

    # -- pollables ----------------------------------------------------------------------------
    @rule(choice=PICK)
    def subscribe(self, choice):
        parent = self._pick_or_make(choice, "input", "output", "socket", "listener", "future")
        if parent is not None:
            self._new(self._call("subscribe", parent.id), "pollable")

    @rule(count=st.sampled_from([1, 10, 1000, 3000]),
          nanoseconds=st.sampled_from([0, 1_000_000, 10**12, (1 << 64) - 1]))
    def timers(self, count, nanoseconds):
        answer = self._call("timers", count, nanoseconds)
        if answer is not None and "ok" in answer:
            self.handles += [Handle(i, "pollable") for i in answer["ok"]]

    @rule(choices=st.lists(PICK, max_size=8), timeout_ms=st.sampled_from([0, 1, 50]))
    def poll(self, choices, timeout_ms):
        chosen = [self._pick_or_make(choice, "pollable") for choice in choices]
        self._call("poll", [p.id for p in chosen if p is not None], timeout_ms)

    @rule(count=st.sampled_from([1000, 5000]))
    def poll_thousands(self, count):
        pollables = [h.id for h in self.handles if h.kind == "pollable" and h.live]
        if pollables:
            self._call("poll_many", pollables, count, 0)

    @rule(choice=PICK)
    def ready(self, choice):
        pollable = self._pick_or_make(choice, "pollable")
        if pollable is not None:
            self._call("ready", pollable.id)

    # -- wasi:tls -------------------------------------------------------------------------------
    @rule(source_choice=PICK, sink_choice=PICK,
          name=st.sampled_from(["localhost", "127.0.0.1", "", "no such.name", "x" * 300,
                                "localhost\u0000evil"]))
    def tls_handshake(self, source_choice, sink_choice, name):
        """Gives the streams away, live or not, from any connection."""
        source = self._pick_or_make(source_choice, "input")
        sink = self._pick_or_make(sink_choice, "output")
        if source is None or sink is None:
            return
        self._give_to_tls(name, source, sink)

    @rule(choice=PICK)
    def tls_finish(self, choice):
        """A handshake's finish, including a second finish of one already consumed."""
        handshake = self._pick_or_make(choice, "handshake")
        if handshake is None:
            return
        self._finish(handshake)

    @rule(choice=PICK, wait=st.booleans())
    def tls_get(self, choice, wait):
        future = self._pick_or_make(choice, "future")
        if future is None:
            return
        if wait:
            waiting = self._new(self._call("subscribe", future.id), "pollable")
            if waiting is None or self._call("poll", [waiting.id],
                                             int(HANDSHAKE_TIMEOUT_S * 1000) + 500) is None:
                return
        self._take_connection(self._call("tls_get", future.id))

    @rule(name=st.sampled_from(["localhost", "127.0.0.1", "wrong.example"]),
          drop_first=st.sampled_from([None, "handshake-pollable", "socket"]),
          hostile=st.booleans())
    def tls_connect(self, name, drop_first, hostile=False):
        """What a guest does for a TLS connection, start to end, with a drop
        at an awkward moment now and then, to a good peer or a hostile one."""
        peer = self.environment.hostile_peer if hostile else self.environment.tls_peer
        streams = self._connect(peer.port, drains=not hostile)
        if streams is None:
            return
        handshake = self._give_to_tls(name, *streams)
        future = self._finish(handshake) if handshake is not None else None
        if future is None:
            return
        waiting = self._new(self._call("subscribe", future.id), "pollable")
        if waiting is None:
            return
        if drop_first == "handshake-pollable":
            self._drop(waiting)
        elif drop_first == "socket":
            self._drop(next(h for h in reversed(self.handles) if h.kind == "socket"))
        if waiting.live and self._call("poll", [waiting.id],
                                       int(HANDSHAKE_TIMEOUT_S * 1000) + 500) is None:
            return
        self._take_connection(self._call("tls_get", future.id))

    def _take_connection(self, answer: dict | None) -> None:
        value = answer.get("ok") if answer else None
        if isinstance(value, dict) and "connection" in value:
            connection, source, sink = value["connection"]
            self.handles += [Handle(connection, "connection"), Handle(source, "input"),
                             Handle(sink, "output", drains=True)]
        elif isinstance(value, dict) and "failed" in value:
            self.handles.append(Handle(value["failed"], "error"))

    @rule(choice=PICK)
    def close_output(self, choice):
        connection = self._pick_or_make(choice, "connection")
        if connection is not None:
            self._call("close_output", connection.id)

    # -- anything ----------------------------------------------------------------------------
    @rule(choice=PICK)
    def drop(self, choice):
        """Any resource, in any order: parents before children, twice, after use."""
        handle = self._pick_or_make(choice, "input", "output", "socket", "listener", "pollable",
                            "handshake", "future", "connection", "error", "network")
        if handle is not None:
            self._drop(handle)

    @rule(choice=PICK)
    def error_text(self, choice):
        error = self._pick_or_make(choice, "error")
        if error is not None:
            self._call("debug", error.id)

    @rule(size=st.sampled_from([0, 16, 4096, 65536, 1 << 20, (1 << 26) + 1, (1 << 64) - 1]))
    def random_bytes(self, size):
        self._call("random", size)

    @invariant()
    def count_steps(self):
        # Invariants run once before the first rule, then after every rule.
        if self.checked:
            TALLY["stateful: state-machine steps"] += 1
        self.checked = True

    def teardown(self):
        check_outcome(self.guest.end())


# -- the environment ----------------------------------------------------------------------


class Environment:
    """What every guest run shares: one host, the component, the peers, the policy."""

    def __init__(self, component_path: Path, pki: Pki):
        self.host = Host()
        self.component = self.host.load(str(component_path))
        leaf = pki.leaf("localhost", "127.0.0.1")
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(server_context)
        self.echo = DrainingEcho()
        self.tls_peer = DrainingEcho(server_context)
        self.hostile_peer = HostileTlsPeer(server_context)
        self.ca_file = str(pki.ca_file)

    def start(self) -> ScriptedGuest:
        TALLY["stateful: guests started"] += 1
        config = HostConfig(allow_net=[NetRule.parse("127.0.0.1")],
                            tls=TlsPolicy(ca_files=[self.ca_file],
                                          handshake_timeout=HANDSHAKE_TIMEOUT_S))
        return ScriptedGuest(self.host, self.component, config)

    def close(self) -> None:
        self.echo.close()
        self.tls_peer.close()
        self.hostile_peer.close()


@pytest.fixture(scope="module")
def environment(guests, pki):
    environment = Environment(guests["call-script"], pki)
    yield environment
    environment.close()


def test_random_call_sequences_never_crash_the_host(environment):
    run_state_machine_as_test(lambda: GuestCalls(environment),
                              settings=fuzz_settings(15, stateful_step_count=50))


def test_a_misuse_trap_names_the_function(environment):
    """The judge above, on a trap known to happen: a write past the permit."""
    guest = environment.start()
    network = guest.call("network")["ok"]
    sock = guest.call("tcp", "ipv4")["ok"]
    assert guest.call("start_connect", sock, network, "ipv4", environment.echo.port) == {
        "ok": None}
    pollable = guest.call("subscribe", sock)["ok"]
    guest.call("poll", [pollable], 2000)
    _, sink = guest.call("finish_connect", sock)["ok"]
    assert guest.call("finish_connect", sock) == {"err": "not-in-progress"}
    assert guest.call("write", sink, 1 << 20) is None
    outcome = guest.end()
    check_outcome(outcome)
    assert NAMED_TRAP.search(outcome.trap).group("function") == (
        "wasi:io/streams@0.2.9#[method]output-stream.write")
