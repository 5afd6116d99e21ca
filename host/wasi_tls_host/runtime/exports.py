"""Calling into the guest: finding an exported function, and handing it host
resources as `own<>` arguments.

The call layer (`calls`) lowers resources the host *returns* from its own
functions. A call the host makes into a guest export (such as
`wasi:http/incoming-handler.handle`, which takes an `own<incoming-request>`
and an `own<response-outparam>`) gives resources the other way: each goes
into the context's table like any resource a host function returns, and
the guest receives a handle on it. wasmtime-py lowers a
`wasmtime.component.ResourceHost` argument into an owned handle of that host
resource type, and the guest's drop then runs the table's destructor
(`calls.Destructor`), as for any other host resource.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import wasmtime
from wasmtime import component as wc

from .resources import Res

if TYPE_CHECKING:
    from .context import WasiCtx


def owned(ctx: WasiCtx, obj: object, res: Res) -> wc.ResourceHost:
    """`obj` as an `own<res>` argument of a call into the guest in `ctx`'s store."""
    return wc.ResourceHost.own(ctx.table.push(obj, res), int(res))


def exported_function(store: wasmtime.Store, instance: wc.Instance, engine: wasmtime.Engine,
                      component: wc.Component, interface: str, name: str) -> wc.Func | None:
    """The function `name` of the exported `interface` (unversioned, e.g.
    "wasi:cli/run"), whichever 0.2.x version the component exports; None
    when it exports no such function."""
    for export_name in component.type.exports(engine):
        if export_name.split("@")[0] != interface:
            continue
        index = instance.get_export_index(store, export_name)
        func_index = instance.get_export_index(store, name, index) if index is not None else None
        if func_index is not None:
            func = instance.get_func(store, func_index)
            if func is not None:
                return func
    return None
