"""wasi:http/outgoing-handler: `handle` starts a `client.ClientExchange`.

A request that cannot be sent at all (no authority, an unsupported scheme,
an address outside --allow-net known without a lookup) is `handle`'s own
error; everything found later (names, connections, TLS, the response)
reaches the guest through the future's error-code.
"""

from __future__ import annotations

from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.futures import Future
from .client import ClientExchange
from .errors import HttpFailure
from .messages import OutgoingRequest, RequestOptions
from .types import RESOURCES

interface = Interface(f"wasi:http/outgoing-handler@{WASI_VERSION}")
for _name in ("outgoing-request", "request-options", "future-incoming-response"):
    interface.resource(_name, RESOURCES[_name])


@interface.func("handle")
def handle(ctx, request: OutgoingRequest, options: RequestOptions | None) -> Future:
    try:
        exchange = ClientExchange.start(ctx, request, options)
    except HttpFailure as failure:
        if request.body is not None:
            request.body.abort(failure)
        raise failure.error_value() from None
    return exchange.response_future()
