"""The host under test, as command templates: one that runs a command
component, and one that serves an incoming handler.

The run template requires `{component}` and `{args}`; `{ca_file}` (a PEM file
of the CA that issued the peers' certificates), `{allow_net}` (the address
the peers use), `{identity_args}` (`--identity NAME=CERT,KEY ... --client-ca
PEM`, as `wasi-tls-host run` takes them) and `{http_identity_args}`
(`--http-client-identity HOST=CERT,KEY`) are filled in where the template has
them. The serve template requires `{component}` and `{addr}` (HOST:PORT to
listen on) and may have `{identity_args}`, which a plain-HTTP case leaves
empty.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

#: Every peer of the suite listens on, and connects from, this address.
LOOPBACK = "127.0.0.1"
PLACEHOLDERS = ("{component}", "{args}", "{ca_file}", "{allow_net}", "{identity_args}",
                "{http_identity_args}", "{addr}")
#: The placeholders that stand alone and become several arguments (or none).
EXPANDING = ("{args}", "{identity_args}", "{http_identity_args}")
RUN_REQUIRES = ("{component}", "{args}")
SERVE_REQUIRES = ("{component}", "{addr}")


class TemplateError(ValueError):
    """A host command template the runner cannot use."""


class HostTemplate:
    """A host command with placeholders, split like a shell would split it.

    `{args}`, `{identity_args}` and `{http_identity_args}` stand alone and
    become several arguments; the others may sit inside an argument
    (`--ca-file={ca_file}`).
    """

    def __init__(self, text: str, requires: tuple[str, ...] = RUN_REQUIRES):
        self.text = text
        try:
            self.tokens = shlex.split(text)
        except ValueError as error:
            raise TemplateError(f"cannot split the host command: {error}") from None
        for required in requires:
            if not self.has(required):
                raise TemplateError(f"the host command needs {required}")
        for token in self.tokens:
            for unknown in re.findall(r"\{[a-z_]*\}", token):
                if unknown not in PLACEHOLDERS:
                    raise TemplateError(f"unknown placeholder {unknown} (known: "
                                        f"{', '.join(PLACEHOLDERS)})")
        for alone in EXPANDING:
            if any(alone in token and token != alone for token in self.tokens):
                raise TemplateError(f"{alone} must be an argument of its own")

    def has(self, placeholder: str) -> bool:
        return any(placeholder in token for token in self.tokens)

    def command(self, *, component: Path, args: list[str], ca_file: Path,
                identity_args: list[str], http_identity_args: tuple[str, ...] | list[str] = (),
                addr: str = "") -> list[str]:
        expanded: dict[str, list[str] | tuple[str, ...]] = {
            "{args}": args, "{identity_args}": identity_args,
            "{http_identity_args}": http_identity_args}
        command: list[str] = []
        for token in self.tokens:
            if token in expanded:
                command += expanded[token]
            else:
                command.append(token.replace("{component}", str(component))
                               .replace("{ca_file}", str(ca_file))
                               .replace("{allow_net}", LOOPBACK).replace("{addr}", addr))
        return command


def default_template(host_command: str) -> str:
    """This host: every placeholder given, and a handshake deadline short enough
    for the stall cases to end well inside their bound."""
    return (f"{shlex.quote(host_command)} run --ca-file {{ca_file}} --allow-net {{allow_net}} "
            "--tls-handshake-timeout 10 {identity_args} {http_identity_args} {component} {args}")


def default_serve_template(host_command: str) -> str:
    """This host's `serve`: HTTPS with the suite's identities (and client
    certificates required, as --client-ca implies) when a case gives them."""
    return f"{shlex.quote(host_command)} serve --addr {{addr}} {{identity_args}} {{component}}"
