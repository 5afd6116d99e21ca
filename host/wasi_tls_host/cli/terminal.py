"""wasi:cli/terminal-*: the host never presents a terminal to the guest."""

from __future__ import annotations

from ..runtime.calls import WASI_VERSION, Interface
from ..runtime.resources import Res

terminal_input = Interface(f"wasi:cli/terminal-input@{WASI_VERSION}")
terminal_input.resource("terminal-input", Res.TERMINAL_INPUT)
terminal_output = Interface(f"wasi:cli/terminal-output@{WASI_VERSION}")
terminal_output.resource("terminal-output", Res.TERMINAL_OUTPUT)

interfaces = [terminal_input, terminal_output]

for _stream, _resource, _res in (("stdin", "terminal-input", Res.TERMINAL_INPUT),
                                 ("stdout", "terminal-output", Res.TERMINAL_OUTPUT),
                                 ("stderr", "terminal-output", Res.TERMINAL_OUTPUT)):
    _interface = Interface(f"wasi:cli/terminal-{_stream}@{WASI_VERSION}")
    _interface.resource(_resource, _res)
    _interface.func(f"get-terminal-{_stream}")(lambda ctx: None)
    interfaces.append(_interface)
