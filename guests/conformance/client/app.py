"""conformance-client CASE ARGS...: the upstream wasi:tls client cases and the
WASI io and sockets cases, one per run (see conformance_kit for the result line).

World `tls-client`: standard WASI 0.2 plus wasi:tls/types@0.2.0-draft and
nothing else, so any host with the upstream wasi:tls client can run it.
"""

import sys

import conformance_kit
import tls_cases  # noqa: F401 - registers its cases
import wasi_cases  # noqa: F401 - registers its cases
from wit_world import exports


class Run(exports.Run):
    def run(self) -> None:
        conformance_kit.main(sys.argv[1:])
