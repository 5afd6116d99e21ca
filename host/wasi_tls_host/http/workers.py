"""Several processes serving one listening socket (`serve --workers N`), pre-forked.

One Python process runs the host's own work on about one core (see
`serve`). `supervise` forks N workers that share the listening socket the
parent opened, as gunicorn does: the kernel hands each new connection to
whichever worker accepts it first, so a served component uses every core.

The parent forks before anything starts a thread or a wasmtime engine
(neither survives a fork), so each worker builds its own host, engine and
server after the fork (`start`). Workers start one at a time: the first
compiles the component into the on-disk cache, the others load it from
there. Each reports on a pipe that it serves, or the one line saying why
it cannot (then the parent stops the others and exits 2), so the parent
prints `serving on ...` only once all of them serve. SIGINT or SIGTERM
reach the parent, which passes SIGTERM on; each worker drains as a single
process does, and the parent exits 0 once all have ended well. A worker
that dies on its own is replaced.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable

from .serve import HttpServer

#: The line a worker writes to the parent once it serves.
READY = b"ready"
#: What a worker's startup failure exits with (the command line's usage status).
STARTUP_FAILED = 2
#: A worker that takes longer than this to start is taken for broken.
START_TIMEOUT_S = 120.0
#: Least time between replacing workers that die, so a worker that dies at
#: once does not make the parent fork in a tight loop.
RESPAWN_INTERVAL_S = 1.0


class StartupError(Exception):
    """A worker could not start serving; the message is its one line."""


def supervise(count: int, start: Callable[[], HttpServer], announce: Callable[[], None]) -> int:
    """Run `count` workers, each serving the server `start()` returns,
    until SIGINT or SIGTERM; `announce()` once all serve. Returns the exit
    status: 0 when every worker ended well. Raises StartupError."""
    supervisor = _Supervisor(start)
    previous = {signum: signal.signal(signum, supervisor.on_signal)
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        for _ in range(count):
            if supervisor.stopping:
                break
            supervisor.spawn()
        announce()
        return supervisor.watch()
    except BaseException:
        supervisor.kill_all()
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        supervisor.close()


class _Supervisor:
    def __init__(self, start: Callable[[], HttpServer]):
        self.start = start
        self.workers: set[int] = set()
        self.stopping = False
        self.failed = False
        self.last_spawn = 0.0
        self.ready_read, self.ready_write = os.pipe()

    def on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True
        for pid in self.workers:
            _signal(pid, signal.SIGTERM)

    def spawn(self) -> None:
        """Fork a worker and wait until it serves (StartupError if it cannot)."""
        self.last_spawn = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _worker(self.start, self.ready_read, self.ready_write)  # never returns
        self.workers.add(pid)
        self._await_ready(pid)
        if self.stopping:  # asked to stop while it started
            _signal(pid, signal.SIGTERM)

    def _await_ready(self, pid: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StartupError(f"a worker did not start within {START_TIMEOUT_S:g} s")
            readable, _, _ = select.select([self.ready_read], [], [], min(remaining, 0.2))
            if readable:
                line += os.read(self.ready_read, 4096)
                continue
            ended, status = os.waitpid(pid, os.WNOHANG)
            if ended:
                self.workers.discard(pid)
                raise StartupError(f"a worker ended while starting "
                                   f"({_describe(status)})")
        message = line.rstrip(b"\n")
        if message != READY:
            raise StartupError(message.decode(errors="replace"))

    def watch(self) -> int:
        """Reap workers until all have ended after a stop; replace the ones
        that end before it."""
        while self.workers:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:  # a signal: look at `stopping` again
                continue
            self.workers.discard(pid)
            if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
                self.failed = self.failed or self.stopping
            if not self.stopping:
                print(f"wasi-tls-host: a worker (pid {pid}) ended ({_describe(status)}); "
                      "starting another", file=sys.stderr, flush=True)
                time.sleep(max(0.0, self.last_spawn + RESPAWN_INTERVAL_S - time.monotonic()))
                if not self.stopping:
                    self._replace()
        return 1 if self.failed else 0

    def _replace(self) -> None:
        """Start a worker in place of one that ended; one that cannot start
        is reported, and the workers still running go on serving."""
        try:
            self.spawn()
        except StartupError as error:
            if self.stopping:
                return  # a stop came while it started, and ended it: nothing failed
            self.failed = True
            print(f"wasi-tls-host: a replacement worker could not start ({error}); "
                  f"serving with {len(self.workers)}", file=sys.stderr, flush=True)

    def kill_all(self) -> None:
        for pid in self.workers:
            _signal(pid, signal.SIGKILL)
        for pid in list(self.workers):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.workers.clear()

    def close(self) -> None:
        os.close(self.ready_read)
        os.close(self.ready_write)


def _worker(start: Callable[[], HttpServer], ready_read: int, ready_write: int) -> None:
    """A worker's whole life, in the forked child: never returns."""
    status = 0
    try:
        os.close(ready_read)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)  # until there is a server to drain
        try:
            server = start()
        except Exception as error:  # one line for the parent to print
            os.write(ready_write, (" ".join(str(error).split()) + "\n").encode())
            status = STARTUP_FAILED
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda signum, frame: server.shutdown())
        os.write(ready_write, READY + b"\n")
        os.close(ready_write)
        while not server.wait(0.5):
            pass
    except BaseException:
        traceback.print_exc()
        status = 1
    finally:
        # The parent's state (its signal handlers, its atexit work) is not
        # this process's to run: leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.WEXITSTATUS(status)}"
