"""`wasi-tls-host serve`: the JavaScript handler (ComponentizeJS) and the
componentize-py handler (guests/apps/http-proxy) served through the installed
command, over HTTPS under both TLS versions and over plain HTTP: many
clients at once, client certificates, SNI, bodies streamed both ways, an
outgoing HTTPS request from the handler, handlers that trap or never
answer, and the same server through the Python API."""

from __future__ import annotations

import ssl
import threading
import time

import pytest
from http_peers import H11Server, body_bytes
from js_components import build_js_components
from serving import HttpClient, Served, get, pattern, random_chunks, sha256

from conftest import BUILD, ROOT

pytestmark = pytest.mark.js

HANDLERS = ("js", "python")


@pytest.fixture(scope="session")
def handlers(guests) -> dict[str, str]:
    """Both incoming handlers, by the language they are written in."""
    return {"js": str(build_js_components().handler), "python": str(guests["http-proxy"])}


@pytest.fixture(params=HANDLERS)
def handler(request, handlers) -> str:
    return handlers[request.param]


def identity_flag(leaf, name: str = "site") -> str:
    return f"{name}={leaf.cert_file},{leaf.key_file}"


@pytest.fixture
def https_server(pki, handler):
    served = Served(handler, "--identity", identity_flag(pki["localhost"]))
    yield served
    served.close()


def greeting_ok(reply) -> bool:
    return reply.status == 200 and reply.text.startswith("Hello from a")


def test_https_with_an_identity(https_server, pki, version):
    assert https_server.url.startswith("https://127.0.0.1:")
    context = pki.client_context(version)
    with HttpClient(https_server.port, context) as client:
        reply = client.request("GET", "/")
        assert greeting_ok(reply), reply
        assert client.sock.version() == f"TLSv{version}"
        # The connection is kept alive for the next request.
        reply = client.request("GET", "/bytes/100000")
    assert reply.status == 200
    assert reply.sha256 == sha256(pattern(100000))
    assert reply.headers["content-length"] == "100000"


def test_plain_http_without_identities(handler):
    served = Served(handler)
    try:
        assert served.url.startswith("http://127.0.0.1:")
        assert greeting_ok(get(served.port))
        reply = get(served.port, "/nothing-here")
        assert reply.status == 404
    finally:
        assert served.stop() == 0


def test_fifty_concurrent_clients(https_server, pki, version, handler, handlers):
    """50 clients at once, each on its own connection; the Python handler's
    /sleep route keeps each request in flight for a second, so served one
    after the other they would take 50 s."""
    context = pki.client_context(version)
    target = "/sleep/1000" if handler == handlers["python"] else "/bytes/20000"
    replies, failures = [], []
    start = threading.Barrier(50)

    def client() -> None:
        try:
            start.wait()
            replies.append(get(https_server.port, target, context))
        except Exception as error:  # reported below, with the others
            failures.append(error)

    began = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.monotonic() - began
    assert not failures, failures[:3]
    assert len(replies) == 50
    assert all(reply.status == 200 for reply in replies)
    if target.startswith("/bytes/"):
        assert {reply.sha256 for reply in replies} == {sha256(pattern(20000))}
    else:
        assert took < 25, f"50 one-second requests took {took:.1f} s: not served concurrently"


@pytest.mark.parametrize("mode", ["require", "request"])
def test_client_certificates(pki, handler, version, mode):
    served = Served(handler, "--identity", identity_flag(pki["localhost"]),
                    "--client-ca", str(pki.ca_file), "--client-auth", mode)
    try:
        with_certificate = pki.client_context(version, pki["client"])
        assert greeting_ok(get(served.port, "/", with_certificate))
        # A certificate from a CA the server does not trust is refused either way.
        stranger = pki.client_context(version, pki["stranger-client"])
        with pytest.raises(ssl.SSLError, match="UNKNOWN_CA"):
            get(served.port, "/", stranger)
        without = pki.client_context(version)
        if mode == "request":
            assert greeting_ok(get(served.port, "/", without))
        else:
            # Refused in the handshake with the alert the version prescribes.
            alert = "CERTIFICATE_REQUIRED" if version == "1.3" else "HANDSHAKE_FAILURE"
            with pytest.raises(ssl.SSLError, match=alert):
                get(served.port, "/", without)
        # The refusals cost nothing: the server still serves.
        assert greeting_ok(get(served.port, "/", with_certificate))
    finally:
        served.close()
    assert "peer did not return a certificate" in served.stderr or mode == "request"


