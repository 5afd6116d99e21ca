"""conformance-draft CASE ARGS...: the cases for the full client + server draft,
wasi-tls-host:tls/tls@0.1.0 and its preopened identities, one per run (see
conformance_kit for the result line).

World `tls-full-client`. The cases use the generated bindings directly, so
they test the interface and nothing between it and them.
"""

import sys

import conformance_kit
import draft_client_cases  # noqa: F401 - registers its cases
import draft_server_cases  # noqa: F401 - registers its cases
from wit_world import exports


class Run(exports.Run):
    def run(self) -> None:
        conformance_kit.main(sys.argv[1:])
