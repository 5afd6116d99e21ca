"""wasi:http 0.2 for the host: HTTP/1.1 on h11 over the host's TCP and TLS.

One module per WIT interface (`types`, `outgoing_handler`) keeps the table
from WIT names to host objects; the objects live in `fields`, `messages`
and `bodies`; `h1` speaks HTTP/1.1 for either role over any pair of host
streams; `client` carries an outgoing request over a connection of its
own; `errors` decides which `error-code` every failure is.
"""