def test_sni_chooses_between_two_identities(pki, handlers, version):
    served = Served(handlers["js"], "--identity", identity_flag(pki["localhost"]),
                    "--identity", identity_flag(pki["alt"], "alt"))
    try:
        def served_names(server_name: str) -> set[str]:
            context = pki.client_context(version)
            with HttpClient(served.port, context, server_name=server_name) as client:
                assert greeting_ok(client.request("GET", "/"))
                certificate = client.sock.getpeercert()
            return {value for kind, value in certificate["subjectAltName"] if kind == "DNS"}

        assert served_names("alt.example") == {"alt.example"}
        assert served_names("localhost") == {"localhost"}
        # A name no identity serves gets the first, which the client refuses.
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            served_names("nobody.example")
    finally:
        served.close()


@pytest.mark.parametrize("size", [8 << 20])
def test_bodies_stream_both_ways(https_server, pki, version, size):
    """An upload echoed while it is still being sent (the handler writes each
    chunk as it reads it, the client reads as it sends), and a download."""
    context = pki.client_context(version)
    chunks, digest = random_chunks(size)
    with HttpClient(https_server.port, context) as client:
        echoed = client.request("POST", "/echo", body=chunks,
                                headers=[("content-type", "application/x-test")])
        assert echoed.status == 200, echoed
        assert (echoed.size, echoed.sha256) == (size, digest)
        assert echoed.headers.get("content-type") == "application/x-test"
        downloaded = client.request("GET", f"/bytes/{size}")
    assert (downloaded.size, downloaded.sha256) == (size, sha256(pattern(size)))


def test_a_body_with_content_length_and_expect_100_continue(https_server, pki, version):
    context = pki.client_context(version)
    data = bytes(range(256)) * 4096
    with HttpClient(https_server.port, context) as client:
        reply = client.request("POST", "/echo", body=data, headers=[("expect", "100-continue")])
    assert (reply.status, reply.sha256) == (200, sha256(data))


@pytest.fixture
def upstream(pki, version):
    """An HTTPS origin on loopback with the PKI's localhost certificate."""
    server = H11Server(pki.server_context(pki["localhost"], version))
    yield server
    server.close()


def test_the_handler_fetches_over_https_with_the_ca_file(pki, handler, upstream):
    url = f"https://localhost:{upstream.port}/bytes/300000"
    served = Served(handler, "--allow-net", "127.0.0.1", "--ca-file", str(pki.ca_file))
    try:
        reply = get(served.port, f"/fetch?url={url}")
        assert reply.status == 200, reply
        assert reply.headers["x-upstream-status"] == "200"
        assert (reply.size, reply.sha256) == (300000, sha256(body_bytes(300000)))
    finally:
        served.close()


def test_the_handler_fetches_nothing_it_is_not_allowed_to(pki, handler, handlers, upstream):
    """An origin the handler's host does not trust, then one outside
    --allow-net: 502s. The Python handler names the error-code;
    StarlingMonkey's fetch() says only "NetworkError"."""
    url = f"https://localhost:{upstream.port}/bytes/10"
    untrusting = Served(handler, "--allow-net", "127.0.0.1")  # certifi: not the tests' CA
    try:
        untrusted = get(untrusting.port, f"/fetch?url={url}")
    finally:
        untrusting.close()
    walled = Served(handler, "--allow-net", "192.0.2.1", "--ca-file", str(pki.ca_file))
    try:
        denied = get(walled.port, f"/fetch?url={url}")
    finally:
        walled.close()
    assert (untrusted.status, denied.status) == (502, 502)
    if handler == handlers["python"]:
        assert "TlsCertificateError" in untrusted.text
        assert "HttpRequestDenied" in denied.text
    assert f"denied connect to 127.0.0.1:{upstream.port}" in walled.stderr
    assert not upstream.seen


