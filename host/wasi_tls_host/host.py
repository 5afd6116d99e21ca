"""Loading components, linking the host's interfaces, and running `wasi:cli/run`.

Stopping one guest among many: every store on a Host's engine has an epoch
deadline one tick ahead and a callback for it (runtime/calls.py,
`EpochWatch`). Nothing ticks the epoch until a guest is to stop: then its
`StopSwitch` records why, wakes the guest's waits through a pipe, and bumps
the engine's epoch. Every running guest's callback runs once; only the one
whose switch is set traps, the others are given the next tick. So guests
that are never stopped pay nothing, and a stop reaches a guest within a
moment whether it computes or waits in `poll`.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import wasmtime
from wasmtime import component as wc

from . import interfaces as registry
from .component_cache import ComponentCache, compile_file
from .config import HostConfig, Limits
from .guest_run import GuestRun, ending, instantiation_refused, out_of_fuel, stopped
from .runtime.calls import Interface, link, stop_on_epoch
from .runtime.context import WasiCtx
from .runtime.exports import exported_function
from .runtime.poll import StopSwitch

if TYPE_CHECKING:
    import asyncio

    from .http.serve import HttpServer, ServeSettings


class HostError(Exception):
    """A problem with the component or its imports, explained in one paragraph."""

    #: What the command line exits with.
    exit_status = 2


def all_interfaces() -> list[Interface]:
    """Every interface this host provides, each defined once (see `interfaces`)."""
    return registry.load()


def add_to_linker(linker: wc.Linker, ctx: WasiCtx,
                  interfaces: list[Interface] | None = None) -> None:
    """Define the host's interfaces in `linker`, bound to `ctx`.

    The linker may also hold the embedder's own functions (define them in
    other instances). Never combine this with `Linker.add_wasip2()`: its
    streams are not the host's and cannot cross into wasi:tls.
    """
    with linker.root() as root:
        link(root, ctx, all_interfaces() if interfaces is None else interfaces)


_NAME = re.compile(r"^(?P<name>[^@]+)(?:@(?P<version>.+))?$")


def _compatible(provided: str | None, wanted: str | None) -> bool:
    """Semver compatibility as wasmtime's linker applies it."""
    if provided is None or wanted is None:
        return provided == wanted
    if "-" in provided or "-" in wanted:
        return provided == wanted
    p, w = provided.split("."), wanted.split(".")
    if p[0] != "0":
        return p[0] == w[0]
    return p[:2] == w[:2]


def missing_imports(engine: wasmtime.Engine, component: wc.Component,
                    interfaces: list[Interface]) -> list[str]:
    """Describe each import of `component` the interfaces do not satisfy."""
    by_name: dict[str, list[Interface]] = {}
    for interface in interfaces:
        by_name.setdefault(interface.unversioned, []).append(interface)
    problems = []
    for import_name, extern in component.type.imports(engine).items():
        match = _NAME.match(import_name)
        assert match is not None  # wasmtime accepts only well-formed import names
        name, version = match.group("name"), match.group("version")
        candidates = [i for i in by_name.get(name, [])
                      if _compatible(i.name.partition("@")[2] or None, version)]
        if not candidates:
            problems.append(f"`{import_name}`")
            continue
        item = extern.ty
        if isinstance(item, wc.ComponentInstanceType):
            provided = set(candidates[0].functions) | set(candidates[0].resources)
            lacking = sorted(set(item.exports(engine)) - provided - _type_names(item, engine)
                             - _resource_aliases(item, engine, provided))
            if lacking:
                problems.append(f"`{import_name}` (its {', '.join(lacking)})")
    return problems


def _type_names(item: wc.ComponentInstanceType, engine: wasmtime.Engine) -> set[str]:
    return {name for name, extern in item.exports(engine).items()
            if not isinstance(extern.ty, (wc.FuncType, wc.ResourceType))}


def _resource_aliases(item: wc.ComponentInstanceType, engine: wasmtime.Engine,
                      provided: set[str]) -> set[str]:
    """Resources exported under a second name, such as wasi:http's `type
    headers = fields`: provided with the resource they name."""
    exports = item.exports(engine)
    resources = [exports[name].ty for name in provided
                 if name in exports and isinstance(exports[name].ty, wc.ResourceType)]
    return {name for name, extern in exports.items()
            if name not in provided and isinstance(extern.ty, wc.ResourceType)
            and any(extern.ty == resource for resource in resources)}


@dataclass
class _Loaded:
    mtime_ns: int
    component: wc.Component


#: The engine settings that change compiled code, by whether code counts fuel.
_SETTINGS = {False: "epoch_interruption", True: "epoch_interruption,consume_fuel"}


