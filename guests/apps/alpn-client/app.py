"""alpn-client HOST:PORT [SERVER_NAME] [--offer IDS]

Connects through the full wasi-tls-host:tls client offering the ALPN ids
IDS (comma-separated, most preferred first; default `h2,http/1.1`) and
prints what was negotiated:

    alpn: h2                 (or none, when the server chose nothing)
    protocol: TLSv1.3
    cipher suite: 0x1302

Exit 0 on success; on failure `error: <message>` on stderr and exit 1.
"""

from wit_world import exports

from wasi_guest import cli, net, tls

USAGE = "usage: alpn-client HOST:PORT [SERVER_NAME] [--offer IDS]"


def main(argv) -> int:
    argv, options = cli.split_options(argv, ("--offer",))
    if not 1 <= len(argv) <= 2:
        raise ValueError(USAGE)
    host, port = net.split_host_port(argv[0])
    offer = options.get("--offer", "h2,http/1.1").split(",")
    with tls.connect_tls(host, port, argv[1] if len(argv) > 1 else host, alpn=offer) as conn:
        details = conn.details()
    print(cli.facts_text([("alpn", details["alpn"] or "none"), *tls.negotiated(details)]),
          end="")
    return 0


class Run(exports.Run):
    def run(self) -> None:
        cli.run(main)
