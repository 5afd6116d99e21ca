"""The per-store context every host function receives as `ctx`."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Literal, Protocol, TextIO, cast

from wasmtime import component as wc

from ..config import HostConfig, Preopen
from ..tls.resumption import SessionCache
from . import background
from .errors import Interrupted
from .poll import StopSwitch, Waitable, finish_lingering, wait_any
from .resources import Res
from .streams import FileInput, FileOutput, InputStream, OutputStream
from .table import ResourceTable

if TYPE_CHECKING:
    from ..filesystem.sandbox import SharedFd


def _process_stream(stream: TextIO | None, mode: Literal["rb", "wb"]) -> BinaryIO:
    """The process's own stdio, or /dev/null when it was closed (`<&-`)."""
    if stream is None:
        return open(os.devnull, mode)  # noqa: SIM115 - lives as long as the process
    return stream.buffer


#: How long closing a context waits for data still being delivered.
LINGER_S = 10.0
#: Set to 1 to print the full traceback of every host defect.
DEBUG_VARIABLE = "WASI_TLS_HOST_DEBUG"


def debug_from_environment() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def debug_setting(debug: bool | None) -> bool:
    """`debug` as given, or when None, as $WASI_TLS_HOST_DEBUG says."""
    return debug_from_environment() if debug is None else debug


class Lingering(Waitable, Protocol):
    """Work a dropped resource left behind: waited on, and released at the end."""

    def close(self) -> None: ...


# -- per-interface state: what an interface keeps for the life of one store --------

@dataclass
class FilesystemState:
    #: The preopened directories, opened on the first `get-directories`
    #: (None until then), each with the host directory it was opened from.
    preopens: list[tuple[Preopen, SharedFd]] | None = None


@dataclass
class RandomState:
    #: The insecure seed, drawn on the first `insecure-seed` (None until then).
    insecure_seed: bytes | None = None


#: Names kept in `TlsState.accepted_server_names` at most (then it starts over).
ACCEPTED_SERVER_NAMES_MAX = 256


@dataclass
class TlsState:
    #: Server names OpenSSL took for this guest's TLS clients. Its verdict
    #: comes from a throwaway connection (tens of microseconds before a
    #: ClientHello can leave), so it is asked once per name and guest; kept
    #: per guest, so no guest can time what another connected to.
    accepted_server_names: set[str] = field(default_factory=set)
    #: Sessions this guest's clients may resume (`TlsPolicy.resume_sessions`):
    #: its own, never another guest's.
    sessions: SessionCache = field(default_factory=SessionCache)

    def accepted(self, server_name: str) -> None:
        if len(self.accepted_server_names) >= ACCEPTED_SERVER_NAMES_MAX:
            self.accepted_server_names.clear()
        self.accepted_server_names.add(server_name)


class WasiCtx:
    """`debug` prints the traceback of each host defect to stderr (by
    default, when $WASI_TLS_HOST_DEBUG is set); the trap message alone is
    one line either way."""

    def __init__(self, config: HostConfig, *, debug: bool | None = None):
        self.config = config
        self.debug = debug_setting(debug)
        self.table = ResourceTable()
        self.exit_code: int | None = None
        #: A KeyboardInterrupt (or other BaseException) caught in a host call.
        self.interrupted: BaseException | None = None
        #: The trap message of the first host defect, which ended the guest.
        self.host_bug: str | None = None
        self.now_ns = config.monotonic_ns
        self._resource_types = {res: wc.ResourceType.host(res) for res in Res}
        self.stdin: InputStream = FileInput(config.stdin or _process_stream(sys.stdin, "rb"))
        self.stdout: OutputStream = FileOutput(config.stdout or _process_stream(sys.stdout, "wb"))
        self.stderr: OutputStream = FileOutput(config.stderr or _process_stream(sys.stderr, "wb"))
        self.filesystem = FilesystemState()
        self.random = RandomState()
        self.tls = TlsState()
        #: Work a dropped resource left behind (a TLS goodbye still being
        #: sent); every wait moves it on, and `close` gives it time to end.
        #: Typed by what the poll loop needs; everything in it came through
        #: `linger`, so it can also be closed.
        self.lingering: list[Waitable] = []
        #: Ends the guest's waits when its run is stopped (set by the runner).
        self.stop: StopSwitch | None = None

    # -- resource types ----------------------------------------------------
    def resource_type(self, type_id: int) -> wc.ResourceType:
        return self._resource_types[Res(type_id)]

    def resource_id(self, resource_type: wc.ResourceType) -> int:
        for res, known in self._resource_types.items():
            if known == resource_type:
                return int(res)
        raise TypeError("a host function returns a resource type the host does not define")

    def record_host_bug(self, name: str, bug: Exception) -> str:
        """The one-line trap message for a defect in host function `name`."""
        message = f"{name}: internal host error: {bug!r}"
        if self.debug:
            print(f"wasi-tls-host: host error in {name}:", file=sys.stderr)
            import traceback
            traceback.print_exception(bug, file=sys.stderr)
        if self.host_bug is None:
            self.host_bug = message
        return message

    # -- waiting -----------------------------------------------------------
    def linger(self, work: Lingering) -> None:
        self.lingering.append(work)

    def wait_any(self, waitables: list[Waitable]) -> list[int]:
        return wait_any(self.now_ns, waitables, self.lingering, self.stop)

    def wait_for(self, waitable: Waitable) -> None:
        wait_any(self.now_ns, (waitable,), self.lingering, self.stop)

    def close(self, *, wait_for_background: bool = True) -> None:
        """Release everything the guest left open (sockets, files, TLS).
        `wait_for_background` also gives the process's background senders
        (`runtime.background`) time to finish, as a run's end does; a
        server's request, which shares the process, leaves them be."""
        for obj in self.table.drain():
            close = getattr(obj, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # closing is best effort once the guest is gone
                    pass
        for stream in (self.stdout, self.stderr):
            if (delivery := stream.leftover()) is not None:
                self.lingering.append(delivery)
        try:
            finish_lingering(self.now_ns, self.lingering, int(LINGER_S * 1e9), self.stop)
        except Interrupted:
            pass
        for work in self.lingering:
            cast(Lingering, work).close()  # out of time: release what it still holds
        self.lingering.clear()
        for stream in (self.stdout, self.stderr):
            stream.close()
        if wait_for_background:
            background.wait_all(LINGER_S)
