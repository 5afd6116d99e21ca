"""tls-echo-server HOST:PORT [MAX_CONNECTIONS] [--identity NAME] [--idle-timeout SECONDS]

Listens on HOST:PORT (port 0 picks a free port), prints `listening on
HOST:PORT` once ready, and serves TLS with an identity the operator
provisioned (`wasi-tls-host run --identity NAME=CERT,KEY`; the first one
unless --identity names another): every connection's handshake and its echo
run as tasks, all waiting in one poll. A connection ends when its client
closes (close_notify, or the end of the TCP stream); the server answers with
its own close_notify. With MAX_CONNECTIONS it exits 0 once that many have
ended, and prints `served N connections, M bytes`. A failed connection is
reported on stderr as `connection N: error: <message>` and does not stop the
others. A connection that sends nothing for --idle-timeout seconds (default
30) is closed, with `connection N: closed: idle for S s` on stderr.
"""


from wit_world import exports

from wasi_guest import Timeout, cli, net, tasks, tls

USAGE = ("usage: tls-echo-server HOST:PORT [MAX_CONNECTIONS] [--identity NAME] "
         "[--idle-timeout SECONDS]")


class Server:
    def __init__(self, listener, identity, max_connections, idle_timeout):
        self.listener = listener
        self.identity = identity
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.runner = tasks.Runner()
        self.accepted = 0
        self.ended = 0
        self.echoed = 0

    def serve(self):
        self.runner.spawn(self.accept_loop(), fatal=True)
        self.runner.run()

    def accept_loop(self):
        while self.max_connections is None or self.accepted < self.max_connections:
            tcp = yield from net.accept_task(self.listener)
            if tcp is None:
                return  # the host closed the listener (SIGTERM): drain
            self.accepted += 1
            number = self.accepted
            self.runner.spawn(self.echo(tcp, number),
                              on_error=lambda error, n=number: self.failed(n, error))

    def echo(self, tcp, number):
        conn = yield from tls.accept_task(tcp, [self.identity], idle_timeout=self.idle_timeout)
        try:
            while data := (yield from conn.read_task()):
                yield from conn.write_all_task(data)
                self.echoed += len(data)
        except Timeout:
            cli.eprint(f"connection {number}: closed: idle for {self.idle_timeout:g} s")
        finally:
            conn.close()
        self.ended += 1

    def failed(self, number, error):
        self.ended += 1
        cli.eprint(f"connection {number}: error: {error}")


def main(argv) -> int:
    argv, options = cli.split_options(argv, ("--identity", "--idle-timeout"))
    if not 1 <= len(argv) <= 2:
        raise ValueError(USAGE)
    max_connections = cli.number(argv[1], "MAX_CONNECTIONS", minimum=1) if len(argv) > 1 else None
    idle_timeout = cli.number(options.get("--idle-timeout", tls.IDLE_TIMEOUT_S),
                              "--idle-timeout", minimum=1, kind=float)
    identity = tls.preopened_identity(options.get("--identity"))
    listener = net.listen_tcp(argv[0])
    print(f"listening on {net.local_address(listener)}", flush=True)
    server = Server(listener, identity, max_connections, idle_timeout)
    server.serve()
    print(f"served {server.ended} connections, {server.echoed} bytes")
    return 0


class Run(exports.Run):
    def run(self) -> None:
        cli.run(main)
