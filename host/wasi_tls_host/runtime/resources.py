"""Host resource type ids, shared by every interface that names the type.

An interface that `use`s a resource from another interface must define it
again under the same `ResourceType.host(id)`, or instantiation fails with
"mismatched resource types"; keeping the ids in one place makes that hold.
"""

from enum import IntEnum


class Res(IntEnum):
    POLLABLE = 1
    IO_ERROR = 2
    INPUT_STREAM = 3
    OUTPUT_STREAM = 4
    DESCRIPTOR = 5
    DIRECTORY_ENTRY_STREAM = 6
    NETWORK = 7
    TCP_SOCKET = 8
    UDP_SOCKET = 9
    INCOMING_DATAGRAM_STREAM = 10
    OUTGOING_DATAGRAM_STREAM = 11
    RESOLVE_ADDRESS_STREAM = 12
    TERMINAL_INPUT = 13
    TERMINAL_OUTPUT = 14
    # wasi:tls/types (upstream)
    CLIENT_HANDSHAKE = 15
    CLIENT_CONNECTION = 16
    FUTURE_CLIENT_STREAMS = 17
    # wasi-tls-host:tls/tls (the full draft)
    TLS_PUBLIC_IDENTITY = 18
    TLS_PRIVATE_IDENTITY = 19
    TLS_CLIENT_CONNECTION = 20
    TLS_CLIENT_HANDSHAKE = 21
    TLS_SERVER_CONNECTION = 22
    TLS_SERVER_HANDSHAKE = 23
    TLS_CLIENT_HELLO = 24
    TLS_CLIENT_IDENTITY_REQUEST = 25
    TLS_FUTURE_STREAMS = 26
    TLS_FUTURE_CLIENT_HELLO = 27
    TLS_FUTURE_PUBLIC_IDENTITY = 28
    TLS_FUTURE_CLIENT_IDENTITY_REQUEST = 29
    # wasi:http/types
    HTTP_FIELDS = 30
    HTTP_INCOMING_REQUEST = 31
    HTTP_OUTGOING_REQUEST = 32
    HTTP_REQUEST_OPTIONS = 33
    HTTP_RESPONSE_OUTPARAM = 34
    HTTP_INCOMING_RESPONSE = 35
    HTTP_INCOMING_BODY = 36
    HTTP_FUTURE_TRAILERS = 37
    HTTP_OUTGOING_RESPONSE = 38
    HTTP_OUTGOING_BODY = 39
    HTTP_FUTURE_INCOMING_RESPONSE = 40
