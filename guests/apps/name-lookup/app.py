"""name-lookup NAME...

Resolves each NAME with wasi:sockets/ip-name-lookup (resolve-addresses, then
resolve-next-address, waiting on the stream's pollable while the host answers
would-block) and prints one line per name:

    NAME: ADDR ADDR ...        in the order the host returned them; IPv4
                               dotted, IPv6 compressed (RFC 5952)
    NAME: error <error-code>   e.g. name-unresolvable, invalid-argument

An empty answer is reported as `error name-unresolvable`.  Exit 0 if every
name resolved, else 1.
"""

import sys

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import ip_name_lookup, network, poll

from wasi_guest import cli, code_name, net

USAGE = "usage: name-lookup NAME..."


def lookup(name):
    """-> list of formatted addresses.  Raises Err(error-code)."""
    stream = ip_name_lookup.resolve_addresses(net.get_network(), name)
    out = []
    try:
        while True:
            try:
                ip = stream.resolve_next_address()
            except Err as e:
                if e.value != network.ErrorCode.WOULD_BLOCK:
                    raise
                p = stream.subscribe()
                try:
                    poll.poll([p])
                finally:
                    p.__exit__(None, None, None)
                continue
            if ip is None:
                return out
            out.append(net.format_ip(ip))
    finally:
        stream.__exit__(None, None, None)


def main(argv) -> int:
    if not argv:
        cli.eprint(USAGE)
        return 1
    failures = 0
    for name in argv:
        try:
            addrs = lookup(name)
        except Err as e:
            print(f"{name}: error {code_name(e.value)}")
            failures += 1
            continue
        if not addrs:
            print(f"{name}: error name-unresolvable")
            failures += 1
            continue
        print(f"{name}: {' '.join(addrs)}")
    return 0 if failures == 0 else 1


class Run(exports.Run):
    def run(self) -> None:
        cli.exit(main(sys.argv[1:]))
