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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime import component as wc

from . import codec
from .errors import ErrorValue, GuestExit, Interrupted, Trap
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


@dataclass
class _Signature:
    params: list[codec.Lift]
    result: codec.Lower | None
    returns_result: bool


class HostFunction:
    def __init__(self, ctx: WasiCtx, qualified_name: str, impl: Impl):
        self.ctx = ctx
        self.name = qualified_name
        self.impl = impl
        self.signature: _Signature | None = None

    def _compile(self, ty_ptr: Any) -> _Signature:
        fty = wc.FuncType._from_ptr(ty_ptr, owner=self)
        params = [codec.lifter(pty) for _, pty in fty.params]
        result_ty = fty.result
        result = codec.lowerer(result_ty, self.ctx.resource_id) if result_ty is not None else None
        return _Signature(params, result, isinstance(result_ty, wc.ResultType))

    def invoke(self, context: Any, ty_ptr: Any, args: Any, results: Any) -> int:
        try:
            if self.signature is None:
                self.signature = self._compile(ty_ptr)
            sig = self.signature
            scope = codec.CallScope(context, self.ctx.table)
            # wasmtime frees the argument cells after the call; lifting copies.
            values = [lift(scope, args[i]) for i, lift in enumerate(sig.params)]
            try:
                value = self.impl(self.ctx, *values)
            except ErrorValue as error:
                if not sig.returns_result:
                    raise
                value = Err(error.payload)
            if sig.result is not None:
                sig.result(scope, value, results[0])
            return 0
        except GuestExit as exit_request:
            self.ctx.exit_code = exit_request.code
            return _error(str(exit_request))
        except (Trap, TableError) as misuse:
            return _error(f"{self.name}: {misuse}")
        except Interrupted:
            return _error(f"{self.name}: interrupted")
        except Exception as bug:  # a host defect must not take the process down
            return _error(self.ctx.record_host_bug(self.name, bug))
        except BaseException as interrupt:
            # Ctrl-C (or SystemExit) must not escape a ctypes callback: that
            # leaves the result unwritten. Unwind the guest instead; the
            # runner re-raises it once wasmtime has returned.
            self.ctx.interrupted = interrupt
            return _error(f"{self.name}: interrupted")


def _error(message: str) -> int:
    return ctypes.cast(WasmtimeError(message)._consume(), ctypes.c_void_p).value or 0


_FUNCTIONS: dict[int, HostFunction] = {}
_next_function_id = 1


@ffi.wasmtime_component_func_callback_t
def _trampoline(data, context, ty, args, nargs, results, nresults):  # type: ignore[no-untyped-def]
    return _FUNCTIONS[data].invoke(context, ty, args, results)


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def _forget(data):  # type: ignore[no-untyped-def]
    _FUNCTIONS.pop(data, None)


def _add_func(instance: wc.LinkerInstance, wit_name: str, function: HostFunction) -> None:
    global _next_function_id
    function_id = _next_function_id
    _next_function_id += 1
    _FUNCTIONS[function_id] = function
    name = wit_name.encode()
    error = ffi.wasmtime_component_linker_instance_add_func(
        instance.ptr(), ctypes.create_string_buffer(name), len(name),
        _trampoline, function_id, _forget)
    if error:
        raise WasmtimeError._from_ptr(error)


def link(root: wc.LinkerInstance, ctx: WasiCtx, interfaces: list[Interface]) -> None:
    """Define `interfaces` under `root`, bound to `ctx`."""
    for interface in interfaces:
        with root.add_instance(interface.name) as instance:
            for wit_name, type_id in interface.resources.items():
                destructor = f"{interface.name}#[resource-drop]{wit_name}"
                instance.add_resource(wit_name, ctx.resource_type(type_id),
                                      ctx.drop_resource(type_id, destructor))
            for wit_name, impl in interface.functions.items():
                qualified = f"{interface.name}#{wit_name}"
                _add_func(instance, wit_name, HostFunction(ctx, qualified, impl))


#: The WASI 0.2 version the host defines; guests importing any 0.2.x link to it.
WASI_VERSION = "0.2.9"
