"""wasi-tls-host:tls/preopens@0.1.0: the identities the operator provisioned.

Like `wasi:filesystem/preopens`, this hands the guest handles on things the
host opened for it: here private identities loaded from `--identity` (or
`TlsPolicy.identities`), whose keys therefore never pass through guest memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..runtime.calls import Interface
from ..runtime.resources import Res
from .tls import IdentityHandle

if TYPE_CHECKING:
    from ..runtime.context import WasiCtx

interface = Interface("wasi-tls-host:tls/preopens@0.1.0")
interface.resource("private-identity", Res.TLS_PRIVATE_IDENTITY)


@interface.func("get-identities")
def get_identities(ctx: WasiCtx) -> list[tuple[IdentityHandle, str]]:
    return [(IdentityHandle(identity), name)
            for name, identity in ctx.config.tls.identities.items()]
