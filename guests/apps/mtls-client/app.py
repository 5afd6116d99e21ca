"""mtls-client HOST:PORT [SERVER_NAME] [--identity NAME] [--message TEXT] [--reject-server]
              [--alpn IDS] [--repeat N]

A TLS client with a client certificate, through the full wasi-tls-host:tls
client: it stops once the host has verified the server's chain (and prints
its fingerprint), answers the server's certificate request with an identity
the operator provisioned (`--identity NAME=CERT,KEY` on the host; the first
one unless --identity names another; the key never enters the guest), sends
TEXT (default `hello`) and a newline, and prints the first line that comes
back. Then it prints what the handshake settled:

    server certificate: sha256:<hex>
    reply: <the line the server sent back>
    client certificate sent: sha256:<hex>   (or none, if the server never asked)
    protocol: TLSv1.3
    cipher suite: 0x1302

With --alpn it offers the ALPN ids IDS (comma-separated) and reports the one
the server chose (`alpn: ID`, or `alpn: none`) after the cipher suite. With
--repeat it does all of it N times (default 1), one connection after the
other, each reported as above (repeat connections in one run, for the
host's session resumption).

With --reject-server the verify hook refuses the server's certificate once
it has been shown: the handshake is aborted (the server gets an alert and no
application data) and the guest exits 1.

Exit 0 on success; on failure `error: <message>` on stderr and exit 1.
"""

from wit_world import exports

from wasi_guest import cli, net, tls

USAGE = ("usage: mtls-client HOST:PORT [SERVER_NAME] [--identity NAME] [--message TEXT] "
         "[--reject-server] [--alpn IDS] [--repeat N]")


def main(argv) -> int:
    argv, options = cli.split_options(argv, ("--identity", "--message", "--alpn", "--repeat"),
                                      flags=("--reject-server",))
    if not 1 <= len(argv) <= 2:
        raise ValueError(USAGE)
    for _ in range(cli.number(options.get("--repeat", "1"), "--repeat", minimum=1)):
        connect(argv, options)
    return 0


def connect(argv, options):
    host, port = net.split_host_port(argv[0])
    identity = tls.preopened_identity(options.get("--identity"))
    alpn = options["--alpn"].split(",") if "--alpn" in options else ()

    def show_server(chain):
        print(f"server certificate: {tls.fingerprint(chain)}", flush=True)
        return "--reject-server" not in options
    conn = tls.connect_tls(host, port, argv[1] if len(argv) > 1 else host,
                           identity=identity, verify=show_server, alpn=alpn)
    with conn:
        conn.write_all(options.get("--message", "hello").encode() + b"\n")
        reply = bytearray()
        while b"\n" not in reply and (data := conn.read()):
            reply += data
        details = conn.details()
    first_line = bytes(reply).split(b"\n")[0].decode(errors="replace")
    print(cli.facts_text([("reply", first_line),
                          ("client certificate sent", tls.fingerprint(details["own_chain"])),
                          *tls.negotiated(details),
                          *([("alpn", details["alpn"] or "none")] if alpn else [])]), end="")


class Run(exports.Run):
    def run(self) -> None:
        cli.run(main)
