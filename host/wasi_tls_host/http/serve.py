"""Serving a component's `wasi:http/incoming-handler` over HTTP/1.1 and HTTPS.

Theory of operation
-------------------
An `HttpServer` owns a listening socket and one thread that accepts on it.
Each accepted connection gets a thread of its own (`server.ServerConnection`),
which does the TLS handshake, reads request heads and runs the handler for
each request, so a slow client or a slow guest holds only its own thread.
WebAssembly runs outside Python's GIL (ctypes releases it for every call
into wasmtime), so guests on different threads compute at the same time;
the host's own work (TLS records, HTTP framing, host functions) takes the
GIL in turns. One process uses about one core; `workers` runs several.

`GuestHandler` is the handler: every request gets a fresh instance of the
component in a store and context of its own, as `wasmtime serve` does, so
nothing one request leaves behind reaches the next. Instantiating a
pre-compiled component is cheap next to a request (see the README's
figures), so instances are not pooled. The request and its
response-outparam are handed to `handle` as `own<>` resources
(`runtime.exports.owned`); the instance lives until `handle` returns, and
what the guest left unfinished is then dropped with the store (an
unfinished response body cuts the response short, an unset outparam is a
500). A trap is a 500, or a cut response once the head has gone.

At most `max_connections` connections are served at once; beyond that the
accept loop leaves clients in the listen backlog until one ends. On
`shutdown` the server stops accepting, connections waiting for a request
close, requests in flight finish (their responses say `Connection:
close`), and after `grace` seconds whatever is left is cut and its guests
stopped.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import wasmtime
from wasmtime import component as wc

from .. import interfaces as registry
from ..config import HostConfig
from ..guest_run import GuestTrap, ending
from ..runtime.context import WasiCtx, debug_setting
from ..runtime.exports import exported_function, owned
from ..runtime.poll import READ, StopSwitch
from ..runtime.resources import Res
from .server import (
    Exchange,
    Handler,
    ServerConnection,
    Shutdown,
    TlsServing,
    poke,
)
from .settings import ServeSettings

if TYPE_CHECKING:
    from ..host import Host, _Engine

log = logging.getLogger(__name__)

#: The interface a served component exports.
INCOMING_HANDLER = "wasi:http/incoming-handler"
#: How long the accept loop backs off when the process is out of descriptors.
ACCEPT_BACKOFF_S = 0.1
#: What accept may fail with for reasons of the moment, not of the listener.
_TRANSIENT_ACCEPT = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM,
                               errno.ECONNABORTED, errno.EPROTO, errno.EPERM})


def listen(host: str, port: int, backlog: int = socket.SOMAXCONN) -> socket.socket:
    """A listening TCP socket on `host` (an address or a name) and `port`."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(backlog)
    except BaseException:
        listener.close()
        raise
    return listener


def url_of(listener: socket.socket, https: bool) -> str:
    host, port = listener.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if https else 'http'}://{shown}:{port}/"


