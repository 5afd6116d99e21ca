"""Loading components, linking the host's interfaces, and running `wasi:cli/run`."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import wasmtime
from wasmtime import component as wc

from . import interfaces as registry
from .component_cache import ComponentCache
from .config import HostConfig
from .runtime.calls import Interface, link
from .runtime.context import WasiCtx
from .runtime.exports import exported_function
from .runtime.poll import INTERRUPTS

if TYPE_CHECKING:
    from .http.serve import HttpServer, ServeSettings


class HostError(Exception):
    """A problem with the component or its imports, explained in one paragraph."""


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
        name, version = match.group("name"), match.group("version")
        candidates = [i for i in by_name.get(name, [])
                      if _compatible(i.name.partition("@")[2] or None, version)]
        if not candidates:
            problems.append(f"`{import_name}`")
            continue
        item = extern.ty
        if isinstance(item, wc.ComponentInstanceType):
            provided = set(candidates[0].functions) | set(candidates[0].resources)
            lacking = sorted(set(item.exports(engine)) - provided - _type_names(item, engine))
            if lacking:
                problems.append(f"`{import_name}` (its {', '.join(lacking)})")
    return problems


def _type_names(item: wc.ComponentInstanceType, engine: wasmtime.Engine) -> set[str]:
    return {name for name, extern in item.exports(engine).items()
            if not isinstance(extern.ty, (wc.FuncType, wc.ResourceType))}


@dataclass
class _Loaded:
    mtime_ns: int
    component: wc.Component


class Host:
    """Runs WASI 0.2 command components with wasi:tls, one store per run.

    Compiled components are kept on disk (`component_cache`: in `cache`, a
    directory, or the user's cache directory when True), so a second run of
    the same file skips compilation. A defect in the host traps the guest
    with a one-line message (`GuestTrap`); `debug` also prints its traceback
    (default: when $WASI_TLS_HOST_DEBUG is set).
    """

    def __init__(self, *, cache: bool | os.PathLike | str = True, debug: bool | None = None):
        config = wasmtime.Config()
        # Lets Ctrl-C stop a guest that is computing rather than waiting.
        config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)
        self.components = None
        if cache:
            directory = None if cache is True else Path(cache)
            self.components = ComponentCache(self.engine, "epoch_interruption", directory)
        self.debug = debug
        self._loaded: dict[str, _Loaded] = {}

    def load(self, path: str) -> wc.Component:
        try:
            mtime_ns = os.stat(path).st_mtime_ns
            loaded = self._loaded.get(path)
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
        try:
            if self.components is not None:
                component = self.components.load(path)
            else:
                component = wc.Component.from_file(self.engine, path)
        except wasmtime.WasmtimeError as error:
            raise HostError(f"{path} is not a valid component: {error}") from None
        self._loaded[path] = _Loaded(mtime_ns, component)
        return component

    def run(self, component: wc.Component | str, args: list[str] | None = None,
            env: dict[str, str] | None = None, *, config: HostConfig | None = None) -> int:
        """Run the component's `wasi:cli/run` export; return its exit status.

        `args` (argv, program name first) and `env` override those of
        `config`; everything else the guest may do comes from `config`.
        """
        config = replace(config or HostConfig(),
                         **({"args": list(args)} if args is not None else {}),
                         **({"env": dict(env)} if env is not None else {}))
        if isinstance(component, str):
            path = component
            component = self.load(component)
        else:
            path = "the component"
        # Only what the component imports: a guest without TLS never loads it.
        interfaces = registry.load(registry.imported_by(component.type.imports(self.engine)))
        store = wasmtime.Store(self.engine)
        store.set_epoch_deadline(1)
        ctx = WasiCtx(config, debug=self.debug)
        linker = wc.Linker(self.engine)
        try:
            add_to_linker(linker, ctx, interfaces)
            instance = instantiate(linker, store, component, path, interfaces, self.engine)
            run = exported_function(store, instance, self.engine, component, "wasi:cli/run",
                                    "run")
            if run is None:
                raise HostError(f"{path} does not export wasi:cli/run; it is not a command "
                                "component.")
            try:
                with _sigint_stops(self.engine):
                    outcome = run(store)
                    run.post_return(store)
            except wasmtime.WasmtimeError as trap:
                # wasmtime-py keeps the error in a frame of its own, which its
                # traceback holds (a cycle); dropping the traceback lets this
                # frame, the context and its wasmtime handles go now rather
                # than at a collection during interpreter shutdown.
                trap.__traceback__ = None
                if INTERRUPTS.requested:
                    raise KeyboardInterrupt from None
                if ctx.interrupted is not None:
                    raise ctx.interrupted from None
                if ctx.exit_code is not None:
                    return ctx.exit_code
                # A host defect is reported as its own line, without the
                # guest's backtrace that wasmtime appends.
                raise GuestTrap(ctx.host_bug or str(trap)) from None
            return 0 if _is_ok(outcome) else 1
        finally:
            ctx.close()
            linker.close()

    def serve(self, component: wc.Component | str, *, config: HostConfig | None = None,
              settings: ServeSettings | None = None,
              listener: socket.socket | None = None) -> HttpServer:
        """Serve the component's `wasi:http/incoming-handler` over HTTP/1.1, or
        HTTPS when `config.tls` has identities; see `http.serve`.

        Returns once the server listens (on `listener` if given, else where
        `settings` say), with the server running on threads of its own: its
        `port` and `url` say where, `close()` stops it. Every request runs in
        a fresh instance granted what `config` grants (with an empty stdin
        unless it names one). Raises HostError when the component cannot be
        served or the address cannot be had, ValueError for settings that
        cannot work together.
        """
        from .http.serve import GuestHandler, HttpServer, ServeSettings, listen
        config = config or HostConfig()
        if config.stdin is None:
            config = replace(config, stdin=io.BytesIO())
        settings = settings or ServeSettings()
        tls = settings.tls(config)
        if isinstance(component, str):
            path = component
            component = self.load(component)
        else:
            path = "the component"
        handler = GuestHandler(self, component, config, path)
        handler.check()
        if listener is None:
            try:
                listener = listen(settings.host, settings.port)
            except OSError as error:
                raise HostError(f"cannot listen on {settings.host}:{settings.port}: "
                                f"{error.strerror or error}") from None
        return HttpServer(handler, listener, tls=tls, settings=settings, stop_guests=handler.stop)


@contextlib.contextmanager
def _sigint_stops(engine: wasmtime.Engine) -> Iterator[None]:
    """While the guest runs, Ctrl-C wakes any wait in the poll loop and
    trips the engine's epoch, instead of raising KeyboardInterrupt inside a
    host call (where it cannot be delivered safely)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    INTERRUPTS.arm()

    def on_sigint(signum: int, frame: object) -> None:
        INTERRUPTS.request()
        engine.increment_epoch()
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class GuestTrap(Exception):
    """The guest trapped; the message has wasmtime's backtrace, or is the one
    line naming the host function that failed."""


def _is_ok(outcome: object) -> bool:
    return getattr(outcome, "tag", "ok") == "ok"


def instantiate(linker: wc.Linker, store: wasmtime.Store, component: wc.Component, path: str,
                interfaces: list[Interface], engine: wasmtime.Engine) -> wc.Instance:
    """Instantiate `component` (found at `path`, for messages) with the host's
    `interfaces` in `linker`; HostError saying what is missing when it cannot be."""
    try:
        return linker.instantiate(store, component)
    except wasmtime.WasmtimeError as error:
        error.__traceback__ = None  # see Host.run
        # Only now pay for walking the import types, to say what is missing.
        missing = missing_imports(engine, component, interfaces)
        if missing:
            raise HostError(
                f"{path} imports {', '.join(missing)}, which this host does not "
                f"provide. It provides {registry.summary()}; rebuild the guest "
                "against those interfaces.") from None
        raise HostError(f"cannot instantiate {path}: {error}") from None
