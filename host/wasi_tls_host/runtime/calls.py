"""The call layer between wasmtime-py and the interface modules.

Interface modules declare their functions on an `Interface`; `link` puts
them into a wasmtime-py component linker behind one C trampoline. For each
call the trampoline:

* lifts every argument with a codec compiled once from the declared type,
  resolving each handle to its host object (which also ends every borrow,
  including borrows inside lists), then frees the argument cells;
* runs the implementation as `impl(ctx, *args)`;
* lowers the result from its declared type (an `ErrorValue` raised by the
  implementation becomes the `err` case of the top-level result);
* turns guest misuse into a trap that names the function, and `GuestExit`
  into an exit recorded on the context;
* turns any other exception (a host defect) into a trap whose one-line
  message names the function and the error, so that nothing a guest does
  can take the host process down.
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import wasmtime
from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime import component as wc

from . import capi, codec
from .errors import ErrorValue, GuestExit, Interrupted, Trap
from .poll import StopSwitch
from .table import TableError
from .values import Err

if TYPE_CHECKING:
    from .context import WasiCtx

Impl = Callable[..., Any]


@dataclass
class Interface:
    """One WIT interface as the host provides it: resources and functions."""

    name: str
    resources: dict[str, int] = field(default_factory=dict)
    functions: dict[str, Impl] = field(default_factory=dict)

    def resource(self, wit_name: str, type_id: int) -> None:
        self.resources[wit_name] = type_id

    def func(self, wit_name: str) -> Callable[[Impl], Impl]:
        def register(impl: Impl) -> Impl:
            self.functions[wit_name] = impl
            return impl
        return register

    @property
    def unversioned(self) -> str:
        return self.name.split("@", 1)[0]


#: A function's lifts, its result's lower (None without a result), and
#: whether the result is a WIT result (an ErrorValue becomes its err case).
Codecs = tuple[list[codec.Lift], codec.Lower | None, bool]
#: Compiled codecs by (qualified function name, the function type wasmtime
#: hands the trampoline, which lives as long as the component).
_CODECS: dict[tuple[str, int], Codecs] = {}


class HostFunction:
    """One host function bound to a context. The first call compiles its
    lifting and lowering from the declared type into `call`, specialised by
    the number of parameters (a call of none or one builds no argument list)."""

    def __init__(self, ctx: WasiCtx, qualified_name: str, impl: Impl):
        self.ctx = ctx
        self.name = qualified_name
        self.impl = impl
        self.scope = codec.CallScope(None, ctx.table)
        self.call: Callable[[Any, int, Any, Any], None] = self._first_call

    def _first_call(self, context: Any, ty_ptr: int, args: Any, results: Any) -> None:
        self.call = self._specialise(ty_ptr)
        self.call(context, ty_ptr, args, results)

    def _specialise(self, ty_ptr: int) -> Callable[[Any, int, Any, Any], None]:
        lifts, lower, returns_result = self._codecs(ty_ptr)
        impl, ctx, scope = self.impl, self.ctx, self.scope

        def finish(error: ErrorValue) -> Err:
            if not returns_result:
                raise error
            return Err(error.payload)

        if not lifts:
            def call(context: Any, ty_ptr: int, args: Any, results: Any) -> None:
                scope.context = context
                try:
                    value = impl(ctx)
                except ErrorValue as error:
                    value = finish(error)
                if lower is not None:
                    lower(scope, value, results[0])
        elif len(lifts) == 1:
            lift = lifts[0]

            def call(context: Any, ty_ptr: int, args: Any, results: Any) -> None:
                scope.context = context
                argument = lift(scope, args[0])
                try:
                    value = impl(ctx, argument)
                except ErrorValue as error:
                    value = finish(error)
                if lower is not None:
                    lower(scope, value, results[0])
        else:
            def call(context: Any, ty_ptr: int, args: Any, results: Any) -> None:
                scope.context = context
                # wasmtime frees the argument cells after the call; lifting copies.
                values = [lift(scope, args[i]) for i, lift in enumerate(lifts)]
                try:
                    value = impl(ctx, *values)
                except ErrorValue as error:
                    value = finish(error)
                if lower is not None:
                    lower(scope, value, results[0])
        return call

    def _codecs(self, ty_ptr: int) -> Codecs:
        """The function's lifts and lower, compiled once for every store: they
        depend only on its type (resource types are the host's, alike in each
        context), and a server makes a store per request."""
        key = (self.name, ty_ptr)
        codecs = _CODECS.get(key)
        if codecs is None:
            fty = wc.FuncType._from_ptr(
                ctypes.cast(ty_ptr, ctypes.POINTER(ffi.wasmtime_component_func_type_t)),
                owner=self)
            result_ty = fty.result
            codecs = _CODECS[key] = (
                [codec.lifter(pty) for _, pty in fty.params],
                codec.lowerer(result_ty, self.ctx.resource_id) if result_ty is not None else None,
                isinstance(result_ty, wc.ResultType))
        return codecs

    def invoke(self, context: Any, ty_ptr: int, args: Any, results: Any) -> int:
        try:
            self.call(context, ty_ptr, args, results)
            return 0
        except GuestExit as exit_request:
            self.ctx.exit_code = exit_request.code
            return _error(str(exit_request))
        except (Trap, TableError) as misuse:
            return _error(f"{self.name}: {misuse}")
        except Interrupted as stop:
            return _error(f"{self.name}: the guest was stopped ({stop})")
        except Exception as bug:  # a host defect must not take the process down
            return _error(self.ctx.record_host_bug(self.name, bug))
        except BaseException as interrupt:
            # Ctrl-C (or SystemExit) must not escape a ctypes callback: that
            # leaves the result unwritten. Unwind the guest instead; the
            # runner re-raises it once wasmtime has returned.
            self.ctx.interrupted = interrupt
            return _error(f"{self.name}: interrupted")


class Destructor:
    """What runs when the guest drops a handle of one resource type: the
    object leaves the table and is closed. Guarded like a host function;
    `name` (`interface#[resource-drop]resource`) is what its traps name."""

    def __init__(self, ctx: WasiCtx, type_id: int, name: str):
        self.ctx = ctx
        self.type_id = type_id
        self.name = name
        self._delete = ctx.table.delete

    def invoke(self, rep: int) -> int:
        try:
            close = getattr(self._delete(rep, self.type_id), "close", None)
            if close is not None:
                close()
            return 0
        except TableError as misuse:
            return _error(f"{self.name}: {misuse}")
        except Exception as bug:
            return _error(self.ctx.record_host_bug(self.name, bug))
        except BaseException as interrupt:  # see HostFunction.invoke
            self.ctx.interrupted = interrupt
            return _error(f"{self.name}: interrupted")


def _error(message: str) -> int:
    return ctypes.cast(WasmtimeError(message)._consume(), ctypes.c_void_p).value or 0


#: What the C callbacks dispatch to, by the data word wasmtime hands back: the
#: `invoke` of a HostFunction, Destructor or EpochWatch, each called by its
#: own trampoline with that callback's arguments.
_CALLBACKS: dict[int, Callable[..., int]] = {}
#: Ids for `_CALLBACKS`; `next` on it is atomic, and guests link on several threads.
_callback_ids = itertools.count(1)


@capi.HostFunctionCallback
def _trampoline(data, context, ty, args, nargs, results, nresults):
    return _CALLBACKS[data](context, ty, args, results)


@capi.DestructorCallback
def _destructor(data, context, rep):
    return _CALLBACKS[data](rep)


@capi.Finalizer
def _forget(data):
    _CALLBACKS.pop(data, None)


class EpochWatch:
    """What one store does at each tick of the engine's epoch: trap once its
    guest's stop switch has a reason, otherwise run on to the next tick. So
    bumping the epoch stops only the guests that were asked to stop."""

    def __init__(self, switch: StopSwitch):
        self.switch = switch

    def invoke(self, next_deadline: Any, action: Any) -> int:
        if self.switch.reason is not None:
            return _error(f"the guest was stopped ({self.switch.reason})")
        next_deadline[0] = 1
        action[0] = capi.EPOCH_DEADLINE_CONTINUE
        return 0


@capi.EpochDeadlineCallback
def _epoch_deadline(context, data, next_deadline, action):
    return _CALLBACKS[data](next_deadline, action)


def stop_on_epoch(store: wasmtime.Store, switch: StopSwitch) -> None:
    """Let `switch` stop the guest in `store` when the engine's epoch is bumped."""
    store.set_epoch_deadline(1)
    watch = EpochWatch(switch)
    capi.store_epoch_deadline_callback(ctypes.cast(store.ptr(), ctypes.c_void_p).value,
                                       _epoch_deadline, _register(watch.invoke), _forget)


