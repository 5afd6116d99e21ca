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

from wit_world import exports

from wasi_guest import NetError, cli, net

USAGE = "usage: name-lookup NAME..."


def main(argv) -> int:
    if not argv:
        cli.eprint(USAGE)
        return 1
    failures = 0
    for name in argv:
        try:
            addrs = [net.format_ip(ip) for ip in net.lookup(name)]
        except NetError as e:
            print(f"{name}: error {e.code}")
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
