"""The host under test, as a command template.

`{component}` and `{args}` are required; `{ca_file}` (a PEM file of the CA
that issued the peers' certificates), `{allow_net}` (the address the peers
use) and `{identity_args}` (`--identity NAME=CERT,KEY ... --client-ca PEM`,
as `wasi-tls-host run` takes them) are filled in where the template has them.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

#: Every peer of the suite listens on, and connects from, this address.
LOOPBACK = "127.0.0.1"
PLACEHOLDERS = ("{component}", "{args}", "{ca_file}", "{allow_net}", "{identity_args}")


class TemplateError(ValueError):
    """A host command template the runner cannot use."""


class HostTemplate:
    """A host command with placeholders, split like a shell would split it.

    `{args}` and `{identity_args}` stand alone and become several arguments;
    the others may sit inside an argument (`--ca-file={ca_file}`).
    """

    def __init__(self, text: str):
        self.text = text
        try:
            self.tokens = shlex.split(text)
        except ValueError as error:
            raise TemplateError(f"cannot split the host command: {error}") from None
        for required in ("{component}", "{args}"):
            if not self.has(required):
                raise TemplateError(f"the host command needs {required}")
        for token in self.tokens:
            for unknown in re.findall(r"\{[a-z_]*\}", token):
                if unknown not in PLACEHOLDERS:
                    raise TemplateError(f"unknown placeholder {unknown} (known: "
                                        f"{', '.join(PLACEHOLDERS)})")
        for alone in ("{args}", "{identity_args}"):
            if any(alone in token and token != alone for token in self.tokens):
                raise TemplateError(f"{alone} must be an argument of its own")

    def has(self, placeholder: str) -> bool:
        return any(placeholder in token for token in self.tokens)

    def command(self, *, component: Path, args: list[str], ca_file: Path,
                identity_args: list[str]) -> list[str]:
        command = []
        for token in self.tokens:
            if token == "{args}":
                command += args
            elif token == "{identity_args}":
                command += identity_args
            else:
                command.append(token.replace("{component}", str(component))
                               .replace("{ca_file}", str(ca_file))
                               .replace("{allow_net}", LOOPBACK))
        return command


def default_template(host_command: str) -> str:
    """This host: every placeholder given, and a handshake deadline short enough
    for the stall cases to end well inside their bound."""
    return (f"{shlex.quote(host_command)} run --ca-file {{ca_file}} --allow-net {{allow_net}} "
            "--tls-handshake-timeout 10 {identity_args} {component} {args}")