@dataclass
class _Engine:
    """One wasmtime engine and its compiled components."""

    engine: wasmtime.Engine
    fuel: bool
    cache: ComponentCache | None


#: Called as `link(linker, ctx)` after the host's interfaces are in the linker.
Link = Callable[[wc.Linker, WasiCtx], None]
ComponentOrPath = wc.Component | str | os.PathLike


class Host:
    """Runs WASI 0.2 command components with wasi:tls, one store per run.

    Compiled components are kept on disk (`component_cache`: in `cache`, a
    directory, or the user's cache directory when True; False compiles every
    time), so a second run of the same file skips compilation. A compile
    that takes over a second says so through the `wasi_tls_host` logger. A
    defect in the host traps the guest with a one-line message (`GuestTrap`,
    kind "host-bug"); `debug` also prints its traceback (default: when
    $WASI_TLS_HOST_DEBUG is set).

    `engine` runs every guest without a fuel limit; guests with one run on a
    second engine, made when first needed, whose code counts fuel.
    """

    def __init__(self, *, cache: bool | os.PathLike | str = True, debug: bool | None = None):
        self.debug = debug
        self._cache_directory = (None if isinstance(cache, bool) else Path(cache))
        self._cached = cache is not False
        self._engines: dict[bool, _Engine] = {}
        self._engines_lock = threading.Lock()
        self.engine = self._engine(fuel=False).engine
        self._loaded: dict[tuple[str, bool], _Loaded] = {}

    def _engine(self, fuel: bool) -> _Engine:
        with self._engines_lock:
            if fuel not in self._engines:
                config = wasmtime.Config()
                # Stops one guest (GuestRun.stop, the time limit, Ctrl-C)
                # also while it computes: see runtime/calls.py, EpochWatch.
                config.epoch_interruption = True
                config.consume_fuel = fuel
                engine = wasmtime.Engine(config)
                cache = (ComponentCache(engine, _SETTINGS[fuel], self._cache_directory)
                         if self._cached else None)
                self._engines[fuel] = _Engine(engine, fuel, cache)
            return self._engines[fuel]

    def load(self, path: str | os.PathLike, *, fuel: bool = False) -> wc.Component:
        """The component at `path`, compiled for this host's engine (for its
        fuel-counting engine with `fuel`, which runs guests with a fuel limit)."""
        path = os.fspath(path)
        try:
            mtime_ns = os.stat(path).st_mtime_ns
            loaded = self._loaded.get((path, fuel))
            if loaded is not None and loaded.mtime_ns == mtime_ns:
                return loaded.component
            with open(path, "rb") as file:
                header = file.read(8)
        except OSError as error:
            raise HostError(f"cannot read component {path}: {error.strerror}") from None
        if header[:4] != b"\0asm":
            raise HostError(f"{path} is not a WebAssembly file (no \\0asm header).")
        if header[4:8] == b"\x01\0\0\0":
            raise HostError(
                f"{path} is a core WebAssembly module, not a component. This host runs "
                "WASI 0.2 components; build one with componentize-py or wrap a WASI 0.1 "
                "module with `wasm-tools component new --adapt`.")
        engine = self._engine(fuel)
        try:
            if engine.cache is not None:
                component = engine.cache.load(path)
            else:
                component = compile_file(engine.engine, path, cached=False)
        except wasmtime.WasmtimeError as error:
            raise HostError(f"{path} is not a valid component: {error}") from None
        self._loaded[(path, fuel)] = _Loaded(mtime_ns, component)
        return component

    def run(self, component: ComponentOrPath, args: list[str] | None = None,
            env: dict[str, str] | None = None, *, config: HostConfig | None = None,
            link: Link | None = None) -> int:
        """Run the component's `wasi:cli/run` export; return its exit status.

        `component` is a path or what `load` returned. `args` (argv, program
        name first) and `env` override those of `config`; everything else
        the guest may do comes from `config`, and `config.limits` bounds it.
        `link(linker, ctx)`, when given, is called once the host's interfaces
        are in the linker, to define the embedder's own. Raises GuestTrap
        when the guest ends without an exit status, HostError when it cannot
        start, and KeyboardInterrupt after Ctrl-C (on the main thread, Ctrl-C
        stops the guest even while it computes).
        """
        config = _merged(config, args, env)
        engine = self._engine(config.limits.fuel is not None)
        switch = StopSwitch(engine.engine.increment_epoch)
        with _signals_stop(switch, config.sigterm_grace):
            return self._run(component, config, link, engine, switch)

    def start(self, component: ComponentOrPath, args: list[str] | None = None,
              env: dict[str, str] | None = None, *, config: HostConfig | None = None,
              link: Link | None = None) -> GuestRun:
        """`run` on a thread of its own: returns at once with a GuestRun to
        stop the guest or wait for its end. Any number may run at a time."""
        config = _merged(config, args, env)
        engine = self._engine(config.limits.fuel is not None)
        switch = StopSwitch(engine.engine.increment_epoch)
        name = f"guest {config.args[0] if config.args else component}"
        return GuestRun(lambda: self._run(component, config, link, engine, switch), switch, name)

    async def run_async(self, component: ComponentOrPath, args: list[str] | None = None,
                        env: dict[str, str] | None = None, *,
                        config: HostConfig | None = None, link: Link | None = None) -> int:
        """`run` for asyncio, on a thread of its own. Cancelling the awaiting
        task stops the guest, waits (without blocking the loop) for it to
        end, and raises CancelledError."""
        import asyncio  # a run from the command line never needs it: ~10 ms of start-up

        loop = asyncio.get_running_loop()
        ended = loop.create_future()

        def wake_the_loop() -> None:
            try:
                loop.call_soon_threadsafe(_resolve, ended)
            except RuntimeError:
                pass  # the loop has closed; nobody waits any more

        run = self.start(component, args, env, config=config, link=link)
        run.add_done_callback(wake_the_loop)
        try:
            await asyncio.shield(ended)
        except asyncio.CancelledError:
            run.stop()
            await asyncio.shield(ended)
            raise
        return run.wait()

    def _run(self, component: ComponentOrPath, config: HostConfig, link: Link | None,
             engine: _Engine, switch: StopSwitch) -> int:
        try:
            if isinstance(component, wc.Component):
                path = "the component"
            else:
                path = os.fspath(component)
                component = self.load(path, fuel=engine.fuel)
            limits = config.limits
            # Only what the component imports: a guest without TLS never loads it.
            interfaces = registry.load(
                registry.imported_by(component.type.imports(engine.engine)))
            store = new_store(engine.engine, limits, switch)
            ctx = WasiCtx(config, debug=self.debug)
            ctx.stop = switch
            linker = wc.Linker(engine.engine)
            try:
                add_to_linker(linker, ctx, interfaces)
                if link is not None:
                    link(linker, ctx)
                if limits.timeout is not None:
                    switch.request_after(limits.timeout, "timeout")
                if switch.reason is not None:
                    raise stopped(switch.reason, limits)
                instance = self._instantiate(linker, store, component, path, interfaces,
                                             limits, switch, engine, own_imports=link is not None)
                run = exported_function(store, instance, engine.engine, component,
                                        "wasi:cli/run", "run")
                if run is None:
                    raise HostError(f"{path} does not export wasi:cli/run; it is not a "
                                    "command component.")
                try:
                    outcome = run(store)
                    run.post_return(store)
                except wasmtime.WasmtimeError as trap:
                    # wasmtime-py keeps the error in a frame of its own, which its
                    # traceback holds (a cycle); dropping the traceback lets this
                    # frame, the context and its wasmtime handles go now rather
                    # than at a collection during interpreter shutdown.
                    trap.__traceback__ = None
                    return ending(trap, ctx, switch, store, limits)
                return 0 if _is_ok(outcome) else 1
            finally:
                ctx.close()
                linker.close()
        finally:
            switch.close()

    def _instantiate(self, linker: wc.Linker, store: wasmtime.Store, component: wc.Component,
                     path: str, interfaces: list[Interface], limits: Limits,
                     switch: StopSwitch, engine: _Engine, own_imports: bool) -> wc.Instance:
        try:
            return linker.instantiate(store, component)
        except wasmtime.WasmtimeError as error:
            error.__traceback__ = None
            refused = instantiation_refused(error, limits)
            if refused is not None:
                raise refused from None
            if switch.reason is not None:  # stopped in the guest's start function
                raise stopped(switch.reason, limits, str(error)) from None
            burnt = out_of_fuel(store, limits, str(error))  # in the start function too
            if burnt is not None:
                raise burnt from None
            if "cross-`Engine`" in str(error):
                counting = "counts" if engine.fuel else "does not count"
                raise HostError(
                    f"{path} was loaded for another engine; this run {counting} fuel. Pass "
                    f"its path, or load it with Host.load(path, fuel={engine.fuel}).") from None
            # Only now pay for walking the import types, to say what is missing;
            # with the embedder's own imports, wasmtime's message names them.
            missing = [] if own_imports else missing_imports(engine.engine, component,
                                                             interfaces)
            if missing:
                raise HostError(
                    f"{path} imports {', '.join(missing)}, which this host does not "
                    f"provide. It provides {registry.summary()}; rebuild the guest "
                    "against those interfaces.") from None
            raise HostError(f"cannot instantiate {path}: {error}") from None


    def serve(self, component: ComponentOrPath, *, config: HostConfig | None = None,
              settings: ServeSettings | None = None,
              listener: socket.socket | None = None) -> HttpServer:
        """Serve the component's `wasi:http/incoming-handler` over HTTP/1.1, or
        HTTPS when `config.tls` has identities; see `http.serve`.

        Returns once the server listens (on `listener` if given, else where
        `settings` say), with the server running on threads of its own: its
        `port` and `url` say where, `close()` stops it. Every request runs in
        a fresh instance granted what `config` grants (with an empty stdin
        unless it names one), under `config.limits` (the time limit counts
        for each request). Raises HostError when the component cannot be
        served or the address cannot be had, ValueError for settings that
        cannot work together.
        """
        from .http.serve import GuestHandler, HttpServer, ServeSettings, listen
        config = config or HostConfig()
        if config.stdin is None:
            config = replace(config, stdin=io.BytesIO())
        settings = settings or ServeSettings()
        tls = settings.tls(config)
        engine = self._engine(config.limits.fuel is not None)
        if isinstance(component, wc.Component):
            path = "the component"
        else:
            path = os.fspath(component)
            component = self.load(path, fuel=engine.fuel)
        handler = GuestHandler(self, engine, component, config, path)
        handler.check()
        if listener is None:
            try:
                listener = listen(settings.host, settings.port)
            except OSError as error:
                raise HostError(f"cannot listen on {settings.host}:{settings.port}: "
                                f"{error.strerror or error}") from None
        return HttpServer(handler, listener, tls=tls, settings=settings, stop_guests=handler.stop)