@pytest.mark.parametrize("route", ["/trap", "/exit", "/no-response"])
def test_a_handler_that_fails_gets_the_client_a_500(guests, route):
    served = Served(guests["http-proxy"])
    try:
        with HttpClient(served.port) as client:
            reply = client.request("GET", route)
            assert reply.status == 500
            # The connection and the server go on.
            assert greeting_ok(client.request("GET", "/"))
        assert greeting_ok(get(served.port))
    finally:
        assert served.stop() == 0
    reason = {"/trap": "the guest trapped", "/exit": "the guest exited with status 1",
              "/no-response": "without setting a response"}[route]
    assert f"GET {route}: " in served.stderr and reason in served.stderr


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "plain"])
def test_debug_logs_a_requests_trap_with_its_backtrace(guests, debug):
    """As `run --debug` does, the wasm backtrace comes before the trap's
    line; without --debug the line alone."""
    served = Served(guests["http-proxy"], *(["--debug"] if debug else []))
    try:
        assert get(served.port, "/trap").status == 500
    finally:
        assert served.stop() == 0
    lines = served.stderr.splitlines()
    answered = [index for index, line in enumerate(lines)
                if line.startswith("wasi-tls-host: GET /trap: the guest trapped")]
    assert len(answered) == 1 and lines[answered[0]].endswith("; answered 500"), served.stderr
    backtrace = "wasi-tls-host: GET /trap: error while executing at wasm backtrace:"
    if debug:
        assert lines.index(backtrace) < answered[0], served.stderr
        assert any("!wasi:http/incoming-handler@" in line and line.endswith("#handle")
                   for line in lines), served.stderr
    else:
        assert not any("wasm backtrace" in line for line in lines), served.stderr


def test_a_component_that_is_not_a_handler_is_refused():
    served_command = BUILD / "wasi-probe.wasm"
    with pytest.raises(RuntimeError, match="does not export wasi:http/incoming-handler"):
        Served(served_command)


def test_the_embedding_api(pki, guests):
    from wasi_tls_host import Host, HostConfig, TlsPolicy
    from wasi_tls_host.http.serve import HttpServer
    from wasi_tls_host.http.settings import ServeSettings
    from wasi_tls_host.tls.identity import PrivateIdentity

    leaf = pki["localhost"]
    identity = PrivateIdentity.from_files(str(leaf.cert_file), str(leaf.key_file))
    config = HostConfig(tls=TlsPolicy(identities={"site": identity}))
    server = Host().serve(str(guests["http-proxy"]), config=config,
                          settings=ServeSettings(port=0))
    assert isinstance(server, HttpServer)
    with server:
        assert server.url == f"https://127.0.0.1:{server.port}/"
        assert greeting_ok(get(server.port, "/", pki.client_context()))
    assert server.stopped
    with pytest.raises(ConnectionRefusedError):
        get(server.port)


def test_the_readme_serve_snippet_runs_as_printed(pki, handlers, capsys):
    readme = (ROOT / "README.md").read_text()
    after = readme.split("From Python, `Host.serve` returns a running server:", 1)[1]
    snippet = after.split("```python\n", 1)[1].split("```", 1)[0]
    leaf = pki["localhost"]
    code = (snippet.replace('"cert.pem"', repr(str(leaf.cert_file)))
            .replace('"key.pem"', repr(str(leaf.key_file)))
            .replace('"handler.wasm"', repr(handlers["js"])))
    # Where the snippet leaves the server to serve, a client asks it something.
    code = code.replace("\n    ...", "\n    replies.append(get(server.port, '/', context))", 1)
    namespace = {"get": get, "context": pki.client_context(), "replies": []}
    exec(compile(code, "README.md", "exec"), namespace)
    assert greeting_ok(namespace["replies"][0])
    server = namespace["server"]
    assert capsys.readouterr().out == f"{server.url}\n"
    assert server.url == f"https://127.0.0.1:{server.port}/"
    assert server.stopped