class GuestHandler:
    """Runs `wasi:http/incoming-handler.handle` for each request in a fresh
    instance of `component` (see the module doc), each under `config.limits`
    and with a stop switch of its own."""

    def __init__(self, host: Host, engine: _Engine, component: wc.Component,
                 config: HostConfig, path: str):
        self.host = host
        self.engine = engine
        self.component = component
        self.config = config
        self.path = path
        self.debug = debug_setting(host.debug)
        # Only what the component imports, as for `run`.
        self.interfaces = registry.load(
            registry.imported_by(component.type.imports(engine.engine)))
        self._lock = threading.Lock()
        #: The stop switches of the requests in flight, for `stop`.
        self._running: set[StopSwitch] = set()

    def check(self) -> None:
        """Instantiate once, so that a component this host cannot serve is
        refused before the first request (HostError, or GuestTrap when its
        start traps)."""
        from ..host import HostError

        def is_a_handler(store: wasmtime.Store, ctx: WasiCtx, instance: wc.Instance) -> None:
            if self._handle_function(store, instance) is None:
                raise HostError(f"{self.path} does not export {INCOMING_HANDLER}; it is not an "
                                "HTTP handler (the wasi:http/proxy world).")

        def refuse(error: Exception) -> None:
            raise error

        self._in_fresh_instance(is_a_handler, refuse)

    def __call__(self, exchange: Exchange) -> None:
        def handle(store: wasmtime.Store, ctx: WasiCtx, instance: wc.Instance) -> None:
            function = self._handle_function(store, instance)
            assert function is not None, "checked when the server started"
            function(store, owned(ctx, exchange.request, Res.HTTP_INCOMING_REQUEST),
                     owned(ctx, exchange.outparam, Res.HTTP_RESPONSE_OUTPARAM))
            function.post_return(store)

        self._in_fresh_instance(handle, lambda error: exchange.handler_failed(
            str(error), self._backtrace(error)))

    def _backtrace(self, error: Exception) -> str:
        """A trap's wasm backtrace under --debug, as `run --debug` shows it; else ""."""
        return error.details if isinstance(error, GuestTrap) and self.debug else ""

    def _in_fresh_instance(self, call: Callable[[wasmtime.Store, WasiCtx, wc.Instance], None],
                           failed: Callable[[Exception], None]) -> None:
        """Instantiate the component in a store of its own and `call(store,
        ctx, instance)`. A trap or a HostError goes to `failed` before what
        the guest left is dropped, so the failure, not the drop, answers."""
        from ..host import HostError, add_to_linker, new_store
        limits = self.config.limits
        switch = StopSwitch(self.engine.engine.increment_epoch)
        store = new_store(self.engine.engine, limits, switch)
        ctx = WasiCtx(self.config, debug=self.host.debug)
        ctx.stop = switch
        linker = wc.Linker(self.engine.engine)
        with self._lock:
            self._running.add(switch)
        try:
            add_to_linker(linker, ctx, self.interfaces)
            if limits.timeout is not None:
                switch.request_after(limits.timeout, "timeout")
            instance = self.host._instantiate(linker, store, self.component, self.path,
                                              self.interfaces, limits, switch, self.engine,
                                              own_imports=False)
            call(store, ctx, instance)
        except wasmtime.WasmtimeError as trap:
            trap.__traceback__ = None  # see Host.run
            try:
                status = ending(trap, ctx, switch, store, limits)
            except GuestTrap as error:
                failed(error)
            else:
                failed(GuestTrap(f"the guest exited with status {status} instead of answering"))
        except (HostError, GuestTrap) as error:
            failed(error)
        finally:
            with self._lock:
                self._running.discard(switch)
            # What the guest left (an unset outparam, an unfinished body) is
            # dropped now, which settles the response for `Exchange.finish`.
            ctx.close(wait_for_background=False)
            linker.close()
            switch.close()

    def _handle_function(self, store: wasmtime.Store, instance: wc.Instance) -> wc.Func | None:
        return exported_function(store, instance, self.engine.engine, self.component,
                                 INCOMING_HANDLER, "handle")

    def stop(self) -> None:
        """Stop every guest still running (the grace period is over)."""
        with self._lock:
            running = list(self._running)
        for switch in running:
            switch.request("stopped")


