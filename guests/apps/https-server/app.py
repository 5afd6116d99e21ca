"""https-server HOST:PORT [--requests N] [--client-auth request|require] [--alpn IDS]
                [--idle-timeout SECONDS]

An HTTPS server on h11 over wasi-tls-host:tls, with the identities the
operator provisioned (`wasi-tls-host run --identity NAME=CERT,KEY ...`).
Each ClientHello is read before anything is sent: when the client asks for a
server name that is also the name of a provisioned identity, that identity
is served; otherwise the host picks among all of them. ALPN accepts the
comma-separated IDS (default `http/1.1`). --client-auth asks every client for
a certificate in the handshake (the host verifies it against --client-ca);
`require` refuses a client without one.

It prints `listening on HOST:PORT`, then answers every GET with 200 and a
plain-text page of what the connection settled:

    path: /
    server name: a.example          (the SNI the client sent, or none)
    alpn: http/1.1                  (or none)
    protocol: TLSv1.3
    cipher suite: 0x1302
    client certificate: sha256:<hex of the leaf>   (or none)

and logs one line per request on stdout with the same facts. GET /secure
from a client that sent no certificate asks for one after the handshake
(TLS 1.3 post-handshake authentication) and answers 403 if it still has
none (or, on TLS 1.2, cannot be asked). After N requests (if given) it exits
0. Every connection runs as a task; all of them wait in one poll.

A connection must bring each request head complete within --idle-timeout
seconds (default 30) of the handshake or of the previous response, and
then no part of a request body may be more than that long in coming;
otherwise it is closed, with `connection N: closed: ...` on stderr.
"""

import h11
from wit_world import exports

from wasi_guest import Timeout, cli, net, tasks, tls

USAGE = ("usage: https-server HOST:PORT [--requests N] [--client-auth request|require] "
         "[--alpn IDS] [--idle-timeout SECONDS]")


REASONS = {200: b"OK", 403: b"Forbidden"}


class Server:
    def __init__(self, listener, identities, alpn, client_auth, max_requests, idle_timeout):
        self.listener = listener
        self.identities = identities
        self.alpn = alpn
        self.client_auth = client_auth
        self.max_requests = max_requests
        self.idle_timeout = idle_timeout
        self.requests = 0
        self.runner = tasks.Runner()

    def done(self):
        return self.max_requests is not None and self.requests >= self.max_requests

    def accept_loop(self):
        number = 0
        while True:
            tcp = yield from net.accept_task(self.listener)
            if tcp is None:
                return  # the host closed the listener (SIGTERM): drain
            number += 1
            self.runner.spawn(self.serve(tcp, number), on_error=lambda error, n=number: cli.eprint(
                f"connection {n}: error: {error}"))

    def choose(self, hello, identities, alpn):
        """Serve the identity named like the server name the client asked for."""
        named = self.identities.get(hello.server_name)
        return ([named] if named is not None else identities), alpn

    def serve(self, tcp, number):
        conn = yield from tls.accept_task(tcp, list(self.identities.values()), alpn=self.alpn,
                                          choose=self.choose, client_auth=self.client_auth,
                                          idle_timeout=self.idle_timeout)
        try:
            http = h11.Connection(h11.SERVER)
            head_due = tasks.deadline_in(self.idle_timeout)
            while True:
                event = http.next_event()
                if event is h11.NEED_DATA:
                    # The head has one deadline as a whole (a trickle of bytes cannot
                    # keep a connection); a body, the idle timeout for each read.
                    waiting_for_head = http.their_state is h11.IDLE
                    try:
                        data = yield from conn.read_task(
                            deadline=head_due if waiting_for_head else None)
                    except Timeout:
                        cli.eprint(f"connection {number}: closed: " + (
                            f"no complete request head within {self.idle_timeout:g} s"
                            if waiting_for_head else f"idle for {self.idle_timeout:g} s"))
                        break
                    http.receive_data(data)
                    continue
                if isinstance(event, h11.ConnectionClosed):
                    break
                if isinstance(event, h11.Request):
                    yield from self.answer(conn, http, event)
                if http.our_state is h11.MUST_CLOSE or http.their_state is h11.MUST_CLOSE:
                    break
                if http.our_state is h11.DONE and http.their_state is h11.DONE:
                    http.start_next_cycle()
                    head_due = tasks.deadline_in(self.idle_timeout)
        finally:
            conn.close()

    def answer(self, conn, http, request):
        details = conn.details()
        path = request.target.decode("latin-1")
        client = details["peer_chain"]
        status = 200
        if path == "/secure" and client is None:
            try:
                client = yield from conn.request_client_certificate_task()
            except tls.TlsError as e:  # TLS 1.2, or a client that cannot be asked
                cli.eprint(f"/secure: {e}")
            status = 200 if client is not None else 403
        facts = [("path", path), ("server name", details["server_name"] or "none"),
                 ("alpn", details["alpn"] or "none"), *tls.negotiated(details),
                 ("client certificate", tls.fingerprint(client))]
        body = cli.facts_text(facts).encode()
        self.requests += 1
        print(f"{request.method.decode()} {status} "
              + " ".join(f"{name.replace(' ', '-')}={value}" for name, value in facts[:-1])
              + f" client={tls.fingerprint(client)}", flush=True)
        data = http.send(h11.Response(status_code=status, reason=REASONS[status], headers=[
            ("content-type", "text/plain"), ("content-length", str(len(body)))]))
        data += http.send(h11.Data(data=body)) + http.send(h11.EndOfMessage())
        yield from conn.write_all_task(data)
        if self.done():
            self.runner.stop()


def main(argv) -> int:
    argv, options = cli.split_options(argv, ("--requests", "--client-auth", "--alpn",
                                             "--idle-timeout"))
    if len(argv) != 1 or options.get("--client-auth", "request") not in ("request", "require"):
        raise ValueError(USAGE)
    requests = options.get("--requests")
    max_requests = cli.number(requests, "--requests", minimum=1) if requests else None
    idle_timeout = cli.number(options.get("--idle-timeout", tls.IDLE_TIMEOUT_S),
                              "--idle-timeout", minimum=1, kind=float)
    tls.preopened_identity()  # one at least, or a clear error
    listener = net.listen_tcp(argv[0])
    server = Server(listener, tls.preopened_identities(),
                    options.get("--alpn", "http/1.1").split(","), options.get("--client-auth"),
                    max_requests, idle_timeout)
    print(f"listening on {net.local_address(listener)}", flush=True)
    server.runner.spawn(server.accept_loop(), fatal=True)
    server.runner.run()
    return 0


class Run(exports.Run):
    def run(self) -> None:
        cli.run(main)