#: Bytes a table element counts for against `Limits.max_memory`.
TABLE_ELEMENT_BYTES = 8


def new_store(engine: wasmtime.Engine, limits: Limits, switch: StopSwitch) -> wasmtime.Store:
    """A store for one guest under `limits` (all but the time limit, which
    the caller arms on `switch`), stopped when `switch` is requested."""
    store = wasmtime.Store(engine)
    if limits.max_memory is not None:
        store.set_limits(memory_size=limits.max_memory,
                         table_elements=limits.max_memory // TABLE_ELEMENT_BYTES)
    if limits.fuel is not None:
        store.set_fuel(limits.fuel)
    stop_on_epoch(store, switch)
    return store


def _merged(config: HostConfig | None, args: list[str] | None,
            env: dict[str, str] | None) -> HostConfig:
    base = config or HostConfig()
    return replace(base, args=list(args) if args is not None else base.args,
                   env=dict(env) if env is not None else base.env)


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


@contextlib.contextmanager
def _signals_stop(switch: StopSwitch, sigterm_grace: float | None) -> Iterator[None]:
    """While the guest runs on the main thread, Ctrl-C stops it through its
    switch instead of raising KeyboardInterrupt inside a host call, where it
    cannot be delivered safely; with `sigterm_grace`, SIGTERM drains it
    (`StopSwitch.drain`).

    A Python signal handler runs only when the main thread runs Python, and
    a guest that computes keeps it in WebAssembly: so the signal also goes,
    from C, to a wake-up pipe (`signal.set_wakeup_fd`), where a thread
    waits to act on it, and a stop reaches the computing guest through the
    epoch. The thread lives as long as the process: starting one for each
    run would cost more than a small run.
    """
    global _signal_target
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous_target, _signal_target = _signal_target, (switch, sigterm_grace)
    previous_handlers = {signal.SIGINT: signal.signal(
        signal.SIGINT, lambda signum, frame: switch.request("interrupted"))}
    if sigterm_grace is not None:
        previous_handlers[signal.SIGTERM] = signal.signal(
            signal.SIGTERM, lambda signum, frame: switch.drain(sigterm_grace))
    previous_fd = signal.set_wakeup_fd(_signal_pipe(), warn_on_full_buffer=False)
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        _signal_target = previous_target


#: The switch of the run on the main thread, and its SIGTERM grace (None:
#: SIGTERM is not the host's).
_signal_target: tuple[StopSwitch, float | None] | None = None
_signal_write_fd: int | None = None


def _signal_pipe() -> int:
    """The write end of the wake-up pipe, made with its reader on first use."""
    global _signal_write_fd
    if _signal_write_fd is None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        threading.Thread(target=_act_on_signals, args=(read_fd,), name="signal watcher",
                         daemon=True).start()
        _signal_write_fd = write_fd
    return _signal_write_fd


def _act_on_signals(read_fd: int) -> None:
    while True:
        signals = os.read(read_fd, 64)
        target = _signal_target
        if target is None:
            continue
        switch, sigterm_grace = target
        if signal.SIGINT in signals:
            switch.request("interrupted")
        if signal.SIGTERM in signals and sigterm_grace is not None:
            switch.drain(sigterm_grace)


def _is_ok(outcome: object) -> bool:
    return getattr(outcome, "tag", "ok") == "ok"