def _register(callback: Callable[..., int]) -> int:
    callback_id = next(_callback_ids)
    _CALLBACKS[callback_id] = callback
    return callback_id


def check_error(error: int | None) -> None:
    """Raise the WasmtimeError a C API call or callback returned, if any."""
    if error:
        raise capi.error_from(error)


def link(root: wc.LinkerInstance, ctx: WasiCtx, interfaces: list[Interface]) -> None:
    """Define `interfaces` under `root`, bound to `ctx`."""
    for interface in interfaces:
        with root.add_instance(interface.name) as instance:
            for wit_name, type_id in interface.resources.items():
                name = wit_name.encode()
                destructor = Destructor(ctx, type_id,
                                        f"{interface.name}#[resource-drop]{wit_name}")
                check_error(capi.linker_instance_add_resource(
                    instance.ptr(), name, len(name), ctx.resource_type(type_id).ptr(),
                    _destructor, _register(destructor.invoke), _forget))
            for wit_name, impl in interface.functions.items():
                name = wit_name.encode()
                function = HostFunction(ctx, f"{interface.name}#{wit_name}", impl)
                check_error(capi.linker_instance_add_func(
                    instance.ptr(), name, len(name), _trampoline, _register(function.invoke),
                    _forget))


#: The WASI 0.2 version the host defines; guests importing any 0.2.x link to it.
WASI_VERSION = "0.2.9"