class HttpServer:
    """A handler served on `listener` (see the module doc). It starts
    serving at once, on threads of its own; `port` and `url` say where.
    `shutdown` starts stopping (safe in a signal handler), `wait` waits for
    the end, `close` does both; it is also a context manager."""

    def __init__(self, handler: Handler, listener: socket.socket, *,
                 tls: TlsServing | None = None, settings: ServeSettings | None = None,
                 stop_guests: Callable[[], None] | None = None,
                 now_ns: Callable[[], int] = time.monotonic_ns):
        self.handler = handler
        self.listener = listener
        self.tls = tls
        self.settings = settings or ServeSettings()
        self.now_ns = now_ns
        self._stop_guests = stop_guests
        self.port: int = listener.getsockname()[1]
        self.url = url_of(listener, tls is not None)
        self._shutdown = Shutdown()
        self._connections: set[ServerConnection] = set()
        self._lock = threading.Lock()
        self._wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        #: Poked by each connection as it ends; None once the server has stopped.
        self._wake_write: int | None = wake_write
        self._grace = self.settings.grace
        self._stopped = threading.Event()
        listener.setblocking(False)
        self._thread = threading.Thread(target=self._run, name=f"serve {self.url}", daemon=True)
        self._thread.start()

    # -- stopping ------------------------------------------------------------------------
    def shutdown(self, grace: float | None = None) -> None:
        """Stop accepting; requests in flight get `grace` seconds (default:
        the settings') to finish. Returns at once; safe in a signal handler."""
        if grace is not None:
            self._grace = grace
        self._shutdown.drain()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the server has stopped; False if `timeout` passed first."""
        return self._stopped.wait(timeout)

    def close(self, grace: float | None = None) -> None:
        self.shutdown(grace)
        self.wait()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def __enter__(self) -> HttpServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the accept loop -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._accept_until_shutdown()
        except Exception:  # a host defect: stop serving, but stop cleanly
            log.exception("the accept loop failed")
        finally:
            self.listener.close()
            self._drain()
            self._stopped.set()

    def _accept_until_shutdown(self) -> None:
        shutdown = self._shutdown
        listener_fd = self.listener.fileno()
        while not shutdown.draining:
            with self._lock:
                room = len(self._connections) < self.settings.max_connections
            poller = select.poll()
            poller.register(shutdown.drain_fd, READ)
            poller.register(self._wake_read, READ)
            if room:
                poller.register(listener_fd, READ)
            ready = {fd for fd, _ in poller.poll()}
            if self._wake_read in ready:
                _empty(self._wake_read)
            if listener_fd in ready and not shutdown.draining:
                self._accept()

    def _accept(self) -> None:
        try:
            sock, address = self.listener.accept()
        except BlockingIOError:
            return  # another worker took it
        except OSError as error:
            if error.errno not in _TRANSIENT_ACCEPT:
                raise
            log.warning("accept failed (%s); retrying", os.strerror(error.errno or 0))
            time.sleep(ACCEPT_BACKOFF_S)
            return
        peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        connection = ServerConnection(sock, peer, self.handler, tls=self.tls,
                                      limits=self.settings.limits, shutdown=self._shutdown,
                                      now_ns=self.now_ns)
        with self._lock:
            self._connections.add(connection)
        thread = threading.Thread(target=self._serve_connection, args=(connection,),
                                  name=f"connection {peer}", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread can be started now: this client is refused
            log.warning("%s: no thread to serve it; closed", peer)
            self._forget(connection)
            connection.close()

    def _serve_connection(self, connection: ServerConnection) -> None:
        try:
            connection.run()
        finally:
            self._forget(connection)

    def _forget(self, connection: ServerConnection) -> None:
        # Under the lock: once the last connection is gone the server closes
        # the pipe, and a poke after that would write to a closed (or reused) fd.
        with self._lock:
            self._connections.discard(connection)
            if self._wake_write is not None:
                poke(self._wake_write)

    def _drain(self) -> None:
        """After the accept loop: let connections finish within the grace
        period, then cut the rest and stop their guests."""
        deadline = self.now_ns() + int(self._grace * 1e9)
        if not self._wait_for_connections(deadline):
            self._shutdown.abort()
            if self._stop_guests is not None:
                self._stop_guests()
            self._wait_for_connections(self.now_ns() + int(ABORT_WAIT_S * 1e9))
        with self._lock:  # connections cut but not yet ended poke no more
            os.close(self._wake_read)
            if self._wake_write is not None:
                os.close(self._wake_write)
                self._wake_write = None

    def _wait_for_connections(self, deadline: int) -> bool:
        """True once every connection has ended; False at `deadline`."""
        while True:
            with self._lock:
                if not self._connections:
                    return True
            remaining_ms = (deadline - self.now_ns()) // 1_000_000
            if remaining_ms <= 0:
                return False
            poller = select.poll()
            poller.register(self._wake_read, READ)
            poller.poll(remaining_ms)
            _empty(self._wake_read)


#: How long a server waits for the connections it cut to end.
ABORT_WAIT_S = 5.0


def _empty(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass
