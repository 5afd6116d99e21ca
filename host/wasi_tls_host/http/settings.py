"""What `serve` can be told: where and how to serve, and the guards every
connection is held to. Kept apart from the server (`serve`, `server`) so
that the command line reads the defaults without loading it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import DEFAULT_GRACE, DEFAULT_MAX_CONNECTIONS

if TYPE_CHECKING:
    from ..config import HostConfig
    from .server import TlsServing

DEFAULT_PORT = 8080
#: Largest request head a server accepts by default (as nginx: 8 KiB lines, but
#: room for the large cookies and tokens of real clients).
DEFAULT_MAX_HEAD_SIZE = 64 * 1024
#: The smallest request head limit (a head with a few headers must fit).
MIN_HEAD_SIZE = 1024
#: Client certificate modes: never asked, asked for, or required.
CLIENT_AUTH_MODES = ("none", "request", "require")


@dataclass(frozen=True)
class ConnectionLimits:
    """The guards every connection a server accepts is held to: how long its
    request heads may take to arrive, how long it may idle (between
    requests, or in a body), and how large a head may be; see `server`."""

    head_timeout: float = 10.0
    idle_timeout: float = 30.0
    max_head_size: int = DEFAULT_MAX_HEAD_SIZE

    def __post_init__(self) -> None:
        for name in ("head_timeout", "idle_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0 seconds")
        if self.max_head_size < MIN_HEAD_SIZE:
            raise ValueError(f"max_head_size must be at least {MIN_HEAD_SIZE} bytes")


@dataclass(frozen=True)
class ServeSettings:
    """How a component is served (the guest's own grants are its HostConfig).

    HTTPS when the config's TLS policy has identities (SNI chooses among
    them); `client_auth` ("none", "request" or "require") asks for client
    certificates, checked against the policy's client CAs. `port` 0 picks
    a free port. `limits` are the guards each connection is held to.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    client_auth: str = "none"
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    grace: float = DEFAULT_GRACE

    def __post_init__(self) -> None:
        if self.client_auth not in CLIENT_AUTH_MODES:
            raise ValueError(f"client_auth must be one of {', '.join(CLIENT_AUTH_MODES)}, "
                             f"not {self.client_auth!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not a TCP port")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.grace < 0:
            raise ValueError("grace must be 0 seconds or more")

    def tls(self, config: HostConfig) -> TlsServing | None:
        """How the server speaks TLS, or None for plain HTTP. ValueError for
        settings that cannot work together."""
        from .server import TlsServing
        policy = config.tls
        if not policy.identities:
            if self.client_auth != "none":
                raise ValueError("client certificates need HTTPS: give an identity to serve")
            return None
        if self.client_auth != "none" and not policy.client_ca_files:
            raise ValueError("asking for client certificates needs the CAs that issue them "
                             "(client CA files)")
        return TlsServing(policy, self.client_auth)
